"""Dedup, k-core, binarize and the splits: no future leaks, seeded, cold rows dropped and counted."""

from __future__ import annotations

import polars as pl
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from fbrec.data.prepare import PrepareConfig, prepare
from fbrec.data.schema import cast_levels
from fbrec.data.split import keep_warm, leave_last_out, random_split, temporal_split
from fbrec.data.transforms import binarize, dedup, kcore
from fbrec.errors import ConfigError, DataValidationError, UnknownNameError

LEVELS = ["impression", "click", "cart", "purchase"]


def test_dedup_keeps_the_highest_level_per_pair():
    log = cast_levels(pl.DataFrame({"user": [1, 1, 1], "item": [5, 5, 6], "timestamp": [3, 1, 2],
                                    "level": ["click", "purchase", "impression"]}), LEVELS)
    out = dedup(log).collect().sort("item")
    assert out["level"].cast(pl.String).to_list() == ["purchase", "impression"]


def test_binarize_by_level_keeps_rows_at_or_above_the_threshold():
    log = cast_levels(pl.DataFrame({"user": [1, 1, 1], "item": [1, 2, 3],
                                    "level": ["impression", "click", "cart"]}), LEVELS)
    assert binarize(log, min_level="click").collect()["item"].to_list() == [2, 3]
    with pytest.raises(UnknownNameError, match="did you mean 'cart'"):
        binarize(log, min_level="carts")
    with pytest.raises(ConfigError, match="needs a 'rating' column"):
        binarize(log, min_rating=4)


@settings(max_examples=30, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 15), st.integers(0, 15)), min_size=1, max_size=120), st.integers(1, 4))
def test_kcore_result_satisfies_the_core_property(pairs, k):
    log = pl.DataFrame(pairs, schema={"user": pl.Int64, "item": pl.Int64}, orient="row")
    try:
        out = kcore(log, min_user=k, min_item=k)
    except DataValidationError:
        return  # empty core, reported as an error
    assert out.group_by("user").len()["len"].min() >= k
    assert out.group_by("item").len()["len"].min() >= k


def test_temporal_split_never_trains_on_the_future():
    log = pl.DataFrame({"user": list(range(100)), "item": list(range(100)), "timestamp": list(range(100))})
    s = temporal_split(log, test_fraction=0.2, val_fraction=0.1)
    assert s.train["timestamp"].max() < s.val["timestamp"].min() <= s.val["timestamp"].max() < s.test["timestamp"].min()
    assert (s.train.height, s.val.height, s.test.height) == (70, 10, 20)


def test_leave_last_out_holds_out_each_users_latest_rows():
    log = pl.DataFrame({"user": [1, 1, 1, 2, 2, 2], "item": [1, 2, 3, 4, 5, 6], "timestamp": [5, 9, 7, 1, 2, 3]})
    s = leave_last_out(log)
    assert sorted(s.test["item"].to_list()) == [2, 6] and sorted(s.val["item"].to_list()) == [3, 5]


def test_random_split_is_seeded_and_per_user():
    log = pl.DataFrame({"user": [u for u in range(20) for _ in range(10)], "item": list(range(200))})
    a, b = random_split(log, seed=3), random_split(log, seed=3)
    assert a.test.equals(b.test)
    assert a.test.group_by("user").len()["len"].to_list() == [2] * 20
    assert not a.test.equals(random_split(log, seed=4).test)
    with pytest.raises(ConfigError, match="must leave rows for training"):
        random_split(log, test_fraction=0.6, val_fraction=0.5)


def test_keep_warm_drops_and_counts_cold_users_and_items():
    s = temporal_split(pl.DataFrame({"user": [1, 1, 2, 3], "item": [1, 2, 1, 9], "timestamp": [1, 2, 3, 4]}),
                       test_fraction=0.5, val_fraction=0.0)
    warm, dropped = keep_warm(s)
    assert warm.test.height == 0 and dropped["test"] == 2


def test_prepare_rejects_an_external_split_without_a_test_file():
    with pytest.raises(ConfigError, match="has no external test file"):
        prepare("synthetic", PrepareConfig(split="external"), options={"num_users": 50, "num_items": 40})
    with pytest.raises(UnknownNameError, match="did you mean 'temporal'"):
        prepare("synthetic", PrepareConfig(split="temporl"))


