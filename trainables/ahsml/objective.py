"""``ahsml``: Adaptive Hierarchical Similarity Metric Learning with noisy labels, as a trainable.

Per step: each image of an m-per-class batch gets a weak and a strong augmentation; both go
through the backbone and the embedding head (hyperbolic by default: clip -> expmap0 onto the
Poincare ball of curvature c, fixed or learnable); :class:`~trainables.ahsml.loss.AHSMLLoss`
integrates the hierarchical similarity, the adaptive margins from the batch's class statistics
and the augmentation positives into the base pair loss (MS by default). Each epoch reports
``train/*`` (loss, its parts, the margins' batch statistics, the curvature) and the validation
classes' ``val/recall_at_1``, ``val/map_at_r``, ``val/nmi`` (shared/methods.md sections 1, 4).

Data: the embedded digits (smoke scale) or CUB-200-2011 read from ``data_root`` with ResNet-50.
Label noise (``noise``, ``noise_rate``) is a property of the sweep, applied to training labels
only, seeded; the realised rate is reported.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Any, Literal

import torch
from torch import nn

from trainables.config import ConfigError, check_noise, from_flat
from trainables.dml.evaluation_metrics import VALIDATION_METRICS
from trainables.objective import Mode
from trainables.runtime import RuntimeSettings


@dataclass(frozen=True)
class AHSMLConfig(RuntimeSettings):
    max_epochs: int = 8
    seed: int = 0
    # data
    dataset: Literal["digits", "cub200", "cars196", "sop"] = "digits"
    data_root: str = ""  # the benchmark's directory (its published layout)
    noise: Literal["none", "symmetric", "small_cluster"] = "symmetric"
    noise_rate: float = 0.3  # fraction of training labels corrupted
    batch_size: int = 60
    samples_per_class: int = 10  # m of the m-per-class sampler
    aug_strength: float = 0.5  # strength of the strong augmentation, in [0, 1]
    # where the two views are drawn: in the loader workers, or on the trial's device (the
    # workers only decode and resize: a GPU needs fewer CPU cores; README "Training on GPUs")
    augment_on: Literal["workers", "device"] = "workers"
    image_size: int = 8  # digits: 8 (native); CUB: 224
    folds: int = 1  # > 1: class-disjoint k-fold over the non-test classes (trainables.dml_data)
    fold: int = 0  # which fold, in [0, folds); set per fold by trainables.cross_validation
    # network
    backbone: Literal["small_cnn", "resnet50"] = "small_cnn"
    weights: str = ""  # resnet50: "", "imagenet" (local cache) or a state-dict path
    embedding_size: int = 32
    hyperbolic: bool = True  # ablation: False = Euclidean head, cosine similarity
    curvature: float = 0.1  # c of the Poincare ball (radius 1/sqrt(c))
    learnable_curvature: bool = False
    clip_radius: float = 2.3  # feature clipping before expmap0; 0 disables
    # loss
    tau: float = 0.2  # temperature of s = exp(-d_c / tau) [ours]
    gamma: float = 0.5
    mu: float = 0.2
    alpha: float = 2.0
    beta: float = 50.0
    rho: float = 2.0
    w_aug: float = 1.0
    w_pos: float = 1.0
    w_neg: float = 1.0
    base_loss: Literal["ms", "contrastive", "triplet", "circle"] = "ms"
    triplet_margin: float = 0.1  # base_loss triplet only
    circle_scale: float = 80.0  # base_loss circle only (Circle loss' gamma)
    adaptive_margins: bool = True  # ablation: False = constant margins gamma
    consistency: bool = True  # ablation: False = no augmentation-positive term
    # optimisation
    lr: float = 1e-3
    weight_decay: float = 1e-4

    def __post_init__(self) -> None:
        super().__post_init__()
        if not 0.0 <= self.aug_strength <= 1.0:
            raise ConfigError(f"AHSMLConfig.aug_strength: {self.aug_strength} not in [0, 1]")
        if self.curvature <= 0:
            raise ConfigError(f"AHSMLConfig.curvature: must be > 0, got {self.curvature}")
        if not self.circle_scale > 0:
            raise ConfigError(f"AHSMLConfig.circle_scale: must be > 0, got {self.circle_scale}")
        check_noise(type(self).__name__, self.noise, self.noise_rate)


CONFIG = AHSMLConfig
METRICS: dict[str, Mode] = {**VALIDATION_METRICS, "train/loss": "min"}  # trainables.objective


def build_model(config: dict[str, Any]) -> nn.Module:
    from trainables.dml.backbones import EmbeddingNet, SmallCNN, resnet_backbone
    from trainables.dml.hyperbolic import HyperbolicHead

    cfg = from_flat(AHSMLConfig, config)
    if cfg.backbone == "small_cnn":
        backbone: nn.Module = SmallCNN(in_channels=1, width=32, out_features=128)
        features = 128
    else:
        backbone, features = resnet_backbone("resnet50", weights=cfg.weights or None), 2048
    head = (
        HyperbolicHead(
            curvature=cfg.curvature,
            learnable=cfg.learnable_curvature,
            clip_radius=cfg.clip_radius or None,
        )
        if cfg.hyperbolic
        else None
    )
    return EmbeddingNet(
        backbone=backbone, in_features=features, embedding_size=cfg.embedding_size, hyperbolic=head
    )


def make_loss(cfg: AHSMLConfig, model: nn.Module) -> nn.Module:
    from trainables.ahsml.loss import AHSMLLoss

    head = getattr(model, "hyperbolic", None)
    return AHSMLLoss(
        curvature=head if head is not None else cfg.curvature,
        tau=cfg.tau,
        gamma=cfg.gamma,
        mu=cfg.mu,
        alpha=cfg.alpha,
        beta=cfg.beta,
        rho=cfg.rho,
        w_aug=cfg.w_aug,
        w_pos=cfg.w_pos,
        w_neg=cfg.w_neg,
        base_loss=cfg.base_loss,
        triplet_margin=cfg.triplet_margin,
        circle_scale=cfg.circle_scale,
        hyperbolic=cfg.hyperbolic,
        adaptive_margins=cfg.adaptive_margins,
        consistency=cfg.consistency,
    )


def current_curvature(model: nn.Module) -> float | None:
    head = getattr(model, "hyperbolic", None)
    return None if head is None else float(head.curvature.detach())


def validate(settings: dict[str, Any]) -> None:
    """Before any trial (trainables.objective): the config's values, a real dataset on disk in
    its published layout, the backbone's weights file."""
    from trainables.dml.backbones.weights import check_weights
    from trainables.dml_data import check_dml_data

    cfg = from_flat(AHSMLConfig, settings)
    check_dml_data(dataset=cfg.dataset, data_root=cfg.data_root)
    if cfg.backbone == "resnet50":
        check_weights("weights", cfg.weights, arch="resnet50")


