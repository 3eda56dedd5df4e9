from __future__ import annotations

import pytest

import trainables.dml.data as data
from trainables.dml.data.readers import READERS, get_reader, read_cub200, read_sketchy


def test_registry_resolves_names() -> None:
    assert get_reader("cub200") is read_cub200
    assert get_reader("sketchy") is read_sketchy
    assert sorted(READERS) == ["cars196", "cub200", "prism", "sketchy", "sop", "tuberlin"]


def test_unknown_reader_lists_the_known_ones() -> None:
    with pytest.raises(
        ValueError,
        match=r"unknown dataset reader 'cub'; known readers: "
        r"\['cars196', 'cub200', 'prism', 'sketchy', 'sop', "
        r"'tuberlin'\]",
    ):
        get_reader("cub")


def test_data_package_reexports_its_public_names() -> None:
    for name in data.__all__:
        assert getattr(data, name) is not None
    assert data.get_reader is get_reader
