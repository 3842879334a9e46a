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


# --- pair propensities as data ------------------------------------------------------------------------------------
import polars as pl  # noqa: E402

from fbrec.data.propensities import attach_pair_propensities, read_pair_propensities  # noqa: E402


def _csv(tmp_path, text, name="theta.csv"):
    path = tmp_path / name
    path.write_text(text)
    return path


@pytest.mark.parametrize("text,pattern", [
    ("user,item,propensity\na,x,0.5\nb,y,0\n", r"1 propensities are not in \(0, 1\] \(line 3: '0.0'\)"),
    ("user,item,propensity\na,x,1.5\nb,y,abc\n", r"2 propensities .*line 2: '1.5', line 3: None"),
    ("user,item,theta\na,x,0.5\n", r"has no column 'propensity'.*columns: \{propensity: YOUR_COLUMN\}"),
    ("user,item,propensity\na,x,0.5\na,x,0.4\n", r"the pair \(user 'a', item 'x'\) appears 2 times \(line 2 is one\)"),
])
def test_bad_propensity_files_name_the_line_the_rule_and_the_fix(tmp_path, text, pattern):
    with pytest.raises(DataValidationError, match=pattern):
        read_pair_propensities(_csv(tmp_path, text))


def test_a_propensity_file_maps_its_columns_and_missing_pairs_are_named(tmp_path):
    pairs = read_pair_propensities(_csv(tmp_path, "uid,sku,p\n1,10,0.5\n2,20,0.25\n"),
                                   columns={"user": "uid", "item": "sku", "propensity": "p"})
    frame = pl.DataFrame({"user": [2, 1], "item": [20, 10]})
    np.testing.assert_allclose(attach_pair_propensities(frame, pairs, what="training"), [0.25, 0.5])
    with pytest.raises(DataValidationError, match=r"1 of 2 training pairs have no propensity: \(user 3, item 30\)"):
        attach_pair_propensities(pl.DataFrame({"user": [1, 3], "item": [10, 30]}), pairs, what="training")


def test_coat_pair_propensities_reach_batches_and_the_snips_weights(shared_data):
    from fbrec.data.datamodule import FeedbackDataModule
    from fbrec.types import ITEM, ITEM_INDEX, USER, USER_INDEX

    raw = np.loadtxt(shared_data / "coat" / "propensities.ascii")      # row = raw user id, column = raw item id
    dm = FeedbackDataModule("coat", data_dir=str(shared_data), propensity="dataset", eval_candidates="test_items",
                            num_negatives=4, batch_size=64, seed=0)
    dm.setup()
    train = dm.data.train
    np.testing.assert_allclose(dm._train.propensity.numpy(), raw[train[USER].to_numpy(), train[ITEM].to_numpy()],
                               rtol=1e-6)
    assert next(iter(dm.train_dataloader())).negative_ips is None      # computed only when a loss asks
    dm.request_batch_fields({"negative_ips"})
    batch = next(iter(dm.train_dataloader()))
    clicks = np.bincount(train[USER_INDEX].to_numpy(), minlength=dm.num_users)
    np.testing.assert_allclose(batch.unlabeled_weight.numpy(), 300 / (4 * clicks[batch.user.numpy()]), rtol=1e-6)
    pairs = zip(train[USER_INDEX].to_list(), train[ITEM_INDEX].to_list(), strict=True)
    theta = dict(zip(pairs, dm._train.propensity.tolist(), strict=True))
    expected = [[1 / theta[(u, j)] if (u, j) in theta else 0.0 for j in row]
                for u, row in zip(batch.user.tolist(), batch.negatives.tolist(), strict=True)]
    np.testing.assert_allclose(batch.negative_ips.numpy(), expected, rtol=1e-5)
    assert dm.eval_set("val").saito and dm.eval_set("val").protocol_users is None
    test = dm.eval_set("test")
    assert test.saito and test.protocol_users == 290             # every Coat user has 16 MCAR test items
    relevant = dm.data.test.filter(pl.col("label") > 0).row(0, named=True)
    weight = test.item_weights.tocsr()[relevant[USER_INDEX], relevant[ITEM_INDEX]]
    assert weight == pytest.approx(1 / raw[relevant[USER], relevant[ITEM]], rel=1e-6)


