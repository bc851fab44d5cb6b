"""Model adapters behind one interface (`ChatModel`), chosen by a spec string:

openai:MODEL        any OpenAI-compatible endpoint (--base-url / OPENAI_BASE_URL; key from --api-key-env, OPENAI_API_KEY)
hf:PATH_OR_ID       HF transformers, batched, the tokenizer's chat template
vllm:PATH_OR_ID     vLLM offline engine (optional extra)
baseline:NAME       majority | retrieval, fitted on a training split
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from kardiabench.extras import require_extra
from kardiabench.models.base import (
    ChatModel,
    ChatRequest,
    FatalModelError,
    Generation,
    ModelError,
    SamplingParams,
)

PROVIDERS = ("openai", "hf", "vllm", "baseline")
# Longer than any real model id or path; a spec is copied into every request, cache key, record and
# report, so a pasted 100 KB string would cost gigabytes before it failed.
MAX_SPEC_LENGTH = 512


class SpecError(ValueError):
    pass


@dataclass
class ModelOptions:
    """Backend options from the command line; each adapter takes the ones it understands."""

    # several: replicas of one model (kardiabench/models/replicas.py)
    base_url: str | list[str] | None = None
    # the environment variable that holds the key (a name, never the key)
    api_key_env: str = "OPENAI_API_KEY"
    require_key: bool = True  # False for --dry-run, which sends nothing
    concurrency: int = 16
    timeout: float = 120.0
    batch_size: int = 8
    dtype: str = "auto"
    device: str = "auto"
    revision: str | None = None
    add_span_tokens: bool = False
    chat_template: str | None = None
    tensor_parallel_size: int = 1
    data_parallel_size: int = 1
    prices_file: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)


def check_spec_length(spec: str) -> str:
    """`spec`, or SpecError (its start quoted, not all of it) when it is over MAX_SPEC_LENGTH."""
    if len(spec) > MAX_SPEC_LENGTH:
        raise SpecError(
            f"model spec {spec[:40]!r}… is {len(spec):,} characters long; at most {MAX_SPEC_LENGTH}"
        )
    return spec


def parse_spec(spec: str) -> tuple[str, str]:
    provider, sep, name = check_spec_length(spec).partition(":")
    if not sep or provider not in PROVIDERS or not name:
        raise SpecError(
            f"model spec {spec!r} must be one of {', '.join(p + ':NAME' for p in PROVIDERS)}"
        )
    return provider, name


def load_model(
    spec: str,
    options: ModelOptions | None = None,
    *,
    train_dialogues=None,
    train_source: str = "",
    index_dir=None,
    files_key=None,
) -> ChatModel:
    """Build the adapter for `spec`. Baselines need `train_dialogues` (a training split);
    baseline:retrieval keeps its fitted index under `index_dir` (None: fit every time)."""
    o = options or ModelOptions()
    provider, name = parse_spec(spec)
    if provider == "openai":
        from kardiabench.models.openai_api import OpenAIChatModel
        from kardiabench.models.pricing import PriceTable
        from kardiabench.models.replicas import ReplicaPool, base_urls

        prices = PriceTable.load(o.prices_file) if o.prices_file else None
        urls = base_urls(o.base_url)
        kw = dict(
            api_key_env=o.api_key_env,
            require_key=o.require_key,
            concurrency=o.concurrency,
            timeout=o.timeout,
            prices=prices,
        )
        if len(urls) > 1:
            return ReplicaPool(name, urls, **kw)
        return OpenAIChatModel(name, base_url=urls[0] if urls else None, **kw)
    if provider == "hf":
        require_extra("hf", spec)
        from kardiabench.models.hf import HFChatModel

        return HFChatModel(
            name,
            batch_size=o.batch_size,
            dtype=o.dtype,
            device=o.device,
            revision=o.revision,
            add_span_tokens=o.add_span_tokens,
            chat_template=o.chat_template,
        )
    if provider == "vllm":
        from kardiabench.models.vllm import CPU_NOTE, VLLMChatModel

        require_extra("vllm", spec, CPU_NOTE)

        return VLLMChatModel(
            name,
            tensor_parallel_size=o.tensor_parallel_size,
            data_parallel_size=o.data_parallel_size,
            dtype=o.dtype,
            revision=o.revision,
            chat_template=o.chat_template,
        )
    from kardiabench.models.baselines import BASELINES

    if name not in BASELINES:
        raise SpecError(f"unknown baseline {name!r}; available: {', '.join(BASELINES)}")
    if name == "retrieval":
        return BASELINES[name](
            train_dialogues or [], train_source, index_dir=index_dir, files_key=files_key
        )
    return BASELINES[name](train_dialogues or [], train_source)


__all__ = [
    "ChatModel",
    "ChatRequest",
    "FatalModelError",
    "Generation",
    "ModelError",
    "ModelOptions",
    "SamplingParams",
    "SpecError",
    "check_spec_length",
    "load_model",
    "parse_spec",
]
