"""What one ranking evaluation needs: excluded items, relevant items, item slices, user activity.

Kept in the data layer because FeedbackDataModule builds it; fbrec.evaluation consumes it."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import scipy.sparse as sp

from fbrec.errors import ConfigError


@dataclass
class EvalSet:
    """What one evaluation needs: users to rank for, their excluded items and their relevant items."""

    exclude: sp.csr_matrix            # (U, I) items never recommended to u (seen in training)
    truth: sp.csr_matrix              # (U, I) relevant test items
    item_slices: dict[str, np.ndarray] = field(default_factory=dict)   # name -> (I,) bool
    user_activity: np.ndarray | None = None                            # (U,) training interactions
    item_weights: np.ndarray | None = None   # (I,) or (U, I) inverse propensities 1/theta: adds "snips"/"ips"
    saito: bool = False                      # also report Saito et al.'s protocol metrics (saito_dcg_at_k, ...)
    protocol_users: int | None = None        # users the saito_* means run over (None: users with a relevant item)

    def __post_init__(self):
        if self.exclude.shape != self.truth.shape:
            raise ConfigError(f"exclude {self.exclude.shape} and truth {self.truth.shape} differ in shape",
                              rule="both are (num_users, num_items)", fix="build them from one id map")
        self.exclude = self.exclude.tocsr()
        self.truth = self.truth.tocsr()

    @property
    def users(self) -> np.ndarray:
        return np.flatnonzero(np.diff(self.truth.indptr) > 0)

    @property
    def num_items(self) -> int:
        return self.truth.shape[1]


def popularity_slices(train_counts: np.ndarray, head_fraction: float = 0.2,
                      cold_max_interactions: int | None = None) -> dict[str, np.ndarray]:
    """head = the `head_fraction` most-interacted items in training; tail = the rest (ties go to head);
    cold = items with at most `cold_max_interactions` training interactions (left out when None or empty)."""
    n_head = max(1, int(round(head_fraction * len(train_counts))))
    threshold = np.sort(train_counts)[::-1][n_head - 1]
    head = train_counts >= threshold
    slices = {"head": head, "tail": ~head}
    if cold_max_interactions is not None and (cold := train_counts <= cold_max_interactions).any():
        slices["cold"] = cold
    return slices
