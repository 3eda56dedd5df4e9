"""DSN's training loss (shared/methods.md section 5).

``L = w_ce CE + w_kd KD + w_supcon SupCon + w_mem L_mem`` (defaults 1 / 1 / 0.1 / 1), where

* ``CE`` is cross-entropy of the classifier on the clean views of sketches and photos;
* ``KD = mean_i -sum_c softmax(t_i)_c log softmax(s_i)_c`` distils a frozen teacher's logits
  ``t`` into the student's teacher-space head ``s``; optional (off when no teacher logits are
  given). The released code distils on photos only (its mask is the modality tag) and shifts
  the teacher logits first (scaled by ``kd_lambda``, plus SAKE's class-similarity term): the
  caller chooses the samples (``kd_mask``) and passes the teacher logits it wants matched;
* ``SupCon`` is supervised contrastive learning (Khosla et al.; the library's
  ``make_loss("supcon")`` over pytorch-metric-learning, cosine similarity, temperature
  ``tau``) over two augmented views of every sketch and photo, the labels shared across
  modalities, so that a sketch's positives include the photos of its class. The released
  loss carries an extra factor ``tau / 0.07`` (``temperature / base_temperature``); it is 1 at
  the default ``tau`` and is left out here (unless ``published``) so that the temperature and
  the weight stay separate hyperparameters;
* ``L_mem = 1 - mean_i cos(p_i, mu_{y_i})`` over the batch's photos ``p_i`` whose class has
  sketches in the memory bank, ``mu_c`` the mean of class ``c``'s bank, a detached target: the
  gradient flows through the photo features (in the released code both sides were detached,
  so ``L_mem`` was a constant).

Order within a step, as released: the batch's sketch features are written to the bank first,
then ``L_mem`` is computed against it.

``published=True`` is the released training: ``L_mem`` is computed on detached photo features
(its value is logged, it has no gradient: training is gradient-identical to ``w_mem = 0``) and
SupCon carries the factor ``tau / 0.07``. With the bank policy ``"released"``
(:mod:`trainables.dsn.memory_bank`) the logged ``L_mem`` is the released one too.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from trainables.dml.losses import make_loss
from trainables.dsn.memory_bank import BankStats, Policy, SketchMemoryBank

SKETCH, PHOTO = 0, 1  # modality tags, as in the released code
RELEASED_BASE_TEMPERATURE = 0.07  # the released SupCon's base_temperature


def memory_loss(photo_features: Tensor, photo_labels: Tensor, bank: SketchMemoryBank) -> Tensor:
    """``1 - (1/|V|) sum_{i in V} cos(p_i, mu_{y_i})``, ``V`` the photos whose class bank is filled.

    Args:
        photo_features: ``(n, D)`` photo features; the gradient flows through them.
        photo_labels: ``(n,)`` their classes.
        bank: the sketch memory bank; its class means are a constant target.

    Returns:
        Scalar loss; 0 (with a zero gradient) when no photo's class has a stored sketch.
    """
    if photo_features.ndim != 2 or photo_features.shape[0] != photo_labels.shape[0]:
        raise ValueError(
            f"photo_features must be (n, D) with n = len(photo_labels) = "
            f"{photo_labels.shape[0]}, got {tuple(photo_features.shape)}"
        )
    labels = photo_labels.to(bank.counts.device)
    valid = (bank.counts[labels] > 0).to(photo_features.device)  # (n,)
    # empty classes have NaN means: replace them before the cosine so no NaN reaches the grad
    targets = bank.class_means(labels).to(photo_features).masked_fill(~valid[:, None], 0.0)
    cos = F.cosine_similarity(photo_features, targets, dim=1)  # (n,)
    per_photo = torch.where(valid, 1.0 - cos, torch.zeros_like(cos))
    return per_photo.sum() / valid.sum().clamp_min(1)


def distillation_loss(student_logits: Tensor, teacher_logits: Tensor) -> Tensor:
    """``mean_i -sum_c softmax(t_i)_c log softmax(s_i)_c`` for ``(n, T)`` logits; 0 if ``n = 0``."""
    if student_logits.shape != teacher_logits.shape:
        raise ValueError(
            f"student and teacher logits differ in shape: {tuple(student_logits.shape)} vs "
            f"{tuple(teacher_logits.shape)}"
        )
    if student_logits.shape[0] == 0:
        return student_logits.sum()
    return F.cross_entropy(student_logits, F.softmax(teacher_logits.detach(), dim=1))


@dataclass(frozen=True)
class DSNOutput:
    """What :class:`DSNLoss` returns. ``loss`` carries the gradient; the parts are detached.

    Attributes:
        loss: the weighted total.
        ce, supcon, memory: the unweighted parts.
        kd: the unweighted distillation part, ``None`` when no teacher logits were given.
        memory_photos: number of photos that entered ``L_mem`` (their class had sketches).
        bank: the bank's statistics after this step's update.
    """

    loss: Tensor
    ce: Tensor
    kd: Tensor | None
    supcon: Tensor
    memory: Tensor
    memory_photos: Tensor
    bank: BankStats

    def metrics(self, prefix: str = "train/") -> dict[str, float]:
        """Flat scalar metrics, e.g. ``train/loss_memory`` and ``train/bank_fill``."""
        out = {
            f"{prefix}loss": float(self.loss.detach()),
            f"{prefix}loss_ce": float(self.ce),
            f"{prefix}loss_supcon": float(self.supcon),
            f"{prefix}loss_memory": float(self.memory),
            f"{prefix}memory_photos": float(self.memory_photos),
            f"{prefix}bank_fill": float(self.bank.fill),
            f"{prefix}bank_classes_filled": float(self.bank.classes_filled),
            f"{prefix}bank_mean_norm": float(self.bank.mean_norm),
        }
        if self.kd is not None:
            out[f"{prefix}loss_kd"] = float(self.kd)
        return out


class DSNLoss(nn.Module):
    """DSN's combined loss, owning the sketch memory bank (module docstring for the formula).

    Example::

        loss_fn = DSNLoss(num_classes=100, feature_dim=2048, bank_size=10)
        out = loss_fn(
            logits=logits, labels=labels, modalities=tags,   # (N, C), (N,), (N,) 0 sketch 1 photo
            features=features,                              # (N, F) clean-view features (bank)
            views=(z1, z2),                                 # 2 x (N, E) augmented embeddings
            kd_logits=kd_logits, teacher_logits=t_logits,   # optional (N, T)
        )
        out.loss.backward(); metrics = out.metrics()

    Calling it updates the bank (a training step); do not call it on validation data.

    Args:
        num_classes: classes of the training set (bank rows).
        feature_dim: size of ``features``.
        bank_size: ``k`` sketches per class.
        temperature: SupCon ``tau``.
        w_ce, w_kd, w_supcon, w_mem: weights of the parts.
        bank_policy: :class:`~trainables.dsn.memory_bank.SketchMemoryBank` policy.
        published: the released training (module docstring): ``L_mem`` without gradient,
            SupCon times ``tau / 0.07``.
    """

    def __init__(
        self,
        *,
        num_classes: int,
        feature_dim: int,
        bank_size: int = 10,
        temperature: float = 0.07,
        w_ce: float = 1.0,
        w_kd: float = 1.0,
        w_supcon: float = 0.1,
        w_mem: float = 1.0,
        bank_policy: Policy = "ring",
        published: bool = False,
    ) -> None:
        super().__init__()
        if temperature <= 0:
            raise ValueError(f"temperature must be > 0, got {temperature}")
        for name, w in (("w_ce", w_ce), ("w_kd", w_kd), ("w_supcon", w_supcon), ("w_mem", w_mem)):
            if w < 0:
                raise ValueError(f"{name} must be >= 0, got {w}")
        self.w_ce, self.w_kd, self.w_supcon, self.w_mem = w_ce, w_kd, w_supcon, w_mem
        self.temperature = temperature
        self.published = published
        self.supcon = make_loss("supcon", tau=temperature)  # cosine similarity
        self.supcon_scale = temperature / RELEASED_BASE_TEMPERATURE if published else 1.0
        self.bank = SketchMemoryBank(num_classes, feature_dim, size=bank_size, policy=bank_policy)

    def extra_repr(self) -> str:
        return (
            f"temperature={self.temperature}, w_ce={self.w_ce}, w_kd={self.w_kd}, "
            f"w_supcon={self.w_supcon}, w_mem={self.w_mem}, published={self.published}"
        )

    def forward(
        self,
        *,
        logits: Tensor,
        labels: Tensor,
        modalities: Tensor,
        features: Tensor,
        views: tuple[Tensor, Tensor],
        kd_logits: Tensor | None = None,
        teacher_logits: Tensor | None = None,
        kd_mask: Tensor | None = None,
    ) -> DSNOutput:
        """One training step's loss.

        Args:
            logits: ``(N, C)`` classifier logits of the clean views.
            labels: ``(N,)`` classes, shared by sketches and photos.
            modalities: ``(N,)`` tags, ``SKETCH`` (0) or ``PHOTO`` (1).
            features: ``(N, F)`` clean-view features: sketches fill the bank, photos enter
                ``L_mem``.
            views: two ``(N, E)`` embeddings of two augmentations of the same N samples.
            kd_logits: ``(N, T)`` student logits in the teacher's label space.
            teacher_logits: ``(N, T)`` frozen teacher logits; ``None`` turns KD off.
            kd_mask: ``(N,)`` bool, the samples to distil (all if ``None``).
        """
        n = labels.shape[0]
        if labels.ndim != 1 or modalities.shape != (n,):
            raise ValueError(
                f"labels and modalities must be (N,), got {tuple(labels.shape)} and "
                f"{tuple(modalities.shape)}"
            )
        if logits.ndim != 2 or logits.shape[0] != n or features.ndim != 2 or features.shape[0] != n:
            raise ValueError(
                f"logits and features must be (N, .) with N = {n}, got {tuple(logits.shape)} "
                f"and {tuple(features.shape)}"
            )
        if len(views) != 2 or any(v.ndim != 2 or v.shape[0] != n for v in views):
            raise ValueError(f"views must be two (N, E) tensors with N = {n}")
        is_sketch = modalities == SKETCH
        is_photo = modalities == PHOTO
        if not bool((is_sketch | is_photo).all()):
            raise ValueError(
                f"modalities must be {SKETCH} (sketch) or {PHOTO} (photo), got "
                f"{sorted(set(modalities.tolist()))}"
            )

        self.bank.update(
            features[is_sketch],
            labels[is_sketch],
            photo_features=features[is_photo],
            photo_labels=labels[is_photo],
        )
        photo_features = features[is_photo]
        if self.published:  # released: both sides detached, L_mem is a constant
            photo_features = photo_features.detach()
        mem = memory_loss(photo_features, labels[is_photo], self.bank)
        memory_photos = (self.bank.counts[labels[is_photo].to(self.bank.counts.device)] > 0).sum()
        ce = F.cross_entropy(logits, labels)
        supcon = self.supcon_scale * self.supcon(
            torch.cat(views, dim=0), torch.cat([labels, labels])
        )  # over (2N, E)
        loss = self.w_ce * ce + self.w_supcon * supcon + self.w_mem * mem

        kd: Tensor | None = None
        if teacher_logits is not None:
            if kd_logits is None:
                raise ValueError("teacher_logits given without kd_logits (the student's KD head)")
            mask = (
                torch.ones(n, dtype=torch.bool, device=labels.device)
                if kd_mask is None
                else (kd_mask)
            )
            if mask.shape != (n,) or mask.dtype != torch.bool:
                raise ValueError(f"kd_mask must be a ({n},) bool tensor")
            kd = distillation_loss(kd_logits[mask], teacher_logits[mask])
            loss = loss + self.w_kd * kd
        elif kd_logits is not None:
            raise ValueError("kd_logits given without teacher_logits")

        if not bool(torch.isfinite(loss)):
            raise FloatingPointError(
                f"DSN loss is not finite: ce={float(ce)}, supcon={float(supcon)}, "
                f"memory={float(mem)}, kd={None if kd is None else float(kd)}"
            )
        return DSNOutput(
            loss=loss,
            ce=ce.detach(),
            kd=None if kd is None else kd.detach(),
            supcon=supcon.detach(),
            memory=mem.detach(),
            memory_photos=memory_photos,
            bank=self.bank.stats(),
        )
