"""Recipe quality over seeds: trains each recipe from the CLI code path, logs to MLflow, and writes the results
tables of benchmarks/RESULTS.md and of each model card (models/<recipe>/README.md).

python -m benchmarks.quality [--seeds 0 1 2] [--write]
Each seed drives initialisation and the data stream (random splits and the validation carve-out, negative
sampling, shuffling). The epoch is selected on validation NDCG; the numbers are test metrics of that checkpoint.
"""

from __future__ import annotations

import argparse

from benchmarks.common import machine, scratch_tracking, seeded_row, table, write_card, write_section

RECIPES = {
    "movielens-100k": ["popularity_movielens100k", "bpr_movielens100k", "bce_movielens100k"],
    "synthetic": ["popularity_synthetic", "bpr_synthetic"],
}
METRICS = ["test/ndcg_at_10", "test/recall_at_10", "test/head/recall_at_10", "test/tail/recall_at_10", "test/auc"]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--write", action="store_true")
    args = parser.parse_args()
    client = scratch_tracking("fbrec-quality-")
    sections = []
    for dataset, recipes in RECIPES.items():
        rows = []
        for recipe in recipes:
            rows.append(seeded_row(client, recipe, ["--experiment=benchmarks"], args.seeds, METRICS))
            card = (f"Test metrics, mean ± sd over seeds {args.seeds} (`python -m benchmarks.quality --write`, "
                    f"{machine()}):\n\n" + table(["recipe", *[m.removeprefix("test/") for m in METRICS]], [rows[-1]]))
            if args.write:
                write_card(recipe, card)
        sections.append(f"#### {dataset}\n\n" + table(["recipe", *[m.removeprefix("test/") for m in METRICS]], rows))
    body = (f"### Recipe quality (test split, best epoch chosen on validation NDCG@10)\n\n"
            f"`python -m benchmarks.quality --write` on {machine()}; mean ± sd over seeds {args.seeds} "
            f"(each seed drives initialisation, the random split and validation carve-out, negative sampling and "
            f"shuffling).\n\n" + "\n\n".join(sections))
    print(body)
    if args.write:
        write_section("quality", body)


if __name__ == "__main__":
    main()
