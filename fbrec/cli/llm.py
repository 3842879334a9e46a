"""`fbrec llm ...`: profiles for RLMRec alignment (offline templates by default; an OpenAI-compatible server or a
local model folder when you have one)."""

from __future__ import annotations

from pathlib import Path

import typer

app = typer.Typer(no_args_is_help=True, help="LLM feedback modules: user and item profiles, text encoders.")


def _recipe_data(config: Path) -> tuple[dict, int]:
    """The data block and seed of a training recipe, so the profiles are built from the split the run trains on."""
    import yaml

    from fbrec.errors import ConfigError

    try:
        recipe = yaml.safe_load(config.read_text()) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(f"--config {str(config)!r}: {exc}", rule="a training recipe (YAML)",
                          fix="pass the recipe you train with") from None
    data = dict(recipe.get("data") or {})
    data.pop("class_path", None)
    data = dict(data.get("init_args", data))
    return data, int(recipe.get("seed_everything") or 0)


@app.command()
def profiles(out: Path = typer.Option(..., "--out", help="profile folder to write (atomically)"),
             dataset: str = typer.Option(None, help="registered dataset (or use --config)"),
             config: Path = typer.Option(None, "--config", help="take dataset, preparation and seed from the "
                                                                "training recipe that will use the profiles"),
             seed: int = typer.Option(None, help="data seed of the split (a recipe's seed_everything; default 0)"),
             split: str = typer.Option(None), min_rating: float = typer.Option(None),
             min_level: str = typer.Option(None),
             backend: str = typer.Option("offline", help="offline (templates, no model) | openai | hf"),
             base_url: str = typer.Option(None, help="openai: server URL, e.g. http://127.0.0.1:8000/v1 "
                                                     "(or FBREC_LLM_BASE_URL)"),
             model: str = typer.Option(None, help="openai: model name (or FBREC_LLM_MODEL)"),
             api_key_env: str = typer.Option("OPENAI_API_KEY", help="openai: environment variable holding the key"),
             concurrency: int = typer.Option(4, help="openai: requests in flight"),
             model_dir: Path = typer.Option(None, "--model-dir", help="hf: local transformers model folder"),
             encoder: Path = typer.Option(None, help="sentence-transformers folder (default: the installed MiniLM)"),
             item_template: str = typer.Option(None, help="item text template over item columns, "
                                                          "e.g. '{title}. {genres}'"),
             overwrite: bool = typer.Option(False, help="replace profiles an earlier run wrote to OUT"),
             track: bool = typer.Option(True, help="log the job to MLflow (experiment fbrec-llm)")) -> None:
    """Write user and item profiles plus their text embeddings; point `model.init_args.alignment.profiles` at OUT.

    User profiles use training items only, and the folder is bound to that split: a run on another split refuses it.
    """
    from fbrec._atomic import check_replaceable
    from fbrec.data.feedback import FeedbackData
    from fbrec.errors import ConfigError
    from fbrec.llm import TextEncoder, make_backend, write_profiles

    if (dataset is None) == (config is None):
        raise ConfigError("pass exactly one of --dataset and --config", rule="profiles are built from one split",
                          fix="--config RECIPE (recommended: the split the run trains on) or --dataset NAME")
    check_replaceable(out, "profiles", overwrite=overwrite)
    data_args, recipe_seed = _recipe_data(config) if config else ({"dataset": dataset}, 0)
    data_args.update({k: v for k, v in (("split", split), ("min_rating", min_rating), ("min_level", min_level))
                      if v is not None})
    # the split's seed as training resolves it: --seed, else the recipe's data.seed, else its seed_everything
    recipe_data_seed = data_args.pop("seed", None)
    data_seed = seed if seed is not None else recipe_data_seed if recipe_data_seed is not None else recipe_seed
    try:
        dm = FeedbackData(**data_args, seed=data_seed)
    except TypeError as exc:
        raise ConfigError(f"data options {sorted(data_args)}: {exc}", rule="the data block of a recipe",
                          fix="fix --config") from None
    options = {"openai": {"base_url": base_url, "model": model, "api_key_env": api_key_env,
                          "concurrency": concurrency},
               "hf": {"model_dir": model_dir}}.get(backend, {})
    generator = make_backend(backend, **options)
    import sys

    text_encoder = TextEncoder(encoder, progress=sys.stderr.isatty())   # a progress bar for people, not for logs
    name = data_args.get("dataset", "custom")
    manifest = write_profiles(out, dm.data, name, generator, text_encoder, template=item_template,
                              data_seed=data_seed, overwrite=overwrite, progress=typer.echo)
    label = "" if generator.is_language_model else " - deterministic templates, not a language model"
    typer.echo(f"wrote {manifest['counts']['items']} item and {manifest['counts']['users']} user profiles to {out} "
               f"(backend {generator.name}: {generator.model}{label}; encoder {text_encoder.name}, "
               f"{manifest['encoding']['texts_encoded']} texts encoded, cache hit rate "
               f"{manifest['encoding']['cache_hit_rate']:.0%})")
    typer.echo(f"generated by: {', '.join(manifest['generated_by'])}")
    if track:
        from fbrec.tracking import log_run

        usage = generator.usage.as_metrics()
        metrics = {**usage, "encode/texts_encoded": manifest["encoding"]["texts_encoded"],
                   "encode/cache_hit_rate": manifest["encoding"]["cache_hit_rate"],
                   "encode/texts_per_second": manifest["encoding"]["texts_per_second"]}
        rid = log_run("fbrec-llm", f"profiles-{name}-{generator.name}", params={
            "dataset": name, "data_seed": data_seed, "backend": generator.name, "model": generator.model,
            "is_language_model": generator.is_language_model, "prompts": manifest["prompts"],
            "encoder": manifest["encoder"]["name"], "item_template": manifest["item_template"],
            "out": str(Path(out).resolve())}, metrics=metrics, artifacts={"profiles": Path(out) / "manifest.json"})
        typer.echo(f"MLflow run {rid} (experiment fbrec-llm)")


