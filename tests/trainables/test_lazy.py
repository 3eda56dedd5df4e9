"""Lazy package attributes: the small-CNN path never imports torchvision, and the lazy names
are the submodules' own objects."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

import trainables.dml.backbones as backbones
import trainables.dml.data as data
from trainables.dml.backbones import cse_resnet, weights
from trainables.dml.data import augment, readers

ROOT = Path(__file__).resolve().parents[2]


def test_the_baseline_trial_path_does_not_import_torchvision() -> None:
    code = (
        "import sys\n"
        "import trainables.baseline, trainables.dml_data, trainables.dml.evaluation\n"
        "import trainables.dml.data, trainables.dml.backbones\n"
        "trainables.baseline.build_model({})\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] == 'torchvision'))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        env={"PYTHONPATH": f"{ROOT}:{ROOT / 'platform'}", "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        check=True,
    )
    assert out.stdout.strip() == "[]"


def test_lazy_names_are_the_submodules_objects() -> None:
    assert backbones.CSEResNet50 is cse_resnet.CSEResNet50
    assert backbones.IMAGENET is weights.IMAGENET
    assert data.weak_augment is augment.weak_augment
    assert data.get_reader is readers.get_reader
    for package in (backbones, data):
        missing = [name for name in package.__all__ if not hasattr(package, name)]
        assert missing == []


def test_unknown_names_raise_attribute_error() -> None:
    with pytest.raises(AttributeError, match="has no attribute 'nope'"):
        _ = data.nope  # type: ignore[attr-defined]
