"""Writing a bundle: validated embeddings and id maps, the FAISS index and its recall against exact search, the
checksummed manifest, all in a temp directory renamed into place."""

from __future__ import annotations

import json
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np
import polars as pl

from fbrec._atomic import atomic_directory, check_replaceable, file_sha256
from fbrec.bundle.manifest import _FILES, USER_FEATURES, USER_TOWER, Manifest
from fbrec.data.idmap import IdMap
from fbrec.errors import ConfigError
from fbrec.retrieval import build_index, recall_vs_exact, write_index
from fbrec.types import ITEM_INDEX, USER_INDEX


def write_bundle(out: str | Path, *, user_embeddings: np.ndarray, item_embeddings: np.ndarray, user_map: IdMap,
                 item_map: IdMap, seen: pl.DataFrame | None = None, model: str = "", index_factory: str = "Flat",
                 search_params: str = "", metric: str = "ip", run_id: str | None = None, dataset: str | None = None,
                 recall_k: int = 10, recall_queries: int = 1000, overwrite: bool = False, seed: int = 0,
                 items: pl.DataFrame | None = None, levels: list[str] | None = None,
                 user_tower: dict[str, bytes] | None = None) -> Manifest:
    """items: the dataset's item attributes with an item_index column (shown by `fbrec retrieve` and the service,
    usable as filters); levels: the ordinal level names a GNOLR bundle's query blocks stand for; user_tower: the
    {user_tower.onnx, user_features.json} contents a run exported, for new users with side features."""
    out = Path(out)
    U, D = user_embeddings.shape
    if item_embeddings.ndim != 2 or item_embeddings.shape[1] != D:
        raise ConfigError(f"user embeddings {user_embeddings.shape} and item embeddings {item_embeddings.shape} "
                          "differ in dim", rule="both are (n, embedding_dim)", fix="export both from one model")
    if len(user_map) != U or len(item_map) != len(item_embeddings):
        raise ConfigError(f"id maps ({len(user_map)} users, {len(item_map)} items) do not match the embeddings "
                          f"({U}, {len(item_embeddings)})", rule="one row per mapped id", fix="export from one run")
    for side, vectors in (("user", user_embeddings), ("item", item_embeddings)):
        bad = np.flatnonzero(~np.isfinite(vectors).all(axis=1))
        if len(bad):
            raise ConfigError(f"{len(bad)} {side} embeddings are not finite (NaN or inf), e.g. {side} indices "
                              f"{bad[:5].tolist()}", rule="a bundle serves finite vectors only",
                              fix="the run diverged: lower the learning rate and train again")
    check_replaceable(out, "bundle", overwrite=overwrite)   # before the index build: refuse early, touch nothing
    index = build_index(item_embeddings, index_factory, metric=metric, search_params=search_params, seed=seed)
    rng = np.random.default_rng(seed)
    q = user_embeddings if U <= recall_queries else user_embeddings[rng.choice(U, recall_queries, replace=False)]
    recall = recall_vs_exact(index, q, item_embeddings, min(recall_k, len(item_embeddings)), metric=metric)
    with atomic_directory(out, "bundle", overwrite=overwrite) as tmp:
        np.save(tmp / "user_embeddings.npy", np.ascontiguousarray(user_embeddings, dtype=np.float32))
        np.save(tmp / "item_embeddings.npy", np.ascontiguousarray(item_embeddings, dtype=np.float32))
        user_map.save(tmp / "user_map.parquet")
        item_map.save(tmp / "item_map.parquet")
        seen = seen if seen is not None else pl.DataFrame({USER_INDEX: [], ITEM_INDEX: []},
                                                          schema={USER_INDEX: pl.Int64, ITEM_INDEX: pl.Int64})
        seen.select(USER_INDEX, ITEM_INDEX).sort(USER_INDEX, ITEM_INDEX).write_parquet(tmp / "seen.parquet")
        write_index(index, tmp / "index.faiss")
        files = list(_FILES)
        if items is not None:
            _attribute_table(items, len(item_embeddings)).write_parquet(tmp / "items.parquet")
            files.append("items.parquet")
        if user_tower:
            if set(user_tower) != {USER_TOWER, USER_FEATURES}:
                raise ConfigError(f"user tower files {sorted(user_tower)}", rule=f"a tower comes as {USER_TOWER} and "
                                  f"{USER_FEATURES}", fix="export the run's model/ artifacts unchanged")
            for name, content in user_tower.items():
                (tmp / name).write_bytes(content)
                files.append(name)
        manifest = Manifest(model, D, U, len(item_embeddings), metric, index_factory, search_params, recall,
                            recall_k, run_id, dataset, created_at=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                            checksums={f: file_sha256(tmp / f) for f in files}, levels=list(levels or []))
        (tmp / "manifest.json").write_text(json.dumps(asdict(manifest), indent=2))
    return manifest


def _attribute_table(items: pl.DataFrame, num_items: int) -> pl.DataFrame:
    """One row per item_index in range, attributes only (raw ids live in the item map)."""
    if ITEM_INDEX not in items.columns:
        raise ConfigError(f"item attributes have no {ITEM_INDEX!r} column (columns: {items.columns})",
                          rule="attributes are keyed by the bundle's item index", fix="pass the prepared items table")
    table = items.drop([c for c in ("item",) if c in items.columns]).filter(
        pl.col(ITEM_INDEX).is_between(0, num_items - 1)).unique(ITEM_INDEX, keep="first").sort(ITEM_INDEX)
    return table
