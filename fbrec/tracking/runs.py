"""MLflow tracking with an embedded default store: sqlite under ./mlruns, no server needed.

MLFLOW_TRACKING_URI overrides the store. Every training run logs: the resolved recipe config, the dataset card and
checksum, params, per-epoch train/val metrics (`val/ndcg_at_10`), the test report as a table artifact, plots
(metric@K curves, head/tail bars), and the exported embeddings + id maps under `model/` so `fbrec evaluate` and
`fbrec export` can work from a run id alone.
"""

from __future__ import annotations

import json
import os
import tempfile
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, is_dataclass
from pathlib import Path

import mlflow
import numpy as np
import polars as pl
from mlflow.tracking import MlflowClient

from fbrec.errors import ConfigError

DEFAULT_EXPERIMENT = "fbrec"
EXPERIMENT_KIND = ("mlflow.experimentKind", "custom_model_development")


def default_tracking_uri(root: str | Path | None = None) -> str:
    if os.environ.get("MLFLOW_TRACKING_URI"):
        return os.environ["MLFLOW_TRACKING_URI"]
    root = Path(root or Path.cwd() / "mlruns").resolve()
    root.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{root / 'mlflow.db'}"


def _artifact_root(uri: str) -> str | None:
    if uri.startswith("sqlite:///"):
        return (Path(uri.removeprefix("sqlite:///")).parent / "artifacts").resolve().as_uri()
    return None


def tracking_setup(experiment: str = DEFAULT_EXPERIMENT, tracking_uri: str | None = None) -> tuple[str, str]:
    """Point mlflow at the store and make sure the experiment exists; returns (uri, experiment_id)."""
    uri = tracking_uri or default_tracking_uri()
    mlflow.set_tracking_uri(uri)
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


def log_dataset_inputs(run_id: str, data, source: str, tracking_uri: str | None = None) -> None:
    """The prepared splits as the run's MLflow dataset inputs (name, digest, source, schema, row counts), with the
    context tags train / validation / test MLflow shows in its dataset views."""
    import warnings

    import mlflow.data
    from mlflow.entities import DatasetInput, InputTag

    client = MlflowClient(tracking_uri or mlflow.get_tracking_uri())
    inputs = []
    for context, frame in (("train", data.train), ("validation", data.val), ("test", data.test)):
        if frame.height == 0:
            continue
        with warnings.catch_warnings():   # a local path matches two equivalent source resolvers
            warnings.simplefilter("ignore")
            # MLflow's schema has no categorical type: levels are logged as their names (strings)
            frame = frame.with_columns(pl.col(c).cast(pl.String) for c, t in frame.schema.items()
                                       if isinstance(t, pl.Enum | pl.Categorical))
            ds = mlflow.data.from_polars(frame, source=source, name=f"{data.name}/{context}",
                                         digest=f"{data.checksum[:16]}-{context}")
        inputs.append(DatasetInput(ds._to_mlflow_entity(), [InputTag("mlflow.data.context", context)]))
    client.log_inputs(run_id, datasets=inputs)


def make_logger(experiment: str = DEFAULT_EXPERIMENT, run_name: str | None = None, tags: dict | None = None,
                tracking_uri: str | None = None, run_id: str | None = None):
    """A Lightning MLflow logger (fbrec.tracking.logger) for a new run, or (run_id) for continuing an existing one."""
    from fbrec.tracking.logger import FbrecMLFlowLogger  # Lightning is imported only by commands that train

    uri, _ = tracking_setup(experiment, tracking_uri)
    return FbrecMLFlowLogger(experiment_name=experiment, run_name=None if run_id else run_name, tracking_uri=uri,
                        tags=None if run_id else tags, artifact_location=_artifact_root(uri), run_id=run_id)


