"""fbrec.llm: text encoders with their cache, the client interface against a real loopback server, the local model
backend on a tiny model built here, the offline templates, and profile folders bound to their training split."""

from __future__ import annotations

import hashlib
import json
import math
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import polars as pl
import pytest
import requests

from fbrec.data.profiles import ProfileSet
from fbrec.errors import ConfigError
from fbrec.llm import LLMAnswerError, Schema, Task, TextEncoder, item_texts, make_backend
from fbrec.llm.offline import GENERATED_BY

HERE = Path(__file__).parent


# --- encoders ---------------------------------------------------------------------------------------------------
def test_minilm_encodes_unit_vectors_that_know_meaning_and_the_cache_makes_a_second_run_encode_nothing(tmp_path):
    texts = ["a thriller about a bank robbery", "a heist film where thieves rob a bank", "a recipe for lemon cake"]
    first = TextEncoder(cache_dir=tmp_path)
    v = first.encode(texts)
    assert v.shape == (3, 384) and v.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(v, axis=1), 1.0, atol=1e-5)
    assert v[0] @ v[1] > v[0] @ v[2] + 0.2, "the two heist texts should be closer than the cake"
    assert first.stats.misses == 3 and first.stats.hits == 0
    second = TextEncoder(cache_dir=tmp_path)
    again = second.encode([texts[2], texts[0], "something new"])
    assert (second.stats.hits, second.stats.misses) == (2, 1)
    np.testing.assert_array_equal(again[:2], v[[2, 0]])
    assert second._model is not None   # it did load the model for the one new text
    third = TextEncoder(cache_dir=tmp_path)
    third.encode(texts)
    assert third.stats.hit_rate == 1.0 and third._model is None, "a fully cached run must not even load the model"


def test_an_encoder_folder_that_is_not_one_is_refused(tmp_path):
    with pytest.raises(ConfigError, match="is not a sentence-transformers folder"):
        TextEncoder(tmp_path)


def test_item_text_comes_from_the_declared_template_and_a_wrong_field_names_the_columns():
    items = pl.DataFrame({"item": [1, 2], "title": ["Heat", "Up"], "year": [1995, None],
                          "genres": [["Crime", "Thriller"], []]})
    assert item_texts(items, "{title} ({year}). Genres: {genres}.") == [
        "Heat (1995). Genres: Crime, Thriller.", "Up (unknown). Genres: none."]
    with pytest.raises(ConfigError, match=r"names column\(s\) \['brand'\].*item-table columns"):
        item_texts(items, "{title} by {brand}")


# --- the client interface ---------------------------------------------------------------------------------------
SCHEMA = Schema({"profile": "string"})


def _task(text: str) -> Task:
    return Task("item_profile", {"item_text": text, "interactions": 3, "popularity_band": "niche"}, SCHEMA)


@pytest.mark.parametrize("answer, problems", [
    ('{"profile": "ok"}', []),
    ('Sure: {"profile": "ok"} hope it helps', []),
    ("no json here", ["no JSON object in the answer"]),
    ('{"profile": 3}', ["key 'profile' is an int, not a string"]),
    ('{"other": "x"}', ["missing key 'profile'"]),
    ('{"profile": "  "}', ["key 'profile' is empty"]),
    ('{"profile": "x",}', ["invalid JSON: Expecting property name enclosed in double quotes at character 16"]),
])
def test_answers_are_validated_against_the_schema(answer, problems):
    from fbrec.llm.client import parse_answer

    assert parse_answer(answer, SCHEMA)[1] == problems


