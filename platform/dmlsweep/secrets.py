"""Keep credentials out of logs, MLflow and the console."""

from __future__ import annotations

import re

# scheme://user:password@host -> scheme://user:***@host
_URL_PASSWORD = re.compile(r"(?P<head>[a-zA-Z][a-zA-Z0-9+.\-]*://[^:/@\s]+:)(?P<pw>[^@\s]+)(?=@)")


def mask(text: str) -> str:
    """Mask the password of any URL in ``text``."""
    return _URL_PASSWORD.sub(lambda m: m.group("head") + "***", text)
