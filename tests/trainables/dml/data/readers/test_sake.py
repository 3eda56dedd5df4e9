from __future__ import annotations

from pathlib import Path

import pytest

from trainables.dml.data.images import ImageListDataset
from trainables.dml.data.readers import LayoutError, read_sketchy, read_tuberlin

SEEN = ["wrist-watch", "alarm clock", "pig"]  # class names may hold spaces (TU-Berlin)
UNSEEN = ["banana", "bottle opener"]


def _write_list(path: Path, items: list[tuple[str, int]]) -> None:
    path.write_text("".join(f"{p} {label}\n" for p, label in items))


def _tuberlin_tree(root: Path, write_png, *, photo_train_labels=None) -> Path:
    split = root / "zeroshot"
    split.mkdir(parents=True)
    (split / "cname_cid.txt").write_text("".join(f"{n} {i}\n" for i, n in enumerate(SEEN)))
    (split / "cname_cid_zero.txt").write_text("".join(f"{n} {i} \n" for i, n in enumerate(UNSEEN)))
    counts = {"train": 3, "test": 1, "zero": 2}
    for modality, folder, ext in (
        ("png_ready", "png_ready", "png"),
        ("ImageResized_ready", "ImageResized_ready", "JPEG"),
    ):
        for part, n in counts.items():
            if modality == "ImageResized_ready" and part == "test":
                continue  # SAKE ships no photo test list
            classes = UNSEEN if part == "zero" else SEEN
            items = []
            for cid, name in enumerate(classes):
                for k in range(n):
                    rel = f"{folder}/{name}/{part}_{k}.{ext}"
                    write_png(root / rel, value=k)
                    label = cid
                    if photo_train_labels and modality == "ImageResized_ready" and part == "train":
                        label = photo_train_labels[cid]
                    items.append((rel, label))
            _write_list(split / f"{modality}_filelist_{part}.txt", items)
    return root


def test_reads_lists_labelled_by_class_table(tmp_path: Path, write_png) -> None:
    root = _tuberlin_tree(tmp_path / "TUBerlin", write_png)
    lists = read_tuberlin(root)
    assert lists.seen_classes == tuple(SEEN) and lists.unseen_classes == tuple(UNSEEN)
    assert {k: len(v) for k, v in lists.sketch.items()} == {"train": 9, "test": 3, "zero": 4}
    assert {k: len(v) for k, v in lists.photo.items()} == {"train": 9, "zero": 4}
    assert ("png_ready/alarm clock/train_0.png", 1) in lists.sketch["train"]
    assert ("ImageResized_ready/bottle opener/zero_1.JPEG", 1) in lists.photo["zero"]
    assert lists.relabelled == ()
    ds = ImageListDataset(root, lists.photo["zero"], modality=1)
    assert ds[0][1:] == (0, 1)


def test_parts_and_modalities_select_lists(tmp_path: Path, write_png) -> None:
    root = _tuberlin_tree(tmp_path / "TUBerlin", write_png)
    (root / "zeroshot" / "ImageResized_ready_filelist_train.txt").unlink()
    lists = read_tuberlin(root, parts=("zero",))
    assert set(lists.sketch) == set(lists.photo) == {"zero"}
    assert set(read_tuberlin(root, parts=("train",), modalities=("sketch",)).sketch) == {"train"}
    with pytest.raises(
        LayoutError,
        match=r"(?s)lacks zeroshot/ImageResized_ready_filelist_train"
        r"\.txt\. Expected layout:.*cname_cid_zero\.txt",
    ):
        read_tuberlin(root)
    with pytest.raises(ValueError, match="parts must be a non-empty subset"):
        read_tuberlin(root, parts=("val",))
    with pytest.raises(ValueError, match="modalities must be a non-empty subset"):
        read_tuberlin(root, modalities=("drawing",))


def test_renumbered_label_column_is_relabelled_and_reported(tmp_path: Path, write_png) -> None:
    # like the published Sketchy split-2 photo train list: 0, 100, 200 ... instead of the ids
    root = _tuberlin_tree(tmp_path / "TUBerlin", write_png, photo_train_labels=[200, 0, 100])
    lists = read_tuberlin(root)
    assert lists.relabelled == ("zeroshot/ImageResized_ready_filelist_train.txt",)
    assert ("ImageResized_ready/pig/train_0.JPEG", 2) in lists.photo["train"]


