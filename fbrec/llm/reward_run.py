"""The reward-model experiment end to end: events from a rated dataset, features (stats, text, collaborative),
training, per-event metrics, system-level predictiveness over a dozen policies where the truth is known, a model
folder written atomically. A reward model trained for a run (`hold_out` = the run's validation and test pairs) never
trains on a pair the run holds out, and records them, so the run's simulation can check it."""

from __future__ import annotations

import json
import pickle
import time
from pathlib import Path

import numpy as np
import polars as pl

from fbrec._atomic import atomic_directory, is_fbrec_output
from fbrec.data.idmap import IdMap
from fbrec.errors import ConfigError
from fbrec.llm.encoders import TextEncoder
from fbrec.llm.reward import (
    FEATURES,
    FeedbackEvents,
    RewardFeatures,
    RewardModel,
    collaborative_vectors,
    train_reward_model,
)
from fbrec.llm.reward_metrics import event_metrics, policy_agreement, predictiveness
from fbrec.llm.text import default_template, item_texts
from fbrec.types import ITEM, ITEM_INDEX, RATING, TIMESTAMP, USER, USER_INDEX

RATED = ("movielens-100k", "coat")


def load_events(dataset: str, seed: int, data_dir=None, raw=None, *, split: str = "user",
                hold_out: pl.DataFrame | None = None) -> tuple[FeedbackEvents, list[str], IdMap, IdMap]:
    """Events of a rated dataset with their split; hold_out: raw (user, item) pairs that are test whatever the
    split."""
    from fbrec.data.datasets import load_raw

    if dataset not in RATED:
        raise ConfigError(f"reward models train on logged positive and non-positive reactions; {dataset!r} has none",
                          rule=f"datasets with explicit ratings: {', '.join(RATED)}", fix="--dataset movielens-100k")
    raw = raw if raw is not None else load_raw(dataset, data_dir)
    users, items = IdMap.fit("user", raw.log[USER]), IdMap.fit("item", raw.catalogue if raw.catalogue is not None
                                                                 else raw.log[ITEM])
    columns = [USER_INDEX, ITEM_INDEX, RATING] + ([TIMESTAMP] if TIMESTAMP in raw.log.columns else [])
    log = items.encode(users.encode(raw.log, USER, USER_INDEX), ITEM, ITEM_INDEX).sort(USER_INDEX, ITEM_INDEX)
    mask = None
    if hold_out is not None:
        pairs = hold_out.select(pl.col(USER).cast(pl.String), pl.col(ITEM).cast(pl.String)).unique().with_columns(
            held=pl.lit(True))
        mask = log.with_columns(pl.col(USER).cast(pl.String), pl.col(ITEM).cast(pl.String)).join(
            pairs, on=[USER, ITEM], how="left", maintain_order="left")["held"].fill_null(False).to_numpy()
    table = items.frame().rename({"raw": ITEM, "index": ITEM_INDEX}).join(
        items.encode(raw.items, ITEM, ITEM_INDEX, unknown="drop").drop(ITEM), on=ITEM_INDEX, how="left")
    texts = item_texts(table.sort(ITEM_INDEX), default_template(dataset, table))
    return FeedbackEvents.from_ratings(log.select(columns), seed=seed, split=split, hold_out=mask), texts, users, items


def build_features(events: FeedbackEvents, texts: list[str], kind: str, seed: int,
                   encoder: str | Path | None = None) -> tuple[RewardFeatures, str | None]:
    """The feature builder of `kind` from the training events (and the encoder's name when text is used)."""
    text_encoder = TextEncoder(encoder) if "text" in kind else None
    vectors = text_encoder.encode(texts) if text_encoder else None
    collaborative = collaborative_vectors(events, seed) if "cf" in kind else None
    return RewardFeatures(events, vectors, kind, collaborative), text_encoder.name if text_encoder else None


def _bpr(m: np.ndarray, dim: int, seed: int, epochs: int = 40) -> np.ndarray:
    """MF trained by BPR (one sampled negative per positive, Adam, full passes) on a users x items 0/1 matrix."""
    import torch

    g = torch.Generator().manual_seed(seed)
    users, items = (torch.as_tensor(a) for a in np.nonzero(m))
    p = torch.nn.Parameter(0.1 * torch.randn(m.shape[0], dim, generator=g))
    q = torch.nn.Parameter(0.1 * torch.randn(m.shape[1], dim, generator=g))
    opt = torch.optim.Adam([p, q], lr=0.01)
    for _ in range(epochs):
        order = torch.randperm(len(users), generator=g)
        for s in range(0, len(order), 4096):
            b = order[s:s + 4096]
            u, i = users[b], items[b]
            j = torch.randint(0, m.shape[1], (len(b),), generator=g)
            x = (p[u] * (q[i] - q[j])).sum(1)
            loss = -torch.nn.functional.logsigmoid(x).mean() + 1e-4 * (p[u].square().sum() + q[i].square().sum()
                                                                      + q[j].square().sum()) / len(b)
            opt.zero_grad()
            loss.backward()
            opt.step()
    return (p @ q.T).detach().numpy()


