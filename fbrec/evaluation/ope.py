"""Off-policy estimators of a recommendation policy's value from logged feedback (zr-obp's conventions).

Logged rounds i = 1..n: the logging policy pi_0 showed action a_i (at slot p_i of a slate, when there are
positions) with probability pscore_i and observed reward r_i. A target policy pi puts probability
action_dist[i, a] (or action_dist[i, a, p] per slot) on each action. With w_i = pi(a_i | x_i, p_i) / pscore_i and
a reward model q(x, a) (`estimated_rewards`, (n, K) or (n, K, L)):
    DM    V = mean_i sum_a pi(a | x_i, p_i) q(x_i, a, p_i)               (no weights: biased by q, low variance)
    IPS   V = mean_i w_i r_i                                            (unbiased when pscore > 0 wherever pi > 0)
    SNIPS V = sum_i w_i r_i / sum_i w_i                                 (self-normalised: bounded, slightly biased)
    DR    V = mean_i [ DM_i + w_i (r_i - q(x_i, a_i, p_i)) ]            (unbiased if either pscore or q is right)
Every estimator is a mean (SNIPS a ratio of two means) of per-round terms computed once, so a percentile bootstrap
over rounds is one matrix of resample indices per chunk gathered from those terms: no per-resample copy of the data.
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
    pscore: np.ndarray         # (n,) logging probability of the logged action (at its slot), in (0, 1]
    action_dist: np.ndarray    # (n, K) target policy probabilities, or (n, K, L) per slot of a slate
    estimated_rewards: np.ndarray | None = None   # q(x, a), action_dist's shape: for DM and DR
    position: np.ndarray | None = None            # (n,) int in [0, L): the logged slot, with a 3-d action_dist

    def __post_init__(self):
        n, k = self.action_dist.shape[:2]
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
        if self.action_dist.ndim not in (2, 3) or (self.action_dist.ndim == 3) != (self.position is not None):
            raise DataValidationError(f"action_dist has {self.action_dist.ndim} dimensions and position is "
                                      f"{'given' if self.position is not None else 'absent'}",
                                      rule="(n, K) without positions, or (n, K, L) with the logged slot per round",
                                      fix="pass position= with a per-slot action_dist, or a 2-d action_dist")
        if self.position is not None:
            slots = self.action_dist.shape[2]
            if len(self.position) != n or self.position.min() < 0 or self.position.max() >= slots:
                raise DataValidationError(f"positions must be {n} slots in [0, {slots})",
                                          rule="position indexes action_dist's last axis", fix="remap the positions")
        if not np.allclose(self.action_dist.sum(1), 1.0, atol=1e-6) or (self.action_dist < 0).any():
            raise DataValidationError("action_dist rows are not probability distributions",
                                      rule="each row (per slot) is >= 0 and sums to 1 over actions",
                                      fix="normalise the target policy")
        if self.estimated_rewards is not None and self.estimated_rewards.shape != self.action_dist.shape:
            raise DataValidationError(f"estimated_rewards has shape {self.estimated_rewards.shape}, action_dist "
                                      f"{self.action_dist.shape}", rule="one reward estimate per round and action "
                                      "(and slot)", fix="predict for all actions")

    def _at_slot(self, x: np.ndarray) -> np.ndarray:
        """(n, K) view of an (n, K) or (n, K, L) array at each round's logged slot."""
        return x if self.position is None else x[np.arange(len(self.action)), :, self.position]

    @property
    def weights(self) -> np.ndarray:
        return self._at_slot(self.action_dist)[np.arange(len(self.action)), self.action] / self.pscore

    def direct(self) -> np.ndarray:
        """(n,) sum_a pi(a | x_i, p_i) q(x_i, a, p_i)."""
        return (self._at_slot(self.action_dist) * self._q()).sum(1)

    def q_logged(self) -> np.ndarray:
        return self._q()[np.arange(len(self.action)), self.action]

    def _q(self) -> np.ndarray:
        if self.estimated_rewards is None:
            raise DataValidationError("DM and DR need estimated_rewards (a reward model's q(x, a))",
                                      rule="the direct-method term uses q", fix="pass estimated_rewards=")
        return self._at_slot(self.estimated_rewards)


class _Estimator:
    """value = mean(numerator terms) / mean(denominator terms); the denominator is all ones except for SNIPS."""

    estimator_name = ""

    def terms(self, data: LoggedFeedback) -> tuple[np.ndarray, np.ndarray | None]:
        raise NotImplementedError

    def estimate_policy_value(self, data: LoggedFeedback) -> float:
        num, den = self.terms(data)
        return float(num.mean() if den is None else num.sum() / den.sum())

    def estimate_interval(self, data: LoggedFeedback, *, n_bootstrap: int = 1000, alpha: float = 0.05,
                          seed: int = 0) -> dict[str, float]:
        boots = bootstrap(self.terms(data), n_bootstrap=n_bootstrap, seed=seed)
        return {"mean": float(boots.mean()), f"{100 * alpha / 2:g}% CI": float(np.quantile(boots, alpha / 2)),
                f"{100 * (1 - alpha / 2):g}% CI": float(np.quantile(boots, 1 - alpha / 2))}


def bootstrap(terms: tuple[np.ndarray, np.ndarray | None], *, n_bootstrap: int, seed: int = 0,
              chunk_elements: int = 1 << 24) -> np.ndarray:
    """(n_bootstrap,) resampled values of mean(num) / mean(den): resample index matrices in chunks of at most
    `chunk_elements` indices (memory bounded), each gathered from the precomputed per-round terms."""
    num, den = terms
    n = len(num)
    rng = np.random.default_rng(seed)
    out = np.empty(n_bootstrap)
    step = max(1, chunk_elements // max(1, n))
    for start in range(0, n_bootstrap, step):
        idx = rng.integers(0, n, (min(step, n_bootstrap - start), n))
        values = num[idx].sum(1)
        out[start:start + len(idx)] = values / n if den is None else values / den[idx].sum(1)
    return out


class DirectMethod(_Estimator):
    estimator_name = "dm"

    def terms(self, data):
        return data.direct(), None


class InverseProbabilityWeighting(_Estimator):
    estimator_name = "ipw"

    def terms(self, data):
        return data.weights * data.reward, None


class SelfNormalizedInverseProbabilityWeighting(_Estimator):
    estimator_name = "snipw"

    def terms(self, data):
        w = data.weights
        return w * data.reward, w


class DoublyRobust(_Estimator):
    estimator_name = "dr"

    def terms(self, data):
        return data.direct() + data.weights * (data.reward - data.q_logged()), None


ESTIMATORS = (DirectMethod, InverseProbabilityWeighting, SelfNormalizedInverseProbabilityWeighting, DoublyRobust)


def off_policy_report(data: LoggedFeedback, *, n_bootstrap: int = 1000, alpha: float = 0.05,
                      seed: int = 0) -> pl.DataFrame:
    """One row per estimator: value and bootstrap interval (DM and DR only when a reward model is given)."""
    rows = []
    for cls in ESTIMATORS:
        if cls in (DirectMethod, DoublyRobust) and data.estimated_rewards is None:
            continue
        est = cls()
        ci = est.estimate_interval(data, n_bootstrap=n_bootstrap, alpha=alpha, seed=seed)
        lo, hi = (v for k, v in ci.items() if k.endswith("CI"))
        rows.append({"estimator": est.estimator_name, "value": est.estimate_policy_value(data), "lower": lo,
                     "upper": hi})
    return pl.DataFrame(rows)
