"""Recipe quality over seeds: trains each recipe from the CLI code path, logs to MLflow, and writes the results
tables of benchmarks/RESULTS.md and of each model card (models/<recipe>/README.md).

python -m benchmarks.quality [--seeds 0 1 2] [--write]
The data split is fixed (data.seed 0); seeds vary initialisation and negative sampling. The epoch is selected on
validation NDCG; the numbers are test metrics of that checkpoint.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from benchmarks.common import machine, mean_sd, scratch_tracking, table, write_section

RECIPES = {
    "movielens-100k": ["popularity_movielens100k", "bpr_movielens100k", "bce_movielens100k"],
    "synthetic": ["popularity_synthetic", "bpr_synthetic"],
}
METRICS = ["test/ndcg_at_10", "test/recall_at_10", "test/head/recall_at_10", "test/tail/recall_at_10", "test/auc"]
MODELS = Path(__file__).resolve().parents[1] / "models"


def _write_card(recipe: str, body: str) -> None:
    path = MODELS / recipe / "README.md"
    text = path.read_text() if path.exists() else f"# {recipe}\n"
    start, end = "<!-- results -->", "<!-- /results -->"
    block = f"{start}\n{body.strip()}\n{end}"
    if start in text:
        text = text[:text.index(start)] + block + text[text.index(end) + len(end):]
    else:
        text = text.rstrip() + "\n\n## Results\n\n" + block + "\n"
    path.write_text(text)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--write", action="store_true")
    args = parser.parse_args()
    from fbrec.cli.runs import run_training

    client = scratch_tracking("fbrec-quality-")
    sections = []
    for dataset, recipes in RECIPES.items():
        rows = []
        for recipe in recipes:
            values = {m: [] for m in METRICS}
            for seed in args.seeds:
                run = run_training(recipe, [f"--seed_everything={seed}", "--trainer.enable_progress_bar=false",
                                            "--experiment=benchmarks"])
                metrics = client.get_run(run).data.metrics
                for m in METRICS:
                    values[m].append(metrics.get(m, float("nan")))
            cells = [mean_sd(v) for v in values.values()]
            rows.append([f"`{recipe}`", *cells])
            card = (f"Test metrics, mean ± sd over seeds {args.seeds} (`python -m benchmarks.quality --write`, "
                    f"{machine()}):\n\n" + table(["recipe", *[m.removeprefix("test/") for m in METRICS]], [rows[-1]]))
            if args.write:
                _write_card(recipe, card)
        sections.append(f"#### {dataset}\n\n" + table(["recipe", *[m.removeprefix("test/") for m in METRICS]], rows))
    body = (f"### Recipe quality (test split, best epoch chosen on validation NDCG@10)\n\n"
            f"`python -m benchmarks.quality --write` on {machine()}; mean ± sd over seeds {args.seeds} "
            f"(initialisation and negative sampling; the data split is fixed).\n\n" + "\n\n".join(sections))
    print(body)
    if args.write:
        write_section("quality", body)


if __name__ == "__main__":
    main()
