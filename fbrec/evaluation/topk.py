"""Top-k per row with ties broken by item index (the lower index first), so a metric@K never depends on which other
K are requested and a constant scorer ranks items 0, 1, 2, ..."""

from __future__ import annotations

import torch


def _member(sorted_keys: torch.Tensor, queries: torch.Tensor) -> torch.Tensor:
    """queries' membership in an ascending key tensor by binary search (torch.isin sorts both sides: slower)."""
    if sorted_keys.numel() == 0:
        return torch.zeros_like(queries, dtype=torch.bool)
    idx = torch.searchsorted(sorted_keys, queries).clamp(max=sorted_keys.numel() - 1)
    return sorted_keys[idx] == queries


def topk_by_index(scores: torch.Tensor, k: int) -> torch.Tensor:
    """Indices (B, k) of the k highest scores per row, ties broken by the lower item index.

    torch.topk leaves the order of equal values unspecified, so topk(10) and the first 10 of topk(20) can differ
    inside a tie block. Here the topk entries are re-sorted by (score desc, index asc), and rows whose tie block
    crosses the k-th place take the tied items in index order (a cumsum over the row, no full sort)."""
    n = scores.shape[1]
    vals, idx = scores.topk(min(k + 1, n), dim=1)                                # (B, k + 1): one more, to see
    # a tie block can only cross the k-th place where the (k+1)-th score equals the k-th: only those rows need a
    # pass over the whole row below (on learned scores almost none; on a popularity baseline most)
    maybe = (vals[:, k] == vals[:, k - 1]).nonzero().squeeze(1) if n > k else vals.new_zeros(0, dtype=torch.long)
    vals, idx = vals[:, :k], idx[:, :k]
    order = idx.sort(1).indices                                                  # index ascending ...
    idx, vals = idx.gather(1, order), vals.gather(1, order)
    order = vals.sort(dim=1, descending=True, stable=True).indices                 # ... then score descending
    idx, vals = idx.gather(1, order), vals.gather(1, order)
    thr = vals[:, -1:]                                                           # (B, 1) the k-th score
    in_top = (vals == thr).sum(1)
    crossing = maybe[(scores[maybe] == thr[maybe]).sum(1) > in_top[maybe]]      # tie block continues past k
    if crossing.numel():
        rows = scores[crossing]
        tied = rows == thr[crossing]                                             # (R, I)
        above = k - in_top[crossing]                                             # places taken by scores > thr
        rank = tied.cumsum(1)                                                    # 1-based rank among the tied
        take = tied & (rank <= (k - above)[:, None])
        r, c = take.nonzero(as_tuple=True)                                       # row-major: index ascending
        fixed = idx[crossing]
        fixed[r, above[r] + rank[r, c] - 1] = c
        idx[crossing] = fixed
    return idx
