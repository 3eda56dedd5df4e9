"""Data: class-disjoint splits, label noise, samplers, augmentations, the embedded digits task,
image-list datasets and readers of the published benchmark layouts (methods.md 1 and 7)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from trainables.dml.data.digits import (
    DIGITS_TEST_CLASSES,
    DigitsSplit,
    ModalitySet,
    TwoModalityDigits,
    digits_images,
    load_digits_split,
    load_two_modality_digits,
    sketch_modality,
)
from trainables.dml.data.noise import NoisyLabels, small_cluster_noise, symmetric_noise
from trainables.dml.data.samplers import MPerClassSampler, PKModalitySampler
from trainables.dml.data.splits import ClassSplit, split_classes
from trainables.lazy import lazy_attributes

if TYPE_CHECKING:
    from trainables.dml.data.augment import (
        AugmentedPair,
        TwoViews,
        dsn_color_augment,
        per_sample,
        strong_augment,
        weak_augment,
    )
    from trainables.dml.data.images import ImageListDataset, Item
    from trainables.dml.data.readers import (
        READERS,
        LayoutError,
        PrismLists,
        SakeLists,
        get_reader,
        read_cars196,
        read_cub200,
        read_prism,
        read_sketchy,
        read_sop,
        read_tuberlin,
    )

# torchvision's modules: imported on first use (see trainables.lazy).
__getattr__ = lazy_attributes(
    __name__,
    {
        "augment": (
            "AugmentedPair",
            "TwoViews",
            "dsn_color_augment",
            "per_sample",
            "strong_augment",
            "weak_augment",
        ),
        "images": ("ImageListDataset", "Item"),
        "readers": (
            "READERS",
            "LayoutError",
            "PrismLists",
            "SakeLists",
            "get_reader",
            "read_cars196",
            "read_cub200",
            "read_prism",
            "read_sketchy",
            "read_sop",
            "read_tuberlin",
        ),
    },
)

__all__ = [
    "DIGITS_TEST_CLASSES",
    "READERS",
    "AugmentedPair",
    "ClassSplit",
    "DigitsSplit",
    "ImageListDataset",
    "Item",
    "LayoutError",
    "MPerClassSampler",
    "ModalitySet",
    "NoisyLabels",
    "PKModalitySampler",
    "PrismLists",
    "SakeLists",
    "TwoModalityDigits",
    "TwoViews",
    "digits_images",
    "dsn_color_augment",
    "get_reader",
    "load_digits_split",
    "load_two_modality_digits",
    "per_sample",
    "read_cars196",
    "read_cub200",
    "read_prism",
    "read_sketchy",
    "read_sop",
    "read_tuberlin",
    "sketch_modality",
    "small_cluster_noise",
    "split_classes",
    "strong_augment",
    "symmetric_noise",
    "weak_augment",
]
