"""Two-tower training step throughput: the feature towers without and with the SSL task, against MF + BPR, as
ratios measured in one run.

python -m benchmarks.two_tower_speed [--write]
MovieLens-100K with the `two_tower_movielens100k` features (4 item features incl. title words, 5 user features).
An example is one (user, positive item) row of the main batch; the SSL variants also encode ssl_batch_size
uniformly drawn items twice per step. Steps run through DMP with the fused sparse optimizer, outside Lightning.
"""

from __future__ import annotations

import argparse

import torch
import yaml

from benchmarks.common import Timer, machine, repeat_batches, table, write_section
from fbrec.data.datamodule import FeedbackDataModule
from fbrec.losses import bpr
from fbrec.models import MatrixFactorizationModule, TwoTowerModule
from fbrec.models.embedding import pair_logits

RECIPE = "models/two_tower_movielens100k/config.yaml"


def throughput(model, dm, batch_size: int, steps: int) -> float:
    model.prepare_from(dm)
    model.configure_model()
    opt = model.configure_optimizers()
    batches = repeat_batches(dm, batch_size, steps)

    def step(batch):
        opt.zero_grad()
        loss = bpr(*pair_logits(model, batch)) if isinstance(model, MatrixFactorizationModule) else model.loss(batch)
        loss.backward()
        opt.step()

    for b in batches[:3]:   # warm-up: allocation, first kernels
        step(b)
    with Timer() as t:
        for b in batches:
            step(b)
    return sum(len(b.user) for b in batches) / t.seconds


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--write", action="store_true")
    args = parser.parse_args()
    torch.manual_seed(0)
    data = yaml.safe_load(open(RECIPE))["data"]
    dm = FeedbackDataModule(**{**data, "num_negatives": 1})
    two_tower = {"embedding_dim": 32, "hidden_dims": [64], "output_dim": 32}
    variants = {
        "MF + BPR (embedding_dim 32)": lambda: MatrixFactorizationModule(dm.num_users, dm.num_items, 32, loss="bpr"),
        "two-tower, logQ softmax": lambda: TwoTowerModule(dm.num_users, dm.num_items, **two_tower),
        "+ CFM (256 SSL items)": lambda: TwoTowerModule(dm.num_users, dm.num_items, ssl="cfm", **two_tower),
        "+ CFM (1,024 SSL items)": lambda: TwoTowerModule(dm.num_users, dm.num_items, ssl="cfm",
                                                          ssl_batch_size=1024, **two_tower),
    }
    rows = []
    for batch_size in (512, 4096):
        base = None
        for name, make in variants.items():
            rate = throughput(make(), dm, batch_size, args.steps)
            base = base or rate
            rows.append([f"{batch_size:,}", name, f"{rate:,.0f}", f"{rate / base:.2f}"])
            print(rows[-1], flush=True)
    body = ("### Two-tower training step throughput (MovieLens-100K features)\n\n"
            f"`python -m benchmarks.two_tower_speed --write` on {machine()}; {args.steps} steps per row after 3 "
            "warm-up steps; ratios against MF + BPR at the same batch size, measured in the same run.\n\n"
            + table(["batch size", "model", "examples/s", "vs MF"], rows))
    print(body)
    if args.write:
        write_section("two-tower-speed", body)


if __name__ == "__main__":
    main()
