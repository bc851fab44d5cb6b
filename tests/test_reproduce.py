"""`kardiabench reproduce paper` end to end on a small dataset, every system and the judge sent to
the scripted local server (--base-url): cost estimate first, six runs, a built leaderboard, and a
second call that resumes without a request."""

from __future__ import annotations

import json

from helpers import write_dataset

from kardiabench.cli import main
from kardiabench.reproduce import load_config
from kardiabench.testing.fake_openai import FakeConfig, FakeOpenAIServer

NAMES = ["gpt-4o", "deepseek-v3", "deepseek-r1", "gemini-flash", "qwen2.5-7b-instruct", "kardia-r1"]


def test_shipped_paper_config_lists_the_papers_systems():
    doc = load_config("paper")
    assert [s.name for s in doc["systems"]] == NAMES
    assert doc["judge"]["spec"] == "openai:gpt-5-mini"
    models = {s.name: s.model for s in doc["systems"]}
    assert (
        models["qwen2.5-7b-instruct"] == "vllm:Qwen/Qwen2.5-7B-Instruct"
        and models["kardia-r1"] == "vllm:Jhcircle/Kardia-R1"
    )
    assert all(s.base_url for s in doc["systems"] if s.name.startswith(("deepseek", "gemini")))


def test_reproduce_paper_on_the_scripted_server(tmp_path, monkeypatch, capsys):
    for var in ("OPENAI_API_KEY", "DEEPSEEK_API_KEY", "GEMINI_API_KEY"):
        monkeypatch.setenv(var, "sk-local-test")
    data = write_dataset(tmp_path / "data")
    out, board = tmp_path / "runs", tmp_path / "lb"
    argv = [
        "reproduce",
        "paper",
        "--limit",
        "4",
        "--data",
        str(data),
        "--output",
        str(out),
        "--leaderboard",
        str(board),
        "--cache",
        str(tmp_path / "cache.sqlite"),
    ]
    with FakeOpenAIServer(FakeConfig()) as srv:
        assert main([*argv, "--base-url", srv.url, "--dry-run"]) == 0
        assert srv.stats.requests == 0 and not out.exists()
        dry = capsys.readouterr().err
        assert dry.count("dry run for openai:") == 6 and dry.count("generation cost") == 6

        assert main([*argv, "--base-url", srv.url]) == 0
        # every estimate was made before any system ran: each still had its 4 items to request
        assert capsys.readouterr().err.count("(4 still to request") == 6
        sent = srv.stats.requests
        # 4 generations per system; the scripted replies do not depend on the model, so the judge's
        # requests repeat and its verdicts come from the response cache after the first system
        assert sent == 6 * 4 + 4

        # resumes: everything is in the run folders
        assert main([*argv, "--base-url", srv.url]) == 0
        assert srv.stats.requests == sent
        assert capsys.readouterr().err.count("(0 still to request") == 6
    for name in NAMES:
        results = json.loads((out / name / "results.json").read_text())
        assert results["data"]["n_items"] == 4 and results["judge"]["spec"] == "openai:gpt-5-mini"
    entries = sorted(p.name for p in (board / "entries").glob("*.json"))
    assert len(entries) == 6
    assert (board / "site" / "index.html").is_file() and (
        board / "plots" / "radar-G1.png"
    ).is_file()
    md = (board / "leaderboard.md").read_text()
    # the run and its reported row
    assert "openai:Jhcircle/Kardia-R1" in md and "Kardia-R1 (Qwen2.5-7B)" in md
    # its delta row, marked a subset
    assert "| G1 | openai:Jhcircle/Kardia-R1 † | Kardia-R1 (Qwen2.5-7B) |" in md
