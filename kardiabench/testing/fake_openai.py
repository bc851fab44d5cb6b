"""A scripted OpenAI-compatible chat server with deterministic replies and injected faults.

Tests and benchmarks talk to it over real HTTP on 127.0.0.1, so retries, rate limits, timeouts and
concurrency are exercised through the same `openai` client code path a real endpoint would use.

* Replies are a pure function of the request (by default a four-span answer whose emotion comes
  from a hash of the messages), so a run with faults gives the same predictions as one without.
* Faults are keyed by (request key, attempt number): "fail the first k attempts of every distinct
  request" (`fail_first`, `fail_kinds`) and/or seeded per-attempt probabilities. Probabilistic
  faults stop after `max_faults_per_key` attempts, so a client that retries always finishes.
* `stats` counts attempts and successful replies per request key (also served on GET /stats).

In process: ``with FakeOpenAIServer(FakeConfig(latency=0.05, p_429=0.2)) as srv: srv.url``.
As a subprocess: ``python -m kardiabench.testing.fake_openai --port 8123 --latency 0.2``.
A request with a `response_format` JSON schema (a judge) gets a valid 1-5 verdict for every
dimension the schema names; any other request gets a four-span reply.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import json
import random
import socket
import threading
import time
import urllib.request
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field, fields, replace
from typing import Any

from kardiabench.emotions import EMOTIONS
from kardiabench.spans import render_spans

FAULT_KINDS = ("429", "500", "503", "timeout", "malformed", "no_choices")

# reply_fn(request_json) -> reply text, or (status, body) to answer verbatim (dict → JSON, str → raw).
ReplyFn = Callable[[dict[str, Any]], "str | tuple[int, dict[str, Any] | str]"]


@dataclass
class FakeConfig:
    latency: float = 0.0  # seconds added before every reply
    # chat replies in progress at once (a server's capacity); beyond it they queue. 0: no cap
    max_concurrency: int = 0
    # the first N chat POSTs to this server, whatever they ask, answer 500 (a sick replica)
    fail_requests: int = 0
    # Deterministic schedule: attempt n < fail_first of each distinct request fails as fail_kinds[n % len].
    fail_first: int = 0
    fail_kinds: tuple[str, ...] = ("429",)
    # Seeded per-(request, attempt) probabilities, applied to the next max_faults_per_key attempts.
    p_429: float = 0.0
    p_500: float = 0.0
    p_503: float = 0.0
    p_timeout: float = 0.0
    p_malformed: float = 0.0
    max_faults_per_key: int = 2
    seed: int = 0
    # Retry-After header on 429/503 (seconds or an HTTP date); None ("none"): omit
    retry_after: str | None = "1"
    retry_after_ms: float | None = None  # also send `retry-after-ms`
    # how long a "timeout" fault stalls (longer than the client's timeout)
    timeout_sleep: float = 30.0
    # when set, other bearer tokens get 401 (the message echoes the token)
    api_key: str | None = None
    models: tuple[str, ...] | None = None  # served model ids; None accepts any
    no_models_route: bool = False  # 404 on GET /models, like servers that do not list their models
    # add `reasoning_content` to replies (DeepSeek-R1 / vLLM reasoning parser)
    reasoning: bool = False
    reject_max_tokens: bool = False  # 400 on `max_tokens`, like OpenAI reasoning models
    # 400 on `response_format`, like endpoints without JSON mode
    reject_response_format: bool = False
    span_style: str = "special"
    # requested model → the `model` a reply names
    served_names: dict[str, str] = field(default_factory=dict)
    # Batch API (/v1/files, /v1/batches): a batch answers "in_progress" to its first `batch_polls`
    # retrievals, then ends (10**9: never, until a test lowers it); every `batch_fail_every`-th request
    # goes to the error file (HTTP 500); `batch_expire`: the batch ends "expired" after answering only
    # its first `batch_expire_after`. Damaged output files: every `batch_malformed_every`-th output line
    # is cut in half (not JSON); every `batch_duplicate_every`-th carries the custom_id of the line
    # before it (two answers under one id, none under its own); `batch_unknown_lines` more lines
    # answer custom_ids the batch never held.
    batch_polls: int = 2
    batch_fail_every: int = 0
    batch_expire: bool = False
    batch_expire_after: int = 0
    batch_malformed_every: int = 0
    batch_duplicate_every: int = 0
    batch_unknown_lines: int = 0
    reply_fn: ReplyFn | None = None

    def __post_init__(self) -> None:
        bad = [k for k in self.fail_kinds if k not in FAULT_KINDS]
        if bad:
            raise ValueError(f"unknown fault kinds {bad}; choose from {FAULT_KINDS}")


@dataclass
class ServerStats:
    requests: int = 0  # every chat-completions POST
    listings: int = 0  # every GET /models (what a client's endpoint probe sends)
    attempts: Counter = field(default_factory=Counter)  # request key → POSTs received
    served: Counter = field(default_factory=Counter)  # request key → successful (200) replies
    faults: Counter = field(default_factory=Counter)  # fault kind → count
    # Authorization header ("" when absent) → chat POSTs
    auth: Counter = field(default_factory=Counter)
    # query string of the URL ("" when none) → chat POSTs
    queries: Counter = field(default_factory=Counter)
    batches_created: int = 0
    batch_requests: int = 0  # requests in the batches created
    batch_answered: int = 0  # of those, answered in an output file (each also counts in `requests`)

    def to_dict(self) -> dict[str, Any]:
        return {
            "requests": self.requests,
            "attempts": dict(self.attempts),
            "served": dict(self.served),
            "faults": dict(self.faults),
            "batches_created": self.batches_created,
            "batch_requests": self.batch_requests,
        }

    def reset(self) -> None:
        self.requests = self.listings = 0
        self.attempts.clear()
        self.served.clear()
        self.faults.clear()
        self.auth.clear()
        self.queries.clear()
        self.batches_created = self.batch_requests = self.batch_answered = 0


def request_key(messages: list[dict[str, Any]]) -> str:
    """The identity of a request for fault schedules and counts: its messages, not its parameters
    (a retry that changes `max_tokens` or drops `response_format` is the same request)."""
    blob = json.dumps([[m.get("role"), m.get("content")] for m in messages], ensure_ascii=False)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def default_reply(request: dict[str, Any], style: str = "special") -> str:
    """A well-formed four-span answer whose emotion is a function of the messages; to a judge
    request (one that asks for a JSON schema) a valid verdict instead."""
    schema = _verdict_schema(request)
    if schema is not None:
        return judge_reply(request, schema)
    messages = request.get("messages") or []
    digest = hashlib.sha256(request_key(messages).encode()).digest()
    last_user = next(
        (str(m.get("content", "")) for m in reversed(messages) if m.get("role") == "user"), ""
    )
    gist = " ".join(last_user.split()[:8]) or "nothing yet"
    spans = {
        "understanding": f"The user says: {gist}",
        "reasoning": f"They need support; note {digest[1:4].hex()}.",
        "emotion": EMOTIONS[digest[0] % len(EMOTIONS)],
        "response": "That sounds hard. I am here with you.",
    }
    return render_spans(spans, style)  # type: ignore[arg-type]


def _verdict_schema(request: dict[str, Any]) -> dict[str, Any] | None:
    """The JSON schema of a `response_format: {"type": "json_schema", ...}` request, else None."""
    rf = request.get("response_format")
    if not isinstance(rf, dict) or rf.get("type") != "json_schema":
        return None
    schema = (rf.get("json_schema") or {}).get("schema")
    return schema if isinstance(schema, dict) else None


def judge_reply(request: dict[str, Any], schema: dict[str, Any]) -> str:
    """A verdict that fits `schema`: every integer dimension (in properties or required) scored
    1-5, every enum field one of its values, as a function of the request's messages, plus a short
    rationale. Lets the command line
    server play a judge, so a full `run --judge` works without an API key."""
    digest = hashlib.sha256(request_key(request.get("messages") or []).encode()).digest()
    props = schema.get("properties") or {}
    names = [
        n for n in dict.fromkeys([*props, *(schema.get("required") or [])]) if n != "rationale"
    ]
    verdict: dict[str, Any] = {"rationale": "Scripted verdict from the fake server."}
    for i, name in enumerate(names):
        prop = props.get(name) or {}
        # an enum field (the pairwise judge's "A" / "B" / "tie"): one of its values
        if prop.get("enum"):
            verdict[name] = prop["enum"][digest[i % len(digest)] % len(prop["enum"])]
        elif prop.get("type", "integer") == "integer":
            verdict[name] = 1 + digest[i % len(digest)] % 5
        elif prop.get("type") == "string":
            verdict[name] = "scripted"
    return json.dumps(verdict)


def _count_tokens(text: str) -> int:
    return len(text.split())


class _App:
    """Routes and replies, independent of the transport below."""

    def __init__(self, config: FakeConfig, stats: ServerStats) -> None:
        self.config = config
        self.stats = stats
        self._capacity: asyncio.Semaphore | None = None  # created on the serving loop
        self.files: dict[str, bytes] = {}
        self.batches: dict[str, dict[str, Any]] = {}

    async def handle(
        self, method: str, path: str, headers: dict[str, str], body: bytes
    ) -> tuple[int, Any, dict[str, str]]:
        path, _, query = path.partition("?")
        path = path.rstrip("/")
        if method == "POST":
            if path in ("/v1/chat/completions", "/chat/completions"):
                self.stats.queries[query] += 1
                if self.config.max_concurrency <= 0:
                    return await self._chat(body, headers.get("authorization", ""))
                if self._capacity is None:
                    self._capacity = asyncio.Semaphore(self.config.max_concurrency)
                async with self._capacity:
                    return await self._chat(body, headers.get("authorization", ""))
            if path == "/v1/files":
                return self._upload(headers.get("content-type", ""), body)
            if path == "/v1/batches":
                return self._create_batch(body)
            if path == "/stats/reset":
                self.stats.reset()
                return 200, {"ok": True}, {}
        elif method == "GET":
            if path == "/health":
                return 200, {"status": "ok"}, {}
            if path in ("/v1/models", "/models") and not self.config.no_models_route:
                self.stats.listings += 1
                auth = headers.get("authorization", "")
                if self.config.api_key is not None and auth != f"Bearer {self.config.api_key}":
                    return (
                        401,
                        _error(
                            f"Incorrect API key provided: {auth.removeprefix('Bearer ')}.",
                            "invalid_api_key",
                        ),
                        {},
                    )
                ids = self.config.models or ("fake-model",)
                return (
                    200,
                    {
                        "object": "list",
                        "data": [
                            {"id": m, "object": "model", "created": 0, "owned_by": "kardiabench"}
                            for m in ids
                        ],
                    },
                    {},
                )
            if path == "/stats":
                return 200, self.stats.to_dict(), {}
            if (
                path.startswith("/v1/files/")
                and path.endswith("/content")
                and path[10:-8] in self.files
            ):
                return 200, self.files[path[10:-8]].decode(), {}
            if path.startswith("/v1/batches/") and path[12:] in self.batches:
                return (
                    200,
                    await self._retrieve_batch(path[12:], headers.get("authorization", "")),
                    {},
                )
        return 404, _error(f"no route {method} {path}", "not_found"), {}

    async def _chat(self, raw: bytes, auth: str) -> tuple[int, Any, dict[str, str]]:
        cfg = self.config
        self.stats.requests += 1
        self.stats.auth[auth] += 1
        try:
            req = json.loads(raw)
            messages = req["messages"]
        except (ValueError, KeyError, TypeError):
            return 400, _error("body must be JSON with `messages`", "invalid_request_error"), {}
        if cfg.api_key is not None and auth != f"Bearer {cfg.api_key}":
            token = auth.removeprefix("Bearer ")
            return 401, _error(f"Incorrect API key provided: {token}.", "invalid_api_key"), {}
        model = req.get("model")
        if cfg.models is not None and model not in cfg.models:
            return (
                404,
                _error(
                    f"The model `{model}` does not exist or you do not have access to it.",
                    "model_not_found",
                ),
                {},
            )
        if req.get("stream"):
            return 400, _error("the fake server does not stream", "invalid_request_error"), {}
        if self.stats.requests <= cfg.fail_requests:
            self.stats.faults["500"] += 1
            return (
                500,
                _error("The server had an error while processing your request.", "server_error"),
                {},
            )
        if cfg.reject_max_tokens and "max_tokens" in req:
            return (
                400,
                _error(
                    "Unsupported parameter: 'max_tokens' is not supported with this model. "
                    "Use 'max_completion_tokens' instead.",
                    "unsupported_parameter",
                    "max_tokens",
                ),
                {},
            )
        if cfg.reject_response_format and "response_format" in req:
            kind = (req["response_format"] or {}).get("type", "?")
            return (
                400,
                _error(
                    f"Invalid parameter: 'response_format' of type '{kind}' is not supported with this model.",
                    "invalid_parameter",
                    "response_format",
                ),
                {},
            )

        key = request_key(messages)
        attempt = self.stats.attempts[key]
        self.stats.attempts[key] += 1
        fault = self._fault(key, attempt)
        if fault:
            self.stats.faults[fault] += 1
            if fault == "timeout":
                await asyncio.sleep(cfg.timeout_sleep)
                return 504, _error("stalled", "timeout"), {}
            if fault in ("429", "503"):
                headers = {}
                if cfg.retry_after is not None:
                    headers["retry-after"] = cfg.retry_after
                if cfg.retry_after_ms is not None:
                    headers["retry-after-ms"] = str(cfg.retry_after_ms)
                msg = "Rate limit reached" if fault == "429" else "Service unavailable"
                return (
                    int(fault),
                    _error(msg, "rate_limit_exceeded" if fault == "429" else "server_error"),
                    headers,
                )
        if cfg.latency > 0:
            await asyncio.sleep(cfg.latency)
        if fault == "500":
            return (
                500,
                _error("The server had an error while processing your request.", "server_error"),
                {},
            )
        if fault == "malformed":
            return 200, '{"id": "chatcmpl-broken", "choices": [{"index": 0, "mess', {}
        if fault == "no_choices":
            return 200, {"id": "chatcmpl-empty", "object": "chat.completion", "model": model}, {}

        out = cfg.reply_fn(req) if cfg.reply_fn else default_reply(req, cfg.span_style)
        if isinstance(out, tuple):
            status, payload = out
            if status == 200:
                self.stats.served[key] += 1
            return status, payload, {}
        self.stats.served[key] += 1
        return 200, self._completion(req, key, attempt, out), {}

    def _upload(self, content_type: str, body: bytes) -> tuple[int, Any, dict[str, str]]:
        from email.parser import BytesParser
        from email.policy import HTTP

        msg = BytesParser(policy=HTTP).parsebytes(
            b"Content-Type: " + content_type.encode() + b"\r\n\r\n" + body
        )
        parts = {
            p.get_param("name", header="content-disposition"): p.get_payload(decode=True)
            for p in msg.iter_parts()
        }
        if parts.get("purpose") != b"batch" or "file" not in parts:
            return (
                400,
                _error(
                    "multipart form with purpose=batch and a file expected", "invalid_request_error"
                ),
                {},
            )
        file_id = f"file-{len(self.files)}"
        self.files[file_id] = parts["file"]
        return (
            200,
            {"id": file_id, "object": "file", "purpose": "batch", "bytes": len(parts["file"])},
            {},
        )

    def _create_batch(self, raw: bytes) -> tuple[int, Any, dict[str, str]]:
        req = json.loads(raw)
        if (
            req.get("input_file_id") not in self.files
            or req.get("endpoint") != "/v1/chat/completions"
        ):
            return 400, _error("unknown input_file_id or endpoint", "invalid_request_error"), {}
        batch_id = f"batch_{len(self.batches)}"
        lines = [
            json.loads(x)
            for x in self.files[req["input_file_id"]].decode().splitlines()
            if x.strip()
        ]
        self.batches[batch_id] = {
            "id": batch_id,
            "object": "batch",
            "status": "validating",
            "polls": 0,
            "input_file_id": req["input_file_id"],
            "lines": lines,
        }
        self.stats.batches_created += 1
        self.stats.batch_requests += len(lines)
        return 200, self._batch_view(batch_id), {}

    def _batch_view(self, batch_id: str) -> dict[str, Any]:
        return {k: v for k, v in self.batches[batch_id].items() if k not in ("lines", "polls")}

    async def _retrieve_batch(self, batch_id: str, auth: str) -> dict[str, Any]:
        b, cfg = self.batches[batch_id], self.config
        if b["status"] in ("validating", "in_progress"):
            b["polls"] += 1
            b["status"] = "in_progress"
            if b["polls"] > cfg.batch_polls:
                await self._finish_batch(b, auth)
        return self._batch_view(batch_id)

    async def _finish_batch(self, b: dict[str, Any], auth: str) -> None:
        """Answer the batch's requests through the chat route (same replies, same counts)."""
        cfg = self.config
        lines = b["lines"][: cfg.batch_expire_after] if cfg.batch_expire else b["lines"]
        out, err = [], []
        for i, line in enumerate(lines, 1):
            if cfg.batch_fail_every and i % cfg.batch_fail_every == 0:
                status, payload = 500, _error("batch request failed", "server_error")
            else:
                status, payload, _ = await self._chat(json.dumps(line["body"]).encode(), auth)
            row = {
                "id": f"req-{i}",
                "custom_id": line["custom_id"],
                "response": {"status_code": status, "body": payload},
                "error": None,
            }
            (out if status == 200 else err).append(row)
            self.stats.batch_answered += status == 200
        if out:
            out += [
                {**out[0], "id": f"req-unknown-{k}", "custom_id": f"not-asked-{k}"}
                for k in range(cfg.batch_unknown_lines)
            ]
        for name, rows in (("output_file_id", out), ("error_file_id", err)):
            if rows:
                file_id = f"file-{len(self.files)}"
                self.files[file_id] = "".join(
                    self._output_line(i, rows) for i in range(1, len(rows) + 1)
                ).encode()
                b[name] = file_id
        b["status"] = "expired" if cfg.batch_expire else "completed"

    def _output_line(self, i: int, rows: list[dict[str, Any]]) -> str:
        """Line i (1-based) of a batch output file, damaged as the config says."""
        cfg, row = self.config, rows[i - 1]
        if cfg.batch_duplicate_every and i > 1 and i % cfg.batch_duplicate_every == 0:
            row = {**row, "custom_id": rows[i - 2]["custom_id"]}
        text = json.dumps(row)
        if cfg.batch_malformed_every and i % cfg.batch_malformed_every == 0:
            text = text[: len(text) // 2]
        return text + "\n"

    def _fault(self, key: str, attempt: int) -> str | None:
        cfg = self.config
        if attempt < cfg.fail_first:
            return cfg.fail_kinds[attempt % len(cfg.fail_kinds)]
        if attempt >= cfg.fail_first + cfg.max_faults_per_key:
            return None
        r = random.Random(f"{cfg.seed}|{key}|{attempt}").random()
        for kind, p in (
            ("429", cfg.p_429),
            ("500", cfg.p_500),
            ("503", cfg.p_503),
            ("timeout", cfg.p_timeout),
            ("malformed", cfg.p_malformed),
        ):
            if r < p:
                return kind
            r -= p
        return None

    def _completion(self, req: dict[str, Any], key: str, attempt: int, text: str) -> dict[str, Any]:
        limit = req.get("max_completion_tokens") or req.get("max_tokens")
        finish = "stop"
        words = text.split(" ")
        if limit is not None and len(words) > int(limit):
            text, finish = " ".join(words[: int(limit)]), "length"
        message: dict[str, Any] = {"role": "assistant", "content": text}
        if self.config.reasoning:
            message["reasoning_content"] = f"Let me think about request {key}."
        prompt_tokens = sum(_count_tokens(str(m.get("content", ""))) for m in req["messages"])
        completion_tokens = _count_tokens(text)
        return {
            "id": f"chatcmpl-{key}-{attempt}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": self.config.served_names.get(req.get("model"), req.get("model")),
            "choices": [{"index": 0, "message": message, "finish_reason": finish}],
            "usage": {
                "prompt_tokens": prompt_tokens,
                "completion_tokens": completion_tokens,
                "total_tokens": prompt_tokens + completion_tokens,
            },
        }


def _error(message: str, code: str, param: str | None = None) -> dict[str, Any]:
    return {
        "error": {"message": message, "type": "invalid_request_error", "param": param, "code": code}
    }


_REASONS = {
    200: "OK",
    400: "Bad Request",
    401: "Unauthorized",
    404: "Not Found",
    429: "Too Many Requests",
    500: "Internal Server Error",
    503: "Service Unavailable",
    504: "Gateway Timeout",
}


class _HttpProtocol(asyncio.Protocol):
    """A minimal HTTP/1.1 keep-alive server (Content-Length bodies, one request at a time per
    connection). uvicorn's pure-Python h11 parser topped out near 850 requests/s on one core here;
    this serves several thousand, so the benchmark measures the client, not the fake."""

    def __init__(self, app: _App, live: set[_HttpProtocol]) -> None:
        self.app, self.live = app, live
        self.buf = bytearray()
        self.transport: asyncio.Transport | None = None
        self.task: asyncio.Task | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self.live.add(self)

    def connection_lost(self, exc: Exception | None) -> None:
        self.live.discard(self)
        if self.task is not None:  # the client gave up (e.g. its timeout): stop the stalled reply
            self.task.cancel()

    def data_received(self, data: bytes) -> None:
        self.buf += data
        if self.task is None:
            self._next()

    def _next(self) -> None:
        end = self.buf.find(b"\r\n\r\n")
        if end < 0:
            return
        lines = bytes(self.buf[:end]).decode("latin-1").split("\r\n")
        try:
            method, target, version = lines[0].split(" ", 2)
        except ValueError:
            self.transport.close()  # type: ignore[union-attr]
            return
        headers = {}
        for line in lines[1:]:
            k, _, v = line.partition(":")
            headers[k.strip().lower()] = v.strip()
        size = int(headers.get("content-length") or 0)
        if len(self.buf) < end + 4 + size:
            return
        body = bytes(self.buf[end + 4 : end + 4 + size])
        del self.buf[: end + 4 + size]
        keep = version == "HTTP/1.1" and headers.get("connection", "").lower() != "close"
        self.task = asyncio.get_running_loop().create_task(
            self._serve(method, target, headers, body, keep)
        )

    async def _serve(
        self, method: str, target: str, headers: dict[str, str], body: bytes, keep: bool
    ) -> None:
        try:
            status, payload, extra = await self.app.handle(method, target, headers, body)
        except asyncio.CancelledError:
            return
        except Exception as e:  # a bug in a reply_fn must not hang the client
            status, payload, extra = 500, _error(f"fake server error: {e!r}", "server_error"), {}
        data = payload.encode() if isinstance(payload, str) else json.dumps(payload).encode()
        head = [
            f"HTTP/1.1 {status} {_REASONS.get(status, 'Status')}",
            "content-type: application/json",
            f"content-length: {len(data)}",
            *(f"{k}: {v}" for k, v in extra.items()),
        ]
        if not keep:
            head.append("connection: close")
        self.task = None
        if self.transport is None or self.transport.is_closing():
            return
        self.transport.write(("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + data)
        if not keep:
            self.transport.close()
        elif self.buf:
            self._next()


async def _serve_forever(
    app: _App, sock: socket.socket, stop: asyncio.Event, on_ready: Callable[[], Any] = lambda: None
) -> None:
    live: set[_HttpProtocol] = set()
    server = await asyncio.get_running_loop().create_server(
        lambda: _HttpProtocol(app, live), sock=sock, backlog=4096
    )
    on_ready()
    try:
        await stop.wait()
    finally:
        server.close()
        for conn in list(live):
            if conn.transport is not None:
                conn.transport.close()
            if conn.task is not None:
                conn.task.cancel()
        await server.wait_closed()


def _listen_socket(host: str, port: int) -> socket.socket:
    # proto must be IPPROTO_TCP: asyncio only sets TCP_NODELAY on such sockets, and without it Nagle's
    # algorithm holds every response body ~40 ms behind its headers on a keep-alive connection.
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.bind((host, port))
    return sock


class FakeOpenAIServer:
    """The fake server on a background thread of this process (its own event loop)."""

    def __init__(
        self,
        config: FakeConfig | None = None,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        **overrides: Any,
    ) -> None:
        self.config = replace(config or FakeConfig(), **overrides)
        self.stats = ServerStats()
        self.host = host
        self._sock = _listen_socket(host, port)
        self.port = self._sock.getsockname()[1]
        self._app = _App(self.config, self.stats)
        self._stop: asyncio.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None

    @property
    def base(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def url(self) -> str:
        """The `base_url` for an OpenAI client."""
        return f"{self.base}/v1"

    def start(self) -> FakeOpenAIServer:
        ready = threading.Event()

        async def serve() -> None:
            self._loop = asyncio.get_running_loop()
            self._stop = asyncio.Event()
            await _serve_forever(self._app, self._sock, self._stop, ready.set)

        self._thread = threading.Thread(
            target=asyncio.run, args=(serve(),), name="fake-openai", daemon=True
        )
        self._thread.start()
        if not ready.wait(10):
            raise RuntimeError("fake OpenAI server did not start")
        return self

    def stop(self) -> None:
        if self._thread is None:
            return
        if self._loop is not None and self._stop is not None:
            with contextlib.suppress(RuntimeError):
                self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(10)
        self._thread = None
        self._sock.close()

    def __enter__(self) -> FakeOpenAIServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def wait_for_health(base: str, timeout: float = 60.0, path: str = "/health") -> bool:
    """Poll GET base+path until it answers 200; False on timeout. `base` has no /v1."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(base.rstrip("/") + path, timeout=2) as r:
                if r.status == 200:
                    return True
        except OSError:
            pass
        time.sleep(0.2)
    return False


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def _parse_args(argv: list[str] | None) -> tuple[argparse.Namespace, FakeConfig]:
    p = argparse.ArgumentParser(
        prog="python -m kardiabench.testing.fake_openai", description=__doc__.split("\n")[0]
    )
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8000)
    for f in fields(FakeConfig):
        if f.name in ("reply_fn",):
            continue
        flag = "--" + f.name.replace("_", "-")
        if f.type in ("bool",):
            p.add_argument(flag, action="store_true")
        elif f.name in ("fail_kinds", "models"):
            p.add_argument(
                flag, type=lambda s: tuple(x for x in s.split(",") if x), help="comma-separated"
            )
        elif f.name == "served_names":
            p.add_argument(
                flag,
                type=lambda s: dict(x.split("=", 1) for x in s.split(",") if x),
                help="ASKED=ANSWERED,...",
            )
        elif f.type in ("float", "int"):
            p.add_argument(flag, type=float if f.type == "float" else int)
        else:
            p.add_argument(flag)
    args = p.parse_args(argv)
    given = {
        f.name: getattr(args, f.name)
        for f in fields(FakeConfig)
        if f.name != "reply_fn" and getattr(args, f.name) not in (None, False)
    }
    if str(given.get("retry_after", "")).lower() == "none":
        given["retry_after"] = None
    if "retry_after_ms" in given:
        given["retry_after_ms"] = float(given["retry_after_ms"])
    return args, FakeConfig(**given)


def main(argv: list[str] | None = None) -> None:
    args, config = _parse_args(argv)
    sock = _listen_socket(args.host, args.port)
    print(f"fake OpenAI server on http://{args.host}:{sock.getsockname()[1]}/v1", flush=True)

    async def serve() -> None:
        await _serve_forever(_App(config, ServerStats()), sock, asyncio.Event())

    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve())


if __name__ == "__main__":
    main()
