"""Exposure-probability (propensity) estimators, sklearn-style: `fit` on the training split only; learned
attributes end in `_`; `item_propensity_` covers every item of the catalogue, including items never clicked.

theta_i = P(item i is exposed to a user). Inverse-propensity losses and metrics divide by theta, so every value is
checked to lie in (0, 1] and to be finite (see `check_propensity`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from fbrec._checks import check_fraction, check_positive
from fbrec.errors import ConfigError, DataValidationError, UnknownNameError


def invalid_propensities(theta: np.ndarray) -> np.ndarray:
    """Boolean mask of the values that are not finite probabilities in (0, 1]."""
    theta = np.asarray(theta, dtype=np.float64)
    return ~np.isfinite(theta) | (theta <= 0) | (theta > 1)


def check_propensity(theta: np.ndarray, *, name: str = "propensity") -> np.ndarray:
    """Raise naming the offending items unless every value is finite and in (0, 1]."""
    theta = np.asarray(theta, dtype=np.float64)
    bad = invalid_propensities(theta)
    if bad.any():
        idx = np.flatnonzero(bad)
        examples = ", ".join(f"item {i}: {float(theta[i])!r}" for i in idx[:5])
        raise DataValidationError(f"{name} has {bad.sum()} values outside (0, 1] or not finite ({examples})",
                                  rule="propensities are probabilities of exposure in (0, 1]",
                                  fix="floor them (min_propensity=) or clip them (clip=) before use")
    return theta


@dataclass
class PopularityPropensity:
    """theta_i = max((n_i / N) ** eta, min_propensity), n_i = training clicks of item i, and N = max_j n_j
    (normalise="max", Saito et al. WSDM 2020's code: the most clicked item is always exposed) or N = the number of
    users (normalise="users", the item's click rate, Saito ICTIR 2020's Coat code): the max form is right in ranking,
    far too large in scale when exposure is rare (benchmarks/RESULTS.md, mnar-propensity-scale).

    normalise="calibrated" scales the users form so that the exposures explain the clicks: sum_i theta_i =
    clicks / (users x relevance_rate), relevance_rate being the share of relevant pairs in a small MCAR sample (a
    random-exposure survey such as Coat's or Yahoo! R3's test, or one you run); E[clicks] = sum_ui theta_i gamma_ui.

    eta = 0.5 follows both. Items with no clicks get the floor, not a NaN: counting with bincount(minlength=
    num_items) avoids the misaligned array that `np.unique` counts give (research note)."""

    eta: float = 0.5
    min_propensity: float = 1e-3
    normalise: str = "max"
    num_users: int | None = None
    relevance_rate: float | None = None
    item_counts_: np.ndarray = field(default=None, init=False, repr=False)
    item_propensity_: np.ndarray = field(default=None, init=False, repr=False)

    def __post_init__(self):
        check_positive("eta", self.eta, strict=False)
        check_fraction("min_propensity", self.min_propensity, high_open=False)
        if self.normalise not in ("max", "users", "calibrated"):
            raise UnknownNameError("propensity normalisation", self.normalise, ["max", "users", "calibrated"])
        if self.normalise == "calibrated":
            if self.relevance_rate is None:
                raise ConfigError("normalise='calibrated' without relevance_rate",
                                  rule="the scale is fitted to the relevant share of an MCAR sample",
                                  fix="pass relevance_rate= (relevant pairs / pairs in your random-exposure sample)")
            check_fraction("relevance_rate", self.relevance_rate, high_open=False)

    def fit(self, item_index: np.ndarray, num_items: int) -> PopularityPropensity:
        counts = np.bincount(np.asarray(item_index, dtype=np.int64), minlength=num_items).astype(np.float64)
        if counts.max() == 0:
            raise DataValidationError("no training clicks to estimate propensities from",
                                      rule="fit needs at least one click", fix="check the training split")
        self.item_counts_ = counts
        if self.normalise != "max" and not self.num_users:
            raise ConfigError(f"normalise={self.normalise!r} without num_users",
                              rule="the click rate divides by the users", fix="pass num_users= (FeedbackDataModule does)")
        scale = counts.max() if self.normalise == "max" else float(self.num_users)
        raw = (counts / scale) ** self.eta
        if self.normalise == "calibrated":
            raw = raw * counts.sum() / (self.num_users * self.relevance_rate * raw.sum())
        self.item_propensity_ = check_propensity(np.clip(raw, self.min_propensity, 1.0))
        return self


@dataclass
class PositionBasedPropensity:
    """From a log of impressions with positions (position-based click model, Richardson et al. / Joachims et al.):

    theta_ui = P(item i shown to u) * P(examined | position). The examination curve is the click-through rate at
    each position relative to the top slot (assumes placement is not chosen by relevance within a slate, as in a
    randomised or popularity-driven slate); P(shown) is the share of users the item was shown to."""

    min_propensity: float = 1e-3
    examination_: np.ndarray = field(default=None, init=False, repr=False)
    item_exposure_: np.ndarray = field(default=None, init=False, repr=False)
    item_propensity_: np.ndarray = field(default=None, init=False, repr=False)

    def fit(self, user_index: np.ndarray, item_index: np.ndarray, position: np.ndarray, clicked: np.ndarray,
            num_users: int, num_items: int) -> PositionBasedPropensity:
        position = np.asarray(position, dtype=np.int64)
        if position.min() < 0:
            raise DataValidationError("positions must be >= 0", rule="0 is the top slot", fix="re-rank positions")
        shown = np.bincount(position, minlength=position.max() + 1).astype(np.float64)
        clicks = np.bincount(position, weights=np.asarray(clicked, dtype=np.float64), minlength=len(shown))
        ctr = np.divide(clicks, shown, out=np.zeros_like(clicks), where=shown > 0)
        if ctr[0] <= 0:
            raise DataValidationError("no clicks at the top position", rule="the examination curve is relative to "
                                      "position 0", fix="check that positions start at 0 and clicks are logged")
        self.examination_ = np.clip(ctr / ctr[0], self.min_propensity, 1.0)
        pairs = np.unique(np.asarray(user_index, np.int64) * num_items + np.asarray(item_index, np.int64))
        self.item_exposure_ = np.bincount(pairs % num_items, minlength=num_items) / num_users
        # marginal over positions where the item was shown, weighted by how often it was shown there
        exam_sum = np.bincount(item_index, weights=self.examination_[position], minlength=num_items)
        shows = np.bincount(item_index, minlength=num_items)
        mean_exam = np.divide(exam_sum, shows, out=np.zeros(num_items), where=shows > 0)
        self.item_propensity_ = check_propensity(np.clip(self.item_exposure_ * mean_exam, self.min_propensity, 1.0))
        return self
