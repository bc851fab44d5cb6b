"""Several --base-url replicas of one model: spread, per-replica back-off, same results as one,
per-replica counts in run.json, replicas serving different models named."""

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
    return ChatRequest.from_messages(
        [{"role": "user", "content": f"item {i}"}], SamplingParams(max_tokens=64)
    )


def test_sick_replica_is_backed_off_and_every_item_answered():
    # A fails its first two requests; B is healthy. B alone needs >= 40/2 * 0.05 s of replies, far
    # longer than A's 0.05 s cooldown, so A comes back and serves too (sleeps only ever run long).
    with (
        FakeOpenAIServer(FakeConfig(latency=0.05, fail_requests=2)) as a,
        FakeOpenAIServer(FakeConfig(latency=0.05)) as b,
    ):
        pool = ReplicaPool(
            "m", [a.url, b.url], concurrency=2, backoff_base=0.05, api_key="sk-local"
        )

        async def go():
            try:
                return await asyncio.gather(*(pool.generate([request(i)]) for i in range(40)))
            finally:
                await pool.aclose()

        outs = [o[0] for o in asyncio.run(go())]
    assert all(isinstance(o, Generation) for o in outs)
    assert (
        a.stats.faults["500"] == 2
        and pool.replicas[0].cooldowns >= 1
        and pool.replicas[1].cooldowns == 0
    )
    assert sum(a.stats.served.values()) >= 1 and sum(b.stats.served.values()) >= 1
    assert sum(a.stats.served.values()) + sum(b.stats.served.values()) == 40
    usage = pool.replica_usage()
    assert [u["url"] for u in usage] == [a.url, b.url]
    assert sum(u["replies"] for u in usage) == 40
    # every request counted where it went
    assert [u["requests"] for u in usage] == [a.stats.requests, b.stats.requests]
    assert (usage[0]["failures"], usage[1]["failures"]) == (2, 0) and sum(
        u["retries"] for u in usage
    ) == 2


def test_pool_identity_ignores_which_replica_and_ports():
    one = OpenAIChatModel("m", base_url="http://127.0.0.1:8001/v1", api_key="x")
    pool = load_model(
        "openai:m", ModelOptions(base_url=["http://127.0.0.1:8001/v1", "http://127.0.0.1:8002/v1"])
    )
    assert isinstance(pool, ReplicaPool) and pool.max_concurrency == 32
    assert pool.identity() == one.identity()
    nodes = load_model(
        "openai:m",
        ModelOptions(base_url=["http://node2:8000/v1", "http://node1:8000/v1"], require_key=False),
    )
    swapped = load_model(
        "openai:m",
        ModelOptions(base_url=["http://node1:8000/v1", "http://node2:8000/v1"], require_key=False),
    )
    assert (
        nodes.identity() == swapped.identity() == {"spec": "openai:m", "host": ["node1", "node2"]}
    )


