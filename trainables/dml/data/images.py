"""A dataset over a list of image files, ``(relative path, label)``, as the readers return.

Bad-image policy (``on_bad_image``):

- ``"fail"`` (default): an image PIL cannot decode (truncated, corrupt, not an image) raises
  ``OSError`` naming the file. PIL's global ``LOAD_TRUNCATED_IMAGES`` is left off, so a
  truncated file is an error, never silently half-grey.
- ``"skip"``: the bad image's path is appended to ``.skipped`` and the next readable item of
  the list (wrapping around) is returned in its place, so a ``DataLoader`` keeps running. With
  ``num_workers > 0`` each worker keeps its own ``.skipped``; call :meth:`scan` first (in the
  main process) to decode every image once, drop the bad ones for good and count them.

Missing files are always an error, checked up front when the dataset is built.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Literal

import torch
from PIL import Image
from torch.utils.data import Dataset
from torchvision.transforms.v2 import functional as TF

__all__ = ["ImageListDataset", "Item"]

Item = tuple[str, int]  # (path relative to the dataset root, label)
BadImagePolicy = Literal["fail", "skip"]


class ImageListDataset(Dataset):
    """Images listed as ``(relative path, label)`` under ``root``, loaded with PIL.

    ``dataset[i]`` is ``(image, label)``, or ``(image, label, modality)`` when ``modality`` is
    given (0 = sketch, 1 = photo; one tag for the whole list). ``image`` is a float32 tensor in
    ``[0, 1]``, ``(C, H, W)`` with ``C = 3`` for ``mode="RGB"`` or 1 for ``mode="L"``, then
    passed through ``transform`` (on tensors, e.g. torchvision.transforms.v2).

    Args:
        root: dataset root the relative paths start from.
        items: ``[(relative path, label), ...]``.
        transform: applied to each image tensor.
        modality: optional modality tag returned with every item.
        on_bad_image: ``"fail"`` or ``"skip"`` (see the module docstring).
        mode: PIL mode images are converted to.

    Raises:
        FileNotFoundError: ``root`` is not a directory, or listed files are missing (the
            message gives their count and the first few paths).
        ValueError: an empty list or an unknown policy / mode.
    """

    def __init__(
        self,
        root: str | Path,
        items: Sequence[Item],
        *,
        transform: Callable[[torch.Tensor], torch.Tensor] | None = None,
        modality: int | None = None,
        on_bad_image: BadImagePolicy = "fail",
        mode: Literal["RGB", "L"] = "RGB",
    ) -> None:
        if on_bad_image not in ("fail", "skip"):
            raise ValueError(f"on_bad_image must be 'fail' or 'skip', got {on_bad_image!r}")
        if mode not in ("RGB", "L"):
            raise ValueError(f"mode must be 'RGB' or 'L', got {mode!r}")
        self.root = Path(root)
        if not self.root.is_dir():
            raise FileNotFoundError(f"image root {self.root} is not a directory")
        self.items: list[Item] = [(str(path), int(label)) for path, label in items]
        if not self.items:
            raise ValueError(f"no images listed under {self.root}")
        missing = [p for p, _ in self.items if not (self.root / p).is_file()]
        if missing:
            first = ", ".join(missing[:5])
            raise FileNotFoundError(
                f"{len(missing)} of {len(self.items)} listed images are missing under "
                f"{self.root}; first: {first}"
            )
        self.transform = transform
        self.modality = modality
        self.on_bad_image = on_bad_image
        self.mode = mode
        self.skipped: list[str] = []

    def __len__(self) -> int:
        return len(self.items)

    @property
    def labels(self) -> list[int]:
        """The label of every item, in order (for samplers)."""
        return [label for _, label in self.items]

    def _load(self, relpath: str) -> torch.Tensor:
        path = self.root / relpath
        try:
            with Image.open(path) as raw:
                image = raw.convert(self.mode)  # decodes fully: truncation surfaces here
        except (OSError, SyntaxError, ValueError) as err:
            # SyntaxError / ValueError: PIL's way of reporting some malformed headers
            raise OSError(f"cannot read image {path}: {err}") from err
        return TF.to_dtype(TF.pil_to_tensor(image), torch.float32, scale=True)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int] | tuple[torch.Tensor, int, int]:
        for step in range(len(self.items)):
            relpath, label = self.items[(index + step) % len(self.items)]
            try:
                image = self._load(relpath)
            except OSError:
                if self.on_bad_image == "fail":
                    raise
                if relpath not in self.skipped:
                    self.skipped.append(relpath)
                continue
            if self.transform is not None:
                image = self.transform(image)
            return (image, label) if self.modality is None else (image, label, self.modality)
        raise OSError(f"no readable image among the {len(self.items)} listed under {self.root}")

    def scan(self) -> list[str]:
        """Decode every listed image once. ``"fail"``: raise on the first bad one (naming it).
        ``"skip"``: remove the bad ones from ``items``, add them to ``.skipped`` and return
        them. Cost: one full decode per image."""
        bad: list[str] = []
        for relpath, _ in self.items:
            try:
                self._load(relpath)
            except OSError:
                if self.on_bad_image == "fail":
                    raise
                bad.append(relpath)
        if bad:
            drop = set(bad)
            self.items = [item for item in self.items if item[0] not in drop]
            self.skipped.extend(p for p in bad if p not in self.skipped)
            if not self.items:
                raise OSError(f"no readable image among those listed under {self.root}")
        return bad
