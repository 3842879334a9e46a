"""A bundle verifies itself: every file checksummed, every part consistent with the manifest and the others; export
refuses what it must not serve; bundles and prepared datasets never replace a folder fbrec did not write."""

from __future__ import annotations

import hashlib
import json
import os
import stat

import numpy as np
import polars as pl
import pytest
from test_bundle_and_retrieval import _write

from fbrec._atomic import MARKER, atomic_directory, recover, stale_temps
from fbrec.bundle import Bundle
from fbrec.errors import BundleError, ConfigError
from fbrec.retrieval import build_index, write_index


@pytest.fixture()
def embeddings():
    rng = np.random.default_rng(0)
    return rng.normal(size=(30, 8)).astype(np.float32), rng.normal(size=(200, 8)).astype(np.float32)


def _rehash(path, *names):
    """Tamper as a careful forger would: fix the manifest's checksums after editing files."""
    manifest = json.loads((path / "manifest.json").read_text())
    for name in names:
        manifest["checksums"][name] = hashlib.sha256((path / name).read_bytes()).hexdigest()
    (path / "manifest.json").write_text(json.dumps(manifest))


def _edit_manifest(path, **changes):
    manifest = json.loads((path / "manifest.json").read_text())
    manifest.update(changes)
    (path / "manifest.json").write_text(json.dumps(manifest))


def _drop_checksum(path):
    manifest = json.loads((path / "manifest.json").read_text())
    del manifest["checksums"]["seen.parquet"]
    (path / "manifest.json").write_text(json.dumps(manifest))


def _repeat_user(path):
    frame = pl.read_parquet(path / "user_map.parquet")
    raw = frame["raw"].to_list()
    raw[1] = raw[0]
    frame.with_columns(pl.Series("raw", raw)).write_parquet(path / "user_map.parquet")
    _rehash(path, "user_map.parquet")


def _short_index(path):
    items = np.load(path / "item_embeddings.npy")
    write_index(build_index(items[:-1], "Flat"), path / "index.faiss")
    _rehash(path, "index.faiss")


def _l2_index(path):
    write_index(build_index(np.load(path / "item_embeddings.npy"), "Flat", metric="l2"), path / "index.faiss")
    _rehash(path, "index.faiss")


def _nan_item(path):
    items = np.load(path / "item_embeddings.npy")
    items[3, 0] = np.nan
    np.save(path / "item_embeddings.npy", items)
    _rehash(path, "item_embeddings.npy")


def _pickled_npy(path):
    np.save(path / "item_embeddings.npy", np.array([{"exec": "code"}], dtype=object), allow_pickle=True)
    _rehash(path, "item_embeddings.npy")


def _seen_outside(path):
    pl.DataFrame({"user_index": [0], "item_index": [10_000]}).write_parquet(path / "seen.parquet")
    _rehash(path, "seen.parquet")


def _short_item_map(path):
    frame = pl.read_parquet(path / "item_map.parquet")
    frame.head(frame.height - 1).write_parquet(path / "item_map.parquet")
    _rehash(path, "item_map.parquet")


def _checksum_key(key):
    def damage(path):
        manifest = json.loads((path / "manifest.json").read_text())
        manifest["checksums"][key] = "0" * 64
        (path / "manifest.json").write_text(json.dumps(manifest))
    return damage


def _manifest_dir(path):
    (path / "manifest.json").unlink()
    (path / "manifest.json").mkdir()


def _linked_file(path):
    (path / "seen.parquet").rename(path / "elsewhere.parquet")
    (path / "seen.parquet").symlink_to(path / "elsewhere.parquet")


