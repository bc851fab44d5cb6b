"""Small builders shared by tests: KardiaBench-shaped dialogues written to a folder, and the command
line of a CLI child process that a test interrupts."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from kardiabench.report import embedded_items
from kardiabench.spans import render_spans

SYSTEM = "You are a warm companion.\n\nUser profile:\nMBTI: {mbti}\nAbout: {user}\n\nSituation: {situation}"
EMOS = ["sad", "hopeful", "anxious", "grateful", "lonely", "proud"]


def make_dialogue(
    user: str,
    n_turns: int = 3,
    emotions: list[str] | None = None,
    mbti: str = "INFP",
    style: str = "special",
) -> dict:
    emotions = emotions or [EMOS[(hash(user) + k) % len(EMOS)] for k in range(n_turns)]
    situation = f"{user} is worried about a job interview next week"
    msgs = [{"role": "system", "content": SYSTEM.format(mbti=mbti, user=user, situation=situation)}]
    for k in range(n_turns):
        msgs.append(
            {
                "role": "user",
                "content": f"I am {user} and turn {k}: my interview is soon and I keep thinking about it",
            }
        )
        spans = {
            "understanding": f"{user} worries {k}",
            "reasoning": "validate then ask",
            "emotion": emotions[k % len(emotions)],
            "response": f"That sounds hard, {user}. Tell me more ({k}).",
        }
        msgs.append({"role": "assistant", "content": render_spans(spans, style)})
    return {
        "person": f"MBTI: {mbti}\nAbout: {user}",
        "mbti": mbti,
        "emotion": emotions[0],
        "situation": situation,
        "anon_username": user,
        "messages": msgs,
    }


def write_dataset(
    folder: Path, train_users=("a", "b", "c", "d"), test_users=("e", "f", "g"), n_turns: int = 3
) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name, users in (("train", train_users), ("test", test_users)):
        with (folder / f"{name}.jsonl").open("w") as fh:
            for u in users:
                fh.write(json.dumps(make_dialogue(u, n_turns)) + "\n")
    return folder


# Python installs its KeyboardInterrupt handler at start-up only when SIGINT is not ignored, and a
# job started in the background by a script (`cmd &`, `nohup … &`) inherits it ignored: the CLI's
# Ctrl-C path would never run. The child puts Python's handler back first, as an interactive start
# has it. (Not a preexec_fn: that runs Python code between fork and exec, unsafe beside the fake
# server's thread.) The CLI itself keeps an inherited "ignore", as every program should.
_WITH_CTRL_C = (
    "import runpy, signal; signal.signal(signal.SIGINT, signal.default_int_handler); "
    "runpy.run_module('kardiabench.cli', run_name='__main__', alter_sys=True)"
)


def cli_command(*args: str) -> list[str]:
    """`python -m kardiabench.cli ARGS` for a child process the test will send SIGINT (Ctrl-C)."""
    return [sys.executable, "-c", _WITH_CTRL_C, *args]


def started_in_background(cmd: list[str]) -> list[str]:
    """`cmd` started as a script's background job starts it, with SIGINT ignored, however this test
    process itself was started: a Ctrl-C test then proves it does not depend on that."""
    return ["bash", "-c", 'trap "" INT; exec "$@"', "bash", *cmd]


# --------------------------------------------------------------------------- finding dataset text

LEAK_WINDOW = 30  # a passage of this many characters of the data is a leak


def dataset_strings(folder: Path) -> list[str]:
    """Every text of every split file in `folder`: each persona, situation, system and user message,
    and each span of an assistant message of LEAK_WINDOW characters or more (its tags are the public
    format, not the data's text; a shorter span, an emotion label say, is a passage too short to leak)."""
    import re

    from kardiabench.spans import span_markers

    tags = re.compile(
        "|".join(re.escape(t) for t in (*span_markers("special"), *span_markers("xml")))
    )
    out = []
    for path in sorted(folder.glob("*.jsonl")):
        for line in path.read_text().splitlines():
            rec = json.loads(line)
            out += [rec["person"], rec["situation"]]
            for m in rec["messages"]:
                parts = (
                    [p.strip() for p in tags.split(m["content"])]
                    if m["role"] == "assistant"
                    else [m["content"]]
                )
                out += [
                    p for p in parts if len(p) >= LEAK_WINDOW or (p and m["role"] != "assistant")
                ]
    return out


def leaks(strings: list[str], files: dict[str, bytes]) -> list[tuple[str, str]]:
    """(file, passage) for every string of `strings`, or LEAK_WINDOW-character passage of one, found
    in `files` (name → bytes) as written, HTML-unescaped or inside a JSON string; whitespace runs
    count as one space."""
    import html

    def norm(text: str) -> str:
        return " ".join(text.split())

    whole = {norm(s) for s in strings}
    windows = {w[i : i + LEAK_WINDOW] for w in whole for i in range(len(w) - LEAK_WINDOW + 1)}
    found = []
    for name, data in files.items():
        text = data.decode("utf-8", errors="replace")
        objs = (
            [json.loads(line) for line in text.splitlines() if line.strip()]
            if name.endswith(".jsonl")
            else []
        )
        objs += [json.loads(text)] if name.endswith(".json") else []
        # a report's compressed items
        objs += (
            [embedded_items(text)] if name.endswith(".html") and 'id="items-data"' in text else []
        )
        hay = norm(
            "\n".join([text, html.unescape(text), *(s for o in objs for s in _json_strings(o))])
        )
        found += [(name, s) for s in whole if len(s) < LEAK_WINDOW and s in hay]
        found += [
            (name, hay[i : i + LEAK_WINDOW])
            for i in range(len(hay) - LEAK_WINDOW + 1)
            if hay[i : i + LEAK_WINDOW] in windows
        ]
    return found


def report_text(page: Path | bytes) -> str:
    """A report page's HTML (a file, or its bytes), then every text of the items it holds
    compressed (what its script shows page by page), one a line: what a reader can see."""
    html = (page if isinstance(page, bytes) else page.read_bytes()).decode("utf-8")
    return "\n".join([html, *_json_strings(embedded_items(html))])


def report_rows(page: Path) -> list[dict]:
    """The item rows a report page holds: {"cells": {column: text or lines}, "flags": {filter: bool},
    "bad": [columns shown as bad]}."""
    block = embedded_items(page.read_text(encoding="utf-8"))
    return [
        {
            "cells": dict(zip(block["head"], r[2:], strict=True)),
            "flags": {k: bool(r[0] >> i & 1) for i, k in enumerate(block["filters"])},
            "bad": [h for i, h in enumerate(block["head"]) if r[1] >> i & 1],
        }
        for r in block["rows"]
    ]


def _json_strings(obj) -> list[str]:
    if isinstance(obj, str):
        return [obj]
    if isinstance(obj, dict):
        return [s for k, v in obj.items() for s in (k, *_json_strings(v))]
    if isinstance(obj, list):
        return [s for v in obj for s in _json_strings(v)]
    return []
