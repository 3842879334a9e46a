"""A real language model in the loop: SmolLM2-135M-Instruct (installed from PyPI by the llm extra) behind
`fbrec llm serve`, a real OpenAI-compatible server process on 127.0.0.1, driven by the `openai` backend through the
CLI (profiles, parse), and the `hf` backend loading the same model by name. Nothing is mocked or downloaded."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import polars as pl
import pytest
import requests

pytestmark = pytest.mark.slow


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def lm_cache(tmp_path_factory) -> Path:
    """Where the model's converted weights are kept across this session's processes (the first load converts)."""
    return tmp_path_factory.mktemp("lm-cache")


@pytest.fixture(scope="session")
def local_lm(lm_cache):
    port = _free_port()
    fbrec = Path(sys.executable).parent / "fbrec"
    proc = subprocess.Popen([str(fbrec), "llm", "serve", "--port", str(port), "--max-new-tokens", "48"],
                            env={**os.environ, "FBREC_CACHE_DIR": str(lm_cache)}, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"fbrec llm serve exited: {proc.stdout.read()[-2000:]}")
        try:
            if requests.get(f"{url}/health", timeout=2).ok:
                break
        except requests.ConnectionError:
            time.sleep(1)
    else:
        proc.kill()
        pytest.fail("fbrec llm serve did not come up in 600 s")
    yield url
    proc.kill()
    proc.wait()


def _chat(url: str, response_format: dict | None, max_tokens: int = 24) -> requests.Response:
    body = {"model": "smollm2", "max_tokens": max_tokens,
            "messages": [{"role": "user", "content": "Which film genre is Toy Story? Answer in JSON."}]}
    if response_format is not None:
        body["response_format"] = response_format
    return requests.post(f"{url}/v1/chat/completions", json=body, timeout=120)


def test_the_server_answers_the_openai_api_with_json_of_the_requested_keys(local_lm):
    from fbrec.llm import Schema

    assert [m["id"] for m in requests.get(f"{local_lm}/v1/models", timeout=5).json()["data"]] == ["smollm2"]
    schema = Schema({"genre": "string", "animated": "boolean", "tags": "array"})
    reply = _chat(local_lm, schema.json_schema("genre")).json()
    answer = json.loads(reply["choices"][0]["message"]["content"])
    assert list(answer) == ["genre", "animated", "tags"] and not schema.problems(answer), answer
    assert reply["usage"]["prompt_tokens"] > 10 and reply["usage"]["completion_tokens"] > 0
    assert isinstance(json.loads(_chat(local_lm, {"type": "json_object"}).json()["choices"][0]["message"]["content"]),
                      dict)
    free = _chat(local_lm, None).json()["choices"][0]["message"]["content"]
    assert isinstance(free, str) and free.strip()
    assert _chat(local_lm, {"type": "yaml"}).status_code == 400
    wrong = requests.post(f"{local_lm}/v1/chat/completions", json={"model": "gpt-9", "messages": [
        {"role": "user", "content": "hi"}]}, timeout=30)
    assert wrong.status_code == 404 and "smollm2" in wrong.text


def test_profiles_and_parse_through_the_openai_backend_against_the_real_model(local_lm, tmp_path, monkeypatch,
                                                                               capsys):
    from test_cli import _run

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("FBREC_CACHE_DIR", str(tmp_path / "cache"))
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text("data:\n  dataset: synthetic\n  dataset_options: {num_users: 6, num_items: 5, seed: 1}\n")
    before = requests.get(f"{local_lm}/health", timeout=5).json()["batches"]
    code, out = _run(["llm", "profiles", "--config", str(recipe), "--out", "prof", "--backend", "openai",
                      "--base-url", f"{local_lm}/v1", "--model", "smollm2", "--no-track", "--max-tokens", "24",
                      "--timeout", "300", "--concurrency", "4"], capsys)
    assert code == 0, out
    batches = requests.get(f"{local_lm}/health", timeout=5).json()["batches"] - before
    assert batches < 11, f"11 profiles (6 users, 5 items) in flight 4 at a time reached the model in {batches} batches"
    manifest = json.loads((tmp_path / "prof" / "manifest.json").read_text())
    assert manifest["is_language_model"] and manifest["generated_by"] == ["openai:smollm2"]
    assert manifest["usage"]["requests"] >= 1 and manifest["usage"]["completion_tokens"] > 0
    users = pl.read_parquet(tmp_path / "prof" / "users.parquet")["profile"]
    assert users.str.strip_chars().str.len_chars().min() > 0, users.to_list()

    code, out = _run(["llm", "parse", "more comedies and no horror", "--dataset", "movielens-100k", "--backend",
                      "openai", "--base-url", f"{local_lm}/v1", "--model", "smollm2", "--timeout", "300"], capsys)
    assert code == 0, out
    prefs = json.loads(out.strip().splitlines()[-1])
    assert isinstance(prefs, dict), prefs


def test_the_hf_backend_loads_the_installed_model_by_name_and_answers_every_task_schema(local_lm, lm_cache,
                                                                                         monkeypatch):
    """Batched decoding (left-padded rows, one cache) writes what one-at-a-time greedy decoding writes: free text and
    the three task schemas, prompts of different lengths in one batch. Padded float arithmetic may flip a near-tie
    token; on this model none flips (measured), and the test allows one answer of the eight to differ."""
    from fbrec.llm import Task, make_backend
    from fbrec.llm.commands import COMMAND_SCHEMA
    from fbrec.llm.profiles import PROFILE_SCHEMA
    from fbrec.llm.simulator import SIMULATOR_SCHEMA

    monkeypatch.setenv("FBREC_CACHE_DIR", str(lm_cache))   # the weights the server converted
    assert len(list((lm_cache / "llm-models").glob("*/model.safetensors"))) == 1, "the first load caches its weights"
    backend = make_backend("hf", max_new_tokens=24, batch_size=8)
    assert backend.model == "smollm2" and backend.is_language_model
    slates = ["1. Toy Story\n2. Heat", "1. Alien\n2. Fargo\n3. Babe\n4. Casino\n5. Se7en\n6. Clerks"]
    tasks = [Task("simulate_user", {"profile": profile, "slate": slate}, schema)
             for schema in (PROFILE_SCHEMA, COMMAND_SCHEMA, SIMULATOR_SCHEMA, None)
             for profile, slate in zip(["likes animated films", "a night owl who watches crime dramas and old "
                                        "westerns, never musicals"], slates, strict=True)]
    batched = backend.run(tasks)
    assert backend.usage.requests == len(tasks)
    for task, answer in zip(tasks, batched, strict=True):
        if task.schema is not None:
            assert not task.schema.problems(answer.answer), answer.text
        assert answer.generated_by == "hf:smollm2" and answer.completion_tokens > 0 and answer.text.strip()
    backend.batch_size = 1
    alone = backend.run(tasks)
    same = sum(a.text == b.text and a.completion_tokens == b.completion_tokens for a, b in zip(batched, alone,
                                                                                              strict=True))
    assert same >= len(tasks) - 1, [(a.text, b.text) for a, b in zip(batched, alone, strict=True)]


def test_the_server_decodes_requests_in_flight_together_as_it_would_one_by_one(local_lm):
    """Four requests sent at once reach the model as one batch (GET /health counts the batches) and get the answers
    each gets alone."""
    from concurrent.futures import ThreadPoolExecutor

    from fbrec.llm import Schema

    schema = Schema({"genre": "string", "animated": "boolean"}).json_schema("genre")
    questions = ["Which film genre is Toy Story?", "Is Heat (1995) a comedy?", "Name a western.",
                 "Which decade was Casablanca released in? Say why it matters to film history."]

    def ask(question: str) -> str:
        body = {"model": "smollm2", "max_tokens": 16, "response_format": schema,
                "messages": [{"role": "user", "content": question}]}
        reply = requests.post(f"{local_lm}/v1/chat/completions", json=body, timeout=300)
        assert reply.status_code == 200, reply.text
        return reply.json()["choices"][0]["message"]["content"]

    alone = [ask(q) for q in questions]
    before = requests.get(f"{local_lm}/health", timeout=5).json()
    with ThreadPoolExecutor(len(questions)) as pool:
        together = list(pool.map(ask, questions))
    after = requests.get(f"{local_lm}/health", timeout=5).json()
    assert after["largest_batch"] >= 2 and after["batches"] - before["batches"] < len(questions), (before, after)
    assert sum(a == b for a, b in zip(alone, together, strict=True)) >= len(questions) - 1, (alone, together)
    assert all(json.loads(answer)["genre"] for answer in together)


def test_simulate_with_the_language_model_answering_as_the_user(local_lm, tmp_path, monkeypatch, capsys):
    from mlflow.tracking import MlflowClient
    from test_cli import _run

    monkeypatch.chdir(tmp_path)
    code, out = _run(["train", "--config", "bpr_synthetic", "--trainer.max_epochs=1"], capsys)
    assert code == 0, out
    run = out.split("MLflow run ")[1].split()[0]
    code, out = _run(["simulate", "--run", run, "--rounds", "2", "--slate", "3", "--users", "2", "--policy", "adapts",
                      "--simulator", "llm", "--backend", "openai", "--base-url", f"{local_lm}/v1", "--model",
                      "smollm2", "--timeout", "300"], capsys)
    assert code == 0 and "language model" in out and "adapts: NUM" in out, out
    client = MlflowClient(f"sqlite:///{tmp_path / 'mlruns' / 'mlflow.db'}")
    assert [m.step for m in client.get_metric_history(run, "simulate_llm/adapts/hit_rate")] == [1, 2]
    examples = json.loads(Path(client.download_artifacts(run, "simulate_llm/examples.json", str(tmp_path))).read_text())
    assert examples and all(e["generated_by"] == "openai:smollm2" for e in examples), examples
