from __future__ import annotations

import math

import pytest
import torch
from pytorch_metric_learning.distances import LpDistance
from pytorch_metric_learning.utils.accuracy_calculator import AccuracyCalculator
from pytorch_metric_learning.utils.inference import CustomKNN
from sklearn.cluster import KMeans
from sklearn.metrics import normalized_mutual_info_score

from trainables.dml.metrics import euclidean_normalized, nmi, retrieval_metrics

KS = (1, 2, 4, 8, 500)  # 500 > N - 1: "all the others"


# ----------------------------------------------------------------------------- references


def naive_euclidean_normalized(x: torch.Tensor) -> list[list[float]]:
    rows = [[float(v) for v in r] for r in x.double()]
    unit = [[v / math.sqrt(sum(w * w for w in r)) for v in r] for r in rows]
    return [[math.dist(a, b) for b in unit] for a in unit]


def naive_l1(x: torch.Tensor) -> list[list[float]]:
    rows = [[float(v) for v in r] for r in x.double()]
    return [[sum(abs(p - q) for p, q in zip(a, b, strict=True)) for b in rows] for a in rows]


def naive_neg_dot(x: torch.Tensor) -> list[list[float]]:
    rows = [[float(v) for v in r] for r in x.double()]
    return [[-sum(p * q for p, q in zip(a, b, strict=True)) for b in rows] for a in rows]


def naive_retrieval(dist: list[list[float]], labels: list[int], ks) -> dict[str, float]:
    """Leave-one-out metrics with python loops; ties broken by index."""
    sums: dict[str, float] = {}
    used = 0
    n = len(labels)
    for i in range(n):
        others = sorted((j for j in range(n) if j != i), key=lambda j: (dist[i][j], j))
        rel = [labels[j] == labels[i] for j in others]
        r = sum(rel)
        if r == 0:
            continue
        used += 1
        values = {f"recall_at_{k}": float(any(rel[:k])) for k in ks}
        values["precision_at_1"] = float(rel[0])
        values["r_precision"] = sum(rel[:r]) / r
        hits, ap = 0, 0.0
        for pos in range(r):
            if rel[pos]:
                hits += 1
                ap += hits / (pos + 1)
        values["map_at_r"] = ap / r
        for key, v in values.items():
            sums[key] = sums.get(key, 0.0) + v
    return {key: v / used for key, v in sums.items()}


def labels_with_singleton(n: int, classes: int, gen: torch.Generator) -> torch.Tensor:
    y = torch.randint(0, classes, (n,), generator=gen)
    y[0] = classes + 5  # a class with one sample: its query is excluded
    return y


def assert_metrics_close(got: dict[str, float], want: dict[str, float], tol: float) -> None:
    assert set(got) == set(want)
    for key in want:
        assert got[key] == pytest.approx(want[key], abs=tol), key


# ----------------------------------------------------------------------------- vs references


@pytest.mark.usefixtures("kernel")
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_matches_naive_reference_on_random_features(seed):
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(90, 6, generator=gen, dtype=torch.float64)
    y = labels_with_singleton(90, 7, gen)
    got = retrieval_metrics(x, y, ks=KS)
    want = naive_retrieval(naive_euclidean_normalized(x), y.tolist(), KS)
    assert_metrics_close(got, want, 1e-12)


@pytest.mark.usefixtures("kernel")
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("seed", [0, 1])
def test_distance_ties_follow_the_index_rule(seed, dtype):
    # Integer features under L1: many exactly equal distances, across classes too.
    gen = torch.Generator().manual_seed(seed)
    x = torch.randint(0, 3, (70, 3), generator=gen).to(dtype)
    y = labels_with_singleton(70, 5, gen)
    want = naive_retrieval(naive_l1(x), y.tolist(), KS)

    def l1(a, b):
        return torch.cdist(a, b, p=1)

    for chunk_size in (1, 13, 1024):
        got = retrieval_metrics(x, y, ks=KS, distance=l1, chunk_size=chunk_size)
        assert_metrics_close(got, want, 1e-12)


@pytest.mark.usefixtures("kernel")
def test_duplicated_points_among_continuous_ones():
    # Most rows have no tie (fast path), the rows near duplicates do (exact path).
    gen = torch.Generator().manual_seed(10)
    x = torch.randn(60, 4, generator=gen, dtype=torch.float64)
    x[50:] = x[:10]
    y = torch.randint(0, 4, (60,), generator=gen)

    def l1(a, b):
        return torch.cdist(a, b, p=1)

    got = retrieval_metrics(x, y, ks=KS, distance=l1, chunk_size=16)
    assert_metrics_close(got, naive_retrieval(naive_l1(x), y.tolist(), KS), 1e-12)


