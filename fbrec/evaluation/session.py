"""Session-level metrics of multi-round recommendation: NUM (Chen, Dou & Mao, 2024) and session DCG.

A session is a list of rounds; each round is the slate shown (item ids, in order) and the items the user clicked.

NUM, on the U-measure (Sakai & Dou, 2013): the session is read as one trail, every shown item taking one unit of
length and every round after the first `reformulation_cost` more (what asking again costs the user); an item read at
trail position p earns gain x max(0, 1 - p / patience), once: at its FIRST appearance (a repeat earns nothing).
NUM = U(actual trail) / U(ideal trail), the ideal showing all the relevant items first, by gain, in the first round,
paying no reformulation. 1 = the ideal session.

Relevance: to compare policies, pass `gains` from the held-out truth (every relevant item of the user, whether a
policy showed it or not), the same for every policy: then a policy that finds 3 of the user's 3 relevant items
scores above one that finds 1. Without gains, relevance comes from the session's own clicks with NUM's click
enhancement (an item clicked in any round is relevant, counted at its first appearance): a within-session measure
that normalises each session by its own clicks, so it cannot rank policies (finding 1 of 3 relevant items early
scores 1.0 there).
(The paper counts characters of text; in a recommender the unit is an item read. Its constants were not
verified, see ../shared/notes/algorithms.md section 6.)

sDCG (Järvelin et al., 2008): sum over rounds r (1-based) and slots j (1-based) of
gain / ((1 + log_bq r) * log2(j + 1)), each item earning at most once: at its first appearance when `gains` are
given (the held-out truth), in the round of its first click otherwise (a slate shown again earns nothing again).
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass

from fbrec._checks import check_positive


@dataclass(frozen=True)
class Round:
    slate: Sequence[Hashable]
    clicked: frozenset

    @classmethod
    def of(cls, slate: Sequence[Hashable], clicked) -> Round:
        clicked = frozenset(clicked)
        stray = clicked - set(slate)
        if stray:
            from fbrec.errors import ConfigError

            raise ConfigError(f"clicked item(s) {sorted(map(str, stray))} not in the round's slate",
                              rule="a user clicks only what was shown", fix="check the session log")
        return cls(tuple(slate), clicked)


def _decay(position: float, patience: float) -> float:
    return max(0.0, 1.0 - position / patience)


def u_measure(rounds: Sequence[Round], gains: Mapping[Hashable, float], *, patience: float = 50.0,
              reformulation_cost: float = 1.0) -> float:
    """U of the actual trail: each relevant item (gain > 0) counted once, at its first appearance."""
    check_positive("patience", patience)
    check_positive("reformulation_cost", reformulation_cost, strict=False)
    seen, total, position = set(), 0.0, 0.0
    for r, rnd in enumerate(rounds):
        if r > 0:
            position += reformulation_cost
        for item in rnd.slate:
            if item not in seen:
                seen.add(item)
                total += gains.get(item, 0.0) * _decay(position, patience)
            position += 1
    return total


def session_gains(rounds: Sequence[Round], gain_of_click: float = 1.0) -> dict[Hashable, float]:
    """NUM's click enhancement: every item clicked anywhere in the session is relevant (gain_of_click)."""
    return {item: gain_of_click for rnd in rounds for item in rnd.clicked}


def num(rounds: Sequence[Round], gains: Mapping[Hashable, float] | None = None, *, patience: float = 50.0,
        reformulation_cost: float = 1.0) -> float:
    """U(actual) / U(ideal) in [0, 1]; gains default to the click-enhanced session labels. 0 without relevance."""
    gains = session_gains(rounds) if gains is None else dict(gains)
    ideal = sum(g * _decay(p, patience) for p, g in enumerate(sorted((g for g in gains.values() if g > 0),
                                                                     reverse=True)))
    if ideal == 0:
        return 0.0
    return u_measure(rounds, gains, patience=patience, reformulation_cost=reformulation_cost) / ideal


def session_dcg(rounds: Sequence[Round], gains: Mapping[Hashable, float] | None = None, *, bq: float = 4.0
                ) -> float:
    """sDCG with the round discount 1 + log_bq(r); every item earns once: its gain at its first appearance (gains
    given), or 1 in the round of its first click (no gains)."""
    if bq <= 1:
        from fbrec.errors import ConfigError

        raise ConfigError(f"bq={bq}", rule="the round discount base is > 1", fix="use bq=4 (Järvelin et al.)")
    total, earned = 0.0, set()
    for r, rnd in enumerate(rounds, start=1):
        for j, item in enumerate(rnd.slate, start=1):
            g = (gains.get(item, 0.0) if gains is not None else float(item in rnd.clicked))
            if g and item not in earned:
                earned.add(item)
                total += g / ((1 + math.log(r, bq)) * math.log2(j + 1))
    return total
