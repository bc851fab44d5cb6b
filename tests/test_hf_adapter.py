"""HFChatModel on the tiny random model: batching, left padding, sampling, limits, templates, markers."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from fakehub import DroppingServer
from helpers import write_dataset

pytest.importorskip("torch")
pytest.importorskip("transformers")

from kardiabench.models.base import ChatRequest, FatalModelError, Generation, SamplingParams  # noqa: E402
from kardiabench.models.hf import (  # noqa: E402
    HFChatModel,
    decode_keeping_span_markers,
    finish_and_length,
)
from kardiabench.spans import parse_spans, span_markers  # noqa: E402

PLAIN_TEMPLATE = (
    "{% for m in messages %}[{{ m['role'] }}] {{ m['content'] }}\n{% endfor %}"
    "{% if add_generation_prompt %}[assistant] {% endif %}"
)


def req(text: str, *, system: str | None = None, **params) -> ChatRequest:
    msgs = ([{"role": "system", "content": system}] if system else []) + [
        {"role": "user", "content": text}
    ]
    return ChatRequest.from_messages(msgs, SamplingParams(**params))


def run(model: HFChatModel, requests: list[ChatRequest]) -> list[Generation]:
    out = asyncio.run(model.generate(requests))
    assert all(isinstance(g, Generation) for g in out), out
    return out  # type: ignore[return-value]


@pytest.fixture(scope="module")
def model(tiny_model_dir) -> HFChatModel:
    return HFChatModel(str(tiny_model_dir), batch_size=8, device="cpu")


@pytest.fixture(scope="module")
def no_template_dir(tiny_model_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("no_template")
    shutil.copytree(tiny_model_dir, out, dirs_exist_ok=True)
    (out / "chat_template.jinja").unlink(missing_ok=True)
    cfg_path = out / "tokenizer_config.json"
    cfg = json.loads(cfg_path.read_text())
    cfg.pop("chat_template", None)
    cfg_path.write_text(json.dumps(cfg))
    return out


def test_batch_of_different_lengths_returns_one_generation_each(model):
    requests = [
        req("Hi"),
        req("I finally passed my driving test today, after three tries and a lot of rain!"),
        req("The house feels so empty since she moved out.", system="You are a kind listener."),
        ChatRequest.from_messages(
            [
                {"role": "user", "content": "Hello"},
                {"role": "assistant", "content": "Hi, how are you?"},
                {"role": "user", "content": "Tired, the week was long."},
            ],
            SamplingParams(max_tokens=6),
        ),
    ]
    requests = [ChatRequest(r.messages, SamplingParams(max_tokens=6)) for r in requests]
    out = run(model, requests)
    assert len(out) == len(requests)
    assert [g.prompt_tokens for g in out] == [model.count_prompt_tokens(r) for r in requests]
    assert len({g.prompt_tokens for g in out}) == len(requests)  # truly different lengths
    for g in out:
        assert 1 <= g.completion_tokens <= 6
        assert g.finish_reason in {"stop", "length"}
        assert g.latency_s > 0


def test_left_padding_gives_the_same_greedy_output_alone_and_in_a_batch(model):
    short = req("Hello there", max_tokens=8)
    longer = req(
        "A much longer message about a grandmother, a care home and an empty house. " * 3,
        max_tokens=8,
    )
    alone = run(model, [short])[0]
    batched = run(model, [longer, short])[1]
    assert batched.prompt_tokens == alone.prompt_tokens
    assert batched.text == alone.text
    assert batched.completion_tokens == alone.completion_tokens


def test_seeded_sampling_is_reproducible_and_seeds_differ(model):
    def sample(seed: int) -> list[str]:
        batch = [
            req("Tell me about your day", temperature=1.0, max_tokens=12, seed=seed),
            req("Hi", temperature=1.0, max_tokens=12, seed=seed),
        ]
        return [g.text for g in run(model, batch)]

    assert sample(1) == sample(1)
    assert sample(1) != sample(2)
    greedy = [req("Tell me about your day", max_tokens=12, seed=s) for s in (1, 2)]
    a, b = run(model, greedy)
    assert a.text == b.text  # temperature 0 ignores the seed


def test_max_tokens_is_respected_with_finish_reason_length(model):
    g = run(model, [req("Write a long story", max_tokens=5)])[0]
    assert (g.finish_reason, g.completion_tokens) == ("length", 5)
    assert len(model.tokenizer(g.text, add_special_tokens=False)["input_ids"]) <= 8


def test_mixed_settings_in_one_batch_keep_request_order(model):
    out = run(
        model,
        [req("a", max_tokens=3), req("b", max_tokens=7), req("c", max_tokens=3, temperature=0.8)],
    )
    assert [g.completion_tokens for g in out] == [3, 7, 3]


def _steer_first_token(model: HFChatModel, request: ChatRequest, target_id: int) -> None:
    """Make `target_id` the greedy first token for `request` by giving it the output-head row of the
    token the model would pick anyway, scaled up (the tiny model's head is untied from the input)."""
    import torch

    enc = model.tokenizer(model.render(request), return_tensors="pt", add_special_tokens=False)
    with torch.no_grad():
        logits = model.model(**enc).logits[0, -1]
        assert logits.max() > 0
        head = model.model.get_output_embeddings().weight
        head[target_id] = 3 * head[int(logits.argmax())]


def test_eos_stops_generation_with_finish_reason_stop(tiny_model_dir):
    m = HFChatModel(str(tiny_model_dir), device="cpu")
    r = req("Hello", max_tokens=10)
    _steer_first_token(m, r, m.tokenizer.eos_token_id)
    g = run(m, [r])[0]
    assert (g.finish_reason, g.completion_tokens, g.text) == ("stop", 1, "")


def test_a_generated_span_marker_survives_decoding(tiny_model_dir):
    m = HFChatModel(str(tiny_model_dir), device="cpu")
    r = req("Hello", max_tokens=4)
    _steer_first_token(m, r, m.tokenizer.convert_tokens_to_ids("<|response_begin|>"))
    g = run(m, [r])[0]
    assert g.text.startswith("<|response_begin|>")


def test_decode_keeps_span_markers_and_drops_other_special_tokens(model):
    tok = model.tokenizer
    text = "<|im_start|>x<|understanding_begin|>u<|understanding_end|><|emotion_begin|>sad<|emotion_end|>"
    ids = tok(text, add_special_tokens=False)["input_ids"] + [tok.eos_token_id, tok.pad_token_id]
    decoded = decode_keeping_span_markers(tok, ids)
    assert (
        decoded
        == "x<|understanding_begin|>u<|understanding_end|><|emotion_begin|>sad<|emotion_end|>"
    )
    assert parse_spans(decoded).get("emotion") == "sad"
    # why the helper exists
    assert "<|emotion_begin|>" not in tok.decode(ids, skip_special_tokens=True)


def test_add_span_tokens_adds_single_special_tokens_and_resizes(tmp_path):
    from kardiabench.testing.tiny_model import build_tiny_model

    folder = build_tiny_model(tmp_path / "plain", span_tokens=False)
    plain = HFChatModel(str(folder), device="cpu")
    assert all(
        len(plain.tokenizer(m, add_special_tokens=False)["input_ids"]) > 1 for m in span_markers()
    )

    m = HFChatModel(str(folder), device="cpu", add_span_tokens=True)
    assert len(m.tokenizer) == len(plain.tokenizer) + 8
    assert m.model.get_input_embeddings().num_embeddings == len(m.tokenizer)
    for marker in span_markers():
        assert len(m.tokenizer(marker, add_special_tokens=False)["input_ids"]) == 1
    ids = m.tokenizer("<|response_begin|>ok<|response_end|>", add_special_tokens=False)["input_ids"]
    assert m.decode(ids) == "<|response_begin|>ok<|response_end|>"
    assert m.identity()["add_span_tokens"] is True and plain.identity()["add_span_tokens"] is False
    assert run(m, [req("Hi", max_tokens=3)])[0].completion_tokens >= 1


def test_missing_chat_template_is_a_clear_error_and_a_supplied_one_works(no_template_dir):
    with pytest.raises(FatalModelError, match=rf"{no_template_dir}.*no chat template"):
        HFChatModel(str(no_template_dir), device="cpu")
    m = HFChatModel(str(no_template_dir), device="cpu", chat_template=PLAIN_TEMPLATE)
    r = req("Hello", system="Be kind.", max_tokens=3)
    assert m.render(r) == "[system] Be kind.\n[user] Hello\n[assistant] "
    assert run(m, [r])[0].prompt_tokens == m.count_prompt_tokens(r)


def test_chat_template_from_a_file(no_template_dir, tmp_path):
    path = tmp_path / "t.jinja"
    path.write_text(PLAIN_TEMPLATE)
    m = HFChatModel(str(no_template_dir), device="cpu", chat_template=str(path))
    assert m.render(req("Hi")) == "[user] Hi\n[assistant] "


def test_identity_tracks_the_chat_template(model, tiny_model_dir):
    ident = model.identity()
    assert ident["spec"] == f"hf:{tiny_model_dir}"
    assert ident["dtype"] == "float32"
    assert len(ident["chat_template_sha256"]) == 64
    other = HFChatModel(str(tiny_model_dir), device="cpu", chat_template=PLAIN_TEMPLATE).identity()
    assert other["chat_template_sha256"] != ident["chat_template_sha256"]
    assert {k: v for k, v in other.items() if k != "chat_template_sha256"} == {
        k: v for k, v in ident.items() if k != "chat_template_sha256"
    }


def test_unloadable_models_are_clear_fatal_errors(tmp_path):
    with pytest.raises(FatalModelError, match="No model folder"):
        HFChatModel("./no/such/folder", device="cpu")
    with pytest.raises(FatalModelError, match="offline"):
        HFChatModel("kardiabench-test/does-not-exist", device="cpu")
    (tmp_path / "empty").mkdir()
    with pytest.raises(FatalModelError, match="Could not load the model at"):
        HFChatModel(str(tmp_path / "empty"), device="cpu")


def run_hub_model(tmp_path, endpoint: str, offline: bool) -> subprocess.CompletedProcess:
    """`kardiabench run --model hf:OWNER/NAME` in a subprocess (huggingface_hub reads HF_ENDPOINT
    and HF_HUB_OFFLINE at import), with an empty Hub cache."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("HF_", "HUGGING_FACE_", "TRANSFORMERS_"))
    }
    env |= {
        "HF_ENDPOINT": endpoint,
        "HF_HOME": str(tmp_path / "hf_home"),
        "HF_HUB_OFFLINE": str(int(offline)),
        "TRANSFORMERS_OFFLINE": str(int(offline)),
        "PYTHONPATH": str(Path(__file__).resolve().parents[1]),
    }
    data = write_dataset(tmp_path / "data")
    cmd = [
        sys.executable,
        "-m",
        "kardiabench.cli",
        "run",
        "--model",
        "hf:kardiabench-test/not-cached",
        "--data",
        str(data),
        "--output",
        str(tmp_path / "run"),
        "--no-cache",
        "--no-progress",
    ]
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)


@pytest.mark.parametrize("offline", [False, True], ids=["hub-unreachable", "HF_HUB_OFFLINE"])
def test_a_hub_model_that_cannot_be_fetched_fails_at_once_in_one_line(tmp_path, offline):
    """An unreachable Hub (every connection dropped) costs one request, not transformers' retries
    of every file (about 50 s, 7 connections); offline mode costs none. Either way: one line, exit 2."""
    with DroppingServer() as hub:
        p = run_hub_model(tmp_path, hub.url, offline)
    assert p.returncode == 2 and "Traceback" not in p.stderr
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(
        "error: Could not load 'kardiabench-test/not-cached' from the Hugging Face Hub: "
    )
    assert ("offline mode is on" if offline else "the Hub cannot be reached") in lines[
        0
    ] and "hf download" in lines[0]
    # the probe; online, huggingface_hub may also try once for its own user-agent registry
    assert hub.connections == 0 if offline else hub.connections <= 2


def test_generation_runs_off_the_event_loop(model):
    async def main() -> int:
        ticks = 0
        task = asyncio.create_task(
            model.generate([req("Hello " * 10, max_tokens=24) for _ in range(4)])
        )
        while not task.done():
            await asyncio.sleep(0.005)
            ticks += 1
        assert all(isinstance(g, Generation) for g in await task)
        return ticks

    assert asyncio.run(main()) >= 3


def test_finish_and_length():
    assert finish_and_length([5, 6, 2, 0, 0], {2}, 5) == ("stop", 3)
    assert finish_and_length([5, 6, 7], {2}, 3) == ("length", 3)
    assert finish_and_length([2], {2, 9}, 1) == ("stop", 1)
