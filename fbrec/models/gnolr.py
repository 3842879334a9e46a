"""GNOLR (Zhang, Liang, Fu et al., KDD 2025) and neural OLR: ordinal feedback levels in one embedding space.

Each user and item has one L2-normalised vector per level (the K blocks of one TorchRec table row of K * d dims);
c_k = cos(u_k, v_k), z_k = sum_{j<=k} S_j c_j and P(y >= k) = sigmoid(z_k - a_k) with a_k from the training base
rates (see fbrec.losses.ordinal). Because z_K = <[sqrt(S_k) u_k]_k, [sqrt(S_k) v_k]_k>, one inner-product index over
the concatenated scaled vectors ranks for the top level, and a query with blocks j > k zeroed ranks for level k
exactly (`user_embeddings_at_level`).

variant: "gnolr" (nested optimisation, cumulative logits), "no_nesting" (only the full likelihood),
"no_cumulation" (z_k = S_k c_k), "learnable_thresholds" (a_k = cumsum(exp(t)) learned, tethered to the base-rate
values by an MSE term of weight 1e-3, as the paper's ablation; the threshold gap can then move, and the loss
clamps instead of the static guard), or "nolr" (classic neural OLR: one similarity, K thresholds).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from fbrec._checks import check_positive
from fbrec.errors import UnknownNameError
from fbrec.losses import check_scales, gnolr, neural_olr, thresholds_from_rates
from fbrec.models.embedding import EmbeddingModule
from fbrec.nn import MatrixFactorization
from fbrec.types import InteractionBatch

VARIANTS = ("gnolr", "no_nesting", "no_cumulation", "learnable_thresholds", "nolr")
_TETHER = 1e-3


class GNOLRModule(EmbeddingModule):
    """Args:
        embedding_dim: dims per level block.
        scale: S_1; later levels use min(scale, gap_fraction * (a_k - a_{k-1})) to respect the threshold gap,
            unless `scales` lists every S_k explicitly (checked against the gap).
        variant: see the module docstring.
    Thresholds come from the datamodule's training rates (`FeedbackDataModule(label="level")`)."""

    def __init__(self, num_users: int = 0, num_items: int = 0, embedding_dim: int = 16, variant: str = "gnolr",
                 scale: float = 4.0, scales: list[float] | None = None, gap_fraction: float = 0.9,
                 sparse_optimizer: str = "rowwise_adagrad", learning_rate: float = 0.05, init_std: float = 0.1,
                 sharding: dict[str, str] | None = None, ks: Sequence[int] = (50, 100, 200), auc: bool = True):
        super().__init__(num_users, num_items, embedding_dim, sparse_optimizer, learning_rate, sharding=sharding,
                         ks=ks, auc=auc)
        if variant not in VARIANTS:
            raise UnknownNameError("GNOLR variant", variant, VARIANTS)
        check_positive("scale", scale)
        self.variant, self.scale0, self.scales_given, self.gap_fraction = variant, scale, scales, gap_fraction
        self.init_std = init_std
        self.save_hyperparameters()
        self.register_buffer("thresholds", torch.zeros(0))
        self.register_buffer("scales", torch.zeros(0))

    @property
    def num_blocks(self) -> int:
        return 1 if self.variant == "nolr" else len(self.thresholds)

    def prepare_from(self, datamodule) -> None:
        if len(self.thresholds):
            return
        dm = datamodule
        a = thresholds_from_rates(torch.as_tensor(dm.level_rates()), dm.level_names() or None)
        if self.scales_given is not None:
            scales = torch.as_tensor(self.scales_given, dtype=torch.float32)
        else:
            gaps = a[1:] - a[:-1]
            scales = torch.cat([torch.tensor([self.scale0]), torch.clamp(self.gap_fraction * gaps, max=self.scale0)])
        if self.variant != "nolr":
            check_scales(scales, a)
        self.thresholds, self.scales = a, scales.float()
        if self.variant == "learnable_thresholds":   # a = cumsum(exp(t)) starts at the base-rate thresholds
            steps = torch.cat([a[:1], a[1:] - a[:-1]]).clamp_min(1e-3)
            self.threshold_logits = nn.Parameter(torch.log(steps))

    def build_scorer(self) -> nn.Module:
        return MatrixFactorization(self.num_users, self.num_items, self.embedding_dim * self.num_blocks,
                                   init_std=self.init_std, device="meta")

    def _blocks(self, x: torch.Tensor) -> torch.Tensor:
        """(..., K * d) -> L2-normalised (..., K, d)."""
        return F.normalize(x.view(*x.shape[:-1], self.num_blocks, self.embedding_dim), dim=-1)

    def loss(self, batch: InteractionBatch) -> torch.Tensor:
        items = torch.cat([batch.item[:, None], batch.negatives], dim=1)          # (B, 1 + N)
        p, q = self.embed_pairs(batch.user, items)                                # (B, 1 + N, K * d)
        cos = (self._blocks(p) * self._blocks(q)).sum(-1)                         # (B, 1 + N, K)
        labels = torch.zeros(items.shape, dtype=torch.long, device=cos.device)
        labels[:, 0] = batch.level
        cos, labels = cos.reshape(-1, cos.shape[-1]), labels.reshape(-1)
        if self.variant == "nolr":
            return neural_olr(self.scales[0] * cos[:, 0], labels, self.thresholds)
        thresholds, tether = self.thresholds, 0.0
        if self.variant == "learnable_thresholds":
            thresholds = self.threshold_logits.exp().cumsum(0)
            tether = _TETHER * ((thresholds - self.thresholds) ** 2).mean()
        return gnolr(cos, labels, self.scales, thresholds, nested_optimization=self.variant != "no_nesting",
                     cumulate=self.variant != "no_cumulation") + tether

    def _unified(self, x: torch.Tensor) -> torch.Tensor:
        weights = self.scales[: self.num_blocks].sqrt()[:, None]                 # (K, 1)
        return (self._blocks(x) * weights).flatten(-2)                            # (..., K * d)

    def user_embeddings(self, users: torch.Tensor) -> torch.Tensor:
        return self._unified(super().user_embeddings(users))

    def item_embeddings(self, items: torch.Tensor) -> torch.Tensor:
        return self._unified(super().item_embeddings(items))

    def user_embeddings_at_level(self, users: torch.Tensor, level: int) -> torch.Tensor:
        """Query for level k: blocks j > k zeroed, so <query, item> = z_k (nested variants)."""
        u = self.user_embeddings(users)
        if self.variant in ("nolr", "no_cumulation"):
            return u
        mask = (torch.arange(self.num_blocks, device=u.device) < level).repeat_interleave(self.embedding_dim)
        return u * mask
