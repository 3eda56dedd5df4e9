"""Running an objective's ``train`` without Ray, for the objective tests and the contract suite:
``report_epoch`` / ``restore_state`` are replaced by a :class:`Recorder` that keeps the reports
and hands back a chosen checkpoint state."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
import torch

import trainables.reporting as reporting


class Recorder:
    """Stands in for the reporting seam: keeps every report and its state."""

    def __init__(self, restore: dict[str, Any] | None = None) -> None:
        self.metrics: list[dict[str, Any]] = []
        self.states: list[dict[str, Any]] = []
        self.restore = restore

    def install(self, monkeypatch: pytest.MonkeyPatch) -> Recorder:
        monkeypatch.setattr(reporting, "report_epoch", self.report)
        monkeypatch.setattr(reporting, "restore_state", lambda: self.restore)
        return self

    def report(self, metrics: dict[str, Any], *, state: dict[str, Any] | None = None) -> None:
        self.metrics.append(dict(metrics))
        # a deep copy on the CPU, as a checkpoint on disk would be
        self.states.append({k: _clone(v) for k, v in reporting.on_cpu(state or {}).items()})


def record(
    train: Any, config: dict[str, Any], *, restore: dict[str, Any] | None = None
) -> Recorder:
    """Run ``train(config)`` (from the checkpoint ``restore``, if given) and return its reports."""
    with pytest.MonkeyPatch.context() as mp:
        recorder = Recorder(restore).install(mp)
        train(config)
    return recorder


def _clone(value: Any) -> Any:
    if isinstance(value, torch.Tensor):
        return value.clone()
    if isinstance(value, dict):
        return {k: _clone(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_clone(v) for v in value]
    return value


@contextmanager
def one_thread() -> Iterator[None]:
    """One intra-op thread, as a Ray trial on one CPU gets (OMP_NUM_THREADS=1): on a busy
    2-core machine, two threads per process oversubscribe it and run several times slower."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)