def train(config: dict[str, Any]) -> None:
    from trainables.dml.data.augment import AugmentedPair, strong_augment, weak_augment
    from trainables.dml.data.pipeline import mix_seed
    from trainables.dml.evaluation import evaluate_embeddings
    from trainables.dml.hyperbolic import param_groups
    from trainables.dml_data import TrainBatches, embed, load_dml_data
    from trainables.reporting import report_training, resume_training
    from trainables.runtime import Runtime, StepClock

    cfg = from_flat(AHSMLConfig, config)
    runtime = Runtime.from_config(cfg)
    torch.manual_seed(cfg.seed)
    data = load_dml_data(
        dataset=cfg.dataset,
        data_root=cfg.data_root,
        seed=cfg.seed,
        noise=cfg.noise,
        noise_rate=cfg.noise_rate,
        image_size=cfg.image_size,
        folds=cfg.folds,
        fold=cfg.fold,
    )
    model = runtime.module(build_model(config))
    loss_fn = runtime.module(make_loss(cfg, model))
    optimizer = torch.optim.Adam(param_groups(model, weight_decay=cfg.weight_decay), lr=cfg.lr)
    start_epoch = resume_training(model=model, optimizer=optimizer, scaler=runtime.precision)

    flip = cfg.dataset != "digits"  # a mirrored digit is another digit
    views = AugmentedPair(
        weak=weak_augment(flip=flip), strong=strong_augment(cfg.aug_strength, flip=flip)
    )
    batches = TrainBatches(
        data,
        batch_size=cfg.batch_size,
        m=cfg.samples_per_class,
        seed=cfg.seed,
        views=views if cfg.augment_on == "workers" else None,
        num_workers=runtime.num_workers,
        pin_memory=runtime.pin_memory,
    )
    for epoch in range(start_epoch, cfg.max_epochs + 1):
        tic = time.perf_counter()
        model.train()
        sums: dict[str, float] = {}
        counts: dict[str, int] = {}
        clock = StepClock(runtime)
        for step, (batch, labels) in enumerate(clock.iterate(batches.epoch(epoch))):
            batch, labels = runtime.tensor(batch), runtime.tensor(labels)
            if cfg.augment_on == "workers":
                weak, strong = batch[:, 0], batch[:, 1]
            else:  # drawn here, seeded per batch: a resumed trial draws the same views
                with torch.random.fork_rng(devices=[]):
                    torch.default_generator.manual_seed(mix_seed(cfg.seed, epoch, step))
                    weak, strong = views(batch)
            weak, strong = runtime.tensor(weak), runtime.tensor(strong)  # NHWC on CUDA
            with runtime.precision.autocast():
                # the head leaves autocast itself: embeddings are float32 on the ball
                z_weak, z_strong = model(weak), model(strong)
            out = loss_fn(z_weak.float(), z_strong.float(), labels)  # the loss in float32
            runtime.precision.step(out.loss, optimizer)
            clock.count(2 * labels.shape[0])  # two views: each image goes through twice
            for key, value in out.as_metrics().items():
                if math.isfinite(value):  # a statistic is undefined in some batches (NaN)
                    sums[key] = sums.get(key, 0.0) + value
                    counts[key] = counts.get(key, 0) + 1
        speed = clock.metrics()
        curvature = current_curvature(model)
        val = evaluate_embeddings(
            embed(model, data.val, runtime=runtime, num_workers=runtime.num_workers),
            runtime.tensor(data.val_labels),
            curvature=curvature,
            seed=cfg.seed,
        )
        metrics = {
            **{f"train/{k}": v / counts[k] for k, v in sums.items()},
            "train/noise_rate": data.realised_noise_rate,
            "train/epoch_seconds": time.perf_counter() - tic,
            **speed,
            **({"train/curvature": curvature} if curvature is not None else {}),
            **{f"val/{k}": v for k, v in val.items()},
            **runtime.report(),
        }
        report_training(
            metrics, epoch, config=cfg, model=model, optimizer=optimizer, scaler=runtime.precision
        )


def evaluate_test(model: nn.Module, config: dict[str, Any]) -> dict[str, float]:
    """Final evaluation on the test classes (the only reader of them): ``test/*`` metrics."""
    from trainables.dml.evaluation import evaluate_embeddings
    from trainables.dml_data import embed, load_dml_test
    from trainables.runtime import Runtime

    cfg = from_flat(AHSMLConfig, config)
    runtime = Runtime.from_config(cfg)
    images, labels = load_dml_test(
        dataset=cfg.dataset, data_root=cfg.data_root, image_size=cfg.image_size
    )
    model = runtime.module(model).eval()
    metrics = evaluate_embeddings(
        embed(model, images, runtime=runtime, num_workers=runtime.num_workers),
        runtime.tensor(labels),
        curvature=current_curvature(model),
        seed=cfg.seed,
    )
    return {f"test/{k}": v for k, v in metrics.items()}
