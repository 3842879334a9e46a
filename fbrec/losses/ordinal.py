"""Ordinal regression over K ordered feedback levels: neural OLR and GNOLR (Zhang, Liang, Fu et al., KDD 2025).

Labels y in {0, ..., K}: 0 = no feedback, k = the highest level reached. With per-level cosine similarities
c_k = cos(u_k, v_k) and scales S_k, GNOLR's cumulative logits are nested:
    z_k = sum_{j <= k} S_j c_j,     P(y >= k) = sigmoid(z_k - a_k),     a_k = -ln(p_k / (1 - p_k)),
with p_k the training-set cumulative positive rate P(y >= k), so that at zero similarity each level sits at its
base rate. Category probabilities are differences of cumulative ones:
    P(y = 0) = 1 - P(y >= 1),  P(y = k) = P(y >= k) - P(y >= k + 1),  P(y = K) = P(y >= K).
P(y >= k) > P(y >= k + 1) for every c in [-1, 1]^K iff S_{k+1} < a_{k+1} - a_k ("the threshold gap"); otherwise
log P(y = k) is NaN. `check_scales` enforces the gap, and the losses also clamp probabilities at eps.
Nested optimisation: stage k fits the likelihood truncated at level k (labels min(y, k), levels 1..k), and the
loss sums the stages.
"""

from __future__ import annotations

import torch

from fbrec.errors import ConfigError

_EPS = 1e-7


def thresholds_from_rates(rates: torch.Tensor, level_names: list[str] | None = None) -> torch.Tensor:
    """a_k = -ln(p_k / (1 - p_k)) from cumulative rates p_k = P(y >= k), k = 1..K (strictly decreasing in (0, 1))."""
    rates = torch.as_tensor(rates, dtype=torch.float64)
    names = level_names or [f"level {k + 1}" for k in range(len(rates))]
    for k, p in enumerate(rates.tolist()):
        if not 0 < p < 1:
            raise ConfigError(f"{names[k]} has cumulative positive rate {p!r} in training",
                              rule="every level needs positives (and negatives) to set its threshold",
                              fix="drop or merge that level, or use more data")
    if (rates[1:] > rates[:-1]).any():
        raise ConfigError(f"cumulative rates {rates.tolist()} increase with the level",
                          rule="P(y >= k) cannot grow with k: levels must be nested", fix="label by highest level")
    return (-torch.log(rates / (1 - rates))).float()


def check_scales(scale: torch.Tensor, thresholds: torch.Tensor) -> None:
    """Raise unless S_{k+1} < a_{k+1} - a_k for every k (the NaN guard)."""
    gap = thresholds[1:] - thresholds[:-1]
    bad = (scale[1:] >= gap).nonzero().flatten().tolist()
    if bad:
        k = bad[0] + 1
        raise ConfigError(f"scale S_{k + 1}={scale[k].item():.4g} is not below the threshold gap "
                          f"a_{k + 1} - a_{k} = {gap[k - 1].item():.4g}",
                          rule="S_{k+1} < a_{k+1} - a_k keeps P(y >= k) > P(y >= k+1), else log(P_k - P_{k+1}) is NaN",
                          fix=f"use scale <= {0.95 * gap[k - 1].item():.3g} for that level")


def cumulative_probabilities(cos: torch.Tensor, scale: torch.Tensor, thresholds: torch.Tensor, *,
                             nested: bool = True) -> torch.Tensor:
    """cos (B, K) -> P(y >= k) (B, K). nested=False uses S_k c_k alone (the "no cumulation" ablation)."""
    z = (cos * scale).cumsum(dim=1) if nested else cos * scale
    return torch.sigmoid(z - thresholds)


def category_probabilities(cumulative: torch.Tensor) -> torch.Tensor:
    """P(y >= k) (B, K) -> P(y = k) (B, K + 1), k = 0..K."""
    ones = torch.ones_like(cumulative[:, :1])
    zeros = torch.zeros_like(cumulative[:, :1])
    padded = torch.cat([ones, cumulative, zeros], dim=1)            # P(y >= 0) = 1, P(y >= K+1) = 0
    return padded[:, :-1] - padded[:, 1:]


def _truncated_nll(cumulative: torch.Tensor, label: torch.Tensor, stage: int) -> torch.Tensor:
    probs = category_probabilities(cumulative[:, :stage]).clamp_min(_EPS)     # (B, stage + 1)
    return -torch.log(probs.gather(1, label.clamp(max=stage).long()[:, None])).squeeze(1)


def gnolr(cos: torch.Tensor, label: torch.Tensor, scale: torch.Tensor, thresholds: torch.Tensor, *,
          nested_optimization: bool = True, cumulate: bool = True) -> torch.Tensor:
    """GNOLR loss: cos (B, K) per-level cosines, label (B,) in 0..K. Sum over stages 1..K when nested_optimization
    (the paper's default), else only the full likelihood (stage K)."""
    cumulative = cumulative_probabilities(cos, scale, thresholds, nested=cumulate)
    K = cos.shape[1]
    stages = range(1, K + 1) if nested_optimization else (K,)
    return torch.stack([_truncated_nll(cumulative, label, k) for k in stages]).sum(0).mean()


def neural_olr(similarity: torch.Tensor, label: torch.Tensor, thresholds: torch.Tensor) -> torch.Tensor:
    """Classic neural ordinal logistic regression: one similarity s (B,), P(y >= k) = sigmoid(s - a_k)."""
    cumulative = torch.sigmoid(similarity[:, None] - thresholds)
    return _truncated_nll(cumulative, label, thresholds.shape[0]).mean()