CORRUPTIONS = {
    "checksum mismatch": (lambda p: (p / "item_embeddings.npy").write_bytes(b"x"), r"fails its sha256"),
    "file missing": (lambda p: (p / "index.faiss").unlink(), r"'index.faiss' is missing"),
    "manifest not json": (lambda p: (p / "manifest.json").write_text("{"), r"manifest.json .* is not JSON"),
    "no manifest": (lambda p: (p / "manifest.json").unlink(), r"is not a bundle"),
    "unlisted file": (_drop_checksum, r"lists no checksum for seen.parquet"),
    "num_items off": (lambda p: _edit_manifest(p, num_items=199), r"item embeddings \(200, 8\) are not"),
    "num_users off": (lambda p: _edit_manifest(p, num_users=31), r"user embeddings \(30, 8\) are not"),
    "unknown metric": (lambda p: _edit_manifest(p, metric="cosine"), r"metric 'cosine' is not one fbrec writes"),
    "index metric differs": (_l2_index, r"the index's metric \(l2\) is not the manifest's \('ip'\)"),
    "index size differs": (_short_index, r"the index holds 199 vectors of dim 8"),
    "repeated raw id": (_repeat_user, r"the user map repeats a raw id"),
    "id map short": (_short_item_map, r"the item map has 199 ids"),
    "NaN vector": (_nan_item, r"the embeddings hold NaN or inf"),
    "seen out of range": (_seen_outside, r"seen.parquet refers to users or items outside"),
    "pickled array": (_pickled_npy, r"bundle file 'item_embeddings.npy' in .* holds pickled Python objects, which "
                                    r"fbrec never loads"),
    "format version": (lambda p: _edit_manifest(p, format_version=99), r"bundle format 99 is not 1"),
    "format version as text": (lambda p: _edit_manifest(p, format_version="1"),
                               r"has format_version = '1' \(a JSON string\), where fbrec writes a JSON integer"),
    "dimension as text": (lambda p: _edit_manifest(p, embedding_dim="8"),
                          r"has embedding_dim = '8' \(a JSON string\), where fbrec writes a JSON integer"),
    "recall as a boolean": (lambda p: _edit_manifest(p, recall_at_k=True),
                            r"has recall_at_k = True \(a JSON boolean\), where fbrec writes a JSON number"),
    # a manifest names files by their bundle names only: a device, an absolute path or `..` never gets read (the
    # /dev/zero key once made `fbrec retrieve` and a service reload hang forever)
    "device as a checksum key": (_checksum_key("/dev/zero"), r"lists '/dev/zero', which is not a bundle file"),
    "parent path as a checksum key": (_checksum_key("../x.npy"), r"lists '../x.npy', which is not a bundle file"),
    "nested checksum key": (_checksum_key("sub/items.parquet"), r"which is not a bundle file"),
    "linked bundle file": (_linked_file, r"'seen.parquet' is not a regular file"),
    "manifest a directory": (_manifest_dir, r"manifest.json in .* is not a regular file"),
    "manifest not UTF-8": (lambda p: (p / "manifest.json").write_bytes(b'{"model": "\xff\xfe"}'),
                           r"is not UTF-8 text"),
    "manifest a list": (lambda p: (p / "manifest.json").write_text("[1, 2]"), r"holds a JSON list, not an object"),
    "manifest extra field": (lambda p: _edit_manifest(p, surprise=1), r"has unexpected fields"),
    "checksums a list": (lambda p: _edit_manifest(p, checksums=["a"]), r"checksums that are not a"),
}


@pytest.mark.parametrize("name", sorted(CORRUPTIONS))
def test_a_damaged_or_inconsistent_bundle_is_refused(name, tmp_path, embeddings):
    damage, pattern = CORRUPTIONS[name]
    _write(tmp_path, embeddings)
    damage(tmp_path / "bundle")
    with pytest.raises(BundleError, match=pattern):
        Bundle(tmp_path / "bundle")


@pytest.mark.parametrize("side", ["user", "item"])
def test_export_refuses_non_finite_vectors_and_writes_nothing(side, tmp_path, embeddings):
    users, items = (e.copy() for e in embeddings)
    (users if side == "user" else items)[4, 2] = np.inf
    with pytest.raises(ConfigError, match=rf"1 {side} embeddings are not finite .* indices \[4\]"):
        _write(tmp_path, (users, items))
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("raw", ["abc", "1.5", None, "", "u1x"])
def test_an_id_of_the_wrong_type_is_an_unknown_user_not_a_crash(raw, tmp_path, embeddings):
    from fbrec.bundle import write_bundle
    from fbrec.data.idmap import IdMap

    users, items = embeddings
    write_bundle(tmp_path / "b", user_embeddings=users, item_embeddings=items,
                 user_map=IdMap.fit("user", pl.Series(np.arange(len(users)))),
                 item_map=IdMap.fit("item", pl.Series(np.arange(len(items)))))
    bundle = Bundle(tmp_path / "b")
    assert bundle.find_user(raw) is None
    assert bundle.rank(raw, 3).fallback == "popularity"
    assert bundle.recommend("7", 3) == bundle.recommend(7, 3)
    assert bundle.rank("7", 3).fallback is None


