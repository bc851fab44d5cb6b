"""Does greedy output change with batch size? Runs the HF adapter on the same prompts alone and in
batches, on whatever device and dtype are given, and reports the share of prompts whose text differs.

  python benchmarks/gpu_batch_invariance.py MODEL_DIR --device cuda --dtype bfloat16 --n 64

Left padding is mathematically neutral, but low-precision kernels are not batch-invariant: this
measures how much that moves greedy generations (and so scores) on a given machine.
"""

from __future__ import annotations

import argparse
import asyncio
import json

from kardiabench.models.base import ChatRequest, SamplingParams
from kardiabench.models.hf import HFChatModel


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("model_dir")
    p.add_argument("--device", default="cuda")
    p.add_argument("--dtype", default="bfloat16")
    p.add_argument("--n", type=int, default=64)
    p.add_argument("--new-tokens", type=int, default=48)
    args = p.parse_args()
    base = (
        "I finally told my sister how I felt about the move, and she went quiet for a long time. "
    )
    reqs = [
        ChatRequest.from_messages(
            [{"role": "user", "content": f"Message {i}: " + base * (1 + i % 8)}],
            SamplingParams(temperature=0.0, max_tokens=args.new_tokens),
        )
        for i in range(args.n)
    ]
    report = {"device": args.device, "dtype": args.dtype, "n": args.n}
    for batch in (1, 8, args.n):
        model = HFChatModel(args.model_dir, batch_size=batch, dtype=args.dtype, device=args.device)
        outs = []
        for i in range(0, len(reqs), batch):
            outs += asyncio.run(model.generate(reqs[i : i + batch]))
        report[f"batch_{batch}"] = [o.text for o in outs]
    ref = report["batch_1"]
    for batch in (8, args.n):
        texts = report.pop(f"batch_{batch}")
        report[f"differs_from_batch1_at_batch_{batch}"] = sum(
            a != b for a, b in zip(ref, texts, strict=True)
        )
    report.pop("batch_1")
    print(json.dumps(report))


if __name__ == "__main__":
    main()
