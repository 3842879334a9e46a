"""Feature-based two-tower scorer: every feature table in one TorchRec EmbeddingBagCollection, an MLP per tower,
L2-normalised outputs (Yi et al. 2019; Yao et al. 2021).

One forward takes one KeyedJaggedTensor holding the user features ("user_*" keys) and item features ("item_*")
for N rows: a row may carry a user, an item, or both (the other side's bags are empty). Item rows can be
feature-masked: a masked feature's pooled embedding is replaced by a learned default embedding, the first stage of
the SSL augmentation (the value dropout of the second stage happens on the ids, before the lookup).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from fbrec.embeddings import TableSpec, build_collection


def mlp(in_dim: int, hidden: Sequence[int], out_dim: int) -> nn.Sequential:
    layers: list[nn.Module] = []
    for width in hidden:
        layers += [nn.Linear(in_dim, width), nn.ReLU()]
        in_dim = width
    layers.append(nn.Linear(in_dim, out_dim))
    return nn.Sequential(*layers)


class _Defaults(nn.Module):
    """The learned default embedding of each item feature, used where a feature is masked."""

    def __init__(self, num_features: int, embedding_dim: int, init_std: float):
        super().__init__()
        self.init_std = init_std
        self.weight = nn.Parameter(torch.empty(num_features, embedding_dim))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        nn.init.normal_(self.weight, 0.0, self.init_std)


class TwoTower(nn.Module):
    """user_features / item_features: (name, vocabulary size) per feature, the id first.

    forward(features, item_mask) -> user embeddings (N, output_dim), item embeddings (N, output_dim), unit norm.
    item_mask (N, F_item) bool marks the masked item features of each row (None: nothing masked)."""

    def __init__(self, user_features: Sequence[tuple[str, int]], item_features: Sequence[tuple[str, int]],
                 embedding_dim: int, hidden_dims: Sequence[int], output_dim: int, init_std: float = 0.1,
                 device: str | torch.device = "meta"):
        super().__init__()
        self.user_keys = [f"user_{name}" for name, _ in user_features]
        self.item_keys = [f"item_{name}" for name, _ in item_features]
        specs = [TableSpec(key, size, embedding_dim, init_std=init_std)
                 for key, (_, size) in zip([*self.user_keys, *self.item_keys], [*user_features, *item_features],
                                           strict=True)]
        self.collection = build_collection(specs, device=device)
        self.item_default = _Defaults(len(self.item_keys), embedding_dim, init_std)
        self.user_tower = mlp(len(self.user_keys) * embedding_dim, hidden_dims, output_dim)
        self.item_tower = mlp(len(self.item_keys) * embedding_dim, hidden_dims, output_dim)

    def forward(self, features, item_mask: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        pooled = self.collection(features).to_dict()
        users = torch.cat([pooled[k] for k in self.user_keys], dim=-1)                   # (N, F_user * d)
        items = torch.stack([pooled[k] for k in self.item_keys], dim=1)                  # (N, F_item, d)
        if item_mask is not None:
            items = torch.where(item_mask[..., None], self.item_default.weight, items)
        return (F.normalize(self.user_tower(users), dim=-1),
                F.normalize(self.item_tower(items.flatten(1)), dim=-1))


class UserFeatureTower(nn.Module):
    """The user side of a trained TwoTower in plain torch, for export (ONNX) and serving new users.

    tables[f] (V_f, d) are the pooled embeddings of the user's side features (the id excluded: a new user has none,
    so its slot is zero); a row of zeros is appended as the padding id V_f. forward(*ids), ids[f] (B, L_f) int64
    padded with V_f -> (B, output_dim) unit vectors: sum-pooled bags, the user MLP, L2 norm, as in training."""

    def __init__(self, tables: Sequence[torch.Tensor], tower: nn.Sequential):
        super().__init__()
        self.tables = nn.ParameterList([nn.Parameter(torch.cat([t.detach().float(), t.new_zeros(1, t.shape[1])]),
                                                     requires_grad=False) for t in tables])
        self.tower = tower

    def forward(self, *ids: torch.Tensor) -> torch.Tensor:
        pooled = [F.embedding(i, w).sum(1) for i, w in zip(ids, self.tables, strict=True)]     # (B, d) each
        users = torch.cat([torch.zeros_like(pooled[0]), *pooled], dim=-1)                     # id slot: zero
        return F.normalize(self.tower(users), dim=-1)
