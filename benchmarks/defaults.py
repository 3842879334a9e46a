"""Which recipe should be the default: the candidates a practitioner tries first (popularity, MF-BPR, WMF by ALS),
each dataset's shipped recipe of that kind, quality and time over seeds, in one run on one machine.

python -m benchmarks.defaults [--seeds 0 1 2] [--datasets synthetic movielens-100k coat tmall-mbcgcn] [--write]
Each seed drives initialisation and the data stream; the epoch is chosen on validation, the numbers are test metrics
of that checkpoint. Time: `time/train_seconds` (the training steps or ALS sweeps alone, as the run logs it) and the
whole run (config, data, validation passes, test, logging) measured around it.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from benchmarks.common import machine, mean_sd, scratch_tracking, table, write_section

# dataset -> (headline test metric, [(candidate, recipe)]); each recipe is the shipped one of its kind
CANDIDATES = {
    "synthetic": ("test/ndcg_at_10", [("popularity", "popularity_synthetic"), ("MF-BPR", "bpr_synthetic"),
                                      ("WMF-ALS", "wmf_als_synthetic")]),
    "movielens-100k": ("test/ndcg_at_10", [("popularity", "popularity_movielens100k"),
                                           ("MF-BPR", "bpr_movielens100k"), ("WMF-ALS", "wmf_als_movielens100k")]),
    "coat": ("test/saito_dcg_at_5", [("popularity", "popularity_coat"), ("MF (sampled, log-loss)", "mf_coat"),
                                     ("WMF-ALS", "wmf_als_coat")]),
    "tmall-mbcgcn": ("test/ndcg_at_10", [("popularity (buys)", "popularity_tmall"), ("MF-BPR", "bpr_tmall"),
                                         ("WMF-ALS (levels)", "wmf_als_tmall_levels")]),
}


def measure(client, recipe: str, seeds: list[int], metric: str) -> tuple[list[float], list[float], list[float]]:
    from fbrec.api.training import run_training

    quality, train, whole = [], [], []
    for seed in seeds:
        start = time.perf_counter()
        run = run_training(recipe, ["--experiment=benchmarks", f"--seed_everything={seed}",
                                    "--trainer.enable_progress_bar=false"])
        whole.append(time.perf_counter() - start)
        logged = client.get_run(run).data.metrics
        quality.append(logged.get(metric, float("nan")))
        train.append(logged.get("time/train_seconds", float("nan")))
    return quality, train, whole


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--datasets", nargs="+", default=list(CANDIDATES), choices=list(CANDIDATES))
    parser.add_argument("--write", action="store_true")
    args = parser.parse_args()
    client = scratch_tracking("fbrec-defaults-")
    rows, winners = [], {}
    for dataset in args.datasets:
        metric, candidates = CANDIDATES[dataset]
        means = {}
        for kind, recipe in candidates:
            quality, train, whole = measure(client, recipe, args.seeds, metric)
            means[kind] = float(np.mean(quality))
            rows.append([dataset, kind, f"`{recipe}`", metric.removeprefix("test/"), mean_sd(quality),
                         f"{np.mean(train):.1f}", f"{np.mean(whole):.1f}"])
            print(rows[-1], flush=True)
        best = max(means, key=means.get)
        runner_up = max((k for k in means if k != best), key=means.get)
        winners[dataset] = f"{best} ({means[best] / means[runner_up]:.2f}x {runner_up})"
    body = (f"### Default recipe, chosen by measurement: popularity, MF-BPR and WMF-ALS per dataset\n\n"
            f"`python -m benchmarks.defaults --write` on {machine()}; mean ± sd over seeds {args.seeds} (each seed "
            f"drives initialisation and the data stream), the epoch chosen on validation, the test metric of that "
            f"checkpoint. Each candidate is the dataset's shipped recipe of that kind, as shipped. train (s): the "
            f"training steps or ALS sweeps alone (`time/train_seconds`); run (s): the whole `fbrec train` in "
            f"process (config, data, every validation pass, test, logging).\n\n"
            + table(["dataset", "candidate", "recipe", "metric", "test", "train (s)", "run (s)"], rows)
            + "\n\nBest per dataset: " + "; ".join(f"{d}: {w}" for d, w in winners.items()) + ".")
    print(body)
    if args.write:
        write_section("defaults", body)


if __name__ == "__main__":
    main()
