"""How the CLI shows results: rich tables built from the API's plain result objects."""

from __future__ import annotations

from rich.console import Console
from rich.table import Table

console = Console()

_FIRST = ("recall", "ndcg", "map", "mrr", "hit_rate", "precision")   # then any other metric@K (e.g. saito_dcg)


def say(line: str) -> None:
    """The progress callback the CLI hands to fbrec.api."""
    console.print(line, highlight=False, soft_wrap=True)   # one line stays one line (grep, logs)


def summary_table(title: str, summary: dict[str, float], ks) -> Table:
    """metric x cut-off, from a summary {"ndcg_at_10": ..., "auc": ...}."""
    ks = list(ks)
    names = list(dict.fromkeys(key.rsplit("_at_", 1)[0] for key in summary if "_at_" in key and "/" not in key))
    names = [m for m in _FIRST if m in names] + [m for m in names if m not in _FIRST]
    table = Table("metric", *[f"@{k}" for k in ks], title=title)
    for metric in names:
        table.add_row(metric, *[f"{summary[key]:.4f}" if (key := f"{metric}_at_{k}") in summary else "" for k in ks])
    if "auc" in summary:
        table.add_row("auc / gauc", f"{summary['auc']:.4f} / {summary.get('gauc', float('nan')):.4f}",
                      *[""] * (len(ks) - 1))
    return table


def frame_table(title: str, frame) -> Table:
    """A polars frame as a table (floats to 4 places)."""
    table = Table(*frame.columns, title=title)
    for row in frame.iter_rows():
        table.add_row(*["" if v is None else f"{v:.4f}" if isinstance(v, float) else str(v) for v in row])
    return table


def _cell(value) -> str:
    return ", ".join(map(str, value)) if isinstance(value, list) else ("" if value is None else str(value))


def recommendations_table(recs) -> Table:
    """fbrec.api.Recommendations as rank | item | up to three descriptive attributes | score."""
    shown = [c for c in ("title", "name", "genres", "category", "brand", "year")
             if any(c in a for a in recs.attributes)][:3]
    how = " (unknown or cold user: the most popular items)" if recs.fallback else ""
    table = Table("rank", "item", *shown, "score", title=f"top-{recs.k} for user {recs.user}{how}")
    for r, (item, score, attr) in enumerate(zip(recs.items, recs.scores, recs.attributes, strict=True), 1):
        table.add_row(str(r), str(item), *[_cell(attr.get(c)) for c in shown], f"{score:.4f}")
    return table


def train_report(outcome) -> None:
    """What a finished `fbrec train` prints: the MNAR side-by-side table, test metrics, where the run is."""
    if outcome.mnar_table is not None:
        console.print(frame_table("validation (MNAR: naive vs SNIPS) and test, best checkpoint", outcome.mnar_table))
    console.print(summary_table(f"test metrics: {outcome.recipe} on {outcome.dataset}", outcome.test, outcome.ks))
    say(f"MLflow run {outcome.run_id} in {outcome.tracking_uri}  (view: mlflow ui --backend-store-uri "
        f"{outcome.tracking_uri})")
