"""Ordinal feedback: GNOLR vs its ablations and the per-level NSB baseline, per-level test metrics over seeds.

python -m benchmarks.ordinal [--seeds 0 1 2] [--write]
Synthetic generator, levels click < cart < purchase (sampled non-clicked items are level 0), global temporal
split; the epoch is chosen on validation Recall@50 (all levels), never on the test set. Per-level metrics rank
the whole catalogue with each model's level-k query (GNOLR: the unified space with blocks > k zeroed; NSB: head k).
"""

from __future__ import annotations

import argparse

from benchmarks.common import machine, mean_sd, scratch_tracking, table, write_section

RECIPES = ["gnolr_synthetic", "no_nesting_synthetic", "nolr_synthetic", "nsb_synthetic", "esmm_synthetic"]
METRICS = ["test/auc", "test/recall_at_50", "test/level_cart/auc", "test/level_cart/recall_at_50",
           "test/level_purchase/auc", "test/level_purchase/recall_at_50"]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--write", action="store_true")
    args = parser.parse_args()
    from fbrec.cli.runs import run_training

    client = scratch_tracking("fbrec-ordinal-")
    rows = []
    for recipe in RECIPES:
        values = {m: [] for m in METRICS}
        for seed in args.seeds:
            run = run_training(recipe, [f"--seed_everything={seed}", "--trainer.enable_progress_bar=false",
                                        "--experiment=benchmarks-ordinal"])
            metrics = client.get_run(run).data.metrics
            for m in METRICS:
                values[m].append(metrics.get(m, float("nan")))
        rows.append([f"`{recipe}`", *[mean_sd(v) for v in values.values()]])
    body = ("### Ordinal levels on the synthetic generator (click < cart < purchase)\n\n"
            f"`python -m benchmarks.ordinal --write` on {machine()}; mean ± sd over seeds {args.seeds}; level 1 "
            "(click) columns are the unprefixed ones; AUC is each user's full-catalogue AUC, averaged.\n\n"
            + table(["recipe", *[m.removeprefix("test/") for m in METRICS]], rows))
    print(body)
    if args.write:
        write_section("ordinal-synthetic", body)


if __name__ == "__main__":
    main()
