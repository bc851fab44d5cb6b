"""A run folder never loses good work and never mixes runs: damaged lines are set aside, not
truncated away; one process at a time; --overwrite starts clean; --limit is a setting; the data
source is recorded so that scoring works from anywhere."""

import json
import logging
import os
import signal
import subprocess
import sys
from pathlib import Path

from helpers import write_dataset

import kardiabench
from kardiabench.cli import main
from kardiabench.jsonl import read_jsonl_tolerant
from kardiabench.judging import load_judgments
from kardiabench.runs import RunDir
from kardiabench.scoring.judge import Judgment

GEN = ("--no-progress", "--no-cache")


def generate(data, out, *extra):
    return main(
        [
            "generate",
            "--model",
            "baseline:retrieval",
            "--data",
            str(data),
            "--output",
            str(out),
            *GEN,
            *extra,
        ]
    )


def rows(path):
    return [json.loads(x) for x in path.read_text().splitlines()]


# ----------------------------------------------------------------------------- damaged lines


def test_damaged_middle_lines_are_set_aside_and_later_good_lines_kept(tmp_path, caplog):
    data = write_dataset(tmp_path / "data")  # 9 test items
    out = tmp_path / "run"
    assert generate(data, out) == 0
    preds = out / "predictions.jsonl"
    ids = {r["item_id"] for r in rows(preds)}
    lines = preds.read_text().splitlines(keepends=True)
    damaged = {
        3: '{"item_id": "x", "raw_out\n',
        5: "[1, 2]\n",
        6: '{"model": "baseline:retrieval", "raw_output": "no id"}\n',
    }
    for n, text in damaged.items():
        lines[n - 1] = text
    # and a torn last line: the crash artefact
    preds.write_text("".join(lines) + '{"item_id": "torn')
    kept = [json.loads(line) for n, line in enumerate(lines, 1) if n not in damaged]

    caplog.set_level(logging.WARNING)
    assert generate(data, out) == 0
    warning = " ".join(r.getMessage() for r in caplog.records)
    assert "3 damaged line(s) set aside" in warning
    assert (
        "line 3: not valid JSON" in warning
        and "line 5: not a JSON object" in warning
        and "line 6: no item_id" in warning
    )
    assert "torn" not in warning
    after = rows(preds)
    assert after[: len(kept)] == kept  # every good line after the damage is still there, unchanged
    assert len(after) == 9 and {r["item_id"] for r in after} == ids
    stats = RunDir(out).read_manifest().generation_stats
    # totals: 9, then only the damaged items again
    assert (stats.requested, stats.resumes) == (9 + 3, 1)
    rejected = (out / "predictions.jsonl.rejected").read_text().splitlines()
    assert rejected == [f"{n}\t{text.rstrip(chr(10))}" for n, text in damaged.items()]


def test_reading_without_repair_warns_and_leaves_the_file_alone(tmp_path, caplog):
    path = tmp_path / "predictions.jsonl"
    good = [{"item_id": f"i{k}", "model": "m", "raw_output": "x"} for k in range(4)]
    text = (
        "\n".join([json.dumps(good[0]), "garbage", *map(json.dumps, good[1:])]) + "\n" + '{"item_'
    )
    path.write_text(text)
    caplog.set_level(logging.WARNING)
    assert list(RunDir(tmp_path).read_predictions()) == ["i0", "i1", "i2", "i3"]
    assert path.read_text() == text and not (tmp_path / "predictions.jsonl.rejected").exists()
    assert [r.getMessage() for r in caplog.records] == [
        f"warning: {path}: 1 damaged line(s) ignored (line 2: not valid JSON); the 4 good lines are used"
    ]


def test_a_torn_last_line_is_repaired_silently(tmp_path, caplog):
    path = tmp_path / "judgments.jsonl"
    path.write_text('{"a": 1}\n{"a": 2}\n{"a": ')
    caplog.set_level(logging.WARNING)
    assert read_jsonl_tolerant(path, repair=True) == [{"a": 1}, {"a": 2}]
    assert path.read_text() == '{"a": 1}\n{"a": 2}\n'
    assert not caplog.records and not (tmp_path / "judgments.jsonl.rejected").exists()


