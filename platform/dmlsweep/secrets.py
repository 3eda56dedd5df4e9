"""Keep credentials out of logs, MLflow, stored plans and the console: :func:`redact`, the one
function every message, log line, param, tag and stored URL goes through.

It hides a URL's password (``scheme://user:password@host``), the value of a secret-looking
query parameter (``?password=...``, ``sslpassword``, ``token``, ``secret``, ``key``...), and
wherever it appears verbatim, the value of a credential in this process's environment (an S3
secret key, an MLflow password or token): a secret pasted into a message in any form.
"""

from __future__ import annotations

import os
import re
import sys
from typing import Any, TextIO

HIDDEN = "***"

# scheme://user:password@host -> scheme://user:***@host
_URL_PASSWORD = re.compile(r"(?P<head>[a-zA-Z][a-zA-Z0-9+.\-]*://[^:/@\s]+:)(?P<pw>[^@\s]+)(?=@)")
# ?password=... &sslpassword=... (also in a libpq "key=value" string): the value up to & or space
_SECRET_PARAMETER = re.compile(
    r"(?P<head>(?<![A-Za-z0-9_])[A-Za-z0-9_]*(?:password|passwd|pwd|secret|token|api_key"
    r"|access_key|private_key|credential)[A-Za-z0-9_]*\s*=\s*)(?P<value>[^&\s'\";,)]+)",
    re.IGNORECASE,
)
# environment variables whose values are credentials wherever they turn up
SECRET_VARIABLES = (
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "MLFLOW_TRACKING_PASSWORD",
    "MLFLOW_TRACKING_TOKEN",
    "PGPASSWORD",
    "POSTGRES_PASSWORD",
)


def redact(text: str) -> str:
    """``text`` with every credential it holds replaced by ``***``."""
    text = _URL_PASSWORD.sub(lambda m: m.group("head") + HIDDEN, text)
    text = _SECRET_PARAMETER.sub(lambda m: m.group("head") + HIDDEN, text)
    for name in SECRET_VARIABLES:
        value = os.environ.get(name, "")
        if len(value) >= 4:  # a shorter value would hide ordinary words
            text = text.replace(value, HIDDEN)
    return text


class RedactingStream:
    """A text stream that writes through :func:`redact`: the CLI's stdout and stderr, so what
    Ray, Tune, Optuna, MLflow and a traceback print is redacted as the platform's own lines."""

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream

    def write(self, text: str) -> int:
        self._stream.write(redact(text))
        return len(text)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)


def redact_console() -> None:
    """Route this process's ``sys.stdout`` and ``sys.stderr`` through :func:`redact`."""
    if not isinstance(sys.stdout, RedactingStream):
        sys.stdout = RedactingStream(sys.stdout)  # type: ignore[assignment]
    if not isinstance(sys.stderr, RedactingStream):
        sys.stderr = RedactingStream(sys.stderr)  # type: ignore[assignment]
