"""Local models done right: length-ordered batches, stop strings and end-of-turn ids, generation
options passed through and recorded, tokens/s in the run's statistics."""

from __future__ import annotations

import asyncio
import json
import shutil

import pytest
from helpers import write_dataset

pytest.importorskip("torch")
pytest.importorskip("transformers")

from kardiabench.cli import main  # noqa: E402
from kardiabench.models.base import ChatRequest, Generation, SamplingParams  # noqa: E402
from kardiabench.models.hf import HFChatModel  # noqa: E402
from kardiabench.models.openai_api import OpenAIChatModel  # noqa: E402
from kardiabench.runner import Job, batch_padding, padding, run_jobs, sorted_cuts  # noqa: E402

TEXTS = [
    "Hi",
    "I finally passed my driving test today, after three tries and a lot of rain!",
    "Hello there",
    "The house feels so empty since she moved out, and the garden too, and the kitchen.",
    "Ok",
    "Tired.",
]


def req(text: str, **params) -> ChatRequest:
    return ChatRequest.from_messages([{"role": "user", "content": text}], SamplingParams(**params))


@pytest.fixture(scope="module")
def model(tiny_model_dir) -> HFChatModel:
    return HFChatModel(str(tiny_model_dir), batch_size=2, device="cpu")


def run_all(
    model: HFChatModel, jobs: list[Job], **kw
) -> tuple[list[tuple[str, Generation]], object]:
    seen: list[tuple[str, Generation]] = []
    stats = asyncio.run(
        run_jobs(
            model,
            jobs,
            on_result=lambda j, out, _c: seen.append((j.key, out)),
            progress=False,
            **kw,
        )
    )
    return seen, stats


def test_padding_counts_pad_tokens_per_batch():
    assert padding([5, 1, 4, 4], 2) == (5 - 1) + 0
    assert padding([5, 4, 4, 1], 2) == 1 + 3
    assert padding([3], 8) == 0


def test_the_short_batch_goes_where_it_adds_least_padding():
    desc = [10, 10, 9, 1, 1]
    assert sorted_cuts(desc, 2) == [(0, 2), (2, 3), (3, 5)]  # (10, 10) (9) (1, 1): no padding
    assert sorted_cuts([4, 3, 2, 1], 2) == [(0, 2), (2, 4)]


def test_length_ordered_batches_give_the_unsorted_outputs_to_the_same_items_with_less_padding(
    model, monkeypatch
):
    jobs = [Job(f"item{i}", req(t, max_tokens=5)) for i, t in enumerate(TEXTS)]
    plain, plain_stats = run_all(model, jobs, sort_by_length=False)
    batches: list[list[int]] = []
    answer = model.generate

    async def recording(requests):
        batches.append([model.count_prompt_tokens(r) for r in requests])
        return await answer(requests)

    monkeypatch.setattr(model, "generate", recording)
    ordered, stats = run_all(model, jobs)
    assert [k for k, _ in plain] == [j.key for j in jobs]  # unsorted: item order
    assert [k for k, _ in ordered] != [j.key for j in jobs]  # sorted: longest prompts first
    assert {k: g.text for k, g in ordered} == {k: g.text for k, g in plain}
    assert {k: g.prompt_tokens for k, g in ordered} == {
        j.key: model.count_prompt_tokens(j.request) for j in jobs
    }
    lengths = [model.count_prompt_tokens(j.request) for j in jobs]
    assert sorted(n for b in batches for n in b) == sorted(lengths) and max(map(len, batches)) == 2
    assert stats.pad_tokens_saved == padding(lengths, 2) - batch_padding(batches) > 0
    assert plain_stats.pad_tokens_saved == 0


def test_a_stop_string_ends_the_text_before_it_and_counts_the_tokens_through_it(model):
    free = asyncio.run(model.generate([req("Tell me about your day", max_tokens=12)]))[0]
    ids = model.tokenizer(free.text, add_special_tokens=False)["input_ids"]
    # a whole generated token whose text first occurs at that token
    k, stop = next(
        (k, s)
        for k in range(2, len(ids))
        if (s := model.tokenizer.decode(ids[k]).strip())
        and s not in model.tokenizer.decode(ids[:k])
    )
    stopped, other = asyncio.run(
        model.generate(
            [
                req("Tell me about your day", max_tokens=12, stop=(stop,)),
                req("Tell me about your day", max_tokens=12, stop=("\x00never",)),
            ]
        )
    )
    assert stopped.text == free.text[: free.text.index(stop)]
    assert stopped.finish_reason == "stop"
    assert stopped.completion_tokens == k + 1 < free.completion_tokens
    assert (other.text, other.completion_tokens) == (free.text, free.completion_tokens)


