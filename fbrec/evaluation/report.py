"""A ranking evaluation's per-user frame as a report: every metric@K with a 95% confidence interval, per slice;
and the metric-vs-K curves the run plots."""

from __future__ import annotations

from collections.abc import Mapping

import polars as pl


def report(frame: pl.DataFrame, *, activity_bins: int = 3, protocol_users: int | None = None) -> pl.DataFrame:
    """Long report: slice, metric, value (mean), ci95 (normal half-width), num_users.

    Adds user-activity slices ("users_q1".. by training-interaction quantile) over the "all" rows. `protocol_users`
    (an EvalSet's): the saito_* metrics of the whole-population slices average over that many users, the missing
    ones (no relevant item) counting 0, as `RankingEvaluator.summary` does."""
    metric_cols = [c for c in frame.columns if c not in ("user", "slice", "n_relevant", "n_train")]
    parts = [frame]
    if "n_train" in frame.columns and activity_bins > 1:
        base = frame.filter(pl.col("slice") == "all")
        q = base["n_train"].rank("ordinal") / (base.height + 1)
        bucket = (q * activity_bins).floor().cast(pl.Int64) + 1
        parts.append(base.with_columns(pl.format("users_q{}", bucket).alias("slice")))
    long = pl.concat(parts).unpivot(index=["slice"], on=metric_cols, variable_name="metric").drop_nans("value")
    # the saito_* metrics of whole-population slices count the protocol's users without a relevant item as zeros
    long = long.with_columns((pl.col("metric").str.starts_with("saito_")
                              & ~pl.col("slice").str.starts_with("users_q")).alias("padded"))
    n = pl.when(pl.col("padded").first()).then(pl.max_horizontal(pl.len(), pl.lit(protocol_users or 0))).otherwise(pl.len())
    mean = pl.col("value").sum() / n
    var = ((pl.col("value") ** 2).sum() - n * mean**2) / (n - 1).clip(lower_bound=1)
    return (long.group_by("slice", "metric", maintain_order=True)
            .agg(mean.alias("value"), (1.96 * (var.clip(lower_bound=0) / n).sqrt()).alias("ci95"),
                 n.cast(pl.UInt32).alias("num_users")))


def metric_curves(summary: Mapping[str, float]) -> dict[str, list[tuple[int, float]]]:
    """{"ndcg": [(5, v), (10, v)...]} for plotting metric@K curves (all-items slice)."""
    curves: dict[str, list[tuple[int, float]]] = {}
    for key, value in summary.items():
        if "/" in key or "_at_" not in key:
            continue
        metric, k = key.rsplit("_at_", 1)
        curves.setdefault(metric, []).append((int(k), value))
    return {m: sorted(v) for m, v in curves.items()}
