"""The CLI end to end on small synthetic data, and user errors as one line + hint with exit code 2."""

from __future__ import annotations

import contextlib
import logging
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from fbrec.cli.main import main

TINY = """
seed_everything: 0
trainer: {max_epochs: 3, devices: 1}
model:
  class_path: fbrec.models.MatrixFactorizationModule
  init_args: {embedding_dim: 8, loss: bpr, learning_rate: 0.1, ks: [5, 10]}
data:
  source: {dataset: synthetic, options: {num_users: 120, num_items: 80, sessions_per_user: 12, seed: 0}}
  sampling: {batch_size: 256}
"""


@pytest.fixture()
def tiny_config(tmp_path) -> Path:
    path = tmp_path / "tiny.yaml"
    path.write_text(TINY)
    return path


def _run(args, capsys) -> tuple[int, str]:
    # Lightning's (and others') loggers keep the stream of the test that imported them; point them at this test's
    loggers = [logging.getLogger(name) for name in list(logging.root.manager.loggerDict)] + [logging.getLogger()]
    for logger in loggers:
        for handler in getattr(logger, "handlers", ()):
            if isinstance(handler, logging.StreamHandler) and getattr(handler.stream, "closed", False):
                handler.stream = sys.stderr   # a capture of an earlier test, closed since
    try:
        main(args)
        code = 0
    except SystemExit as exc:
        code = exc.code
    captured = capsys.readouterr()
    return code, captured.out + captured.err


@pytest.mark.slow
def test_train_evaluate_export_retrieve_from_the_command_line(mlflow_store, tiny_config, tmp_path, capsys):
    env_cmd = [sys.executable, "-m", "fbrec.cli.main"]
    train = subprocess.run([*env_cmd, "train", "--config", str(tiny_config), "--trainer.enable_progress_bar=false"],
                           capture_output=True, text=True, cwd=tmp_path)
    assert train.returncode == 0, train.stderr[-3000:]
    run_id = train.stdout.split("MLflow run ")[1].split()[0]
    assert "ndcg" in train.stdout

    from mlflow.tracking import MlflowClient
    client = MlflowClient(mlflow_store)
    run = client.get_run(run_id)
    assert run.data.tags["recipe"] == "tiny" and "test/ndcg_at_5" in run.data.metrics
    steps = [m.step for m in client.get_metric_history(run_id, "val/ndcg_at_5")]
    assert len(steps) == 3 and len(set(steps)) == 3 and min(steps) > 0, "the optimizer's steps advance global_step"
    # a checkpoint after every validated epoch: the last one to resume from, the best one for the test
    import json
    last = json.loads((tmp_path / "mlruns" / "checkpoints" / run_id / "last.ckpt" / "lightning_meta.json").read_text())
    assert last["epoch"] == 2 and run.data.tags["best_epoch"] in {"0", "1", "2"}
    assert "best epoch on validation" in train.stdout
    noise = [line for line in train.stderr.splitlines() if "Warning" in line or "WARNING" in line or "Tip:" in line]
    assert noise == [], "a one-process run prints no third-party warnings"
    assert "val/eval_seconds" in run.data.metrics and "test/eval_seconds" in run.data.metrics
    # per-stage wall time in the run and one console line; validation is the sum of the epochs' evaluations
    times = {k.removeprefix("time/"): v for k, v in run.data.metrics.items() if k.startswith("time/")}
    assert set(times) == {f"{s}_seconds" for s in ("prepare", "train", "validation", "test", "export")}
    val = sum(m.value for m in client.get_metric_history(run_id, "val/eval_seconds"))
    assert times["validation_seconds"] == pytest.approx(val, rel=1e-6)
    assert times["test_seconds"] >= run.data.metrics["test/eval_seconds"]
    assert "time: config + read + prepare data" in train.stdout and "validation (3x)" in train.stdout
    import re
    assert re.search(r"val of epoch 2: \d+ users ranked over \d+ items in [\d.]+ s", train.stdout + train.stderr), \
        "the console says what each validation cost"
    artifacts = {a.path for a in client.list_artifacts(run_id)} | {a.path for a in client.list_artifacts(run_id, "test")}
    assert {"config.yaml", "test/test_report.csv", "test/test_metric_at_k.png", "test/test_slices.png"} <= artifacts

    evaluate = subprocess.run([*env_cmd, "evaluate", "--run", run_id, "--k", "5"], capture_output=True, text=True,
                              cwd=tmp_path)
    assert evaluate.returncode == 0, evaluate.stderr[-2000:]
    test_ndcg = run.data.metrics["test/ndcg_at_5"]
    assert f"{test_ndcg:.4f}" in evaluate.stdout, "offline evaluation reproduces the logged test metric"

    bundle = tmp_path / "bundle"
    export = subprocess.run([*env_cmd, "export", "--run", run_id, "--out", str(bundle), "--index", "HNSW16"],
                            capture_output=True, text=True, cwd=tmp_path)
    assert export.returncode == 0, export.stderr[-2000:]
    assert (bundle / "manifest.json").exists()
    assert (bundle / "items.parquet").exists(), "the dataset's item attributes travel with the bundle"
    assert any(a.path == "bundle" for a in client.list_artifacts(run_id))

    # the report goes to a new file only: an existing file or a folder is refused, untouched
    (tmp_path / "mine.csv").write_text("my numbers")
    for out in (tmp_path / "mine.csv", tmp_path):
        code, output = _run(["evaluate", "--run", run_id, "--k", "5", "--out", str(out)], capsys)
        assert code == 2 and "already exists" in output, output
    assert (tmp_path / "mine.csv").read_text() == "my numbers"
    code, output = _run(["evaluate", "--run", run_id, "--k", "5", "--out", str(tmp_path / "report.csv")], capsys)
    assert code == 0 and "ndcg_at_5" in (tmp_path / "report.csv").read_text(), output

    retrieve = subprocess.run([*env_cmd, "retrieve", "--bundle", str(bundle), "--user", "0", "--k", "3"],
                              capture_output=True, text=True, cwd=tmp_path)
    assert retrieve.returncode == 0 and "top-3 for user 0" in retrieve.stdout, retrieve.stderr


