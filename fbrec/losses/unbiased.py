"""Losses for implicit feedback that is missing not at random (clicks = exposure x relevance).

Rel-MF (Saito et al., WSDM 2020). With click Y, exposure propensity theta and local losses delta1 (for "relevant")
and delta0 (for "not relevant"), the unbiased pointwise loss is
    (Y / theta) * delta1(s) + (1 - Y / theta) * delta0(s),
whose expectation over Y ~ Bernoulli(theta * gamma) is the ideal gamma * delta1 + (1 - gamma) * delta0. The
clipped variant divides by max(theta, M) instead, trading bias for variance.

Negative weights. For a clicked pair 1 - 1/theta < 0, so delta0 enters with a negative weight; with the log-loss
delta0 = -log(1 - sigmoid(s)) is unbounded and the objective can run to -inf by pushing s up. fbrec bounds the
log-loss locals by evaluating them on probabilities clamped to [eps, 1 - eps] (eps = 1e-3, so every local loss is
at most 6.9), which keeps the estimator exactly unbiased wherever the prediction lies inside that band; the squared
locals ((1 - p)^2 and p^2, the paper's real-data code) are bounded by 1 and need no guard.

WMF (Hu, Koren, Volinsky 2008) as a sampled pointwise loss on raw scores: confidence 1 + alpha for observed pairs
with target 1, confidence 1 for unobserved pairs with target 0.
"""

from __future__ import annotations

import torch

from fbrec._checks import check_fraction

_EPS = 1e-3


def local_losses(logit: torch.Tensor, kind: str = "log") -> tuple[torch.Tensor, torch.Tensor]:
    """(delta1, delta0) for every logit: log-loss on clamped probabilities, or squared loss."""
    p = torch.sigmoid(logit)
    if kind == "log":
        p = p.clamp(_EPS, 1 - _EPS)
        return -torch.log(p), -torch.log1p(-p)
    if kind == "square":
        return (1 - p) ** 2, p**2
    raise ValueError(f"local loss {kind!r} must be 'log' or 'square'")


def relmf_pointwise(logit: torch.Tensor, click: torch.Tensor, propensity: torch.Tensor, *,
                    clip: float | None = None, kind: str = "log") -> torch.Tensor:
    """Per-pair Rel-MF loss (Y/theta) delta1 + (1 - Y/theta) delta0; same shapes in and out."""
    theta = propensity if clip is None else propensity.clamp_min(clip)
    ratio = click / theta
    d1, d0 = local_losses(logit, kind)
    return ratio * d1 + (1 - ratio) * d0


def relmf(positive: torch.Tensor, negative: torch.Tensor, weight: torch.Tensor | None = None, *,
          propensity: torch.Tensor, clip: float | None = None, kind: str = "log") -> torch.Tensor:
    """Rel-MF on a sampled batch: clicked positives (B,) with their propensity (B,), unlabeled negatives (B, N).

    Unlabeled pairs have Y = 0, so their loss is delta0 whatever their propensity."""
    if clip is not None:
        check_fraction("clip", clip, high_open=False)
    pos = relmf_pointwise(positive, torch.ones_like(positive), propensity, clip=clip, kind=kind)
    neg = local_losses(negative, kind)[1].sum(dim=1)
    per = pos + neg
    return per.mean() if weight is None else (per * weight).sum() / weight.sum().clamp_min(1e-12)


def wmf(positive: torch.Tensor, negative: torch.Tensor, weight: torch.Tensor | None = None, *,
        alpha: float = 10.0) -> torch.Tensor:
    """Weighted MF: (1 + alpha) (1 - s+)^2 + sum_n (s-_n)^2 on raw scores."""
    per = (1 + alpha) * (1 - positive) ** 2 + (negative**2).sum(dim=1)
    return per.mean() if weight is None else (per * weight).sum() / weight.sum().clamp_min(1e-12)
