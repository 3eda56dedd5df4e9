"""Comparing finished sweeps: the report's numbers come from the runs, errors are clear."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest
from mlflow.entities import Metric, Param, RunTag
from mlflow.tracking import MlflowClient

from dmlsweep.compare import best_so_far, load_sweep, main
from dmlsweep.databases import prepare_sqlite_tracking

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
TEST_METRICS = ("test/map_at_r", "test/recall_at_1")
MAX_EPOCHS = 4


@dataclass
class Logged:
    """What a synthetic sweep logged, kept to compute the expected report independently."""

    name: str
    objective: str
    metric: str
    mode: str
    run_id: str = ""
    states: list[str] = field(default_factory=list)
    finals: list[float | None] = field(default_factory=list)  # by start time
    histories: list[list[float]] = field(default_factory=list)  # sweep metric per epoch
    best: float | None = None
    best_config: dict[str, str] = field(default_factory=dict)
    repro: dict[str, tuple[float, float, float, float]] = field(default_factory=dict)
    repro_n: int = 0


def make_sweep(
    client: MlflowClient,
    rng: np.random.Generator,
    *,
    name: str,
    space: str,
    objective: str,
    metric: str = "val/map_at_r",
    mode: str = "max",
    states: list[str],
    reproduced: bool,
    finish: bool = True,
    artifacts: Path,
) -> Logged:
    """A sweep exactly as the platform's contract logs it: parent + one child per trial."""
    experiment = f"dmlsweep-{space}"
    found = client.get_experiment_by_name(experiment)
    experiment_id = (
        found.experiment_id
        if found
        else client.create_experiment(experiment, artifact_location=artifacts.as_uri())
    )
    logged = Logged(name=name, objective=objective, metric=metric, mode=mode)
    parent = client.create_run(
        experiment_id,
        run_name=name,
        tags={"dmlsweep.role": "sweep", "dmlsweep.objective": objective, "dmlsweep.space": space},
        start_time=1_000,
    )
    logged.run_id = parent_id = parent.info.run_id
    client.log_batch(
        parent_id,
        params=[
            Param("sweep/objective", objective),
            Param("sweep/metric", metric),
            Param("sweep/mode", mode),
            Param("sweep/num_samples", str(len(states))),
            Param("sweep/seed", "0"),
            Param("setting/batch_size", "32"),  # fixed settings: not in the best config
        ],
    )
    configs = []
    # Children are created in shuffled order; their start times give the trial order.
    order = rng.permutation(len(states))
    for position in order:
        state = states[position]
        config = {
            "lr": f"{10 ** rng.uniform(-4, -2):.6g}",
            "margin": f"{rng.uniform(0.05, 0.5):.4f}",
            "miner": str(rng.choice(["easy|hard", "semihard"])),  # "|" tests escaping
            "batch_size": "32",
            "seed": "0",
        }
        epochs = {"COMPLETE": MAX_EPOCHS, "PRUNED": int(rng.integers(1, MAX_EPOCHS)), "FAIL": 1}[
            state
        ]
        values = rng.uniform(0.1, 0.9, size=epochs)
        child = client.create_run(
            experiment_id,
            run_name=f"{name}-{position}",
            start_time=10_000 + 1_000 * int(position),
            tags={
                "mlflow.parentRunId": parent_id,
                "dmlsweep.role": "trial",
                "dmlsweep.state": state,
                "dmlsweep.objective": objective,
            },
        )
        client.log_batch(
            child.info.run_id,
            params=[Param(k, v) for k, v in config.items()],
            metrics=[Metric(metric, float(v), 1_000 + e, e + 1) for e, v in enumerate(values)]
            + [Metric("train/loss", 1.0, 0, 1)],
        )
        client.set_terminated(
            child.info.run_id, {"COMPLETE": "FINISHED", "PRUNED": "KILLED", "FAIL": "FAILED"}[state]
        )
        configs.append(
            (position, state, float(values[-1]), config, child.info.run_id, list(values))
        )
    configs.sort()
    logged.states = [c[1] for c in configs]
    logged.finals = [c[2] for c in configs]
    logged.histories = [c[5] for c in configs]
    complete = [c for c in configs if c[1] == "COMPLETE"]
    best = (max if mode == "max" else min)(complete, key=lambda c: c[2])
    logged.best = best[2]
    logged.best_config = {k: v for k, v in best[3].items() if k not in ("batch_size", "seed")}
    metrics = [
        Metric(f"best/{metric}", best[2], 0, 0),
        Metric("trials/terminated", float(len(complete)), 0, 0),
        Metric("trials/error", float(logged.states.count("FAIL")), 0, 0),
    ]
    if reproduced:
        logged.repro_n = int(rng.integers(3, 8))
        metrics.append(Metric("repro/n", float(logged.repro_n), 0, 0))
        for test_metric in TEST_METRICS:
            mean, std = rng.uniform(0.2, 0.8), rng.uniform(0.001, 0.05)
            half = rng.uniform(0.001, 0.05)
            logged.repro[test_metric] = (mean, std, mean - half, mean + half)
            for stat, value in zip(
                ("mean", "std", "ci95_low", "ci95_high"), logged.repro[test_metric], strict=True
            ):
                metrics.append(Metric(f"repro/{test_metric}/{stat}", float(value), 0, 0))
    client.log_batch(
        parent_id,
        metrics=metrics,
        params=[Param(f"best/{k}", v) for k, v in best[3].items()],  # incl. fixed settings
        tags=[RunTag("dmlsweep.best_run_id", best[4])],
    )
    if finish:
        client.set_terminated(parent_id, "FINISHED")
    return logged


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, Path, list[Logged]]:
    root = tmp_path_factory.mktemp("compare")
    uri = f"sqlite:///{root / 'mlflow.db'}"
    prepare_sqlite_tracking(uri)  # write-ahead logging: fewer fsyncs
    client = MlflowClient(uri)
    rng = np.random.default_rng(7)
    artifacts = root / "a"
    sweeps = [
        make_sweep(
            client,
            rng,
            name="ahsml-cub",
            space="ahsml",
            objective="ahsml",
            states=["COMPLETE"] * 5 + ["PRUNED"] * 3 + ["FAIL"],
            reproduced=True,
            artifacts=artifacts,
        ),
        make_sweep(
            client,
            rng,
            name="ms-cub",
            space="ms",
            objective="ms",
            states=["COMPLETE"] * 3 + ["PRUNED"] * 4,
            reproduced=False,
            artifacts=artifacts,
        ),
        make_sweep(
            client,
            rng,
            name="mathm-sketchy",
            space="mathm",
            objective="mathm",
            metric="val/loss",
            mode="min",
            states=["COMPLETE"] * 4 + ["FAIL"] * 2 + ["PRUNED"],
            reproduced=True,
            artifacts=artifacts,
        ),
    ]
    return uri, root, sweeps


