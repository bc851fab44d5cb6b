"""docs/sample/ (the README's sample leaderboard, radar and report) is what `leaderboard/make_sample.sh`
writes with today's code: the script is run into a temporary folder and its files compared with the
committed ones, after normalising what differs between any two runs (dates, the harness version and
commit, generation speed, the scripted server's port). The README's table is docs/sample's."""

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "docs" / "sample"
FILES = ("leaderboard.md", "report.html", "radar.png")
VOLATILE = [
    (re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?([+-]\d\d:\d\d|Z)?"), "DATE"),
    (re.compile(r"kardiabench [0-9][^\s<@]* @ [^\s<]+"), "kardiabench VERSION @ COMMIT"),
    (re.compile(r"[\d,]+(\.\d+)? tokens/s"), "N tokens/s"),
    (re.compile(r"127\.0\.0\.1:\d+"), "127.0.0.1:PORT"),
]
STALE = "docs/sample/{} is stale: run `bash leaderboard/make_sample.sh` and commit docs/sample/ (and README's table)"


def normalised(path: Path) -> bytes:
    if path.suffix == ".png":
        return path.read_bytes()
    text = path.read_text(encoding="utf-8")
    for pattern, stand_in in VOLATILE:
        text = pattern.sub(stand_in, text)
    return text.rstrip().encode()


def table_rows(markdown: str) -> list[str]:
    # the ranked rows
    return [line for line in markdown.splitlines() if re.match(r"\| G\d+ \|", line)]


def test_the_readme_shows_the_sample_table():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    rows = table_rows((SAMPLE / "leaderboard.md").read_text(encoding="utf-8"))
    assert len(rows) == 4 and table_rows(readme) == rows, STALE.format(
        "leaderboard.md's table in README.md"
    )


def test_normalising_keeps_what_is_not_volatile():
    text = "created 2026-12-05T17:14:56+00:00 kardiabench 0.1.0 @ 6cd8f342 at 127.0.0.1:8217; 4,296.9 tokens/s; n 110"
    for pattern, stand_in in VOLATILE:
        text = pattern.sub(stand_in, text)
    assert text == "created DATE kardiabench VERSION @ COMMIT at 127.0.0.1:PORT; N tokens/s; n 110"


@pytest.mark.slow
def test_docs_sample_is_what_make_sample_writes_today(tmp_path):
    env = {
        **os.environ,
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",  # this python, its kardiabench
        "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
        "SAMPLE_DOCS": str(tmp_path / "docs"),
    }
    env.pop("PORT", None)
    done = subprocess.run(
        ["bash", str(ROOT / "leaderboard" / "make_sample.sh"), str(tmp_path / "work")],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    stale = [
        name for name in FILES if normalised(tmp_path / "docs" / name) != normalised(SAMPLE / name)
    ]
    assert stale == [], STALE.format(", ".join(stale))


WALKTHROUGH_OUTPUTS = [
    "runs/fake/run.json",
    "out/sft-tiny/config.json",
    "cards/gpt-5-mini/judge_card.md",
    "leaderboard/entries/x.json",
    "leaderboard/items/x.jsonl",
    "leaderboard/site/index.html",
    "leaderboard/plots/radar.png",
    "leaderboard/leaderboard.md",
    "leaderboard/leaderboard.tex",
    "leaderboard/leaderboard-1col.tex",
    "leaderboard/leaderboard.csv",
    "leaderboard/build.json",
    "leaderboard/paper/site/index.html",
    "studies/r1-vs-4o/key.json",
    "kardiabench/__pycache__/api.cpython-311.pyc",
    ".pytest_cache/README.md",
    "kardiabench.egg-info/PKG-INFO",
]


def test_the_walkthrough_leaves_the_checkout_clean():
    if not (ROOT / ".git").exists():
        pytest.skip("not a git checkout")
    done = subprocess.run(
        ["git", "check-ignore", "--no-index", *WALKTHROUGH_OUTPUTS],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert done.stdout.splitlines() == WALKTHROUGH_OUTPUTS  # every one ignored
    kept = [
        "leaderboard/reported.yaml",
        "leaderboard/paper.yaml",
        "leaderboard/make_sample.sh",
        "docs/sample/leaderboard.md",
    ]
    # none
    assert (
        subprocess.run(
            ["git", "check-ignore", "--no-index", *kept], cwd=ROOT, capture_output=True
        ).returncode
        == 1
    )
