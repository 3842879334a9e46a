"""RLMRec alignment on the papers' protocol shape: full-ranking Recall@20 / NDCG@20 on the test split, best epoch
on validation Recall@20, mean ± sd over seeds (each seed drives initialisation and the data stream; on
MovieLens-100K it also draws the random split, so each seed gets profiles of its own training split).

python -m benchmarks.llm [--seeds 0 1 2] [--datasets amazon-scientific-text movielens-100k] [--write]

Per dataset: LightGCN, LightGCN+Con, LightGCN+Gen, LightGCN+Con with shuffled profiles (the control: the same
vectors permuted across users and across items), MF, MF+Con, and a text-only baseline (encoded item text; a user
is the mean of their training items). Profiles come from the offline template backend and the installed
all-MiniLM-L6-v2; encoding throughput and cache hit rates are reported. FBREC_CACHE_DIR keeps the encoder cache
between runs (a temp folder otherwise).
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

import numpy as np

from benchmarks.common import machine, mean_sd, scratch_tracking, table, write_card, write_section

MODELS = Path(__file__).resolve().parents[1] / "models"
BACKBONES = {"amazon-scientific-text": ("lightgcn_amazon", "mf_amazon"),
             "movielens-100k": ("lightgcn_movielens100k", "mf32_movielens100k")}
CON = {"mode": "con", "weight": 0.01, "temperature": 0.2, "negatives": 256}       # RLMRec's lightgcn_plus (Amazon)
GEN = {"mode": "gen", "weight": 0.1, "temperature": 0.5, "mask_ratio": 0.15}      # RLMRec's lightgcn_gene (Amazon)
METRICS = ["test/recall_at_20", "test/ndcg_at_20"]


def variants(dataset: str) -> list[tuple[str, str, dict | None]]:
    lightgcn, mf = BACKBONES[dataset]
    return [("LightGCN", lightgcn, None), ("LightGCN+Con", lightgcn, CON), ("LightGCN+Gen", lightgcn, GEN),
            ("LightGCN+Con, shuffled profiles", lightgcn, {**CON, "shuffled_seed": 0}),
            ("MF", mf, None), ("MF+Con", mf, CON)]


def profiles_for(dataset: str, seed: int, root: Path, encoder) -> tuple[Path, dict]:
    """The profile folder of this seed's training split (written once per distinct split)."""
    from fbrec.data.datamodule import FeedbackDataModule
    from fbrec.data.profiles import train_fingerprint
    from fbrec.llm import make_backend, write_profiles

    recipe = MODELS / BACKBONES[dataset][0] / "config.yaml"
    import yaml

    data_args = yaml.safe_load(recipe.read_text())["data"]
    data = FeedbackDataModule(**data_args, seed=seed).data
    out = root / f"{dataset}-{train_fingerprint(data.train)[:12]}"
    if out.exists():
        return out, json.loads((out / "manifest.json").read_text())
    return out, write_profiles(out, data, dataset, make_backend("offline"), encoder, data_seed=seed)


def text_only(dataset: str, seed: int, encoder) -> dict[str, float]:
    """Encoded item text; users = mean of their training items' vectors; test metrics of that scorer."""
    import yaml

    from fbrec.data.datamodule import FeedbackDataModule
    from fbrec.evaluation import embedding_scorer, evaluate_scores
    from fbrec.llm.text import default_template, item_texts
    from fbrec.types import ITEM_INDEX, USER_INDEX

    recipe = MODELS / BACKBONES[dataset][0] / "config.yaml"
    dm = FeedbackDataModule(**yaml.safe_load(recipe.read_text())["data"], seed=seed)
    table_ = dm.data.item_table()
    items = encoder.encode(item_texts(table_, default_template(dataset, table_)))
    users = np.zeros((dm.num_users, items.shape[1]), np.float32)
    train = dm.data.train
    np.add.at(users, train[USER_INDEX].to_numpy(), items[train[ITEM_INDEX].to_numpy()])
    summary = evaluate_scores(embedding_scorer(users, items), dm.eval_set("test"), ks=(20,)).summary()
    return {"test/recall_at_20": summary["recall_at_20"], "test/ndcg_at_20": summary["ndcg_at_20"]}


