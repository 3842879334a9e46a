"""MLflow the way its users expect: params once and flat, the data as dataset inputs, the model as a pyfunc that
loads and answers, registered on request."""

from __future__ import annotations

import contextlib
import io

import pandas as pd
import pytest
from test_cli import TINY


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """One `fbrec train --register` run for the module (a fresh store in its own folder)."""
    from mlflow.tracking import MlflowClient

    from fbrec.cli.main import main

    tmp = tmp_path_factory.mktemp("mlflow_model")
    (tmp / "mlruns").mkdir()
    uri = f"sqlite:///{tmp / 'mlruns' / 'mlflow.db'}"
    (tmp / "tiny.yaml").write_text(TINY)
    out = io.StringIO()
    with pytest.MonkeyPatch.context() as mp, contextlib.redirect_stdout(out):
        mp.setenv("MLFLOW_TRACKING_URI", uri)
        mp.chdir(tmp)
        with contextlib.suppress(SystemExit):
            main(["train", "--config", str(tmp / "tiny.yaml"), "--register", "tiny-mf", "--trainer.max_epochs=2",
                  "--trainer.enable_progress_bar=false"])
        client = MlflowClient(uri)
        run = client.search_runs(client.get_experiment_by_name("fbrec").experiment_id)[0]
        yield client, run, out.getvalue()


def test_params_are_logged_once_each_flat_and_readable(trained):
    _, run, _ = trained
    params = run.data.params
    assert not any(k.startswith("_") or "/" in k for k in params), sorted(params)
    assert params["recipe"] == "tiny" and params["model"] == "MatrixFactorizationModule"
    assert params["model.embedding_dim"] == "8" and params["model.ks"] == "[5, 10]"
    assert params["data.source.dataset"] == "synthetic" and params["data.source.options.num_users"] == "120"
    assert params["data.seed"] == "0" and params["seed"] == "0" and params["trainer.max_epochs"] == "2"
    assert params["model.num_users"] != "0" and params["model.num_items"] != "0", "the real table sizes"
    # every name appears under one prefix only: no bare duplicates of data or model arguments
    bare = {k for k in params if "." not in k}
    assert bare == {"recipe", "model", "seed"}
    assert not any(v == "None" for v in params.values())


def test_the_experiment_is_a_model_training_one(trained):
    client, run, _ = trained
    assert client.get_experiment(run.info.experiment_id).tags["mlflow.experimentKind"] == "custom_model_development"


def test_the_prepared_splits_are_the_runs_dataset_inputs(trained):
    _, run, _ = trained
    inputs = {[t.value for t in d.tags if t.key == "mlflow.data.context"][0]: d.dataset for d in run.inputs.dataset_inputs}
    assert set(inputs) == {"train", "validation", "test"}
    train = inputs["train"]
    assert train.name == "synthetic/train" and train.digest.endswith("-train") and "user_index" in train.schema
    assert train.source_type == "local" and inputs["test"].digest != train.digest


def test_the_logged_model_loads_as_a_pyfunc_recommends_and_is_registered(trained):
    import mlflow
    import mlflow.pyfunc

    client, run, out = trained
    mlflow.set_tracking_uri(client.tracking_uri)
    (logged,) = client.search_logged_models([run.info.experiment_id])
    assert logged.source_run_id == run.info.run_id and logged.name == "fbrec_bundle"
    model = mlflow.pyfunc.load_model(logged.model_uri)
    bundle_users = model.unwrap_python_model().bundle.user_map.raw.to_list()
    frame = model.predict(pd.DataFrame({"user": bundle_users[:2]}), params={"k": 3})
    assert list(frame.columns) == ["user", "rank", "item", "score"] and len(frame) == 6
    assert frame.groupby("user")["score"].apply(lambda s: s.is_monotonic_decreasing).all()
    expected = model.unwrap_python_model().bundle.recommend(bundle_users[0], 3)
    assert [i for i, _ in expected] == frame[frame["user"] == bundle_users[0]]["item"].tolist()
    (version,) = client.search_model_versions("name='tiny-mf'")
    assert version.run_id == run.info.run_id and "registered" in out and "tiny-mf" in out


