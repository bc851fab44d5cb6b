"""Small builders shared by tests: KardiaBench-shaped dialogues written to a folder."""

from __future__ import annotations

import json
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
