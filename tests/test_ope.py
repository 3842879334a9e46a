"""Off-policy estimators on a synthetic logged policy whose true value is known."""

from __future__ import annotations

import numpy as np
import pytest

from fbrec.errors import DataValidationError
from fbrec.evaluation.ope import (
    DoublyRobust,
    InverseProbabilityWeighting,
    LoggedFeedback,
    SelfNormalizedInverseProbabilityWeighting,
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
])
def test_bad_logged_feedback_is_rejected(change, pattern):
    base = dict(reward=np.ones(3), action=np.array([0, 1, 0]), pscore=np.full(3, 0.5),
                action_dist=np.full((3, 2), 0.5))
    with pytest.raises(DataValidationError, match=pattern):
        LoggedFeedback(**{**base, **change})


def test_dr_without_a_reward_model_says_what_is_missing():
    data, _, _ = logged_bandit(n=100)
    with pytest.raises(DataValidationError, match="DR needs estimated_rewards"):
        DoublyRobust().estimate_policy_value(data)
