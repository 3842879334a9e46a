#!/usr/bin/env bash
# Create (or refresh) the project's virtual environment with the pinned CPU stack.
# Usage: scripts/install.sh [--plan] [VENV_DIR]   (default .venv; --plan prints what it would do and exits)
#
# torch comes from a local wheel folder when there is one (FBREC_WHEELS, default /opt/wheels), else from the PyTorch
# CPU wheel index (FBREC_TORCH_INDEX overrides it), so no resolver can pull a CUDA torch. torchrec declares the CUDA
# `fbgemm-gpu`; the lock drops it (overrides.txt) and fbgemm-gpu-cpu provides the fbgemm_gpu module. `uv pip sync`
# installs exactly the lock. Python: $PYTHON, else python3.11, else python3 when it is 3.11.
set -euo pipefail
cd "$(dirname "$0")/.."
PLAN=0
if [ "${1:-}" = "--plan" ]; then PLAN=1; shift; fi
VENV="${1:-.venv}"

find_python() {
  for candidate in "${PYTHON:-}" python3.11 python3; do
    [ -n "$candidate" ] || continue
    command -v "$candidate" >/dev/null 2>&1 || continue
    if "$candidate" -c 'import sys; sys.exit(0 if sys.version_info[:2] == (3, 11) else 1)' 2>/dev/null; then
      command -v "$candidate"
      return 0
    fi
  done
  return 1
}

WHEELS="${FBREC_WHEELS:-/opt/wheels}"
if [ -d "$WHEELS" ] && ls "$WHEELS"/torch-2.13.0* >/dev/null 2>&1; then
  SOURCE=(--find-links "$WHEELS")
  SOURCE_TEXT="torch from the local wheel folder $WHEELS"
else
  INDEX="${FBREC_TORCH_INDEX:-https://download.pytorch.org/whl/cpu}"
  SOURCE=(--extra-index-url "$INDEX" --index-strategy unsafe-best-match)
  SOURCE_TEXT="torch 2.13.0+cpu from the PyTorch CPU index $INDEX (no local wheel folder at $WHEELS)"
fi

if [ -x "$VENV/bin/python" ]; then
  PY="$VENV/bin/python (existing)"
elif PY=$(find_python); then
  :
else
  echo "fbrec needs Python 3.11 (requires-python >=3.11,<3.12): none found as \$PYTHON, python3.11 or python3." >&2
  echo "Install it (e.g. 'uv python install 3.11' or your package manager), or set PYTHON=/path/to/python3.11." >&2
  exit 2
fi

if [ "$PLAN" = 1 ]; then
  echo "venv: $VENV"
  echo "python: $PY"
  echo "packages: requirements.lock via uv pip sync; $SOURCE_TEXT"
  exit 0
fi

STAMP="$VENV/.fbrec-lock.sha256"
want=$(cat requirements.lock pyproject.toml | sha256sum | cut -d' ' -f1)
if [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$want" ] && "$VENV/bin/python" -c "import fbrec" 2>/dev/null; then
  exit 0   # already in sync with the lock
fi
[ -x "$VENV/bin/python" ] || "$PY" -m venv "$VENV"
"$VENV/bin/python" -m pip install -q --disable-pip-version-check "uv==0.13.9"
export VIRTUAL_ENV="$PWD/$VENV" UV_COMPILE_BYTECODE=1   # imports are ~3x slower without .pyc here
"$VENV/bin/uv" pip sync -q "${SOURCE[@]}" requirements.lock
"$VENV/bin/uv" pip install -q --no-deps -e .
"$VENV/bin/python" -c "import torch, torchrec, fbgemm_gpu, faiss, polars, lightning, mlflow" 2>/dev/null
echo "$want" > "$STAMP"
echo "fbrec environment ready in $VENV (torch $("$VENV/bin/python" -c 'import torch; print(torch.__version__)'))"
