"""Typed run artefacts: run.json / results.json through pydantic models with a schema_version, and
`load_run` on real folders made by the CLI (a baseline on the sample, an API model with a judge)."""

import hashlib
import json
import math
import re
import shutil

import pytest
from helpers import write_dataset

from kardiabench.cli import main
from kardiabench.jsonl import read_jsonl_tolerant
from kardiabench.runs import (
    SCHEMA_VERSION,
    Results,
    RunDirError,
    RunFileError,
    RunManifest,
    load_run,
)
from kardiabench.spans import parse_spans
from kardiabench.testing.fake_openai import FakeConfig, FakeOpenAIServer, default_reply

DIMS = ["relevance", "fluency", "empathy", "persona_consistency", "safety"]
COLUMNS = [
    "item_id",
    "dialogue_id",
    "persona_id",
    "mbti",
    "turn_index",
    "gold_emotion",
    "pred_emotion",
    "pred_class",
    "emotion_correct",
    "well_formed",
    "issues",
    "failed",
    "understanding",
    "reasoning",
    "emotion",
    "response",
    "raw_output",
    *DIMS,
]


def judge_reply(request):
    """Rubric JSON from a hash of the case; never valid for the last turn of each dialogue."""
    if request["model"] != "judge-model":
        return default_reply(request)
    case = request["messages"][1]["content"]
    if "turn 2:" in case:
        return "no JSON today"
    h = hashlib.sha256(case.encode()).digest()
    return json.dumps({d: 1 + h[i] % 5 for i, d in enumerate(DIMS)})


@pytest.fixture(scope="module")
def retrieval_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "retrieval"
    code = main(
        [
            "run",
            "--task",
            "kardiabench",
            "--model",
            "baseline:retrieval",
            "--data",
            "sample",
            "--output",
            str(out),
            "--no-progress",
            "--no-cache",
            "--resamples",
            "200",
        ]
    )
    assert code == 0
    return out


@pytest.fixture(scope="module")
def judged_run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("judged")
    data, out = write_dataset(tmp / "data"), tmp / "run"
    with (
        pytest.MonkeyPatch.context() as mp,
        FakeOpenAIServer(FakeConfig(reply_fn=judge_reply)) as srv,
    ):
        mp.setenv("OPENAI_API_KEY", "sk-local-test")
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
                "--no-cache",
                "--resamples",
                "200",
            ]
        )
    assert code == 0
    return out


def read(path):
    return json.loads(path.read_text(encoding="utf-8"))


def write(path, data):
    path.write_text(json.dumps(data), encoding="utf-8")
    return path


# ----------------------------------------------------------------------------- the files


@pytest.mark.parametrize("model", [RunManifest, Results])
def test_write_then_read_gives_the_same_model_and_the_same_file(model, retrieval_run, tmp_path):
    original = read(retrieval_run / model.FILE)
    # the run folder's files are written through the model
    assert original.pop("schema_version") == SCHEMA_VERSION
    # a file without one (written before) is version 1
    loaded = model.read(write(tmp_path / "old.json", original))
    assert loaded.schema_version == 1

    target = loaded.write(tmp_path / model.FILE)
    assert model.read(target) == loaded
    written = read(target)
    assert written == {"schema_version": SCHEMA_VERSION, **original}
    assert list(written) == ["schema_version", *original]  # key order kept too
    assert not list(tmp_path.glob("*.tmp"))  # atomic: the temp file was renamed


def test_keys_a_newer_writer_adds_survive_a_read_and_a_write(retrieval_run, tmp_path):
    data = read(retrieval_run / "results.json")
    data["leaderboard"] = {"rank": 3}
    data["data"]["n_dialogues_evaluated"] = 16
    loaded = Results.read(write(tmp_path / "results.json", data))
    assert loaded.data.n_dialogues_evaluated == 16
    out = read(loaded.write(tmp_path / "again.json"))
    assert out["leaderboard"] == {"rank": 3} and out["data"]["n_dialogues_evaluated"] == 16


