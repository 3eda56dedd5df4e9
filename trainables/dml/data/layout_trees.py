"""Generated datasets in the real layouts: CUB-200-2011 (its published layout) and
Sketchy-Extended split 1 (the SAKE layout), read by the real readers, for tests and for the
benchmarks of the input pipeline and of training (no dataset can be downloaded where they run).
The JPEG files' content (smooth colour fields plus noise) compresses and decodes like a
photograph's, not like a flat image's; sketches are dark strokes on white."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

__all__ = ["write_cub", "write_sketchy"]


def _jpeg(path: Path, rng: np.random.Generator, size: int, *, sketch: bool = False) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    coarse = rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)
    field = np.asarray(
        Image.fromarray(coarse).resize((size, size), Image.Resampling.BILINEAR), np.int16
    )
    pixels = field + rng.integers(-24, 25, field.shape, dtype=np.int16)
    if sketch:  # dark strokes on white, like a sketch
        pixels = np.where(pixels.mean(axis=2, keepdims=True) > 100, 255, 40).repeat(3, axis=2)
    Image.fromarray(pixels.clip(0, 255).astype(np.uint8)).save(path, quality=90)


def write_cub(root: Path, *, classes: int = 200, per_class: int = 30, size: int = 224) -> Path:
    """CUB-200-2011 at ``root``: ``per_class`` images of ``size`` px in each of ``classes``
    classes (ids 1-100 are the train side, 101-200 the test side)."""
    rng = np.random.default_rng(0)
    lines: dict[str, list[str]] = {
        "classes.txt": [],
        "images.txt": [],
        "image_class_labels.txt": [],
    }
    image_id = 0
    for c in range(1, classes + 1):
        folder = f"{c:03d}.Bird_{c}"
        lines["classes.txt"].append(f"{c} {folder}")
        for k in range(per_class):
            image_id += 1
            rel = f"{folder}/Bird_{c}_{k:04d}.jpg"
            _jpeg(root / "images" / rel, rng, size)
            lines["images.txt"].append(f"{image_id} {rel}")
            lines["image_class_labels.txt"].append(f"{image_id} {c}")
    for name, content in lines.items():
        (root / name).write_text("".join(line + "\n" for line in content))
    return root


def write_sketchy(
    root: Path,
    *,
    per_class: int = 20,
    per_unseen: int | None = None,
    held_out: int = 0,
    size: int = 224,
    seen: int = 100,
    unseen: int = 25,
) -> Path:
    """Sketchy-Extended split 1 at ``root`` (``seen`` = 100 seen, ``unseen`` = 25 unseen
    classes as published; fewer make a tree the reader refuses): ``per_class`` sketches and
    ``per_class`` photos of ``size`` px per seen class, ``per_unseen`` (default
    ``per_class``) of each per unseen class, and ``held_out`` more sketches per seen class in
    the held-out ``test`` list."""
    rng = np.random.default_rng(1)
    split = root / "zeroshot1"
    split.mkdir(parents=True, exist_ok=True)
    lists: dict[str, list[str]] = {"sketch_tx_000000000000_ready_filelist_test.txt": []}
    for kind, classes in (("seen", seen), ("zero", unseen)):
        names = [f"{kind}{c:03d}" for c in range(classes)]
        table = "cname_cid.txt" if kind == "seen" else "cname_cid_zero.txt"
        (split / table).write_text("".join(f"{n} {i}\n" for i, n in enumerate(names)))
        part = "train" if kind == "seen" else "zero"
        per = per_class if kind == "seen" else (per_class if per_unseen is None else per_unseen)
        for prefix, folder in (("sketch_tx_000000000000_ready", "sketch"), ("all_photo", "photo")):
            extra = held_out if (kind == "seen" and folder == "sketch") else 0
            for label, name in enumerate(names):
                for k in range(per + extra):
                    rel = f"{folder}/{name}/{k}.jpg"
                    _jpeg(root / rel, rng, size, sketch=folder == "sketch")
                    which = "test" if k >= per else part
                    lists.setdefault(f"{prefix}_filelist_{which}.txt", []).append(f"{rel} {label}")
    for name, content in lists.items():
        (split / name).write_text("".join(line + "\n" for line in content))
    return root
