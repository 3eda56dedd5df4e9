"""Where and how a trial computes: the device rule of every objective, mixed precision, the
data loader's workers, the step timing a trial reports, per-epoch random generators.

The device rule (:func:`choose_device`), the same for every objective:

- ``device: cpu`` runs on the CPU, whatever Ray assigned (the explicit way to run a GPU-
  reserving trial on the CPU, e.g. to test GPU scheduling on a CPU machine).
- ``device: cuda`` / ``cuda:N`` needs a usable CUDA device ``N`` (Ray's
  ``CUDA_VISIBLE_DEVICES`` numbers a trial's GPUs from 0) and, in a Ray trial, a GPU that Ray
  assigned to it (else the trial would use a GPU other trials hold).
- ``device: auto`` (the default) inside a Ray trial: the first GPU Ray assigned to it
  (``cuda:0``: Ray makes only the assigned GPUs visible), the CPU when it assigned none. A
  trial that was assigned a GPU but cannot use CUDA fails at once with :class:`DeviceError`
  naming the GPU ids and what torch reports, rather than training on the CPU while holding a
  GPU. Outside Ray (tests, benchmarks, the final evaluation in the driver): CUDA when usable.

A trial uses one device: a trial given several GPUs trains on the first (no data parallelism).
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import torch
from torch import nn

from trainables.config import ConfigError
from trainables.dml.backbones.amp import MixedPrecision
from trainables.dml.data.pipeline import mix_seed

__all__ = [
    "DeviceError",
    "Runtime",
    "RuntimeSettings",
    "StepClock",
    "assigned_gpu_ids",
    "check_device_name",
    "choose_device",
    "epoch_generator",
    "loader_workers",
    "resolve_device",
]

T = TypeVar("T")
M = TypeVar("M", bound=nn.Module)

_DEVICE_NAME = re.compile(r"auto|cpu|cuda(:[0-9]+)?")


class DeviceError(RuntimeError):
    """A trial cannot run on the device the rule gives it."""


def check_device_name(owner: str, name: str) -> None:
    """Raise :class:`ConfigError` naming ``owner`` unless ``name`` is auto, cpu, cuda or cuda:N."""
    if not _DEVICE_NAME.fullmatch(name):
        raise ConfigError(f"{owner}.device: {name!r} is not auto, cpu, cuda or cuda:N")


def _in_ray_trial() -> bool:
    """Whether this process runs a Ray trial (Tune runs each in an actor), not the driver."""
    import ray

    return ray.is_initialized() and ray.get_runtime_context().get_actor_id() is not None


def assigned_gpu_ids() -> list[str] | None:
    """The GPU ids Ray assigned to this process's trial (``[]``: none), ``None`` outside a Ray
    trial (no Ray, or the driver)."""
    import ray

    return [str(i) for i in ray.get_gpu_ids()] if _in_ray_trial() else None


def _torch_report() -> str:
    return (
        f"torch {torch.__version__} (CUDA build: {torch.version.cuda or 'none'}) reports "
        f"torch.cuda.is_available() = {torch.cuda.is_available()}, "
        f"device_count() = {torch.cuda.device_count()}; "
        f"CUDA_VISIBLE_DEVICES = {os.environ.get('CUDA_VISIBLE_DEVICES', '<unset>')!r}"
    )


def choose_device(
    requested: str,
    *,
    assigned: Sequence[str] | None,
    cuda_available: bool,
    device_count: int,
    report: str = "",
) -> torch.device:
    """The device rule (module docstring) as a pure function of what it depends on.

    Args:
        requested: the config's ``device``.
        assigned: the GPU ids Ray assigned (``[]``: none), ``None`` outside a Ray trial.
        cuda_available, device_count: what torch reports in the worker.
        report: the torch report quoted in errors.

    Raises:
        DeviceError: CUDA asked for, or a GPU assigned with ``auto``, where CUDA is not usable;
            ``cuda:N`` past the visible devices; CUDA asked for in a Ray trial without a GPU.
        ConfigError: an unknown device name.
    """
    check_device_name("config", requested)
    if requested == "cpu":
        return torch.device("cpu")
    if requested == "auto":
        if assigned is None:
            return torch.device("cuda:0" if cuda_available else "cpu")
        if not assigned:
            return torch.device("cpu")
        if not cuda_available:
            raise DeviceError(
                f"Ray assigned GPU {', '.join(assigned)} to this trial, but CUDA is not usable in "
                f"its worker: {report}. Install a CUDA build of torch and the GPU driver on "
                "that node, or set device: cpu to run the trial on the CPU on purpose"
            )
        return torch.device("cuda:0")
    device = torch.device(requested)
    if assigned is not None and not assigned:
        raise DeviceError(
            f"device {requested!r} asked for, but Ray assigned this trial no GPU: it would use a "
            f"GPU that other trials may hold ({report}). Ask for one with --gpus-per-trial, or "
            "set device: auto or cpu"
        )
    if not cuda_available:
        raise DeviceError(f"device {requested!r} asked for, but CUDA is not usable: {report}")
    index = device.index or 0
    if index >= device_count:
        raise DeviceError(
            f"device {requested!r} asked for, but only {device_count} CUDA device(s) are "
            f"visible: {report}"
        )
    return torch.device("cuda", index)


def resolve_device(requested: str) -> torch.device:
    """:func:`choose_device` for this process (Ray's assignment, torch's CUDA)."""
    return choose_device(
        requested,
        assigned=assigned_gpu_ids(),
        cuda_available=torch.cuda.is_available(),
        device_count=torch.cuda.device_count(),
        report=_torch_report(),
    )


def _process_cpus() -> float:
    import ray

    if _in_ray_trial():
        return float(ray.get_runtime_context().get_assigned_resources().get("CPU", 1.0))
    return float(len(os.sched_getaffinity(0)))


def loader_workers(requested: int) -> int:
    """Data-loader workers: ``requested`` when >= 0, else (``-1``, auto) the trial's CPUs
    (Ray's ``--cpus-per-trial``; outside Ray, this process's) minus the one the training loop
    itself uses; 0 decodes in the training process."""
    if requested >= 0:
        return requested
    return max(0, int(_process_cpus()) - 1)


@dataclass(frozen=True)
class RuntimeSettings:
    """The switches of how a trial computes, shared by every image objective's config (which
    inherits them). Each is a config setting, so a sweep records it with the trial."""

    device: str = "auto"  # auto (the device rule) | cpu | cuda | cuda:N
    amp: bool = True  # autocast on CUDA: bfloat16, or float16 with a gradient scaler
    channels_last: bool = True  # NHWC activations on CUDA
    pin_memory: bool = True  # pinned loader batches, non-blocking copies (CUDA)
    cudnn_benchmark: bool = True  # cuDNN autotuning (CUDA)
    num_workers: int = -1  # data-loader workers; -1: the trial's CPUs minus one

    def __post_init__(self) -> None:
        check_device_name(type(self).__name__, self.device)
        if self.num_workers < -1:
            raise ConfigError(
                f"{type(self).__name__}.num_workers: -1 (auto) or >= 0, got {self.num_workers}"
            )


@dataclass
class Runtime:
    """How one trial computes, resolved from its config's switches (:meth:`from_config`).

    Attributes:
        device: from the device rule.
        precision: autocast and gradient scaling (off on the CPU).
        channels_last: ResNet activations in NHWC on CUDA (faster convolutions with AMP).
        pin_memory: loader batches in pinned memory, copied with ``non_blocking`` (CUDA only).
        num_workers: data-loader workers (:func:`loader_workers`).
        gpu_ids: what Ray assigned (``None`` outside Ray).
    """

    device: torch.device
    precision: MixedPrecision
    channels_last: bool
    pin_memory: bool
    num_workers: int
    gpu_ids: list[str] | None

    @classmethod
    def from_config(cls, cfg: Any) -> Runtime:
        """From an objective config's ``device``, ``amp``, ``channels_last``, ``pin_memory``,
        ``cudnn_benchmark`` and ``num_workers``; sets cuDNN autotuning process-wide."""
        device = resolve_device(cfg.device)
        cuda = device.type == "cuda"
        if cuda:
            # autotuning picks the fastest convolution per input shape: worth it for the fixed
            # shapes of a training loop
            torch.backends.cudnn.benchmark = bool(cfg.cudnn_benchmark)
        return cls(
            device=device,
            precision=MixedPrecision(device, enabled=cfg.amp),
            channels_last=cuda and cfg.channels_last,
            pin_memory=cuda and cfg.pin_memory,
            num_workers=loader_workers(cfg.num_workers),
            gpu_ids=assigned_gpu_ids(),
        )

    def module(self, module: M) -> M:
        """``module`` moved to the device in place (NHWC weights with ``channels_last``)."""
        module.to(self.device)
        if self.channels_last:
            module.to(memory_format=torch.channels_last)
        return module

    def tensor(self, x: torch.Tensor) -> torch.Tensor:
        """A batch tensor on the device; 4-d images in NHWC with ``channels_last``."""
        x = x.to(self.device, non_blocking=self.pin_memory)
        if self.channels_last and x.ndim == 4:
            x = x.contiguous(memory_format=torch.channels_last)
        return x

    def report(self) -> dict[str, str]:
        """The resolved runtime, reported with each epoch (tracked as run tags)."""
        return {
            "runtime/device": str(self.device),
            "runtime/gpu_ids": ",".join(self.gpu_ids) if self.gpu_ids else "none",
            "runtime/amp": self.precision.name,
            "runtime/channels_last": str(self.channels_last).lower(),
            "runtime/pin_memory": str(self.pin_memory).lower(),
            "runtime/num_workers": str(self.num_workers),
        }

    def synchronize(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)


class StepClock:
    """Times an epoch's steps: how long the loop waited for the next batch (data wait) out of
    its whole time, and the training images per second (images through a forward and backward
    pass: an image with two views counts twice).

    ``for batch in clock.iterate(batches)``, then ``clock.count(n)`` per step; the wait is the
    time spent in the loader's ``next``. :meth:`metrics` synchronises the device first, so the
    total includes the GPU's queued work.
    """

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self.start = time.perf_counter()
        self.wait = 0.0
        self.images = 0

    def iterate(self, batches: Iterable[T]) -> Iterator[T]:
        iterator = iter(batches)
        while True:
            tic = time.perf_counter()
            try:
                batch = next(iterator)
            except StopIteration:
                return
            finally:
                self.wait += time.perf_counter() - tic
            yield batch

    def count(self, images: int) -> None:
        self.images += images

    def metrics(self) -> dict[str, float]:
        self.runtime.synchronize()
        total = max(time.perf_counter() - self.start, 1e-9)
        return {
            "train/images_per_second": self.images / total,
            "train/data_wait_share": min(1.0, self.wait / total),
        }


def epoch_generator(seed: int, epoch: int) -> torch.Generator:
    """A CPU generator seeded by ``(seed, epoch)``: the views and loader seeds of an epoch do
    not depend on what ran before, so a resumed trial draws what an uninterrupted one would."""
    return torch.Generator().manual_seed(mix_seed(seed, epoch))
