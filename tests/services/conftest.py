"""One native service stack (PostgreSQL, SeaweedFS S3, MLflow server) for the whole session."""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import pytest
from services.stack import ARTIFACTS_PREFIX, ServiceStack, start_stack, stop_stack
from support import run_cli


@pytest.fixture(scope="session")
def service_stack() -> Iterator[ServiceStack]:
    """The native stack, started once for every test that asks for it, stopped at the end."""
    stack = start_stack()
    print(
        f"\nservice stack up in {stack.start_seconds['total']:.1f} s ({stack.start_seconds})",
        file=sys.stderr,
    )
    dsn = stack.postgres.dsn("postgres")
    del dsn["dbname"]
    try:
        yield ServiceStack(
            tracking_uri=stack.mlflow.url,
            mlflow_backend_uri=stack.postgres.url("mlflow"),
            optuna_storage=stack.postgres.url("optuna"),
            postgres_dsn=dsn,
            storage=stack.s3.storage,
            artifacts_prefix=ARTIFACTS_PREFIX,
            s3=stack.s3.storage.boto3_client(),
            stack=stack,
        )
    finally:
        stop_stack(stack)


@dataclass(frozen=True)
class StackSweep:
    """A finished sweep of the CLI against the service stack (see ``stack_sweep``)."""

    name: str  # Ray experiment, Optuna study and MLflow parent run
    space: str
    num_samples: int
    max_epochs: int
    workdir: Path  # the CLI's working directory (its default --runs-dir is under it)
    stdout: str = ""
    stderr: str = ""

    @property
    def experiment(self) -> str:
        return f"dmlsweep-{self.space}"


@pytest.fixture(scope="session")
def stack_sweep(
    service_stack: ServiceStack, ray_address: str, tmp_path_factory: pytest.TempPathFactory
) -> StackSweep:
    """One small real sweep, run once through ``sweeps/launch.py`` as a user would against the
    production services: MLflow server, Optuna on PostgreSQL, Tune's results in the bucket.

    AHSML, because its parameters (curvature, tau) are the ones worth comparing in the UI; on
    the smoke-scale digits its trials cost about what the baseline's do. The URLs and keys
    travel in the environment, as the CLI expects (never on its command line).
    """
    sweep = StackSweep(
        name="stack-sweep",
        space="ahsml",
        num_samples=4,
        max_epochs=2,
        workdir=tmp_path_factory.mktemp("stack-sweep"),
    )
    storage = service_stack.storage
    assert storage.access_key_id is not None and storage.secret_access_key is not None
    env = {
        "MLFLOW_TRACKING_URI": service_stack.tracking_uri,
        "DMLSWEEP_OPTUNA_STORAGE": service_stack.optuna_storage,
        "DMLSWEEP_S3_BUCKET": storage.bucket,
        "DMLSWEEP_S3_ENDPOINT_URL": str(storage.endpoint_url),
        "AWS_ACCESS_KEY_ID": storage.access_key_id,
        "AWS_SECRET_ACCESS_KEY": storage.secret_access_key,
    }
    start = time.monotonic()
    proc = run_cli(
        "--space", sweep.space,
        "--num-samples", str(sweep.num_samples),
        "--max-epochs", str(sweep.max_epochs),
        "--address", ray_address,
        "--name", sweep.name,
        cwd=sweep.workdir,
        env=env,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-5000:]
    print(f"\nstack sweep ran in {time.monotonic() - start:.1f} s", file=sys.stderr)
    return replace(sweep, stdout=proc.stdout, stderr=proc.stderr)
