"""Weighted squared losses over every user-item pair, without enumerating the pairs.

The objective of WMF / iALS (Hu, Koren, Volinsky 2008), of Rel-MF in its squared form and of plain MF over the whole
matrix is one family:

    L(P, Q) = sum_{u,i} c_ui (t_ui - p_u . q_i)^2 + reg (|P|^2 + |Q|^2)

with c_ui = w0 and t_ui = 0 on every unobserved pair, and each observed pair's own confidence c and target t:
WMF c = w0 + alpha r_ui, t = 1 (r_ui: the pair's summed click weight); Rel-MF c = 1, t = 1 / theta_ui (since
(Y/theta)(1 - s)^2 + (1 - Y/theta) s^2 = (Y/theta - s)^2 + a constant, Saito et al.'s unbiased estimator with squared
locals on raw scores); MF c = 1, t = 1. Splitting the sum into every pair at weight w0 plus the observed corrections,

    sum_{u,i} w0 s_ui^2 = w0 sum_u p_u^T G p_u,   G = Q^T Q  (the item Gramian, D x D)

so the exact loss costs O((U + I) D^2 + nnz D) instead of O(U I D) (`all_pairs_loss`). Holding Q fixed, each user's
row has a closed form (A_u p_u = b_u with A_u = w0 G + sum_{i in O_u} (c_ui - w0) q_i q_i^T + reg I and
b_u = sum_{i in O_u} c_ui t_ui q_i), and symmetrically for items: alternating least squares (`solve_rows`), exact by
a batched Cholesky solve or approximate by a few warm-started conjugate-gradient steps as in Takacs et al. 2011
(implicit's default: 3).
"""

from __future__ import annotations

import warnings
from typing import NamedTuple

import numpy as np
import torch


class ObservedPairs(NamedTuple):
    """Observed pairs sorted by row: row (n,), col (n,), confidence (n,), target (n,); w0 weighs every other pair."""

    row: torch.Tensor
    col: torch.Tensor
    confidence: torch.Tensor
    target: torch.Tensor
    w0: float = 1.0

    def transposed(self) -> ObservedPairs:
        """The same pairs seen from the columns (items), sorted by item."""
        order = torch.argsort(self.col * (int(self.row.max()) + 1 if len(self.row) else 1) + self.row)
        return ObservedPairs(self.col[order], self.row[order], self.confidence[order], self.target[order], self.w0)


