"""Two CPU processes (gloo) with TorchRecStrategy: each rank holds only its shard, training matches one process,
and sharded checkpoints save and restore."""

from __future__ import annotations

import json
import os
from pathlib import Path

import lightning as L
import pytest
import torch
from conftest import PLANTED_ITEM_FEATURES

from fbrec.data.datamodule import FeedbackDataModule
from fbrec.embeddings import register_strategies
from fbrec.models import LightGCNModule, MatrixFactorizationModule, TwoTowerModule


class _Probe(L.Callback):
    """Records, on every rank, which rows of each table this rank holds and the final val metrics."""

    def __init__(self, out_dir: str, save_to: str | None = None):
        self.out_dir, self.save_to = out_dir, save_to

    def on_fit_end(self, trainer, module) -> None:
        shards = {}
        for key, value in module.model.state_dict().items():
            if hasattr(value, "local_shards"):
                shards[key] = [[list(s.metadata.shard_offsets), list(s.metadata.shard_sizes)]
                               for s in value.local_shards()]
        metrics = {k: float(v) for k, v in trainer.callback_metrics.items() if k.startswith("val/")}
        if self.save_to:   # inside the workers: spawn's parent process holds no trained shards
            trainer.save_checkpoint(self.save_to)
        dense_outside = [p.detach().double().sum().item() for p in module.alignment.parameters()] \
            if getattr(module, "alignment", None) is not None else []
        with open(os.path.join(self.out_dir, f"rank{trainer.global_rank}.json"), "w") as f:
            json.dump({"shards": shards, "metrics": metrics, "world": trainer.world_size,
                       "plan": module.sharding_plan(), "dense_outside": dense_outside}, f)


def _mf(dm):
    return MatrixFactorizationModule(dm.num_users, dm.num_items, embedding_dim=16, loss="bpr", learning_rate=0.2,
                                     ks=(1, 5), sharding={"user": "row_wise", "item": "table_wise"})


def _two_tower(dm):
    return TwoTowerModule(dm.num_users, dm.num_items, embedding_dim=16, output_dim=16, ssl="cfm", ssl_batch_size=16,
                          learning_rate=0.1, dense_learning_rate=1e-2, ks=(1, 5),
                          sharding={"user_id": "row_wise", "item_id": "row_wise", "item_tags": "table_wise"})


def _fit(planted_dir, tmp_path, devices: int, ckpt=None, epochs: int = 30, save_to=None, make=_mf):
    register_strategies()
    torch.manual_seed(0)
    dm = FeedbackDataModule(prepared_dir=str(planted_dir), batch_size=32 // devices, num_negatives=4,
                            item_features=PLANTED_ITEM_FEATURES)
    model = make(dm)
    out = tmp_path / f"d{devices}"
    out.mkdir(exist_ok=True)
    trainer = L.Trainer(max_epochs=epochs, accelerator="cpu", devices=devices, strategy="torchrec_spawn",
                        logger=False, enable_progress_bar=False, enable_model_summary=False,
                        use_distributed_sampler=False, enable_checkpointing=False, num_sanity_val_steps=0,
                        check_val_every_n_epoch=epochs, callbacks=[_Probe(str(out), save_to)], default_root_dir=tmp_path)
    trainer.fit(model, dm, ckpt_path=ckpt)
    return [json.loads((out / f"rank{r}.json").read_text()) for r in range(devices)]


def test_two_processes_shard_tables_and_match_one_process(planted_dir, tmp_path):
    one = _fit(planted_dir, tmp_path, 1)
    two = _fit(planted_dir, tmp_path, 2)
    assert [r["world"] for r in two] == [2, 2]
    assert "row_wise" in two[0]["plan"]["user"]
    # row-wise: the user table is split, each rank holding a different half of the rows
    user_key = next(k for k in two[0]["shards"] if "user" in k)
    rows0, rows1 = (r["shards"][user_key] for r in two)
    assert len(rows0) == len(rows1) == 1 and rows0[0][0] != rows1[0][0]
    assert rows0[0][1][0] + rows1[0][1][0] == one[0]["shards"][user_key][0][1][0]
    # table-wise: the item table lives on exactly one rank
    item_key = next(k for k in two[0]["shards"] if "item" in k)
    assert sorted(len(r["shards"][item_key]) for r in two) == [0, 1]
    # the same data, half per rank: converged metrics agree within tolerance
    m1, m2 = one[0]["metrics"], two[0]["metrics"]
    assert m2["val/hit_rate_at_5"] == pytest.approx(m1["val/hit_rate_at_5"], abs=0.1)
    assert m2["val/hit_rate_at_5"] >= 0.8
    assert two[0]["metrics"] == two[1]["metrics"]


