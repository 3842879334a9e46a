"""LightGCN (He et al., SIGIR 2020), RLMRec's main backbone: TorchRec id tables smoothed over the training graph,
trained with BPR (or any fbrec loss) on sampled negatives, with optional RLMRec profile alignment."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from fbrec._checks import check_positive
from fbrec.losses import make_loss
from fbrec.models.embedding import EmbeddingModule
from fbrec.nn import LightGCNTables, normalized_adjacency, propagate
from fbrec.types import ITEM_INDEX, USER_INDEX, InteractionBatch


class LightGCNModule(EmbeddingModule):
    """Args:
        num_layers: propagation layers L (the output is the mean of layers 0..L; 0 is plain MF).
        loss / loss_options: a loss of fbrec.losses over the sampled negatives ("bpr" as in the paper).
        alignment: RLMRec profile alignment, e.g. {profiles: DIR, mode: con | gen} (fbrec.models.alignment);
            in gen mode the masked nodes are replaced by a learned token before propagation.
        (the rest: see EmbeddingModule)
    The graph is the run's training split (never validation or test pairs); every step propagates the whole graph."""

    def __init__(self, num_users: int = 0, num_items: int = 0, embedding_dim: int = 32, num_layers: int = 3,
                 loss: str = "bpr", loss_options: dict | None = None, init_std: float = 0.1,
                 sparse_optimizer: str = "rowwise_adagrad", learning_rate: float = 0.05, weight_decay: float = 0.0,
                 dense_learning_rate: float = 1e-3, sharding: dict[str, str] | None = None,
                 ks: Sequence[int] = (10, 20, 50), auc: bool = True, alignment: dict | None = None):
        super().__init__(num_users, num_items, embedding_dim, sparse_optimizer, learning_rate, weight_decay,
                         dense_learning_rate, sharding=sharding, ks=ks, auc=auc, alignment=alignment)
        check_positive("num_layers", num_layers, strict=False)
        self.num_layers, self.init_std = int(num_layers), init_std
        self.loss_name, self.loss_options = loss, dict(loss_options or {})
        self._loss = make_loss(loss, **self.loss_options)
        self.adjacency: torch.Tensor | None = None   # rebuilt from the data in setup, never checkpointed
        self._eval_cache: tuple[torch.Tensor, torch.Tensor] | None = None
        self.save_hyperparameters()

    def prepare_from(self, datamodule) -> None:
        if self.adjacency is None:
            train = datamodule.data.train
            self.set_graph(train[USER_INDEX].to_numpy(), train[ITEM_INDEX].to_numpy())

    def set_graph(self, users, items) -> None:
        self.adjacency = normalized_adjacency(users, items, self.num_users, self.num_items)

    def build_scorer(self) -> nn.Module:
        return LightGCNTables(self.num_users, self.num_items, self.embedding_dim, init_std=self.init_std,
                              device="meta")

    def propagated(self, mask: bool = False) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """Every user's and item's output (U, D), (I, D); with mask (gen alignment, training) a share of the inputs
        is replaced by the mask token first, and the masked node indices (users 0..U-1, items U..) come back."""
        device = self.device
        users, items = self.model(torch.arange(self.num_users, device=device),
                                  torch.arange(self.num_items, device=device))
        layer0, masked = torch.cat([users, items]), None
        if mask:
            layer0, masked = self.alignment.mask_inputs(layer0)
        out = propagate(self.adjacency.to(device), layer0, self.num_layers)
        return out[: self.num_users], out[self.num_users:], masked

    def loss(self, batch: InteractionBatch) -> torch.Tensor:
        gen = self.alignment is not None and self.alignment.mode == "gen"
        users_out, items_out, masked = self.propagated(mask=gen)
        items = torch.cat([batch.item[:, None], batch.negatives], dim=1)       # (B, 1 + N)
        p, q = users_out[batch.user], items_out[items]                          # (B, D), (B, 1 + N, D)
        logits = (p[:, None, :] * q).sum(-1)
        main = self._loss(logits[:, 0], logits[:, 1:], batch)
        if self.alignment is None:
            return main
        if gen:   # reconstruct the masked nodes' profiles from their propagated outputs
            mu, mi = masked[masked < self.num_users], masked[masked >= self.num_users] - self.num_users
            return self.with_alignment(main, mu, users_out[mu], mi, items_out[mi])
        return self.with_alignment(main, batch.user, p, items.reshape(-1), q.reshape(-1, q.shape[-1]))

    # --- evaluation: propagate once per validation / test, not once per user chunk ------------------------
    def _start_eval(self, stage: str) -> None:
        with torch.no_grad():
            self._eval_cache = self.propagated()[:2]
        super()._start_eval(stage)

    def _end_eval(self, stage: str) -> None:
        super()._end_eval(stage)
        self._eval_cache = None

    def _outputs(self) -> tuple[torch.Tensor, torch.Tensor]:
        if self._eval_cache is not None:
            return self._eval_cache
        with torch.no_grad():
            return self.propagated()[:2]

    def user_embeddings(self, users: torch.Tensor) -> torch.Tensor:
        return self._outputs()[0][users]

    def item_embeddings(self, items: torch.Tensor) -> torch.Tensor:
        return self._outputs()[1][items]

    def export_embeddings(self, num_users: int, num_items: int):
        users, items = self._outputs()
        return users.float().cpu().numpy(), items.float().cpu().numpy()

