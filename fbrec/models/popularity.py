"""Most-popular baseline: ranks items by their training interaction count, the same for every user.

It trains through the same Trainer loop (one epoch counting positives), so its run is logged and evaluated
exactly like a learned model's. Its "embeddings" are 1-d: user = [1], item = [log(1 + count)], so the
exported bundle and FAISS index serve it like any other model.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from fbrec.errors import ConfigError
from fbrec.models.base import RankingModule
from fbrec.types import InteractionBatch


class PopularityModule(RankingModule):
    def __init__(self, num_users: int = 0, num_items: int = 0, ks: Sequence[int] = (10, 20, 50), auc: bool = True):
        super().__init__(ks=ks, auc=auc)
        if num_items < 1:
            raise ConfigError(f"num_items={num_items}", rule="the catalogue size is needed",
                              fix="train through `fbrec train`, which links it from the data")
        self.num_users, self.num_items = num_users, num_items
        self.register_buffer("counts", torch.zeros(num_items))
        self.automatic_optimization = False
        self.save_hyperparameters()

    def on_train_epoch_start(self) -> None:
        self.counts.zero_()   # counting is idempotent across epochs

    def training_step(self, batch: InteractionBatch, batch_idx: int) -> None:
        self.counts += torch.bincount(batch.item, minlength=self.num_items).to(self.counts)

    def configure_optimizers(self):
        return None

    def user_embeddings(self, users: torch.Tensor) -> torch.Tensor:
        return torch.ones(len(users), 1, device=self.counts.device)

    def item_embeddings(self, items: torch.Tensor) -> torch.Tensor:
        return torch.log1p(self.counts[items])[:, None]
