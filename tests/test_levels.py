"""Feedback levels as labels: highest level per pair, non-nested histories, order checks."""

from __future__ import annotations

import polars as pl
import pytest

from fbrec.data.levels import check_level_order, highest_level, nesting_report
from fbrec.data.schema import cast_levels
from fbrec.errors import DataValidationError, UnknownNameError

LEVELS = ["view", "click", "cart", "purchase"]


def _log(rows):
    frame = pl.DataFrame(rows, schema={"user": pl.Int64, "item": pl.Int64, "level": pl.String,
                                       "timestamp": pl.Int64}, orient="row")
    return cast_levels(frame, LEVELS)


def test_label_is_the_highest_level_reached_and_when_it_was_first_reached():
    out = highest_level(_log([(1, 1, "view", 1), (1, 1, "cart", 5), (1, 1, "click", 3), (1, 1, "cart", 9),
                              (1, 2, "view", 2)]))
    assert out["level"].cast(pl.String).to_list() == ["cart", "view"]
    assert out["level_index"].to_list() == [2, 0] and out["timestamp"].to_list() == [5, 2]


def test_a_purchase_without_earlier_events_keeps_its_level_and_is_reported():
    log = _log([(1, 1, "purchase", 1), (2, 1, "view", 1), (2, 1, "click", 2), (2, 1, "cart", 3),
                (2, 1, "purchase", 4), (3, 2, "click", 1)])
    assert highest_level(log).filter(pl.col("user") == 1)["level"].cast(pl.String).to_list() == ["purchase"]
    report = {r["level"]: r for r in nesting_report(log).iter_rows(named=True)}
    assert report["purchase"] == {"level": "purchase", "pairs": 2, "missing_lowest_level": 1,
                                  "missing_lower_levels": 1}
    assert report["click"]["missing_lower_levels"] == 1


def test_levels_in_a_contradicting_order_are_rejected():
    check_level_order(LEVELS, ["click", "purchase"])
    with pytest.raises(DataValidationError, match=r"contradict the declared order.*use \['click', 'purchase'\]"):
        check_level_order(LEVELS, ["purchase", "click"])
    with pytest.raises(UnknownNameError, match="did you mean 'cart'"):
        check_level_order(LEVELS, ["carts"])


def test_a_log_without_levels_cannot_be_labelled():
    with pytest.raises(DataValidationError, match="no ordered 'level' column"):
        highest_level(pl.DataFrame({"user": [1], "item": [1]}))


@pytest.mark.realdata
def test_taobao_has_the_documented_non_nested_purchases(shared_data):
    from fbrec.data import load_raw

    report = {r["level"]: r for r in nesting_report(load_raw("taobao-userbehavior-sample", shared_data).log)
              .iter_rows(named=True)}
    assert report["buy"]["pairs"] == 1671 and report["buy"]["missing_lowest_level"] == 527


def test_a_recipe_listing_levels_against_the_dataset_order_is_rejected():
    from fbrec.data.datamodule import FeedbackDataModule

    options = {"num_users": 60, "num_items": 40}
    assert FeedbackDataModule("synthetic", dataset_options=options, levels=["click", "purchase"]).num_users > 0
    wrong = FeedbackDataModule("synthetic", dataset_options=options, levels=["purchase", "click"])
    for _attempt in range(2):   # a failed check leaves no half-accepted data behind
        with pytest.raises(DataValidationError, match="contradict the declared order"):
            _ = wrong.num_users
    with pytest.raises(UnknownNameError, match="did you mean 'purchase'"):
        _ = FeedbackDataModule("synthetic", dataset_options=options, levels=["purchse"]).num_users
