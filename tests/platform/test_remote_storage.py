"""RemoteStorage: read from the environment, validated, and turned into the same settings for
pyarrow (Ray Tune), boto3 and MLflow; secrets never shown. (Against a real S3 server:
tests/services/test_stack.py.)"""

from __future__ import annotations

import pytest

from dmlsweep.errors import DmlsweepError
from dmlsweep.remote_storage import RemoteStorage, RemoteStorageError

ENV = {
    "DMLSWEEP_S3_ENDPOINT_URL": "http://127.0.0.1:8333",
    "DMLSWEEP_S3_BUCKET": "dmlsweep",
    "AWS_ACCESS_KEY_ID": "AKIDEXAMPLE",
    "AWS_SECRET_ACCESS_KEY": "s3cr3t-value-not-for-logs",
    "AWS_DEFAULT_REGION": "eu-west-1",
}


def test_from_env_reads_every_setting() -> None:
    storage = RemoteStorage.from_env(ENV)
    assert storage == RemoteStorage(
        endpoint_url="http://127.0.0.1:8333",
        bucket="dmlsweep",
        access_key_id="AKIDEXAMPLE",
        secret_access_key="s3cr3t-value-not-for-logs",
        region="eu-west-1",
    )


def test_from_env_reads_os_environ_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in (
        "DMLSWEEP_S3_ENDPOINT_URL",
        "MLFLOW_S3_ENDPOINT_URL",
        "AWS_ENDPOINT_URL_S3",
        "AWS_ENDPOINT_URL",
        "AWS_REGION",
    ):
        monkeypatch.delenv(name, raising=False)
    for name, value in ENV.items():
        monkeypatch.setenv(name, value)
    assert RemoteStorage.from_env().bucket == "dmlsweep"


@pytest.mark.parametrize(
    ("variables", "expected"),
    [
        ({"MLFLOW_S3_ENDPOINT_URL": "http://mlflow-s3:9000"}, "http://mlflow-s3:9000"),
        ({"AWS_ENDPOINT_URL": "https://s3.example:443"}, "https://s3.example:443"),
        (  # ours wins over MLflow's, MLflow's over boto3's
            {
                "DMLSWEEP_S3_ENDPOINT_URL": "http://ours:1",
                "MLFLOW_S3_ENDPOINT_URL": "http://ml:2",
                "AWS_ENDPOINT_URL": "http://aws:3",
            },
            "http://ours:1",
        ),
        (
            {"MLFLOW_S3_ENDPOINT_URL": "http://ml:2", "AWS_ENDPOINT_URL_S3": "http://aws:3"},
            "http://ml:2",
        ),
        ({}, None),  # AWS itself
        ({"DMLSWEEP_S3_ENDPOINT_URL": "  "}, None),  # empty counts as unset
    ],
)
def test_endpoint_precedence(variables: dict[str, str], expected: str | None) -> None:
    storage = RemoteStorage.from_env({"DMLSWEEP_S3_BUCKET": "b-1", **variables})
    assert storage.endpoint_url == expected


def test_defaults_without_credentials_or_region() -> None:
    storage = RemoteStorage.from_env({"DMLSWEEP_S3_BUCKET": "bucket"})
    assert (storage.access_key_id, storage.secret_access_key) == (None, None)
    assert storage.region == "us-east-1"
    assert (
        RemoteStorage.from_env({"DMLSWEEP_S3_BUCKET": "b-1", "AWS_REGION": "ap-south-1"}).region
        == "ap-south-1"
    )


