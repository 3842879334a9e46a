"""A cache of prepared datasets keyed by the source's checksum and every preparation option, so training ranks,
`fbrec evaluate` and `fbrec export` read a run's splits instead of preparing them again.

Key = sha256 of: the cache format, the source of fbrec's data package (a code change invalidates every entry), the
dataset name / log path and all options that shape preparation; an entry is used only while every source file it
was prepared from (the log and side tables, or the files a registered dataset's loader reports reading) still has
the checksum recorded beside it (generated data has none: its options and code are its source). Entries live in FBREC_PREPARED_CACHE, else FBREC_CACHE_DIR/prepared (default
~/.cache/fbrec/prepared), are written atomically and only ever replaced by fbrec; FBREC_PREPARED_CACHE=off turns
the cache off.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

from fbrec.data.prepare import FORMAT_VERSION, PreparedDataset
from fbrec.errors import FbrecError

CACHE_FORMAT = 1


def cache_root() -> Path | None:
    """FBREC_PREPARED_CACHE (a folder, or "off"), else FBREC_CACHE_DIR/prepared, else ~/.cache/fbrec/prepared."""
    own = os.environ.get("FBREC_PREPARED_CACHE")
    if own:
        return None if own == "off" else Path(own)
    root = os.environ.get("FBREC_CACHE_DIR")
    if root == "off":
        return None
    return Path(root or Path.home() / ".cache" / "fbrec") / "prepared"


def _hash_file(h, path: Path) -> None:
    h.update(str(path.name).encode())
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)


def _code_fingerprint() -> str:
    h = hashlib.sha256()
    for f in sorted(Path(__file__).parent.glob("*.py")):
        h.update(f.read_bytes())
    return h.hexdigest()


def cache_key(options: dict) -> str:
    """options: every setting that shapes the prepared splits (JSON-able)."""
    h = hashlib.sha256(f"fbrec-prepared-{CACHE_FORMAT}-{FORMAT_VERSION}".encode())
    h.update(_code_fingerprint().encode())
    h.update(json.dumps(options, sort_keys=True, default=str).encode())
    return h.hexdigest()[:32]


def file_checksums(files) -> dict[str, str]:
    out = {}
    for f in files:
        h = hashlib.sha256()
        _hash_file(h, Path(f))
        out[str(Path(f).resolve())] = h.hexdigest()
    return out


def load_cached(key: str) -> PreparedDataset | None:
    """The entry for these options, if every source file it was prepared from still has the same checksum."""
    root = cache_root()
    if root is None or not (root / key / "dataset.json").is_file() or not (root / f"{key}.sources.json").is_file():
        return None
    try:
        sources = json.loads((root / f"{key}.sources.json").read_text())
        if any(not Path(f).is_file() for f in sources) or file_checksums(sources) != sources:
            return None
        return PreparedDataset.load(root / key)
    except (OSError, ValueError):   # a damaged entry is prepared again (and replaced)
        return None


def store(key: str, data: PreparedDataset, sources: dict[str, str]) -> None:
    """sources: file_checksums of the files `data` was prepared from, taken when they were read. Best effort: a
    full disk or another process writing the same entry never fails the run. The dataset folder first, then its
    sources file (atomically): an entry without the latter is never read."""
    root = cache_root()
    if root is None:
        return
    try:
        root.mkdir(parents=True, exist_ok=True)
        data.save(root / key, overwrite=True)
        tmp = root / f".{key}.sources.json.{os.getpid()}"
        tmp.write_text(json.dumps(sources, indent=1))
        os.replace(tmp, root / f"{key}.sources.json")
    except (OSError, FbrecError):
        pass
