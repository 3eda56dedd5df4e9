"""Class-disjoint k-fold cross-validation of an objective, as one Ray Tune trial.

:func:`train_folds` runs an objective's ``train`` once per fold ``i = 0 .. k-1`` with the
config ``{**config, "fold": i}`` (``k = config["folds"] >= 2``; the data layer then fits on
fold ``i``'s fit classes and validates on its validation classes, see
:mod:`trainables.dml.data.folds`). Each fold runs in capture mode
(:func:`trainables.reporting.capture_reports`): its per-epoch reports are collected, not sent
to Tune, and it starts fresh (``restore_state`` is None). A non-finite metric in any fold still
raises ``FloatingPointError``, failing the trial.

Which epoch counts: a fold's result is its LAST epoch's metrics (the model after all
``max_epochs`` epochs), exactly what a trial without folds ends on. Not the best epoch: picking
each fold's best epoch on its own validation classes would bias the mean upwards.

After fold ``i`` (0-based) the trial reports ONE Tune result (``training_iteration = i + 1``):

- every numeric metric ``m`` of the folds: ``m = (1 / n) sum_{j <= i} m_j``, the running mean
  over the ``n`` folds done so far that reported ``m``, so the sweep metric (e.g.
  ``val/recall_at_1``) is the mean over folds and ASHA may stop a trial after any fold;
- ``fold/<j>/<m> = m_j`` for every fold ``j <= i``, each fold's own final-epoch value;
- ``cv/folds_done = i + 1`` and ``cv/folds = k``.

The result carries a small checkpoint (the folds' final metrics, no network), so a trial whose
worker died resumes at the next fold instead of fold 0.

Example::

    from trainables import baseline
    from trainables.cross_validation import make_trainable

    trainable = make_trainable(baseline, folds=3)  # what the runner hands to tune.Tuner
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from numbers import Real
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from trainables.objective import Objective

__all__ = ["PROGRESS_KEY", "fold_summary", "make_trainable", "train_folds"]

TrainFn = Callable[[dict[str, Any]], None]
PROGRESS_KEY = "cross_validation"  # the checkpoint state's key: the finished folds' results


def _numeric(value: Any) -> bool:
    return isinstance(value, Real) and not isinstance(value, bool)


def fold_summary(finals: Sequence[Mapping[str, Any]], *, folds: int) -> dict[str, Any]:
    """The Tune result after ``len(finals)`` of ``folds`` folds, from each finished fold's
    final-epoch metrics ``finals[j]`` (see the module docstring for the keys). Of the
    non-numeric values only the latest fold's ``runtime/*`` descriptions (where it ran) are
    kept."""
    sums: dict[str, float] = {}
    counts: dict[str, int] = {}
    per_fold: dict[str, float] = {}
    runtime: dict[str, Any] = {}
    for j, final in enumerate(finals):
        for key, value in final.items():
            if key.startswith("runtime/") and isinstance(value, str):
                runtime[key] = value
            if not _numeric(value):
                continue
            sums[key] = sums.get(key, 0.0) + float(value)
            counts[key] = counts.get(key, 0) + 1
            per_fold[f"fold/{j}/{key}"] = float(value)
    return {
        **{key: total / counts[key] for key, total in sums.items()},
        **per_fold,
        "cv/folds_done": float(len(finals)),
        "cv/folds": float(folds),
        **runtime,
    }


def train_folds(train_fn: TrainFn, config: dict[str, Any]) -> None:
    """Ray Tune function trainable: ``train_fn`` once per fold, one Tune result per fold.

    Args:
        train_fn: an objective's ``train(config)``, reporting through
            :mod:`trainables.reporting` and reading ``folds`` / ``fold`` from its config.
        config: the trial's flat config; ``config["folds"]`` is the number of folds ``k >= 2``;
            ``fold`` is set here, per fold, and must not be given.

    Raises:
        ValueError: ``folds`` missing or < 2, or ``fold`` given.
        FloatingPointError: a fold reported a non-finite metric.
        RuntimeError: a fold reported no epoch at all.
    """
    from trainables.reporting import capture_reports, report_epoch, restore_state

    folds = config.get("folds")
    if isinstance(folds, float) and folds.is_integer():  # YAML / Optuna may give 3.0
        folds = int(folds)
    if not isinstance(folds, int) or isinstance(folds, bool) or folds < 2:
        raise ValueError(f"train_folds needs config['folds'] >= 2 (an int), got {folds!r}")
    if "fold" in config:
        raise ValueError(
            f"train_folds sets 'fold' per fold itself; the config must not give it "
            f"(got fold={config['fold']!r})"
        )
    state = restore_state()
    # a retried trial (its worker died) resumes after the folds it had finished
    finals: list[dict[str, Any]] = list((state or {}).get(PROGRESS_KEY, []))
    for fold in range(len(finals), folds):
        with capture_reports() as epochs:
            train_fn({**config, "fold": fold})
        if not epochs:
            raise RuntimeError(f"fold {fold} of {folds} reported no epoch (max_epochs < 1?)")
        finals.append(epochs[-1])
        report_epoch(fold_summary(finals, folds=folds), state={PROGRESS_KEY: finals})


def make_trainable(objective: Objective, folds: int) -> TrainFn:
    """What the runner hands to Tune: ``objective.train`` when ``folds <= 1`` (the fixed
    validation split, one result per epoch), else a function running :func:`train_folds` on
    it with ``folds`` folds (one result per fold).

    Raises:
        ValueError: ``folds`` is not an int; at trial time, a config whose ``folds`` differs.
    """
    if not isinstance(folds, int) or isinstance(folds, bool):
        raise ValueError(f"folds must be an int, got {folds!r}")
    if folds <= 1:
        return objective.train
    train_fn: TrainFn = objective.train

    def train_cross_validated(config: dict[str, Any]) -> None:
        if config.get("folds", folds) != folds:
            raise ValueError(
                f"the trial config says folds={config['folds']!r} but the trainable was made "
                f"for folds={folds}"
            )
        train_folds(train_fn, {**config, "folds": folds})

    return train_cross_validated
