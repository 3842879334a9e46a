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
    candidates: sp.csr_matrix | None = None  # (U, I) the only items ranked for u (sampled metrics); None = all

    def __post_init__(self):
        if self.exclude.shape != self.truth.shape:
            raise ConfigError(f"exclude {self.exclude.shape} and truth {self.truth.shape} differ in shape",
                              rule="both are (num_users, num_items)", fix="build them from one id map")
        self.exclude = self.exclude.tocsr()
        self.truth = self.truth.tocsr()
        if self.candidates is not None:
            self.candidates = self.candidates.tocsr()

    @property
    def users(self) -> np.ndarray:
        return np.flatnonzero(np.diff(self.truth.indptr) > 0)

    @property
    def num_items(self) -> int:
        return self.truth.shape[1]


def sample_candidates(exclude: sp.csr_matrix, truth: sp.csr_matrix, n: int, seed: int) -> sp.csr_matrix:
    """Sampled-metrics candidates: for every user with a relevant item, its relevant items plus n items drawn
    uniformly without replacement from those neither excluded nor relevant (all of them when fewer remain).

    Drawn in rounds of vectorised proposals (rejecting excluded, relevant and repeated items, in draw order), so no
    users x items matrix is ever built; a user who has seen nearly everything takes the exact complement."""
    rng = np.random.default_rng([seed, 11])
    num_items = truth.shape[1]
    users = np.flatnonzero(np.diff(truth.indptr) > 0)
    blocked = (exclude + truth).tocsr()
    blocked.data[:] = 1
    blocked.sum_duplicates()
    free = num_items - np.diff(blocked.indptr)[users]
    want = np.minimum(n, free)
    picked: dict[int, np.ndarray] = {}
    todo, width = np.flatnonzero(want > 0), 2 * n + 16
    while len(todo):
        dense = want[todo] > free[todo] // 2          # most free items wanted: take the exact complement
        for j in todo[dense]:
            row = np.setdiff1d(np.arange(num_items), blocked.indices[blocked.indptr[users[j]]:blocked.indptr[users[j] + 1]])
            picked[j] = rng.choice(row, want[j], replace=False)
        todo = todo[~dense]
        if not len(todo):
            break
        draw = rng.integers(0, num_items, size=(len(todo), width))
        keys = users[todo][:, None].astype(np.int64) * num_items + draw
        coo = blocked[users[todo]].tocoo()
        bkeys = np.sort(users[todo][coo.row].astype(np.int64) * num_items + coo.col)
        ok = np.ones(draw.shape, bool)
        if len(bkeys):
            at = np.searchsorted(bkeys, keys).clip(max=len(bkeys) - 1)
            ok = bkeys[at] != keys
        order = np.argsort(draw, axis=1, kind="stable")           # a repeat is the later draw of an equal item
        srt = np.take_along_axis(draw, order, 1)
        repeat = np.zeros(draw.shape, bool)
        np.put_along_axis(repeat, order[:, 1:], srt[:, 1:] == srt[:, :-1], 1)
        ok &= ~repeat
        take = ok & (np.cumsum(ok, 1) <= want[todo][:, None])
        done = take.sum(1) == want[todo]
        for j, row, t in zip(todo[done], draw[done], take[done], strict=True):
            picked[j] = row[t]
        todo, width = todo[~done], width * 2
    rows = np.concatenate([np.full(len(picked[j]), users[j]) for j in sorted(picked)] or [np.zeros(0, np.int64)])
    cols = np.concatenate([picked[j] for j in sorted(picked)] or [np.zeros(0, np.int64)])
    drawn = sp.csr_matrix((np.ones(len(rows), np.float32), (rows, cols)), shape=truth.shape)
    out = (drawn + (truth > 0).astype(np.float32)).tocsr()
    out.data[:] = 1
    return out


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
