"""`fbrec llm ...` (fbrec.api.llm): profiles for RLMRec alignment (offline templates by default; an
OpenAI-compatible server or a local model folder when you have one), commands, reward models."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from fbrec.cli.display import say

app = typer.Typer(no_args_is_help=True, help="LLM feedback modules: user and item profiles, text encoders.")
reward_app = typer.Typer(no_args_is_help=True, help="Reward models learned from user feedback (RLUF-style).")
app.add_typer(reward_app, name="reward-model")

BaseUrl = Annotated[str, typer.Option(help="openai: server URL, e.g. http://127.0.0.1:8000/v1 (or FBREC_LLM_BASE_URL)")]
ModelName = Annotated[str, typer.Option(help="openai: model name (or FBREC_LLM_MODEL); hf: an installed model's "
                                              "name (default smollm2)")]
Timeout = Annotated[float, typer.Option("--timeout", help="openai: seconds one request may take, body included")]
MaxRetries = Annotated[int, typer.Option("--max-retries", help="openai: retries of a failed or busy request")]
Reasks = Annotated[int, typer.Option("--reasks", help="re-asks of an answer that breaks the task's JSON schema")]
Dtype = Annotated[str, typer.Option("--dtype", help="hf / serve: float32 (exact) | bfloat16 (about 2x faster on "
                                                    "CPUs with AMX or AVX512-BF16; answers may differ)")]
BatchSize = Annotated[int, typer.Option("--batch-size", help="hf / serve: prompts decoded together (one forward "
                                                             "pass per token for the whole batch)")]


@app.command()
def profiles(out: Annotated[Path, typer.Option("--out", help="profile folder to write (atomically)")],
             dataset: Annotated[str, typer.Option(help="registered dataset (or use --config)")] = None,
             config: Annotated[str, typer.Option("--config", help="take dataset, preparation and seed from the "
                                                 "training recipe that will use the profiles")] = None,
             seed: Annotated[int, typer.Option(help="data seed of the split (a recipe's seed_everything; "
                                                    "default 0)")] = None,
             split: Annotated[str, typer.Option()] = None, min_rating: Annotated[float, typer.Option()] = None,
             min_level: Annotated[str, typer.Option()] = None,
             backend: Annotated[str, typer.Option(help="offline (templates, no model) | openai | hf")] = "offline",
             base_url: BaseUrl = None, model: ModelName = None,
             api_key_env: Annotated[str, typer.Option(help="openai: environment variable holding the key")
                                    ] = "OPENAI_API_KEY",
             concurrency: Annotated[int, typer.Option(help="openai: requests in flight")] = 4,
             timeout: Timeout = 60.0, max_retries: MaxRetries = 4, reasks: Reasks = 2,
             max_tokens: Annotated[int, typer.Option("--max-tokens", help="openai / hf: tokens per answer")] = 256,
             model_dir: Annotated[Path, typer.Option("--model-dir", help="hf: a transformers model folder or a "
                                                                       ".gguf file")] = None,
             batch_size: BatchSize = 16, dtype: Dtype = "float32",
             encoder: Annotated[Path, typer.Option(help="sentence-transformers folder (default: the installed "
                                                        "MiniLM)")] = None,
             item_template: Annotated[str, typer.Option(help="item text template over item columns, e.g. "
                                                             "'{title}. {genres}'")] = None,
             overwrite: Annotated[bool, typer.Option(help="replace profiles an earlier run wrote to OUT")] = False,
             track: Annotated[bool, typer.Option(help="log the job to MLflow (experiment fbrec-llm)")] = True
             ) -> None:
    """Write user and item profiles plus their text embeddings; point `model.init_args.alignment.profiles` at OUT.

    User profiles use training items only, and the folder is bound to that split: a run on another split refuses it.
    """
    from fbrec.api.llm import build_profiles

    options = {"openai": {"base_url": base_url, "model": model, "api_key_env": api_key_env,
                          "concurrency": concurrency, "timeout": timeout, "max_retries": max_retries,
                          "reasks": reasks, "max_tokens": max_tokens},
               "hf": {"model_dir": model_dir, "model": model, "reasks": reasks, "max_new_tokens": max_tokens,
                      "batch_size": batch_size, "dtype": dtype}
               }.get(backend, {})
    r = build_profiles(out, dataset=dataset, config=config, seed=seed, split=split, min_rating=min_rating,
                       min_level=min_level, backend=backend, backend_options=options, encoder=encoder,
                       item_template=item_template, overwrite=overwrite, track=track, progress=say)
    label = "" if r.is_language_model else " - deterministic templates, not a language model"
    enc = r.manifest["encoding"]
    say(f"wrote {r.manifest['counts']['items']} item and {r.manifest['counts']['users']} user profiles to {out} "
        f"(backend {r.backend}: {r.model}{label}; encoder {r.encoder}, {enc['texts_encoded']} texts encoded, "
        f"cache hit rate {enc['cache_hit_rate']:.0%})")
    say(f"generated by: {', '.join(r.manifest['generated_by'])}")
    if r.run_id:
        say(f"MLflow run {r.run_id} (experiment fbrec-llm)")


@app.command()
def parse(command: Annotated[str, typer.Argument(help='what the user asks for, e.g. "fewer horror films, more 90s '
                                                      'comedies"')],
          bundle: Annotated[Path, typer.Option("--bundle", help="take the attribute vocabulary from this bundle")
                            ] = None,
          dataset: Annotated[str, typer.Option(help="or from this registered dataset's item table")] = None,
          backend: Annotated[str, typer.Option(help="offline (rules over the vocabulary) | openai")] = "offline",
          base_url: BaseUrl = None, model: ModelName = None, timeout: Timeout = 60.0,
          max_retries: MaxRetries = 4, reasks: Reasks = 2) -> None:
    """Turn a natural-language command into structured preferences (JSON) for `fbrec retrieve --preferences`, the
    service's `preferences` field and `Bundle.recommend(preferences=...)`."""
    from fbrec.api.llm import parse as parse_command

    prefs = parse_command(command, bundle=bundle, dataset=dataset, backend=backend,
                          backend_options={"base_url": base_url, "model": model, "timeout": timeout,
                                           "max_retries": max_retries, "reasks": reasks})
    typer.echo(json.dumps(prefs))


