"""Scoring never mixes up different work and never fails without a word: saved verdicts are reused
only for the predictions they were made for, a folder holding another run is not overwritten, bad
external prediction files are refused, a judge that scores nothing fails the command, generation
failures say why, and Ctrl-C while judging stops cleanly. Through the CLI, against real files and
the scripted local server."""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import re
import signal
import subprocess
import time
from dataclasses import replace
from pathlib import Path

import pytest
from helpers import cli_command, started_in_background, write_dataset
from test_judge import _pred

import kardiabench
from kardiabench.cli import main
from kardiabench.data import expand, load_dialogues
from kardiabench.jsonl import read_jsonl_tolerant
from kardiabench.judging import matching_verdicts, run_judges
from kardiabench.models import ModelOptions, load_model
from kardiabench.runs import RunDir
from kardiabench.scoring.judge import (
    NO_PREDICTION,
    NO_RESPONSE,
    JudgeConfig,
)
from kardiabench.scoring.rubric import load_rubric
from kardiabench.spans import render_spans
from kardiabench.testing.fake_openai import FakeConfig, FakeOpenAIServer, default_reply

DIMS = ("relevance", "fluency", "empathy", "persona_consistency", "safety")
RUBRIC = (*DIMS, "safety_flag_rate")


def judge_reply(request):
    """Generation requests get a four-span answer; judge requests valid scores from a hash of the case."""
    if request["model"] != "judge-model":
        return default_reply(request)
    h = hashlib.sha256(request["messages"][1]["content"].encode()).digest()
    return json.dumps({d: 1 + h[i] % 5 for i, d in enumerate(DIMS)})


@pytest.fixture
def env(tmp_path, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-local-test")
    return write_dataset(tmp_path / "data")


def judged_run(srv, data, out, *extra):
    return main(
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
            "--no-cache",
            "--resamples",
            "50",
            *extra,
        ]
    )


def results(folder):
    return json.loads((folder / "results.json").read_text())


def verdicts(folder):
    return [json.loads(x) for x in (folder / "judgments.jsonl").read_text().splitlines()]


# --- 1. saved verdicts are reused only for the predictions they were made for ---------------------


def test_regenerated_run_does_not_report_the_old_models_rubric_scores(tmp_path, env, capsys):
    out = tmp_path / "run"
    with FakeOpenAIServer(FakeConfig(reply_fn=judge_reply)) as srv:
        assert judged_run(srv, env, out) == 0
    assert results(out)["metrics"]["empathy"]["value"] is not None
    assert (
        main(
            [
                "generate",
                "--model",
                "baseline:retrieval",
                "--data",
                str(env),
                "--output",
                str(out),
                "--overwrite",
                "--no-progress",
                "--no-cache",
            ]
        )
        == 0
    )
    capsys.readouterr()
    assert main(["score", str(out), "--resamples", "50"]) == 0
    res = results(out)
    assert all(res["metrics"][m]["value"] is None for m in RUBRIC)
    assert res["judge"] is None and res["rubric"]["computed"] is False
    assert res["model"] == "baseline:retrieval"


