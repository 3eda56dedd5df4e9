"""The names of the validation metrics every single-modality DML objective reports each epoch
(:func:`trainables.dml.evaluation.evaluate_embeddings` on the validation classes), with the
direction that is better: a space may optimise any of them (trainables.objective)."""

from __future__ import annotations

from trainables.objective import Mode

VALIDATION_METRICS: dict[str, Mode] = {
    **{f"val/recall_at_{k}": "max" for k in (1, 2, 4, 8)},
    "val/precision_at_1": "max",
    "val/r_precision": "max",
    "val/map_at_r": "max",
    "val/nmi": "max",
}
