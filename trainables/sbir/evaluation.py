"""Sketch-to-photo retrieval metrics of a trained network on one part (validation or test).

The part's sketches are the queries and its photos the gallery (methods.md section 2); both are
encoded with the network's retrieval embedding and compared by Euclidean distance between
L2-normalised embeddings (:func:`trainables.dml.metrics.sbir_metrics`). Both mAP averagings
are reported: ``map_all`` over all queries (MATHM) and ``map_all_per_class`` within each class,
then across classes (DSN). The binary codes are ITQ on 64 bits, ranked by Hamming distance
(:func:`trainables.dml.metrics.sbir_binary_metrics`), fitted on the side ``fit_on``.
"""

from __future__ import annotations

from typing import Any, Literal

import torch
from torch import Tensor, nn

from trainables.dml.backbones import autocast_context
from trainables.dml.metrics.sbir import MapAtK, QueriesWithoutRelevant
from trainables.sbir.data import PHOTO, SKETCH, Part

__all__ = ["TEST_BITS", "encode", "metric_conventions", "retrieval_metrics", "test_metrics"]

TEST_BITS = 64  # ITQ code length of the final evaluation (both papers)

FitOn = Literal["query", "gallery"]


@torch.no_grad()
def encode(
    model: nn.Module, part: Part, *, device: torch.device, batch_size: int, amp: bool = True
) -> tuple[Tensor, Tensor, Tensor]:
    """Embed every item of ``part`` in eval mode: ``(N, D)`` float32, labels and modality tags
    ``(N,)``, all on ``device`` (where the metrics then run). The model's training mode is
    restored afterwards."""
    was_training = model.training
    model.eval()
    chunks, labels, tags = [], [], []
    try:
        for images, y, m in part.eval_batches(batch_size):
            m = m.to(device)
            with autocast_context(device, enabled=amp):
                z = model(images.to(device, non_blocking=True), m)
            chunks.append(z.float())
            labels.append(y.to(device))
            tags.append(m)
    finally:
        model.train(was_training)
    return torch.cat(chunks), torch.cat(labels), torch.cat(tags)


def _split(
    embeddings: Tensor, labels: Tensor, modalities: Tensor
) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    sketch, photo = modalities == SKETCH, modalities == PHOTO
    if not bool(sketch.any()) or not bool(photo.any()):
        raise ValueError("retrieval needs both sketches (queries) and photos (gallery) in the part")
    return embeddings[sketch], labels[sketch], embeddings[photo], labels[photo]


def metric_conventions(cfg: Any) -> dict[str, Any]:
    """The ZS-SBIR metric conventions named by an objective's config (``map_at_k``,
    ``queries_without_relevant``), as keyword arguments of the functions below."""
    return {"map_at_k": cfg.map_at_k, "queries_without_relevant": cfg.queries_without_relevant}


def retrieval_metrics(
    model: nn.Module,
    part: Part,
    *,
    prefix: str,
    device: torch.device,
    batch_size: int,
    amp: bool = True,
    map_at_k: MapAtK = "standard",
    queries_without_relevant: QueriesWithoutRelevant = "drop",
) -> dict[str, float]:
    """Real-valued sketch -> photo metrics of ``part``, keys ``{prefix}map_all``,
    ``{prefix}map_all_per_class``, ``{prefix}prec_100``, ``{prefix}map_100``,
    ``{prefix}prec_200``, ``{prefix}map_200`` (conventions: :func:`~trainables.dml.metrics.
    sbir_metrics`)."""
    from trainables.dml.metrics import sbir_metrics

    q, ql, g, gl = _split(*encode(model, part, device=device, batch_size=batch_size, amp=amp))
    metrics = sbir_metrics(
        q, ql, g, gl, map_at_k=map_at_k, queries_without_relevant=queries_without_relevant
    )
    return {f"{prefix}{k}": float(v) for k, v in metrics.items()}


def test_metrics(
    model: nn.Module,
    part: Part,
    *,
    device: torch.device,
    batch_size: int,
    fit_on: FitOn,
    bits: int = TEST_BITS,
    amp: bool = True,
    prefix: str = "test/",
    map_at_k: MapAtK = "standard",
    queries_without_relevant: QueriesWithoutRelevant = "drop",
    published_itq: bool = False,
) -> dict[str, float]:
    """Real-valued and binary (ITQ, ``bits``) metrics of ``part``: the keys of
    :func:`retrieval_metrics`, the same with ``binary_`` (``{prefix}binary_map_all``, ...) and
    ``{prefix}binary_bits``."""
    from trainables.dml.metrics import sbir_binary_metrics, sbir_metrics

    q, ql, g, gl = _split(*encode(model, part, device=device, batch_size=batch_size, amp=amp))
    real = sbir_metrics(
        q, ql, g, gl, map_at_k=map_at_k, queries_without_relevant=queries_without_relevant
    )
    out = {f"{prefix}{k}": float(v) for k, v in real.items()}
    binary = sbir_binary_metrics(
        q,
        ql,
        g,
        gl,
        bits=bits,
        fit_on=fit_on,
        map_at_k=map_at_k,
        queries_without_relevant=queries_without_relevant,
        published_itq=published_itq,
    )
    out.update({f"{prefix}binary_{k}": float(v) for k, v in binary.items()})
    out[f"{prefix}binary_bits"] = float(bits)
    return out


def evaluate_unseen(model: nn.Module, cfg: Any) -> dict[str, float]:
    """The final evaluation shared by DSN and MATHM, on the unseen test classes:
    ``test/map_all``, ``test/map_all_per_class``, ``test/prec_100``, ... and the ITQ 64-bit
    binary ``test/binary_*`` (ITQ fitted on ``cfg.binary_fit_on``; ``min(64, embedding_size)``
    bits, reported as ``test/binary_bits``). ``cfg`` is the objective's config dataclass."""
    from trainables.runtime import Runtime
    from trainables.sbir.data import load_sbir_data, sbir_settings

    runtime = Runtime.from_config(cfg)
    data = load_sbir_data(sbir_settings(cfg, runtime), parts=("test",))
    assert data.test is not None
    return test_metrics(
        runtime.module(model),
        data.test,
        device=runtime.device,
        batch_size=cfg.eval_batch_size,
        fit_on=cfg.binary_fit_on,
        bits=min(TEST_BITS, cfg.embedding_size),
        amp=cfg.amp,
        published_itq=cfg.published_itq,
        **metric_conventions(cfg),
    )
