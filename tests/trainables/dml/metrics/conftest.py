"""Fixture running a test with each chunk kernel: numpy (CPU default) and torch (GPU default)."""

from __future__ import annotations

import pytest

from trainables.dml.metrics import _ranking


@pytest.fixture(params=["numpy", "torch"])
def kernel(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    if request.param == "torch":
        monkeypatch.setattr(_ranking, "use_numpy", lambda device: False)
    return request.param