def test_prepared_dataset_save_is_atomic_and_round_trips(tmp_path):
    data = prepare("synthetic", options={"num_users": 100, "num_items": 60, "sessions_per_user": 10})
    out = data.save(tmp_path / "ds")
    again = type(data).load(out)
    assert again.train.equals(data.train) and again.num_items == data.num_items
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".ds")], "temp dir left behind"


def test_prepare_is_deterministic_whatever_the_input_row_order():
    from fbrec.data.datasets import RawDataset
    from fbrec.data.prepare import prepare_raw

    log = pl.DataFrame({"user": [u for u in range(40) for _ in range(8)], "item": [(u * 7 + j) % 50 for u in range(40)
                        for j in range(8)], "timestamp": [j // 2 for _ in range(40) for j in range(8)]})
    for split in ("random", "leave_last_out", "temporal"):
        a = prepare_raw(RawDataset(log), "x", PrepareConfig(split=split))
        b = prepare_raw(RawDataset(log.sample(fraction=1.0, shuffle=True, seed=5)), "x", PrepareConfig(split=split))
        assert a.train.equals(b.train) and a.val.equals(b.val) and a.test.equals(b.test), split


def test_an_external_test_file_with_another_schema_is_rejected():
    from fbrec.data.datasets import RawDataset
    from fbrec.data.prepare import prepare_raw

    train = pl.DataFrame({"user": [1, 2], "item": [1, 2], "rating": [5.0, 4.0]})
    test = pl.DataFrame({"user": [1], "item": [2], "score": [5.0]})
    with pytest.raises(DataValidationError, match="external test has columns"):
        prepare_raw(RawDataset(train, test=test), "x", PrepareConfig(split="external", min_rating=4))


def test_the_run_seed_drives_the_split_and_negatives_unless_data_seed_is_set(monkeypatch):
    from lightning.fabric.utilities.seed import seed_everything

    from fbrec.data.datamodule import FeedbackDataModule

    def data(**kw):
        dm = FeedbackDataModule(dataset="synthetic", dataset_options={"num_users": 80, "num_items": 60,
                                                                      "sessions_per_user": 10}, split="random", **kw)
        dm.setup()
        return dm.data.test, next(iter(dm._train)).negatives

    seed_everything(1)
    test_1, neg_1 = data()
    seed_everything(2)
    test_2, neg_2 = data()
    assert not test_1.equals(test_2) and not torch.equal(neg_1, neg_2), "seed_everything moves the data stream"
    pinned_2 = data(seed=7)
    seed_everything(1)
    pinned_1 = data(seed=7)
    assert pinned_1[0].equals(pinned_2[0]) and torch.equal(pinned_1[1], pinned_2[1]), "data.seed pins it"


def test_random_split_draws_each_users_rows_independently():
    """Regression: a per-user shuffle with one seed gave every user with n rows the same test positions (in item id
    order), so on equal-sized users the same items were always held out and never trained."""
    from conftest import planted_log

    from fbrec.data import split as splits

    parts = splits.random_split(planted_log(), test_fraction=0.25, val_fraction=0.0, seed=0)
    ranks = parts.test.join(planted_log().with_columns(pl.col("item").rank("ordinal").over("user").alias("r")),
                            on=["user", "item"]).group_by("user").agg(pl.col("r").sort())["r"].to_list()
    assert len({tuple(r) for r in ranks}) > 20, "users share their held-out positions"
    assert splits.keep_warm(parts)[1] == {"val": 0, "test": 0}


def test_dedup_keeps_the_highest_latest_row_whatever_the_file_order():
    import polars as pl

    from fbrec.data.transforms import dedup

    rows = {"user": [1, 1, 1, 2], "item": [7, 7, 7, 7], "timestamp": [5, 9, 9, 1], "weight": [1.0, 2.0, 3.0, 4.0]}
    frame = pl.DataFrame(rows)
    for order in ([0, 1, 2, 3], [3, 2, 1, 0], [2, 0, 3, 1]):
        kept = dedup(frame[order]).collect().sort("user")
        assert kept["timestamp"].to_list() == [9, 1] and kept["weight"].to_list() == [3.0, 4.0]