def llm_cost(datasets: list[str]) -> str:
    """What the same profiles would cost through the OpenAI-compatible backend: requests and prompt size (counted
    in words of the rendered prompts; tokens are roughly 1.3 x words for English text)."""
    import yaml

    from fbrec.data.datamodule import FeedbackDataModule
    from fbrec.llm.profiles import profile_tasks

    rows = []
    for dataset in datasets:
        data_args = yaml.safe_load((MODELS / BACKBONES[dataset][0] / "config.yaml").read_text())["data"]
        data = FeedbackDataModule(**data_args, seed=0).data
        items, users, _ = profile_tasks(data, dataset)
        for side, tasks in (("items", items), ("users", users)):
            words = sum(len(m["content"].split()) for t in tasks for m in t.messages())
            rows.append([dataset, side, f"{len(tasks):,}", f"{words:,}", f"{int(words * 1.3):,}"])
    return ("### RLMRec profiles through an LLM: what a run would send\n\n"
            "`python -m benchmarks.llm --llm-cost --write`. The offline profiles above need no model; the same "
            "folder written by `fbrec llm profiles --backend openai --base-url URL --model NAME` (a vLLM, Ollama or "
            "llama.cpp server, or a hosted API) sends one chat request per item and per user with the prompts of "
            "fbrec/llm/prompts/*.v1.txt, JSON answers of about 60-100 tokens each, cached on disk; no server was "
            "reachable here, so no LLM-profile result is reported.\n\n"
            + table(["dataset", "profiles", "requests", "prompt words", "~prompt tokens (1.3 x words)"], rows))


