"""`kardiabench leaderboard push` through the real `huggingface_hub` client against the fake Hub
(tests/fakehub.py). huggingface_hub reads HF_ENDPOINT and HF_HUB_OFFLINE at import, so the command
runs in a subprocess pointed at the fake."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from fakehub import FakeHub
from leaderboard_runs import make_runs_in

from kardiabench.cli import main


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    runs = make_runs_in(tmp_path_factory)
    folder = tmp_path_factory.mktemp("lb") / "leaderboard"
    assert main(["leaderboard", "add", str(runs["gen"]), str(runs["qwen"]), "--leaderboard", str(folder)]) == 0
    return folder


def push(folder, hub: FakeHub, *extra: str, token: str | None = "hf_test") -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN")}
    env |= {"HF_ENDPOINT": hub.url, "HF_HUB_OFFLINE": "0", "HF_HOME": str(folder.parent / "hf_home"), "PYTHONPATH": os.getcwd()}
    if token:
        env["HF_TOKEN"] = token
    cmd = [sys.executable, "-m", "kardiabench.cli", "leaderboard", "push", "--repo", "me/kb-board", "--leaderboard", str(folder), *extra]
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120)


def test_push_uploads_card_tables_entries_and_plots_without_unredacted_reports(built):
    assert main(["leaderboard", "build", "--leaderboard", str(built), "--resamples", "100"]) == 0
    with FakeHub() as hub:
        p = push(built, hub)
        assert p.returncode == 0, p.stderr
        repo = hub.repos["me/kb-board"]
    files = set(repo.files)
    assert {"README.md", "leaderboard.csv", "leaderboard.md", "leaderboard.tex", "build.json", "plots/radar.png", "plots/radar.svg",
            "site/index.html"} <= files  # fmt: skip
    assert len([f for f in files if f.startswith("entries/")]) == 2 and len([f for f in files if f.startswith("items/")]) == 2
    assert not any(f.startswith("site/reports/") for f in files)  # they hold dialogue text
    assert "not uploaded" in p.stderr
    card = repo.files["README.md"].decode()
    assert card.startswith("---\npretty_name: KardiaBench leaderboard") and (built / "leaderboard.md").read_text() in card
    assert repo.files["leaderboard.csv"] == (built / "leaderboard.csv").read_bytes()
    assert repo.commits == ["kardiabench leaderboard (2 runs)"]
    assert all(had_token for _, method, _, had_token in hub.requests if method == "POST")


def test_push_of_a_redacted_build_includes_the_reports(built):
    assert main(["leaderboard", "build", "--leaderboard", str(built), "--redact", "--resamples", "100"]) == 0
    with FakeHub() as hub:
        p = push(built, hub)
        assert p.returncode == 0, p.stderr
        files = hub.repos["me/kb-board"].files
    reports = [f for f in files if f.startswith("site/reports/")]
    assert len(reports) == 2
    assert all(b"my interview is soon" not in files[f] for f in reports)  # the user's turns are not there
    assert json.loads(files["build.json"])["redacted"] is True


def test_push_with_a_rejected_token_is_a_one_line_error(built):
    assert main(["leaderboard", "build", "--leaderboard", str(built), "--resamples", "100"]) == 0
    with FakeHub(valid_tokens={"hf_good"}) as hub:
        p = push(built, hub, token="hf_bad")
    assert p.returncode == 2 and "Traceback" not in p.stderr
    last = p.stderr.strip().splitlines()[-1]
    assert last.startswith("error: push to me/kb-board: ") and "401 Unauthorized" in last
    assert "me/kb-board" not in hub.repos
