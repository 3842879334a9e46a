"""Exact per-user AUC over the catalogue: each user's positives against every non-excluded negative, ties counting
1/2, computed by binary search of the positives' scores among the row's sorted scores (bounded memory per batch)."""

from __future__ import annotations

import torch


def _auc(scores: torch.Tensor, tr_r: torch.Tensor, tr_c: torch.Tensor, positive: torch.Tensor,
         n_excluded: torch.Tensor, budget: int = 1 << 24) -> torch.Tensor:
    """Per-row AUC of the `positive` targets (one slice) against the row's negatives; see `_aucs`."""
    return _aucs(scores, tr_r, tr_c, {"slice": positive}, n_excluded, budget)["slice"]


def _aucs(scores: torch.Tensor, tr_r: torch.Tensor, tr_c: torch.Tensor, positives: dict[str, torch.Tensor],
          n_excluded: torch.Tensor, budget: int = 1 << 24) -> dict[str, torch.Tensor]:
    """Per-row AUC of each slice's positive targets against the row's negatives; NaN where a row lacks either.
    Exact, ties counted 1/2 (the Mann-Whitney statistic).

    scores (B, I) with excluded items at -inf; (tr_r, tr_c) every target of the batch in (row, item) order;
    positives {slice: (T,) bool}: the targets each AUC is for; a slice's other targets are neither positive nor
    negative. Negatives are the items neither excluded nor targets. Each row's target scores are sorted (a row has
    few), and ONE pass over the row's items binary-searches each item among them, for every slice at once (a slice's
    count below an item is a prefix count over the sorted targets): sum over items of (#positives above + ties / 2)
    = sum over negatives of the positives that beat them. The excluded items' and the targets' own terms are taken
    out exactly. O(items x log targets) per row, however many targets or slices."""
    B, I = scores.shape
    dev = scores.device
    s_t = scores[tr_r, tr_c]                                                     # (T,) every target's score
    per_row = torch.bincount(tr_r, minlength=B)
    n_neg = (I - n_excluded - per_row).double()                                  # (B,)
    nan = {name: torch.full((B,), float("nan"), device=dev) for name in positives}
    m = int(per_row.max()) if len(tr_r) else 0
    if m == 0:
        return nan
    # each row's targets sorted by score, padded with +inf (above every finite score: beats nothing, ties nothing)
    order = torch.argsort(s_t, stable=True)
    order = order[torch.argsort(tr_r[order], stable=True)]                       # by row, then by score
    slot = torch.arange(len(tr_r), device=dev) - (torch.cumsum(per_row, 0) - per_row)[tr_r[order]]
    seq = torch.full((B, m), float("inf"), device=dev)
    seq[tr_r[order], slot] = s_t[order]
    # per slice: how many of its positives are among the first j sorted targets of the row, j = 0..m
    member, prefix, k = {}, {}, {}
    for name, positive in positives.items():
        member[name] = torch.zeros((B, m), dtype=torch.bool, device=dev)   # is the j-th sorted target a positive
        member[name][tr_r[order], slot] = positive[order]
        prefix[name] = torch.cat([torch.zeros((B, 1), dtype=torch.int64, device=dev), member[name].cumsum(1)], 1)
        k[name] = prefix[name][:, -1]
    wins = {name: torch.zeros(B, dtype=torch.float64, device=dev) for name in positives}
    # the largest target <= an item, with NaN in front (no target <= it; NaN equals nothing, not even -inf)
    seq_pad = torch.cat([torch.full((B, 1), float("nan"), device=dev), seq], 1)
    step = max(1, budget // max(1, I))
    for start in range(0, B, step):                                              # rows in chunks: one pass each
        rows, chunk_seq = scores[start:start + step], seq[start:start + step]
        c_rows = len(rows)
        at_most = torch.searchsorted(chunk_seq, rows, right=True)                # (c, I) #targets <= the item
        # how many items sit at each at_most value, per row: every slice's sum is then a (c, m+1) product
        flat = at_most + torch.arange(c_rows, device=dev)[:, None] * (m + 1)
        hist = torch.bincount(flat.view(-1), minlength=c_rows * (m + 1)).view(c_rows, m + 1)
        # an item ties a target iff the largest target <= it equals it; ties are rare with real scores (the targets
        # themselves aside), so only those items are searched again for the targets strictly below them
        tied = seq_pad[start:start + step].gather(1, at_most) == rows
        r, c = tied.nonzero(as_tuple=True)
        below = torch.searchsorted(chunk_seq[r], rows[r, c, None], right=False).squeeze(1) if len(r) else r
        for name in positives:
            pre = prefix[name][start:start + step]
            le = (pre * hist).sum(1)                                             # sum over items: positives <= it
            n_tied = torch.zeros(c_rows, dtype=torch.float64, device=dev)
            if len(r):
                n_tied.index_add_(0, r, (pre[r, at_most[r, c]] - pre[r, below]).double())
            # per item: positives above = k - (positives <= it); tied ones counted 1/2
            wins[name][start:start + step] = (k[name][start:start + step] * I - le).double() + 0.5 * n_tied

    def own_terms(values: torch.Tensor, rows_of: torch.Tensor, member: torch.Tensor) -> torch.Tensor:
        """sum over the given (row, score) items of (#positives above + ties / 2) within their row"""
        ref, is_pos = seq[rows_of], member[rows_of]                              # (n, m)
        above = ((ref > values[:, None]) & is_pos).sum(1).double()
        tied = ((ref == values[:, None]) & is_pos).sum(1).double()
        return torch.zeros(B, dtype=torch.float64, device=dev).index_add_(0, rows_of, above + 0.5 * tied)

    out = {}
    every_row = torch.arange(B, device=dev)
    neg_inf = torch.full((B,), float("-inf"), device=dev)
    for name in positives:
        w = wins[name]
        w -= own_terms(neg_inf, every_row, member[name]) * n_excluded.double()   # excluded items sit at -inf
        w -= own_terms(s_t, tr_r, member[name])                                  # targets are not negatives
        out[name] = (w / (k[name].double() * n_neg)).float()
    return out
