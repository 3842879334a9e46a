"""The profile folder: text profiles of users and items and their text embeddings, as `fbrec llm profiles` writes.

Models read it through `ProfileSet` only (they never import fbrec.llm): RLMRec alignment needs, for each user and
item index of a run, one semantic vector s and whether it has one.

Layout (an fbrec output folder, kind "profiles"):
    manifest.json          backend, model, prompt versions, encoder, dims, the training split's fingerprint, sha256s
    items.parquet          item (raw id), profile (text), generated_by
    users.parquet          user (raw id), profile (text), generated_by
    item_embeddings.npy    (rows of items.parquet, S) float32
    user_embeddings.npy    (rows of users.parquet, S) float32

User profiles are written from training items only; `train_fingerprint` binds the folder to the split it was built
from, so a run on another split (whose test items might be in the profiles) is refused.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import polars as pl

from fbrec._atomic import file_sha256, is_fbrec_output
from fbrec.data.idmap import IdMap
from fbrec.errors import ConfigError
from fbrec.types import ITEM, USER

MANIFEST = "manifest.json"
FORMAT = 1


def train_fingerprint(train: pl.DataFrame) -> str:
    """sha256 of the training (user, item) raw-id pairs in canonical order: equal iff two splits train on the same
    positives."""
    pairs = train.select(pl.col(USER).cast(pl.String), pl.col(ITEM).cast(pl.String)).sort([USER, ITEM])
    h = hashlib.sha256()
    for u, i in zip(pairs[USER].to_list(), pairs[ITEM].to_list(), strict=True):
        h.update(f"{u}\t{i}\n".encode())
    return h.hexdigest()


@dataclass
class ProfileSet:
    """A loaded profile folder. `aligned` maps it onto a run's user and item indices."""

    path: Path
    manifest: dict
    users: pl.DataFrame
    items: pl.DataFrame
    user_embeddings: np.ndarray
    item_embeddings: np.ndarray

    @classmethod
    def load(cls, path: str | Path) -> ProfileSet:
        path = Path(path)
        if not (path / MANIFEST).is_file() or not is_fbrec_output(path):
            raise ConfigError(f"profiles {str(path)!r} is not a profile folder",
                              rule="alignment reads a folder written by `fbrec llm profiles`",
                              fix="run `fbrec llm profiles --dataset NAME --out DIR` and point alignment.profiles "
                                  "at DIR")
        manifest = json.loads((path / MANIFEST).read_text())
        if manifest.get("format") != FORMAT:
            raise ConfigError(f"profiles {str(path)!r} has format {manifest.get('format')!r}",
                              rule=f"this fbrec reads format {FORMAT}", fix="write the profiles again")
        for name, digest in manifest.get("files", {}).items():
            if file_sha256(path / name) != digest:
                raise ConfigError(f"profiles {str(path)!r}: {name} fails its sha256",
                                  rule="files must match the manifest", fix="write the profiles again")
        users, items = pl.read_parquet(path / "users.parquet"), pl.read_parquet(path / "items.parquet")
        ue, ie = np.load(path / "user_embeddings.npy"), np.load(path / "item_embeddings.npy")
        if ue.shape[0] != users.height or ie.shape[0] != items.height or ue.shape[1] != ie.shape[1]:
            raise ConfigError(f"profiles {str(path)!r}: embeddings {ue.shape}/{ie.shape} for {users.height} users and "
                              f"{items.height} items", rule="one embedding per profile row, one dimension",
                              fix="write the profiles again")
        return cls(path, manifest, users, items, ue.astype(np.float32), ie.astype(np.float32))

    @property
    def dim(self) -> int:
        return int(self.item_embeddings.shape[1])

    def check_split(self, train: pl.DataFrame) -> None:
        """Refuse profiles built from another split: their user profiles may hold this run's test items."""
        want = self.manifest.get("train_fingerprint")
        if want != train_fingerprint(train):
            raise ConfigError(f"profiles {str(self.path)!r} were built from another training split "
                              f"(dataset {self.manifest.get('dataset')!r}, data seed {self.manifest.get('data_seed')})",
                              rule="user profiles come from the run's own training items (never its validation or "
                                   "test items)",
                              fix="write profiles with the run's dataset, prepare options and data seed: "
                                  "`fbrec llm profiles --dataset NAME --seed SEED --out DIR`")

    def aligned(self, user_map: IdMap, item_map: IdMap) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """(U, S) user and (I, S) item vectors in index order, and boolean masks of the indices that have one."""
        return (*_align(self.users, USER, self.user_embeddings, user_map),
                *_align(self.items, ITEM, self.item_embeddings, item_map))

    def shuffled(self, seed: int) -> ProfileSet:
        """The control of the issue's protocol: the same vectors permuted across users and across items, so any
        lift left comes from the extra loss, not from what the profiles say."""
        g = np.random.default_rng(seed)
        return ProfileSet(self.path, {**self.manifest, "shuffled_seed": seed}, self.users, self.items,
                          self.user_embeddings[g.permutation(len(self.user_embeddings))],
                          self.item_embeddings[g.permutation(len(self.item_embeddings))])


def _align(frame: pl.DataFrame, column: str, vectors: np.ndarray, idmap: IdMap) -> tuple[np.ndarray, np.ndarray]:
    encoded = idmap.encode(frame.with_row_index("_row"), column, "_index", unknown="drop")
    out = np.zeros((len(idmap), vectors.shape[1]), np.float32)
    mask = np.zeros(len(idmap), bool)
    index, rows = encoded["_index"].to_numpy(), encoded["_row"].to_numpy()
    out[index], mask[index] = vectors[rows], True
    return out, mask
