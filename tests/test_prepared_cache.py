"""Prepared datasets are cached by source checksum and options: a second read skips preparation, any change misses."""

from __future__ import annotations

import os
from pathlib import Path

import polars as pl
import pytest
from polars.testing import assert_frame_equal

import fbrec.data.feedback as feedback
from fbrec.data.feedback import FeedbackData
from fbrec.data.synthetic import SyntheticConfig, generate


@pytest.fixture()
def log_file(tmp_path):
    path = tmp_path / "clicks.parquet"
    generate(SyntheticConfig(num_users=200, num_items=120, seed=0)).log.select("user", "item", "timestamp") \
        .write_parquet(path)
    return path


def _no_preparation(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("prepared again instead of read from the cache")
    monkeypatch.setattr(feedback, "prepare_raw", refuse)


def test_a_second_read_of_the_same_log_and_options_comes_from_the_cache(log_file, monkeypatch, tmp_path):
    first = FeedbackData(log_path=str(log_file), integer_ids=True, split="temporal").data
    root = Path(os.environ["FBREC_PREPARED_CACHE"])
    (entry,) = root.glob("*.sources.json")
    assert (root / entry.name.removesuffix(".sources.json") / "dataset.json").is_file()
    _no_preparation(monkeypatch)
    second = FeedbackData(log_path=str(log_file), integer_ids=True, split="temporal").data
    for part in ("train", "val", "test"):
        assert_frame_equal(getattr(first, part), getattr(second, part))
    assert second.checksum == first.checksum and second.user_map.raw.equals(first.user_map.raw)


@pytest.mark.parametrize("change", ["options", "content"])
def test_a_changed_option_or_source_file_is_prepared_again(log_file, monkeypatch, change):
    _ = FeedbackData(log_path=str(log_file), integer_ids=True, split="temporal").data
    calls = []
    real = feedback.prepare_raw
    monkeypatch.setattr(feedback, "prepare_raw", lambda *a, **k: calls.append(1) or real(*a, **k))
    if change == "content":   # same path, same size class, other rows
        frame = pl.read_parquet(log_file)
        frame.with_columns(pl.col("timestamp") + 1).write_parquet(log_file)
        _ = FeedbackData(log_path=str(log_file), integer_ids=True, split="temporal").data
    else:
        _ = FeedbackData(log_path=str(log_file), integer_ids=True, split="temporal", test_fraction=0.3).data
    assert calls == [1]


def test_registered_datasets_are_cached_too_and_the_cache_can_be_turned_off(monkeypatch):
    opts = {"num_users": 100, "num_items": 60, "seed": 1}
    _ = FeedbackData("synthetic", dataset_options=opts).data
    _no_preparation(monkeypatch)
    _ = FeedbackData("synthetic", dataset_options=opts).data
    monkeypatch.setenv("FBREC_PREPARED_CACHE", "off")
    with pytest.raises(AssertionError, match="prepared again"):
        _ = FeedbackData("synthetic", dataset_options=opts).data
