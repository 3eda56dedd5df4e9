"""Bad input through the command line: every refusal names the problem, exits non-zero, and
leaves what an earlier sweep wrote to the same ``--runs-dir`` exactly as it was.

One small real sweep (``base``) runs first; each bad call then uses its runs directory. Before
and after each call the MLflow runs (status, params, tags, every metric's history), the Optuna
studies and trials, and the bytes of every other file under the directory are read; SQLite
files are compared by content, never by hash (write-ahead logging rewrites them). The parser's
own checks of each space-file error are in test_spaces.py; here a representative set goes
through the CLI.
"""

from __future__ import annotations

import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from runs_snapshots import Snapshot, snapshot
from support import DELETE, REPO_ROOT, edited, run_cli

pytestmark = pytest.mark.ray

BASE_NAME = "base"
SQLITE_SUFFIXES = (".db", ".db-wal", ".db-shm", ".db-journal")
# Where a bug lets a bad call start a sweep anyway, it costs seconds, not minutes.
CHEAP = ("--num-samples", "1", "--max-retries", "0", "--log-models", "0")
DRY = {False: (), True: ("--dry-run",)}
DB_PASSWORD = "secretpw-4f9c"  # must never be printed

QUADRATIC: dict[str, Any] = {
    "objective": "quadratic",
    "metric": "val/score",
    "mode": "max",
    "settings": {"max_epochs": 2},
    "parameters": {
        "x": {"type": "float", "low": -1.0, "high": 1.0, "default": 0.0},
        "y": {"type": "float", "low": -1.0, "high": 1.0, "default": 0.0},
        "k": {"type": "categorical", "choices": ["a", "b"], "default": "a"},
    },
}


def _changed(**changes: Any) -> dict[str, Any]:
    """The valid quadratic space with ``a__b=value`` changes (see ``support.edited``)."""
    return edited(QUADRATIC, **changes)


# name -> space file text (a string is written as is), and words the message must contain
BAD_SPACES: dict[str, tuple[Any, list[str]]] = {
    "yaml-syntax": ("objective: [unclosed\nmetric: m\n", ["not valid YAML"]),
    "not-a-mapping": ("- objective\n- quadratic\n", ["<top level>", "mapping"]),
    "missing-key": (_changed(metric=DELETE), ["metric", "missing"]),
    "unknown-key": (_changed(colour="red"), ["colour", "unknown key"]),
    "bad-type": (_changed(parameters__x__type="real"), ["parameters.x.type", "'real'"]),
    "low-above-high": (
        _changed(parameters__x__low=1.0, parameters__x__high=-1.0),
        ["parameters.x", "low (1.0) must be < high (-1.0)"],
    ),
    "log-low-not-positive": (
        _changed(parameters__x__low=0.0, parameters__x__log=True, parameters__x__default=0.5),
        ["parameters.x.low", "log scale needs low > 0"],
    ),
    "empty-choices": (_changed(parameters__k__choices=[]), ["parameters.k.choices", "non-empty"]),
    "default-out-of-range": (
        _changed(parameters__x__default=5.0),
        ["parameters.x.default", "outside"],
    ),
    "when-unknown-param": (
        _changed(parameters__y__when={"z": 1}),
        ["parameters.y.when.z", "unknown parameter 'z'"],
    ),
    "when-later-param": (
        _changed(parameters__x__when={"k": "a"}),
        ["parameters.x.when.k", "declared above"],
    ),
    "unknown-objective": (_changed(objective="ghost"), ["unknown objective 'ghost'", "quadratic"]),
}


@dataclass(frozen=True)
class BaseSweep:
    runs_dir: Path
    workdir: Path
    ray_address: str
    snapshot: Snapshot


@pytest.fixture(scope="module")
def base_sweep(ray_address: str, tmp_path_factory: pytest.TempPathFactory) -> BaseSweep:
    """A finished 3-trial quadratic sweep named ``base`` and the snapshot of its runs dir."""
    workdir = tmp_path_factory.mktemp("bad-input")
    runs_dir = workdir / "runs"
    proc = run_cli(
        "--space", "quadratic", "--num-samples", "3", "--runs-dir", str(runs_dir),
        "--max-epochs", "2", "--address", ray_address, "--name", BASE_NAME, cwd=workdir,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-5000:]
    for name, (doc, _) in BAD_SPACES.items():
        text = doc if isinstance(doc, str) else yaml.safe_dump(doc, sort_keys=False)
        (workdir / f"{name}.yaml").write_text(text)
    wrong = workdir / "not-cub"  # a directory, but not CUB-200-2011's layout
    (wrong / "images" / "001.Albatross").mkdir(parents=True)
    (wrong / "README.txt").write_text("some other dataset\n")
    state = snapshot(runs_dir)
    parents = [r for r in state.runs.values() if r[4].get("dmlsweep.role") == "sweep"]
    assert [p[0] for p in parents] == [BASE_NAME] and len(state.runs) == 4  # parent + 3 trials
    assert [len(t) for t in state.trials.values()] == [3]
    assert any(path.startswith(f"ray/{BASE_NAME}/") for path in state.files)
    return BaseSweep(runs_dir=runs_dir, workdir=workdir, ray_address=ray_address, snapshot=state)