def test_bundle_folders_are_readable_by_other_users(tmp_path, embeddings):
    old = os.umask(0o022)
    try:
        _write(tmp_path, embeddings)
    finally:
        os.umask(old)
    mode = (tmp_path / "bundle").stat().st_mode
    assert mode & stat.S_IROTH and mode & stat.S_IXOTH, oct(mode)
    assert all(p.stat().st_mode & stat.S_IROTH for p in (tmp_path / "bundle").iterdir())


# --- never touch what fbrec did not write ----------------------------------------------------------------------
def _precious(folder):
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "thesis.tex").write_text("years of work")
    return folder / "thesis.tex"


def test_export_never_replaces_a_folder_fbrec_did_not_write(tmp_path, embeddings):
    precious = _precious(tmp_path / "bundle")
    for overwrite in (False, True):
        with pytest.raises(ConfigError, match="non-empty directory fbrec did not write"):
            _write(tmp_path, embeddings, overwrite=overwrite)
    assert precious.read_text() == "years of work"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bundle"], "no temp folder left"


def test_export_replaces_its_own_bundle_only_with_overwrite(tmp_path, embeddings):
    _write(tmp_path, embeddings)
    with pytest.raises(ConfigError, match="already exists"):
        _write(tmp_path, embeddings)
    users, items = embeddings
    _write(tmp_path, (users, items * 2), overwrite=True)
    np.testing.assert_allclose(Bundle(tmp_path / "bundle").item_embeddings, items * 2)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bundle"]


def test_a_file_or_another_kind_of_fbrec_folder_is_never_replaced(tmp_path, embeddings):
    (tmp_path / "bundle").write_text("not a folder")
    with pytest.raises(ConfigError, match="exists and is not a directory"):
        _write(tmp_path, embeddings, overwrite=True)
    assert (tmp_path / "bundle").read_text() == "not a folder"
    (tmp_path / "bundle").unlink()
    with atomic_directory(tmp_path / "bundle", "prepared dataset") as tmp:
        (tmp / "train.parquet").write_text("x")
    with pytest.raises(ConfigError, match="holds an fbrec prepared dataset, not a bundle"):
        _write(tmp_path, embeddings, overwrite=True)


def test_an_empty_folder_the_user_made_is_used(tmp_path, embeddings):
    (tmp_path / "bundle").mkdir()
    _write(tmp_path, embeddings)
    Bundle(tmp_path / "bundle")


def test_a_failed_write_leaves_the_old_folder_whole_and_no_temp_folder(tmp_path):
    with atomic_directory(tmp_path / "out", "bundle") as tmp:
        (tmp / "a").write_text("old")
    with pytest.raises(RuntimeError), atomic_directory(tmp_path / "out", "bundle") as tmp:
        (tmp / "a").write_text("new")
        raise RuntimeError("crash while writing")
    assert (tmp_path / "out" / "a").read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


def test_leftovers_of_killed_writes_are_cleaned_and_a_half_swap_is_undone(tmp_path):
    out = tmp_path / "out"
    with atomic_directory(out, "bundle") as tmp:
        (tmp / "a").write_text("old")
    # a write killed while filling its temp dir, and a fallback swap killed between its two renames
    killed = tmp_path / ".out.fbrec-tmp-deadbeef0000"
    killed.mkdir()
    (killed / MARKER).write_text("{}")
    out.rename(tmp_path / ".out.fbrec-old-deadbeef0001")
    users = tmp_path / ".out.fbrec-tmp-users-own"   # same pattern, no marker: not ours, never touched
    users.mkdir()
    assert len(stale_temps(out)) == 2
    recover(out)
    assert (out / "a").read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == [".out.fbrec-tmp-users-own", "out"]


def test_on_linux_the_swap_is_one_atomic_exchange(tmp_path):
    import sys

    import fbrec._atomic as atomic

    if not sys.platform.startswith("linux"):
        pytest.skip("renameat2 is Linux-only; elsewhere the two-rename fallback below applies")
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    (tmp_path / "a" / "x").write_text("a")
    assert atomic._exchange(tmp_path / "a", tmp_path / "b")
    assert (tmp_path / "b" / "x").read_text() == "a" and not (tmp_path / "a" / "x").exists()


def test_the_swap_falls_back_to_two_renames_where_exchange_is_unavailable(tmp_path, monkeypatch):
    import fbrec._atomic as atomic

    monkeypatch.setattr(atomic, "_exchange", lambda a, b: False)
    for text in ("old", "new"):
        with atomic_directory(tmp_path / "out", "bundle") as tmp:
            (tmp / "a").write_text(text)
    assert (tmp_path / "out" / "a").read_text() == "new"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


