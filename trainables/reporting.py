"""The one seam between an objective and Ray Tune: report an epoch, restore the last state.

Objectives call only these two functions, so they stay testable without Ray and the platform
can change how results travel without touching them.

Capture mode (:func:`capture_reports`): inside the block ``report_epoch`` appends each epoch's
metrics to a list instead of reporting to Tune (still raising on a non-finite metric) and
``restore_state`` answers None, so an objective's ``train`` runs as a plain function. Cross-
validation (:mod:`trainables.cross_validation`) runs one fold this way and reports the
aggregate itself; tests and benchmarks use it to run an objective without Ray.
"""

from __future__ import annotations

import math
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from pathlib import Path
from typing import Any, Protocol

import torch

STATE_FILE = "state.pt"


# The list of the innermost capture_reports block, None outside any (a context variable, so a
# capture in one thread never swallows another thread's reports).
class Reports(list[dict[str, Any]]):
    """The epochs' metrics captured in order; ``last_state`` is the last checkpoint state."""

    last_state: dict[str, Any] | None = None


_SINK: ContextVar[Reports | None] = ContextVar("dmlsweep_report_sink", default=None)


@contextmanager
def capture_reports() -> Iterator[Reports]:
    """Within the block, ``report_epoch`` appends a copy of each epoch's metrics to the yielded
    list (keeping only the last checkpoint state, as ``last_state``) and ``restore_state``
    returns None. Blocks nest: the innermost one captures."""
    sink = Reports()
    token = _SINK.set(sink)
    try:
        yield sink
    finally:
        _SINK.reset(token)


def report_epoch(metrics: dict[str, Any], *, state: dict[str, Any] | None = None) -> None:
    """Report one epoch's metrics (namespaced, e.g. ``train/loss``) with an optional checkpoint.

    String values (``runtime/device``, ...) describe the trial and are tracked as run tags. The
    checkpoint state is saved with its tensors on the CPU.

    Raises ``FloatingPointError`` on a non-finite metric, so a diverged trial fails cleanly in
    Tune, Optuna and MLflow instead of reporting NaN. In capture mode the metrics go to the
    capture list, not to Tune.
    """
    bad = {k: v for k, v in metrics.items() if isinstance(v, float) and not math.isfinite(v)}
    if bad:
        raise FloatingPointError(f"non-finite metrics: {bad}")
    if state is not None:
        state = on_cpu(state)
    sink = _SINK.get()
    if sink is not None:
        sink.append(dict(metrics))
        if state is not None:
            sink.last_state = state
        return
    import ray
    from ray import tune

    # Which Ray node ran the epoch (several nodes may share one IP): tracked as a run tag.
    tagged: dict[str, Any] = {**metrics, "node_id": ray.get_runtime_context().get_node_id()}
    if state is None:
        tune.report(tagged)
        return
    with tempfile.TemporaryDirectory() as directory:
        torch.save(state, Path(directory) / STATE_FILE)
        tune.report(tagged, checkpoint=tune.Checkpoint.from_directory(directory))


def refusing_retries(
    train_fn: Callable[[dict[str, Any]], None],
) -> Callable[[dict[str, Any]], None]:
    """``train_fn`` for Tune, where an error that repeats however often the trial runs
    (:func:`trainables.objective.is_not_retried`) is reported as a last result carrying
    :data:`~trainables.objective.NOT_RETRIED_KEY` (the error's type and message) and ``done``
    before it is raised: Tune ends the trial on it (failed, to the platform) instead of
    retrying it. Any other error (a dead
    worker or node, an out-of-memory...) is left to Tune's retries."""
    import functools

    from trainables.objective import is_not_retried

    @functools.wraps(train_fn)
    def train(config: dict[str, Any]) -> None:
        try:
            train_fn(config)
        except Exception as error:
            if is_not_retried(error):
                _report_not_retried(error)
            raise

    return train


def _report_not_retried(error: Exception) -> None:
    # module level: Tune pickles the trainable, and the capture sink cannot be pickled
    from trainables.objective import NOT_RETRIED_KEY

    if _SINK.get() is None:
        from ray import tune

        # "done": Tune ends the trial on this result, before the error could be retried
        tune.report({NOT_RETRIED_KEY: f"{type(error).__name__}: {error}"[:5000], "done": True})


def on_cpu(value: Any) -> Any:
    """``value`` with every tensor in it (nested in dicts, lists, tuples) moved to the CPU: a
    checkpoint written on a GPU node restores on any node."""
    if isinstance(value, torch.Tensor):
        return value.detach().cpu()
    if isinstance(value, dict):
        return {k: on_cpu(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return type(value)(on_cpu(v) for v in value)
    return value


def restore_state() -> dict[str, Any] | None:
    """The state of the trial's last checkpoint, or None for a fresh trial (always None in
    capture mode)."""
    if _SINK.get() is not None:
        return None
    from ray import tune

    checkpoint = tune.get_checkpoint()
    if checkpoint is None:
        return None
    with checkpoint.as_directory() as directory:
        return load_state(Path(directory))


def load_state(directory: Path) -> dict[str, Any]:
    return torch.load(Path(directory) / STATE_FILE, map_location="cpu", weights_only=False)


class Stateful(Protocol):
    def state_dict(self) -> dict[str, Any]: ...

    def load_state_dict(self, state: dict[str, Any], /) -> Any: ...


def resume_training(*, model: Stateful, optimizer: torch.optim.Optimizer, **parts: Stateful) -> int:
    """Load the trial's last checkpoint (written by :func:`training_state`) into the model,
    the optimizer (:func:`restore_optimizer`) and the other ``parts`` (a memory bank, the
    mixed-precision scaler: keyword = the state's key); return the first epoch to run (1 for
    a fresh trial)."""
    state = restore_state()
    if state is None:
        return 1
    model.load_state_dict(state["model"])
    restore_optimizer(optimizer, state["optimizer"])
    for key, part in parts.items():
        part.load_state_dict(state.get(key, {}))
    return int(state["epoch"]) + 1


def training_state(
    epoch: int,
    *,
    config: Any,
    model: Stateful,
    optimizer: torch.optim.Optimizer,
    **parts: Stateful,
) -> dict[str, Any]:
    """The checkpoint of a training epoch, as :func:`resume_training` reads it; ``config`` is
    the trial's config dataclass, kept for whoever reads the checkpoint later."""
    import dataclasses

    return {
        "epoch": epoch,
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict(),
        **{key: part.state_dict() for key, part in parts.items()},
        "config": dataclasses.asdict(config),
    }


def report_training(
    metrics: dict[str, Any],
    epoch: int,
    *,
    config: Any,
    model: Stateful,
    optimizer: torch.optim.Optimizer,
    **parts: Stateful,
) -> None:
    """:func:`report_epoch` with the checkpoint of a training epoch (:func:`training_state`)."""
    state = training_state(epoch, config=config, model=model, optimizer=optimizer, **parts)
    report_epoch(metrics, state=state)


def restore_optimizer(optimizer: torch.optim.Optimizer, saved: dict[str, Any]) -> None:
    """Load a checkpoint's optimizer state (moments, step counts) but keep the hyperparameters
    the optimizer was built with from the current config (lr, weight decay, ...): population-
    based training restarts a trial from another's checkpoint with mutated hyperparameters,
    which a plain ``load_state_dict`` would silently overwrite with the old ones."""
    current = [{k: v for k, v in g.items() if k != "params"} for g in optimizer.param_groups]
    optimizer.load_state_dict(saved)
    for group, hyperparameters in zip(optimizer.param_groups, current, strict=True):
        group.update(hyperparameters)
