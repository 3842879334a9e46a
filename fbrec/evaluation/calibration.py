"""Calibration of predicted probabilities: the reliability table and the expected calibration error, in one place
(the log-loss recipes' test report and the reward models both use it)."""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import polars as pl


class Calibration(NamedTuple):
    """ece = sum_b n_b / N |observed_b - predicted_b| over equal-width probability bins; table: one row per
    non-empty bin (bin, count, mean predicted probability, observed positive rate)."""

    ece: float
    table: pl.DataFrame


def calibration(probs, labels, bins: int = 10) -> Calibration:
    """Reliability over `bins` equal-width bins of predicted probability (p = 1 falls in the last bin)."""
    p, y = np.asarray(probs, np.float64), np.asarray(labels, np.float64)
    which = np.minimum((p * bins).astype(np.int64), bins - 1)
    n = np.bincount(which, minlength=bins)
    predicted = np.bincount(which, weights=p, minlength=bins) / np.maximum(n, 1)
    observed = np.bincount(which, weights=y, minlength=bins) / np.maximum(n, 1)
    table = pl.DataFrame({"bin": np.arange(bins), "count": n, "predicted": predicted, "observed": observed}
                         ).filter(pl.col("count") > 0)
    ece = float((table["count"] * (table["observed"] - table["predicted"]).abs()).sum() / max(1, len(p)))
    return Calibration(ece, table)
