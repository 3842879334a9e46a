"""Matrix factorisation recipes: pointwise log-loss with sampled negatives (BCE) and pairwise BPR."""

from __future__ import annotations

from collections.abc import Sequence

from torch import nn

from fbrec.errors import UnknownNameError
from fbrec.losses import LOSSES
from fbrec.models.base import EmbeddingModule, pair_logits
from fbrec.nn import MatrixFactorization
from fbrec.types import InteractionBatch


class MatrixFactorizationModule(EmbeddingModule):
    """MF trained on implicit feedback with `loss="bce"` (pointwise, sampled negatives) or `loss="bpr"`.

    Args:
        loss: "bce" or "bpr" (Rendle et al. 2009).
        init_std: standard deviation of the normal initialisation of both tables.
        (the rest: see EmbeddingModule)
    """

    def __init__(self, num_users: int = 0, num_items: int = 0, embedding_dim: int = 64, loss: str = "bpr",
                 init_std: float = 0.1, sparse_optimizer: str = "rowwise_adagrad", learning_rate: float = 0.05,
                 weight_decay: float = 0.0, sharding: dict[str, str] | None = None,
                 ks: Sequence[int] = (10, 20, 50), auc: bool = True):
        super().__init__(num_users, num_items, embedding_dim, sparse_optimizer, learning_rate, weight_decay,
                         sharding=sharding, ks=ks, auc=auc)
        if loss not in LOSSES:
            raise UnknownNameError("loss", loss, LOSSES)
        self.loss_name, self.init_std = loss, init_std
        self.save_hyperparameters()

    def build_scorer(self) -> nn.Module:
        return MatrixFactorization(self.num_users, self.num_items, self.embedding_dim, init_std=self.init_std,
                                   device="meta")

    def loss(self, batch: InteractionBatch):
        positive, negative = pair_logits(self, batch)                         # (B,), (B, N)
        return LOSSES[self.loss_name](positive, negative, batch.weight)
