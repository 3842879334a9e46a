"""The reward-model experiment end to end: events from a rated dataset, text features, training, per-event
metrics, system-level predictiveness where the truth is known, a model folder written atomically."""

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
    FeedbackEvents,
    RewardModel,
    event_metrics,
    predictiveness,
    train_reward_model,
)
from fbrec.llm.text import default_template, item_texts
from fbrec.types import ITEM, ITEM_INDEX, RATING, USER, USER_INDEX

RATED = ("movielens-100k", "coat")


def load_events(dataset: str, seed: int, data_dir=None, raw=None) -> tuple[FeedbackEvents, list[str], IdMap, IdMap]:
    from fbrec.data.datasets import load_raw

    if dataset not in RATED:
        raise ConfigError(f"reward models train on logged positive and non-positive reactions; {dataset!r} has none",
                          rule=f"datasets with explicit ratings: {', '.join(RATED)}", fix="--dataset movielens-100k")
    raw = raw if raw is not None else load_raw(dataset, data_dir)
    users, items = IdMap.fit("user", raw.log[USER]), IdMap.fit("item", raw.catalogue if raw.catalogue is not None
                                                                 else raw.log[ITEM])
    log = items.encode(users.encode(raw.log, USER, USER_INDEX), ITEM, ITEM_INDEX).select(
        USER_INDEX, ITEM_INDEX, RATING).sort(USER_INDEX, ITEM_INDEX)
    table = items.frame().rename({"raw": ITEM, "index": ITEM_INDEX}).join(
        items.encode(raw.items, ITEM, ITEM_INDEX, unknown="drop").drop(ITEM), on=ITEM_INDEX, how="left")
    texts = item_texts(table.sort(ITEM_INDEX), default_template(dataset, table))
    return FeedbackEvents.from_ratings(log, seed=seed), texts, users, items


def _policies(events: FeedbackEvents, seed: int) -> dict[str, np.ndarray]:
    """Five policies of very different quality: random, anti-popular (deliberately bad), popular, and two SVD
    factorisations of the training positives."""
    train = (events.split == 0) & (events.label == 1)
    m = np.zeros((events.num_users, events.num_items))
    m[events.user[train], events.item[train]] = 1.0
    pop = m.sum(0)
    u, s, vt = np.linalg.svd(m, full_matrices=False)
    rng = np.random.default_rng(seed)
    return {"random": rng.random(m.shape), "anti-popular": np.tile(-pop, (m.shape[0], 1)),
            "popular": np.tile(pop, (m.shape[0], 1)),
            "svd-8": (u[:, :8] * s[:8]) @ vt[:8], "svd-64": (u[:, :64] * s[:64]) @ vt[:64]}


def run_reward_model(dataset: str, out: str | Path, *, objective: str = "pointwise", seed: int = 0,
                     epochs: int = 20, encoder: str | Path | None = None, overwrite: bool = False,
                     progress=None) -> dict:
    from fbrec.errors import UnknownNameError
    from fbrec.llm.reward import OBJECTIVES

    if objective not in OBJECTIVES:   # before any data is read or text encoded
        raise UnknownNameError("reward objective", objective, OBJECTIVES)
    start = time.perf_counter()
    say = progress or (lambda m: None)
    events, texts, users, items = load_events(dataset, seed)
    text_encoder = TextEncoder(encoder)
    say(f"{len(events.user):,} events ({events.label.mean():.1%} positive), {len(texts):,} item texts")
    vectors = text_encoder.encode(texts)
    model, features, fit = train_reward_model(events, vectors, objective=objective, epochs=epochs, seed=seed,
                                              progress=say)
    metrics, reliability = event_metrics(model, features, events)
    result = {"dataset": dataset, "objective": objective, "seed": seed, "encoder": text_encoder.name,
              "best_epoch": fit["best_epoch"], "test": metrics, "history": fit["history"]}
    predictive = None
    if dataset == "movielens-100k":   # the semi-synthetic ground truth: relevance of every (user, item) pair
        from fbrec.data.datasets import data_dir, semisynthetic_truth

        gamma, _ = semisynthetic_truth(data_dir())
        gamma = gamma[np.asarray(users.raw.to_numpy()) - 1][:, np.asarray(items.raw.to_numpy()) - 1]
        exclude = {u: events.item[(events.user == u) & (events.split == 0)] for u in range(events.num_users)}
        predictive = predictiveness(model, features, gamma, _policies(events, seed), exclude)
        r = float(np.corrcoef(predictive["mean_reward_score"], predictive["true_positive_rate"])[0, 1])
        result["predictiveness"] = {"pearson_r": r, "policies": predictive.to_dicts(),
                                    "truth": "movielens-100k-semisynthetic relevance probabilities (Saito et al.)"}
    if dataset == "coat":   # Coat's MCAR test: 16 randomly shown items per user with their ratings
        from fbrec.data.datasets import load_raw
        from fbrec.llm.reward import predictiveness_on_candidates

        test = load_raw("coat").test
        tu = users.encode(test, USER, USER_INDEX, unknown="drop")
        tu = items.encode(tu, ITEM, ITEM_INDEX, unknown="drop")
        predictive = predictiveness_on_candidates(
            model, features, tu[USER_INDEX].to_numpy(), tu[ITEM_INDEX].to_numpy(),
            (tu[RATING].to_numpy() >= 4).astype(np.float64), _policies(events, seed), k=5)
        r = float(np.corrcoef(predictive["mean_reward_score"], predictive["true_positive_rate"])[0, 1])
        result["predictiveness"] = {"pearson_r": r, "policies": predictive.to_dicts(),
                                    "truth": "Coat's MCAR test ratings (rating >= 4), top-5 of each user's 16 items"}
    result["seconds"] = round(time.perf_counter() - start, 1)
    import torch

    with atomic_directory(out, "reward-model", overwrite=overwrite) as tmp:
        torch.save(model.state_dict(), tmp / "reward_model.pt")
        reliability.write_csv(tmp / "reliability.csv")
        if predictive is not None:
            predictive.write_csv(tmp / "predictiveness.csv")
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
        model = RewardModel((state["head.0.weight"].shape[1] - 4) // 5)   # 5 text blocks + 4 statistics
        model.load_state_dict(state)
    except (pickle.UnpicklingError, RuntimeError, ValueError, KeyError, TypeError, AttributeError, OSError,
            EOFError) as exc:
        reason = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else type(exc).__name__
        raise ConfigError(f"{str(path)!r} holds a reward model fbrec cannot load ({type(exc).__name__}: {reason})",
                          rule="reward_model.pt is a tensor state dict and result.json JSON, as `fbrec llm "
                          "reward-model train` wrote them (nothing else is unpickled)",
                          fix="train the reward model again") from None
    return model.eval(), result


def evaluate_reward_model(path: str | Path) -> dict:
    """Recompute the held-out metrics of a saved model (same data, split seed and encoder)."""
    model, result = load_reward_model(path)
    events, texts, _, _ = load_events(result["dataset"], result["seed"])
    from fbrec.llm.reward import RewardFeatures

    features = RewardFeatures(events, TextEncoder().encode(texts))
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


__all__ = ["evaluate_reward_model", "load_reward_model", "run_reward_model"]
