"""Local Hugging Face transformers models: batched, left-padded `generate` behind `ChatModel`.

Sampling uses only the request's settings (temperature, top_p, max_tokens, seed, stop strings,
top_k, min_p, repetition_penalty and --gen-kwargs): the model's own generation_config defaults
(top_k, repetition_penalty, ...) are replaced, so a request means the same thing here as on vLLM or
an API. Its end-of-sequence ids (all of them: chat models list their end-of-turn token there) are
kept as stop tokens. Sampling with temperature > 0 seeds torch once per group of
same-settings requests: a batch is reproducible as a whole, and a request's sample depends on the
other requests batched with it.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import re
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any, Literal

from kardiabench.models.base import (
    ChatModel,
    ChatRequest,
    FatalModelError,
    Generation,
    ModelError,
    SamplingParams,
)
from kardiabench.spans import span_markers

Dtype = Literal["auto", "float32", "bfloat16", "float16"]
Device = Literal["auto", "cpu", "cuda"]
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*(/[\w.-]+)?$")


def sha256_text(text: str | dict | None) -> str | None:
    """sha256 of a chat template (some tokenizers hold several, by name, in a dict)."""
    if isinstance(text, dict):
        text = json.dumps(text, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest() if text is not None else None


def read_chat_template(chat_template: str | None) -> str | None:
    """A Jinja string, or the path of a file holding one (a string without `{` that names a file)."""
    if chat_template is not None and "{" not in chat_template and Path(chat_template).is_file():
        return Path(chat_template).read_text()
    return chat_template


def load_error(
    path_or_id: str, exc: BaseException, *, unreachable: bool = False
) -> FatalModelError:
    """A clear one-line message for a model that cannot be loaded (missing folder, offline Hub);
    `unreachable`: `hub_load_kwargs` found the Hub out of reach, so only the local cache was tried."""
    first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    if not Path(path_or_id).exists() and not _HUB_ID.match(path_or_id):
        return FatalModelError(
            f"No model folder at {path_or_id!r}, and it is not a Hugging Face Hub id (owner/name)."
        )
    if not Path(path_or_id).exists():
        if _offline_env():
            why = "offline mode is on (HF_HUB_OFFLINE/TRANSFORMERS_OFFLINE) and it is not in the local Hub cache"
        elif unreachable:
            why = "the Hub cannot be reached and it is not in the local Hub cache"
        else:
            why = "the Hub could not be reached or has no such model"
        return FatalModelError(
            f"Could not load {path_or_id!r} from the Hugging Face Hub: {why}. Download it where there "
            f"is network (`hf download {path_or_id}`) or pass a local folder. ({type(exc).__name__}: {first})"
        )
    return FatalModelError(
        f"Could not load the model at {path_or_id!r}: {type(exc).__name__}: {first}"
    )


def _offline_env() -> bool:
    return any(
        os.environ.get(v, "") not in ("", "0") for v in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")
    )


def hub_load_kwargs(path_or_id: str, revision: str | None = None) -> dict[str, Any]:
    """`from_pretrained` arguments that make an unreachable Hub fail fast: `local_files_only=True`
    (the local Hub cache, no request) for a Hub id when offline mode is on or one request, which the
    client does not retry, cannot connect. Left to itself, transformers retries every file for
    about 50 s before its error. {} for a local folder, or when the Hub answers (it then says
    what is wrong: no such model, gated, ...)."""
    if Path(path_or_id).exists() or not _HUB_ID.match(path_or_id):
        return {}
    if _offline_env():
        return {"local_files_only": True}
    from huggingface_hub import get_hf_file_metadata, hf_hub_url
    from huggingface_hub.errors import HfHubHTTPError

    from kardiabench.data.load import hub_network_errors

    try:
        get_hf_file_metadata(hf_hub_url(path_or_id, "config.json", revision=revision))
    except hub_network_errors():
        return {"local_files_only": True}
    except (
        HfHubHTTPError,
        ValueError,
    ):  # the Hub answered, or the id is not one it takes: transformers says so
        pass
    return {}


def span_marker_ids(tokenizer: Any) -> set[int]:
    """Ids of the special span markers that are single tokens of this tokenizer."""
    vocab = tokenizer.get_vocab()
    return {vocab[m] for m in span_markers("special") if m in vocab}


def decode_keeping_span_markers(
    tokenizer: Any, ids: Iterable[int], keep: set[int] | None = None
) -> str:
    """Decode generated ids, dropping special tokens (pad, eos, bos, chat-template markers) except
    the span markers, which the span parser needs. `skip_special_tokens=True` would drop those too,
    and string replacement after a plain decode could remove text the model wrote in ordinary tokens."""
    keep = span_marker_ids(tokenizer) if keep is None else keep
    special = set(tokenizer.all_special_ids)
    special |= {i for i, tok in tokenizer.added_tokens_decoder.items() if tok.special}
    drop = special - keep
    return tokenizer.decode([i for i in ids if i not in drop], skip_special_tokens=False)


def finish_and_length(
    generated: Sequence[int], eos_ids: set[int], max_new_tokens: int
) -> tuple[str, int]:
    """(finish_reason, completion_tokens) of one generated row; the eos token counts, padding after it not."""
    for pos, tok in enumerate(generated):
        if tok in eos_ids:
            return "stop", pos + 1
    return ("length" if len(generated) >= max_new_tokens else "stop"), len(generated)


def stop_position(text: str, stop: Sequence[str]) -> int | None:
    """Where the earliest stop string starts in `text`, None when none occurs."""
    found = [i for i in (text.find(s) for s in stop if s) if i >= 0]
    return min(found) if found else None


def cut_at_eos(generated: Sequence[int], eos_ids: set[int]) -> list[int]:
    out: list[int] = []
    for tok in generated:
        if tok in eos_ids:
            break
        out.append(tok)
    return out


class HFChatModel(ChatModel):
    """A causal LM loaded with transformers (local folder or Hub id), answered in left-padded batches."""

    max_concurrency = 1

    def __init__(
        self,
        path_or_id: str,
        *,
        batch_size: int = 8,
        dtype: Dtype = "auto",
        device: Device = "auto",
        revision: str | None = None,
        add_span_tokens: bool = False,
        chat_template: str | None = None,
        trust_remote_code: bool = False,
    ) -> None:
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer, GenerationConfig

        if batch_size < 1:
            raise ValueError("batch_size must be ≥ 1")
        self.spec = f"hf:{path_or_id}"
        self.path_or_id = path_or_id
        self.max_batch_size = batch_size
        self.add_span_tokens = add_span_tokens
        self.device = (
            ("cuda" if torch.cuda.is_available() else "cpu") if device == "auto" else device
        )
        if dtype == "auto":
            # The checkpoint's dtype on GPU; float32 on CPU, where bf16/fp16 matmuls are slow or missing.
            torch_dtype: Any = "auto" if self.device.startswith("cuda") else torch.float32
        else:
            torch_dtype = getattr(torch, dtype)

        hub = hub_load_kwargs(path_or_id, revision)
        try:
            tok = AutoTokenizer.from_pretrained(
                path_or_id, revision=revision, trust_remote_code=trust_remote_code, **hub
            )
        except (OSError, ValueError) as exc:
            raise load_error(path_or_id, exc, unreachable=bool(hub)) from exc
        template = read_chat_template(chat_template)
        if template is not None:
            tok.chat_template = template
        if not tok.chat_template:  # checked before loading weights, which can take minutes
            raise FatalModelError(
                f"The tokenizer of {path_or_id!r} has no chat template; pass one "
                "(chat_template=<Jinja string or file>) or use an instruction-tuned model."
            )
        try:
            model = AutoModelForCausalLM.from_pretrained(
                path_or_id,
                revision=revision,
                trust_remote_code=trust_remote_code,
                **_dtype_kwarg(torch_dtype),
                **hub,
            )
        except (OSError, ValueError) as exc:
            raise load_error(path_or_id, exc, unreachable=bool(hub)) from exc

        if add_span_tokens:
            added = tok.add_special_tokens(
                {"additional_special_tokens": span_markers("special")},
                **_keep_existing_extra_tokens(tok),
            )
            if added:
                model.resize_token_embeddings(len(tok))

        eos = model.generation_config.eos_token_id if model.generation_config is not None else None
        self._eos_ids: set[int] = {
            i for i in (eos if isinstance(eos, list) else [eos]) if i is not None
        }
        if tok.eos_token_id is not None:
            self._eos_ids.add(tok.eos_token_id)
        if not self._eos_ids:
            raise FatalModelError(
                f"{path_or_id!r} defines no end-of-sequence token; generation would never stop."
            )
        tok.padding_side = "left"
        if tok.pad_token is None:
            tok.pad_token = tok.eos_token or tok.convert_ids_to_tokens(min(self._eos_ids))
        self.tokenizer = tok
        self._pad_id = tok.pad_token_id
        # Only the request decides how to sample (see the module docstring).
        model.generation_config = GenerationConfig(
            eos_token_id=sorted(self._eos_ids),
            pad_token_id=self._pad_id,
            bos_token_id=tok.bos_token_id,
        )
        self._keep_ids = span_marker_ids(tok)
        self.model = model.to(self.device).eval()
        self.dtype = str(self.model.dtype).removeprefix("torch.")
        self.revision = getattr(model.config, "_commit_hash", None) or revision

    def identity(self) -> dict[str, Any]:
        return {
            "spec": self.spec,
            "revision": self.revision,
            "dtype": self.dtype,
            "chat_template_sha256": sha256_text(self.tokenizer.chat_template),
            "add_span_tokens": self.add_span_tokens,
        }

    def render(self, request: ChatRequest) -> str:
        return self.tokenizer.apply_chat_template(
            request.message_dicts(), add_generation_prompt=True, tokenize=False
        )

    def count_prompt_tokens(self, request: ChatRequest) -> int:
        return len(self.tokenizer(self.render(request), add_special_tokens=False)["input_ids"])

    def batch_length(self, request: ChatRequest) -> int:
        return self.count_prompt_tokens(request)

    def decode(self, ids: Iterable[int]) -> str:
        return decode_keeping_span_markers(self.tokenizer, ids, self._keep_ids)

    async def generate(self, requests: list[ChatRequest]) -> list[Generation | ModelError]:
        return await asyncio.to_thread(self._generate_sync, requests)

    def _generate_sync(self, requests: list[ChatRequest]) -> list[Generation | ModelError]:
        results: list[Generation | ModelError | None] = [None] * len(requests)
        groups: dict[SamplingParams, list[int]] = {}
        for i, req in enumerate(requests):
            groups.setdefault(req.params, []).append(i)
        for params, idx in groups.items():
            for start in range(0, len(idx), self.max_batch_size):
                chunk = idx[start : start + self.max_batch_size]
                try:
                    outs: list[Generation | ModelError] = list(
                        self._generate_group([requests[i] for i in chunk], params)
                    )
                except Exception as exc:  # one failing group must not sink the others
                    outs = [ModelError(f"{self.spec}: {type(exc).__name__}: {exc}") for _ in chunk]
                for i, out in zip(chunk, outs, strict=True):
                    results[i] = out
        return [r for r in results if r is not None]

    def _generate_group(
        self, requests: list[ChatRequest], params: SamplingParams
    ) -> list[Generation]:
        import torch

        t0 = time.perf_counter()
        enc = self.tokenizer(
            [self.render(r) for r in requests],
            return_tensors="pt",
            padding=True,
            add_special_tokens=False,
        ).to(self.device)
        if params.temperature > 0 and params.seed is not None:
            torch.manual_seed(params.seed)
        with torch.inference_mode():
            out = self.model.generate(**enc, **self._generate_kwargs(params))
        elapsed = time.perf_counter() - t0

        prompt_len = enc["input_ids"].shape[1]
        prompt_counts = enc["attention_mask"].sum(dim=1).tolist()
        gens = []
        for row, n_prompt in zip(out[:, prompt_len:].tolist(), prompt_counts, strict=True):
            reason, n_completion = finish_and_length(row, self._eos_ids, params.max_tokens)
            text = self.decode(cut_at_eos(row, self._eos_ids))
            if params.stop and (at := stop_position(text, params.stop)) is not None:
                reason, n_completion = "stop", self._tokens_through(row[:n_completion], params.stop)
                text = text[:at]
            gens.append(
                Generation(
                    text=text,
                    finish_reason=reason,
                    prompt_tokens=int(n_prompt),
                    completion_tokens=n_completion,
                    latency_s=elapsed,
                )
            )
        return gens

    def _generate_kwargs(self, params: SamplingParams) -> dict[str, Any]:
        """`generate` keywords for one settings group. top_k and min_p only act when sampling;
        repetition_penalty and --gen-kwargs act either way (the latter override the rest)."""
        sample = params.temperature > 0
        kwargs: dict[str, Any] = {"max_new_tokens": params.max_tokens, "do_sample": sample}
        options = params.options()
        if sample:
            kwargs.update(temperature=params.temperature, top_p=params.top_p, top_k=0)
        else:
            options = {k: v for k, v in options.items() if k not in ("top_k", "min_p")}
        if params.stop:
            kwargs.update(stop_strings=list(params.stop), tokenizer=self.tokenizer)
        return {**kwargs, **options}

    def _tokens_through(self, row: Sequence[int], stop: Sequence[str]) -> int:
        """Generated tokens up to the one that completed the first stop string (the rest of the row
        is padding after the batch's stop criterion ended it): the shortest prefix whose text holds it."""
        lo, hi = 1, len(row)
        while lo < hi:
            mid = (lo + hi) // 2
            if stop_position(self.decode(cut_at_eos(row[:mid], self._eos_ids)), stop) is not None:
                hi = mid
            else:
                lo = mid + 1
        return lo

    async def aclose(self) -> None:
        import torch

        self.model = None  # type: ignore[assignment]
        if torch.cuda.is_available():
            torch.cuda.empty_cache()


def _dtype_kwarg(dtype: Any) -> dict[str, Any]:
    """transformers ≥ 4.56 calls it `dtype`; older releases `torch_dtype`."""
    import transformers

    major, minor = (int(x) for x in transformers.__version__.split(".")[:2])
    return {"dtype": dtype} if (major, minor) >= (4, 56) else {"torch_dtype": dtype}


def _keep_existing_extra_tokens(tokenizer: Any) -> dict[str, bool]:
    """`add_special_tokens` replaces the extra special tokens by default; keep them (v4 and v5 names)."""
    import inspect

    names = inspect.signature(tokenizer.add_special_tokens).parameters
    for name in ("replace_extra_special_tokens", "replace_additional_special_tokens"):
        if name in names:
            return {name: False}
    return {}
