from __future__ import annotations

import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torch.utils.data import DataLoader

from trainables.dml.data.images import (
    ImageListDataset,
    UnreadableImagesError,
    UnreadableImageWarning,
)


def _tree(
    root: Path, write_png: Callable[..., Path], n: int = 4, classes: int = 2
) -> list[tuple[str, int]]:
    items = []
    for i in range(n):
        rel = f"class {i % classes}/img_{i}.png"  # spaces in names, as in TU-Berlin
        write_png(root / rel, value=i, size=6 + i % 4)
        items.append((rel, i % classes))
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
    assert ds.skipped == 0 and ds.skipped_paths == []
    gray = ImageListDataset(tmp_path, items, modality=0, mode="L")
    image, label, modality = gray[0]
    assert image.shape == (1, 6, 6) and (label, modality) == (0, 0)


def test_feeds_a_dataloader(tmp_path: Path, write_png) -> None:
    items = _tree(tmp_path, write_png)
    ds = ImageListDataset(tmp_path, items, transform=lambda x: x[:, :6, :6])
    images, labels = next(iter(DataLoader(ds, batch_size=4)))
    assert images.shape == (4, 3, 6, 6) and labels.tolist() == [0, 1, 0, 1]


def test_missing_files_and_bad_arguments_are_named_up_front(tmp_path: Path, write_png) -> None:
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
    for fraction in (-0.1, 1.0):
        with pytest.raises(ValueError, match=r"max_bad_fraction must be in \[0, 1\)"):
            ImageListDataset(tmp_path, items[:1], max_bad_fraction=fraction)


@pytest.mark.parametrize("suffix", ["png", "jpg"])
def test_a_truncated_image_in_a_small_list_fails_naming_it(tmp_path: Path, suffix: str) -> None:
    """Under 100 images, 1% allows none: the first unreadable image is an error."""
    items = []
    for i in range(4):
        rel = f"c{i % 2}/img_{i}.{suffix}"
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        pixels = np.random.default_rng(i).integers(0, 256, (32, 32, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(tmp_path / rel)
        items.append((rel, i % 2))
    _truncate(tmp_path / items[1][0])
    ds = ImageListDataset(tmp_path, items)
    assert ds.max_bad == 0
    assert ds[0][1] == 0  # good images still load
    with pytest.raises(
        UnreadableImagesError,
        match=rf"1 of 4 images under {tmp_path} cannot be decoded, more than the 0 "
        rf"\(max_bad_fraction=0.01\).*: c1/img_1\.{suffix}\. Repair or remove.*"
        rf"\(latest: cannot read image {tmp_path}/c1/img_1\.{suffix}: .*(?i:truncated)",
    ):
        ds[1]
    assert ds.skipped == 1 and ds.skipped_paths == [f"c1/img_1.{suffix}"]
    assert issubclass(UnreadableImagesError, OSError)


def test_up_to_one_percent_is_skipped_with_a_warning(tmp_path: Path, write_png) -> None:
    items = _tree(tmp_path, write_png, n=100, classes=4)
    _truncate(tmp_path / items[5][0])  # label 1
    ds = ImageListDataset(tmp_path, items)
    assert ds.max_bad == 1
    with pytest.warns(UnreadableImageWarning) as caught:
        image, label = ds[5]
    # Served by the next readable image of the same label: item 9 (label 1).
    assert label == 1 and torch.equal(image, ds[9][0])
    (warning,) = caught
    message = str(warning.message)
    assert "class 1/img_5.png" in message and "truncated" in message
    assert "1 of 100" in message and "at most 1 allowed" in message
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # met again: neither warned nor counted twice
        assert ds[5][1] == 1
    assert ds.skipped == 1 and ds.skipped_paths == ["class 1/img_5.png"]
    # A second one is more than 1%: the error names both.
    (tmp_path / items[42][0]).write_bytes(b"not an image at all")
    with pytest.raises(UnreadableImagesError, match=r"2 of 100 .*img_5\.png, class 2/img_42"):
        ds[42]
    with pytest.raises(UnreadableImagesError):  # and stays an error
        ds[5]


def test_a_label_with_no_readable_image_is_an_error(tmp_path: Path, write_png) -> None:
    items = _tree(tmp_path, write_png, n=6, classes=3)  # label 2: items 2 and 5
    for index in (2, 5):
        _truncate(tmp_path / items[index][0])
    ds = ImageListDataset(tmp_path, items, max_bad_fraction=0.5)
    with (
        pytest.warns(UnreadableImageWarning),
        pytest.raises(UnreadableImagesError, match="no readable image of label 2"),
    ):
        ds[2]
    assert ds.skipped == 2


def test_dataloader_workers_share_the_count_and_the_limit(tmp_path: Path, write_png) -> None:
    items = _tree(tmp_path, write_png, n=100, classes=4)
    _truncate(tmp_path / items[60][0])
    ds = ImageListDataset(tmp_path, items, transform=lambda x: x[:, :6, :6])
    loader = DataLoader(ds, batch_size=50, num_workers=2)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UnreadableImageWarning)  # raised in the worker
        labels = torch.cat([batch_labels for _, batch_labels in loader])
    assert labels.tolist() == ds.labels  # every item kept its label
    assert ds.skipped == 1 and ds.skipped_paths == ["class 0/img_60.png"]  # seen by the parent
    # One unreadable image per worker: neither alone is over the limit, together they are.
    _truncate(tmp_path / items[10][0])
    fresh = ImageListDataset(tmp_path, items, transform=lambda x: x[:, :6, :6])
    with pytest.raises(UnreadableImagesError, match="2 of 100"):
        list(DataLoader(fresh, batch_size=50, num_workers=2))


def test_scan_applies_the_policy_up_front(tmp_path: Path, write_png) -> None:
    items = _tree(tmp_path, write_png, n=20)
    _truncate(tmp_path / items[3][0])
    (tmp_path / items[8][0]).write_bytes(b"GIF89a but not really")
    ds = ImageListDataset(tmp_path, items, max_bad_fraction=0.1)  # at most 2
    with pytest.warns(UnreadableImageWarning):
        assert ds.scan() == ["class 1/img_3.png", "class 0/img_8.png"]
    assert len(ds) == 20 and ds.skipped == 2  # indices stay valid for samplers
    strict = ImageListDataset(tmp_path, items, max_bad_fraction=0.0)
    with pytest.raises(UnreadableImagesError, match=r"1 of 20 .*img_3\.png"):
        strict.scan()