def test_judgments_keep_every_good_verdict_after_a_damaged_line(tmp_path, caplog):
    from kardiabench.jsonl import JsonlWriter

    path = tmp_path / "judgments.jsonl"
    verdicts = [
        Judgment(f"i{k}", "openai:judge", 0, {"empathy": k + 1}, "scored", "v1").to_dict()
        for k in range(4)
    ]
    path.write_text(
        "\n".join([json.dumps(verdicts[0]), "\x00\x00\x00", "42", *map(json.dumps, verdicts[1:])])
        + "\n"
    )
    caplog.set_level(logging.WARNING)
    assert [j.item_id for j in load_judgments(path)] == ["i0", "i1", "i2", "i3"]
    JsonlWriter(path).close()  # opening the writer repairs the file
    assert rows(path) == verdicts
    assert (tmp_path / "judgments.jsonl.rejected").read_text() == "2\t\x00\x00\x00\n3\t42\n"
    assert "line 2: not valid JSON, line 3: not a JSON object" in caplog.records[-1].getMessage()


# ----------------------------------------------------------------------------- the lock


def test_second_process_on_a_run_folder_refuses_and_a_killed_holder_does_not_block(
    tmp_path, capsys
):
    data = write_dataset(tmp_path / "data")
    out = tmp_path / "run"
    out.mkdir()
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time\nfrom kardiabench.runs import RunDir\n"
            "with RunDir(sys.argv[1]).lock():\n    print('held', flush=True)\n    time.sleep(600)\n",
            str(out),
        ],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(Path(kardiabench.__file__).parents[1])},
    )
    try:
        assert holder.stdout.readline().strip() == "held"
        assert generate(data, out) == 2
        assert (
            f"error: {out} is in use by another kardiabench process (pid {holder.pid})"
            in capsys.readouterr().err
        )
        assert not (out / "predictions.jsonl").exists()
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    assert generate(data, out) == 0
    assert len(rows(out / "predictions.jsonl")) == 9
    # scoring takes the lock too; `run` takes it in both stages
    assert main(["score", str(out)]) == 0


def test_lock_is_reentrant_within_a_process(tmp_path):
    run = RunDir(tmp_path)
    with run.lock(), RunDir(tmp_path / ".").lock():
        assert (tmp_path / ".lock").read_text().strip() == str(os.getpid())


# ----------------------------------------------------------------------------- --overwrite


def test_overwrite_removes_everything_derived_from_the_old_run(tmp_path):
    data = write_dataset(tmp_path / "data")
    out = tmp_path / "run"
    assert (
        main(
            ["run", "--model", "baseline:majority", "--data", str(data), "--output", str(out), *GEN]
        )
        == 0
    )
    for name in (
        "judgments.jsonl",
        "report.html",
        "predictions.jsonl.rejected",
        "judgments.jsonl.rejected",
    ):
        (out / name).write_text("old\n")
    manifest = RunDir(out).read_manifest()
    RunDir(out).write_manifest(manifest.model_copy(update={"old_key": 1}))
    assert {"results.json", "items.jsonl", "summary.md"} <= {p.name for p in out.iterdir()}

    assert generate(data, out, "--overwrite") == 0
    assert sorted(p.name for p in out.iterdir() if p.name != ".lock") == [
        "predictions.jsonl",
        "run.json",
    ]
    fresh = RunDir(out).read_manifest()
    assert fresh.model_spec == "baseline:retrieval"
    assert not {"old_key", "scored", "judge"} & set(json.loads((out / "run.json").read_text()))
    assert {r["model"] for r in rows(out / "predictions.jsonl")} == {"baseline:retrieval"}


# ----------------------------------------------------------------------------- --limit


