"""`fbrec train|evaluate|export|retrieve|demo`."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.table import Table

from fbrec.cli.training import console, summary_table


def _user_tower(files: dict[str, bytes]) -> dict[str, bytes] | None:
    from fbrec.bundle import USER_FEATURES, USER_TOWER

    return {n: files[n] for n in (USER_TOWER, USER_FEATURES)} if USER_TOWER in files else None


def _cell(value) -> str:
    return ", ".join(map(str, value)) if isinstance(value, list) else ("" if value is None else str(value))


def _datamodule(data_args: dict):
    from fbrec.data.datamodule import FeedbackDataModule

    return FeedbackDataModule(**data_args)


def register(app: typer.Typer) -> None:
    @app.command(context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
    def train(ctx: typer.Context,
              config: str = typer.Option(None, "--config", "-c", help="models/<recipe>/config.yaml or a recipe name"),
              resume: str = typer.Option(None, "--resume", help="continue the run with this MLflow id from its "
                                         "last saved epoch (after a crash or kill), in the same run")) -> None:
        """Train a recipe. Extra arguments override the YAML, LightningCLI style: --trainer.max_epochs 5."""
        from fbrec.cli.training import run_training
        from fbrec.errors import ConfigError

        if (config is None) == (resume is None):
            raise ConfigError("pass exactly one of --config and --resume", rule="a run starts from a recipe or "
                              "continues a run", fix="fbrec train --config bpr_synthetic, or --resume RUN_ID")
        run_training(config, list(ctx.args), resume=resume)

    @app.command()
    def evaluate(run: str = typer.Option(..., "--run", help="MLflow run id printed by `fbrec train`"),
                 stage: str = typer.Option("test", help="test or val"),
                 k: list[int] = typer.Option([10, 20, 50], "--k", help="cut-offs (repeat --k)"),
                 out: Path = typer.Option(None, help="also write the report CSV here")) -> None:
        """Full-ranking evaluation of a trained run's embeddings, with slices and 95% CIs; logged to the run."""
        from fbrec._atomic import new_file_path, write_new_file
        from fbrec.errors import ConfigError
        from fbrec.evaluation import embedding_scorer, evaluate_scores, report
        from fbrec.tracking import default_tracking_uri, log_report, read_run_artifacts

        if stage not in ("test", "val"):
            raise ConfigError(f"stage {stage!r}", rule="stage is 'test' or 'val'", fix="pass --stage test")
        if out:
            new_file_path(out)   # refuse before the work, not after
        art = read_run_artifacts(run)
        dm = _datamodule(art.data_args)
        evaluator = evaluate_scores(embedding_scorer(art.user_embeddings, art.item_embeddings), dm.eval_set(stage), k)
        frame = evaluator.frame()
        summary, rep = evaluator.summary(frame), report(frame)
        log_report(run, f"evaluate_{stage}", summary, rep, frame, default_tracking_uri(), main_k=min(k))
        console.print(summary_table(f"{stage} metrics of run {run}", summary, sorted(set(k))))
        if out:
            write_new_file(out, rep.write_csv)
            console.print(f"wrote {out}")

    @app.command()
    def export(run: str = typer.Option(..., "--run", help="MLflow run id"),
               out: Path = typer.Option(..., "--out", help="bundle directory to create"),
               index: str = typer.Option("Flat", "--index", help='faiss index_factory string: "Flat", '
                                         '"IVF256,Flat", "HNSW32", "IVF256,PQ16"'),
               search_params: str = typer.Option("", help='e.g. "nprobe=16" or "efSearch=128"'),
               overwrite: bool = typer.Option(False, help="replace an existing bundle")) -> None:
        """Write a bundle (embeddings, id maps, FAISS index, manifest) and log it to the run."""
        from fbrec.bundle import write_bundle
        from fbrec.tracking import default_tracking_uri, log_bundle, read_run_artifacts

        art = read_run_artifacts(run)
        dm = _datamodule(art.data_args)
        seen = dm.data.train
        if dm.data.val.height:
            import polars as pl
            seen = pl.concat([dm.data.train.select("user_index", "item_index"),
                              dm.data.val.select("user_index", "item_index")])
        manifest = write_bundle(out, user_embeddings=art.user_embeddings, item_embeddings=art.item_embeddings,
                                user_map=dm.data.user_map, item_map=dm.data.item_map, seen=seen, model=art.model,
                                index_factory=index, search_params=search_params, run_id=run,
                                dataset=dm.data.name, overwrite=overwrite, items=dm.data.items,
                                levels=dm.level_names(), user_tower=_user_tower(art.files))
        log_bundle(run, out, default_tracking_uri())
        console.print(f"wrote bundle {out}: {manifest.num_items} items x {manifest.embedding_dim} dims, index "
                      f"{manifest.index_factory!r}, recall@{manifest.recall_k} vs exact {manifest.recall_at_k:.4f}")

    @app.command()
    def retrieve(bundle: Path = typer.Option(..., "--bundle", help="bundle directory"),
                 user: str = typer.Option(..., "--user", help="raw user id"),
                 k: int = typer.Option(10, "--k"), exact: bool = typer.Option(False, help="exact search"),
                 include_seen: bool = typer.Option(False, help="do not filter the user's seen items")) -> None:
        """Top-k items for a user from the bundle's FAISS index."""
        from fbrec.bundle import Bundle

        b = Bundle(bundle)
        indices, scores = b.recommend_indices(user, k, exclude_seen=not include_seen, exact=exact)
        recs = list(zip(b.item_map.decode(indices), scores.tolist(), strict=True))
        shown = [c for c in ("title", "name", "genres", "category", "brand", "year") if b.items is not None
                 and c in b.items.columns][:3]
        table = Table("rank", "item", *shown, "score", title=f"top-{k} for user {user}")
        attrs = b.item_attributes(indices)
        for r, ((item, score), attr) in enumerate(zip(recs, attrs, strict=True), 1):
            table.add_row(str(r), str(item), *[_cell(attr.get(c)) for c in shown], f"{score:.4f}")
        console.print(table)

    @app.command()
    def demo(out: Path = typer.Option(Path("demo_bundle"), help="where to write the bundle"),
             epochs: int = typer.Option(10, help="training epochs")) -> None:
        """Train MF-BPR on the synthetic default, print test metrics and the run, export a bundle, retrieve."""
        from fbrec.bundle import Bundle
        from fbrec.cli.training import run_training

        run_id = run_training("bpr_synthetic", [f"--trainer.max_epochs={epochs}"])
        if run_id is None:
            return
        export(run=run_id, out=out, index="HNSW32", search_params="efSearch=64", overwrite=True)
        b = Bundle(out)
        first = b.user_map.raw[0]
        retrieve(bundle=out, user=str(first), k=10, exact=False, include_seen=False)
