"""What a finished run reports beside its metrics: the MNAR side-by-side table, calibration pairs of log-loss models,
the MLflow model, where the data came from and where the time went (used by fbrec.api.training)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path


def biased_vs_unbiased(val: dict[str, float], test: dict[str, float], ks):
    """metric | val_naive (MNAR clicks) | val_snips (IPS-corrected) | test, as a polars frame."""
    import polars as pl

    from fbrec.evaluation.ranking import SAITO_METRICS

    rows = []
    saito = [m for m in SAITO_METRICS if f"snips/{m}_at_{ks[0]}" in val]
    for metric in ("dcg", "ndcg", "recall", "map", *saito):
        for k in ks:
            key = f"{metric}_at_{k}"
            rows.append({"metric": key, "val_naive": val.get(key), "val_snips": val.get(f"snips/{key}"),
                         "test": test.get(key)})
    return pl.DataFrame(rows)


def _log_mlflow_model(run_id, model, dm, user_emb, item_emb, tower_files, out: Path, uri: str,
                      register: str | None, say: Callable[[str], None]) -> None:
    """The run's model the way MLflow users expect it: a Flat-index bundle logged as a pyfunc (fbrec.tracking.model),
    registered when asked."""
    from fbrec.api.rundata import seen_pairs
    from fbrec.bundle import write_bundle
    from fbrec.tracking.model import log_bundle_model  # mlflow.pyfunc: imported only here

    tower = {Path(f).name: Path(f).read_bytes() for f in tower_files} or None
    write_bundle(out, user_embeddings=user_emb, item_embeddings=item_emb, user_map=dm.data.user_map,
                 item_map=dm.data.item_map, seen=seen_pairs(dm.data), model=type(model).__name__, run_id=run_id,
                 dataset=dm.data.name, items=dm.data.items, levels=dm.level_names(), user_tower=tower,
                 recall_queries=100)
    id_type = "long" if dm.data.user_map.raw.dtype.is_integer() else "string"
    item_type = "long" if dm.data.item_map.raw.dtype.is_integer() else "string"
    uri_logged = log_bundle_model(run_id, out, uri, user_id_type=id_type, item_id_type=item_type, register=register)
    if register:
        say(f"registered {uri_logged} as model {register!r} in the MLflow model registry")


def _data_source(dm) -> str:
    """Where the run's data came from: the log file, the prepared folder, or the registered dataset's folder."""
    from fbrec.data.datasets import data_dir

    if getattr(dm, "log_path", None):
        return str(Path(dm.log_path).resolve())
    if getattr(dm, "prepared_dir", None):
        return str(Path(dm.prepared_dir).resolve())
    return str(data_dir(getattr(dm, "data_dir", None)) / dm.data.name)


def _calibration_pairs(dm, user_emb, item_emb, max_positives: int = 200_000, seed: int = 0):
    """sigmoid(score) on the test positives (label 1) and, per positive, num_negatives items the user never
    interacted with (label 0): the population a log-loss model's probabilities refer to (its training sampling)."""
    import numpy as np

    es = dm.eval_set("test")
    truth = es.truth.tocoo()
    rng = np.random.default_rng(seed)
    pick = rng.permutation(truth.nnz)[:max_positives]
    users, items = truth.row[pick].astype(np.int64), truth.col[pick].astype(np.int64)
    k = max(1, int(getattr(dm, "num_negatives", 1)))
    neg_users = np.repeat(users, k)
    neg_items = rng.integers(0, dm.num_items, size=len(neg_users))
    seen = (es.exclude + es.truth).tocsr()
    keep = np.asarray(seen[neg_users, neg_items]).ravel() == 0          # a drawn item the user has is not a negative
    u = np.concatenate([users, neg_users[keep]])
    i = np.concatenate([items, neg_items[keep]])
    scores = (user_emb[u] * item_emb[i]).sum(1)
    labels = np.concatenate([np.ones(len(users)), np.zeros(int(keep.sum()))])
    return 1.0 / (1.0 + np.exp(-scores)), labels


def stage_line(stages: dict[str, float], validations: int) -> str:
    """One line of where the run's time went (also logged as time/<stage>_seconds)."""
    names = {"prepare": "config + read + prepare data + build model", "train": "train", "validation": f"validation ({validations}x)",
             "test": "test", "export": "reports + embeddings + logging"}
    return "time: " + ", ".join(f"{names[k]} {v:.1f} s" for k, v in stages.items() if k in names)


def _sample_words(dm) -> str:
    users = len(dm.eval_set("val").users)
    who = (f"a seeded sample of {dm.val_users} of {users} users" if dm.val_users and dm.val_users < users
           else f"all {users} users")
    what = (f"their relevant items among {dm.sampled_metrics} sampled items each (sampled metrics, not full "
            "ranking)" if getattr(dm, "sampled_metrics", None) else "every item")
    return f"{who}, {what}"
