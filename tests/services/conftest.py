"""One native service stack (PostgreSQL, SeaweedFS S3, MLflow server) for the whole session."""

from __future__ import annotations

import sys
from collections.abc import Iterator

import pytest
from services.stack import ARTIFACTS_PREFIX, ServiceStack, start_stack, stop_stack


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