def encoding_throughput(n: int = 2000) -> str:
    """MiniLM texts/s with an empty cache and the cache hit rate of a second pass, on real profile texts."""
    import yaml

    from fbrec.data.datamodule import FeedbackDataModule
    from fbrec.llm import TextEncoder, make_backend
    from fbrec.llm.profiles import profile_tasks

    rows = []
    for dataset in BACKBONES:
        data_args = yaml.safe_load((MODELS / BACKBONES[dataset][0] / "config.yaml").read_text())["data"]
        items, users, _ = profile_tasks(FeedbackDataModule(**data_args, seed=0).data, dataset)
        backend = make_backend("offline")
        for side, tasks in (("items", items), ("users", users)):
            texts = [c.text for c in backend.run(tasks[:n])]
            cache = tempfile.mkdtemp(prefix="fbrec-enc-")
            first, second = TextEncoder(cache_dir=cache), TextEncoder(cache_dir=cache)
            first.encode(texts[:16])   # load the model outside the clock
            first.stats.seconds_encoding, first.stats.misses, first.stats.hits = 0.0, 0, 0
            first.encode(texts[16:])
            start = time.perf_counter()
            second.encode(texts)
            cached = time.perf_counter() - start
            words = np.mean([len(t.split()) for t in texts])
            rows.append([dataset, side, f"{len(texts) - 16:,}", f"{words:.0f}", f"{first.stats.texts_per_second:.0f}",
                         f"{second.stats.hit_rate:.0%}", f"{len(texts) / cached:,.0f}"])
    return ("### Text encoding throughput (all-MiniLM-L6-v2, batch 64, CPU)\n\n"
            f"`python -m benchmarks.llm --encoding --write` on {machine()}, nothing else running: offline profile "
            "texts, an empty cache, then a second encoder over the same texts and cache.\n\n"
            + table(["dataset", "profiles", "texts encoded", "mean words", "texts/s (encoding)",
                     "second pass cache hit rate", "texts/s (second pass, cache)"], rows))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--encoding", action="store_true", help="only the encoding-throughput table")
    parser.add_argument("--llm-cost", action="store_true", help="only the request/prompt-size table")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--datasets", nargs="+", default=list(BACKBONES))
    parser.add_argument("--write", action="store_true")
    args = parser.parse_args()
    if args.encoding:
        body = encoding_throughput()
        print(body)
        if args.write:
            write_section("rlmrec_encoding", body)
        return
    if args.llm_cost:
        body = llm_cost(args.datasets)
        print(body)
        if args.write:
            write_section("rlmrec_llm_cost", body)
        return
    from fbrec.api.training import run_training
    from fbrec.llm import TextEncoder

    start = time.perf_counter()
    client = scratch_tracking("fbrec-llm-")
    os.environ.setdefault("FBREC_CACHE_DIR", tempfile.mkdtemp(prefix="fbrec-llm-cache-"))
    root = Path(tempfile.mkdtemp(prefix="fbrec-profiles-"))
    sections: dict[str, str] = {}
    for dataset in args.datasets:
        encoding_rows = []
        results: dict[str, dict[str, list[float]]] = {}
        for seed in args.seeds:
            encoder = TextEncoder()
            folder, manifest = profiles_for(dataset, seed, root, encoder)
            enc = manifest["encoding"]
            encoding_rows.append([dataset, seed, f"{enc['texts_encoded'] + enc['cache_hits']:,}",
                                  f"{enc['texts_encoded']:,}", f"{enc['cache_hit_rate']:.0%}",
                                  f"{enc['texts_per_second']:.0f}" if enc["texts_encoded"] else "-"])
            for name, recipe, alignment in variants(dataset):
                overrides = [f"--seed_everything={seed}", "--trainer.enable_progress_bar=false",
                             "--experiment=benchmarks"]
                if alignment is not None:
                    overrides.append("--model.init_args.alignment=" + json.dumps({"profiles": str(folder),
                                                                                  **alignment}))
                run = run_training(str(MODELS / recipe / "config.yaml"), overrides)
                logged = client.get_run(run).data.metrics
                for m in METRICS:
                    results.setdefault(name, {}).setdefault(m, []).append(logged[m])
                print(dataset, seed, name, {m: round(logged[m], 4) for m in METRICS}, flush=True)
            for m, v in text_only(dataset, seed, encoder).items():
                results.setdefault("text only (MiniLM item text, user = mean)", {}).setdefault(m, []).append(v)
        base = {"LightGCN": np.mean(results["LightGCN"]["test/recall_at_20"]),
                "MF": np.mean(results["MF"]["test/recall_at_20"])}
        spread = np.std(results["LightGCN"]["test/recall_at_20"], ddof=1) if len(args.seeds) > 1 else 0.0
        rows = []
        for name, values in results.items():
            backbone = "MF" if name.startswith("MF") else "LightGCN" if name.startswith("LightGCN") else None
            lift = (f"{100 * (np.mean(values['test/recall_at_20']) / base[backbone] - 1):+.1f}%"
                    if backbone and name != backbone else "")
            rows.append([name, *[mean_sd(values[m]) for m in METRICS], lift])
        sections[dataset] = (
            f"#### {dataset}\n\n" + table(["model", "Recall@20", "NDCG@20", "Recall@20 vs backbone"], rows)
            + f"\n\nLightGCN's seed-to-seed sd of Recall@20: {spread:.4f}.\n\nProfile encoding (MiniLM, batch 64; "
              "a profile folder is written once per distinct training split; throughput measured alongside other "
              "jobs, see rlmrec_encoding for a quiet measurement):\n\n"
            + table(["dataset", "seed", "texts", "encoded", "cache hit rate", "texts/s"], encoding_rows))
        if args.write:
            for name, recipe, _ in variants(dataset)[:1] + variants(dataset)[4:5]:
                write_card(recipe, f"Test metrics, mean ± sd over seeds {args.seeds} (`python -m benchmarks.llm "
                                   f"--write`, {machine()}); the RLMRec variants of this backbone are in "
                                   f"benchmarks/RESULTS.md (section rlmrec):\n\n"
                           + table(["model", "Recall@20", "NDCG@20"],
                                   [[name, *[mean_sd(results[name][m]) for m in METRICS]]]))
    for dataset, text in sections.items():
        body = (f"### RLMRec profile alignment on {dataset} (offline template profiles, all-MiniLM-L6-v2)\n\n"
                f"`python -m benchmarks.llm --datasets {dataset} --write` on {machine()}; mean ± sd over seeds "
                f"{args.seeds}; full-ranking test Recall@20 / NDCG@20 of the epoch with the best validation Recall@20 "
                f"(RLMRec's metrics; its protocol is a 3:1:1 split on its own data, ours is the dataset's fbrec "
                f"split: leave-last-out on Amazon-Scientific, a per-user random 70/10/20 on MovieLens-100K). Dim 32, "
                f"3 layers, BPR with one negative, batch 4096, up to 45 epochs validated every 3. Con: weight "
                f"{CON['weight']}, temperature {CON['temperature']}, {CON['negatives']} sampled negatives; Gen: "
                f"weight {GEN['weight']}, temperature {GEN['temperature']}, mask ratio {GEN['mask_ratio']} (RLMRec's "
                f"Amazon settings). Total {time.perf_counter() - start:.0f} s for all datasets of the run.\n\n"
                + text)
        print(body)
        if args.write:
            write_section(f"rlmrec_{dataset}", body)


if __name__ == "__main__":
    main()