def observed_pairs(users: np.ndarray, items: np.ndarray, weight: np.ndarray, propensity: np.ndarray, *,
                   objective: str, num_items: int, alpha: float = 1.0, clip: float | None = None,
                   unobserved_weight: float = 1.0) -> tuple[ObservedPairs, np.ndarray]:
    """Training rows -> the distinct observed pairs with their confidence and target (sorted by user, then item),
    and each row's index into them."""
    keys = users.astype(np.int64) * num_items + items.astype(np.int64)
    unique, row_to_pair = np.unique(keys, return_inverse=True)
    clicks = np.bincount(row_to_pair, weights=weight, minlength=len(unique))       # r_ui: summed click weight
    if objective == "wmf":
        confidence, target = unobserved_weight + alpha * clicks, np.ones(len(unique))
    elif objective == "relmf":
        theta = np.zeros(len(unique))
        np.maximum.at(theta, row_to_pair, propensity)         # one propensity per pair (rows of a pair agree)
        confidence, target = np.ones(len(unique)), 1.0 / np.maximum(theta, clip or 0.0)
    else:
        confidence, target = np.ones(len(unique)), np.ones(len(unique))
    pairs = ObservedPairs(torch.from_numpy(unique // num_items), torch.from_numpy(unique % num_items),
                          torch.as_tensor(confidence, dtype=torch.float32), torch.as_tensor(target, dtype=torch.float32),
                          unobserved_weight)
    return pairs, row_to_pair


def gramian(vectors: torch.Tensor) -> torch.Tensor:
    """V^T V, (D, D), accumulated in float64 for a stable sum over large tables."""
    return (vectors.double().T @ vectors.double()).to(vectors.dtype)


def all_pairs_loss(users: torch.Tensor, items: torch.Tensor, pairs: ObservedPairs, reg: float = 0.0) -> torch.Tensor:
    """L(P, Q) above, exactly, with users (U, D) and items (I, D) (differentiable in both)."""
    unobserved = pairs.w0 * (users @ gramian(items) * users).sum()             # sum_u p_u^T G p_u
    s = (users[pairs.row] * items[pairs.col]).sum(-1)                            # (n,) observed scores
    observed = (pairs.confidence * (pairs.target - s) ** 2 - pairs.w0 * s**2).sum()
    return unobserved + observed + reg * (users.pow(2).sum() + items.pow(2).sum())


def enumerated_loss(users: torch.Tensor, items: torch.Tensor, pairs: ObservedPairs, reg: float = 0.0) -> torch.Tensor:
    """The same loss by summing every (user, item) pair of the dense matrix: the reference, for small data."""
    c = torch.full((len(users), len(items)), pairs.w0, dtype=users.dtype)
    t = torch.zeros_like(c)
    c[pairs.row, pairs.col], t[pairs.row, pairs.col] = pairs.confidence.to(c.dtype), pairs.target.to(c.dtype)
    return (c * (t - users @ items.T) ** 2).sum() + reg * (users.pow(2).sum() + items.pow(2).sum())


def _csr(pairs: ObservedPairs, num_rows: int, num_cols: int, values: torch.Tensor) -> torch.Tensor:
    """The pairs as a (rows x cols) CSR matrix holding `values` (pairs are sorted by row)."""
    crow = torch.zeros(num_rows + 1, dtype=torch.int64)
    crow[1:] = torch.bincount(pairs.row, minlength=num_rows).cumsum(0)
    with warnings.catch_warnings():   # "sparse CSR support is in beta": SDDMM and SpMM are all we use
        warnings.simplefilter("ignore", UserWarning)
        return torch.sparse_csr_tensor(crow, pairs.col, values, (num_rows, num_cols))


def _observed_matvec(x: torch.Tensor, fixed: torch.Tensor, pattern: torch.Tensor, extra: torch.Tensor
                     ) -> torch.Tensor:
    """sum_{i in O_u} (c_ui - w0) q_i q_i^T x_u for every row u, (R, D): the dot products at the observed pairs
    only (SDDMM), weighted, times the fixed side (SpMM) - O(nnz D), no (nnz, D) temporaries."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        dots = torch.sparse.sampled_addmm(pattern, x, fixed.T, beta=0.0)
        weighted = torch.sparse_csr_tensor(pattern.crow_indices(), pattern.col_indices(), dots.values() * extra,
                                           pattern.shape)
        return weighted @ fixed


def solve_rows(current: torch.Tensor, fixed: torch.Tensor, pairs: ObservedPairs, reg: float,
               cg_steps: int | None = None, max_bytes: int = 1 << 28) -> torch.Tensor:
    """The rows (R, D) minimising L with the other side's vectors `fixed` (C, D) held: pairs index rows x columns.

    cg_steps None: the exact solve (a batched Cholesky of every A_u, built in chunks of at most max_bytes);
    an integer: that many conjugate-gradient steps started from `current` (the previous rows)."""
    R, D = current.shape
    G = pairs.w0 * gramian(fixed) + reg * torch.eye(D, dtype=fixed.dtype)
    C = len(fixed)
    b = _csr(pairs, R, C, (pairs.confidence * pairs.target).to(fixed.dtype)) @ fixed   # sum c_ui t_ui q_i
    if cg_steps is None:
        out = torch.empty_like(current)
        chunk = max(1, max_bytes // (8 * D * D))
        bounds = torch.searchsorted(pairs.row, torch.arange(0, R + chunk, chunk, dtype=pairs.row.dtype))
        for n, start in enumerate(range(0, R, chunk)):
            stop = min(R, start + chunk)
            lo, hi = int(bounds[n]), int(bounds[n + 1])
            A = G.double().expand(stop - start, D, D).clone()
            for at in range(lo, hi, chunk):   # the observed pairs' outer products, at most max_bytes at a time
                end = min(hi, at + chunk)
                q = fixed[pairs.col[at:end]].double()
                w = (pairs.confidence[at:end] - pairs.w0).double()
                A.index_add_(0, pairs.row[at:end] - start, w[:, None, None] * q[:, :, None] * q[:, None, :])
            out[start:stop] = torch.linalg.solve(A, b[start:stop].double()).to(current.dtype)
        return out
    x = current.clone()
    pattern, extra = _csr(pairs, R, C, torch.ones(len(pairs.row), dtype=fixed.dtype)), \
        (pairs.confidence - pairs.w0).to(fixed.dtype)

    def matvec(v: torch.Tensor) -> torch.Tensor:
        return v @ G + _observed_matvec(v, fixed, pattern, extra)

    r = b - matvec(x)
    p = r.clone()
    rs = (r * r).sum(-1)
    for _ in range(cg_steps):
        Ap = matvec(p)
        denom = (p * Ap).sum(-1)
        alpha = torch.where(denom > 0, rs / denom.clamp_min(1e-30), torch.zeros_like(rs))
        x += alpha[:, None] * p
        r -= alpha[:, None] * Ap
        rs_new = (r * r).sum(-1)
        beta = torch.where(rs > 0, rs_new / rs.clamp_min(1e-30), torch.zeros_like(rs))
        p = r + beta[:, None] * p
        rs = rs_new
    return x
