"""Work on a finished run: evaluate its embeddings again, export them as a bundle. The CLI prints these results."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import polars as pl

from fbrec.api.rundata import held_out_pairs, pairs_sha, reward_model_tag, run_data, seen_pairs
from fbrec.errors import ConfigError


@dataclass
class Evaluation:
    """Summary (metric -> mean over users), the long report with slices and CIs, and the per-user frame."""

    summary: dict[str, float]
    report: pl.DataFrame
    per_user: pl.DataFrame


def evaluate_run(run_id: str, *, stage: str = "test", k=(10, 20, 50), out: str | Path | None = None) -> Evaluation:
    """Full-ranking evaluation of a run's logged embeddings on its data's val or test split, logged to the run
    under evaluate_<stage>/; `out` also writes the report CSV (a new file only)."""
    from fbrec._atomic import new_file_path, write_new_file
    from fbrec.evaluation import embedding_scorer, evaluate_scores, report
    from fbrec.tracking import default_tracking_uri, log_report, read_run_artifacts, resolve_run_id

    if stage not in ("test", "val"):
        raise ConfigError(f"stage {stage!r}", rule="stage is 'test' or 'val'", fix="pass --stage test")
    if out:
        new_file_path(out)   # refuse before the work, not after
    run_id = resolve_run_id(run_id)
    art = read_run_artifacts(run_id)
    dm = run_data(art.data_args)
    evaluator = evaluate_scores(embedding_scorer(art.user_embeddings, art.item_embeddings), dm.eval_set(stage), k)
    frame = evaluator.frame()
    result = Evaluation(evaluator.summary(frame), report(frame, protocol_users=evaluator.eval_set.protocol_users),
                        frame)
    log_report(run_id, f"evaluate_{stage}", result.summary, result.report, frame, default_tracking_uri(),
               main_k=min(k), title=f"run {run_id[:8]} ({art.model}) on {dm.data.name}")
    if out:
        write_new_file(out, result.report.write_csv)
    return result


def export_run(run_id: str, out: str | Path, *, index: str = "Flat", search_params: str = "",
               overwrite: bool = False):
    """Write the run's bundle (embeddings, id maps, seen items, item attributes, FAISS index, an ONNX user tower
    when the model has one, manifest) to `out` atomically and log it to the run; returns the Manifest."""
    from fbrec.bundle import USER_FEATURES, USER_TOWER, write_bundle
    from fbrec.tracking import default_tracking_uri, log_bundle, read_run_artifacts, resolve_run_id

    run_id = resolve_run_id(run_id)
    art = read_run_artifacts(run_id)
    dm = run_data(art.data_args)
    seen = seen_pairs(dm.data)
    tower = {n: art.files[n] for n in (USER_TOWER, USER_FEATURES)} if USER_TOWER in art.files else None
    manifest = write_bundle(out, user_embeddings=art.user_embeddings, item_embeddings=art.item_embeddings,
                            user_map=dm.data.user_map, item_map=dm.data.item_map, seen=seen, model=art.model,
                            index_factory=index, search_params=search_params, run_id=run_id, dataset=dm.data.name,
                            overwrite=overwrite, items=dm.data.items, levels=dm.level_names(), user_tower=tower)
    log_bundle(run_id, out, default_tracking_uri())
    return manifest


SIMULATORS = ("oracle", "learned", "llm")


def simulate_run(run_id: str, *, rounds: int = 5, slate: int = 10, users: int = 200, seed: int = 0,
                 policies=("same", "pages", "adapts"), reward_model: str | Path | None = None,
                 simulator: str = "oracle", backend: str = "openai", backend_options: dict | None = None):
    """Multi-round evaluation of a run on its test users; logged to the run under simulate/ (oracle),
    simulate_learned/ or simulate_llm/. reward_model: a folder of `fbrec llm reward-model train` for the "reward"
    policy (a re-ranker). simulator: "oracle" (clicks are the held-out items: checks the harness, not a model of
    users), "learned" (clicks drawn from a WMF fitted on the run's training split only, template words) or "llm" (a
    language model answers as the user through `backend`, e.g. openai with base_url and model, or hf).
    Returns the SessionResult."""
    import numpy as np

    from fbrec._checks import check_positive
    from fbrec.llm.commands import Vocabulary, parse_command_offline
    from fbrec.llm.profiles import taste_values
    from fbrec.llm.session import POLICIES, simulate
    from fbrec.llm.simulator import GroundedSimulator, UserState
    from fbrec.tracking import default_tracking_uri, log_sessions, read_run_artifacts, resolve_run_id
    from fbrec.types import ITEM_INDEX, USER_INDEX

    for name, value in (("rounds", rounds), ("slate", slate), ("users", users)):
        check_positive(name, value)
    if simulator not in SIMULATORS:
        from fbrec.errors import UnknownNameError

        raise UnknownNameError("simulator", simulator, SIMULATORS)
    unknown = [p for p in policies if p not in POLICIES]
    if unknown:
        from fbrec.errors import UnknownNameError

        raise UnknownNameError("policy", unknown[0], POLICIES)
    run_id = resolve_run_id(run_id)
    art = read_run_artifacts(run_id)
    dm = run_data(art.data_args)
    data = dm.data
    table = data.item_table()
    # one "taste" attribute per item: the values that describe a taste (genres; category and brand), which the
    # simulator talks about and the parser and the preferences read
    taste = pl.Series("taste", taste_values(table, data.name), dtype=pl.List(pl.String))
    items = table.select(ITEM_INDEX).with_columns(taste)
    grounded = GroundedSimulator([{"taste": t} for t in taste.to_list()], ["taste"], seed=seed)
    seen: dict[int, np.ndarray] = {}
    for frame in (data.train, data.val):
        for (u,), g in frame.group_by(USER_INDEX):
            seen[u] = np.concatenate([seen.get(u, np.empty(0, np.int64)), g[ITEM_INDEX].to_numpy()])
    truth = {u: set(g[ITEM_INDEX].to_list()) for (u,), g in data.test.group_by(USER_INDEX)}
    if not truth:
        raise ConfigError(f"run {run_id}'s test split is empty", rule="the simulator's clicks are test items",
                          fix="use a run with a test split")
    pick = np.random.default_rng(seed).permutation(sorted(truth))[:users]
    states = {int(u): UserState(seen.get(int(u), np.empty(0, np.int64)), truth[int(u)]) for u in pick}
    for state in states.values():
        state.taste = grounded.taste(state.history)
    vocab = Vocabulary.from_items(items)
    if "reward" in policies and reward_model is None:
        raise ConfigError("policy 'reward' without a reward model", rule="it re-ranks by a reward model's score",
                          fix="pass --reward-model DIR (from `fbrec llm reward-model train`) or drop the policy")
    reward = _reward_scorer(reward_model, run_id, data) if reward_model is not None else None
    react, react_many = _simulator(simulator, grounded, data, table, taste, seed, backend, backend_options)
    result = simulate(art.user_embeddings, art.item_embeddings, seen, states, react,
                      lambda text: parse_command_offline(text, vocab),
                      items, np.bincount(data.train[ITEM_INDEX].to_numpy(), minlength=data.num_items),
                      rounds=rounds, slate=slate, policies=policies, reward=reward, react_many=react_many)
    prefix = "simulate" if simulator == "oracle" else f"simulate_{simulator}"
    log_sessions(run_id, result.per_round, result.per_session, result.examples, default_tracking_uri(),
                 prefix=prefix)
    return result


def _simulator(kind: str, grounded, data, table, taste, seed: int, backend: str, backend_options: dict | None):
    """(react(user index, UserState, slate) -> Reaction, react_many or None) for the chosen simulator: a language
    model answers every user of a round in one batch."""
    from fbrec.types import ITEM_INDEX, USER_INDEX

    if kind == "oracle":
        return (lambda u, s, shown: grounded.react(s, shown)), None
    if kind == "learned":
        from fbrec.llm.simulator import LearnedSimulator, fit_click_model

        users, items = data.train[USER_INDEX].to_numpy(), data.train[ITEM_INDEX].to_numpy()
        p, q = fit_click_model(users, items, data.num_users, data.num_items, seed=seed)
        learned = LearnedSimulator(p, q, [{"taste": t} for t in taste.to_list()], ["taste"], seed=seed)
        return learned.react_as, None
    from fbrec.llm import make_backend
    from fbrec.llm.simulator import LLMSimulator
    from fbrec.llm.text import default_template, item_texts

    texts = item_texts(table.sort(ITEM_INDEX), default_template(data.name, table))
    profiles = [""] * data.num_users
    for (u,), g in data.train.group_by(USER_INDEX):   # what the user liked in training, most recent last
        profiles[u] = "Liked before: " + "; ".join(texts[i] for i in g[ITEM_INDEX].to_list()[-10:])
    llm = LLMSimulator(make_backend(backend, **(backend_options or {})), texts, profiles)
    return (lambda u, s, shown: llm.react(u, shown)), (lambda asked: llm.react_many([(u, shown) for u, _, shown in
                                                                                    asked]))


def _reward_scorer(path, run_id: str, data):
    """reward(user index, item indices) -> P[positive], the run's indices mapped onto the reward model's ids (pairs
    it does not know score 0.5, a coin). The model must have been trained for this run (`fbrec llm reward-model
    train --run`): one trained on its own split of all ratings would have trained on the run's held-out pairs."""
    import numpy as np
    import torch

    from fbrec.llm.reward_run import load_reward_model, rebuild
    from fbrec.tracking import find_run

    _, result = load_reward_model(path)
    bound = result.get("run") or {}
    recorded = reward_model_tag(path) in find_run(run_id).data.tags   # the run's record of the weights' sha256
    if not recorded or bound.get("held_out_sha256") != pairs_sha(held_out_pairs(data)):
        raise ConfigError(f"reward model {str(path)!r} was not trained for run {run_id}"
                          + (f" (it was trained for run {bound['run_id']})" if bound.get("run_id") else ""),
                          rule="the reward policy's model never trains on the run's validation or test pairs",
                          fix=f"fbrec llm reward-model train --run {run_id} --out DIR, then --reward-model DIR")
    model, result, events, features, rm_users, rm_items = rebuild(path)

    def positions(run_map, rm_map) -> np.ndarray:
        lookup = {raw: i for i, raw in enumerate(rm_map.raw.to_list())}
        return np.array([lookup.get(raw, -1) for raw in run_map.raw.to_list()])

    user_pos, item_pos = positions(data.user_map, rm_users), positions(data.item_map, rm_items)

    def score(user: int, items: np.ndarray) -> np.ndarray:
        u, it = user_pos[user], item_pos[items]
        out = np.full(len(items), 0.5)
        known = (it >= 0) & (u >= 0)
        if known.any():
            with torch.no_grad():
                x = features.rows(torch.full((int(known.sum()),), int(u)), torch.as_tensor(it[known]))
                out[known] = model.probability(x).numpy()
        return out

    return score
