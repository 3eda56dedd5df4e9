"""The evaluation protocol, enforced (methods.md section 1): during the search no objective
touches a test-class sample, with the fixed validation split or with k-fold cross-validation;
only the final evaluation (``evaluate_test``) reads them.

Instruments:

- digits: the test part the digits loaders build is made of *tripwire* tensors, which log every
  torch operation applied to them (indexing, stacking, a forward pass...); the parts handed to
  the objective are recorded too (the classes of their samples, the parts asked for);
- image benchmarks: every image file opened by the reader (``ImageListDataset._load``) is
  recorded, on a tiny Sketchy-Extended tree (SAKE layout) and a tiny CUB-200-2011 tree.

Each instrument is shown to fire by the final evaluation, or by touching the test part directly.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pytest
import torch
from PIL import Image

import trainables.dml.data.digits as digits
import trainables.dml_data as dml_data
import trainables.sbir.data as sbir_data
from trainables.cross_validation import make_trainable
from trainables.dml.data.folds import class_folds
from trainables.dml.data.images import ImageListDataset
from trainables.dsn import objective as dsn
from trainables.mathm import objective as mathm
from trainables.registry import OBJECTIVES as REGISTERED
from trainables.registry import load_objective
from trainables.reporting import capture_reports

TEST_CLASSES = set(digits.DIGITS_TEST_CLASSES)
# Smaller networks for speed (an objective not named here runs at its defaults).
SMALL: dict[str, dict[str, Any]] = {
    "baseline": {"cnn_width": 8, "embedding_size": 16, "batch_size": 50},
    "ahsml": {"embedding_size": 16, "batch_size": 50, "noise": "none", "noise_rate": 0.0},
    "dsn": {"cnn_width": 8, "embedding_size": 16, "val_max_per_class": 20, "device": "cpu"},
    "mathm": {
        "cnn_width": 8, "embedding_size": 16, "iterations": 3, "val_max_per_class": 20,
        "device": "cpu",
    },
}  # fmt: skip
# Every registered objective that reads data (its config has a dataset): the quadratic has none.
OBJECTIVES = {
    name: load_objective(name)
    for name in sorted(REGISTERED)
    if "dataset" in {f.name for f in dataclasses.fields(load_objective(name).CONFIG)}
}


class Tripwire(torch.Tensor):
    """A tensor that logs every torch operation applied to it (and to what is derived from
    it) in ``Tripwire.log``."""

    log: ClassVar[list[str]] = []

    @classmethod
    def __torch_function__(cls, func, types, args=(), kwargs=None):  # type: ignore[no-untyped-def]
        cls.log.append(getattr(func, "__name__", repr(func)))
        return super().__torch_function__(func, types, args, kwargs or {})


def _wire(tensor: torch.Tensor) -> torch.Tensor:
    return tensor.as_subclass(Tripwire)


@dataclasses.dataclass
class Access:
    """What the data layer handed out: the classes of each part's samples, the parts asked."""

    parts: list[tuple[str, ...]] = dataclasses.field(default_factory=list)
    train: set[int] = dataclasses.field(default_factory=set)
    val: list[set[int]] = dataclasses.field(default_factory=list)  # one entry per load
    test: set[int] = dataclasses.field(default_factory=set)


