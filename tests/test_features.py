"""Side features as bags, their errors, and mutual information on hand examples and the real datasets."""

from __future__ import annotations

import math

import numpy as np
import polars as pl
import pytest

from fbrec.data.features import FeatureSpec, build_features, mutual_information
from fbrec.errors import ConfigError, DataValidationError, UnknownNameError

ITEMS = pl.DataFrame({
    "item_index": [2, 0, 1],
    "genres": [["Drama"], ["Comedy", "Drama"], ["Comedy"]],
    "brand": ["acme", "acme", "zeta"],
    "title": ["The Big Sleep", "Big Fish", "Sleep, No More!"],
    "year": [1946, 2003, 2011],
})


def _build(specs, table=ITEMS, n=3):
    return build_features(table, specs, n, index_column="item_index")


def test_bags_follow_the_item_index_with_the_id_first():
    fs = _build([FeatureSpec("genres", "multi"), FeatureSpec("brand"), FeatureSpec("title", "words"),
                 FeatureSpec("year", "bucket", buckets=2)])
    assert fs.names == ["id", "genres", "brand", "title", "year"]
    assert fs.multi_valued == [False, True, False, True, False]

    def row(f, r):
        vocab = fs.vocabularies[fs.names.index(f)]
        return [vocab[v] for v in fs.values[fs.names.index(f)][fs.offsets[fs.names.index(f)][r]:
                                                              fs.offsets[fs.names.index(f)][r + 1]]]
    assert row("genres", 0) == ["Comedy", "Drama"] and row("genres", 2) == ["Drama"]
    assert row("brand", 1) == ["zeta"]
    assert row("title", 1) == ["sleep", "no", "more"]
    assert row("year", 2) == ["0"] and row("year", 1) == ["1"]      # 1946 below the median, 2011 above
    np.testing.assert_array_equal(fs.values[0], [0, 1, 2])


def test_values_rarer_than_min_count_share_the_rare_id():
    fs = _build([FeatureSpec("title", "words", min_count=2)])
    vocab = fs.vocabularies[1]
    assert vocab == ["<rare>", "big", "sleep"]
    assert fs.values[1][fs.offsets[1][0]:fs.offsets[1][1]].tolist() == [1, 0]   # "big" kept, "fish" rare


def test_missing_values_get_their_own_id_when_asked():
    table = ITEMS.with_columns(pl.Series("brand", ["acme", None, ""]))
    fs = _build([FeatureSpec("brand", missing="unknown")], table)
    # sorted by item_index: item 0 has None, item 1 an empty string, item 2 "acme"
    assert [fs.vocabularies[1][v] for v in fs.values[1]] == ["<unknown>", "<unknown>", "acme"]


BAD_INPUT = [
    ("feature columns missing for some items", ITEMS.filter(pl.col("item_index") != 1), [FeatureSpec("brand")],
     DataValidationError, r"1 of 3 items have no row in the item table \(item_index \[1\]"),
    ("multi-valued feature with an empty list", ITEMS.with_columns(pl.Series("genres", [["Drama"], [], ["Comedy"]])),
     [FeatureSpec("genres", "multi")], DataValidationError, r"1 of 3 rows have no value in column 'genres'.*missing: unknown"),
    ("a null categorical value", ITEMS.with_columns(pl.Series("brand", ["acme", None, "zeta"])),
     [FeatureSpec("brand")], DataValidationError, r"'brand'.*item_index \[0\]"),
    ("a column the table lacks", ITEMS, [FeatureSpec("brnd")], UnknownNameError, r"'brnd'.*did you mean 'brand'"),
    ("kind multi on a string column", ITEMS, [FeatureSpec("brand", "multi")], DataValidationError,
     r"kind='multi' needs a list column"),
    ("two features with one name", ITEMS, [FeatureSpec("brand"), FeatureSpec("brand")], ConfigError, "repeat"),
    ("features but no item table", None, [FeatureSpec("brand")], DataValidationError, "has no item table"),
]


@pytest.mark.parametrize(("case", "table", "specs", "error", "pattern"), BAD_INPUT, ids=[c[0] for c in BAD_INPUT])
def test_bad_feature_input_names_the_value_the_rule_and_the_fix(case, table, specs, error, pattern):
    with pytest.raises(error, match=pattern):
        _build(specs, table)


@pytest.mark.parametrize(("kwargs", "pattern"), [({"kind": "text"}, "unknown feature kind 'text'"),
                                                 ({"missing": "drop"}, "missing-value policy"),
                                                 ({"buckets": 1}, "buckets >= 2")])
def test_bad_feature_specs_are_refused(kwargs, pattern):
    with pytest.raises((ConfigError, UnknownNameError), match=pattern):
        FeatureSpec("brand", **kwargs)


