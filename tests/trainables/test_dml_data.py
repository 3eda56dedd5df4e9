"""The in-memory fast paths of ``trainables.dml_data`` give exactly what the DataLoader gives."""

from __future__ import annotations

import torch
from torch.utils.data import DataLoader

from trainables.dml_data import TrainBatches, embed, load_dml_data


def _digits() -> object:
    return load_dml_data(
        dataset="digits",
        data_root="",
        seed=3,
        noise="symmetric",
        noise_rate=0.3,
        image_size=8,
        folds=1,
        fold=0,
    )


def test_train_batches_are_the_loaders_batches() -> None:
    data = _digits()
    batches = TrainBatches(data, batch_size=60, m=10, seed=3)
    for epoch in (1, 2, 5):
        fast = list(batches.epoch(epoch))
        batches.sampler.set_epoch(epoch)
        reference = list(DataLoader(data.train, batch_sampler=batches.batches))
        assert len(fast) == len(reference) > 0
        for (images, labels), (ref_images, ref_labels) in zip(fast, reference, strict=True):
            assert torch.equal(images, ref_images)
            assert torch.equal(labels, ref_labels)
    # Reseeded per epoch: two epochs differ.
    first = torch.cat([y for _, y in batches.epoch(1)])
    second = torch.cat([y for _, y in batches.epoch(2)])
    assert not torch.equal(first, second)


def test_embed_is_the_loaders_embedding_in_order() -> None:
    data = _digits()
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 8))
    reference = torch.cat([model(x) for x, _ in DataLoader(data.val, batch_size=7)])
    out = embed(model, data.val, batch_size=7)
    assert out.shape == (len(data.val), 8)
    assert torch.equal(out, reference)
    assert model.training  # restored
