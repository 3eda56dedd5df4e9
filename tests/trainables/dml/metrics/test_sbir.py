from __future__ import annotations

import math

import pytest
import torch
from sklearn.metrics import average_precision_score

from trainables.dml.metrics import euclidean_normalized, fit_itq, sbir_binary_metrics, sbir_metrics

KS = (10, 50, 1000)  # 1000 > gallery size: the whole gallery


# ----------------------------------------------------------------------------- references


def naive_cross_dist(q: torch.Tensor, g: torch.Tensor, kind: str) -> list[list[float]]:
    qs = [[float(v) for v in r] for r in q.double()]
    gs = [[float(v) for v in r] for r in g.double()]
    if kind == "euclidean_normalized":
        qs = [[v / math.sqrt(sum(w * w for w in r)) for v in r] for r in qs]
        gs = [[v / math.sqrt(sum(w * w for w in r)) for v in r] for r in gs]
        return [[math.dist(a, b) for b in gs] for a in qs]
    if kind == "l1":
        return [[sum(abs(x - y) for x, y in zip(a, b, strict=True)) for b in gs] for a in qs]
    if kind == "hamming":
        return [[float(sum(x != y for x, y in zip(a, b, strict=True))) for b in gs] for a in qs]
    raise AssertionError(kind)


def ranked_relevance(row: list[float], gallery_labels: list[int], label: int) -> list[bool]:
    order = sorted(range(len(row)), key=lambda j: (row[j], j))
    return [gallery_labels[j] == label for j in order]


def plain_ap(rel: list[bool]) -> float:
    hits, total = 0, 0.0
    for pos, r in enumerate(rel):
        if r:
            hits += 1
            total += hits / (pos + 1)
    return total / hits


def voc_ap(rel: list[bool], top: int | None = None) -> float:
    """Port of SAKE/DSN/MATHM ``eval_AP_inner(top=top)`` + ``VOCap`` in loops: VOC AP of the
    whole ranking, or of its first ``top`` items with recall over ``min(top, R)``."""
    tot_pos = sum(rel)
    if top is not None:
        rel, tot_pos = rel[:top], min(top, tot_pos)
    tp = fp = 0
    rec, prec = [], []
    for r in rel:
        tp += r
        fp += not r
        rec.append(tp / tot_pos)
        prec.append(tp / (tp + fp))
    mrec = [0.0, *rec, 1.0]
    mpre = [0.0, *prec, 0.0]
    for i in range(len(mpre) - 2, -1, -1):
        mpre[i] = max(mpre[i], mpre[i + 1])
    return sum(
        (mrec[i + 1] - mrec[i]) * mpre[i + 1]
        for i in range(len(mrec) - 1)
        if mrec[i + 1] != mrec[i]
    )


def ap_at_k(rel: list[bool], k: int, form: str) -> float:
    top = rel[:k]
    if not any(top):
        return 0.0
    if form == "sake":
        return voc_ap(rel, top=k)
    if form == "sempcyc":
        return plain_ap(top)  # divided by the relevant items found in the top K
    hits, total = 0, 0.0  # standard: divided by min(K, R)
    for pos, r in enumerate(top):
        if r:
            hits += 1
            total += hits / (pos + 1)
    return total / min(k, sum(rel))


def naive_sbir(
    dist,
    query_labels,
    gallery_labels,
    ks,
    interpolated,
    *,
    map_at_k="standard",
    without="drop",
) -> dict[str, float]:
    per_query: dict[str, list[tuple[int, float]]] = {}
    m = len(gallery_labels)
    for i, label in enumerate(query_labels):
        rel = ranked_relevance(dist[i], gallery_labels, label)
        if not any(rel):
            if without == "zero_precision":
                for k in ks:
                    per_query.setdefault(f"prec_{k}", []).append((label, 0.0))
            continue
        values = {"map_all": voc_ap(rel) if interpolated else plain_ap(rel)}
        for k in ks:
            top = rel[: min(k, m)]
            values[f"prec_{k}"] = sum(top) / min(k, m)
            values[f"map_{k}"] = ap_at_k(rel, min(k, m), map_at_k)
        for key, v in values.items():
            per_query.setdefault(key, []).append((label, v))
    out = {}
    for key, pairs in per_query.items():
        out[key] = sum(v for _, v in pairs) / len(pairs)
        by_class: dict[int, list[float]] = {}
        for label, v in pairs:
            by_class.setdefault(label, []).append(v)
        out[f"{key}_per_class"] = sum(sum(c) / len(c) for c in by_class.values()) / len(by_class)
    return out