def test_mutual_information_on_hand_examples():
    # four items: a == b (perfectly dependent, one bit each), c independent of both
    table = pl.DataFrame({"item_index": [0, 1, 2, 3], "a": ["x", "x", "y", "y"], "b": ["p", "p", "q", "q"],
                          "c": ["m", "n", "m", "n"]})
    fs = build_features(table, [FeatureSpec("a"), FeatureSpec("b"), FeatureSpec("c")], 4, index_column="item_index")
    mi = mutual_information(fs)
    names = fs.names
    assert mi[names.index("a"), names.index("b")] == pytest.approx(math.log(2))
    assert mi[names.index("a"), names.index("c")] == pytest.approx(0.0, abs=1e-12)
    assert mi[0, 0] == pytest.approx(math.log(4))                 # the id's entropy: four equally likely items
    assert mi[0, names.index("c")] == pytest.approx(math.log(2))  # the id determines c
    np.testing.assert_allclose(mi, mi.T)
    # weights move the distribution: all weight on items 0 and 1 leaves a (and b) constant, so MI(a, b) = 0
    weighted = mutual_information(fs, np.array([1.0, 1.0, 0.0, 0.0]))
    assert weighted[names.index("a"), names.index("b")] == pytest.approx(0.0, abs=1e-12)


def test_mutual_information_spreads_multi_valued_rows_over_their_value_pairs():
    # item 0 has values {x, y} of a and {p} of b: P(x, p) = P(y, p) = 1/4; item 1: (z, q) = 1/2
    table = pl.DataFrame({"item_index": [0, 1], "a": [["x", "y"], ["z"]], "b": ["p", "q"]})
    fs = build_features(table, [FeatureSpec("a", "multi"), FeatureSpec("b")], 2, index_column="item_index")
    joint = np.array([0.25, 0.25, 0.5])
    pa, pb = np.array([0.25, 0.25, 0.5]), np.array([0.5, 0.5, 0.5])
    expected = float((joint * np.log(joint / (pa * pb))).sum())
    assert mutual_information(fs)[1, 2] == pytest.approx(expected)


@pytest.mark.parametrize("dataset", ["movielens-100k", "amazon-scientific-text"])
def test_recipe_features_build_on_the_real_datasets(dataset, shared_data):
    import yaml

    from fbrec.data.datamodule import FeedbackDataModule

    recipe = {"movielens-100k": "two_tower_movielens100k", "amazon-scientific-text": "two_tower_amazon"}[dataset]
    config = yaml.safe_load(open(f"models/{recipe}/config.yaml"))["data"]
    dm = FeedbackDataModule(**config)
    items = dm.item_features()
    assert items.num_rows == dm.num_items and len(items.names) >= 4, "CFM needs at least 4 item features"
    assert all(len(o) == dm.num_items + 1 for o in items.offsets)
    mi = mutual_information(items, dm.train_item_counts())
    assert np.isfinite(mi).all() and (mi >= -1e-9).all()
    users = dm.user_features()
    assert users.num_rows == dm.num_users


def test_your_own_log_brings_its_item_table(tmp_path):
    from fbrec.data.datamodule import FeedbackDataModule

    pl.DataFrame({"uid": [1, 1, 2, 2, 3, 3], "sku": ["a", "b", "a", "c", "b", "c"],
                  "timestamp": [1, 2, 3, 4, 5, 6]}).write_csv(tmp_path / "clicks.csv")
    pl.DataFrame({"sku": ["a", "b", "c", "zzz"], "brand": ["x", "y", "x", "q"]}).write_csv(tmp_path / "items.csv")
    dm = FeedbackDataModule(log_path=str(tmp_path / "clicks.csv"), items_path=str(tmp_path / "items.csv"),
                            columns={"user": "uid", "item": "sku"}, split="random", test_fraction=0.34,
                            val_fraction=0.0, item_features=[{"column": "brand"}])
    items = dm.item_features()
    brand = [items.vocabularies[1][v] for v in items.values[1]]
    raw_items = dm.data.item_map.decode(np.arange(dm.num_items))
    assert brand == [{"a": "x", "b": "y", "c": "x"}[i] for i in raw_items], "rows follow item_index; extras dropped"


def test_side_tables_without_a_log_are_refused():
    from fbrec.data.datamodule import FeedbackDataModule

    with pytest.raises(ConfigError, match="without source.log"):
        FeedbackDataModule(dataset="synthetic", items_path="items.csv")


@pytest.mark.parametrize(("write", "kwargs", "pattern"), [
    (None, {}, r"item table '.*nowhere.csv' does not exist"),
    ("sku,brand\na,x\n", {}, r"has no column 'item'.*map it with columns: \{item: YOUR_COLUMN\}"),
    ("sku,brand\na,x\n", {"columns": {"item": "id"}}, r"has no column 'id'"),
    ("sku,brand\na,x\n", {"format": "xml"}, r"format 'xml' is not supported"),
])
def test_side_table_reader_refuses_bad_files(write, kwargs, pattern, tmp_path):
    from fbrec.data.io import read_side_table

    path = tmp_path / ("items.csv" if write else "nowhere.csv")
    if write:
        path.write_text(write)
    with pytest.raises(DataValidationError, match=pattern):
        read_side_table(path, "item", **kwargs)
    assert sorted(p.name for p in tmp_path.iterdir()) == (["items.csv"] if write else []), "nothing written"


def test_negative_cold_threshold_is_refused():
    from fbrec.data.datamodule import FeedbackDataModule

    with pytest.raises(ConfigError, match=r"cold_max_interactions=-1"):
        FeedbackDataModule(dataset="synthetic", cold_max_interactions=-1)
