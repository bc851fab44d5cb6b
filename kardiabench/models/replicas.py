"""One model served by several OpenAI-compatible endpoints: `--base-url` given more than once.

Why a pool and not a load balancer: a run against N `vllm serve` nodes should need nothing but
their URLs. Each request goes to the replica with the fewest of our requests in flight, among those
not cooling down. A replica that fails (connection error, timeout, 5xx, 429) is cooled down on its
own, for its Retry-After or an exponential backoff, while the others keep serving; the request is
retried on the pool, so it lands on a healthy replica. Each replica keeps its own AdaptiveLimiter,
so a 429 from one node lowers only that node's concurrency. `concurrency` is per replica.

The cache key does not depend on which replica answered: the pool's identity is the model's spec
plus the sorted distinct hosts (a single host, as with several ports of one machine, gives exactly
the identity of a single endpoint there). Replies, and so results, do not depend on the number of
replicas as long as the replicas serve the same model with the same sampling. The `model` each
replica answers with is watched: replicas that name different models are warned about once and
recorded (`replica_usage`, run.json `generation_stats.replicas` / `.mixed_served_models`).
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import time
from collections import Counter
from typing import Any

from kardiabench.models.base import ChatModel, ChatRequest, FatalModelError, Generation, ModelError
from kardiabench.models.openai_api import OpenAIChatModel, _Retry
from kardiabench.redact import redact_url

log = logging.getLogger(__name__)

# Why the current task's last attempt on a replica failed (a _Retry), or None: read by the pool
# after `replica._one` returns, in the same task, to tell "retry elsewhere" from a final answer.
_LAST_RETRY: contextvars.ContextVar[_Retry | None] = contextvars.ContextVar(
    "kardiabench_last_retry", default=None
)


def base_urls(value: str | list[str] | tuple[str, ...] | None) -> list[str]:
    """`--base-url` as a list: None, one URL, or several (repeated flag / a list in the API)."""
    if value is None:
        return []
    return [value] if isinstance(value, str) else [u for u in value if u]


class _Replica(OpenAIChatModel):
    """One endpoint of a pool: tries each request once (the pool retries) and keeps its own cooldown."""

    def __init__(self, model: str, **kw: Any) -> None:
        super().__init__(model, **{**kw, "max_retries": 0})
        self.pending = 0  # the pool's requests assigned here and not yet answered
        self.assigned = 0
        self.cool_until = 0.0  # time.monotonic() before which no new request is sent here
        self.cooldowns = 0
        self.retries = 0  # requests sent here that had failed before (here or on another replica)
        self.served_models: Counter[str] = Counter()  # the `model` its replies named → replies
        self._failures_in_row = 0

    async def _attempt(self, client: Any, body: dict[str, Any]) -> Any:
        outcome = await super()._attempt(client, body)
        if isinstance(outcome, _Retry):
            _LAST_RETRY.set(outcome)
        return outcome

    def back_off(self, retry: _Retry) -> None:
        """Cool this replica down. Failures that arrive while it already cools (a burst from one
        window of requests) are one signal, not one doubling each."""
        now = time.monotonic()
        if now < self.cool_until:
            return
        delay = retry.delay
        if delay is None:
            delay = min(self.backoff_max, self.backoff_base * 2**self._failures_in_row)
        self._failures_in_row += 1
        self.cooldowns += 1
        self.cool_until = now + delay
        log.info(
            "replica %s backed off for %.2fs after %s",
            redact_url(self.base_url),
            delay,
            retry.reason,
        )

    def healthy(self) -> None:
        self._failures_in_row = 0


class ReplicaPool(ChatModel):
    """A ChatModel over several replicas of one OpenAI-compatible model (see the module docstring)."""

    max_batch_size = 1

    def __init__(self, model: str, urls: list[str], *, max_retries: int = 6, **kw: Any) -> None:
        if len(urls) < 2:
            raise ValueError("a replica pool needs at least two base URLs")
        self.replicas = [_Replica(model, base_url=u, **kw) for u in urls]
        first = self.replicas[0]
        self.model, self.spec = first.model, first.spec
        self.max_retries = max_retries
        self.max_concurrency = sum(r.max_concurrency for r in self.replicas)
        self._warned_mixed = False

    def __repr__(self) -> str:
        return f"ReplicaPool(model={self.model!r}, replicas={[redact_url(r.base_url) for r in self.replicas]})"

    def identity(self) -> dict[str, Any]:
        hosts = sorted({r.host for r in self.replicas})
        return {**self.replicas[0].identity(), "host": hosts[0] if len(hosts) == 1 else hosts}

    def cost(self, prompt_tokens: int, completion_tokens: int) -> float | None:
        return self.replicas[0].cost(prompt_tokens, completion_tokens)

    def replica_usage(self) -> list[dict[str, Any]]:
        """Per replica, in the order given: its redacted URL, HTTP requests sent, replies, failed
        requests, retries (requests that had failed before), cooldowns, tokens and the model names
        its replies gave. Live requests only: the cache never reaches a replica."""
        return [
            {
                "url": redact_url(r.base_url),
                "requests": r.stats.attempts,
                "replies": r.stats.successes,
                "failures": r.stats.failures,
                "retries": r.retries,
                "cooldowns": r.cooldowns,
                "prompt_tokens": r.stats.prompt_tokens,
                "completion_tokens": r.stats.completion_tokens,
                "served_models": dict(r.served_models),
            }
            for r in self.replicas
        ]

    def probe(self, flag: str = "--base-url") -> None:
        """Every replica probed, at once (dead remote hosts each wait out the probe's timeout): a
        dead one stops the run before anything is sent, all the dead ones named in one line."""
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(len(self.replicas)) as pool:
            dead = [why for why in pool.map(_Replica.unreachable, self.replicas) if why is not None]
        if dead:
            some = (
                ""
                if len(dead) == 1
                else f"{len(dead)} of {len(self.replicas)} replicas do not answer: "
            )
            raise FatalModelError(
                f"{self.spec}: {some}{'; '.join(dead)}; is the server up? (check {flag})"
            )

    async def aclose(self) -> None:
        for r in self.replicas:
            await r.aclose()

    async def generate(self, requests: list[ChatRequest]) -> list[Generation | ModelError]:
        return [await self._one(r) for r in requests]

    async def _pick(self) -> _Replica:
        """The ready replica with the fewest pending requests (then the fewest assigned); when all
        cool down, wait for the first to be ready."""
        while True:
            now = time.monotonic()
            ready = [r for r in self.replicas if r.cool_until <= now]
            if ready:
                return min(ready, key=lambda r: (r.pending, r.assigned))
            await asyncio.sleep(min(r.cool_until for r in self.replicas) - now)

    async def _one(self, req: ChatRequest) -> Generation | ModelError:
        last: ModelError | None = None
        for attempt in range(self.max_retries + 1):
            replica = await self._pick()
            replica.pending += 1
            replica.assigned += 1
            replica.retries += attempt > 0
            token = _LAST_RETRY.set(None)
            try:
                # a FatalModelError (bad key, unknown model) propagates
                out = await replica._one(req)
                retry = _LAST_RETRY.get()
            finally:
                _LAST_RETRY.reset(token)
                replica.pending -= 1
            if retry is None or isinstance(out, Generation):
                if isinstance(out, Generation):
                    replica.healthy()
                    self._served(replica, out.served_model)
                return out
            replica.back_off(retry)
            last = out
        return ModelError(
            f"{self.spec}: gave up after {self.max_retries + 1} attempts over {len(self.replicas)} replicas; last: {last}"
        )

    def _served(self, replica: _Replica, name: str | None) -> None:
        """Count the model a reply named; warn once when the replicas name different ones (a node
        left on other weights, or a stale alias): the replies would not be one model's."""
        if not name:
            return
        replica.served_models[name] += 1
        if self._warned_mixed or replica.served_models[name] > 1:
            return
        names = mixed_served_models(self.replica_usage())
        if names:
            self._warned_mixed = True
            each = ", ".join(
                f"{redact_url(r.base_url)} → {', '.join(r.served_models)}"
                for r in self.replicas
                if r.served_models
            )
            log.warning(
                "warning: the replicas of %s answer as different models (%s); check they serve the same "
                "weights (recorded in run.json)",
                self.spec,
                each,
            )


def mixed_served_models(replicas: list[dict[str, Any]]) -> list[str] | None:
    """The model names the replicas' replies gave, sorted, when there is more than one; else None."""
    names = sorted({name for r in replicas for name in r.get("served_models") or {}})
    return names if len(names) > 1 else None
