"""``mathm``: modality-aware triplet hard mining for zero-shot SBIR (shared/methods.md section 6).

Loss per PK batch (``P`` classes x (``K`` sketches + ``K`` photos)):
``L = CE(W_c e, y) + triplet_weight * MATHMTripletLoss(e, y, t)`` with ``e`` the retrieval
embedding (L2-normalised inside the triplet loss) and ``t`` the modality tags; the triplet part
is selected by ``mode`` (``ce``, ``within``, ``cross``, ``hybrid``, ``all``, ``mathm``: see
:mod:`trainables.mathm.weighting`) and ``published=True`` reproduces the released code's
computation instead of the corrected one. Unlike the released ``--tri-lambda``, the triplet
weight defaults to 1, not 0.

Schedule (released recipe, per epoch): the backbone frozen for ``freeze_epochs`` epochs, a
linear warmup over ``warmup_epochs`` epochs, then cosine decay; Adam with the backbone at
``backbone_lr_mult x lr``.

Data: the embedded two-modality digits by default (SMOKE SCALE: 16x16 digits with a derived
sketch modality, 6 train / 2 validation / 2 test classes, :mod:`trainables.sbir.data`), or
Sketchy-Extended / TU-Berlin-Extended from ``data_root`` (SAKE layout). Each epoch reports
``train/*`` (losses, the per-type triplet weights ``train/weight_within`` /
``train/weight_cross`` / ``train/weight_hybrid``, gates, per-type losses and counts) and, on
the VALIDATION classes held out from the seen classes, ``val/map_all``,
``val/map_all_per_class``, ``val/prec_100``, ``val/map_100``, ``val/prec_200``,
``val/map_200`` (sketch queries, photo gallery). The unseen test classes are read only by
:func:`evaluate_test`.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import nn

from trainables.config import ConfigError, from_flat
from trainables.mathm.weighting import MATHMTripletLoss
from trainables.objective import Mode
from trainables.runtime import RuntimeSettings, epoch_generator
from trainables.sbir.data import load_sbir_data, num_train_classes, sbir_settings
from trainables.sbir.metric_names import SBIR_VALIDATION_METRICS
from trainables.sbir.network import SBIRNet, build_sbir_net, resolve_backbone

__all__ = [
    "CONFIG",
    "METRICS",
    "MATHMConfig",
    "build_model",
    "evaluate_test",
    "lr_factor",
    "train",
    "validate",
]


@dataclass(frozen=True)
class MATHMConfig(RuntimeSettings):
    max_epochs: int = 6  # an epoch is `iterations` batches (released: 40 x 200)
    seed: int = 0  # seeds the validation-class draw, the batches, the views and the init
    # --- data (trainables.sbir.data)
    dataset: Literal["digits", "sketchy", "tuberlin"] = "digits"  # digits: smoke scale
    sketchy_split: int = 1  # Sketchy-Extended split: 1 (100/25 classes) or 2 (104/21)
    data_root: str = ""  # real benchmarks; "" reads $DMLSWEEP_SKETCHY_ROOT / _TUBERLIN_ROOT
    val_fraction: float = 0.25  # seen classes held out for validation (digits: 2 of 8)
    val_max_per_class: int = 0  # cap on validation sketches / photos per class (0: all)
    folds: int = 1  # > 1: class-disjoint k-fold over the seen classes (trainables.sbir.data)
    fold: int = 0  # which fold, in [0, folds); set per fold by trainables.cross_validation
    image_size: int = 16  # digits 16 (edge strokes need it), real benchmarks 224
    eval_batch_size: int = 256
    # --- network (trainables.sbir.network)
    backbone: Literal["auto", "small_cnn", "cse_resnet50"] = "auto"  # auto: by dataset
    pretrained: str = ""  # CSE-ResNet-50 init: "" random, "imagenet" (hub cache) or a path
    cnn_width: int = 16  # small CNN width (digits)
    embedding_size: int = 64  # retrieval embedding (released: 512)
    # --- batches: P classes x (K sketches + K photos)
    classes_per_batch: int = 4  # P (released: 15)
    per_modality: int = 4  # K (released: 4)
    iterations: int = 25  # batches per epoch (released: 200)
    # --- loss
    mode: Literal["ce", "within", "cross", "hybrid", "all", "mathm"] = "mathm"
    margin: float = 0.2  # triplet margin m
    beta: float = 20.0  # softplus / sigmoid sharpness
    floor: float = 0.1  # lower bound of the gates in the adaptive weights
    triplet_weight: float = 1.0  # weight of the triplet term next to CE (released default 0!)
    published: bool = False  # reproduce the released (buggy) computation, for comparisons
    # --- optimisation
    lr: float = 3e-3  # Adam, new layers (released: 1e-4)
    backbone_lr_mult: float = 1.0  # backbone lr = this x lr (released: 0.1, pretrained)
    weight_decay: float = 1e-4
    freeze_epochs: int = 0  # epochs with the backbone frozen (released: 2)
    warmup_epochs: int = 1  # linear warmup, then cosine (released: 5)
    # --- final evaluation
    binary_fit_on: Literal["query", "gallery"] = "gallery"  # ITQ side (MATHM: gallery photos)
    # ZS-SBIR metric conventions, validation and test (trainables.dml.metrics.sbir; the
    # README's "Reproducing published numbers"): the released code's are sake / zero_precision /
    # published ITQ
    map_at_k: Literal["standard", "sake", "sempcyc"] = "standard"
    queries_without_relevant: Literal["drop", "zero_precision"] = "drop"
    published_itq: bool = False

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.dataset == "digits" and self.pretrained:
            raise ConfigError("MATHMConfig.pretrained: the digits' small CNN has no weights")
        for name in ("max_epochs", "iterations", "classes_per_batch", "per_modality"):
            if getattr(self, name) < 1:
                raise ConfigError(f"MATHMConfig.{name} must be >= 1, got {getattr(self, name)}")
        if self.classes_per_batch < 2:
            raise ConfigError("MATHMConfig.classes_per_batch must be >= 2: triplets need negatives")


CONFIG = MATHMConfig
METRICS: dict[str, Mode] = {**SBIR_VALIDATION_METRICS, "train/loss": "min"}  # trainables.objective


def validate(settings: dict[str, Any]) -> None:
    """Before any trial (trainables.objective): the config's values, a real benchmark on disk
    in the SAKE layout, the weights files."""
    from trainables.sbir.data import check_sbir_inputs

    check_sbir_inputs(from_flat(MATHMConfig, settings))


def lr_factor(epoch: int, *, warmup_epochs: int, max_epochs: int) -> float:
    """Multiplier of the learning rate in 1-based ``epoch``.

    ``e = epoch - 1``: ``(e + 1) / W`` while ``e < W`` (linear warmup), then
    ``0.5 (1 + cos(pi (e - W) / (E - W)))`` (cosine, never reaching 0 within ``E`` epochs).
    """
    e = epoch - 1
    if e < warmup_epochs:
        return (e + 1) / warmup_epochs
    return 0.5 * (
        1.0 + math.cos(math.pi * (e - warmup_epochs) / max(1, max_epochs - warmup_epochs))
    )


def _network(cfg: MATHMConfig, *, load_weights: bool) -> SBIRNet:
    settings = sbir_settings(cfg)
    return build_sbir_net(
        backbone=resolve_backbone(cfg.backbone, dataset=cfg.dataset),
        num_classes=num_train_classes(settings),
        embedding_size=cfg.embedding_size,
        classifier_bias=False,  # as released (HashingModel.linear)
        in_channels=1 if cfg.dataset == "digits" else 3,
        cnn_width=cfg.cnn_width,
        weights=(cfg.pretrained or None) if load_weights else None,
    )


def build_model(config: dict[str, Any]) -> nn.Module:
    """The network of a trial (its forward gives the retrieval embedding), without pretrained
    weights: the caller loads a checkpoint into it."""
    return _network(from_flat(MATHMConfig, config), load_weights=False)


def _optimizer(model: SBIRNet, cfg: MATHMConfig) -> torch.optim.Optimizer:
    backbone = list(model.net.backbone.parameters())
    ids = {id(p) for p in backbone}
    heads = [p for p in model.parameters() if id(p) not in ids]
    return torch.optim.Adam(
        [
            {
                "params": backbone,
                "lr": cfg.lr * cfg.backbone_lr_mult,
                "base_lr": cfg.lr * cfg.backbone_lr_mult,
            },
            {"params": heads, "lr": cfg.lr, "base_lr": cfg.lr},
        ],
        weight_decay=cfg.weight_decay,
    )


def train(config: dict[str, Any]) -> None:
    """Ray Tune function trainable: trains, validates and checkpoints once per epoch."""
    from trainables.dml.data.samplers import PKModalitySampler
    from trainables.reporting import report_training, resume_training
    from trainables.runtime import Runtime, StepClock
    from trainables.sbir.evaluation import metric_conventions, retrieval_metrics

    cfg = from_flat(MATHMConfig, config)
    runtime = Runtime.from_config(cfg)
    device = runtime.device
    torch.manual_seed(cfg.seed)
    data = load_sbir_data(sbir_settings(cfg, runtime), parts=("train", "val"))
    assert data.train is not None and data.val is not None
    model = runtime.module(_network(cfg, load_weights=True))
    loss_fn = MATHMTripletLoss(
        margin=cfg.margin, beta=cfg.beta, floor=cfg.floor, mode=cfg.mode, published=cfg.published
    )
    optimizer = _optimizer(model, cfg)
    start_epoch = resume_training(model=model, optimizer=optimizer, scaler=runtime.precision)

    sampler = PKModalitySampler(
        data.train.labels,
        data.train.modalities,
        classes_per_batch=cfg.classes_per_batch,
        per_modality=cfg.per_modality,
        iterations=cfg.iterations,
        seed=cfg.seed,
    )
    for epoch in range(start_epoch, cfg.max_epochs + 1):
        tic = time.perf_counter()
        factor = lr_factor(epoch, warmup_epochs=cfg.warmup_epochs, max_epochs=cfg.max_epochs)
        for group in optimizer.param_groups:
            group["lr"] = group["base_lr"] * factor
        # released fix_base_para: the (pretrained) backbone waits while the new layers settle
        model.net.backbone.requires_grad_(epoch > cfg.freeze_epochs)
        model.train()
        sampler.set_epoch(epoch)
        sums: dict[str, float] = {}
        batches = 0
        generator = epoch_generator(cfg.seed, epoch)
        clock = StepClock(runtime)
        for images, labels, tags in clock.iterate(
            data.train.batches(sampler, views=0, generator=generator)
        ):
            images = runtime.tensor(images)
            labels, tags = labels.to(device), tags.to(device)
            with runtime.precision.autocast():
                embeddings = model(images, tags)  # (B, D) float32
                logits = model.classify(embeddings)
            ce = F.cross_entropy(logits.float(), labels)
            out = loss_fn(embeddings.float(), labels, tags)
            loss = ce + cfg.triplet_weight * out.loss
            if not bool(torch.isfinite(loss)):
                raise FloatingPointError(
                    f"MATHM loss is not finite at epoch {epoch}: ce={float(ce)}, "
                    f"triplet={float(out.loss)}"
                )
            runtime.precision.step(loss, optimizer)
            clock.count(labels.shape[0])
            step = {
                "train/loss": float(loss.detach()),
                "train/loss_ce": float(ce.detach()),
                **out.metrics(),
            }
            for key, value in step.items():
                sums[key] = sums.get(key, 0.0) + value
            batches += 1
        speed = clock.metrics()
        train_metrics = {
            key.replace("train/triplet_weight_", "train/weight_"): value / batches
            for key, value in sums.items()
        }
        val = retrieval_metrics(
            model,
            data.val,
            prefix="val/",
            device=device,
            batch_size=cfg.eval_batch_size,
            amp=cfg.amp,
            **metric_conventions(cfg),
        )
        metrics = {
            **train_metrics,
            "train/lr": cfg.lr * factor,
            "train/epoch_seconds": time.perf_counter() - tic,
            **speed,
            **val,
            **runtime.report(),
        }
        report_training(
            metrics, epoch, config=cfg, model=model, optimizer=optimizer, scaler=runtime.precision
        )


def evaluate_test(model: nn.Module, config: dict[str, Any]) -> dict[str, float]:
    """Final evaluation on the unseen test classes (see ``evaluate_unseen``)."""
    from trainables.sbir.evaluation import evaluate_unseen

    return evaluate_unseen(model, from_flat(MATHMConfig, config))