def test_every_end_of_turn_id_of_the_generation_config_stops_generation(tiny_model_dir, tmp_path):
    folder = tmp_path / "two_eos"
    shutil.copytree(tiny_model_dir, folder)
    probe = HFChatModel(str(folder), device="cpu")
    end_of_turn = probe.tokenizer.convert_tokens_to_ids("<|im_start|>")
    cfg = json.loads((folder / "generation_config.json").read_text())
    cfg["eos_token_id"] = [probe.tokenizer.eos_token_id, end_of_turn]
    (folder / "generation_config.json").write_text(json.dumps(cfg))
    m = HFChatModel(str(folder), device="cpu")
    r = req("Hello", max_tokens=10)
    import torch

    enc = m.tokenizer(m.render(r), return_tensors="pt", add_special_tokens=False)
    with torch.no_grad():  # make the second end id the greedy first token
        head = m.model.get_output_embeddings().weight
        head[end_of_turn] = 3 * head[int(m.model(**enc).logits[0, -1].argmax())]
    g = asyncio.run(m.generate([r]))[0]
    assert (g.finish_reason, g.completion_tokens, g.text) == ("stop", 1, "")


def test_generation_options_reach_the_backends(model):
    p = SamplingParams(
        temperature=0.7,
        stop=("</s>",),
        top_k=5,
        min_p=0.1,
        repetition_penalty=1.2,
        extra=(("no_repeat_ngram_size", 3),),
    )
    kw = model._generate_kwargs(p)
    assert (
        kw["top_k"],
        kw["min_p"],
        kw["repetition_penalty"],
        kw["no_repeat_ngram_size"],
        kw["stop_strings"],
    ) == (5, 0.1, 1.2, 3, ["</s>"])
    greedy = model._generate_kwargs(SamplingParams(top_k=5, min_p=0.1, repetition_penalty=1.2))
    assert "top_k" not in greedy and "min_p" not in greedy and greedy["repetition_penalty"] == 1.2
    body = OpenAIChatModel("m", base_url="http://127.0.0.1:9/v1", api_key="x")._body(
        ChatRequest((("user", "hi"),), p)
    )
    assert (
        body["stop"],
        body["top_k"],
        body["min_p"],
        body["repetition_penalty"],
        body["no_repeat_ngram_size"],
    ) == (["</s>"], 5, 0.1, 1.2, 3)


def test_new_options_at_their_defaults_leave_the_sampling_identity_unchanged():
    assert SamplingParams().to_dict() == {
        "temperature": 0.0,
        "top_p": 1.0,
        "max_tokens": 512,
        "seed": 0,
    }
    d = SamplingParams(stop=("a",), top_k=3, extra=(("x", True),)).to_dict()
    assert (d["stop"], d["top_k"], d["extra"]) == (["a"], 3, {"x": True})


def test_cli_records_options_in_run_json_and_reports_tokens_per_s(tiny_model_dir, tmp_path, capsys):
    out = tmp_path / "run"
    args = [
        "generate",
        "--model",
        f"hf:{tiny_model_dir}",
        "--data",
        "sample",
        "--limit",
        "5",
        "--max-tokens",
        "4",
        "--batch-size",
        "2",
        "--output",
        str(out),
        "--no-cache",
        "--no-progress",
        "--stop",
        "</x>",
        "--stop",
        "<|y|>",
        "--repetition-penalty",
        "1.1",
        "--top-k",
        "4",
        "--gen-kwargs",
        "no_repeat_ngram_size=2,renormalize_logits=true",
    ]
    assert main(args) == 0
    manifest = json.loads((out / "run.json").read_text())
    sampling = manifest["generation"]["sampling"]
    assert (
        sampling["stop"] == ["</x>", "<|y|>"]
        and sampling["top_k"] == 4
        and sampling["repetition_penalty"] == 1.1
    )
    assert sampling["extra"] == {"no_repeat_ngram_size": 2, "renormalize_logits": True}
    stats = manifest["generation_stats"]
    assert stats["generated_tokens"] == stats["completion_tokens"] > 0
    assert stats["tokens_per_s"] > 0 and stats["pad_tokens_saved"] >= 0
    assert "tokens/s" in capsys.readouterr().err
    assert main([*args[:-1], "no_repeat_ngram_size=3"]) == 2  # another option: another run
    assert "sampling.extra.no_repeat_ngram_size: 2 → 3" in capsys.readouterr().err