def test_two_process_checkpoint_restores_and_resumes(planted_dir, tmp_path):
    ckpt = tmp_path / "ckpt2"
    first = _fit(planted_dir, tmp_path, 2, epochs=30, save_to=str(ckpt))
    assert len(list(ckpt.glob("*.distcp"))) == 2, "each rank writes its own shard file"
    resumed = _fit(planted_dir, tmp_path, 2, ckpt=str(ckpt), epochs=31)
    assert resumed[0]["metrics"], "resumed run validated"
    # resuming from the trained state keeps the quality; an untrained model would be near chance
    assert resumed[0]["metrics"]["val/hit_rate_at_5"] >= first[0]["metrics"]["val/hit_rate_at_5"] - 0.1


def test_the_ssl_two_tower_trains_across_two_processes_with_sharded_feature_tables(planted_dir, tmp_path):
    """One DMP forward per step carries the users, the main items and both SSL views, so DDP syncs the towers once."""
    two = _fit(planted_dir, tmp_path, 2, epochs=30, make=_two_tower)
    assert "row_wise" in two[0]["plan"]["item_id"] and "table_wise" in two[0]["plan"]["item_tags"]
    item_key = next(k for k in two[0]["shards"] if "item_id" in k)
    assert all(len(r["shards"][item_key]) == 1 for r in two), "each rank holds half of the item id rows"
    assert two[0]["metrics"]["val/hit_rate_at_5"] >= 0.8
    assert two[0]["metrics"] == two[1]["metrics"]


def test_lightgcn_with_rlmrec_alignment_trains_across_two_processes_on_sharded_tables(planted_dir,
                                                                                     planted_profiles, tmp_path):
    """Every step looks up every row through TorchRec's all-to-all and propagates the whole graph on each rank; the
    alignment projection lives outside the DMP, so its gradients are averaged by hand: it must stay identical."""
    def make(dm):
        return LightGCNModule(dm.num_users, dm.num_items, embedding_dim=16, num_layers=2, learning_rate=0.2,
                              ks=(1, 5), sharding={"user": "row_wise", "item": "row_wise"},
                              alignment={"profiles": str(planted_profiles), "negatives": 16, "weight": 0.1})

    two = _fit(planted_dir, tmp_path, 2, epochs=30, make=make)
    assert all(len(r["shards"][k]) == 1 for r in two for k in r["shards"]), "each rank holds a share of each table"
    assert two[0]["metrics"]["val/hit_rate_at_5"] >= 0.8
    assert two[0]["metrics"] == two[1]["metrics"]
    assert two[0]["dense_outside"] and two[0]["dense_outside"] == two[1]["dense_outside"], \
        "the alignment projection diverged across ranks"


def test_wmf_on_the_exact_objective_trains_across_two_processes_with_the_gradient_solver(planted_dir, tmp_path):
    """The all-pairs loss's Gramian comes from every item row looked up through DMP on each rank; each rank's rows
    carry their share of their users' all-pairs terms, so the two ranks together train the exact loss."""
    from fbrec.models import AllPairsMFModule

    def make(dm):
        return AllPairsMFModule(dm.num_users, dm.num_items, embedding_dim=16, alpha=5.0, regularization=0.1,
                                solver="gradient", learning_rate=0.2, ks=(1, 5),
                                sharding={"user": "row_wise", "item": "row_wise"})

    two = _fit(planted_dir, tmp_path, 2, epochs=30, make=make)
    assert all(len(r["shards"][k]) == 1 for r in two for k in r["shards"]), "each rank holds a share of each table"
    assert two[0]["metrics"]["val/hit_rate_at_5"] >= 0.8, two[0]["metrics"]
    assert two[0]["metrics"] == two[1]["metrics"]


