"""The Python API: `fbrec.train`, `fbrec.evaluate`, `fbrec.export`, `fbrec.retrieve`, `fbrec.simulate` return plain
results; every `fbrec` command is a thin wrapper over these (fbrec.cli imports only fbrec.api, fbrec.serving and
fbrec.errors: an import contract).

    run = fbrec.train("bpr_movielens100k", {"trainer.max_epochs": 5})
    print(run.best_epoch, run.metrics["test/ndcg_at_10"])
    fbrec.export(run.run_id, "bundle/", index="HNSW32")
    fbrec.Bundle("bundle/").recommend(196, k=10)
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from fbrec.api.fitting import RunOutcome
from fbrec.api.progress import Progress
from fbrec.api.retrieval import Recommendations, retrieve
from fbrec.api.runs import Evaluation, evaluate_run, export_run, simulate_run
from fbrec.errors import ConfigError

# The recipe the demo trains and `fbrec train --log` takes its model from: chosen by measurement (benchmarks/RESULTS.md,
# "Default recipe, chosen by measurement": WMF by ALS beat MF-BPR and popularity on every dataset measured).
DEFAULT_RECIPE = "wmf_als_synthetic"


@dataclass
class TrainResult:
    """A finished training run: its MLflow id and store, the epoch selected on validation, every logged metric, the
    trained model (the selected epoch's weights, a LightningModule) with its data module, and what the run reported
    (`outcome`: recipe, dataset, test summary, the MNAR side-by-side table, time per stage)."""

    run_id: str
    tracking_uri: str
    best_epoch: int | None
    metrics: dict[str, float]
    model: object = None
    datamodule: object = None
    outcome: RunOutcome | None = None


def train(config: str | None = None, overrides: Mapping[str, object] | Sequence[str] = (), *,
          model=None, data=None, log: str | Path | None = None, resume: str | None = None,
          refit: bool = False, register: str | None = None, progress: Progress | None = None) -> TrainResult | None:
    """Train a recipe (a name under models/ or a YAML path), select the best epoch on validation, test it, log it.

    model / data: a model object (any fbrec.models class) and/or a data object (FeedbackData or
        FeedbackDataModule) instead of the recipe's blocks; they are written into the run's config from their
        constructor arguments (so the run can be resumed, evaluated and exported like any other) and rebuilt
        from it. With neither a config nor data, the data is the synthetic default.

    overrides: {"trainer.max_epochs": 5, "model.init_args.embedding_dim": 64} or CLI-style ["--trainer.max_epochs=5"].
    log: your own click log (parquet/CSV/NDJSON with user, item[, timestamp, level] columns; see fbrec.read_log)
        instead of the recipe's dataset: the same as {"data.source.log": log}.
    resume: continue that run from its last saved epoch instead (config is then ignored). Returns None on ranks > 0.
    refit: then train again on training + validation pairs for the epoch count validation chose (a second run,
        tagged refit_of, which is the one returned).
    register: also register the run's MLflow model (its bundle as a pyfunc) under this model-registry name.
    progress: called with each line worth telling a person (the CLI prints them; default: the "fbrec" logger).
    """
    import tempfile

    from fbrec.api.training import run_training
    from fbrec.tracking import default_tracking_uri, find_run

    args = list(overrides) if not isinstance(overrides, Mapping) else [f"--{k}={v}" for k, v in overrides.items()]
    if log is not None:
        args.append(f"--data.source.log={Path(log).resolve()}")
    objects: dict = {}
    with tempfile.TemporaryDirectory() as tmp:
        if model is not None or data is not None:
            config = str(_config_with_objects(config, model, data, Path(tmp) / "config.yaml"))
        if log is not None and config is not None and resume is None:
            config = str(_config_for_log(config, Path(tmp) / "log_config.yaml", progress, log=Path(log), args=args))
        if config is None and resume is None:
            raise ConfigError("nothing to train", rule="pass a recipe (config), a model object, or resume=RUN_ID",
                              fix=f'fbrec.train("{DEFAULT_RECIPE}") or fbrec.train(model=..., data=...)')
        run_id = run_training(config if resume is None else None, args, resume=resume, refit=refit,
                              objects=objects, register=register, progress=progress)
    if run_id is None:
        return None
    uri = default_tracking_uri()
    run = find_run(run_id, uri)
    best = run.data.tags.get("best_epoch")
    return TrainResult(run_id, uri, int(best) if best not in (None, "None") else None, dict(run.data.metrics),
                       objects.get("model"), objects.get("datamodule"), objects.get("outcome"))


def _config_with_objects(config: str | None, model, data, out: Path) -> Path:
    """The recipe's YAML (or a bare one) with its model / data blocks taken from the objects' constructor args."""
    import yaml

    from fbrec.api.config import resolve_config

    doc = yaml.safe_load(resolve_config(config).read_text()) if config else {"seed_everything": 0}
    if model is not None:
        if not hasattr(model, "hparams"):
            raise ConfigError(f"model {type(model).__name__} has no constructor arguments to rebuild it from",
                              rule="fbrec.train(model=...) takes an fbrec.models object (a LightningModule that "
                                   "saved its hyperparameters)", fix="build the model from fbrec.models")
        init = {k: _plain(v) for k, v in dict(model.hparams).items() if k not in ("num_users", "num_items")}
        doc["model"] = {"class_path": f"{type(model).__module__}.{type(model).__qualname__}", "init_args": init}
    if data is not None:
        doc["data"] = _data_args(data)
    doc.setdefault("data", {"dataset": "synthetic"})
    out.write_text(yaml.safe_dump(doc, sort_keys=False))
    return out


OWN_LOG_VAL_USERS = 10_000   # validation users per epoch on your own log (data.evaluation.val_users)
# from this many rows on, a log of your own is tested without the exact AUC unless asked: on a 5M-row log the exact
# AUC was 238 of the test's 246 s (benchmarks/RESULTS.md, scale-defaults vs scale-compare); the top-k metrics are
# the same either way
OWN_LOG_NO_AUC_ROWS = 1_000_000

# what a recipe says about its own dataset: a run on your log keeps the recipe's model and training, not these
_DATASET_KEYS = {"source": ("dataset", "data_dir", "options", "prepared_dir", "levels"),
                 "preparation": ("min_rating", "min_level"), "evaluation": ("candidates",)}


def _config_for_log(config: str, out: Path, progress: Progress | None, *, log: Path | None = None,
                    args: Sequence[str] = ()) -> Path:
    """The recipe with its dataset-specific data settings removed (and a dataset's own propensities), and settings
    sized for the log: a seeded sample of validation users, and no exact AUC from OWN_LOG_NO_AUC_ROWS rows on (both
    written into the run's config, so its params state them; the command line overrides either)."""
    import yaml

    from fbrec.api.config import resolve_config
    from fbrec.data.specs import translate_flat

    path = resolve_config(config)
    doc = yaml.safe_load(path.read_text()) or {}
    block = doc["data"] = translate_flat(doc.get("data") or {})
    dropped = [f"{spec}.{k}" for spec, keys in _DATASET_KEYS.items() for k in keys
               if isinstance(block.get(spec), dict) and block[spec].pop(k, None) is not None]
    evaluation = block.setdefault("evaluation", {}) if isinstance(block.get("evaluation", {}), dict) else {}
    # a log of your own can be large: validate on a seeded sample of users (the test ranks every user); a log
    # with fewer users than this validates on all of them, and the metric names say when it is a sample
    evaluation.setdefault("val_users", OWN_LOG_VAL_USERS)
    prop = block.get("propensity")
    if isinstance(prop, dict) and str(prop.get("class_path", "")).endswith("DatasetExposure"):
        block.pop("propensity")
        dropped.append("propensity")
    _size_for_log(doc, log, args, progress)
    if dropped and progress is not None:
        progress(f"your log: the recipe's dataset settings are not used ({', '.join(f'data.{k}' for k in dropped)}); "
                 "pass them on the command line to set them for your log")
    out.write_text(yaml.safe_dump(doc, sort_keys=False))
    # the run is named after the recipe's folder, as for the recipe itself
    return _named_like(path, out)


def _size_for_log(doc: dict, log: Path | None, args: Sequence[str], progress: Progress | None) -> None:
    """A large log is tested without the exact AUC unless the recipe or the command line says otherwise."""
    import importlib
    import inspect

    from fbrec.data.io import count_rows

    model = doc.get("model") if isinstance(doc.get("model"), dict) else {}
    init = model.setdefault("init_args", {}) if isinstance(model.get("init_args", {}), dict) else {}
    if log is None or "auc" in init or any(a.startswith("--model.init_args.auc") for a in args):
        return
    module, _, name = str(model.get("class_path", "")).rpartition(".")
    try:
        accepts = "auc" in inspect.signature(getattr(importlib.import_module(module), name)).parameters
    except (ImportError, AttributeError, ValueError):
        return   # the config step names a class it cannot build
    rows = count_rows(log)
    if accepts and rows is not None and rows >= OWN_LOG_NO_AUC_ROWS:
        init["auc"] = False
        if progress is not None:
            progress(f"your log has {rows:,} rows: tested without the exact AUC (model.init_args.auc false: the same "
                     "top-k metrics, minutes less; --model.init_args.auc true asks for it)")


def _named_like(recipe: Path, written: Path) -> Path:
    from fbrec.api.config import recipe_name

    folder = written.parent / recipe_name(recipe)
    folder.mkdir(exist_ok=True)
    return written.rename(folder / "config.yaml")


def _plain(value):
    """YAML-safe: tuples become lists, dataclass specs dicts."""
    from dataclasses import asdict, is_dataclass

    if is_dataclass(value) and not isinstance(value, type):
        return asdict(value)
    if isinstance(value, tuple | list):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value


def _data_args(data) -> dict:
    """A FeedbackData's constructor arguments (it records them as it is built)."""
    if not hasattr(data, "init_args"):
        raise ConfigError(f"data object {type(data).__name__} records no constructor arguments",
                          rule="fbrec.train(data=...) takes FeedbackData or FeedbackDataModule",
                          fix="build it with fbrec.data.feedback.FeedbackData(...)")
    return {k: _plain(v) for k, v in data.init_args.items()}


def evaluate(run_id: str, *, stage: str = "test", k: Sequence[int] = (10, 20, 50),
             out: str | Path | None = None) -> Evaluation:
    """Full-ranking evaluation of a run's embeddings (see fbrec.api.runs.evaluate_run)."""
    return evaluate_run(run_id, stage=stage, k=list(k), out=out)


def export(run_id: str, out: str | Path, *, index: str = "Flat", search_params: str = "", overwrite: bool = False):
    """Write the run's bundle to `out` (see fbrec.api.runs.export_run); returns its Manifest."""
    return export_run(run_id, out, index=index, search_params=search_params, overwrite=overwrite)


def simulate(run_id: str, *, rounds: int = 5, slate: int = 10, users: int = 200, seed: int = 0,
             policies: Sequence[str] = ("same", "pages", "adapts"), reward_model: str | Path | None = None,
             simulator: str = "oracle", backend: str = "openai", backend_options: dict | None = None):
    """Multi-round evaluation with simulated users (see fbrec.api.runs.simulate_run): simulator "oracle" (held-out
    truth), "learned" (a click model fitted on training feedback) or "llm" (a language model through `backend`); a
    reward model adds the "reward" policy. Returns the SessionResult (per_round, per_session, examples)."""
    policies = list(policies)
    if reward_model is not None and "reward" not in policies:
        policies.append("reward")
    return simulate_run(run_id, rounds=rounds, slate=slate, users=users, seed=seed, policies=policies,
                        reward_model=reward_model, simulator=simulator, backend=backend,
                        backend_options=backend_options)


@dataclass
class DemoResult:
    train: TrainResult
    manifest: object
    recommendations: Recommendations


def demo(out: str | Path = "demo_bundle", *, epochs: int | None = None,
         progress: Progress | None = None) -> DemoResult | None:
    """The README's first command: train the default recipe (WMF by ALS) on the synthetic default (`epochs`: the
    recipe's unless given), export an HNSW bundle to `out` (replacing one an earlier demo wrote), and retrieve the
    first user's top-10 from it."""
    run = train(DEFAULT_RECIPE, {"trainer.max_epochs": epochs} if epochs else {}, progress=progress)
    if run is None:   # ranks > 0
        return None
    manifest = export(run.run_id, out, index="HNSW32", search_params="efSearch=64", overwrite=True)
    from fbrec.bundle import Bundle

    first = Bundle(out).user_map.raw[0]
    return DemoResult(run, manifest, retrieve(out, first, k=10))


__all__ = ["DEFAULT_RECIPE", "DemoResult", "Evaluation", "Recommendations", "RunOutcome", "TrainResult", "demo", "evaluate", "export",
           "retrieve", "simulate", "train"]
