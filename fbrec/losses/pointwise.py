"""Pure loss functions over logits. Shapes: positives (B,), negatives (B, N), weight (B,)."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def _weighted_mean(per_example: torch.Tensor, weight: torch.Tensor | None) -> torch.Tensor:
    if weight is None:
        return per_example.mean()
    return (per_example * weight).sum() / weight.sum().clamp_min(1e-12)


def bce_with_negatives(positive: torch.Tensor, negative: torch.Tensor,
                       weight: torch.Tensor | None = None) -> torch.Tensor:
    """Pointwise log-loss: -log sigmoid(s+) - sum_n log(1 - sigmoid(s-_n)), averaged over the batch."""
    per = F.softplus(-positive) + F.softplus(negative).sum(dim=1)
    return _weighted_mean(per, weight)


def bpr(positive: torch.Tensor, negative: torch.Tensor, weight: torch.Tensor | None = None) -> torch.Tensor:
    """Bayesian personalised ranking (Rendle et al. 2009): -log sigmoid(s+ - s-), mean over the N negatives."""
    per = F.softplus(-(positive[:, None] - negative)).mean(dim=1)
    return _weighted_mean(per, weight)


LOSSES = {"bce": bce_with_negatives, "bpr": bpr}
