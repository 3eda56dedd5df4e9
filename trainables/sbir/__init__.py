"""What the zero-shot sketch-based retrieval objectives (``dsn``, ``mathm``) share.

The protocol of shared/methods.md sections 1-2 for two-modality data: the seen classes are split
into train-fit and validation classes (held out, class-disjoint); per epoch, sketches of the
validation classes query the photos of the validation classes; the unseen (test) classes are
touched only by the final evaluation.

- :mod:`trainables.sbir.data`: the embedded two-modality digits (smoke scale) or a SAKE-layout
  benchmark (Sketchy-Extended, TU-Berlin-Extended) as train / validation / test parts.
- :mod:`trainables.sbir.network`: a modality-conditioned backbone, the retrieval embedding and
  the classifier on it.
- :mod:`trainables.sbir.views`: random views of a batch of image tensors, drawn per image.
- :mod:`trainables.sbir.evaluation`: encoding a part and the retrieval metrics, real-valued and
  binary (ITQ).
"""

from __future__ import annotations

from trainables.sbir.data import (
    DATA_ROOT_ENV,
    SBIRData,
    SBIRSettings,
    load_sbir_data,
    num_train_classes,
    resolve_data_root,
    sbir_settings,
)
from trainables.sbir.evaluation import encode, retrieval_metrics, test_metrics
from trainables.sbir.network import SBIRNet, build_sbir_net
from trainables.sbir.views import random_views

__all__ = [
    "DATA_ROOT_ENV",
    "SBIRData",
    "SBIRNet",
    "SBIRSettings",
    "build_sbir_net",
    "encode",
    "load_sbir_data",
    "num_train_classes",
    "random_views",
    "resolve_data_root",
    "retrieval_metrics",
    "sbir_settings",
    "test_metrics",
]
