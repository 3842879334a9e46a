"""Ranking metrics on hand-computed cases; batching, ties, skipped users, slices, report."""

from __future__ import annotations

import math

import numpy as np
import polars as pl
import pytest
import scipy.sparse as sp
import torch

from fbrec.errors import ConfigError
from fbrec.evaluation import EvalSet, RankingEvaluator, embedding_scorer, evaluate_scores, report


def _csr(rows, n_users=1, n_items=5):
    m = sp.lil_matrix((n_users, n_items), dtype=np.float32)
    for u, items in enumerate(rows):
        for i in items:
            m[u, i] = 1
    return m.tocsr()


def _one_user(truth, exclude=(0,), slices=None, ks=(2, 3)):
    es = EvalSet(_csr([exclude]), _csr([truth]), slices or {})
    ev = RankingEvaluator(es, ks)
    ev.update(np.array([0]), torch.tensor([[0.9, 0.8, 0.7, 0.6, 0.5]]))
    return ev.summary()


def test_metrics_match_hand_computation():
    # candidates ranked 1, 2, 3, 4 (item 0 excluded); relevant {1, 3} -> hits 1, 0, 1, 0
    s = _one_user(truth=(1, 3))
    idcg2 = 1 + 1 / math.log2(3)
    assert s["hit_rate_at_2"] == 1 and s["precision_at_2"] == 0.5 and s["recall_at_2"] == 0.5
    assert s["ndcg_at_2"] == pytest.approx(1 / idcg2)
    assert s["map_at_2"] == pytest.approx(0.5)
    assert s["recall_at_3"] == 1 and s["precision_at_3"] == pytest.approx(2 / 3)
    assert s["ndcg_at_3"] == pytest.approx((1 + 0.5) / idcg2)
    assert s["map_at_3"] == pytest.approx((1 + 2 / 3) / 2)
    assert s["mrr_at_2"] == 1
    assert s["auc"] == pytest.approx(0.75)   # pos 0.8 beats 0.7, 0.5; pos 0.6 beats 0.5


def test_first_hit_deeper_in_the_list():
    s = _one_user(truth=(2,))                # ranks: 1 -> miss, 2 -> hit
    assert s["mrr_at_2"] == 0.5 and s["ndcg_at_2"] == pytest.approx(1 / math.log2(3))
    assert s["map_at_2"] == pytest.approx(0.5)


def test_excluded_items_are_never_ranked_and_never_count_as_relevant():
    s = _one_user(truth=(0, 1))              # item 0 is excluded (seen in training)
    assert s["recall_at_2"] == 1.0 and s["precision_at_2"] == 0.5


def test_tied_scores_give_auc_one_half():
    es = EvalSet(_csr([()]), _csr([(1,)]))
    ev = RankingEvaluator(es, (1,))
    ev.update(np.array([0]), torch.zeros(1, 5))
    assert ev.summary()["auc"] == pytest.approx(0.5)


def test_users_without_test_items_are_skipped():
    es = EvalSet(_csr([(0,), (0,)], 2), _csr([(1,), ()], 2))
    ev = evaluate_scores(lambda u: torch.tensor([[0.9, 0.8, 0.7, 0.6, 0.5]]).repeat(len(u), 1), es, (2,))
    assert ev.summary()["num_users"] == 1.0


def test_slice_restricts_relevant_items_but_ranks_the_whole_catalogue():
    tail = np.array([False, False, False, True, True])
    s = _one_user(truth=(1, 3), slices={"tail": tail})
    assert s["tail/recall_at_3"] == 1.0 and s["tail/ndcg_at_3"] == pytest.approx(0.5)
    assert s["tail/recall_at_2"] == 0.0