@pytest.mark.usefixtures("kernel")
@pytest.mark.parametrize(
    "cast",
    [
        lambda d: d.long(),  # exact integer keys
        lambda d: d.long() * 2**55,  # too large for exact integer keys: ranked as floats
        lambda d: d.half(),
        lambda d: d.bfloat16(),
    ],
    ids=["int64", "huge-int64", "float16", "bfloat16"],
)
def test_other_distance_dtypes_are_ranked_exactly(cast):
    gen = torch.Generator().manual_seed(3)
    x = torch.randint(0, 3, (60, 4), generator=gen).double()
    y = torch.randint(0, 4, (60,), generator=gen)
    got = retrieval_metrics(x, y, ks=KS, distance=lambda a, b: cast(torch.cdist(a, b, p=1)))
    assert_metrics_close(got, naive_retrieval(naive_l1(x), y.tolist(), KS), 1e-12)


@pytest.mark.usefixtures("kernel")
def test_negative_distances_and_signed_zeros():
    # -<a, b> on small integers: negative values, and -0.0 next to 0.0 (equal, tied by index).
    gen = torch.Generator().manual_seed(4)
    x = torch.randint(-1, 2, (60, 3), generator=gen).double()
    y = torch.randint(0, 4, (60,), generator=gen)
    got = retrieval_metrics(x, y, ks=KS, distance=lambda a, b: -(a @ b.T))
    assert_metrics_close(got, naive_retrieval(naive_neg_dot(x), y.tolist(), KS), 1e-12)


@pytest.mark.usefixtures("kernel")
def test_float32_features_rank_like_float64_when_distances_are_well_separated():
    gen = torch.Generator().manual_seed(5)
    x = torch.randn(60, 3, generator=gen)
    y = torch.randint(0, 4, (60,), generator=gen)
    got = retrieval_metrics(x, y, ks=KS)
    assert_metrics_close(got, naive_retrieval(naive_euclidean_normalized(x), y.tolist(), KS), 1e-6)


def pml_knn_float64(query, k, reference, ref_includes_query):
    # AccuracyCalculator casts to float32; rank in float64 like ours so that only the metric
    # logic is compared, not float32 rounding.
    knn = CustomKNN(LpDistance(normalize_embeddings=True))
    return knn(query.double(), k, reference.double(), ref_includes_query)


@pytest.mark.usefixtures("kernel")
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_matches_pytorch_metric_learning(seed):
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(150, 8, generator=gen)  # float32 values, identical for both
    y = labels_with_singleton(150, 9, gen)
    calc = AccuracyCalculator(
        include=("precision_at_1", "r_precision", "mean_average_precision_at_r"),
        k="max_bin_count",
        device=torch.device("cpu"),
        knn_func=pml_knn_float64,
    )
    want = calc.get_accuracy(x, y)  # same set: leave-one-out, lone queries excluded
    ks = (1, 2, 4, 8)
    got = retrieval_metrics(x.double(), y, ks=ks)
    assert got["precision_at_1"] == pytest.approx(want["precision_at_1"], abs=1e-6)
    assert got["recall_at_1"] == pytest.approx(want["precision_at_1"], abs=1e-6)
    assert got["r_precision"] == pytest.approx(want["r_precision"], abs=1e-6)
    assert got["map_at_r"] == pytest.approx(want["mean_average_precision_at_r"], abs=1e-6)
    # Recall@K from PML's own neighbour lists (self removed), lone queries excluded.
    _, idx = pml_knn_float64(x, max(ks), x, True)
    counts = torch.bincount(y)
    not_lone = counts[y] > 1
    hit = y[idx] == y[:, None]
    for k in ks:
        want_k = hit[:, :k].any(dim=1)[not_lone].double().mean().item()
        assert got[f"recall_at_{k}"] == pytest.approx(want_k, abs=1e-6)


# ----------------------------------------------------------------------------- behaviour


@pytest.mark.usefixtures("kernel")
def test_chunked_equals_unchunked():
    gen = torch.Generator().manual_seed(6)
    x = torch.randn(200, 16, generator=gen)
    y = torch.randint(0, 12, (200,), generator=gen)
    whole = retrieval_metrics(x, y, ks=KS, chunk_size=10_000)
    for chunk_size in (1, 7, 64):
        assert retrieval_metrics(x, y, ks=KS, chunk_size=chunk_size) == whole
    # The default distance has a fast path (gallery normalised once, buffer reused).
    generic = retrieval_metrics(
        x, y, ks=KS, chunk_size=7, distance=lambda a, b: euclidean_normalized(a, b)
    )
    assert generic == whole


