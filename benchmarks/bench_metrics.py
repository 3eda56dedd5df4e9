"""Retrieval-metric speed, in one run:

    .venv/bin/python benchmarks/bench_metrics.py [--repeats 3]

(a) ZS-SBIR mAP@all + Prec@100 on a TU-Berlin-sized problem (2,400 sketch queries x 27,989
    photos, 512-d, 30 classes) with ``sbir_metrics`` against a straightforward per-query NumPy
    implementation of the same metric (float64 distances, stable argsort, VOC-interpolated AP,
    averaged over queries). Goal: >= 20x faster; the values must agree to 1e-9 (asserted).
(b) Recall@{1,2,4,8} + P@1 + R-Precision + MAP@R on 10,000 x 512 (100 classes x 100) with
    ``retrieval_metrics`` against pytorch-metric-learning's ``AccuracyCalculator`` (k =
    "max_bin_count", ``CustomKNN(LpDistance)`` since faiss is not installed; it computes P@1,
    R-Precision, MAP@R only). Goal: no slower. Both rank float32 distances computed in
    different ways (``addmm`` vs ``cdist``), so near-ties may order differently and the values
    agree closely but not necessarily bitwise (differences printed).

Features are random but class-structured (class centre + noise), float32 like a network's
output. Timings are the best of ``--repeats`` runs (the NumPy baseline runs once: ~1 min).
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "platform"), str(ROOT)]

import numpy as np  # noqa: E402
import torch  # noqa: E402


def class_features(
    gen: torch.Generator, labels: torch.Tensor, centres: torch.Tensor, noise: float
) -> torch.Tensor:
    x = centres[labels] + noise * torch.randn(len(labels), centres.shape[1], generator=gen)
    return x.float()


def best_of(repeats: int, fn: Callable[[], dict]) -> tuple[float, dict]:
    best, out = float("inf"), {}
    for _ in range(repeats):
        tic = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - tic)
    return best, out


def numpy_sbir(
    q: np.ndarray, ql: np.ndarray, g: np.ndarray, gl: np.ndarray, k: int
) -> dict[str, float]:
    """Per query: distances to the gallery, stable argsort, interpolated AP and Prec@k."""
    qn = q / np.linalg.norm(q, axis=1, keepdims=True)
    gn = g / np.linalg.norm(g, axis=1, keepdims=True)
    positions = np.arange(1, len(g) + 1)
    aps, precs = [], []
    for i in range(len(q)):
        d = np.sqrt(np.maximum(2.0 - 2.0 * (gn @ qn[i]), 0.0))
        rel = gl[np.argsort(d, kind="stable")] == ql[i]
        hits = np.cumsum(rel)
        precision = hits / positions
        envelope = np.maximum.accumulate(precision[::-1])[::-1]
        aps.append(envelope[rel].sum() / rel.sum())
        precs.append(hits[k - 1] / k)
    return {"map_all": float(np.mean(aps)), f"prec_{k}": float(np.mean(precs))}


def published_sbir(
    q: np.ndarray, ql: np.ndarray, g: np.ndarray, gl: np.ndarray, k: int
) -> dict[str, float]:
    """The published evaluation (SAKE ``test_cse_resnet_*``, copied by DSN and MATHM):
    ``scores = -cdist(q, g)`` on normalised features, then ``eval_AP_inner`` (argsort,
    ``VOCap`` with its Python loop) and ``eval_precision`` per query; MATHM's mean."""
    from scipy.spatial.distance import cdist

    def voc_ap(rec: np.ndarray, prec: np.ndarray) -> float:
        mrec = np.append(np.append(0, rec), 1)
        mpre = np.append(np.append(0, prec), 0)
        for ii in range(len(mpre) - 2, -1, -1):
            mpre[ii] = max(mpre[ii], mpre[ii + 1])
        msk = [i != j for i, j in zip(mrec[1:], mrec[0:-1], strict=True)]
        return float(np.sum((mrec[1:][msk] - mrec[0:-1][msk]) * mpre[1:][msk]))

    scores = -cdist(
        q / np.linalg.norm(q, axis=1, keepdims=True), g / np.linalg.norm(g, axis=1, keepdims=True)
    )
    aps, precs = [], []
    for i in range(len(q)):
        pos_flag = gl == ql[i]
        sort_idx = np.argsort(-scores[i])
        tp = pos_flag[sort_idx]
        fp = np.cumsum(np.logical_not(tp))
        tp = np.cumsum(tp)
        aps.append(voc_ap(tp / np.sum(pos_flag), tp / (tp + fp)))
        precs.append(np.sum(pos_flag[sort_idx][:k]) / k)
    return {"map_all": float(np.mean(aps)), f"prec_{k}": float(np.mean(precs))}


def compare(ours: dict, ref: dict, name: str) -> list[tuple[str, ...]]:
    rows = []
    for key in ("map_all", "prec_100"):
        diff = abs(ours[key] - ref[key])
        assert diff <= 1e-9, f"{key}: sbir_metrics {ours[key]!r} != {name} {ref[key]!r}"
        rows.append((key, f"{ours[key]:.6f}", f"{ref[key]:.6f}", f"{diff:.1e}"))
    return rows


