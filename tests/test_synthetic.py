"""The synthetic generator is seeded, keeps its ground truth beside the log, and plants nested levels."""

from __future__ import annotations

import numpy as np
import polars as pl
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


def test_mcar_test_draws_never_clicked_items_uniformly_and_labels_them_by_relevance():
    import polars as pl

    from fbrec.data.synthetic import mcar_test

    data = generate(SyntheticConfig(num_users=300, num_items=200, seed=3))
    test = mcar_test(data, 40)
    assert test.columns == data.log.columns and test.schema == data.log.schema
    assert test.group_by("user").len()["len"].unique().to_list() == [40]
    clicked = data.log.filter(pl.col("level") != "impression").select("user", "item").unique()
    assert test.join(clicked, on=["user", "item"], how="semi").height == 0, "only never-clicked items"
    relevant = (test["level"] == "click").to_numpy()
    gamma = test["relevance"].to_numpy()
    assert relevant.mean() == pytest.approx(gamma.mean(), abs=0.02)
    assert relevant[gamma > 0.8].mean() > 0.7 > 0.3 > relevant[gamma < 0.2].mean()
    # uniform over the catalogue, not over exposure: tail items are drawn as often as head items
    popular = data.items.sort("popularity", descending=True)["item"].head(20).to_list()
    share = test["item"].is_in(popular).mean()
    assert share == pytest.approx(20 / 200, abs=0.03)


def test_synthetic_mcar_option_gives_an_external_test():
    from fbrec.data.prepare import PrepareConfig, prepare

    data = prepare("synthetic", PrepareConfig(split="external"),
                   options={"num_users": 200, "num_items": 150, "mcar_test_items": 30})
    assert data.test.height > 0 and set(data.test["label"].unique().to_list()) == {0, 1}


def test_the_generator_reaches_large_catalogues_without_a_dense_matrix():
    import resource

    from fbrec.data.synthetic import SyntheticConfig, generate, mcar_test
    from fbrec.errors import ConfigError

    data = generate(SyntheticConfig(num_users=200_000, num_items=100_000, sessions_per_user=1, seed=3))
    log = data.log
    assert log.height == 200_000 * 10 and log["item"].max() < 100_000
    sample = log.sample(1000, seed=0)
    np.testing.assert_allclose(sample["relevance"].to_numpy(),
                               data.relevance_of(sample["user"].to_numpy(), sample["item"].to_numpy()), rtol=1e-12)
    with pytest.raises(ConfigError, match="use relevance_of"):
        _ = data.relevance
    test = mcar_test(data, 3)
    assert test.height == 600_000 and test.group_by("user").len()["len"].unique().to_list() == [3]
    positives = log.filter(pl.col("level") != "impression")
    clicked = set(zip(positives["user"].to_list(), positives["item"].to_list(), strict=True))
    assert not clicked & set(zip(test["user"].to_list(), test["item"].to_list(), strict=True)), "never clicked"
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss < 6 * 2**20, "peak RSS under 6 GB (was a 149 GiB ask)"
