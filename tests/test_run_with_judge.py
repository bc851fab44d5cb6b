"""End to end over real HTTP: generate with an API model, judge with an API judge, score.

The scripted server answers generation requests with four-span replies and judge requests with
rubric JSON (or, for some items, invalid output), so every number below can be checked by hand.
"""

import hashlib
import json

import pytest
from helpers import write_dataset

from kardiabench.cli import main
from kardiabench.testing.fake_openai import FakeConfig, FakeOpenAIServer, default_reply, free_port

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
        code = main(
            [
                "run",
                "--model",
                "openai:gen-model",
                "--base-url",
                srv.url,
                "--data",
                str(data),
                "--output",
                str(out),
                "--judge",
                "openai:judge-model",
                "--judge-base-url",
                srv.url,
                "--no-progress",
                "--cache",
                str(tmp_path / "cache.sqlite"),
                "--resamples",
                "200",
            ]
        )
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


# ----------------------------------------------------------------------------- endpoints probed first


@pytest.mark.parametrize(
    ("judge_kind", "says"),
    [
        ("dead port", "openai:judge-model: cannot connect to http://127.0.0.1:"),
        ("refused key", "authentication failed for http://127.0.0.1:"),
    ],
)
def test_a_dead_judge_endpoint_stops_the_run_before_generation(
    tmp_path, monkeypatch, capsys, judge_kind, says
):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-local-test")
    data = write_dataset(tmp_path / "data")
    with FakeOpenAIServer() as gen, FakeOpenAIServer(FakeConfig(api_key="sk-another-key")) as judge:
        url = f"http://127.0.0.1:{free_port()}/v1" if judge_kind == "dead port" else judge.url
        code = main(
            [
                "run",
                "--model",
                "openai:gen-model",
                "--base-url",
                gen.url,
                "--data",
                str(data),
                "--output",
                str(tmp_path / "run"),
                "--judge",
                "openai:judge-model",
                "--judge-base-url",
                url,
                "--no-progress",
                "--no-cache",
            ]
        )
    err = capsys.readouterr().err
    assert code == 2, err
    assert err.startswith(f"error: {says}") and err.count("\n") == 1  # one line, no traceback
    assert url in err and (
        "--judge-base-url" in err if judge_kind == "dead port" else "check OPENAI_API_KEY" in err
    )
    assert gen.stats.requests == 0 and judge.stats.requests == 0  # not one chat request, to either
    assert not (tmp_path / "run" / "predictions.jsonl").exists()


def test_a_dead_generator_replica_stops_the_command_before_anything_is_sent(
    tmp_path, monkeypatch, capsys
):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-local-test")
    data = write_dataset(tmp_path / "data")
    dead = [f"http://127.0.0.1:{free_port()}/v1" for _ in range(2)]
    with FakeOpenAIServer() as alive:
        flags = [x for u in (dead[0], alive.url, dead[1]) for x in ("--base-url", u)]
        code = main(
            [
                "generate",
                "--model",
                "openai:gen-model",
                *flags,
                "--data",
                str(data),
                "--output",
                str(tmp_path / "run"),
                "--no-progress",
                "--no-cache",
            ]
        )
        assert (alive.stats.listings, alive.stats.requests) == (1, 0)  # probed, never asked
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1
    assert err.startswith(
        "error: openai:gen-model: 2 of 3 replicas do not answer: cannot connect to "
    )
    assert (
        dead[0] in err and dead[1] in err and alive.url not in err and "(check --base-url)" in err
    )
    assert not (tmp_path / "run" / "run.json").exists()


def test_an_endpoint_without_a_models_route_is_not_taken_for_dead(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-local-test")
    data = write_dataset(tmp_path / "data")
    with FakeOpenAIServer(FakeConfig(no_models_route=True, reply_fn=reply)) as srv:
        code = main(
            [
                "run",
                "--model",
                "openai:gen-model",
                "--base-url",
                srv.url,
                "--data",
                str(data),
                "--output",
                str(tmp_path / "run"),
                "--judge",
                "openai:judge-model",
                "--judge-base-url",
                srv.url,
                "--no-progress",
                "--no-cache",
            ]
        )
        assert code == 0, capsys.readouterr().err
        # 404 on /models: alive; 9 items, each generated and judged
        assert srv.stats.listings == 0 and srv.stats.requests >= 18


def test_score_probes_its_judge_before_sending_anything(tmp_path, capsys):
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
    capsys.readouterr()
    dead = f"http://127.0.0.1:{free_port()}/v1"
    assert (
        main(
            [
                "score",
                str(out),
                "--judge",
                "openai:judge-model",
                "--judge-base-url",
                dead,
                "--no-progress",
                "--no-cache",
            ]
        )
        == 2
    )
    err = capsys.readouterr().err
    assert (
        err.startswith(f"error: openai:judge-model: cannot connect to {dead} (")
        and err.count("\n") == 1
    )
    assert not (out / "judgments.jsonl").exists() and not (out / "results.json").exists()


def test_dry_run_probes_nothing(tmp_path, capsys):
    data = write_dataset(tmp_path / "data")
    dead = f"http://127.0.0.1:{free_port()}/v1"  # nothing listens: a probe would fail the command
    assert (
        main(
            [
                "run",
                "--dry-run",
                "--model",
                "openai:gen-model",
                "--base-url",
                dead,
                "--data",
                str(data),
                "--output",
                str(tmp_path / "run"),
                "--judge",
                "openai:judge-model",
                "--judge-base-url",
                dead,
            ]
        )
        == 0
    )
    assert "error" not in capsys.readouterr().err
