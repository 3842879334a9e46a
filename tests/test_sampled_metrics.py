"""Sampled metrics, an explicit validation option: candidates drawn right, ranked right, named as what they are."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
import torch

from fbrec.data.evalset import EvalSet, sample_candidates
from fbrec.evaluation import RankingEvaluator


def _log(users=400, items=60, seed=0):
    rng = np.random.default_rng(seed)
    exclude = rng.random((users, items)) < 0.3
    truth = (rng.random((users, items)) < 0.05) & ~exclude
    truth[3, :2] = True
    exclude[3] = ~truth[3]                                      # a user who has seen everything but its truth
    return sp.csr_matrix(exclude.astype(np.float32)), sp.csr_matrix(truth.astype(np.float32))


def test_candidates_are_the_truth_plus_n_unseen_items_drawn_uniformly():
    exclude, truth = _log()
    cand = sample_candidates(exclude, truth, 10, seed=0)
    ex, tr, c = exclude.toarray() > 0, truth.toarray() > 0, cand.toarray() > 0
    for u in range(truth.shape[0]):
        if not tr[u].any():
            assert not c[u].any()
            continue
        assert (c[u] & tr[u]).sum() == tr[u].sum() and not (c[u] & ex[u]).any()
        free = (~ex[u] & ~tr[u]).sum()
        assert (c[u] & ~tr[u]).sum() == min(10, free)
    assert (cand[3].toarray() > 0).sum() == tr[3].sum()       # nothing left to draw for user 3
    np.testing.assert_array_equal(cand.toarray(), sample_candidates(exclude, truth, 10, seed=0).toarray())
    assert (cand != sample_candidates(exclude, truth, 10, seed=1)).nnz
    # uniform: 3,000 identical users with 50 free items -> each item drawn about 3000 * 5 / 50 = 300 times
    same_ex = sp.csr_matrix(np.tile(np.r_[np.ones(10), np.zeros(50)], (3000, 1)).astype(np.float32))
    same_tr = sp.csr_matrix(np.tile(np.r_[np.zeros(59), np.ones(1)], (3000, 1)).astype(np.float32))
    counts = np.asarray(sample_candidates(same_ex, same_tr, 5, seed=0).sum(0)).ravel()[10:59]
    assert counts.min() > 230 and counts.max() < 370          # ~ 4 sigma of Binomial(3000, 0.1)


def test_ranking_among_candidates_equals_excluding_every_other_item():
    exclude, truth = _log(users=80)
    cand = sample_candidates(exclude, truth, 7, seed=2)
    scores = torch.from_numpy(np.random.default_rng(0).normal(size=truth.shape).astype(np.float32))
    users = np.flatnonzero(np.diff(truth.indptr) > 0)
    seen = exclude.toarray() > 0
    seen[users[0], truth[users[0]].indices[0]] = True      # a relevant item the user has seen: never a target
    exclude = sp.csr_matrix(seen.astype(np.float32))
    sampled = RankingEvaluator(EvalSet(exclude, truth, candidates=cand), (1, 5))
    sampled.update(users, scores[users])
    outside = (cand.toarray() == 0) | seen
    as_exclusion = RankingEvaluator(EvalSet(sp.csr_matrix(outside.astype(np.float32)), truth), (1, 5))
    as_exclusion.update(users, scores[users])
    assert sampled.summary() == pytest.approx(as_exclusion.summary(), rel=1e-6)
    assert sampled.summary()["recall_at_5"] > 0.3             # 7 + ~2 candidates: far above full ranking's odds