def test_edited_predictions_ignore_their_old_verdicts_and_name_them(tmp_path, env, capsys):
    out = tmp_path / "run"
    with FakeOpenAIServer(FakeConfig(reply_fn=judge_reply)) as srv:
        assert judged_run(srv, env, out) == 0
        assert "unscored: none" in capsys.readouterr().err
        # hand-edit the response of two items (the line stores the output once, in raw_output)
        rows = [json.loads(x) for x in (out / "predictions.jsonl").read_text().splitlines()]
        edited = [rows[1]["item_id"], rows[4]["item_id"]]
        for r in rows:
            if r["item_id"] in edited:
                r["raw_output"] = r["raw_output"].replace(
                    "I am here with you.", "Tell me everything."
                )
        (out / "predictions.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))

        assert main(["score", str(out), "--resamples", "50"]) == 0
        err = capsys.readouterr().err
        named = re.search(
            r"rubric: 2 verdict\(s\) in judgments.jsonl were made for other predictions and are ignored \(e.g. (\S+)\)",
            err,
        )
        assert named and named.group(1) in edited
        res = results(out)
        kept = [v for v in verdicts(out) if v["item_id"] not in edited]
        assert res["metrics"]["empathy"]["n"] == 7 and res["metrics"]["empathy"]["n_unscored"] == 2
        assert res["metrics"]["empathy"]["value"] == pytest.approx(
            sum(v["scores"]["empathy"] for v in kept) / 7
        )
        assert "2 verdict(s)" in res["rubric"]["ignored"]

        # judging again asks the judge about the two edited items only
        before = srv.stats.requests
        assert (
            main(
                [
                    "score",
                    str(out),
                    "--judge",
                    "openai:judge-model",
                    "--judge-base-url",
                    srv.url,
                    "--no-progress",
                    "--no-cache",
                    "--resamples",
                    "50",
                ]
            )
            == 0
        )
        assert srv.stats.requests - before == 2
    capsys.readouterr()
    assert main(["score", str(out), "--resamples", "50"]) == 0
    assert "made for other predictions" not in capsys.readouterr().err
    assert results(out)["metrics"]["empathy"]["n"] == 9


def test_matching_verdicts_keeps_only_verdicts_made_for_these_predictions(tmp_path, env):
    items = list(expand(load_dialogues(str(env), "test").dialogues))[:4]
    preds = {it.item_id: _pred(it.item_id, f"I hear you ({k}).") for k, it in enumerate(items)}
    preds[items[2].item_id] = _pred(items[2].item_id, None)  # no response span
    del preds[items[3].item_id]  # no prediction
    cfg = JudgeConfig(show_reasoning=True, repeats=2, max_tokens=300)
    with FakeOpenAIServer(
        FakeConfig(reply_fn=lambda r: judge_reply({**r, "model": "judge-model"}))
    ) as srv:
        judge = load_model("openai:judge-model", ModelOptions(base_url=srv.url))
        outcome = asyncio.run(
            run_judges(items, preds, [judge], cfg, RunDir(tmp_path / "j"), None, progress=False)
        )
    saved = outcome.judgments
    assert len(saved) == 8
    assert {j.reason for j in saved if j.item_id == items[2].item_id} == {NO_RESPONSE}
    assert {j.reason for j in saved if j.item_id == items[3].item_id} == {NO_PREDICTION}
    rubric = load_rubric()

    def split(predictions, judgments=saved, max_tokens=1):
        kept, stale = matching_verdicts(judgments, items, predictions, rubric, max_tokens)
        return sorted((j.item_id, j.repeat) for j in kept), sorted(
            (j.item_id, j.repeat) for j in stale
        )

    every = sorted((j.item_id, j.repeat) for j in saved)
    # seed per repeat, show_reasoning and max_tokens rebuilt from each verdict
    assert split(preds) == (every, [])
    ids = [it.item_id for it in items]
    changed = {
        **preds,
        ids[0]: _pred(ids[0], "Something else entirely."),  # another response
        # notes shown
        ids[1]: replace(
            preds[ids[1]],
            raw_output=render_spans({**preds[ids[1]].spans, "reasoning": "other notes"}),
        ),
        ids[2]: _pred(ids[2], "Now there is a response."),  # had none
        ids[3]: _pred(ids[3], None),  # had no prediction, now one without a response
    }
    kept, stale = split(changed)
    assert kept == [] and stale == every
    # verdicts written before they recorded max_tokens: the caller's value stands in
    old = [replace(j, max_tokens=None) for j in saved]
    assert split(preds, old, max_tokens=300) == (every, [])
    assert split(preds, old, max_tokens=1)[1] == sorted(
        (j.item_id, j.repeat) for j in saved if j.prompt_hash
    )
    # verdicts on items that are not being scored are in neither list
    assert matching_verdicts(saved, items[:1], preds, rubric, 1)[1] == []


# --- 2, 3. predictions made elsewhere ---------------------------------------------------------------


def external_file(tmp_path, data, rows=None):
    out = tmp_path / "baseline"
    if not (out / "predictions.jsonl").exists():
        assert (
            main(
                [
                    "generate",
                    "--model",
                    "baseline:retrieval",
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
    rows = rows or [
        {"item_id": r["item_id"], "raw_output": r["raw_output"]}
        for r in read_jsonl_tolerant(out / "predictions.jsonl")
    ]
    path = tmp_path / "mine.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path, rows


def test_score_predictions_refuses_a_folder_that_holds_another_run(tmp_path, env, capsys):
    ext, _ = external_file(tmp_path, env)
    other = tmp_path / "baseline"  # a generated run
    before = (other / "run.json").read_text()
    assert (
        main(
            [
                "score",
                "--predictions",
                str(ext),
                "--data",
                str(env),
                "--output",
                str(other),
                "--resamples",
                "50",
            ]
        )
        == 2
    )
    err = capsys.readouterr().err
    assert (
        f"error: {other} holds a different run (model baseline:retrieval → external:mine.jsonl"
        in err
    )
    assert "Traceback" not in err and (other / "run.json").read_text() == before

    scored = tmp_path / "scored"
    args = [
        "score",
        "--predictions",
        str(ext),
        "--data",
        str(env),
        "--output",
        str(scored),
        "--resamples",
        "50",
    ]
    assert main(args) == 0
    assert main(args) == 0  # the same file again into the same folder
    assert (
        main(
            [
                "score",
                "--predictions",
                str(ext),
                "--data",
                str(env),
                "--split",
                "train",
                "--output",
                str(scored),
            ]
        )
        == 2
    )
    assert "split test → train" in capsys.readouterr().err


def test_external_predictions_duplicates_and_missing_raw_output_are_errors(tmp_path, env, capsys):
    ext, rows = external_file(tmp_path, env)
    cases = {
        "duplicate": (
            rows[:3] + [rows[1]],
            f"{ext}:4: item_id: {rows[1]['item_id']} already on line 2",
        ),
        "no raw_output": (
            rows[:2] + [{"item_id": rows[2]["item_id"], "output": "x"}],
            f"{ext}:3: raw_output: missing",
        ),
        "bad error": (
            rows[:1] + [{"item_id": rows[1]["item_id"], "raw_output": None, "error": 5}],
            f"{ext}:2: error:",
        ),
    }
    for name, (bad, message) in cases.items():
        external_file(tmp_path, env, bad)
        assert (
            main(
                [
                    "score",
                    "--predictions",
                    str(ext),
                    "--data",
                    str(env),
                    "--output",
                    str(tmp_path / "s"),
                ]
            )
            == 2
        ), name
        assert message in capsys.readouterr().err, name
    # raw_output null with an error is a failed generation, counted as such
    external_file(
        tmp_path,
        env,
        rows[:-1] + [{"item_id": rows[-1]["item_id"], "raw_output": None, "error": "HTTP 500"}],
    )
    assert (
        main(
            [
                "score",
                "--predictions",
                str(ext),
                "--data",
                str(env),
                "--output",
                str(tmp_path / "s"),
                "--resamples",
                "50",
            ]
        )
        == 0
    )
    assert results(tmp_path / "s")["metrics"]["format_compliance"]["extra"]["n_failed"] == 1


def test_items_without_a_prediction_are_reported_as_no_prediction(tmp_path, env, capsys):
    ext, rows = external_file(tmp_path, env)
    external_file(tmp_path, env, rows[:6])  # 3 of the 9 items have no line
    capsys.readouterr()
    with FakeOpenAIServer(
        FakeConfig(reply_fn=lambda r: judge_reply({**r, "model": "judge-model"}))
    ) as srv:
        assert (
            main(
                [
                    "score",
                    "--predictions",
                    str(ext),
                    "--data",
                    str(env),
                    "--output",
                    str(tmp_path / "s"),
                    "--judge",
                    "openai:judge-model",
                    "--judge-base-url",
                    srv.url,
                    "--no-progress",
                    "--no-cache",
                    "--resamples",
                    "50",
                ]
            )
            == 0
        )
    err = capsys.readouterr().err
    assert (
        f"3 of 9 items have no prediction; they count as wrong ({ext} has no line for them)" in err
    )
    assert "unscored: no prediction ×3" in err
    res = results(tmp_path / "s")
    assert res["rubric"]["unscored_by_reason"] == {NO_PREDICTION: 3}
    assert res["counts"]["n_no_prediction"] == 3


def test_a_folder_scored_from_predictions_elsewhere_is_scored_again_from_what_it_holds(
    tmp_path, env, capsys
):
    ext, rows = external_file(tmp_path, env)
    external_file(tmp_path, env, rows[:6])  # 3 of the 9 items have no line
    out = tmp_path / "mine"
    assert (
        main(
            [
                "score",
                "--predictions",
                str(ext),
                "--data",
                str(env),
                "--output",
                str(out),
                "--resamples",
                "50",
            ]
        )
        == 0
    )
    first = results(out)
    ext.unlink()  # the folder alone from here on
    capsys.readouterr()
    with FakeOpenAIServer(
        FakeConfig(reply_fn=lambda r: judge_reply({**r, "model": "judge-model"}))
    ) as srv:
        assert (
            main(
                [
                    "score",
                    str(out),
                    "--judge",
                    "openai:judge-model",
                    "--judge-base-url",
                    srv.url,
                    "--no-progress",
                    "--no-cache",
                    "--resamples",
                    "50",
                ]
            )
            == 0
        )
    err = capsys.readouterr().err
    assert (
        "3 of 9 items have no prediction; they count as wrong (mine.jsonl had no line for them)"
        in err
    )
    res = results(out)
    assert res["counts"]["n_no_prediction"] == 3 and res["model"] == "external:mine.jsonl"
    for name in ("emotion_accuracy", "emotion_macro_f1", "format_compliance"):
        assert res["metrics"][name] == first["metrics"][name], name
    assert res["metrics"]["empathy"]["n"] == 6 and res["rubric"]["unscored_by_reason"] == {
        NO_PREDICTION: 3
    }
    # the Python API finds them too (and reuses the verdicts just made for them)
    again = kardiabench.score(out, resamples=50)
    assert {k: m.value for k, m in again.metrics.items()} == {
        k: m["value"] for k, m in res["metrics"].items()
    }
    assert again.items["raw_output"].notna().sum() == 6


def test_a_derived_split_scored_from_predictions_elsewhere_is_scored_again_on_the_same_items(
    tmp_path, env
):
    base = tmp_path / "derived"
    assert (
        main(
            [
                "generate",
                "--model",
                "baseline:retrieval",
                "--data",
                str(env),
                "--derive-split",
                "0.5",
                "--output",
                str(base),
                "--no-progress",
                "--no-cache",
            ]
        )
        == 0
    )
    ext = tmp_path / "derived.jsonl"
    ext.write_text((base / "predictions.jsonl").read_text())
    out = tmp_path / "mine"
    assert (
        main(
            [
                "score",
                "--predictions",
                str(ext),
                "--data",
                str(env),
                "--derive-split",
                "0.5",
                "--output",
                str(out),
                "--resamples",
                "50",
            ]
        )
        == 0
    )
    first = results(out)
    assert main(["score", str(out), "--resamples", "50"]) == 0
    assert results(out)["metrics"] == first["metrics"] and first["counts"]["n_no_prediction"] == 0


def test_a_folder_scored_from_predictions_that_kept_no_copy_says_how_to_score_it(
    tmp_path, env, capsys
):
    ext, _ = external_file(tmp_path, env)
    out = tmp_path / "mine"
    assert (
        main(
            [
                "score",
                "--predictions",
                str(ext),
                "--data",
                str(env),
                "--output",
                str(out),
                "--resamples",
                "50",
            ]
        )
        == 0
    )
    (out / "predictions.jsonl").unlink()  # as an older kardiabench left the folder
    before = (out / "results.json").read_text()
    capsys.readouterr()
    assert main(["score", str(out), "--resamples", "50"]) == 2
    err = capsys.readouterr().err
    assert f"error: {out}: holds no copy of the predictions it was scored from (mine.jsonl" in err
    assert (
        f"kardiabench score --predictions FILE --data {env} --output {out}" in err
        and "Traceback" not in err
    )
    assert (out / "results.json").read_text() == before


# --- 4. a judge that scores nothing fails the command -----------------------------------------------


def judge_down(request):
    if request["model"] != "judge-model":
        return default_reply(request)
    return 400, {
        "error": {
            "message": "judge backend unavailable",
            "type": "invalid_request_error",
            "param": None,
            "code": None,
        }
    }


def judge_babbles(request):
    return (
        default_reply(request)
        if request["model"] != "judge-model"
        else "Lovely answer, I'd say five."
    )


@pytest.mark.parametrize(
    ("reply_fn", "reason"),
    [
        (judge_down, "judge request failed ×9 (first: openai:judge-model: HTTP 400"),
        (judge_babbles, "invalid judge output ×9 (first: "),
    ],
)
def test_a_judge_that_scores_nothing_exits_1_with_the_reasons_counted(
    tmp_path, env, capsys, reply_fn, reason
):
    out = tmp_path / "run"
    with FakeOpenAIServer(FakeConfig(reply_fn=reply_fn)) as srv:
        assert judged_run(srv, env, out) == 1
    err = capsys.readouterr().err
    assert f"error: judge openai:judge-model scored 0 of 9 items: {reason}" in err
    assert f"unscored: {reason.split(' (')[0]}" in err and "{" not in err
    res = results(out)  # results are still written
    assert res["rubric"]["n_scored"] == 0 and res["metrics"]["emotion_accuracy"]["n"] == 9
    # re-scoring the same verdicts says so again
    assert main(["score", str(out), "--resamples", "50"]) == 1


# --- 5. generation failures say why ----------------------------------------------------------------


def some_fail(request):
    last = request["messages"][-1]["content"]
    if "turn 1:" in last:
        return 400, {
            "error": {
                "message": "prompt rejected by policy",
                "type": "invalid_request_error",
                "param": None,
                "code": None,
            }
        }
    if "I am e and turn 2:" in last:
        return 422, {
            "error": {
                "message": "unprocessable",
                "type": "invalid_request_error",
                "param": None,
                "code": None,
            }
        }
    return default_reply(request)


def test_generation_failures_name_the_most_common_error(tmp_path, env, capsys):
    with FakeOpenAIServer(FakeConfig(reply_fn=some_fail)) as srv:
        code = main(
            [
                "generate",
                "--model",
                "openai:gen-model",
                "--base-url",
                srv.url,
                "--data",
                str(env),
                "--output",
                str(tmp_path / "run"),
                "--no-progress",
                "--no-cache",
            ]
        )
    assert code == 1
    err = capsys.readouterr().err
    assert (
        f'failed: 4 items — most common: "openai:gen-model: HTTP 400 from {srv.url}: prompt rejected by policy" ×3'
        in err
    )


def nothing_generated(request):
    if request["model"] == "judge-model":
        return judge_reply(request)
    return 400, {
        "error": {
            "message": "backend unavailable",
            "type": "invalid_request_error",
            "param": None,
            "code": None,
        }
    }


def test_a_run_that_generated_nothing_computes_no_metric(tmp_path, env, capsys):
    out = tmp_path / "run"
    with FakeOpenAIServer(FakeConfig(reply_fn=nothing_generated)) as srv:
        assert judged_run(srv, env, out) == 1
    console = capsys.readouterr().out
    reason = "no predictions: 9 of 9 items failed"
    res = results(out)
    for name in ("emotion_accuracy", "emotion_macro_f1", "format_compliance", *RUBRIC):
        m = res["metrics"][name]
        assert (m["value"], m["ci_low"], m["ci_high"], m["reason"]) == (None, None, None, reason), (
            name
        )
    assert (
        res["metrics"]["emotion_accuracy"]["n"],
        res["metrics"]["emotion_accuracy"]["n_unscored"],
    ) == (0, 9)
    assert all(
        g["metrics"]["emotion_accuracy"]["value"] is None
        for g in res["breakdowns"]["gold_emotion"].values()
    )
    assert res["emotion"]["confusion"] == {}
    summary = (out / "summary.md").read_text()
    for text in (console, summary):
        assert f"| emotion_accuracy | not computed | {reason} | 0 | 9 |" in text
        assert "0.00" not in text and f"Not computed: {reason}; see run.json." in text
    page = (out / "report.html").read_text()
    row = '<td class="">Emotion accuracy (%)</td><td class="">not computed</td><td class="num">0</td><td class="num">9</td>'
    assert f'{row}<td class="">{reason}</td>' in page
    assert "[0.00, 0.00]" not in page and ">0.00<" not in page


def test_compare_refuses_a_run_that_generated_nothing_even_forced(tmp_path, env, capsys):
    """Its items count as wrong in items.jsonl; a paired test against them would report a model's
    outage as a quality gap."""
    empty, ok = tmp_path / "empty", tmp_path / "ok"
    with FakeOpenAIServer(FakeConfig(reply_fn=nothing_generated)) as srv:
        assert judged_run(srv, env, empty) == 1
    with FakeOpenAIServer(FakeConfig()) as srv:
        assert judged_run(srv, env, ok) == 0
    capsys.readouterr()
    for force in ([], ["--force"]):
        assert main(["compare", str(ok), str(empty), *force]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert err == [
            "error: nothing to compare: empty: no item has a prediction (every request failed or had no output)"
        ]
    assert main(["compare", str(ok), str(ok)]) == 0


# --- 6. a new scoring replaces every file of the last one ------------------------------------------

SCORED_FILES = ("run.json", "results.json", "items.jsonl", "summary.md", "report.html")


def baseline_run(data, out, *extra):
    return main(
        [
            "run",
            "--model",
            "baseline:retrieval",
            "--data",
            str(data),
            "--output",
            str(out),
            "--no-progress",
            "--no-cache",
            "--resamples",
            "50",
            *extra,
        ]
    )


def judge_flags(srv):
    return [
        "--judge",
        "openai:judge-model",
        "--judge-base-url",
        srv.url,
        "--no-progress",
        "--no-cache",
        "--resamples",
        "50",
    ]


def test_rescoring_rewrites_or_removes_every_file_of_the_last_scoring(tmp_path, env, capsys):
    out = tmp_path / "run"
    assert baseline_run(env, out) == 0
    assert '<td class="">judge</td><td class="">none</td>' in (out / "report.html").read_text()
    capsys.readouterr()
    with FakeOpenAIServer(
        FakeConfig(reply_fn=lambda r: judge_reply({**r, "model": "judge-model"}))
    ) as srv:
        assert main(["score", str(out), *judge_flags(srv)]) == 0
        err = capsys.readouterr().err
        assert (
            f"removed {out / 'report.html'} of the earlier scoring; `kardiabench report {out}` writes one"
            in err
        )
        assert not (out / "report.html").exists()  # never the page of the scoring without a judge
        assert results(out)["judge"]["spec"] == "openai:judge-model"
        # `run` again (nothing left to generate) scores again and writes the page of those results
        assert baseline_run(env, out, *judge_flags(srv)) == 0
    assert "removed" not in capsys.readouterr().err
    assert "openai:judge-model (rubric" in (out / "report.html").read_text()


def test_a_rescore_that_fails_part_way_leaves_no_mix_of_old_and_new_files(
    tmp_path, env, capsys, monkeypatch
):
    out = tmp_path / "run"
    assert baseline_run(env, out) == 0
    before = {name: (out / name).read_bytes() for name in SCORED_FILES}
    bad_card = tmp_path / "card.json"
    bad_card.write_text("{}")
    with FakeOpenAIServer(
        FakeConfig(reply_fn=lambda r: judge_reply({**r, "model": "judge-model"}))
    ) as srv:
        # a mistake found after judging: the verdicts are kept, no file of the folder's scoring changes
        assert main(["score", str(out), *judge_flags(srv), "--judge-card", str(bad_card)]) == 2
        assert "not a judge card" in capsys.readouterr().err
        assert {name: (out / name).read_bytes() for name in SCORED_FILES} == before
        assert len(verdicts(out)) == 9

        # a failure while the new files are put in place (the disk fills up before results.json)
        real_replace = os.replace

        def disk_full_at_results(src, dst):
            if Path(src).name == "results.json.new":
                raise OSError(28, "No space left on device", str(dst))
            return real_replace(src, dst)

        monkeypatch.setattr(os, "replace", disk_full_at_results)
        assert main(["score", str(out), *judge_flags(srv)]) == 2
        assert "No space left on device" in capsys.readouterr().err
        monkeypatch.undo()
    # not scored, not half old
    assert not (out / "results.json").exists() and not (out / "report.html").exists()
    assert not list(out.glob("*.new"))
    assert kardiabench.load_run(out).results is None
    assert RunDir(out).read_manifest().judge.spec == "openai:judge-model"
    # the new rows
    assert all(row["rubric"] is not None for row in read_jsonl_tolerant(out / "items.jsonl"))
    # the new table, with the judge's scores
    assert "| empathy | not computed" not in (out / "summary.md").read_text()
    # scoring again completes it from the saved verdicts
    assert main(["score", str(out), "--resamples", "50"]) == 0
    assert (
        results(out)["judge"]["spec"] == "openai:judge-model"
        and results(out)["metrics"]["empathy"]["n"] == 9
    )


# --- 7. Ctrl-C while judging -------------------------------------------------------------------------


@pytest.mark.slow
def test_ctrl_c_while_judging_exits_130_with_the_resume_hint(tmp_path):
    data = write_dataset(tmp_path / "data", test_users=tuple("efghijkl"), n_turns=4)  # 32 items
    out = tmp_path / "run"
    assert (
        main(
            [
                "generate",
                "--model",
                "baseline:retrieval",
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
    env = {**os.environ, "OPENAI_API_KEY": "sk-test-not-a-secret"}
    with FakeOpenAIServer(
        FakeConfig(latency=0.3, reply_fn=lambda r: judge_reply({**r, "model": "judge-model"}))
    ) as srv:
        cmd = cli_command(
            "score",
            str(out),
            "--judge",
            "openai:judge-model",
            "--judge-base-url",
            srv.url,
            "--judge-concurrency",
            "2",
            "--no-cache",
            "--no-progress",
        )
        # as a background job starts it (SIGINT inherited as ignored): the test holds however the suite is started
        proc = subprocess.Popen(
            started_in_background(cmd),
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        judgments = out / "judgments.jsonl"
        while not (judgments.exists() and len(read_jsonl_tolerant(judgments)) >= 4):
            assert proc.poll() is None, f"score exited ({proc.returncode}) before 4 verdicts"
            time.sleep(0.02)
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert (
        f"finished verdicts are saved in {out}/judgments.jsonl; run the same command again to resume"
        in err
    )
    assert "Traceback" not in err
    saved = read_jsonl_tolerant(judgments)
    assert 4 <= len(saved) < 32
