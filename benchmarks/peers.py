"""fbrec's MF-BPR against implicit's BPR on one MovieLens-100K split, timed in one run: who reaches the same NDCG@10
first (issue 15's target: fbrec in no more time than the peer).

python -m benchmarks.peers [--write] [--seeds 0 1 2]   (--model als: benchmarks/peers_als.py)
implicit runs in its own environment (benchmarks/.venv-peers, created on first use with `pip install implicit`;
never a runtime dependency of fbrec), as a child process that fits and writes its factors; both models are scored
by fbrec's full-ranking evaluator on the same test split (training and validation items masked). The peer's
factors, learning rate and iterations are chosen per seed on that seed's validation split (GRID). fbrec: the
`bpr_movielens100k` recipe's model and settings; an epoch callback evaluates after each epoch outside the timer and
stops once fbrec's test NDCG@10 reaches the peer's. Times are the fit calls alone (no data preparation, imports or
process start on either side).
"""

from __future__ import annotations

import argparse
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np
import scipy.sparse as sp

from benchmarks.common import machine, peer_python, table, write_section

ROOT = Path(__file__).resolve().parent
PEER = {"factors": 64, "lr": 0.01, "reg": 0.01, "iterations": 100}   # implicit's defaults, 64 factors
GRID = {"factors": (64, 128), "lr": (0.005, 0.01, 0.02), "reg": (0.01,), "iterations": (50, 100, 200)}


def fit_peer(train: sp.csr_matrix, seed: int, tmp: Path, setting: dict | None = None
             ) -> tuple[np.ndarray, np.ndarray, float]:
    setting = setting or PEER
    src, out = tmp / "train.npz", tmp / f"peer_{seed}.npz"
    sp.save_npz(src, train)
    subprocess.run([str(peer_python()), str(ROOT / "peer_env" / "implicit_bpr.py"), str(src), str(out),
                    str(setting["factors"]), str(setting["lr"]), str(setting["reg"]), str(setting["iterations"]),
                    str(seed)], check=True)
    got = np.load(out)
    return got["user_factors"], got["item_factors"], float(got["fit_seconds"])


def tune_peer(seed: int, tmp: Path) -> dict:
    """implicit's best grid setting by validation NDCG@10 (trained on the training split only)."""
    import itertools

    from fbrec.data.datamodule import FeedbackDataModule
    from fbrec.data.prepare import interactions_csr

    dm = FeedbackDataModule("movielens-100k", seed=seed)
    d = dm.data
    train = interactions_csr(d.train, d.num_users, d.num_items).tocsr()
    train.data[:] = 1
    best, best_ndcg = None, -1.0
    for values in itertools.product(*GRID.values()):
        setting = dict(zip(GRID, values, strict=True))
        users, items, _ = fit_peer(train, seed, tmp, setting)
        score = ndcg(users, items, dm.eval_set("val"))
        if score > best_ndcg:
            best, best_ndcg = setting, score
    return best


def ndcg(user_emb, item_emb, es) -> float:
    from fbrec.evaluation import embedding_scorer, evaluate_scores

    return evaluate_scores(embedding_scorer(user_emb, item_emb), es, (10,), auc=False).summary()["ndcg_at_10"]


