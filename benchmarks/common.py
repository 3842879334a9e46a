"""Shared helpers: machine description, timing, and rewriting one section of RESULTS.md."""

from __future__ import annotations

import os
import platform
import re
import time
from pathlib import Path

RESULTS = Path(__file__).with_name("RESULTS.md")


def machine() -> str:
    import torch

    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return (f"{os.cpu_count()} cores ({cpu}), torch {torch.__version__} with {torch.get_num_threads()} threads, "
            f"Python {platform.python_version()}")


class Timer:
    def __enter__(self):
        self.start = time.perf_counter()
        return self

    def __exit__(self, *exc):
        self.seconds = time.perf_counter() - self.start


def peak_rss_mb() -> float:
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def write_section(name: str, body: str) -> None:
    """Replace (or append) the block between `<!-- name -->` markers in RESULTS.md."""
    text = RESULTS.read_text() if RESULTS.exists() else "# fbrec benchmark results\n"
    block = f"<!-- {name} -->\n{body.strip()}\n<!-- /{name} -->"
    pattern = re.compile(rf"<!-- {re.escape(name)} -->.*?<!-- /{re.escape(name)} -->", re.S)
    text = pattern.sub(lambda _: block, text) if pattern.search(text) else text.rstrip() + "\n\n" + block + "\n"
    RESULTS.write_text(text)


def table(headers: list[str], rows: list[list]) -> str:
    out = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    out += ["| " + " | ".join(str(c) for c in r) + " |" for r in rows]
    return "\n".join(out)


def scratch_tracking(prefix: str):
    """Point MLflow at a fresh sqlite store in a temp dir (benchmark runs stay out of ./mlruns); its client."""
    import tempfile

    from mlflow.tracking import MlflowClient

    store = Path(tempfile.mkdtemp(prefix=prefix))
    os.environ["MLFLOW_TRACKING_URI"] = f"sqlite:///{store / 'mlflow.db'}"
    return MlflowClient(os.environ["MLFLOW_TRACKING_URI"])


def mean_sd(values: list[float]) -> str:
    import numpy as np

    return f"{np.mean(values):.4f} ± {np.std(values, ddof=1) if len(values) > 1 else 0:.4f}"


def write_card(recipe: str, body: str, block: str = "results", heading: str = "Results") -> None:
    """Replace (or add) the `block` section (results, tuning) of models/<recipe>/README.md."""
    path = RESULTS.parents[1] / "models" / recipe / "README.md"
    text = path.read_text() if path.exists() else f"# {recipe}\n"
    start, end = f"<!-- {block} -->", f"<!-- /{block} -->"
    section = f"{start}\n{body.strip()}\n{end}"
    if start in text:
        text = text[:text.index(start)] + section + text[text.index(end) + len(end):]
    else:
        text = text.rstrip() + f"\n\n## {heading}\n\n" + section + "\n"
    path.write_text(text)


def seeded_row(client, recipe: str, overrides: list[str], seeds: list[int], metrics: list[str]) -> list[str]:
    """Train `recipe` once per seed from the CLI code path; [recipe, mean ± sd of each logged metric]."""
    from fbrec.api.training import run_training

    values: dict[str, list[float]] = {m: [] for m in metrics}
    for seed in seeds:
        run = run_training(recipe, [*overrides, f"--seed_everything={seed}", "--trainer.enable_progress_bar=false"])
        logged = client.get_run(run).data.metrics
        for m in metrics:
            values[m].append(logged.get(m, float("nan")))
    return [f"`{recipe}`", *[mean_sd(v) for v in values.values()]]


def repeat_batches(dm, batch_size: int, steps: int) -> list:
    """`steps` training batches of the datamodule at `batch_size`, cycling its epoch when it has fewer."""
    dm.batch_size, dm._train = batch_size, None
    dm.setup()
    batches = list(iter(dm._train))
    return (batches * (steps // max(1, len(batches)) + 1))[:steps]


def peer_python() -> Path:
    """The peer environment's interpreter (benchmarks/.venv-peers), built once with implicit, numpy and scipy from
    the package index: peers are never runtime dependencies of fbrec."""
    import subprocess
    import sys

    venv = Path(__file__).resolve().parent / ".venv-peers"
    python = venv / "bin" / "python"
    if not python.exists():
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        subprocess.run([str(python), "-m", "pip", "install", "-q", "implicit==0.7.2", "numpy", "scipy"], check=True)
    return python
