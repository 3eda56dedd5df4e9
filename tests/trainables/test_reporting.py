"""Restoring an optimizer keeps its moments but the current config's hyperparameters."""

from __future__ import annotations

import torch

from trainables.reporting import restore_optimizer


def test_restored_optimizer_keeps_new_lr_and_old_moments() -> None:
    weight = torch.nn.Parameter(torch.ones(3))
    old = torch.optim.Adam([weight], lr=0.1, weight_decay=0.01)
    weight.sum().backward()
    old.step()
    saved = old.state_dict()

    new = torch.optim.Adam([weight], lr=0.5, weight_decay=0.0)  # e.g. mutated by PBT
    restore_optimizer(new, saved)
    assert new.param_groups[0]["lr"] == 0.5
    assert new.param_groups[0]["weight_decay"] == 0.0
    assert torch.equal(new.state[weight]["exp_avg"], old.state[weight]["exp_avg"])
    assert int(new.state[weight]["step"]) == 1
