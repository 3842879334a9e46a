"""Matrix factorisation recipes: pointwise log-loss with sampled negatives (BCE) and pairwise BPR."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from fbrec.errors import ConfigError
from fbrec.losses import make_loss
from fbrec.models.denoise import Denoise, split_terms
from fbrec.models.embedding import EmbeddingModule, pair_logits
from fbrec.nn import MatrixFactorization
from fbrec.types import InteractionBatch


class MatrixFactorizationModule(EmbeddingModule):
    """MF trained on implicit feedback with any loss of fbrec.losses over sampled negatives.

    Args:
        loss: "bce" (pointwise log-loss), "bpr" (Rendle et al. 2009), "relmf" (Saito et al. 2020, needs
            data.propensity), "wmf" (Hu et al. 2008).
        loss_options: the loss's options, e.g. {clip: 0.01, kind: square} for relmf, {alpha: 5} for wmf.
        init_std: standard deviation of the normal initialisation of both tables.
        alignment: RLMRec profile alignment, e.g. {profiles: DIR, mode: con, weight: 0.01, temperature: 0.2}
            (see fbrec.models.alignment).
        denoise: learning from noisy positives with loss bpr or bce (fbrec.models.denoise): {method: pld,
            temperature: 0.1, warmup: 5} (needs data.positive_pool), {method: tce, max_drop: 0.2, ramp_epochs: 10}
            or {method: rce, beta: 0.25}.
        (the rest: see EmbeddingModule)
    """

    def __init__(self, num_users: int = 0, num_items: int = 0, embedding_dim: int = 64, loss: str = "bpr",
                 loss_options: dict | None = None, init_std: float = 0.1, sparse_optimizer: str = "rowwise_adagrad", learning_rate: float = 0.05,
                 weight_decay: float = 0.0, sharding: dict[str, str] | None = None,
                 ks: Sequence[int] = (10, 20, 50), auc: bool = True, alignment: dict | None = None,
                 denoise: dict | None = None):
        super().__init__(num_users, num_items, embedding_dim, sparse_optimizer, learning_rate, weight_decay,
                         sharding=sharding, ks=ks, auc=auc, alignment=alignment)
        self.loss_name, self.loss_options, self.init_std = loss, dict(loss_options or {}), init_std
        self._loss = make_loss(loss, **self.loss_options)
        self.denoise = Denoise.from_config(denoise, loss)
        if self.denoise is not None and self.alignment is not None:
            raise ConfigError("denoise together with alignment", rule="one of the two per recipe",
                              fix="drop alignment or denoise")
        self.save_hyperparameters()

    def build_scorer(self) -> nn.Module:
        return MatrixFactorization(self.num_users, self.num_items, self.embedding_dim, init_std=self.init_std,
                                   device="meta")

    def loss(self, batch: InteractionBatch):
        if self.denoise is not None:
            epoch = self.current_epoch
            item = self.denoise.pick_positive(self.embed_pairs, batch.user, batch.pool, batch.negatives[:, 0],
                                              batch.item, epoch)
            positive, negative = pair_logits(self, batch._replace(item=item))
            return self.denoise.reduce(*split_terms(self.loss_name, positive, negative), positive, epoch)
        if self.alignment is None:
            positive, negative = pair_logits(self, batch)                     # (B,), (B, N)
            return self._loss(positive, negative, batch)
        items = torch.cat([batch.item[:, None], batch.negatives], dim=1)      # (B, 1 + N)
        p, q = self.embed_pairs(batch.user, items)                            # (B, 1 + N, D) each
        logits = (p * q).sum(-1)
        main = self._loss(logits[:, 0], logits[:, 1:], batch)
        return self.with_alignment(main, batch.user, p[:, 0], items.reshape(-1), q.reshape(-1, q.shape[-1]))
