"""User and item profiles for RLMRec alignment: facts from the data, text from a backend, vectors from an encoder.

Item profiles come from the item's own text (the dataset's columns through a template) and its training
popularity; user profiles from the user's TRAINING items only (their attributes, recent titles, how mainstream
they are, and, for LLM backends, the profiles of their recent items). The folder is written atomically in the
format of fbrec.data.profiles, bound to the training split by its fingerprint.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from dataclasses import asdict
from pathlib import Path

import numpy as np
import polars as pl

from fbrec._atomic import atomic_directory, file_sha256
from fbrec.data.prepare import PreparedDataset
from fbrec.data.profiles import FORMAT, MANIFEST, train_fingerprint
from fbrec.llm.client import Backend, Schema, Task
from fbrec.llm.encoders import TextEncoder
from fbrec.llm.text import default_template, item_texts
from fbrec.types import ITEM, ITEM_INDEX, TIMESTAMP, USER, USER_INDEX

PROFILE_SCHEMA = Schema({"profile": "string"})
PROMPT_VERSION = "v1"
# item columns whose values describe a taste (counted over a user's items); others are found by cardinality
TASTE_COLUMNS = {"movielens-100k": ["genres"], "movielens-100k-semisynthetic": ["genres"],
                 "amazon-scientific-text": ["category", "brand"], "taobao-userbehavior-sample": ["category"]}


def _bands(counts: np.ndarray) -> np.ndarray:
    """popular (top 20% of items by training count), niche (bottom half), average otherwise."""
    order = np.argsort(-counts, kind="stable")
    band = np.full(len(counts), "average", dtype=object)
    band[order[: max(1, len(counts) // 5)]] = "popular"
    band[order[len(counts) // 2:]] = "niche"
    return band


def taste_values(table: pl.DataFrame, dataset: str) -> list[list[str]]:
    columns = TASTE_COLUMNS.get(dataset) or [c for c in table.columns if c not in (ITEM, ITEM_INDEX, "title")
                                             and table[c].dtype in (pl.String, pl.List(pl.String))
                                             and table[c].n_unique() < 1000]
    out: list[list[str]] = [[] for _ in range(table.height)]
    for c in [c for c in columns if c in table.columns]:
        for i, v in enumerate(table[c].to_list()):
            if isinstance(v, list):
                out[i].extend(str(x) for x in v)
            elif v is not None and str(v).strip():
                out[i].append(str(v).split(" ")[-1] if c == "category" and len(str(v)) > 60 else str(v))
    return out


def profile_tasks(data: PreparedDataset, dataset: str, template: str | None = None, recent: int = 10
                  ) -> tuple[list[Task], list[Task], str]:
    """(item tasks in item-index order, user tasks in user-index order, the item template used)."""
    table = data.item_table()
    template = template or default_template(dataset, table)
    texts = item_texts(table, template)
    counts = np.bincount(data.train[ITEM_INDEX].to_numpy(), minlength=data.num_items)
    bands = _bands(counts)
    items = [Task("item_profile", {"item_text": t, "interactions": int(n), "popularity_band": b}, PROFILE_SCHEMA,
                  PROMPT_VERSION) for t, n, b in zip(texts, counts, bands, strict=True)]
    titles = table["title"].to_list() if "title" in table.columns else texts
    tastes = taste_values(table, dataset)
    order = [USER_INDEX, TIMESTAMP] if TIMESTAMP in data.train.columns else [USER_INDEX, ITEM_INDEX]
    train = data.train.sort(order, descending=[False, True])
    users = []
    by_user = dict(train.group_by(USER_INDEX, maintain_order=True).agg(pl.col(ITEM_INDEX)).iter_rows())
    raw_items = data.item_map.raw.to_list()
    for u in range(data.num_users):
        history = by_user.get(u, [])
        taste = Counter(v for i in history for v in tastes[i]).most_common(3)
        users.append(Task("user_profile", {
            "num_items": len(history),
            "top_attributes": [f"{v} ({n})" for v, n in taste],
            "recent_titles": [str(titles[i]) for i in history[:5]],
            "mainstream_share": round(float(np.mean([bands[i] == "popular" for i in history])) if history else 0.0, 3),
            "item_profiles": "\n".join(f"- {texts[i]}" for i in history[:recent]),
            "history_items": [raw_items[i] for i in history],   # what the profile may draw on: training items
        }, PROFILE_SCHEMA, PROMPT_VERSION))
    return items, users, template


def write_profiles(out: str | Path, data: PreparedDataset, dataset: str, backend: Backend, encoder: TextEncoder,
                   *, template: str | None = None, data_seed: int | None = None, overwrite: bool = True,
                   progress=None) -> dict:
    """Generate, encode and write a profile folder atomically; returns its manifest."""
    start = time.perf_counter()
    item_tasks, user_tasks, template = profile_tasks(data, dataset, template)
    say = progress or (lambda message: None)
    say(f"writing {len(item_tasks)} item and {len(user_tasks)} user profiles with the {backend.name} backend "
        f"({backend.model})")
    if hasattr(backend, "progress"):   # a local model reports its pace while it decodes
        backend.progress = progress
    items, users = backend.run(item_tasks), backend.run(user_tasks)
    generated = time.perf_counter()
    item_text = [c.answer["profile"] if isinstance(c.answer, dict) else c.text for c in items]
    user_text = [c.answer["profile"] if isinstance(c.answer, dict) else c.text for c in users]
    say(f"encoding {len(item_text) + len(user_text)} profiles with {encoder.name}")
    item_vectors, user_vectors = encoder.encode(item_text), encoder.encode(user_text)
    encoded = time.perf_counter()
    with atomic_directory(out, "profiles", overwrite=overwrite) as tmp:
        pl.DataFrame({ITEM: data.item_map.raw, "profile": item_text,
                      "generated_by": [c.generated_by for c in items]}).write_parquet(tmp / "items.parquet")
        pl.DataFrame({USER: data.user_map.raw, "profile": user_text,
                      "generated_by": [c.generated_by for c in users]}).write_parquet(tmp / "users.parquet")
        np.save(tmp / "item_embeddings.npy", item_vectors)
        np.save(tmp / "user_embeddings.npy", user_vectors)
        files = {name: file_sha256(tmp / name) for name in ("items.parquet", "users.parquet", "item_embeddings.npy",
                                                            "user_embeddings.npy")}
        manifest = {
            "format": FORMAT, "dataset": dataset, "data_seed": data_seed, "prepare": asdict(data.config),
            "train_fingerprint": train_fingerprint(data.train),
            "backend": backend.name, "model": backend.model, "is_language_model": backend.is_language_model,
            "decoding": {k: getattr(backend, k) for k in ("dtype", "batch_size") if hasattr(backend, k)},
            "generated_by": sorted({c.generated_by for c in (*items, *users)}),
            "prompts": {"item_profile": PROMPT_VERSION, "user_profile": PROMPT_VERSION}, "item_template": template,
            "encoder": {"name": encoder.name, "key": encoder.key, "dim": int(item_vectors.shape[1])},
            "counts": {"items": len(item_text), "users": len(user_text)},
            "usage": vars(backend.usage),
            "encoding": {"texts_encoded": encoder.stats.misses, "cache_hits": encoder.stats.hits,
                         "cache_hit_rate": round(encoder.stats.hit_rate, 4),
                         "texts_per_second": round(encoder.stats.texts_per_second, 1)},
            "seconds": {"generate": round(generated - start, 2), "encode": round(encoded - generated, 2)},
            "files": files, "created_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        }
        (tmp / MANIFEST).write_text(json.dumps(manifest, indent=2, default=str))
    return manifest
