"""Denoising implicit feedback: which positives a pairwise or pointwise step learns from, and how much.

  PLD (Zhang et al., WWW 2025): per example, a pool of k of the user's training items (data.positive_pool: k) and
      the batch's first sampled negative j; each candidate's BPR loss l_c = softplus(s_uj - s_uc) is computed
      without gradient and one candidate is drawn with P(c) = softmax(-l_c / temperature); the step then learns
      from (u, c*, the negatives). Noisy items have large losses within their own user's distribution, so they are
      drawn less. Plain steps for the first `warmup` epochs.
  T-CE (Wang et al., MM 2021, truncated loss): drop the `drop` share of the batch's positives with the largest
      loss, the share growing linearly from 0 to max_drop over `ramp_epochs` epochs.
  R-CE (Wang et al., MM 2021, reweighted loss): weight each positive's loss by sigmoid(s+)^beta (no gradient).
For BCE the truncation and reweighting apply to the positive's term, for BPR to the example's pairwise term.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from fbrec._checks import check_fraction, check_positive
from fbrec.errors import ConfigError, UnknownNameError

METHODS = ("pld", "tce", "rce")


@dataclass(frozen=True)
class Denoise:
    method: str
    temperature: float = 0.1      # PLD
    warmup: int = 5               # PLD: plain epochs first
    max_drop: float = 0.2         # T-CE
    ramp_epochs: int = 10         # T-CE
    beta: float = 0.25            # R-CE

    def __post_init__(self):
        if self.method not in METHODS:
            raise UnknownNameError("denoising method", self.method, METHODS)
        check_positive("temperature", self.temperature)
        check_positive("warmup", self.warmup, strict=False)
        check_fraction("max_drop", self.max_drop, low_open=False)
        check_positive("ramp_epochs", self.ramp_epochs)
        check_positive("beta", self.beta, strict=False)

    @classmethod
    def from_config(cls, config: dict | None, loss: str) -> Denoise | None:
        if not config:
            return None
        if loss not in ("bpr", "bce"):
            raise ConfigError(f"denoise with loss={loss!r}", rule="denoising applies to loss: bpr or bce",
                              fix="set loss: bpr (or bce), or drop denoise")
        try:
            return cls(**config)
        except TypeError as exc:
            raise ConfigError(f"denoise={config!r}: {exc}", rule="keys: method, temperature, warmup, max_drop, "
                              "ramp_epochs, beta", fix="e.g. denoise: {method: pld, temperature: 0.1}") from exc

    def pick_positive(self, embed, user: torch.Tensor, pool: torch.Tensor | None, negative: torch.Tensor,
                      positive: torch.Tensor, epoch: int) -> torch.Tensor:
        """PLD's resampled positive item per example (B,); the batch's own positive otherwise."""
        if self.method != "pld" or epoch < self.warmup:
            return positive
        if pool is None:
            raise ConfigError("denoise: {method: pld} without candidate pools",
                              rule="PLD draws the positive from a pool of the user's items",
                              fix="set data.positive_pool (the paper uses 5)")
        with torch.no_grad():
            items = torch.cat([pool, negative[:, None]], dim=1)                      # (B, k + 1)
            p, q = embed(user, items)
            s = (p * q).sum(-1)
            losses = F.softplus(s[:, -1:] - s[:, :-1])                                # (B, k)
            choice = torch.multinomial(torch.softmax(-losses / self.temperature, dim=1), 1).squeeze(1)
        return pool.gather(1, choice[:, None]).squeeze(1)

    def reduce(self, positive_term: torch.Tensor, rest: torch.Tensor, positive_logit: torch.Tensor,
               epoch: int) -> torch.Tensor:
        """Mean over the batch of positive_term (B,) after truncation/reweighting, plus rest (B,)."""
        if self.method == "tce":
            drop = self.max_drop * min(1.0, (epoch + 1) / self.ramp_epochs)
            keep = len(positive_term) - int(drop * len(positive_term))
            kept = positive_term.topk(keep, largest=False).indices
            mask = torch.zeros_like(positive_term).index_fill_(0, kept, 1.0)
            return (positive_term * mask + rest).sum() / len(positive_term)
        if self.method == "rce":
            weight = torch.sigmoid(positive_logit).detach() ** self.beta
            return (positive_term * weight + rest).mean()
        return (positive_term + rest).mean()


def split_terms(loss: str, positive: torch.Tensor, negative: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-example (the positive's term, everything else) of BPR or BCE over sampled negatives."""
    if loss == "bpr":
        return F.softplus(-(positive[:, None] - negative)).mean(dim=1), torch.zeros_like(positive)
    return F.softplus(-positive), F.softplus(negative).sum(dim=1)
