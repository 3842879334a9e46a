"""A model whose validation peaks at epoch 0 by construction, for testing that runs use their best epoch.

Epoch 0 installs the planted solution (user and item both one-hot on their cluster, so in-cluster items rank
first); every later epoch installs its negation (in-cluster items rank last). A run that reports or exports
anything but the epoch-0 state is not using the best validation epoch."""

from __future__ import annotations

import numpy as np
import torch

from fbrec.models import RankingModule

USERS_PER_CLUSTER, ITEMS_PER_CLUSTER, NUM_CLUSTERS = 12, 8, 8   # conftest.planted_log's defaults


def planted_embeddings(dm, sign: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    users = dm.data.user_map.raw.to_numpy() // USERS_PER_CLUSTER
    items = dm.data.item_map.raw.to_numpy() // ITEMS_PER_CLUSTER
    eye = np.eye(NUM_CLUSTERS, dtype=np.float32)
    return eye[users], sign * eye[items]


class PeakingModule(RankingModule):
    def __init__(self, num_users: int = 0, num_items: int = 0, ks=(1, 5), auc: bool = True):
        super().__init__(ks=ks, auc=auc)
        self.automatic_optimization = False
        self.user_table = torch.nn.Parameter(torch.zeros(num_users, NUM_CLUSTERS), requires_grad=False)
        self.item_table = torch.nn.Parameter(torch.zeros(num_items, NUM_CLUSTERS), requires_grad=False)

    def configure_optimizers(self):
        return None

    def on_train_epoch_start(self) -> None:
        users, items = planted_embeddings(self.trainer.datamodule, 1.0 if self.current_epoch == 0 else -1.0)
        self.user_table.data.copy_(torch.from_numpy(users))
        self.item_table.data.copy_(torch.from_numpy(items))

    def training_step(self, batch, batch_idx):
        return None

    def user_embeddings(self, users: torch.Tensor) -> torch.Tensor:
        return self.user_table[users]

    def item_embeddings(self, items: torch.Tensor) -> torch.Tensor:
        return self.item_table[items]


class FailingModule(PeakingModule):
    """Raises in its second epoch, as a diverging or buggy model would."""

    def training_step(self, batch, batch_idx):
        if self.current_epoch == 1:
            raise FloatingPointError("training loss is nan at epoch 1")
        return None
