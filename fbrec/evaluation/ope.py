"""Off-policy estimators of a recommendation policy's value from logged feedback (zr-obp's conventions).

Logged rounds i = 1..n: the logging policy pi_0 showed action a_i with probability pscore_i and observed reward
r_i. A target policy pi puts probability action_dist[i, a] on each action. With w_i = pi(a_i | x_i) / pscore_i:
    IPS   V = mean_i w_i r_i                                     (unbiased when pscore > 0 wherever pi > 0)
    SNIPS V = sum_i w_i r_i / sum_i w_i                          (self-normalised: bounded, slightly biased)
    DR    V = mean_i [ sum_a pi(a|x_i) q(x_i, a) + w_i (r_i - q(x_i, a_i)) ]   (q: a reward model)
Confidence intervals are percentile bootstrap intervals over rounds.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import polars as pl

from fbrec.errors import DataValidationError


@dataclass(frozen=True)
class LoggedFeedback:
    reward: np.ndarray         # (n,)
    action: np.ndarray         # (n,) int in [0, K)
    pscore: np.ndarray         # (n,) logging probability of the logged action, in (0, 1]
    action_dist: np.ndarray    # (n, K) target policy probabilities
    estimated_rewards: np.ndarray | None = None   # (n, K) reward model q(x, a), for DR

    def __post_init__(self):
        n, k = self.action_dist.shape
        if not (len(self.reward) == len(self.action) == len(self.pscore) == n):
            raise DataValidationError("reward, action, pscore and action_dist differ in length",
                                      rule="one entry per logged round", fix="align the arrays")
        bad = ~np.isfinite(self.pscore) | (self.pscore <= 0) | (self.pscore > 1)
        if bad.any():
            raise DataValidationError(f"pscore has {bad.sum()} values outside (0, 1] (rounds "
                                      f"{np.flatnonzero(bad)[:5].tolist()})", rule="logging propensities are "
                                      "probabilities > 0", fix="log the propensity of every shown action")
        if self.action.min() < 0 or self.action.max() >= k:
            raise DataValidationError(f"actions must lie in [0, {k})", rule="action indexes action_dist's columns",
                                      fix="remap the actions")
        if not np.allclose(self.action_dist.sum(1), 1.0, atol=1e-6) or (self.action_dist < 0).any():
            raise DataValidationError("action_dist rows are not probability distributions",
                                      rule="each row is >= 0 and sums to 1", fix="normalise the target policy")
        if self.estimated_rewards is not None and self.estimated_rewards.shape != self.action_dist.shape:
            raise DataValidationError("estimated_rewards must have action_dist's shape (n, K)",
                                      rule="one reward estimate per round and action", fix="predict for all actions")

    @property
    def weights(self) -> np.ndarray:
        return self.action_dist[np.arange(len(self.action)), self.action] / self.pscore


class _Estimator:
    estimator_name = ""

    def _value(self, data: LoggedFeedback, idx: np.ndarray) -> float:
        raise NotImplementedError

    def estimate_policy_value(self, data: LoggedFeedback) -> float:
        return self._value(data, np.arange(len(data.reward)))

    def estimate_interval(self, data: LoggedFeedback, *, n_bootstrap: int = 1000, alpha: float = 0.05,
                          seed: int = 0) -> dict[str, float]:
        rng = np.random.default_rng(seed)
        n = len(data.reward)
        boots = np.array([self._value(data, rng.integers(0, n, n)) for _ in range(n_bootstrap)])
        return {"mean": float(boots.mean()), f"{100 * alpha / 2:g}% CI": float(np.quantile(boots, alpha / 2)),
                f"{100 * (1 - alpha / 2):g}% CI": float(np.quantile(boots, 1 - alpha / 2))}


class InverseProbabilityWeighting(_Estimator):
    estimator_name = "ipw"

    def _value(self, data, idx):
        return float(np.mean(data.weights[idx] * data.reward[idx]))


class SelfNormalizedInverseProbabilityWeighting(_Estimator):
    estimator_name = "snipw"

    def _value(self, data, idx):
        w = data.weights[idx]
        return float(np.sum(w * data.reward[idx]) / np.sum(w))


class DoublyRobust(_Estimator):
    estimator_name = "dr"

    def _value(self, data, idx):
        if data.estimated_rewards is None:
            raise DataValidationError("DR needs estimated_rewards (a reward model's q(x, a))",
                                      rule="the direct-method term uses q", fix="pass estimated_rewards=")
        q = data.estimated_rewards[idx]
        direct = (data.action_dist[idx] * q).sum(1)
        q_logged = q[np.arange(len(idx)), data.action[idx]]
        return float(np.mean(direct + data.weights[idx] * (data.reward[idx] - q_logged)))


ESTIMATORS = (InverseProbabilityWeighting, SelfNormalizedInverseProbabilityWeighting, DoublyRobust)


def off_policy_report(data: LoggedFeedback, *, n_bootstrap: int = 1000, alpha: float = 0.05,
                      seed: int = 0) -> pl.DataFrame:
    """One row per estimator: value and bootstrap interval (DR only when a reward model is given)."""
    rows = []
    for cls in ESTIMATORS:
        if cls is DoublyRobust and data.estimated_rewards is None:
            continue
        est = cls()
        ci = est.estimate_interval(data, n_bootstrap=n_bootstrap, alpha=alpha, seed=seed)
        lo, hi = (v for k, v in ci.items() if k.endswith("CI"))
        rows.append({"estimator": est.estimator_name, "value": est.estimate_policy_value(data), "lower": lo,
                     "upper": hi})
    return pl.DataFrame(rows)