BAD_COMMANDS = [
    (["train", "--config", "bpr_movielens10k"], r"unknown recipe 'bpr_movielens10k'.*did you mean 'bpr_movielens100k'"),
    (["train", "--config", "missing.yaml"], r"config 'missing.yaml' does not exist"),
    (["train", "--config", "bpr_synthetic", "--model.init_args.embeding_dim", "8"],
     r"Option 'embeding_dim' is not accepted.*did you mean 'embedding_dim'"),
    (["train", "--config", "bpr_synthetic", "--data.batch_sise", "8"], r"batch_sise.*did you mean 'batch_size'"),
    (["train", "--config", "bpr_synthetic", "--data.dataset", "movielens"], r"unknown dataset 'movielens'"),
    (["data", "describe", "coats"], r"unknown dataset 'coats'.*did you mean 'coat'"),
    (["evaluate", "--run", "0123"], r"run '0123' is not in the tracking store"),
    (["evaluate", "--run", "0123", "--stage", "dev"], r"stage 'dev'"),
    (["retrieve", "--bundle", "nowhere", "--user", "1"], r"'nowhere' is not a bundle"),
    (["export"], r"Missing option '--run'"),
    (["retrieve", "--bundle", "x", "--user", "1", "--k", "ten"], r"Invalid value for '--k'"),
    (["train", "--config", "two_tower_synthetic", "--model.init_args.temperature", "0"],
     r"temperature=0.0 is out of range.*hint: pass a temperature > 0"),
    (["train", "--config", "two_tower_synthetic", "--model.init_args.ssl", "cfm", "--model.init_args.mask_features",
      "5", "--trainer.max_epochs", "1"], r"mask_features=5 with 5 item features.*between 1 and 4"),
]


@pytest.mark.parametrize("args,pattern", BAD_COMMANDS, ids=[" ".join(a[:3]) for a, _ in BAD_COMMANDS])
def test_user_errors_print_one_line_and_a_hint_and_exit_2(args, pattern, capsys, mlflow_store, tmp_path):
    code, output = _run(args, capsys)
    assert code == 2, output
    assert "Traceback" not in output
    error_lines = [line for line in output.splitlines() if line.startswith("error:")]
    assert len(error_lines) == 1, output
    import re
    assert re.search(pattern, output.replace("\n", " ")), output
    assert not list(Path(tmp_path).glob("bundle*")), "nothing written on error"