def problem(seed: int, *, nq: int = 40, ng: int = 300, dim: int = 8, classes: int = 6):
    gen = torch.Generator().manual_seed(seed)
    centres = torch.randn(classes + 1, dim, generator=gen, dtype=torch.float64)
    ql = torch.randint(0, classes + 1, (nq,), generator=gen)
    ql[-1] = classes  # a query class without any photo
    gl = torch.randint(0, classes, (ng,), generator=gen)
    q = centres[ql] + 1.5 * torch.randn(nq, dim, generator=gen, dtype=torch.float64)
    g = centres[gl] + 1.5 * torch.randn(ng, dim, generator=gen, dtype=torch.float64)
    return q, ql, g, gl


def assert_metrics_close(got: dict[str, float], want: dict[str, float], tol: float) -> None:
    assert set(got) == set(want)
    for key in want:
        assert got[key] == pytest.approx(want[key], abs=tol), key


# ----------------------------------------------------------------------------- vs references


@pytest.mark.usefixtures("kernel")
@pytest.mark.parametrize("interpolated", [True, False])
@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("map_at_k", ["standard", "sake", "sempcyc"])
@pytest.mark.parametrize("without", ["drop", "zero_precision"])
def test_matches_naive_reference(seed, interpolated, map_at_k, without):
    q, ql, g, gl = problem(seed)
    want = naive_sbir(
        naive_cross_dist(q, g, "euclidean_normalized"),
        ql.tolist(),
        gl.tolist(),
        KS,
        interpolated,
        map_at_k=map_at_k,
        without=without,
    )
    got = sbir_metrics(
        q,
        ql,
        g,
        gl,
        ks=KS,
        interpolated_ap=interpolated,
        map_at_k=map_at_k,
        queries_without_relevant=without,
    )
    assert_metrics_close(got, want, 1e-12)


def test_map_at_k_forms_differ_as_measured_on_tu_berlin_sized_data():
    """30 unseen classes, 2,400 sketch queries against 27,989 photos (at a tenth of the size):
    the SAKE and SEM-PCYC forms of mAP@K are far apart, so the name matters."""
    gen = torch.Generator().manual_seed(0)
    ql = torch.randint(0, 30, (240,), generator=gen)
    gl = torch.randint(0, 30, (2800,), generator=gen)
    centres = torch.randn(30, 16, generator=gen, dtype=torch.float64)
    q = centres[ql] + 2.0 * torch.randn(240, 16, generator=gen, dtype=torch.float64)
    g = centres[gl] + 2.0 * torch.randn(2800, 16, generator=gen, dtype=torch.float64)
    forms = {
        f: sbir_metrics(q, ql, g, gl, ks=(100, 200), map_at_k=f)
        for f in ("standard", "sake", "sempcyc")
    }
    for k in (100, 200):
        assert forms["sempcyc"][f"map_{k}"] - forms["sake"][f"map_{k}"] > 0.05
        assert forms["sake"][f"map_{k}"] >= forms["standard"][f"map_{k}"]  # interpolation
    assert len({f["map_all"] for f in forms.values()}) == 1  # mAP@all does not depend on it


@pytest.mark.parametrize("seed", [0, 1])
def test_per_query_ap_matches_sklearn(seed):
    q, ql, g, gl = problem(seed, nq=12)
    dist = naive_cross_dist(q, g, "euclidean_normalized")
    for i in range(len(q)):
        rel = (gl == ql[i]).numpy()
        if not rel.any():
            continue  # covered by test_queries_without_relevant_photos_are_excluded
        got = sbir_metrics(
            q[i : i + 1], ql[i : i + 1], g, gl, ks=(25,), interpolated_ap=False, map_at_k="sempcyc"
        )
        scores = -torch.tensor(dist[i], dtype=torch.float64).numpy()
        assert got["map_all"] == pytest.approx(average_precision_score(rel, scores), abs=1e-12)
        # mAP@K as the ZS-SBIR `apsak`: sklearn AP on the top-K list, 0 if nothing relevant.
        top = scores.argsort()[::-1][:25]
        want_k = average_precision_score(rel[top], scores[top]) if rel[top].any() else 0.0
        assert got["map_25"] == pytest.approx(want_k, abs=1e-12)


def test_interpolated_ap_is_at_least_the_plain_one():
    q, ql, g, gl = problem(3)
    interp = sbir_metrics(q, ql, g, gl, interpolated_ap=True)
    plain = sbir_metrics(q, ql, g, gl, interpolated_ap=False)
    assert interp["map_all"] > plain["map_all"]
    assert interp["prec_100"] == plain["prec_100"]


@pytest.mark.usefixtures("kernel")
@pytest.mark.parametrize("seed", [0, 1])
def test_distance_ties_follow_the_index_rule(seed):
    gen = torch.Generator().manual_seed(seed)
    q = torch.randint(0, 3, (30, 3), generator=gen).double()
    g = torch.randint(0, 3, (200, 3), generator=gen).double()
    ql = torch.randint(0, 4, (30,), generator=gen)
    gl = torch.randint(0, 4, (200,), generator=gen)
    want = naive_sbir(naive_cross_dist(q, g, "l1"), ql.tolist(), gl.tolist(), KS, True)
    for chunk_size in (1, 7, 1024):
        got = sbir_metrics(
            q, ql, g, gl, ks=KS, distance=lambda a, b: torch.cdist(a, b, p=1), chunk_size=chunk_size
        )
        assert_metrics_close(got, want, 1e-12)


