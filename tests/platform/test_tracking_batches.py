"""The tracking thread logs a trial's events in batches: few MLflow calls per trial, nothing lost,
nothing reordered, metrics still reach MLflow without a flush, one refused entry does not take
the others with it, and what a dying driver had not logged is logged by the resumed one."""

from __future__ import annotations

import pickle
import threading
import time
from collections import Counter
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from mlflow.tracking import MlflowClient
from support import local_tracking

from dmlsweep import tracking
from dmlsweep.tracking import MlflowTracking


def _tracking(tmp_path: Path) -> MlflowTracking:
    return local_tracking(tmp_path, name="batches", max_epochs=3)


def _count_calls(sweep: MlflowTracking, monkeypatch: pytest.MonkeyPatch) -> Counter[str]:
    calls: Counter[str] = Counter()
    for name in ("create_run", "log_batch", "set_terminated", "set_tag", "log_metric"):
        method = getattr(sweep.client, name)

        def counted(*args: Any, _method: Any = method, _name: str = name, **kwargs: Any) -> Any:
            calls[_name] += 1
            return _method(*args, **kwargs)

        monkeypatch.setattr(sweep.client, name, counted)
    return calls


def _result(step: int, *, node: str = "n1") -> dict[str, Any]:
    return {"training_iteration": step, "val/score": -1.0 / step, "node_id": node}


@pytest.fixture
def long_gathering(monkeypatch: pytest.MonkeyPatch) -> None:
    """Nothing is logged before a flush (the tests decide when batches end)."""
    monkeypatch.setattr(tracking, "BATCH_SECONDS", 600.0)


def test_a_short_trial_takes_three_calls_and_every_value_arrives(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, long_gathering: None
) -> None:
    sweep = _tracking(tmp_path)
    calls = _count_calls(sweep, monkeypatch)
    trials = [
        SimpleNamespace(trial_id=f"t{i}", config={"x": i / 10, "kind": "a"}, last_result={})
        for i in range(3)
    ]
    for trial in trials:
        sweep.on_trial_start(0, [], trial)
    for step in (1, 2, 3):
        for trial in trials:
            trial.last_result = _result(step, node=f"node-{step}")
            sweep.on_trial_result(step, [], trial, trial.last_result)
    trials[2].last_result = _result(2)  # stopped early: PRUNED, KILLED in MLflow
    for trial in trials:
        sweep.on_trial_complete(3, [], trial)
    tic = time.monotonic()
    sweep.flush()
    assert time.monotonic() - tic < 60  # a flush does not wait out the gathering

    assert calls == {"create_run": 3, "log_batch": 3, "set_terminated": 3}
    client = MlflowClient(sweep.tracking_uri)
    for i, trial in enumerate(trials):
        run = client.get_run(sweep.run_of(trial.trial_id) or "")
        assert run.data.params == {"x": str(i / 10), "kind": "a"}
        history = client.get_metric_history(run.info.run_id, "val/score")
        assert sorted((m.step, m.value) for m in history) == [(s, -1.0 / s) for s in (1, 2, 3)]
        assert run.data.tags["ray.node_id"] == "node-3"  # the latest of three in one batch
        assert run.data.tags["dmlsweep.trial_id"] == trial.trial_id
    statuses = [client.get_run(sweep.run_of(t.trial_id) or "").info.status for t in trials]
    assert statuses == ["FINISHED", "FINISHED", "KILLED"]


