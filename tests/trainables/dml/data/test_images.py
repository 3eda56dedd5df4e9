from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from torch.utils.data import DataLoader

from trainables.dml.data.images import ImageListDataset


def _tree(root: Path, write_png: Callable[..., Path], n: int = 4) -> list[tuple[str, int]]:
    items = []
    for i in range(n):
        rel = f"class {i % 2}/img_{i}.png"  # spaces in names, as in TU-Berlin
        write_png(root / rel, value=i, size=6 + i)
        items.append((rel, i % 2))
    return items


def _truncate(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def test_loads_float_images_labels_and_modality(tmp_path: Path, write_png) -> None:
    items = _tree(tmp_path, write_png)
    ds = ImageListDataset(tmp_path, items, transform=lambda x: x[:, :5, :5])
    image, label = ds[3]
    assert image.shape == (3, 5, 5) and image.dtype == torch.float32
    assert 0.0 <= image.min() and image.max() <= 1.0 and label == 1
    assert len(ds) == 4 and ds.labels == [0, 1, 0, 1]
    gray = ImageListDataset(tmp_path, items, modality=0, mode="L")
    image, label, modality = gray[0]
    assert image.shape == (1, 6, 6) and (label, modality) == (0, 0)


def test_feeds_a_dataloader(tmp_path: Path, write_png) -> None:
    items = _tree(tmp_path, write_png)
    ds = ImageListDataset(tmp_path, items, transform=lambda x: x[:, :6, :6])
    images, labels = next(iter(DataLoader(ds, batch_size=4)))
    assert images.shape == (4, 3, 6, 6) and labels.tolist() == [0, 1, 0, 1]


def test_missing_files_are_named_up_front(tmp_path: Path, write_png) -> None:
    items = _tree(tmp_path, write_png)
    items += [("class 0/gone_a.png", 0), ("class 1/gone_b.png", 1)]
    with pytest.raises(
        FileNotFoundError,
        match=r"2 of 6 listed images are missing .*first: class 0/gone_a.png, "
        r"class 1/gone_b.png",
    ):
        ImageListDataset(tmp_path, items)
    with pytest.raises(FileNotFoundError, match="is not a directory"):
        ImageListDataset(tmp_path / "nowhere", items)
    with pytest.raises(ValueError, match="no images listed"):
        ImageListDataset(tmp_path, [])
    with pytest.raises(ValueError, match="on_bad_image must be 'fail' or 'skip'"):
        ImageListDataset(tmp_path, items[:1], on_bad_image="ignore")  # type: ignore[arg-type]


def test_truncated_image_fails_naming_the_file(tmp_path: Path, write_png) -> None:
    items = _tree(tmp_path, write_png)
    _truncate(tmp_path / items[1][0])
    ds = ImageListDataset(tmp_path, items)
    assert ds[0][1] == 0  # good images still load
    with pytest.raises(OSError, match=r"cannot read image .*class 1/img_1\.png"):
        ds[1]
    with pytest.raises(OSError, match=r"img_1\.png"):
        ds.scan()


def test_skip_replaces_and_counts_bad_images(tmp_path: Path, write_png) -> None:
    items = _tree(tmp_path, write_png)
    _truncate(tmp_path / items[1][0])
    (tmp_path / items[2][0]).write_bytes(b"not an image at all")
    ds = ImageListDataset(tmp_path, items, on_bad_image="skip")
    image, label = ds[1]  # img_1 and img_2 are bad: img_3 comes instead
    assert ds.skipped == ["class 1/img_1.png", "class 0/img_2.png"]
    assert label == 1 and image.shape == (3, 9, 9)  # img_3 is 9x9
    ds[1]
    assert len(ds.skipped) == 2  # counted once each
    fresh = ImageListDataset(tmp_path, items, on_bad_image="skip")
    assert fresh.scan() == ["class 1/img_1.png", "class 0/img_2.png"]
    assert len(fresh) == 2 and fresh.skipped == ["class 1/img_1.png", "class 0/img_2.png"]