def test_raising_the_limit_continues_and_lowering_it_refuses(tmp_path, capsys):
    data = write_dataset(tmp_path / "data")  # 3 test dialogues of 3 turns: 9 items
    out = tmp_path / "run"
    assert generate(data, out, "--limit", "4") == 0
    first = rows(out / "predictions.jsonl")
    data_info = RunDir(out).read_manifest().data
    assert (data_info.limit, data_info.n_items, data_info.n_dialogues) == (4, 4, 2)
    assert main(["score", str(out)]) == 0
    assert "4 items in 2 dialogues (limit: 4)" in (out / "summary.md").read_text()

    assert generate(data, out, "--limit", "6") == 0
    assert rows(out / "predictions.jsonl")[:4] == first  # kept, not generated again
    run = RunDir(out).read_manifest()
    assert (
        (run.generation_stats.requested, run.generation_stats.resumes) == (4 + 2, 1)
        and run.data.n_items == 6
        and run.data.limit == 6
    )

    capsys.readouterr()
    assert generate(data, out, "--limit", "5") == 2
    assert (
        f"{out} holds 6 items (limit 6); --limit 5 would cover fewer: use --overwrite or another --output"
        in capsys.readouterr().err
    )
    assert len(rows(out / "predictions.jsonl")) == 6

    assert generate(data, out) == 0  # no --limit after a limited run: all items
    run = RunDir(out).read_manifest()
    assert (
        (run.generation_stats.requested, run.generation_stats.resumes) == (6 + 3, 2)
        and run.data.n_items == 9
        and run.data.limit is None
    )
    assert main(["score", str(out)]) == 0
    assert "9 items in 3 dialogues (limit: none)" in (out / "summary.md").read_text()
    assert json.loads((out / "results.json").read_text())["data"]["n_items"] == 9


# ----------------------------------------------------------------------------- settings, data source


def test_different_settings_are_named_old_to_new(tmp_path, capsys):
    data = write_dataset(tmp_path / "data")
    out = tmp_path / "run"
    assert generate(data, out) == 0
    capsys.readouterr()
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
                "--temperature",
                "0.7",
                *GEN,
            ]
        )
        == 2
    )
    err = capsys.readouterr().err
    assert f"{out} holds a run with different settings: " in err
    assert (
        "sampling.temperature: 0.0 → 0.7" in err
        and "model.spec: baseline:retrieval → baseline:majority" in err
    )


def test_score_works_from_another_working_directory(tmp_path, monkeypatch):
    write_dataset(tmp_path / "work" / "data")
    monkeypatch.chdir(tmp_path / "work")
    assert generate("data", "run", "--limit", "3") == 0
    assert RunDir(tmp_path / "work" / "run").read_manifest().data.source == str(
        tmp_path / "work" / "data"
    )
    (tmp_path / "elsewhere").mkdir()
    monkeypatch.chdir(tmp_path / "elsewhere")
    assert main(["score", str(tmp_path / "work" / "run")]) == 0
    # same run
    assert (
        main(
            [
                "generate",
                "--model",
                "baseline:retrieval",
                "--data",
                str(tmp_path / "work" / "data"),
                "--output",
                str(tmp_path / "work" / "run"),
                "--limit",
                "3",
                *GEN,
            ]
        )
        == 0
    )


def test_damaged_verdict_line_is_set_aside_and_only_its_item_judged_again(
    tmp_path, monkeypatch, caplog
):
    from test_run_with_judge import reply

    from kardiabench.testing.fake_openai import FakeConfig, FakeOpenAIServer

    monkeypatch.setenv("OPENAI_API_KEY", "sk-local-test")
    data = write_dataset(tmp_path / "data")
    out = tmp_path / "run"
    with FakeOpenAIServer(FakeConfig(reply_fn=reply)) as srv:
        judge = [
            "--judge",
            "openai:judge-model",
            "--judge-base-url",
            srv.url,
            "--no-progress",
            "--no-cache",
            "--resamples",
            "50",
        ]
        assert (
            main(
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
                    *judge,
                ]
            )
            == 0
        )
        path = out / "judgments.jsonl"
        lines = path.read_text().splitlines(keepends=True)
        k = next(
            n
            for n, line in enumerate(lines)
            if json.loads(line)["status"] == "scored" and n < len(lines) - 1
        )
        lost = json.loads(lines[k])
        path.write_text("".join(lines[:k]) + lines[k][:40] + "\n" + "".join(lines[k + 1 :]))
        before = srv.stats.requests
        caplog.set_level(logging.WARNING)
        assert main(["score", str(out), *judge]) == 0
        assert srv.stats.requests == before + 1  # only the item whose verdict was damaged
    assert f"line {k + 1}: not valid JSON" in " ".join(r.getMessage() for r in caplog.records)
    after = rows(path)
    assert after[:-1] == [json.loads(line) for n, line in enumerate(lines) if n != k]
    assert after[-1]["item_id"] == lost["item_id"] and after[-1]["scores"] == lost["scores"]
    assert (out / "judgments.jsonl.rejected").read_text() == f"{k + 1}\t{lines[k][:40]}\n"
    assert json.loads((out / "results.json").read_text())["metrics"]["empathy"]["n"] == 6
