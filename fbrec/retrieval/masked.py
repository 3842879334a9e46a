"""Exact inner-product top-k with each query's own excluded items removed: full-ranking evaluation at the matmul
bound.

faiss.knn runs a blocked GEMM with a per-query heap, so it never writes a (queries x items) score matrix; scoring
whole rows and sorting them costs several times the arithmetic at a million items. Exclusions (the training items
of each user) are handled by asking for k + |excluded| + 1 results (users bucketed by that size, so one heavy
user does not widen everyone's heap) and dropping the excluded ones. Ties are ranked by the lower item index, as
`fbrec.evaluation.topk.topk_by_index` does; a row whose k-th score ties the last fetched one may have tied
items beyond the fetch and is recomputed over the whole row.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from fbrec.retrieval.index import faiss


def _ranked(scores: np.ndarray, items: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Rows of (score, item) candidates -> the first k by (score desc, item asc); -inf / -1 entries go last."""
    order = np.lexsort((items, -scores), axis=1)[:, :k]
    return np.take_along_axis(scores, order, 1), np.take_along_axis(items, order, 1)


def _drop_excluded(scores: np.ndarray, items: np.ndarray, exclude: sp.csr_matrix) -> None:
    """In place: excluded (row, item) candidates and faiss's -1 fillers become (-inf, -1)."""
    num_items = exclude.shape[1]
    coo = exclude.tocoo()
    keys = np.sort(coo.row.astype(np.int64) * num_items + coo.col)
    cand = np.arange(len(items), dtype=np.int64)[:, None] * num_items + items
    if len(keys):
        at = np.searchsorted(keys, cand).clip(max=len(keys) - 1)
        drop = (keys[at] == cand) | (items < 0)
    else:
        drop = items < 0
    scores[drop], items[drop] = -np.inf, -1


def _exact_rows(queries: np.ndarray, items: np.ndarray, exclude: sp.csr_matrix, k: int) -> np.ndarray:
    """Whole-row ranking for the few rows a fetch cannot settle, in chunks of at most 2^24 scores."""
    out = np.empty((len(queries), k), dtype=np.int64)
    step = max(1, (1 << 24) // items.shape[0])
    for start in range(0, len(queries), step):
        scores = queries[start:start + step] @ items.T                       # (R, D) x (D, I) -> (R, I)
        rows, cols = exclude[start:start + step].nonzero()
        scores[rows, cols] = -np.inf
        idx = np.broadcast_to(np.arange(items.shape[0]), scores.shape).copy()
        ranked_scores, ranked = _ranked(scores, idx, k)
        ranked[~np.isfinite(ranked_scores)] = -1
        out[start:start + step] = ranked
    return out


def masked_topk(queries: np.ndarray, items: np.ndarray, k: int, exclude: sp.csr_matrix, *,
                threads: int | None = None) -> np.ndarray:
    """Item indices (Q, k) of each query's k highest inner products among the items not excluded for it, ties by
    the lower index; -1 pads rows with fewer than k candidates. exclude: (Q, I) CSR, row q = query q's items."""
    queries = np.ascontiguousarray(queries, dtype=np.float32)
    items = np.ascontiguousarray(items, dtype=np.float32)
    exclude = sp.csr_matrix(exclude)
    num_items = items.shape[0]
    before = faiss.omp_get_max_threads()
    if threads is not None:   # for this call only: FAISS's thread count is process-wide
        faiss.omp_set_num_threads(max(1, int(threads)))
    out = np.full((len(queries), k), -1, dtype=np.int64)
    n_ex = np.diff(exclude.indptr)
    fetch = np.minimum(num_items, 2 ** np.ceil(np.log2(k + n_ex + 1)).astype(np.int64))   # power-of-2 buckets
    try:
        for size in np.unique(fetch):
            bucket = np.flatnonzero(fetch == size)
            step = max(1, (1 << 24) // int(size))      # result heaps of at most 16M entries (~200 MB) per call
            for start in range(0, len(bucket), step):
                rows = bucket[start:start + step]
                out[rows] = _search(queries[rows], items, k, int(size), exclude[rows])
    finally:
        faiss.omp_set_num_threads(before)
    return out


def _search(queries: np.ndarray, items: np.ndarray, k: int, size: int, exclude: sp.csr_matrix) -> np.ndarray:
    """masked_topk for queries that share one fetch size."""
    scores, found = faiss.knn(queries, items, size, metric=faiss.METRIC_INNER_PRODUCT)
    found = found.astype(np.int64)
    last = np.where(found >= 0, scores, np.inf).min(1)                      # the fetch's threshold
    _drop_excluded(scores, found, exclude)
    ranked_scores, ranked = _ranked(scores, found, k)
    ranked[~np.isfinite(ranked_scores)] = -1
    # a tie with the smallest fetched score may continue past the fetch: those rows are ranked over all items
    unsure = (size < items.shape[0]) & np.isfinite(ranked_scores[:, -1]) & (ranked_scores[:, -1] <= last)
    if unsure.any():
        ranked[unsure] = _exact_rows(queries[unsure], items, exclude[unsure], k)
    return ranked
