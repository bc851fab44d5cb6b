"""HF adapter throughput on the tiny random model, on CPU, at several batch sizes.

    python benchmarks/bench_local.py [--n 64] [--new-tokens 32] [--batch-sizes 1,8,32] [--out FILE]

The tiny model is 2 layers × 128 wide, so this measures the adapter's overhead (templating, padding,
`generate`'s per-step cost, decoding) more than arithmetic: read it as what batching buys, not as a
model speed. Sampling at temperature 1 (seeded): the random model's greedy choice is often
end-of-sequence at once, which would measure nothing. Each batch size runs `--repeats` times and
the fastest run is reported (shared 2-core machines are noisy). One JSON line per batch size.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


def prompts(n: int) -> list[str]:
    """Chats of varied length, so batches need real padding."""
    base = "I finally told my sister how I felt about the move, and she went quiet for a long time. "
    return [f"Message {i}: " + base * (1 + i % 5) for i in range(n)]


async def measure(model, texts: list[str], batch_size: int, new_tokens: int, repeats: int) -> dict:
    from kardiabench.models.base import ChatRequest, Generation, SamplingParams

    params = SamplingParams(temperature=1.0, max_tokens=new_tokens, seed=0)
    requests = [ChatRequest.from_messages([{"role": "user", "content": t}], params) for t in texts]
    model.max_batch_size = batch_size
    await model.generate(requests[:batch_size])  # warm-up: first-call allocations
    wall = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        outs = []
        for i in range(0, len(requests), batch_size):
            outs += await model.generate(requests[i : i + batch_size])
        wall = min(wall, time.perf_counter() - t0)
    gens = [g for g in outs if isinstance(g, Generation)]
    completion = sum(g.completion_tokens for g in gens)
    return {
        "adapter": "hf",
        "device": model.device,
        "batch_size": batch_size,
        "items": len(gens),
        "new_tokens": new_tokens,
        "wall_s": round(wall, 3),
        "repeats": repeats,
        "items_per_s": round(len(gens) / wall, 2),
        "completion_tokens_per_s": round(completion / wall, 1),
        "prompt_tokens": sum(g.prompt_tokens for g in gens),
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=64, help="chats per batch size")
    ap.add_argument("--new-tokens", type=int, default=32)
    ap.add_argument("--batch-sizes", default="1,8,32")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--model", help="a model folder (default: build the tiny model)")
    ap.add_argument("--out", type=Path, help="also append the JSON lines to this file")
    args = ap.parse_args(argv)

    import torch

    from kardiabench.jsonl import JsonlWriter
    from kardiabench.models.hf import HFChatModel
    from kardiabench.testing.tiny_model import build_tiny_model

    folder = args.model or str(build_tiny_model(Path(tempfile.gettempdir()) / "kardiabench-tiny-model"))
    model = HFChatModel(folder, device=args.device, dtype="float32")
    machine = {"cpu_count": os.cpu_count(), "torch_threads": torch.get_num_threads(),
               "python": platform.python_version(), "torch": torch.__version__}  # fmt: skip
    rows = []
    for bs in (int(b) for b in args.batch_sizes.split(",")):
        row = asyncio.run(measure(model, prompts(args.n), bs, args.new_tokens, args.repeats)) | machine
        rows.append(row)
        print(json.dumps(row), flush=True)
    if args.out:
        writer = JsonlWriter(args.out)
        for r in rows:
            writer.write(r)
        writer.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
