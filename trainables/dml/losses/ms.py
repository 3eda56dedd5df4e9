"""Multi-Similarity loss and mining (Wang et al., CVPR'19), on pytorch-metric-learning."""

from __future__ import annotations

from pytorch_metric_learning.distances import BaseDistance
from pytorch_metric_learning.losses import MultiSimilarityLoss as _PMLMultiSimilarityLoss
from pytorch_metric_learning.miners import MultiSimilarityMiner

from trainables.dml.distances import make_distance
from trainables.dml.losses._base import PMLPairLoss, check_finite, check_finite_positive

__all__ = ["MultiSimilarityLoss"]


class MultiSimilarityLoss(PMLPairLoss):
    """Multi-Similarity loss with its pair mining, as in the authors' code (MalongTech).

    With a similarity ``s`` (cosine by default; ``poincare_similarity`` on the ball), for each
    anchor ``i`` with positives ``P_i`` (same label, ``j != i``) and negatives ``N_i``:

    - mining: ``P'_i = {p in P_i : s_ip - eps < max_{n in N_i} s_in}``,
      ``N'_i = {n in N_i : s_in + eps > min_{p in P_i} s_ip}``;
    - ``l_i = (1/alpha) log(1 + sum_{P'_i} exp(-alpha (s_ip - lambda)))
             + (1/beta) log(1 + sum_{N'_i} exp(beta (s_in - lambda)))``;
    - ``L = (1/B) sum_i l_i`` (anchors with nothing mined contribute 0).

    A distance (``is_inverted = False``) is accepted too: every comparison and sign flips
    (``exp(alpha (d_ip - lambda))``, ``exp(-beta (d_in - lambda))``), as in PML.

    Args:
        distance: a PML distance (default: cosine similarity).
        alpha: positive scale (2).
        beta: negative scale (50; the paper uses 40-50).
        base: threshold ``lambda`` (0.5).
        epsilon: mining margin (0.1).

    Shapes: ``embeddings (B, D), labels (B,) -> ()``.
    """

    def __init__(
        self,
        *,
        distance: BaseDistance | None = None,
        alpha: float = 2.0,
        beta: float = 50.0,
        base: float = 0.5,
        epsilon: float = 0.1,
    ) -> None:
        distance = make_distance("cosine") if distance is None else distance
        alpha = check_finite_positive("alpha", alpha)
        beta = check_finite_positive("beta", beta)
        base = check_finite("base", base)
        epsilon = check_finite("epsilon", epsilon)
        if epsilon < 0:
            raise ValueError(f"epsilon must be >= 0, got {epsilon!r}")
        super().__init__(
            loss_fn=_PMLMultiSimilarityLoss(alpha=alpha, beta=beta, base=base, distance=distance),
            miner=MultiSimilarityMiner(epsilon=epsilon, distance=distance),
            distance=distance,
        )
        self.alpha, self.beta, self.base, self.epsilon = alpha, beta, base, epsilon