@pytest.mark.usefixtures("kernel")
@pytest.mark.parametrize("published", [False, True])
@pytest.mark.parametrize("fit_on", ["query", "gallery"])
def test_binary_metrics_rank_itq_codes_by_hamming(fit_on, published):
    q, ql, g, gl = problem(4, nq=30, ng=200)
    itq = fit_itq(q if fit_on == "query" else g, bits=6, seed=3, published=published)
    qc, gc = itq.encode(q), itq.encode(g)
    dist = naive_cross_dist(qc.long(), gc.long(), "hamming")
    want = naive_sbir(dist, ql.tolist(), gl.tolist(), KS, True)
    got = sbir_binary_metrics(
        q, ql, g, gl, bits=6, fit_on=fit_on, seed=3, ks=KS, chunk_size=11, published_itq=published
    )
    assert_metrics_close(got, want, 1e-12)


# ----------------------------------------------------------------------------- behaviour


@pytest.mark.usefixtures("kernel")
def test_chunked_equals_unchunked():
    q, ql, g, gl = problem(5, nq=60)
    whole = sbir_metrics(q, ql, g, gl, chunk_size=10_000)
    for chunk_size in (1, 9, 32):
        assert sbir_metrics(q, ql, g, gl, chunk_size=chunk_size) == whole
    # The default distance has a fast path (gallery normalised once, buffer reused).
    generic = sbir_metrics(
        q, ql, g, gl, chunk_size=9, distance=lambda a, b: euclidean_normalized(a, b)
    )
    assert generic == whole


def test_float32_features_are_ranked_in_float64_by_default():
    q, ql, g, gl = problem(6)
    q32, g32 = q.float(), g.float()
    assert sbir_metrics(q32, ql, g32, gl) == sbir_metrics(q32.double(), ql, g32.double(), gl)


def test_queries_without_relevant_photos_are_excluded():
    q, ql, g, gl = problem(7)
    missing = ql == 6
    full = sbir_metrics(q, ql, g, gl)
    assert full == sbir_metrics(q[~missing], ql[~missing], g, gl)
    with pytest.raises(ValueError, match="no query label"):
        sbir_metrics(q[missing], ql[missing], g, gl)
    # SAKE's eval_precision (MATHM): their Prec@K counts as 0, their AP stays out
    sake = sbir_metrics(q, ql, g, gl, queries_without_relevant="zero_precision")
    n, n_missing = len(ql), int(missing.sum())
    assert sake["prec_100"] == pytest.approx(full["prec_100"] * (n - n_missing) / n, abs=1e-12)
    assert sake["map_all"] == full["map_all"] and sake["map_200"] == full["map_200"]


def test_per_class_and_per_query_averaging_differ_on_unbalanced_queries():
    q, ql, g, gl = problem(8)
    got = sbir_metrics(q, ql, g, gl)
    assert got["map_all"] != pytest.approx(got["map_all_per_class"], abs=1e-6)


@pytest.mark.parametrize(
    ("call", "error", "match"),
    [
        (lambda q, ql, g, gl: sbir_metrics(q[:0], ql[:0], g, gl), ValueError, "empty"),
        (lambda q, ql, g, gl: sbir_metrics(q, ql, g[:, :3], gl), ValueError, "features"),
        (lambda q, ql, g, gl: sbir_metrics(q, ql, g, gl[:5]), ValueError, "shape"),
        (lambda q, ql, g, gl: sbir_metrics(q, ql.double(), g, gl), TypeError, "integer"),
        (lambda q, ql, g, gl: sbir_metrics(q, ql, g, gl, ks=()), ValueError, "ks"),
        (
            lambda q, ql, g, gl: sbir_binary_metrics(q, ql, g, gl, bits=4, fit_on="both"),
            ValueError,
            "fit_on",
        ),
        (lambda q, ql, g, gl: sbir_binary_metrics(q, ql, g, gl, bits=99), ValueError, "bits"),
        (lambda q, ql, g, gl: sbir_metrics(q, ql, g, gl, map_at_k="voc"), ValueError, "map_at_k"),
        (
            lambda q, ql, g, gl: sbir_metrics(q, ql, g, gl, queries_without_relevant="nan"),
            ValueError,
            "queries_without_relevant",
        ),
    ],
)
def test_bad_input_raises(call, error, match):
    q, ql, g, gl = problem(9)
    with pytest.raises(error, match=match):
        call(q, ql, g, gl)