BAD_POLICIES = ("random", "anti-popular")


def _policies(events: FeedbackEvents, seed: int) -> dict[str, np.ndarray]:
    """Twelve policies from the training positives: two deliberately bad (random, anti-popular) and ten sensible
    ones (popularity, MF by SVD at 8/32/64 dims, WMF by exact ALS at 16/64, BPR-MF, item-kNN, and two
    popularity blends)."""
    from fbrec.llm.simulator import fit_click_model

    train = (events.split == 0) & (events.label == 1)
    m = np.zeros((events.num_users, events.num_items))
    m[events.user[train], events.item[train]] = 1.0
    pop = m.sum(0)
    u, s, vt = np.linalg.svd(m, full_matrices=False)
    rng = np.random.default_rng(seed)

    def z(x: np.ndarray) -> np.ndarray:
        return (x - x.mean(1, keepdims=True)) / np.maximum(x.std(1, keepdims=True), 1e-12)

    def wmf(dim: int) -> np.ndarray:
        p, q = fit_click_model(events.user[train], events.item[train], events.num_users, events.num_items,
                               embedding_dim=dim, seed=seed)
        return p @ q.T

    norm = np.sqrt(np.maximum(m.sum(0), 1.0))
    cosine = (m.T @ m) / norm[:, None] / norm[None, :]
    np.fill_diagonal(cosine, 0.0)
    popular = np.tile(pop, (m.shape[0], 1))
    svd64 = (u[:, :64] * s[:64]) @ vt[:64]
    return {"random": rng.random(m.shape), "anti-popular": -popular, "popular": popular,
            "svd-8": (u[:, :8] * s[:8]) @ vt[:8], "svd-32": (u[:, :32] * s[:32]) @ vt[:32], "svd-64": svd64,
            "wmf-16": wmf(16), "wmf-64": wmf(64), "bpr-32": _bpr(m, 32, seed), "item-knn": m @ cosine,
            "svd-64 + popular (1:1)": z(svd64) + z(popular), "svd-64 + popular (1:3)": z(svd64) + 3 * z(popular)}


def run_reward_model(dataset: str, out: str | Path, *, objective: str = "pointwise", seed: int = 0,
                     epochs: int = 20, encoder: str | Path | None = None, features: str = "text", split: str = "user",
                     hold_out: pl.DataFrame | None = None, bound_to: dict | None = None, overwrite: bool = False,
                     progress=None) -> dict:
    """hold_out: raw (user, item) pairs never trained on (a run's validation and test pairs); bound_to: what the
    model is trained for ({"run_id", "held_out_sha256"}), stored in result.json."""
    from fbrec.errors import UnknownNameError
    from fbrec.llm.reward import OBJECTIVES, SPLITS

    for kind, value, known in (("reward objective", objective, OBJECTIVES), ("reward features", features, FEATURES),
                               ("reward split", split, SPLITS)):
        if value not in known:   # before any data is read or text encoded
            raise UnknownNameError(kind, value, known)
    start = time.perf_counter()
    say = progress or (lambda m: None)
    events, texts, users, items = load_events(dataset, seed, split=split, hold_out=hold_out)
    say(f"{len(events.user):,} events ({events.label.mean():.1%} positive), split by {split}: "
        f"{np.bincount(events.split, minlength=3).tolist()} train/validation/test; features {features}")
    builder, encoder_name = build_features(events, texts, features, seed, encoder)
    model, fit = train_reward_model(events, builder, objective=objective, epochs=epochs, seed=seed, progress=say)
    metrics, reliability = event_metrics(model, builder, events)
    result = {"dataset": dataset, "objective": objective, "seed": seed, "features": features, "split": split,
              "encoder": encoder_name, "best_epoch": fit["best_epoch"], "test": metrics, "history": fit["history"]}
    if bound_to is not None:
        result["run"] = bound_to
    predictive = None
    if dataset == "movielens-100k":   # the semi-synthetic ground truth: relevance of every (user, item) pair
        from fbrec.data.datasets import data_dir
        from fbrec.data.semisynthetic import semisynthetic_truth

        gamma, _ = semisynthetic_truth(data_dir())
        gamma = gamma[np.asarray(users.raw.to_numpy()) - 1][:, np.asarray(items.raw.to_numpy()) - 1]
        exclude = {u: events.item[(events.user == u) & (events.split == 0)] for u in range(events.num_users)}
        predictive = predictiveness(model, builder, gamma, _policies(events, seed), exclude)
        truth = "movielens-100k-semisynthetic relevance probabilities (Saito et al.), top-10 per user"
    if dataset == "coat":   # Coat's MCAR test: 16 randomly shown items per user with their ratings
        from fbrec.data.datasets import load_raw
        from fbrec.llm.reward_metrics import predictiveness_on_candidates

        test = load_raw("coat").test
        tu = users.encode(test, USER, USER_INDEX, unknown="drop")
        tu = items.encode(tu, ITEM, ITEM_INDEX, unknown="drop")
        predictive = predictiveness_on_candidates(
            model, builder, tu[USER_INDEX].to_numpy(), tu[ITEM_INDEX].to_numpy(),
            (tu[RATING].to_numpy() >= 4).astype(np.float64), _policies(events, seed), k=5)
        truth = "Coat's MCAR test ratings (rating >= 4), top-5 of each user's 16 items"
    if predictive is not None:
        result["predictiveness"] = {**policy_agreement(predictive, BAD_POLICIES), "policies": predictive.to_dicts(),
                                    "truth": truth}
    result["seconds"] = round(time.perf_counter() - start, 1)
    import torch

    with atomic_directory(out, "reward-model", overwrite=overwrite) as tmp:
        torch.save(model.state_dict(), tmp / "reward_model.pt")
        reliability.write_csv(tmp / "reliability.csv")
        if predictive is not None:
            predictive.write_csv(tmp / "predictiveness.csv")
        if hold_out is not None:
            hold_out.select(pl.col(USER).cast(pl.String), pl.col(ITEM).cast(pl.String)).write_parquet(
                tmp / "held_out.parquet")
        (tmp / "result.json").write_text(json.dumps(result, indent=2))
        _plot_reliability(reliability, tmp / "reliability.png", metrics["ece"])
    return result


