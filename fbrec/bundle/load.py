"""A loaded bundle: verified, cross-checked against its manifest, and answering a user's top-k through the FAISS
index (with seen items, filters and stated preferences)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import polars as pl

from fbrec.bundle.manifest import FORMAT_VERSION, _numeric_array, _read_manifest, verify_files
from fbrec.data.idmap import IdMap
from fbrec.data.preferences import Preferences, apply_preferences, rerank
from fbrec.errors import BundleError, ConfigError
from fbrec.retrieval import METRICS, exact_topk, index_shape, read_index, search
from fbrec.types import ITEM_INDEX, USER_INDEX


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
        """Every file of the format is listed in the manifest with its sha256 and matches it (a bundle verified
        before on this machine and unchanged since is not hashed again: fbrec.bundle.manifest.verify_files)."""
        verify_files(self.path, self.manifest, self.manifest_sha256)

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
