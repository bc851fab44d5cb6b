"""`--batch` / `--judge-batch` against the scripted server's /v1/files and /v1/batches: same
predictions as ordinary requests, one batch per purpose even across a SIGKILL, whatever a batch
did not answer (error file, expired job, damaged / duplicated lines of its output file) sent again
as ordinary requests, and a batch that never ends stopped by --batch-timeout and resumed."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest
from helpers import write_dataset

from kardiabench.cli import main
from kardiabench.testing.fake_openai import FakeConfig, FakeOpenAIServer


@pytest.fixture(autouse=True)
def fast_polls(monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-local")
    monkeypatch.setenv("KARDIABENCH_BATCH_POLL", "0.01")


def predictions(out):
    rows = [json.loads(x) for x in (out / "predictions.jsonl").read_text().splitlines()]
    return {r["item_id"]: (r["raw_output"], r["error"]) for r in rows}


def generate_args(srv, data, out, *extra):
    return [
        "generate",
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
        *extra,
    ]


def ordinary(srv):
    return srv.stats.requests - srv.stats.batch_answered


def test_batch_generation_gives_the_same_predictions(tmp_path):
    data = write_dataset(tmp_path / "data")
    with FakeOpenAIServer(FakeConfig()) as srv:
        assert main(generate_args(srv, data, tmp_path / "plain")) == 0
        srv.stats.reset()
        assert main(generate_args(srv, data, tmp_path / "batch", "--batch")) == 0
        assert (
            srv.stats.batches_created == 1 and srv.stats.batch_requests == 9 and ordinary(srv) == 0
        )
    assert predictions(tmp_path / "batch") == predictions(tmp_path / "plain")
    [rec] = json.loads((tmp_path / "batch" / "batches.json").read_text())
    assert (
        rec["purpose"] == "generation"
        and rec["status"] == "completed"
        and len(rec["requests"]) == 9
    )
    manifest = json.loads((tmp_path / "batch" / "run.json").read_text())
    assert manifest["generation_stats"]["done"] == 9


def test_partial_failure_is_retried_as_ordinary_requests(tmp_path):
    data = write_dataset(tmp_path / "data")
    with FakeOpenAIServer(FakeConfig(batch_fail_every=3)) as srv:
        assert main(generate_args(srv, data, tmp_path / "run", "--batch")) == 0
        assert (
            srv.stats.batches_created == 1 and srv.stats.batch_answered == 6 and ordinary(srv) == 3
        )
    preds = predictions(tmp_path / "run")
    assert len(preds) == 9 and all(err is None for _, err in preds.values())


def test_expired_batch_is_retried_in_full(tmp_path):
    data = write_dataset(tmp_path / "data")
    with FakeOpenAIServer(FakeConfig(batch_expire=True)) as srv:
        assert main(generate_args(srv, data, tmp_path / "run", "--batch")) == 0
        assert (
            srv.stats.batches_created == 1 and srv.stats.batch_answered == 0 and ordinary(srv) == 9
        )
    assert len(predictions(tmp_path / "run")) == 9
    [rec] = json.loads((tmp_path / "run" / "batches.json").read_text())
    assert rec["status"] == "expired"


def test_killed_while_polling_resumes_the_same_batch(tmp_path):
    data = write_dataset(tmp_path / "data")
    out = tmp_path / "run"
    # never ends until the test says so
    with FakeOpenAIServer(FakeConfig(batch_polls=10**9)) as srv:
        args = generate_args(srv, data, out, "--batch")
        env = {**os.environ, "PYTHONPATH": os.getcwd()}
        proc = subprocess.Popen(
            [sys.executable, "-m", "kardiabench.cli", *args],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            while not (out / "batches.json").exists() or not srv.stats.batches_created:
                assert proc.poll() is None, "the run ended before its batch was recorded"
                time.sleep(0.05)
            proc.send_signal(signal.SIGKILL)
        finally:
            proc.wait(30)
        assert not (out / "predictions.jsonl").exists() or not predictions(out)
        srv.config.batch_polls = 1  # the job ends at the next retrievals
        assert main(args) == 0
        assert (
            srv.stats.batches_created == 1 and srv.stats.batch_answered == 9 and ordinary(srv) == 0
        )
    assert len(predictions(out)) == 9


def test_judge_batch(tmp_path):
    data = write_dataset(tmp_path / "data")
    out = tmp_path / "run"
    with FakeOpenAIServer(FakeConfig()) as srv:
        assert (
            main(
                [
                    "run",
                    "--model",
                    "openai:m",
                    "--base-url",
                    srv.url,
                    "--data",
                    str(data),
                    "--output",
                    str(out),
                    "--judge",
                    "openai:j",
                    "--judge-base-url",
                    srv.url,
                    "--judge-batch",
                    "--no-cache",
                    "--no-progress",
                    "--resamples",
                    "50",
                ]
            )
            == 0
        )
        assert srv.stats.batches_created == 1 and srv.stats.batch_answered == 9
    [rec] = json.loads((out / "batches.json").read_text())
    assert rec["purpose"] == "judge:openai:j" and next(iter(rec["requests"])).endswith("#r0")
    rows = [json.loads(x) for x in (out / "judgments.jsonl").read_text().splitlines()]
    assert len(rows) == 9 and all(r["status"] == "scored" for r in rows)


def test_batch_needs_an_openai_model(tmp_path, capsys):
    data = write_dataset(tmp_path / "data")
    assert (
        main(
            [
                "generate",
                "--model",
                "baseline:retrieval",
                "--data",
                str(data),
                "--output",
                str(tmp_path / "r"),
                "--no-cache",
                "--no-progress",
                "--batch",
            ]
        )
        == 2
    )
    assert "--batch needs an openai: model" in capsys.readouterr().err


def test_max_cost_covers_judging_and_resumes(tmp_path, monkeypatch, capsys):
    prices = tmp_path / "prices.json"
    prices.write_text(
        json.dumps({"m": {"input": 0.01, "output": 0.01}, "j": {"input": 10000, "output": 10000}})
    )
    # judge requests cost dollars each, generation ~nothing
    monkeypatch.setenv("KARDIABENCH_PRICES", str(prices))
    data = write_dataset(tmp_path / "data")
    out = tmp_path / "run"
    with FakeOpenAIServer(FakeConfig()) as srv:
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
            "--judge",
            "openai:j",
            "--judge-base-url",
            srv.url,
            "--judge-concurrency",
            "1",
            "--no-cache",
            "--no-progress",
            "--resamples",
            "50",
        ]
        assert main([*args, "--max-cost", "2.5"]) == 2
        assert "cost limit reached" in capsys.readouterr().err
        judged = [json.loads(x) for x in (out / "judgments.jsonl").read_text().splitlines()]
        assert len(predictions(out)) == 9 and 1 <= len(judged) < 9
        assert main([*args, "--max-cost", "100000"]) == 0
        judged = [json.loads(x) for x in (out / "judgments.jsonl").read_text().splitlines()]
        assert len({r["item_id"] for r in judged}) == 9
        assert srv.stats.requests == 9 + 9  # nothing sent twice


def test_dry_run_shows_the_batch_price(tmp_path, capsys):
    data = write_dataset(tmp_path / "data")
    assert (
        main(
            [
                "run",
                "--model",
                "openai:gpt-4o-mini",
                "--data",
                str(data),
                "--output",
                str(tmp_path / "r"),
                "--judge",
                "openai:gpt-5-mini",
                "--dry-run",
            ]
        )
        == 0
    )
    text = capsys.readouterr().out
    gen = next(line for line in text.splitlines() if "generation cost" in line)
    judge = next(line for line in text.splitlines() if "judge openai:gpt-5-mini" in line)
    assert (
        "with --batch: ~$" in gen and "50% batch price" in gen and "with --judge-batch: ~$" in judge
    )
    expected = float(gen.split("~$")[1].split()[0].replace(",", ""))
    batch = float(gen.split("with --batch: ~$")[1].split()[0].replace(",", ""))
    assert batch == pytest.approx(expected / 2, abs=1e-4)


def test_a_batch_for_other_requests_is_not_reused(tmp_path):
    data = write_dataset(tmp_path / "data")
    out = tmp_path / "run"
    with FakeOpenAIServer(FakeConfig()) as srv:
        assert main(generate_args(srv, data, out, "--batch", "--max-tokens", "100")) == 0
        # same item ids, other settings: the old batch's replies must not be taken for them
        assert (
            main(generate_args(srv, data, out, "--batch", "--max-tokens", "200", "--overwrite"))
            == 0
        )
        assert srv.stats.batches_created == 2
        # --overwrite removed the old records; a hand-kept stale record is ignored just the same
        stale = json.loads((out / "batches.json").read_text())
        assert (
            main(generate_args(srv, data, out, "--batch", "--max-tokens", "300", "--overwrite"))
            == 0
        )
        (out / "batches.json").write_text(json.dumps(stale))
        (out / "predictions.jsonl").unlink()
        assert main(generate_args(srv, data, out, "--batch", "--max-tokens", "300")) == 0
        assert srv.stats.batches_created == 4


# --- damaged output files, stuck batches (issue 16) -----------------------------------------------


def record(out):
    [rec] = json.loads((out / "batches.json").read_text())
    return rec


def test_a_damaged_output_line_is_set_aside_and_only_its_request_sent_again(tmp_path, capsys):
    data = write_dataset(tmp_path / "data")
    out = tmp_path / "run"
    with FakeOpenAIServer(FakeConfig()) as srv:
        assert main(generate_args(srv, data, tmp_path / "plain")) == 0
        srv.stats.reset()
        srv.config.batch_malformed_every = 4  # output lines 4 and 8 of 9 are cut in half
        assert main(generate_args(srv, data, out, "--batch")) == 0
        # the 7 good lines kept, 2 requests sent again
        assert srv.stats.batches_created == 1 and ordinary(srv) == 2
        err = capsys.readouterr().err
        assert "Traceback" not in err
        assert (
            "batch batch_0: its output file has 2 damaged line(s) (line 4: not valid JSON, line 8: not valid JSON)"
            in err
        )
        assert predictions(out) == predictions(tmp_path / "plain")
        assert record(out)["output_problems"] == {"damaged": 2, "duplicates": 0, "unknown": 0}
        rejected = (out / "batch_output.rejected").read_text().splitlines()
        assert [line.split("\t")[0] for line in rejected] == ["batch_0:4", "batch_0:8"]
        # run again: nothing left to ask, no second batch, the damaged lines not set aside twice
        srv.stats.reset()
        assert main(generate_args(srv, data, out, "--batch")) == 0
        assert srv.stats.requests == 0 and srv.stats.batches_created == 0
        assert len((out / "batch_output.rejected").read_text().splitlines()) == 2


def test_duplicate_or_unknown_custom_ids_never_answer_another_item(tmp_path, capsys):
    data = write_dataset(tmp_path / "data")
    out = tmp_path / "run"
    with FakeOpenAIServer(FakeConfig()) as srv:
        assert main(generate_args(srv, data, tmp_path / "plain")) == 0
        srv.stats.reset()
        # lines 3, 6, 9 carry the custom_id of lines 2, 5, 8; two more lines answer ids never asked
        srv.config.batch_duplicate_every, srv.config.batch_unknown_lines = 3, 2
        assert main(generate_args(srv, data, out, "--batch")) == 0
        # 3 items answered twice (which is theirs?) and the 3 answered under their ids
        assert ordinary(srv) == 6
    assert predictions(out) == predictions(tmp_path / "plain")  # no item got another item's answer
    assert record(out)["output_problems"] == {"damaged": 0, "duplicates": 6, "unknown": 2}
    err = capsys.readouterr().err
    assert (
        "6 line(s) sharing 3 custom_id(s), none of them used; 2 line(s) for custom_ids it never held, ignored"
        in err
    )
    manifest = json.loads((out / "run.json").read_text())
    assert manifest["generation_stats"]["done"] == 9


@pytest.mark.parametrize("command", ["generate", "run", "score"])
def test_a_batch_that_never_ends_stops_at_the_timeout_and_resumes(tmp_path, capsys, command):
    data = write_dataset(tmp_path / "data")
    out = tmp_path / "run"
    # in_progress until the test says so
    with FakeOpenAIServer(FakeConfig(batch_polls=10**9)) as srv:
        judge = ["--judge", "openai:j", "--judge-base-url", srv.url, "--resamples", "20"]
        if command == "generate":
            args = generate_args(srv, data, out, "--batch")
        elif command == "run":
            args = [*generate_args(srv, data, out), *judge, "--judge-batch"]
            args[0] = "run"
        else:
            assert main(generate_args(srv, data, out)) == 0
            args = ["score", str(out), *judge, "--judge-batch", "--no-cache", "--no-progress"]
        purpose = "generation" if command == "generate" else "judge:openai:j"
        capsys.readouterr()
        assert main([*args, "--batch-timeout", "0.2"]) == 2
        err = capsys.readouterr().err
        assert "Traceback" not in err
        # the console names the batch and its status
        assert f"batch batch_0 ({purpose}): in_progress" in err
        [line] = [x for x in err.splitlines() if x.startswith("error:")]
        assert line.startswith(
            "error: batch batch_0 (in_progress) has not ended after 0.2 s (--batch-timeout)"
        )
        assert "run the same command again" in line
        assert record(out)["id"] == "batch_0" and record(out)["status"] == "in_progress"
        if command != "generate":  # nothing done is lost: the predictions are all there
            assert len(predictions(out)) == 9
        srv.config.batch_polls = 1  # the job ends at its next retrievals
        assert main([*args, "--batch-timeout", "5"]) == 0
        assert srv.stats.batches_created == 1 and srv.stats.batch_answered == 9
        assert "recorded as in_progress" in capsys.readouterr().err
    assert record(out)["status"] == "completed"
    if command == "generate":
        assert len(predictions(out)) == 9
    else:
        rows = [json.loads(x) for x in (out / "judgments.jsonl").read_text().splitlines()]
        assert len(rows) == 9 and all(r["status"] == "scored" for r in rows)
