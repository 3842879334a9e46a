"""Complementary feature masks for the SSL task of Yao et al. (2021).

View one masks the returned features, view two masks the rest, so the two views together see every feature once.
RFM splits the features at random; CFM masks a uniformly drawn seed feature plus the features most mutually
informative with it, so the features that could give each other away are hidden together and the views must agree
through what is left.
"""

from __future__ import annotations

import torch

from fbrec.errors import ConfigError

STRATEGIES = ("rfm", "cfm")


def check_num_masked(num_masked: int, num_features: int) -> int:
    if num_features < 2:
        raise ConfigError(f"SSL feature masking over {num_features} feature",
                          rule="complementary masks need at least 2 item features (the id and one more)",
                          fix="add item_features to the data config, or set ssl: null")
    if not 1 <= num_masked <= num_features - 1:
        raise ConfigError(f"mask_features={num_masked} with {num_features} item features",
                          rule=f"each view masks between 1 and {num_features - 1} features (the other view masks "
                               "the rest, and neither view may be empty)",
                          fix=f"use mask_features between 1 and {num_features - 1}, or leave it unset "
                              f"(half: {num_features // 2})")
    return num_masked


def random_feature_mask(num_features: int, num_masked: int, generator: torch.Generator | None = None
                        ) -> torch.Tensor:
    """RFM: (F,) bool, `num_masked` features chosen uniformly at random."""
    chosen = torch.randperm(num_features, generator=generator)[:num_masked]
    mask = torch.zeros(num_features, dtype=torch.bool)
    mask[chosen] = True
    return mask


def correlated_feature_mask(mi_order: torch.Tensor, num_masked: int, generator: torch.Generator | None = None
                            ) -> torch.Tensor:
    """CFM: (F,) bool; mi_order (F, F - 1) lists, for each feature, the others by decreasing mutual information.
    A seed drawn uniformly plus its num_masked - 1 most informative partners."""
    num_features = mi_order.shape[0]
    seed = int(torch.randint(num_features, (1,), generator=generator))
    mask = torch.zeros(num_features, dtype=torch.bool)
    mask[seed] = True
    mask[mi_order[seed, : num_masked - 1].cpu()] = True
    return mask


def mi_order(mutual_information: torch.Tensor) -> torch.Tensor:
    """(F, F) MI -> (F, F - 1): each row the other features by decreasing MI (ties: lower index first)."""
    F = mutual_information.shape[0]
    mi = mutual_information.clone().double()
    mi.fill_diagonal_(-float("inf"))
    order = torch.sort(-mi, dim=1, stable=True).indices
    return order[:, : F - 1]
