"""Several --base-url replicas of one model: spread, per-replica back-off, same results as one."""

import asyncio
import json

from helpers import write_dataset

from kardiabench.cli import main
from kardiabench.models import ModelOptions, load_model
from kardiabench.models.base import ChatRequest, Generation, SamplingParams
from kardiabench.models.openai_api import OpenAIChatModel
from kardiabench.models.replicas import ReplicaPool
from kardiabench.testing.fake_openai import FakeConfig, FakeOpenAIServer


def request(i):
    return ChatRequest.from_messages([{"role": "user", "content": f"item {i}"}], SamplingParams(max_tokens=64))


def test_sick_replica_is_backed_off_and_every_item_answered():
    # A fails its first two requests; B is healthy. B alone needs >= 40/2 * 0.05 s of replies, far
    # longer than A's 0.05 s cooldown, so A comes back and serves too (sleeps only ever run long).
    with FakeOpenAIServer(FakeConfig(latency=0.05, fail_requests=2)) as a, FakeOpenAIServer(FakeConfig(latency=0.05)) as b:
        pool = ReplicaPool("m", [a.url, b.url], concurrency=2, backoff_base=0.05, api_key="sk-local")

        async def go():
            try:
                return await asyncio.gather(*(pool.generate([request(i)]) for i in range(40)))
            finally:
                await pool.aclose()

        outs = [o[0] for o in asyncio.run(go())]
    assert all(isinstance(o, Generation) for o in outs)
    assert a.stats.faults["500"] == 2 and pool.replicas[0].cooldowns >= 1 and pool.replicas[1].cooldowns == 0
    assert sum(a.stats.served.values()) >= 1 and sum(b.stats.served.values()) >= 1
    assert sum(a.stats.served.values()) + sum(b.stats.served.values()) == 40
    usage = pool.usage()
    assert sum(u["successes"] for u in usage.values()) == 40


def test_pool_identity_ignores_which_replica_and_ports():
    one = OpenAIChatModel("m", base_url="http://127.0.0.1:8001/v1", api_key="x")
    pool = load_model("openai:m", ModelOptions(base_url=["http://127.0.0.1:8001/v1", "http://127.0.0.1:8002/v1"]))
    assert isinstance(pool, ReplicaPool) and pool.max_concurrency == 32
    assert pool.identity() == one.identity()
    nodes = load_model("openai:m", ModelOptions(base_url=["http://node2:8000/v1", "http://node1:8000/v1"], require_key=False))
    swapped = load_model("openai:m", ModelOptions(base_url=["http://node1:8000/v1", "http://node2:8000/v1"], require_key=False))
    assert nodes.identity() == swapped.identity() == {"spec": "openai:m", "host": ["node1", "node2"]}


def test_cli_repeated_base_url_gives_the_same_predictions(tmp_path, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-local")
    data = write_dataset(tmp_path / "data")

    def run(out, *urls):
        flags = [x for u in urls for x in ("--base-url", u)]
        assert main(["generate", "--model", "openai:m", *flags, "--data", str(data), "--output", str(out),
                     "--no-cache", "--no-progress", "--concurrency", "2"]) == 0  # fmt: skip
        return {r["item_id"]: r["raw_output"] for r in map(json.loads, (out / "predictions.jsonl").read_text().splitlines())}

    with FakeOpenAIServer(FakeConfig(latency=0.02)) as a, FakeOpenAIServer(FakeConfig(latency=0.02)) as b:
        single = run(tmp_path / "one", a.url)
        a.stats.reset()
        double = run(tmp_path / "two", a.url, b.url)
        assert a.stats.requests >= 1 and b.stats.requests >= 1
    assert double == single and len(single) == 9
