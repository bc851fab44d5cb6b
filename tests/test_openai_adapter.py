"""OpenAIChatModel against the scripted fake server over real HTTP on 127.0.0.1."""

from __future__ import annotations

import asyncio
import email.utils
import json
import socket
import subprocess
import sys
import urllib.request

import pytest

from kardiabench.models import openai_api
from kardiabench.models.base import (
    ChatRequest,
    FatalModelError,
    Generation,
    ModelError,
    SamplingParams,
)
from kardiabench.models.openai_api import (
    AdaptiveLimiter,
    OpenAIChatModel,
    _lacks_scope,
    _retry_after,
)
from kardiabench.models.pricing import DEFAULT_PRICES, PriceTable, cost, load_prices
from kardiabench.testing.fake_openai import (
    FakeConfig,
    FakeOpenAIServer,
    default_reply,
    free_port,
    request_key,
    wait_for_health,
)

SECRET = "sk-test-DO-NOT-LEAK-0123456789"


def chats(n: int, prefix: str = "hello", response_format: dict | None = None) -> list[ChatRequest]:
    return [
        ChatRequest.from_messages(
            [
                {"role": "system", "content": "Be kind."},
                {"role": "user", "content": f"{prefix} number {i}"},
            ],
            SamplingParams(max_tokens=64),
            response_format,
        )
        for i in range(n)
    ]


def model_for(srv: FakeOpenAIServer, name: str = "fake", **kw) -> OpenAIChatModel:
    kw.setdefault("backoff_base", 0.01)
    kw.setdefault("timeout", 5.0)
    return OpenAIChatModel(name, base_url=srv.url, api_key=kw.pop("api_key", SECRET), **kw)


def record_sleeps(monkeypatch) -> list[float]:
    """Make the adapter's retry waits instant, and record the delays it asked for."""
    delays: list[float] = []
    real_sleep = asyncio.sleep

    async def sleep(delay, *args, **kwargs):
        delays.append(delay)
        await real_sleep(0)

    monkeypatch.setattr(openai_api.asyncio, "sleep", sleep)
    return delays


def generate_all(
    model: OpenAIChatModel, requests: list[ChatRequest]
) -> list[Generation | ModelError]:
    async def go():
        try:
            outs = await asyncio.gather(*(model.generate([r]) for r in requests))
            return [o[0] for o in outs]
        finally:
            await model.aclose()

    return asyncio.run(go())


def key_of(req: ChatRequest) -> str:
    return request_key(req.message_dicts())


def test_success_path_reads_text_usage_and_timing():
    with FakeOpenAIServer(FakeConfig(latency=0.05), models=("gpt-4o-mini",)) as srv:
        model = model_for(srv, "gpt-4o-mini")
        reqs = chats(3)
        outs = generate_all(model, reqs)
    for req, g in zip(reqs, outs, strict=True):
        assert isinstance(g, Generation)
        assert g.text == default_reply({"messages": req.message_dicts()})
        assert g.finish_reason == "stop"
        assert g.prompt_tokens == 5 and g.completion_tokens > 0  # "Be kind." + "hello number i"
        assert g.attempts == 1
        assert 0.05 <= g.latency_s < 2
        price = DEFAULT_PRICES["gpt-4o-mini"]
        assert model.cost(g.prompt_tokens, g.completion_tokens) == pytest.approx(
            (g.prompt_tokens * price.input + g.completion_tokens * price.output) / 1e6
        )
    assert model.stats.prompt_tokens == 15
    ident = model.identity()
    assert ident == {"spec": "openai:gpt-4o-mini", "host": "127.0.0.1"}
    assert SECRET not in repr(model) and SECRET not in json.dumps(ident)


def test_finish_reason_length_is_reported():
    with FakeOpenAIServer() as srv:
        req = ChatRequest.from_messages(
            [{"role": "user", "content": "hi"}], SamplingParams(max_tokens=3)
        )
        (g,) = generate_all(model_for(srv), [req])
    assert isinstance(g, Generation) and g.finish_reason == "length" and g.completion_tokens == 3


