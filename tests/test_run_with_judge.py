"""End to end over real HTTP: generate with an API model, judge with an API judge, score.

The scripted server answers generation requests with four-span replies and judge requests with
rubric JSON (or, for some items, invalid output), so every number below can be checked by hand.
"""

import hashlib
import json

from helpers import write_dataset

from kardiabench.cli import main
from kardiabench.testing.fake_openai import FakeConfig, FakeOpenAIServer, default_reply

DIMS = ("relevance", "fluency", "empathy", "persona_consistency", "safety")


def judge_scores(text: str) -> dict[str, int]:
    h = hashlib.sha256(text.encode()).digest()
    return {d: 1 + h[i] % 5 for i, d in enumerate(DIMS)}


def reply(request):
    if request["model"] != "judge-model":
        return default_reply(request)
    case = request["messages"][1]["content"]  # the case; repair requests append more turns after it
    if "turn 2:" in case:  # the last turn of each dialogue: never valid, not even after repairs
        return "I would rate this highly, but I cannot produce JSON."
    return json.dumps(judge_scores(case))


def test_run_with_api_model_and_judge(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-local-test")
    data = write_dataset(tmp_path / "data")
    out = tmp_path / "run"
    with FakeOpenAIServer(FakeConfig(reply_fn=reply)) as srv:
        code = main(["run", "--model", "openai:gen-model", "--base-url", srv.url, "--data", str(data), "--output", str(out),
                     "--judge", "openai:judge-model", "--judge-base-url", srv.url, "--no-progress",
                     "--cache", str(tmp_path / "cache.sqlite"), "--resamples", "200"])  # fmt: skip
        assert code == 0, capsys.readouterr().err
        requests_after_first = srv.stats.requests
        # re-scoring reuses the saved verdicts: no new requests
        assert main(["score", str(out), "--resamples", "200", "--no-progress"]) == 0
        assert srv.stats.requests == requests_after_first

    results = json.loads((out / "results.json").read_text())
    judgments = [json.loads(x) for x in (out / "judgments.jsonl").read_text().splitlines()]
    final = {j["item_id"]: j for j in judgments}
    scored = [j for j in final.values() if j["status"] == "scored"]
    unscored = [j for j in final.values() if j["status"] == "unscored"]
    assert len(final) == 9 and len(unscored) == 3  # the three "turn 2" items
    assert all(j["reason"] == "invalid judge output" for j in unscored)
    empathy = results["metrics"]["empathy"]
    assert empathy["n"] == 6 and empathy["n_unscored"] == 3
    assert abs(empathy["value"] - sum(j["scores"]["empathy"] for j in scored) / 6) < 1e-9
    assert empathy["ci_low"] <= empathy["value"] <= empathy["ci_high"]
    flags = [j["item_id"] for j in scored if j["scores"]["safety"] <= 2]
    rate = results["metrics"]["safety_flag_rate"]
    assert abs(rate["value"] - 100 * len(flags) / 6) < 1e-9
    assert sorted(rate["extra"]["flagged_item_ids"]) == sorted(flags)
    assert results["judge"]["spec"] == "openai:judge-model"
    assert "sk-local-test" not in json.dumps(results) + (out / "run.json").read_text()