@pytest.fixture(autouse=True)
def one_thread() -> Iterator[None]:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as a Ray trial on one CPU
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def access(monkeypatch: pytest.MonkeyPatch) -> Access:
    """Tripwire the digits' test parts and record every part the data layer returns."""
    record = Access()
    monkeypatch.setattr(Tripwire, "log", [])

    load_split = digits.load_digits_split

    def wired_split(**kwargs: Any) -> digits.DigitsSplit:
        d = load_split(**kwargs)
        return dataclasses.replace(
            d, test_images=_wire(d.test_images), test_labels=_wire(d.test_labels)
        )

    load_two = sbir_data.load_two_modality_digits

    def wired_two(**kwargs: Any) -> digits.TwoModalityDigits:
        d = load_two(**kwargs)
        test = digits.ModalitySet(*(_wire(t) for t in dataclasses.astuple(d.test)))
        return dataclasses.replace(d, test=test)

    monkeypatch.setattr(digits, "load_digits_split", wired_split)
    monkeypatch.setattr(sbir_data, "load_two_modality_digits", wired_two)

    load_dml = dml_data.load_dml_data

    def recorded_dml(**kwargs: Any) -> dml_data.DMLData:
        data = load_dml(**kwargs)
        record.parts.append(("train", "val"))
        record.train |= set(data.train_labels.tolist())
        record.val.append(set(data.val_labels.tolist()))
        return data

    load_sbir = sbir_data.load_sbir_data

    def recorded_sbir(settings: Any, *, parts: Any = ("train", "val")) -> sbir_data.SBIRData:
        data = load_sbir(settings, parts=parts)
        record.parts.append(tuple(parts))
        if data.train is not None:
            record.train |= {data.train_classes[y] for y in data.train.labels.tolist()}
        if data.val is not None:
            record.val.append(set(data.val.labels.tolist()))
        if data.test is not None:
            record.test |= set(data.test.labels.tolist())
        return data

    monkeypatch.setattr(dml_data, "load_dml_data", recorded_dml)
    for module in (sbir_data, dsn, mathm):
        monkeypatch.setattr(module, "load_sbir_data", recorded_sbir)
    return record


def _run(train: Callable[[dict[str, Any]], None], config: dict[str, Any]) -> list[dict]:
    with capture_reports() as reports:
        train(config)
    return reports


@pytest.mark.parametrize("name", list(OBJECTIVES))
def test_the_search_never_touches_a_test_class(name: str, access: Access) -> None:
    reports = _run(OBJECTIVES[name].train, {"max_epochs": 1, "seed": 0, **SMALL.get(name, {})})
    assert len(reports) == 1 and any(k.startswith("val/") for k in reports[0])
    assert Tripwire.log == []  # no operation at all on a test-class tensor
    assert access.parts == [("train", "val")]
    assert access.train and not access.train & TEST_CLASSES
    assert len(access.val) == 1 and access.val[0] and not access.val[0] & TEST_CLASSES
    assert not access.train & access.val[0]


@pytest.mark.parametrize("name", ["baseline", "mathm"])
def test_cross_validation_folds_stay_off_the_test_classes(name: str, access: Access) -> None:
    config = {"max_epochs": 1, "seed": 2, **SMALL[name]}
    reports = _run(make_trainable(OBJECTIVES[name], 3), config)
    assert [r["cv/folds_done"] for r in reports] == [1.0, 2.0, 3.0]
    assert Tripwire.log == []
    assert not access.train & TEST_CLASSES
    # the folds' validation classes are class_folds' over the 8 non-test digits
    pool = [c for c in range(10) if c not in TEST_CLASSES]
    assert [sorted(v) for v in access.val] == [list(v) for _, v in class_folds(pool, k=3, seed=2)]


@pytest.mark.parametrize("name", ["dsn", "mathm"])
def test_the_final_evaluation_reads_the_test_classes(name: str, access: Access) -> None:
    config = {"seed": 0, **SMALL[name]}
    metrics = OBJECTIVES[name].evaluate_test(OBJECTIVES[name].build_model(config), config)
    assert "test/map_all" in metrics
    assert access.parts == [("test",)] and access.test == TEST_CLASSES
    assert Tripwire.log  # the instrument fires when test samples are used


def test_the_dml_tripwire_fires_on_the_test_part(access: Access) -> None:
    data = digits.load_digits_split(seed=0)
    assert Tripwire.log == []
    assert set(data.test_labels.tolist()) == TEST_CLASSES
    assert Tripwire.log


# --- image benchmarks: the files opened ------------------------------------------------------