@app.command()
def parse(command: str = typer.Argument(..., help='what the user asks for, e.g. "fewer horror films, more 90s '
                                                  'comedies"'),
          bundle: Path = typer.Option(None, "--bundle", help="take the attribute vocabulary from this bundle"),
          dataset: str = typer.Option(None, help="or from this registered dataset's item table"),
          backend: str = typer.Option("offline", help="offline (rules over the vocabulary) | openai"),
          base_url: str = typer.Option(None, help="openai: server URL"),
          model: str = typer.Option(None, help="openai: model name")) -> None:
    """Turn a natural-language command into structured preferences (JSON) for `fbrec retrieve --preferences`, the
    service's `preferences` field and `Bundle.recommend(preferences=...)`."""
    import json

    from fbrec.errors import ConfigError
    from fbrec.llm import make_backend
    from fbrec.llm.commands import Vocabulary, parse_command

    if (bundle is None) == (dataset is None):
        raise ConfigError("pass exactly one of --bundle and --dataset", rule="commands are parsed over a catalogue's "
                          "attribute vocabulary", fix="--bundle DIR or --dataset movielens-100k")
    if bundle is not None:
        from fbrec.bundle import Bundle

        items = Bundle(bundle).items
    else:
        from fbrec.data.datasets import load_raw

        items = load_raw(dataset).items
    if backend not in ("offline", "openai"):
        raise ConfigError(f"--backend {backend!r}", rule="commands are parsed by the offline rules or an "
                          "OpenAI-compatible server", fix="--backend offline, or --backend openai --base-url URL "
                          "--model NAME")
    generator = None if backend == "offline" else make_backend(backend, base_url=base_url, model=model)
    prefs = parse_command(command, Vocabulary.from_items(items), generator)
    typer.echo(json.dumps(prefs.to_dict()))


reward_app = typer.Typer(no_args_is_help=True, help="Reward models learned from user feedback (RLUF-style).")
app.add_typer(reward_app, name="reward-model")


@reward_app.command("train")
def reward_train(out: Path = typer.Option(..., "--out", help="model folder to write (atomically)"),
                 dataset: str = typer.Option("movielens-100k", help="a dataset with logged ratings"),
                 objective: str = typer.Option("pointwise", help="pointwise (log-loss) | pairwise (Bradley-Terry)"),
                 seed: int = typer.Option(0, help="seed of the split, initialisation and shuffling"),
                 epochs: int = typer.Option(20, help="epochs (the best on validation log-loss is kept)"),
                 overwrite: bool = typer.Option(False, help="replace a model an earlier run wrote to OUT")) -> None:
    """Train P[positive | user history as text, item text] and evaluate it: held-out AUC, log-loss, ECE with a
    reliability plot, and (MovieLens-100K) how well a policy's mean score predicts its true positive rate."""
    from fbrec._atomic import check_replaceable
    from fbrec.llm.reward_run import run_reward_model

    check_replaceable(out, "reward-model", overwrite=overwrite)
    r = run_reward_model(dataset, out, objective=objective, seed=seed, epochs=epochs, overwrite=overwrite,
                         progress=typer.echo)
    t = r["test"]
    typer.echo(f"held-out events: AUC {t['auc']:.4f}, log-loss {t['log_loss']:.4f}, ECE {t['ece']:.4f} "
               f"({t['events']:,} events, best epoch {r['best_epoch']})")
    if "predictiveness" in r:
        typer.echo(f"policy-level Pearson r (mean score vs true positive rate, {len(r['predictiveness']['policies'])} "
                   f"policies): {r['predictiveness']['pearson_r']:.3f}")
    from fbrec.tracking import log_run

    metrics = {f"test/{k}": v for k, v in t.items()}
    if "predictiveness" in r:
        metrics["predictiveness/pearson_r"] = r["predictiveness"]["pearson_r"]
    rid = log_run("fbrec-llm", f"reward-model-{dataset}-{objective}", params={
        "dataset": dataset, "objective": objective, "seed": seed, "epochs": epochs, "encoder": r["encoder"],
        "out": str(Path(out).resolve())}, metrics=metrics,
        artifacts={"reward_model": Path(out) / "reliability.png", "": Path(out) / "result.json"})
    typer.echo(f"wrote {out}; MLflow run {rid} (experiment fbrec-llm)")


@reward_app.command("evaluate")
def reward_evaluate(model: Path = typer.Option(..., "--model", help="folder written by `reward-model train`")) -> None:
    """Recompute a saved reward model's held-out metrics (same data, split and encoder)."""
    from fbrec.llm.reward_run import evaluate_reward_model

    r = evaluate_reward_model(model)
    t = r["recomputed"]
    typer.echo(f"held-out events: AUC {t['auc']:.4f}, log-loss {t['log_loss']:.4f}, ECE {t['ece']:.4f}")