@pytest.mark.parametrize(
    "cfg, wait",
    [
        (dict(fail_kinds=("429",), retry_after="0.6"), 0.6),
        (dict(fail_kinds=("503",), retry_after="0.6"), 0.6),
        (dict(fail_kinds=("429",), retry_after=None, retry_after_ms=400), 0.4),
    ],
    ids=["429-retry-after", "503-retry-after", "429-retry-after-ms"],
)
def test_retry_after_is_honoured(cfg, wait, monkeypatch):
    delays = record_sleeps(monkeypatch)
    with FakeOpenAIServer(FakeConfig(fail_first=1, **cfg)) as srv:
        model = model_for(srv, backoff_base=0.001)
        (g,) = generate_all(model, chats(1))
        attempts = sum(srv.stats.attempts.values())
    assert isinstance(g, Generation) and g.attempts == 2 and attempts == 2
    assert delays == [wait]  # the server's value, not the (tiny) backoff


def test_without_retry_after_the_backoff_grows_and_is_capped(monkeypatch):
    delays = record_sleeps(monkeypatch)
    with FakeOpenAIServer(FakeConfig(fail_first=4, fail_kinds=("500",))) as srv:
        (g,) = generate_all(model_for(srv, backoff_base=1.0, backoff_max=3.0), chats(1))
    assert isinstance(g, Generation) and g.attempts == 5
    assert len(delays) == 4  # full jitter: uniform(0, min(max, base * 2**retry))
    assert all(0 <= d <= cap for d, cap in zip(delays, (1.0, 2.0, 3.0, 3.0), strict=True)), delays


def test_retry_after_header_forms():
    assert _retry_after({"retry-after": "2"}, 120) == 2.0
    assert _retry_after({"retry-after-ms": "250", "retry-after": "9"}, 120) == 0.25
    assert _retry_after({"retry-after": "1000"}, 30) == 30  # capped
    assert _retry_after({"retry-after": "soon"}, 30) is None
    assert _retry_after({}, 30) is None


def test_retry_after_http_date(monkeypatch):
    now = 1_700_000_000.0  # a whole second: HTTP dates have no fractions
    monkeypatch.setattr(openai_api.time, "time", lambda: now)
    assert _retry_after({"retry-after": email.utils.formatdate(now + 5, usegmt=True)}, 120) == 5.0
    assert _retry_after({"retry-after": email.utils.formatdate(now + 500, usegmt=True)}, 120) == 120
    assert _retry_after({"retry-after": email.utils.formatdate(now - 50, usegmt=True)}, 120) == 0.0


def test_server_errors_and_malformed_bodies_are_retried_to_success():
    kinds = ("500", "malformed", "no_choices")
    with FakeOpenAIServer(FakeConfig(fail_first=3, fail_kinds=kinds)) as srv:
        model = model_for(srv)
        reqs = chats(4)
        outs = generate_all(model, reqs)
        served = dict(srv.stats.served)
    assert all(isinstance(g, Generation) and g.attempts == 4 for g in outs)
    assert [g.text for g in outs] == [default_reply({"messages": r.message_dicts()}) for r in reqs]
    assert model.stats.server_errors == 4 and model.stats.malformed == 8
    assert all(served[key_of(r)] == 1 for r in reqs)


def test_timeouts_are_retried():
    with FakeOpenAIServer(
        FakeConfig(fail_first=1, fail_kinds=("timeout",), timeout_sleep=60)
    ) as srv:
        model = model_for(srv, timeout=0.8, resend_after_timeout=True)  # as for a remote endpoint
        outs = generate_all(model, chats(3))
        faults = dict(srv.stats.faults)
    assert all(isinstance(g, Generation) and g.attempts == 2 for g in outs)
    # the stalled replies (60 s, then a 504) were abandoned at the client's timeout, not waited for
    assert model.stats.timeouts == 3 and faults == {"timeout": 3} and model.stats.server_errors == 0


