import json

import pytest
from helpers import write_dataset

from kardiabench.cli import main

METRIC_KEYS = {"value", "n", "n_unscored", "ci_low", "ci_high"}


def run_baseline(data, out, model="baseline:retrieval", *extra):
    return main(
        [
            "run",
            "--model",
            model,
            "--data",
            str(data),
            "--output",
            str(out),
            "--no-progress",
            "--no-cache",
            "--resamples",
            "200",
            *extra,
        ]
    )


def test_run_writes_every_metric_with_ci(tmp_path, capsys):
    data = write_dataset(tmp_path / "data")
    assert run_baseline(data, tmp_path / "run") == 0
    results = json.loads((tmp_path / "run" / "results.json").read_text())
    for name in ("emotion_accuracy", "emotion_macro_f1", "format_compliance"):
        assert set(results["metrics"][name]) >= METRIC_KEYS, name
        assert results["metrics"][name]["n"] == 9
    for name in (
        "relevance",
        "fluency",
        "empathy",
        "persona_consistency",
        "safety",
        "safety_flag_rate",
    ):
        assert results["metrics"][name]["value"] is None
        assert "judge" in results["metrics"][name]["reason"]
    assert results["history"] == "full" and results["emotion"]["confusion"]
    assert set(results["breakdowns"]) >= {"gold_emotion", "mbti"}
    rows = [json.loads(x) for x in (tmp_path / "run" / "items.jsonl").read_text().splitlines()]
    assert len(rows) == 9
    assert "| emotion_accuracy |" in capsys.readouterr().out
    assert (tmp_path / "run" / "summary.md").exists()


def test_rescoring_gives_the_same_numbers(tmp_path):
    data = write_dataset(tmp_path / "data")
    out = tmp_path / "run"
    run_baseline(data, out)
    first = json.loads((out / "results.json").read_text())["metrics"]
    assert main(["score", str(out), "--resamples", "200", "--no-progress"]) == 0
    assert json.loads((out / "results.json").read_text())["metrics"] == first


def test_score_external_predictions(tmp_path):
    data = write_dataset(tmp_path / "data")
    out = tmp_path / "run"
    run_baseline(data, out)
    rows = [json.loads(x) for x in (out / "predictions.jsonl").read_text().splitlines()]
    ext = tmp_path / "mine.jsonl"
    with ext.open("w") as fh:
        for r in rows:
            fh.write(json.dumps({"item_id": r["item_id"], "raw_output": r["raw_output"]}) + "\n")
    assert (
        main(
            [
                "score",
                "--predictions",
                str(ext),
                "--data",
                str(data),
                "--output",
                str(tmp_path / "ext"),
                "--resamples",
                "200",
            ]
        )
        == 0
    )
    a = json.loads((out / "results.json").read_text())["metrics"]["emotion_accuracy"]
    b = json.loads((tmp_path / "ext" / "results.json").read_text())["metrics"]["emotion_accuracy"]
    assert a["value"] == b["value"] and a["n"] == b["n"]


def test_external_predictions_bad_row_names_line_and_field(tmp_path, capsys):
    data = write_dataset(tmp_path / "data")
    ext = tmp_path / "bad.jsonl"
    ext.write_text('{"item_id": "x", "raw_output": "y"}\n{"raw_output": "z"}\n')
    assert main(["score", "--predictions", str(ext), "--data", str(data)]) == 2
    assert f"{ext}:2: item_id" in capsys.readouterr().err


def test_compare_two_runs_paired(tmp_path, capsys):
    data = write_dataset(tmp_path / "data")
    run_baseline(data, tmp_path / "a", "baseline:retrieval")
    run_baseline(data, tmp_path / "b", "baseline:majority")
    capsys.readouterr()
    assert (
        main(["compare", str(tmp_path / "a"), str(tmp_path / "b"), "--json", "--resamples", "200"])
        == 0
    )
    report = json.loads(capsys.readouterr().out)
    text = json.dumps(report)
    assert "emotion_accuracy" in text and "p_holm" in text


def test_compare_refuses_runs_on_different_data(tmp_path, capsys):
    run_baseline(write_dataset(tmp_path / "d1"), tmp_path / "a")
    run_baseline(write_dataset(tmp_path / "d2", test_users=("x", "y", "z")), tmp_path / "b")
    capsys.readouterr()
    assert main(["compare", str(tmp_path / "a"), str(tmp_path / "b")]) == 2
    assert "data.source differs" in capsys.readouterr().err


@pytest.mark.parametrize("task", ["kardiabench_emotion"])
def test_task_without_rubric_omits_rubric_metrics(tmp_path, task):
    data = write_dataset(tmp_path / "data")
    assert run_baseline(data, tmp_path / "run", "baseline:majority", "--task", task) == 0
    metrics = json.loads((tmp_path / "run" / "results.json").read_text())["metrics"]
    assert "empathy" not in metrics and "emotion_accuracy" in metrics


def test_items_that_fail_for_good_are_listed_counted_and_retried(tmp_path, monkeypatch, capsys):
    from kardiabench.testing.fake_openai import FakeConfig, FakeOpenAIServer, default_reply

    def reply(request):
        if "turn 1:" in request["messages"][-1]["content"]:
            return 400, {
                "error": {
                    "message": "content rejected",
                    "type": "invalid_request_error",
                    "code": "rejected",
                }
            }
        return default_reply(request)

    monkeypatch.setenv("OPENAI_API_KEY", "sk-local")
    data = write_dataset(tmp_path / "data")
    out = tmp_path / "run"
    with FakeOpenAIServer(FakeConfig(reply_fn=reply)) as srv:
        args = [
            "run",
            "--model",
            "openai:m",
            "--base-url",
            srv.url,
            "--data",
            str(data),
            "--output",
            str(out),
            "--no-cache",
            "--no-progress",
            "--resamples",
            "200",
        ]
        assert main(args) == 1
        err = capsys.readouterr().err
        assert "3 failed" in err and "-t1" in err
        manifest = json.loads((out / "run.json").read_text())
        assert len(manifest["generation_stats"]["failed_items"]) == 3
        fc = json.loads((out / "results.json").read_text())["metrics"]["format_compliance"]
        assert fc["n"] == 9 and fc["extra"]["n_failed"] == 3 and fc["value"] <= 100 * 6 / 9
        # some items failed, not all: computed, the failures counted as wrong, the other view beside it
        assert (
            fc["value"] == pytest.approx(fc["extra"]["value_excluding_failed"] * 6 / 9)
            and fc["ci_low"] is not None
        )
        assert "3 item(s) failed to generate and count as wrong" in (out / "summary.md").read_text()
        before = srv.stats.requests
        assert main(args) == 1  # the same command retries only the failed items
        assert srv.stats.requests - before == 3
