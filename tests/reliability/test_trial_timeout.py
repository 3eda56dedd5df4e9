"""``--trial-timeout``: a hung trial is stopped at its limit and recorded as timed out in Tune,
Optuna and MLflow, never retried, and the sweep goes on; the watchdog ends a worker stuck
where Python cannot interrupt it."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from faults.records import assert_consistent, read_records
from support import REPO_ROOT, run_cli

from trainables.timeout import TrialTimeoutError, with_timeout

NAME = "hung"
MAX_EPOCHS = 3
TIMEOUT = 4.0
SPACE = """\
objective: quadratic
metric: val/score
mode: max
settings:
  seconds_per_epoch: 0.2
parameters:
  x: {type: float, low: -1.0, high: 1.0, default: 0.0}
  hang_at_epoch: {type: categorical, choices: [0, 2], default: 2}
"""


@pytest.mark.ray
def test_a_hung_trial_is_stopped_at_its_limit_and_the_sweep_goes_on(
    ray_address: str, tmp_path: Path
) -> None:
    space = tmp_path / "hangs.yaml"
    space.write_text(SPACE)
    runs_dir = tmp_path / "runs"
    started = time.monotonic()
    proc = run_cli(
        "--space", str(space), "--name", NAME, "--num-samples", "4", "--max-epochs",
        str(MAX_EPOCHS), "--scheduler", "fifo", "--searcher", "random", "--log-models", "0",
        "--trial-timeout", f"{TIMEOUT:g}", "--runs-dir", str(runs_dir), "--address", ray_address,
        cwd=tmp_path, timeout=300,
    )  # fmt: skip
    elapsed = time.monotonic() - started
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    records = read_records(runs_dir=runs_dir, name=NAME)
    states = assert_consistent(records, num_samples=4, max_epochs=MAX_EPOCHS)
    hung = {tid for tid, t in records.tune.items() if t.results[0]["config"]["hang_at_epoch"]}
    assert hung, "the first trial (the space's defaults) hangs"
    for tid, trial in records.tune.items():
        if tid not in hung:
            assert states[tid] == "COMPLETE", (tid, states)
            continue
        # Tune: ended on the timeout's report after its one epoch, never retried.
        assert states[tid] == "FAIL" and trial.num_failures == 0, (tid, states, trial)
        assert trial.epochs == [1], trial.epochs
        assert "TrialTimeoutError" in (trial.not_retried or ""), trial.results[-1]
        assert f"--trial-timeout {TIMEOUT:g} s" in (trial.not_retried or "")
        run = records.run_of(tid)
        assert "TrialTimeoutError" in run.data.tags["dmlsweep.error"], run.data.tags
        optuna_trial = records.optuna_trial(trial)
        assert "TrialTimeoutError" in optuna_trial.user_attrs["dmlsweep.error"]
        # stopped at its limit, give or take a second of the watchdog's and Tune's reaction
        seconds = trial.results[-1]["time_total_s"]
        assert TIMEOUT - 0.5 <= seconds <= TIMEOUT + 5, seconds
    assert elapsed < 240, elapsed  # the hung trials held nothing up for ever
    # the sweep's table says why
    assert "TrialTimeoutError" in proc.stdout, proc.stdout[-3000:]


def test_the_limit_is_in_the_plan_and_checked(tmp_path: Path) -> None:
    dry = run_cli("--space", "quadratic", "--trial-timeout", "90", "--dry-run", cwd=tmp_path)
    assert dry.returncode == 0, dry.stderr
    assert "trial timeout: 90 s" in dry.stdout, dry.stdout
    for bad in ("0", "-5", "inf", "nan"):
        refused = run_cli("--space", "quadratic", "--trial-timeout", bad, "--dry-run", cwd=tmp_path)
        assert refused.returncode == 2, (bad, refused.stdout, refused.stderr)
        assert "--trial-timeout must be a number of seconds > 0" in refused.stderr, refused.stderr
        assert "Traceback" not in refused.stderr


def test_a_trial_that_ends_in_time_is_untouched() -> None:
    calls: list[int] = []
    with_timeout(lambda config: calls.append(config["n"]), 5.0)({"n": 3})
    time.sleep(0.1)
    assert calls == [3]


def test_a_python_level_hang_is_interrupted_even_through_except_exception() -> None:
    def stubborn(config: dict[str, float]) -> None:
        while True:
            try:
                time.sleep(0.02)
            except Exception:  # an objective's broad handler must not swallow the limit
                pass

    started = time.monotonic()
    with pytest.raises(TrialTimeoutError, match="--trial-timeout 0.3 s"):
        with_timeout(stubborn, 0.3)({})
    assert time.monotonic() - started < 2.5


def test_a_worker_stuck_outside_python_is_ended() -> None:
    """A thread in one long native call never sees the exception: the process is ended, with
    a message, ``KILL_AFTER`` seconds past the deadline."""
    script = textwrap.dedent(
        """
        import time
        from trainables import timeout
        timeout.KILL_AFTER = 1.0
        timeout.with_timeout(lambda config: time.sleep(60), 0.3)({})
        """
    )
    started = time.monotonic()
    proc = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=REPO_ROOT,
        env={**os.environ, "PYTHONPATH": str(REPO_ROOT)},
    )
    assert proc.returncode == 124, (proc.returncode, proc.stderr)
    assert "did not stop within 1 s (stuck outside Python): ending its worker" in proc.stderr
    assert time.monotonic() - started < 30
