"""What every reader shares: the layout error and checked access to list files."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

__all__ = ["LayoutError", "malformed", "read_lines", "require"]


class LayoutError(ValueError):
    """A dataset directory is absent, incomplete or malformed; the message names the expected
    layout."""


def require(
    root: str | Path,
    *,
    dataset: str,
    layout: str,
    files: Iterable[str] = (),
    dirs: Iterable[str] = (),
) -> Path:
    """``root`` as a ``Path``, after checking it holds ``files`` and ``dirs``.

    Raises:
        LayoutError: ``root`` is not a directory, or some of ``files`` / ``dirs`` are absent;
            the message lists what is missing and shows ``layout``.
    """
    root = Path(root)
    if not root.is_dir():
        raise LayoutError(f"{dataset}: {root} is not a directory. Expected layout:\n{layout}")
    missing = [f for f in files if not (root / f).is_file()]
    missing += [f"{d}/" for d in dirs if not (root / d).is_dir()]
    if missing:
        raise LayoutError(
            f"{dataset}: {root} lacks {', '.join(missing)}. Expected layout:\n{layout}"
        )
    return root


def read_lines(path: Path) -> list[tuple[int, str]]:
    """Non-blank lines of a text file as ``(line number, line without surrounding space)``."""
    with open(path, encoding="utf-8") as f:
        return [(n, line.strip()) for n, line in enumerate(f, 1) if line.strip()]


def malformed(path: Path, where: tuple[int, str], *, expected: str, layout: str) -> LayoutError:
    """The error for a line that does not parse, ``where = (line number, line)``: it names the
    file, the line number, the line, what was expected, and the layout."""
    lineno, line = where
    return LayoutError(
        f"{path}:{lineno}: expected {expected}, got {line!r}. Expected layout:\n{layout}"
    )