def test_an_unknown_schema_version_is_a_one_line_error(retrieval_run, tmp_path):
    path = write(
        tmp_path / "results.json", {**read(retrieval_run / "results.json"), "schema_version": 2}
    )
    with pytest.raises(RunFileError) as e:
        Results.read(path)
    assert str(e.value).startswith(
        f"{path}: schema_version: 2 is not a version this kardiabench reads (1)"
    )
    assert "\n" not in str(e.value)


NEWER = SCHEMA_VERSION + 1
# Every command that reads a run folder, with the folder (DIR) a newer kardiabench wrote.
READERS = {
    "score": ["score", "DIR", "--no-progress", "--no-cache"],
    "compare": ["compare", "OTHER", "DIR"],
    "report": ["report", "DIR"],
    "leaderboard add": ["leaderboard", "add", "DIR", "--leaderboard", "LB"],
    "generate": [
        "generate",
        "--model",
        "baseline:retrieval",
        "--data",
        "sample",
        "--output",
        "DIR",
        "--no-progress",
        "--no-cache",
    ],
}


def folder_bytes(path):
    return {p.name: p.read_bytes() for p in sorted(path.iterdir()) if p.is_file()}


@pytest.fixture(params=["run.json", "results.json"])
def newer_run(request, retrieval_run, tmp_path):
    """A copy of a scored run whose run.json or results.json says a newer schema_version."""
    folder = tmp_path / "newer"
    shutil.copytree(retrieval_run, folder)
    write(folder / request.param, {**read(folder / request.param), "schema_version": NEWER})
    return folder, folder / request.param


@pytest.mark.parametrize("command", list(READERS))
def test_a_folder_of_a_newer_schema_is_refused_in_one_line_before_anything_is_written(
    command, newer_run, retrieval_run, tmp_path, capsys
):
    folder, newer_file = newer_run
    before = folder_bytes(folder)
    swap = {"DIR": str(folder), "OTHER": str(retrieval_run), "LB": str(tmp_path / "lb")}
    capsys.readouterr()
    assert main([swap.get(a, a) for a in READERS[command]]) == 2
    err = capsys.readouterr().err
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    assert errors == [
        f"error: {newer_file}: schema_version: {NEWER} is not a version this kardiabench reads ({SCHEMA_VERSION}); "
        "a newer kardiabench wrote it, or the file is damaged"
    ]
    assert "Traceback" not in err
    assert folder_bytes(folder) == before  # nothing written, nothing removed
    assert not (tmp_path / "lb").exists()


def test_the_python_api_refuses_a_folder_of_a_newer_schema(newer_run, retrieval_run):
    import kardiabench as kb

    folder, newer_file = newer_run
    before = folder_bytes(folder)
    for call in (
        lambda: kb.score(folder, cache=False),
        lambda: kb.compare(retrieval_run, folder),
        lambda: kb.load_run(folder),
    ):
        with pytest.raises(
            RunFileError, match=f"^{re.escape(str(newer_file))}: schema_version: {NEWER} "
        ):
            call()
    assert folder_bytes(folder) == before


def test_a_run_loaded_twice_compares_equal(retrieval_run, judged_run):
    assert load_run(retrieval_run) == load_run(retrieval_run)
    assert load_run(judged_run) == load_run(judged_run)
    assert load_run(retrieval_run) != load_run(judged_run)
    first = load_run(retrieval_run)
    _ = first.items  # the items frame, built on first use, is a view: not part of the comparison
    assert first == load_run(retrieval_run)


