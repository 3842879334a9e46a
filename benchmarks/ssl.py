"""Self-supervised item towers: the two-tower with no regulariser vs feature dropout, spread-out, +RFM and +CFM,
overall and on head / tail / cold items.

python -m benchmarks.ssl [--dataset synthetic|ml100k|amazon] [--seeds 0 1 2] [--write]
Each variant's strength (feature_dropout, spread_out_weight, or the SSL weight alpha) is chosen with seed 0 on the
validation split's Recall@50 over all items, never on the test set; the chosen setting then runs once per seed.
Slices are by training popularity: head = the 20% most-clicked items, tail = the rest, cold = items with at most 5
training interactions (a subset of the tail).
"""

from __future__ import annotations

import argparse

import numpy as np

from benchmarks.common import machine, mean_sd, scratch_tracking, table, write_card, write_section

RECIPES = {"synthetic": "two_tower_synthetic", "ml100k": "two_tower_movielens100k", "amazon": "two_tower_amazon"}
TITLES = {"synthetic": "long-tail synthetic catalogue (3,000 items, popularity power 1.2)",
          "ml100k": "MovieLens-100K (genres, year, title words; user demographics)",
          "amazon": "Amazon Industrial & Scientific (category path, brand, title words)"}
_M = "--model.init_args."
VARIANTS: dict[str, list[list[str]]] = {
    "none": [[]],
    "feature_dropout": [[f"{_M}feature_dropout={p}"] for p in (0.1, 0.3)],
    "spread_out": [[f"{_M}spread_out_weight={w}"] for w in (0.1, 1.0)],
    "rfm": [[f"{_M}ssl=rfm", f"{_M}ssl_weight={a}"] for a in (0.1, 0.3, 1.0)],
    "cfm": [[f"{_M}ssl=cfm", f"{_M}ssl_weight={a}"] for a in (0.1, 0.3, 1.0)],
    # not the paper's: CFM grouping features by MI / max entropy (plain MI pairs every feature with the id)
    "cfm_normalized": [[f"{_M}ssl=cfm", f"{_M}cfm_mi=normalized", f"{_M}ssl_weight={a}"] for a in (0.1, 0.3, 1.0)],
}
PAPER = ["none", "feature_dropout", "spread_out", "rfm", "cfm"]
METRICS = ["test/recall_at_10", "test/recall_at_50", "test/recall_at_100", "test/ndcg_at_10",
           "test/head/recall_at_50", "test/tail/recall_at_50", "test/cold/recall_at_50", "test/tail/ndcg_at_10"]
SELECT = "val/recall_at_50"


def _run(client, recipe: str, overrides: list[str], seed: int) -> tuple[dict[str, float], float]:
    """Test metrics and the best validation score of one CLI training run."""
    from fbrec.api.training import run_training

    run = run_training(recipe, [*overrides, "--experiment=benchmarks-ssl", f"--seed_everything={seed}",
                                "--trainer.enable_progress_bar=false"])
    logged = client.get_run(run).data.metrics
    val = max(m.value for m in client.get_metric_history(run, SELECT))
    return {m: logged.get(m, float("nan")) for m in METRICS}, val


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--dataset", choices=list(RECIPES), default="synthetic")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--variants", nargs="+", choices=list(VARIANTS), default=PAPER)
    parser.add_argument("--write", action="store_true")
    args = parser.parse_args()
    client = scratch_tracking("fbrec-ssl-")
    recipe = RECIPES[args.dataset]
    results: dict[str, dict[str, list[float]]] = {}
    chosen: dict[str, str] = {}
    for variant in args.variants:
        grid = VARIANTS[variant]
        tried = [(overrides, *_run(client, recipe, overrides, args.seeds[0])) for overrides in grid]
        best, first_metrics, val = max(tried, key=lambda t: t[2])
        chosen[variant] = (" ".join(o.removeprefix(_M) for o in best) or "-") + f" (val R@50 {val:.4f}; tried " + \
            ", ".join(f"{' '.join(o.removeprefix(_M) for o in t[0]) or '-'}: {t[2]:.4f}" for t in tried) + ")"
        runs = [first_metrics] + [_run(client, recipe, best, seed)[0] for seed in args.seeds[1:]]
        results[variant] = {m: [r[m] for r in runs] for m in METRICS}
        print(variant, {m.removeprefix("test/"): round(float(np.mean(v)), 4) for m, v in results[variant].items()},
              flush=True)

    base = results.get("none")

    def lift(variant: str, metric: str) -> str:
        if base is None or variant == "none":
            return "-"
        return f"{100 * (np.mean(results[variant][metric]) / np.mean(base[metric]) - 1):+.1f}%"

    headers = ["variant", *[m.removeprefix("test/") for m in METRICS], "tail R@50 vs none", "head R@50 vs none"]
    rows = [[variant, *[mean_sd(results[variant][m]) for m in METRICS], lift(variant, "test/tail/recall_at_50"),
             lift(variant, "test/head/recall_at_50")] for variant in results]
    subset = args.variants != PAPER
    command = f"python -m benchmarks.ssl --dataset {args.dataset}" + \
        (f" --variants {' '.join(args.variants)}" if subset else "") + " --write"
    title = f"SSL item towers on the {TITLES[args.dataset]}" + (f", variants {', '.join(args.variants)}" if subset
                                                                 else "")
    body = (f"### {title}\n\n`{command}` on {machine()}; mean ± sd over seeds "
            f"{args.seeds}; recipe `{recipe}`, each variant's setting chosen on validation Recall@50 (seed 0).\n\n"
            + table(headers, rows) + "\n\nSettings chosen on validation:\n"
            + "\n".join(f"- {v}: {c}" for v, c in chosen.items()))
    print(body)
    if args.write:   # a run of other variants than the paper's set gets its own section and leaves the card
        write_section(f"ssl-{args.dataset}" + ("-" + "-".join(args.variants) if subset else ""), body)
        if not subset:
            write_card(recipe, body.replace("### ", "#### "))


if __name__ == "__main__":
    main()
