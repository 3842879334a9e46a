"""Propensity estimators: fitted on training clicks, every item covered, every value validated."""

from __future__ import annotations

import numpy as np
import pytest

from fbrec.errors import ConfigError, DataValidationError
from fbrec.propensity import PopularityPropensity, PositionBasedPropensity, check_propensity


def test_popularity_power_law_matches_the_formula_and_covers_unclicked_items():
    est = PopularityPropensity(eta=0.5, min_propensity=0.01).fit(np.array([0, 0, 0, 0, 1, 2, 2]), num_items=5)
    np.testing.assert_allclose(est.item_propensity_, [1.0, 0.5, np.sqrt(0.5), 0.01, 0.01])
    assert est.item_counts_.tolist() == [4, 1, 2, 0, 0]


@pytest.mark.parametrize("theta,pattern", [
    ([0.5, 0.0], r"1 values outside \(0, 1\].*item 1: 0.0"),
    ([np.nan, 0.5], r"item 0: nan"),
    ([1.5], r"item 0: 1.5"),
])
def test_invalid_propensities_are_rejected_naming_items(theta, pattern):
    with pytest.raises(DataValidationError, match=pattern):
        check_propensity(np.array(theta))


@pytest.mark.parametrize("kwargs,pattern", [
    ({"min_propensity": 0.0}, r"min_propensity=0.0 is out of range"),
    ({"min_propensity": 1.5}, r"must lie in \(0, 1\]"),
    ({"eta": -1.0}, r"eta must be >= 0"),
])
def test_bad_estimator_settings_are_rejected(kwargs, pattern):
    with pytest.raises(ConfigError, match=pattern):
        PopularityPropensity(**kwargs)


def test_no_clicks_cannot_be_fitted():
    with pytest.raises(DataValidationError, match="no training clicks"):
        PopularityPropensity().fit(np.array([], dtype=np.int64), num_items=3)


def test_position_based_estimator_recovers_the_examination_curve():
    rng = np.random.default_rng(0)
    n, positions, num_users, num_items = 200_000, 5, 1000, 50
    pos = rng.integers(0, positions, n)
    true_exam = 1 / (1 + pos)
    clicked = rng.random(n) < true_exam * 0.3          # relevance independent of position
    users, items = rng.integers(0, num_users, n), rng.integers(0, num_items, n)
    est = PositionBasedPropensity().fit(users, items, pos, clicked, num_users, num_items)
    np.testing.assert_allclose(est.examination_, 1 / (1 + np.arange(positions)), rtol=0.05)
    assert ((est.item_propensity_ > 0) & (est.item_propensity_ <= 1)).all()