def test_the_offline_backend_is_deterministic_and_says_it_is_not_a_language_model():
    backend = make_backend("offline")
    a = backend.run([_task("Heat (1995). Genres: Crime.")])[0]
    b = make_backend("offline").run([_task("Heat (1995). Genres: Crime.")])[0]
    assert a.answer == b.answer and a.answer["profile"].startswith("Heat (1995). Genres: Crime. A niche item")
    assert "not a language model" in a.generated_by == GENERATED_BY and not backend.is_language_model
    assert backend.usage.requests == 0, "templates send no request (runs once logged llm/requests = 2624)"
    with pytest.raises(ConfigError, match="no template for task 'summarise'"):
        backend.run([Task("summarise", {})])


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def llm_server():
    port = _free_port()
    proc = subprocess.Popen([sys.executable, str(HERE / "llm_server.py"), str(port)], stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL, text=True)
    assert proc.stdout.readline().strip() == "ready"
    url = f"http://127.0.0.1:{port}"
    yield url
    proc.kill()
    proc.wait()


def _requests(url: str) -> int:
    return requests.get(f"{url}/stats", timeout=5).json()["requests"]


@pytest.mark.slow
def test_openai_client_against_a_real_server_answers_caches_and_counts_tokens(llm_server, tmp_path):
    tasks = [_task(f"Item number {i}.") for i in range(6)]
    client = make_backend("openai", base_url=f"{llm_server}/v1", model="echo", cache_dir=tmp_path, concurrency=3)
    before = _requests(llm_server)
    out = client.run(tasks)
    assert _requests(llm_server) - before == 6
    assert [c.answer["profile"].split(": ", 1)[1] for c in out] == [t.messages()[1]["content"].splitlines()[0][:60]
                                                                     for t in tasks]
    assert all(c.generated_by == "openai:echo" for c in out)
    prompt_words = sum(len("\n".join(m["content"] for m in t.messages()).split()) for t in tasks)
    assert client.usage.prompt_tokens == prompt_words and client.usage.completion_tokens > 0
    assert client.usage.requests == 6 and client.usage.cache_hits == 0
    again = make_backend("openai", base_url=f"{llm_server}/v1", model="echo", cache_dir=tmp_path)
    assert [c.answer for c in again.run(tasks)] == [c.answer for c in out]
    assert _requests(llm_server) - before == 6, "a cached run sent requests"
    assert again.usage.cache_hits == 6 and again.usage.requests == 0


@pytest.mark.slow
def test_openai_client_retries_busy_servers_and_re_asks_invalid_answers(llm_server, tmp_path):
    flaky = make_backend("openai", base_url=f"{llm_server}/v1", model="flaky", cache_dir="", backoff=0.01)
    assert flaky.run([_task("flaky item")])[0].answer["profile"].startswith("profile ")
    assert flaky.usage.retries == 1 and flaky.usage.requests == 1
    sloppy = make_backend("openai", base_url=f"{llm_server}/v1", model="sloppy", cache_dir="")
    c = sloppy.run([_task("sloppy item")])[0]
    assert c.attempts == 2 and sloppy.usage.reasks == 1 and sloppy.usage.requests == 2
    broken = make_backend("openai", base_url=f"{llm_server}/v1", model="broken", cache_dir="", reasks=2)
    before = _requests(llm_server)
    with pytest.raises(LLMAnswerError, match="stayed invalid after 2 re-asks .no JSON object in the answer."):
        broken.run([_task("broken item")])
    assert _requests(llm_server) - before == 3


HOSTILE_ANSWERS = [
    ("html", r"answered HTTP 200 with a body that is not a chat completion \(\d+ bytes of text/html: b'<html>"),
    ("truncated", r"not a chat completion \(\d+ bytes of application/json"),
    ("list", r"not a chat completion \(a JSON list without choices"),
    ("short", r"unreachable or not answering within 3 s after 2 tries"),
    ("partial-status", r"unreachable or not answering within 3 s after 2 tries"),
    ("trickle", r"unreachable or not answering within 3 s after 2 tries"),
    ("huge", r"sent an answer over 8388608 bytes"),
    ("busy", r"LLM server http://127\.0\.0\.1:\d+/v1 answered HTTP 429 after 2 tries: .*retried 1 times"),
    ("down", r"LLM server http://127\.0\.0\.1:\d+/v1 answered HTTP 500 after 2 tries"),
]


