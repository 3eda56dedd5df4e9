"""A dataset over a list of image files, ``(relative path, label)``, as the readers return.

Unreadable-image policy (checked lazily, as images load; no pre-scan of a large benchmark):

- An image PIL cannot decode (truncated, corrupt, not an image) is **skipped and counted**:
  its item is served by the next readable image of the **same label** in the list (wrapping
  around), so a class-balanced sampler's batches keep their classes. The first few are named
  in an ``UnreadableImageWarning`` with the running count; ``.skipped`` is the count and
  ``.skipped_paths`` the paths.
- When **more than** ``max_bad_fraction`` of the listed images (default 1%, rounded down to a
  whole number of images) have turned out unreadable, the next load raises
  :class:`UnreadableImagesError` naming the count and the first paths: the data is broken,
  and a number on it would mean little. On a small list (under 100 images at 1%) the first
  unreadable image fails. ``max_bad_fraction=0`` fails on any unreadable image.
- Every unreadable image of a label (nothing left to serve it) is the same error.
- Missing files are always an error, checked up front when the dataset is built.

The bad images are recorded in a shared-memory flag per item, so the count and the limit hold
across ``DataLoader`` workers (each worker sees the others' findings; a bad image is counted
once however often it is met) and ``.skipped`` in the main process includes what the workers
found. :meth:`scan` decodes every image once, to apply the policy before a run instead of
during it. PIL's global ``LOAD_TRUNCATED_IMAGES`` is left off, so a truncated file is an
unreadable image, never a silently half-grey one.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Literal

import torch
from PIL import Image
from torch.utils.data import Dataset
from torchvision.transforms.v2 import functional as TF

__all__ = ["ImageListDataset", "Item", "UnreadableImageWarning", "UnreadableImagesError"]

Item = tuple[str, int]  # (path relative to the dataset root, label)

_WARN_FIRST = 5  # unreadable images named one by one; after these, only the count grows
_NAME_FIRST = 10  # paths named in the error


class UnreadableImageWarning(UserWarning):
    """An image could not be decoded and was skipped (see the module docstring)."""


class UnreadableImagesError(OSError):
    """More images could not be decoded than the policy skips (see the module docstring)."""


class ImageListDataset(Dataset):
    """Images listed as ``(relative path, label)`` under ``root``, loaded with PIL.

    ``dataset[i]`` is ``(image, label)``, or ``(image, label, modality)`` when ``modality`` is
    given (0 = sketch, 1 = photo; one tag for the whole list). ``image`` is a float32 tensor in
    ``[0, 1]``, ``(C, H, W)`` with ``C = 3`` for ``mode="RGB"`` or 1 for ``mode="L"``, then
    passed through ``transform`` (on tensors, e.g. torchvision.transforms.v2). ``label`` is
    always item ``i``'s, even when an unreadable image is replaced.

    Args:
        root: dataset root the relative paths start from.
        items: ``[(relative path, label), ...]``.
        transform: applied to each image tensor.
        modality: optional modality tag returned with every item.
        max_bad_fraction: in ``[0, 1)``; at most ``floor(max_bad_fraction * len(items))``
            unreadable images are skipped, one more raises (see the module docstring).
        mode: PIL mode images are converted to.

    Raises:
        FileNotFoundError: ``root`` is not a directory, or listed files are missing (the
            message gives their count and the first few paths).
        ValueError: an empty list, a ``max_bad_fraction`` outside ``[0, 1)``, an unknown mode.
    """

    def __init__(
        self,
        root: str | Path,
        items: Sequence[Item],
        *,
        transform: Callable[[torch.Tensor], torch.Tensor] | None = None,
        modality: int | None = None,
        max_bad_fraction: float = 0.01,
        mode: Literal["RGB", "L"] = "RGB",
    ) -> None:
        if not 0.0 <= max_bad_fraction < 1.0:
            raise ValueError(f"max_bad_fraction must be in [0, 1), got {max_bad_fraction!r}")
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
        self.mode = mode
        self.max_bad_fraction = max_bad_fraction
        self.max_bad = int(max_bad_fraction * len(self.items))
        # Shared memory: DataLoader workers (forked or spawned) write the same flags.
        self._bad = torch.zeros(len(self.items), dtype=torch.bool).share_memory_()

    def __len__(self) -> int:
        return len(self.items)

    @property
    def labels(self) -> list[int]:
        """The label of every item, in order (for samplers)."""
        return [label for _, label in self.items]

    @property
    def skipped(self) -> int:
        """How many listed images turned out unreadable so far (in any worker)."""
        return int(self._bad.sum())

    @property
    def skipped_paths(self) -> list[str]:
        """The relative paths of those images, in list order."""
        return [self.items[i][0] for i in self._bad.nonzero().flatten().tolist()]

    def _load(self, relpath: str) -> torch.Tensor:
        path = self.root / relpath
        try:
            with Image.open(path) as raw:
                image = raw.convert(self.mode)  # decodes fully: truncation surfaces here
        except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as err:
            # SyntaxError / ValueError: PIL's way of reporting some malformed headers
            raise OSError(f"cannot read image {path}: {err}") from err
        return TF.to_dtype(TF.pil_to_tensor(image), torch.float32, scale=True)

    def _record_unreadable(self, index: int, err: OSError) -> None:
        """Flag item ``index`` (not flagged yet: ``_readable`` skips flagged ones); raise past
        the limit, else warn for the first few."""
        self._bad[index] = True
        self._check_limit(latest=err)
        count = self.skipped
        if count <= _WARN_FIRST:
            more = " (further ones are only counted)" if count == _WARN_FIRST else ""
            warnings.warn(
                f"skipping an unreadable image ({err}); {count} of {len(self.items)} under "
                f"{self.root} skipped so far, at most {self.max_bad} allowed "
                f"(max_bad_fraction={self.max_bad_fraction:g}){more}",
                UnreadableImageWarning,
                stacklevel=4,  # the caller of dataset[i] or scan()
            )

    def _check_limit(self, *, latest: OSError | None = None) -> None:
        count = self.skipped
        if count > self.max_bad:
            paths = self.skipped_paths
            first = ", ".join(paths[:_NAME_FIRST]) + (", ..." if len(paths) > _NAME_FIRST else "")
            raise UnreadableImagesError(
                f"{count} of {len(self.items)} images under {self.root} cannot be decoded, "
                f"more than the {self.max_bad} (max_bad_fraction={self.max_bad_fraction:g}) "
                f"the unreadable-image policy skips: {first}. Repair or remove them from the "
                "list, or allow more with max_bad_fraction"
                + (f" (latest: {latest})" if latest is not None else "")
            )

    def _readable(self, index: int) -> torch.Tensor | None:
        if bool(self._bad[index]):
            return None
        try:
            return self._load(self.items[index][0])
        except OSError as err:
            self._record_unreadable(index, err)
            return None

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int] | tuple[torch.Tensor, int, int]:
        label = self.items[index][1]
        image = self._readable(index)
        if image is None:
            self._check_limit()  # a worker may have found the one too many
            image = self._same_label_substitute(index, label)
        if self.transform is not None:
            image = self.transform(image)
        return (image, label) if self.modality is None else (image, label, self.modality)

    def _same_label_substitute(self, index: int, label: int) -> torch.Tensor:
        n = len(self.items)
        for step in range(1, n):
            other = (index + step) % n
            if self.items[other][1] == label:
                image = self._readable(other)
                if image is not None:
                    return image
        raise UnreadableImagesError(
            f"no readable image of label {label} among those listed under {self.root} "
            f"(unreadable: {', '.join(p for p, y in self.items if y == label)[:1000]})"
        )

    def scan(self) -> list[str]:
        """Decode every listed image once and apply the policy now (warn, or raise past the
        limit); return the unreadable paths. Cost: one full decode per image."""
        for index in range(len(self.items)):
            self._readable(index)
        return self.skipped_paths
