"""``dsn``: Domain-Smoothing Network for zero-shot SBIR (shared/methods.md section 5).

Each step takes ``s`` sketches and ``p = r s`` photos (``r = photos_per_sketch``), shuffled per
modality (:mod:`trainables.dsn.batches`), and two random views of every one of them. With ``f``
the backbone features, ``e`` the retrieval embedding and ``y`` labels shared by both modalities:
``L = w_ce CE(W_c e_clean, y) + w_supcon SupCon([e_view1; e_view2], [y; y])
+ w_mem L_mem(f_clean) (+ w_kd KD)`` (:class:`trainables.dsn.loss.DSNLoss`; SupCon over both
modalities with shared labels is the cross-modal contrast; the sketch memory bank holds the
clean sketch features, detached, and ``L_mem`` pulls the photo features towards their class's
bank mean, its gradient flowing through the photos, unlike the released code). The bank is
emptied at the start of every epoch (``bank_reset``), as released.

Knowledge distillation (``kd_teacher``): off by default. With a teacher (``"imagenet"``:
torchvision's ImageNet ResNet-50 from the torch-hub cache, never downloaded, or the path of a
ResNet-50 state dict), a frozen teacher's 1000-way logits on the clean photos are distilled
into a 1000-way head on the embedding (the released code distils a Cadene SE-ResNet-50 and
adds SAKE's class-similarity shift; ours is the plain soft cross-entropy). Not available on the
digits: an ImageNet teacher says nothing about 16x16 one-channel digits, so setting it there is
a config error.

Schedule (released): Adam, ``lr x lr_decay^((epoch - 1) / max_epochs)``.

Data: the embedded two-modality digits by default (SMOKE SCALE, :mod:`trainables.sbir.data`),
or Sketchy-Extended / TU-Berlin-Extended from ``data_root`` (SAKE layout). Each epoch reports
``train/*`` (the loss and its parts, the memory-bank statistics ``train/bank_fill``,
``train/bank_classes_filled``, ``train/bank_mean_norm``, ``train/memory_photos``) and, on the
VALIDATION classes held out from the seen classes, ``val/map_all``, ``val/map_all_per_class``,
``val/prec_100``, ``val/map_100``, ``val/prec_200``, ``val/map_200``. The unseen test classes
are read only by :func:`evaluate_test`.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Literal

import torch
from torch import nn

from trainables.config import ConfigError, from_flat
from trainables.dsn.batches import modality_ratio_batches, sketches_per_batch
from trainables.dsn.loss import PHOTO, DSNLoss
from trainables.objective import Mode
from trainables.runtime import RuntimeSettings, epoch_generator
from trainables.sbir.data import load_sbir_data, num_train_classes, sbir_settings
from trainables.sbir.metric_names import SBIR_VALIDATION_METRICS
from trainables.sbir.network import SBIRNet, build_sbir_net, resolve_backbone

__all__ = [
    "CONFIG",
    "DSNConfig",
    "KD_CLASSES",
    "METRICS",
    "build_model",
    "build_teacher",
    "evaluate_test",
    "train",
    "validate",
]

KD_CLASSES = 1000  # the ImageNet teacher's classes


@dataclass(frozen=True)
class DSNConfig(RuntimeSettings):
    max_epochs: int = 6  # released: 20 (Sketchy) / 16 (TU-Berlin)
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
    embedding_size: int = 64  # retrieval embedding (released: 64)
    # --- batches
    batch_size: int = 48  # sketches + photos a step, each with two views (released: 96)
    photos_per_sketch: int = 1  # sketch:photo = 1:r (released: Sketchy 2, TU-Berlin 9)
    # --- loss (trainables.dsn.loss)
    temperature: float = 0.07  # SupCon tau
    w_ce: float = 1.0
    w_supcon: float = 0.1  # as released
    w_mem: float = 1.0  # 0: CE + SupCon without the memory bank's loss
    bank_size: int = 10  # k sketch features per class
    bank_policy: Literal["ring", "replace_farthest", "released"] = "ring"  # released: its bug
    published: bool = False  # the released training: L_mem without gradient, SupCon x tau/0.07
    bank_reset: bool = True  # empty the bank at each epoch start (released)
    w_kd: float = 1.0  # used only with a teacher
    kd_teacher: str = ""  # "" off, "imagenet" (hub cache) or a ResNet-50 state-dict path
    # --- optimisation
    lr: float = 3e-3  # Adam (released: 1e-4, pretrained backbone)
    weight_decay: float = 5e-4
    lr_decay: float = 0.1  # lr x lr_decay^((epoch - 1) / max_epochs) (released: 0.001)
    # --- final evaluation
    binary_fit_on: Literal["query", "gallery"] = "query"  # ITQ side (DSN: query sketches)
    # ZS-SBIR metric conventions, validation and test (trainables.dml.metrics.sbir; the
    # README's "Reproducing published numbers"): the released code's are sake / zero_precision /
    # published ITQ
    map_at_k: Literal["standard", "sake", "sempcyc"] = "standard"
    queries_without_relevant: Literal["drop", "zero_precision"] = "drop"
    published_itq: bool = False

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.dataset == "digits" and self.pretrained:
            raise ConfigError("DSNConfig.pretrained: the digits' small CNN has no weights")
        if self.dataset == "digits" and self.kd_teacher:
            raise ConfigError(
                "DSNConfig.kd_teacher: knowledge distillation needs an ImageNet teacher on RGB "
                "images; it is not available on the digits (leave kd_teacher empty)"
            )
        for name in ("max_epochs", "bank_size", "batch_size"):
            if getattr(self, name) < 1:
                raise ConfigError(f"DSNConfig.{name} must be >= 1, got {getattr(self, name)}")
        if not 0 < self.lr_decay <= 1:
            raise ConfigError(f"DSNConfig.lr_decay must be in (0, 1], got {self.lr_decay}")


CONFIG = DSNConfig
METRICS: dict[str, Mode] = {**SBIR_VALIDATION_METRICS, "train/loss": "min"}  # trainables.objective


def validate(settings: dict[str, Any]) -> None:
    """Before any trial (trainables.objective): the config's values, a real benchmark on disk
    in the SAKE layout, the weights files."""
    from trainables.dml.backbones.weights import check_weights
    from trainables.sbir.data import check_sbir_inputs

    cfg = from_flat(DSNConfig, settings)
    check_sbir_inputs(cfg)
    check_weights("kd_teacher", cfg.kd_teacher, arch="resnet50")


def _network(cfg: DSNConfig, *, load_weights: bool) -> SBIRNet:
    settings = sbir_settings(cfg)
    return build_sbir_net(
        backbone=resolve_backbone(cfg.backbone, dataset=cfg.dataset),
        num_classes=num_train_classes(settings),
        embedding_size=cfg.embedding_size,
        classifier_bias=True,  # as released (CSEResnetModel_KDHashing.linear)
        in_channels=1 if cfg.dataset == "digits" else 3,
        cnn_width=cfg.cnn_width,
        weights=(cfg.pretrained or None) if load_weights else None,
        kd_classes=KD_CLASSES if cfg.kd_teacher else 0,
    )


def build_model(config: dict[str, Any]) -> nn.Module:
    """The network of a trial (its forward gives the retrieval embedding), without pretrained
    weights: the caller loads a checkpoint into it."""
    return _network(from_flat(DSNConfig, config), load_weights=False)


def build_teacher(weights: str) -> nn.Module:
    """The frozen KD teacher: torchvision's ResNet-50 with its ImageNet classifier,
    ``(B, 3, H, W) -> (B, 1000)`` logits, weights from ``"imagenet"`` (hub cache) or a path."""
    from torchvision.models import resnet50

    from trainables.dml.backbones import load_backbone_weights

    teacher = resnet50(weights=None)
    load_backbone_weights(teacher, weights, arch="resnet50")
    teacher.eval().requires_grad_(False)
    return teacher


def train(config: dict[str, Any]) -> None:
    """Ray Tune function trainable: trains, validates and checkpoints once per epoch."""
    from trainables.reporting import report_training, resume_training
    from trainables.runtime import Runtime, StepClock
    from trainables.sbir.evaluation import metric_conventions, retrieval_metrics

    cfg = from_flat(DSNConfig, config)
    runtime = Runtime.from_config(cfg)
    device = runtime.device
    torch.manual_seed(cfg.seed)
    data = load_sbir_data(sbir_settings(cfg, runtime), parts=("train", "val"))
    assert data.train is not None and data.val is not None
    model = runtime.module(_network(cfg, load_weights=True))
    teacher = runtime.module(build_teacher(cfg.kd_teacher)) if cfg.kd_teacher else None
    loss_fn = runtime.module(
        DSNLoss(
            num_classes=data.num_classes,
            feature_dim=model.net.in_features,
            bank_size=cfg.bank_size,
            temperature=cfg.temperature,
            w_ce=cfg.w_ce,
            w_kd=cfg.w_kd,
            w_supcon=cfg.w_supcon,
            w_mem=cfg.w_mem,
            bank_policy=cfg.bank_policy,
            published=cfg.published,
        )
    )
    optimizer = torch.optim.Adam(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    start_epoch = resume_training(
        model=model, optimizer=optimizer, scaler=runtime.precision, bank=loss_fn.bank
    )

    sketches, photos = sketches_per_batch(cfg.batch_size, cfg.photos_per_sketch)
    for epoch in range(start_epoch, cfg.max_epochs + 1):
        tic = time.perf_counter()
        lr = cfg.lr * cfg.lr_decay ** ((epoch - 1) / cfg.max_epochs)
        for group in optimizer.param_groups:
            group["lr"] = lr
        if cfg.bank_reset:
            loss_fn.bank.reset()
        model.train()
        index_batches = modality_ratio_batches(
            data.train.modalities, sketches=sketches, photos=photos, seed=cfg.seed, epoch=epoch
        )
        generator = epoch_generator(cfg.seed, epoch)
        sums: dict[str, float] = {}
        batches = 0
        clock = StepClock(runtime)
        for images, labels, tags in clock.iterate(
            data.train.batches(index_batches, views=2, generator=generator)
        ):
            images = images.to(device, non_blocking=runtime.pin_memory)
            labels, tags = labels.to(device), tags.to(device)
            n = labels.shape[0]
            flat = runtime.tensor(images.transpose(0, 1).reshape(3 * n, *images.shape[2:]))
            with runtime.precision.autocast():  # clean, view 1, view 2
                features = model.features(flat, tags.repeat(3))  # (3N, F)
                embeddings = model.embed(features)  # (3N, D) float32
                logits = model.classify(embeddings[:n])
                kd_logits = teacher_logits = None
                if teacher is not None:
                    kd_logits = model.distill(embeddings[:n]).float()
                    with torch.no_grad():
                        teacher_logits = teacher(runtime.tensor(images[:, 0])).float()
            out = loss_fn(
                logits=logits.float(),
                labels=labels,
                modalities=tags,
                features=features[:n].float(),
                views=(embeddings[n : 2 * n].float(), embeddings[2 * n :].float()),
                kd_logits=kd_logits,
                teacher_logits=teacher_logits,
                kd_mask=(tags == PHOTO) if teacher is not None else None,
            )
            runtime.precision.step(out.loss, optimizer)
            clock.count(3 * n)  # every image of a step is a forward and backward
            for key, value in out.metrics().items():
                sums[key] = sums.get(key, 0.0) + value
            batches += 1
        speed = clock.metrics()
        train_metrics = {key: value / batches for key, value in sums.items()}
        # the statistics of the bank as the epoch leaves it, not averaged over its filling
        bank = loss_fn.bank.stats()
        train_metrics.update(
            {
                "train/bank_fill": float(bank.fill),
                "train/bank_classes_filled": float(bank.classes_filled),
                "train/bank_mean_norm": float(bank.mean_norm),
            }
        )
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
            "train/lr": lr,
            "train/epoch_seconds": time.perf_counter() - tic,
            **speed,
            **val,
            **runtime.report(),
        }
        report_training(
            metrics,
            epoch,
            config=cfg,
            model=model,
            optimizer=optimizer,
            scaler=runtime.precision,
            bank=loss_fn.bank,
        )


def evaluate_test(model: nn.Module, config: dict[str, Any]) -> dict[str, float]:
    """Final evaluation on the unseen test classes (see ``evaluate_unseen``)."""
    from trainables.sbir.evaluation import evaluate_unseen

    return evaluate_unseen(model, from_flat(DSNConfig, config))