def assert_intact(now: Snapshot, base: Snapshot) -> None:
    """Every run, trial and file of ``base`` is still there, unchanged."""
    __tracebackhide__ = True
    assert {k: now.runs.get(k) for k in base.runs} == base.runs, "the base sweep's MLflow runs"
    assert {k: now.trials.get(k) for k in base.trials} == base.trials, "the base study's trials"
    assert {k: now.files.get(k) for k in base.files} == base.files, "the base sweep's files"


def _text(exc: subprocess.TimeoutExpired) -> str:
    parts = (exc.stdout, exc.stderr)
    return "".join(p.decode(errors="replace") if isinstance(p, bytes) else p or "" for p in parts)


def refused(
    base: BaseSweep,
    *args: str,
    words: list[str],
    timeout: float = 120,
    address: bool = True,
) -> str:
    """Run the CLI on ``base``'s runs dir; assert a clear refusal naming ``words`` and that
    nothing in the directory changed. Returns stdout + stderr."""
    __tracebackhide__ = True
    before = snapshot(base.runs_dir)
    extra = ["--address", base.ray_address] if address else []
    started = time.monotonic()
    try:
        proc = run_cli(
            *args, "--runs-dir", str(base.runs_dir), *extra, cwd=base.workdir, timeout=timeout
        )
    except subprocess.TimeoutExpired as exc:
        pytest.fail(f"no answer within {timeout:g} s (killed); output:\n{_text(exc)[-3000:]}")
    seconds = time.monotonic() - started
    output = proc.stdout + proc.stderr
    after = snapshot(base.runs_dir)
    assert_intact(after, base.snapshot)
    assert after.runs.keys() == before.runs.keys(), (
        f"new MLflow runs after a refused call: {sorted(after.runs.keys() - before.runs.keys())}"
        f"\n{proc.stdout[-1500:]}"
    )
    assert after.trials.keys() == before.trials.keys(), "a new Optuna study"
    assert after == before, "the runs directory changed"
    assert proc.returncode == 2, f"exit {proc.returncode} after {seconds:.0f} s\n{output[-3000:]}"
    assert "dmlsweep: error: " in proc.stderr
    assert "Traceback" not in output, output[-3000:]
    message = proc.stderr[proc.stderr.index("dmlsweep: error: ") :]
    for word in words:
        assert word in message, f"{word!r} missing from: {message}"
    return output


@pytest.mark.parametrize("name", list(BAD_SPACES))
def test_malformed_space_file(base_sweep: BaseSweep, name: str) -> None:
    path = base_sweep.workdir / f"{name}.yaml"
    refused(base_sweep, "--space", str(path), words=[str(path), *BAD_SPACES[name][1]])


def test_unknown_space(base_sweep: BaseSweep) -> None:
    refused(base_sweep, "--space", "nope", words=["unknown space 'nope'", "quadratic"])


def test_missing_dataset_directory(base_sweep: BaseSweep) -> None:
    refused(
        base_sweep, "--space", "ahsml_cub", "--set", "data_root=/nope/cub",
        words=["ahsml_cub.yaml", "/nope/cub is not a directory", "Expected layout", "images.txt"],
    )  # fmt: skip


def test_dataset_directory_in_the_wrong_layout(base_sweep: BaseSweep) -> None:
    wrong = base_sweep.workdir / "not-cub"
    refused(
        base_sweep, "--space", "ahsml_cub", "--set", f"data_root={wrong}",
        words=[str(wrong), "lacks images.txt", "Expected layout"],
    )  # fmt: skip


@pytest.mark.parametrize("dry", [False, True], ids=["run", "dry-run"])
def test_more_gpus_per_trial_than_the_cluster_has(base_sweep: BaseSweep, dry: bool) -> None:
    refused(
        base_sweep, "--space", "quadratic", "--gpus-per-trial", "1", *DRY[dry],
        words=["--gpus-per-trial 1", "the Ray cluster", "has (0)", "leave --gpus-per-trial out"],
    )  # fmt: skip


