"""Record validation. Each problem names the file, the 1-based line (or row) and the field."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from kardiabench.emotions import to_label
from kardiabench.records import Dialogue, Message, SourceRef
from kardiabench.spans import BLOCKING_ISSUES, parse_spans

REQUIRED_FIELDS: tuple[str, ...] = (
    "person",
    "mbti",
    "emotion",
    "situation",
    "anon_username",
    "messages",
)


@dataclass(frozen=True, slots=True)
class Problem:
    source: SourceRef
    field: str
    message: str
    kind: str  # short stable category, for counting: missing_field, roles, spans, emotion, duplicate, ...

    def __str__(self) -> str:
        return f"{self.source}: {self.field}: {self.message}"


def validate_record(raw: Any, source: SourceRef) -> tuple[Dialogue | None, list[Problem]]:
    """Check one raw record. Returns the dialogue (None if it cannot be built) and every problem."""
    problems: list[Problem] = []

    def bad(field: str, message: str, kind: str) -> None:
        problems.append(Problem(source, field, message, kind))

    if not isinstance(raw, Mapping):
        bad("<record>", f"expected a JSON object, got {type(raw).__name__}", "not_object")
        return None, problems
    for name in REQUIRED_FIELDS:
        if name not in raw or raw[name] is None:
            bad(name, "missing field", "missing_field")
        elif name != "messages" and not isinstance(raw[name], str):
            bad(name, f"expected a string, got {type(raw[name]).__name__}", "field_type")
    if "emotion" in raw and isinstance(raw["emotion"], str) and to_label(raw["emotion"]) is None:
        bad("emotion", f"{raw['emotion']!r} is not one of the 32 emotion labels", "emotion")

    messages = raw.get("messages")
    built: list[Message] = []
    turn_spans: list[dict[str, str | None]] = []
    if "messages" in raw and not isinstance(messages, list):
        bad("messages", f"expected a list, got {type(messages).__name__}", "field_type")
    elif isinstance(messages, list):
        built = _check_messages(messages, bad, turn_spans)
    if problems:
        return None, problems
    return (
        Dialogue(
            person=raw["person"],
            mbti=raw["mbti"],
            emotion=raw["emotion"],
            situation=raw["situation"],
            anon_username=raw["anon_username"],
            messages=tuple(built),
            turn_spans=tuple(turn_spans),
            source=source,
        ),
        problems,
    )


def _check_messages(messages: list, bad, turn_spans: list) -> list[Message]:
    built: list[Message] = []
    if not messages:
        bad("messages", "empty list", "roles")
        return built
    for i, m in enumerate(messages):
        where = f"messages[{i}]"
        if (
            not isinstance(m, Mapping)
            or not isinstance(m.get("role"), str)
            or not isinstance(m.get("content"), str)
        ):
            bad(where, "expected an object with string 'role' and 'content'", "field_type")
            continue
        built.append(Message(m["role"], m["content"]))
    if len(built) != len(messages):
        return built
    if built[0].role != "system":
        bad("messages[0].role", f"expected 'system', got {built[0].role!r}", "roles")
    start = 1 if built[0].role == "system" else 0
    for i in range(start, len(built)):
        expected = "user" if (i - start) % 2 == 0 else "assistant"
        if built[i].role != expected:
            bad(
                f"messages[{i}].role",
                f"roles not alternating: expected {expected!r}, got {built[i].role!r}",
                "roles",
            )
            return built
    if len(built) - start < 2:
        bad("messages", "no assistant turn", "roles")
    elif built[-1].role != "assistant":
        bad(
            f"messages[{len(built) - 1}].role",
            "dialogue ends with a user turn that has no assistant reply",
            "roles",
        )
    for i in range(start + 1, len(built), 2):
        parsed = parse_spans(built[i].content)
        turn_spans.append(parsed.spans)
        blocking = [str(x) for x in parsed.issues if x.kind in BLOCKING_ISSUES]
        if blocking:
            bad(
                f"messages[{i}].content",
                "assistant turn without the four spans: " + "; ".join(blocking),
                "spans",
            )
        elif to_label(parsed.spans["emotion"]) is None:
            bad(
                f"messages[{i}].content",
                f"emotion span {parsed.spans['emotion']!r} is not one of the 32 labels",
                "emotion",
            )
    return built