def test_a_k_beyond_the_catalogue_is_refused_before_a_run_exists(capsys, mlflow_store):
    from mlflow.tracking import MlflowClient

    code, output = _run(["train", "--config", "popularity_coat", "--model.init_args.ks", "[5, 5000]"], capsys)
    assert code == 2 and "error: k=5000 exceeds the catalogue of 300 items" in output, output
    assert "lower the largest of model.init_args.ks" in output
    client = MlflowClient(mlflow_store)
    assert [r for e in client.search_experiments() for r in client.search_runs([e.experiment_id])] == []


def test_data_list_shows_every_registered_dataset(capsys):
    code, output = _run(["data", "list"], capsys)
    assert code == 0
    for name in ("synthetic", "movielens-100k", "coat", "taobao-userbehavior-sample", "amazon-scientific-text"):
        assert name in output


TINY_TWO_TOWER = """
seed_everything: 0
trainer: {max_epochs: 2, devices: 1}
model:
  class_path: fbrec.models.TwoTowerModule
  init_args: {embedding_dim: 8, hidden_dims: [16], output_dim: 8, ssl: cfm, ssl_batch_size: 32, ks: [5, 10]}
data:
  source: {dataset: synthetic, options: {num_users: 150, num_items: 120, sessions_per_user: 12, seed: 0}}
  sampling: {batch_size: 128}
  features: {item: [{column: category}, {column: subcategory}, {column: brand}, {column: text, kind: words}]}
"""


@pytest.mark.slow
def test_ssl_two_tower_recipe_logs_head_tail_cold_reports_and_serves_its_item_tower(mlflow_store, tmp_path):
    import numpy as np
    import polars as pl
    from mlflow.tracking import MlflowClient

    from fbrec.bundle import Bundle

    config = tmp_path / "two_tower_tiny.yaml"
    config.write_text(TINY_TWO_TOWER)
    cmd = [sys.executable, "-m", "fbrec.cli.main"]
    train = subprocess.run([*cmd, "train", "--config", str(config), "--trainer.enable_progress_bar=false"],
                           capture_output=True, text=True, cwd=tmp_path)
    assert train.returncode == 0, train.stderr[-3000:]
    run_id = train.stdout.split("MLflow run ")[1].split()[0]
    client = MlflowClient(mlflow_store)
    metrics = client.get_run(run_id).data.metrics
    assert {"test/head/recall_at_10", "test/tail/recall_at_10", "test/cold/recall_at_10",
            "train/ssl_loss"} <= set(metrics)
    report = pl.read_csv(client.download_artifacts(run_id, "test/test_report.csv", str(tmp_path)))
    assert {"all", "head", "tail", "cold"} <= set(report["slice"].to_list())

    bundle = tmp_path / "bundle"
    export = subprocess.run([*cmd, "export", "--run", run_id, "--out", str(bundle), "--index", "Flat"],
                            capture_output=True, text=True, cwd=tmp_path)
    assert export.returncode == 0, export.stderr[-2000:]
    served = Bundle(bundle)
    user = served.user_map.decode(np.array([0]))[0]
    through_index = served.recommend(user, 5)
    exact = served.recommend(user, 5, exact=True)
    assert [i for i, _ in through_index] == [i for i, _ in exact], "the item tower's Flat index is exact"
    assert np.isfinite([s for _, s in through_index]).all()


def test_refit_trains_again_on_train_plus_validation_for_the_chosen_epoch_count(mlflow_store, tiny_config, capsys):
    from mlflow.tracking import MlflowClient

    from fbrec.data.datamodule import FeedbackDataModule

    code, out = _run(["train", "--config", str(tiny_config), "--refit", "--trainer.enable_progress_bar=false"],
                     capsys)
    assert code == 0, out
    client = MlflowClient(mlflow_store)
    runs = client.search_runs(client.get_experiment_by_name("fbrec").experiment_id, order_by=["start_time ASC"])
    selection, refit = runs[-2], runs[-1]
    best = int(selection.data.tags["best_epoch"])
    assert refit.data.tags["refit_of"] == selection.info.run_id
    assert refit.data.tags["refit_epochs"] == str(best + 1) and f"for {best + 1} epochs" in out
    assert refit.data.tags["best_epoch"] == str(best)                 # trained exactly that many epochs
    assert "val/ndcg_at_5" not in refit.data.metrics and "test/ndcg_at_5" in refit.data.metrics
    opts = {"num_users": 120, "num_items": 80, "sessions_per_user": 12, "seed": 0}
    plain = FeedbackDataModule("synthetic", dataset_options=opts, seed=0).data
    merged = FeedbackDataModule("synthetic", dataset_options=opts, seed=0, merge_validation=True).data
    assert merged.train.height == plain.train.height + plain.val.height and merged.val.height == 0
    assert merged.test.equals(plain.test)