def bench_sbir(repeats: int) -> list[tuple[str, ...]]:
    from trainables.dml.metrics import euclidean_normalized, sbir_metrics

    gen = torch.Generator().manual_seed(0)
    centres = torch.randn(30, 512, generator=gen, dtype=torch.float64) / 512**0.5
    ql = torch.randint(0, 30, (2400,), generator=gen)
    gl = torch.randint(0, 30, (27_989,), generator=gen)
    q = class_features(gen, ql, centres, 3.25 / 512**0.5)
    g = class_features(gen, gl, centres, 3.25 / 512**0.5)

    ours_s, ours = best_of(repeats, lambda: sbir_metrics(q, ql, g, gl, ks=(100,)))
    qd, gd = q.double(), g.double()
    dist_s, _ = best_of(
        repeats,
        lambda: {s: euclidean_normalized(qd[s : s + 1024], gd) for s in range(0, 2400, 1024)},
    )
    tic = time.perf_counter()
    ref = numpy_sbir(qd.numpy(), ql.numpy(), gd.numpy(), gl.numpy(), 100)
    ref_s = time.perf_counter() - tic
    print("(a) ZS-SBIR, 2,400 x 27,989 x 512, 30 classes")
    table(("metric", "sbir_metrics", "numpy", "|diff|"), compare(ours, ref, "numpy"))
    print(f"    float64 distance blocks alone (the GEMM floor): {dist_s:.2f} s\n")

    # The published evaluation code, on the first 240 queries (its Python loop is slow).
    sub = slice(0, 240)
    sub_s, sub_ours = best_of(repeats, lambda: sbir_metrics(q[sub], ql[sub], g, gl, ks=(100,)))
    tic = time.perf_counter()
    pub = published_sbir(qd[sub].numpy(), ql[sub].numpy(), gd.numpy(), gl.numpy(), 100)
    pub_s = time.perf_counter() - tic
    print("(a') the same, first 240 queries, against the published evaluation code")
    table(("metric", "sbir_metrics", "published", "|diff|"), compare(sub_ours, pub, "published"))
    return [
        (
            "(a) mAP@all+Prec@100",
            f"{ours_s:.2f}",
            f"{ref_s:.2f}",
            "numpy per-query",
            f"{ref_s / ours_s:.1f}x",
            ">= 20x",
        ),
        (
            "(a') same, 240 queries",
            f"{sub_s:.2f}",
            f"{pub_s:.2f}",
            "published eval code",
            f"{pub_s / sub_s:.1f}x",
            "-",
        ),
    ]


def bench_dml(repeats: int) -> list[tuple[str, ...]]:
    from pytorch_metric_learning.distances import LpDistance
    from pytorch_metric_learning.utils.accuracy_calculator import AccuracyCalculator
    from pytorch_metric_learning.utils.inference import CustomKNN

    from trainables.dml.metrics import retrieval_metrics

    gen = torch.Generator().manual_seed(1)
    centres = torch.randn(100, 512, generator=gen, dtype=torch.float64) / 512**0.5
    y = torch.arange(100).repeat_interleave(100)
    x = class_features(gen, y, centres, 3.5 / 512**0.5)

    calc = AccuracyCalculator(
        include=("precision_at_1", "r_precision", "mean_average_precision_at_r"),
        k="max_bin_count",
        device=torch.device("cpu"),
        knn_func=CustomKNN(LpDistance(normalize_embeddings=True)),
    )
    ours_s, ours = best_of(repeats, lambda: retrieval_metrics(x, y, ks=(1, 2, 4, 8)))
    pml_s, pml = best_of(repeats, lambda: calc.get_accuracy(x, y))
    rows = [
        (
            ours_key,
            f"{ours[ours_key]:.6f}",
            f"{pml[pml_key]:.6f}",
            f"{abs(ours[ours_key] - pml[pml_key]):.1e}",
        )
        for ours_key, pml_key in (
            ("precision_at_1", "precision_at_1"),
            ("r_precision", "r_precision"),
            ("map_at_r", "mean_average_precision_at_r"),
        )
    ]
    rows.append(("recall_at_8", f"{ours['recall_at_8']:.6f}", "-", "-"))
    print("(b) DML leave-one-out, 10,000 x 512, 100 classes x 100")
    table(("metric", "retrieval_metrics", "PML", "|diff|"), rows)
    return [
        (
            "(b) R@K+P@1+RP+MAP@R",
            f"{ours_s:.2f}",
            f"{pml_s:.2f}",
            "PML AccuracyCalculator",
            f"{pml_s / ours_s:.2f}x",
            ">= 1x",
        )
    ]


def table(header: tuple[str, ...], rows: list[tuple[str, ...]]) -> None:
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    for r in [header, tuple("-" * w for w in widths), *rows]:
        print("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)))
    print()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, numpy {np.__version__}\n")
    rows = bench_sbir(args.repeats) + bench_dml(args.repeats)
    table(("task", "ours s", "baseline s", "baseline", "speed-up", "goal"), rows)


if __name__ == "__main__":
    main()
