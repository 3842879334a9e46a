"""The install script works where the local wheel folder does not exist and says what it needs when it cannot."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "install.sh"


def _plan(tmp_path, **env) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", str(SCRIPT), "--plan", str(tmp_path / "venv")], capture_output=True, text=True,
                          env={**os.environ, **env})


def test_without_a_wheel_folder_torch_comes_from_the_pytorch_cpu_index(tmp_path):
    out = _plan(tmp_path, FBREC_WHEELS=str(tmp_path / "absent"))
    assert out.returncode == 0, out.stderr
    assert "from the PyTorch CPU index https://download.pytorch.org/whl/cpu" in out.stdout
    custom = _plan(tmp_path, FBREC_WHEELS=str(tmp_path / "absent"), FBREC_TORCH_INDEX="https://mirror.example/cpu")
    assert "https://mirror.example/cpu" in custom.stdout


def test_a_wheel_folder_with_torch_is_used_when_present(tmp_path):
    wheels = tmp_path / "wheels"
    wheels.mkdir()
    (wheels / "torch-2.13.0+cpu-cp311-cp311-manylinux_2_28_x86_64.whl").write_bytes(b"")
    out = _plan(tmp_path, FBREC_WHEELS=str(wheels))
    assert f"torch from the local wheel folder {wheels}" in out.stdout


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
