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
        return Reaction(clicked, ratings, reasons, ", ".join(parts))


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
        listing = "\n".join(f"{n}. {self.texts[i]}" for n, i in enumerate(slate, start=1))
        task = Task("simulate_user", {"profile": self.profiles[user_index], "slate": listing}, SIMULATOR_SCHEMA)
        c = self.backend.run([task])[0]
        slots = [n for n in (_slot(s, len(slate)) for s in c.answer["clicked"]) if n is not None]
        clicked = [slate[s - 1] for s in dict.fromkeys(slots)]
        reasons = {slate[n - 1]: str(r) for s, r in c.answer["reasons"].items()
                   if (n := _slot(s, len(slate))) is not None}
        return Reaction(clicked, {}, reasons, c.answer["command"], c.generated_by)
