"""platform/ is a source root, not a package: the standard library's platform must win."""

from __future__ import annotations

import subprocess
import sys

from support import REPO_ROOT


def test_stdlib_platform_is_not_shadowed() -> None:
    assert not (REPO_ROOT / "platform" / "__init__.py").exists()
    code = "import dmlsweep, platform, uuid; print(platform.system()); print(uuid.uuid4())"
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True, text=True, check=True
    ).stdout.split()
    assert out[0] == "Linux"
    assert len(out[1]) == 36
