"""A dialogue printed for a person: profile, situation, then each turn with its four spans."""

from __future__ import annotations

import textwrap

from kardiabench.records import Dialogue
from kardiabench.spans import SPAN_NAMES, parse_spans


def format_dialogue(d: Dialogue, width: int = 100) -> str:
    def wrap(s: str, indent: str = "    ") -> str:
        return textwrap.fill(
            " ".join(s.split()), width, initial_indent=indent, subsequent_indent=indent
        )

    out = [
        f"dialogue {d.dialogue_id}  ({d.source})" if d.source else f"dialogue {d.dialogue_id}",
        f"persona {d.persona_id}  MBTI {d.mbti}  target emotion {d.emotion}",
        "",
        "profile:",
    ]
    out += [textwrap.indent(line, "    ") for line in d.person.splitlines()]
    out += ["", "situation:", wrap(d.situation), ""]
    turn = 0
    for m in d.messages[1:] if d.messages and d.messages[0].role == "system" else d.messages:
        if m.role == "user":
            out += [f"[turn {turn}] user:", wrap(m.content)]
        else:
            parsed = parse_spans(m.content)
            out.append(f"[turn {turn}] assistant:")
            for name in SPAN_NAMES:
                out.append(wrap(f"{name}: {parsed.spans[name] or '—'}", "    "))
            out.append("")
            turn += 1
    return "\n".join(out).rstrip()