def test_refit_needs_a_validation_split(mlflow_store, tmp_path, capsys):
    config = tmp_path / "noval.yaml"
    config.write_text(TINY + "  val_fraction: 0.0\n")
    code, out = _run(["train", "--config", str(config), "--refit", "--trainer.enable_progress_bar=false"], capsys)
    assert code != 0 and "has no epoch chosen on validation" in out


def test_sampled_metrics_are_asked_for_named_so_and_never_reach_the_test(mlflow_store, tiny_config, capsys):
    from mlflow.tracking import MlflowClient

    code, out = _run(["train", "--config", str(tiny_config), "--data.sampled_metrics=10",
                      "--trainer.enable_progress_bar=false"], capsys)
    assert code == 0, out
    client = MlflowClient(mlflow_store)
    metrics = client.search_runs(client.get_experiment_by_name("fbrec").experiment_id)[0].data.metrics
    assert "val_sampled10/ndcg_at_5" in metrics and not any(k.startswith("val/") for k in metrics)
    assert "sampled metrics, not full ranking" in out and "chosen on val_sampled10/ndcg_at_5" in out
    # among ~10 candidates a hit is far likelier than among the whole catalogue; the test ranks every item
    assert metrics["val_sampled10/recall_at_5"] > metrics["test/recall_at_5"]


def test_validation_on_a_user_sample_says_so_in_its_metric_names(mlflow_store, tiny_config, capsys):
    from mlflow.tracking import MlflowClient

    from fbrec.data.datamodule import FeedbackDataModule

    code, out = _run(["train", "--config", str(tiny_config), "--data.val_users=20",
                      "--trainer.enable_progress_bar=false"], capsys)
    assert code == 0, out
    client = MlflowClient(mlflow_store)
    run = client.search_runs(client.get_experiment_by_name("fbrec").experiment_id)[0]
    metrics = run.data.metrics
    assert "val_users20/ndcg_at_5" in metrics and not any(k.startswith("val/") for k in metrics)
    assert "best_val_users20_ndcg_at_5" in run.data.tags and "chosen on val_users20/ndcg_at_5" in out
    opts = {"num_users": 120, "num_items": 80, "sessions_per_user": 12, "seed": 0}
    dm = FeedbackDataModule("synthetic", dataset_options=opts, seed=0, val_users=20)
    sample = dm.eval_users("val")
    assert len(sample) == 20 and set(sample) <= set(dm.eval_set("val").users)
    np.testing.assert_array_equal(sample, FeedbackDataModule("synthetic", dataset_options=opts, seed=0,
                                                             val_users=20).eval_users("val"))
    assert len(dm.eval_users("test")) == len(dm.eval_set("test").users)     # the test ranks every user


def test_verbose_leaves_third_party_warnings_alone(monkeypatch):
    import warnings

    from fbrec.api.config import quiet_third_parties

    with warnings.catch_warnings():
        monkeypatch.setenv("FBREC_VERBOSE", "1")
        before = list(warnings.filters)
        quiet_third_parties()
        assert warnings.filters == before, "--verbose: nothing silenced"
        monkeypatch.delenv("FBREC_VERBOSE")
        quiet_third_parties()
        assert len(warnings.filters) > len(before), "by default the known third-party noise is filtered"
    monkeypatch.setenv("FBREC_VERBOSE", "")   # restored after the test: --verbose must not leak into others
    with contextlib.suppress(SystemExit):
        main(["--verbose", "--help"])
    assert os.environ.get("FBREC_VERBOSE") == "1"


