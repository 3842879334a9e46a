"""FAISS indexes over item embeddings (the only faiss importer), exact top-k, and recall against exact search.

No torch here: a retrieval service can load a bundle with numpy + faiss alone.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from fbrec.errors import ConfigError, MissingExtraError, UnknownNameError

try:
    import faiss
except ImportError as exc:   # the cpu or gpu extra brings it
    raise MissingExtraError("faiss", "cpu", "FAISS indexes (fbrec export, retrieve, serve, evaluation search)") from exc

METRICS = {"ip": faiss.METRIC_INNER_PRODUCT, "l2": faiss.METRIC_L2}


def gpu_available() -> bool:
    return hasattr(faiss, "get_num_gpus") and faiss.get_num_gpus() > 0


def _as_f32(x: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(x, dtype=np.float32)


def build_index(items: np.ndarray, factory: str = "Flat", *, metric: str = "ip", search_params: str = "",
                train_size: int = 100_000, seed: int = 0) -> faiss.Index:
    """Build `faiss.index_factory(dim, factory, metric)` over items (I, D) and add them (id = row index).

    factory examples: "Flat", "IVF256,Flat", "HNSW32", "IVF256,PQ16". search_params examples: "nprobe=16",
    "efSearch=128" (applied with faiss.ParameterSpace)."""
    if metric not in METRICS:
        raise UnknownNameError("index metric", metric, METRICS)
    items = _as_f32(items)
    if items.ndim != 2 or len(items) == 0:
        raise ConfigError(f"item embeddings have shape {items.shape}", rule="a non-empty (num_items, dim) matrix",
                          fix="export embeddings from a trained run")
    try:
        index = faiss.index_factory(items.shape[1], factory, METRICS[metric])
    except RuntimeError as exc:
        raise ConfigError(f"faiss cannot build index_factory string {factory!r}: {str(exc).splitlines()[-1]}",
                          rule="use a faiss index_factory string", fix='e.g. "Flat", "IVF256,Flat", "HNSW32"') from exc
    if not index.is_trained:
        nlist = getattr(faiss.extract_index_ivf(index), "nlist", 0) if "IVF" in factory else 0
        if nlist and len(items) < nlist:
            raise ConfigError(f"{factory!r} needs at least {nlist} items to train, the catalogue has {len(items)}",
                              rule="IVF needs num_items >= nlist (ideally 30x)", fix="use fewer lists or 'Flat'")
        rng = np.random.default_rng(seed)
        sample = items if len(items) <= train_size else items[rng.choice(len(items), train_size, replace=False)]
        index.train(sample)
    index.add(items)
    if search_params:
        set_search_params(index, search_params)
    return index


def set_search_params(index: faiss.Index, search_params: str) -> None:
    try:
        faiss.ParameterSpace().set_index_parameters(index, search_params)
    except RuntimeError as exc:
        raise ConfigError(f"search_params {search_params!r} do not apply to this index: {str(exc).splitlines()[-1]}",
                          rule="nprobe for IVF, efSearch for HNSW", fix="drop search_params for Flat") from exc


def to_gpu(index: faiss.Index) -> faiss.Index:
    """A GPU copy for search when faiss-gpu and a device are present; the CPU index otherwise."""
    if not gpu_available():
        return index
    return faiss.index_cpu_to_all_gpus(index)


def search(index: faiss.Index, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """(Q, D) queries -> scores (Q, k), item indices (Q, k); -1 marks missing results."""
    return index.search(_as_f32(queries), k)


def exact_topk(queries: np.ndarray, items: np.ndarray, k: int, *, metric: str = "ip",
               chunk: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Brute-force top-k: scores = queries @ items.T  # (Q, D) x (D, I) -> (Q, I), chunked over queries so a chunk
    holds about 16M scores (argpartition's int64 positions are twice that: 1024 queries x 164k items once made
    `fbrec export` peak at 2.9 GB)."""
    queries, items = _as_f32(queries), _as_f32(items)
    k = min(k, len(items))
    chunk = chunk or max(1, min(1024, (1 << 24) // max(1, len(items))))
    out_s, out_i = [], []
    for start in range(0, len(queries), chunk):
        q = queries[start:start + chunk]
        s = q @ items.T if metric == "ip" else -((q**2).sum(1)[:, None] - 2 * q @ items.T + (items**2).sum(1)[None])
        idx = np.argpartition(-s, k - 1, axis=1)[:, :k]
        part = np.take_along_axis(s, idx, axis=1)
        order = np.argsort(-part, axis=1, kind="stable")
        out_i.append(np.take_along_axis(idx, order, axis=1))
        out_s.append(np.take_along_axis(part, order, axis=1))
    return np.concatenate(out_s), np.concatenate(out_i)


def recall_vs_exact(index: faiss.Index, queries: np.ndarray, items: np.ndarray, k: int = 10, *,
                    metric: str = "ip") -> float:
    """Mean |ANN top-k ∩ exact top-k| / k over the queries."""
    _, ann = search(index, queries, k)
    _, exact = exact_topk(queries, items, k, metric=metric)
    hits = [len(set(a[a >= 0]) & set(e)) for a, e in zip(ann, exact, strict=True)]
    return float(np.mean(hits) / exact.shape[1])


def write_index(index: faiss.Index, path: Path) -> None:
    if gpu_available() and hasattr(faiss, "index_gpu_to_cpu") and "Gpu" in type(index).__name__:
        index = faiss.index_gpu_to_cpu(index)
    faiss.write_index(index, str(path))


def read_index(path: Path) -> faiss.Index:
    return faiss.read_index(str(path))


def index_shape(index: faiss.Index) -> tuple[int, int, str | None]:
    """(vectors, dimension, metric name or None for a metric fbrec does not write) of an index."""
    names = {v: k for k, v in METRICS.items()}
    return int(index.ntotal), int(index.d), names.get(int(index.metric_type))


def set_search_threads(n: int) -> None:
    """OpenMP threads per FAISS call; a service running many concurrent searches wants 1."""
    faiss.omp_set_num_threads(max(1, int(n)))
