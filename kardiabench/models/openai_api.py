"""Any OpenAI-compatible chat endpoint: OpenAI, DeepSeek, Gemini's OpenAI layer, vLLM, transformers serve.

The `openai` client's own retries are off: this adapter retries itself so that it can
* back off with full jitter, honouring `Retry-After` / `retry-after-ms` on 429 and 503,
* retry what the client would not (a 200 with an unparseable body or no choices),
* never re-send a request that timed out on a local server (it may still be computing it, and a
  resend queues behind it): the request fails with that reason and the next run retries it,
* say once when an endpoint ignores `response_format` (a reply that is not pure JSON),
* shrink its concurrency under rate limits (AIMD) instead of hammering the endpoint,
* stop the whole run at once on a bad key or an unknown model (FatalModelError),
* read the key from a named environment variable (`api_key_env`), and refuse credentials in the
  base URL: httpx would send them as Basic auth in place of the key (see kardiabench/redact.py);
  a query string (`…/v1?api-key=…` for gateways that take the key there) is sent with every
  request, and the URL is only ever shown through `redact_url`,
* adapt once to endpoints that refuse a parameter (`max_tokens` on reasoning models,
  `response_format` on servers without JSON mode, `temperature` on gpt-5) and remember it.

Requests go through the client's generic `post()` with a raw response: the typed
`chat.completions.create()` spends about as much CPU building and validating pydantic objects as the
HTTP exchange itself, which caps throughput on small machines, and the raw JSON is needed anyway to
read non-standard fields such as `reasoning_content`.
"""

from __future__ import annotations

import asyncio
import email.utils
import functools
import importlib
import ipaddress
import json
import logging
import os
import random
import time
from collections import deque
from dataclasses import dataclass
from types import ModuleType
from typing import Any
from urllib.parse import parse_qsl, urlsplit, urlunsplit

from kardiabench.models.base import ChatModel, ChatRequest, FatalModelError, Generation, ModelError
from kardiabench.models.pricing import PriceTable
from kardiabench.redact import has_userinfo, query_secrets, redact_url

log = logging.getLogger(__name__)

OPENAI_URL = "https://api.openai.com/v1"
RETRY_STATUSES = frozenset({408, 409, 429}) | frozenset(range(500, 600))
# Optional request fields an endpoint may refuse; dropped (once, remembered) when it says so.
DROPPABLE = ("response_format", "temperature", "top_p", "seed")
POOL_SHARD = 16  # connections per HTTP client (see OpenAIChatModel._clients_here)
PROBE_TIMEOUT = 10.0  # seconds the probe (GET /models) waits, at most; chat requests get --timeout
_UNSUPPORTED = (
    "unsupported",
    "not supported",
    "does not support",
    "only the default",
    "not available",
)


