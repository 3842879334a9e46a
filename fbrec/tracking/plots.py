"""What a person looks at in the MLflow UI: metric@K curves, slices, learning curves, calibration, session plots,
and the reports they come with."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import mlflow
import numpy as np
import polars as pl
from mlflow.tracking import MlflowClient

UNBOUNDED = ("dcg",)          # metric@K families that exceed 1 (plotted on their own axis)


SLICE_ORDER = ("all", "head", "tail", "cold", "snips", "ips")


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _plot_curves(summary: dict[str, float], path: Path, title: str) -> None:
    """metric@K: bounded metrics on one [0, 1] axis, DCG (unbounded) on its own."""
    from fbrec.evaluation.report import metric_curves

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
