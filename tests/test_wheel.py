"""fbrec outside its repository: the wheel `uv build` makes, installed without the checkout into an empty target,
run from an empty folder with no data directory configured — the recipes come from the wheel, MovieLens-100K from a
real HTTP server on 127.0.0.1 playing GroupLens (FBREC_DATA_MIRROR), and train, export and retrieve work."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from data_mirror import Mirror, published_files

ROOT = Path(__file__).resolve().parents[1]


def _uv() -> str:
    found = shutil.which("uv") or str(Path(sys.executable).parent / "uv")
    if not Path(found).exists():
        pytest.fail("uv is not installed (scripts/install.sh installs it into the environment)")
    return found


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> Path:
    """The wheel built from this checkout, installed --no-deps into an empty target (the stack comes from the
    running environment, as a user's `pip install fbrec-*.whl` would provide it)."""
    out = tmp_path_factory.mktemp("wheel")
    built = subprocess.run([_uv(), "build", "--wheel", "-o", str(out / "dist"), str(ROOT)], capture_output=True,
                           text=True, timeout=600)
    assert built.returncode == 0, built.stderr
    (wheel,) = (out / "dist").glob("fbrec-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    recipes = {n.split("/")[2] for n in names if n.startswith("fbrec/recipes/") and n.endswith("/config.yaml")}
    assert recipes == {p.parent.name for p in (ROOT / "models").glob("*/config.yaml")}
    assert not [n for n in names if n.startswith(("tests/", "models/", "benchmarks/"))]
    target = out / "target"
    done = subprocess.run([_uv(), "pip", "install", "--no-deps", "--python", sys.executable, "--target", str(target),
                           str(wheel)], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    return target


def test_the_installed_wheel_fetches_trains_exports_and_retrieves_from_an_empty_folder(installed, shared_data,
                                                                                         tmp_path):
    mirror = Mirror(published_files(shared_data))
    home, work = tmp_path / "home", tmp_path / "work"
    home.mkdir()
    work.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("FBREC_", "MLFLOW_"))}
    env.update(PYTHONPATH=str(installed), HOME=str(home), XDG_CACHE_HOME=str(home / ".cache"), COLUMNS="200",
               FBREC_DATA_MIRROR=mirror.url, OMP_NUM_THREADS="2")

    def fbrec(*args: str) -> str:
        out = subprocess.run([str(installed / "bin" / "fbrec"), *args], cwd=work, env=env, capture_output=True,
                             text=True, timeout=900)
        assert out.returncode == 0, f"fbrec {' '.join(args)}:\n{out.stdout[-3000:]}\n{out.stderr[-3000:]}"
        return out.stdout

    try:
        where = subprocess.run([sys.executable, "-c", "import fbrec; print(fbrec.__file__)"], cwd=work, env=env,
                               capture_output=True, text=True, timeout=120)
        assert where.stdout.strip() == str(installed / "fbrec" / "__init__.py")     # not the checkout
        cache = home / ".cache" / "fbrec" / "data"
        assert f"movielens-100k: downloaded; every file matches its pinned sha256: {cache / 'movielens-100k'}" \
            in fbrec("data", "fetch", "movielens-100k")
        listed = fbrec("data", "list")
        assert f"data directory: {cache}" in listed
        assert "movielens-100k " in listed and "│ yes" in listed.split("movielens-100k ", 1)[1].splitlines()[0]
        fbrec("train", "--config", "wmf_als_movielens100k", "--trainer.max_epochs", "2")
        fbrec("export", "--run", "last", "--out", "bundle", "--index", "Flat")
        top = fbrec("retrieve", "--bundle", "bundle", "--user", "196", "--k", "5")
        assert "top-5 for user 196" in top
        assert fbrec("demo", "--epochs", "1").count("│") > 10
        assert sorted(p.name for p in work.iterdir()) == ["bundle", "demo_bundle", "mlruns"]
    finally:
        mirror.close()


def test_a_folder_without_recipes_says_where_it_looked(installed, tmp_path):
    empty = tmp_path / "recipes"
    empty.mkdir()
    env = {**os.environ, "PYTHONPATH": str(installed), "FBREC_RECIPES_DIR": str(empty), "COLUMNS": "200"}
    out = subprocess.run([str(installed / "bin" / "fbrec"), "train", "--config", "bpr_synthetic"], cwd=tmp_path,
                         env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 2
    assert f"unknown recipe 'bpr_synthetic': no recipes were found in '{empty}'" in out.stderr
