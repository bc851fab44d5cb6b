import asyncio
import importlib
import json

import pytest
from helpers import write_dataset

from kardiabench.generate_stage import DataSpec, GenerateConfig, generate, load_items
from kardiabench.jsonl import read_jsonl_tolerant
from kardiabench.models.base import SamplingParams
from kardiabench.plan import dry_run
from kardiabench.runs import RunDir, RunDirError
from kardiabench.tasks import load_task


def config(data, out, model="baseline:retrieval", limit=None, cache=None, **kw):
    return GenerateConfig(
        task=load_task("kardiabench"),
        model_spec=model,
        data=DataSpec(str(data), "test", limit=limit),
        output=out,
        params=SamplingParams(),
        cache_path=cache,
        progress=False,
        **kw,
    )


def lines(path):
    return [json.loads(x) for x in path.read_text().splitlines()]


def test_generate_writes_one_prediction_per_item(tmp_path):
    data = write_dataset(tmp_path / "data")
    run, stats, items = asyncio.run(generate(config(data, tmp_path / "run"), log=lambda m: None))
    rows = lines(run.predictions_path)
    assert len(rows) == len(items) == 9 and stats.done == 9
    assert {r["item_id"] for r in rows} == {i.item_id for i in items}
    preds = run.read_predictions()
    for r in rows:
        assert set(r) >= {
            "item_id",
            "model",
            "raw_output",
            "reasoning",
            "span_issues",
            "well_formed",
            "finish_reason",
            "usage",
            "latency_s",
            "error",
        }
        assert "spans" not in r  # parsed from raw_output when read, not stored a second time
        assert r["well_formed"] and preds[r["item_id"]].spans["emotion"]
    manifest = run.read_manifest()
    assert manifest.generation.history == "full"
    assert manifest.data.n_items == 9 and manifest.generation_stats.done == 9
    assert manifest.provenance["packages"]


def test_resume_after_torn_write_finishes_only_missing_items(tmp_path):
    data = write_dataset(tmp_path / "data")
    out = tmp_path / "run"
    run, _, _ = asyncio.run(generate(config(data, out), log=lambda m: None))
    full = lines(run.predictions_path)
    # simulate a crash: keep 4 complete lines and half of the fifth
    text = run.predictions_path.read_text().splitlines(keepends=True)
    run.predictions_path.write_text("".join(text[:4]) + text[4][:30])
    _, stats, _ = asyncio.run(generate(config(data, out), log=lambda m: None))
    assert stats.total == 5  # only the items not finished before the crash
    rows = read_jsonl_tolerant(run.predictions_path)
    assert len(rows) == 9
    assert {r["item_id"]: r["raw_output"] for r in rows} == {
        r["item_id"]: r["raw_output"] for r in full
    }


def test_run_folder_refuses_different_settings(tmp_path):
    data = write_dataset(tmp_path / "data")
    out = tmp_path / "run"
    asyncio.run(generate(config(data, out), log=lambda m: None))
    with pytest.raises(RunDirError, match="different settings"):
        asyncio.run(generate(config(data, out, model="baseline:majority"), log=lambda m: None))
    _, stats, _ = asyncio.run(
        generate(config(data, out, model="baseline:majority", overwrite=True), log=lambda m: None)
    )
    assert stats.total == 9
    assert RunDir(out).read_manifest().model_spec == "baseline:majority"


def test_limit_and_cache(tmp_path):
    data = write_dataset(tmp_path / "data")
    cache = tmp_path / "cache.sqlite"
    _, s1, items = asyncio.run(
        generate(config(data, tmp_path / "r1", limit=4, cache=cache), log=lambda m: None)
    )
    assert len(items) == 4 and s1.cached == 0
    _, s2, _ = asyncio.run(
        generate(config(data, tmp_path / "r2", limit=4, cache=cache), log=lambda m: None)
    )
    assert s2.cached == 4
    assert all(r["cached"] for r in lines(tmp_path / "r2" / "predictions.jsonl"))


def test_retrieval_index_is_read_back_without_loading_the_training_split(tmp_path, monkeypatch):
    import kardiabench.generate_stage as stage

    data, cache = write_dataset(tmp_path / "data"), tmp_path / "cache" / "cache.sqlite"
    asyncio.run(generate(config(data, tmp_path / "r1", cache=cache), log=lambda m: None))
    splits = []
    original = stage.load_dialogues
    monkeypatch.setattr(
        stage,
        "load_dialogues",
        lambda source, split=None, **kw: splits.append(split) or original(source, split, **kw),
    )
    logs = []
    asyncio.run(
        generate(
            config(data, tmp_path / "r2", cache=tmp_path / "cache" / "other.sqlite"),
            log=logs.append,
        )
    )
    assert "train" not in splits and any("index read from" in m for m in logs)
    first, second = (
        lines(tmp_path / "r1" / "predictions.jsonl"),
        lines(tmp_path / "r2" / "predictions.jsonl"),
    )
    assert [p["raw_output"] for p in first] == [p["raw_output"] for p in second]
    assert (
        json.loads((tmp_path / "r1" / "run.json").read_text())["generation"]
        == json.loads((tmp_path / "r2" / "run.json").read_text())["generation"]
    )