def test_perfectly_separated_classes_score_one():
    gen = torch.Generator().manual_seed(7)
    centres = 10 * torch.eye(4, dtype=torch.float64)
    y = torch.arange(4).repeat_interleave(10)
    x = centres[y] + 0.01 * torch.randn(40, 4, generator=gen, dtype=torch.float64)
    got = retrieval_metrics(x, y)
    assert all(v == 1.0 for v in got.values()), got


def test_euclidean_normalized_matches_definition():
    gen = torch.Generator().manual_seed(8)
    x = torch.randn(9, 5, generator=gen, dtype=torch.float64)
    y = torch.randn(4, 5, generator=gen, dtype=torch.float64)
    want = torch.tensor(naive_euclidean_normalized(torch.cat([x, y])), dtype=torch.float64)
    want = want[:9, 9:]
    torch.testing.assert_close(euclidean_normalized(x, y), want, rtol=0, atol=1e-7)


def test_all_singleton_classes_raise():
    with pytest.raises(ValueError, match="another sample of its class"):
        retrieval_metrics(torch.randn(5, 3), torch.arange(5))


@pytest.mark.parametrize(
    ("x", "y", "error", "match"),
    [
        (torch.empty(0, 4), torch.empty(0, dtype=torch.long), ValueError, "empty"),
        (torch.randn(5), torch.zeros(5, dtype=torch.long), ValueError, "2-D"),
        (torch.randn(5, 2), torch.zeros(4, dtype=torch.long), ValueError, "shape"),
        (torch.randn(5, 2), torch.zeros(5), TypeError, "integer"),
        (torch.tensor([[0.0], [math.nan]]), torch.zeros(2, dtype=torch.long), ValueError, "NaN"),
    ],
)
def test_bad_input_raises(x, y, error, match):
    with pytest.raises(error, match=match):
        retrieval_metrics(x, y)


def test_bad_arguments_raise():
    x, y = torch.randn(6, 2), torch.tensor([0, 0, 1, 1, 2, 2])
    with pytest.raises(ValueError, match="ks"):
        retrieval_metrics(x, y, ks=(0,))
    with pytest.raises(ValueError, match="chunk_size"):
        retrieval_metrics(x, y, chunk_size=0)
    with pytest.raises(ValueError, match="shape"):
        retrieval_metrics(x, y, distance=lambda a, b: a @ b[:2].T)
    with pytest.raises(FloatingPointError, match="NaN"):
        retrieval_metrics(x, y, distance=lambda a, b: torch.full((len(a), len(b)), math.nan))


def test_runs_where_the_tensors_are_and_ignores_gradients():
    x = torch.randn(30, 4, requires_grad=True)
    y = torch.randint(0, 3, (30,))
    assert retrieval_metrics(x, y) == retrieval_metrics(x.detach(), y)


# ----------------------------------------------------------------------------- NMI


@pytest.mark.parametrize("seed", [0, 1])
def test_nmi_matches_sklearn(seed):
    gen = torch.Generator().manual_seed(seed)
    y = torch.randint(0, 5, (120,), generator=gen)
    x = torch.randn(5, 6, generator=gen)[y] + 0.8 * torch.randn(120, 6, generator=gen)
    unit = torch.nn.functional.normalize(x.double(), dim=1).numpy()
    clusters = KMeans(n_clusters=5, n_init="auto", random_state=seed).fit_predict(unit)
    want = normalized_mutual_info_score(y.numpy(), clusters)
    assert nmi(x, y, seed=seed) == pytest.approx(want, abs=1e-12)
    assert 0.0 < want < 1.0


def test_nmi_is_one_on_separated_clusters_whatever_the_label_names():
    gen = torch.Generator().manual_seed(9)
    y = torch.arange(3).repeat_interleave(15)
    x = 10 * torch.eye(3)[y] + 0.01 * torch.randn(45, 3, generator=gen)
    assert nmi(x, y) == pytest.approx(1.0)
    assert nmi(x, 7 - 2 * y) == pytest.approx(1.0)


def test_nmi_bad_input_raises():
    with pytest.raises(ValueError, match="empty"):
        nmi(torch.empty(0, 3), torch.empty(0, dtype=torch.long))
    with pytest.raises(ValueError, match="shape"):
        nmi(torch.randn(4, 3), torch.tensor([0, 1]))
