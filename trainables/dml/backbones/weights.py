"""Backbone weights: ``None`` (random init), a local state-dict file, or ``"imagenet"``.

``"imagenet"`` reads torchvision's ImageNet-1k V1 file from the torch-hub cache,
``torch.hub.get_dir()/checkpoints/<file name of the weights URL>`` -- the very file
``torchvision.models.resnet50(weights="IMAGENET1K_V1")`` downloads there -- and never downloads
(this project runs without network). Loading is strict about what it does not explain: every
key of the model must come from the file unless it is declared ``fresh`` (e.g. the SE layers
of a CSE-ResNet built on a plain ResNet), every key of the file must exist in the model unless
declared ``ignore`` (e.g. the ImageNet classifier ``fc.*``), and shapes must agree.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

import torch
from torch import Tensor, nn
from torchvision.models import ResNet18_Weights, ResNet50_Weights

__all__ = [
    "IMAGENET",
    "IMAGENET_URLS",
    "LoadedWeights",
    "WeightsSpec",
    "check_weights",
    "imagenet_weights_path",
    "load_backbone_weights",
    "load_state_dict_into",
    "read_state_dict",
]

IMAGENET = "imagenet"

# V1 (the original torchvision training), the weights the DML / ZS-SBIR literature started from
IMAGENET_URLS: dict[str, str] = {
    "resnet18": ResNet18_Weights.IMAGENET1K_V1.url,
    "resnet50": ResNet50_Weights.IMAGENET1K_V1.url,
}

WeightsSpec = str | Path | None
"""``None`` (random init), ``"imagenet"``, or the path of a ``torch.save``-d state dict."""

# Files saved before PyTorch 0.4.1 (torchvision's V1 ones among them) lack BatchNorm's
# counter; it only matters for momentum=None, so a missing one keeps its initial value.
_ALWAYS_FRESH = (r"(^|\.)num_batches_tracked$",)
_SHOWN = 8  # keys listed per problem in an error message


def imagenet_weights_path(arch: str) -> Path:
    """Where ``"imagenet"`` weights of ``arch`` are expected: the torch-hub checkpoint cache.

    ``Path(torch.hub.get_dir()) / "checkpoints" / basename(IMAGENET_URLS[arch])``; the hub
    directory follows ``$TORCH_HOME`` (default ``~/.cache/torch/hub``).
    """
    if arch not in IMAGENET_URLS:
        raise ValueError(f"no ImageNet weights known for {arch!r}; known: {sorted(IMAGENET_URLS)}")
    file_name = os.path.basename(urlparse(IMAGENET_URLS[arch]).path)
    return Path(torch.hub.get_dir()) / "checkpoints" / file_name


def _resolve(weights: str | Path, arch: str) -> Path:
    if isinstance(weights, str) and weights == IMAGENET:
        path = imagenet_weights_path(arch)
        if not path.is_file():
            url = IMAGENET_URLS[arch]
            raise FileNotFoundError(
                f"ImageNet weights for {arch} not found: expected the file {path} (the torch-hub "
                f"cache, torch.hub.get_dir()/checkpoints). Nothing is downloaded here. On a "
                f'machine with network, download {url} (or run `python -c "import torchvision; '
                f"torchvision.models.{arch}(weights='IMAGENET1K_V1')\"`, which saves it to its "
                f"own cache) and copy the file to {path}; or set $TORCH_HOME so that "
                f"torch.hub.get_dir() holds it; or pass the file's path as weights."
            )
        return path
    path = Path(weights)
    if not path.is_file():
        raise FileNotFoundError(
            f"weights file {str(path)!r} not found; weights must be None, {IMAGENET!r} or the "
            f"path of a state-dict file"
        )
    return path


def check_weights(setting: str, weights: str, *, arch: str) -> None:
    """Raise ``ConfigError`` naming ``setting`` unless ``weights`` ("" for none, "imagenet" or a
    path) names a file that is there: checked before a trial starts."""
    from trainables.config import ConfigError

    if not weights:
        return
    try:
        _resolve(weights, arch)
    except FileNotFoundError as exc:
        raise ConfigError(f"{setting}: {exc}") from exc


def read_state_dict(weights: str | Path, *, arch: str) -> tuple[Path, dict[str, Tensor]]:
    """Read a state dict (on CPU, ``weights_only``) from a path or ``"imagenet"``.

    Returns:
        ``(path actually read, {key: tensor})``.
    """
    path = _resolve(weights, arch)
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise ValueError(f"cannot read a state dict from {path}: {exc}") from exc
    if not isinstance(obj, Mapping) or not all(
        isinstance(k, str) and isinstance(v, Tensor) for k, v in obj.items()
    ):
        raise ValueError(
            f"{path} does not hold a state dict (a mapping of parameter names to tensors), got "
            f"{type(obj).__name__}"
        )
    return path, dict(obj)


@dataclass(frozen=True)
class LoadedWeights:
    """What :func:`load_state_dict_into` did: the file, and the keys loaded / left fresh /
    dropped from the file."""

    source: Path | None
    loaded: tuple[str, ...]
    fresh: tuple[str, ...]
    ignored: tuple[str, ...]


def _matches(key: str, patterns: tuple[str, ...]) -> bool:
    return any(re.search(p, key) for p in patterns)


def _listing(keys: list[str]) -> str:
    more = f" ... ({len(keys) - _SHOWN} more)" if len(keys) > _SHOWN else ""
    return ", ".join(keys[:_SHOWN]) + more


def load_state_dict_into(
    model: nn.Module,
    state_dict: Mapping[str, Tensor],
    *,
    ignore: tuple[str, ...] = (),
    fresh: tuple[str, ...] = (),
    source: Path | None = None,
) -> LoadedWeights:
    """Copy ``state_dict`` into ``model``, failing with every unexplained difference listed.

    Args:
        model: the module to fill.
        state_dict: ``{key: tensor}`` (dtype converted on copy).
        ignore: regular expressions (``re.search``) of file keys to drop (e.g. ``r"^fc\\."``).
        fresh: regular expressions of model keys allowed to be absent from the file; they keep
            their initialisation. ``num_batches_tracked`` is always allowed.
        source: the file, for error messages and the result.

    Raises:
        ValueError: keys of the file unknown to the model, keys of the model missing from the
            file, or shape mismatches (each listed with both shapes).
    """
    where = f" from {source}" if source is not None else ""
    own = model.state_dict()
    ignored = sorted(k for k in state_dict if _matches(k, ignore))
    kept = {k: v for k, v in state_dict.items() if not _matches(k, ignore)}
    unexpected = sorted(k for k in kept if k not in own)
    missing = sorted(k for k in own if k not in kept and not _matches(k, fresh + _ALWAYS_FRESH))
    mismatched = sorted(
        f"{k}: file {tuple(v.shape)} vs model {tuple(own[k].shape)}"
        for k, v in kept.items()
        if k in own and v.shape != own[k].shape
    )
    problems = []
    if mismatched:
        problems.append(f"{len(mismatched)} shape mismatch(es): {_listing(mismatched)}")
    if unexpected:
        problems.append(f"{len(unexpected)} key(s) the model lacks: {_listing(unexpected)}")
    if missing:
        problems.append(f"{len(missing)} model key(s) absent from the file: {_listing(missing)}")
    if problems:
        raise ValueError(
            f"weights{where} do not fit {type(model).__name__} (wrong architecture or file?): "
            + "; ".join(problems)
        )
    model.load_state_dict(kept, strict=False)
    return LoadedWeights(
        source=source,
        loaded=tuple(sorted(kept)),
        fresh=tuple(sorted(k for k in own if k not in kept)),
        ignored=tuple(ignored),
    )


def load_backbone_weights(
    model: nn.Module,
    weights: WeightsSpec,
    *,
    arch: str,
    ignore: tuple[str, ...] = (),
    fresh: tuple[str, ...] = (),
) -> LoadedWeights | None:
    """Resolve ``weights`` (``None`` / ``"imagenet"`` / path) for ``arch`` and load it into
    ``model`` with :func:`load_state_dict_into`. ``None`` leaves the model as initialised and
    returns ``None``."""
    if weights is None:
        return None
    if not isinstance(weights, str | Path):
        raise TypeError(
            f"weights must be None, {IMAGENET!r} or a path, got {type(weights).__name__}"
        )
    path, state_dict = read_state_dict(weights, arch=arch)
    return load_state_dict_into(model, state_dict, ignore=ignore, fresh=fresh, source=path)
