"""Shared fixtures: a planted-structure dataset every model must solve, temp MLflow stores, the data dir."""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from fbrec.data.datasets import RawDataset, data_dir
from fbrec.data.prepare import PrepareConfig, prepare_raw
from fbrec.data.schema import cast_levels

warnings.filterwarnings("ignore", message="It is recommended to use `self.log")
os.environ.setdefault("PYTHONHASHSEED", "0")


def planted_log(num_clusters: int = 8, users_per_cluster: int = 12, items_per_cluster: int = 8,
                seed: int = 0) -> pl.DataFrame:
    """Users of cluster c interact with every item of cluster c in a random order over time.

    leave_last_out holds out each user's last item: the only in-cluster item not yet seen (the val item is
    excluded at test time too), so a model that learned the clusters ranks it first."""
    rng = np.random.default_rng(seed)
    rows = []
    for c in range(num_clusters):
        items = np.arange(c * items_per_cluster, (c + 1) * items_per_cluster)
        for u in range(users_per_cluster):
            user = c * users_per_cluster + u
            for t, item in enumerate(rng.permutation(items)):
                rows.append((user, int(item), 1000 + t))
    return pl.DataFrame(rows, schema={"user": pl.Int64, "item": pl.Int64, "timestamp": pl.Int64}, orient="row")


def planted_items(num_clusters: int = 8, items_per_cluster: int = 8) -> pl.DataFrame:
    """Side features of the planted items: the cluster, and tags (one shared by the cluster, one by item % 5)."""
    item = np.arange(num_clusters * items_per_cluster)
    return pl.DataFrame({"item": item, "cluster": item // items_per_cluster,
                         "tags": [[f"c{i // items_per_cluster}", f"t{i % 5}"] for i in item]})


PLANTED_ITEM_FEATURES = [{"column": "cluster"}, {"column": "tags", "kind": "multi"}]


@pytest.fixture(scope="session")
def planted_dir(tmp_path_factory) -> Path:
    data = prepare_raw(RawDataset(planted_log(), items=planted_items()), "planted",
                       PrepareConfig(split="leave_last_out"))
    return data.save(tmp_path_factory.mktemp("planted") / "prepared")


@pytest.fixture(scope="session")
def _shared_content_caches(tmp_path_factory) -> dict[str, Path]:
    """Caches keyed by their content alone, shared by the whole test run: text embeddings (by model and the text's
    sha256) and the language model's converted weights (by model file). A test of those caches sets its own
    FBREC_CACHE_DIR or cache_dir."""
    root = tmp_path_factory.mktemp("shared-cache")
    return {name: root / name for name in ("text-embeddings", "llm-models")}


@pytest.fixture(autouse=True)
def _own_prepared_cache(tmp_path_factory, monkeypatch, _shared_content_caches):
    """Each test prepares into its own cache of prepared datasets (fbrec.data.cache) and records its own verified
    bundles (fbrec.bundle): no test reads another's, none writes to the home folder. Only the content-addressed
    caches (text embeddings, converted model weights) are shared across the run, so nothing is encoded twice."""
    monkeypatch.setenv("FBREC_PREPARED_CACHE", str(tmp_path_factory.mktemp("prepared-cache")))
    cache = tmp_path_factory.mktemp("fbrec-cache")
    for name, shared in _shared_content_caches.items():
        shared.mkdir(exist_ok=True)
        (cache / name).symlink_to(shared, target_is_directory=True)
    monkeypatch.setenv("FBREC_CACHE_DIR", str(cache))


@pytest.fixture(autouse=True)
def _fresh_rendezvous():
    """An in-process Trainer leaves MASTER_PORT set while its process group still holds that port, and LOCAL_RANK /
    WORLD_SIZE behind it; a later test's spawned ranks or `fbrec` subprocesses would inherit them, fail to bind, or
    believe an outside launcher started them (and wait for ranks nobody starts). Each test starts without them."""
    # mlflow.set_tracking_uri also exports MLFLOW_TRACKING_URI: a later test's runs would land in an earlier
    # test's store instead of its own ./mlruns
    for var in ("MASTER_ADDR", "MASTER_PORT", "LOCAL_RANK", "RANK", "WORLD_SIZE", "NODE_RANK", "LOCAL_WORLD_SIZE",
                "GROUP_RANK", "PL_GLOBAL_SEED", "PL_SEED_WORKERS", "MLFLOW_TRACKING_URI"):
        os.environ.pop(var, None)
    yield


@pytest.fixture()
def mlflow_store(tmp_path, monkeypatch) -> str:
    uri = f"sqlite:///{tmp_path / 'mlruns' / 'mlflow.db'}"
    (tmp_path / "mlruns").mkdir()
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    monkeypatch.chdir(tmp_path)
    return uri


@pytest.fixture(scope="session")
def shared_data() -> Path:
    root = data_dir()
    if not (root / "movielens-100k" / "u.data").exists():
        pytest.fail(f"real datasets not found under {root}; set FBREC_DATA_DIR to ../shared/data")
    return root


@pytest.fixture(scope="session")
def planted_profiles(planted_dir, tmp_path_factory) -> Path:
    """Offline-template profiles of the planted data, encoded by the real MiniLM (its cache in a temp folder)."""
    from fbrec.data.prepare import PreparedDataset
    from fbrec.llm import TextEncoder, make_backend, write_profiles

    root = tmp_path_factory.mktemp("profiles")
    write_profiles(root / "planted", PreparedDataset.load(planted_dir), "planted", make_backend("offline"),
                   TextEncoder(cache_dir=root / "cache"))
    return root / "planted"


LEVELS = ["view", "click", "buy"]


@pytest.fixture(scope="session")
def leveled_dir(tmp_path_factory):
    """Planted clusters; within a user's cluster, the first items are bought, the rest only clicked."""
    rng = np.random.default_rng(0)
    rows = []
    for c in range(6):
        items = np.arange(c * 10, (c + 1) * 10)
        for u in range(15):
            user = c * 15 + u
            for t, item in enumerate(rng.permutation(items)):
                rows.append((user, int(item), "buy" if item % 10 < 4 else "click", t))
    log = cast_levels(pl.DataFrame(rows, schema={"user": pl.Int64, "item": pl.Int64, "level": pl.String,
                                                 "timestamp": pl.Int64}, orient="row"), LEVELS)
    data = prepare_raw(RawDataset(log), "leveled", PrepareConfig(split="leave_last_out", min_level="click"))
    return data.save(tmp_path_factory.mktemp("leveled") / "prepared")
