"""``baseline``: Multi-Similarity loss on a small CNN, the honest reference objective.

Data: the embedded digits, split class-disjointly (train / validation / test classes), with
optional label noise on the training labels only. Batches are m-per-class. Each epoch reports
``train/loss`` and, on the validation classes only, ``val/recall_at_1``, ``val/map_at_r`` and
``val/nmi``; the test classes are never touched here (shared/methods.md section 1).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Literal

import torch
from torch import nn

from trainables.config import check_noise, from_flat
from trainables.dml.evaluation_metrics import VALIDATION_METRICS
from trainables.objective import Mode
from trainables.runtime import RuntimeSettings


@dataclass(frozen=True)
class BaselineConfig(RuntimeSettings):
    max_epochs: int = 6
    seed: int = 0
    dataset: Literal["digits"] = "digits"
    noise: Literal["none", "symmetric", "small_cluster"] = "none"
    noise_rate: float = 0.0  # fraction of training labels corrupted
    folds: int = 1  # > 1: class-disjoint k-fold over the non-test classes (trainables.dml_data)
    fold: int = 0  # which fold, in [0, folds); set per fold by trainables.cross_validation
    batch_size: int = 60
    samples_per_class: int = 10  # m of the m-per-class sampler
    lr: float = 3e-3
    weight_decay: float = 1e-4
    embedding_size: int = 32
    ms_alpha: float = 2.0  # MS positive scale
    ms_beta: float = 50.0  # MS negative scale
    ms_base: float = 0.5  # MS similarity threshold lambda
    ms_epsilon: float = 0.1  # MS pair-mining margin
    cnn_width: int = 32

    def __post_init__(self) -> None:
        super().__post_init__()
        check_noise(type(self).__name__, self.noise, self.noise_rate)


CONFIG = BaselineConfig
METRICS: dict[str, Mode] = {**VALIDATION_METRICS, "train/loss": "min"}  # trainables.objective


def validate(settings: dict[str, Any]) -> None:
    """Before any trial (trainables.objective): the config's values; the digits are embedded."""
    from_flat(BaselineConfig, settings)


def build_model(config: dict[str, Any]) -> nn.Module:
    from trainables.dml.backbones import EmbeddingNet, SmallCNN

    cfg = from_flat(BaselineConfig, config)
    backbone = SmallCNN(in_channels=1, width=cfg.cnn_width, out_features=4 * cfg.cnn_width)
    return EmbeddingNet(
        backbone=backbone,
        in_features=4 * cfg.cnn_width,
        embedding_size=cfg.embedding_size,
        hyperbolic=None,
    )


def train(config: dict[str, Any]) -> None:
    from trainables.dml.evaluation import evaluate_embeddings
    from trainables.dml.losses import make_loss
    from trainables.dml_data import TrainBatches, embed, load_dml_data
    from trainables.reporting import report_training, resume_training
    from trainables.runtime import Runtime, StepClock

    cfg = from_flat(BaselineConfig, config)
    runtime = Runtime.from_config(cfg)
    torch.manual_seed(cfg.seed)
    data = load_dml_data(
        dataset=cfg.dataset,
        data_root="",
        seed=cfg.seed,
        noise=cfg.noise,
        noise_rate=cfg.noise_rate,
        image_size=8,
        folds=cfg.folds,
        fold=cfg.fold,
    )
    model = runtime.module(build_model(config))
    loss_fn = make_loss(
        "ms",
        alpha=cfg.ms_alpha,
        beta=cfg.ms_beta,
        base=cfg.ms_base,
        epsilon=cfg.ms_epsilon,
    )
    optimizer = torch.optim.Adam(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    start_epoch = resume_training(model=model, optimizer=optimizer, scaler=runtime.precision)

    batches = TrainBatches(
        data,
        batch_size=cfg.batch_size,
        m=cfg.samples_per_class,
        seed=cfg.seed,
        num_workers=runtime.num_workers,
        pin_memory=runtime.pin_memory,
    )
    for epoch in range(start_epoch, cfg.max_epochs + 1):
        tic = time.perf_counter()
        model.train()
        total, steps = 0.0, 0
        clock = StepClock(runtime)
        for images, labels in clock.iterate(batches.epoch(epoch)):
            images, labels = runtime.tensor(images), runtime.tensor(labels)
            with runtime.precision.autocast():
                embeddings = model(images)
            loss = loss_fn(embeddings.float(), labels)  # the loss in float32
            runtime.precision.step(loss, optimizer)
            total += loss.item()
            steps += 1
            clock.count(labels.shape[0])
        speed = clock.metrics()
        val = evaluate_embeddings(
            embed(model, data.val, runtime=runtime),
            runtime.tensor(data.val_labels),
            curvature=None,
            seed=cfg.seed,
        )
        metrics = {
            "train/loss": total / max(steps, 1),
            "train/noise_rate": data.realised_noise_rate,
            "train/epoch_seconds": time.perf_counter() - tic,
            **speed,
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

    cfg = from_flat(BaselineConfig, config)
    runtime = Runtime.from_config(cfg)
    images, labels = load_dml_test(dataset=cfg.dataset, data_root="", image_size=8)
    model = runtime.module(model).eval()
    metrics = evaluate_embeddings(
        embed(model, images, runtime=runtime),
        runtime.tensor(labels),
        curvature=None,
        seed=cfg.seed,
    )
    return {f"test/{k}": v for k, v in metrics.items()}
