"""`fbrec train|evaluate|export|retrieve|demo`."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

console = Console()


def _summary_table(title: str, summary: dict[str, float], ks=(10,)) -> Table:
    table = Table("metric", *[f"@{k}" for k in ks], title=title)
    for metric in ("recall", "ndcg", "map", "mrr", "hit_rate", "precision"):
        table.add_row(metric, *[f"{summary.get(f'{metric}_at_{k}', float('nan')):.4f}" for k in ks])
    if "auc" in summary:
        table.add_row("auc / gauc", f"{summary['auc']:.4f} / {summary['gauc']:.4f}", *[""] * (len(ks) - 1))
    return table


def run_training(config: str, overrides: list[str]) -> str | None:
    """Train, select the best epoch on validation, test it, log everything; returns the MLflow run id (rank 0)."""
    import fbrec
    from fbrec.cli.train import build_cli, resolve_config
    from fbrec.evaluation import report
    from fbrec.tracking import default_tracking_uri, log_model_artifacts, log_report, log_table, make_logger

    path = resolve_config(config)
    cli = build_cli(["--config", str(path), *overrides])
    trainer, model, dm = cli.trainer, cli.model, cli.datamodule
    recipe = path.parent.name if path.name == "config.yaml" else path.stem
    uri = default_tracking_uri()
    tags = {"recipe": recipe, "model": type(model).__name__, "dataset": dm.dataset_name,
            "fbrec_version": fbrec.__version__, "world_size": str(trainer.world_size)}
    logger = make_logger(cli.config["experiment"], cli.config["run_name"] or f"{recipe}", tags, uri)
    trainer.loggers = [logger]
    run_id = logger.run_id if trainer.global_rank == 0 else None
    ckpt = trainer.checkpoint_callback
    if ckpt is not None:
        ckpt.dirpath = str(Path(uri.removeprefix("sqlite:///")).parent / "checkpoints" / (run_id or "rank")) \
            if uri.startswith("sqlite:///") else str(Path("checkpoints") / (run_id or "rank"))
        if ckpt.monitor is None and dm.data.val.height:
            ckpt.monitor = f"val/ndcg_at_{model.ks[0]}"
    logger.log_hyperparams({"recipe": recipe, "data": dict(cli.config["data"]),
                            "trainer.max_epochs": cli.config["trainer"]["max_epochs"]})
    trainer.fit(model, datamodule=dm)
    best = ckpt.best_model_path if ckpt is not None and ckpt.best_model_path else None
    trainer.test(model, datamodule=dm, ckpt_path=best, verbose=False)
    side_by_side = None
    if getattr(dm, "propensity", None) is not None and dm.data.val.height:
        # the same checkpoint on validation (MNAR clicks, naive and SNIPS-corrected) next to the test report
        trainer.validate(model, datamodule=dm, ckpt_path=best, verbose=False)
        side_by_side = model.last_evaluators["val"].summary()
    user_emb, item_emb = model.export_embeddings(dm.num_users, dm.num_items)   # collective when sharded
    if trainer.global_rank != 0:
        return None
    summaries = {}
    for key, evaluator in model.last_evaluators.items():   # "test", and on ordinal data "test/level_<name>"
        if key == "test" or key.startswith("test/level_"):
            frame = evaluator.frame()
            summaries[key] = evaluator.summary(frame)
            log_report(run_id, key.replace("/", "_"), summaries[key], report(frame), frame, uri, main_k=model.ks[0])
    summary = summaries["test"]
    if side_by_side is not None:
        table = biased_vs_unbiased(side_by_side, summary, model.ks)
        log_table(run_id, table, "report/biased_vs_unbiased.csv", uri)
        console.print(_frame_table("validation (MNAR: naive vs SNIPS) and test, best checkpoint", table))
    config_yaml = cli.parser.dump(cli.config, skip_none=False, skip_check=True)
    log_model_artifacts(run_id, model=type(model).__name__, data_args=dict(cli.config["data"]),
                        user_embeddings=user_emb, item_embeddings=item_emb, dataset_card=dm.data.card(),
                        config_yaml=config_yaml, tracking_uri=uri)
    if best:
        logger.experiment.set_tag(run_id, "best_checkpoint", best)
    if hasattr(model, "sharding_plan"):
        logger.experiment.set_tag(run_id, "sharding_plan", str(model.sharding_plan()))
    logger.finalize("success")
    console.print(_summary_table(f"test metrics: {recipe} on {dm.dataset_name}", summary, model.ks))
    console.print(f"MLflow run {run_id} in {uri}  (view: mlflow ui --backend-store-uri {uri})")
    return run_id


def biased_vs_unbiased(val: dict[str, float], test: dict[str, float], ks):
    """metric | val_naive (MNAR clicks) | val_snips (IPS-corrected) | test, as a polars frame."""
    import polars as pl

    rows = []
    for metric in ("dcg", "ndcg", "recall", "map"):
        for k in ks:
            key = f"{metric}_at_{k}"
            rows.append({"metric": key, "val_naive": val.get(key), "val_snips": val.get(f"snips/{key}"),
                         "test": test.get(key)})
    return pl.DataFrame(rows)


def _frame_table(title: str, frame) -> Table:
    table = Table(*frame.columns, title=title)
    for row in frame.iter_rows():
        table.add_row(*[f"{v:.4f}" if isinstance(v, float) else str(v) for v in row])
    return table


def _datamodule(data_args: dict):
    from fbrec.data.datamodule import FeedbackDataModule

    return FeedbackDataModule(**data_args)


def register(app: typer.Typer) -> None:
    @app.command(context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
    def train(ctx: typer.Context,
              config: str = typer.Option(..., "--config", "-c", help="models/<recipe>/config.yaml or a recipe name")
              ) -> None:
        """Train a recipe. Extra arguments override the YAML, LightningCLI style: --trainer.max_epochs 5."""
        run_training(config, list(ctx.args))

    @app.command()
    def evaluate(run: str = typer.Option(..., "--run", help="MLflow run id printed by `fbrec train`"),
                 stage: str = typer.Option("test", help="test or val"),
                 k: list[int] = typer.Option([10, 20, 50], "--k", help="cut-offs (repeat --k)"),
                 out: Path = typer.Option(None, help="also write the report CSV here")) -> None:
        """Full-ranking evaluation of a trained run's embeddings, with slices and 95% CIs; logged to the run."""
        from fbrec.errors import ConfigError
        from fbrec.evaluation import embedding_scorer, evaluate_scores, report
        from fbrec.tracking import default_tracking_uri, log_report, read_run_artifacts

        if stage not in ("test", "val"):
            raise ConfigError(f"stage {stage!r}", rule="stage is 'test' or 'val'", fix="pass --stage test")
        art = read_run_artifacts(run)
        dm = _datamodule(art.data_args)
        evaluator = evaluate_scores(embedding_scorer(art.user_embeddings, art.item_embeddings), dm.eval_set(stage), k)
        frame = evaluator.frame()
        summary, rep = evaluator.summary(frame), report(frame)
        log_report(run, f"evaluate_{stage}", summary, rep, frame, default_tracking_uri(), main_k=min(k))
        console.print(_summary_table(f"{stage} metrics of run {run}", summary, sorted(set(k))))
        if out:
            rep.write_csv(out)
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
                                dataset=dm.dataset_name, overwrite=overwrite)
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
        recs = b.recommend(user, k, exclude_seen=not include_seen, exact=exact)
        table = Table("rank", "item", "score", title=f"top-{k} for user {user}")
        for r, (item, score) in enumerate(recs, 1):
            table.add_row(str(r), str(item), f"{score:.4f}")
        console.print(table)

    @app.command()
    def demo(out: Path = typer.Option(Path("demo_bundle"), help="where to write the bundle"),
             epochs: int = typer.Option(10, help="training epochs")) -> None:
        """Train MF-BPR on the synthetic default, print test metrics and the run, export a bundle, retrieve."""
        from fbrec.bundle import Bundle

        run_id = run_training("bpr_synthetic", [f"--trainer.max_epochs={epochs}"])
        if run_id is None:
            return
        export(run=run_id, out=out, index="HNSW32", search_params="efSearch=64", overwrite=True)
        b = Bundle(out)
        first = b.user_map.raw[0]
        retrieve(bundle=out, user=str(first), k=10, exact=False, include_seen=False)
