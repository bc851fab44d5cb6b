"""Small builders shared by tests: KardiaBench-shaped dialogues written to a folder, and the command
line of a CLI child process that a test interrupts."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from kardiabench.spans import render_spans

SYSTEM = "You are a warm companion.\n\nUser profile:\nMBTI: {mbti}\nAbout: {user}\n\nSituation: {situation}"
EMOS = ["sad", "hopeful", "anxious", "grateful", "lonely", "proud"]


def make_dialogue(user: str, n_turns: int = 3, emotions: list[str] | None = None, mbti: str = "INFP", style: str = "special") -> dict:
    emotions = emotions or [EMOS[(hash(user) + k) % len(EMOS)] for k in range(n_turns)]
    situation = f"{user} is worried about a job interview next week"
    msgs = [{"role": "system", "content": SYSTEM.format(mbti=mbti, user=user, situation=situation)}]
    for k in range(n_turns):
        msgs.append({"role": "user", "content": f"I am {user} and turn {k}: my interview is soon and I keep thinking about it"})
        spans = {"understanding": f"{user} worries {k}", "reasoning": "validate then ask", "emotion": emotions[k % len(emotions)], "response": f"That sounds hard, {user}. Tell me more ({k})."}
        msgs.append({"role": "assistant", "content": render_spans(spans, style)})
    return {"person": f"MBTI: {mbti}\nAbout: {user}", "mbti": mbti, "emotion": emotions[0], "situation": situation, "anon_username": user, "messages": msgs}


def write_dataset(folder: Path, train_users=("a", "b", "c", "d"), test_users=("e", "f", "g"), n_turns: int = 3) -> Path:
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
_WITH_CTRL_C = ("import runpy, signal; signal.signal(signal.SIGINT, signal.default_int_handler); "
                "runpy.run_module('kardiabench.cli', run_name='__main__', alter_sys=True)")  # fmt: skip


def cli_command(*args: str) -> list[str]:
    """`python -m kardiabench.cli ARGS` for a child process the test will send SIGINT (Ctrl-C)."""
    return [sys.executable, "-c", _WITH_CTRL_C, *args]


def started_in_background(cmd: list[str]) -> list[str]:
    """`cmd` started as a script's background job starts it, with SIGINT ignored, however this test
    process itself was started: a Ctrl-C test then proves it does not depend on that."""
    return ["bash", "-c", 'trap "" INT; exec "$@"', "bash", *cmd]
