"""Sweep names: one safe path component and a safe MLflow/Optuna name, or refused with the
rule before anything starts; every MLflow filter the platform builds quotes its values."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from mlflow.tracking import MlflowClient

from dmlsweep.cli import main
from dmlsweep.errors import DmlsweepError
from dmlsweep.names import MAX_NAME_LENGTH, NAME_RULE, check_sweep_name, filter_value

SAFE = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._-"
names = st.one_of(
    st.text(max_size=MAX_NAME_LENGTH + 20),  # anything
    st.text(alphabet=SAFE + "/\\'\"` \n\x00é", max_size=MAX_NAME_LENGTH + 20),  # near misses
    st.sampled_from(["..", ".", "../escape", "/abs/path", "a/../../b", "~root", "-rf", "a" * 101]),
)


@settings(max_examples=400)
@given(name=names)
def test_a_name_is_accepted_only_as_one_safe_path_component(name: str) -> None:
    base = Path("/runs/ray")
    try:
        accepted = check_sweep_name(name)
    except DmlsweepError as exc:
        assert NAME_RULE in str(exc)
        return
    assert accepted == name and 1 <= len(name) <= MAX_NAME_LENGTH
    for sweep in (name, f"{name}.2"):  # an extension's experiment too
        assert (base / sweep).resolve().parent == base
    assert not set(name) & set("/\\'\"` \t\n\x00")
    assert name[0].isalnum() and name.isascii()


@pytest.mark.parametrize(
    "name",
    ["../escape", "/some/abs/path", "it's", "x" * 300, "a/b", "line\nbreak", ".hidden", "-x"],
)
def test_a_hostile_name_is_refused_before_anything_is_written(
    name: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    runs_dir = tmp_path / "runs"
    for mode in (["--dry-run"], []):
        code = main(["--space", "quadratic", f"--name={name}", "--runs-dir", str(runs_dir), *mode])
        err = capsys.readouterr().err
        assert code == 2 and NAME_RULE in err and "Traceback" not in err, err
    assert not runs_dir.exists() and list(tmp_path.iterdir()) == []


def test_resume_of_a_hostile_name_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["--resume", "../../etc", "--runs-dir", str(tmp_path / "runs")])
    assert code == 2 and NAME_RULE in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> MlflowClient:
    store = tmp_path_factory.mktemp("filters") / "mlflow.db"
    client = MlflowClient(f"sqlite:///{store}")
    client.create_experiment("e")
    return client


@settings(
    max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(value=st.text(alphabet="ab'\" %_\\`=()", min_size=1, max_size=12))
def test_filter_values_find_exactly_their_run(client: MlflowClient, value: str) -> None:
    experiment = client.get_experiment_by_name("e").experiment_id
    try:
        query = f"attributes.run_name = {filter_value(value)}"
    except DmlsweepError:
        assert "'" in value and '"' in value  # MLflow's filters cannot say it
        return
    run = client.create_run(experiment, run_name=value)
    found = client.search_runs([experiment], filter_string=query, max_results=1000)
    assert {r.info.run_name for r in found} == {value}
    assert run.info.run_id in {r.info.run_id for r in found}
