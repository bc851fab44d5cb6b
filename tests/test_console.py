"""The console of `kardiabench run` with its progress bar on, read as a terminal shows it: warnings
(an adapter's log warnings, Python `warnings`) each on their own line, never glued to the bar; each
bar ends on the tokens, cost and failures of the summary line printed after it; `--batch` polling
names the batch and its status on lines of their own."""

import json
import re
import warnings

import pytest
from helpers import write_dataset

from kardiabench.cli import main
from kardiabench.testing.fake_openai import FakeConfig, FakeOpenAIServer, default_reply

JUDGE = "openai:gpt-4o-mini"  # a model of the built-in price table: the judge's cost is a number
ADAPTED = "max_tokens sent as max_completion_tokens"  # the adapter's warning when the endpoint refuses max_tokens
BAR = re.compile(r"^(generate|judge) .*\d+%\|.*\| \d+/\d+ \[.*\]$")
FINAL_BAR = re.compile(
    r"^(?P<desc>(generate|judge) .*?): 100%\|.*, (?P<usage>tokens in [\d,]+ out [\d,]+, cost \S+, \d+ failed)\]$"
)
USAGE = re.compile(r"tokens in [\d,]+ out [\d,]+, cost \S+, \d+ failed")


@pytest.fixture(autouse=True)
def env(monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-local")
    monkeypatch.setenv("KARDIABENCH_BATCH_POLL", "0.01")


def screen(stderr: str) -> list[str]:
    """The lines a terminal shows for `stderr`: a carriage return goes back to the line's start,
    and what follows overwrites what was there."""
    lines = []
    for raw in stderr.split("\n"):
        shown = ""
        for part in raw.split("\r"):
            shown = part + shown[len(part) :]
        lines.append(shown.rstrip())
    return lines


def scripted(req: dict):
    """One generation request fails (HTTP 400), the first one warns (Python `warnings`), and the
    judge never gives a verdict on the items that show g's first turn (two repair rounds, then unscored)."""
    text = json.dumps(req["messages"])
    if "response_format" in req:
        return "I cannot decide." if "I am g and turn 0" in text else default_reply(req)
    last = req["messages"][-1]["content"]
    if "I am f and turn 1" in last:
        return 400, {"error": {"message": "context too long", "type": "invalid_request_error"}}
    if "I am e and turn 0" in last:
        warnings.warn("scripted server: this parameter is deprecated", UserWarning, stacklevel=1)
    return default_reply(req)


def run_with_bar(tmp_path, capsys, cfg: FakeConfig, *extra: str) -> tuple[int, list[str]]:
    data = write_dataset(tmp_path / "data")
    with FakeOpenAIServer(cfg) as srv:
        code = main(
            [
                "run",
                "--model",
                "openai:gpt-4o",
                "--base-url",
                srv.url,
                "--data",
                str(data),
                "--output",
                str(tmp_path / "out"),
                "--judge",
                JUDGE,
                "--judge-base-url",
                srv.url,
                "--no-cache",
                "--resamples",
                "20",
                *extra,
            ]
        )
    return code, screen(capsys.readouterr().err)


def test_warnings_are_never_glued_to_the_progress_bar(tmp_path, capsys):
    code, lines = run_with_bar(
        tmp_path, capsys, FakeConfig(reject_max_tokens=True, reply_fn=scripted)
    )
    assert code == 1  # one item failed for good
    bars = [line for line in lines if BAR.match(line)]
    # the bars were on
    assert {b.split(": ")[0] for b in bars} >= {"generate openai:gpt-4o", f"judge {JUDGE}"}
    adapted = [line for line in lines if ADAPTED in line]
    assert adapted == [
        f"openai:gpt-4o: max_tokens {ADAPTED[11:]} (endpoint refused max_tokens)",
        f"{JUDGE}: max_tokens {ADAPTED[11:]} (endpoint refused max_tokens)",
    ]
    [warned] = [line for line in lines if "UserWarning:" in line]
    assert warned.endswith("UserWarning: scripted server: this parameter is deprecated")
    glued = [line for line in lines if ("%|" in line or "it/s" in line) and not BAR.match(line)]
    assert glued == []


def test_each_bar_ends_on_the_numbers_of_its_summary_line(tmp_path, capsys):
    code, lines = run_with_bar(tmp_path, capsys, FakeConfig(reply_fn=scripted))
    assert code == 1
    finals = {m["desc"]: m["usage"] for m in map(FINAL_BAR.match, lines) if m}
    assert list(finals) == [
        "generate openai:gpt-4o",
        f"judge {JUDGE}",
        f"judge {JUDGE} repair 1",
        f"judge {JUDGE} repair 2",
    ]
    [generated] = [line for line in lines if line.startswith("generated ")]
    [judged] = [
        line for line in lines if line.startswith(f"judge {JUDGE}: ") and not BAR.match(line)
    ]
    assert USAGE.search(generated)[0] == finals["generate openai:gpt-4o"]
    # the last round's bar: all rounds together
    assert USAGE.search(judged)[0] == finals[f"judge {JUDGE} repair 2"]
    assert (
        finals["generate openai:gpt-4o"].endswith(", 1 failed")
        and "cost $" in finals["generate openai:gpt-4o"]
    )
    stats = json.loads((tmp_path / "out" / "run.json").read_text())["generation_stats"]
    assert finals["generate openai:gpt-4o"].startswith(
        f"tokens in {stats['prompt_tokens']:,} out {stats['completion_tokens']:,}, "
    )
    # the turns that show g's first one stayed unscored after two repairs
    assert "invalid judge output ×3" in judged


def test_batch_polling_names_the_batch_and_its_status_beside_the_bar(tmp_path, capsys):
    data = write_dataset(tmp_path / "data")
    with FakeOpenAIServer(FakeConfig(batch_polls=3)) as srv:
        assert (
            main(
                [
                    "generate",
                    "--model",
                    "openai:m",
                    "--base-url",
                    srv.url,
                    "--data",
                    str(data),
                    "--output",
                    str(tmp_path / "out"),
                    "--no-cache",
                    "--batch",
                ]
            )
            == 0
        )
    lines = screen(capsys.readouterr().err)
    polled = [line for line in lines if line.startswith("batch ")]
    assert polled[0] == "batch batch_0 (generation): submitted, 9 requests; validating"
    assert "batch batch_0 (generation): in_progress" in polled
    assert (
        polled[-1]
        == "batch batch_0 (generation) completed: 9 answered, 0 left for ordinary requests"
    )
    assert any(BAR.match(line) for line in lines)
    assert [line for line in lines if "batch_0" in line and "%|" in line] == []