@pytest.mark.slow
def test_fbrec_demo_runs_through_the_entry_point(tmp_path, shared_data):
    """The README's first command, as `make demo` runs it (the installed `fbrec` script), one epoch."""
    fbrec = Path(sys.executable).parent / "fbrec"
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
    out = subprocess.run([str(fbrec), "demo", "--epochs", "1", "--out", str(tmp_path / "b")], capture_output=True,
                         text=True, cwd=tmp_path, env=env, timeout=600)
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-3000:]
    assert "Traceback" not in out.stderr
    assert "test metrics: wmf_als_synthetic on synthetic" in out.stdout and "MLflow run" in out.stdout
    assert "index 'HNSW32'" in out.stdout and "top-10 for user" in out.stdout
    assert (tmp_path / "b" / "manifest.json").is_file()


def test_run_last_is_the_most_recent_training_run(mlflow_store, tiny_config, tmp_path, capsys):
    code, output = _run(["evaluate", "--run", "last", "--k", "5"], capsys)
    assert code == 2 and "holds no training run" in output, output
    ids = []
    for seed in (0, 1):
        code, output = _run(["train", "--config", str(tiny_config), "--trainer.max_epochs=1",
                             "--trainer.enable_progress_bar=false", f"--seed_everything={seed}"], capsys)
        assert code == 0, output
        ids.append(output.split("MLflow run ")[1].split()[0])
    from fbrec.tracking import resolve_run_id

    assert resolve_run_id("last") == ids[1] and resolve_run_id(ids[0]) == ids[0]
    code, output = _run(["export", "--run", "last", "--out", str(tmp_path / "b")], capsys)
    assert code == 0, output
    import json

    assert json.loads((tmp_path / "b" / "manifest.json").read_text())["run_id"] == ids[1]


def test_fbrec_max_epochs_caps_every_training(mlflow_store, tiny_config, monkeypatch, capsys):
    from mlflow.tracking import MlflowClient

    monkeypatch.setenv("FBREC_MAX_EPOCHS", "1")
    code, output = _run(["train", "--config", str(tiny_config), "--trainer.max_epochs=5",
                         "--trainer.enable_progress_bar=false"], capsys)
    assert code == 0, output
    run_id = output.split("MLflow run ")[1].split()[0]
    assert len(MlflowClient(mlflow_store).get_metric_history(run_id, "val/ndcg_at_5")) == 1
    monkeypatch.setenv("FBREC_MAX_EPOCHS", "one")
    code, output = _run(["train", "--config", str(tiny_config)], capsys)
    assert code == 2 and "FBREC_MAX_EPOCHS='one'" in output and "a whole number of epochs" in output


def test_train_on_your_log_uses_the_recipes_model_not_its_dataset_settings(mlflow_store, tmp_path, capsys,
                                                                          monkeypatch, caplog):
    from mlflow.tracking import MlflowClient

    import fbrec.models.base
    from fbrec.data.synthetic import SyntheticConfig, generate

    monkeypatch.setattr(fbrec.models.base, "EVAL_WARN_SECONDS", 0.0)   # every evaluation counts as long here

    log = generate(SyntheticConfig(num_users=150, num_items=90, seed=0)).log.select("user", "item", "timestamp")
    log.write_csv(tmp_path / "clicks.csv")
    # bpr_movielens100k binarizes ratings (min_rating: 4.0): a log without ratings trains all the same
    code, output = _run(["train", "--log", str(tmp_path / "clicks.csv"), "--data.integer_ids", "true", "--config",
                         "bpr_movielens100k", "--trainer.max_epochs=1", "--trainer.enable_progress_bar=false"], capsys)
    assert code == 0, output
    assert "the recipe's dataset settings are not used (data.source.dataset, data.preparation.min_rating)" in output
    assert "test metrics: bpr_movielens100k on clicks" in output
    run_id = output.split("MLflow run ")[1].split()[0]
    # a long evaluation is announced once per stage with the setting that bounds it (Lightning's info lines reach
    # the terminal through logging, which pytest may hold in caplog after other tests configured it)
    output = output if "note: validation ranks" in output else caplog.text
    assert re.search(r"note: validation ranks [\d,]+ users x [\d,]+ items with AUC: about \d+ s per pass here "
                     r"\(extrapolated from its first batch\); --data.evaluation.val_users \d+ .* or "
                     r"--model.init_args.auc false .* bounds it", output), output
    assert output.count("note: validation ranks") == 1 and "note: the test ranks" in output
    # your own log validates on a seeded sample of 10,000 users by default (all of them here: the log has fewer)
    run = MlflowClient(mlflow_store).get_run(run_id)
    assert run.data.params["data.evaluation.val_users"] == "10000" and "val/ndcg_at_10" in run.data.metrics


