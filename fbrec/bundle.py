"""The on-disk export a retrieval service reads: embeddings, id maps, a FAISS index and a checksummed manifest.

Layout of a bundle directory:
    manifest.json            fbrec version, model, dims, metric, index factory, recall vs exact, run id, sha256s
    user_embeddings.npy      (U, D) float32        item_embeddings.npy   (I, D) float32
    user_map.parquet         raw <-> index         item_map.parquet      raw <-> index
    seen.parquet             (user_index, item_index) pairs excluded from recommendations
    index.faiss              faiss.write_index of the item index
    items.parquet            optional: item_index + the dataset's item attributes (title, genres, category, ...)
    user_tower.onnx          optional (feature two-tower): the user tower over side features, run by onnxruntime
    user_features.json       its inputs and the encoders of raw feature values
Written into a temp directory beside the target and renamed into place, so a reader never sees half a
bundle. Loading needs numpy, polars and faiss only (no torch).
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import polars as pl

import fbrec
from fbrec._atomic import atomic_directory, check_replaceable, file_sha256
from fbrec.data.idmap import IdMap
from fbrec.data.preferences import Preferences, apply_preferences, rerank
from fbrec.errors import BundleError, ConfigError
from fbrec.retrieval import (
    METRICS,
    build_index,
    exact_topk,
    index_shape,
    read_index,
    recall_vs_exact,
    search,
    write_index,
)
from fbrec.types import ITEM_INDEX, USER_INDEX

FORMAT_VERSION = 1
USER_TOWER, USER_FEATURES = "user_tower.onnx", "user_features.json"   # optional: a new user's query tower
_FILES = ("user_embeddings.npy", "item_embeddings.npy", "user_map.parquet", "item_map.parquet", "seen.parquet",
          "index.faiss")
KNOWN_FILES = (*_FILES, "items.parquet", USER_TOWER, USER_FEATURES)   # every name a manifest may checksum
MANIFEST_MAX_BYTES = 1 << 20


@dataclass(frozen=True)
class Manifest:
    model: str
    embedding_dim: int
    num_users: int
    num_items: int
    metric: str
    index_factory: str
    search_params: str
    recall_at_k: float          # the index's recall@k against exact search over sampled users
    recall_k: int
    run_id: str | None = None
    dataset: str | None = None
    fbrec_version: str = fbrec.__version__
    format_version: int = FORMAT_VERSION
    created_at: str = ""
    checksums: dict[str, str] = field(default_factory=dict)
    levels: list[str] = field(default_factory=list)     # ordinal level names, lowest first (GNOLR bundles)



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


@dataclass(frozen=True)
class Ranked:
    """Item indices best first, their scores, and how they were chosen (None: the user's embedding)."""

    items: np.ndarray
    scores: np.ndarray
    fallback: str | None = None


def _as_id(value, dtype):
    """A raw id as the map stores it: int for integer maps (None when it cannot be one), else text."""
    if dtype.is_integer():
        try:
            return int(value) if not isinstance(value, bool) else None
        except (TypeError, ValueError):
            return None
    return value if isinstance(value, str) else str(value)


def _attribute_table(items: pl.DataFrame, num_items: int) -> pl.DataFrame:
    """One row per item_index in range, attributes only (raw ids live in the item map)."""
    if ITEM_INDEX not in items.columns:
        raise ConfigError(f"item attributes have no {ITEM_INDEX!r} column (columns: {items.columns})",
                          rule="attributes are keyed by the bundle's item index", fix="pass the prepared items table")
    table = items.drop([c for c in ("item",) if c in items.columns]).filter(
        pl.col(ITEM_INDEX).is_between(0, num_items - 1)).unique(ITEM_INDEX, keep="first").sort(ITEM_INDEX)
    return table


def _json_type(value) -> str:
    return {bool: "boolean", int: "integer", float: "number", str: "string", type(None): "null", list: "array",
            dict: "object"}.get(type(value), type(value).__name__)


def _read_manifest(path: Path) -> tuple[Manifest, str]:
    """(manifest.json as a Manifest, the sha256 of its bytes), or one BundleError naming what is wrong with it (never
    a traceback)."""
    def corrupted(problem: str) -> BundleError:
        return BundleError(f"manifest.json in {str(path.parent)!r} {problem}",
                           rule="the manifest is a JSON file written by `fbrec export`", fix="re-export the bundle")

    if path.is_symlink() or not path.is_file():
        raise corrupted("is not a regular file")
    if path.stat().st_size > MANIFEST_MAX_BYTES:
        raise corrupted(f"holds {path.stat().st_size} bytes, over {MANIFEST_MAX_BYTES}")
    data = path.read_bytes()
    try:
        raw = json.loads(data.decode("utf-8"))
    except UnicodeDecodeError:
        raise corrupted("is not UTF-8 text") from None
    except json.JSONDecodeError as exc:
        raise corrupted(f"is not JSON ({exc.msg}, line {exc.lineno})") from None
    if not isinstance(raw, dict):
        raise corrupted(f"holds a JSON {type(raw).__name__}, not an object")
    try:
        manifest = Manifest(**raw)
    except TypeError as exc:
        raise corrupted(f"has unexpected fields ({exc})") from None
    for name, kind in (("embedding_dim", int), ("num_users", int), ("num_items", int), ("recall_k", int),
                       ("format_version", int), ("recall_at_k", float), ("metric", str), ("model", str),
                       ("index_factory", str), ("search_params", str)):
        value = getattr(manifest, name)
        if isinstance(value, bool) or not isinstance(value, int if kind is int else (int, float) if kind is float
                                                         else str):
            raise corrupted(f"has {name} = {value!r} (a JSON {_json_type(value)}), where fbrec writes a JSON "
                            f"{_json_type(kind())}")
    checksums = manifest.checksums
    if not isinstance(checksums, dict) or not all(isinstance(k, str) and isinstance(v, str)
                                                  for k, v in checksums.items()):
        raise corrupted("has checksums that are not a {file name: sha256} object")
    return manifest, hashlib.sha256(data).hexdigest()


def _verified_record(path: Path, manifest_sha256: str) -> Path:
    """Where a verification of this bundle (this folder, this manifest) is recorded."""
    root = os.environ.get("FBREC_CACHE_DIR") or str(Path.home() / ".cache" / "fbrec")
    folder = hashlib.sha256(str(path.resolve()).encode()).hexdigest()[:16]
    return Path(root) / "verified" / f"{manifest_sha256}-{folder}"


def _file_stats(path: Path, names) -> str:
    """What a change to any bundle file would alter: size, inode, mtime and ctime (ctime cannot be set back)."""
    out = {}
    for name in sorted(names):
        st = (path / name).stat()
        out[name] = [st.st_size, st.st_ino, st.st_mtime_ns, st.st_ctime_ns]
    return json.dumps(out, sort_keys=True)


def _remember_verified(record: Path, stats: str) -> None:
    try:
        record.parent.mkdir(parents=True, exist_ok=True)
        tmp = record.with_name(record.name + f".tmp{os.getpid()}")
        tmp.write_text(stats)
        tmp.replace(record)
    except OSError:
        pass   # a read-only home: verify every time


def _numeric_array(path: Path) -> np.ndarray:
    """A numeric .npy array; an object array would need unpickling, which a bundle never asks for."""
    try:
        return np.load(path, allow_pickle=False)
    except ValueError as exc:
        pickled = "allow_pickle" in str(exc)
        raise BundleError(f"bundle file {path.name!r} in {str(path.parent)!r} "
                          + ("holds pickled Python objects, which fbrec never loads" if pickled
                             else f"is not a numeric .npy array ({str(exc).splitlines()[0]})"),
                          rule="bundle embeddings are numeric .npy arrays", fix="re-export the bundle with `fbrec "
                          "export`") from None


class Bundle:
    """A loaded bundle: `recommend(raw_user_id, k)` -> [(raw_item_id, score), ...] through the FAISS index."""

    def __init__(self, path: str | Path, *, verify: bool = True):
        self.path = Path(path)
        manifest_path = self.path / "manifest.json"
        if not manifest_path.exists():
            raise BundleError(f"{str(self.path)!r} is not a bundle (no manifest.json)",
                              rule="bundles are written by `fbrec export`", fix="check the --bundle path")
        self.manifest, self.manifest_sha256 = _read_manifest(manifest_path)
        if self.manifest.format_version != FORMAT_VERSION:
            raise BundleError(f"bundle format {self.manifest.format_version!r} is not {FORMAT_VERSION}",
                              rule=f"this fbrec reads format {FORMAT_VERSION}", fix="re-export with this fbrec")
        if verify:
            self.verify()
        try:
            self.user_map = IdMap.load("user", self.path / "user_map.parquet")
            self.item_map = IdMap.load("item", self.path / "item_map.parquet")
            self.user_embeddings = _numeric_array(self.path / "user_embeddings.npy")
            self.item_embeddings = _numeric_array(self.path / "item_embeddings.npy")
            seen = pl.read_parquet(self.path / "seen.parquet")
            self.index = read_index(self.path / "index.faiss")
            self.items = (pl.read_parquet(self.path / "items.parquet") if "items.parquet" in self.manifest.checksums
                          else None)
        except (ValueError, OSError, RuntimeError, pl.exceptions.PolarsError) as exc:
            raise BundleError(f"bundle {str(self.path)!r} has a file that cannot be read: {str(exc).splitlines()[0]}",
                              rule="bundle files are numeric .npy arrays, parquet tables and a FAISS index",
                              fix="re-export the bundle with `fbrec export`") from None
        self._cross_check(seen)
        # each user's seen items as CSR rows (indptr over users, indices sorted by user): built in one sort, where a
        # dict of per-user arrays took 7 s for 148k users
        users, items = seen[USER_INDEX].to_numpy(), seen[ITEM_INDEX].to_numpy().astype(np.int64)
        if len(users) > 1 and not (users[1:] >= users[:-1]).all():   # bundles are written sorted by user
            order = np.argsort(users, kind="stable")
            users, items = users[order], items[order]
        self._seen_items = items
        self._seen_ptr = np.zeros(self.manifest.num_users + 1, np.int64)
        np.cumsum(np.bincount(users, minlength=self.manifest.num_users)[:self.manifest.num_users],
                  out=self._seen_ptr[1:])
        self._item_lookup = {raw: i for i, raw in enumerate(self.item_map.raw.to_list())}
        self._user_lookup = {raw: i for i, raw in enumerate(self.user_map.raw.to_list())}
        self.item_counts = np.bincount(seen[ITEM_INDEX].to_numpy(), minlength=self.manifest.num_items) \
            if seen.height else np.zeros(self.manifest.num_items, np.int64)   # training popularity
        counts = self.item_counts
        self.popularity_order = np.lexsort((np.arange(len(counts)), -counts))   # most seen first, ties by index
        attrs = [c for c in self.items.columns if c != ITEM_INDEX] if self.items is not None else []
        self._attr_rows = {} if self.items is None else {
            int(r[ITEM_INDEX]): {c: r[c] for c in attrs} for r in self.items.iter_rows(named=True)}

    def _cross_check(self, seen: pl.DataFrame) -> None:
        """Every part agrees with the manifest and with the others (a hand-assembled bundle fails here)."""
        m = self.manifest
        ntotal, dim, metric = index_shape(self.index)
        checks = [
            (m.metric in METRICS, f"metric {m.metric!r} is not one fbrec writes ({', '.join(METRICS)})"),
            (metric == m.metric, f"the index's metric ({metric}) is not the manifest's ({m.metric!r})"),
            (self.user_embeddings.shape == (m.num_users, m.embedding_dim),
             f"user embeddings {self.user_embeddings.shape} are not (num_users, embedding_dim) = "
             f"({m.num_users}, {m.embedding_dim})"),
            (self.item_embeddings.shape == (m.num_items, m.embedding_dim),
             f"item embeddings {self.item_embeddings.shape} are not (num_items, embedding_dim) = "
             f"({m.num_items}, {m.embedding_dim})"),
            ((ntotal, dim) == (m.num_items, m.embedding_dim),
             f"the index holds {ntotal} vectors of dim {dim}, the manifest {m.num_items} of dim {m.embedding_dim}"),
            (len(self.user_map) == m.num_users, f"the user map has {len(self.user_map)} ids, the manifest "
             f"{m.num_users} users"),
            (len(self.item_map) == m.num_items, f"the item map has {len(self.item_map)} ids, the manifest "
             f"{m.num_items} items"),
            (self.user_map.raw.n_unique() == len(self.user_map), "the user map repeats a raw id"),
            (self.item_map.raw.n_unique() == len(self.item_map), "the item map repeats a raw id"),
            (seen.height == 0 or (seen[USER_INDEX].max() < m.num_users and seen[ITEM_INDEX].max() < m.num_items
                                  and min(seen[USER_INDEX].min(), seen[ITEM_INDEX].min()) >= 0),
             "seen.parquet refers to users or items outside the maps"),
            (bool(np.isfinite(self.item_embeddings).all() and np.isfinite(self.user_embeddings).all()),
             "the embeddings hold NaN or inf"),
            (self.items is None or (ITEM_INDEX in self.items.columns and self.items[ITEM_INDEX].is_unique().all()
                                    and self.items[ITEM_INDEX].is_between(0, m.num_items - 1).all()),
             "items.parquet has repeated or out-of-range item indices"),
        ]
        for ok, problem in checks:
            if not ok:
                raise BundleError(f"bundle {str(self.path)!r} is inconsistent: {problem}",
                                  rule="files and manifest come from one `fbrec export`",
                                  fix="re-export the bundle; never edit one by hand")

    def verify(self) -> None:
        """Every file of the format is listed in the manifest with its sha256 and matches it. A bundle verified
        before on this machine, whose files are unchanged since (size, inode, modification and change times, which
        no write can keep), is not hashed again (the record lives under FBREC_CACHE_DIR/verified, by the manifest's
        sha256)."""
        record = _verified_record(self.path, self.manifest_sha256)
        try:
            stats = _file_stats(self.path, self.manifest.checksums)   # taken before hashing: a later write differs
            if record.is_file() and record.read_text() == stats:
                return
        except OSError:
            stats = None   # a file gone or unreadable: hashing below names it
        self._hash_files()
        if stats is not None:
            _remember_verified(record, stats)

    def _hash_files(self) -> None:
        missing = [f for f in _FILES if f not in self.manifest.checksums]
        if missing:
            raise BundleError(f"the manifest of {str(self.path)!r} lists no checksum for {', '.join(missing)}",
                              rule="every bundle file is checksummed; an unlisted file cannot be trusted",
                              fix="re-export the bundle with `fbrec export`")
        for name, digest in self.manifest.checksums.items():
            if name not in KNOWN_FILES:   # never a path: no absolute name, no `..`, no device such as /dev/zero
                raise BundleError(f"the manifest lists {name[:100]!r}, which is not a bundle file",
                                  rule=f"checksummed files are bundle files by name: {', '.join(KNOWN_FILES)}",
                                  fix="re-export the bundle; never edit one by hand")
            path = self.path / name
            if not path.exists():
                raise BundleError(f"bundle file {name!r} is missing", rule="every file in the manifest must exist",
                                  fix="re-export the bundle; never edit one by hand")
            if path.is_symlink() or not path.is_file():
                raise BundleError(f"bundle file {name!r} is not a regular file", rule="a bundle holds regular files "
                                  "(no links, folders or devices)", fix="re-export the bundle")
            if file_sha256(path) != digest:
                raise BundleError(f"bundle file {name!r} fails its sha256 checksum",
                                  rule="files must match the manifest", fix="the bundle is corrupted: re-export it")

    def find_user(self, raw_user) -> int | None:
        """The index of a raw user id (text or integer spelling), or None when the bundle has no such user."""
        key = _as_id(raw_user, self.user_map.raw.dtype)   # 'abc' on an integer-id bundle: an unknown user
        return None if key is None else self._user_lookup.get(key)

    def user_index(self, raw_user) -> int:
        u = self.find_user(raw_user)
        if u is None:
            raise BundleError(f"user {raw_user!r} is not in this bundle ({len(self.user_map)} users)",
                              rule="only users seen in training have embeddings",
                              fix=f"use a known id, e.g. {self.user_map.raw.head(3).to_list()}")
        return u

    def item_attributes(self, indices: np.ndarray) -> list[dict]:
        """The attribute rows of these item indices ({} where the bundle carries none)."""
        return [self._attr_rows.get(int(i), {}) for i in indices]

    def seen_items(self, user_index: int) -> np.ndarray:
        if not 0 <= user_index < self.manifest.num_users:
            return np.empty(0, np.int64)
        return self._seen_items[self._seen_ptr[user_index]:self._seen_ptr[user_index + 1]]

    def item_index(self, raw_item) -> int | None:
        """The index of a raw item id (text or integer spelling), or None when the bundle has no such item."""
        key = _as_id(raw_item, self.item_map.raw.dtype)
        return None if key is None else self._item_lookup.get(key)

    def search(self, query: np.ndarray, k: int, *, exclude: np.ndarray | None = None,
               allowed: np.ndarray | None = None, exact: bool = False) -> tuple[np.ndarray, np.ndarray]:
        """Top-k item indices and scores for one query vector (D,), skipping `exclude` indices and, when `allowed`
        (a (num_items,) bool mask) is given, items outside it. The index is over-fetched (doubling, up to the whole
        catalogue) until k items survive the filters or none are left."""
        exclude = np.empty(0, np.int64) if exclude is None else np.asarray(exclude, np.int64)
        n = self.manifest.num_items
        query = np.ascontiguousarray(query, dtype=np.float32)[None]
        fetch = min(n, k + len(exclude))
        while True:
            scores, items = (exact_topk(query, self.item_embeddings, fetch, metric=self.manifest.metric) if exact
                             else search(self.index, query, fetch))
            keep = (items[0] >= 0) & ~np.isin(items[0], exclude)
            if allowed is not None:
                keep &= allowed[np.clip(items[0], 0, n - 1)]
            if keep.sum() >= k or fetch >= n:
                return items[0][keep][:k], scores[0][keep][:k].astype(float)
            fetch = min(n, fetch * 4)

    def recommend(self, raw_user, k: int = 10, *, exclude_seen: bool = True, exact: bool = False,
                  preferences: Preferences | dict | None = None) -> list[tuple[object, float]]:
        """[(raw item id, score)] best first; `preferences` (fbrec.data.preferences) filter the catalogue and boost
        scores (the scores are then standardised candidate scores plus boosts). A user the bundle does not know, or
        knows with no training items, gets the most popular items (scores: training counts), as the service does;
        `rank()` says which happened."""
        ranked = self.rank(raw_user, k, exclude_seen=exclude_seen, exact=exact, preferences=preferences)
        return list(zip(self.item_map.decode(ranked.items), ranked.scores.tolist(), strict=True))

    def recommend_indices(self, raw_user, k: int = 10, *, exclude_seen: bool = True, exact: bool = False,
                          preferences: Preferences | dict | None = None) -> tuple[np.ndarray, np.ndarray]:
        ranked = self.rank(raw_user, k, exclude_seen=exclude_seen, exact=exact, preferences=preferences)
        return ranked.items, ranked.scores

    def rank(self, raw_user, k: int = 10, *, exclude_seen: bool = True, exact: bool = False,
             preferences: Preferences | dict | None = None, allowed: np.ndarray | None = None,
             exclude: np.ndarray | None = None) -> Ranked:
        """The one cold-start policy of fbrec (Bundle.recommend, `fbrec retrieve`, the service): a user with training
        items is ranked by their embedding; an unknown or cold user gets the most popular allowed items, flagged
        `fallback="popularity"`."""
        if k < 1:
            raise ConfigError(f"k={k}", rule="k >= 1", fix="pass --k 10")
        extra = np.empty(0, np.int64) if exclude is None else np.asarray(exclude, np.int64)
        u = self.find_user(raw_user)
        if self.is_cold(u):
            return self.popular(k, allowed=allowed, exclude=extra, preferences=preferences)
        seen = self.seen_items(u) if exclude_seen else np.empty(0, np.int64)
        items, scores = self.search_with(self.user_embeddings[u], k, exclude=np.concatenate([seen, extra]),
                                         allowed=allowed, exact=exact, preferences=preferences)
        return Ranked(items, scores, None)

    def is_cold(self, user_index: int | None) -> bool:
        """Unknown (None), or known with no training items in a bundle that records them: nothing to rank by."""
        return user_index is None or (len(self._seen_items) > 0 and len(self.seen_items(user_index)) == 0)

    def popular(self, k: int, *, allowed: np.ndarray | None = None, exclude: np.ndarray | None = None,
                preferences: Preferences | dict | None = None) -> Ranked:
        """The k most interacted allowed items (ties by the lower index), scored by their training counts."""
        if preferences is not None:
            prefs = preferences if isinstance(preferences, Preferences) else Preferences.from_dict(preferences)
            mask, _ = apply_preferences(prefs, self.items, self.manifest.num_items, self.item_counts,
                                         self.item_embeddings)
            if mask is not None:
                allowed = mask if allowed is None else allowed & mask
        order = self.popularity_order if allowed is None else self.popularity_order[allowed[self.popularity_order]]
        if exclude is not None and len(exclude):
            order = order[~np.isin(order, exclude)]
        order = order[:k]
        return Ranked(order, self.item_counts[order].astype(float), "popularity")

    def search_with(self, query: np.ndarray, k: int, *, exclude: np.ndarray | None = None,
                    allowed: np.ndarray | None = None, exact: bool = False,
                    preferences: Preferences | dict | None = None) -> tuple[np.ndarray, np.ndarray]:
        """`search` under stated preferences: their mask joins `allowed`; boosts re-rank a wider candidate set
        (max(10 k, 200) items) after standardising its scores."""
        if preferences is None:
            return self.search(query, k, exclude=exclude, allowed=allowed, exact=exact)
        prefs = preferences if isinstance(preferences, Preferences) else Preferences.from_dict(preferences)
        mask, boost = apply_preferences(prefs, self.items, self.manifest.num_items, self.item_counts,
                                         self.item_embeddings)
        if mask is not None:
            allowed = mask if allowed is None else allowed & mask
        if boost is None:
            return self.search(query, k, exclude=exclude, allowed=allowed, exact=exact)
        items, scores = self.search(query, max(10 * k, 200), exclude=exclude, allowed=allowed, exact=exact)
        return rerank(items, scores, boost, k)
