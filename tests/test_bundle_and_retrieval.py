"""Bundles: atomic, checksummed, loadable without torch; FAISS indexes measured against exact search."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import polars as pl
import pytest

from fbrec.bundle import Bundle, write_bundle
from fbrec.data.idmap import IdMap
from fbrec.errors import BundleError, ConfigError
from fbrec.retrieval import build_index, exact_topk, recall_vs_exact


def _clustered(n=2000, d=16, centers=20, seed=0):
    rng = np.random.default_rng(seed)
    c = rng.normal(size=(centers, d))
    return (c[rng.integers(0, centers, n)] + 0.1 * rng.normal(size=(n, d))).astype(np.float32)


@pytest.fixture()
def embeddings():
    rng = np.random.default_rng(0)
    return rng.normal(size=(30, 8)).astype(np.float32), _clustered(500, 8)


def _write(tmp_path, embeddings, **kw):
    users, items = embeddings
    umap = IdMap.fit("user", pl.Series([f"u{i}" for i in range(len(users))]))
    imap = IdMap.fit("item", pl.Series(np.arange(len(items)) * 10))
    seen = pl.DataFrame({"user_index": [0, 0], "item_index": [1, 2]})
    return write_bundle(tmp_path / "bundle", user_embeddings=users, item_embeddings=items, user_map=umap,
                        item_map=imap, seen=seen, model="test", **kw)


def test_flat_index_equals_exact_search():
    items = _clustered()
    q = _clustered(50, seed=1)
    assert recall_vs_exact(build_index(items, "Flat"), q, items, 10) == 1.0


def test_exact_topk_is_the_same_in_any_query_chunking():
    from fbrec.retrieval import exact_topk

    items, q = _clustered(), _clustered(50, seed=1)
    whole = exact_topk(q, items, 10, chunk=len(q))
    for chunk in (None, 1, 7):
        got = exact_topk(q, items, 10, chunk=chunk)
        assert np.array_equal(got[1], whole[1]) and np.allclose(got[0], whole[0]), chunk


def test_ivf_recall_vs_exact_at_least_0_95_with_enough_probes():
    items = _clustered()
    q = _clustered(100, seed=2)
    index = build_index(items, "IVF16,Flat", search_params="nprobe=8")
    assert recall_vs_exact(index, q, items, 10) >= 0.95


@pytest.mark.parametrize("factory,params,pattern", [
    ("IVF4096,Flat", "", r"needs at least 4096 items"),
    ("NotAnIndex", "", r"cannot build index_factory string 'NotAnIndex'"),
    ("Flat", "nprobe=3", r"do not apply to this index"),
])
def test_bad_index_configs_are_rejected(factory, params, pattern):
    with pytest.raises(ConfigError, match=pattern):
        build_index(_clustered(100), factory, search_params=params)


def test_bundle_round_trip_recommends_like_exact_search(tmp_path, embeddings):
    manifest = _write(tmp_path, embeddings)
    assert manifest.recall_at_k == 1.0
    b = Bundle(tmp_path / "bundle")
    recs = b.recommend("u0", 5)
    _, exact = exact_topk(embeddings[0][:1], embeddings[1], 7)
    expected = [int(i) * 10 for i in exact[0] if i not in (1, 2)][:5]   # seen items 1, 2 filtered
    assert [item for item, _ in recs] == expected


def test_bundle_write_is_atomic_and_refuses_to_overwrite(tmp_path, embeddings):
    _write(tmp_path, embeddings)
    with pytest.raises(ConfigError, match="already exists"):
        _write(tmp_path, embeddings)
    users, items = embeddings
    with pytest.raises(ConfigError, match="differ in dim"):
        _write(tmp_path, (users, items[:, :4]), overwrite=True)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bundle"], "no temp dirs left"
    Bundle(tmp_path / "bundle")   # the old bundle is intact


@pytest.mark.parametrize("damage,pattern", [
    (lambda p: (p / "item_embeddings.npy").write_bytes(b"x"), r"'item_embeddings.npy' fails its sha256"),
    (lambda p: (p / "index.faiss").unlink(), r"'index.faiss' is missing"),
    (lambda p: (p / "manifest.json").write_text("{"), r"manifest.json .* is not JSON"),
    (lambda p: (p / "manifest.json").unlink(), r"is not a bundle"),
])
def test_corrupted_bundles_are_rejected(tmp_path, embeddings, damage, pattern):
    _write(tmp_path, embeddings)
    damage(tmp_path / "bundle")
    with pytest.raises(BundleError, match=pattern):
        Bundle(tmp_path / "bundle")


def test_an_unknown_user_gets_the_popularity_fallback_flagged_as_in_the_service(tmp_path, embeddings):
    _write(tmp_path, embeddings)
    b = Bundle(tmp_path / "bundle")
    ranked = b.rank("nobody", 5)
    assert ranked.fallback == "popularity"
    assert ranked.items.tolist() == b.popularity_order[:5].tolist()
    assert list(ranked.scores) == sorted(ranked.scores, reverse=True)   # training counts, most seen first
    assert [i for i, _ in b.recommend("nobody", 5)] == b.item_map.decode(ranked.items)
    assert b.rank("u0", 5).fallback is None
    with pytest.raises(BundleError, match="user 'nobody' is not in this bundle"):
        b.user_index("nobody")   # asking for the embedding of an unknown user stays an error


@pytest.mark.slow
def test_bundle_loads_without_torch(tmp_path, embeddings):
    _write(tmp_path, embeddings)
    code = ("import sys; from fbrec.bundle import Bundle; b = Bundle(sys.argv[1]); b.recommend('u1', 3); "
            "assert 'torch' not in sys.modules, 'torch was imported'; print('ok')")
    out = subprocess.run([sys.executable, "-c", code, str(tmp_path / "bundle")], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    manifest = json.loads((tmp_path / "bundle" / "manifest.json").read_text())
    assert set(manifest["checksums"]) >= {"index.faiss", "item_embeddings.npy", "user_map.parquet"}