@pytest.mark.parametrize("kwargs,error,pattern", [
    ({"propensity": "file"}, ConfigError, r"propensity_path goes with propensity: file"),
    ({"propensity": "popularity", "propensity_path": "x.csv"}, ConfigError, r"and only with it"),
    ({"propensity": "pairs"}, Exception, r"propensity source"),
    ({"noise_rate": 1.5}, ConfigError, r"noise_rate=1.5.*lies in \[0, 1\)"),
    ({"val_users": 0}, ConfigError, r"val_users"),
    ({"sampled_metrics": 0}, ConfigError, r"sampled_metrics"),
])
def test_propensity_settings_are_checked_before_any_data_is_read(kwargs, error, pattern):
    from fbrec.data.datamodule import FeedbackDataModule
    with pytest.raises(error, match=pattern):
        FeedbackDataModule("synthetic", **kwargs)


def test_a_dataset_without_pair_propensities_says_which_have_them():
    from fbrec.data.datamodule import FeedbackDataModule
    dm = FeedbackDataModule("synthetic", propensity="dataset", dataset_options={"num_users": 50, "num_items": 40})
    with pytest.raises(ConfigError, match=r"dataset 'synthetic' ships no pair propensities.*\['coat'\]"):
        dm.setup()


def test_popularity_normalised_by_users_is_the_items_click_rate():
    est = PopularityPropensity(eta=1.0, min_propensity=0.01, normalise="users", num_users=8)
    est.fit(np.array([0, 0, 0, 0, 1, 2, 2]), num_items=4)
    np.testing.assert_allclose(est.item_propensity_, [0.5, 0.125, 0.25, 0.01])
    with pytest.raises(ConfigError, match="normalise=.users. without num_users"):
        PopularityPropensity(normalise="users").fit(np.array([0]), num_items=2)
    with pytest.raises(Exception, match="propensity normalisation"):
        PopularityPropensity(normalise="mean")


def test_a_dense_propensity_matrix_with_a_bad_cell_names_its_line_and_column():
    from fbrec.data.propensities import dense_pair_propensities

    matrix = np.full((3, 4), 0.5)
    matrix[2, 1] = 0.0
    with pytest.raises(DataValidationError, match=r"1 cells are not in \(0, 1\] \(line 3, column 2: 0.0\)"):
        dense_pair_propensities(matrix, source="m")
    assert dense_pair_propensities(np.full((2, 2), 0.5), source="m").height == 4


def test_calibrated_popularity_exposures_explain_the_clicks_at_the_surveyed_relevance_rate():
    items = np.array([0] * 30 + [1] * 10 + [2] * 5)                          # 45 clicks by 100 users
    est = PopularityPropensity(eta=0.5, normalise="calibrated", num_users=100, relevance_rate=0.25,
                               min_propensity=1e-6).fit(items, num_items=4)
    theta = est.item_propensity_
    assert theta.sum() == pytest.approx(45 / (100 * 0.25))                  # sum_i theta_i = clicks / (U x rate)
    users = PopularityPropensity(eta=0.5, normalise="users", num_users=100, min_propensity=1e-6).fit(items, 4)
    np.testing.assert_allclose(theta[:3] / theta[0], users.item_propensity_[:3] / users.item_propensity_[0])
    assert theta[3] == 1e-6                                                  # never clicked: the floor
    with pytest.raises(ConfigError, match="without relevance_rate"):
        PopularityPropensity(normalise="calibrated", num_users=5)
    with pytest.raises(ConfigError, match="relevance_rate"):
        PopularityPropensity(normalise="calibrated", num_users=5, relevance_rate=1.5)
