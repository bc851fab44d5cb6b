"""Test helper: scored run folders made through the real CLI, for the leaderboard and report tests.

Both baselines without a judge, and API models (one named like the paper's base model, one with a
hostile name, one on a --limit subset) plus a baseline, judged by the scripted local server.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
from helpers import write_dataset

from kardiabench.cli import main
from kardiabench.testing.fake_openai import FakeConfig, FakeOpenAIServer

HOSTILE = "<script>alert(1)</script>"
JUDGED_MODELS = {
    "gen": "openai:gen-model",
    "qwen": "openai:Qwen/Qwen2.5-7B-Instruct",
    "hostile": f"openai:{HOSTILE}",
}


def make_runs(root: Path, monkeypatch) -> dict[str, Path]:
    """name → run folder; every run scored (resamples kept small: the numbers are not the point)."""
    monkeypatch.setenv("OPENAI_API_KEY", "sk-local-test")
    data = write_dataset(root / "data", test_users=("e", "f", "g", "h"))
    runs = {}
    common = ["--data", str(data), "--no-progress", "--no-cache", "--resamples", "100"]
    for name in ("retrieval", "majority"):
        runs[name] = root / name
        assert (
            main(["run", "--model", f"baseline:{name}", "--output", str(runs[name]), *common]) == 0
        )
    with FakeOpenAIServer(FakeConfig()) as srv:
        judge = ["--judge", "openai:judge-model", "--judge-base-url", srv.url]
        for name, spec in JUDGED_MODELS.items():
            runs[name] = root / name
            assert (
                main(
                    [
                        "run",
                        "--model",
                        spec,
                        "--base-url",
                        srv.url,
                        "--output",
                        str(runs[name]),
                        *judge,
                        *common,
                    ]
                )
                == 0
            )
        runs["retrieval-judged"] = root / "retrieval-judged"
        assert (
            main(
                [
                    "run",
                    "--model",
                    "baseline:retrieval",
                    "--output",
                    str(runs["retrieval-judged"]),
                    *judge,
                    *common,
                ]
            )
            == 0
        )
        runs["subset"] = root / "subset"
        assert (
            main(
                [
                    "run",
                    "--model",
                    "openai:gen-model",
                    "--base-url",
                    srv.url,
                    "--limit",
                    "5",
                    "--output",
                    str(runs["subset"]),
                    *judge,
                    *common,
                ]
            )
            == 0
        )
    return runs


def make_runs_in(tmp_path_factory) -> dict[str, Path]:
    """make_runs for a module-scoped fixture: the API key is set only while the runs are made."""
    mp = pytest.MonkeyPatch()
    try:
        return make_runs(tmp_path_factory.mktemp("runs"), mp)
    finally:
        mp.undo()


WEAK = "openai:weak-model"
WEAK_REPLY = "WEAK REPLY: fine."


def _weak_judge(request: dict):
    """The scripted server, except that the weak model's reply says WEAK_REPLY (a third of them
    without spans) and the judge
    answers about it with no verdict (unparseable) for all but about one item in six."""
    from kardiabench.testing.fake_openai import _verdict_schema, default_reply

    text = default_reply(request)
    content = json.dumps(request.get("messages"))
    # and without its spans one time in three: Format < 100
    if request.get("model") == WEAK.split(":", 1)[1]:
        return (
            WEAK_REPLY
            if hashlib.sha256(content.encode()).digest()[1] % 3 == 0
            else text.replace("That sounds hard. I am here with you.", WEAK_REPLY)
        )
    if (
        _verdict_schema(request) is not None
        and WEAK_REPLY in content
        and hashlib.sha256(content.encode()).digest()[0] % 6
    ):
        return "no verdict today"
    return text


def make_wide_runs(root: Path, monkeypatch) -> dict[str, Path]:
    """Runs over 33 items (enough not to be "few"): both baselines without a judge, and two judged
    API models in one group, the weak one scored by the judge on only a few items."""
    monkeypatch.setenv("OPENAI_API_KEY", "sk-local-test")
    data = write_dataset(root / "data", test_users=tuple("klmnopqrstu"))
    common = ["--data", str(data), "--no-progress", "--no-cache", "--resamples", "100"]
    runs = {name: root / name for name in ("retrieval", "majority", "gen", "weak")}
    for name in ("retrieval", "majority"):
        assert (
            main(["run", "--model", f"baseline:{name}", "--output", str(runs[name]), *common]) == 0
        )
    with FakeOpenAIServer(FakeConfig(reply_fn=_weak_judge)) as srv:
        judge = ["--judge", "openai:judge-model", "--judge-base-url", srv.url]
        for name, spec in (("gen", "openai:gen-model"), ("weak", WEAK)):
            main(
                [
                    "run",
                    "--model",
                    spec,
                    "--base-url",
                    srv.url,
                    "--output",
                    str(runs[name]),
                    *judge,
                    *common,
                ]
            )
    return runs


HOSTILE_SPAN = "<img src=x onerror=\"document.title='pwned'\">"
HOSTILE_RESPONSE = "</script><script>alert(2)</script> & <b>bold</b>"
# × 10 turns: 150 items, two pages of the report's items
PAGED_USERS = tuple(f"user{i:02d}" for i in range(15))


def _two_judges(request: dict):
    """The scripted server, except that the model writes HOSTILE_SPAN and HOSTILE_RESPONSE into its
    spans, judge-b scores empathy one point higher than judge-a on about half the items (capped at
    5), so the two judges disagree some of the time, and judge-a's fluency moves by one on about
    half of its second verdicts (the request's seed is the base seed + the repeat)."""
    from kardiabench.spans import parse_spans, render_spans
    from kardiabench.testing.fake_openai import _verdict_schema, default_reply

    text = default_reply(request)
    if _verdict_schema(request) is None:
        spans = parse_spans(text).spans
        return render_spans(
            {
                **spans,
                "understanding": f"{spans['understanding']} {HOSTILE_SPAN}",
                "response": HOSTILE_RESPONSE,
            }
        )
    verdict, digest = (
        json.loads(text),
        hashlib.sha256(json.dumps(request["messages"]).encode()).digest(),
    )
    if request["model"] == "judge-b" and digest[0] % 2:
        verdict["empathy"] = min(5, verdict["empathy"] + 1)
    if request["model"] == "judge-a" and (request.get("seed") or 0) % 2 and digest[1] % 2:
        verdict["fluency"] = 2 if verdict["fluency"] == 1 else verdict["fluency"] - 1
    return json.dumps(verdict)


def make_paged_run(root: Path) -> Path:
    """A run over 150 items (more than a page of the report) whose model writes hostile markup,
    scored by two judges that sometimes disagree, each judging every item twice."""
    mp = pytest.MonkeyPatch()
    try:
        mp.setenv("OPENAI_API_KEY", "sk-local-test")
        data = write_dataset(root / "data", test_users=PAGED_USERS, n_turns=10)
        with FakeOpenAIServer(FakeConfig(reply_fn=_two_judges)) as srv:
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
                        str(root / "run"),
                        "--judge",
                        "openai:judge-a",
                        "--judge",
                        "openai:judge-b",
                        "--judge-base-url",
                        srv.url,
                        "--judge-repeats",
                        "2",
                        "--no-progress",
                        "--no-cache",
                        "--resamples",
                        "50",
                    ]
                )
                == 0
            )
    finally:
        mp.undo()
    return root / "run"


def plot_board(folder: Path):
    """(entries, board, colours) of a built leaderboard folder, as `leaderboard build` makes its plots."""
    from kardiabench.leaderboard import plots
    from kardiabench.leaderboard.entries import load_entries
    from kardiabench.leaderboard.groups import group_entries
    from kardiabench.leaderboard.reported import load_reported
    from kardiabench.leaderboard.tables import build_board

    entries = load_entries(folder)
    board = build_board(entries, group_entries(entries), load_reported(folder), n_resamples=50)
    return (
        entries,
        board,
        plots.model_colors(list(board.frame.loc[board.frame["kind"] == "run", "model"])),
    )
