"""LLM feedback modules from Python: profile folders for RLMRec alignment, commands parsed into preferences, reward
models (what `fbrec llm ...` prints)."""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

from fbrec.api.progress import Progress, to_log
from fbrec.errors import ConfigError


@dataclass
class ProfilesResult:
    out: Path
    manifest: dict
    backend: str
    model: str
    is_language_model: bool
    encoder: str
    run_id: str | None = None          # the MLflow run (experiment fbrec-llm), when tracked


def _recipe_data(config: str | Path) -> tuple[dict, int]:
    """The data block and seed of a training recipe, so the profiles are built from the split the run trains on."""
    import yaml

    from fbrec.api.config import resolve_config

    path = resolve_config(str(config))
    try:
        recipe = yaml.safe_load(path.read_text()) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(f"--config {str(config)!r}: {exc}", rule="a training recipe (YAML)",
                          fix="pass the recipe you train with") from None
    from fbrec.data.specs import translate_flat

    data = dict(recipe.get("data") or {})
    data.pop("class_path", None)
    return translate_flat(dict(data.get("init_args", data))), int(recipe.get("seed_everything") or 0)


def build_profiles(out: str | Path, *, dataset: str | None = None, config: str | Path | None = None,
                   seed: int | None = None, split: str | None = None, min_rating: float | None = None,
                   min_level: str | None = None, backend: str = "offline", backend_options: dict | None = None,
                   encoder: str | Path | None = None, item_template: str | None = None, overwrite: bool = False,
                   track: bool = True, progress: Progress | None = None) -> ProfilesResult:
    """Write user and item profiles plus their text embeddings to `out` (atomically) from the training split of
    `config` (a recipe: its dataset, preparation and seed) or of `dataset`; log the job to MLflow (experiment
    fbrec-llm) unless track=False. User profiles use training items only; the folder is bound to that split."""
    from fbrec._atomic import check_replaceable
    from fbrec.data.feedback import FeedbackData
    from fbrec.llm import TextEncoder, make_backend, write_profiles

    say = progress or to_log
    if (dataset is None) == (config is None):
        raise ConfigError("pass exactly one of --dataset and --config", rule="profiles are built from one split",
                          fix="--config RECIPE (recommended: the split the run trains on) or --dataset NAME")
    check_replaceable(out, "profiles", overwrite=overwrite)
    data_args, recipe_seed = _recipe_data(config) if config else ({"source": {"dataset": dataset}}, 0)
    data_args["preparation"] = {**(data_args.get("preparation") or {}), **{
        k: v for k, v in (("split", split), ("min_rating", min_rating), ("min_level", min_level)) if v is not None}}
    # the split's seed as training resolves it: seed, else the recipe's data.seed, else its seed_everything
    recipe_data_seed = data_args.pop("seed", None)
    data_seed = seed if seed is not None else recipe_data_seed if recipe_data_seed is not None else recipe_seed
    try:
        dm = FeedbackData(**data_args, seed=data_seed)
    except TypeError as exc:
        raise ConfigError(f"data options {sorted(data_args)}: {exc}", rule="the data block of a recipe",
                          fix="fix --config") from None
    generator = make_backend(backend, **(backend_options or {}))
    text_encoder = TextEncoder(encoder, progress=sys.stderr.isatty())   # a progress bar for people, not for logs
    name = dm.data.name   # the dataset's name, or your log's file name
    manifest = write_profiles(out, dm.data, name, generator, text_encoder, template=item_template,
                              data_seed=data_seed, overwrite=overwrite, progress=say)
    result = ProfilesResult(Path(out), manifest, generator.name, generator.model, generator.is_language_model,
                            text_encoder.name)
    if track:
        from fbrec.tracking import log_run

        metrics = {**generator.usage.as_metrics(), "encode/texts_encoded": manifest["encoding"]["texts_encoded"],
                   "encode/cache_hit_rate": manifest["encoding"]["cache_hit_rate"],
                   "encode/texts_per_second": manifest["encoding"]["texts_per_second"]}
        result.run_id = log_run("fbrec-llm", f"profiles-{name}-{generator.name}", params={
            "dataset": name, "data_seed": data_seed, "backend": generator.name, "model": generator.model,
            "is_language_model": generator.is_language_model, "prompts": manifest["prompts"],
            "encoder": manifest["encoder"]["name"], "item_template": manifest["item_template"],
            "out": str(Path(out).resolve())}, metrics=metrics, artifacts={"profiles": Path(out) / "manifest.json"})
    return result


