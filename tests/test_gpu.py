"""The GPU path: TorchRec TBE lookups and training on CUDA (NCCL), GPU FAISS, evaluation on CUDA.

Every test skips itself without a CUDA device (CI has none); `scripts/gpu_check.sh` runs them on a GPU machine."""

from __future__ import annotations

import lightning as L
import numpy as np
import pytest
import scipy.sparse as sp
import torch

from fbrec.data.evalset import EvalSet
from fbrec.evaluation import RankingEvaluator

pytestmark = [pytest.mark.gpu,
              pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device (none here)")]


def test_tbe_lookup_on_cuda_matches_the_cpu_table():
    from fbrec.embeddings import shard
    from fbrec.nn import MatrixFactorization

    torch.manual_seed(0)
    reference = MatrixFactorization(500, 400, 16, device="cpu")
    sharded = shard(MatrixFactorization(500, 400, 16, device="meta"), device=torch.device("cuda"),
                    sharding={"user": "table_wise", "item": "table_wise"})
    with torch.no_grad():
        for key, value in sharded.state_dict().items():
            ref = reference.state_dict()[key.replace("_dmp_wrapped_module.", "").replace("module.", "")]
            for s in value.local_shards() if hasattr(value, "local_shards") else ():
                r0, c0 = s.metadata.shard_offsets
                r, c = s.metadata.shard_sizes
                s.tensor.copy_(ref[r0:r0 + r, c0:c0 + c])
    users, items = torch.tensor([0, 7, 499]), torch.tensor([3, 3, 399])
    p, q = sharded(users.cuda(), items.cuda())
    p_ref, q_ref = reference(users, items)
    assert p.is_cuda
    torch.testing.assert_close(p.cpu(), p_ref)
    torch.testing.assert_close(q.cpu(), q_ref)


def test_mf_trains_and_evaluates_on_cuda_with_nccl(planted_dir, tmp_path):
    from fbrec.data.datamodule import FeedbackDataModule
    from fbrec.embeddings import register_strategies
    from fbrec.models import MatrixFactorizationModule

    register_strategies()
    dm = FeedbackDataModule(prepared_dir=str(planted_dir), batch_size=64, num_negatives=4)
    model = MatrixFactorizationModule(dm.num_users, dm.num_items, embedding_dim=16, loss="bpr", learning_rate=0.2,
                                      ks=(1, 5))
    class Backend(L.Callback):
        seen: dict = {}

        def on_train_start(self, trainer, module):
            self.seen.update(backend=torch.distributed.get_backend(), device=module.device.type)

    probe = Backend()
    trainer = L.Trainer(max_epochs=8, accelerator="gpu", devices=1, strategy="torchrec", logger=False,
                        enable_progress_bar=False, enable_model_summary=False, use_distributed_sampler=False,
                        num_sanity_val_steps=0, default_root_dir=tmp_path, enable_checkpointing=False,
                        callbacks=[probe])
    trainer.fit(model, dm)
    assert probe.seen == {"backend": "nccl", "device": "cuda"}
    result = trainer.test(model, dm, verbose=False)[0]
    assert result["test/recall_at_5"] > 0.5   # the planted clusters are learned on the GPU too


def test_evaluation_on_cuda_equals_cpu():
    rng = np.random.default_rng(0)
    exclude = sp.csr_matrix((rng.random((200, 300)) < 0.1).astype(np.float32))
    truth = sp.csr_matrix(((rng.random((200, 300)) < 0.03) & (exclude.toarray() == 0)).astype(np.float32))
    es = EvalSet(exclude, truth)
    scores = torch.from_numpy(rng.normal(size=(200, 300)).astype(np.float32))
    users = es.users
    cpu, gpu = RankingEvaluator(es, (5, 20)), RankingEvaluator(es, (5, 20))
    cpu.update(users, scores[users])
    gpu.update(users, scores[users].cuda())
    assert gpu.summary() == pytest.approx(cpu.summary(), rel=1e-5)


def test_gpu_faiss_search_equals_the_cpu_index():
    from fbrec.retrieval import build_index, gpu_available, search, to_gpu

    if not gpu_available():
        pytest.skip("faiss was built without GPU support (install the gpu extra)")
    rng = np.random.default_rng(0)
    items = rng.normal(size=(5000, 32)).astype(np.float32)
    queries = rng.normal(size=(50, 32)).astype(np.float32)
    index = build_index(items, "Flat")
    _, want = search(index, queries, 10)
    gpu_index = to_gpu(index)
    assert "Gpu" in type(gpu_index).__name__
    _, got = search(gpu_index, queries, 10)
    assert (got == want).mean() > 0.99
