"""Retrieval metrics of the metric-learning library (methods.md section 2).

- :func:`retrieval_metrics` -- Recall@K, Precision@1, R-Precision, MAP@R, leave-one-out.
- :func:`nmi` -- NMI of a k-means clustering with as many clusters as classes.
- :func:`sbir_metrics` -- ZS-SBIR mAP@all, Prec@K, mAP@K, averaged per query and per class.
- :func:`sbir_binary_metrics` -- the same on ITQ codes ranked by Hamming distance.
- :func:`fit_itq`, :class:`ITQ`, :func:`hamming_distance` -- iterative quantisation.
- :func:`euclidean_normalized` -- the default distance; any ``Distance`` callable
  ``(N, D), (M, D) -> (N, M)`` (e.g. a hyperbolic ``d_c``) can replace it.

Tensors in, Python floats out; the work runs on the tensors' device, a chunk of queries at a
time. Ranking ties are broken by gallery index (see ``_ranking``).
"""

from __future__ import annotations

from trainables.dml.metrics._ranking import Distance, euclidean_normalized
from trainables.dml.metrics.itq import ITQ, fit_itq, hamming_distance
from trainables.dml.metrics.retrieval import nmi, retrieval_metrics
from trainables.dml.metrics.sbir import sbir_binary_metrics, sbir_metrics

__all__ = [
    "ITQ",
    "Distance",
    "euclidean_normalized",
    "fit_itq",
    "hamming_distance",
    "nmi",
    "retrieval_metrics",
    "sbir_binary_metrics",
    "sbir_metrics",
]