@pytest.mark.parametrize("dry", [False, True], ids=["run", "dry-run"])
def test_more_gpus_per_trial_than_this_machine_has(base_sweep: BaseSweep, dry: bool) -> None:
    """Without --address the trials run on a local Ray: this machine's GPUs are known."""
    refused(
        base_sweep, "--space", "quadratic", "--gpus-per-trial", "1", *DRY[dry],
        words=["--gpus-per-trial 1", "this machine", "has (0)"], address=False,
    )  # fmt: skip


def test_more_cpus_per_trial_than_the_cluster_has(base_sweep: BaseSweep) -> None:
    refused(
        base_sweep, "--space", "quadratic", "--cpus-per-trial", "3",
        words=["--cpus-per-trial 3", "the Ray cluster", "has (2)"],
    )  # fmt: skip


def test_unreachable_ray_address_fails_within_a_minute(base_sweep: BaseSweep) -> None:
    refused(
        base_sweep, "--space", "quadratic", "--address", "127.0.0.1:1",
        words=["cannot connect to Ray", "127.0.0.1:1"], timeout=60, address=False,
    )  # fmt: skip


def test_unreachable_tracking_server(base_sweep: BaseSweep) -> None:
    refused(
        base_sweep, "--space", "quadratic", "--tracking-uri", "http://127.0.0.1:1",
        words=["cannot reach the MLflow tracking server http://127.0.0.1:1"],
    )  # fmt: skip


def test_unreachable_database_never_shows_its_password(base_sweep: BaseSweep) -> None:
    url = f"postgresql+psycopg2://u:{DB_PASSWORD}@127.0.0.1:1/db"
    output = refused(
        base_sweep, "--space", "quadratic", "--storage", url,
        words=["cannot open the Optuna storage", "postgresql+psycopg2://u:***@127.0.0.1:1/db"],
    )  # fmt: skip
    assert DB_PASSWORD not in output


def test_resume_of_a_sweep_that_does_not_exist(base_sweep: BaseSweep) -> None:
    refused(base_sweep, "--resume", "ghost", words=["no sweep named 'ghost' to resume"])


def test_new_sweep_with_the_name_of_an_existing_one(base_sweep: BaseSweep) -> None:
    refused(
        base_sweep, "--space", "quadratic", "--name", BASE_NAME,
        words=[f"a sweep named '{BASE_NAME}' already exists", f"--resume {BASE_NAME}"],
    )  # fmt: skip


@pytest.mark.parametrize("dry", [False, True], ids=["run", "dry-run"])
@pytest.mark.parametrize("count", ["0", "-3"])
def test_too_few_samples(base_sweep: BaseSweep, count: str, dry: bool) -> None:
    refused(
        base_sweep, "--space", "quadratic", "--num-samples", count, *DRY[dry],
        words=[f"--num-samples must be an integer >= 1, got {count}"],
    )  # fmt: skip


# --- what the plan checks of the objective, for a real run and a dry run alike (each would
# otherwise be found by every trial failing)
@pytest.mark.parametrize("dry", [False, True], ids=["run", "dry-run"])
def test_a_metric_the_objective_does_not_report(base_sweep: BaseSweep, dry: bool) -> None:
    path = base_sweep.workdir / "metric-typo.yaml"
    path.write_text(yaml.safe_dump(_changed(metric="val/scor"), sort_keys=False))
    refused(
        base_sweep, "--space", str(path), *CHEAP, *DRY[dry],
        words=[str(path), "metric 'val/scor' is not reported", "it reports: val/score"],
    )  # fmt: skip


@pytest.mark.parametrize("dry", [False, True], ids=["run", "dry-run"])
def test_a_mode_against_the_metric(base_sweep: BaseSweep, dry: bool) -> None:
    path = base_sweep.workdir / "mode-flip.yaml"
    path.write_text(yaml.safe_dump(_changed(mode="min"), sort_keys=False))
    refused(
        base_sweep, "--space", str(path), *CHEAP, *DRY[dry],
        words=["mode 'min' for val/score", "use mode max"],
    )  # fmt: skip


@pytest.mark.parametrize("dry", [False, True], ids=["run", "dry-run"])
def test_a_value_out_of_range(base_sweep: BaseSweep, dry: bool) -> None:
    refused(
        base_sweep, "--space", "baseline", "--set", "noise_rate=1.5", *CHEAP, *DRY[dry],
        words=["noise_rate", "1.5", "not in [0, 1)"],
    )  # fmt: skip


