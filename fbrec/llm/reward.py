"""Reward models learned from user feedback (RLUF's P[positive | context, response], for recommendations):
P[positive | user context, item] from text, validated per event (AUC, log-loss, ECE) and per policy (does a
policy's mean score predict its true positive rate?).

Context and item are text embeddings (a frozen sentence encoder, cached): the item's text, and the user's training
history as the mean embedding of the items they reacted to positively and of those they did not (leave-one-out for
training events, so an event never sees itself), plus the item's and the user's training rating statistics. A small
MLP scores [u_pos, u_neg, item, u_pos * item, u_neg * item, stats]. Objectives: "pointwise" (log-loss on
positive vs logged non-positive events, e.g. MovieLens ratings >= 4 vs < 4) or "pairwise" (Bradley-Terry on pairs
of one user's events ordered by rating; its scores are calibrated afterwards by Platt scaling on validation).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import polars as pl
import torch
from torch import nn

from fbrec.errors import UnknownNameError
from fbrec.evaluation.calibration import calibration

OBJECTIVES = ("pointwise", "pairwise")


@dataclass
class FeedbackEvents:
    """Logged reactions with a per-user random split: arrays over events."""

    user: np.ndarray
    item: np.ndarray
    rating: np.ndarray
    label: np.ndarray        # 1 = positive reaction
    split: np.ndarray        # 0 train, 1 validation, 2 test
    num_users: int
    num_items: int

    @classmethod
    def from_ratings(cls, log: pl.DataFrame, *, positive_rating: float = 4.0, seed: int = 0,
                     val_fraction: float = 0.1, test_fraction: float = 0.2) -> FeedbackEvents:
        """log: user_index, item_index, rating (contiguous indices)."""
        rng = np.random.default_rng(seed)
        draw = rng.random(log.height)
        split = np.where(draw < test_fraction, 2, np.where(draw < test_fraction + val_fraction, 1, 0))
        rating = log["rating"].to_numpy().astype(np.float64)
        return cls(log["user_index"].to_numpy().copy(), log["item_index"].to_numpy().copy(), rating,
                   (rating >= positive_rating).astype(np.float32), split,
                   int(log["user_index"].max()) + 1, int(log["item_index"].max()) + 1)


class RewardModel(nn.Module):
    def __init__(self, text_dim: int, hidden: int = 128, stats: int = 4):
        super().__init__()
        self.head = nn.Sequential(nn.Linear(5 * text_dim + stats, hidden), nn.ReLU(), nn.Linear(hidden, 1))
        self.platt = nn.Parameter(torch.tensor([1.0, 0.0]), requires_grad=False)   # a * s + b, fitted for pairwise

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.head(features).squeeze(-1)

    def probability(self, features: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.platt[0] * self(features) + self.platt[1])


class RewardFeatures:
    """Builds the feature rows of (user, item) pairs from the training events only."""

    def __init__(self, events: FeedbackEvents, item_vectors: np.ndarray):
        self.items = torch.as_tensor(item_vectors, dtype=torch.float32)
        train = events.split == 0
        S = item_vectors.shape[1]
        self.pos_sum, self.neg_sum = torch.zeros(events.num_users, S), torch.zeros(events.num_users, S)
        self.pos_n, self.neg_n = torch.zeros(events.num_users), torch.zeros(events.num_users)
        u, i, lab = (torch.as_tensor(a[train]) for a in (events.user, events.item, events.label))
        vec = self.items[i]
        self.pos_sum.index_add_(0, u, vec * lab[:, None])
        self.neg_sum.index_add_(0, u, vec * (1 - lab)[:, None])
        self.pos_n.index_add_(0, u, lab)
        self.neg_n.index_add_(0, u, 1 - lab)
        r = torch.as_tensor(events.rating[train], dtype=torch.float32)
        self.user_mean = self._mean(u, r, events.num_users)
        self.item_mean = self._mean(i, r, events.num_items)
        self.item_count = torch.log1p(torch.zeros(events.num_items).index_add_(0, i, torch.ones(len(i))))

    @staticmethod
    def _mean(index: torch.Tensor, values: torch.Tensor, n: int, prior: float = 5.0) -> torch.Tensor:
        total = torch.zeros(n).index_add_(0, index, values)
        count = torch.zeros(n).index_add_(0, index, torch.ones_like(values))
        return (total + prior * values.mean()) / (count + prior) - values.mean()

    def rows(self, users: torch.Tensor, items: torch.Tensor, own_label: torch.Tensor | None = None) -> torch.Tensor:
        """own_label: for training events, the event's label, removed from its user's context (leave-one-out)."""
        vec = self.items[items]
        ps, ns, pn, nn_ = self.pos_sum[users], self.neg_sum[users], self.pos_n[users], self.neg_n[users]
        if own_label is not None:
            ps, pn = ps - vec * own_label[:, None], pn - own_label
            ns, nn_ = ns - vec * (1 - own_label)[:, None], nn_ - (1 - own_label)
        up, un = ps / pn.clamp_min(1)[:, None], ns / nn_.clamp_min(1)[:, None]
        stats = torch.stack([self.user_mean[users], self.item_mean[items], self.item_count[items],
                             torch.log1p(pn + nn_)], 1)
        return torch.cat([up, un, vec, up * vec, un * vec, stats], 1)


def _pairs(events: FeedbackEvents, mask: np.ndarray, rng: np.random.Generator, per_event: int = 1):
    """(higher, lower) event indices within users, among events of `mask` with different ratings."""
    idx = np.flatnonzero(mask)
    order = idx[np.argsort(events.user[idx], kind="stable")]
    starts = np.searchsorted(events.user[order], np.arange(events.num_users + 1))
    hi, lo = [], []
    for u in range(events.num_users):
        group = order[starts[u]:starts[u + 1]]
        if len(group) < 2:
            continue
        other = group[rng.integers(0, len(group), len(group) * per_event)]
        mine = np.repeat(group, per_event)
        diff = events.rating[mine] - events.rating[other]
        keep = diff != 0
        hi.append(np.where(diff > 0, mine, other)[keep])
        lo.append(np.where(diff > 0, other, mine)[keep])
    return np.concatenate(hi), np.concatenate(lo)


def train_reward_model(events: FeedbackEvents, item_vectors: np.ndarray, *, objective: str = "pointwise",
                       epochs: int = 20, batch_size: int = 1024, learning_rate: float = 1e-3, seed: int = 0,
                       progress=None) -> tuple[RewardModel, RewardFeatures, dict]:
    """Train on split 0, select the epoch with the best validation log-loss (split 1); returns the model, its
    feature builder and the history."""
    if objective not in OBJECTIVES:
        raise UnknownNameError("reward objective", objective, OBJECTIVES)
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    features = RewardFeatures(events, item_vectors)
    model = RewardModel(item_vectors.shape[1])
    opt = torch.optim.Adam(model.head.parameters(), lr=learning_rate, weight_decay=1e-5)
    train = np.flatnonzero(events.split == 0)
    val = events.split == 1
    t = {k: torch.as_tensor(getattr(events, k)) for k in ("user", "item", "label")}
    val_x = features.rows(t["user"][val], t["item"][val])
    val_y = t["label"][val]
    best, best_state, history = np.inf, None, []
    for epoch in range(epochs):
        model.train()
        if objective == "pointwise":
            perm = rng.permutation(train)
            for s in range(0, len(perm), batch_size):
                b = torch.as_tensor(perm[s:s + batch_size])
                x = features.rows(t["user"][b], t["item"][b], t["label"][b])
                loss = nn.functional.binary_cross_entropy_with_logits(model(x), t["label"][b])
                opt.zero_grad()
                loss.backward()
                opt.step()
        else:
            hi, lo = _pairs(events, events.split == 0, rng)
            perm = rng.permutation(len(hi))
            for s in range(0, len(perm), batch_size):
                h, lw = torch.as_tensor(hi[perm[s:s + batch_size]]), torch.as_tensor(lo[perm[s:s + batch_size]])
                sh = model(features.rows(t["user"][h], t["item"][h], t["label"][h]))
                sl = model(features.rows(t["user"][lw], t["item"][lw], t["label"][lw]))
                loss = -nn.functional.logsigmoid(sh - sl).mean()
                opt.zero_grad()
                loss.backward()
                opt.step()
        model.eval()
        with torch.no_grad():
            if objective == "pairwise":
                _fit_platt(model, val_x, val_y)
            val_loss = nn.functional.binary_cross_entropy(model.probability(val_x).clamp(1e-6, 1 - 1e-6),
                                                          val_y).item()
        history.append({"epoch": epoch, "val_log_loss": val_loss})
        if progress:
            progress(f"epoch {epoch}: validation log-loss {val_loss:.4f}")
        if val_loss < best:
            best, best_state = val_loss, {k: v.clone() for k, v in model.state_dict().items()}
    model.load_state_dict(best_state)
    return model, features, {"history": history, "best_epoch": int(np.argmin([h["val_log_loss"] for h in history]))}


def _fit_platt(model: RewardModel, x: torch.Tensor, y: torch.Tensor, steps: int = 200) -> None:
    """a, b minimising validation log-loss of sigmoid(a * score + b) (Platt scaling)."""
    scores = model(x).detach()
    ab = torch.tensor([1.0, 0.0], requires_grad=True)
    opt = torch.optim.LBFGS([ab], max_iter=steps)

    def closure():
        opt.zero_grad()
        loss = nn.functional.binary_cross_entropy_with_logits(ab[0] * scores + ab[1], y)
        loss.backward()
        return loss

    opt.step(closure)
    model.platt.data = ab.detach()


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
