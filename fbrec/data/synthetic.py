"""Seeded synthetic click logs with planted structure and known ground truth.

Generative story (all seeded):
  user factors  p_u ~ N(0, I/d);   item factors q_i = category centre + noise
  relevance     gamma_ui = sigmoid(relevance_scale * p_u . q_i + relevance_bias)
  exposure      items are shown in sessions of `slate_size` slots, drawn with probability proportional to
                popularity_i ** popularity_power (a long-tail catalogue); the slot at position r is examined
                with probability 1 / (1 + r) ** position_power, so
                theta_ui = P(shown) * P(examined | position)   (kept per logged row)
  feedback      click ~ Bernoulli(gamma) given examination; cart | click ~ Bernoulli(gamma); purchase | cart
                ~ Bernoulli(gamma). Levels are nested: impression < click < cart < purchase.
The log keeps every impression (level "impression") so exposure models can use it, plus `relevance` and
`propensity` columns holding gamma and theta for the logged pair.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import polars as pl

from fbrec._checks import check_positive
from fbrec.data.schema import FeedbackLevels
from fbrec.errors import ConfigError
from fbrec.types import ITEM, LEVEL, POSITION, PROPENSITY, SESSION, TIMESTAMP, USER

LEVELS = FeedbackLevels(("impression", "click", "cart", "purchase"))
_WORDS = ("alpha bravo cobalt delta ember falcon garnet harbor indigo jasper kelvin lumen magnet nimbus onyx "
          "prism quartz raven sierra tundra umber vector willow xenon yarrow zephyr").split()


@dataclass(frozen=True)
class SyntheticConfig:
    num_users: int = 1000
    num_items: int = 500
    embedding_dim: int = 8
    num_categories: int = 10
    sessions_per_user: int = 8
    slate_size: int = 10
    popularity_power: float = 1.0
    position_power: float = 1.0
    relevance_scale: float = 6.0
    relevance_bias: float = -2.0
    seed: int = 0

    def __post_init__(self):
        for name in ("num_users", "num_items", "embedding_dim", "num_categories", "sessions_per_user", "slate_size"):
            check_positive(name, getattr(self, name))
        check_positive("position_power", self.position_power, strict=False)
        check_positive("popularity_power", self.popularity_power, strict=False)


# above this many user x item cells the generator never materialises a dense matrix (relevance, slate keys)
DENSE_CELLS = 50_000_000


@dataclass(frozen=True)
class SyntheticData:
    log: pl.DataFrame          # user, item, timestamp, level, position, session, relevance, propensity
    items: pl.DataFrame        # item, category, subcategory, brand, popularity, text
    user_factors: np.ndarray   # (U, d) p_u
    item_factors: np.ndarray   # (I, d) q_i
    exposure: np.ndarray       # (I,) probability an item fills a given slot (before position examination)
    config: SyntheticConfig

    def relevance_of(self, users: np.ndarray, items: np.ndarray) -> np.ndarray:
        """True gamma of (user, item) pairs, computed from the factors: ground truth on demand, at any scale."""
        c = self.config
        dots = np.einsum("nd,nd->n", self.user_factors[users], self.item_factors[items])
        return 1 / (1 + np.exp(-(c.relevance_scale * dots + c.relevance_bias)))

    @property
    def relevance(self) -> np.ndarray:
        """(U, I) true gamma; only for catalogues small enough to hold densely (use relevance_of otherwise)."""
        U, I = len(self.user_factors), len(self.item_factors)
        if U * I > DENSE_CELLS:
            raise ConfigError(f"a dense relevance matrix of {U:,} x {I:,} cells", rule=f"at most {DENSE_CELLS:,} cells",
                              fix="use relevance_of(users, items) for the pairs you need")
        return _dense_gamma(self.user_factors, self.item_factors, self.config)


def _dense_gamma(p: np.ndarray, q: np.ndarray, cfg: SyntheticConfig) -> np.ndarray:
    return 1 / (1 + np.exp(-(cfg.relevance_scale * p @ q.T + cfg.relevance_bias)))          # (U, I)


def generate(config: SyntheticConfig | None = None) -> SyntheticData:
    cfg = config or SyntheticConfig()
    rng = np.random.default_rng(cfg.seed)
    U, I, d = cfg.num_users, cfg.num_items, cfg.embedding_dim
    category = rng.integers(0, cfg.num_categories, size=I)
    centres = rng.normal(0, 1, size=(cfg.num_categories, d)) / np.sqrt(d)
    q = centres[category] + rng.normal(0, 0.5, size=(I, d)) / np.sqrt(d)
    p = rng.normal(0, 1, size=(U, d)) / np.sqrt(d) + centres[rng.integers(0, cfg.num_categories, size=U)]
    dense = U * I <= DENSE_CELLS
    gamma = _dense_gamma(p, q, cfg) if dense else None   # small catalogues: bit-for-bit the original stream
    popularity = 1.0 / np.arange(1, I + 1) ** cfg.popularity_power
    popularity = popularity[rng.permutation(I)]
    slot_prob = popularity / popularity.sum()                                              # (I,)

    S, R = cfg.sessions_per_user, min(cfg.slate_size, I)
    n = U * S
    users = np.repeat(np.arange(U), S)
    # slates without replacement within a session: Gumbel top-R on log popularity
    gumbel = rng.gumbel(size=(n, I)) + np.log(slot_prob)[None, :] if n * I <= DENSE_CELLS else None
    if gumbel is not None:
        slates = np.argpartition(-gumbel, R - 1, axis=1)[:, :R]
        order = np.argsort(-np.take_along_axis(gumbel, slates, axis=1), axis=1)
        slates = np.take_along_axis(slates, order, axis=1)
    else:  # very large catalogues: sample with replacement (duplicates in a slate are rare)
        slates = rng.choice(I, size=(n, R), p=slot_prob)
    pos = np.tile(np.arange(R), n)
    u_flat, i_flat = np.repeat(users, R), slates.reshape(-1)
    examine = 1.0 / (1.0 + pos) ** cfg.position_power
    g = gamma[u_flat, i_flat] if dense else 1 / (1 + np.exp(-(
        cfg.relevance_scale * np.einsum("nd,nd->n", p[u_flat], q[i_flat]) + cfg.relevance_bias)))
    clicked = (rng.random(g.shape) < examine) & (rng.random(g.shape) < g)
    cart = clicked & (rng.random(g.shape) < g)
    buy = cart & (rng.random(g.shape) < g)
    level = clicked.astype(np.int8) + cart + buy
    # theta: P(item shown in a session of R draws) * P(examined | position); R draws approximate with 1-(1-p)^R
    shown = 1 - (1 - slot_prob[i_flat]) ** R
    session = np.repeat(np.arange(n), R)
    t0 = 1_600_000_000
    timestamp = t0 + np.repeat(rng.permutation(n), R) * 60 + pos  # sessions interleave in time

    log = pl.DataFrame({
        USER: u_flat.astype(np.int64), ITEM: i_flat.astype(np.int64), TIMESTAMP: timestamp.astype(np.int64),
        LEVEL: pl.Series(np.array(LEVELS.names)[level]).cast(LEVELS.dtype), POSITION: pos.astype(np.int64),
        SESSION: session.astype(np.int64), "relevance": g.astype(np.float64),
        PROPENSITY: (shown * examine).astype(np.float64),
    })
    words = np.array(_WORDS)
    text = [f"{words[c % len(words)]} {words[(c * 7 + 3) % len(words)]} item {i} "
            f"{' '.join(words[rng.integers(0, len(words), size=3)])}" for i, c in enumerate(category)]
    # side features drawn from their own stream, so adding them left every log above unchanged: a subcategory
    # (the quadrant of the item's own noise, i.e. informative beyond the category) and a brand that follows the
    # subcategory 70% of the time
    side = np.random.default_rng([cfg.seed, 1])
    directions = side.normal(size=(d, 2))
    own = (q - centres[category]) @ directions                                             # (I, 2)
    subcategory = category * 4 + (own[:, 0] > 0) * 2 + (own[:, 1] > 0)
    brand = np.where(side.random(I) < 0.7, subcategory * 3 + side.integers(0, 3, size=I),
                     side.integers(0, cfg.num_categories * 12, size=I))
    items = pl.DataFrame({ITEM: np.arange(I, dtype=np.int64), "category": category.astype(np.int64),
                          "subcategory": subcategory.astype(np.int64), "brand": brand.astype(np.int64),
                          "popularity": slot_prob, "text": text})
    return SyntheticData(log, items, p, q, slot_prob, cfg)


def mcar_test(data: SyntheticData, items_per_user: int) -> pl.DataFrame:
    """An MCAR test log with ground truth: for each user, `items_per_user` items drawn uniformly among those never
    clicked, labelled "click" with probability gamma (a fresh relevance draw) and "impression" otherwise.

    Clicks in the training log follow exposure, so a click-based test mostly asks which items were shown; this one
    asks which items are relevant, head or tail alike (the protocol of Saito et al.'s semi-synthetic data)."""
    check_positive("items_per_user", items_per_user)
    cfg = data.config
    U, I = len(data.user_factors), len(data.item_factors)
    rng = np.random.default_rng([cfg.seed, 2])
    positive = data.log.filter(pl.col(LEVEL) != LEVELS.names[0])
    n = min(items_per_user, I)
    if U * I <= DENSE_CELLS:
        clicked = np.zeros((U, I), dtype=bool)
        clicked[positive[USER].to_numpy(), positive[ITEM].to_numpy()] = True
        keys = rng.random((U, I))
        keys[clicked] = np.inf
        chosen = np.argpartition(keys, n - 1, axis=1)[:, :n]                     # (U, n)
    else:   # large catalogues: draw with a margin per user, drop clicked and repeated items (clicks are sparse)
        draws = rng.integers(0, I, size=(U, 2 * n + 8))
        clicked_keys = set((positive[USER].to_numpy() * I + positive[ITEM].to_numpy()).tolist())
        chosen = np.empty((U, n), dtype=np.int64)
        for user in range(U):
            row = [i for i in dict.fromkeys(draws[user].tolist()) if user * I + i not in clicked_keys][:n]
            if len(row) < n:
                raise ConfigError(f"user {user}: too few unclicked items drawn", rule="an MCAR test needs unclicked "
                                  "items", fix="lower mcar_test_items")
            chosen[user] = row
    u, i = np.repeat(np.arange(U), n), chosen.reshape(-1)
    g = data.relevance[u, i] if U * I <= DENSE_CELLS else data.relevance_of(u, i)
    relevant = rng.random(len(g)) < g
    t_end = int(data.log[TIMESTAMP].max()) + 1
    return pl.DataFrame({
        USER: u.astype(np.int64), ITEM: i.astype(np.int64), TIMESTAMP: np.full(len(u), t_end, dtype=np.int64),
        LEVEL: pl.Series(np.where(relevant, LEVELS.names[1], LEVELS.names[0])).cast(LEVELS.dtype),
        POSITION: np.zeros(len(u), dtype=np.int64), SESSION: np.full(len(u), -1, dtype=np.int64),
        "relevance": g.astype(np.float64), PROPENSITY: np.full(len(u), 1.0 / I),
    }).select(data.log.columns)