@pytest.mark.parametrize("model,pattern", HOSTILE_ANSWERS, ids=[m for m, _ in HOSTILE_ANSWERS])
def test_openai_client_turns_any_broken_answer_into_one_error_within_its_timeout(llm_server, model, pattern):
    """A web page, half a body, a body shorter than its Content-Length, a list, half a status line, a server that
    trickles bytes, a 50 MB body: each ends in one ConfigError naming it, within the deadline (retries included)."""
    import time

    from fbrec.errors import ConfigError

    client = make_backend("openai", base_url=f"{llm_server}/v1", model=model, cache_dir="", timeout=3.0,
                          max_retries=1, backoff=0.01)
    started = time.monotonic()
    with pytest.raises(ConfigError, match=pattern):
        client.run([_task("an item")])
    assert time.monotonic() - started < 2 * 3.0 + 5, "the deadline bounds each try, however slow the server"


def test_openai_client_keeps_the_usage_of_answers_that_came_back_when_one_fails(llm_server):
    client = make_backend("openai", base_url=f"{llm_server}/v1", model="some-broken", cache_dir="", reasks=0)
    with pytest.raises(LLMAnswerError):
        client.run([_task("fine item one"), _task("fine item two"), _task("BREAK this one")])
    assert client.usage.requests == 2 and client.usage.prompt_tokens > 0 and client.usage.completion_tokens > 0


def test_the_response_cache_is_keyed_by_the_server_too(llm_server, tmp_path):
    """Two servers with the same model name never share answers (the cache key once left the base URL out)."""
    a = make_backend("openai", base_url=f"{llm_server}/v1", model="echo", cache_dir=tmp_path)
    b = make_backend("openai", base_url=f"{llm_server.replace('127.0.0.1', 'localhost')}/v1", model="echo",
                     cache_dir=tmp_path)
    task = _task("the same prompt")
    assert not a.run([task])[0].cached
    assert not b.run([task])[0].cached, "a second server got the first one's cached answer"
    assert a.run([task])[0].cached


@pytest.mark.slow
def test_openai_client_reads_the_key_from_the_environment_only_and_names_a_401(llm_server, tmp_path, monkeypatch):
    monkeypatch.delenv("TEST_LLM_KEY", raising=False)
    nokey = make_backend("openai", base_url=f"{llm_server}/v1", model="needs-key", cache_dir="",
                         api_key_env="TEST_LLM_KEY")
    with pytest.raises(ConfigError, match=r"HTTP 401.*check the key in \$TEST_LLM_KEY"):
        nokey.run([_task("x")])
    monkeypatch.setenv("TEST_LLM_KEY", "test-key")
    keyed = make_backend("openai", base_url=f"{llm_server}/v1", model="needs-key", cache_dir="",
                         api_key_env="TEST_LLM_KEY")
    assert keyed.run([_task("x")])[0].answer["profile"]


@pytest.mark.parametrize("options, pattern", [
    ({"model": "m"}, "needs a base URL and a model"),
    ({"base_url": "http://127.0.0.1:9/v1", "model": "m", "max_retries": 1, "backoff": 0.01},
     "unreachable or not answering within 60 s after 2 tries: ConnectionError"),
])
def test_openai_client_configuration_errors(options, pattern, monkeypatch):
    monkeypatch.delenv("FBREC_LLM_BASE_URL", raising=False)
    with pytest.raises(ConfigError, match=pattern):
        make_backend("openai", cache_dir="", **options).run([_task("x")])


def test_unknown_backend_suggests_the_closest():
    with pytest.raises(ConfigError, match="did you mean 'openai'"):
        make_backend("opnai")


