"""Off-policy estimators on a synthetic logged policy whose true value is known."""

from __future__ import annotations

import numpy as np
import pytest

from fbrec.errors import DataValidationError
from fbrec.evaluation.ope import (
    DirectMethod,
    DoublyRobust,
    InverseProbabilityWeighting,
    LoggedFeedback,
    SelfNormalizedInverseProbabilityWeighting,
    bootstrap,
    off_policy_report,
)


def _softmax(x):
    e = np.exp(x - x.max(1, keepdims=True))
    return e / e.sum(1, keepdims=True)


def logged_bandit(n=20_000, k=5, seed=0):
    rng = np.random.default_rng(seed)
    q = 1 / (1 + np.exp(-rng.normal(0, 1.5, size=(n, k))))          # true click probability per action
    logging = _softmax(rng.normal(0, 1, size=(n, k)))                 # pi_0, unrelated to q
    target = _softmax(3 * q)                                           # a policy that prefers good actions
    action = np.array([rng.choice(k, p=p) for p in logging])
    reward = (rng.random(n) < q[np.arange(n), action]).astype(float)
    true_value = float((target * q).sum(1).mean())
    return LoggedFeedback(reward, action, logging[np.arange(n), action], target), q, true_value


@pytest.mark.parametrize("estimator", [InverseProbabilityWeighting, SelfNormalizedInverseProbabilityWeighting])
def test_weighting_estimators_recover_the_true_policy_value(estimator):
    data, _, truth = logged_bandit()
    est = estimator()
    se = np.std(data.weights * data.reward) / np.sqrt(len(data.reward))
    assert est.estimate_policy_value(data) == pytest.approx(truth, abs=3 * se)
    ci = est.estimate_interval(data, n_bootstrap=200)
    lo, hi = (v for k, v in ci.items() if k.endswith("CI"))
    assert lo <= truth <= hi


def test_doubly_robust_with_a_good_reward_model_has_a_tighter_interval():
    data, q, truth = logged_bandit()
    noisy_q = np.clip(q + np.random.default_rng(1).normal(0, 0.05, q.shape), 0, 1)
    dr_data = LoggedFeedback(data.reward, data.action, data.pscore, data.action_dist, noisy_q)
    report = off_policy_report(dr_data, n_bootstrap=200)
    widths = dict(zip(report["estimator"], (report["upper"] - report["lower"]).to_list(), strict=True))
    dr_value = report.filter(report["estimator"] == "dr")["value"][0]
    assert dr_value == pytest.approx(truth, abs=0.01)
    assert widths["dr"] < widths["ipw"]


def test_naive_average_reward_is_biased_where_the_estimators_are_not():
    data, _, truth = logged_bandit()
    assert abs(data.reward.mean() - truth) > 0.03   # the logged average measures pi_0, not pi


@pytest.mark.parametrize("change,pattern", [
    (dict(pscore=np.zeros(3)), r"pscore has 3 values outside \(0, 1\]"),
    (dict(action=np.array([0, 1, 7])), r"actions must lie in \[0, 2\)"),
    (dict(action_dist=np.full((3, 2), 0.7)), r"not probability distributions"),
    (dict(action_dist=np.full((3, 2, 2), 0.5)), r"action_dist has 3 dimensions and position is absent"),
    (dict(action_dist=np.full((3, 2, 2), 0.5), position=np.array([0, 1, 2])), r"positions must be 3 slots in \[0, 2\)"),
    (dict(estimated_rewards=np.ones((3, 3))), r"estimated_rewards has shape \(3, 3\), action_dist \(3, 2\)"),
])
def test_bad_logged_feedback_is_rejected(change, pattern):
    base = dict(reward=np.ones(3), action=np.array([0, 1, 0]), pscore=np.full(3, 0.5),
                action_dist=np.full((3, 2), 0.5))
    with pytest.raises(DataValidationError, match=pattern):
        LoggedFeedback(**{**base, **change})


def test_dr_without_a_reward_model_says_what_is_missing():
    data, _, _ = logged_bandit(n=100)
    with pytest.raises(DataValidationError, match="DM and DR need estimated_rewards"):
        DoublyRobust().estimate_policy_value(data)


def test_direct_method_is_as_good_as_its_reward_model_and_dr_corrects_a_biased_one():
    data, q, truth = logged_bandit()
    exact = LoggedFeedback(data.reward, data.action, data.pscore, data.action_dist, q)
    assert DirectMethod().estimate_policy_value(exact) == pytest.approx(truth, abs=1e-12)
    biased = LoggedFeedback(data.reward, data.action, data.pscore, data.action_dist, np.clip(q + 0.1, 0, 1))
    assert DirectMethod().estimate_policy_value(biased) - truth > 0.05
    assert DoublyRobust().estimate_policy_value(biased) == pytest.approx(truth, abs=0.02)


def test_slate_positions_use_each_rounds_slot_of_the_target_policy():
    # 3 slots: the target policy differs by slot; the logged slot picks which distribution weighs the round
    rng = np.random.default_rng(3)
    n, k, slots = 30_000, 4, 3
    q = rng.uniform(0.1, 0.9, size=(k, slots))                       # click rate per action and slot
    target = np.stack([np.eye(k)[s] * 0.7 + 0.3 / k for s in range(slots)], axis=-1)   # (K, L)
    position = rng.integers(0, slots, n)
    action = rng.integers(0, k, n)                                    # uniform logging: pscore 1/k
    reward = (rng.random(n) < q[action, position]).astype(float)
    data = LoggedFeedback(reward, action, np.full(n, 1 / k), np.broadcast_to(target, (n, k, slots)).copy(),
                          np.broadcast_to(q, (n, k, slots)).copy(), position)
    truth = float(np.mean([(target[:, p] * q[:, p]).sum() for p in position]))
    assert DirectMethod().estimate_policy_value(data) == pytest.approx(truth, abs=1e-12)
    assert InverseProbabilityWeighting().estimate_policy_value(data) == pytest.approx(truth, abs=0.02)
    assert DoublyRobust().estimate_policy_value(data) == pytest.approx(truth, abs=0.01)


def test_the_bootstrap_is_one_index_matrix_whatever_the_chunking():
    rng = np.random.default_rng(0)
    num, den = rng.random(500), rng.uniform(0.5, 2, 500)
    whole = bootstrap((num, den), n_bootstrap=300, seed=4, chunk_elements=1 << 30)
    chunked = bootstrap((num, den), n_bootstrap=300, seed=4, chunk_elements=7_000)   # 14 resamples per chunk
    idx = np.random.default_rng(4).integers(0, 500, (300, 500))
    np.testing.assert_allclose(whole, num[idx].sum(1) / den[idx].sum(1))
    np.testing.assert_allclose(chunked, whole)