@pytest.fixture
def opened(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Relative path of every image file the readers decode."""
    paths: list[str] = []
    load = ImageListDataset._load

    def recorded(self: ImageListDataset, relpath: str) -> torch.Tensor:
        paths.append(relpath)
        return load(self, relpath)

    monkeypatch.setattr(ImageListDataset, "_load", recorded)
    return paths


def _png(path: Path, rng: np.random.Generator) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(rng.integers(0, 256, (10, 10, 3), dtype=np.uint8)).save(path)


@pytest.fixture(scope="module")
def sketchy(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Sketchy split 1 (SAKE layout), tiny: per seen class 2 train + 1 held-out sketch and 2
    photos; per unseen class 1 sketch and 1 photo, in class folders named ``zero<k>``."""
    root = tmp_path_factory.mktemp("data") / "Sketchy"
    rng = np.random.default_rng(0)
    split = root / "zeroshot1"
    split.mkdir(parents=True)
    lists: dict[str, list[str]] = {}
    for kind, count, per in (("seen", 100, 2), ("zero", 25, 1)):
        names = [f"{kind}{c:03d}" for c in range(count)]
        table = "cname_cid.txt" if kind == "seen" else "cname_cid_zero.txt"
        (split / table).write_text("".join(f"{n} {i}\n" for i, n in enumerate(names)))
        for prefix, folder in (("sketch_tx_000000000000_ready", "sketch"), ("all_photo", "photo")):
            for label, name in enumerate(names):
                for k in range(per + (kind == "seen" and folder == "sketch")):
                    rel = f"{folder}/{name}/{k}.png"
                    _png(root / rel, rng)
                    part = "test" if k == per else ("train" if kind == "seen" else "zero")
                    lists.setdefault(f"{prefix}_filelist_{part}.txt", []).append(f"{rel} {label}")
    for name, lines in lists.items():
        (split / name).write_text("".join(line + "\n" for line in lines))
    return root


@pytest.mark.parametrize("folds", [1, 4])
def test_a_sketchy_search_opens_no_unseen_class_file(
    sketchy: Path, opened: list[str], folds: int
) -> None:
    config = {
        **SMALL["mathm"], "dataset": "sketchy", "data_root": str(sketchy), "backbone": "small_cnn",
        "image_size": 16, "num_workers": 0, "val_fraction": 0.1, "classes_per_batch": 2,
        "per_modality": 2, "iterations": 2, "max_epochs": 1, "folds": folds, "fold": folds - 1,
    }  # fmt: skip
    reports = _run(mathm.train, config)
    assert len(reports) == 1 and "val/map_all" in reports[0]
    assert opened and not [p for p in opened if "/zero" in p]
    # the final evaluation opens every unseen-class file (25 sketches, 25 photos)
    opened.clear()
    config = {k: v for k, v in config.items() if k not in ("folds", "fold")}
    mathm.evaluate_test(mathm.build_model(config), config)
    assert len(set(opened)) == 50 and all("/zero" in p for p in opened)


@pytest.fixture(scope="module")
def cub(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """CUB-200-2011 (published layout), tiny: 2 images in each of classes 1-6 (train side) and
    101-103 (test side), none in the others."""
    root = tmp_path_factory.mktemp("data") / "CUB_200_2011"
    rng = np.random.default_rng(1)
    classes = {c: f"{c:03d}.bird_{c}" for c in range(1, 201)}
    images, labels = [], []
    for c in [*range(1, 7), *range(101, 104)]:
        for k in range(2):
            rel = f"{classes[c]}/{k}.jpg"
            _png(root / "images" / rel, rng)
            images.append(rel)
            labels.append(c)
    (root / "classes.txt").write_text("".join(f"{c} {n}\n" for c, n in classes.items()))
    (root / "images.txt").write_text("".join(f"{i + 1} {p}\n" for i, p in enumerate(images)))
    (root / "image_class_labels.txt").write_text(
        "".join(f"{i + 1} {c}\n" for i, c in enumerate(labels))
    )
    return root


@pytest.mark.parametrize("folds", [1, 3])
def test_a_cub_search_opens_no_test_class_file(cub: Path, opened: list[str], folds: int) -> None:
    val_classes = []
    for fold in range(folds):
        data = dml_data.load_dml_data(
            dataset="cub200", data_root=str(cub), seed=0, noise="none", noise_rate=0.0,
            image_size=8, folds=folds, fold=fold,
        )  # fmt: skip
        for part in (data.train, data.val):
            for i in range(len(part)):
                part[i]
        val_classes.append(set(data.val_labels.tolist()))
    classes = {int(Path(p).parent.name.split(".")[0]) for p in opened}
    assert classes == set(range(1, 7))  # every train-side class read, no test class
    if folds > 1:  # each train-side class validated exactly once
        assert sorted(c for v in val_classes for c in v) == list(range(1, 7))
