"""The bundle format: its files, its manifest (read with one clear error for anything wrong in it) and the
verification of every file against the manifest's sha256s."""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

import fbrec
from fbrec._atomic import file_sha256
from fbrec.errors import BundleError

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


def verify_files(folder: Path, manifest: Manifest, manifest_sha256: str) -> None:
    """Every file of the format is listed in the manifest with its sha256 and matches it. A bundle verified before on
    this machine, whose files are unchanged since (size, inode, modification and change times, which no write can
    keep), is not hashed again (the record lives under FBREC_CACHE_DIR/verified, by the manifest's sha256)."""
    record = _verified_record(folder, manifest_sha256)
    try:
        stats = _file_stats(folder, manifest.checksums)   # taken before hashing: a later write differs
        if record.is_file() and record.read_text() == stats:
            return
    except OSError:
        stats = None   # a file gone or unreadable: hashing below names it
    _hash_files(folder, manifest)
    if stats is not None:
        _remember_verified(record, stats)


def _hash_files(folder: Path, manifest: Manifest) -> None:
    missing = [f for f in _FILES if f not in manifest.checksums]
    if missing:
        raise BundleError(f"the manifest of {str(folder)!r} lists no checksum for {', '.join(missing)}",
                          rule="every bundle file is checksummed; an unlisted file cannot be trusted",
                          fix="re-export the bundle with `fbrec export`")
    for name, digest in manifest.checksums.items():
        if name not in KNOWN_FILES:   # never a path: no absolute name, no `..`, no device such as /dev/zero
            raise BundleError(f"the manifest lists {name[:100]!r}, which is not a bundle file",
                              rule=f"checksummed files are bundle files by name: {', '.join(KNOWN_FILES)}",
                              fix="re-export the bundle; never edit one by hand")
        path = folder / name
        if not path.exists():
            raise BundleError(f"bundle file {name!r} is missing", rule="every file in the manifest must exist",
                              fix="re-export the bundle; never edit one by hand")
        if path.is_symlink() or not path.is_file():
            raise BundleError(f"bundle file {name!r} is not a regular file", rule="a bundle holds regular files "
                              "(no links, folders or devices)", fix="re-export the bundle")
        if file_sha256(path) != digest:
            raise BundleError(f"bundle file {name!r} fails its sha256 checksum",
                              rule="files must match the manifest", fix="the bundle is corrupted: re-export it")


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
