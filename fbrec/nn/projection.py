"""The MLP that maps between text-embedding space and collaborative space (RLMRec's sigma)."""

from __future__ import annotations

from torch import nn


class Projection(nn.Sequential):
    """Linear(in -> (in + out) / 2), LeakyReLU, Linear(-> out), as RLMRec maps profiles to CF space and back."""

    def __init__(self, in_dim: int, out_dim: int):
        hidden = (in_dim + out_dim) // 2
        super().__init__(nn.Linear(in_dim, hidden), nn.LeakyReLU(), nn.Linear(hidden, out_dim))
