"""A cascade over feedback levels that sees the user's own level history beside the collaborative dot product.

On a multi-behaviour log most purchases are items the user already viewed or carted, so whether (u, i) was viewed or
carted, and how often item i converts after a view or a cart, say more about a purchase than any embedding. This model
puts those per-pair features beside the MF dot product in one ordinal head (levels 1..K, nested: P(y >= k)):

    z_k(u, i) = b_k + c_k * <p_u, q_i> + sum_{j < k} e_j(u, i) * (w_kj + v_kj * log conv_j(i))
    P(y >= k | u, i) = sigmoid(z_k),   loss = sum_k BCE(1[y >= k], z_k) over positives and sampled negatives

e_j(u, i) = 1 when the pair saw level j's behaviour in training (the data's event sets: "viewed" and "carted" apart,
even where the levels are not nested), conv_j(i) = P(reached level k | saw j) for item i, smoothed toward the overall
rate; stage k reads only the behaviours below it, so no stage sees its own label. A training pair's own outcome is
left out of its conversion rates (leave-one-out), or the head would learn to trust a rate that contains the answer.
Ranking for the top level uses z_K, which P(buy | carted | viewed) per pair is: the history features need the user's
training pairs, so like the history re-rank it scores through them and exports no bundle.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import scipy.sparse as sp
import torch
import torch.nn.functional as F
from torch import nn

from fbrec.errors import ConfigError
from fbrec.models.embedding import EmbeddingModule
from fbrec.nn import MatrixFactorization
from fbrec.types import InteractionBatch

RATE_FLOOR = 1e-6   # a behaviour no training pair converts after (e.g. no carts at all) gives log 0


class CascadeModule(EmbeddingModule):
    """Args:
        embedding_dim: dims of <p_u, q_i>.
        smoothing: pseudo-count of each conversion rate's prior (the overall rate).
        (the rest: see EmbeddingModule; weight_decay is the L2 on the looked-up embedding rows)
    Needs ordinal labels (data.sampling.label: level)."""

    exports_embeddings = False   # the history features are per pair: no fixed-size vector holds them

    def __init__(self, num_users: int = 0, num_items: int = 0, embedding_dim: int = 32, smoothing: float = 5.0,
                 init_std: float = 0.01, sparse_optimizer: str = "rowwise_adagrad", learning_rate: float = 0.05,
                 weight_decay: float = 0.0, dense_learning_rate: float = 0.01, sharding: dict[str, str] | None = None,
                 ks: Sequence[int] = (10, 20, 50), auc: bool = True):
        super().__init__(num_users, num_items, embedding_dim, sparse_optimizer, learning_rate, weight_decay,
                         dense_learning_rate, sharding=sharding, ks=ks, auc=auc)
        self.smoothing, self.init_std = smoothing, init_std
        self.save_hyperparameters()
        self.register_buffer("log_conversion", torch.zeros(0))     # (K, J, I): log conv_j(i) toward level k
        self._events: list[sp.csr_matrix] = []                      # e_j as (U, I) 0/1, j = 1..J (J = K - 1)
        self._event_keys: torch.Tensor | None = None                # the same as sorted pair keys and (n, J) bits
        self.head: nn.ParameterDict | None = None

    def prepare_from(self, datamodule) -> None:
        names = datamodule.level_names()
        if len(names) < 2:
            raise ConfigError(f"the cascade needs at least two ordinal levels, the data has {names}",
                              rule="it predicts each level from the behaviours below it",
                              fix="set data.sampling.label: level on a dataset with levels (e.g. tmall-mbcgcn)")
        K, I = len(names), self.num_items
        self._events = [datamodule.event_matrix(n).astype(np.float32) for n in names[:-1]]   # J = K - 1
        reached = [datamodule.event_matrix(n) for n in names]   # pairs that reached level k (as an event)
        rates = np.zeros((K, K - 1, I), np.float32)
        # per (stage k, behaviour j < k): seen_j(i) and converted_jk(i) counts over the training pairs
        self._seen_counts, self._converted, self._prior = {}, {}, {}
        seen_by_behaviour = [np.asarray(e.sum(0)).ravel() for e in self._events]
        for k in range(1, K):
            for j in range(k):
                seen = seen_by_behaviour[j]
                converted = np.asarray(self._events[j].multiply(self._reached_or_above(reached, k)).sum(0)).ravel()
                prior = converted.sum() / max(1.0, seen.sum())
                rates[k, j] = np.log(np.maximum((converted + self.smoothing * prior) / (seen + self.smoothing), RATE_FLOOR))
                self._seen_counts[(k, j)], self._converted[(k, j)], self._prior[(k, j)] = seen, converted, prior
        self.log_conversion = torch.from_numpy(rates)
        if self.head is None:
            self.head = nn.ParameterDict({
                "bias": nn.Parameter(torch.zeros(K)), "dot": nn.Parameter(torch.ones(K)),
                "event": nn.Parameter(torch.zeros(K, K - 1)), "rate": nn.Parameter(torch.zeros(K, K - 1))})
            mask = torch.tril(torch.ones(K, K - 1), diagonal=-1)   # stage k reads behaviours j < k only
            self.register_buffer("stage_mask", mask)

    @staticmethod
    def _reached_or_above(reached: list[sp.csr_matrix], k: int) -> sp.csr_matrix:
        out = sum(reached[k:])
        return (out > 0).astype(np.float32)

    def build_scorer(self) -> nn.Module:
        return MatrixFactorization(self.num_users, self.num_items, self.embedding_dim, init_std=self.init_std,
                                   device="meta")

    def _features(self, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        """e_j(u, i) for the given pairs (n,), (n, J): a sorted-key lookup into the training pairs' events."""
        if self._event_keys is None:
            seen = sum(self._events).tocoo()
            keys = seen.row.astype(np.int64) * self.num_items + seen.col
            order = np.argsort(keys)
            bits = np.stack([np.asarray(e[seen.row[order], seen.col[order]]).ravel() for e in self._events], -1)
            self._event_keys, self._event_bits = torch.from_numpy(keys[order]), torch.from_numpy(bits)
        query = users.cpu() * self.num_items + items.cpu()
        at = torch.searchsorted(self._event_keys, query).clamp_max(len(self._event_keys) - 1)
        hit = (self._event_keys[at] == query).float()[:, None]
        return self._event_bits[at] * hit

    def _head(self, dots: torch.Tensor, events: torch.Tensor, log_rates: torch.Tensor) -> torch.Tensor:
        """dots (...,), events (..., J), log_rates (..., K, J) -> z (..., K)."""
        w = self.head["event"] * self.stage_mask
        v = self.head["rate"] * self.stage_mask
        history = (events[..., None, :] * (w + v * log_rates)).sum(-1)               # (..., K)
        # the embeddings learn from the first stage only (interest: any level vs none); the upper stages weigh the
        # dot without moving it, or the embeddings memorise which seen pairs were not bought in training - exactly
        # the pairs a held-out buy comes from
        dots = torch.stack([dots] + [dots.detach()] * (len(self.head["bias"]) - 1), -1)   # (..., K)
        return self.head["bias"] + self.head["dot"] * dots + history

    def loss(self, batch: InteractionBatch) -> torch.Tensor:
        items = torch.cat([batch.item[:, None], batch.negatives], dim=1)             # (B, 1 + N)
        users = batch.user[:, None].expand_as(items)
        p, q = self.embed_pairs(batch.user, items)                                   # (B, 1 + N, D)
        dots = (p * q).sum(-1)                                                        # (B, 1 + N)
        events = self._features(users.reshape(-1), items.reshape(-1)).view(*items.shape, -1).to(dots)   # (B, 1+N, J)
        log_rates = self.log_conversion[:, :, items].permute(2, 3, 0, 1)             # (B, 1 + N, K, J)
        log_rates = self._leave_one_out(log_rates, events, batch)
        z = self._head(dots, events, log_rates)                                       # (B, 1 + N, K)
        labels = torch.zeros(items.shape, dtype=torch.long, device=z.device)
        labels[:, 0] = batch.level
        K = z.shape[-1]
        targets = (labels[..., None] >= torch.arange(1, K + 1, device=z.device)).float()
        return F.binary_cross_entropy_with_logits(z, targets, reduction="sum") / len(batch.user)

    def _leave_one_out(self, log_rates: torch.Tensor, events: torch.Tensor, batch: InteractionBatch
                       ) -> torch.Tensor:
        """The positive's own outcome taken out of its item's rates (the negatives are sampled: their rates stay)."""
        out = log_rates.clone()
        item = batch.item.cpu().numpy()
        level = batch.level.cpu().numpy()
        for (k, j), seen in self._seen_counts.items():
            saw = events[:, 0, j].cpu().numpy() > 0
            n = seen[item] - saw
            c = self._converted[(k, j)][item] - (saw & (level >= k + 1))
            rate = (c + self.smoothing * self._prior[(k, j)]) / (n + self.smoothing)
            out[:, 0, k, j] = torch.from_numpy(np.log(np.maximum(rate, RATE_FLOOR)).astype(np.float32))
        return out

    def score_users(self, users: torch.Tensor, item_embeddings: torch.Tensor, level: int | None = None
                    ) -> torch.Tensor:
        """z_level (the top level by default) of every item for each user, (B, I)."""
        k = (level or len(self.head["bias"])) - 1
        rows = users.cpu().numpy()
        dots = self.user_embeddings(users) @ item_embeddings.T                          # (B, I)
        events = torch.stack([torch.from_numpy(e[rows].toarray()) for e in self._events], -1)   # (B, I, J)
        w = (self.head["event"] * self.stage_mask)[k]                                   # (J,)
        v = (self.head["rate"] * self.stage_mask)[k]
        history = (events * (w + v * self.log_conversion[k].T)).sum(-1)                # (B, I)
        return self.head["bias"][k] + self.head["dot"][k] * dots + history
