"""The one small interface every model backend implements.

Adapters know nothing about KardiaBench: they take chat messages and sampling settings and return
text, usage and timing. The runner (kardiabench/runner.py) owns concurrency, caching and resume.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field, fields
from typing import Any


@dataclass(frozen=True, slots=True)
class SamplingParams:
    """A request's decoding settings. The fields are SamplingOptions' (kardiabench/options.py)
    under their run.json keys, in order (`gen_kwargs` is `extra`): api.sampling_params builds one
    from the options, `to_dict` is run.json's `generation.sampling` and part of the cache key
    (tests/test_options_run_json.py holds the two lists equal)."""

    temperature: float = 0.0
    top_p: float = 1.0
    max_tokens: int = 512
    seed: int | None = 0
    # stop strings: generation ends before the first one (not in the text)
    stop: tuple[str, ...] = ()
    top_k: int | None = None
    min_p: float | None = None
    repetition_penalty: float | None = None
    # --gen-kwargs: passed to the backend as given (sorted pairs)
    extra: tuple[tuple[str, Any], ...] = ()

    def to_dict(self) -> dict[str, Any]:
        """The settings as JSON values, leaving out the optional ones (those whose default is "not
        set": None or empty) while not set: a request without them keeps the cache key and run
        identity it had before they existed. The others (the task file's) are always there."""
        out: dict[str, Any] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if f.default in (None, ()) and value == f.default:
                continue
            out[f.name] = (
                dict(value)
                if f.name == "extra"
                else list(value)
                if isinstance(value, tuple)
                else value
            )
        return out

    def options(self) -> dict[str, Any]:
        """top_k, min_p and repetition_penalty where set, then the --gen-kwargs: what a backend
        passes on beyond temperature, top_p, max_tokens, seed and stop."""
        named = {
            "top_k": self.top_k,
            "min_p": self.min_p,
            "repetition_penalty": self.repetition_penalty,
        }
        return {**{k: v for k, v in named.items() if v is not None}, **dict(self.extra)}


@dataclass(frozen=True, slots=True)
class ChatRequest:
    messages: tuple[tuple[str, str], ...]  # (role, content) pairs: hashable and order-preserving
    params: SamplingParams = field(default_factory=SamplingParams)
    response_format: dict | None = None  # an OpenAI `response_format` (JSON schema), for judges

    @classmethod
    def from_messages(
        cls,
        messages: list[dict[str, str]],
        params: SamplingParams,
        response_format: dict | None = None,
    ) -> ChatRequest:
        return cls(tuple((m["role"], m["content"]) for m in messages), params, response_format)

    def message_dicts(self) -> list[dict[str, str]]:
        return [{"role": r, "content": c} for r, c in self.messages]

    def key_material(self) -> dict[str, Any]:
        return {
            "messages": [list(m) for m in self.messages],
            "params": self.params.to_dict(),
            "response_format": self.response_format,
        }


@dataclass(frozen=True, slots=True)
class Job:
    """One request to send (runner.run_jobs, a provider batch): the caller's id for it (an item
    id, or item id + judge attempt), the request, and its cache key when the caller has it."""

    key: str
    request: ChatRequest
    # request_key(model.identity(), request), when the caller has it already
    cache_key: str | None = None


@dataclass(slots=True)
class Generation:
    text: str
    reasoning: str | None = None  # a trace returned apart from the text (e.g. `reasoning_content`)
    finish_reason: str | None = None  # "stop", "length", ...
    prompt_tokens: int = 0
    completion_tokens: int = 0
    latency_s: float = 0.0
    attempts: int = 1
    served_model: str | None = None  # the model name an API answered with (its `model` field)
    batch: bool = False  # answered through a provider batch API: billed at the batch price


class ModelError(Exception):
    """A request failed for good (after the adapter's own retries)."""


class FatalModelError(ModelError):
    """Retrying cannot help and every other request would fail the same way (bad key, unknown
    model): the run stops at once instead of failing item by item."""


class ChatModel(ABC):
    """A backend. `max_batch_size` > 1 for local engines that batch; `max_concurrency` > 1 for APIs."""

    spec: str = ""
    max_batch_size: int = 1
    max_concurrency: int = 1

    def identity(self) -> dict[str, Any]:
        """Everything besides the request that determines the output (spec, revision, dtype...).
        It is part of every cache key. Never include secrets."""
        return {"spec": self.spec}

    @abstractmethod
    async def generate(self, requests: list[ChatRequest]) -> list[Generation | ModelError]:
        """Answer a batch (len ≤ max_batch_size). Per-request failures are returned, not raised;
        raise FatalModelError to stop the whole run."""

    def batch_length(self, request: ChatRequest) -> int | None:
        """The request's padded length in a batch (prompt tokens), for engines that pad a batch to
        its longest prompt; the runner then forms batches in length order. None: order does not matter."""
        return None

    def replica_usage(self) -> list[dict[str, Any]] | None:
        """Per endpoint of a pool of replicas (models/replicas.py); None for a single backend."""
        return None

    def probe(self, flag: str = "--base-url") -> None:  # noqa: B027 - optional hook
        """Before anything is sent: raise FatalModelError, naming the endpoint and `flag` (the
        option that set it), when an API backend cannot answer at all, so a run does not generate
        for an hour and then find its judge down. Local engines have nothing to probe."""

    def count_prompt_tokens(self, request: ChatRequest) -> int:
        """Prompt tokens, for dry-run estimates. Adapters with a tokenizer override this."""
        return sum(len(c) for _, c in request.messages) // 4 + 4 * len(request.messages)

    async def aclose(self) -> None:  # noqa: B027 - optional hook
        pass
