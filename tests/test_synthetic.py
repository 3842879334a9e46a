"""The synthetic generator is seeded, keeps its ground truth beside the log, and plants nested levels."""

from __future__ import annotations

import numpy as np
import pytest

from fbrec.data.synthetic import LEVELS, SyntheticConfig, generate
from fbrec.errors import ConfigError


def test_generator_is_deterministic_given_the_seed():
    a, b = generate(SyntheticConfig(num_users=50, num_items=40, seed=7)), generate(SyntheticConfig(num_users=50,
                                                                                               num_items=40, seed=7))
    assert a.log.equals(b.log)
    assert not a.log.equals(generate(SyntheticConfig(num_users=50, num_items=40, seed=8)).log)


def test_ground_truth_matches_the_logged_rows():
    data = generate(SyntheticConfig(num_users=80, num_items=60, seed=1))
    log = data.log
    gamma = data.relevance[log["user"].to_numpy(), log["item"].to_numpy()]
    np.testing.assert_allclose(log["relevance"].to_numpy(), gamma)
    assert ((log["propensity"] > 0) & (log["propensity"] <= 1)).all()
    assert data.items.height == 60 and data.items["text"].str.len_chars().min() > 0


def test_clicks_follow_relevance_and_position():
    log = generate(SyntheticConfig(num_users=400, num_items=100, sessions_per_user=10, seed=2)).log
    clicked = log["level"].to_physical() >= LEVELS.index("click")
    rel = log["relevance"].to_numpy()
    assert clicked.to_numpy()[rel > 0.8].mean() > 2 * clicked.to_numpy()[rel < 0.2].mean()
    top, bottom = log["position"] == 0, log["position"] == log["position"].max()
    assert clicked.filter(top).mean() > clicked.filter(bottom).mean()


def test_invalid_settings_are_rejected():
    with pytest.raises(ConfigError, match="num_items must be > 0"):
        SyntheticConfig(num_items=0)
