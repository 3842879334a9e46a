"""`fbrec data fetch`: the real download code against a real HTTP server on 127.0.0.1 serving the published files
(rebuilt from ../shared/data), with its faults; nothing half-written ever appears in the data directory."""

from __future__ import annotations

import io
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from data_mirror import Mirror, path_of, published_files

from fbrec.data.datasets import load_raw
from fbrec.data.fetch import FetchError, fetch, verify
from fbrec.data.sources import SOURCES, drop_last_user_block
from fbrec.errors import DataValidationError, UnknownNameError

ML = SOURCES["movielens-100k"]
ML_ZIP = path_of(ML.downloads[0].url)


@pytest.fixture(scope="module")
def published(shared_data) -> dict[str, bytes]:
    return published_files(shared_data)


@pytest.fixture()
def mirror(published, monkeypatch):
    server = Mirror(published)
    monkeypatch.setenv("FBREC_DATA_MIRROR", server.url)
    monkeypatch.setenv("FBREC_FETCH_TIMEOUT", "1")
    yield server
    server.close()


def _only_the_dataset(root: Path, name: str) -> None:
    """After a fetch: the dataset's folder and nothing else (no staging folder, no .part)."""
    assert sorted(p.name for p in root.iterdir()) == [name]


@pytest.mark.parametrize("name", sorted(SOURCES))
def test_every_dataset_arrives_whole_and_matches_its_pins(name, mirror, tmp_path, shared_data):
    got = fetch(name, tmp_path)
    assert got.downloaded and got.path == tmp_path / name
    assert verify(SOURCES[name], got.path) == []
    for rel in SOURCES[name].pins:
        assert (got.path / rel).read_bytes() == (shared_data / name / rel).read_bytes()
    _only_the_dataset(tmp_path, name)
    again = fetch(name, tmp_path)                                 # present: verified, nothing downloaded
    assert not again.downloaded
    assert len(mirror.requests) == len(SOURCES[name].downloads)


def test_a_fetched_dataset_loads_like_the_shared_copy(mirror, tmp_path, shared_data):
    fetch("movielens-100k", tmp_path)
    assert load_raw("movielens-100k", tmp_path).log.equals(load_raw("movielens-100k", shared_data).log)


def test_the_taobao_derivation_drops_exactly_the_cut_user():
    raw = b"1,2,3,pv,10\n1,4,5,buy,11\n7,8,9,pv,12\n7,8,9,pv"
    assert drop_last_user_block(raw) == b"1,2,3,pv,10\n1,4,5,buy,11\n"


