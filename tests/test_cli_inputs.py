"""What users actually type: config type errors name the key, own logs and config.yaml files anywhere name their runs,
read options are recipe keys, tiny logs get advice that can help, outputs that cannot be written are one line, and
two first runs in a fresh folder both succeed."""

from __future__ import annotations

import os
import re
import subprocess
import sys

import numpy as np
import polars as pl
import pytest
from conftest import planted_log
from test_cli import TINY, _run


@pytest.fixture()
def tiny(tmp_path):
    path = tmp_path / "tiny.yaml"
    path.write_text(TINY)
    return str(path)


CONFIG_ERRORS = [
    (["--data.sampling.batch_size", "abc"],
     r"data.sampling.batch_size='abc' is not a valid int.*hint: pass e.g. --data.sampling.batch_size 10"),
    (["--data.sampling.batch_size=q"], r"data.sampling.batch_size='q' is not a valid int"),
    # a flat key of the last release: one note naming the new key, then the same error under the new key
    (["--data.batch_size=q"], r"note: --data.batch_size is deprecated .* use --data.sampling.batch_size.*"
                              r"data.sampling.batch_size='q' is not a valid int"),
    (["--model.init_args.embedding_dim", "1.5"], r"model.init_args.embedding_dim='1.5' is not a valid int"),
    (["--trainer.max_epochs", "x"], r"trainer.max_epochs='x' is not a valid int"),
    (["--data.preparation.val_fraction", "lots"], r"data.preparation.val_fraction='lots' is not a valid float"),
    (["--model.init_args.auc", "maybe"], r"model.init_args.auc='maybe' is not a valid bool"),
    (["--patience", "0"], r"patience=0.*patience >= 1"),
    (["--data.source.timestamp_unit", "minutes"], r"unknown timestamp unit 'minutes'"),
    (["--model.class_path", "fbrec.models.MatrixFactorisationModule"],
     r"model.class_path 'fbrec.models.MatrixFactorisationModule' cannot be used: module 'fbrec.models' has no "
     r"attribute 'MatrixFactorisationModule'.*did you mean fbrec.models.MatrixFactorizationModule\?"),
    (["--model.class_path", "nowhere.Model"], r"model.class_path 'nowhere.Model' cannot be used: .*check the spelling"),
    (["--model.class_path", "fbrec.data.specs.Sampling"],
     r"model.class_path 'fbrec.data.specs.Sampling' is not a RankingModule"),
]


@pytest.mark.parametrize("extra,pattern", CONFIG_ERRORS, ids=[" ".join(e) for e, _ in CONFIG_ERRORS])
def test_config_type_errors_name_the_key_the_value_and_the_type(extra, pattern, tiny, capsys, mlflow_store):
    if extra[0] == "--data.source.timestamp_unit":   # read options apply to your own log
        extra = [*extra, "--data.source.log", _csv(os.path.dirname(tiny))]
    code, output = _run(["train", "--config", tiny, *extra], capsys)
    assert code == 2, output
    assert "Traceback" not in output and re.search(pattern, output.replace("\n", " ")), output


def _csv(folder, rows=None) -> str:
    log = planted_log() if rows is None else planted_log().head(rows)
    stamps = [f"{d:02d}/01/2024 10:00:00" for d in (log["timestamp"] - 999).to_list()]
    path = os.path.join(folder, "clicks.csv")
    log.with_columns(pl.Series("timestamp", stamps)).write_csv(path, separator=";")
    return path


def test_a_config_yaml_anywhere_names_the_run_after_its_folder_and_an_own_log_after_its_file(tmp_path, mlflow_store):
    from mlflow.tracking import MlflowClient

    from fbrec.api.training import run_training

    folder = tmp_path / "my_experiment"
    folder.mkdir()
    config = folder / "config.yaml"
    config.write_text(f"""
seed_everything: 0
trainer: {{max_epochs: 1, devices: 1, enable_progress_bar: false}}
model:
  class_path: fbrec.models.MatrixFactorizationModule
  init_args: {{embedding_dim: 8, ks: [1, 5]}}
data: {{source: {{log: {_csv(tmp_path)}}}, preparation: {{split: leave_last_out}}, sampling: {{batch_size: 64}}}}
""")
    run_id = run_training(str(config), ["--data.source.timestamp_format", "%d/%m/%Y %H:%M:%S",
                                       "--data.source.separator", ";"])
    run = MlflowClient(mlflow_store).get_run(run_id)
    assert run.data.tags["recipe"] == "my_experiment" and run.data.tags["mlflow.runName"] == "my_experiment"
    assert run.data.tags["dataset"] == "clicks", "your own log is named after its file, not 'synthetic'"
    assert run.data.params["data.seed"] == "0" and run.data.tags["data_seed"] == "0"


def test_a_log_too_small_to_split_gets_advice_that_can_help(tmp_path, capsys, mlflow_store, tiny):
    code, output = _run(["train", "--config", tiny, "--data.log_path", _csv(tmp_path, rows=3),
                         "--data.split", "leave_last_out", "--data.timestamp_format", "%d/%m/%Y %H:%M:%S"], capsys)
    assert code == 2, output
    assert "relax min_user" not in output and "leave_last_out needs users with at least 2 positives" in output


@pytest.mark.parametrize("make,pattern", [
    (lambda p: p.write_text("a file"), r"--out .* exists and is not a directory"),
    (lambda p: (p.mkdir(), (p / "notes.txt").write_text("mine")), r"non-empty directory fbrec did not write"),
])
def test_an_output_that_cannot_be_written_is_one_line_and_nothing_is_touched(make, pattern, tmp_path, capsys):
    out = tmp_path / "out"
    make(out)
    before = sorted(p.name for p in tmp_path.rglob("*"))
    code, output = _run(["data", "prepare", "synthetic", "--out", str(out)], capsys)
    assert code == 2 and re.search(pattern, output.replace("\n", " ")), output
    assert sorted(p.name for p in tmp_path.rglob("*")) == before


def test_an_output_under_a_file_is_one_line(tmp_path, capsys):
    (tmp_path / "file").write_text("x")
    code, output = _run(["data", "prepare", "synthetic", "--out", str(tmp_path / "file" / "out")], capsys)
    assert code == 2 and "cannot write" in output and "Traceback" not in output, output


@pytest.mark.slow
def test_two_first_runs_in_a_fresh_folder_both_succeed(tmp_path):
    config = tmp_path / "tiny.yaml"
    config.write_text(TINY.replace("max_epochs: 3", "max_epochs: 1"))
    env = {k: v for k, v in os.environ.items() if k not in ("MLFLOW_TRACKING_URI", "MASTER_PORT")}
    procs = [subprocess.Popen([sys.executable, "-m", "fbrec.cli.main", "train", "--config", str(config),
                               "--trainer.enable_progress_bar=false"], cwd=tmp_path, env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    results = [p.communicate(timeout=300) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], [err[-2000:] for _, err in results]
    ids = {out.split("MLflow run ")[1].split()[0] for out, _ in results}
    assert len(ids) == 2 and np.all([(tmp_path / "mlruns" / "checkpoints" / i).is_dir() for i in ids])
