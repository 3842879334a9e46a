"""Session metrics rank policies by what they find of the user's held-out truth (issue 22): NUM and sDCG take
relevance from the truth, the same for every policy, and a repeated item earns nothing after its first time."""

from __future__ import annotations

import numpy as np
import pytest

from fbrec.evaluation.session import Round, num, session_dcg

TRUTH = {"a": 1.0, "b": 1.0, "c": 1.0}   # the user's three relevant held-out items


def _session(*rounds):
    return [Round.of(slate, clicked) for slate, clicked in rounds]


ONE_EARLY = _session((("a", "x", "y"), {"a"}), (("a", "x", "y"), {"a"}))            # finds a, then repeats itself
MORE_LATER = _session((("a", "x", "y"), {"a"}), (("b", "c", "z"), {"b", "c"}))       # finds all three by round 2


def test_num_with_truth_gains_ranks_finding_more_relevant_items_above_finding_one_early():
    # ideal: a, b, c at positions 0, 1, 2 -> 1 + 0.9 + 0.8 = 2.7 (patience 10)
    # one early: a at 0 -> 1.0 (its repeat earns nothing) -> 1 / 2.7
    # more later: a at 0, then one reformulation: b at 4, c at 5 -> 1 + 0.6 + 0.5 = 2.1 -> 2.1 / 2.7
    assert num(ONE_EARLY, TRUTH, patience=10) == pytest.approx(1 / 2.7)
    assert num(MORE_LATER, TRUTH, patience=10) == pytest.approx(2.1 / 2.7)
    # the click-normalised form (no gains) ranks them the other way: each session is divided by its own clicks
    assert num(ONE_EARLY, patience=10) == pytest.approx(1.0)
    assert num(MORE_LATER, patience=10) < 1.0


def test_sdcg_counts_a_repeated_slate_once():
    # a at round 1 slot 1: 1 / (1 * 1); shown and clicked again in round 2: nothing more
    assert session_dcg(ONE_EARLY, TRUTH) == pytest.approx(1.0)
    assert session_dcg(ONE_EARLY) == pytest.approx(1.0)   # by clicks too: the second click of a earns nothing
    # more later: a (r1, j1) 1; b (r2, j1) 1 / 1.5; c (r2, j2) 1 / (1.5 log2 3)
    assert session_dcg(MORE_LATER, TRUTH) == pytest.approx(1 + 1 / 1.5 + 1 / (1.5 * np.log2(3)))
    assert session_dcg(MORE_LATER, TRUTH) > session_dcg(ONE_EARLY, TRUTH)


def test_simulate_scores_every_policy_against_the_held_out_truth():
    """The wiring: `same` keeps showing the one relevant item it ranks first; `pages` goes on to the other two.
    On click-normalised NUM `same` would score 1.0 and rank first; against the truth `pages` does."""
    from fbrec.llm.session import simulate
    from fbrec.llm.simulator import Reaction, UserState

    # one user; item scores fall with the index; relevant: items 0, 3 and 5 (slates of 3: same shows 0-2 forever)
    users = np.ones((1, 1), np.float32)
    items = np.arange(9, 0, -1, dtype=np.float32)[:, None]
    truth = {0, 3, 5}
    states = {0: UserState(np.empty(0, np.int64), truth)}

    def react(user, state, shown):
        return Reaction(clicked=[i for i in shown if i in state.truth], ratings={}, reasons={}, command="",
                        generated_by="test")

    result = simulate(users, items, {}, states, react, lambda text: None, None, np.ones(9), rounds=3, slate=3,
                      policies=("same", "pages"))
    score = {row["policy"]: row for row in result.per_session.iter_rows(named=True)}
    assert score["pages"]["num"] > score["same"]["num"]
    assert score["pages"]["sdcg"] > score["same"]["sdcg"]
    assert score["same"]["num"] < 0.5, "one of three relevant items is not a near-ideal session"


def test_a_batched_simulator_gets_every_user_of_a_round_at_once_and_the_same_sessions():
    """With react_many (a language model), each round's slates of every user go out in one call; the sessions,
    their rows and the examples are those of the one-user-at-a-time loop. A user whose session ends early (nothing
    left to show) leaves the batch."""
    from fbrec.data.preferences import Preferences
    from fbrec.llm.session import simulate
    from fbrec.llm.simulator import Reaction, UserState

    rng = np.random.default_rng(0)
    users, items = rng.normal(size=(5, 4)), rng.normal(size=(12, 4))
    states = {u: UserState(np.empty(0, np.int64), {int(i) for i in rng.choice(12, 3, replace=False)})
              for u in (4, 0, 2, 3)}
    seen = {3: np.arange(6)}   # user 3 has 6 items left: two rounds of 3, then nothing to show under `pages`

    def react(user, state, shown):
        clicked = [i for i in shown if (i + user) % 3 == 0]
        return Reaction(clicked, {}, {i: f"item {i}" for i in clicked}, "more like this" if clicked else "",
                        "test")

    calls = []

    def react_many(asked):
        calls.append([user for user, _, _ in asked])
        return [react(*a) for a in asked]

    kwargs = dict(rounds=4, slate=3, policies=("same", "pages", "adapts"), examples=5)
    parse = lambda text: Preferences()   # noqa: E731
    alone = simulate(users, items, seen, states, react, parse, None, np.ones(12), **kwargs)
    together = simulate(users, items, seen, states, react, parse, None, np.ones(12), react_many=react_many, **kwargs)
    assert together.per_round.equals(alone.per_round) and together.per_session.equals(alone.per_session)
    assert together.examples == alone.examples and [e["user"] for e in alone.examples] == [4, 4, 4, 4, 0]
    everyone, left = [4, 0, 2, 3], [4, 0, 2]   # same: 4 rounds; pages and adapts: user 3 runs out after round 2
    assert calls == [everyone] * 4 + ([everyone] * 2 + [left] * 2) * 2, calls
