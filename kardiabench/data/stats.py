"""The paper's split table for any source: dialogues, turns, profiles, lengths, emotion labels.

Lengths are in whitespace-separated words (the paper does not state its unit).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from functools import partial

from kardiabench.data.expand import expand
from kardiabench.records import Dialogue


@dataclass
class SplitStats:
    split: str
    dialogues: int = 0
    turns: int = 0
    profiles: int = 0
    avg_turns: float = 0.0
    # query, understanding, reasoning, response
    avg_words: dict[str, float] = field(default_factory=dict)
    # turn-level gold labels, most frequent first
    emotions: dict[str, int] = field(default_factory=dict)

    def to_dict(self) -> dict:
        return self.__dict__.copy()


def split_stats(split: str, dialogues: list[Dialogue]) -> SplitStats:
    words = Counter()
    emotions: Counter = Counter()
    turns = 0
    for item in expand(dialogues, "response"):
        turns += 1
        words["query"] += len(item.user_message.split())
        for name in ("understanding", "reasoning", "response"):
            words[name] += len(getattr(item.gold, name).split())
        emotions[item.gold_emotion] += 1
    n = max(turns, 1)
    return SplitStats(
        split=split,
        dialogues=len(dialogues),
        turns=turns,
        profiles=len({d.persona_id for d in dialogues}),
        avg_turns=round(turns / max(len(dialogues), 1), 2),
        avg_words={
            k: round(words[k] / n, 1) for k in ("query", "understanding", "reasoning", "response")
        },
        emotions=dict(emotions.most_common()),
    )


def _avg_words(name: str, s: SplitStats) -> str:
    return f"{s.avg_words.get(name, 0):.1f}"


def format_table(stats: list[SplitStats]) -> str:
    rows = [
        ("dialogues", lambda s: f"{s.dialogues:,}"),
        ("turns (QA pairs)", lambda s: f"{s.turns:,}"),
        ("profiles", lambda s: f"{s.profiles:,}"),
        ("avg turns / dialogue", lambda s: f"{s.avg_turns:.2f}"),
        *[
            (f"avg words: {k}", partial(_avg_words, k))
            for k in ("query", "understanding", "reasoning", "response")
        ],
        ("emotion labels used", lambda s: f"{len(s.emotions)}"),
    ]
    head = ["", *[s.split for s in stats]]
    body = [[name, *[f(s) for s in stats]] for name, f in rows]
    widths = [max(len(r[i]) for r in [head, *body]) for i in range(len(head))]
    lines = [
        "  ".join(
            c.ljust(w) if i == 0 else c.rjust(w)
            for i, (c, w) in enumerate(zip(r, widths, strict=True))
        )
        for r in [head, *body]
    ]
    lines.insert(1, "  ".join("-" * w for w in widths))
    out = ["\n".join(lines), "", "emotion distribution (turn-level gold labels):"]
    labels = sorted(
        {e for s in stats for e in s.emotions},
        key=lambda e: -sum(s.emotions.get(e, 0) for s in stats),
    )
    for e in labels:
        cells = []
        for s in stats:
            c = s.emotions.get(e, 0)
            cells.append(f"{c:>8,} ({100 * c / max(s.turns, 1):5.1f}%)")
        out.append(f"  {e:<14}" + "  ".join(cells))
    return "\n".join(out)
