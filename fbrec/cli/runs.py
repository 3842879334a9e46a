"""`fbrec train|evaluate|export|retrieve|demo`."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.table import Table

from fbrec.api.training import console, summary_table


def _cell(value) -> str:
    return ", ".join(map(str, value)) if isinstance(value, list) else ("" if value is None else str(value))


def register(app: typer.Typer) -> None:
    @app.command(context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
    def train(ctx: typer.Context,
              config: str = typer.Option(None, "--config", "-c", help="models/<recipe>/config.yaml or a recipe name"),
              resume: str = typer.Option(None, "--resume", help="continue the run with this MLflow id from its "
                                         "last saved epoch (after a crash or kill), in the same run"),
              refit: bool = typer.Option(False, "--refit", help="then train again on training + validation pairs "
                                         "for the epoch count validation chose, and test and export that model "
                                         "(a second MLflow run, tagged refit_of)"),
              register: str = typer.Option(None, "--register", help="also register the run's MLflow model (the "
                                           "bundle as a pyfunc) under this name in the MLflow model registry")
              ) -> None:
        """Train a recipe. Extra arguments override the YAML, LightningCLI style: --trainer.max_epochs 5."""
        from fbrec.api.training import run_training
        from fbrec.errors import ConfigError

        if (config is None) == (resume is None):
            raise ConfigError("pass exactly one of --config and --resume", rule="a run starts from a recipe or "
                              "continues a run", fix="fbrec train --config bpr_synthetic, or --resume RUN_ID")
        run_training(config, list(ctx.args), resume=resume, refit=refit, register=register)

    @app.command()
    def evaluate(run: str = typer.Option(..., "--run", help="MLflow run id printed by `fbrec train`"),
                 stage: str = typer.Option("test", help="test or val"),
                 k: list[int] = typer.Option([10, 20, 50], "--k", help="cut-offs (repeat --k)"),
                 out: Path = typer.Option(None, help="also write the report CSV here (a new file)")) -> None:
        """Full-ranking evaluation of a trained run's embeddings, with slices and 95% CIs; logged to the run."""
        from fbrec.api.runs import evaluate_run

        result = evaluate_run(run, stage=stage, k=k, out=out)
        console.print(summary_table(f"{stage} metrics of run {run}", result.summary, sorted(set(k))))
        if out:
            console.print(f"wrote {out}")

    @app.command()
    def export(run: str = typer.Option(..., "--run", help="MLflow run id"),
               out: Path = typer.Option(..., "--out", help="bundle directory to create"),
               index: str = typer.Option("Flat", "--index", help='faiss index_factory string: "Flat", '
                                         '"IVF256,Flat", "HNSW32", "IVF256,PQ16"'),
               search_params: str = typer.Option("", help='e.g. "nprobe=16" or "efSearch=128"'),
               overwrite: bool = typer.Option(False, help="replace a bundle an earlier export wrote there")) -> None:
        """Write a bundle (embeddings, id maps, FAISS index, manifest) and log it to the run."""
        from fbrec.api.runs import export_run

        manifest = export_run(run, out, index=index, search_params=search_params, overwrite=overwrite)
        console.print(f"wrote bundle {out}: {manifest.num_items} items x {manifest.embedding_dim} dims, index "
                      f"{manifest.index_factory!r}, recall@{manifest.recall_k} vs exact {manifest.recall_at_k:.4f}")

    @app.command()
    def retrieve(bundle: Path = typer.Option(..., "--bundle", help="bundle directory"),
                 user: str = typer.Option(..., "--user", help="raw user id"),
                 k: int = typer.Option(10, "--k"), exact: bool = typer.Option(False, help="exact search"),
                 include_seen: bool = typer.Option(False, help="do not filter the user's seen items"),
                 command: str = typer.Option(None, help='what the user asks for, in words: "no horror, more 90s '
                                                        'comedies" (parsed offline over the bundle\'s attributes)'),
                 preferences: str = typer.Option(None, help='structured preferences as JSON, e.g. '
                                                            '\'{"exclude": {"genres": ["Horror"]}}\'')) -> None:
        """Top-k items for a user from the bundle's FAISS index, optionally under stated preferences."""
        import json

        from fbrec.bundle import Bundle
        from fbrec.data.preferences import Preferences
        from fbrec.errors import ConfigError

        b = Bundle(bundle)
        prefs = None
        if command:
            from fbrec.llm.commands import Vocabulary, parse_command

            prefs = parse_command(command, Vocabulary.from_items(b.items))
            console.print(f"preferences: {json.dumps(prefs.to_dict())}")
        elif preferences:
            try:
                prefs = Preferences.from_dict(json.loads(preferences))
            except json.JSONDecodeError as exc:
                raise ConfigError(f"--preferences is not JSON: {exc.msg} at character {exc.pos}",
                                  rule="a JSON object", fix='e.g. \'{"exclude": {"genres": ["Horror"]}}\'') from None
        indices, scores = b.recommend_indices(user, k, exclude_seen=not include_seen, exact=exact,
                                              preferences=prefs)
        recs = list(zip(b.item_map.decode(indices), scores.tolist(), strict=True))
        shown = [c for c in ("title", "name", "genres", "category", "brand", "year") if b.items is not None
                 and c in b.items.columns][:3]
        table = Table("rank", "item", *shown, "score", title=f"top-{k} for user {user}")
        attrs = b.item_attributes(indices)
        for r, ((item, score), attr) in enumerate(zip(recs, attrs, strict=True), 1):
            table.add_row(str(r), str(item), *[_cell(attr.get(c)) for c in shown], f"{score:.4f}")
        console.print(table)

    @app.command()
    def simulate(run: str = typer.Option(..., "--run", help="MLflow run id printed by `fbrec train`"),
                 rounds: int = typer.Option(5, help="rounds per session"),
                 slate: int = typer.Option(10, help="items shown per round"),
                 users: int = typer.Option(200, help="test users simulated (a seeded sample)"),
                 seed: int = typer.Option(0, help="seed of the user sample and the simulator"),
                 policy: list[str] = typer.Option(["same", "pages", "adapts"], "--policy",
                                                  help="same | pages | adapts | reward (repeat)"),
                 reward_model: Path = typer.Option(None, "--reward-model", help="a reward-model folder: adds the "
                                                   "'reward' policy (re-ranks by P[positive])")) -> None:
        """Multi-round evaluation with simulated users (the offline simulator is an oracle on held-out items): per-round
        hit rate, recall, NDCG and pass rate, session NUM and sDCG; logged to the run under simulate/."""
        from fbrec.api.runs import simulate_run

        if reward_model is not None and "reward" not in policy:
            policy = [*policy, "reward"]
        result = simulate_run(run, rounds=rounds, slate=slate, users=users, seed=seed, policies=policy,
                              reward_model=reward_model)
        table = Table("policy", "round", "hit rate", f"recall@{slate}", f"ndcg@{slate}", "pass rate",
                      title=f"{users} simulated users x {rounds} rounds (simulator: grounded oracle on held-out "
                            f"items, not a model of users)")
        for row in result.per_round.iter_rows(named=True):
            table.add_row(row["policy"], str(row["round"]), f"{row['hit_rate']:.3f}", f"{row['recall']:.3f}",
                          f"{row['ndcg']:.3f}", f"{row['pass_rate']:.3f}")
        console.print(table)
        for (name,), g in result.per_session.group_by("policy", maintain_order=True):
            console.print(f"{name}: NUM {g['num'].mean():.3f}, sDCG {g['sdcg'].mean():.3f}")
        if result.examples:
            e = result.examples[0]
            console.print(f"example (user index {e['user']}, round {e['round']}): clicked {e['clicked']}; says: "
                          f"{e['command'] or '(nothing)'}")

    @app.command()
    def demo(out: Path = typer.Option(Path("demo_bundle"), help="where to write the bundle"),
             epochs: int = typer.Option(10, help="training epochs")) -> None:
        """Train MF-BPR on the synthetic default, print test metrics and the run, export a bundle, retrieve."""
        from fbrec.api.training import run_training
        from fbrec.bundle import Bundle

        run_id = run_training("bpr_synthetic", [f"--trainer.max_epochs={epochs}"])
        if run_id is None:
            return
        export(run=run_id, out=out, index="HNSW32", search_params="efSearch=64", overwrite=True)
        b = Bundle(out)
        first = b.user_map.raw[0]
        retrieve(bundle=out, user=str(first), k=10, exact=False, include_seen=False)