@app.command()
def serve(model: Annotated[str, typer.Option(help="an installed model's name")] = "smollm2",
          model_dir: Annotated[Path, typer.Option("--model-dir", help="or a transformers model folder / .gguf "
                                                                      "file")] = None,
          host: Annotated[str, typer.Option(help="address to listen on (loopback by default)")] = "127.0.0.1",
          port: Annotated[int, typer.Option(help="port")] = 8000,
          max_new_tokens: Annotated[int, typer.Option(help="default answer budget in tokens (a request's "
                                                           "max_tokens overrides it)")] = 256,
          batch_size: BatchSize = 16, dtype: Dtype = "float32") -> None:
    """Serve a local language model on the OpenAI chat-completions API (POST /v1/chat/completions, GET /v1/models):
    point `--backend openai --base-url http://HOST:PORT/v1` (or any OpenAI client) at it. JSON answers are decoded
    under constraint, so even a small model answers with the requested keys. Requests that arrive together are
    decoded together, up to --batch-size (send them concurrently: `--concurrency` of the openai backend)."""
    from fbrec.api.llm import serve_model

    serve_model(model=None if model_dir else model, model_dir=model_dir, host=host, port=port,
                max_new_tokens=max_new_tokens, batch_size=batch_size, dtype=dtype,
                progress=say)


@reward_app.command("train")
def reward_train(out: Annotated[Path, typer.Option("--out", help="model folder to write (atomically)")],
                 dataset: Annotated[str, typer.Option(help="a dataset with logged ratings")] = "movielens-100k",
                 objective: Annotated[str, typer.Option(help="pointwise (log-loss) | pairwise (Bradley-Terry)")
                                      ] = "pointwise",
                 seed: Annotated[int, typer.Option(help="seed of the split, initialisation and shuffling")] = 0,
                 epochs: Annotated[int, typer.Option(help="epochs (the best on validation log-loss is kept)")] = 20,
                 features: Annotated[str, typer.Option(help="stats (the no-text baseline) | text | cf "
                                                            "(collaborative) | text+cf")] = "text",
                 split: Annotated[str, typer.Option(help="user (each user's events at random) | time (each user's "
                                                         "latest are test) | event")] = "user",
                 run: Annotated[str | None, typer.Option(help="train it for this run (its dataset, never its "
                                                              "validation or test pairs): what `fbrec simulate "
                                                              "--policy reward` needs")] = None,
                 overwrite: Annotated[bool, typer.Option(help="replace a model an earlier run wrote to OUT")] = False
                 ) -> None:
    """Train P[positive | user context, item] and evaluate it: held-out AUC, log-loss, ECE with a reliability plot,
    and where the truth is known how well a policy's mean score predicts its true positive rate (12 policies)."""
    from fbrec.api.llm import train_reward_model

    r = train_reward_model(out, dataset=dataset, objective=objective, seed=seed, epochs=epochs, features=features,
                           split=split, run=run, overwrite=overwrite, progress=say)
    t = r["test"]
    say(f"held-out events: AUC {t['auc']:.4f}, log-loss {t['log_loss']:.4f}, ECE {t['ece']:.4f} "
        f"({t['events']:,} events, best epoch {r['best_epoch']})")
    if "predictiveness" in r:
        p = r["predictiveness"]
        say(f"policy level (mean score vs true positive rate, {len(p['policies'])} policies): Pearson "
            f"{p['pearson_all']:.3f}, Spearman {p['spearman_all']:.3f}; among the {p['policies_sensible']} sensible: "
            f"Pearson {p['pearson_sensible']:.3f}, Spearman {p['spearman_sensible']:.3f}; picks {p['picked']} "
            f"(truly best: {p['truly_best']})")
    say(f"wrote {out}; MLflow run {r['run_id']} (experiment fbrec-llm)")


@reward_app.command("evaluate")
def reward_evaluate(model: Annotated[Path, typer.Option("--model", help="folder written by `reward-model train`")]
                    ) -> None:
    """Recompute a saved reward model's held-out metrics (same data, split and encoder)."""
    from fbrec.api.llm import evaluate_reward_model

    t = evaluate_reward_model(model)["recomputed"]
    say(f"held-out events: AUC {t['auc']:.4f}, log-loss {t['log_loss']:.4f}, ECE {t['ece']:.4f}")