class _EvalProbe(L.Callback):
    """After the last validation: how many users this rank evaluated, the logged metrics, and (rank 0) the same
    metrics recomputed from the exported embeddings in one process."""

    def __init__(self, out_dir: str):
        self.out_dir = out_dir

    def on_fit_end(self, trainer, module) -> None:
        from fbrec.evaluation import embedding_scorer, evaluate_scores

        dm = trainer.datamodule
        users, items = module.export_embeddings(dm.num_users, dm.num_items)   # collective
        out = {"eval_users": module.eval_users_on_this_rank, "total": len(dm.eval_set("val").users),
               "logged": {k: float(v) for k, v in trainer.callback_metrics.items() if k.startswith("val/")}}
        if trainer.global_rank == 0:
            ref = evaluate_scores(embedding_scorer(users, items), dm.eval_set("val"), module.ks).summary()
            out["reference"] = {f"val/{k}": v for k, v in ref.items() if "/" not in k and "num_users" not in k}
        with open(os.path.join(self.out_dir, f"eval{trainer.global_rank}.json"), "w") as f:
            json.dump(out, f)


@pytest.mark.slow
def test_evaluation_is_sharded_across_processes_and_gathered_to_the_same_metrics(planted_dir, tmp_path):
    register_strategies()
    torch.manual_seed(0)
    dm = FeedbackDataModule(prepared_dir=str(planted_dir), batch_size=16, num_negatives=4, eval_batch_size=8)
    model = _mf(dm)
    trainer = L.Trainer(max_epochs=3, accelerator="cpu", devices=2, strategy="torchrec_spawn", logger=False,
                        enable_progress_bar=False, enable_model_summary=False, use_distributed_sampler=False,
                        enable_checkpointing=False, num_sanity_val_steps=0, callbacks=[_EvalProbe(str(tmp_path))],
                        default_root_dir=tmp_path)
    trainer.fit(model, dm)
    ranks = [json.loads((tmp_path / f"eval{r}.json").read_text()) for r in range(2)]
    total = ranks[0]["total"]
    assert sorted(r["eval_users"] for r in ranks) == [total // 2, total - total // 2], "each rank ranks half"
    assert ranks[0]["logged"] == ranks[1]["logged"]
    for key, value in ranks[0]["reference"].items():
        assert ranks[0]["logged"][key] == pytest.approx(value, abs=1e-6), key


def _probe_worker(rank: int, world: int, folders: list[str], port: int, results) -> None:
    import torch.distributed as dist

    from fbrec.embeddings.strategy import check_shared_folder
    from fbrec.errors import ConfigError

    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world)
    try:
        check_shared_folder(Path(folders[rank]), rank, world, "nonce")
        results[rank] = "ok"
    except ConfigError as exc:
        results[rank] = str(exc)
    finally:
        dist.destroy_process_group()


@pytest.mark.slow
@pytest.mark.parametrize("shared", [True, False], ids=["shared-folder", "per-node-folders"])
def test_a_checkpoint_folder_rank_0_cannot_see_is_refused_at_start(shared, tmp_path):
    """Two gloo processes probe the checkpoint folder: one folder passes (no probe left behind); a folder that is a
    different place for rank 1 (a node's local disk) is refused on every rank with one line."""
    import socket

    import torch.multiprocessing as mp

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    folders = [str(tmp_path / "ckpt"), str(tmp_path / ("ckpt" if shared else "other-node-disk"))]
    results = mp.Manager().dict()
    mp.spawn(_probe_worker, args=(2, folders, port, results), nprocs=2, join=True)
    if shared:
        assert dict(results) == {0: "ok", 1: "ok"} and not list((tmp_path / "ckpt").iterdir())
    else:
        for rank in (0, 1):
            assert "is not shared: rank 0 does not see the files of rank(s) [1]" in results[rank], dict(results)
            assert "shared storage" in results[rank]
