"""DSN's per-class sketch memory bank (shared/methods.md section 5).

The bank keeps up to ``k`` sketch features per class, detached: a ``(C, k, D)`` buffer with a
fill count per class. The memory loss (:func:`trainables.dsn.loss.memory_loss`) pulls each
photo feature towards the mean of its class's stored sketches.

Three replacement policies once a class holds ``k`` entries:

* ``"ring"`` (default): a ring buffer per class; the next sketch of class ``c`` overwrites the
  oldest slot of ``c``.
* ``"replace_farthest"``: the released code's policy with its bugs fixed. For a sketch ``s`` of a
  full class ``c``, let ``q`` be the mean feature of the batch's photos of class ``c``; the stored
  entry least cosine-similar to ``q`` is replaced by ``s`` when ``cos(q, s)`` is larger than that
  entry's. The released code (``MemoryStore.add_entries``) wrote ``memory_embeds[j] = s``, which
  overwrites the whole bank of class ``j`` (``j`` being a slot index) instead of slot ``j`` of
  class ``c``; here slot ``j`` of class ``c`` is written. Its guard for "no photo of class ``c``
  in the batch" compared a ``torch.Size`` to 0 and never fired (the empty mean was NaN and the
  comparison with it just came out false); here the sketch is skipped explicitly.

* ``"released"``: the released code's policy with its slot bug kept, for reproducing its
  reported memory loss: where ``"replace_farthest"`` writes slot ``j`` of class ``c``, it writes
  ``s`` into every slot of class ``j`` (whose fill count stays as it was; a slot ``j`` past the
  classes, where the released code fails with an index error, writes nothing). Released
  training does not depend on it (its memory loss has no gradient,
  :class:`~trainables.dsn.loss.DSNLoss` ``published``); only the logged ``L_mem`` does.

While a class is filling, every policy appends. The released trainer empties the bank at the
start of every epoch; :meth:`SketchMemoryBank.reset` does that when the caller wants it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

Policy = Literal["ring", "replace_farthest", "released"]
POLICIES: tuple[str, ...] = ("ring", "replace_farthest", "released")


@dataclass(frozen=True)
class BankStats:
    """Scalar (0-d, detached) statistics of the bank, for logging.

    Attributes:
        fill: stored entries / (C k).
        classes_filled: fraction of classes with at least one entry.
        mean_norm: mean L2 norm of the stored entries (0 when the bank is empty).
    """

    fill: Tensor
    classes_filled: Tensor
    mean_norm: Tensor


class SketchMemoryBank(nn.Module):
    """Up to ``size`` detached sketch features per class.

    Args:
        num_classes: ``C``, labels are in ``[0, C)``.
        dim: ``D``, the feature size.
        size: ``k``, entries per class.
        policy: ``"ring"``, ``"replace_farthest"`` or ``"released"`` (module docstring).
        dtype: storage dtype.

    Buffers (saved in ``state_dict``, moved by ``.to``): ``features (C, k, D)``,
    ``counts (C,)`` (entries stored per class, at most ``k``), ``next_slot (C,)`` (the ring's
    write position).
    """

    features: Tensor
    counts: Tensor
    next_slot: Tensor

    def __init__(
        self,
        num_classes: int,
        dim: int,
        *,
        size: int = 10,
        policy: Policy = "ring",
        dtype: torch.dtype = torch.float32,
    ) -> None:
        super().__init__()
        if num_classes < 1 or dim < 1 or size < 1:
            raise ValueError(
                f"num_classes, dim and size must be >= 1, got {num_classes}, {dim}, {size}"
            )
        if policy not in POLICIES:
            raise ValueError(f"unknown memory bank policy {policy!r}; known: {list(POLICIES)}")
        self.num_classes = num_classes
        self.dim = dim
        self.size = size
        self.policy = policy
        self.register_buffer("features", torch.zeros(num_classes, size, dim, dtype=dtype))
        self.register_buffer("counts", torch.zeros(num_classes, dtype=torch.long))
        self.register_buffer("next_slot", torch.zeros(num_classes, dtype=torch.long))

    def extra_repr(self) -> str:
        return (
            f"num_classes={self.num_classes}, dim={self.dim}, size={self.size}, "
            f"policy={self.policy!r}"
        )

    @torch.no_grad()
    def reset(self) -> None:
        """Empty every class."""
        self.features.zero_()
        self.counts.zero_()
        self.next_slot.zero_()

    def _check(self, features: Tensor, labels: Tensor, what: str) -> None:
        if features.ndim != 2 or features.shape[1] != self.dim:
            raise ValueError(f"{what} must be (n, {self.dim}), got {tuple(features.shape)}")
        if labels.shape != (features.shape[0],):
            raise ValueError(
                f"{what} labels must be ({features.shape[0]},), got {tuple(labels.shape)}"
            )
        if labels.is_floating_point():
            raise TypeError(f"{what} labels must be integers, got {labels.dtype}")
        if labels.numel() and (int(labels.min()) < 0 or int(labels.max()) >= self.num_classes):
            raise ValueError(
                f"{what} labels must lie in [0, {self.num_classes}), got range "
                f"[{int(labels.min())}, {int(labels.max())}]"
            )

    @torch.no_grad()
    def update(
        self,
        features: Tensor,
        labels: Tensor,
        *,
        photo_features: Tensor | None = None,
        photo_labels: Tensor | None = None,
    ) -> None:
        """Store sketch ``features (n, D)`` of classes ``labels (n,)``, in batch order.

        ``photo_features (m, D)`` and ``photo_labels (m,)`` are needed by the
        ``"replace_farthest"`` and ``"released"`` policies only (the batch's photos, which rank
        the stored entries).
        """
        self._check(features, labels, "sketch features")
        if self.policy == "ring":
            self._update_ring(features, labels)
            return
        if photo_features is None or photo_labels is None:
            raise ValueError(f"policy {self.policy!r} needs photo_features and photo_labels")
        self._check(photo_features, photo_labels, "photo features")
        self._update_replace_farthest(features, labels, photo_features, photo_labels)

    def _update_ring(self, features: Tensor, labels: Tensor) -> None:
        counts = self.counts.tolist()
        next_slot = self.next_slot.tolist()
        writes: dict[tuple[int, int], int] = {}  # (class, slot) -> row; later rows win
        for row, c in enumerate(labels.tolist()):
            writes[(c, next_slot[c])] = row
            next_slot[c] = (next_slot[c] + 1) % self.size
            counts[c] = min(counts[c] + 1, self.size)
        if writes:
            dev = self.features.device
            cls = torch.tensor([c for c, _ in writes], device=dev)
            slots = torch.tensor([s for _, s in writes], device=dev)
            rows = torch.tensor(list(writes.values()), device=features.device)
            self.features[cls, slots] = features.detach()[rows].to(dev, self.features.dtype)
        self.counts.copy_(torch.tensor(counts))
        self.next_slot.copy_(torch.tensor(next_slot))

    def _update_replace_farthest(
        self, features: Tensor, labels: Tensor, photo_features: Tensor, photo_labels: Tensor
    ) -> None:
        feats = features.detach().to(device=self.features.device, dtype=self.features.dtype)
        photos = photo_features.detach().to(device=self.features.device, dtype=self.features.dtype)
        photo_labels = photo_labels.to(self.features.device)
        counts = self.counts.tolist()
        for row, c in enumerate(labels.tolist()):
            if counts[c] < self.size:
                self.features[c, counts[c]] = feats[row]
                counts[c] += 1
                continue
            same = photo_labels == c
            if not bool(same.any()):
                continue  # no photo of this class to rank the entries: keep the bank as is
            query = photos[same].mean(dim=0, keepdim=True)  # (1, D)
            scores = F.cosine_similarity(self.features[c], query, dim=1)  # (k,)
            slot = int(scores.argmin())
            if float(F.cosine_similarity(feats[row : row + 1], query, dim=1)) > float(scores[slot]):
                if self.policy == "released":
                    if slot < self.num_classes:  # past the classes the released code fails
                        self.features[slot] = feats[row]  # every slot of class `slot`
                else:
                    self.features[c, slot] = feats[row]
        self.counts.copy_(torch.tensor(counts))
        self.next_slot.copy_(self.counts % self.size)

    def class_means(self, labels: Tensor) -> Tensor:
        """``(n,) -> (n, D)``: mean stored feature of each label's class (detached).

        A class with no entry has no mean: its rows are NaN, so that they cannot be used
        silently; select with ``bank.counts[labels] > 0``.
        """
        labels = labels.to(self.features.device)
        counts = self.counts[labels]  # (n,)
        # only the first counts[c] slots are stored entries (the "released" policy can write the
        # others), as the released get_class_center reads them
        stored = torch.arange(self.size, device=counts.device)[None, :] < counts[:, None]  # (n, k)
        sums = (self.features[labels] * stored[..., None]).sum(dim=1)  # (n, D)
        return sums / counts.unsqueeze(1).to(sums.dtype)

    def stats(self) -> BankStats:
        """Fill fraction, classes filled and mean entry norm (see :class:`BankStats`)."""
        with torch.no_grad():
            stored = (
                torch.arange(self.size, device=self.counts.device)[None, :] < self.counts[:, None]
            )  # (C, k)
            norms = self.features.norm(dim=2)  # (C, k)
            n = stored.sum()
            return BankStats(
                fill=n.to(self.features.dtype) / (self.num_classes * self.size),
                classes_filled=(self.counts > 0).to(self.features.dtype).mean(),
                mean_norm=(norms * stored).sum() / n.clamp_min(1),
            )
