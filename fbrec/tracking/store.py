"""Where runs live and how they are found: the embedded store (sqlite under ./mlruns; MLFLOW_TRACKING_URI
overrides), experiments, the Lightning logger, params, tags, and `last`."""

from __future__ import annotations

import json
import os
from contextlib import contextmanager
from dataclasses import asdict, is_dataclass
from pathlib import Path

import mlflow
from mlflow.tracking import MlflowClient

from fbrec.errors import ConfigError

DEFAULT_EXPERIMENT = "fbrec"


EXPERIMENT_KIND = ("mlflow.experimentKind", "custom_model_development")


_exported: list[str] = []   # the MLFLOW_TRACKING_URI value mlflow.set_tracking_uri last exported for fbrec


def default_tracking_uri(root: str | Path | None = None) -> str:
    """MLFLOW_TRACKING_URI when the user set it, else the embedded store ./mlruns of the current directory (so the
    Python API follows os.chdir as the CLI follows the shell's directory)."""
    env = os.environ.get("MLFLOW_TRACKING_URI")
    if env and env not in _exported[-1:]:
        return env
    root = Path(root or Path.cwd() / "mlruns").resolve()
    root.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{root / 'mlflow.db'}"


def use_tracking_uri(uri: str) -> None:
    """mlflow.set_tracking_uri, which also exports MLFLOW_TRACKING_URI (for subprocesses: torchrun's ranks keep the
    store); fbrec remembers the value is its own, not the user's, so a later run in another directory moves."""
    before = os.environ.get("MLFLOW_TRACKING_URI")
    mlflow.set_tracking_uri(uri)
    if before != uri:
        _exported[:] = [uri]


@contextmanager
def no_artifact_progress():
    """MLflow's artifact progress bar off while fbrec copies a run's own local artifacts (a copy, not a download:
    the bar would only break the console's lines); the caller's setting is restored after."""
    before = os.environ.get("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR")
    os.environ["MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR"] = "false"
    try:
        yield
    finally:
        if before is None:
            os.environ.pop("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", None)
        else:
            os.environ["MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR"] = before


def _artifact_root(uri: str) -> str | None:
    if uri.startswith("sqlite:///"):
        return (Path(uri.removeprefix("sqlite:///")).parent / "artifacts").resolve().as_uri()
    return None


def tracking_setup(experiment: str = DEFAULT_EXPERIMENT, tracking_uri: str | None = None) -> tuple[str, str]:
    """Point mlflow at the store and make sure the experiment exists; returns (uri, experiment_id)."""
    uri = tracking_uri or default_tracking_uri()
    use_tracking_uri(uri)
    with _store_lock(uri):   # two first runs at once: one creates the sqlite schema and experiment, the other waits
        client = MlflowClient(uri)
        exp = client.get_experiment_by_name(experiment)
        exp_id = exp.experiment_id if exp else client.create_experiment(experiment,
                                                                        artifact_location=_artifact_root(uri))
        if exp is None or EXPERIMENT_KIND[0] not in exp.tags:   # the UI's model-training views, not GenAI's
            client.set_experiment_tag(exp_id, *EXPERIMENT_KIND)
    return uri, exp_id


