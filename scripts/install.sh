#!/usr/bin/env bash
# Create (or refresh) the project's virtual environment.
# Usage: scripts/install.sh [--plan] [VENV_DIR]   (default .venv; --plan prints what it would do and exits)
#
# Extras: FBREC_EXTRAS (default cpu,serve,llm,dev) — exactly one of cpu / gpu. The default set installs exactly
# requirements.lock (`uv pip sync`); any other set is resolved from pyproject.toml.
# torch (CPU builds): from a local wheel folder when one is configured — FBREC_WHEELS, else pip's own find-links
# setting (PIP_FIND_LINKS or `pip config`) — and holds torch 2.13.0, else from the PyTorch CPU wheel index
# (FBREC_TORCH_INDEX overrides it), so no resolver can pull a CUDA torch. With the gpu extra torch comes from the
# package index (its default Linux build is the CUDA one). torchrec declares the CUDA `fbgemm-gpu`; the cpu lock
# drops it (overrides.txt) and fbgemm-gpu-cpu provides the fbgemm_gpu module.
# Python 3.11: $PYTHON, else python3.11, else python3 when it is 3.11, else a uv-managed 3.11 when uv is installed.
set -euo pipefail
cd "$(dirname "$0")/.."
PLAN=0
if [ "${1:-}" = "--plan" ]; then PLAN=1; shift; fi
VENV="${1:-.venv}"
case "$VENV" in /*) VENV_ABS="$VENV" ;; *) VENV_ABS="$PWD/$VENV" ;; esac   # uv is pointed at it explicitly
DEFAULT_EXTRAS="cpu,serve,llm,dev"
EXTRAS="${FBREC_EXTRAS:-$DEFAULT_EXTRAS}"

KIND=""
case ",$EXTRAS," in *,cpu,*) KIND=cpu ;; esac
case ",$EXTRAS," in *,gpu,*) if [ -n "$KIND" ]; then KIND=both; else KIND=gpu; fi ;; esac
if [ "$KIND" = both ]; then
  echo "FBREC_EXTRAS=$EXTRAS names both cpu and gpu: choose one (their packages own the same modules)" >&2; exit 2
elif [ -z "$KIND" ]; then
  echo "FBREC_EXTRAS=$EXTRAS names neither cpu nor gpu: add one (e.g. FBREC_EXTRAS=cpu,serve)" >&2; exit 2
fi

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

configured_wheels() {   # FBREC_WHEELS, else pip's find-links setting (the first entry that is a folder)
  if [ -n "${FBREC_WHEELS:-}" ]; then echo "$FBREC_WHEELS"; return; fi
  local links="${PIP_FIND_LINKS:-}"
  if [ -z "$links" ] && command -v pip >/dev/null 2>&1; then
    links=$(pip config list 2>/dev/null | sed -n "s/^[^=]*find-links='\(.*\)'$/\1/p" | head -1 || true)
  fi
  for link in $links; do
    link="${link#file://}"
    if [ -d "$link" ]; then echo "$link"; return; fi
  done
}

WHEELS="$(configured_wheels)"
if [ "$KIND" = gpu ]; then
  SOURCE=()
  SOURCE_TEXT="torch 2.13.0 (CUDA build), fbgemm-gpu and faiss-gpu-cu12 from the package index"
elif [ -n "$WHEELS" ] && ls "$WHEELS"/torch-2.13.0* >/dev/null 2>&1; then
  SOURCE=(--find-links "$WHEELS")
  SOURCE_TEXT="torch from the local wheel folder $WHEELS"
else
  INDEX="${FBREC_TORCH_INDEX:-https://download.pytorch.org/whl/cpu}"
  SOURCE=(--extra-index-url "$INDEX" --index-strategy unsafe-best-match)
  SOURCE_TEXT="torch 2.13.0+cpu from the PyTorch CPU index $INDEX (no local wheel folder with torch configured)"
fi

UV=""
if [ -x "$VENV/bin/uv" ]; then UV="$VENV/bin/uv"; elif command -v uv >/dev/null 2>&1; then UV="$(command -v uv)"; fi
if [ -x "$VENV/bin/python" ]; then
  PY="$VENV/bin/python (existing)"
elif PY=$(find_python); then
  :
elif [ -n "$UV" ]; then
  PY="uv-managed Python 3.11 ($UV venv --python 3.11)"
else
  echo "fbrec needs Python 3.11 (requires-python >=3.11,<3.12): none found as \$PYTHON, python3.11 or python3," >&2
  echo "and no uv to provide a managed one. Install it (e.g. 'uv python install 3.11' or your package manager)," >&2
  echo "or set PYTHON=/path/to/python3.11." >&2
  exit 2
fi

if [ "$EXTRAS" = "$DEFAULT_EXTRAS" ]; then
  PACKAGES_TEXT="requirements.lock via uv pip sync (extras $EXTRAS)"
else
  PACKAGES_TEXT="resolved from pyproject.toml with extras $EXTRAS (not the lock)"
fi

if [ "$PLAN" = 1 ]; then
  echo "venv: $VENV (packages go to $VENV_ABS/bin/python)"
  echo "python: $PY"
  echo "extras: $EXTRAS"
  echo "packages: $PACKAGES_TEXT; $SOURCE_TEXT"
  exit 0
fi

STAMP="$VENV/.fbrec-lock.sha256"
want=$( (cat requirements.lock pyproject.toml; echo "$EXTRAS") | sha256sum | cut -d' ' -f1)
if [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$want" ] && "$VENV/bin/python" -c "import fbrec" 2>/dev/null; then
  exit 0   # already in sync
fi
if [ ! -x "$VENV/bin/python" ]; then
  case "$PY" in
    uv-managed*) "$UV" venv -q --python 3.11 "$VENV" ;;
    *) "$PY" -m venv "$VENV" ;;
  esac
fi
if [ ! -x "$VENV/bin/uv" ]; then
  if "$VENV/bin/python" -m pip --version >/dev/null 2>&1; then
    "$VENV/bin/python" -m pip install -q --disable-pip-version-check "uv==0.13.9"
  else   # a uv-made venv has no pip: use the uv that made it
    ln -s "$UV" "$VENV/bin/uv"
  fi
fi
export VIRTUAL_ENV="$VENV_ABS" UV_COMPILE_BYTECODE=1   # imports are ~3x slower without .pyc here
TARGET=(--python "$VENV_ABS/bin/python")                # never another environment uv might find
if [ "$EXTRAS" = "$DEFAULT_EXTRAS" ]; then
  "$VENV/bin/uv" pip sync -q "${TARGET[@]}" "${SOURCE[@]}" requirements.lock
  "$VENV/bin/uv" pip install -q "${TARGET[@]}" --no-deps -e .
elif [ "$KIND" = cpu ]; then
  "$VENV/bin/uv" pip install -q "${TARGET[@]}" "${SOURCE[@]}" --overrides overrides.txt -e ".[$EXTRAS]"
else
  "$VENV/bin/uv" pip install -q "${TARGET[@]}" -e ".[$EXTRAS]"
fi
"$VENV/bin/python" -c "import torch, torchrec, fbgemm_gpu, faiss, polars, lightning, mlflow" 2>/dev/null
echo "$want" > "$STAMP"
echo "fbrec environment ready in $VENV (torch $("$VENV/bin/python" -c 'import torch; print(torch.__version__)'), extras $EXTRAS)"