@pytest.mark.parametrize("bad", ["novalue", "=1", "a b=1"])
def test_malformed_gen_kwargs_are_a_usage_error(bad, capsys):
    with pytest.raises(SystemExit) as e:
        main(["generate", "--model", "baseline:majority", "--output", "x", "--gen-kwargs", bad])
    assert e.value.code == 2 and "--gen-kwargs" in capsys.readouterr().err


def test_score_predictions_with_limit_scores_the_first_items_and_counts_missing_ones(
    tmp_path, capsys
):
    data = write_dataset(tmp_path / "data")
    out = tmp_path / "run"
    assert (
        main(
            [
                "generate",
                "--model",
                "baseline:majority",
                "--data",
                str(data),
                "--output",
                str(out),
                "--no-progress",
                "--no-cache",
            ]
        )
        == 0
    )
    rows = [json.loads(x) for x in (out / "predictions.jsonl").read_text().splitlines()]
    ext = tmp_path / "mine.jsonl"
    ext.write_text(
        "".join(
            json.dumps({"item_id": r["item_id"], "raw_output": r["raw_output"]}) + "\n"
            for r in rows[1:]
        )
    )
    scored = tmp_path / "ext"
    assert (
        main(
            [
                "score",
                "--predictions",
                str(ext),
                "--data",
                str(data),
                "--limit",
                "4",
                "--output",
                str(scored),
                "--resamples",
                "50",
            ]
        )
        == 0
    )
    items = [json.loads(x) for x in (scored / "items.jsonl").read_text().splitlines()]
    assert [i["item_id"] for i in items] == [r["item_id"] for r in rows[:4]]
    results = json.loads((scored / "results.json").read_text())
    assert results["metrics"]["emotion_accuracy"]["n"] == 4
    assert json.loads((scored / "run.json").read_text())["data"]["limit"] == 4
    assert "1 of 4 items have no prediction" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["score", str(out), "--limit", "2"])


def test_a_timed_out_request_to_a_local_server_is_not_sent_again(caplog):
    from kardiabench.testing.fake_openai import FakeConfig, FakeOpenAIServer

    with FakeOpenAIServer(
        FakeConfig(fail_first=1, fail_kinds=("timeout",), timeout_sleep=30)
    ) as srv:
        m = OpenAIChatModel("m", base_url=srv.url, timeout=0.5)
        (out,) = asyncio.run(m.generate([req("hello", max_tokens=8)]))
        posts = srv.stats.requests
    assert "not re-sent while it may still be computing it" in str(out) and posts == 1


def test_an_endpoint_that_ignores_response_format_is_noted_once(caplog):
    from kardiabench.testing.fake_openai import FakeConfig, FakeOpenAIServer

    fmt = {"type": "json_schema", "json_schema": {"name": "v", "schema": {"type": "object"}}}
    with FakeOpenAIServer(FakeConfig(reply_fn=lambda r: 'Sure! {"score": 3}')) as srv:
        m = OpenAIChatModel("m", base_url=srv.url)
        requests = [
            ChatRequest.from_messages([{"role": "user", "content": f"q{i}"}], SamplingParams(), fmt)
            for i in range(3)
        ]
        with caplog.at_level("WARNING"):
            for r in requests:
                asyncio.run(m.generate([r]))
    notes = [r.getMessage() for r in caplog.records if "response_format" in r.getMessage()]
    assert len(notes) == 1 and "not pure JSON" in notes[0]


def test_judge_flags_reach_the_judge_models(tiny_model_dir, tmp_path):
    from kardiabench.score_stage import JudgeOptions

    template = tmp_path / "t.jinja"
    template.write_text("{% for m in messages %}{{ m['content'] }}\n{% endfor %}")
    hf, api = JudgeOptions(
        [f"hf:{tiny_model_dir}", "openai:j"],
        judge_base_url="http://127.0.0.1:9/v1",
        judge_timeout=7.5,
        judge_batch_size=3,
        judge_dtype="float32",
        judge_chat_template=str(template),
    ).models()
    assert (hf.max_batch_size, hf.dtype, hf.tokenizer.chat_template) == (
        3,
        "float32",
        template.read_text(),
    )
    assert api.timeout == 7.5


def test_judge_numeric_flags_are_checked(capsys):
    with pytest.raises(SystemExit) as e:
        main(["score", "x", "--judge-timeout", "0"])
    assert e.value.code == 2 and "--judge-timeout" in capsys.readouterr().err
