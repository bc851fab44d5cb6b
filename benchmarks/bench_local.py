"""HF adapter throughput on the tiny random model (or `--model FOLDER`, e.g. SmolLM2), on CPU, at
several batch sizes, with batches in item order and in prompt-length order.

    python benchmarks/bench_local.py [--n 64] [--new-tokens 32] [--batch-sizes 1,8,32] [--sort off,on] [--out FILE]
    python benchmarks/bench_local.py --model "$(python -m kardiabench.testing.smollm2)" --greedy

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
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


def prompts(n: int, spread: int = 5) -> list[str]:
    """Chats of varied length (1 to `spread` times a ~20-token sentence, in turn), so batches in
    item order need real padding."""
    base = (
        "I finally told my sister how I felt about the move, and she went quiet for a long time. "
    )
    return [f"Message {i}: " + base * (1 + i % spread) for i in range(n)]


async def measure(
    model,
    texts: list[str],
    batch_size: int,
    new_tokens: int,
    repeats: int,
    sort: bool,
    greedy: bool,
) -> dict:
    """The fastest of `repeats` passes through the runner (as `kardiabench run` sends them)."""
    from kardiabench.models.base import ChatRequest, Generation, SamplingParams
    from kardiabench.runner import Job, run_jobs

    params = SamplingParams(temperature=0.0 if greedy else 1.0, max_tokens=new_tokens, seed=0)
    jobs = [
        Job(str(i), ChatRequest.from_messages([{"role": "user", "content": t}], params))
        for i, t in enumerate(texts)
    ]
    model.max_batch_size = batch_size
    await model.generate([j.request for j in jobs[:batch_size]])  # warm-up: first-call allocations
    wall, saved = float("inf"), 0
    outs: list = []
    for _ in range(repeats):
        outs.clear()
        stats = await run_jobs(
            model,
            jobs,
            on_result=lambda _j, out, _c: outs.append(out),
            progress=False,
            sort_by_length=sort,
        )
        wall, saved = min(wall, stats.wall_s), stats.pad_tokens_saved
    gens = [g for g in outs if isinstance(g, Generation)]
    completion = sum(g.completion_tokens for g in gens)
    return {
        "adapter": "hf",
        "device": model.device,
        "batch_size": batch_size,
        "length_sorted": sort,
        "pad_tokens_saved": saved,
        "greedy": greedy,
        "items": len(gens),
        "new_tokens": new_tokens,
        "wall_s": round(wall, 3),
        "repeats": repeats,
        "items_per_s": round(len(gens) / wall, 2),
        "completion_tokens_per_s": round(completion / wall, 1),
        "prompt_tokens": sum(g.prompt_tokens for g in gens),
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--n", type=int, default=64, help="chats per batch size")
    ap.add_argument("--new-tokens", type=int, default=32)
    ap.add_argument("--batch-sizes", default="1,8,32")
    ap.add_argument(
        "--sort",
        default="off,on",
        help="batches in item order (off) and/or prompt-length order (on)",
    )
    ap.add_argument(
        "--spread",
        type=int,
        default=5,
        help="prompt lengths: 1 to SPREAD times a ~20-token sentence",
    )
    ap.add_argument(
        "--greedy",
        action="store_true",
        help="temperature 0 (a real model; the tiny one often stops at once)",
    )
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--model", help="a model folder (default: build the tiny model)")
    ap.add_argument("--out", type=Path, help="also append the JSON lines to this file")
    args = ap.parse_args(argv)

    import torch

    from kardiabench.jsonl import JsonlWriter
    from kardiabench.models.hf import HFChatModel
    from kardiabench.testing.tiny_model import build_tiny_model

    folder = args.model or str(
        build_tiny_model(Path(tempfile.gettempdir()) / "kardiabench-tiny-model")
    )
    model = HFChatModel(folder, device=args.device, dtype="float32")
    machine = {
        "model": Path(folder).name,
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "python": platform.python_version(),
        "torch": torch.__version__,
    }
    rows = []
    for bs in (int(b) for b in args.batch_sizes.split(",")):
        for sort in dict.fromkeys(s == "on" for s in args.sort.split(",") if bs > 1 or s == "off"):
            row = (
                asyncio.run(
                    measure(
                        model,
                        prompts(args.n, args.spread),
                        bs,
                        args.new_tokens,
                        args.repeats,
                        sort,
                        args.greedy,
                    )
                )
                | machine
            )
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
