"""Throughput over 1, 2 and 4 replicas of fixed capacity: does `--base-url` given N times scale?

Each replica is `kardiabench.testing.fake_openai` in its own process, serving at most
`--capacity` replies at once (more queue), each after `--latency` seconds: a node's ceiling is
capacity ÷ latency req/s whatever the client sends, like a GPU server at its batch limit. The client
is the harness's own adapter (`load_model` with the URLs: a ReplicaPool for more than one), with
`--concurrency` per replica; requests are fed by as many workers as the model's max_concurrency,
like `runner.run_jobs`.

    python benchmarks/bench_replicas.py
    python benchmarks/bench_replicas.py --write-docs docs/benchmarks.md
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

from kardiabench.models import ModelOptions, load_model
from kardiabench.models.base import ChatRequest, Generation, SamplingParams
from kardiabench.testing.fake_openai import free_port, wait_for_health

COUNTS = (1, 2, 4)
MARK = "<!-- bench_replicas -->"


def requests(n: int, tag: str) -> list[ChatRequest]:
    params = SamplingParams(temperature=0.0, max_tokens=256)
    return [
        ChatRequest.from_messages([{"role": "user", "content": f"[{tag}] message {i}"}], params)
        for i in range(n)
    ]


async def measure(urls: list[str], n: int, conc: int, tag: str) -> float:
    """Requests per second for n requests over the given replicas (after one warm-up each)."""
    model = load_model(
        "openai:bench", ModelOptions(base_url=urls, concurrency=conc, api_key_env="NO_KEY_NEEDED")
    )
    try:
        await model.generate(requests(1, f"warm-{tag}"))
        queue = asyncio.Queue()
        for r in requests(n, tag):
            queue.put_nowait(r)

        async def worker() -> None:
            while not queue.empty():
                out = await model.generate([queue.get_nowait()])
                assert isinstance(out[0], Generation), out[0]

        t0 = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(model.max_concurrency)))
        return n / (time.perf_counter() - t0)
    finally:
        await model.aclose()


def table(rows: list[dict], ideal_one: float) -> str:
    base = rows[0]["rps"]
    out = [
        "| replicas | requests | ideal req/s | measured req/s | ÷ one replica |",
        "|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        out.append(
            f"| {r['replicas']} | {r['n']} | {ideal_one * r['replicas']:.0f} | {r['rps']:.1f} | {r['rps'] / base:.2f}× |"
        )
    return "\n".join(out)


def write_docs(path: Path, section: str) -> None:
    text = path.read_text(encoding="utf-8")
    if MARK in text:
        head, _, rest = text.partition(MARK)
        _, _, tail = rest.partition(MARK)
        text = head + MARK + "\n" + section + "\n" + MARK + tail
    else:
        text = text.rstrip("\n") + "\n\n" + MARK + "\n" + section + "\n" + MARK + "\n"
    path.write_text(text, encoding="utf-8")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--latency", type=float, default=0.2)
    p.add_argument("--capacity", type=int, default=8, help="replies a replica works on at once")
    p.add_argument(
        "--concurrency", type=int, default=16, help="client requests in flight per replica"
    )
    p.add_argument("--requests", type=int, default=320)
    p.add_argument("--write-docs", type=Path, default=None)
    a = p.parse_args()
    ports = [free_port() for _ in range(max(COUNTS))]
    procs = [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "kardiabench.testing.fake_openai",
                "--port",
                str(port),
                "--latency",
                str(a.latency),
                "--max-concurrency",
                str(a.capacity),
            ],
            stdout=subprocess.DEVNULL,
        )
        for port in ports
    ]
    try:
        for port in ports:
            if not wait_for_health(f"http://127.0.0.1:{port}", 30):
                raise SystemExit(f"fake server on {port} did not start")
        urls = [f"http://127.0.0.1:{port}/v1" for port in ports]
        rows = [
            {
                "replicas": k,
                "n": a.requests,
                "rps": asyncio.run(measure(urls[:k], a.requests, a.concurrency, f"r{k}")),
            }
            for k in COUNTS
        ]
    finally:
        for proc in procs:
            proc.terminate()
            proc.wait(10)
    ideal = a.capacity / a.latency
    result = table(rows, ideal)
    print(result)
    if a.write_docs:
        load = os.getloadavg()[0]
        section = (
            f"Command: `python benchmarks/bench_replicas.py` ({time.strftime('%Y-%m-%d')}): each replica serves at most "
            f"{a.capacity} replies at once, {a.latency:g} s each (ideal {ideal:.0f} req/s per replica); the client sends "
            f"{a.concurrency} per replica. Machine: {platform.machine()}, {os.cpu_count()} CPU cores, Python "
            f"{platform.python_version()}, servers and client on the same cores (1-minute load average {load:.1f} at the end).\n\n"
            + result
        )
        write_docs(a.write_docs, section)


if __name__ == "__main__":
    main()
