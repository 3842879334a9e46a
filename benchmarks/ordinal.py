"""Ordinal feedback: GNOLR vs its ablations and the per-level NSB baseline, per-level test metrics over seeds.

python -m benchmarks.ordinal [--dataset synthetic|taobao] [--seeds 0 1 2] [--write]
Synthetic generator, levels click < cart < purchase (sampled non-clicked items are level 0), global temporal
split; the epoch is chosen on validation Recall@50 (all levels), never on the test set. Per-level metrics rank
the whole catalogue with each model's level-k query (GNOLR: the unified space with blocks > k zeroed; NSB: head k).
"""

from __future__ import annotations

import argparse

from benchmarks.common import machine, scratch_tracking, seeded_row, table, write_card, write_section

SETUPS = {
    "synthetic": (["gnolr_synthetic", "no_nesting_synthetic", "nolr_synthetic", "nsb_synthetic", "esmm_synthetic"],
                  ["cart", "purchase"], "Ordinal levels on the synthetic generator (click < cart < purchase)"),
    "taobao": (["gnolr_taobao", "nolr_taobao", "nsb_taobao", "esmm_taobao"], ["fav_cart", "buy"],
               "Ordinal levels on the Taobao sample, the GNOLR paper's protocol (pv < fav_cart < buy; global temporal "
               "split, cold test rows dropped: 2,155 test rows, 187 reach fav_cart, 47 buy)"),
}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--dataset", choices=list(SETUPS), default="synthetic")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--write", action="store_true")
    args = parser.parse_args()
    client = scratch_tracking("fbrec-ordinal-")
    recipes, upper, title = SETUPS[args.dataset]
    if args.dataset == "taobao":   # the paper's metric first: per-level AUC pooled over the logged test rows
        metrics_names = [f"test/level_{name}/pooled_auc" for name in upper] + ["test/recall_at_50"] + [
            f"test/level_{name}/recall_at_50" for name in upper]
    else:
        metrics_names = ["test/auc", "test/recall_at_50"] + [f"test/level_{name}/{m}" for name in upper
                                                               for m in ("auc", "recall_at_50")]
    rows = []
    for recipe in recipes:
        rows.append(seeded_row(client, recipe, ["--experiment=benchmarks-ordinal"], args.seeds, metrics_names))
        if args.write:
            write_card(recipe, f"Test metrics per level, mean ± sd over seeds {args.seeds} "
                        f"(`python -m benchmarks.ordinal --dataset {args.dataset} --write`, {machine()}):\n\n"
                        + table(["recipe", *[m.removeprefix("test/") for m in metrics_names]], [rows[-1]]))
    body = (f"### {title}\n\n"
            f"`python -m benchmarks.ordinal --dataset {args.dataset} --write` on {machine()}; mean ± sd over seeds "
            f"{args.seeds}; level-1 columns are the unprefixed ones; "
            + ("pooled_auc is the per-level AUC pooled over all logged test rows (each row one exposure; positives "
               "reach the level, every other logged row is a negative), the GNOLR paper's metric; the epoch is "
               "chosen on the product of the validation pooled AUCs. recall is full-catalogue (~40k items)."
               if args.dataset == "taobao" else "AUC is each user's full-catalogue AUC, averaged.")
            + "\n\n" + table(["recipe", *[m.removeprefix("test/") for m in metrics_names]], rows))
    print(body)
    if args.write:
        write_section(f"ordinal-{args.dataset}", body)


if __name__ == "__main__":
    main()