def test_inconsistent_labels_are_errors(tmp_path: Path, write_png) -> None:
    root = _tuberlin_tree(tmp_path / "TUBerlin", write_png, photo_train_labels=[5, 5, 1])
    with pytest.raises(
        LayoutError,
        match=r"ImageResized_ready_filelist_train\.txt:4: expected "
        r"label 5 to name one class",
    ):
        read_tuberlin(root)


def test_malformed_files_name_the_layout(tmp_path: Path, write_png) -> None:
    root = _tuberlin_tree(tmp_path / "TUBerlin", write_png)
    zero = root / "zeroshot" / "png_ready_filelist_zero.txt"
    text = zero.read_text()
    zero.write_text(text + "png_ready/kiwi/1.png 0\n")
    with pytest.raises(
        LayoutError,
        match=r"(?s)png_ready_filelist_zero\.txt:5: expected a class "
        r"folder .*'kiwi' is not one.*Expected layout",
    ):
        read_tuberlin(root)
    zero.write_text(text + "png_ready/banana/9.png\n")
    with pytest.raises(LayoutError, match=r"expected '<relative path> <integer label>'"):
        read_tuberlin(root)
    zero.write_text(text)
    (root / "zeroshot" / "cname_cid.txt").write_text("pig 0\nwrist-watch 2\n")
    with pytest.raises(LayoutError, match=r"class ids must be 0\.\.1 once each"):
        read_tuberlin(root)


def test_sketchy_checks_split_and_names_its_files(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="Sketchy split must be 1 or 2"):
        read_sketchy(tmp_path, split=3)
    (tmp_path / "Sketchy").mkdir()
    with pytest.raises(
        LayoutError,
        match=r"(?s)lacks zeroshot2/sketch_tx_000000000000_ready_"
        r"filelist_train\.txt.*all_photo_filelist_zero\.txt",
    ):
        read_sketchy(tmp_path / "Sketchy", split=2)


def test_published_sketchy_split1_counts(shared_data: Path) -> None:
    lists = read_sketchy(shared_data / "zs-sbir" / "Sketchy", split=1, parts=("zero",))
    assert len(lists.sketch["zero"]) == 15_229
    assert len(lists.photo["zero"]) == 17_101
    assert len(lists.unseen_classes) == 25 and len(lists.seen_classes) == 100
    assert {label for _, label in lists.sketch["zero"]} == set(range(25))
    assert not set(lists.seen_classes) & set(lists.unseen_classes)


def test_published_tuberlin_counts(shared_data: Path) -> None:
    lists = read_tuberlin(shared_data / "zs-sbir" / "TUBerlin", parts=("zero",))
    assert len(lists.sketch["zero"]) == 2_400
    assert len(lists.photo["zero"]) == 27_989
    assert len(lists.unseen_classes) == 30 and len(lists.seen_classes) == 220
    assert {label for _, label in lists.photo["zero"]} == set(range(30))


def test_published_sketchy_split2_photo_train_is_relabelled(shared_data: Path) -> None:
    lists = read_sketchy(
        shared_data / "zs-sbir" / "Sketchy", split=2, parts=("train",), modalities=("photo",)
    )
    assert lists.relabelled == ("zeroshot2/all_photo_filelist_train.txt",)
    assert len(lists.seen_classes) == 104
    path, label = lists.photo["train"][0]
    assert lists.seen_classes[label] == Path(path).parent.name  # airplane: 93, not 0


def test_placeholder_tree_from_a_published_list(
    shared_data: Path, tmp_path: Path, write_png
) -> None:
    root = tmp_path / "TUBerlin"
    split = root / "zeroshot"
    split.mkdir(parents=True)
    source = shared_data / "zs-sbir" / "TUBerlin" / "zeroshot"
    for name in ("cname_cid.txt", "cname_cid_zero.txt"):
        (split / name).write_text((source / name).read_text())
    for name in ("png_ready_filelist_zero.txt", "ImageResized_ready_filelist_zero.txt"):
        lines = (source / name).read_text().splitlines()[::400]  # a sample, spaces included
        (split / name).write_text("\n".join(lines) + "\n")
        for line in lines:
            write_png(root / line.rsplit(" ", 1)[0], value=len(line))
    lists = read_tuberlin(root, parts=("zero",))
    sketches = ImageListDataset(root, lists.sketch["zero"], modality=0)
    assert len(sketches) == 6 and sketches[5][2] == 0
    assert any(" " in p for p, _ in lists.photo["zero"])
    assert len(ImageListDataset(root, lists.photo["zero"])) == 70
