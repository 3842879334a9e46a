"""The install script works where the local wheel folder does not exist and says what it needs when it cannot."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "scripts" / "install.sh"


def _plan(tmp_path, **env) -> subprocess.CompletedProcess:
    base = {k: v for k, v in os.environ.items() if k not in ("FBREC_WHEELS", "FBREC_EXTRAS", "PIP_FIND_LINKS")}
    base["PIP_CONFIG_FILE"] = os.devnull   # this machine's pip settings stay out unless a test sets them
    return subprocess.run(["bash", str(SCRIPT), "--plan", str(tmp_path / "venv")], capture_output=True, text=True,
                          env={**base, **env})


def _wheels(tmp_path):
    wheels = tmp_path / "wheels"
    wheels.mkdir(exist_ok=True)
    (wheels / "torch-2.13.0+cpu-cp311-cp311-manylinux_2_28_x86_64.whl").write_bytes(b"")
    return wheels


def test_without_a_wheel_folder_torch_comes_from_the_pytorch_cpu_index(tmp_path):
    out = _plan(tmp_path, FBREC_WHEELS=str(tmp_path / "absent"))
    assert out.returncode == 0, out.stderr
    assert "from the PyTorch CPU index https://download.pytorch.org/whl/cpu" in out.stdout
    custom = _plan(tmp_path, FBREC_WHEELS=str(tmp_path / "absent"), FBREC_TORCH_INDEX="https://mirror.example/cpu")
    assert "https://mirror.example/cpu" in custom.stdout


def test_a_wheel_folder_with_torch_is_used_when_present(tmp_path):
    wheels = _wheels(tmp_path)
    out = _plan(tmp_path, FBREC_WHEELS=str(wheels))
    assert f"torch from the local wheel folder {wheels}" in out.stdout
    assert "extras: cpu,serve,llm,dev" in out.stdout and "requirements.lock via uv pip sync" in out.stdout


@pytest.mark.slow
def test_packages_go_to_the_named_environment_whether_its_path_is_absolute_or_relative(tmp_path):
    absolute = _plan(tmp_path)
    assert f"packages go to {tmp_path / 'venv'}/bin/python" in absolute.stdout
    relative = subprocess.run(["bash", str(SCRIPT), "--plan", "some/venv"], capture_output=True, text=True,
                              env={**os.environ, "PIP_CONFIG_FILE": os.devnull})
    assert f"packages go to {ROOT}/some/venv/bin/python" in relative.stdout


def test_pips_own_find_links_setting_is_the_configured_wheel_folder(tmp_path):
    wheels = _wheels(tmp_path)
    out = _plan(tmp_path, PIP_FIND_LINKS=f"file://{wheels}")
    assert f"torch from the local wheel folder {wheels}" in out.stdout
    config = tmp_path / "pip.conf"
    config.write_text(f"[global]\nfind-links = {wheels}\n")
    out = _plan(tmp_path, PIP_CONFIG_FILE=str(config))
    assert f"torch from the local wheel folder {wheels}" in out.stdout, out.stdout + out.stderr


def test_the_gpu_extra_takes_cuda_wheels_from_the_index_and_never_the_lock(tmp_path):
    out = _plan(tmp_path, FBREC_WHEELS=str(_wheels(tmp_path)), FBREC_EXTRAS="gpu,serve")
    assert out.returncode == 0, out.stderr
    assert "extras: gpu,serve" in out.stdout and "resolved from pyproject.toml" in out.stdout
    assert "CUDA build" in out.stdout and "local wheel folder" not in out.stdout


@pytest.mark.parametrize("extras,message", [("cpu,gpu", "names both cpu and gpu"),
                                            ("serve,llm", "names neither cpu nor gpu")])
def test_extras_name_exactly_one_kernel_stack(tmp_path, extras, message):
    out = _plan(tmp_path, FBREC_EXTRAS=extras)
    assert out.returncode == 2 and message in out.stderr


def test_pyproject_extras_are_the_documented_ones_and_exclude_each_other():
    meta = tomllib.loads((ROOT / "pyproject.toml").read_text())
    extras = meta["project"]["optional-dependencies"]
    assert set(extras) == {"cpu", "gpu", "serve", "llm", "dev"}
    names = {e: {re.split(r"[=<>\[ ]", d)[0] for d in deps} for e, deps in extras.items()}
    assert {"fbgemm-gpu-cpu", "faiss-cpu"} <= names["cpu"] and {"fbgemm-gpu", "faiss-gpu-cu12"} <= names["gpu"]
    base = {re.split(r"[=<>\[ ]", d)[0] for d in meta["project"]["dependencies"]}
    assert not base & (names["cpu"] | names["gpu"]), "the kernel stacks live in the extras only"
    assert [{"extra": "cpu"}, {"extra": "gpu"}] in meta["tool"]["uv"]["conflicts"]
    lock = (ROOT / "requirements.lock").read_text()
    assert "--extra cpu --extra serve --extra llm --extra dev" in lock and "faiss-gpu" not in lock


def test_no_committed_file_names_a_path_of_one_machine():
    files = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True).stdout.split()
    pattern = re.compile(r"(?<![\w.])(/opt/|/work/|/home/[a-z]|/root/|/Users/|/tmp/prof|[A-Z]:\\Users)")
    offenders = []
    for name in files:
        path = ROOT / name
        if not path.is_file() or path.suffix in {".png", ".parquet", ".onnx", ".npy", ".bin"}:
            continue
        try:
            text = path.read_text()
        except UnicodeDecodeError:
            continue
        offenders += [f"{name}:{i}: {line.strip()}" for i, line in enumerate(text.splitlines(), 1)
                      if pattern.search(line) and name != "tests/test_install.py"]
    assert offenders == [], "machine-specific paths in committed files:\n" + "\n".join(offenders)


@pytest.mark.slow
def test_a_missing_python_311_is_one_clear_message(tmp_path):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for tool in ("dirname", "ls"):
        os.symlink(shutil.which(tool), bin_dir / tool)
    fake = bin_dir / "python3"
    fake.write_text("#!/bin/sh\nexit 1\n")   # a Python that is not 3.11
    fake.chmod(0o755)
    out = subprocess.run([shutil.which("bash"), str(SCRIPT), "--plan", str(tmp_path / "venv")], capture_output=True,
                         text=True, env={"PATH": str(bin_dir), "HOME": str(tmp_path)})
    assert out.returncode == 2
    assert "fbrec needs Python 3.11" in out.stderr and "PYTHON=/path/to/python3.11" in out.stderr


@pytest.mark.slow
def test_without_python_311_a_uv_on_the_path_provides_a_managed_one(tmp_path):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for tool in ("dirname", "ls"):
        os.symlink(shutil.which(tool), bin_dir / tool)
    for name in ("python3", "uv"):   # a Python that is not 3.11, and a uv (only looked up in a plan)
        fake = bin_dir / name
        fake.write_text("#!/bin/sh\nexit 1\n")
        fake.chmod(0o755)
    out = subprocess.run([shutil.which("bash"), str(SCRIPT), "--plan", str(tmp_path / "venv")], capture_output=True,
                         text=True, env={"PATH": str(bin_dir), "HOME": str(tmp_path), "FBREC_WHEELS": str(tmp_path)})
    assert out.returncode == 0, out.stderr
    assert f"python: uv-managed Python 3.11 ({bin_dir / 'uv'} venv --python 3.11)" in out.stdout


@pytest.mark.parametrize("blocked,code,extra", [
    ("faiss", "import fbrec.retrieval", "cpu"),
    ("fbgemm_gpu", "import fbrec.embeddings", "cpu"),
    ("onnxruntime", "from fbrec.serving.tower import QueryTower; QueryTower('m.onnx', 'f.json')", "serve"),
    ("sentence_transformers", "from fbrec.llm.encoders import TextEncoder; TextEncoder(cache_dir='').model", "llm"),
    ("uvicorn", "from fbrec.cli.main import main; sys.argv = ['fbrec', 'serve', '--bundle', 'b']; main()", "serve"),
])
@pytest.mark.slow
def test_a_missing_extra_names_the_package_and_the_extra_to_install(blocked, code, extra, tmp_path):
    script = f"import sys; sys.modules[{blocked!r}] = None\n{code}"
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=tmp_path)
    assert out.returncode != 0
    assert f"pip install 'fbrec[{extra}]'" in out.stderr + out.stdout, out.stderr[-2000:]
