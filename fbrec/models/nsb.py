"""Naive shared-bottom two-tower (NSB), the per-level baseline of the GNOLR paper.

A shared id embedding (the bottom, in TorchRec) feeds one linear head per level on each side:
u_k = W_k^user p_u, v_k = W_k^item q_i, logit_k = <u_k, v_k>, trained with a binary log-loss per level on the
cumulative label y >= k. Each level lives in its own space: ranking for level k uses head k
(`user_embeddings_at_level` zeroes the other heads' blocks of the concatenated [u_k]_k, so one index still serves
the comparison, but every level needs its own query space and the levels are not comparable).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from fbrec.models.embedding import EmbeddingModule
from fbrec.nn import MatrixFactorization
from fbrec.types import InteractionBatch


class _HeadedMF(nn.Module):
    def __init__(self, num_users: int, num_items: int, embedding_dim: int, num_levels: int, init_std: float):
        super().__init__()
        self.bottom = MatrixFactorization(num_users, num_items, embedding_dim, init_std=init_std, device="meta")
        self.user_heads = nn.Linear(embedding_dim, embedding_dim * num_levels, bias=False)
        self.item_heads = nn.Linear(embedding_dim, embedding_dim * num_levels, bias=False)

    def forward(self, user: torch.Tensor, item: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        p, q = self.bottom(user, item)
        return self.user_heads(p), self.item_heads(q)      # (..., K * d) each


class NSBModule(EmbeddingModule):
    def __init__(self, num_users: int = 0, num_items: int = 0, embedding_dim: int = 16,
                 sparse_optimizer: str = "rowwise_adagrad", learning_rate: float = 0.05,
                 dense_learning_rate: float = 1e-2, init_std: float = 0.1, sharding: dict[str, str] | None = None,
                 ks: Sequence[int] = (50, 100, 200), auc: bool = True):
        super().__init__(num_users, num_items, embedding_dim, sparse_optimizer, learning_rate,
                         dense_learning_rate=dense_learning_rate, sharding=sharding, ks=ks, auc=auc)
        self.init_std = init_std
        self.num_levels = 0
        self.save_hyperparameters()

    def prepare_from(self, datamodule) -> None:
        if not self.num_levels:
            self.num_levels = max(1, len(datamodule.level_names()))

    def build_scorer(self) -> nn.Module:
        # the id tables start on the meta device for DMP; the dense heads are ordinary CPU parameters
        return _HeadedMF(self.num_users, self.num_items, self.embedding_dim, self.num_levels, self.init_std)

    def loss(self, batch: InteractionBatch) -> torch.Tensor:
        items = torch.cat([batch.item[:, None], batch.negatives], dim=1)          # (B, 1 + N)
        p, q = self.embed_pairs(batch.user, items)                                # (B, 1 + N, K * d)
        K, d = self.num_levels, self.embedding_dim
        logits = (p.view(*p.shape[:-1], K, d) * q.view(*q.shape[:-1], K, d)).sum(-1)   # (B, 1 + N, K)
        labels = torch.zeros(items.shape, dtype=torch.long, device=logits.device)
        labels[:, 0] = batch.level
        targets = (labels[..., None] >= torch.arange(1, K + 1, device=logits.device)).float()
        return F.binary_cross_entropy_with_logits(logits, targets, reduction="sum") / len(batch.user)

    def _level_mask(self, level: int, device) -> torch.Tensor:
        return (torch.arange(self.num_levels, device=device) == level - 1).repeat_interleave(self.embedding_dim)

    def user_embeddings(self, users: torch.Tensor) -> torch.Tensor:
        """The base level's head: the overall ranking of a per-level model is its level-1 ranking."""
        return self.user_embeddings_at_level(users, 1)

    def user_embeddings_at_level(self, users: torch.Tensor, level: int) -> torch.Tensor:
        u = super().user_embeddings(users)
        return u * self._level_mask(level, u.device)


class ESMMModule(NSBModule):
    """ESMM (Ma et al., SIGIR 2018) generalised to a chain of K levels on the NSB towers:
    P(y >= k) = prod_{j <= k} sigmoid(logit_j), each factor a conditional step (click, then cart given click, ...),
    trained with a log-loss on every cumulative label over the whole sample space. Level k ranks by
    log P(y >= k) = sum_{j <= k} logsigmoid(logit_j), which is not an inner product (`score_users`)."""

    def loss(self, batch: InteractionBatch) -> torch.Tensor:
        items = torch.cat([batch.item[:, None], batch.negatives], dim=1)
        p, q = self.embed_pairs(batch.user, items)
        K, d = self.num_levels, self.embedding_dim
        logits = (p.view(*p.shape[:-1], K, d) * q.view(*q.shape[:-1], K, d)).sum(-1)   # (B, 1 + N, K)
        log_cum = F.logsigmoid(logits).cumsum(-1)                                        # log P(y >= k)
        labels = torch.zeros(items.shape, dtype=torch.long, device=logits.device)
        labels[:, 0] = batch.level
        targets = (labels[..., None] >= torch.arange(1, K + 1, device=logits.device)).float()
        log_not = torch.log1p(-log_cum.exp().clamp(max=1 - 1e-6))
        return -(targets * log_cum + (1 - targets) * log_not).sum() / len(batch.user)

    def user_embeddings(self, users: torch.Tensor) -> torch.Tensor:
        return super(NSBModule, self).user_embeddings(users)      # every head's block: scoring combines them

    def export_embeddings(self, num_users: int, num_items: int):
        """For an inner-product index: the level-1 head's query block (other blocks zeroed), whose inner product
        with an item is logit_1, monotone in P(y >= 1); deeper levels need `score_users`, not an index."""
        users, items = super().export_embeddings(num_users, num_items)
        users = users * self._level_mask(1, torch.device("cpu")).numpy()
        return users, items

    def score_users(self, users: torch.Tensor, item_embeddings: torch.Tensor, level: int | None = None
                    ) -> torch.Tensor:
        K, d = self.num_levels, self.embedding_dim
        u = self.user_embeddings(users).view(-1, K, d)
        v = item_embeddings.view(-1, K, d)
        logits = torch.einsum("bkd,ikd->bik", u, v)                                     # (B, I, K)
        return F.logsigmoid(logits[..., : (level or 1)]).sum(-1)                        # log P(y >= level)
