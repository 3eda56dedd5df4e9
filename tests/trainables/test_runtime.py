"""The runtime of a trial: the device rule, loader workers, mixed precision on the CPU, step
timing, the reported runtime, and checkpoints that do not depend on the device they came from.

The device rule's expected outcomes are written out below from the rule in
``trainables/runtime.py``'s module docstring, not computed with ``choose_device``.
"""

from __future__ import annotations

import copy
import os
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import torch
from torch import nn

from trainables.baseline import BaselineConfig
from trainables.config import ConfigError
from trainables.dml.backbones.amp import MixedPrecision
from trainables.reporting import STATE_FILE, capture_reports, load_state, on_cpu, report_epoch
from trainables.runtime import (
    DeviceError,
    Runtime,
    StepClock,
    choose_device,
    epoch_generator,
    loader_workers,
    resolve_device,
)

CPU = torch.device("cpu")
REPORT = "torch-report-7f3a (what torch said)"  # a marker the errors must quote

REQUESTED = ["auto", "cpu", "cuda", "cuda:0", "cuda:1"]
ASSIGNED: list[list[str] | None] = [None, [], ["0"], ["2", "3"]]


def rule(requested: str, assigned: list[str] | None, cuda: bool) -> torch.device | None:
    """The device rule of the module docstring; None stands for DeviceError. One CUDA device
    is visible when CUDA is usable, none otherwise."""
    visible = 1 if cuda else 0
    if requested == "cpu":  # whatever Ray assigned
        return CPU
    if requested == "auto":
        if assigned is None:  # outside Ray: CUDA when usable
            return torch.device("cuda", 0) if cuda else CPU
        if assigned == []:  # Ray assigned no GPU
            return CPU
        # the first assigned GPU is cuda:0 in the trial; holding a GPU without CUDA fails
        return torch.device("cuda", 0) if cuda else None
    if assigned == []:  # Ray reserved no GPU for the trial: no CUDA device is its to use
        return None
    index = 0 if requested == "cuda" else int(requested.split(":")[1])
    return torch.device("cuda", index) if cuda and index < visible else None


@pytest.mark.parametrize("cuda", [True, False])
@pytest.mark.parametrize("assigned", ASSIGNED, ids=repr)
@pytest.mark.parametrize("requested", REQUESTED)
def test_choose_device_follows_the_rule(
    requested: str, assigned: list[str] | None, cuda: bool
) -> None:
    """Every combination of request, Ray assignment and CUDA gives the rule's device, or a
    DeviceError quoting torch's report."""
    expected = rule(requested, assigned, cuda)
    kwargs: dict[str, Any] = {
        "assigned": assigned,
        "cuda_available": cuda,
        "device_count": 1 if cuda else 0,
        "report": REPORT,
    }
    if expected is None:
        with pytest.raises(DeviceError) as err:
            choose_device(requested, **kwargs)
        assert REPORT in str(err.value)
    else:
        device = choose_device(requested, **kwargs)
        assert device == expected
        assert device.type == expected.type and device.index == expected.index


def test_auto_with_an_assigned_gpu_but_no_cuda_names_the_gpus() -> None:
    """The error of a trial holding GPUs it cannot use names them, quotes torch and points at
    ``device: cpu``."""
    with pytest.raises(DeviceError) as err:
        choose_device(
            "auto", assigned=["2", "3"], cuda_available=False, device_count=0, report=REPORT
        )
    message = str(err.value)
    assert re.search(r"\b2\b", message) and re.search(r"\b3\b", message)
    assert REPORT in message
    assert "device: cpu" in message


UNKNOWN_NAMES = [
    "gpu",
    "cuda:x",
    "",
    "CPU",
    "cuda:",
    " cpu",
    "cuda:0 ",
    "cuda:\u0661",  # ARABIC-INDIC DIGIT ONE: not an ASCII digit
]


@pytest.mark.parametrize("name", UNKNOWN_NAMES)
def test_unknown_device_names_are_config_errors(name: str) -> None:
    """An unknown device name is a ConfigError from the rule and from a config that inherits
    the runtime settings (naming the config and the field)."""
    with pytest.raises(ConfigError):
        choose_device(name, assigned=None, cuda_available=True, device_count=1)
    with pytest.raises(ConfigError, match=r"BaselineConfig\.device"):
        BaselineConfig(device=name)


@pytest.mark.parametrize("name", ["auto", "cpu", "cuda", "cuda:0", "cuda:12"])
def test_known_device_names_make_a_config(name: str) -> None:
    """The four forms of device name are accepted by a config (resolved only at run time)."""
    assert BaselineConfig(device=name).device == name