def test_train_on_your_log_without_a_recipe_takes_the_default_recipes_model(mlflow_store, tmp_path, capsys):
    """The default recipe is the one RESULTS.md's "Default recipe" table chose (WMF by ALS), also for the demo."""
    from mlflow.tracking import MlflowClient

    import fbrec.api
    from fbrec.data.synthetic import SyntheticConfig, generate

    assert fbrec.api.DEFAULT_RECIPE == "wmf_als_synthetic"
    generate(SyntheticConfig(num_users=150, num_items=90, seed=0)).log.select("user", "item", "timestamp") \
        .write_csv(tmp_path / "clicks.csv")
    code, output = _run(["train", "--log", str(tmp_path / "clicks.csv"), "--data.integer_ids", "true",
                         "--trainer.max_epochs=2", "--trainer.enable_progress_bar=false"], capsys)
    assert code == 0, output
    assert "test metrics: wmf_als_synthetic on clicks" in output
    run = MlflowClient(mlflow_store).get_run(output.split("MLflow run ")[1].split()[0])
    assert run.data.tags["model"] == "AllPairsMFModule" and run.data.params["model.objective"] == "wmf"
    assert "tested without the exact AUC" not in output and run.data.params.get("model.auc") in (None, "True")


def test_a_large_log_is_tested_without_the_exact_auc_unless_asked(mlflow_store, tmp_path, capsys, monkeypatch):
    """From OWN_LOG_NO_AUC_ROWS rows on (lowered here to the test log's size), `--log` sets model.init_args.auc
    false, says so, and states it in the run's params; the command line still decides."""
    from mlflow.tracking import MlflowClient

    import fbrec.api
    from fbrec.data.synthetic import SyntheticConfig, generate

    log = generate(SyntheticConfig(num_users=150, num_items=90, seed=0)).log.select("user", "item", "timestamp")
    log.write_parquet(tmp_path / "clicks.parquet")
    monkeypatch.setattr(fbrec.api, "OWN_LOG_NO_AUC_ROWS", log.height)
    client = MlflowClient(mlflow_store)
    for extra, auc in (([], "False"), (["--model.init_args.auc", "true"], "True")):
        code, output = _run(["train", "--log", str(tmp_path / "clicks.parquet"), "--trainer.max_epochs=1",
                             "--trainer.enable_progress_bar=false", *extra], capsys)
        assert code == 0, output
        said = f"your log has {log.height:,} rows: tested without the exact AUC" in output
        assert said == (auc == "False"), output
        run = client.get_run(output.split("MLflow run ")[1].split()[0])
        assert run.data.params["model.auc"] == auc and ("test/auc" in run.data.metrics) == (auc == "True")


@pytest.mark.parametrize(("env", "expected"), [
    ({}, []),
    ({"WORLD_SIZE": "2", "LOCAL_WORLD_SIZE": "2"}, []),   # not torchrun: Lightning's own launcher set these
    ({"TORCHELASTIC_RUN_ID": "x", "WORLD_SIZE": "2", "LOCAL_WORLD_SIZE": "2"},
     ["--trainer.devices=2", "--trainer.num_nodes=1"]),
    ({"TORCHELASTIC_RUN_ID": "x", "WORLD_SIZE": "4", "LOCAL_WORLD_SIZE": "2"},
     ["--trainer.devices=2", "--trainer.num_nodes=2"]),
    ({"TORCHELASTIC_RUN_ID": "x", "WORLD_SIZE": "2", "LOCAL_WORLD_SIZE": "1"},
     ["--trainer.devices=1", "--trainer.num_nodes=2"]),
])
def test_launcher_environment_sets_devices_and_nodes(env, expected):
    from fbrec.api.training import launcher_overrides

    assert launcher_overrides(env) == expected


def test_uneven_processes_per_node_are_refused():
    from fbrec.api.training import launcher_overrides
    from fbrec.errors import ConfigError

    with pytest.raises(ConfigError, match="torchrun started 3 processes with 2 per node"):
        launcher_overrides({"TORCHELASTIC_RUN_ID": "x", "WORLD_SIZE": "3", "LOCAL_WORLD_SIZE": "2"})
