"""Where the real datasets are read from (and fetched to)."""

from __future__ import annotations

import os
from pathlib import Path


def user_cache() -> Path:
    """Where fetched datasets go when no data directory is configured: $XDG_CACHE_HOME/fbrec/data or
    ~/.cache/fbrec/data."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "fbrec" / "data"


def data_dir(override: str | Path | None = None) -> Path:
    """The data directory: the override, else FBREC_DATA_DIR, else the first of ./shared/data, ../shared/data and
    the checkout's ../shared/data that exists, else the user cache (where `fbrec data fetch` puts datasets)."""
    if override is not None:
        return Path(override)
    env = os.environ.get("FBREC_DATA_DIR")
    if env:
        return Path(env)
    repo = Path(__file__).resolve().parents[2]
    for cand in (Path.cwd() / "shared" / "data", Path.cwd().parent / "shared" / "data", repo.parent / "shared" / "data"):
        if cand.is_dir():
            return cand
    return user_cache()