@pytest.mark.parametrize(
    ("model", "edit", "message"),
    [
        (
            Results,
            lambda d: d["metrics"]["emotion_accuracy"].update(n="many"),
            "metrics.emotion_accuracy.n: Input should be a valid integer",
        ),
        (
            Results,
            lambda d: d["metrics"]["empathy"].update(value="high"),
            "metrics.empathy.value: Input should be a valid number",
        ),
        (
            Results,
            lambda d: d["metrics"]["empathy"].update(colour="red"),
            "metrics.empathy.colour: Extra inputs are not permitted",
        ),
        (
            Results,
            lambda d: d["breakdowns"]["mbti"]["ESFJ"].pop("n"),
            "breakdowns.mbti.ESFJ.n: Field required",
        ),
        (RunManifest, lambda d: d.pop("model_spec"), "model_spec: Field required"),
        (
            RunManifest,
            lambda d: d["data"].update(n_items=None),
            "data.n_items: Input should be a valid integer",
        ),
    ],
)
def test_a_bad_field_is_a_one_line_error_naming_file_and_field(
    model, edit, message, retrieval_run, tmp_path
):
    data = read(retrieval_run / model.FILE)
    edit(data)
    path = write(tmp_path / model.FILE, data)
    with pytest.raises(RunFileError) as e:
        model.read(path)
    assert str(e.value) == f"{path}: {message}"
    assert isinstance(e.value, RunDirError)  # a user error: the CLI prints it without a traceback


def test_a_file_that_is_not_json_is_a_one_line_error(tmp_path):
    path = tmp_path / "run.json"
    path.write_text('{"model_spec": ', encoding="utf-8")
    with pytest.raises(
        RunFileError,
        match=r"run\.json: not valid JSON \(Expecting value: line 1 column 16 \(char 15\)\)$",
    ):
        RunManifest.read(path)
    path.write_bytes(b"\xff{}")
    with pytest.raises(
        RunFileError, match=r"run\.json: not valid JSON \('utf-8' codec can't decode byte 0xff"
    ):
        RunManifest.read(path)


# ----------------------------------------------------------------------------- load_run


def test_load_run_on_a_baseline_run(retrieval_run):
    run = load_run(retrieval_run)
    results = read(retrieval_run / "results.json")
    assert run.model == "baseline:retrieval" and run.task == "kardiabench"
    assert run.path == retrieval_run
    assert set(run.metrics) == set(results["metrics"])
    for name, m in results["metrics"].items():
        got = run.metrics[name]
        assert (got.value, got.n, got.n_unscored, got.ci_low, got.ci_high) == (
            m["value"],
            m["n"],
            m["n_unscored"],
            m["ci_low"],
            m["ci_high"],
        )
    assert (
        run.metrics["empathy"].value is None
        and run.metrics["empathy"].reason == "no judge given (--judge SPEC)"
    )

    items = run.items
    rows = read_jsonl_tolerant(retrieval_run / "items.jsonl")
    preds = {p["item_id"]: p for p in read_jsonl_tolerant(retrieval_run / "predictions.jsonl")}
    assert list(items.columns) == COLUMNS
    assert len(items) == len(rows) == results["data"]["n_items"] == 110
    assert list(items["item_id"]) == [r["item_id"] for r in rows]
    assert items["emotion_correct"].sum() == round(
        results["metrics"]["emotion_accuracy"]["value"] * 110 / 100
    )
    for rec in items.to_dict("records"):
        raw = preds[rec["item_id"]]["raw_output"]
        assert rec["raw_output"] == raw
        assert {
            s: rec[s] for s in ("understanding", "reasoning", "emotion", "response")
        } == parse_spans(raw).spans
    assert items[DIMS].isna().all().all()  # no judge: every rubric cell is NaN
    assert run.items is items  # built once


def test_load_run_on_a_judged_run(judged_run):
    run = load_run(judged_run)
    results = read(judged_run / "results.json")
    empathy = run.metrics["empathy"]
    assert (empathy.value, empathy.n, empathy.n_unscored) == (
        results["metrics"]["empathy"]["value"],
        6,
        3,
    )
    assert (
        run.results.judge.spec == "openai:judge-model"
        and run.manifest.judge.spec == "openai:judge-model"
    )
    assert (
        run.metrics["safety_flag_rate"].extra["flagged_item_ids"]
        == results["metrics"]["safety_flag_rate"]["extra"]["flagged_item_ids"]
    )

    rows = {r["item_id"]: r["rubric"] for r in read_jsonl_tolerant(judged_run / "items.jsonl")}
    items = run.items.set_index("item_id")
    assert len(items) == len(rows) == 9
    for item_id, rubric in rows.items():
        for dim in DIMS:
            cell = items.loc[item_id, dim]
            assert math.isnan(cell) if rubric[dim] is None else cell == rubric[dim]
    assert items[DIMS].notna().all(axis=1).sum() == 6  # the three "turn 2" items are unscored
    assert items["empathy"].mean() == pytest.approx(empathy.value)


