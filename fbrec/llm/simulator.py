"""Simulated users who react to a slate with clicks, an optional rating and a short reason in words.

`GroundedSimulator` (the offline default) is an ORACLE, not a model of users: its clicks are the user's held-out
items (or, with relevance probabilities, draws from them), and its words are templates over the item attributes
that drive each decision. Its agreement with real behaviour is perfect by construction and says nothing about
how well a simulator models people; it exists so that multi-round evaluation runs offline and checkably.
`LLMSimulator` asks a language model, through the client interface, to answer as the user (a profile and the
slate in, validated JSON out); its agreement with held-out behaviour is what to measure.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

import numpy as np

from fbrec.llm.client import Backend, Schema, Task

ORACLE = "grounded-oracle/v1 (clicks are held-out truth; not a model of users)"


@dataclass
class Reaction:
    clicked: list[int]                 # item indices clicked, in slate order
    ratings: dict[int, float]          # item index -> rating (clicked items)
    reasons: dict[int, str]            # item index -> one short sentence
    command: str                       # what the user would say next ("more Comedy, fewer Horror"); may be ""
    generated_by: str = ORACLE


@dataclass
class UserState:
    """What the simulator knows of one user: their training items (history), their held-out items (truth) or the
    relevance probability of every item, and the attribute values of every item."""

    history: np.ndarray
    truth: set[int]
    relevance: np.ndarray | None = None
    taste: Counter = field(default_factory=Counter)


def _values(attrs: dict, columns: list[str]) -> list[str]:
    out = []
    for c in columns:
        v = attrs.get(c)
        if isinstance(v, list):
            out.extend(str(x) for x in v)
        elif v is not None:
            out.append(str(v))
    return out


class GroundedSimulator:
    """Clicks from held-out truth (or Bernoulli(relevance) with a seeded generator); reasons from attributes."""

    name, is_language_model = "grounded", False

    def __init__(self, item_attributes: list[dict], taste_columns: list[str], seed: int = 0):
        self.attributes, self.columns = item_attributes, taste_columns
        self.rng = np.random.default_rng(seed)

    def taste(self, history: np.ndarray) -> Counter:
        return Counter(v for i in history for v in _values(self.attributes[int(i)], self.columns))

    def react(self, user: UserState, slate: list[int]) -> Reaction:
        if user.relevance is not None:
            clicked = [i for i in slate if self.rng.random() < user.relevance[i]]
        else:
            clicked = [i for i in slate if i in user.truth]
        return self.words(user, slate, clicked)

    def words(self, user: UserState, slate: list[int], clicked: list[int], generated_by: str = ORACLE) -> Reaction:
        """Template ratings, reasons and a next command for these clicks (over the attributes that drive them)."""
        liked = Counter(v for i in clicked for v in _values(self.attributes[i], self.columns))
        reasons, ratings = {}, {}
        favourite = {v for v, _ in user.taste.most_common(5)}
        for i in slate:
            vals = _values(self.attributes[i], self.columns)
            if i in clicked:
                shared = [v for v in vals if v in favourite] or vals
                reasons[i] = f"Clicked: I like {', '.join(shared[:2]) or 'this'}."
                ratings[i] = 5.0 if shared and shared[0] in favourite else 4.0
            else:
                foreign = [v for v in vals if v not in favourite]
                reasons[i] = f"Skipped: {', '.join(foreign[:2])} is not for me." if foreign else "Skipped: not now."
        skipped = Counter(v for i in slate if i not in clicked for v in _values(self.attributes[i], self.columns)
                          if v not in favourite and v not in liked)
        parts = []
        if liked:
            parts.append(f"more {liked.most_common(1)[0][0]}")
        if skipped:
            parts.append(f"fewer {skipped.most_common(1)[0][0]}")
        return Reaction(clicked, ratings, reasons, ", ".join(parts), generated_by)


LEARNED = "learned/v1 (clicks ~ Bernoulli(clip(p_u . q_i, 0, 1)) of a WMF fitted on training feedback; template words)"


def fit_click_model(users: np.ndarray, items: np.ndarray, num_users: int, num_items: int, *, embedding_dim: int = 32,
                    alpha: float = 5.0, regularization: float = 50.0, sweeps: int = 10, seed: int = 0
                    ) -> tuple[np.ndarray, np.ndarray]:
    """WMF (Hu et al. 2008) on the exact all-pairs objective, solved by alternating least squares: targets 1 on the
    training pairs and 0 elsewhere, so p_u . q_i estimates how likely u clicks i. (user, item) vectors."""
    import torch

    from fbrec.losses.allpairs import observed_pairs, solve_rows

    pairs, _ = observed_pairs(users, items, np.ones(len(users)), np.ones(len(users)), objective="wmf",
                              num_items=num_items, alpha=alpha)
    g = torch.Generator().manual_seed(seed)
    p = 0.01 * torch.randn(num_users, embedding_dim, generator=g)
    q = 0.01 * torch.randn(num_items, embedding_dim, generator=g)
    by_item = pairs.transposed()
    for _ in range(sweeps):
        p = solve_rows(p, q, pairs, regularization, cg_steps=3)
        q = solve_rows(q, p, by_item, regularization, cg_steps=3)
    return p.numpy(), q.numpy()


class LearnedSimulator(GroundedSimulator):
    """A model of users fitted on training feedback only: each slate item is clicked with probability
    clip(p_u . q_i, 0, 1) from `fit_click_model` (seeded draws), and the words come from the oracle's templates. It
    never reads held-out items, so its agreement with held-out behaviour measures it."""

    name = "learned"

    def __init__(self, user_vectors: np.ndarray, item_vectors: np.ndarray, item_attributes: list[dict],
                 taste_columns: list[str], seed: int = 0):
        super().__init__(item_attributes, taste_columns, seed)
        self.user_vectors, self.item_vectors = user_vectors, item_vectors

    def click_probability(self, user: int, items: list[int]) -> np.ndarray:
        return np.clip(self.item_vectors[items] @ self.user_vectors[user], 0.0, 1.0)

    def react_as(self, user: int, state: UserState, slate: list[int]) -> Reaction:
        chance = self.click_probability(user, slate)
        clicked = [i for i, p in zip(slate, chance, strict=True) if self.rng.random() < p]
        return self.words(state, slate, clicked, LEARNED)


SIMULATOR_SCHEMA = Schema({"clicked": "array<number>", "reasons": "object<string>", "command": "string"})


def _slot(value, size: int) -> int | None:
    """A slate slot number (1-based) as the model wrote it (1, 1.0 or "1"), or None."""
    try:
        n = float(value)
    except (TypeError, ValueError):
        return None
    return int(n) if n.is_integer() and 1 <= n <= size else None


class LLMSimulator:
    """A language model answers as the user: {"clicked": [slot numbers], "reasons": {slot: text}, "command": ...}."""

    is_language_model = True

    def __init__(self, backend: Backend, item_texts: list[str], profiles: list[str]):
        self.backend, self.texts, self.profiles = backend, item_texts, profiles
        self.name = f"llm:{backend.name}:{backend.model}"

    def react(self, user_index: int, slate: list[int]) -> Reaction:
        return self.react_many([(user_index, slate)])[0]

    def react_many(self, asked: list[tuple[int, list[int]]]) -> list[Reaction]:
        """Many users' reactions in one backend call (a local model decodes them as one batch; the openai backend
        sends them concurrently)."""
        tasks = [Task("simulate_user", {"profile": self.profiles[user], "slate": "\n".join(
            f"{n}. {self.texts[i]}" for n, i in enumerate(slate, start=1))}, SIMULATOR_SCHEMA) for user, slate in asked]
        out = []
        for (_, slate), c in zip(asked, self.backend.run(tasks), strict=True):
            slots = [n for n in (_slot(s, len(slate)) for s in c.answer["clicked"]) if n is not None]
            clicked = [slate[s - 1] for s in dict.fromkeys(slots)]
            reasons = {slate[n - 1]: str(r) for s, r in c.answer["reasons"].items()
                       if (n := _slot(s, len(slate))) is not None}
            out.append(Reaction(clicked, {}, reasons, c.answer["command"], c.generated_by))
        return out