def test_first_use_fetches_with_a_note_and_offline_names_the_missing_file(mirror, tmp_path, monkeypatch, capfd):
    monkeypatch.setenv("FBREC_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("FBREC_OFFLINE", "1")
    with pytest.raises(DataValidationError, match=r"file '.*u\.data' is missing"):
        load_raw("movielens-100k")
    assert list(tmp_path.iterdir()) == []
    monkeypatch.delenv("FBREC_OFFLINE")
    assert load_raw("movielens-100k").log.height == 100_000
    assert "note: dataset 'movielens-100k' is not in" in capfd.readouterr().err
    _only_the_dataset(tmp_path, "movielens-100k")


def test_a_cut_download_resumes_from_where_it_stopped(mirror, tmp_path):
    mirror.faults[ML_ZIP] = "cut_once"
    fetch("movielens-100k", tmp_path)
    (first, _), (second, resumed_at) = mirror.requests
    assert first == second == ML_ZIP and resumed_at == f"bytes={len(mirror.files[ML_ZIP]) // 2}-"
    _only_the_dataset(tmp_path, "movielens-100k")


def test_a_server_that_ignores_ranges_restarts_the_download(mirror, tmp_path):
    fetch_args = ("movielens-100k", tmp_path)
    mirror.faults[ML_ZIP] = "cut"
    with pytest.raises(FetchError, match=r"stopped at \d+ of \d+ bytes"):
        fetch(*fetch_args)
    assert not (tmp_path / "movielens-100k").exists()
    assert list((tmp_path / ".movielens-100k.fetching").rglob("*.part"))    # kept to resume from
    mirror.faults[ML_ZIP] = "no_range"
    fetch(*fetch_args)                                             # the .part is not trusted: a full 200 body
    assert verify(ML, tmp_path / "movielens-100k") == []
    _only_the_dataset(tmp_path, "movielens-100k")


def test_a_redirect_is_followed(mirror, tmp_path):
    mirror.faults[ML_ZIP] = "redirect"
    fetch("movielens-100k", tmp_path)
    assert [p for p, _ in mirror.requests] == [ML_ZIP, "/moved" + ML_ZIP]


def _tampered(files: dict[str, bytes]) -> bytes:
    archive = zipfile.ZipFile(io.BytesIO(files[ML_ZIP]))
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as out:
        for member in archive.namelist():
            body = archive.read(member)
            out.writestr(member, body.replace(b"\t5\t", b"\t4\t", 1) if member.endswith("u.data") else body)
    return buffer.getvalue()


# fault -> (what the server does, the message); every case leaves no dataset folder behind
FAULTS = {
    "not found": ("404", r"answered HTTP 404"),
    "server error": ("500", r"failed after 3 tries \(HTTP 500"),
    "cut every time": ("cut", r"failed after 3 tries \(the body stopped at \d+ of \d+ bytes\)"),
    "stalled": ("stall", r"no data for 1 s \(FBREC_FETCH_TIMEOUT\)"),
    "wrong checksum": ("tamper", r"u\.data from .* has 1979173 bytes and sha256 [0-9a-f]{64}; the pinned release has "
                                 r"1979173 bytes and sha256 06416e59"),
    "not a zip": ("garbage", r"is not a zip archive"),
}


@pytest.mark.parametrize("case", sorted(FAULTS))
def test_faults_are_one_clear_error_and_leave_no_dataset(case, mirror, tmp_path):
    fault, message = FAULTS[case]
    if fault == "tamper":
        mirror.files[ML_ZIP] = _tampered(mirror.files)
    elif fault == "garbage":
        mirror.files[ML_ZIP] = b"<html>please log in</html>"
    else:
        mirror.faults[ML_ZIP] = fault
    with pytest.raises(FetchError, match=message) as err:
        fetch("movielens-100k", tmp_path)
    assert mirror.url + ML_ZIP in str(err.value)
    assert "place u.data, u.item" in str(err.value) and str(tmp_path / "movielens-100k") in str(err.value)
    assert not (tmp_path / "movielens-100k").exists()
    staged = tmp_path / ".movielens-100k.fetching"
    assert not staged.exists() or not list(staged.rglob("*.zip"))     # a bad download is never kept whole


def test_a_folder_fbrec_did_not_write_is_refused_and_left_untouched(mirror, tmp_path):
    mine = tmp_path / "movielens-100k"
    mine.mkdir()
    (mine / "u.data").write_text("my own edits\n")
    with pytest.raises(DataValidationError, match=r"exists but is not the pinned release: u\.data has 13 bytes.*"
                                                  r"never replaces a folder it did not write"):
        fetch("movielens-100k", tmp_path)
    assert (mine / "u.data").read_text() == "my own edits\n" and mirror.requests == []


def test_unwritable_data_directory_and_unknown_names_are_refused(mirror, tmp_path):
    with pytest.raises(UnknownNameError, match=r"unknown fetchable dataset 'synthetic'.*movielens-100k"):
        fetch("synthetic", tmp_path)
    blocked = tmp_path / "file"
    blocked.write_text("")
    with pytest.raises(FetchError, match=r"cannot write to the data directory .*set FBREC_DATA_DIR"):
        fetch("coat", blocked)


def test_the_cli_shows_the_terms_then_fetches(mirror, tmp_path):
    env = {**os.environ, "FBREC_DATA_DIR": str(tmp_path), "COLUMNS": "200"}
    out = subprocess.run([sys.executable, "-m", "fbrec.cli.main", "data", "fetch", "coat"], capture_output=True,
                         text=True, env=env, timeout=300)
    assert out.returncode == 0, out.stderr
    assert "terms: no terms are stated" in out.stdout and "source: the files as the AutoDebias" in out.stdout
    assert f"coat: downloaded; every file matches its pinned sha256: {tmp_path / 'coat'}" in out.stdout
    again = subprocess.run([sys.executable, "-m", "fbrec.cli.main", "data", "fetch", "coat"], capture_output=True,
                           text=True, env=env, timeout=300)
    assert "already present" in again.stdout and "terms:" not in again.stdout
