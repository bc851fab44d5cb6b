"""Provenance in the run folder, through the CLI: data revision (file hashes, Hub commit), task and
prompt hashes, served model names, times, judge totals, stats kept across resumes, no secrets."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys

import pytest
from fakehub import FakeHub, FakeRepo
from helpers import write_dataset
from test_hub import FILES, REPO, hub_env

from kardiabench.cli import main
from kardiabench.generate_stage import task_block
from kardiabench.tasks import load_task
from kardiabench.testing.fake_openai import FakeConfig, FakeOpenAIServer, default_reply

API_KEY = "sk-secret-0123456789abcdefprovenance"
HF_TOKEN = "hf_secret0123456789abcdefprovenance"
SERVED = {"gen-model": "gen-model-2024-08-06", "judge-model": "judge-model-v2"}
RUN_FILES = (
    "run.json",
    "results.json",
    "items.jsonl",
    "predictions.jsonl",
    "judgments.jsonl",
    "summary.md",
    "report.html",
)


def reply(request):
    if request["model"] != "judge-model":
        return default_reply(request)
    return json.dumps(
        {"relevance": 4, "fluency": 5, "empathy": 3, "persona_consistency": 4, "safety": 5}
    )


@pytest.fixture(scope="module")
def api_run(tmp_path_factory):
    """A run with an API model and an API judge (served under other names, a secret key and an
    HF token in the environment), then the same command again: (folder, data, run.json after the
    first and after the second run, requests the server saw after each)."""
    tmp = tmp_path_factory.mktemp("prov")
    data = write_dataset(tmp / "data")
    out = tmp / "run"
    argv = [
        "run",
        "--model",
        "openai:gen-model",
        "--task",
        "kardiabench_instructed",
        "--data",
        str(data),
        "--output",
        str(out),
        "--judge",
        "openai:judge-model",
        "--no-progress",
        "--resamples",
        "50",
    ]
    with (
        pytest.MonkeyPatch.context() as mp,
        FakeOpenAIServer(FakeConfig(reply_fn=reply, api_key=API_KEY, served_names=SERVED)) as srv,
    ):
        mp.setenv("OPENAI_API_KEY", API_KEY)
        mp.setenv("HF_TOKEN", HF_TOKEN)
        argv += ["--base-url", srv.url, "--judge-base-url", srv.url]
        assert main(argv) == 0
        first, n_first = json.loads((out / "run.json").read_text()), srv.stats.requests
        assert main(argv) == 0
        second, n_second = json.loads((out / "run.json").read_text()), srv.stats.requests
    return out, data, first, second, (n_first, n_second)


def test_local_data_revision_is_the_hash_of_the_split_file(api_run):
    out, data, first, _, _ = api_run
    d = first["data"]
    assert d["files"] == ["test.jsonl"] and d["revision"] is None
    assert d["files_sha256"] == {
        "test.jsonl": hashlib.sha256((data / "test.jsonl").read_bytes()).hexdigest()[:16]
    }
    assert (
        json.loads((out / "results.json").read_text())["data"]["files_sha256"] == d["files_sha256"]
    )


def test_task_block_has_prompt_hash_and_tag_style(api_run):
    task = load_task("kardiabench_instructed")
    block = api_run[2]["task"]
    assert block == task_block(task)
    # the identity's hash, unchanged
    assert block["sha256"] == api_run[2]["generation"]["task"]["sha256"]
    assert block["tag_style"] == "special"
    prompt = json.dumps(task.prompt.model_dump(mode="json"), sort_keys=True)
    assert block["prompt_sha256"] == hashlib.sha256(prompt.encode()).hexdigest()[:16]


def test_prompt_hash_follows_the_prompt_only_and_tag_style_reads_the_instruction():
    task = load_task("kardiabench_instructed")
    xml = task.prompt.model_copy(
        update={"format_instruction": "Write <understanding>...</understanding> and so on."}
    )
    other_text = task.model_copy(update={"description": "another description"})
    assert task_block(other_text)["prompt_sha256"] == task_block(task)["prompt_sha256"]
    assert task_block(other_text)["sha256"] != task_block(task)["sha256"]
    assert task_block(task.model_copy(update={"prompt": xml}))["tag_style"] == "xml"
    assert task_block(load_task("kardiabench"))["tag_style"] is None  # no format instruction


def test_served_model_names_are_counted_for_generation_and_judge(api_run):
    out, _, first, _, _ = api_run
    n_items = first["data"]["n_items"]
    assert first["generation_stats"]["served_models"] == {"gen-model-2024-08-06": n_items}
    preds = [json.loads(x) for x in (out / "predictions.jsonl").read_text().splitlines()]
    assert len(preds) == n_items and all(p["error"] is None for p in preds)
    judgments = [json.loads(x) for x in (out / "judgments.jsonl").read_text().splitlines()]
    results = json.loads((out / "results.json").read_text())
    usage = results["rubric"]["usage"]["openai:judge-model"]
    assert (
        usage["served_models"] == {"judge-model-v2": len(judgments)} and len(judgments) == n_items
    )
    assert {j["served_model"] for j in judgments} == {"judge-model-v2"}


def test_run_json_carries_judge_totals_and_times(api_run):
    out, _, first, second, _ = api_run
    judgments = [json.loads(x) for x in (out / "judgments.jsonl").read_text().splitlines()]
    results = json.loads((out / "results.json").read_text())  # of the second run
    judge = first["judge"]
    assert judge["spec"] == "openai:judge-model" and judge["judges"] == ["openai:judge-model"]
    assert judge["rubric_version"] == results["rubric"]["rubric_version"] and judge["repeats"] == 1
    assert judge["prompt_tokens"] == sum(j["usage"]["prompt_tokens"] for j in judgments) > 0
    assert judge["completion_tokens"] == sum(j["usage"]["completion_tokens"] for j in judgments) > 0
    assert judge["requests"] == len(judgments) and judge["served_models"] == {
        "judge-model-v2": len(judgments)
    }
    assert isinstance(judge["wall_s"], float) and results["judge"] == second["judge"]
    stats = first["generation_stats"]
    assert first["created"] <= stats["started"] <= stats["finished"] <= first["scored"]


def test_resume_with_nothing_left_keeps_generation_totals(api_run):
    _, _, first, second, (n_first, n_second) = api_run
    a, b = first["generation_stats"], second["generation_stats"]
    assert a["prompt_tokens"] > 0 and a["requested"] == first["data"]["n_items"]
    assert n_second == n_first  # nothing was left to generate or judge
    for k in (
        "requested",
        "done",
        "prompt_tokens",
        "completion_tokens",
        "cost_usd",
        "served_models",
        "started",
    ):
        assert b[k] == a[k], k
    assert (a["resumes"], b["resumes"]) == (0, 1)
    assert b["finished"] >= a["finished"]
    assert second["judge"]["prompt_tokens"] == first["judge"]["prompt_tokens"]  # the same verdicts


def test_no_secret_reaches_any_file_of_the_run_folder(api_run):
    out = api_run[0]
    files = sorted(p.name for p in out.iterdir() if p.is_file())
    assert set(RUN_FILES) <= set(files)
    for name in files:
        text = (out / name).read_text(encoding="utf-8", errors="replace")
        for secret in (API_KEY, HF_TOKEN):
            assert secret not in text and secret[3:20] not in text, name


def test_hub_run_records_the_resolved_commit(tmp_path):
    out = tmp_path / "run"
    with FakeHub({REPO: FakeRepo(dict(FILES))}) as hub:
        p = subprocess.run(
            [
                sys.executable,
                "-m",
                "kardiabench.cli",
                "run",
                "--model",
                "baseline:majority",
                "--data",
                REPO,
                "--output",
                str(out),
                "--no-progress",
            ],
            env=hub_env(tmp_path / "hf", hub.url),
            capture_output=True,
            text=True,
            timeout=120,
        )
    assert p.returncode == 0, p.stderr
    data = json.loads((out / "run.json").read_text())["data"]
    # the fake Hub's X-Repo-Commit
    assert data["revision"] == hashlib.sha1(REPO.encode()).hexdigest()
    assert data["files_sha256"] == {
        "test.jsonl": hashlib.sha256(FILES["test.jsonl"]).hexdigest()[:16]
    }
