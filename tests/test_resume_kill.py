"""Kill the generation process with SIGKILL mid-run, run the same command again: nothing is lost,
nothing finished is requested twice, and the result equals an uninterrupted run."""

import json
import os
import signal
import subprocess
import time

import pytest
from helpers import cli_command, started_in_background, write_dataset

from kardiabench.data import expand, load_dialogues
from kardiabench.jsonl import read_jsonl_tolerant
from kardiabench.tasks import load_task
from kardiabench.testing.fake_openai import FakeConfig, FakeOpenAIServer, request_key


def wait_for_predictions(proc, preds, at_least):
    """Block until `preds` holds `at_least` rows; the process must still be running then, so a
    signal sent next lands mid-run (the server is slow enough that the run cannot finish first).
    No clock: the wait ends on the file or on the process exiting."""
    while not (preds.exists() and len(read_jsonl_tolerant(preds)) >= at_least):
        assert proc.poll() is None, (
            f"generation exited ({proc.returncode}) before {at_least} predictions"
        )
        time.sleep(0.02)
    assert proc.poll() is None, "the run finished before the signal: the test proves nothing"


def generate_cmd(data, out, url):
    return cli_command(
        "generate",
        "--model",
        "openai:fake-model",
        "--base-url",
        url,
        "--data",
        str(data),
        "--output",
        str(out),
        "--concurrency",
        "2",
        "--no-cache",
        "--no-progress",
    )


@pytest.mark.slow
def test_sigkill_then_resume_equals_uninterrupted_run(tmp_path):
    data = write_dataset(tmp_path / "data", test_users=tuple("efghijkl"), n_turns=4)  # 32 items
    items = list(expand(load_dialogues(str(data), "test").dialogues))
    task = load_task("kardiabench")
    key_of = {it.item_id: request_key(task.messages(it)) for it in items}
    env = {**os.environ, "OPENAI_API_KEY": "sk-test-not-a-secret"}

    # 1 s a reply, 2 at a time: the killed run would need 16 s to finish, it is killed after ~2 s
    with FakeOpenAIServer(FakeConfig(latency=1.0)) as srv:
        out = tmp_path / "killed"
        proc = subprocess.Popen(
            generate_cmd(data, out, srv.url),
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        preds = out / "predictions.jsonl"
        wait_for_predictions(proc, preds, 4)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        finished_before = {r["item_id"] for r in read_jsonl_tolerant(preds)}
        assert 4 <= len(finished_before) < len(items)
        srv.config.latency = 0.0  # the resumed and the clean run need not be slow

        r = subprocess.run(
            generate_cmd(data, out, srv.url), env=env, capture_output=True, text=True, timeout=120
        )
        assert r.returncode == 0, r.stderr
        assert f"resuming: {len(finished_before)} of {len(items)}" in r.stderr
        for item_id in finished_before:
            assert srv.stats.served[key_of[item_id]] == 1, "a finished item was requested again"
        # at most the requests in flight at the kill were answered twice
        assert sum(srv.stats.served.values()) <= len(items) + 2

        clean = tmp_path / "clean"
        r = subprocess.run(
            generate_cmd(data, clean, srv.url), env=env, capture_output=True, text=True, timeout=120
        )
        assert r.returncode == 0, r.stderr

    resumed = {row["item_id"]: row["raw_output"] for row in read_jsonl_tolerant(preds)}
    uninterrupted = {
        row["item_id"]: row["raw_output"]
        for row in read_jsonl_tolerant(clean / "predictions.jsonl")
    }
    assert len(resumed) == len(items)
    assert resumed == uninterrupted
    # the file is valid JSONL end to end (no torn line left behind)
    for line in preds.read_text().splitlines():
        json.loads(line)


@pytest.mark.slow
def test_ctrl_c_stops_cleanly_and_says_how_to_resume(tmp_path):
    # started as a background job (SIGINT inherited as ignored), so the suite passes however it is started
    data = write_dataset(tmp_path / "data", test_users=tuple("efghijkl"), n_turns=4)
    env = {**os.environ, "OPENAI_API_KEY": "sk-test-not-a-secret"}
    # 2 s a reply, 2 at a time: the run needs 32 s; SIGINT comes once 2 items are saved (~2 s in)
    with FakeOpenAIServer(FakeConfig(latency=2.0)) as srv:
        out = tmp_path / "run"
        proc = subprocess.Popen(
            started_in_background(generate_cmd(data, out, srv.url)),
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        preds = out / "predictions.jsonl"
        wait_for_predictions(proc, preds, 2)
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "run the same command again to resume" in err and "Traceback" not in err
    rows = [json.loads(line) for line in preds.read_text().splitlines()]  # every line complete
    assert 2 <= len(rows) < 32