def load_reward_model(path: str | Path) -> tuple[RewardModel, dict]:
    import torch

    path = Path(path)
    if not is_fbrec_output(path) or not (path / "result.json").is_file():
        raise ConfigError(f"{str(path)!r} is not a reward-model folder", rule="written by `fbrec llm reward-model "
                          "train`", fix="train one first")
    try:
        result = json.loads((path / "result.json").read_text())
        # weights only: a crafted file (pickled code, other objects) is refused by torch's restricted unpickler
        state = torch.load(path / "reward_model.pt", weights_only=True)
        model = RewardModel(state["head.0.weight"].shape[1])
        model.load_state_dict(state)
    except (pickle.UnpicklingError, RuntimeError, ValueError, KeyError, TypeError, AttributeError, OSError,
            EOFError) as exc:
        reason = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else type(exc).__name__
        raise ConfigError(f"{str(path)!r} holds a reward model fbrec cannot load ({type(exc).__name__}: {reason})",
                          rule="reward_model.pt is a tensor state dict and result.json JSON, as `fbrec llm "
                          "reward-model train` wrote them (nothing else is unpickled)",
                          fix="train the reward model again") from None
    return model.eval(), result


def rebuild(path: str | Path) -> tuple[RewardModel, dict, FeedbackEvents, RewardFeatures, IdMap, IdMap]:
    """A saved reward model with the events and features it was trained on (same data, split, hold-out, seed)."""
    model, result = load_reward_model(path)
    held = Path(path) / "held_out.parquet"
    events, texts, users, items = load_events(result["dataset"], result["seed"], split=result.get("split", "event"),
                                              hold_out=pl.read_parquet(held) if held.is_file() else None)
    features, _ = build_features(events, texts, result.get("features", "text"), result["seed"])
    return model, result, events, features, users, items


def evaluate_reward_model(path: str | Path) -> dict:
    """Recompute the held-out metrics of a saved model (same data, split, hold-out, seed and encoder)."""
    model, result, events, features, _, _ = rebuild(path)
    metrics, _ = event_metrics(model, features, events)
    return {"saved": result["test"], "recomputed": metrics}


def _plot_reliability(table: pl.DataFrame, path: Path, ece: float) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(4, 4))
    ax.plot([0, 1], [0, 1], ls="--", c="grey")
    ax.plot(table["predicted"].to_list(), table["observed"].to_list(), marker="o")
    ax.set_xlabel("predicted P[positive]")
    ax.set_ylabel("observed rate")
    ax.set_title(f"reliability (ECE {ece:.3f})")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


__all__ = ["evaluate_reward_model", "load_reward_model", "rebuild", "run_reward_model"]
