"""Fixtures of the data tests: tiny PNG files, and the published lists in ../shared/data."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from support import REPO_ROOT

# the published split and noise lists live beside the repository, not in it
SHARED_DATA = REPO_ROOT.parent / "shared" / "data"


@pytest.fixture
def shared_data() -> Path:
    """``../shared/data`` next to the repository root; skips (saying why) when it is absent."""
    if not SHARED_DATA.is_dir():
        pytest.skip(
            f"published lists not present at {SHARED_DATA} (the ../shared sibling of the "
            "repository); nothing the project ships depends on them"
        )
    return SHARED_DATA


@pytest.fixture
def write_png() -> Callable[..., Path]:
    """``write_png(path, value=0, size=6, mode="RGB")``: a small uniform PNG, parents created."""

    def write(path: Path, value: int = 0, size: int = 6, mode: str = "RGB") -> Path:
        path.parent.mkdir(parents=True, exist_ok=True)
        shape = (size, size, 3) if mode == "RGB" else (size, size)
        rng = np.random.default_rng(value)
        Image.fromarray(rng.integers(0, 256, shape, dtype=np.uint8)).save(path)
        return path

    return write
