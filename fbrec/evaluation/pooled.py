"""Per-level AUC pooled over logged rows: the ordinal papers' protocol (GNOLR, ESMM).

Every logged row of a split is one exposure (u, i) with the highest level y it reached. For level k the positives
are the rows with y >= k and the negatives every other logged row (a purchase is scored against every exposure, not
only against clicks), all users together: one global AUC per level, ties counting 1/2 (sklearn's roc_auc_score over
the pooled rows). It measures how a model orders logged pairs, not how it ranks the catalogue; the full-ranking
metrics stay next to it.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
import torch
from scipy.stats import rankdata


def pooled_auc(scores: np.ndarray, labels: np.ndarray) -> float:
    """Mann-Whitney AUC of scores (n,) against 0/1 labels (n,), ties 1/2; NaN without both classes."""
    labels = np.asarray(labels, dtype=bool)
    n_pos, n_neg = int(labels.sum()), int((~labels).sum())
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    ranks = rankdata(scores)                                   # average ranks: ties share them
    return float((ranks[labels].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


class PooledLevelAUC:
    """Collects each logged row's level-k score while the evaluation scores users against the catalogue."""

    def __init__(self, logged_levels: sp.csr_matrix):
        self.logged = logged_levels.tocsr()                    # (U, I): level 1..K of each logged row, else 0
        self._parts: list[tuple[int, np.ndarray, np.ndarray]] = []   # (k, scores, row levels)

    def add(self, k: int, users: np.ndarray | torch.Tensor, scores: torch.Tensor) -> None:
        """users (B,), scores (B, I) at level k for every item: keep the scores of the users' logged rows."""
        users = users.cpu().numpy() if isinstance(users, torch.Tensor) else np.asarray(users)
        sub = self.logged[users].tocoo()
        if sub.nnz == 0:
            return
        rows, cols = torch.from_numpy(sub.row.astype(np.int64)), torch.from_numpy(sub.col.astype(np.int64))
        picked = scores[rows.to(scores.device), cols.to(scores.device)].float().cpu().numpy()
        self._parts.append((k, picked, sub.data.astype(np.int64)))

    def rows(self) -> list[tuple[int, np.ndarray, np.ndarray]]:
        return list(self._parts)

    def replace_rows(self, parts: list[tuple[int, np.ndarray, np.ndarray]]) -> None:
        self._parts = list(parts)

    def summary(self) -> dict[int, float]:
        """{k: pooled AUC of level k}, for every level the rows were scored at."""
        out = {}
        for k in sorted({k for k, _, _ in self._parts}):
            scores = np.concatenate([s for j, s, _ in self._parts if j == k])
            levels = np.concatenate([y for j, _, y in self._parts if j == k])
            out[k] = pooled_auc(scores, levels >= k)
        return out
