"""Multi-round evaluation: a recommender proposes a slate, a simulated user answers, the recommender adapts.

Policies compared over the same users and rounds:
    same    ignores feedback: the same top-k every round
    pages   drops what it already showed (the next page of its ranking)
    adapts  drops what it showed AND applies what the user said (the reaction's command, parsed into Preferences by
            the offline parser or an LLM: boosts accumulate, excludes stay)
    reward  drops what it showed and re-ranks its top `pool` candidates by a reward model's P[positive]
            (available when a reward model is given)
Per round: hit rate (users with a click), recall@k (clicks / held-out items), NDCG@k of the slate, pass rate
(users with a click so far). Per session: NUM (normalised by the ideal session, with click enhancement) and sDCG.
Scores are exact inner products of the run's embeddings (seen items excluded); no index is involved.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import polars as pl

from fbrec.data.preferences import Preferences, apply_preferences, rerank
from fbrec.evaluation.session import Round, num, session_dcg
from fbrec.llm.simulator import Reaction, UserState

POLICIES = ("same", "pages", "adapts", "reward")


def _merge(prefs: Preferences, new: Preferences, cap: float = 3.0) -> Preferences:
    for attribute, weights in new.boost.items():
        into = prefs.boost.setdefault(attribute, {})
        for value, w in weights.items():
            into[value] = float(np.clip(into.get(value, 0.0) + w, -cap, cap))
    for attribute, values in new.exclude.items():
        prefs.exclude[attribute] = sorted(set(prefs.exclude.get(attribute, [])) | set(values))
    prefs.popularity = new.popularity or prefs.popularity
    prefs.similar_to = [*prefs.similar_to, *(t for t in new.similar_to if t not in prefs.similar_to)]
    prefs.min_year = new.min_year if new.min_year is not None else prefs.min_year
    prefs.max_year = new.max_year if new.max_year is not None else prefs.max_year
    return prefs


def _ndcg(slate: list[int], truth: set[int]) -> float:
    dcg = sum(1.0 / np.log2(j + 2) for j, i in enumerate(slate) if i in truth)
    ideal = sum(1.0 / np.log2(j + 2) for j in range(min(len(truth), len(slate))))
    return dcg / ideal if ideal else 0.0


def _send(session, reaction: Reaction | None):
    """The session's next slate, or its outcome (summary, round rows, examples) once it has ended (None starts it)."""
    try:
        return session.send(reaction)
    except StopIteration as end:
        return end.value


def _drive(session, react: Callable[[list[int]], Reaction]):
    step = _send(session, None)
    while isinstance(step, list):
        step = _send(session, react(step))
    return step


def _session(policy: str, user: int, state: UserState, user_vectors, item_vectors, seen, parse, items, item_counts,
             rounds: int, slate: int, reward, pool: int):
    """One user's session under one policy: yields each round's slate, receives the user's Reaction, and returns
    (the session's summary row, its round rows, its examples in words)."""
    num_items = item_vectors.shape[0]
    scores = item_vectors @ user_vectors[user]
    prefs, shown, session, rows, examples = Preferences(), np.zeros(num_items, bool), [], [], []
    passed = False
    for r in range(rounds):
        allowed = np.ones(num_items, bool)
        allowed[seen.get(user, np.empty(0, np.int64))] = False
        if policy != "same":
            allowed &= ~shown
        boost = None
        if policy == "adapts" and not prefs.empty:
            mask, boost = apply_preferences(prefs, items, num_items, item_counts, item_vectors)
            if mask is not None and (allowed & mask).sum() >= slate:
                allowed &= mask
        candidates = np.flatnonzero(allowed)
        if len(candidates) == 0:
            break
        order = candidates[np.argsort(-scores[candidates], kind="stable")]
        if boost is not None:
            wide = order[: max(10 * slate, 200)]
            top, _ = rerank(wide, scores[wide], boost, slate)
        elif policy == "reward":
            wide = order[:pool]
            top = wide[np.argsort(-reward(user, wide), kind="stable")[:slate]]
        else:
            top = order[:slate]
        top = [int(i) for i in top]
        reaction = yield top
        clicked = set(reaction.clicked)
        passed = passed or bool(clicked)
        session.append(Round.of(top, clicked))
        shown[top] = True
        rows.append({"policy": policy, "round": r + 1, "user": user, "hit": float(bool(clicked)),
                     "recall": len(clicked & state.truth) / max(1, len(state.truth)),
                     "ndcg": _ndcg(top, state.truth), "passed": float(passed)})
        if policy == "adapts" and reaction.command:
            prefs = _merge(prefs, parse(reaction.command))
        if policy == "adapts":
            examples.append({"user": user, "round": r + 1, "slate": top, "clicked": sorted(clicked),
                             "command": reaction.command, "generated_by": reaction.generated_by,
                             "reasons": {str(k): v for k, v in list(reaction.reasons.items())[:3]}})
    truth = {item: 1.0 for item in state.truth}   # the same relevance for every policy (held-out truth)
    summary = {"policy": policy, "user": user, "num": num(session, truth), "sdcg": session_dcg(session, truth),
               "clicks": sum(len(s.clicked) for s in session)}
    return summary, rows, examples