UNBOUNDED = ("dcg",)          # metric@K families that exceed 1 (plotted on their own axis)
SLICE_ORDER = ("all", "head", "tail", "cold", "snips", "ips")


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _plot_curves(summary: dict[str, float], path: Path, title: str) -> None:
    """metric@K: bounded metrics on one [0, 1] axis, DCG (unbounded) on its own."""
    from fbrec.evaluation.ranking import metric_curves

    plt = _pyplot()
    curves = metric_curves(summary)
    bounded = {m: v for m, v in sorted(curves.items()) if m not in UNBOUNDED}
    unbounded = {m: v for m, v in sorted(curves.items()) if m in UNBOUNDED}
    fig, axes = plt.subplots(1, 2 if unbounded else 1, figsize=(10 if unbounded else 6.5, 4.2), squeeze=False)
    for ax, group, ylabel in ((axes[0, 0], bounded, "value (0-1)"), (axes[0, -1], unbounded, "DCG")):
        if not group:
            continue
        for metric, points in group.items():
            ks, vals = zip(*points, strict=True)
            ax.plot(ks, vals, marker="o", label=metric)
        ax.set_xlabel("K")
        ax.set_ylabel(ylabel)
        ax.set_xticks(sorted({k for pts in group.values() for k, _ in pts}))
        if group is bounded:
            ax.set_ylim(0, 1)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8, loc="best")
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _slice_key(name: str) -> tuple[int, str]:
    return (SLICE_ORDER.index(name), name) if name in SLICE_ORDER else (len(SLICE_ORDER), name)


def _plot_slices(report: pl.DataFrame, metric: str, path: Path, title: str) -> None:
    """One bar per slice in a fixed order (all, head, tail, cold, snips, ips, users_q1, ...), n under each label."""
    plt = _pyplot()
    rows = report.filter(pl.col("metric") == metric).to_dicts()
    rows.sort(key=lambda r: _slice_key(r["slice"]))
    fig, ax = plt.subplots(figsize=(max(6.0, 0.9 * len(rows) + 2), 4.2))
    labels = [f"{r['slice']}\nn={r['num_users']:,}" for r in rows]
    ax.bar(range(len(rows)), [r["value"] for r in rows], yerr=[r["ci95"] for r in rows], capsize=4)
    ax.set_xticks(range(len(rows)), labels, fontsize=8)
    ax.set_ylabel(metric)
    if not any(metric.startswith(m) for m in UNBOUNDED):
        ax.set_ylim(0, max(1e-9, min(1.0, 1.15 * max((r["value"] + r["ci95"] for r in rows), default=1.0))))
    ax.set_title(f"{title}: {metric} by slice (95% CI)", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def log_learning_curves(run_id: str, monitor: str | None, tracking_uri: str | None = None, *, title: str = "") -> None:
    """curves/learning_curves.png: the training loss per epoch and the monitored validation metric per epoch."""
    client = MlflowClient(tracking_uri or mlflow.get_tracking_uri())
    loss = client.get_metric_history(run_id, "train/loss_epoch")
    val = client.get_metric_history(run_id, monitor) if monitor else []
    epochs = client.get_metric_history(run_id, "epoch")
    if not loss and not val:
        return
    epoch_at = {m.step: m.value for m in epochs}
    plt = _pyplot()
    from matplotlib.ticker import MaxNLocator

    fig, axes = plt.subplots(1, 2 if val else 1, figsize=(10 if val else 6, 3.8), squeeze=False)
    for ax, history, label in ((axes[0, 0], loss, "train loss (epoch mean)"), (axes[0, -1], val, monitor)):
        if not history:
            continue
        history = sorted(history, key=lambda m: m.step)
        ax.plot([epoch_at.get(m.step, i) for i, m in enumerate(history)], [m.value for m in history], marker="o")
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
    fig.suptitle(f"{title}: learning curves" if title else "learning curves", fontsize=10)
    fig.tight_layout()
    with tempfile.TemporaryDirectory() as tmp:
        fig.savefig(Path(tmp) / "learning_curves.png", dpi=110)
        plt.close(fig)
        client.log_artifact(run_id, str(Path(tmp) / "learning_curves.png"), artifact_path="curves")


def log_calibration(run_id: str, probs: np.ndarray, labels: np.ndarray, tracking_uri: str | None = None, *,
                    stage: str = "test", title: str = "") -> float:
    """A reliability diagram (`<stage>/<stage>_calibration.png`, its table as CSV) and `<stage>/ece`; returns ECE."""
    client = MlflowClient(tracking_uri or mlflow.get_tracking_uri())
    from fbrec.evaluation.calibration import calibration

    ece, table = calibration(probs, labels)
    plt = _pyplot()
    fig, (ax, hist) = plt.subplots(2, 1, figsize=(5.5, 6), sharex=True, gridspec_kw={"height_ratios": [3, 1]})
    ax.plot([0, 1], [0, 1], "--", color="grey", label="perfectly calibrated")
    ax.plot(table["predicted"], table["observed"], marker="o", label=f"model (ECE {ece:.3f})")
    ax.set_ylabel("observed positive rate")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="upper left")
    hist.bar(table["predicted"], table["count"], width=0.08)
    hist.set_xlabel("predicted probability")
    hist.set_ylabel("pairs")
    fig.suptitle(f"{title} - {stage}: calibration" if title else f"{stage}: calibration", fontsize=10)
    fig.tight_layout()
    with tempfile.TemporaryDirectory() as tmp:
        fig.savefig(Path(tmp) / f"{stage}_calibration.png", dpi=110)
        plt.close(fig)
        table.write_csv(Path(tmp) / f"{stage}_calibration.csv")
        client.log_artifacts(run_id, tmp, artifact_path=stage)
    client.log_metric(run_id, f"{stage}/ece", ece)
    return ece


