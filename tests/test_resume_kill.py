"""Kill the generation process with SIGKILL mid-run, run the same command again: nothing is lost,
nothing finished is requested twice, and the result equals an uninterrupted run."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest
from helpers import write_dataset

from kardiabench.data import expand, load_dialogues
from kardiabench.rundir import read_jsonl_tolerant
from kardiabench.tasks import load_task
from kardiabench.testing.fake_openai import FakeConfig, FakeOpenAIServer, request_key


def generate_cmd(data, out, url):
    return [sys.executable, "-m", "kardiabench.cli", "generate", "--model", "openai:fake-model", "--base-url", url,
            "--data", str(data), "--output", str(out), "--concurrency", "2", "--no-cache", "--no-progress"]  # fmt: skip


@pytest.mark.slow
def test_sigkill_then_resume_equals_uninterrupted_run(tmp_path):
    data = write_dataset(tmp_path / "data", test_users=tuple("efghijkl"), n_turns=4)  # 32 items
    items = list(expand(load_dialogues(str(data), "test").dialogues))
    task = load_task("kardiabench")
    key_of = {it.item_id: request_key(task.messages(it)) for it in items}
    env = {**os.environ, "OPENAI_API_KEY": "sk-test-not-a-secret"}

    with FakeOpenAIServer(FakeConfig(latency=0.15)) as srv:
        out = tmp_path / "killed"
        proc = subprocess.Popen(generate_cmd(data, out, srv.url), env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        preds = out / "predictions.jsonl"
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if preds.exists() and len(read_jsonl_tolerant(preds)) >= 10:
                break
            time.sleep(0.02)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        finished_before = {r["item_id"] for r in read_jsonl_tolerant(preds)}
        assert 10 <= len(finished_before) < len(items)

        r = subprocess.run(generate_cmd(data, out, srv.url), env=env, capture_output=True, text=True, timeout=120)
        assert r.returncode == 0, r.stderr
        assert f"resuming: {len(finished_before)} of {len(items)}" in r.stderr
        for item_id in finished_before:
            assert srv.stats.served[key_of[item_id]] == 1, "a finished item was requested again"
        # at most the requests in flight at the kill were answered twice
        assert sum(srv.stats.served.values()) <= len(items) + 2

        clean = tmp_path / "clean"
        r = subprocess.run(generate_cmd(data, clean, srv.url), env=env, capture_output=True, text=True, timeout=120)
        assert r.returncode == 0, r.stderr

    resumed = {row["item_id"]: row["raw_output"] for row in read_jsonl_tolerant(preds)}
    uninterrupted = {row["item_id"]: row["raw_output"] for row in read_jsonl_tolerant(clean / "predictions.jsonl")}
    assert len(resumed) == len(items)
    assert resumed == uninterrupted
    # the file is valid JSONL end to end (no torn line left behind)
    for line in preds.read_text().splitlines():
        json.loads(line)


@pytest.mark.slow
def test_ctrl_c_stops_cleanly_and_says_how_to_resume(tmp_path):
    data = write_dataset(tmp_path / "data", test_users=tuple("efghijkl"), n_turns=4)
    env = {**os.environ, "OPENAI_API_KEY": "sk-test-not-a-secret"}
    with FakeOpenAIServer(FakeConfig(latency=0.2)) as srv:
        out = tmp_path / "run"
        proc = subprocess.Popen(generate_cmd(data, out, srv.url), env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        preds = out / "predictions.jsonl"
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not (preds.exists() and len(read_jsonl_tolerant(preds)) >= 4):
            time.sleep(0.02)
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=30)
    assert proc.returncode == 130
    assert "run the same command again to resume" in err and "Traceback" not in err
    rows = [json.loads(line) for line in preds.read_text().splitlines()]  # every line complete
    assert 4 <= len(rows) < 32