@dataclass
class SessionResult:
    per_round: pl.DataFrame     # policy, round, hit_rate, recall, ndcg, pass_rate
    per_session: pl.DataFrame   # policy, user, num, sdcg, clicks
    examples: list[dict]        # a few sessions in words (slates, clicks, reasons, commands)


def simulate(user_vectors: np.ndarray, item_vectors: np.ndarray, seen: dict[int, np.ndarray],
             states: dict[int, UserState], react: Callable[[int, UserState, list[int]], Reaction],
             parse: Callable[[str], Preferences], items: pl.DataFrame | None, item_counts: np.ndarray,
             *, rounds: int = 5, slate: int = 10, policies=("same", "pages", "adapts"), examples: int = 3,
             reward: Callable[[int, np.ndarray], np.ndarray] | None = None, pool: int = 50,
             react_many: Callable[[list[tuple[int, UserState, list[int]]]], list[Reaction]] | None = None
             ) -> SessionResult:
    """reward(user, candidate item indices) -> P[positive] of each, for the "reward" policy.

    Users' sessions are independent, so with `react_many` (a language model answering many users in one batch) each
    round's slates of every user go to it together; without, each user's session runs to its end before the next
    one starts (the order a seeded simulator draws its clicks in). Both give the same sessions."""
    if "reward" in policies and reward is None:
        from fbrec.errors import ConfigError

        raise ConfigError("policy 'reward' without a reward model", rule="it re-ranks by a reward model's score",
                          fix="pass a reward model, or drop the policy")
    round_rows, session_rows, candidates_examples = [], [], []
    position = {user: n for n, user in enumerate(states)}
    for policy in policies:
        sessions = {user: _session(policy, user, state, user_vectors, item_vectors, seen, parse, items, item_counts,
                                   rounds, slate, reward, pool) for user, state in states.items()}
        done: dict[int, tuple[dict, list[dict], list[dict]]] = {}
        if react_many is None:
            for user, session in sessions.items():
                done[user] = _drive(session, lambda top, user=user: react(user, states[user], top))
        else:
            waiting = {user: _send(session, None) for user, session in sessions.items()}
            while waiting:
                asked = [user for user, top in waiting.items() if isinstance(top, list)]
                for user in [u for u in waiting if u not in asked]:
                    done[user] = waiting.pop(user)
                if not asked:
                    break
                answers = react_many([(user, states[user], waiting[user]) for user in asked])
                for user, reaction in zip(asked, answers, strict=True):
                    waiting[user] = _send(sessions[user], reaction)
        for user in states:
            summary, rows, shown = done[user]
            session_rows.append(summary)
            round_rows += rows
            candidates_examples += [(position[user], e["round"], e) for e in shown[:examples]]
    shown_examples = [e for _, _, e in sorted(candidates_examples, key=lambda x: x[:2])[:examples]]
    frame = pl.DataFrame(round_rows)
    per_round = frame.group_by("policy", "round", maintain_order=True).agg(
        pl.col("hit").mean().alias("hit_rate"), pl.col("recall").mean(), pl.col("ndcg").mean(),
        pl.col("passed").mean().alias("pass_rate"))
    return SessionResult(per_round, pl.DataFrame(session_rows), shown_examples)
