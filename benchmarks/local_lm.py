"""The installed language model (SmolLM2-135M-Instruct, GGUF) as fbrec runs it: load time, speed, and what its
answers are worth next to the offline rules and the learned simulator.

python -m benchmarks.local_lm [--users 40] [--agreement-users 300] [--write]
- load: the first load (GGUF dequantised, weights cached) and a later one (from the cache), in fresh processes;
- profiles: user-profile tasks of MovieLens-100K training users through the hf backend (constrained JSON): seconds
  and generated tokens per profile, answers valid on the first try;
- parser (also alone: --part parser): the LLM parser (through the same client, 24 tokens per value) and the offline
  rules on the labelled MovieLens sets (benchmarks.commands.SETS), exact match;
- throughput (alone: --part throughput): the same user-profile tasks decoded at batch 1, 8, 32 and 64 in one
  run (fbrec.llm.decode, the path `fbrec llm profiles --backend hf --batch-size N` takes): tokens per second, and
  the projected time for every MovieLens-100K user and item profile;
- simulator agreement: each sampled test user sees one real held-out positive among k - 1 random never-rated items;
  AUC of the click decisions against the real labels and whether the first click is the real item (chance 1/k), for
  the learned simulator (a WMF fitted on the training split) and the LLM simulator (fewer users: ~5 s a call).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

import numpy as np

from benchmarks.commands import DATA, SETS
from benchmarks.common import machine, mean_sd, table, write_section

LOAD = "import time; t = time.perf_counter(); from fbrec.llm.hf import HFBackend; HFBackend(); print(time.perf_counter() - t)"


def load_times() -> tuple[float, float]:
    with tempfile.TemporaryDirectory() as cache:
        env = {**os.environ, "FBREC_CACHE_DIR": cache}
        cold, warm = (float(subprocess.run([sys.executable, "-c", LOAD], env=env, capture_output=True, text=True,
                                           check=True).stdout.split()[-1]) for _ in range(2))
    return cold, warm


def exposure_lists(data, rng, users: int, k: int):
    """(user, shown items, the real one) for sampled test users: one held-out positive among k - 1 never-rated."""
    from fbrec.types import ITEM_INDEX, USER_INDEX

    test = {u: g[ITEM_INDEX].to_numpy() for (u,), g in data.test.group_by(USER_INDEX)}
    frames = [f.select(data.train.columns) for f in (data.train, data.val, data.test)]
    rated = {u: g[ITEM_INDEX].to_numpy() for (u,), g in frames[0].vstack(frames[1]).vstack(frames[2])
             .group_by(USER_INDEX)}
    for u in rng.permutation(sorted(test))[:users]:
        u = int(u)
        real = int(rng.choice(test[u]))
        pool = np.setdiff1d(np.arange(data.num_items), rated[u])
        shown = [real, *rng.choice(pool, k - 1, replace=False).tolist()]
        rng.shuffle(shown)
        yield u, [int(i) for i in shown], real


def agreement(react, data, seed: int, users: int, k: int = 10) -> tuple[float, float]:
    from sklearn.metrics import roc_auc_score

    labels, clicks, hits = [], [], []
    for u, shown, real in exposure_lists(data, np.random.default_rng(seed), users, k):
        clicked = react(u, shown)
        labels += [int(i == real) for i in shown]
        clicks += [int(i in clicked) for i in shown]
        hits.append(clicked[:1] == [real])
    return float(roc_auc_score(labels, clicks)), float(np.mean(hits))


def parser_section(backend) -> str:
    """The LLM parser (prompt parse_command v2, 24 tokens per value) and the offline rules on the labelled sets."""
    from fbrec.data.datasets import load_raw
    from fbrec.llm.commands import Vocabulary, parse_command, parse_command_offline

    vocab = Vocabulary.from_items(load_raw("movielens-100k").items)
    budget, backend.max_new_tokens = backend.max_new_tokens, 24   # per value: each token costs ~40 ms here
    rows = []
    started, asked = time.perf_counter(), 0
    for file, name in SETS:
        labelled = json.loads((DATA / file).read_text())["commands"]
        rules = sum(parse_command_offline(c["text"], vocab).to_dict() == c["expect"] for c in labelled)
        llm_exact = refused = 0
        for c in labelled:
            asked += 1
            try:
                llm_exact += parse_command(c["text"], vocab, backend).to_dict() == c["expect"]
            except Exception:   # an answer the Preferences validator refuses counts as a miss
                refused += 1
        n = len(labelled)
        rows.append([f"{name} (`{file}`)", f"{rules}/{n} ({rules / n:.0%})", f"{llm_exact}/{n} ({llm_exact / n:.0%})",
                     str(refused)])
        print(rows[-1], flush=True)
    backend.max_new_tokens = budget
    return ("### The command parser through the installed language model (SmolLM2-135M-Instruct)\n\n"
            f"`python -m benchmarks.local_lm --part parser --write` on {machine()}; prompt parse_command v2 (every "
            "Preferences field: include, exclude, boost, years, popularity, similar_to), the answer constrained to "
            f"its schema, greedy; {(time.perf_counter() - started) / asked:.1f} s a command. Exact match of the whole "
            "parsed Preferences; \"refused\": answers the Preferences validator refuses (a miss).\n\n"
            + table(["labelled set", "offline rules", "SmolLM2-135M (constrained)", "refused"], rows))


def throughput_section(tasks, sizes=(1, 8, 32, 64), prompts: int = 64, alone: int = 8,
                       max_new_tokens: int = 64, bfloat16: tuple[int, ...] = (1, 32)) -> str:
    """Tokens per second of the hf backend at each batch size on the same profile tasks, measured in one run (batch
    1 on the first `alone` prompts, the others on `prompts`)."""
    import torch

    from fbrec.llm.hf import HFBackend

    backend = HFBackend(max_new_tokens=max_new_tokens, reasks=0)
    rows, per_profile, texts = [], {}, {}
    for dtype, size in [*(("float32", s) for s in sizes), *(("bfloat16", s) for s in bfloat16)]:
        backend.batch_size = size
        backend.lm = backend.lm.to(getattr(torch, dtype))
        chunk = tasks[: alone if size == 1 else prompts]
        started = time.perf_counter()
        done = backend.run(chunk)
        took = time.perf_counter() - started
        tokens = sum(c.completion_tokens for c in done)
        per_profile[dtype, size] = took / len(done)
        texts[dtype, size] = [c.text for c in done]
        same = sum(a == b for a, b in zip(texts[dtype, size], texts["float32", 1], strict=False))
        rows.append([dtype, str(size), str(len(done)), f"{tokens / len(done):.0f}", f"{took:.1f} s",
                     f"{tokens / took:.1f}", f"{per_profile['float32', 1] / per_profile[dtype, size]:.1f}x",
                     f"{same}/{min(len(done), alone)}"])
        print(rows[-1], flush=True)
    best = min(per_profile, key=per_profile.get)
    exact = min((k for k in per_profile if k[0] == "float32"), key=per_profile.get)
    return ("### Batched decoding: SmolLM2-135M-Instruct profiles per second (hf backend)\n\n"
            f"`python -m benchmarks.local_lm --part throughput --write` on {machine()}; MovieLens-100K user-profile tasks as "
            f"`fbrec llm profiles` sends them (JSON constrained, at most {max_new_tokens} tokens per value), "
            "greedy; every batch size in this one run, prompts sorted by length within the run.\n\n"
            + table(["weights", "batch", "profiles", "tokens each", "time", "tokens/s", "speed-up per profile",
                     f"answers as float32 batch 1 (first {alone})"], rows)
            + "\n\nEvery MovieLens-100K profile (943 users + 1,682 items = 2,625) projects to "
              f"{2625 * per_profile['float32', 1] / 60:.0f} minutes at float32 batch 1, "
              f"{2625 * per_profile[exact] / 60:.0f} at float32 batch {exact[1]} and "
              f"{2625 * per_profile[best] / 60:.0f} at {best[0]} batch {best[1]} on these cores. \"tokens\" are every "
              "token a row read or wrote after its prompt (the JSON keys fbrec writes included); the prompt itself "
              "(about 345 tokens a user profile) is read once per row, which is why the speed-up flattens: at "
              "batch 32 the step is bound by arithmetic, not by reading the weights.")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--users", type=int, default=40, help="profiles generated, and LLM-simulated users")
    parser.add_argument("--agreement-users", type=int, default=300)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--part", choices=("all", "parser", "throughput"), default="all")
    parser.add_argument("--write", action="store_true")
    args = parser.parse_args()
    if args.part == "throughput":
        from fbrec.data.datamodule import FeedbackDataModule
        from fbrec.llm.profiles import profile_tasks

        data = FeedbackDataModule(dataset="movielens-100k", min_rating=4.0, split="random", seed=args.seeds[0]).data
        body = throughput_section(profile_tasks(data, data.name)[1])
        print(body)
        if args.write:
            write_section("local-lm-throughput", body)
        return
    if args.part == "parser":
        from fbrec.llm.hf import HFBackend

        body = parser_section(HFBackend(max_new_tokens=64, reasks=1))
        print(body)
        if args.write:
            write_section("local-lm-parser", body)
        return
    from fbrec.data.datamodule import FeedbackDataModule
    from fbrec.llm.hf import HFBackend
    from fbrec.llm.profiles import profile_tasks, taste_values
    from fbrec.llm.simulator import LearnedSimulator, LLMSimulator, UserState, fit_click_model
    from fbrec.llm.text import default_template, item_texts
    from fbrec.types import ITEM_INDEX, USER_INDEX

    cold, warm = load_times()
    print(f"load: {cold:.1f} s cold, {warm:.1f} s warm", flush=True)
    backend = HFBackend(max_new_tokens=64, reasks=1)
    data = FeedbackDataModule(dataset="movielens-100k", min_rating=4.0, split="random", seed=args.seeds[0]).data
    table_ = data.item_table().sort(ITEM_INDEX)
    texts = item_texts(table_, default_template(data.name, table_))
    history = {u: g[ITEM_INDEX].to_list()[-10:] for (u,), g in data.train.group_by(USER_INDEX)}
    _, user_tasks, _ = profile_tasks(data, data.name)   # the tasks `fbrec llm profiles` sends
    started = time.perf_counter()
    done = backend.run(user_tasks[: args.users])
    took = time.perf_counter() - started
    tokens = sum(c.completion_tokens for c in done)
    first_try = sum(c.attempts == 1 for c in done)
    print(f"profiles: {took / len(done):.2f} s each, {tokens / took:.1f} tokens/s", flush=True)

    learned_rows = []
    for seed in args.seeds:
        d = FeedbackDataModule(dataset="movielens-100k", min_rating=4.0, split="random", seed=seed).data
        p, q = fit_click_model(d.train[USER_INDEX].to_numpy(), d.train[ITEM_INDEX].to_numpy(), d.num_users,
                               d.num_items, seed=seed)
        tastes = taste_values(d.item_table(), d.name)
        sim = LearnedSimulator(p, q, [{"taste": t} for t in tastes], ["taste"], seed=seed)
        empty = UserState(np.empty(0, np.int64), set())
        learned_rows.append(agreement(lambda u, shown, sim=sim, empty=empty: sim.react_as(u, empty, shown).clicked,
                                      d, seed, args.agreement_users))
    profiles = ["Liked before: " + "; ".join(texts[i] for i in history.get(u, [])) for u in range(data.num_users)]
    llm = LLMSimulator(backend, texts, profiles)
    started = time.perf_counter()
    llm_auc, llm_hit = agreement(lambda u, shown: llm.react(u, shown).clicked, data, args.seeds[0], args.users)
    llm_seconds = (time.perf_counter() - started) / args.users
    body = ("### The installed language model: SmolLM2-135M-Instruct through the hf backend\n\n"
            f"`python -m benchmarks.local_lm --write` on {machine()}; greedy decoding, JSON answers constrained to "
            "each task's schema (fbrec.llm.hf).\n\n"
            + table(["measure", "value"], [
                ["load, first (GGUF dequantised, weights cached)", f"{cold:.1f} s"],
                ["load, later (from the cache)", f"{warm:.1f} s"],
                [f"user profiles ({len(done)} ML-100K training users)", f"{took / len(done):.2f} s and "
                 f"{tokens / len(done):.0f} tokens each, {tokens / took:.1f} tokens/s"],
                ["profiles valid on the first try", f"{first_try}/{len(done)}"]])
            + "\n\nThe parser through this model: section local-lm-parser."
            + "\n\nSimulator agreement with real held-out behaviour (MovieLens-100K; one real held-out positive among "
              "9 random never-rated items; chance of picking the real item 0.10; SimUSER reports 79.1% preference "
              "alignment and Agent4Rec 69.1% with large LLMs):\n\n"
            + table(["simulator", "users", "click AUC vs real labels", "picks the real item"], [
                ["learned (WMF on the training split, exact ALS)", f"{args.agreement_users} x seeds {args.seeds}",
                 mean_sd([a for a, _ in learned_rows]), mean_sd([h for _, h in learned_rows])],
                [f"LLM: SmolLM2-135M ({llm_seconds:.1f} s a reaction)", f"{args.users}, seed {args.seeds[0]}",
                 f"{llm_auc:.4f}", f"{llm_hit:.4f}"]]))
    print(body)
    parsed = parser_section(backend)
    print(parsed)
    if args.write:
        write_section("local-lm", body)
        write_section("local-lm-parser", parsed)


if __name__ == "__main__":
    main()