def log_report(run_id: str, stage: str, summary: dict[str, float], report: pl.DataFrame,
               per_user: pl.DataFrame | None = None, tracking_uri: str | None = None, main_k: int = 10,
               title: str = "") -> None:
    """Report table (CSV + parquet), per-user frame, metric@K curve and slice bars under `<stage>/`; `title`
    (recipe on dataset) heads the plots."""
    client = MlflowClient(tracking_uri or mlflow.get_tracking_uri())
    heading = f"{title} - {stage}" if title else stage
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)
        report.write_csv(d / f"{stage}_report.csv")
        if per_user is not None:
            per_user.write_parquet(d / f"{stage}_per_user.parquet")
        _plot_curves(summary, d / f"{stage}_metric_at_k.png", f"{heading}: metric@K (all items)")
        metric = f"ndcg_at_{main_k}"
        if report.filter(pl.col("metric") == metric).height:
            _plot_slices(report, metric, d / f"{stage}_slices.png", heading)
        client.log_artifacts(run_id, str(d), artifact_path=stage)


@dataclass
class RunArtifacts:
    """What `fbrec evaluate` / `fbrec export` need from a finished training run."""

    run_id: str
    model: str
    data_args: dict
    user_embeddings: np.ndarray
    item_embeddings: np.ndarray
    files: dict[str, bytes] = field(default_factory=dict)   # other model/ files, e.g. an ONNX user tower


def _jsonable(value):
    """json default: config dataclasses and jsonargparse Namespaces as dicts (so they load back), else str."""
    if is_dataclass(value) and not isinstance(value, type):
        return asdict(value)
    if hasattr(value, "as_dict"):
        return value.as_dict()
    return str(value)


def log_model_artifacts(run_id: str, *, model: str, data_args: dict, user_embeddings: np.ndarray,
                        item_embeddings: np.ndarray, dataset_card: dict, config_yaml: str | None,
                        tracking_uri: str | None = None, files: list[Path] = ()) -> None:
    """Everything `fbrec evaluate/export` need under model/ (embeddings, run.json, any `files` such as an ONNX
    user tower), the dataset card under data/, and the config."""
    client = MlflowClient(tracking_uri or mlflow.get_tracking_uri())
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)
        for f in files:
            (d / Path(f).name).write_bytes(Path(f).read_bytes())
        np.save(d / "user_embeddings.npy", user_embeddings)
        np.save(d / "item_embeddings.npy", item_embeddings)
        (d / "run.json").write_text(json.dumps({"model": model, "data": data_args}, indent=2, default=_jsonable))
        client.log_artifacts(run_id, str(d), artifact_path="model")
        (d / "dataset_card.json").write_text(json.dumps(dataset_card, indent=2, default=str))
        client.log_artifact(run_id, str(d / "dataset_card.json"), artifact_path="data")
        if config_yaml:
            (d / "config.yaml").write_text(config_yaml)
            client.log_artifact(run_id, str(d / "config.yaml"))
    client.set_tag(run_id, "dataset.checksum", dataset_card.get("checksum", ""))


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
                      fix="train one first (fbrec train --config bpr_synthetic), or pass a run id")


