"""Every image objective follows the device rule of ``trainables.runtime``: with ``device: cpu``
its network, its loss's parameters and buffers (a learnable curvature, DSN's memory bank) and
every batch that reaches them are on the CPU, and the trial reports where it ran; ``device:
cuda`` on a machine without CUDA fails before any data is read."""

from __future__ import annotations

import importlib
from collections.abc import Iterator
from typing import Any

import pytest
import torch
from torch import nn

from trainables import runtime as runtime_module
from trainables.reporting import capture_reports
from trainables.runtime import DeviceError, Runtime

TINY: dict[str, tuple[str, dict[str, Any]]] = {
    "baseline": ("trainables.baseline", {"max_epochs": 1}),
    "ahsml": ("trainables.ahsml.objective", {"max_epochs": 1, "learnable_curvature": True}),
    "ahsml (views on the device)": (
        "trainables.ahsml.objective",
        {"max_epochs": 1, "augment_on": "device"},
    ),
    "dsn": ("trainables.dsn.objective", {"max_epochs": 1}),
    "mathm": ("trainables.mathm.objective", {"max_epochs": 1, "iterations": 3}),
}


class Placement:
    """What the trial's runtime placed, and the devices of every input that reached it."""

    def __init__(self) -> None:
        self.runtimes: list[Runtime] = []
        self.modules: list[nn.Module] = []
        self.input_devices: set[torch.device] = set()

    def hook(self, module: nn.Module, args: tuple[Any, ...]) -> None:
        self.input_devices.update(a.device for a in args if isinstance(a, torch.Tensor))


@pytest.fixture
def placement(monkeypatch: pytest.MonkeyPatch) -> Iterator[Placement]:
    seen = Placement()
    from_config = Runtime.from_config.__func__  # type: ignore[attr-defined]
    module = Runtime.module

    def recording_from_config(cls: type[Runtime], cfg: Any) -> Runtime:
        runtime = from_config(cls, cfg)
        seen.runtimes.append(runtime)
        return runtime

    def recording_module(self: Runtime, m: nn.Module) -> nn.Module:
        seen.modules.append(m)
        m.register_forward_pre_hook(seen.hook)
        return module(self, m)

    monkeypatch.setattr(Runtime, "from_config", classmethod(recording_from_config))
    monkeypatch.setattr(Runtime, "module", recording_module)
    yield seen


@pytest.mark.parametrize("name", list(TINY))
def test_device_cpu_puts_network_loss_and_batches_on_the_cpu(
    name: str, placement: Placement
) -> None:
    path, config = TINY[name]
    objective = importlib.import_module(path)
    with capture_reports() as reports:
        objective.train({**config, "device": "cpu"})
    (runtime,) = placement.runtimes
    assert runtime.device == torch.device("cpu")
    # the network and, where there is one, the loss module went through the runtime
    assert len(placement.modules) >= (2 if name in ("dsn", "ahsml") else 1)
    tensors = [t for m in placement.modules for t in (*m.parameters(), *m.buffers())]
    assert tensors and {t.device for t in tensors} == {torch.device("cpu")}
    assert placement.input_devices == {torch.device("cpu")}
    assert reports[-1]["runtime/device"] == "cpu"
    assert reports[-1]["runtime/gpu_ids"] == "none"  # outside Ray
    assert 0.0 <= reports[-1]["train/data_wait_share"] <= 1.0
    assert reports[-1]["train/images_per_second"] > 0
    # the checkpoint state is on the CPU whatever the device
    state = reports.last_state
    assert state is not None
    assert all(t.device.type == "cpu" for t in state["model"].values())


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
@pytest.mark.parametrize("name", ["baseline", "ahsml", "dsn", "mathm"])
def test_device_cuda_without_cuda_fails_before_reading_data(
    name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    path, config = TINY[name]
    objective = importlib.import_module(path)

    def no_data(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("data was read before the device was checked")

    for module_name in ("trainables.dml_data", "trainables.sbir.data"):
        module = importlib.import_module(module_name)
        for loader in ("load_dml_data", "load_sbir_data"):
            if hasattr(module, loader):
                monkeypatch.setattr(module, loader, no_data)
    if hasattr(objective, "load_sbir_data"):
        monkeypatch.setattr(objective, "load_sbir_data", no_data)
    with pytest.raises(DeviceError, match="CUDA is not usable"):
        objective.train({**config, "device": "cuda"})
    assert runtime_module.assigned_gpu_ids() is None  # the rule saw no Ray trial here