def test_plots_learning_curves_and_slices_in_a_stable_order(trained, tmp_path):
    from fbrec.tracking.plots import _slice_key

    client, run, _ = trained
    artifacts = {a.path for a in client.list_artifacts(run.info.run_id, "curves")}
    assert "curves/learning_curves.png" in artifacts
    names = ["users_q2", "tail", "snips", "all", "users_q1", "cold", "head"]
    assert sorted(names, key=_slice_key) == ["all", "head", "tail", "cold", "snips", "users_q1", "users_q2"]


@pytest.mark.slow
@pytest.mark.parametrize("command", [["export", "--out", "{tmp}/bundle"], ["evaluate", "--k", "5"]])
def test_export_and_evaluate_import_neither_lightning_nor_torchrec(trained, tmp_path, command):
    import os
    import subprocess
    import sys

    client, run, _ = trained
    argv = [a.format(tmp=tmp_path) for a in command[:1] + ["--run", run.info.run_id] + command[1:]]
    code = ("import sys\nfrom fbrec.cli.main import main\n"
            f"main({argv!r})\n"
            "heavy = sorted(m for m in ('lightning', 'torchrec', 'fbgemm_gpu') if m in sys.modules)\n"
            "assert not heavy, heavy\n")
    env = {**os.environ, "MLFLOW_TRACKING_URI": client.tracking_uri}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=tmp_path)
    assert out.returncode == 0, out.stderr[-2000:]


@pytest.mark.slow
def test_mlflow_models_serve_answers_top_k_over_http(trained, tmp_path):
    """The README's `mlflow models serve -m ... --env-manager local`: a real server process on 127.0.0.1."""
    import json
    import os
    import signal
    import socket
    import subprocess
    import sys
    import time
    import urllib.request
    from pathlib import Path

    client, run, _ = trained
    (logged,) = client.search_logged_models([run.info.experiment_id])
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    bindir = str(Path(sys.executable).parent)
    env = {**os.environ, "MLFLOW_TRACKING_URI": client.tracking_uri, "PATH": bindir + os.pathsep + os.environ["PATH"]}
    server = subprocess.Popen([os.path.join(bindir, "mlflow"), "models", "serve", "-m", logged.model_uri,
                               "--env-manager", "local", "-p", str(port), "-h", "127.0.0.1"],
                              env=env, cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                              start_new_session=True)   # mlflow starts uvicorn as a child: stop the whole group
    try:
        deadline = time.monotonic() + 90
        while True:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/ping", timeout=2)
                break
            except OSError:
                assert server.poll() is None, server.stderr.read().decode()[-2000:]
                assert time.monotonic() < deadline, "mlflow models serve did not come up in 90 s"
                time.sleep(0.5)
        import mlflow.pyfunc

        mlflow.set_tracking_uri(client.tracking_uri)
        model = mlflow.pyfunc.load_model(logged.model_uri)   # a user of the run's data: the bundle's first
        first = model.unwrap_python_model().bundle.user_map.raw.to_list()[0]
        body = json.dumps({"dataframe_records": [{"user": first}], "params": {"k": 4}}).encode()
        request = urllib.request.Request(f"http://127.0.0.1:{port}/invocations", data=body,
                                         headers={"content-type": "application/json"})
        answer = json.loads(urllib.request.urlopen(request, timeout=30).read())["predictions"]
        assert [row["rank"] for row in answer] == [1, 2, 3, 4] and {row["user"] for row in answer} == {first}
        assert [row["item"] for row in answer] == [i for i, _ in model.unwrap_python_model().bundle.recommend(first, 4)]
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=30)