def test_missing_bucket_names_the_variable() -> None:
    with pytest.raises(RemoteStorageError, match="DMLSWEEP_S3_BUCKET"):
        RemoteStorage.from_env({k: v for k, v in ENV.items() if k != "DMLSWEEP_S3_BUCKET"})
    assert issubclass(RemoteStorageError, DmlsweepError)  # the CLI prints it as one line


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"DMLSWEEP_S3_BUCKET": "s3://dmlsweep"}, "invalid S3 bucket name 's3://dmlsweep'"),
        ({"DMLSWEEP_S3_BUCKET": "dmlsweep/prefix"}, "invalid S3 bucket name"),
        ({"DMLSWEEP_S3_BUCKET": "Upper"}, "invalid S3 bucket name"),
        ({"DMLSWEEP_S3_BUCKET": "ab"}, "invalid S3 bucket name"),
        ({"DMLSWEEP_S3_ENDPOINT_URL": "127.0.0.1:8333"}, "http\\(s\\)://host"),
        ({"DMLSWEEP_S3_ENDPOINT_URL": "http://host:1/path"}, "http\\(s\\)://host"),
        ({"AWS_SECRET_ACCESS_KEY": ""}, "credentials are incomplete"),
        ({"AWS_ACCESS_KEY_ID": ""}, "credentials are incomplete"),
    ],
)
def test_bad_settings_raise_clear_errors(changes: dict[str, str], message: str) -> None:
    with pytest.raises(RemoteStorageError, match=message):
        RemoteStorage.from_env({**ENV, **changes})


def test_repr_masks_secrets() -> None:
    storage = RemoteStorage.from_env(ENV)
    for text in (repr(storage), str(storage), f"{storage}", repr([storage])):
        assert "s3cr3t" not in text
        assert "AKIDEXAMPLE" not in text
        assert "AKID***" in text and "'***'" in text and "dmlsweep" in text


def test_paths_for_tune_and_mlflow() -> None:
    storage = RemoteStorage.from_env(ENV)
    assert storage.storage_path("ray") == "dmlsweep/ray"
    assert storage.storage_path("/ray/sweeps/") == "dmlsweep/ray/sweeps"
    assert storage.storage_path() == "dmlsweep"
    assert storage.uri("mlartifacts") == "s3://dmlsweep/mlartifacts"


def test_pyarrow_filesystem_carries_the_settings() -> None:
    filesystem = RemoteStorage.from_env(ENV).pyarrow_filesystem()
    # pyarrow exposes its settings only through its pickling arguments.
    settings = filesystem.__reduce__()[1][0]
    assert settings["endpoint_override"] == "http://127.0.0.1:8333"
    assert settings["scheme"] == "http"
    assert settings["access_key"] == "AKIDEXAMPLE"
    assert settings["secret_key"] == "s3cr3t-value-not-for-logs"
    assert settings["region"] == "eu-west-1"
    assert settings["force_virtual_addressing"] is False


def test_pyarrow_filesystem_for_aws_uses_default_chain() -> None:
    settings = (
        RemoteStorage(endpoint_url=None, bucket="bucket").pyarrow_filesystem().__reduce__()[1][0]
    )
    assert settings["endpoint_override"] == ""
    assert not settings["access_key"] and settings["anonymous"] is False


def test_boto3_client_carries_the_settings() -> None:
    client = RemoteStorage.from_env(ENV).boto3_client()
    assert client.meta.endpoint_url == "http://127.0.0.1:8333"
    assert client.meta.region_name == "eu-west-1"
    assert client.meta.config.s3["addressing_style"] == "path"
    credentials = client._request_signer._credentials  # no public accessor in botocore
    assert (credentials.access_key, credentials.secret_key) == (
        "AKIDEXAMPLE",
        "s3cr3t-value-not-for-logs",
    )


def test_mlflow_env() -> None:
    assert RemoteStorage.from_env(ENV).mlflow_env() == {
        "MLFLOW_S3_ENDPOINT_URL": "http://127.0.0.1:8333",
        "AWS_ACCESS_KEY_ID": "AKIDEXAMPLE",
        "AWS_SECRET_ACCESS_KEY": "s3cr3t-value-not-for-logs",
        "AWS_DEFAULT_REGION": "eu-west-1",
    }
    # Without an endpoint or keys, MLflow's boto3 falls back to AWS and its credential chain.
    assert RemoteStorage(endpoint_url=None, bucket="bucket").mlflow_env() == {
        "AWS_DEFAULT_REGION": "us-east-1"
    }


def test_frozen() -> None:
    storage = RemoteStorage.from_env(ENV)
    with pytest.raises(AttributeError):
        storage.bucket = "other"  # type: ignore[misc]