class AdaptiveLimiter:
    """AIMD concurrency limit shared by all requests of one adapter.

    Starts at `cap`; a 429 halves the limit (never below 1); every `increase_every` successes add 1
    back, up to `cap`. Only the first 429 among requests admitted under the same limit halves it:
    a burst of 429s from one window of requests is one signal, not N halvings. Waiters are served
    in arrival order.
    """

    def __init__(self, cap: int, *, increase_every: int = 8) -> None:
        if cap < 1:
            raise ValueError("concurrency must be at least 1")
        self.cap = cap
        self.limit = cap
        self.in_flight = 0
        self.increase_every = increase_every
        self.decreases = 0
        self._epoch = 0
        self._successes = 0
        self._waiters: deque[asyncio.Future[int]] = deque()

    async def acquire(self) -> int:
        """Wait for a slot; returns a token to pass to `release`."""
        if self.in_flight < self.limit and not self._waiters:
            self.in_flight += 1
            return self._epoch
        fut: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self._waiters.append(fut)
        try:
            return await fut  # the slot was reserved for us by _wake
        except asyncio.CancelledError:
            if fut.done() and not fut.cancelled():
                self.in_flight -= 1  # woken and cancelled in the same tick: hand the slot on
                self._wake()
            else:
                self._waiters.remove(fut)
            raise

    def release(self, token: int, *, throttled: bool = False, ok: bool = False) -> None:
        self.in_flight -= 1
        if throttled:
            if token == self._epoch and self.limit > 1:
                self.limit = max(1, self.limit // 2)
                self.decreases += 1
                log.info("rate limited: concurrency lowered to %d", self.limit)
            if token == self._epoch:
                self._epoch += 1
            self._successes = 0
        elif ok and self.limit < self.cap:
            self._successes += 1
            if self._successes >= self.increase_every:
                self.limit += 1
                self._successes = 0
        self._wake()

    def _wake(self) -> None:
        while self._waiters and self.in_flight < self.limit:
            fut = self._waiters.popleft()
            if not fut.done():
                self.in_flight += 1
                fut.set_result(self._epoch)


@dataclass
class ApiStats:
    """Counters over the adapter's life (all requests, all retries)."""

    attempts: int = 0
    successes: int = 0
    failures: int = 0  # items given up on (per-item ModelError)
    rate_limited: int = 0
    server_errors: int = 0
    timeouts: int = 0
    connection_errors: int = 0
    malformed: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0


@dataclass(frozen=True, slots=True)
class _Retry:
    reason: str
    delay: float | None = None  # from Retry-After; None: use backoff
    throttled: bool = False


class OpenAIChatModel(ChatModel):
    """Chat completions over HTTP with our own retries, backoff and adaptive concurrency."""

    max_batch_size = 1

    def __init__(
        self,
        model: str,
        *,
        base_url: str | None = None,
        api_key: str | None = None,
        api_key_env: str = "OPENAI_API_KEY",
        require_key: bool = True,  # False for a dry run: it only counts tokens, nothing is sent
        concurrency: int = 16,
        timeout: float = 60.0,
        max_retries: int = 6,
        prices: PriceTable | None = None,
        extra_body: dict[str, Any] | None = None,
        adaptive: bool = True,
        backoff_base: float = 0.5,
        backoff_max: float = 30.0,
        max_retry_after: float = 120.0,
        resend_after_timeout: bool | None = None,  # None: not for a local server (see _attempt)
    ) -> None:
        self.model = model
        self.spec = f"openai:{model}"
        self.base_url = (base_url or os.environ.get("OPENAI_BASE_URL") or OPENAI_URL).rstrip("/")
        self.shown_url = redact_url(self.base_url)  # the only form of the URL any message holds
        if has_userinfo(self.base_url):
            raise FatalModelError(
                f"credentials in the base URL ({self.shown_url}) are not supported: put the key in an "
                "environment variable and name it with --api-key-env VAR (--judge-api-key-env VAR for judges)"
            )
        # The client joins paths onto the URL, so a query string goes with every request instead.
        parts = urlsplit(self.base_url)
        self.endpoint = urlunsplit(parts._replace(query="", fragment="")).rstrip("/")
        self.query = dict(parse_qsl(parts.query, keep_blank_values=True))
        self.host = parts.hostname or self.base_url
        self.resend_after_timeout = (
            not _is_local(self.host) if resend_after_timeout is None else resend_after_timeout
        )
        self.api_key_env = api_key_env
        key = api_key or os.environ.get(api_key_env)
        if not key and require_key and not _is_local(self.host):
            raise FatalModelError(
                f"no API key for {self.spec} at {self.shown_url}: set {api_key_env} (to any value for a server that needs none)"
            )
        self._api_key = key or "EMPTY"  # local servers (vLLM, transformers serve) accept any key
        self.max_concurrency = concurrency
        self.timeout = timeout
        self.max_retries = max_retries
        self.prices = prices if prices is not None else PriceTable.default()
        self.extra_body = dict(extra_body or {})
        self.backoff_base, self.backoff_max, self.max_retry_after = (
            backoff_base,
            backoff_max,
            max_retry_after,
        )
        self.limiter = AdaptiveLimiter(concurrency)
        self._adaptive = adaptive
        self.stats = ApiStats()
        self.adaptations: dict[str, str] = {}  # parameter → what was changed, for the run manifest
        self._token_param = "max_tokens"
        self._dropped: set[str] = set()
        self._fatal: FatalModelError | None = None
        self._rng = random.Random()
        self._clients: dict[int, Any] = {}  # shard → client, made on first use (_client)
        self._free_slots: list[int] = []  # connection slots released (slot // POOL_SHARD = shard)
        self._slots_made = 0
        self._client_loop: asyncio.AbstractEventLoop | None = None

    def __repr__(self) -> str:
        return f"OpenAIChatModel(model={self.model!r}, base_url={self.shown_url!r}, concurrency={self.max_concurrency})"

    def identity(self) -> dict[str, Any]:
        # The host, not the port: moving a local server to another port should not void the cache.
        ident: dict[str, Any] = {"spec": self.spec, "host": self.host}
        if self.extra_body:
            ident["extra_body"] = self.extra_body
        return ident

    def cost(self, prompt_tokens: int, completion_tokens: int) -> float | None:
        """USD for one request's tokens (the runner sums these), or None: no known price."""
        return self.prices.cost(self.model, prompt_tokens, completion_tokens)

    # -- transport ------------------------------------------------------------------------------

    def _clients_here(self) -> dict[int, Any]:
        """The clients of this event loop (connection pools cannot cross loops), by shard; the
        first call on a loop imports openai, before any request is timed.

        httpcore's pool scans every connection on each request and each release, so one pool of
        256 connections costs O(256) per request: at 256-way concurrency that bookkeeping took over
        half the client's CPU here. Shards of POOL_SHARD connections, one client each, keep the scan
        short; each in-flight request holds a slot that names its shard, so no shard is ever
        oversubscribed and no request waits for a connection while another pool has one free."""
        loop = asyncio.get_running_loop()
        if self._client_loop is not loop:
            import openai  # noqa: F401 - imported here, not in the first request's latency

            self._clients, self._client_loop = {}, loop
        return self._clients

    def _client(self, slot: int) -> Any:
        """The client of `slot`'s shard, made on first use: a run holds clients for the requests it
        has in flight at most (three items at --concurrency 1000: one client), not for
        `concurrency`."""
        shard = slot // POOL_SHARD
        client = self._clients_here().get(shard)
        if client is None:
            import openai

            hx = _httpx_module()
            size = min(POOL_SHARD, self.max_concurrency - shard * POOL_SHARD)
            client = self._clients[shard] = openai.AsyncOpenAI(
                api_key=self._api_key,
                base_url=self.endpoint,
                default_query=self.query or None,
                max_retries=0,
                timeout=self.timeout,
                http_client=openai.DefaultAsyncHttpxClient(
                    limits=hx.Limits(max_connections=size, max_keepalive_connections=size),
                    timeout=hx.Timeout(self.timeout, connect=min(self.timeout, 10.0)),
                ),
            )
        return client

    def _take_slot(self) -> int:
        """A released connection slot, else the next never used one. A new slot is taken only when
        all taken before are in flight, so the slots used are 0 … peak in flight - 1 (< concurrency,
        as in flight ≤ limit ≤ concurrency) and shards fill one after another."""
        if self._free_slots:
            return self._free_slots.pop()
        self._slots_made += 1
        return self._slots_made - 1

    def probe(self, flag: str = "--base-url") -> None:
        why = self.unreachable()
        if why is not None:
            raise FatalModelError(f"{self.spec}: {why}; is the server up? (check {flag})")

    def unreachable(self) -> str | None:
        """Why the endpoint is dead, from one GET BASE/models, or None: it answered. Dead: no
        connection or no answer within PROBE_TIMEOUT; a key it refuses (HTTP 401/403) raises the
        usual authentication error. Any other answer counts as alive, so endpoints without /models
        (404, 405) and sick ones (5xx: the chat requests retry) pass, as does a key that only lacks
        the scope to list models (OpenAI's restricted keys)."""
        import openai

        hx = _httpx_module()
        wait = min(self.timeout, PROBE_TIMEOUT)
        where = redact_url(self.base_url)
        client = openai.OpenAI(
            api_key=self._api_key, base_url=self.base_url, max_retries=0, timeout=hx.Timeout(wait)
        )
        try:
            client.get("/models", cast_to=hx.Response)
        except openai.APITimeoutError:
            return f"no answer from {where} within {wait:g}s"
        except openai.APIConnectionError as e:
            return f"cannot connect to {where} ({_clip(self._scrub(str(e.__cause__ or e)))})"
        except openai.APIStatusError as e:
            refused = self._auth_failure(e)
            if refused is not None and not _lacks_scope(self._scrub(_error_fields(e)[0])):
                raise refused from None
        finally:
            client.close()
        return None

    async def aclose(self) -> None:
        clients, self._clients = self._clients, {}
        if self._client_loop is asyncio.get_running_loop():
            for c in clients.values():
                await c.close()

    # -- requests -------------------------------------------------------------------------------

    async def generate(self, requests: list[ChatRequest]) -> list[Generation | ModelError]:
        if len(requests) == 1:
            return [await self._one(requests[0])]
        results = await asyncio.gather(*(self._one(r) for r in requests), return_exceptions=True)
        for r in results:
            if isinstance(r, FatalModelError):
                raise r
        for r in results:
            if isinstance(r, BaseException) and not isinstance(r, ModelError):
                raise r
        return list(results)  # type: ignore[arg-type]

    def _body(self, req: ChatRequest) -> dict[str, Any]:
        p = req.params
        body: dict[str, Any] = {
            "model": self.model,
            "messages": req.message_dicts(),
            self._token_param: p.max_tokens,
        }
        optional = {
            "temperature": p.temperature,
            "top_p": p.top_p,
            "seed": p.seed,
            "response_format": req.response_format,
            "stop": list(p.stop) or None,
        }
        body.update({k: v for k, v in optional.items() if v is not None and k not in self._dropped})
        # top_k, min_p, repetition_penalty, --gen-kwargs: top-level keys, as vLLM and
        body.update(p.options())
        # other local servers read them (the client's `extra_body` does the same)
        body.update(self.extra_body)
        return body

    async def _one(self, req: ChatRequest) -> Generation | ModelError:
        self._clients_here()  # before timing: the first call imports openai
        attempts = retries = adapts = 0
        while True:
            if self._fatal is not None:
                raise self._fatal
            body = self._body(req)
            token = await self.limiter.acquire()
            if self._fatal is not None:
                self.limiter.release(token)
                raise self._fatal
            attempts += 1
            self.stats.attempts += 1
            slot = self._take_slot()
            outcome: Generation | _Retry | ModelError | None = None
            try:
                # before timing: a shard's first request makes its client
                client = self._client(slot)
                t0 = time.perf_counter()
                outcome = await self._attempt(client, body)
            finally:
                self._free_slots.append(slot)
                throttled = isinstance(outcome, _Retry) and outcome.throttled and self._adaptive
                self.limiter.release(token, throttled=throttled, ok=isinstance(outcome, Generation))
            if isinstance(outcome, Generation):
                if (
                    req.response_format
                    and "response_format" not in self.adaptations
                    and not _pure_json(outcome.text)
                ):
                    self._note(
                        "response_format",
                        "seems ignored by the endpoint (a reply was not pure JSON); "
                        "verdicts rely on JSON extraction from the text",
                    )
                outcome.latency_s = time.perf_counter() - t0
                outcome.attempts = attempts
                self.stats.successes += 1
                self.stats.prompt_tokens += outcome.prompt_tokens
                self.stats.completion_tokens += outcome.completion_tokens
                return outcome
            if outcome is None:  # a refused parameter was adapted: resend at once
                adapts += 1
                if adapts <= len(DROPPABLE) + 1:
                    continue
                outcome = ModelError(
                    f"{self.spec}: the endpoint keeps refusing the request's parameters"
                )
            if isinstance(outcome, FatalModelError):
                self._fatal = self._fatal or outcome
                raise self._fatal
            if isinstance(outcome, ModelError):
                self.stats.failures += 1
                return outcome
            if retries >= self.max_retries:
                self.stats.failures += 1
                return ModelError(
                    f"{self.spec}: gave up after {attempts} attempts; last: {outcome.reason}"
                )
            delay = outcome.delay
            if delay is None:
                delay = self._rng.uniform(0, min(self.backoff_max, self.backoff_base * 2**retries))
            log.debug(
                "%s: retry %d in %.2fs after %s", self.spec, retries + 1, delay, outcome.reason
            )
            retries += 1
            await asyncio.sleep(delay)

    async def _attempt(
        self, client: Any, body: dict[str, Any]
    ) -> Generation | _Retry | ModelError | None:
        """One HTTP exchange, classified: a Generation, something to retry, a failure, or None
        when the body must be rebuilt (a refused parameter was dropped)."""
        import openai

        hx = _httpx_module()
        try:
            resp = await client.post("/chat/completions", cast_to=hx.Response, body=body)
        except openai.APITimeoutError:
            self.stats.timeouts += 1
            # a local server may still be computing it: a resend queues behind it
            if not self.resend_after_timeout:
                return ModelError(
                    f"{self.spec}: no reply within {self.timeout:g}s from the local server at {self.host}; "
                    "not re-sent while it may still be computing it (raise --timeout / --judge-timeout, "
                    "or run the same command again to retry)"
                )
            return _Retry(f"timeout after {self.timeout:g}s")
        except openai.APIConnectionError as e:
            self.stats.connection_errors += 1
            return _Retry(f"connection error: {self._scrub(str(e.__cause__ or e))}")
        except openai.APIStatusError as e:
            return self._classify_status(e, body)
        return self._parse(resp.content)

    def _parse(self, content: bytes) -> Generation | _Retry:
        try:
            data = json.loads(content)
            choice = data["choices"][0]
            msg = choice["message"]
            text = msg.get("content") or ""
        except (ValueError, KeyError, IndexError, TypeError, AttributeError):
            self.stats.malformed += 1
            return _Retry(f"malformed response body: {content[:120]!r}")
        reasoning = msg.get("reasoning_content") or msg.get("reasoning")
        usage = data.get("usage") or {}
        return Generation(
            text=text,
            reasoning=reasoning if isinstance(reasoning, str) else None,
            finish_reason=choice.get("finish_reason"),
            prompt_tokens=int(usage.get("prompt_tokens") or 0),
            completion_tokens=int(usage.get("completion_tokens") or 0),
            served_model=data.get("model") if isinstance(data.get("model"), str) else None,
        )

    def _classify_status(self, e: Any, body: dict[str, Any]) -> _Retry | ModelError | None:
        status = e.status_code
        message, param, code = _error_fields(e)
        message = self._scrub(message)
        refused = self._auth_failure(e)
        if refused is not None:
            return refused
        low = message.lower()
        if status == 429 and (
            "insufficient_quota" in (code or "") or "exceeded your current quota" in low
        ):
            return FatalModelError(f"quota exhausted for {self.shown_url}: {_clip(message)}")
        if status == 404 or (
            status == 400 and "model" in low and ("does not exist" in low or "not found" in low)
        ):
            return FatalModelError(
                f"model {self.model!r} not found at {self.shown_url} (HTTP {status}: {_clip(message)}); "
                "check the model id and that the base URL ends in /v1"
            )
        if status in RETRY_STATUSES:
            if status == 429:
                self.stats.rate_limited += 1
            elif status >= 500:
                self.stats.server_errors += 1
            delay = _retry_after(e.response.headers, self.max_retry_after)
            return _Retry(f"HTTP {status}: {_clip(message)}", delay, throttled=status == 429)
        if status == 400 and self._adapt(low, param, body):
            return None
        return ModelError(
            f"{self.spec}: HTTP {status} from {self.shown_url}: {_clip(message, 300)}"
        )

    def _auth_failure(self, e: Any) -> FatalModelError | None:
        """The error for an HTTP 401/403 (a key the endpoint refuses), else None."""
        status = e.status_code
        if status not in (401, 403):
            return None
        detail = "" if status == 401 else f" ({_clip(self._scrub(_error_fields(e)[0]))})"
        return FatalModelError(
            f"authentication failed for {self.shown_url} (HTTP {status}){detail}: check {self.api_key_env}"
        )

    def _adapt(self, low: str, param: str | None, body: dict[str, Any]) -> bool:
        """Drop or rename a parameter the endpoint refused; True if the request should be resent."""

        unsupported = any(w in low for w in _UNSUPPORTED)
        if "json_schema" in low and unsupported:
            param = "response_format"

        def refused(name: str) -> bool:
            return name in body and (param == name or (name in low and unsupported))

        # `name in body` means the request was built before the change: resend it either way (a
        # concurrent request may already have adapted, and must not fail for arriving second).
        if refused("max_tokens"):
            if self._token_param == "max_tokens":
                self._token_param = "max_completion_tokens"
                self._note(
                    "max_tokens", "sent as max_completion_tokens (endpoint refused max_tokens)"
                )
            return True
        for name in DROPPABLE:
            if refused(name):
                if name not in self._dropped:
                    self._dropped.add(name)
                    self._note(name, f"dropped (endpoint refused it: {_clip(low)})")
                return True
        return False

    def _note(self, name: str, what: str) -> None:
        self.adaptations[name] = what
        log.warning("%s: %s %s", self.spec, name, what)

    def _scrub(self, text: str) -> str:
        """A server's or client's message without the key, whether it echoes the key alone or the URL."""
        for secret in (self._api_key, *query_secrets(self.base_url)):
            if secret and secret != "EMPTY" and len(secret) >= 4:
                text = text.replace(secret, "***")
        return redact_url(text)


def _error_fields(e: Any) -> tuple[str, str | None, str | None]:
    """(message, param, code) from an error body in OpenAI, vLLM or FastAPI shape."""
    body = e.body
    err = body.get("error", body) if isinstance(body, dict) else None
    if isinstance(err, dict):
        msg = err.get("message") or err.get("detail") or json.dumps(err)[:500]
        param, code = err.get("param"), err.get("code")
        return (
            str(msg),
            param if isinstance(param, str) else None,
            code if isinstance(code, str) else None,
        )
    if isinstance(err, str):
        return err, None, None
    if isinstance(body, str) and body:
        return body, None, None
    return str(getattr(e, "message", "") or e), None, None


def _retry_after(headers: Any, cap: float) -> float | None:
    """Seconds to wait from `retry-after-ms` or `Retry-After` (seconds or an HTTP date)."""
    ms = headers.get("retry-after-ms")
    if ms:
        try:
            return min(cap, max(0.0, float(ms) / 1000))
        except ValueError:
            pass
    value = headers.get("retry-after")
    if not value:
        return None
    try:
        return min(cap, max(0.0, float(value)))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return min(cap, max(0.0, when.timestamp() - time.time()))


def _lacks_scope(message: str) -> bool:
    """A 401/403 that says the key is valid but may not do this (OpenAI: "insufficient permissions
    … Missing scopes: api.model.read"): a restricted key that may still chat."""
    low = message.lower()
    return "missing scope" in low or "insufficient permissions" in low


def _pure_json(text: str) -> bool:
    """A JSON object and nothing else, as a request with `response_format` should get."""
    try:
        return isinstance(json.loads(text), dict)
    except ValueError:
        return False


def _is_local(host: str) -> bool:
    """A loopback or private-network host: a server of one's own, which may need no key."""
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_private  # loopback included
    except ValueError:
        return False


def _clip(s: str, n: int = 160) -> str:
    s = " ".join(s.split())
    return s if len(s) <= n else s[: n - 1] + "…"


@functools.cache
def _httpx_module() -> ModuleType:
    """The HTTP library the installed `openai` is built on (httpx, or httpx2 in openai ≥ 3)."""
    import openai

    for cls in openai.DefaultAsyncHttpxClient.__mro__:
        root = cls.__module__.split(".")[0]
        if root in ("httpx", "httpx2"):
            return importlib.import_module(root)
    return importlib.import_module("httpx")
