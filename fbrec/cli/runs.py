"""`fbrec train|evaluate|export|retrieve|simulate|demo`: each a call into fbrec.api, then the result printed."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from fbrec.cli.display import console, recommendations_table, say, summary_table, train_report

app = typer.Typer()
RunId = Annotated[str, typer.Option("--run", help="MLflow run id printed by `fbrec train`")]


@app.command(context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
def train(ctx: typer.Context,
          config: Annotated[str, typer.Option("--config", "-c", help="models/<recipe>/config.yaml or a recipe name")
                            ] = None,
          log: Annotated[Path, typer.Option("--log", help="train on your own click log (parquet, CSV or NDJSON with "
                                            "user and item columns) instead of the recipe's dataset")] = None,
          resume: Annotated[str, typer.Option("--resume", help="continue the run with this MLflow id from its last "
                                              "saved epoch (after a crash or kill), in the same run")] = None,
          refit: Annotated[bool, typer.Option("--refit", help="then train again on training + validation pairs for "
                                              "the epoch count validation chose, and test and export that model (a "
                                              "second MLflow run, tagged refit_of)")] = False,
          register: Annotated[str, typer.Option("--register", help="also register the run's MLflow model (the "
                                                "bundle as a pyfunc) under this name in the MLflow model registry")
                              ] = None) -> None:
    """Train a recipe. Extra arguments override the YAML, LightningCLI style: --trainer.max_epochs 5."""
    import fbrec.api
    from fbrec.errors import ConfigError

    if config is None and log is not None and resume is None:
        config = fbrec.api.DEFAULT_RECIPE   # your own log: the default recipe's model on your data
    if (config is None) == (resume is None):
        raise ConfigError("pass exactly one of --config and --resume", rule="a run starts from a recipe or "
                          "continues a run", fix=f"fbrec train --config {fbrec.api.DEFAULT_RECIPE}, or --resume RUN_ID")
    result = fbrec.api.train(config, list(ctx.args), log=log, resume=resume, refit=refit, register=register,
                             progress=say)
    if result is not None and result.outcome is not None:
        train_report(result.outcome)


@app.command()
def evaluate(run: RunId, stage: Annotated[str, typer.Option(help="test or val")] = "test",
             k: Annotated[list[int], typer.Option("--k", help="cut-offs (repeat --k)")] = [10, 20, 50],  # noqa: B006
             out: Annotated[Path, typer.Option(help="also write the report CSV here (a new file)")] = None) -> None:
    """Full-ranking evaluation of a trained run's embeddings, with slices and 95% CIs; logged to the run."""
    import fbrec.api

    result = fbrec.api.evaluate(run, stage=stage, k=k, out=out)
    console.print(summary_table(f"{stage} metrics of run {run}", result.summary, sorted(set(k))))
    if out:
        say(f"wrote {out}")


@app.command()
def export(run: RunId, out: Annotated[Path, typer.Option("--out", help="bundle directory to create")],
           index: Annotated[str, typer.Option("--index", help='faiss index_factory string: "Flat", "IVF256,Flat", '
                                              '"HNSW32", "IVF256,PQ16"')] = "Flat",
           search_params: Annotated[str, typer.Option(help='e.g. "nprobe=16" or "efSearch=128"')] = "",
           overwrite: Annotated[bool, typer.Option(help="replace a bundle an earlier export wrote there")] = False
           ) -> None:
    """Write a bundle (embeddings, id maps, FAISS index, manifest) and log it to the run."""
    import fbrec.api

    m = fbrec.api.export(run, out, index=index, search_params=search_params, overwrite=overwrite)
    say(f"wrote bundle {out}: {m.num_items} items x {m.embedding_dim} dims, index {m.index_factory!r}, "
        f"recall@{m.recall_k} vs exact {m.recall_at_k:.4f}")


@app.command()
def retrieve(bundle: Annotated[Path, typer.Option("--bundle", help="bundle directory")],
             user: Annotated[str, typer.Option("--user", help="raw user id")],
             k: Annotated[int, typer.Option("--k")] = 10,
             exact: Annotated[bool, typer.Option(help="exact search")] = False,
             include_seen: Annotated[bool, typer.Option(help="do not filter the user's seen items")] = False,
             command: Annotated[str, typer.Option(help='what the user asks for, in words: "no horror, more 90s '
                                                       'comedies" (parsed offline over the bundle\'s attributes)')
                                ] = None,
             preferences: Annotated[str, typer.Option(help='structured preferences as JSON, e.g. '
                                                           '\'{"exclude": {"genres": ["Horror"]}}\'')] = None) -> None:
    """Top-k items for a user from the bundle's FAISS index, optionally under stated preferences; an unknown or
    cold user gets the most popular items, as from the service."""
    import json

    import fbrec.api

    recs = fbrec.api.retrieve(bundle, user, k, exact=exact, exclude_seen=not include_seen, command=command,
                              preferences=preferences)
    if command:
        say(f"preferences: {json.dumps(recs.preferences)}")
    console.print(recommendations_table(recs))


