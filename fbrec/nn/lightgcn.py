"""LightGCN (He et al., SIGIR 2020): id embeddings in a TorchRec collection, smoothed over the user-item graph.

E^(0) = [users; items] from the tables; E^(l+1) = A E^(l) with A = D^-1/2 [[0, R], [R^T, 0]] D^-1/2 over the
training interactions R; the output is the mean of E^(0..L). Propagation is a sparse matmul per layer on the whole
graph, so every step looks up every row (through DMP: sharded tables are gathered by TorchRec's all-to-all).
"""

from __future__ import annotations

import warnings

import numpy as np
import torch
from torch import nn

from fbrec.embeddings import TableSpec, build_collection, keyed_bags


def normalized_adjacency(users: np.ndarray, items: np.ndarray, num_users: int, num_items: int) -> torch.Tensor:
    """The symmetric-normalised (U + I) x (U + I) adjacency of the bipartite training graph, sparse CSR float32.
    Repeated pairs count once; isolated nodes keep a zero row."""
    pairs = np.unique(np.stack([users, items], 1), axis=0) if len(users) else np.zeros((0, 2), np.int64)
    u, i = pairs[:, 0], pairs[:, 1] + num_users
    rows, cols = np.concatenate([u, i]), np.concatenate([i, u])
    degree = np.bincount(rows, minlength=num_users + num_items).astype(np.float64)
    scale = np.where(degree > 0, 1.0 / np.sqrt(np.maximum(degree, 1.0)), 0.0)
    values = (scale[rows] * scale[cols]).astype(np.float32)
    coo = torch.sparse_coo_tensor(torch.as_tensor(np.stack([rows, cols])), torch.as_tensor(values),
                                  (num_users + num_items,) * 2, check_invariants=True).coalesce()
    with warnings.catch_warnings():   # "sparse CSR support is in beta": CSR x dense matmul is all we use
        warnings.simplefilter("ignore", UserWarning)
        return coo.to_sparse_csr()


def propagate(adjacency: torch.Tensor, layer0: torch.Tensor, num_layers: int) -> torch.Tensor:
    """Mean of E^(0..L), E^(l+1) = A E^(l): (N, N) sparse x (N, D) -> (N, D)."""
    layers, current = [layer0], layer0
    for _ in range(num_layers):
        current = adjacency @ current
        layers.append(current)
    return torch.stack(layers).mean(0)


class LightGCNTables(nn.Module):
    """The user and item tables; forward returns the rows of all users and all items, (U, D) and (I, D)."""

    def __init__(self, num_users: int, num_items: int, embedding_dim: int, *, init_std: float = 0.1,
                 device: str | torch.device = "meta"):
        super().__init__()
        self.num_users, self.num_items = num_users, num_items
        self.tables = (TableSpec("user", num_users, embedding_dim, init_std=init_std),
                       TableSpec("item", num_items, embedding_dim, init_std=init_std))
        self.ebc = build_collection(self.tables, device=device)

    def forward(self, user: torch.Tensor, item: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """user (U,) and item (I,) ids, of any two lengths -> their rows (U, D), (I, D) in one lookup."""
        stride = max(len(user), len(item))

        def bag(ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            lengths = torch.zeros(stride, dtype=torch.long, device=ids.device)
            lengths[: len(ids)] = 1
            return lengths, ids.long()

        pooled = self.ebc(keyed_bags({"user": bag(user), "item": bag(item)})).to_dict()
        return pooled["user"][: len(user)], pooled["item"][: len(item)]