def test_metrics_reach_mlflow_without_a_flush(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(tracking, "BATCH_SECONDS", 0.2)
    sweep = _tracking(tmp_path)
    trial = SimpleNamespace(trial_id="live", config={"x": 0.1}, last_result={})
    sweep.on_trial_start(0, [], trial)
    sweep.on_trial_result(1, [], trial, _result(1))
    client = MlflowClient(sweep.tracking_uri)
    deadline = time.monotonic() + 30
    history: list[Any] = []
    while not history and time.monotonic() < deadline:
        time.sleep(0.05)
        run_id = sweep.trial_runs.get("live")
        history = client.get_metric_history(run_id, "val/score") if run_id else []
    assert [(m.step, m.value) for m in history] == [(1, -1.0)]
    # the next epoch, logged while the run exists, arrives as well
    sweep.on_trial_result(2, [], trial, _result(2))
    run_id = sweep.trial_runs["live"]
    while len(history) < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
        history = client.get_metric_history(run_id, "val/score")
    assert sorted(m.step for m in history) == [1, 2]
    assert client.get_run(run_id).info.status == "RUNNING"  # not ended by a batch


def test_a_run_that_could_not_be_created_is_named_not_raised(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    sweep = _tracking(tmp_path)
    sweep.retry_seconds = 0.0

    def refuse(*args: Any, **kwargs: Any) -> Any:
        raise ConnectionError("tracking server gone")

    monkeypatch.setattr(sweep.client, "create_run", refuse)
    trial = SimpleNamespace(trial_id="lost", config={"x": 0.1}, last_result=_result(1))
    sweep.on_trial_start(0, [], trial)
    sweep.on_trial_result(1, [], trial, trial.last_result)
    sweep.flush()
    assert sweep.untracked and all("trial lost" in what for what in sweep.untracked)
    assert "its run" in sweep.untracked[0] and "epoch 1" in sweep.untracked[0]


def test_a_large_batch_is_split_within_mlflow_limits() -> None:
    from mlflow.entities import Metric, Param, RunTag
    from mlflow.utils.validation import (
        MAX_ENTITIES_PER_BATCH,
        MAX_METRICS_PER_BATCH,
        MAX_PARAMS_TAGS_PER_BATCH,
    )

    metrics = [Metric(f"m/{i % 7}", float(i), 0, i) for i in range(2345)]
    params = [Param(f"p{i}", str(i)) for i in range(150)]
    tags = [RunTag(f"t{i}", str(i)) for i in range(230)]
    parts = list(tracking._within_limits(metrics, params, tags))
    for m, p, t in parts:
        assert len(p) <= MAX_PARAMS_TAGS_PER_BATCH and len(t) <= MAX_PARAMS_TAGS_PER_BATCH
        assert (
            len(m) <= MAX_METRICS_PER_BATCH and len(m) + len(p) + len(t) <= MAX_ENTITIES_PER_BATCH
        )
        assert m or p or t
    assert [x for m, _, _ in parts for x in m] == metrics  # all of them, in order
    assert [x for _, p, _ in parts for x in p] == params
    assert [x for _, _, t in parts for x in t] == tags
    assert list(tracking._within_limits([], [], [])) == []


def test_a_failed_part_of_a_large_batch_is_retried_alone(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, long_gathering: None
) -> None:
    sweep = _tracking(tmp_path)
    log_batch = sweep.client.log_batch
    sizes: list[tuple[int, int, int]] = []

    def second_call_fails_once(run_id: str, **kwargs: Any) -> Any:
        sizes.append((len(kwargs["metrics"]), len(kwargs["params"]), len(kwargs["tags"])))
        if len(sizes) == 2:
            raise ConnectionError("server restarting")
        return log_batch(run_id, **kwargs)

    monkeypatch.setattr(sweep.client, "log_batch", second_call_fails_once)
    monkeypatch.setattr(time, "sleep", lambda seconds: None)  # the retry's backoff
    trial = SimpleNamespace(trial_id="big", config={"x": 0.1}, last_result={})
    sweep.on_trial_start(0, [], trial)
    many = {f"val/m{i}": float(i) for i in range(700)}  # 1400 metrics over two epochs
    sweep.on_trial_result(1, [], trial, {"training_iteration": 1, **many})
    sweep.on_trial_result(2, [], trial, {"training_iteration": 2, **many})
    sweep.flush()

    # 1400 metrics and a param: 999 + 1 in the first part, 401 in the second, which alone
    # is retried (had MLflow split the batch, the retry would send all 1401 again)
    assert sizes == [(999, 1, 0), (401, 0, 0), (401, 0, 0)]
    assert not sweep.untracked
    client = MlflowClient(sweep.tracking_uri)
    run_id = sweep.run_of("big") or ""
    for key in ("val/m0", "val/m350", "val/m699"):
        history = client.get_metric_history(run_id, key)
        assert sorted(m.step for m in history) == [1, 2], key


def test_an_entry_mlflow_refuses_is_named_and_the_rest_arrives(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, long_gathering: None
) -> None:
    sweep = _tracking(tmp_path)
    trial = SimpleNamespace(trial_id="odd", config={"x": 0.1}, last_result={})
    sweep.on_trial_start(0, [], trial)
    for step in (1, 2, 3):
        trial.last_result = {**_result(step), "val/acc@1": 0.5}  # "@": not in an MLflow name
        sweep.on_trial_result(step, [], trial, trial.last_result)
    sweep.on_trial_complete(3, [], trial)
    tic = time.monotonic()
    sweep.flush()
    assert time.monotonic() - tic < 60  # refused: not retried for retry_seconds

    client = MlflowClient(sweep.tracking_uri)
    run = client.get_run(sweep.run_of("odd") or "")
    assert run.info.status == "FINISHED" and run.data.params == {"x": "0.1"}
    assert run.data.tags["dmlsweep.state"] == "COMPLETE"
    assert sorted(m.step for m in client.get_metric_history(run.info.run_id, "val/score")) == [
        1,
        2,
        3,
    ]
    assert len(sweep.untracked) == 1  # named once, from its first value
    assert sweep.untracked[0].startswith("val/acc@1, every value from step 1")

    # the name is not sent again: a later epoch is one call, accepted
    calls = _count_calls(sweep, monkeypatch)
    sweep.on_trial_result(4, [], trial, {**_result(4), "val/acc@1": 0.5})
    sweep.flush()
    assert calls == {"log_batch": 1} and len(sweep.untracked) == 1
    assert len(client.get_metric_history(run.info.run_id, "val/score")) == 4


def _gather_without_logging(sweep: MlflowTracking) -> dict[str, Any]:
    """Tune's snapshot of what ``sweep`` gathered, then the driver dies: nothing logged."""
    state = sweep.get_state()
    with sweep._lock:
        sweep._batch.clear()
    sweep.flush()  # the drain finds nothing: as if the process had gone
    return pickle.loads(pickle.dumps(state))  # as Tune saves and loads it


def test_a_resumed_sweep_logs_what_the_dead_driver_had_not(
    tmp_path: Path, long_gathering: None
) -> None:
    sweep = _tracking(tmp_path)
    tuner_pkl = pickle.dumps(sweep)  # as Tune pickles it: before any trial
    made = SimpleNamespace(trial_id="made", config={"x": 0.1}, last_result={})
    unmade = SimpleNamespace(trial_id="unmade", config={"x": 0.2}, last_result={})
    going = SimpleNamespace(trial_id="going", config={"x": 0.3}, last_result={})
    sweep.on_trial_start(0, [], made)
    sweep.on_trial_start(0, [], going)
    sweep.on_trial_result(1, [], made, _result(1))
    sweep.flush()  # "made" and "going" have runs, "made" its epoch 1; "unmade" has nothing
    sweep.on_trial_start(0, [], unmade)
    for trial, epochs in ((made, (2, 3)), (unmade, (1, 2, 3))):
        for step in epochs:
            trial.last_result = _result(step)
            sweep.on_trial_result(step, [], trial, trial.last_result)
        sweep.on_trial_complete(3, [], trial)
    sweep.on_trial_result(1, [], going, _result(1))
    state = _gather_without_logging(sweep)
    assert sorted(trial_id for trial_id, _ in state["unlogged"]) == ["going", "made", "unmade"]

    resumed: MlflowTracking = pickle.loads(tuner_pkl)
    resumed.set_state(state)
    resumed.setup()  # adopts the runs that exist
    resumed.on_trial_result(2, [], going, _result(2))  # the resumed trial goes on
    resumed.flush()
    client = MlflowClient(sweep.tracking_uri)
    children = {
        r.data.tags["dmlsweep.trial_id"]: r
        for r in client.search_runs(
            [sweep.experiment_id], filter_string="tags.`dmlsweep.role` = 'trial'"
        )
    }
    assert sorted(children) == ["going", "made", "unmade"]  # one run each
    for trial_id, status, steps in (
        ("made", "FINISHED", [1, 2, 3]),
        ("unmade", "FINISHED", [1, 2, 3]),
        ("going", "RUNNING", [1, 2]),  # restored epoch first, then the new one
    ):
        run = children[trial_id]
        assert run.info.status == status, trial_id
        history = client.get_metric_history(run.info.run_id, "val/score")
        assert [m.step for m in history] == steps, trial_id
        assert run.data.params["x"] == str({"made": 0.1, "unmade": 0.2, "going": 0.3}[trial_id])
    assert not resumed.untracked


def test_the_snapshot_holds_a_batch_while_it_is_being_logged(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, long_gathering: None
) -> None:
    sweep = _tracking(tmp_path)
    create_run = sweep.client.create_run
    inside, release = threading.Event(), threading.Event()

    def slow_create(*args: Any, **kwargs: Any) -> Any:
        inside.set()
        assert release.wait(30)
        return create_run(*args, **kwargs)

    monkeypatch.setattr(sweep.client, "create_run", slow_create)
    trial = SimpleNamespace(trial_id="slow", config={"x": 0.1}, last_result=_result(1))
    sweep.on_trial_start(0, [], trial)
    sweep.on_trial_result(1, [], trial, trial.last_result)
    sweep._log_now.set()  # the thread takes the batch now and hangs in create_run
    assert inside.wait(30)
    sweep.on_trial_result(2, [], trial, _result(2))  # gathered meanwhile
    unlogged = sweep.get_state()["unlogged"]
    assert [trial_id for trial_id, _ in unlogged] == ["slow", "slow"]
    assert [m.step for _, batch in unlogged for m in batch.metrics if m.key == "val/score"] == [
        1,
        2,
    ]
    release.set()
    sweep.flush()
    assert sweep.get_state() == {"unlogged": []}


def test_replaying_a_batch_that_was_logged_duplicates_nothing(
    tmp_path: Path, long_gathering: None
) -> None:
    """A snapshot taken while a batch was on its way, then logged before the driver died."""
    sweep = _tracking(tmp_path)
    tuner_pkl = pickle.dumps(sweep)
    trial = SimpleNamespace(trial_id="twice", config={"x": 0.1}, last_result={})
    sweep.on_trial_start(0, [], trial)
    for step in (1, 2):
        sweep.on_trial_result(step, [], trial, _result(step))
    state = pickle.loads(pickle.dumps(sweep.get_state()))
    sweep.flush()  # it got through after all

    resumed: MlflowTracking = pickle.loads(tuner_pkl)
    resumed.set_state(state)
    resumed.setup()
    resumed.flush()
    client = MlflowClient(sweep.tracking_uri)
    runs = client.search_runs([sweep.experiment_id], filter_string="tags.`dmlsweep.role` = 'trial'")
    assert len(runs) == 1
    history = client.get_metric_history(runs[0].info.run_id, "val/score")
    assert [m.step for m in history] == [1, 2]  # the same points again are the same rows
    assert not resumed.untracked
