"""One S3 configuration for everything that writes remotely: MLflow (boto3) and Ray Tune (pyarrow).

MLflow's artifact store reads the endpoint and credentials from environment variables
(``MLFLOW_S3_ENDPOINT_URL`` and the standard ``AWS_*``); Ray Tune writes results and
checkpoints through a ``pyarrow.fs.S3FileSystem`` given as ``storage_filesystem`` with
``storage_path = "bucket/prefix"``. Both are built here from the same ``RemoteStorage``, so a
bucket or a key set once reaches both. Works with AWS S3 (no endpoint) and with S3-compatible
stores (MinIO, SeaweedFS) through ``endpoint_url``; those use path-style addressing.

Example::

    storage = RemoteStorage.from_env()
    tune.RunConfig(storage_path=storage.storage_path("ray"),
                   storage_filesystem=storage.pyarrow_filesystem())
    subprocess.Popen(["mlflow", "server", "--artifacts-destination",
                      storage.uri("mlartifacts")], env={**os.environ, **storage.mlflow_env()})
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from dmlsweep.errors import DmlsweepError

if TYPE_CHECKING:
    import pyarrow.fs

__all__ = ["RemoteStorage", "RemoteStorageError"]

DEFAULT_REGION = "us-east-1"

# The S3 bucket naming rules that every S3-compatible store enforces (AWS's full list is stricter).
_BUCKET = re.compile(r"^[a-z0-9][a-z0-9.\-]{1,61}[a-z0-9]$")

# Endpoint variables in the order they are looked up: ours, MLflow's, then boto3's own.
_ENDPOINT_VARS = (
    "DMLSWEEP_S3_ENDPOINT_URL",
    "MLFLOW_S3_ENDPOINT_URL",
    "AWS_ENDPOINT_URL_S3",
    "AWS_ENDPOINT_URL",
)


class RemoteStorageError(DmlsweepError):
    """A missing or malformed remote-storage setting; the message names the variable."""


@dataclass(frozen=True, repr=False)
class RemoteStorage:
    """Where remote artifacts and Tune results live, and the credentials to reach them.

    Attributes:
        endpoint_url: ``http(s)://host:port`` of an S3-compatible store; ``None`` for AWS S3.
        bucket: bucket name (no ``s3://``, no prefix).
        access_key_id: access key; ``None`` (with no secret) uses the default credential chain
            (instance role, ``~/.aws``), which is what a cloud deployment wants.
        secret_access_key: secret key; set exactly when ``access_key_id`` is.
        region: signing region; S3-compatible stores accept any, AWS needs the bucket's.
    """

    endpoint_url: str | None
    bucket: str
    access_key_id: str | None = None
    secret_access_key: str | None = None
    region: str = DEFAULT_REGION

    def __post_init__(self) -> None:
        if self.endpoint_url is not None and not re.match(
            r"^https?://[^/\s]+/?$", self.endpoint_url
        ):
            raise RemoteStorageError(
                f"S3 endpoint URL must look like http(s)://host[:port], got {self.endpoint_url!r}"
            )
        if not _BUCKET.match(self.bucket):
            raise RemoteStorageError(
                f"invalid S3 bucket name {self.bucket!r}: 3-63 characters of lowercase letters, "
                "digits, dots and hyphens (a bucket name only: no s3:// and no prefix)"
            )
        if (self.access_key_id is None) != (self.secret_access_key is None):
            raise RemoteStorageError(
                "S3 credentials are incomplete: set both the access key id and the secret access "
                "key, or neither (to use the default credential chain)"
            )
        if not self.region:
            raise RemoteStorageError("S3 region must not be empty")

    def __repr__(self) -> str:
        # The secret never appears; the key id only by its first characters (tells keys apart).
        key = None if self.access_key_id is None else self.access_key_id[:4] + "***"
        secret = None if self.secret_access_key is None else "***"
        return (
            f"RemoteStorage(endpoint_url={self.endpoint_url!r}, bucket={self.bucket!r}, "
            f"access_key_id={key!r}, secret_access_key={secret!r}, region={self.region!r})"
        )

    __str__ = __repr__

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> RemoteStorage:
        """Read ``DMLSWEEP_S3_BUCKET`` (required), the endpoint (``DMLSWEEP_S3_ENDPOINT_URL``,
        else ``MLFLOW_S3_ENDPOINT_URL``, ``AWS_ENDPOINT_URL_S3``, ``AWS_ENDPOINT_URL``; none:
        AWS), ``AWS_ACCESS_KEY_ID`` / ``AWS_SECRET_ACCESS_KEY`` and ``AWS_DEFAULT_REGION``
        (else ``AWS_REGION``, else us-east-1). Empty values count as unset."""
        env = os.environ if environ is None else environ

        def get(name: str) -> str | None:
            value = env.get(name, "").strip()
            return value or None

        bucket = get("DMLSWEEP_S3_BUCKET")
        if bucket is None:
            raise RemoteStorageError(
                "DMLSWEEP_S3_BUCKET is not set: name the bucket for remote artifacts and results"
            )
        endpoint = next((v for v in map(get, _ENDPOINT_VARS) if v is not None), None)
        return cls(
            endpoint_url=endpoint,
            bucket=bucket,
            access_key_id=get("AWS_ACCESS_KEY_ID"),
            secret_access_key=get("AWS_SECRET_ACCESS_KEY"),
            region=get("AWS_DEFAULT_REGION") or get("AWS_REGION") or DEFAULT_REGION,
        )

    def storage_path(self, prefix: str = "") -> str:
        """``bucket/prefix``: Ray Tune's ``storage_path`` when ``storage_filesystem`` is given."""
        prefix = prefix.strip("/")
        return f"{self.bucket}/{prefix}" if prefix else self.bucket

    def uri(self, prefix: str = "") -> str:
        """``s3://bucket/prefix``, e.g. for ``mlflow server --artifacts-destination``."""
        return f"s3://{self.storage_path(prefix)}"

    def pyarrow_filesystem(self, *, with_keys: bool = True) -> pyarrow.fs.S3FileSystem:
        """A pyarrow S3 filesystem for Ray Tune's ``storage_filesystem`` (paths: ``bucket/key``).

        ``with_keys=False`` leaves the keys to AWS's default chain (``AWS_ACCESS_KEY_ID`` ... in
        each process's environment): a filesystem given its keys pickles them, and Tune pickles
        its filesystem into the experiment state it writes to the bucket."""
        from pyarrow import fs

        kwargs: dict[str, Any] = {"region": self.region}
        if self.endpoint_url is not None:
            # With an override pyarrow addresses buckets path-style, as MinIO/SeaweedFS need.
            kwargs["endpoint_override"] = self.endpoint_url.rstrip("/")
            kwargs["scheme"] = self.endpoint_url.split("://", 1)[0]
        if with_keys and self.access_key_id is not None:
            kwargs["access_key"] = self.access_key_id
            kwargs["secret_key"] = self.secret_access_key
        return fs.S3FileSystem(**kwargs)

    def boto3_client(self, *, connect_timeout: float = 60) -> Any:
        """A boto3 S3 client with these settings (path-style addressing for custom endpoints)."""
        import boto3
        from botocore.config import Config

        addressing = "path" if self.endpoint_url is not None else "auto"
        return boto3.client(
            "s3",
            endpoint_url=self.endpoint_url,
            aws_access_key_id=self.access_key_id,
            aws_secret_access_key=self.secret_access_key,
            region_name=self.region,
            config=Config(
                s3={"addressing_style": addressing},
                retries={"max_attempts": 3},
                connect_timeout=connect_timeout,
            ),
        )

    def check_access(self) -> None:
        """Refuse, before anything is written, a bucket these credentials cannot write to:
        wrong keys, a missing bucket or an unreachable endpoint. Writes and deletes one small
        object (a read-only key would otherwise pass and fail at the first checkpoint)."""
        from botocore.exceptions import BotoCoreError, ClientError

        where = f"bucket {self.bucket!r} at {self.endpoint_url or 'AWS S3'}"
        client = self.boto3_client(connect_timeout=10)
        probe = ".dmlsweep-access-check"
        try:
            # Some stores (SeaweedFS) create a missing bucket on the first write: a mistyped
            # name must not become a new bucket.
            client.head_bucket(Bucket=self.bucket)
            client.put_object(Bucket=self.bucket, Key=probe, Body=b"")
            client.delete_object(Bucket=self.bucket, Key=probe)
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code", "")
            if code in ("NoSuchBucket", "404", "NotFound"):
                raise RemoteStorageError(f"S3: no {where} (DMLSWEEP_S3_BUCKET)") from exc
            if code in ("InvalidAccessKeyId", "SignatureDoesNotMatch", "AccessDenied", "403"):
                raise RemoteStorageError(
                    f"S3: the credentials were refused by {where} ({code}): check "
                    "AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY"
                ) from exc
            raise RemoteStorageError(f"S3: cannot write to {where}: {code or exc}") from exc
        except BotoCoreError as exc:
            raise RemoteStorageError(f"S3: cannot reach {where}: {exc}") from exc

    def mlflow_env(self) -> dict[str, str]:
        """The environment variables MLflow's S3 artifact repository (boto3) reads.

        Give them to the process that talks to S3: the tracking server when it proxies
        artifacts (``--serve-artifacts``), or a client that writes to S3 directly.
        """
        env = {"AWS_DEFAULT_REGION": self.region}
        if self.endpoint_url is not None:
            env["MLFLOW_S3_ENDPOINT_URL"] = self.endpoint_url.rstrip("/")
        if self.access_key_id is not None and self.secret_access_key is not None:
            env["AWS_ACCESS_KEY_ID"] = self.access_key_id
            env["AWS_SECRET_ACCESS_KEY"] = self.secret_access_key
        return env
