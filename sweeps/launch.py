"""Entry script: ``python sweeps/launch.py --space ahsml`` (same as the ``dmlsweep`` command)."""

from __future__ import annotations

import sys
from pathlib import Path

# Run from a checkout without installing: the package lives in the platform/ source root.
_ROOT = Path(__file__).resolve().parents[1]
for _path in (_ROOT / "platform", _ROOT):
    if str(_path) not in sys.path:
        sys.path.insert(0, str(_path))

from dmlsweep.cli import run  # noqa: E402

if __name__ == "__main__":
    run()
