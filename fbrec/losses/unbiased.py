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

Sampling. The ideal loss sums over every (user, item) pair, but a batch holds a click and N items drawn uniformly
from the catalogue. Rewrite the ideal sum as  sum_all delta0 + sum_clicked (1/theta) (delta1 - delta0): a uniform
draw for user u, weighted by unlabeled_weight = I / (N c_u) (c_u = u's training clicks), estimates u's share of the
first sum without bias, and each click carries the second. Weighting sampled items 1 instead (`unlabeled:
sampled`, the pre-0.3 estimator) puts N c_u / I on delta0 where the ideal puts about 1 - gamma: with 4 negatives and
a sparse user the minimiser runs to p = 1 (the test in tests/test_losses.py shows both).

UBPR (Saito, ICTIR 2020) is the pairwise counterpart: -(Y_i / theta_i) (1 - Y_j / theta_j) log sigmoid(s_i - s_j)
over a click i and a uniformly drawn item j, unbiased for the ideal pairwise loss over relevant-vs-irrelevant pairs;
Y_j / theta_j (`negative_ips`) is non-zero where j is another click of the user, which then enters with a negative
weight (the paper's non-negative variant clips each term at -beta).

WMF (Hu, Koren, Volinsky 2008) as a sampled pointwise loss on raw scores: confidence 1 + alpha for observed pairs
with target 1, confidence 1 for unobserved pairs with target 0.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from fbrec._checks import check_fraction
from fbrec.errors import ConfigError

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
          propensity: torch.Tensor, unlabeled_weight: torch.Tensor | None = None, clip: float | None = None,
          kind: str = "log", unlabeled: str = "reweighted") -> torch.Tensor:
    """Rel-MF on a sampled batch: clicked positives (B,) with their propensity (B,), uniformly drawn items (B, N).

    unlabeled="reweighted" (default): the unbiased estimator of the ideal loss above, each drawn item's delta0
    weighted by unlabeled_weight (B,); "sampled": drawn items are unclicked pairs with weight 1 (biased)."""
    if clip is not None:
        check_fraction("clip", clip, high_open=False)
    theta = propensity if clip is None else propensity.clamp_min(clip)
    if unlabeled == "sampled":
        pos = relmf_pointwise(positive, torch.ones_like(positive), propensity, clip=clip, kind=kind)
        neg = local_losses(negative, kind)[1].sum(dim=1)
    elif unlabeled == "reweighted":
        if unlabeled_weight is None:
            raise ConfigError("unlabeled='reweighted' without the batch's unlabeled_weight",
                              rule="the reweighted estimator needs I / (N c_u) per example (FeedbackDataModule sets it)",
                              fix="train through FeedbackDataModule, or pass unlabeled='sampled'")
        d1, d0 = local_losses(positive, kind)
        pos = (d1 - d0) / theta
        neg = local_losses(negative, kind)[1].sum(dim=1) * unlabeled_weight
    else:
        raise ConfigError(f"unlabeled={unlabeled!r}", rule="unlabeled is 'reweighted' (unbiased) or 'sampled'",
                          fix="set loss_options: {unlabeled: reweighted}")
    per = pos + neg
    return per.mean() if weight is None else (per * weight).sum() / weight.sum().clamp_min(1e-12)


def ubpr(positive: torch.Tensor, negative: torch.Tensor, weight: torch.Tensor | None = None, *,
         propensity: torch.Tensor, negative_ips: torch.Tensor | None = None, clip: float | None = None,
         beta: float | None = None) -> torch.Tensor:
    """Unbiased BPR (Saito 2020): -(1/theta_i) (1 - Y_j/theta_j) log sigmoid(s_i - s_j), mean over the N drawn
    items; negative_ips (B, N) = Y_j / theta_j (zeros when absent: every drawn item unclicked); beta clips each term
    below at -beta (the paper's non-negative variant; None = no clipping)."""
    if clip is not None:
        check_fraction("clip", clip, high_open=False)
    theta = propensity if clip is None else propensity.clamp_min(clip)
    ips_j = torch.zeros_like(negative) if negative_ips is None else negative_ips
    if clip is not None:
        ips_j = ips_j.clamp(max=1.0 / clip)
    term = (1.0 / theta)[:, None] * (1 - ips_j) * F.softplus(-(positive[:, None] - negative))   # (B, N)
    if beta is not None:
        term = term.clamp_min(-beta)
    per = term.mean(dim=1)
    return per.mean() if weight is None else (per * weight).sum() / weight.sum().clamp_min(1e-12)


def wmf(positive: torch.Tensor, negative: torch.Tensor, weight: torch.Tensor | None = None, *,
        alpha: float = 10.0) -> torch.Tensor:
    """Weighted MF: (1 + alpha) (1 - s+)^2 + sum_n (s-_n)^2 on raw scores."""
    per = (1 + alpha) * (1 - positive) ** 2 + (negative**2).sum(dim=1)
    return per.mean() if weight is None else (per * weight).sum() / weight.sum().clamp_min(1e-12)
