#!/usr/bin/env bash
# Create (or refresh) the project's virtual environment with the pinned CPU stack.
# Usage: scripts/install.sh [VENV_DIR]   (default .venv)
# torchrec declares the CUDA `fbgemm-gpu`; the lock drops it (overrides.txt) and fbgemm-gpu-cpu provides
# the fbgemm_gpu module. `uv pip sync` installs exactly the lock, so no resolver can pull a CUDA torch.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV="${1:-.venv}"
STAMP="$VENV/.fbrec-lock.sha256"
want=$(cat requirements.lock pyproject.toml | sha256sum | cut -d' ' -f1)
if [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$want" ] && "$VENV/bin/python" -c "import fbrec" 2>/dev/null; then
  exit 0   # already in sync with the lock
fi
[ -x "$VENV/bin/python" ] || python3.11 -m venv "$VENV"
"$VENV/bin/python" -m pip install -q --disable-pip-version-check "uv==0.13.9"
export VIRTUAL_ENV="$PWD/$VENV" UV_COMPILE_BYTECODE=1   # imports are ~3x slower without .pyc here
"$VENV/bin/uv" pip sync -q --find-links /opt/wheels requirements.lock
"$VENV/bin/uv" pip install -q --no-deps -e .
"$VENV/bin/python" -c "import torch, torchrec, fbgemm_gpu, faiss, polars, lightning, mlflow" 2>/dev/null
echo "$want" > "$STAMP"
echo "fbrec environment ready in $VENV (torch $("$VENV/bin/python" -c 'import torch; print(torch.__version__)'))"