def test_retries_are_bounded():
    with FakeOpenAIServer(FakeConfig(fail_first=10, fail_kinds=("500",))) as srv:
        (err,) = generate_all(model_for(srv, max_retries=2), chats(1))
        attempts = sum(srv.stats.attempts.values())
    assert isinstance(err, ModelError) and not isinstance(err, FatalModelError)
    assert "gave up after 3 attempts" in str(err) and attempts == 3


def test_faults_do_not_change_outputs_and_finished_items_are_not_rerequested():
    reqs = chats(40, prefix="fault run")
    faults = dict(
        p_429=0.2,
        p_500=0.15,
        p_503=0.05,
        p_timeout=0.05,
        p_malformed=0.1,
        max_faults_per_key=3,
        retry_after="0.05",
        timeout_sleep=10,
        seed=7,
    )
    with FakeOpenAIServer(FakeConfig()) as clean_srv:
        clean = generate_all(model_for(clean_srv, concurrency=8), reqs)
    with FakeOpenAIServer(FakeConfig(**faults)) as srv:
        model = model_for(srv, concurrency=8, timeout=1.0, resend_after_timeout=True)
        faulty = generate_all(model, reqs)
        stats = srv.stats
    assert all(isinstance(g, Generation) for g in clean + faulty)
    assert [g.text for g in faulty] == [g.text for g in clean]
    assert sum(stats.faults.values()) > 10  # the faults really happened...
    # ...and every attempt is accounted for
    assert sum(g.attempts for g in faulty) == stats.requests
    assert all(stats.served[key_of(r)] == 1 for r in reqs)  # no item was answered twice


def test_bad_key_is_fatal_quickly_and_never_leaks():
    with FakeOpenAIServer(FakeConfig(api_key="sk-the-right-one", latency=0.02)) as srv:
        model = model_for(srv, concurrency=4)

        async def go():
            try:
                return await model.generate(chats(30))
            finally:
                await model.aclose()

        with pytest.raises(FatalModelError) as info:
            asyncio.run(go())
        requests = srv.stats.requests
    err = info.value
    assert "authentication failed" in str(err) and srv.url in str(err)
    assert requests <= 4  # the first wave only: nobody retried, nobody else started
    for text in (str(err), repr(err), repr(model), str(err.__cause__), str(err.__context__)):
        assert SECRET not in text


def test_connection_errors_are_retried_and_do_not_leak_the_key():
    model = OpenAIChatModel(
        "m",
        base_url=f"http://127.0.0.1:{free_port()}/v1",
        api_key=SECRET,
        max_retries=1,
        backoff_base=0.01,
        timeout=2,
    )
    (err,) = generate_all(model, chats(1))
    assert isinstance(err, ModelError) and "connection error" in str(err)
    assert model.stats.connection_errors == 2
    assert SECRET not in str(err) and SECRET not in repr(err)


