"""The names of the validation metrics both SBIR objectives report each epoch
(:func:`trainables.sbir.evaluation.retrieval_metrics` on the validation classes), with the
direction that is better: a space may optimise any of them (trainables.objective)."""

from __future__ import annotations

from trainables.objective import Mode

_NAMES = ("map_all", "map_all_per_class", "prec_100", "map_100", "prec_200", "map_200")
SBIR_VALIDATION_METRICS: dict[str, Mode] = {f"val/{name}": "max" for name in _NAMES}