def fit_fbrec(dm, target: float, seed: int, max_epochs: int = 60) -> tuple[float, float, int]:
    """Seconds of training (epochs only) until test NDCG@10 >= target; (seconds, ndcg, epochs)."""
    import lightning as L
    import yaml

    from fbrec.embeddings import register_strategies
    from fbrec.models import MatrixFactorizationModule

    recipe = yaml.safe_load((ROOT.parent / "models" / "bpr_movielens100k" / "config.yaml").read_text())
    args = {k: v for k, v in recipe["model"]["init_args"].items()}
    args.update(auc=False)
    L.seed_everything(seed, verbose=False)
    model = MatrixFactorizationModule(dm.num_users, dm.num_items, **args)
    es = dm.eval_set("test")

    class Race(L.Callback):
        def __init__(self):
            self.seconds, self.best, self.epochs, self._start = 0.0, 0.0, 0, 0.0

        def on_train_epoch_start(self, trainer, module):
            self._start = time.perf_counter()

        def on_train_epoch_end(self, trainer, module):
            self.seconds += time.perf_counter() - self._start            # the clock stops for the check
            users, items = module.export_embeddings(dm.num_users, dm.num_items)
            self.best, self.epochs = ndcg(users, items, es), trainer.current_epoch + 1
            if self.best >= target:
                trainer.should_stop = True

    register_strategies()
    race = Race()
    trainer = L.Trainer(max_epochs=max_epochs, accelerator="cpu", devices=1, strategy="torchrec", logger=False,
                        enable_progress_bar=False, enable_model_summary=False, enable_checkpointing=False,
                        limit_val_batches=0, use_distributed_sampler=False, num_sanity_val_steps=0,
                        callbacks=[race])
    trainer.fit(model, dm)
    return race.seconds, race.best, race.epochs


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--write", action="store_true")
    parser.add_argument("--model", choices=["bpr", "als"], default="bpr",
                        help="bpr: the race below; als: exact-objective WMF vs implicit's ALS (benchmarks.peers_als)")
    parser.add_argument("--datasets", nargs="+", default=["movielens-100k", "coat"], help="--model als only")
    args = parser.parse_args()
    if args.model == "als":
        from benchmarks import peers_als

        return peers_als.main(args)
    import torch

    from fbrec.data.datamodule import FeedbackDataModule
    from fbrec.data.prepare import interactions_csr

    rows, chosen = [], []
    with tempfile.TemporaryDirectory() as tmp:
        for seed in args.seeds:
            setting = tune_peer(seed, Path(tmp))   # on the seed's validation split, as fbrec's recipe was tuned
            chosen.append(setting)
            # implicit has no validation split: both train on training + validation pairs
            import yaml

            data = yaml.safe_load((ROOT.parent / "models" / "bpr_movielens100k" / "config.yaml").read_text())["data"]
            dm = FeedbackDataModule("movielens-100k", seed=seed, batch_size=data["batch_size"],
                                    num_negatives=data["num_negatives"], merge_validation=True)
            d = dm.data
            train = interactions_csr(d.train, d.num_users, d.num_items).tocsr()
            train.data[:] = 1
            users, items, peer_s = fit_peer(train, seed, Path(tmp), setting)
            peer_ndcg = ndcg(users, items, dm.eval_set("test"))
            fb_s, fb_ndcg, epochs = fit_fbrec(dm, peer_ndcg, seed)
            rows.append([seed, f"{setting['factors']} / {setting['lr']} / {setting['iterations']}", f"{peer_ndcg:.4f}", f"{peer_s:.2f}", f"{fb_ndcg:.4f}", epochs, f"{fb_s:.2f}",
                         f"{fb_s / peer_s:.2f}x"])
            print(rows[-1], flush=True)
    body = (f"### fbrec MF-BPR vs implicit BPR on MovieLens-100K (time to the peer's test NDCG@10)\n\n"
            f"`python -m benchmarks.peers --seeds {' '.join(map(str, args.seeds))} --write` on {machine()}, "
            f"torch threads {torch.get_num_threads()}; implicit 0.7.2 in its own environment (all cores). "
            "The peer's settings are chosen per seed on that seed's validation split (grid: factors "
            f"{GRID['factors']}, lr {GRID['lr']}, iterations {GRID['iterations']}, regularization {GRID['reg']}), as "
            "fbrec's recipe was tuned on validation (benchmarks/tune.py); then both are fitted on training + validation pairs; fbrec: the `bpr_movielens100k` recipe's model, stopped at the "
            "first epoch whose test NDCG@10 reaches the peer's (checked outside the timer; this is a race, not model "
            "selection). Same split per seed, same full-ranking evaluator.\n\n"
            + table(["seed", "implicit factors / lr / iterations", "implicit NDCG@10", "implicit fit (s)", "fbrec NDCG@10", "fbrec epochs", "fbrec fit (s)",
                     "fbrec / implicit time"], rows))
    print(body)
    if args.write:
        write_section("peers", body)


if __name__ == "__main__":
    main()
