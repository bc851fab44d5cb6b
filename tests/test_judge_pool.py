"""Several judges used well: the pooling rule (mean or median of the judges' item scores) and
escalation of the items the cheap judges disagree on to a stronger judge, over real HTTP."""

import hashlib
import json
from collections import Counter

import pytest
from helpers import write_dataset

from kardiabench.cli import main
from kardiabench.scoring.judge import (
    JudgeOutcome,
    Judgment,
    disagreeing_items,
    parse_escalate_when,
)
from kardiabench.scoring.rubric import DIMENSIONS
from kardiabench.testing.fake_openai import FakeConfig, FakeOpenAIServer, default_reply


def verdict(judge: str, item: str, score: int) -> Judgment:
    return Judgment(item, judge, 0, dict.fromkeys(DIMENSIONS, score), "scored", "v1")


def outcome(rows, **kw) -> JudgeOutcome:
    js = [verdict(j, i, s) for j, i, s in rows]
    return JudgeOutcome("v1", DIMENSIONS, list(dict.fromkeys(j for j, _, _ in rows)), 1, js, **kw)


def test_pool_mean_or_median():
    rows = [("a", "x", 1), ("b", "x", 4), ("c", "x", 5)]
    assert outcome(rows).item_scores["x"]["empathy"] == pytest.approx(10 / 3)
    assert outcome(rows, pool="median").item_scores["x"]["empathy"] == 4
    # two judges: the mean
    assert outcome(rows[:2], pool="median").item_scores["x"]["empathy"] == 2.5
    with pytest.raises(ValueError, match="pool"):
        outcome(rows, pool="max")


def test_disagreement_and_escalated_scores_replace_the_pool():
    from kardiabench.scoring.judge import Escalation

    rows = [("a", "x", 3), ("b", "x", 5), ("a", "y", 3), ("b", "y", 4), ("strong", "x", 1)]
    o = outcome(rows[:4])
    assert disagreeing_items(o, 2) == ["x"] and disagreeing_items(o, 1) == ["x", "y"]
    js = [verdict(j, i, s) for j, i, s in rows]
    esc = JudgeOutcome(
        "v1", DIMENSIONS, ["a", "b"], 1, js, escalation=Escalation("strong", 2.0, ("x",))
    )
    assert esc.item_scores["x"]["empathy"] == 1 and esc.item_scores["y"]["empathy"] == 3.5
    report = esc.to_dict()["escalation"]
    assert (report["n_escalated"], report["share"], report["item_ids"], report["when"]) == (
        1,
        0.5,
        ["x"],
        "disagree:2",
    )
    pairs = esc.to_dict()["agreement"]["empathy"]["pairs"]
    assert [(p["a"], p["b"]) for p in pairs] == [("a", "b")]  # the escalation judge is no rater


@pytest.mark.parametrize("bad", ["disagree", "disagree:0", "disagree:x", "agree:1", "disagree:-1"])
def test_escalate_when_rule(bad):
    assert parse_escalate_when("disagree:1.5") == 1.5
    with pytest.raises(ValueError, match="disagree:K"):
        parse_escalate_when(bad)


def split_vote(case: str) -> bool:
    return hashlib.sha256(case.encode()).digest()[0] % 3 == 0


def judges(asked: Counter):
    def reply(request):
        model = request["model"]
        if model not in ("cheap-a", "cheap-b", "strong"):
            return default_reply(request)
        case = request["messages"][-1]["content"]
        asked[model] += 1
        score = {"cheap-a": 3, "cheap-b": 5 if split_vote(case) else 3, "strong": 1}[model]
        return json.dumps(dict.fromkeys(DIMENSIONS, score))

    return reply


def test_escalation_asks_the_strong_judge_only_where_the_cheap_ones_disagree(
    tmp_path, monkeypatch, capsys
):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-local-test")
    data = write_dataset(tmp_path / "data")
    out = tmp_path / "run"
    asked: Counter = Counter()
    with FakeOpenAIServer(FakeConfig(reply_fn=judges(asked))) as srv:
        args = [
            "run",
            "--model",
            "openai:gen",
            "--base-url",
            srv.url,
            "--data",
            str(data),
            "--output",
            str(out),
            "--judge",
            "openai:cheap-a",
            "--judge",
            "openai:cheap-b",
            "--judge-base-url",
            srv.url,
            "--escalate-to",
            "openai:strong",
            "--escalate-when",
            "disagree:2",
            "--no-progress",
            "--no-cache",
            "--resamples",
            "50",
        ]
        assert main(args) == 0, capsys.readouterr().err
    results = json.loads((out / "results.json").read_text())
    items = [json.loads(x) for x in (out / "items.jsonl").read_text().splitlines()]
    n = len(items)
    esc = results["rubric"]["escalation"]
    escalated = set(esc["item_ids"])
    assert (
        0 < len(escalated) < n
        and esc["n_escalated"] == len(escalated)
        and esc["share"] == len(escalated) / n
    )
    # the strong judge sees only those
    assert asked == {"cheap-a": n, "cheap-b": n, "strong": len(escalated)}
    assert esc["usage"]["requests"] == len(escalated) and esc["judge"] == "openai:strong"
    for row in items:
        assert row["rubric"]["empathy"] == (1 if row["item_id"] in escalated else 3), row["item_id"]
    assert results["rubric"]["pool"] == "mean" and results["rubric"]["judges"] == [
        "openai:cheap-a",
        "openai:cheap-b",
    ]
    assert results["metrics"]["empathy"]["value"] == pytest.approx(
        (len(escalated) * 1 + (n - len(escalated)) * 3) / n
    )
    manifest = json.loads((out / "run.json").read_text())["judge"]
    assert manifest["escalation"] == {
        "judge": "openai:strong",
        "threshold": 2.0,
        "items": esc["item_ids"],
    }
    # run.json's totals include the escalated verdicts
    assert manifest["requests"] == 2 * n + len(escalated)
    # re-scoring from the saved verdicts keeps the rule: the strong judge replaces, it is not pooled
    assert main(["score", str(out), "--no-progress", "--resamples", "50"]) == 0
    again = json.loads((out / "results.json").read_text())
    assert (
        again["rubric"]["escalation"] == esc
        and again["metrics"]["empathy"] == results["metrics"]["empathy"]
    )


def test_escalate_to_needs_two_judges(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["score", "somewhere", "--judge", "openai:a", "--escalate-to", "openai:b"])
    assert (
        exc.value.code == 2 and "--escalate-to needs two or more --judge" in capsys.readouterr().err
    )
