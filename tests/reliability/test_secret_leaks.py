"""A secret planted in every form a user can give one never shows: not in what the CLI prints
(its own lines, Ray's, Tune's and MLflow's), not in any file of the runs dir (the stores, Tune's
pickles, the logs)."""

from __future__ import annotations

from pathlib import Path

import pytest
from support import free_port, run_cli

SECRET = "plantedSecret9Xq"


def leaks(*texts: str, runs_dir: Path | None = None) -> list[str]:
    """Where the secret shows: the texts given, and every file under ``runs_dir``."""
    found = [f"output {i}" for i, text in enumerate(texts) if SECRET in text]
    if runs_dir is not None and runs_dir.exists():
        found += [
            str(path)
            for path in runs_dir.rglob("*")
            if path.is_file() and SECRET.encode() in path.read_bytes()
        ]
    return found


# (flag, value) of a service at a closed port ({port}), the secret in each place it can be
URL_FORMS = [
    ("--storage", f"postgresql+psycopg2://user:{SECRET}@127.0.0.1:{{port}}/db"),
    ("--storage", f"postgresql+psycopg2:///db?user=u&password={SECRET}&host=127.0.0.1&port={{port}}"),
    ("--storage", f"postgresql+psycopg2://user@127.0.0.1:{{port}}/db?sslpassword={SECRET}"),
    ("--tracking-uri", f"http://user:{SECRET}@127.0.0.1:{{port}}"),
    ("--tracking-uri", f"http://127.0.0.1:{{port}}/?token={SECRET}"),
]  # fmt: skip


@pytest.mark.parametrize(("flag", "template"), URL_FORMS)
@pytest.mark.parametrize("dry_run", [True, False], ids=["dry-run", "run"])
def test_a_secret_in_a_url_is_never_printed_nor_stored(
    flag: str, template: str, dry_run: bool, tmp_path: Path
) -> None:
    url = template.format(port=free_port())
    runs_dir = tmp_path / "runs"
    proc = run_cli(
        "--space", "quadratic", "--num-samples", "1", "--runs-dir", str(runs_dir), flag, url,
        *(["--dry-run"] if dry_run else []), cwd=tmp_path, timeout=180,
    )  # fmt: skip
    # a run refuses the unreachable store; --dry-run checks no connection and prints the plan
    assert proc.returncode == (0 if dry_run else 2), proc.stdout[-2000:] + proc.stderr[-2000:]
    assert "127.0.0.1" in proc.stdout + proc.stderr  # the service is named...
    assert leaks(proc.stdout, proc.stderr, runs_dir=runs_dir) == []  # ...its secret is not


def test_a_secret_in_an_environment_variable_is_never_printed_nor_stored(
    tmp_path: Path,
) -> None:
    port = free_port()
    env = {
        "DMLSWEEP_OPTUNA_STORAGE": f"postgresql+psycopg2://user:{SECRET}@127.0.0.1:{port}/db",
        "AWS_SECRET_ACCESS_KEY": SECRET,
        "MLFLOW_TRACKING_PASSWORD": SECRET,
    }
    runs_dir = tmp_path / "runs"
    proc = run_cli(
        "--space", "quadratic", "--runs-dir", str(runs_dir), "--dry-run", cwd=tmp_path, env=env
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert "127.0.0.1" in proc.stdout, proc.stdout  # the plan names the storage...
    assert leaks(proc.stdout, proc.stderr, runs_dir=runs_dir) == []  # ...not its password


@pytest.mark.ray
def test_a_sweep_run_with_credentials_in_its_environment_stores_none(
    ray_address: str, tmp_path: Path
) -> None:
    """Credentials a sweep does not use (a local run) stay out of everything it writes."""
    env = {
        "AWS_SECRET_ACCESS_KEY": SECRET,
        "MLFLOW_TRACKING_PASSWORD": SECRET,
        "PGPASSWORD": SECRET,
    }
    runs_dir = tmp_path / "runs"
    proc = run_cli(
        "--space", "quadratic", "--name", "creds", "--num-samples", "2", "--max-epochs", "2",
        "--log-models", "1", "--runs-dir", str(runs_dir), "--address", ray_address,
        cwd=tmp_path, env=env,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert (runs_dir / "mlflow.db").is_file() and (runs_dir / "ray" / "creds").is_dir()
    assert leaks(proc.stdout, proc.stderr, runs_dir=runs_dir) == []
