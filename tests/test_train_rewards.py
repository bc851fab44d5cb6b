"""The GRPO rubric reward: the benchmark's judge, prompt and parser over real HTTP, cached, and equal
item by item to what `kardiabench score --judge` records."""

import asyncio
import hashlib
import json

from helpers import write_dataset

from kardiabench.cli import main
from kardiabench.data import expand, load_dialogues
from kardiabench.rewards import emotion_reward, format_reward, rubric_reward
from kardiabench.spans import render_spans
from kardiabench.testing.fake_openai import FakeConfig, FakeOpenAIServer, default_reply

DIMS = ("relevance", "fluency", "empathy", "persona_consistency", "safety")


def judge_reply(request):
    if request["model"] != "judge-model":
        return default_reply(request)
    case = request["messages"][1]["content"]
    if "turn 2:" in case:  # never valid, not even after the repair rounds
        return "Fine answer, but no JSON from me."
    h = hashlib.sha256(case.encode()).digest()
    return json.dumps({d: 1 + h[i] % 5 for i, d in enumerate(DIMS)})


def columns(items):
    rows = [it.to_dict() for it in items]
    return {k: [r[k] for r in rows] for k in rows[0]}


def outputs(items):
    """One output per item: well-formed ones, and every fourth without a response span."""
    out = []
    for n, it in enumerate(items):
        spans = {
            "understanding": "u",
            "reasoning": "r",
            "emotion": it.gold_emotion,
            "response": f"I hear you ({n}).",
        }
        if n % 4 == 3:
            del spans["response"]
        out.append(render_spans(spans))
    return out


def test_rubric_reward_equals_benchmark_scores(tmp_path, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-local-test")
    data = write_dataset(tmp_path / "data")
    items = list(expand(load_dialogues(str(data), "test").dialogues))
    texts = outputs(items)
    preds = tmp_path / "preds.jsonl"
    preds.write_text(
        "".join(
            json.dumps({"item_id": it.item_id, "raw_output": t}) + "\n"
            for it, t in zip(items, texts, strict=True)
        )
    )
    with FakeOpenAIServer(FakeConfig(reply_fn=judge_reply)) as srv:
        code = main(
            [
                "score",
                "--predictions",
                str(preds),
                "--data",
                str(data),
                "--split",
                "test",
                "--output",
                str(tmp_path / "scored"),
                "--judge",
                "openai:judge-model",
                "--judge-base-url",
                srv.url,
                "--cache",
                str(tmp_path / "cache.sqlite"),
                "--no-progress",
                "--resamples",
                "50",
            ]
        )
        assert code == 0
        sent = srv.stats.requests
        reward = rubric_reward(
            "openai:judge-model", base_url=srv.url, cache=tmp_path / "cache.sqlite"
        )
        got = asyncio.run(
            reward([[{"role": "assistant", "content": t}] for t in texts], **columns(items))
        )
        # byte-identical requests (repairs included): every one is in the benchmark's cache already
        assert srv.stats.requests == sent
        again = asyncio.run(reward(texts, **columns(items)))

    rows = {
        r["item_id"]: r
        for r in map(json.loads, (tmp_path / "scored" / "items.jsonl").read_text().splitlines())
    }
    for it, value in zip(items, got, strict=True):
        scores = rows[it.item_id]["rubric"]
        expected = (
            None
            if any(s is None for s in scores.values())
            else sum((s - 1) / 4 for s in scores.values()) / 5
        )
        assert value == expected, it.item_id
    assert again == got
    n_invalid = sum("turn 2:" in it.user_message for it in items)
    n_no_response = sum(1 for n in range(len(items)) if n % 4 == 3)
    assert got.count(None) == reward.stats["unscored"] // 2 > 0  # both calls counted
    assert reward.unscored_by_reason()["no response span"] == 2 * n_no_response
    assert 0 < reward.unscored_by_reason()["invalid judge output"] <= 2 * n_invalid
    assert all(v is None or 0.0 <= v <= 1.0 for v in got)


def test_invalid_judge_reply_gives_none_never_zero(tmp_path, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-local-test")
    items = list(
        expand(
            load_dialogues(str(write_dataset(tmp_path / "d", test_users=("z",))), "test").dialogues
        )
    )
    with FakeOpenAIServer(FakeConfig(reply_fn=lambda r: "no verdict here")) as srv:
        reward = rubric_reward("openai:judge-model", base_url=srv.url, cache=False, max_repairs=1)
        metrics = []
        got = asyncio.run(
            reward(
                outputs(items)[:3],
                log_metric=lambda k, v: metrics.append((k, v)),
                **columns(items[:3]),
            )
        )
        assert srv.stats.requests == 3 * 2  # first try + one repair each
    assert got == [None, None, None]
    assert reward.stats["unscored"] == 3 and reward.unscored_by_reason() == {
        "invalid judge output": 3
    }
    assert metrics == [("rubric/unscored", 3.0)]


def test_pure_rewards_are_reexported():
    text = render_spans(
        {"understanding": "u", "reasoning": "r", "emotion": "Sad.", "response": "ok"}
    )
    assert format_reward([text, "plain"]) == [1.0, 0.0]
    assert emotion_reward([text, text], gold_emotion=["sad", "hopeful"]) == [1.0, 0.0]
