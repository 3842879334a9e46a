"""Full ranking without a score matrix: FAISS's masked top-k equals the dense path, ties and heavy users included."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
import torch

from fbrec.data.evalset import EvalSet
from fbrec.errors import ConfigError
from fbrec.evaluation import RankingEvaluator
from fbrec.evaluation.topk import topk_by_index
from fbrec.retrieval import masked_topk


def _case(seed: int, users: int = 300, items: int = 700, dim: int = 8):
    rng = np.random.default_rng(seed)
    q = rng.standard_normal((users, dim)).astype(np.float32)
    it = rng.standard_normal((items, dim)).astype(np.float32)
    it[::9] = it[4]                                  # tie blocks that cross the k-th place
    q[:4] = 0                                        # users for whom every item ties
    sizes = np.minimum(rng.zipf(1.3, users), items - 3)
    sizes[5] = items - 3                             # a user who has seen all but 3 items: fewer than k candidates
    sizes[6] = 0
    rows = np.repeat(np.arange(users), sizes)
    cols = np.concatenate([rng.choice(items, n, replace=False) for n in sizes])
    ex = sp.csr_matrix((np.ones(len(rows), np.float32), (rows, cols)), shape=(users, items))
    return q, it, ex


def _dense(q, it, ex, k):
    scores = torch.from_numpy(q) @ torch.from_numpy(it).T
    r, c = ex.nonzero()
    scores[r, c] = float("-inf")
    top = topk_by_index(scores, k)
    return torch.where(scores.gather(1, top) > float("-inf"), top, -1).numpy()


@pytest.mark.parametrize("seed", [0, 1])
def test_masked_topk_equals_the_dense_masked_ranking(seed):
    q, it, ex = _case(seed)
    got = masked_topk(q, it, 20, ex)
    want = _dense(q, it, ex, 20)
    assert (got[5] == -1).sum() == 17                # 3 candidates, then padding
    np.testing.assert_array_equal(got, want)


def test_masked_topk_leaves_faiss_thread_count_as_it_found_it():
    import faiss

    q, it, ex = _case(0, users=20)
    before = faiss.omp_get_max_threads()
    masked_topk(q, it, 5, ex, threads=1)
    assert faiss.omp_get_max_threads() == before


def test_update_top_gives_the_dense_path_metrics():
    q, it, ex = _case(2)
    rng = np.random.default_rng(3)
    truth = sp.csr_matrix((rng.random(ex.shape) < 0.02).astype(np.float32))
    es = EvalSet(ex, truth, {"head": np.arange(it.shape[0]) < 100})
    users = es.users
    dense = RankingEvaluator(es, (5, 20), auc=False)
    dense.update(users, torch.from_numpy(q[users]) @ torch.from_numpy(it).T)
    fast = RankingEvaluator(es, (5, 20), auc=False)
    fast.update_top(users, masked_topk(q[users], it, 20, ex[users]))
    assert fast.summary() == pytest.approx(dense.summary(), rel=1e-6)
    with pytest.raises(ConfigError, match="AUC needs every item's score"):
        RankingEvaluator(es, (5,)).update_top(users, np.zeros((len(users), 5), np.int64))
