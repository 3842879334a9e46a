"""(b) MF/BPR training throughput (positive examples per second) on 2 CPU cores.

python -m benchmarks.training [--write]
Measures the Lightning recipe end to end (data loader, DMP lookups, fused row-wise Adagrad in backward, logging)
and the bare TorchRec step underneath it, at several batch sizes.
"""

from __future__ import annotations

import argparse

import lightning as L
import torch

from benchmarks.common import Timer, machine, repeat_batches, table, write_section
from fbrec.data.datamodule import FeedbackDataModule
from fbrec.embeddings import register_strategies
from fbrec.losses import bpr
from fbrec.models import MatrixFactorizationModule
from fbrec.models.embedding import pair_logits

DATA = {"num_users": 20_000, "num_items": 10_000, "sessions_per_user": 30, "seed": 0}


def lightning_throughput(dm, batch_size: int, epochs: int = 2) -> float:
    register_strategies()
    dm.batch_size = batch_size
    dm._train = None
    model = MatrixFactorizationModule(dm.num_users, dm.num_items, embedding_dim=64, loss="bpr", learning_rate=0.1)
    trainer = L.Trainer(max_epochs=epochs, accelerator="cpu", devices=1, strategy="torchrec", logger=False,
                        enable_progress_bar=False, enable_model_summary=False, enable_checkpointing=False,
                        limit_val_batches=0, use_distributed_sampler=False, num_sanity_val_steps=0)
    trainer.fit(model, dm)   # epoch 1 warms up (planner, allocation); time the rest
    trainer2 = L.Trainer(max_epochs=epochs + 2, accelerator="cpu", devices=1, strategy="torchrec", logger=False,
                         enable_progress_bar=False, enable_model_summary=False, enable_checkpointing=False,
                         limit_val_batches=0, use_distributed_sampler=False, num_sanity_val_steps=0)
    del trainer2
    with Timer() as t:
        trainer.fit_loop.max_epochs = epochs * 2
        trainer.fit(model, dm)
    return dm.data.train.height * epochs / t.seconds


def raw_throughput(dm, batch_size: int, steps: int = 50) -> float:
    model = MatrixFactorizationModule(dm.num_users, dm.num_items, embedding_dim=64, loss="bpr", learning_rate=0.1)
    model.configure_model()
    opt = model.configure_optimizers()
    batches = repeat_batches(dm, batch_size, steps)
    for b in batches[:3]:
        loss = bpr(*pair_logits(model, b))
        loss.backward()
        opt.step()
    with Timer() as t:
        for b in batches:
            opt.zero_grad()
            loss = bpr(*pair_logits(model, b))
            loss.backward()
            opt.step()
    return sum(len(b.user) for b in batches) / t.seconds


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--write", action="store_true")
    args = parser.parse_args()
    torch.manual_seed(0)
    dm = FeedbackDataModule("synthetic", dataset_options=DATA, num_negatives=1)
    rows = []
    for bs in (1024, 8192, 32768):
        raw = raw_throughput(dm, bs)
        lit = lightning_throughput(dm, bs)
        rows.append([f"{bs:,}", f"{raw:,.0f}", f"{lit:,.0f}", f"{lit / raw:.2f}"])
        print(rows[-1], flush=True)
    body = (f"### (b) MF + BPR training throughput (embedding_dim 64, 1 sampled negative, fused row-wise Adagrad)\n\n"
            f"`python -m benchmarks.training --write` on {machine()}; synthetic data "
            f"{dm.num_users:,} users x {dm.num_items:,} items, {dm.data.train.height:,} training positives.\n\n"
            + table(["batch size", "bare TorchRec step (examples/s)", "Lightning recipe (examples/s)",
                     "Lightning / bare"], rows)
            + "\n\nAn example is one (user, positive, negative) triple; each costs 3 embedding lookups "
              "(user repeated per item) forward and backward.")
    print(body)
    if args.write:
        write_section("training", body)


if __name__ == "__main__":
    main()