# --- a local transformers model folder --------------------------------------------------------------------------
@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory) -> Path:
    """A 1-layer GPT-2 with random weights and a word-level tokenizer, built here (nothing downloaded). Its
    vocabulary has no braces, so it can never write a JSON object."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import GPT2Config, GPT2LMHeadModel, PreTrainedTokenizerFast

    words = sorted({w for text in (Task("item_profile", {"item_text": "Heat", "interactions": 1,
                                                         "popularity_band": "niche"}).messages())
                    for w in text["content"].replace("{", " ").replace("}", " ").split()} | {"system:", "user:",
                                                                                              "assistant:"})
    vocab = {"[UNK]": 0, "[EOS]": 1, **{w: i + 2 for i, w in enumerate(words)}}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="[UNK]", eos_token="[EOS]")
    path = tmp_path_factory.mktemp("tiny-lm")
    import torch

    torch.manual_seed(0)
    GPT2LMHeadModel(GPT2Config(vocab_size=len(vocab), n_positions=512, n_embd=16, n_layer=1, n_head=2,
                               eos_token_id=1, bos_token_id=1)).save_pretrained(path)
    fast.save_pretrained(path)
    return path


def test_hf_backend_generates_from_a_local_folder_counts_tokens_and_refuses_non_json(tiny_model):
    backend = make_backend("hf", model_dir=tiny_model, max_new_tokens=8, reasks=1)
    free = Task("item_profile", {"item_text": "Heat", "interactions": 1, "popularity_band": "niche"})
    a, b = backend.run([free])[0], backend.run([free])[0]
    assert a.text == b.text and a.text.strip(), "greedy decoding of the same prompt must repeat itself"
    assert a.completion_tokens == 8 and a.prompt_tokens > 20 and a.generated_by == f"hf:{tiny_model.name}"
    with pytest.raises(LLMAnswerError, match="stayed invalid after 1 re-asks"):
        backend.run([_task("Heat")])
    with pytest.raises(ConfigError, match="has no config.json"):
        make_backend("hf", model_dir=tiny_model / "nowhere")


def test_hf_backend_decodes_a_left_padded_batch_as_it_decodes_each_prompt_alone(tiny_model):
    """Prompts of different lengths in one batch (left padding, position ids from the mask, rows leaving the batch
    as they finish) give the tokens each gets alone; a random model writes near-random tokens, so a misaligned
    position or mask shows at once."""
    tasks = [Task("item_profile", {"item_text": text, "interactions": n, "popularity_band": band})
             for text, n, band in [("Heat", 1, "niche"), ("Heat Heat Heat Heat Heat Heat Heat", 12, "popular"),
                                   ("Heat Heat", 3, "average")]]
    backend = make_backend("hf", model_dir=tiny_model, max_new_tokens=8, batch_size=3)
    together = backend.run(tasks)
    backend.batch_size, backend.progress_every, lines = 1, 0.0, []
    backend.progress = lines.append
    alone = backend.run(tasks)
    assert [c.text for c in together] == [c.text for c in alone]
    assert [line.split(" answers")[0].strip() for line in lines] == ["1/3", "2/3"] and "tokens/s (batch 1, float32)" \
        in lines[0], lines
    assert [c.prompt_tokens for c in together] == [c.prompt_tokens for c in alone] and len(
        {c.prompt_tokens for c in alone}) == 3


@pytest.mark.parametrize(("options", "pattern"), [
    ({"batch_size": 0}, r"batch size 0 is below 1.*--batch-size 1 or more"),
    ({"dtype": "float16"}, r"dtype 'float16' is not one the hf backend runs.*one of float32, bfloat16"),
])
def test_hf_backend_options_are_checked_before_the_model_loads(options, pattern):
    with pytest.raises(ConfigError, match=pattern):
        make_backend("hf", model_dir="/nowhere", **options)


# --- profiles ---------------------------------------------------------------------------------------------------
def test_profile_folder_round_trips_and_is_bound_to_its_split(planted_profiles, planted_dir):
    from fbrec.data.prepare import PreparedDataset

    data = PreparedDataset.load(planted_dir)
    profiles = ProfileSet.load(planted_profiles)
    assert profiles.manifest["backend"] == "offline" and profiles.manifest["generated_by"] == [GENERATED_BY]
    assert profiles.users.height == data.num_users and profiles.items.height == data.num_items
    profiles.check_split(data.train)
    users, user_has, items, item_has = profiles.aligned(data.user_map, data.item_map)
    assert user_has.all() and item_has.all() and users.shape == (data.num_users, 384)
    other = data.train.filter(pl.col("user_index") != 0)
    with pytest.raises(ConfigError, match="built from another training split"):
        profiles.check_split(other)
    shuffled = profiles.shuffled(0)
    assert not np.array_equal(shuffled.user_embeddings, profiles.user_embeddings)
    np.testing.assert_array_equal(np.sort(shuffled.user_embeddings, axis=0), np.sort(profiles.user_embeddings, axis=0))


def test_user_profiles_only_use_training_items(planted_dir):
    from fbrec.data.prepare import PreparedDataset
    from fbrec.llm import profile_tasks

    data = PreparedDataset.load(planted_dir)
    _, users, _ = profile_tasks(data, "planted")
    for u in range(data.num_users):
        train = set(data.train.filter(pl.col("user_index") == u)["item"].to_list())
        held = set(data.test.filter(pl.col("user_index") == u)["item"].to_list()) | \
            set(data.val.filter(pl.col("user_index") == u)["item"].to_list())
        assert set(users[u].facts["history_items"]) == train
        assert users[u].facts["num_items"] == len(train)
        assert len(users[u].facts["item_profiles"].splitlines()) == min(10, len(train))
        assert held and not held & train


def test_a_tampered_profile_folder_is_refused(planted_profiles, tmp_path):
    import shutil

    copy = tmp_path / "p"
    shutil.copytree(planted_profiles, copy)
    np.save(copy / "user_embeddings.npy", np.zeros((3, 384), np.float32))
    with pytest.raises(ConfigError, match="user_embeddings.npy fails its sha256"):
        ProfileSet.load(copy)
    with pytest.raises(ConfigError, match="is not a profile folder"):
        ProfileSet.load(tmp_path)


# --- alignment losses, by hand ------------------------------------------------------------------------------------
def test_alignment_nce_matches_a_hand_computation():
    import torch

    from fbrec.losses import alignment_nce

    anchors = torch.tensor([[2.0, 0.0], [0.0, 3.0]])
    targets = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    # cosines: row 0 -> (1, 0), row 1 -> (0, 1); tau = 0.5
    expected = math.log(1 + math.exp(-2.0))
    assert alignment_nce(anchors, targets, 0.5).item() == pytest.approx(expected, rel=1e-6)
    negatives = torch.tensor([[1.0, 1.0]])   # cosine 1/sqrt(2) with both anchors
    c = 1 / math.sqrt(2)
    row = -math.log(math.exp(2.0) / (math.exp(2.0) + 1.0 + math.exp(2 * c)))
    assert alignment_nce(anchors, targets, 0.5, negatives).item() == pytest.approx(row, rel=1e-6)


def test_alignment_counts_repeated_ids_once_and_skips_rows_without_a_profile():
    import torch

    from fbrec.models.alignment import _first_rows

    ids, rows = _first_rows(torch.tensor([5, 3, 5, 7, 3]))
    assert ids.tolist() == [3, 5, 7] and rows.tolist() == [1, 0, 3]


def test_cli_writes_profiles_from_a_recipe_logs_to_mlflow_and_reuses_the_encoder_cache(tmp_path, monkeypatch,
                                                                                       capsys):
    from test_cli import _run

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("FBREC_CACHE_DIR", str(tmp_path / "cache"))
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text("seed_everything: 3\ntrainer: {max_epochs: 2, devices: 1}\nmodel:\n  class_path: "
                      "fbrec.models.LightGCNModule\n  init_args:\n    embedding_dim: 8\n    ks: [5, 10]\n    alignment: {profiles: "
                      "prof, mode: gen, mask_ratio: 0.3}\ndata:\n  dataset: synthetic\n  dataset_options: "
                      "{num_users: 60, num_items: 40, seed: 1}\n  split: random\n")
    code, out = _run(["llm", "profiles", "--config", str(recipe), "--out", "prof"], capsys)
    assert code == 0, out
    assert "deterministic templates, not a language model" in out and "MLflow run" in out
    manifest = json.loads((tmp_path / "prof" / "manifest.json").read_text())
    assert manifest["data_seed"] == 3 and manifest["encoding"]["cache_hit_rate"] == 0.0
    code, out = _run(["llm", "profiles", "--config", str(recipe), "--out", "prof"], capsys)
    assert code == 2 and "--overwrite" in out
    code, out = _run(["llm", "profiles", "--config", str(recipe), "--out", "prof", "--overwrite"], capsys)
    assert code == 0 and "cache hit rate 100%" in out, out
    code, out = _run(["train", "--config", str(recipe)], capsys)   # the recipe trains on the profiles it named
    assert code == 0 and "best epoch on validation" in out, out
    from mlflow.tracking import MlflowClient

    client = MlflowClient(f"sqlite:///{tmp_path / 'mlruns' / 'mlflow.db'}")
    run = client.search_runs([client.get_experiment_by_name("fbrec").experiment_id])[0]
    assert run.data.metrics["train/alignment_loss"] > 0
    # the run says whose profiles it learned from, down to the manifest's bytes
    assert run.data.tags["profiles.backend"] == "offline" and run.data.tags["profiles.is_language_model"] == "false"
    assert run.data.tags["profiles.generated_by"] == GENERATED_BY
    assert run.data.tags["profiles.manifest_sha256"] == hashlib.sha256(
        (tmp_path / "prof" / "manifest.json").read_bytes()).hexdigest()
    code, out = _run(["train", "--config", str(recipe), "--seed_everything", "4"], capsys)
    assert code == 2 and "built from another training split" in out, out
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("user data")
    code, out = _run(["llm", "profiles", "--dataset", "synthetic", "--out", "mine", "--overwrite"], capsys)
    assert code == 2 and (tmp_path / "mine" / "notes.txt").read_text() == "user data"


@pytest.mark.parametrize("config, pattern", [
    ({"mode": "con"}, "alignment without 'profiles'"),
    ({"profiles": "p", "mode": "contrast"}, "unknown alignment mode 'contrast'.*did you mean 'con'"),
    ({"profiles": "p", "weight": -1}, r"alignment.weight=-1 is out of range"),
    ({"profiles": "p", "temperature": 0}, r"alignment.temperature=0 is out of range"),
    ({"profiles": "p", "mask_ratio": 1.5}, r"alignment.mask_ratio=1.5 is out of range"),
    ({"profiles": "p", "tau": 0.2}, r"alignment options \['profiles', 'tau'\].*options: profiles, mode"),
])
def test_alignment_config_errors_name_the_value_and_the_rule(config, pattern):
    from fbrec.models import MatrixFactorizationModule

    with pytest.raises(ConfigError, match=pattern):
        MatrixFactorizationModule(10, 10, alignment=config)


def test_a_run_on_another_split_refuses_the_profiles_before_training(planted_profiles, tmp_path):
    import lightning as L
    from conftest import planted_items, planted_log

    from fbrec.data.datamodule import FeedbackDataModule
    from fbrec.data.datasets import RawDataset
    from fbrec.data.prepare import PrepareConfig, prepare_raw
    from fbrec.embeddings import register_strategies
    from fbrec.models import LightGCNModule

    other = prepare_raw(RawDataset(planted_log(), items=planted_items()), "planted", PrepareConfig(split="random"))
    dm = FeedbackDataModule(prepared_dir=str(other.save(tmp_path / "random")), batch_size=32)
    model = LightGCNModule(dm.num_users, dm.num_items, embedding_dim=8,
                           alignment={"profiles": str(planted_profiles)})
    register_strategies()
    trainer = L.Trainer(max_epochs=1, accelerator="cpu", devices=1, strategy="torchrec", logger=False,
                        enable_checkpointing=False, enable_progress_bar=False, default_root_dir=tmp_path)
    with pytest.raises(ConfigError, match="built from another training split.*--seed SEED"):
        trainer.fit(model, dm)


@pytest.mark.slow
def test_cli_profiles_through_an_openai_compatible_server(llm_server, tmp_path, monkeypatch, capsys):
    from test_cli import _run

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("FBREC_CACHE_DIR", str(tmp_path / "cache"))
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text("data:\n  dataset: synthetic\n  dataset_options: {num_users: 60, num_items: 40, seed: 1}\n")
    before = _requests(llm_server)
    code, out = _run(["llm", "profiles", "--config", str(recipe), "--out", "prof", "--backend", "openai",
                      "--base-url", f"{llm_server}/v1", "--model", "echo", "--no-track", "--timeout", "20",
                      "--max-retries", "1", "--reasks", "1"], capsys)
    assert code == 0, out
    manifest = json.loads((tmp_path / "prof" / "manifest.json").read_text())
    sent, usage = _requests(llm_server) - before, manifest["usage"]
    assert manifest["is_language_model"] and manifest["generated_by"] == ["openai:echo"]
    # one request per distinct prompt; a repeated prompt (two items with the same text) is a cache hit
    assert sent == usage["requests"] and usage["requests"] + usage["cache_hits"] == \
        manifest["counts"]["items"] + manifest["counts"]["users"]
    assert manifest["usage"]["prompt_tokens"] > 0
    profiles = pl.read_parquet(tmp_path / "prof" / "users.parquet")["profile"]
    assert profiles.str.starts_with("profile ").all()


@pytest.mark.parametrize("args, pattern", [
    (["llm", "profiles", "--dataset", "synthetic", "--out", "p", "--backend", "hf", "--model", "smollm3"],
     "unknown packaged language model 'smollm3'"),
    (["llm", "profiles", "--dataset", "synthetic", "--out", "p", "--backend", "opnai"], "did you mean 'openai'"),
    (["llm", "profiles", "--out", "p"], "exactly one of --dataset and --config"),
    (["llm", "parse", "no horror", "--dataset", "movielens-100k", "--backend", "hf"], "--backend 'hf'"),
    (["llm", "reward-model", "train", "--out", "rm", "--objective", "listwise"], "unknown reward objective"),
])
def test_llm_cli_refuses_bad_input_with_one_line_and_writes_nothing(args, pattern, tmp_path, monkeypatch, capsys):
    from test_cli import _run

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("FBREC_CACHE_DIR", str(tmp_path / "cache"))
    code, out = _run(args, capsys)
    assert code == 2 and pattern in out, out
    assert not (tmp_path / "p").exists() and not (tmp_path / "rm").exists()


def test_profiles_take_the_recipes_data_seed_before_its_seed_everything(tmp_path, monkeypatch, capsys):
    from test_cli import _run

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("FBREC_CACHE_DIR", str(tmp_path / "cache"))
    recipe = tmp_path / "r.yaml"
    recipe.write_text("seed_everything: 3\ndata:\n  dataset: synthetic\n  dataset_options: {num_users: 60, "
                      "num_items: 40, seed: 1}\n  split: random\n  seed: 0\n")
    code, out = _run(["llm", "profiles", "--config", str(recipe), "--out", "p", "--no-track"], capsys)
    assert code == 0, out
    assert json.loads((tmp_path / "p" / "manifest.json").read_text())["data_seed"] == 0   # as training resolves it


def test_alignment_uses_at_most_anchors_rows_per_side(planted_profiles, planted_dir):
    import torch

    from fbrec.data.prepare import PreparedDataset
    from fbrec.models.alignment import ProfileAlignment

    data = PreparedDataset.load(planted_dir)
    ids = torch.arange(10)
    vectors = torch.randn(10, 8)
    capped = ProfileAlignment(str(planted_profiles), anchors=1, negatives=0)
    capped.attach(data, 8)
    assert capped.loss(ids, vectors, ids, vectors).item() == 0.0   # one anchor per side: nothing to contrast
    full = ProfileAlignment(str(planted_profiles), negatives=0)
    full.attach(data, 8)
    assert full.loss(ids, vectors, ids, vectors).item() > 0.0
