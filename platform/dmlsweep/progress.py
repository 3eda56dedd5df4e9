"""What the user sees while a sweep runs: one status line per change, a summary table at the end."""

from __future__ import annotations

import sys
import time
from collections.abc import Sequence
from typing import Any, TextIO

from optuna.trial import TrialState
from ray.tune import Callback
from ray.tune.experiment import Trial

from dmlsweep.optuna_search import final_state

_LABEL = {TrialState.COMPLETE: "done", TrialState.PRUNED: "pruned", TrialState.FAIL: "failed"}


class ConsoleProgress(Callback):
    """Prints ``[  12s] 7/20: 2 running, 4 done, 1 pruned, 0 failed | best val/x 0.81 (t_0003)``."""

    def __init__(
        self, *, metric: str, mode: str, max_epochs: int, num_samples: int, out: TextIO = sys.stdout
    ) -> None:
        self.metric, self.mode, self.max_epochs = metric, mode, max_epochs
        self.num_samples = num_samples
        self.out = out
        self.start = time.monotonic()
        self.running: set[str] = set()
        self.ended: dict[str, TrialState] = {}
        self.best: tuple[float, str] | None = None
        self._last_line = ""

    def __getstate__(self) -> dict[str, Any]:
        # Tune pickles its callbacks; a stream is not picklable and is rebound on load.
        return {**self.__dict__, "out": None}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self.out = sys.stdout

    def on_trial_start(
        self, iteration: int, trials: list[Trial], trial: Trial, **info: Any
    ) -> None:
        self.running.add(trial.trial_id)
        self._print()

    def on_trial_complete(
        self, iteration: int, trials: list[Trial], trial: Trial, **info: Any
    ) -> None:
        state = final_state(trial.last_result, error=False, max_epochs=self.max_epochs)
        self._end(trial, state)

    def on_trial_error(
        self, iteration: int, trials: list[Trial], trial: Trial, **info: Any
    ) -> None:
        self._end(trial, TrialState.FAIL)

    def _end(self, trial: Trial, state: TrialState) -> None:
        self.running.discard(trial.trial_id)
        self.ended[trial.trial_id] = state
        value = (trial.last_result or {}).get(self.metric)
        if state is TrialState.COMPLETE and isinstance(value, (int, float)):
            better = self.best is None or (
                value > self.best[0] if self.mode == "max" else value < self.best[0]
            )
            if better:
                self.best = (float(value), trial.trial_id)
        self._print()

    def _print(self) -> None:
        counts = {label: 0 for label in _LABEL.values()}
        for state in self.ended.values():
            counts[_LABEL[state]] += 1
        best = f" | best {self.metric} {self.best[0]:.4f} ({self.best[1]})" if self.best else ""
        line = (
            f"{len(self.ended)}/{self.num_samples}: {len(self.running)} running, "
            + ", ".join(f"{n} {label}" for label, n in counts.items())
            + best
        )
        if line != self._last_line:
            self._last_line = line
            print(f"[{time.monotonic() - self.start:5.0f}s] {line}", file=self.out, flush=True)


def summary_table(rows: Sequence[dict[str, Any]], *, columns: Sequence[str]) -> str:
    """A plain fixed-width table (no extra dependency)."""
    cells = [[_fmt(r.get(c)) for c in columns] for r in rows]
    widths = [max(len(c), *(len(row[i]) for row in cells)) for i, c in enumerate(columns)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(columns, widths, strict=True))]
    lines.append("  ".join("-" * w for w in widths))
    lines += ["  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)) for row in cells]
    return "\n".join(lines)


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return "" if value is None else str(value)