@pytest.mark.parametrize("dry", [False, True], ids=["run", "dry-run"])
def test_a_searched_range_the_objective_refuses(base_sweep: BaseSweep, dry: bool) -> None:
    """A parameter whose range reaches values the objective refuses would fail the trials
    that sample them: its extremes are checked."""
    path = base_sweep.workdir / "bad-range.yaml"
    space = edited(
        yaml.safe_load((REPO_ROOT / "sweeps" / "spaces" / "baseline.yaml").read_text()),
        parameters__noise_rate={"type": "float", "low": 0.0, "high": 1.5, "default": 0.1},
        settings__noise="symmetric",
        settings__noise_rate=DELETE,
    )
    path.write_text(yaml.safe_dump(space, sort_keys=False))
    refused(
        base_sweep, "--space", str(path), *CHEAP, *DRY[dry],
        words=["parameters.noise_rate = 1.5", "not in [0, 1)"],
    )  # fmt: skip


@pytest.mark.parametrize("dry", [False, True], ids=["run", "dry-run"])
@pytest.mark.parametrize("root", ["unset", "empty"])
def test_an_sbir_benchmark_without_its_data(base_sweep: BaseSweep, root: str, dry: bool) -> None:
    empty = base_sweep.workdir / "empty-sketchy"
    empty.mkdir(exist_ok=True)
    data = ["--set", f"data_root={empty}"] if root == "empty" else []
    words = (
        [str(empty), "Expected layout", "zeroshot1"]
        if root == "empty"
        else ["data_root is empty", "DMLSWEEP_SKETCHY_ROOT", "Expected layout"]
    )
    refused(base_sweep, "--space", "dsn_sketchy", *data, *CHEAP, *DRY[dry], words=words)


@pytest.mark.parametrize("dry", [False, True], ids=["run", "dry-run"])
def test_a_setting_from_an_unset_environment_variable(base_sweep: BaseSweep, dry: bool) -> None:
    refused(
        base_sweep, "--space", "ahsml_cub", *CHEAP, *DRY[dry],
        words=["settings.data_root", "DMLSWEEP_CUB_ROOT", "not set", "--set data_root="],
    )  # fmt: skip


def test_the_dry_run_prints_the_plan_with_the_environment_expanded(
    base_sweep: BaseSweep, tmp_path: Path
) -> None:
    """What every trial will get: ``${DMLSWEEP_CUB_ROOT}`` as its value, read once."""
    from trainables.dml.data.layout_trees import write_cub

    root = write_cub(tmp_path / "CUB_200_2011", per_class=1, size=8)
    proc = run_cli(
        "--space", "ahsml_cub", "--set", 'weights=""', "--dry-run",
        "--runs-dir", str(base_sweep.runs_dir),
        cwd=base_sweep.workdir, env={"DMLSWEEP_CUB_ROOT": str(root)},
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert f"setting   data_root = {str(root)!r}" in proc.stdout
    assert "${" not in proc.stdout
    assert "sweep ahsml_cub-" in proc.stdout and "trials of ahsml" in proc.stdout


def test_missing_imagenet_weights_are_named_before_anything_starts(
    base_sweep: BaseSweep, tmp_path: Path
) -> None:
    from trainables.dml.data.layout_trees import write_cub

    root = write_cub(tmp_path / "CUB_200_2011", per_class=1, size=8)
    refused(
        base_sweep, "--space", "ahsml_cub", "--set", f"data_root={root}", "--dry-run",
        words=["weights", "ImageNet weights for resnet50 not found", "Nothing is downloaded"],
    )  # fmt: skip


@pytest.mark.parametrize("item", ["noise", "=0.5", "noise=[1"])
def test_malformed_set(base_sweep: BaseSweep, item: str) -> None:
    refused(base_sweep, "--space", "quadratic", "--set", item, words=["--set", item])


def test_set_of_an_unknown_setting(base_sweep: BaseSweep) -> None:
    """A typo in ``--set`` is refused before the sweep starts, not by every trial failing."""
    refused(base_sweep, "--space", "quadratic", "--set", "noize=0.1", *CHEAP, words=["noize"])


def test_set_of_a_searched_parameter(base_sweep: BaseSweep) -> None:
    """``--set x=...`` with ``x`` searched would train every trial with x fixed while Optuna
    records the sampled x: refused, as the space parser refuses a key both searched and fixed."""
    refused(base_sweep, "--space", "quadratic", "--set", "x=0.5", *CHEAP, words=["x", "searched"])


def test_zero_epochs(base_sweep: BaseSweep) -> None:
    refused(
        base_sweep, "--space", "quadratic", "--max-epochs", "0", *CHEAP,
        words=["--max-epochs", "0"],
    )  # fmt: skip
