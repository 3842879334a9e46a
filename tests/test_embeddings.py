"""Table specs, KJT construction and DMP wrapping for every sharding type on one CPU process."""

from __future__ import annotations

import pytest
import torch

from fbrec.embeddings import TableSpec, build_collection, shard, single_id_features
from fbrec.errors import ConfigError, UnknownNameError
from fbrec.nn import MatrixFactorization


def test_single_id_features_give_one_row_per_example():
    kjt = single_id_features({"user": torch.tensor([3, 1]), "item": torch.tensor([0, 2])})
    assert kjt.keys() == ["user", "item"] and kjt.stride() == 2
    assert kjt["item"].values().tolist() == [0, 2]


@pytest.mark.parametrize("spec,pattern", [
    (dict(name="t", num_embeddings=10, embedding_dim=6), r"divisible by 4.*use embedding_dim=8"),
    (dict(name="t", num_embeddings=0, embedding_dim=8), r"t.num_embeddings must be > 0"),
    (dict(name="t", num_embeddings=10, embedding_dim=8, pooling="max"), r"pooling is 'sum' or 'mean'"),
])
def test_bad_table_specs_are_rejected(spec, pattern):
    with pytest.raises(ConfigError, match=pattern):
        TableSpec(**spec)


def test_duplicate_table_names_are_rejected():
    with pytest.raises(ConfigError, match="repeat"):
        build_collection([TableSpec("t", 4, 4), TableSpec("t", 4, 4)])


@pytest.mark.parametrize("kind", ["table_wise", "row_wise", "column_wise", "data_parallel"])
def test_dmp_lookup_matches_the_unsharded_table(kind):
    torch.manual_seed(0)
    reference = MatrixFactorization(50, 40, 8, device="cpu")
    sharded = shard(MatrixFactorization(50, 40, 8, device="meta"), device=torch.device("cpu"),
                    sharding={"user": kind, "item": kind})
    # copy the reference weights into the (single-rank) shards, then compare lookups
    with torch.no_grad():
        for key, value in sharded.state_dict().items():
            ref = reference.state_dict()[key.replace("_dmp_wrapped_module.", "").replace("module.", "")]
            if hasattr(value, "local_shards"):
                for s in value.local_shards():
                    r0, c0 = s.metadata.shard_offsets
                    r, c = s.metadata.shard_sizes
                    s.tensor.copy_(ref[r0:r0 + r, c0:c0 + c])
            else:
                value.copy_(ref)
    users, items = torch.tensor([0, 7, 49]), torch.tensor([39, 1, 5])
    p, q = sharded(users, items)
    p_ref, q_ref = reference(users, items)
    torch.testing.assert_close(p, p_ref)
    torch.testing.assert_close(q, q_ref)


def test_unknown_sharding_type_suggests_the_closest():
    with pytest.raises(UnknownNameError, match="did you mean 'row_wise'"):
        shard(MatrixFactorization(10, 10, 4, device="meta"), device=torch.device("cpu"), sharding={"user": "rowwise"})