def test_an_output_path_under_a_file_is_a_clear_error(tmp_path, embeddings):
    (tmp_path / "file").write_text("x")
    with pytest.raises(ConfigError, match=r"cannot write .*file/bundle"):
        from fbrec.bundle import write_bundle
        from fbrec.data.idmap import IdMap

        users, items = embeddings
        write_bundle(tmp_path / "file" / "bundle", user_embeddings=users, item_embeddings=items,
                     user_map=IdMap.fit("user", pl.Series(np.arange(len(users)))),
                     item_map=IdMap.fit("item", pl.Series(np.arange(len(items)))))


def test_data_prepare_never_deletes_a_users_folder_and_replaces_its_own_only_when_asked(tmp_path, capsys):
    from fbrec.cli.main import main

    def prepare(*extra):
        try:
            main(["data", "prepare", "synthetic", "--out", str(tmp_path / "out"), *extra])
            return 0, capsys.readouterr()
        except SystemExit as exc:
            return exc.code, capsys.readouterr()

    precious = _precious(tmp_path / "out")
    for extra in ((), ("--overwrite",)):
        code, out = prepare(*extra)
        assert code == 2 and "fbrec did not write" in out.err and "not touched" in out.err
    assert precious.read_text() == "years of work"
    precious.unlink()
    assert prepare()[0] == 0 and (tmp_path / "out" / "train.parquet").exists()
    code, out = prepare()
    assert code == 2 and "already exists" in out.err and "--overwrite" in out.err
    assert prepare("--overwrite")[0] == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


def test_two_writers_of_one_new_folder_never_delete_each_others_temp(tmp_path):
    """Two `fbrec export --out X` at once: the second's cleanup keeps the first's live temp (its writer is alive);
    the one finishing last refuses to replace the other's result without --overwrite (one clear error, its own temp
    removed), and replaces it with overwrite."""
    out = tmp_path / "out"
    with pytest.raises(ConfigError, match="already exists"), atomic_directory(out, "bundle", overwrite=False) as first:
        (first / "a").write_text("first")
        with atomic_directory(out, "bundle", overwrite=False) as second:
            assert first.is_dir(), "the second writer deleted the first's live temp"
            (second / "a").write_text("second")
        assert first.is_dir() and (out / "a").read_text() == "second"
    assert (out / "a").read_text() == "second"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]
    with atomic_directory(out, "bundle") as first:
        (first / "a").write_text("first")
        with atomic_directory(out, "bundle") as second:
            (second / "a").write_text("second")
    assert (out / "a").read_text() == "first"   # with overwrite the last to finish wins, whole
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


def test_a_dead_writers_temp_is_cleaned_and_another_hosts_is_left(tmp_path):
    import socket
    import subprocess
    import sys

    out = tmp_path / "out"
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    dead = tmp_path / f".out.fbrec-tmp-aaaa.{gone.stdout.strip()}@{socket.gethostname()}"
    remote = tmp_path / ".out.fbrec-tmp-bbbb.123@another-host"
    for p in (dead, remote):
        p.mkdir()
        (p / MARKER).write_text("{}")
    assert stale_temps(out) == [dead]
    recover(out)
    assert not dead.exists() and remote.exists()


def test_a_verified_bundle_is_not_hashed_again_until_a_file_changes(tmp_path, embeddings, monkeypatch):
    """The second load of an unchanged bundle skips the sha256 pass (a retrieve starts fast); a file rewritten in
    place, even to the same size, is hashed again and refused."""
    import fbrec.bundle.manifest as bundle_module

    _write(tmp_path, embeddings)
    path = tmp_path / "bundle"
    calls = []
    real = bundle_module.file_sha256
    monkeypatch.setattr(bundle_module, "file_sha256", lambda p: calls.append(p) or real(p))
    Bundle(path)
    hashed = len(calls)
    assert hashed >= 6
    Bundle(path)
    assert len(calls) == hashed, "an unchanged, verified bundle was hashed again"
    data = bytearray((path / "item_embeddings.npy").read_bytes())
    data[-1] ^= 0xFF   # same size, different bytes
    (path / "item_embeddings.npy").write_bytes(bytes(data))
    with pytest.raises(BundleError, match="fails its sha256"):
        Bundle(path)
    assert len(calls) > hashed