def parse(command: str, *, bundle: str | Path | None = None, dataset: str | None = None, backend: str = "offline",
          backend_options: dict | None = None) -> dict:
    """A natural-language command as structured preferences (a dict for `fbrec retrieve --preferences`, the
    service's `preferences` field and `Bundle.recommend(preferences=...)`), over the attribute vocabulary of a
    bundle or a registered dataset."""
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
    generator = None if backend == "offline" else make_backend(backend, **(backend_options or {}))
    return parse_command(command, Vocabulary.from_items(items), generator).to_dict()


def train_reward_model(out: str | Path, *, dataset: str = "movielens-100k", objective: str = "pointwise",
                       seed: int = 0, epochs: int = 20, features: str = "text", split: str = "user",
                       run: str | None = None, overwrite: bool = False, progress: Progress | None = None) -> dict:
    """Train P[positive | user context, item] (features: stats = the no-text baseline, text, cf, text+cf; split:
    user, time or event), evaluate it on held-out events (and per policy where the truth is known) and log it to
    MLflow (experiment fbrec-llm). run: train it for that run (its dataset; the run's validation and test pairs are
    never trained on), as its `reward` simulation policy requires. Returns the result dict with its "run_id"."""
    from fbrec._atomic import check_replaceable
    from fbrec.api.rundata import pairs_sha
    from fbrec.llm.reward_run import run_reward_model
    from fbrec.tracking import log_run

    check_replaceable(out, "reward-model", overwrite=overwrite)
    hold_out = bound_to = None
    if run is not None:
        run, data, hold_out = _run_held_out(run)
        dataset = data.dataset_name
        bound_to = {"run_id": run, "held_out_sha256": pairs_sha(hold_out)}
    r = run_reward_model(dataset, out, objective=objective, seed=seed, epochs=epochs, features=features, split=split,
                         hold_out=hold_out, bound_to=bound_to, overwrite=overwrite, progress=progress or to_log)
    metrics = {f"test/{k}": v for k, v in r["test"].items()}
    for k in ("pearson_all", "spearman_all", "pearson_sensible", "spearman_sensible", "picks_the_best"):
        if k in r.get("predictiveness", {}):
            metrics[f"predictiveness/{k}"] = float(r["predictiveness"][k])
    if run is not None:   # the run records the model's bytes: `simulate --policy reward` checks them, not result.json
        from fbrec.api.rundata import reward_model_tag
        from fbrec.tracking import set_run_tags

        set_run_tags(run, {reward_model_tag(out): str(Path(out).resolve())})
    r["run_id"] = log_run("fbrec-llm", f"reward-model-{dataset}-{objective}-{features}", params={
        "dataset": dataset, "objective": objective, "seed": seed, "epochs": epochs, "encoder": r["encoder"],
        "features": features, "split": split, "for_run": run, "out": str(Path(out).resolve())}, metrics=metrics,
        artifacts={"reward_model": Path(out) / "reliability.png", "": Path(out) / "result.json"})
    return r


def _run_held_out(run: str):
    """(run id, its FeedbackData, its validation and test (user, item) raw pairs)."""
    from fbrec.api.rundata import held_out_pairs, run_data
    from fbrec.tracking import read_run_artifacts, resolve_run_id

    run = resolve_run_id(run)
    source = run_data(read_run_artifacts(run).data_args)
    return run, source, held_out_pairs(source.data)


def evaluate_reward_model(model: str | Path) -> dict:
    """Recompute a saved reward model's held-out metrics (same data, split and encoder)."""
    from fbrec.llm.reward_run import evaluate_reward_model as evaluate

    return evaluate(model)


def serve_model(model: str | None = "smollm2", model_dir: str | Path | None = None, host: str = "127.0.0.1",
                port: int = 8000, max_new_tokens: int = 256, batch_size: int = 16, dtype: str = "float32",
                progress=print) -> None:
    """Serve a local language model on the OpenAI chat-completions API until interrupted (`fbrec llm serve`)."""
    import uvicorn

    from fbrec.llm.hf import HFBackend
    from fbrec.llm.server import create_app

    backend = HFBackend(model_dir=model_dir, model=model, max_new_tokens=max_new_tokens, batch_size=batch_size,
                        dtype=dtype)
    progress(f"serving {backend.description} at http://{host}:{port}/v1 ({dtype}, greedy decoding; JSON answers "
             f"constrained; requests that arrive together decoded together, up to {batch_size})")
    uvicorn.run(create_app(backend), host=host, port=port, log_level="warning")
