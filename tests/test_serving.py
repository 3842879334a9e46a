"""`fbrec serve` as users run it: a real server process on loopback over a bundle of real MovieLens-100K ids, titles
and genres. Every endpoint, the 4xx table (never a 5xx), hot reload under concurrent traffic with zero failed
requests, refused corrupt and incompatible reloads, SIGHUP, and no torch in the service process."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

import numpy as np
import polars as pl
import pytest
import requests

from fbrec.bundle import write_bundle

pytestmark = [pytest.mark.realdata, pytest.mark.slow]   # a real service process per module


def _svd_bundle(out, data, dim: int = 32, index: str = "Flat", flip: bool = False):
    """Embeddings from a truncated SVD of the training matrix: a real (if plain) model of the real data."""
    from fbrec.data.prepare import interactions_csr

    m = interactions_csr(data.train, data.num_users, data.num_items).toarray()
    u, s, vt = np.linalg.svd(m, full_matrices=False)
    users = (u[:, :dim] * np.sqrt(s[:dim])).astype(np.float32)
    items = (vt[:dim].T * np.sqrt(s[:dim])).astype(np.float32)
    if flip:
        users = -users
    seen = pl.concat([data.train.select("user_index", "item_index"), data.val.select("user_index", "item_index")])
    write_bundle(out, user_embeddings=users, item_embeddings=items, user_map=data.user_map, item_map=data.item_map,
                 seen=seen, model="svd", items=data.items, dataset=data.name, index_factory=index, overwrite=True)
    return out


@pytest.fixture(scope="module")
def ml100k(shared_data):
    from fbrec.data.prepare import prepare

    return prepare("movielens-100k", root=shared_data)


@pytest.fixture(scope="module")
def bundles(ml100k, tmp_path_factory):
    root = tmp_path_factory.mktemp("bundles")
    return {"a": _svd_bundle(root / "a", ml100k), "b": _svd_bundle(root / "b", ml100k, index="IVF16,Flat", flip=True),
            "narrow": _svd_bundle(root / "narrow", ml100k, dim=8), "root": root}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


TOKEN = "s3cret-admin-token"
ADMIN = {"Authorization": f"Bearer {TOKEN}"}


class Server:
    def __init__(self, bundle, *extra, token: str | None = TOKEN):
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        # The log goes to a file: an undrained pipe fills after ~64 KB of access lines and then blocks the server
        # on its next log write (which once looked like a service hang under traffic).
        self.log = tempfile.TemporaryFile(mode="w+")
        self.proc = subprocess.Popen([sys.executable, "-m", "fbrec.cli.main", "serve", "--bundle", str(bundle),
                                      "--port", str(self.port), "--max-k", "100", "--max-batch", "8",
                                      "--max-body", "20000", *extra],
                                     stdout=self.log, stderr=subprocess.STDOUT, text=True,
                                     env={**os.environ, "FBREC_ADMIN_TOKEN": token or ""})
        deadline = time.time() + 60
        while time.time() < deadline:
            assert self.proc.poll() is None, self.output()
            try:
                if requests.get(f"{self.url}/readyz", timeout=1).status_code == 200:
                    return
            except requests.ConnectionError:
                pass
            time.sleep(0.2)
        raise AssertionError("server did not become ready")

    def post(self, path, body, **kw):
        return requests.post(f"{self.url}{path}", json=body, timeout=10, **kw)

    def admin(self, body, **kw):
        return self.post("/admin/reload", body, headers=ADMIN, **kw)

    def get(self, path, **kw):
        return requests.get(f"{self.url}{path}", timeout=10, **kw)

    def output(self) -> str:
        self.log.seek(0)
        return self.log.read()

    def stop(self) -> str:
        self.proc.send_signal(signal.SIGINT)
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        out = self.output()
        self.log.close()
        return out


@pytest.fixture(scope="module")
def server(bundles):
    srv = Server(bundles["a"])
    yield srv
    srv.stop()


def test_recommend_returns_titles_and_excludes_seen_items(server, ml100k):
    r = server.post("/recommend", {"user": 196, "k": 10})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["fallback"] is None and len(body["items"]) == 10
    assert all(it["attributes"]["title"] for it in body["items"])
    scores = [it["score"] for it in body["items"]]
    assert scores == sorted(scores, reverse=True)
    u = ml100k.user_map.raw.to_list().index(196)
    seen = set(ml100k.item_map.decode(pl.concat([ml100k.train, ml100k.val]).filter(pl.col("user_index") == u)
                                      ["item_index"].to_numpy()))
    assert not seen & {it["item"] for it in body["items"]}
    with_seen = server.post("/recommend", {"user": 196, "k": 10, "exclude_seen": False}).json()["items"]
    assert seen & {it["item"] for it in with_seen}, "without exclusion the user's own items come back"
    assert server.get("/recommend/196?k=10").json()["items"] == body["items"]


def test_filters_keep_k_items_by_over_fetching(server):
    comedies = server.post("/recommend", {"user": 196, "k": 20, "filter": {"attributes": {"genres": ["Film-Noir"]}}})
    items = comedies.json()["items"]
    assert len(items) == 20 and all("Film-Noir" in it["attributes"]["genres"] for it in items), comedies.text
    only = server.post("/recommend", {"user": 1, "k": 10, "exclude_seen": False,
                                      "filter": {"include_items": [1, 50, 100]}}).json()["items"]
    assert sorted(it["item"] for it in only) == [1, 50, 100]
    without = server.post("/recommend", {"user": 1, "k": 5, "filter": {"exclude_items": [
        it["item"] for it in server.post("/recommend", {"user": 1, "k": 5}).json()["items"]]}}).json()["items"]
    assert len(without) == 5


def test_stated_preferences_filter_and_boost_in_the_service(server):
    plain = server.post("/recommend", {"user": 196, "k": 10}).json()["items"]
    no_drama = server.post("/recommend", {"user": 196, "k": 10,
                                          "preferences": {"exclude": {"genres": ["drama"]}}}).json()["items"]
    assert len(no_drama) == 10 and not any("Drama" in it["attributes"]["genres"] for it in no_drama)
    assert any("Drama" in it["attributes"]["genres"] for it in plain), "the test needs dramas in the plain list"
    nineties = server.post("/recommend", {"user": 196, "k": 10, "preferences": {
        "min_year": 1990, "max_year": 1999, "boost": {"genres": {"Comedy": 3.0}}}}).json()["items"]
    assert all(1990 <= it["attributes"]["year"] <= 1999 for it in nineties)
    comedies = sum("Comedy" in it["attributes"]["genres"] for it in nineties)
    assert comedies > sum("Comedy" in it["attributes"]["genres"] for it in plain) and comedies >= 8
    empty = server.post("/recommend", {"user": 196, "k": 5, "preferences": {"min_year": 1999, "max_year": 1990}})
    assert empty.status_code == 200 and empty.json()["items"] == [], empty.text   # an empty range, as documented
    bad = server.post("/recommend", {"user": 196, "k": 5, "preferences": {"exclude": {"mood": ["dark"]}}})
    assert bad.status_code == 422 and "attribute 'mood'" in bad.json()["error"] and "genres" in bad.json()["rule"]
    typo = server.post("/recommend", {"user": 196, "k": 5, "preferences": {"exclud": {}}})
    assert typo.status_code == 422 and "exclud" in typo.json()["error"]
    like = server.post("/recommend", {"user": 196, "k": 10, "preferences": {"similar_to": ["Star Wars (1977)"]}})
    assert like.status_code == 200 and "Star Wars" not in [it["attributes"]["title"] for it in like.json()["items"]]
    assert [it["item"] for it in like.json()["items"]] != [it["item"] for it in plain]
    unknown = server.post("/recommend", {"user": 196, "k": 5, "preferences": {"similar_to": ["Star Warz"]}})
    assert unknown.status_code == 422 and "similar_to names 'Star Warz'" in unknown.json()["error"], unknown.text


def test_unknown_and_cold_users_get_the_popularity_fallback_flagged(server):
    body = server.post("/recommend", {"user": "nobody", "k": 3}).json()
    assert body["fallback"] == "popularity" and [it["attributes"]["title"] for it in body["items"]][0] == "Star Wars"
    assert server.post("/recommend", {"user": 999_999, "k": 3}).json()["fallback"] == "popularity"


def test_batch_similar_and_vector_search(server):
    batch = server.post("/recommend/batch", {"users": [1, 2, "nobody"], "k": 4}).json()
    assert [r["fallback"] for r in batch["results"]] == [None, None, "popularity"]
    similar = server.post("/similar", {"item": 1, "k": 5}).json()["items"]
    assert len(similar) == 5 and 1 not in [it["item"] for it in similar]
    manifest = server.get("/version").json()["manifest"]
    vector = server.post("/search", {"vector": [0.1] * manifest["embedding_dim"], "k": 3})
    assert vector.status_code == 200 and len(vector.json()["items"]) == 3


def test_health_version_and_prometheus_metrics(server):
    assert server.get("/healthz").json() == {"status": "alive"}
    assert server.get("/readyz").json()["status"] == "ready"
    version = server.get("/version").json()
    assert version["manifest"]["checksums"]["index.faiss"] and version["manifest"]["index_factory"] == "Flat"
    assert version["manifest"]["recall_at_k"] == 1.0
    server.post("/recommend", {"user": 1, "k": 2})
    text = server.get("/metrics").text
    assert 'fbrec_http_requests_total{path="/recommend",status="200"}' in text
    assert 'fbrec_http_request_seconds_bucket{le="0.01",path="/recommend"}' in text
    assert f'fbrec_bundle_info{{version="{server.get("/version").json()["bundle_version"]}"}} 1' in text


def test_no_answer_reveals_a_filesystem_path(server, bundles):
    """The bundle is named by run id + manifest checksum; its folder and the working directory stay private."""
    import os

    secrets = {str(bundles["a"].resolve()), os.getcwd()}
    answers = [server.get(p).text for p in ("/version", "/metrics", "/readyz", "/healthz")]
    answers.append(server.admin({}).text)
    answers.append(server.admin({"bundle": "missing-bundle"}).text)
    for text in answers:
        assert not any(s in text for s in secrets), text[:500]


BAD_REQUESTS = [
    ("unknown field", "/recommend", {"user": 1, "kk": 3}, 422, r"kk: Extra inputs are not permitted"),
    ("k as text", "/recommend", {"user": 1, "k": "ten"}, 422, r"k: Input should be a valid integer"),
    ("k zero", "/recommend", {"user": 1, "k": 0}, 422, r"k=0"),
    ("k negative", "/recommend", {"user": 1, "k": -3}, 422, r"k=-3"),
    ("k above max", "/recommend", {"user": 1, "k": 101}, 422, r"1 <= k <= 100"),
    ("missing user", "/recommend", {"k": 3}, 422, r"user: Field required"),
    ("user as list", "/recommend", {"user": [1], "k": 3}, 422, r"user"),
    ("unknown include id", "/recommend", {"user": 1, "filter": {"include_items": [424242]}}, 404,
     r"unknown item ids in include_items: \[424242\]"),
    ("unknown exclude id", "/recommend", {"user": 1, "filter": {"exclude_items": ["x"]}}, 404,
     r"unknown item ids in exclude_items"),
    ("unknown attribute", "/recommend", {"user": 1, "filter": {"attributes": {"colour": ["red"]}}}, 422,
     r"unknown item attribute 'colour'"),
    ("bad filter field", "/recommend", {"user": 1, "filter": {"genre": ["x"]}}, 422, r"filter.genre"),
    ("empty batch", "/recommend/batch", {"users": []}, 422, r"users"),
    ("oversize batch", "/recommend/batch", {"users": list(range(9))}, 422, r"9 users in one batch.*at most 8"),
    ("unknown similar item", "/similar", {"item": 424242}, 404, r"unknown item ids in item"),
    ("vector too short", "/search", {"vector": [1.0, 2.0]}, 422, r"vector has 2 values.*embedding_dim=32"),
    ("vector not finite", "/search", '{"vector": [' + ", ".join(["NaN"] * 32) + "]}", 422, r"NaN"),
    ("vector infinite", "/search", '{"vector": [' + ", ".join(["Infinity"] * 32) + "]}", 422, r"infinite"),
    ("vector of text", "/search", {"vector": ["a"] * 32}, 422, r"vector"),
    ("oversize body", "/recommend/batch", {"users": ["u" * 5000] * 8}, 413, r"bytes"),
    ("not json", "/recommend", "this is not json", 422, r""),
    # no coercion: a bool is not an int, 0 is not false (issue 23's hostile set)
    ("k as bool", "/recommend", {"user": 1, "k": True}, 422, r"k: Input should be a valid integer"),
    ("user as bool", "/recommend", {"user": True}, 422, r"user"),
    ("exclude_seen as 0", "/recommend", {"user": 1, "exclude_seen": 0}, 422, r"exclude_seen: .*valid boolean"),
    ("include id as bool", "/recommend", {"user": 1, "filter": {"include_items": [True]}}, 422, r"include_items"),
    # attribute values of another type than the column's: one 4xx, not a polars error
    ("year as text", "/recommend", {"user": 1, "filter": {"attributes": {"year": ["1995"]}}}, 422,
     r"attribute 'year' values \['1995'\] are not of its type"),
    ("genres as lists", "/recommend", {"user": 1, "filter": {"attributes": {"genres": [["Comedy"]]}}}, 422,
     r"attribute 'genres' values"),
    ("vector overflow", "/search", {"vector": [3e38] * 32}, 422, r"magnitude 3e\+38.*within"),
    ("NaN boost", "/recommend", '{"user": 1, "preferences": {"boost": {"genres": {"Comedy": NaN}}}}', 422,
     r"preferences.boost .*within \+-100"),
    ("huge boost", "/recommend", {"user": 1, "preferences": {"boost": {"genres": {"Comedy": 1e308}}}}, 422,
     r"preferences.boost"),
    ("reload without a token", "/admin/reload", {}, 401, r"missing or wrong admin token.*Bearer"),
    ("vector of huge values", "/search", {"vector": [1e300] * 32}, 422, r"NaN or infinite"),
    ("vector beyond the range", "/search", {"vector": [2e6] * 32}, 422, r"within \+-1e\+06"),
    ("unknown route", "/no/such/route", {}, 404, r"POST /no/such/route: Not Found"),
]


def test_get_on_the_batch_route_is_refused_not_served_as_a_user_named_batch(server):
    r = server.get("/recommend/batch")
    assert r.status_code == 405 and "POST /recommend/batch" in r.json()["rule"], r.text


def test_a_user_id_beyond_any_integer_type_is_an_unknown_user_not_a_5xx(server):
    r = server.post("/recommend", {"user": 1180591620717411303424, "k": 3})
    assert r.status_code == 200 and r.json()["fallback"] == "popularity", r.text
    r = server.get("/recommend/1180591620717411303424?k=3")
    assert r.status_code == 200 and r.json()["fallback"] == "popularity", r.text


@pytest.mark.parametrize("name,path,body,status,pattern", BAD_REQUESTS, ids=[b[0] for b in BAD_REQUESTS])
def test_bad_requests_get_a_4xx_naming_the_problem(server, name, path, body, status, pattern):
    import re

    r = (server.post(path, body) if not isinstance(body, str)
         else requests.post(f"{server.url}{path}", data=body, headers={"content-type": "application/json"}))
    assert r.status_code == status, r.text
    assert re.search(pattern, r.json()["error"] + " " + r.json().get("rule", "")), r.text


def test_metric_labels_are_route_templates_and_unmatched_is_only_a_404(server):
    server.get("/docs"), server.get("/openapi.json"), server.get("/no/such/page"), server.get("/recommend/1?k=2")
    lines = [line for line in server.get("/metrics").text.splitlines() if line.startswith("fbrec_http_requests_total")]
    assert any('path="/docs",status="200"' in line for line in lines), lines
    assert any('path="/openapi.json",status="200"' in line for line in lines), lines
    assert any('path="/recommend/{user}",status="200"' in line for line in lines), lines
    assert all('status="404"' in line for line in lines if 'path="unmatched"' in line), lines


def test_no_request_in_this_module_ended_in_a_5xx(server):
    text = server.get("/metrics").text
    errors = [line for line in text.splitlines() if line.startswith("fbrec_http_errors_total")]
    assert errors == ["fbrec_http_errors_total 0"], "the counter exists from the start and stayed at zero"
    assert not [line for line in text.splitlines() if 'status="5' in line]


def test_the_service_process_never_loads_torch(server):
    maps = open(f"/proc/{server.proc.pid}/maps").read()
    assert "libtorch" not in maps and "lightning" not in maps


def test_reload_under_concurrent_traffic_fails_no_request(bundles):
    srv = Server(bundles["a"])
    try:
        first = srv.get("/readyz").json()["bundle_version"]
        failures, versions, stop = [], set(), threading.Event()

        def traffic():
            session = requests.Session()
            while not stop.is_set():
                r = session.post(f"{srv.url}/recommend", json={"user": 1, "k": 10}, timeout=10)
                if r.status_code != 200:
                    failures.append(r.text)
                else:
                    versions.add(r.json()["bundle_version"])

        workers = [threading.Thread(target=traffic) for _ in range(4)]
        for w in workers:
            w.start()
        time.sleep(0.5)
        for target in ("b", "a", "b", "a", "b"):
            r = srv.admin({"bundle": str(bundles[target])})
            assert r.status_code == 200, r.text
            time.sleep(0.3)
        stop.set()
        for w in workers:
            w.join()
        assert failures == []
        second = srv.get("/readyz").json()["bundle_version"]
        assert second != first and versions == {first, second}, "requests were answered by both bundles"
        text = srv.get("/metrics").text
        assert 'fbrec_bundle_reloads_total{result="loaded"} 6' in text
    finally:
        log = srv.stop()
    assert log.count("POST /recommend") > 100, "the access log (default on) logs every request"


def test_a_corrupt_or_incompatible_bundle_is_refused_and_the_old_one_keeps_serving(bundles, ml100k):
    import shutil

    broken = bundles["root"] / "broken"
    shutil.copytree(bundles["b"], broken)
    (broken / "item_embeddings.npy").write_bytes(b"garbage")
    device = bundles["root"] / "device"   # a manifest naming /dev/zero once hung the reload (and SIGTERM) forever
    shutil.copytree(bundles["b"], device)
    manifest = json.loads((device / "manifest.json").read_text())
    manifest["checksums"]["/dev/zero"] = "0" * 64
    (device / "manifest.json").write_text(json.dumps(manifest))
    srv = Server(bundles["a"], "--no-access-log")
    try:
        live = srv.get("/readyz").json()["bundle_version"]
        for target, pattern in ((broken, "fails its sha256"), (bundles["narrow"], "embedding_dim is 8"),
                                (bundles["root"] / "missing", "is not a bundle"),
                                (device, "lists '/dev/zero', which is not a bundle file")):
            r = srv.admin({"bundle": str(target)})
            assert r.status_code == 409 and pattern in r.json()["error"], r.text
            assert r.json()["serving"] == live
            assert srv.post("/recommend", {"user": 1, "k": 3}).json()["bundle_version"] == live
        assert 'fbrec_bundle_reloads_total{result="refused"} 4' in srv.get("/metrics").text
        log = srv.stop()
        assert "refused, still serving" in log
        assert "POST /recommend" not in log, "--no-access-log still logged requests"
    finally:
        if srv.proc.poll() is None:
            srv.stop()


def test_sighup_reloads_the_bundle_path_after_an_atomic_re_export(bundles, ml100k):
    import shutil

    path = bundles["root"] / "live"
    shutil.copytree(bundles["a"], path)
    srv = Server(path)
    try:
        before = srv.get("/readyz").json()["bundle_version"]
        _svd_bundle(path, ml100k, flip=True)   # fbrec's atomic swap: the service never sees half a bundle
        os.kill(srv.proc.pid, signal.SIGHUP)
        deadline = time.time() + 20
        while srv.get("/readyz").json()["bundle_version"] == before and time.time() < deadline:
            time.sleep(0.1)
        assert srv.get("/readyz").json()["bundle_version"] != before
    finally:
        srv.stop()


def test_retrieve_applies_a_command_in_words(bundles, capsys):
    from test_cli import _run

    code, output = _run(["retrieve", "--bundle", str(bundles["a"]), "--user", "196", "--k", "5", "--command",
                         "only westerns"], capsys)
    assert code == 0 and '"include": {"genres": ["Western"]}' in output, output
    # "like <title>": the title from the bundle's catalogue, neighbours by the bundle's item embeddings
    from fbrec.api import retrieve
    from fbrec.bundle import Bundle

    code, output = _run(["retrieve", "--bundle", str(bundles["a"]), "--user", "196", "--k", "5", "--command",
                         "more like Star Wars"], capsys)
    assert code == 0 and '"similar_to": ["Star Wars (1977)"]' in output and '"War"' not in output, output
    b = Bundle(bundles["a"])
    star_wars = int(np.flatnonzero(b.items["title"].to_numpy() == "Star Wars")[0])
    unit = b.item_embeddings / np.maximum(np.linalg.norm(b.item_embeddings, axis=1, keepdims=True), 1e-12)
    closeness = {}
    for command in ("more like Star Wars", None):
        rec = retrieve(bundles["a"], 196, 10, exact=True, command=command)
        picked = b.item_map.encode(pl.DataFrame({"item": rec.items}), "item", "index")["index"].to_numpy()
        assert star_wars not in picked.tolist()
        closeness[command] = float((unit[picked] @ unit[star_wars]).mean())
    assert closeness["more like Star Wars"] > closeness[None], closeness
    code, output = _run(["retrieve", "--bundle", str(bundles["a"]), "--user", "196", "--k", "5", "--preferences",
                         '{"exclude": {"genres": [1'], capsys)
    assert code == 2 and "--preferences is not JSON" in output
    code, output = _run(["llm", "parse", "fewer horror films, more 90s comedies", "--bundle", str(bundles["a"])],
                        capsys)
    assert code == 0 and json.loads(output.strip().splitlines()[-1]) == {
        "boost": {"genres": {"Horror": -1.0, "Comedy": 1.0}}, "min_year": 1990, "max_year": 1999}


def test_retrieve_shows_titles_from_the_bundle(bundles, capsys):
    from test_cli import _run

    from fbrec.bundle import Bundle

    b = Bundle(bundles["a"])
    first = b.item_attributes(b.recommend_indices(196, 1)[0])[0]["title"]
    code, output = _run(["retrieve", "--bundle", str(bundles["a"]), "--user", "196", "--k", "3"], capsys)
    assert code == 0 and "title" in output and first in output, output


def test_a_bad_bundle_stops_serve_with_one_line(tmp_path, capsys):
    from test_cli import _run

    code, output = _run(["serve", "--bundle", str(tmp_path)], capsys)
    assert code == 2 and "is not a bundle" in output


def test_several_workers_serve_the_same_bundle(bundles):
    srv = Server(bundles["a"], "--workers", "2")
    try:
        answers = {srv.post("/recommend", {"user": 1, "k": 3}).json()["bundle_version"] for _ in range(10)}
        assert len(answers) == 1
    finally:
        srv.stop()


def test_gpu_serving_refuses_clearly_without_a_gpu_and_searches_on_one(bundles, capsys):
    from test_cli import _run

    from fbrec.retrieval import gpu_available

    if gpu_available():
        srv = Server(bundles["a"], "--gpu")
        try:
            assert len(srv.post("/recommend", {"user": 1, "k": 5}).json()["items"]) == 5
        finally:
            srv.stop()
    else:
        code, output = _run(["serve", "--bundle", str(bundles["a"]), "--gpu"], capsys)
        assert code == 2 and "FAISS sees no GPU" in output


# --- access: admin token, bundle root, Host allow-list; one error shape; the fuzzer -----------------------------------
def test_admin_endpoints_are_off_without_a_token_and_refuse_a_wrong_one(bundles, server):
    off = Server(bundles["a"], "--no-access-log", token=None)
    try:
        r = off.admin({})   # even with a token in hand: there is none to match
        assert r.status_code == 404 and "admin endpoints are off" in r.json()["error"], r.text
        assert "--admin-token" in r.json()["rule"]
    finally:
        off.stop()
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": f"Basic {TOKEN}"}):
        r = server.post("/admin/reload", {}, headers=headers)
        assert r.status_code == 401 and r.headers["WWW-Authenticate"] == "Bearer", r.text
    # a cross-site form post (text/plain, no Authorization) can neither authenticate nor be read as JSON
    r = requests.post(f"{server.url}/admin/reload", data="{}", headers={"content-type": "text/plain"}, timeout=10)
    assert r.status_code == 401, r.text
    assert server.admin({}).status_code == 200


def test_reload_reads_only_folders_under_the_bundle_root(bundles, tmp_path):
    outside = tmp_path / "outside"
    import shutil

    shutil.copytree(bundles["b"], outside)
    escape = bundles["root"] / "escape"
    escape.symlink_to(outside, target_is_directory=True)
    srv = Server(bundles["a"], "--no-access-log")
    try:
        for name in (str(outside), "../outside", "escape", "/etc", "a/../../.."):
            r = srv.admin({"bundle": name})
            assert r.status_code == 403 and "outside the bundle root" in r.json()["error"], (name, r.text)
            assert str(outside) not in r.text and str(bundles["root"]) not in r.text
        r = srv.admin({"bundle": "b"})   # a name relative to the root (the served bundle's parent)
        assert r.status_code == 200, r.text
        r = srv.admin({"bundle": "no-such-bundle"})
        assert r.status_code == 409 and r.json()["error"] == ("bundle refused: 'no-such-bundle' is not a bundle "
                                                             "(no manifest.json)"), r.text
        for empty in ("", "  "):   # would resolve to the root itself: named as the empty name it is
            r = srv.admin({"bundle": empty})
            assert r.status_code == 422 and f"the bundle name {empty!r} is empty" in r.json()["error"], r.text
            assert "reload the current one" in r.json()["error"]
        r = srv.admin({"bundle": "x" * 5000})
        assert r.status_code == 409 and r.json()["error"] == "bundle refused: OSError: File name too long", r.text
    finally:
        srv.stop()
        escape.unlink()


def test_requests_must_name_an_allowed_host(server):
    for host, status in ((f"127.0.0.1:{server.port}", 200), (f"localhost:{server.port}", 200),
                         (f"[::1]:{server.port}", 200), ("evil.example", 400), (f"attacker.test:{server.port}", 400),
                         ("", 400)):
        r = requests.get(f"{server.url}/readyz", headers={"Host": host}, timeout=10)
        assert r.status_code == status, (host, r.text)
    r = requests.post(f"{server.url}/admin/reload", json={}, headers={"Host": "rebound.example", **ADMIN}, timeout=10)
    assert r.status_code == 400 and "--allowed-host" in r.json()["fix"], r.text


def test_every_error_has_one_shape_documented_in_the_openapi(server):
    schema = server.get("/openapi.json").json()
    error = {"$ref": "#/components/schemas/ErrorBody"}
    for path, methods in schema["paths"].items():
        for method, op in methods.items():
            codes = {c for c in op["responses"] if c.startswith(("4", "5"))}
            assert {"400", "404", "405", "413", "500"} <= codes, (path, method, codes)
            for code in codes:
                assert op["responses"][code]["content"]["application/json"]["schema"] == error, (path, method, code)
    assert "HTTPValidationError" not in schema["components"]["schemas"]
    fields = set(schema["components"]["schemas"]["ErrorBody"]["properties"])
    for r in (server.post("/recommend", {"user": 1, "k": 0}), server.get("/nowhere"), server.get("/similar"),
              server.post("/similar", {"item": 424242}), server.get("/recommend/batch"),
              server.post("/admin/reload", {}), server.post("/recommend", "not json")):
        assert r.status_code >= 400 and set(r.json()) <= fields and r.json()["error"], r.text


def test_the_openapi_states_the_limits_the_service_enforces(server):
    models = server.get("/openapi.json").json()["components"]["schemas"]
    assert models["RecommendRequest"]["properties"]["k"]["maximum"] == 100   # --max-k 100
    assert models["BatchRecommendRequest"]["properties"]["users"]["maxItems"] == 8   # --max-batch 8
    vector = models["VectorRequest"]["properties"]["vector"]
    assert vector["minItems"] == vector["maxItems"] == 32 and vector["items"]["maximum"] == 1e6
    attrs = models["ItemFilter"]["properties"]["attributes"]
    assert attrs["properties"]["year"]["items"]["type"] == "integer" and attrs["additionalProperties"] is False
    assert models["RecommendRequest"]["properties"]["features"]["type"] == "null"   # no user tower in this bundle


def test_metrics_parse_with_the_prometheus_parser_and_every_counter_exists_from_the_start(bundles):
    from prometheus_client.parser import text_string_to_metric_families

    srv = Server(bundles["a"], "--no-access-log")
    try:
        families = {f.name: f for f in text_string_to_metric_families(srv.get("/metrics").text)}
    finally:
        srv.stop()
    for name in ("fbrec_http_errors", "fbrec_fallback", "fbrec_bundle_reloads", "fbrec_bundle_info",
                 "fbrec_bundle_items"):
        assert name in families, sorted(families)
    assert [s.value for s in families["fbrec_http_errors"].samples if s.name.endswith("_total")] == [0.0]


def test_an_openapi_fuzzer_finds_no_failure_with_all_its_checks(server, tmp_path):
    """schemathesis, from the service's own /openapi.json, every check on (5xx, status and schema conformance,
    positive and negative data, methods), with and without the admin token."""
    cli = os.path.join(os.path.dirname(sys.executable), "schemathesis")
    env = dict(os.environ)   # no hooks: every rule of a request is in the schema (min_year > max_year is empty)
    for auth in ((), ("-H", f"Authorization: Bearer {TOKEN}")):
        run = subprocess.run([cli, "run", f"{server.url}/openapi.json", "--checks", "all", "--max-examples", "60",
                              "--workers", "2", "--no-color", "--seed", "23", *auth],
                             capture_output=True, text=True, timeout=300, env=env, cwd=tmp_path)   # its cache
        summary = run.stdout[run.stdout.rfind("SUMMARY"):]
        assert run.returncode == 0 and "passed" in summary and "Failures:" not in summary \
            and "Errors:" not in summary, \
            run.stdout[-4000:] + run.stderr[-2000:]
    assert server.get("/metrics").text.count("fbrec_http_errors_total 0") == 1


def test_a_whole_number_written_as_a_float_is_that_integer_and_a_fraction_is_refused(server):
    """JSON has one number type: k=5.0 is k=5 (as JSON Schema's integer says); 5.5 and true are not integers."""
    r = server.post("/recommend", {"user": 1, "k": 5.0})
    assert r.status_code == 200 and len(r.json()["items"]) == 5, r.text
    for k in (5.5, True):
        assert server.post("/recommend", {"user": 1, "k": k}).status_code == 422


def test_the_default_allowed_hosts_are_loopback_and_the_listening_address():
    import socket

    from fbrec.serving.settings import LOOPBACK_HOSTS, default_allowed_hosts

    assert default_allowed_hosts("10.1.2.3") == (*LOOPBACK_HOSTS, "10.1.2.3")
    assert default_allowed_hosts("127.0.0.1") == LOOPBACK_HOSTS
    wildcard = default_allowed_hosts("0.0.0.0")   # any interface: this machine's own name answers too
    assert socket.gethostname().lower() in wildcard and set(LOOPBACK_HOSTS) <= set(wildcard)
