"""The data of a finished run, rebuilt from what it logged: its prepared dataset, the pairs a bundle never
recommends again, the held-out pairs a reward model must not train on. Below every module of fbrec.api that reads a
run (reporting, runs, llm)."""

from __future__ import annotations

import polars as pl


def run_data(data_args: dict):
    """The run's FeedbackData from its logged data arguments (no torch or Lightning: export and evaluate read data,
    they do not train)."""
    from fbrec.data.feedback import FeedbackData

    return FeedbackData(**data_args)


def seen_pairs(data) -> pl.DataFrame:
    """(user_index, item_index) of the training and validation pairs: what a bundle never recommends again."""
    seen = data.train.select("user_index", "item_index")
    return pl.concat([seen, data.val.select("user_index", "item_index")]) if data.val.height else seen


def held_out_pairs(data) -> pl.DataFrame:
    """A prepared dataset's validation and test (user, item) pairs, raw ids as text."""
    from fbrec.types import ITEM, USER

    return pl.concat([f.select(pl.col(USER).cast(pl.String), pl.col(ITEM).cast(pl.String))
                      for f in (data.val, data.test)])


def pairs_sha(pairs: pl.DataFrame) -> str:
    from fbrec.data.profiles import train_fingerprint

    return train_fingerprint(pairs)


def reward_model_tag(path) -> str:
    """The tag a run carries for a reward model trained for it: keyed by the sha256 of the model's weights, so the
    binding is the model's bytes, not what its result.json says."""
    import hashlib
    from pathlib import Path

    digest = hashlib.sha256((Path(path) / "reward_model.pt").read_bytes()).hexdigest()
    return f"fbrec.reward_model.{digest[:40]}"
