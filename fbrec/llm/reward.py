"""Reward models learned from user feedback (RLUF's P[positive | context, response], for recommendations):
P[positive | user context, item], validated per event (AUC, log-loss, ECE) and per policy (does a policy's mean score
predict its true positive rate?).

Feature blocks (`features`), each scored by the same small MLP, so each block's worth is measured against the others:
    stats    the no-text baseline: the user's and the item's shrunk mean training rating, the item's log training
             count and the user's (every model has them)
    text     + the item's text embedding (a frozen sentence encoder, cached) and the user's history as text: the mean
             embedding of the items they reacted to positively and of those they did not (leave-one-out for training
             events, so an event never sees itself), and their products with the item's
    cf       + collaborative embeddings: a WMF (exact ALS) fitted on the training split's positives only: p_u, q_i,
             p_u * q_i and p_u . q_i
    text+cf  both
Objectives: "pointwise" (log-loss on positive vs logged non-positive events, e.g. MovieLens ratings >= 4 vs < 4) or
"pairwise" (Bradley-Terry on pairs of one user's events ordered by rating, calibrated afterwards by Platt scaling on
validation). Splits: "user" (each user's events at random: every test user keeps training history), "time" (each
user's latest events are test, the ones before validation) or "event" (each event independently).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import polars as pl
import torch
from torch import nn

from fbrec.errors import ConfigError, UnknownNameError
from fbrec.types import TIMESTAMP

OBJECTIVES = ("pointwise", "pairwise")
SPLITS = ("user", "time", "event")
FEATURES = ("stats", "text", "cf", "text+cf")


@dataclass
class FeedbackEvents:
    """Logged reactions and their split: arrays over events."""

    user: np.ndarray
    item: np.ndarray
    rating: np.ndarray
    label: np.ndarray        # 1 = positive reaction
    split: np.ndarray        # 0 train, 1 validation, 2 test
    num_users: int
    num_items: int

    @classmethod
    def from_ratings(cls, log: pl.DataFrame, *, positive_rating: float = 4.0, seed: int = 0,
                     val_fraction: float = 0.1, test_fraction: float = 0.2, split: str = "user",
                     hold_out: np.ndarray | None = None) -> FeedbackEvents:
        """log: user_index, item_index, rating (contiguous indices; `timestamp` for split="time"). hold_out: a boolean
        mask of events that are test whatever the split (never trained on)."""
        if split not in SPLITS:
            raise UnknownNameError("reward split", split, SPLITS)
        rng = np.random.default_rng(seed)
        users = log["user_index"].to_numpy()
        if split == "event":
            position = rng.random(log.height)
        else:
            if split == "time" and TIMESTAMP not in log.columns:
                raise ConfigError("split 'time' on a log without timestamps", rule="the time split holds out each "
                                  "user's latest events", fix="use --split user")
            key = rng.random(log.height) if split == "user" else -log[TIMESTAMP].to_numpy().astype(np.float64)
            order = np.lexsort((key, users))             # by user, then at random / latest first
            counts = np.bincount(users)
            starts = np.cumsum(counts) - counts
            rank = np.empty(log.height)
            rank[order] = np.arange(log.height) - starts[users[order]]
            position = (rank + 0.5) / counts[users]
        split_of = np.where(position < test_fraction, 2, np.where(position < test_fraction + val_fraction, 1, 0))
        if hold_out is not None:
            split_of[np.asarray(hold_out, bool)] = 2
        rating = log["rating"].to_numpy().astype(np.float64)
        return cls(users.copy(), log["item_index"].to_numpy().copy(), rating,
                   (rating >= positive_rating).astype(np.float32), split_of,
                   int(log["user_index"].max()) + 1, int(log["item_index"].max()) + 1)


class RewardModel(nn.Module):
    def __init__(self, in_dim: int, hidden: int = 128):
        super().__init__()
        self.head = nn.Sequential(nn.Linear(in_dim, hidden), nn.ReLU(), nn.Linear(hidden, 1))
        self.platt = nn.Parameter(torch.tensor([1.0, 0.0]), requires_grad=False)   # a * s + b, fitted for pairwise

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.head(features).squeeze(-1)

    def probability(self, features: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.platt[0] * self(features) + self.platt[1])


def collaborative_vectors(events: FeedbackEvents, seed: int = 0, embedding_dim: int = 32
                          ) -> tuple[np.ndarray, np.ndarray]:
    """(user, item) WMF vectors fitted by exact ALS on the training split's positives only."""
    from fbrec.llm.simulator import fit_click_model

    train = (events.split == 0) & (events.label == 1)
    return fit_click_model(events.user[train], events.item[train], events.num_users, events.num_items,
                           embedding_dim=embedding_dim, seed=seed)


