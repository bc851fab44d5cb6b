#!/usr/bin/env bash
# UNTESTED (no GPU was lent when it was written; see docs/benchmarks.md). vLLM vs hf: tokens/s on
# the same real-size random-weight model (Qwen2.5-0.5B's architecture, benchmarks/real_size_model.py)
# and the same chats, on a GPU machine whose python3 has torch + transformers:
#
#   OUT=/some/dir bash benchmarks/gpu_vllm_vs_hf.sh      # writes $OUT/gpu_check.json
#
# 1. installs vLLM from the package registry into its own venv (--system-site-packages, so the
#    machine's torch is reused when vLLM accepts it; pip replaces it otherwise), once;
# 2. builds the model offline; 3. runs benchmarks/gpu_check.sh on it with that venv's python
#    (256 chats x 64 new tokens, sampling at temperature 1, bf16; greedy texts compared as well).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${KB_GPU_VLLM_VENV:-/tmp/kb-gpu-vllm-venv}"
MODEL="${KB_GPU_MODEL:-/tmp/kb-real-size-qwen2.5-0.5b}"
start=$(date +%s)
if [[ ! -x "$VENV/bin/python" ]] || ! "$VENV/bin/python" -c "import vllm" 2>/dev/null; then
  python3 -m venv --system-site-packages "$VENV"
  "$VENV/bin/pip" install -q "vllm${KB_GPU_VLLM_VERSION:+==$KB_GPU_VLLM_VERSION}"
fi
echo "== vLLM installed after $(( $(date +%s) - start )) s"
PYTHONPATH="$ROOT" "$VENV/bin/python" "$ROOT/benchmarks/real_size_model.py" "$MODEL"
KB_GPU_MODEL="$MODEL" KB_GPU_PHASE_TIMEOUT="${KB_GPU_PHASE_TIMEOUT:-300}" PYTHON="$VENV/bin/python" \
  bash "$ROOT/benchmarks/gpu_check.sh"