def test_num_workers_below_minus_one_is_refused() -> None:
    """num_workers is -1 (auto) or >= 0."""
    with pytest.raises(ConfigError, match=r"BaselineConfig\.num_workers"):
        BaselineConfig(num_workers=-2)
    assert BaselineConfig(num_workers=-1).num_workers == -1
    assert BaselineConfig(num_workers=0).num_workers == 0


CPU_ONLY = pytest.mark.skipif(torch.cuda.is_available(), reason="checks a machine without CUDA")


@CPU_ONLY
def test_resolve_auto_outside_ray_is_the_cpu_without_cuda() -> None:
    """Outside Ray on a machine without CUDA, ``auto`` is the CPU."""
    assert resolve_device("auto") == CPU
    assert resolve_device("cpu") == CPU


@CPU_ONLY
@pytest.mark.parametrize("name", ["cuda", "cuda:0"])
def test_resolve_cuda_without_cuda_fails(name: str) -> None:
    """Asking for CUDA where torch has none fails with a DeviceError saying what torch reports."""
    with pytest.raises(DeviceError, match=r"torch\.cuda\.is_available\(\) = False"):
        resolve_device(name)


@pytest.mark.parametrize("requested", [0, 1, 3, 17])
def test_loader_workers_pass_explicit_requests_through(requested: int) -> None:
    """A non-negative request is the number of workers."""
    assert loader_workers(requested) == requested


@pytest.mark.parametrize("cpus", [1, 2, 5])
def test_auto_loader_workers_leave_one_cpu_to_the_loop(
    cpus: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """-1 outside Ray: this process's CPUs minus the training loop's one, at least 0."""
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(10, 10 + cpus)))
    assert loader_workers(-1) == max(0, cpus - 1)


@pytest.mark.parametrize("enabled", [True, False])
def test_mixed_precision_is_off_on_the_cpu(enabled: bool) -> None:
    """On the CPU mixed precision is named off and autocast keeps float32."""
    precision = MixedPrecision(CPU, enabled=enabled)
    assert precision.name == "off"
    a, b = torch.rand(4, 5), torch.rand(5, 3)
    with precision.autocast():
        product = a @ b
        assert not torch.is_autocast_enabled("cpu")
    assert product.dtype == torch.float32
    assert torch.equal(product, a @ b)
    precision.load_state_dict(precision.state_dict())  # the checkpoint round trip is harmless


def test_mixed_precision_step_is_a_plain_step_on_the_cpu() -> None:
    """step() is zero_grad, backward and one optimizer step: two of them match plain training
    exactly (accumulated gradients or a skipped step would not)."""
    torch.manual_seed(0)
    model = nn.Linear(4, 3)
    reference = copy.deepcopy(model)
    initial = [p.detach().clone() for p in model.parameters()]
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    reference_optimizer = torch.optim.SGD(reference.parameters(), lr=0.1, momentum=0.9)
    precision = MixedPrecision(CPU, enabled=True)
    for _ in range(2):
        x, y = torch.randn(8, 4), torch.randn(8, 3)
        precision.step(nn.functional.mse_loss(model(x), y), optimizer)
        reference_optimizer.zero_grad()
        nn.functional.mse_loss(reference(x), y).backward()
        reference_optimizer.step()
    for param, ref, start in zip(model.parameters(), reference.parameters(), initial, strict=True):
        assert torch.equal(param, ref)
        assert not torch.equal(param, start)


def _cpu_runtime(**overrides: Any) -> Runtime:
    return Runtime.from_config(BaselineConfig(device="cpu", **overrides))


def test_step_clock_measures_data_wait_and_throughput() -> None:
    """A loader that sleeps 50 ms per batch against a 10 ms step: most of the time is data
    wait, and the throughput is the counted images over the elapsed time."""

    def slow_batches() -> Iterator[int]:
        for i in range(4):
            time.sleep(0.05)
            yield i

    started = time.perf_counter()
    clock = StepClock(_cpu_runtime(num_workers=0))
    seen = []
    for batch in clock.iterate(slow_batches()):
        time.sleep(0.01)
        clock.count(3)
        seen.append(batch)
    metrics = clock.metrics()
    elapsed = time.perf_counter() - started
    assert seen == [0, 1, 2, 3]
    assert 0.6 < metrics["train/data_wait_share"] <= 1.0
    assert metrics["train/images_per_second"] == pytest.approx(12 / elapsed, rel=0.2)