def read_run_artifacts(run_id: str, tracking_uri: str | None = None) -> RunArtifacts:
    uri = tracking_uri or default_tracking_uri()
    find_run(run_id, uri)
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")   # keep CLI output to one table
    client = MlflowClient(uri)
    with tempfile.TemporaryDirectory() as tmp:
        try:
            local = Path(client.download_artifacts(run_id, "model", tmp))
        except (OSError, mlflow.exceptions.MlflowException) as exc:
            raise ConfigError(f"run {run_id!r} has no model/ artifacts", rule="only finished `fbrec train` runs "
                              "can be evaluated or exported", fix="train again with `fbrec train`") from exc
        meta = json.loads((local / "run.json").read_text())
        known = {"run.json", "user_embeddings.npy", "item_embeddings.npy"}
        files = {p.name: p.read_bytes() for p in local.iterdir() if p.is_file() and p.name not in known}
        return RunArtifacts(run_id, meta["model"], meta["data"], np.load(local / "user_embeddings.npy"),
                            np.load(local / "item_embeddings.npy"), files)


def log_bundle(run_id: str, bundle_dir: str | Path, tracking_uri: str | None = None) -> None:
    MlflowClient(tracking_uri or mlflow.get_tracking_uri()).log_artifacts(run_id, str(bundle_dir), "bundle")


def set_run_tags(run_id: str, tags: dict[str, str], tracking_uri: str | None = None) -> None:
    client = MlflowClient(tracking_uri or default_tracking_uri())
    for key, value in tags.items():
        client.set_tag(run_id, key, value)


def log_table(run_id: str, frame: pl.DataFrame, artifact_file: str, tracking_uri: str | None = None) -> None:
    """A polars frame as a CSV artifact (e.g. "report/biased_vs_unbiased.csv")."""
    client = MlflowClient(tracking_uri or mlflow.get_tracking_uri())
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / Path(artifact_file).name
        frame.write_csv(path)
        client.log_artifact(run_id, str(path), artifact_path=str(Path(artifact_file).parent) or None)


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


def log_sessions(run_id: str, per_round: pl.DataFrame, per_session: pl.DataFrame, examples: list[dict],
                 tracking_uri: str | None = None, prefix: str = "simulate") -> None:
    """Multi-round results into the run: `simulate/<policy>/<metric>` per round (step = round), session means,
    the tables, example sessions and a per-round plot."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    client = MlflowClient(tracking_uri or mlflow.get_tracking_uri())
    for row in per_round.iter_rows(named=True):
        for m in ("hit_rate", "recall", "ndcg", "pass_rate"):
            client.log_metric(run_id, f"{prefix}/{row['policy']}/{m}", float(row[m]), step=int(row["round"]))
    for (policy,), g in per_session.group_by("policy", maintain_order=True):
        for m in ("num", "sdcg"):
            client.log_metric(run_id, f"{prefix}/{policy}/{m}", float(g[m].mean()))
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)
        per_round.write_csv(d / "per_round.csv")
        per_session.write_csv(d / "per_session.csv")
        (d / "examples.json").write_text(json.dumps(examples, indent=2, default=str))
        fig, ax = plt.subplots(figsize=(5, 3.2))
        for (policy,), g in per_round.group_by("policy", maintain_order=True):
            ax.plot(g["round"].to_list(), g["hit_rate"].to_list(), marker="o", label=policy)
        ax.set_xlabel("round")
        ax.set_ylabel("hit rate")
        ax.legend()
        fig.tight_layout()
        fig.savefig(d / "hit_rate_per_round.png", dpi=100)
        plt.close(fig)
        client.log_artifacts(run_id, str(d), artifact_path=prefix)