@app.command()
def simulate(run: RunId, rounds: Annotated[int, typer.Option(help="rounds per session")] = 5,
             slate: Annotated[int, typer.Option(help="items shown per round")] = 10,
             users: Annotated[int, typer.Option(help="test users simulated (a seeded sample)")] = 200,
             seed: Annotated[int, typer.Option(help="seed of the user sample and the simulator")] = 0,
             policy: Annotated[list[str], typer.Option("--policy", help="same | pages | adapts | reward (repeat)")
                               ] = ["same", "pages", "adapts"],  # noqa: B006
             reward_model: Annotated[Path, typer.Option("--reward-model", help="a reward-model folder trained for "
                                                        "this run (`fbrec llm reward-model train --run RUN`), for "
                                                        "--policy reward (re-ranks by P[positive])")] = None,
             simulator: Annotated[str, typer.Option(help="oracle (held-out truth) | learned (a click model fitted "
                                                        "on training feedback) | llm (a language model)")] = "oracle",
             backend: Annotated[str, typer.Option(help="llm: openai | hf")] = "openai",
             base_url: Annotated[str, typer.Option(help="llm/openai: server URL (or FBREC_LLM_BASE_URL)")] = None,
             model: Annotated[str, typer.Option(help="llm: model name (openai; or FBREC_LLM_MODEL) or an "
                                                    "installed model (hf, default smollm2)")] = None,
             timeout: Annotated[float, typer.Option(help="llm/openai: seconds one request may take")] = 120.0
             ) -> None:
    """Multi-round evaluation with simulated users: per-round hit rate, recall, NDCG and pass rate, session NUM and
    sDCG; logged to the run under simulate/ (oracle), simulate_learned/ or simulate_llm/."""
    import fbrec.api

    options = {"openai": {"base_url": base_url, "model": model, "timeout": timeout},
               "hf": {"model": model}}.get(backend, {})
    result = fbrec.api.simulate(run, rounds=rounds, slate=slate, users=users, seed=seed, policies=policy,
                                reward_model=reward_model, simulator=simulator, backend=backend,
                                backend_options=options)
    what = {"oracle": "grounded oracle on held-out items, not a model of users",
            "learned": "clicks drawn from a WMF fitted on the training split, template words",
            "llm": f"a language model through the {backend} backend"}.get(simulator, simulator)
    table = Table("policy", "round", "hit rate", f"recall@{slate}", f"ndcg@{slate}", "pass rate",
                  title=f"{users} simulated users x {rounds} rounds (simulator: {what})")
    for row in result.per_round.iter_rows(named=True):
        table.add_row(row["policy"], str(row["round"]), f"{row['hit_rate']:.3f}", f"{row['recall']:.3f}",
                      f"{row['ndcg']:.3f}", f"{row['pass_rate']:.3f}")
    console.print(table)
    for (name,), g in result.per_session.group_by("policy", maintain_order=True):
        say(f"{name}: NUM {g['num'].mean():.3f}, sDCG {g['sdcg'].mean():.3f}")
    if result.examples:
        e = result.examples[0]
        say(f"example (user index {e['user']}, round {e['round']}): clicked {e['clicked']}; says: "
            f"{e['command'] or '(nothing)'}")


@app.command()
def demo(out: Annotated[Path, typer.Option(help="where to write the bundle")] = Path("demo_bundle"),
         epochs: Annotated[int, typer.Option(help="training epochs (default: the recipe's)")] = None) -> None:
    """Train the default recipe (WMF by ALS) on the synthetic default, print test metrics and the run, export a
    bundle, retrieve."""
    import fbrec.api

    result = fbrec.api.demo(out, epochs=epochs, progress=say)
    if result is None:
        return
    train_report(result.train.outcome)
    m = result.manifest
    say(f"wrote bundle {out}: {m.num_items} items x {m.embedding_dim} dims, index {m.index_factory!r}, "
        f"recall@{m.recall_k} vs exact {m.recall_at_k:.4f}")
    console.print(recommendations_table(result.recommendations))
