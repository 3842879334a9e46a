"""Grid search on validation only; the chosen setting is written into the recipe, the search table into its card.

python -m benchmarks.tune RECIPE --grid model.init_args.learning_rate=0.05,0.2 [--grid KEY=V1,V2 ...]
                          [--seed 0] [--monitor METRIC] [--write]
Every grid point trains the recipe with --seed_everything=SEED (tune on one seed; report on others) and is scored by
the best value of the recipe's checkpoint monitor (or --monitor) over its epochs: the same number that chooses the
epoch. The test set is never read by the choice (test metrics are logged by the runs but not looked at here).
With --write, each chosen value replaces the key's value in models/RECIPE/config.yaml (the key must already be
there; comments stay) and the table goes into models/RECIPE/README.md under "Tuning".
"""

from __future__ import annotations

import argparse
import itertools
import re
from dataclasses import dataclass
from pathlib import Path

from benchmarks.common import machine, scratch_tracking, table, write_card

MODELS = Path(__file__).resolve().parents[1] / "models"


@dataclass
class Search:
    recipe: str
    monitor: str
    rows: list[tuple[dict[str, str], float]]          # (setting, best validation value)

    @property
    def best(self) -> dict[str, str]:
        return max(self.rows, key=lambda r: r[1])[0]

    def overrides(self, setting: dict[str, str] | None = None) -> list[str]:
        return [f"--{k}={v}" for k, v in (self.best if setting is None else setting).items()]

    def markdown(self, seed: int) -> str:
        keys = list(self.rows[0][0]) if self.rows else []
        best = self.best
        lines = [[*(f"`{s[k]}`" for k in keys), ("degenerate (flat scores)" if v == DEGENERATE else f"{v:.4f}")
                   + (" **chosen**" if s == best else "")] for s, v in self.rows]
        return (f"Searched on validation only (`{self.monitor}`, best epoch of each run, seed {seed}); "
                f"`python -m benchmarks.tune {self.recipe} ...` on {machine()}:\n\n"
                + table([*(k.rsplit(".", 1)[-1] for k in keys), self.monitor], lines))


DEGENERATE = float("-inf")   # the value of a setting whose model scores every item the same: never the best


def selectable_value(tags: dict[str, str], history: list[float]) -> float:
    """A run's best validation value, or DEGENERATE when the run flagged its model as scoring every item the same
    (tag fbrec.degenerate): such a model ranks by the tie-break, and its validation number says nothing."""
    return DEGENERATE if tags.get("fbrec.degenerate") == "true" else max(history)


def monitor_of(recipe: str) -> str:
    match = re.search(r"^\s*monitor:\s*(\S+)", (MODELS / recipe / "config.yaml").read_text(), re.M)
    return match.group(1) if match else "val/ndcg_at_10"


def search(client, recipe: str, grid: dict[str, list[str]], *, seed: int = 0, monitor: str | None = None,
           extra: list[str] = ()) -> Search:
    from fbrec.api.training import run_training

    monitor = monitor or monitor_of(recipe)
    quiet = ["--trainer.enable_progress_bar=false", "--experiment=benchmarks-tune", f"--seed_everything={seed}"]
    rows = []
    for values in itertools.product(*grid.values()):
        setting = dict(zip(grid, values, strict=True))
        run = run_training(recipe, [*extra, *(f"--{k}={v}" for k, v in setting.items()), *quiet])
        history = client.get_metric_history(run, monitor)
        if not history:
            raise SystemExit(f"{recipe}: the runs log no {monitor!r}; pass --monitor")
        rows.append((setting, selectable_value(client.get_run(run).data.tags, [m.value for m in history])))
        print(f"{recipe} {setting}: {monitor} {max(m.value for m in history):.4f}"
              + (" (degenerate: scores flat, not selectable)" if rows[-1][1] == DEGENERATE else ""), flush=True)
    return Search(recipe, monitor, rows)


def write_setting(path: Path, setting: dict[str, str]) -> None:
    """Replace each key's value in a recipe YAML in place (the last dotted part names the line)."""
    text = path.read_text()
    for key, value in setting.items():
        name = key.rsplit(".", 1)[-1]
        pattern = re.compile(rf"^(\s*{re.escape(name)}:\s*)([^#\n]*?)(\s*(#.*)?)$", re.M)
        if len(pattern.findall(text)) != 1:
            raise SystemExit(f"{path}: {name!r} must appear exactly once to be rewritten; edit the recipe by hand")
        text = pattern.sub(lambda m, v=value: f"{m.group(1)}{v}{m.group(3)}", text)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    tmp.replace(path)   # the recipe is the old or the new one, never half-written


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("recipe")
    parser.add_argument("--grid", action="append", required=True, help="KEY=V1,V2 (a dotted config key)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--monitor")
    parser.add_argument("--write", action="store_true")
    args = parser.parse_args()
    grid = {}
    for item in args.grid:
        key, _, values = item.partition("=")
        grid[key] = [v for v in re.split(r",(?![^{]*})", values) if v]
    result = search(scratch_tracking("fbrec-tune-"), args.recipe, grid, seed=args.seed, monitor=args.monitor)
    print(result.markdown(args.seed))
    if args.write:
        write_setting(MODELS / args.recipe / "config.yaml", result.best)
        write_card(args.recipe, result.markdown(args.seed), block="tuning", heading="Tuning")


if __name__ == "__main__":
    main()
