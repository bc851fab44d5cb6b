import asyncio

import pytest

from kardiabench.cache import Cache, request_key
from kardiabench.models.base import (
    ChatModel,
    ChatRequest,
    FatalModelError,
    Generation,
    ModelError,
    SamplingParams,
)
from kardiabench.runner import Job, run_jobs


class EchoModel(ChatModel):
    """Answers with the last user message; fails the requests whose text says so."""

    def __init__(self, batch=1, concurrency=4, fatal_on=None):
        self.spec = "test:echo"
        self.max_batch_size = batch
        self.max_concurrency = concurrency
        self.calls: list[str] = []
        self.in_flight = 0
        self.peak = 0
        self.fatal_on = fatal_on

    async def generate(self, requests):
        self.in_flight += 1
        self.peak = max(self.peak, self.in_flight)
        await asyncio.sleep(0.01)
        self.in_flight -= 1
        outs = []
        for r in requests:
            text = r.messages[-1][1]
            self.calls.append(text)
            if self.fatal_on and text == self.fatal_on:
                raise FatalModelError("bad key")
            outs.append(
                ModelError("boom")
                if "fail" in text
                else Generation(text=text.upper(), prompt_tokens=3, completion_tokens=2)
            )
        return outs


def jobs(texts):
    return [
        Job(f"k{i}", ChatRequest.from_messages([{"role": "user", "content": t}], SamplingParams()))
        for i, t in enumerate(texts)
    ]


def run(model, js, cache=None, concurrency=None):
    results = {}

    def on_result(job, out, cached):
        results[job.key] = (out, cached)

    stats = asyncio.run(
        run_jobs(
            model, js, on_result=on_result, cache=cache, concurrency=concurrency, progress=False
        )
    )
    return stats, results


def test_every_job_answered_once_with_concurrency_cap():
    model = EchoModel(concurrency=3)
    stats, results = run(model, jobs([f"t{i}" for i in range(20)]))
    assert stats.done == 20 and stats.failed == 0
    assert sorted(model.calls) == sorted(f"t{i}" for i in range(20))
    assert model.peak == 3
    assert results["k5"][0].text == "T5"
    assert stats.prompt_tokens == 60 and stats.completion_tokens == 40


def test_workers_follow_the_work_not_the_concurrency(monkeypatch):
    """One worker task per batch at most: a concurrency of a million over three items starts three."""
    made = []
    real = asyncio.create_task
    monkeypatch.setattr(
        asyncio, "create_task", lambda coro, **kw: made.append(coro) or real(coro, **kw)
    )
    stats, _ = run(EchoModel(concurrency=1_000_000), jobs(["a", "b", "c"]))
    assert stats.done == 3 and len(made) == 3
    made.clear()
    stats, _ = run(
        EchoModel(batch=4, concurrency=2), jobs([f"t{i}" for i in range(10)]), concurrency=1_000_000
    )
    assert stats.done == 10 and len(made) == 3  # batches of 4, 4, 2


def test_batches_respect_max_batch_size():
    model = EchoModel(batch=4, concurrency=1)
    stats, _ = run(model, jobs([f"t{i}" for i in range(10)]))
    assert stats.done == 10 and model.peak == 1


def test_failures_are_reported_not_dropped():
    stats, results = run(EchoModel(), jobs(["ok", "fail me", "ok2"]))
    assert stats.failed == 1 and stats.failed_keys == ["k1"]
    assert isinstance(results["k1"][0], ModelError)
    assert len(results) == 3


def test_cache_serves_second_run_without_requests(tmp_path):
    cache = Cache(tmp_path / "c.sqlite")
    js = jobs(["a", "b", "fail c"])
    run(EchoModel(), js, cache)
    second = EchoModel()
    stats, results = run(second, js, cache)
    assert stats.cached == 2
    assert second.calls == ["fail c"]  # failures are not cached: they are retried
    assert results["k0"] == (Generation(text="A", prompt_tokens=3, completion_tokens=2), True)


def test_cache_key_depends_on_identity_and_request():
    r1 = ChatRequest.from_messages([{"role": "user", "content": "x"}], SamplingParams(seed=1))
    r2 = ChatRequest.from_messages([{"role": "user", "content": "x"}], SamplingParams(seed=2))
    assert request_key({"spec": "a"}, r1) != request_key({"spec": "a"}, r2)
    assert request_key({"spec": "a"}, r1) != request_key({"spec": "b"}, r1)
    assert request_key({"spec": "a"}, r1) == request_key(
        {"spec": "a"},
        ChatRequest.from_messages([{"role": "user", "content": "x"}], SamplingParams(seed=1)),
    )


def test_fatal_error_stops_the_run_and_keeps_finished_results():
    model = EchoModel(concurrency=1, fatal_on="t3")
    results = {}
    with pytest.raises(FatalModelError):
        asyncio.run(
            run_jobs(
                model,
                jobs([f"t{i}" for i in range(10)]),
                on_result=lambda j, o, c: results.setdefault(j.key, o),
                progress=False,
            )
        )
    assert set(results) == {"k0", "k1", "k2"}
    assert "t9" not in model.calls


def test_request_key_is_sha256_of_the_canonical_mapping():
    """Keys must stay byte-identical to the documented definition, or old caches stop hitting."""
    import hashlib
    import json

    r = ChatRequest.from_messages(
        [{"role": "system", "content": "é sys"}, {"role": "user", "content": "x"}],
        SamplingParams(seed=3),
        {"type": "json_object"},
    )
    identity = {"spec": "openai:m", "host": "h"}
    blob = json.dumps(
        {"model": identity, "request": r.key_material()},
        sort_keys=True,
        ensure_ascii=False,
        separators=(",", ":"),
    )
    assert request_key(identity, r) == hashlib.sha256(blob.encode()).hexdigest()