def test_batching_does_not_change_results():
    rng = np.random.default_rng(0)
    U, I = 60, 40
    truth = sp.random(U, I, density=0.1, random_state=1, format="csr")
    exclude = sp.random(U, I, density=0.2, random_state=2, format="csr")
    es = EvalSet(exclude, truth)
    score = embedding_scorer(rng.normal(size=(U, 8)), rng.normal(size=(I, 8)))
    a = evaluate_scores(score, es, (5, 10), batch_size=1).summary()
    b = evaluate_scores(score, es, (5, 10), batch_size=64).summary()
    assert a == pytest.approx(b)


def test_k_larger_than_the_catalogue_is_rejected():
    with pytest.raises(ConfigError, match="exceeds the catalogue of 5 items"):
        RankingEvaluator(EvalSet(_csr([()]), _csr([(1,)])), (10,))


def test_report_has_confidence_intervals_and_activity_slices():
    rng = np.random.default_rng(1)
    U, I = 90, 30
    es = EvalSet(sp.random(U, I, density=0.2, random_state=3, format="csr"),
                 sp.random(U, I, density=0.1, random_state=4, format="csr"),
                 user_activity=rng.integers(1, 50, size=U))
    ev = evaluate_scores(embedding_scorer(rng.normal(size=(U, 4)), rng.normal(size=(I, 4))), es, (5,))
    rep = report(ev.frame())
    assert {"all", "users_q1", "users_q3"} <= set(rep["slice"].to_list())
    row = rep.filter((rep["slice"] == "all") & (rep["metric"] == "ndcg_at_5"))
    assert row["ci95"][0] > 0 and row["num_users"][0] == ev.summary()["num_users"]


def test_snips_metrics_weight_hits_by_inverse_propensity():
    # relevant {1, 3}; hit at rank 1 is item 1. Weights: item 1 -> 1, item 3 -> 3: recall@1 = 1 / (1 + 3)
    es = EvalSet(_csr([(0,)]), _csr([(1, 3)]), item_weights=np.array([1.0, 1.0, 1.0, 3.0, 1.0]))
    ev = RankingEvaluator(es, (1, 3))
    ev.update(np.array([0]), torch.tensor([[0.9, 0.8, 0.7, 0.6, 0.5]]))
    s = ev.summary()
    assert s["snips/recall_at_1"] == pytest.approx(0.25) and s["recall_at_1"] == 0.5
    assert s["snips/recall_at_3"] == pytest.approx(1.0)
    # DCG@3: hits' = 1 * 2/4 at rank 1 and 3 * 2/4 at rank 3
    assert s["snips/dcg_at_3"] == pytest.approx(0.5 + 1.5 / 2)
    # IPS: raw weights, recall@3 = (1 + 3) / |R| = 2
    assert s["ips/recall_at_3"] == pytest.approx(2.0) and s["ips/dcg_at_1"] == pytest.approx(1.0)


def test_snips_equals_plain_metrics_under_uniform_propensity():
    es = EvalSet(_csr([(0,)]), _csr([(1, 3)]), item_weights=np.full(5, 4.0))
    ev = RankingEvaluator(es, (1, 3))
    ev.update(np.array([0]), torch.tensor([[0.9, 0.8, 0.7, 0.6, 0.5]]))
    s = ev.summary()
    for m in ("recall_at_3", "dcg_at_3", "ndcg_at_3", "precision_at_1"):
        assert s[f"snips/{m}"] == pytest.approx(s[m])


def test_fully_tied_scores_rank_candidates_by_item_index_whatever_other_k_are_asked():
    # 40 items, all scores equal; item 0 excluded; relevant item 11 is the 11th candidate (items 1..11)
    n = 40
    es = EvalSet(_csr([[0]], n_items=n), _csr([[11]], n_items=n), {})
    results = {}
    for ks in [(10,), (11,), (10, 20), (10, 11, 39), (5, 10, 20, 39)]:
        ev = RankingEvaluator(es, ks)
        ev.update(np.array([0]), torch.zeros(1, n))
        results[ks] = ev.summary()
    assert {r["hit_rate_at_10"] for ks, r in results.items() if 10 in ks} == {0.0}
    assert results[(11,)]["hit_rate_at_11"] == 1.0
    assert results[(10, 11, 39)]["mrr_at_39"] == pytest.approx(1 / 11)
    assert results[(10, 11, 39)]["auc"] == pytest.approx(0.5), "ties count 1/2 in AUC"


