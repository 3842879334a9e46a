"""How good a reward model is: per held-out event (AUC, log-loss, calibration) and per policy (does a policy's mean
predicted reward order the policies as their true positive rates do?)."""

from __future__ import annotations

import numpy as np
import polars as pl
import torch

from fbrec.evaluation.calibration import calibration
from fbrec.llm.reward import FeedbackEvents, RewardFeatures, RewardModel


@torch.no_grad()
def score_pairs(model: RewardModel, features: RewardFeatures, users: np.ndarray, items: np.ndarray,
                chunk: int = 65_536) -> np.ndarray:
    out = []
    for s in range(0, len(users), chunk):
        x = features.rows(torch.as_tensor(users[s:s + chunk]), torch.as_tensor(items[s:s + chunk]))
        out.append(model.probability(x).numpy())
    return np.concatenate(out) if out else np.zeros(0)


def event_metrics(model: RewardModel, features: RewardFeatures, events: FeedbackEvents, split: int = 2,
                  bins: int = 15) -> tuple[dict, pl.DataFrame]:
    from sklearn.metrics import log_loss, roc_auc_score

    sel = events.split == split
    p = score_pairs(model, features, events.user[sel], events.item[sel])
    y = events.label[sel]
    ece, reliability = calibration(p, y, bins)
    return {"auc": float(roc_auc_score(y, p)), "log_loss": float(log_loss(y, np.clip(p, 1e-6, 1 - 1e-6))),
            "ece": ece, "positive_rate": float(y.mean()), "events": int(sel.sum())}, reliability


def predictiveness(model: RewardModel, features: RewardFeatures, relevance: np.ndarray,
                   policies: dict[str, np.ndarray], exclude: dict[int, np.ndarray], k: int = 10
                   ) -> pl.DataFrame:
    """For each policy (a users x items score matrix): mean reward-model score of its top-k per user and the true
    mean relevance of the same items (known here: the semi-synthetic relevance probabilities)."""
    rows = []
    users = np.arange(relevance.shape[0])
    for name, scores in policies.items():
        s = scores.astype(np.float64).copy()
        for u, items in exclude.items():
            s[u, items] = -np.inf
        top = np.argpartition(-s, k, axis=1)[:, :k]
        uu = np.repeat(users, k)
        p = score_pairs(model, features, uu, top.reshape(-1))
        rows.append({"policy": name, "mean_reward_score": float(p.mean()),
                     "true_positive_rate": float(relevance[uu, top.reshape(-1)].mean())})
    return pl.DataFrame(rows)


def predictiveness_on_candidates(model: RewardModel, features: RewardFeatures, users: np.ndarray, items: np.ndarray,
                                 labels: np.ndarray, policies: dict[str, np.ndarray], k: int = 5) -> pl.DataFrame:
    """The MCAR version (Coat): each user has a set of randomly shown items with known labels; each policy picks
    its top-k of them; its true positive rate is the share of labelled positives among its picks."""
    rows = []
    order = np.lexsort((items, users))
    users, items, labels = users[order], items[order], labels[order]
    starts = np.flatnonzero(np.r_[True, users[1:] != users[:-1]])
    ends = np.r_[starts[1:], len(users)]
    for name, scores in policies.items():
        pick = np.concatenate([np.arange(a, b)[np.argsort(-scores[users[a], items[a:b]], kind="stable")[:k]]
                               for a, b in zip(starts, ends, strict=True)])
        p = score_pairs(model, features, users[pick], items[pick])
        rows.append({"policy": name, "mean_reward_score": float(p.mean()),
                     "true_positive_rate": float(labels[pick].mean())})
    return pl.DataFrame(rows)


def policy_agreement(table: pl.DataFrame, bad: tuple[str, ...] = ()) -> dict:
    """How well mean reward scores predict the policies' true positive rates: Pearson and Spearman over all policies
    and over the sensible ones (those not in `bad`), and whether the top-scored sensible policy is the truly best."""
    from scipy.stats import pearsonr, spearmanr

    sensible = table.filter(~pl.col("policy").is_in(list(bad)))
    out = {}
    for name, t in (("all", table), ("sensible", sensible)):
        x, y = t["mean_reward_score"].to_numpy(), t["true_positive_rate"].to_numpy()
        out[f"pearson_{name}"] = float(pearsonr(x, y)[0]) if len(t) > 2 and x.std() and y.std() else float("nan")
        out[f"spearman_{name}"] = float(spearmanr(x, y)[0]) if len(t) > 2 and x.std() and y.std() else float("nan")
    out["pearson_r"] = out["pearson_all"]
    out["picked"] = sensible["policy"][int(np.argmax(sensible["mean_reward_score"].to_numpy()))]
    out["truly_best"] = sensible["policy"][int(np.argmax(sensible["true_positive_rate"].to_numpy()))]
    out["picks_the_best"] = out["picked"] == out["truly_best"]
    out["policies_sensible"] = sensible.height
    return out