def test_missing_key_for_openai_is_a_clear_error(monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    with pytest.raises(FatalModelError, match="OPENAI_API_KEY"):
        OpenAIChatModel("gpt-4o")
    monkeypatch.setenv("OPENAI_BASE_URL", "http://127.0.0.1:9/v1")  # a local server needs no key
    assert OpenAIChatModel("x").base_url == "http://127.0.0.1:9/v1"


def test_unknown_model_is_fatal_and_named():
    with FakeOpenAIServer(FakeConfig(models=("served-model",))) as srv:
        with pytest.raises(FatalModelError, match="no-such-model"):
            generate_all(model_for(srv, "no-such-model"), chats(5))
        assert srv.stats.requests <= 5


def test_reasoning_content_is_captured():
    with FakeOpenAIServer(FakeConfig(reasoning=True)) as srv:
        (g,) = generate_all(model_for(srv), chats(1))
    assert isinstance(g, Generation) and g.reasoning and g.reasoning.startswith("Let me think")
    assert "<|emotion_begin|>" in g.text


def test_max_completion_tokens_fallback_is_remembered():
    with FakeOpenAIServer(FakeConfig(reject_max_tokens=True)) as srv:
        model = model_for(srv)
        (first,) = generate_all(model, chats(1, "a"))
        later = generate_all(model, chats(3, "b"))
    assert isinstance(first, Generation) and first.attempts == 2
    assert all(isinstance(g, Generation) and g.attempts == 1 for g in later)
    assert "max_tokens" in model.adaptations


def test_response_format_fallback_is_remembered():
    schema = {"type": "json_schema", "json_schema": {"name": "v", "schema": {"type": "object"}}}
    with FakeOpenAIServer(FakeConfig(reject_response_format=True)) as srv:
        model = model_for(srv)
        (first,) = generate_all(model, chats(1, "a", schema))
        later = generate_all(model, chats(2, "b", schema))
    assert isinstance(first, Generation) and first.attempts == 2
    assert all(isinstance(g, Generation) and g.attempts == 1 for g in later)
    assert "response_format" in model.adaptations


def test_concurrent_refusals_all_succeed():
    schema = {"type": "json_object"}
    with FakeOpenAIServer(FakeConfig(reject_response_format=True, latency=0.05)) as srv:
        model = model_for(srv, concurrency=8)
        # all sent before the first refusal returns
        outs = generate_all(model, chats(8, "c", schema))
    assert all(isinstance(g, Generation) for g in outs)
    assert all(g.attempts == 2 for g in outs)


def test_an_extra_body_field_the_endpoint_refuses_does_not_loop():
    with FakeOpenAIServer(FakeConfig(reject_response_format=True)) as srv:
        model = model_for(srv, extra_body={"response_format": {"type": "json_object"}})
        (err,) = generate_all(model, chats(1))
    assert isinstance(err, ModelError) and "refusing" in str(err)


def test_exhausted_quota_is_fatal():
    def reply(req: dict):
        return 429, {
            "error": {"message": "You exceeded your current quota.", "code": "insufficient_quota"}
        }

    with (
        FakeOpenAIServer(FakeConfig(reply_fn=reply)) as srv,
        pytest.raises(FatalModelError, match="quota"),
    ):
        generate_all(model_for(srv), chats(3))


def test_response_format_is_sent_when_supported():
    seen: list[dict] = []

    def reply(req: dict) -> str:
        seen.append(req)
        return "ok"

    schema = {"type": "json_object"}
    with FakeOpenAIServer(FakeConfig(reply_fn=reply)) as srv:
        generate_all(model_for(srv), chats(1, "a", schema))
    assert (
        seen[0]["response_format"] == schema
        and seen[0]["max_tokens"] == 64
        and seen[0]["seed"] == 0
    )


def test_other_400s_fail_the_item_without_retry():
    bad = chats(1, "too long")[0]

    def reply(req: dict):
        if req["messages"][-1]["content"].startswith("too long"):
            return 400, {
                "error": {
                    "message": "This model's maximum context length is 8 tokens",
                    "code": None,
                }
            }
        return "fine"

    with FakeOpenAIServer(FakeConfig(reply_fn=reply)) as srv:
        outs = generate_all(model_for(srv), [bad, *chats(2)])
        attempts = dict(srv.stats.attempts)
    assert isinstance(outs[0], ModelError) and "maximum context length" in str(outs[0])
    assert attempts[key_of(bad)] == 1
    assert [g.text for g in outs[1:]] == ["fine", "fine"]


def test_adaptive_concurrency_shrinks_under_rate_limits():
    with FakeOpenAIServer(FakeConfig(fail_first=2, fail_kinds=("429",), retry_after="0.02")) as srv:
        model = model_for(srv, concurrency=16)
        outs = generate_all(model, chats(32))
    assert all(isinstance(g, Generation) for g in outs)
    assert model.limiter.decreases >= 2
    assert model.limiter.limit < 16
    assert model.stats.rate_limited == 64


def test_clients_follow_the_requests_in_flight_not_the_concurrency(monkeypatch):
    """Issue 16: --concurrency 99999999 took 22 GB before a request was sent (a slot list and an
    HTTP client per 16 slots, all up front). Through the runner, three requests at concurrency 1000
    make one client; 40 at concurrency 40 make three (16 + 16 + 8 in flight)."""
    import openai

    from kardiabench.runner import Job, run_jobs

    made: list[int] = []  # the connection-pool size of each HTTP client made

    class Counting(openai.DefaultAsyncHttpxClient):
        def __init__(self, **kwargs):
            made.append(kwargs["limits"].max_connections)
            super().__init__(**kwargs)

    monkeypatch.setattr(openai, "DefaultAsyncHttpxClient", Counting)
    with FakeOpenAIServer() as srv:
        for n, concurrency, expected in ((3, 1000, [16]), (40, 40, [16, 16, 8])):
            made.clear()
            model = model_for(srv, concurrency=concurrency)
            jobs = [Job(f"k{i}", r) for i, r in enumerate(chats(n))]
            results: dict[str, object] = {}

            async def go(model=model, jobs=jobs, results=results):
                try:
                    return await run_jobs(
                        model,
                        jobs,
                        on_result=lambda j, o, _: results.setdefault(j.key, o),
                        progress=False,
                    )
                finally:
                    await model.aclose()

            stats = asyncio.run(go())
            assert stats.done == n and len(results) == n, results
            assert sorted(made) == sorted(expected), (n, concurrency, made)


def test_adapter_survives_successive_event_loops():
    with FakeOpenAIServer() as srv:
        model = model_for(srv)
        assert isinstance(generate_all(model, chats(1))[0], Generation)
        assert isinstance(generate_all(model, chats(1, "again"))[0], Generation)


# -- the limiter alone ----------------------------------------------------------------------------


def test_limiter_halves_once_per_window_and_grows_back():
    async def go():
        lim = AdaptiveLimiter(8, increase_every=2)
        tokens = [await lim.acquire() for _ in range(8)]
        assert lim.in_flight == 8
        lim.release(tokens[0], throttled=True)
        assert lim.limit == 4
        lim.release(tokens[1], throttled=True)  # same window: not a second signal
        assert lim.limit == 4
        for t in tokens[2:]:
            lim.release(t)
        t = await lim.acquire()
        lim.release(t, throttled=True)  # a new window: halves again
        assert lim.limit == 2
        for _ in range(3):
            t = await lim.acquire()
            lim.release(t, throttled=True)
        assert lim.limit == 1  # never below one
        for _ in range(4):
            t = await lim.acquire()
            lim.release(t, ok=True)
        assert lim.limit == 3 and lim.in_flight == 0
        for _ in range(40):
            t = await lim.acquire()
            lim.release(t, ok=True)
        assert lim.limit == 8  # capped

    asyncio.run(go())


def test_limiter_blocks_in_order_and_survives_cancellation():
    async def go():
        lim = AdaptiveLimiter(2)
        a, b = await lim.acquire(), await lim.acquire()
        order: list[str] = []

        async def waiter(name: str):
            t = await lim.acquire()
            order.append(name)
            return t

        w1 = asyncio.create_task(waiter("first"))
        w2 = asyncio.create_task(waiter("second"))
        w3 = asyncio.create_task(waiter("third"))
        await asyncio.sleep(0.01)
        assert order == [] and lim.in_flight == 2
        w2.cancel()
        await asyncio.sleep(0)
        lim.release(a)
        lim.release(b)
        t1, t3 = await w1, await w3
        assert order == ["first", "third"] and lim.in_flight == 2
        lim.release(t1)
        lim.release(t3)
        assert lim.in_flight == 0 and not lim._waiters

    asyncio.run(go())


# -- prices ---------------------------------------------------------------------------------------


def test_prices_known_unknown_and_user_files(tmp_path, monkeypatch):
    monkeypatch.delenv("KARDIABENCH_PRICES", raising=False)
    assert cost("gpt-4o", 1_000_000, 0) == pytest.approx(DEFAULT_PRICES["gpt-4o"].input)
    assert cost("GPT-4o", 0, 2_000_000) == pytest.approx(2 * DEFAULT_PRICES["gpt-4o"].output)
    assert cost("my-local-model", 10, 10) is None
    assert cost("gpt-4o-2024-05-13", 10, 10) is None  # snapshots are not guessed from the alias
    (tmp_path / "p.yaml").write_text("my-local-model: {input: 1, output: 3}\ngpt-4o: [5, 15]\n")
    (tmp_path / "p.json").write_text(json.dumps({"other": {"input": 2, "output": 2}}))
    table = PriceTable.default().with_file(tmp_path / "p.yaml").with_file(tmp_path / "p.json")
    assert table.cost("my-local-model", 1_000_000, 1_000_000) == pytest.approx(4.0)
    assert table.cost("gpt-4o", 1_000_000, 0) == pytest.approx(5.0)
    assert table.cost("other", 500_000, 0) == pytest.approx(1.0)
    assert PriceTable.load(tmp_path / "p.json").cost("other", 0, 1_000_000) == pytest.approx(2.0)
    monkeypatch.setenv("KARDIABENCH_PRICES", str(tmp_path / "p.yaml"))
    assert cost("my-local-model", 0, 1_000_000) == pytest.approx(3.0)
    (tmp_path / "bad.yaml").write_text("m: {input: 1}\n")
    with pytest.raises(ValueError, match="m"):
        load_prices(tmp_path / "bad.yaml")


# -- the fake server as a subprocess --------------------------------------------------------------


def test_fake_server_runs_as_a_subprocess_with_faults():
    port = free_port()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "kardiabench.testing.fake_openai",
            "--port",
            str(port),
            "--fail-first",
            "1",
            "--fail-kinds",
            "500",
            "--models",
            "m1,m2",
        ],
        stdout=subprocess.DEVNULL,
    )
    try:
        assert wait_for_health(f"http://127.0.0.1:{port}", timeout=30)
        model = OpenAIChatModel("m2", base_url=f"http://127.0.0.1:{port}/v1", backoff_base=0.01)
        outs = generate_all(model, chats(2))
        assert all(isinstance(g, Generation) and g.attempts == 2 for g in outs)
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/stats") as r:
            stats = json.load(r)
        assert stats["requests"] == 4 and stats["faults"] == {"500": 2}
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/v1/models") as r:
            assert [m["id"] for m in json.load(r)["data"]] == ["m1", "m2"]
    finally:
        proc.terminate()
        proc.wait(10)