@pytest.mark.parametrize("seed", range(5))
def test_ties_break_by_item_index_like_a_stable_sort(seed):
    from fbrec.evaluation.topk import topk_by_index

    g = torch.Generator().manual_seed(seed)
    scores = torch.randint(0, 3, (16, 50), generator=g).float()   # many ties, some crossing every k
    scores[0] = 0.0
    scores[1, :5] = float("-inf")
    for k in (1, 3, 10, 25, 50):
        reference = torch.sort(-scores, dim=1, stable=True).indices[:, :k]
        assert torch.equal(topk_by_index(scores, k), reference), k
        assert torch.equal(topk_by_index(scores, 50)[:, :k], reference), "the first k of a longer list agree"


def _reference_auc(scores, exclude, truth, positives):
    """Brute force: mean over (positive, negative) pairs of [s_p > s_n] + [s_p == s_n] / 2."""
    out = []
    for u in range(scores.shape[0]):
        pos = [i for i in positives[u]]
        neg = [i for i in range(scores.shape[1]) if i not in exclude[u] and i not in truth[u]]
        if not pos or not neg:
            out.append(np.nan)
            continue
        wins = [(scores[u, p] > scores[u, n]) + 0.5 * (scores[u, p] == scores[u, n]) for p in pos for n in neg]
        out.append(float(np.mean(wins)))
    return np.array(out)


