"""Unbiased learning from MNAR clicks: recipes selected on validation, tested on an MCAR test set.

python -m benchmarks.mnar [--dataset coat|ml100k_semisynthetic] [--seeds 0 1 2] [--write]
For each recipe a small grid is searched with seed 0 on the validation split (10% of the MNAR training clicks,
ranked over the catalogue: val/ndcg_at_5), never on the test set; the chosen setting is then trained with every
seed and evaluated on Coat's MCAR test (each user's 16 random items ranked; ratings >= 4 relevant).
"""

from __future__ import annotations

import argparse
import itertools

from benchmarks.common import machine, scratch_tracking, seeded_row, table, write_card, write_section

GRIDS = {
    "popularity": {},
    "mf": {"model.init_args.embedding_dim": [16, 64], "model.init_args.learning_rate": [0.05, 0.2]},
    "wmf": {"model.init_args.loss_options": ["{alpha: 1.0}", "{alpha: 5.0}"],
                 "model.init_args.learning_rate": [0.05, 0.2]},
    "expomf": {"model.init_args.embedding_dim": [16, 64], "model.init_args.init_mu": [0.01, 0.1]},
    "relmf": {"model.init_args.embedding_dim": [16, 64], "model.init_args.learning_rate": [0.05, 0.2]},
    "relmf_clipped": {"model.init_args.loss_options": ["{kind: log, clip: 0.2}", "{kind: log, clip: 0.5}"],
                           "model.init_args.learning_rate": [0.05, 0.2]},
}
DESCRIPTIONS = {
    "coat": "Coat: MNAR training, MCAR test (ratings >= 4 relevant; each user's 16 random test items ranked)",
    "ml100k_semisynthetic": "MovieLens-100K semi-synthetic: MNAR clicks from known relevance x exposure (power 1), "
                            "MCAR ground-truth test (50 random unclicked items per user, drawn relevance)",
}
METRICS = [f"test/{m}_at_{k}" for m in ("dcg", "recall", "map") for k in (1, 3, 5)] + ["test/tail/dcg_at_5",
                                                                                     "test/tail/recall_at_5"]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--dataset", choices=list(DESCRIPTIONS), default="coat")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--write", action="store_true")
    args = parser.parse_args()
    from fbrec.api.training import run_training

    client = scratch_tracking("fbrec-mnar-")
    quiet = ["--trainer.enable_progress_bar=false", "--experiment=benchmarks-mnar"]
    rows, chosen = [], {}
    for family, grid in GRIDS.items():
        recipe = f"{family}_{args.dataset}"
        best, best_val = [], -1.0
        for values in itertools.product(*grid.values()):
            overrides = [f"--{k}={v}" for k, v in zip(grid, values, strict=True)]
            run = run_training(recipe, [*overrides, "--seed_everything=0", *quiet])
            val = max(m.value for m in client.get_metric_history(run, "val/ndcg_at_5"))
            if val > best_val:
                best, best_val = overrides, val
        chosen[recipe] = (best, best_val)
        rows.append(seeded_row(client, recipe, [*best, *quiet], args.seeds, METRICS))
        if args.write:
            write_card(recipe, f"MCAR test, mean ± sd over seeds {args.seeds}, setting chosen on validation "
                        f"({' '.join(best) or 'defaults'}; val NDCG@5 {best_val:.4f}); "
                        f"`python -m benchmarks.mnar --dataset {args.dataset} --write` on {machine()}:\n\n"
                        + table(["recipe", *[m.removeprefix('test/') for m in METRICS]], [rows[-1]]))
    headers = ["recipe", *[m.removeprefix("test/") for m in METRICS]]
    choice = "\n".join(f"- `{r}`: {' '.join(b) or 'recipe defaults'} (val NDCG@5 {v:.4f})" for r, (b, v) in
                       chosen.items())
    body = (f"### {DESCRIPTIONS[args.dataset]}\n\n"
            f"`python -m benchmarks.mnar --dataset {args.dataset} --write` on {machine()}; mean ± sd over seeds "
            f"{args.seeds}. "
            "DCG is un-normalised (Saito et al.'s convention) and averaged over users with at least one relevant "
            "test item; `tail` = items outside the 20% most-clicked in training.\n\n"
            + table(headers, rows) + "\n\nSettings chosen on the validation split (seed 0):\n" + choice)
    print(body)
    if args.write:
        write_section("mnar-coat" if args.dataset == "coat" else f"mnar-{args.dataset}", body)


if __name__ == "__main__":
    main()