class RewardFeatures:
    """Builds the feature rows of (user, item) pairs from the training events only. item_vectors: text embeddings
    (for "text" features); collaborative: (user, item) vectors (for "cf")."""

    def __init__(self, events: FeedbackEvents, item_vectors: np.ndarray | None = None, kind: str = "text",
                 collaborative: tuple[np.ndarray, np.ndarray] | None = None):
        if kind not in FEATURES:
            raise UnknownNameError("reward features", kind, FEATURES)
        self.kind = kind
        train = events.split == 0
        u, i, lab = (torch.as_tensor(a[train]) for a in (events.user, events.item, events.label))
        self.text = "text" in kind
        if self.text:
            self.items = torch.as_tensor(item_vectors, dtype=torch.float32)
            S = self.items.shape[1]
            self.pos_sum, self.neg_sum = torch.zeros(events.num_users, S), torch.zeros(events.num_users, S)
            vec = self.items[i]
            self.pos_sum.index_add_(0, u, vec * lab[:, None])
            self.neg_sum.index_add_(0, u, vec * (1 - lab)[:, None])
        self.pos_n, self.neg_n = torch.zeros(events.num_users), torch.zeros(events.num_users)
        self.pos_n.index_add_(0, u, lab)
        self.neg_n.index_add_(0, u, 1 - lab)
        self.cf = None
        if "cf" in kind:
            self.cf = tuple(torch.as_tensor(v, dtype=torch.float32) for v in collaborative)
        r = torch.as_tensor(events.rating[train], dtype=torch.float32)
        self.user_mean = self._mean(u, r, events.num_users)
        self.item_mean = self._mean(i, r, events.num_items)
        self.item_count = torch.log1p(torch.zeros(events.num_items).index_add_(0, i, torch.ones(len(i))))

    @property
    def width(self) -> int:
        return int(self.rows(torch.zeros(1, dtype=torch.long), torch.zeros(1, dtype=torch.long)).shape[1])

    @staticmethod
    def _mean(index: torch.Tensor, values: torch.Tensor, n: int, prior: float = 5.0) -> torch.Tensor:
        total = torch.zeros(n).index_add_(0, index, values)
        count = torch.zeros(n).index_add_(0, index, torch.ones_like(values))
        return (total + prior * values.mean()) / (count + prior) - values.mean()

    def rows(self, users: torch.Tensor, items: torch.Tensor, own_label: torch.Tensor | None = None) -> torch.Tensor:
        """own_label: for training events, the event's label, removed from its user's context (leave-one-out)."""
        pn, nn_ = self.pos_n[users], self.neg_n[users]
        if own_label is not None:
            pn, nn_ = pn - own_label, nn_ - (1 - own_label)
        blocks = []
        if self.text:
            vec = self.items[items]
            ps, ns = self.pos_sum[users], self.neg_sum[users]
            if own_label is not None:
                ps, ns = ps - vec * own_label[:, None], ns - vec * (1 - own_label)[:, None]
            up, un = ps / pn.clamp_min(1)[:, None], ns / nn_.clamp_min(1)[:, None]
            blocks += [up, un, vec, up * vec, un * vec]
        if self.cf is not None:
            pu, qi = self.cf[0][users], self.cf[1][items]
            blocks += [pu, qi, pu * qi, (pu * qi).sum(1, keepdim=True)]
        blocks.append(torch.stack([self.user_mean[users], self.item_mean[items], self.item_count[items],
                                   torch.log1p(pn + nn_)], 1))
        return torch.cat(blocks, 1)


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


def train_reward_model(events: FeedbackEvents, features: RewardFeatures, *, objective: str = "pointwise",
                       epochs: int = 20, batch_size: int = 1024, learning_rate: float = 1e-3, seed: int = 0,
                       progress=None) -> tuple[RewardModel, dict]:
    """Train on split 0, select the epoch with the best validation log-loss (split 1); returns the model and the
    history."""
    if objective not in OBJECTIVES:
        raise UnknownNameError("reward objective", objective, OBJECTIVES)
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    model = RewardModel(features.width)
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
    return model, {"history": history, "best_epoch": int(np.argmin([h["val_log_loss"] for h in history]))}


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