# ----------------------------------------------------------------------------- the endpoint probe


def test_probe_names_an_endpoint_that_connects_but_never_answers():
    # listens, never accepts: the connection opens, no reply ever comes
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        url = f"http://127.0.0.1:{sock.getsockname()[1]}/v1"
        model = OpenAIChatModel("m", base_url=url, api_key=SECRET, timeout=0.3)
        with pytest.raises(FatalModelError) as info:
            model.probe("--judge-base-url")
    assert (
        str(info.value)
        == f"openai:m: no answer from {url} within 0.3s; is the server up? (check --judge-base-url)"
    )
    assert SECRET not in str(info.value)


def test_probe_sends_one_listing_and_never_a_chat_request():
    with FakeOpenAIServer(FakeConfig(api_key=SECRET)) as srv:
        model_for(srv).probe()
        assert (srv.stats.listings, srv.stats.requests) == (1, 0)
        with pytest.raises(
            FatalModelError, match="authentication failed .* check OPENAI_API_KEY"
        ) as info:
            model_for(srv, api_key="sk-wrong-key-0000").probe()
    assert "sk-wrong-key-0000" not in str(info.value)


def test_a_key_that_only_may_not_list_models_is_not_refused():
    # OpenAI's answer to a restricted key without the models scope; such a key may still chat
    assert _lacks_scope(
        "You have insufficient permissions for this operation. Missing scopes: api.model.read."
    )
    assert not _lacks_scope("Incorrect API key provided: sk-….")
