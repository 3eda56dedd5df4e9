from __future__ import annotations

from pathlib import Path

import pytest

from trainables.dml.data.images import ImageListDataset
from trainables.dml.data.readers import LayoutError, read_prism

CUB = "/data/CUB_200_2011/images"


def _write(path: Path, rows: list[tuple[str, int]]) -> None:
    path.write_text("".join(f"{p},{label}\n" for p, label in rows))


def _lists(root: Path) -> Path:
    root.mkdir()
    clean = [(f"{CUB}/001.Black_footed_Albatross/a_{i}.jpg", 1) for i in range(3)]
    clean += [(f"{CUB}/002.Laysan_Albatross/b_{i}.jpg", 2) for i in range(3)]
    _write(root / "CUB_train.csv", clean)
    _write(root / "CUB_test.csv", [(f"{CUB}/101.White_Pelican/p_0.jpg", 101)])
    noisy = [(p, 2 if i == 0 else label) for i, (p, label) in enumerate(clean)]
    _write(root / "CUB_0.2noised_train.csv", noisy)
    _write(root / "CUB_0.2noised_cleaned_train.csv", clean[1:])
    _write(root / "CUB_0.25smallclusternoised_train.csv", [(p, label - 1) for p, label in clean])
    _write(root / "CARSN_train.csv", [("/data/cars_noise/img_v3/0/x--hummer.jpg", 1)])
    _write(root / "CARSN_test.csv", [("/data/cars196/images/FIAT 500 Abarth 2012/07729.jpg", 99)])
    return root


def test_reads_lists_relative_to_the_dataset_root(tmp_path: Path, write_png) -> None:
    root = _lists(tmp_path / "noisy-dml")
    lists = read_prism(root)
    assert lists.train_file == "CUB_train.csv" and lists.train_root == "CUB_200_2011"
    assert lists.train[0] == ("images/001.Black_footed_Albatross/a_0.jpg", 1)
    assert lists.test == [("images/101.White_Pelican/p_0.jpg", 101)]
    # the stripped paths resolve under a CUB_200_2011 directory
    cub = tmp_path / "CUB_200_2011"
    for path, _ in lists.train:
        write_png(cub / path)
    assert len(ImageListDataset(cub, lists.train)) == 6


def test_selects_the_noisy_file(tmp_path: Path) -> None:
    root = _lists(tmp_path / "noisy-dml")
    noisy = read_prism(root, noise="symmetric", rate=0.2)
    assert noisy.train_file == "CUB_0.2noised_train.csv" and noisy.train[0][1] == 2
    cleaned = read_prism(root, noise="symmetric", rate=0.2, cleaned=True)
    assert cleaned.train_file == "CUB_0.2noised_cleaned_train.csv" and len(cleaned.train) == 5
    cluster = read_prism(root, noise="small_cluster", rate=0.25)
    assert cluster.train_file == "CUB_0.25smallclusternoised_train.csv"
    carsn = read_prism(root, dataset="CARSN")
    assert (carsn.train_root, carsn.test_root) == ("cars_noise", "cars196")
    assert carsn.train == [("img_v3/0/x--hummer.jpg", 1)]
    assert carsn.test == [("images/FIAT 500 Abarth 2012/07729.jpg", 99)]


def test_bad_options_and_files(tmp_path: Path) -> None:
    root = _lists(tmp_path / "noisy-dml")
    with pytest.raises(ValueError, match=r"unknown PRISM dataset 'SOP'; known: \['CARS'"):
        read_prism(root, dataset="SOP")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="needs a rate"):
        read_prism(root, noise="symmetric")
    with pytest.raises(ValueError, match="CARSN carries real noise"):
        read_prism(root, dataset="CARSN", noise="symmetric", rate=0.1)
    with pytest.raises(
        LayoutError,
        match=r"(?s)lacks CUB_0\.5noised_train\.csv\. Expected "
        r"layout:.*CSV files present: \['CARSN_test\.csv'",
    ):
        read_prism(root, noise="symmetric", rate=0.5)
    with pytest.raises(LayoutError, match=r"(?s)lacks CARS_train\.csv.*CARS_test\.csv"):
        read_prism(root, dataset="CARS")
    (root / "CUB_test.csv").write_text("/data/CUB_200_2011/images/x.jpg;101\n")
    with pytest.raises(LayoutError, match=r"CUB_test\.csv:1: expected '<path>,<integer label>'"):
        read_prism(root)
    (root / "CUB_test.csv").write_text("/data/birds/images/x.jpg,101\n")
    with pytest.raises(
        LayoutError,
        match=r"CUB_test\.csv:1: expected a path through a "
        r"'CUB_200_2011' folder",
    ):
        read_prism(root)
    (root / "CUB_train.csv").write_text("/data/birds/images/y.jpg,1\n")
    assert read_prism(root, root_folder="birds").test == [("images/x.jpg", 101)]


def _by_path(root: Path, **options) -> dict[str, int]:
    return dict(read_prism(root, **options).train)


def test_published_cub_lists(shared_data: Path) -> None:
    root = shared_data / "noisy-dml"
    lists = read_prism(root)
    assert len(lists.train) == 5_864 and len(lists.test) == 5_924
    assert {label for _, label in lists.train} == set(range(1, 101))
    assert {label for _, label in lists.test} == set(range(101, 201))
    assert all(p.startswith("images/") for p, _ in lists.train + lists.test)


@pytest.mark.parametrize(("rate", "published"), [(0.1, 9.7), (0.2, 19.6), (0.5, 49.7)])
def test_published_cub_symmetric_rates(shared_data: Path, rate: float, published: float) -> None:
    root = shared_data / "noisy-dml"
    clean = _by_path(root)
    noisy = _by_path(root, noise="symmetric", rate=rate)
    assert noisy.keys() == clean.keys()  # same images, only labels differ
    flipped = {p for p in clean if noisy[p] != clean[p]}
    assert round(100 * len(flipped) / 5_864, 1) == published
    cleaned = _by_path(root, noise="symmetric", rate=rate, cleaned=True)
    assert cleaned.keys() == clean.keys() - flipped  # the cleaned list is the unflipped rest
    assert all(cleaned[p] == clean[p] for p in cleaned)