def _cells(line: str) -> list[str]:
    """The cells of a Markdown table row, with escaped pipes restored."""
    parts = re.split(r"(?<!\\)\|", line.strip())[1:-1]
    return [p.strip().replace("\\|", "|") for p in parts]


def _expected_test_cell(logged: Logged, metric: str) -> str:
    if not logged.repro:
        return "—"
    mean, std, low, high = logged.repro[metric]
    return f"{mean:.4f} ± {std:.4f} [{low:.4f}, {high:.4f}] (n={logged.repro_n})"


def test_report_holds_each_sweeps_numbers_and_is_logged(
    store: tuple[str, Path, list[Logged]], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    uri, root, sweeps = store
    monkeypatch.chdir(tmp_path)  # nothing may land in the working directory
    out = tmp_path / "report"
    # The MATHM sweep is named by its parent run id, the others by name.
    refs = [sweeps[0].name, sweeps[1].name, sweeps[2].run_id]
    assert main([*refs, "--tracking-uri", uri, "--out", str(out)]) == 0

    text = (out / "report.md").read_text()
    table = [line for line in text.splitlines() if line.startswith("|")]
    header = _cells(table[0])
    rows = {cells[0]: dict(zip(header, cells, strict=True)) for cells in map(_cells, table[2:5])}
    assert list(rows) == [s.name for s in sweeps]
    for logged in sweeps:
        row = rows[logged.name]
        assert row["objective"] == logged.objective
        counts = [logged.states.count(s) for s in ("COMPLETE", "PRUNED", "FAIL")]
        assert row["trials (complete / pruned / failed)"] == " / ".join(map(str, counts))
        assert row["best validation metric"] == (
            f"{logged.best:.4f} ({logged.metric}, {logged.mode})"
        )
        # Fixed settings (setting/*, sweep/*) are not part of the best config.
        assert row["best config"] == ", ".join(
            f"{k}={v}" for k, v in sorted(logged.best_config.items())
        )
        for metric in TEST_METRICS:
            assert row[metric] == _expected_test_cell(logged, metric)
    assert rows["ms-cub"]["test/map_at_r"] == "—"

    # Per-parameter section: each sweep's best value of each hyperparameter.
    for parameter in ("lr", "margin", "miner"):
        section = text.split(f"### `{parameter}`", 1)[1].split("###", 1)[0]
        for logged in sweeps:
            line = next(x for x in section.splitlines() if x.startswith(f"| {logged.name} |"))
            assert _cells(line)[1] == logged.best_config[parameter]
    assert "### `batch_size`" not in text and "### `seed`" not in text

    pngs = sorted(out.glob("*.png"))
    assert {p.name for p in pngs} == {
        "test_metrics.png",
        "best_vs_trial.png",
        "learning_curves.png",
        "hyperparameters.png",
    }
    for png in pngs:
        assert png.read_bytes()[:8] == PNG_MAGIC
        assert f"]({png.name})" in text

    client = MlflowClient(uri)
    experiment = client.get_experiment_by_name("dmlsweep-comparisons")
    assert experiment is not None
    assert experiment.artifact_location.startswith((root / "mlartifacts").as_uri())
    (run,) = client.search_runs([experiment.experiment_id])
    assert run.info.run_name == "compare-ahsml-cub-vs-ms-cub-vs-mathm-sketchy"
    assert run.info.status == "FINISHED"
    assert run.data.tags["dmlsweep.role"] == "comparison"
    assert run.data.tags["dmlsweep.compared"] == ",".join(s.run_id for s in sweeps)
    artifacts = {a.path for a in client.list_artifacts(run.info.run_id)}
    assert artifacts == {"report.md", *(p.name for p in pngs)}
    assert not list(tmp_path.glob("mlruns")) and not (tmp_path / "dmlsweep-runs").exists()


def test_load_sweep_counts_orders_and_tracks_the_best(
    store: tuple[str, Path, list[Logged]],
) -> None:
    uri, _, sweeps = store
    client = MlflowClient(uri)
    for logged in sweeps:
        summary = load_sweep(client, logged.name)
        assert summary.run_id == logged.run_id
        assert [t.state for t in summary.trials] == logged.states  # by start time
        assert [t.value for t in summary.trials] == pytest.approx(logged.finals)
        for trial, history in zip(summary.trials, logged.histories, strict=True):
            assert [e for e, _ in trial.history] == list(range(1, len(history) + 1))
            assert [v for _, v in trial.history] == pytest.approx(history)
        assert summary.state_counts()["PRUNED"] == logged.states.count("PRUNED")
        assert summary.ray_counts["error"] == logged.states.count("FAIL")
        # Naive reference: best final value among complete trials up to each trial.
        curve = best_so_far(summary)
        pick = max if logged.mode == "max" else min
        for i, got in enumerate(curve):
            done = [
                v
                for s, v in zip(logged.states[: i + 1], logged.finals[: i + 1], strict=True)
                if s == "COMPLETE" and v is not None
            ]
            assert got == (pick(done) if done else None)
        assert curve[-1] == pytest.approx(logged.best)
        assert summary.best_value == pytest.approx(logged.best)
        assert dict(summary.best_config) == dict(sorted(logged.best_config.items()))


def test_default_tracking_uri_from_environment_and_no_logging(
    store: tuple[str, Path, list[Logged]], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    uri, _, sweeps = store
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    out = tmp_path / "r"
    assert main([sweeps[1].name, "--out", str(out), "--no-log-to-mlflow"]) == 0
    text = (out / "report.md").read_text()
    assert "| ms-cub |" in text
    assert not (out / "test_metrics.png").exists()  # the one sweep has no reproductions
    assert (out / "best_vs_trial.png").read_bytes()[:8] == PNG_MAGIC


def _comparison_runs(client: MlflowClient) -> int:
    experiment = client.get_experiment_by_name("dmlsweep-comparisons")
    return len(client.search_runs([experiment.experiment_id])) if experiment else 0


@pytest.mark.parametrize("case", ["unknown", "ambiguous", "unfinished", "trial", "twice"])
def test_errors_name_the_sweep_and_exit_2(
    case: str,
    store: tuple[str, Path, list[Logged]],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    uri, root, sweeps = store
    client = MlflowClient(uri)
    rng = np.random.default_rng(1)
    good = sweeps[1]
    common = dict(
        space="ahsml",
        objective="ahsml",
        states=["COMPLETE", "PRUNED"],
        reproduced=False,
        artifacts=root / "a",
    )
    if case == "unknown":
        refs, expected = [good.name, "nope"], [r"no sweep named 'nope'"]
    elif case == "ambiguous":
        first = make_sweep(client, rng, name="twin", **common)  # type: ignore[arg-type]
        second = make_sweep(client, rng, name="twin", **{**common, "space": "ms"})  # type: ignore[arg-type]
        refs = ["twin"]
        expected = ["'twin' is ambiguous", first.run_id, second.run_id]
    elif case == "unfinished":
        running = make_sweep(client, rng, name="busy", finish=False, **common)  # type: ignore[arg-type]
        refs, expected = [good.name, "busy"], ["'busy'", running.run_id, "RUNNING, not FINISHED"]
    elif case == "trial":
        child = load_sweep(client, good.name).trials[0]
        refs, expected = [child.run_id], [child.run_id, "not a sweep's parent run"]
    else:
        refs, expected = [good.name, good.run_id], ["same sweep is named twice"]
    before = _comparison_runs(client)
    out = tmp_path / "out"
    assert main([*refs, "--tracking-uri", uri, "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "\ndmlsweep: error: " in "\n" + err
    for piece in expected:
        assert piece in err
    assert not out.exists()
    assert _comparison_runs(client) == before


def test_missing_store_and_password_are_reported_masked(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    missing = f"sqlite:///{tmp_path / 'none.db'}"
    assert main(["s", "--tracking-uri", missing, "--out", str(tmp_path / "o")]) == 2
    assert "no MLflow store at" in capsys.readouterr().err
    assert not (tmp_path / "none.db").exists()  # not created by looking

    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "5")
    uri = "http://alice:s3cret-pw@127.0.0.1:9"  # discard port: refused at once
    assert main(["s", "--tracking-uri", uri, "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert "dmlsweep: error: cannot read the MLflow store http://alice:***@127.0.0.1:9" in err
    assert "s3cret-pw" not in err


def test_incomplete_reproduction_record_is_an_error(
    store: tuple[str, Path, list[Logged]], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    uri, root, sweeps = store
    client = MlflowClient(uri)
    partial = make_sweep(
        client,
        np.random.default_rng(3),
        name="partial",
        space="ms",
        objective="ms",
        states=["COMPLETE"],
        reproduced=False,
        artifacts=root / "a",
        finish=False,
    )
    client.log_metric(partial.run_id, "repro/test/map_at_r/mean", 0.5)
    client.set_terminated(partial.run_id, "FINISHED")
    assert (
        main(
            [
                sweeps[0].name,
                "partial",
                "--tracking-uri",
                uri,
                "--out",
                str(tmp_path / "o"),
                "--no-log-to-mlflow",
            ]
        )
        == 2
    )
    err = capsys.readouterr().err
    assert "'partial'" in err and "incomplete reproduction record" in err
    assert "repro/n" in err and "repro/test/map_at_r/std" in err