def test_step_clock_without_steps_reports_zero() -> None:
    """An empty epoch counts no images and waits (almost) nothing."""
    clock = StepClock(_cpu_runtime(num_workers=0))
    assert list(clock.iterate([])) == []
    metrics = clock.metrics()
    assert metrics["train/images_per_second"] == 0.0
    assert 0.0 <= metrics["train/data_wait_share"] <= 1.0


def test_cpu_runtime_report() -> None:
    """A CPU runtime reports the CPU, no GPUs, AMP off and the CUDA-only switches off, all as
    strings (run tags)."""
    runtime = _cpu_runtime()
    report = runtime.report()
    assert report["runtime/device"] == "cpu"
    assert report["runtime/gpu_ids"] == "none"
    assert report["runtime/amp"] == "off"
    assert report["runtime/channels_last"] == "false"
    assert report["runtime/pin_memory"] == "false"
    assert report["runtime/num_workers"] == str(max(0, len(os.sched_getaffinity(0)) - 1))
    assert all(isinstance(v, str) for v in report.values())
    assert runtime.device == CPU and runtime.gpu_ids is None


def test_epoch_generator_depends_only_on_seed_and_epoch() -> None:
    """The same (seed, epoch) draws the same numbers whatever ran before; another epoch or seed
    draws others; the global generator is left alone."""
    state = torch.get_rng_state()
    first = torch.rand(5, generator=epoch_generator(3, 1))
    torch.rand(7)  # unrelated use of the global generator
    assert torch.equal(torch.rand(5, generator=epoch_generator(3, 1)), first)
    assert not torch.equal(torch.rand(5, generator=epoch_generator(3, 2)), first)
    assert not torch.equal(torch.rand(5, generator=epoch_generator(4, 1)), first)
    torch.set_rng_state(state)
    epoch_generator(3, 1)
    assert torch.equal(torch.get_rng_state(), state)


# --- checkpoints ------------------------------------------------------------------------------


def _tensors(value: Any) -> list[torch.Tensor]:
    """Every tensor nested in dicts, lists and tuples."""
    if isinstance(value, torch.Tensor):
        return [value]
    if isinstance(value, dict):
        return [t for v in value.values() for t in _tensors(v)]
    if isinstance(value, list | tuple):
        return [t for v in value for t in _tensors(v)]
    return []


def _trained(seed: int = 0) -> tuple[nn.Module, torch.optim.Optimizer]:
    """A tiny model and its Adam optimizer after one step (moments and step count set)."""
    torch.manual_seed(seed)
    model = nn.Linear(3, 2)
    optimizer = torch.optim.Adam(model.parameters(), lr=0.05)
    _step(model, optimizer, 0)
    return model, optimizer


def _step(model: nn.Module, optimizer: torch.optim.Optimizer, i: int) -> None:
    g = torch.Generator().manual_seed(100 + i)
    x, y = torch.randn(6, 3, generator=g), torch.randn(6, 2, generator=g)
    optimizer.zero_grad()
    nn.functional.mse_loss(model(x), y).backward()
    optimizer.step()


def _nested_state() -> dict[str, Any]:
    model, optimizer = _trained()
    return {
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict(),
        "history": [torch.tensor(1.5), ("tag", torch.arange(3)), 7],
        "epoch": 4,
        "name": "trial",
        "none": None,
    }


def _fake_cuda() -> Any:
    """A fake-tensor mode in which tensors claim a CUDA device without one being present, or a
    skip where this torch cannot make them."""
    try:
        from torch._subclasses.fake_tensor import FakeTensorMode

        mode = FakeTensorMode(allow_non_fake_inputs=True)
        with mode:
            probe = torch.zeros(1).to("cuda")
        assert probe.device.type == "cuda"
    except Exception as err:  # any failure means the trick is unavailable here
        pytest.skip(f"fake CUDA tensors unavailable in this torch: {err!r}")
    return mode