def test_cli_repeated_base_url_gives_the_same_predictions(tmp_path, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-local")
    data = write_dataset(tmp_path / "data")

    def run(out, *urls):
        flags = [x for u in urls for x in ("--base-url", u)]
        assert (
            main(
                [
                    "generate",
                    "--model",
                    "openai:m",
                    *flags,
                    "--data",
                    str(data),
                    "--output",
                    str(out),
                    "--no-cache",
                    "--no-progress",
                    "--concurrency",
                    "2",
                ]
            )
            == 0
        )
        return {
            r["item_id"]: r["raw_output"]
            for r in map(json.loads, (out / "predictions.jsonl").read_text().splitlines())
        }

    with (
        FakeOpenAIServer(FakeConfig(latency=0.02)) as a,
        FakeOpenAIServer(FakeConfig(latency=0.02)) as b,
    ):
        single = run(tmp_path / "one", a.url)
        a.stats.reset()
        double = run(tmp_path / "two", a.url, b.url)
        assert a.stats.requests >= 1 and b.stats.requests >= 1
    assert double == single and len(single) == 9


def test_per_replica_counts_and_mixed_served_models_reach_run_json(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-local")
    data = write_dataset(tmp_path / "data")
    out = tmp_path / "run"
    # A answers as another model than B; the first two requests go one to each (fewest in flight), so both answer
    with (
        FakeOpenAIServer(FakeConfig(served_names={"m": "m-v1"})) as a,
        FakeOpenAIServer(FakeConfig(served_names={"m": "m-v2"})) as b,
    ):
        argv = [
            "generate",
            "--model",
            "openai:m",
            "--base-url",
            a.url,
            "--base-url",
            b.url,
            "--data",
            str(data),
            "--output",
            str(out),
            "--no-cache",
            "--no-progress",
            "--concurrency",
            "2",
        ]
        assert main(argv) == 0
        served = {a.url: a.stats, b.url: b.stats}
        err = capsys.readouterr().err
        stats = json.loads((out / "run.json").read_text())["generation_stats"]
        replicas = stats["replicas"]
        assert [r["url"] for r in replicas] == [a.url, b.url]
        for r in replicas:
            s = served[r["url"]]
            assert r["requests"] == s.requests == r["replies"] == sum(s.served.values()) >= 1
            assert r["failures"] == r["retries"] == 0  # (failures and retries: test_sick_replica_…)
        assert sum(r["replies"] for r in replicas) == 9 == stats["done"]
        assert sum(r["prompt_tokens"] for r in replicas) == stats["prompt_tokens"]
        assert sum(r["completion_tokens"] for r in replicas) == stats["completion_tokens"]
        assert replicas[0]["served_models"] == {"m-v1": replicas[0]["replies"]}
        assert replicas[1]["served_models"] == {"m-v2": replicas[1]["replies"]}
        assert stats["mixed_served_models"] == ["m-v1", "m-v2"]
        assert err.count("answer as different models") == 1  # warned once, not once per reply
        assert f"{a.url} → m-v1" in err and f"{b.url} → m-v2" in err

        # a resume with nothing left to do keeps every total (and sends nothing)
        assert main(argv) == 0
        again = json.loads((out / "run.json").read_text())["generation_stats"]
        assert (
            again["resumes"] == 1
            and again["replicas"] == replicas
            and again["mixed_served_models"] == ["m-v1", "m-v2"]
        )
        assert a.stats.requests + b.stats.requests == sum(r["requests"] for r in replicas)

    from kardiabench.runs import load_run

    typed = load_run(out).manifest.generation_stats
    assert typed.replicas[1].served_models == {
        "m-v2": replicas[1]["replies"]
    } and typed.mixed_served_models == ["m-v1", "m-v2"]


def test_a_single_endpoint_run_has_no_replica_fields(tmp_path, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-local")
    data = write_dataset(tmp_path / "data")
    with FakeOpenAIServer() as srv:
        assert (
            main(
                [
                    "generate",
                    "--model",
                    "openai:m",
                    "--base-url",
                    srv.url,
                    "--data",
                    str(data),
                    "--output",
                    str(tmp_path / "run"),
                    "--no-cache",
                    "--no-progress",
                ]
            )
            == 0
        )
    stats = json.loads((tmp_path / "run" / "run.json").read_text())["generation_stats"]
    assert "replicas" not in stats and "mixed_served_models" not in stats


def test_judge_replicas_are_counted_in_run_json(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-local")
    data = write_dataset(tmp_path / "data")
    out = tmp_path / "run"
    with (
        FakeOpenAIServer() as gen,
        FakeOpenAIServer(FakeConfig(served_names={"j": "j-v1"})) as a,
        FakeOpenAIServer(FakeConfig(served_names={"j": "j-v2"})) as b,
    ):
        assert (
            main(
                [
                    "run",
                    "--model",
                    "openai:m",
                    "--base-url",
                    gen.url,
                    "--judge",
                    "openai:j",
                    "--judge-base-url",
                    a.url,
                    "--judge-base-url",
                    b.url,
                    "--data",
                    str(data),
                    "--output",
                    str(out),
                    "--no-cache",
                    "--no-progress",
                    "--judge-concurrency",
                    "2",
                    "--resamples",
                    "50",
                ]
            )
            == 0
        )
        judge = json.loads((out / "run.json").read_text())["judge"]
        [(spec, replicas)] = judge["replicas"].items()
        assert spec == "openai:j" and [r["url"] for r in replicas] == [a.url, b.url]
        assert [r["requests"] for r in replicas] == [a.stats.requests, b.stats.requests]
        assert sum(r["replies"] for r in replicas) == 9 and [
            r["served_models"] for r in replicas
        ] == [{"j-v1": replicas[0]["replies"]}, {"j-v2": replicas[1]["replies"]}]
    assert capsys.readouterr().err.count("the replicas of openai:j answer as different models") == 1
    from kardiabench.runs import load_run

    assert load_run(out).manifest.judge.replicas["openai:j"][1].served_models == {
        "j-v2": replicas[1]["replies"]
    }
