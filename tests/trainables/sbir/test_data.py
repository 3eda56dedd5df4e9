"""Train / validation / test parts of the SBIR objectives: the digits and a tiny SAKE tree."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from trainables.dml.data.layout_trees import write_sketchy
from trainables.dml.data.readers import LayoutError
from trainables.sbir.data import (
    SBIRSettings,
    load_sbir_data,
    num_train_classes,
    resolve_data_root,
)


@pytest.fixture(scope="module")
def sketchy(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_sketchy(
        tmp_path_factory.mktemp("data") / "Sketchy", per_class=2, per_unseen=1, held_out=1, size=12
    )


def test_digits_parts_are_class_disjoint_and_relabelled() -> None:
    settings = SBIRSettings(seed=3)
    data = load_sbir_data(settings, parts=("train", "val", "test"))
    assert data.train is not None and data.val is not None and data.test is not None
    c = num_train_classes(settings)
    assert data.num_classes == c == 6
    assert sorted(data.train.labels.unique().tolist()) == list(range(c))
    seen = set(data.train_classes) | set(data.val_classes)
    assert set(data.val.labels.tolist()) == set(data.val_classes)
    assert set(data.test.labels.tolist()) == set(data.test_classes) == {8, 9}
    assert not set(data.train_classes) & set(data.val_classes) and not seen & {8, 9}
    for part in (data.train, data.val, data.test):
        assert set(part.modalities.tolist()) == {0, 1}


def test_validation_cap_per_class_and_modality() -> None:
    data = load_sbir_data(SBIRSettings(val_max_per_class=7), parts=("val",))
    assert data.val is not None and data.train is None
    for c in data.val_classes:
        for m in (0, 1):
            assert int(((data.val.labels == c) & (data.val.modalities == m)).sum()) == 7


def test_tensor_part_views_are_stacked_after_the_clean_image() -> None:
    data = load_sbir_data(SBIRSettings(), parts=("train",))
    assert data.train is not None
    batches = [[0, 5, 9], [1, 2]]
    out = list(data.train.batches(batches, views=2, generator=torch.Generator()))
    images, labels, tags = out[0]
    assert images.shape == (3, 3, 1, 16, 16)
    torch.testing.assert_close(images[:, 0], data.train.images[[0, 5, 9]])  # type: ignore[attr-defined]
    assert labels.tolist() == data.train.labels[[0, 5, 9]].tolist()
    assert out[1][0].shape == (2, 3, 1, 16, 16)


def test_num_train_classes_of_the_benchmarks_needs_no_data() -> None:
    assert num_train_classes(SBIRSettings(dataset="sketchy", val_fraction=0.1)) == 90
    assert (
        num_train_classes(SBIRSettings(dataset="sketchy", sketchy_split=2, val_fraction=0.1)) == 94
    )
    assert num_train_classes(SBIRSettings(dataset="tuberlin", val_fraction=0.1)) == 198
    with pytest.raises(ValueError, match="sketchy_split"):
        num_train_classes(SBIRSettings(dataset="sketchy", sketchy_split=3))


def test_sake_parts(sketchy: Path) -> None:
    settings = SBIRSettings(dataset="sketchy", data_root=str(sketchy), val_fraction=0.1,
                            image_size=8, num_workers=0)  # fmt: skip
    data = load_sbir_data(settings, parts=("train", "val", "test"))
    assert data.train is not None and data.val is not None and data.test is not None
    assert data.num_classes == 90 and len(data.val_classes) == 10
    assert sorted(data.train.labels.unique().tolist()) == list(range(90))
    # validation: the train and held-out test sketches of its classes, photos of its classes
    assert set(data.val.labels.tolist()) == set(data.val_classes)
    assert int((data.val.modalities == 0).sum()) == 10 * 3
    assert int((data.val.modalities == 1).sum()) == 10 * 2
    assert int((data.train.modalities == 0).sum()) == 90 * 2  # train list only
    assert set(data.test.labels.tolist()) == set(range(25))
    images, labels, tags = next(
        data.train.batches([[0, 1, 200]], views=2, generator=torch.Generator().manual_seed(0))
    )
    assert images.shape == (3, 3, 3, 8, 8) and tags.tolist() == [0, 0, 1]
    assert labels.tolist() == data.train.labels[[0, 1, 200]].tolist()
    order = torch.cat([y for _, y, _ in data.test.eval_batches(7)])
    assert order.tolist() == data.test.labels.tolist()


def test_data_root_from_the_environment_and_variables(
    sketchy: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DMLSWEEP_SKETCHY_ROOT", str(sketchy))
    assert resolve_data_root(SBIRSettings(dataset="sketchy")) == sketchy
    monkeypatch.setenv("MY_DATA", str(sketchy.parent))
    assert (
        resolve_data_root(SBIRSettings(dataset="sketchy", data_root="$MY_DATA/Sketchy")) == sketchy
    )


def test_missing_data_root_shows_the_layout(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DMLSWEEP_TUBERLIN_ROOT", raising=False)
    with pytest.raises(LayoutError) as err:
        load_sbir_data(SBIRSettings(dataset="tuberlin"))
    assert "--set data_root=DIR" in str(err.value)
    assert "ImageResized_ready_filelist_zero.txt" in str(err.value)
    monkeypatch.delenv("NOT_SET_ANYWHERE", raising=False)
    with pytest.raises(LayoutError, match="NOT_SET_ANYWHERE"):
        resolve_data_root(SBIRSettings(dataset="tuberlin", data_root="${NOT_SET_ANYWHERE}"))


def test_a_directory_without_the_layout_is_refused(tmp_path: Path) -> None:
    with pytest.raises(LayoutError, match="cname_cid.txt"):
        load_sbir_data(SBIRSettings(dataset="sketchy", data_root=str(tmp_path)))


def test_unknown_parts_are_refused() -> None:
    with pytest.raises(ValueError, match="parts"):
        load_sbir_data(SBIRSettings(), parts=("validation",))