def test_repr_is_short_and_names_the_headline_numbers(retrieval_run, judged_run):
    acc = read(retrieval_run / "results.json")["metrics"]["emotion_accuracy"]["value"]
    text = repr(load_run(retrieval_run))
    assert text.startswith(
        f"Run({str(retrieval_run)!r}: baseline:retrieval on kardiabench, 110 items; "
    )
    # not computed: not shown
    assert f"emotion_accuracy {acc:.2f}" in text and "empathy" not in text
    assert "empathy 2." in repr(load_run(judged_run))


def test_a_run_not_scored_yet_has_no_results_and_one_row_per_prediction(tmp_path):
    data, out = write_dataset(tmp_path / "data"), tmp_path / "gen"
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
    run = load_run(out)
    assert run.results is None and run.metrics == {}
    assert repr(run).endswith("9 items, not scored)")
    preds = read_jsonl_tolerant(out / "predictions.jsonl")
    assert list(run.items.columns) == COLUMNS
    assert list(run.items["item_id"]) == [p["item_id"] for p in preds]
    assert list(run.items["emotion"]) == [
        parse_spans(p["raw_output"]).spans["emotion"] for p in preds
    ]
    assert run.items["gold_emotion"].isna().all() and run.items[DIMS].isna().all().all()


def test_load_run_on_a_folder_that_is_not_a_run(tmp_path):
    with pytest.raises(RunDirError, match=r"not a run folder \(no run\.json\)$"):
        load_run(tmp_path)
    with pytest.raises(RunDirError, match=r"missing: no such folder$"):
        load_run(tmp_path / "missing")


def test_load_run_names_a_bad_results_file(retrieval_run, tmp_path):
    copy = shutil.copytree(retrieval_run, tmp_path / "copy")
    data = read(copy / "results.json")
    data["metrics"]["format_compliance"]["ci_low"] = "low"
    write(copy / "results.json", data)
    with pytest.raises(RunFileError) as e:
        load_run(copy)
    assert (
        str(e.value)
        == f"{copy / 'results.json'}: metrics.format_compliance.ci_low: Input should be a valid number"
    )


def test_load_run_on_predictions_made_elsewhere(retrieval_run, tmp_path):
    """`score --predictions` writes a smaller manifest (no generation identity or stats): it loads."""
    ext = tmp_path / "ext.jsonl"
    preds = read_jsonl_tolerant(retrieval_run / "predictions.jsonl")[:5]
    ext.write_text(
        "".join(
            json.dumps({"item_id": p["item_id"], "raw_output": p["raw_output"]}) + "\n"
            for p in preds
        )
    )
    out = tmp_path / "scored"
    assert (
        main(
            [
                "score",
                "--predictions",
                str(ext),
                "--data",
                "sample",
                "--output",
                str(out),
                "--resamples",
                "200",
            ]
        )
        == 0
    )
    run = load_run(out)
    assert run.model == "external:ext.jsonl" and run.manifest.generation_stats is None
    assert (
        run.metrics["emotion_accuracy"].value
        == read(out / "results.json")["metrics"]["emotion_accuracy"]["value"]
    )
    # items with no line count as failed
    assert len(run.items) == 110 and run.items["failed"].sum() == 105
    # the folder keeps its copy of the predictions (docs/run-folder.md): the text columns of the 5 items
    scored = run.items.dropna(subset=["raw_output"])
    assert list(scored["item_id"]) == [p["item_id"] for p in preds] and list(
        scored["raw_output"]
    ) == [p["raw_output"] for p in preds]
    assert scored["emotion"].notna().all() and run.items["raw_output"].isna().sum() == 105