def _to_cuda(value: Any) -> Any:
    if isinstance(value, torch.Tensor):
        return value.to("cuda")
    if isinstance(value, dict):
        return {k: _to_cuda(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return type(value)(_to_cuda(v) for v in value)
    return value


def test_on_cpu_keeps_structure_values_and_non_tensors() -> None:
    """on_cpu of a CPU state: the same nesting (dict, list, tuple), equal detached tensors,
    non-tensors unchanged (the Adam hyperparameters among them)."""
    state = _nested_state()
    state["grad"] = torch.ones(2, requires_grad=True) * 2
    moved = on_cpu(state)
    assert moved.keys() == state.keys()
    assert type(moved["history"]) is list and type(moved["history"][1]) is tuple
    assert moved["history"][1][0] == "tag" and moved["history"][2] == 7
    assert (moved["epoch"], moved["name"], moved["none"]) == (4, "trial", None)
    assert moved["optimizer"]["param_groups"] == state["optimizer"]["param_groups"]
    before, after = _tensors(state), _tensors(moved)
    assert len(after) == len(before) > 5
    for old, new in zip(before, after, strict=True):
        assert new.device == CPU and not new.requires_grad
        assert torch.equal(new, old.detach())


def test_on_cpu_moves_cuda_tensors_to_the_cpu() -> None:
    """A state whose tensors are on CUDA (fake CUDA tensors here) comes back with every tensor
    on the CPU, shapes, dtypes and non-tensors kept."""
    mode = _fake_cuda()
    with mode:
        state = _to_cuda(_nested_state())
        assert {t.device.type for t in _tensors(state)} == {"cuda"}
        moved = on_cpu(state)
    assert moved["optimizer"]["param_groups"] == state["optimizer"]["param_groups"]
    assert moved["history"][1][0] == "tag" and moved["epoch"] == 4
    for old, new in zip(_tensors(state), _tensors(moved), strict=True):
        assert new.device == CPU
        assert (new.shape, new.dtype) == (old.shape, old.dtype)


def test_report_epoch_captures_a_cpu_state() -> None:
    """In capture mode the checkpoint state kept is on the CPU, though it was given on CUDA."""
    mode = _fake_cuda()
    with capture_reports() as reports, mode:
        state = _to_cuda(_nested_state())
        report_epoch({"train/loss": 0.5, "runtime/device": "cuda:0"}, state=state)
    assert reports == [{"train/loss": 0.5, "runtime/device": "cuda:0"}]
    assert reports.last_state is not None
    kept = _tensors(reports.last_state)
    assert len(kept) == len(_tensors(state)) > 5
    assert all(t.device == CPU for t in kept)


def _save_as_if_on(device: str, state: dict[str, Any], path: Path, monkeypatch: Any) -> None:
    """torch.save with every storage tagged as stored on ``device`` (a checkpoint written on a
    GPU node, made on a CPU-only machine)."""
    with monkeypatch.context() as m:
        m.setattr(torch.serialization, "location_tag", lambda storage: device)
        torch.save(state, path)


def test_a_checkpoint_written_on_a_gpu_loads_on_the_cpu(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A state file tagged cuda:0 loads with load_state on a machine without CUDA; other map
    locations place it where asked."""
    state = _nested_state()
    _save_as_if_on("cuda:0", state, tmp_path / STATE_FILE, monkeypatch)
    if not torch.cuda.is_available():  # the tag is real: a plain load needs CUDA
        with pytest.raises(RuntimeError, match="CUDA"):
            torch.load(tmp_path / STATE_FILE, weights_only=False)
    loaded = load_state(tmp_path)
    for old, new in zip(_tensors(state), _tensors(loaded), strict=True):
        assert new.device == CPU and torch.equal(new, old)
    assert loaded["optimizer"]["param_groups"] == state["optimizer"]["param_groups"]

    meta = torch.load(tmp_path / STATE_FILE, map_location="meta", weights_only=False)
    assert {t.device.type for t in _tensors(meta)} == {"meta"}

    locations: list[str] = []

    def record(storage: Any, location: str) -> Any:
        locations.append(location)
        return storage

    torch.load(tmp_path / STATE_FILE, map_location=record, weights_only=False)
    assert locations and set(locations) == {"cuda:0"}


def test_a_restored_trial_takes_the_uninterrupted_next_step(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Model and Adam state reported (capture mode), saved as on a GPU node, loaded and restored
    into fresh objects: the next step equals the uninterrupted one's."""
    model, optimizer = _trained()
    with capture_reports() as reports:
        report_epoch(
            {"train/loss": 0.1},
            state={"model": model.state_dict(), "optimizer": optimizer.state_dict()},
        )
    assert reports.last_state is not None
    _save_as_if_on("cuda:0", reports.last_state, tmp_path / STATE_FILE, monkeypatch)

    _step(model, optimizer, 1)  # the uninterrupted trial goes on

    saved = load_state(tmp_path)
    torch.manual_seed(99)  # another initialisation, overwritten by the checkpoint
    restored = nn.Linear(3, 2)
    restored_optimizer = torch.optim.Adam(restored.parameters(), lr=0.05)
    restored.load_state_dict(saved["model"])
    restored_optimizer.load_state_dict(saved["optimizer"])
    _step(restored, restored_optimizer, 1)

    for a, b in zip(model.parameters(), restored.parameters(), strict=True):
        assert torch.equal(a, b)
    moments = restored_optimizer.state[next(iter(restored.parameters()))]
    assert int(moments["step"]) == 2