@pytest.mark.parametrize("seed", range(4))
def test_auc_counts_each_positive_against_the_negatives_like_brute_force(seed):
    rng = np.random.default_rng(seed)
    U, n = 12, 30
    scores = rng.integers(0, 4, (U, n)).astype(np.float32)                # heavy ties
    exclude = [set(rng.choice(n, rng.integers(0, 8), replace=False).tolist()) for _ in range(U)]
    truth = [set(rng.choice([i for i in range(n) if i not in exclude[u]], rng.integers(1, 6), replace=False).tolist())
             for u in range(U)]
    head = np.zeros(n, dtype=bool)
    head[: n // 3] = True
    es = EvalSet(_csr([sorted(e) for e in exclude], U, n), _csr([sorted(t) for t in truth], U, n),
                 {"head": head, "tail": ~head})
    ev = RankingEvaluator(es, (5,))
    ev.update(np.arange(U), torch.from_numpy(scores))
    frame = ev.frame()
    for name, keep in (("all", lambda i: True), ("head", lambda i: head[i]), ("tail", lambda i: not head[i])):
        positives = [{i for i in truth[u] if keep(i)} for u in range(U)]
        expected = _reference_auc(scores, exclude, truth, positives)
        got = frame.filter(pl.col("slice") == name).sort("user")
        users = got["user"].to_numpy()
        np.testing.assert_allclose(got["auc"].to_numpy(), expected[users], rtol=1e-6, err_msg=name)
        assert set(users) == {u for u in range(U) if positives[u]}


@pytest.mark.parametrize("seed", range(3))
def test_auc_of_rows_with_many_positives_matches_brute_force_in_any_chunking(seed):
    """One pass per row (binary search among the row's sorted positives), row chunks of any size: the brute-force
    value, with ties, excluded items and rows holding most of the catalogue as positives."""
    from fbrec.evaluation.auc import _auc

    rng = np.random.default_rng(seed)
    B, n = 9, 40
    scores = torch.from_numpy(rng.integers(0, 6, (B, n)).astype(np.float32))
    exclude = [set(rng.choice(n, rng.integers(0, 6), replace=False).tolist()) for _ in range(B)]
    truth = [sorted(rng.choice([i for i in range(n) if i not in exclude[u]], rng.integers(1, 30), replace=False)
                    .tolist()) for u in range(B)]
    for u in range(B):
        scores[u, sorted(exclude[u])] = float("-inf")
    tr_r = torch.tensor([u for u in range(B) for _ in truth[u]])
    tr_c = torch.tensor([i for u in range(B) for i in truth[u]])
    positive = torch.from_numpy(rng.random(len(tr_r)) < 0.7)   # a slice: the other targets are not negatives
    positives = [set() for _ in range(B)]
    for r, c, p in zip(tr_r.tolist(), tr_c.tolist(), positive.tolist(), strict=True):
        if p:
            positives[r].add(c)
    expected = _reference_auc(scores.numpy(), exclude, [set(t) for t in truth], positives)
    n_excluded = torch.tensor([len(e) for e in exclude])
    for budget in (1, n * 2, 1 << 24):
        got = _auc(scores, tr_r, tr_c, positive, n_excluded, budget=budget).numpy()
        np.testing.assert_allclose(got, expected, rtol=1e-6, err_msg=f"budget {budget}")


# --- session metrics, worked by hand ------------------------------------------------------------------------------
def _session(*rounds):
    from fbrec.evaluation.session import Round

    return [Round.of(slate, clicked) for slate, clicked in rounds]


@pytest.mark.parametrize("rounds, expected", [
    # a clicked in round 2, skipped at slot 1 of round 1: click enhancement counts it there (position 0, decay 1);
    # b at position 1 (decay 0.9): U = 1.9; the ideal shows a, b at positions 0, 1: 1.9 -> NUM 1
    ([(("a", "b", "c"), {"b"}), (("a", "d", "e"), {"a"})], 1.0),
    # the only relevant item is read third: 0.8 / 1
    ([(("c", "d", "b"), {"b"})], 0.8),
    # b first appears in round 2 after 3 items and one reformulation: position 4 -> 0.6 / 1
    ([(("c", "d", "e"), set()), (("b", "f", "g"), {"b"})], 0.6),
    # nothing clicked: no relevance, NUM 0
    ([(("c", "d"), set())], 0.0),
])
def test_num_on_hand_worked_sessions(rounds, expected):
    from fbrec.evaluation.session import num

    assert num(_session(*rounds), patience=10, reformulation_cost=1) == pytest.approx(expected)


def test_num_without_click_enhancement_counts_an_item_only_where_it_was_clicked_and_sdcg_by_hand():
    from fbrec.evaluation.session import num, session_dcg, u_measure

    s = _session((("a", "b", "c"), {"b"}), (("a", "d", "e"), {"a"}))
    # with the gains given per appearance (no enhancement), a earns at its round-2 position 4: 0.9 + 0.6 = 1.5
    plain = 0.9 + 0.6
    assert u_measure(s, {"a": 1, "b": 1}, patience=10) == pytest.approx(1.9)
    assert plain / 1.9 < num(s, patience=10)
    # sDCG: b at round 1 slot 2 -> 1 / log2(3); a at round 2 slot 1 -> 1 / ((1 + log_4 2) * 1) = 1 / 1.5
    assert session_dcg(s) == pytest.approx(1 / math.log2(3) + 1 / 1.5)


def test_a_click_outside_the_slate_is_refused():
    from fbrec.errors import ConfigError
    from fbrec.evaluation.session import Round

    with pytest.raises(ConfigError, match=r"clicked item\(s\) \['z'\] not in the round's slate"):
        Round.of(["a", "b"], {"z"})


def _saito_reference(relevance, scores, k, weights=None):
    """Saito et al.'s per-user DCG/Recall/MAP@k as their papers' code defines them, written as plain loops: rank
    by score, discount 1 at rank 1 and 1/log2(r) after, divided by the (weighted) relevant count; 0 without one."""
    order = np.argsort(-scores, kind="stable")
    rel = relevance[order].astype(float)
    w = np.ones_like(rel) if weights is None else weights[order]
    if rel.sum() == 0:
        return 0.0, 0.0, 0.0
    k = min(k, len(rel))
    norm = (w * rel).sum()
    dcg = sum(rel[r] * w[r] / (1.0 if r == 0 else np.log2(r + 1)) for r in range(k)) / norm
    recall = sum(rel[r] * w[r] for r in range(k)) / norm
    ap = sum((rel[:r + 1] * w[:r + 1]).sum() / (r + 1) for r in range(k) if rel[r]) / norm
    return dcg, recall, ap


@pytest.mark.parametrize("weighted", [False, True])
def test_saito_protocol_metrics_equal_the_papers_definition_on_a_fixed_score_matrix(weighted):
    # 40 users, each ranks its own 16 candidates (the MCAR protocol); some users have no relevant candidate
    rng = np.random.default_rng(7)
    U, I, C = 40, 60, 16
    cand = np.zeros((U, I), bool)
    for u in range(U):
        cand[u, rng.choice(I, C, replace=False)] = True
    relevant = cand & (rng.random((U, I)) < 0.2)
    relevant[:5] = False                                                   # five users without a relevant item
    scores = rng.normal(size=(U, I))
    theta = rng.uniform(0.05, 1.0, size=(U, I))                           # pair propensities
    es = EvalSet(sp.csr_matrix(~cand), sp.csr_matrix(relevant), saito=True, protocol_users=U,
                 item_weights=1 / theta if weighted else None)
    ev = evaluate_scores(lambda users: torch.as_tensor(scores[users], dtype=torch.float32), es, (1, 3, 5), auc=False)
    s = ev.summary()
    prefix = "snips/" if weighted else ""
    for k in (1, 3, 5):
        ref = np.array([_saito_reference(relevant[u, cand[u]], scores[u, cand[u]], k,
                                         (1 / theta[u, cand[u]]) if weighted else None) for u in range(U)])
        for j, name in enumerate(("saito_dcg", "saito_recall", "saito_map")):
            assert s[f"{prefix}{name}_at_{k}"] == pytest.approx(ref[:, j].mean(), rel=1e-5), (name, k)
    # the report pads the same zeros: its mean is the summary's, over all 40 users
    rep = report(ev.frame(), protocol_users=U)
    row = rep.filter((rep["slice"] == ("snips" if weighted else "all")) & (rep["metric"] == "saito_dcg_at_5"))
    assert row["value"][0] == pytest.approx(s[f"{prefix}saito_dcg_at_5"], rel=1e-6) and row["num_users"][0] == U


def test_saito_dcg_by_hand_and_absent_unless_asked():
    # candidates 0..4; relevant {1, 3}; ranking 0, 1, 2, 3, 4 -> hits at ranks 2 and 4
    es = EvalSet(_csr([()]), _csr([(1, 3)]), saito=True, protocol_users=2)   # a second user had no relevant item
    ev = RankingEvaluator(es, (5,), auc=False)
    ev.update(np.array([0]), torch.tensor([[0.9, 0.8, 0.7, 0.6, 0.5]]))
    s = ev.summary()
    assert s["saito_dcg_at_5"] == pytest.approx((1 / 1 + 1 / 2) / 2 / 2)        # log2(2) = 1, log2(4) = 2
    assert s["saito_map_at_5"] == pytest.approx((1 / 2 + 2 / 4) / 2 / 2)
    assert s["dcg_at_5"] == pytest.approx(1 / np.log2(3) + 1 / np.log2(5))       # the standard one: unchanged
    plain = RankingEvaluator(EvalSet(_csr([()]), _csr([(1, 3)])), (5,), auc=False)
    plain.update(np.array([0]), torch.tensor([[0.9, 0.8, 0.7, 0.6, 0.5]]))
    assert not any(k.startswith("saito") for k in plain.summary())