def test_limit_expands_only_the_dialogues_it_evaluates(tmp_path, monkeypatch):
    # the package re-exports a function of that name
    expand_module = importlib.import_module("kardiabench.data.expand")
    task, data = load_task("kardiabench"), write_dataset(tmp_path / "data")
    everything, _ = load_items(task, DataSpec(str(data), "test"))
    seen = []
    original = expand_module.expand_dialogue
    monkeypatch.setattr(
        expand_module,
        "expand_dialogue",
        lambda d, mode="full": seen.append(d.dialogue_id) or original(d, mode),
    )
    first, _ = load_items(task, DataSpec(str(data), "test", limit=3))
    assert [i.item_id for i in first] == [i.item_id for i in everything[:3]]
    # no dialogue after the third item
    assert seen == list(dict.fromkeys(i.dialogue_id for i in first))


def test_majority_baseline_predicts_most_frequent_training_emotion(tmp_path):
    data = write_dataset(tmp_path / "data")
    run, _, _ = asyncio.run(
        generate(config(data, tmp_path / "run", model="baseline:majority"), log=lambda m: None)
    )
    from collections import Counter

    from kardiabench.data import expand, load_dialogues

    counts = Counter(i.gold_emotion for i in expand(load_dialogues(str(data), "train").dialogues))
    top = max(counts.values())
    expected = min(e for e, c in counts.items() if c == top)
    assert {p.spans["emotion"] for p in run.read_predictions().values()} == {expected}


def test_dry_run_sends_nothing(tmp_path):
    data = write_dataset(tmp_path / "data")
    plan = dry_run(config(data, tmp_path / "run"), log=lambda m: None)
    assert plan.items == 9 and plan.to_request == 9 and plan.prompt_tokens > 0
    assert plan.max_completion_tokens == 9 * 512
    assert not (tmp_path / "run").exists()


def test_cost_limit_stops_sending_and_resumes(tmp_path, monkeypatch, capsys):
    from kardiabench.cli import main
    from kardiabench.testing.fake_openai import FakeConfig, FakeOpenAIServer

    monkeypatch.setenv("OPENAI_API_KEY", "sk-local")
    data = write_dataset(tmp_path / "data")
    prices = tmp_path / "prices.json"
    # ~$1 per request
    prices.write_text(json.dumps({"priced-model": {"input": 10000, "output": 10000}}))
    out = tmp_path / "run"
    with FakeOpenAIServer(FakeConfig()) as srv:
        base = [
            "generate",
            "--model",
            "openai:priced-model",
            "--base-url",
            srv.url,
            "--data",
            str(data),
            "--output",
            str(out),
            "--concurrency",
            "1",
            "--no-cache",
            "--no-progress",
            "--prices",
            str(prices),
        ]
        assert main([*base, "--max-cost", "2.5"]) == 2
        assert "cost limit reached" in capsys.readouterr().err
        done = len(lines(out / "predictions.jsonl"))
        assert 1 <= done < 9 and srv.stats.requests == done
        assert main([*base, "--max-cost", "1000"]) == 0
        assert len(lines(out / "predictions.jsonl")) == 9 and srv.stats.requests == 9
        assert (
            main(
                [
                    "generate",
                    "--model",
                    "openai:unpriced",
                    "--base-url",
                    srv.url,
                    "--data",
                    str(data),
                    "--output",
                    str(tmp_path / "u"),
                    "--no-cache",
                    "--no-progress",
                    "--max-cost",
                    "1",
                ]
            )
            == 2
        )
        assert "needs a price" in capsys.readouterr().err


def test_dry_run_includes_judge_calls(tmp_path, monkeypatch):
    from kardiabench.models import ModelOptions, load_model

    monkeypatch.setenv("OPENAI_API_KEY", "sk-local")
    data = write_dataset(tmp_path / "data")
    judge = load_model("openai:gpt-5-mini", ModelOptions(base_url="http://127.0.0.1:9/v1"))
    plan = dry_run(
        config(data, tmp_path / "run"), log=lambda m: None, judges=[judge], judge_repeats=2
    )
    [jp] = plan.judges
    assert jp.calls == 18 and jp.prompt_tokens > plan.prompt_tokens
    assert jp.expected_cost_usd is not None and jp.expected_cost_usd > 0


def test_prediction_keeps_a_think_trace_in_raw_output_only():
    from kardiabench.generate_stage import to_prediction
    from kardiabench.models.base import Generation
    from kardiabench.spans import render_spans

    spans = {
        "understanding": "u",
        "reasoning": "r",
        "emotion": "sad",
        "response": "I hear you, truly.",
    }
    raw = "<think>weighing the words</think>" + render_spans(spans)
    pred = to_prediction("i", "m", Generation(raw), None, False)
    line = json.dumps(pred.to_dict())
    assert line.count("weighing the words") == 1 and line.count("I hear you, truly.") == 1
    assert pred.reasoning is None and pred.thinking == "weighing the words" and pred.spans == spans
    api = to_prediction("i", "m", Generation(raw, reasoning="from the API"), None, False)
    # a separate trace is the only thing stored beside the text
    assert api.reasoning == "from the API"
