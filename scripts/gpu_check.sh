#!/usr/bin/env bash
# The GPU path, checked on a CUDA machine in one go (about 10 minutes): install the GPU stack into its own venv,
# run the GPU tests (TorchRec TBE lookups and training on CUDA with NCCL, GPU FAISS, evaluation on CUDA) and the
# scale benchmark's GPU column, and write everything under OUT (default ./gpu-check).
# Usage: scripts/gpu_check.sh [OUT]
#
# Wheels: FBREC_GPU_WHEELS (a folder holding the CUDA wheels, for machines without package index access), else the
# package index (the default PyPI torch 2.13.0 wheel is the CUDA build). Without a CUDA device it says so and exits
# 3 without running anything: the GPU tests skip themselves everywhere else, and nothing is ever faked.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT="${1:-gpu-check}"
mkdir -p "$OUT"
if ! command -v nvidia-smi >/dev/null 2>&1 || ! nvidia-smi -L >/dev/null 2>&1; then
  echo "no CUDA device here (nvidia-smi finds none): the GPU path was not checked" | tee "$OUT/summary.txt" >&2
  exit 3
fi
nvidia-smi -L | tee "$OUT/devices.txt"
VENV="${FBREC_GPU_VENV:-.venv-gpu}"
PY="${PYTHON:-python3.11}"
[ -x "$VENV/bin/python" ] || "$PY" -m venv "$VENV"
SOURCE=()
if [ -n "${FBREC_GPU_WHEELS:-}" ]; then SOURCE=(--no-index --find-links "$FBREC_GPU_WHEELS"); fi
"$VENV/bin/python" -m pip install -q "${SOURCE[@]}" -e ".[gpu,serve,llm,dev]" 2>&1 | tail -5
"$VENV/bin/python" -m pip install -q "${SOURCE[@]}" --no-deps "torchrec==1.8.0"
"$VENV/bin/python" - <<'PY' | tee "$OUT/stack.txt"
import faiss, fbgemm_gpu, torch, torchrec
print("torch", torch.__version__, "cuda", torch.version.cuda, "devices", torch.cuda.device_count())
print("faiss", faiss.__version__, "gpus", faiss.get_num_gpus() if hasattr(faiss, "get_num_gpus") else 0)
print("fbgemm_gpu", getattr(fbgemm_gpu, "__version__", "?"), "torchrec", torchrec.__version__)
PY
status=0
timeout 300 "$VENV/bin/python" -m pytest -q -m gpu tests/test_gpu.py -rA 2>&1 | tee "$OUT/tests.txt" || status=$?
timeout 300 "$VENV/bin/python" -m benchmarks.scale --rows 1000000 --processes 1 --accelerator gpu 2>&1 \
  | tee "$OUT/scale_gpu.txt" || status=$?
echo "GPU tests and scale column finished with status $status; outputs in $OUT" | tee "$OUT/summary.txt"
exit "$status"