@contextmanager
def _store_lock(uri: str):
    if not uri.startswith("sqlite:///"):
        yield
        return
    import fcntl

    lock_path = Path(uri.removeprefix("sqlite:///")).parent / ".fbrec-store.lock"
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    with open(lock_path, "a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def flat_params(config, recipe: str, data_seed: int | None) -> dict[str, object]:
    """The run's params, each once: recipe, model (class), model.<arg>, data.<arg> (those set), seed, data.seed,
    trainer.<basics>. Nested options become dotted names (model.loss_options.beta); lists become JSON."""
    def plain(value):
        return value.as_dict() if hasattr(value, "as_dict") else value

    out: dict[str, object] = {}

    def flat(prefix: str, value) -> None:
        value = plain(value)
        if isinstance(value, dict):
            for k, v in value.items():
                if not str(k).startswith("_"):
                    flat(f"{prefix}.{k}", v)
        elif value is not None:
            out[prefix] = value if isinstance(value, int | float | bool | str) else json.dumps(value, default=str)

    model = plain(config["model"]) or {}
    out["recipe"] = recipe
    out["model"] = str(model.get("class_path", "")).rsplit(".", 1)[-1]
    flat("model", model.get("init_args", {}))
    flat("data", config["data"])
    out["seed"] = config.get("seed_everything")
    out["data.seed"] = data_seed
    trainer = plain(config["trainer"]) or {}
    for key in ("max_epochs", "accelerator", "devices", "precision", "check_val_every_n_epoch"):
        if trainer.get(key) is not None:
            out[f"trainer.{key}"] = trainer[key]
    return {k: v for k, v in out.items() if v is not None}


def make_logger(experiment: str = DEFAULT_EXPERIMENT, run_name: str | None = None, tags: dict | None = None,
                tracking_uri: str | None = None, run_id: str | None = None):
    """A Lightning MLflow logger (fbrec.tracking.logger) for a new run, or (run_id) for continuing an existing one."""
    from fbrec.tracking.logger import FbrecMLFlowLogger  # Lightning is imported only by commands that train

    uri, _ = tracking_setup(experiment, tracking_uri)
    return FbrecMLFlowLogger(experiment_name=experiment, run_name=None if run_id else run_name, tracking_uri=uri,
                        tags=None if run_id else tags, artifact_location=_artifact_root(uri), run_id=run_id)


def find_run(run_id: str, tracking_uri: str | None = None):
    client = MlflowClient(tracking_uri or default_tracking_uri())
    try:
        return client.get_run(run_id)
    except mlflow.exceptions.MlflowException as exc:
        raise ConfigError(f"run {run_id!r} is not in the tracking store {client.tracking_uri}",
                          rule="pass the run id printed by `fbrec train`",
                          fix="list runs with `mlflow ui --backend-store-uri ...` or set MLFLOW_TRACKING_URI") from exc


LAST = "last"


def resolve_run_id(run_id: str, tracking_uri: str | None = None) -> str:
    """`run_id` itself, or for "last" the most recently started training run in the store (any experiment)."""
    if run_id != LAST:
        return run_id
    client = MlflowClient(tracking_uri or default_tracking_uri())
    experiments = [e.experiment_id for e in client.search_experiments()]
    runs = client.search_runs(experiments, order_by=["attributes.start_time DESC"], max_results=200) \
        if experiments else []
    for run in runs:
        if "recipe" in run.data.tags:   # a training run (profile and reward-model jobs have no recipe)
            return run.info.run_id
    raise ConfigError(f"--run last, but the tracking store {client.tracking_uri} holds no training run",
                      rule="'last' is the most recently started `fbrec train` run of this store",
                      fix="train one first (fbrec train --config wmf_als_synthetic), or pass a run id")


def set_run_tags(run_id: str, tags: dict[str, str], tracking_uri: str | None = None) -> None:
    client = MlflowClient(tracking_uri or default_tracking_uri())
    for key, value in tags.items():
        client.set_tag(run_id, key, value)


def log_run(experiment: str, run_name: str, *, params: dict, metrics: dict[str, float], tags: dict | None = None,
            artifacts: dict[str, str | Path] | None = None, tracking_uri: str | None = None) -> str:
    """One finished MLflow run for a job that is not a training run (e.g. `fbrec llm profiles`); returns its id.
    artifacts: {artifact folder: local file}."""
    uri, exp_id = tracking_setup(experiment, tracking_uri)
    client = MlflowClient(uri)
    run = client.create_run(exp_id, run_name=run_name, tags=tags or {})
    rid = run.info.run_id
    try:
        for k, v in params.items():
            client.log_param(rid, k, str(_jsonable(v))[:6000])
        for k, v in metrics.items():
            client.log_metric(rid, k, float(v))
        for folder, path in (artifacts or {}).items():
            client.log_artifact(rid, str(path), artifact_path=folder or None)
    except BaseException:
        client.set_terminated(rid, "FAILED")
        raise
    client.set_terminated(rid, "FINISHED")
    return rid


def _jsonable(value):
    """json default: config dataclasses and jsonargparse Namespaces as dicts (so they load back), else str."""
    if is_dataclass(value) and not isinstance(value, type):
        return asdict(value)
    if hasattr(value, "as_dict"):
        return value.as_dict()
    return str(value)
