"""The four-span contract: parse, diagnose and render understanding / reasoning / emotion / response.

This is the only parser of model output in the project. Scoring, the training format reward and the
data validator all call `parse_spans`, so "well formed" means the same thing everywhere.

Two tag styles are read, and may even be mixed in one output:
  special: <|understanding_begin|> ... <|understanding_end|>   (paper, model card)
  xml:     <understanding> ... </understanding>                 (dataset card)
A leading reasoning trace (<think> ... </think>, as emitted by R1-style models) is removed first and
kept apart in `ParsedOutput.thinking`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Literal

SPAN_NAMES: tuple[str, ...] = ("understanding", "reasoning", "emotion", "response")
TagStyle = Literal["special", "xml"]
PARSER_VERSION = "1"

_NAMES = "|".join(SPAN_NAMES)
_TAG = re.compile(rf"<\|({_NAMES})_(begin|end)\|>|<(/?)({_NAMES})\s*>", re.IGNORECASE)
_THINK_OPEN = re.compile(r"^\s*<think>", re.IGNORECASE)
_THINK_CLOSE = re.compile(r"</think>", re.IGNORECASE)
_FIRST_OPEN = re.compile(r"<\|understanding_begin\|>|<understanding\s*>", re.IGNORECASE)


class Issue(StrEnum):
    """What can be wrong with one output's spans. Values are stable: they appear in results files."""

    MISSING = "missing"  # the span never opens
    EMPTY = "empty"  # present, but only whitespace inside
    DUPLICATED = "duplicated"  # opened more than once (the first occurrence is kept)
    # present spans are not in understanding→reasoning→emotion→response order
    OUT_OF_ORDER = "out_of_order"
    # opened and never closed (its text runs to the next tag or the end)
    UNTERMINATED = "unterminated"
    STRAY_CLOSE = "stray_close"  # a closing tag with no matching open span
    TEXT_OUTSIDE = "text_outside"  # non-whitespace text before, between or after the spans
    TRUNCATED = "truncated"  # generation stopped at the token limit
    UNTERMINATED_THINK = "unterminated_think"  # <think> opened and never closed


# An output is well formed when none of these occur: the paper's format reward ("all four spans
# present, in order, non-empty"), with unterminated and duplicated spans counted as not present once.
BLOCKING_ISSUES = frozenset(
    {
        Issue.MISSING,
        Issue.EMPTY,
        Issue.DUPLICATED,
        Issue.OUT_OF_ORDER,
        Issue.UNTERMINATED,
        Issue.UNTERMINATED_THINK,
    }
)


@dataclass(frozen=True, slots=True)
class SpanIssue:
    kind: Issue
    span: str | None = None  # which span, when the issue belongs to one
    detail: str = ""

    def __str__(self) -> str:
        where = f"{self.span}: " if self.span else ""
        return f"{where}{self.kind.value}{' (' + self.detail + ')' if self.detail else ''}"


@dataclass(frozen=True, slots=True)
class ParsedOutput:
    spans: dict[str, str | None]  # stripped text of each span; None when missing
    issues: tuple[SpanIssue, ...] = ()
    style: Literal["special", "xml", "mixed"] | None = None
    thinking: str | None = None  # the stripped <think> trace, if any
    order: tuple[str, ...] = field(default=())  # span names in the order they first appeared

    @property
    def well_formed(self) -> bool:
        """All four spans present, terminated, unique, in order and non-empty."""
        return not any(i.kind in BLOCKING_ISSUES for i in self.issues)

    @property
    def issue_kinds(self) -> set[Issue]:
        return {i.kind for i in self.issues}

    def get(self, name: str) -> str | None:
        return self.spans.get(name)


def strip_think(text: str) -> tuple[str, str | None, bool]:
    """Remove a leading <think>…</think> trace. Returns (rest, trace, unterminated).

    A bare `</think>` with no opening tag (templates that put `<think>` in the prompt) also ends a
    trace, unless span tags precede it and no new set of spans follows it (then it is stray text
    after or inside the spans). An opening tag with no close means the whole output is an
    unfinished trace.
    """
    close = _THINK_CLOSE.search(text)
    opened = _THINK_OPEN.match(text)
    if close and (
        opened or not _TAG.search(text, 0, close.start()) or _FIRST_OPEN.search(text, close.end())
    ):
        start = opened.end() if opened else 0
        return text[close.end() :], text[start : close.start()].strip(), False
    if opened:
        return "", text[opened.end() :].strip(), True
    return text, None, False


def parse_spans(text: str | None, *, finish_reason: str | None = None) -> ParsedOutput:
    """Parse one model output. Never raises; every problem becomes a `SpanIssue`."""
    text = text or ""
    issues: list[SpanIssue] = []
    body, thinking, think_open = strip_think(text)
    if think_open:
        issues.append(SpanIssue(Issue.UNTERMINATED_THINK))

    spans: dict[str, str | None] = dict.fromkeys(SPAN_NAMES)
    seen: list[str] = []
    styles: set[str] = set()
    outside: list[str] = []
    current: str | None = None
    content_start = 0
    cursor = 0  # end of the last tag consumed

    def close_current(end: int, terminated: bool) -> None:
        nonlocal current
        assert current is not None
        if not terminated:
            issues.append(SpanIssue(Issue.UNTERMINATED, current))
        if spans[current] is None:
            spans[current] = body[content_start:end].strip()
        current = None

    for m in _TAG.finditer(body):
        if m.group(1):
            name, is_open, style = m.group(1).lower(), m.group(2).lower() == "begin", "special"
        else:
            name, is_open, style = m.group(4).lower(), not m.group(3), "xml"
        styles.add(style)
        if current is None and m.start() > cursor:
            outside.append(body[cursor : m.start()])
        if is_open:
            if current is not None:
                close_current(m.start(), terminated=False)
            if name in seen:
                issues.append(SpanIssue(Issue.DUPLICATED, name))
            else:
                seen.append(name)
            current, content_start = name, m.end()
        elif current == name:
            close_current(m.start(), terminated=True)
        else:
            if current is not None:
                close_current(m.start(), terminated=False)
            issues.append(SpanIssue(Issue.STRAY_CLOSE, name))
        cursor = m.end()

    if current is not None:
        close_current(len(body), terminated=False)
    elif cursor < len(body):
        outside.append(body[cursor:])

    stray = " ".join(s.strip() for s in outside if s.strip())
    if stray:
        issues.append(SpanIssue(Issue.TEXT_OUTSIDE, None, _clip(stray)))
    for name in SPAN_NAMES:
        if spans[name] is None:
            issues.append(SpanIssue(Issue.MISSING, name))
        elif not spans[name]:
            issues.append(SpanIssue(Issue.EMPTY, name))
    present_order = [n for n in seen]
    if present_order != sorted(present_order, key=SPAN_NAMES.index):
        issues.append(SpanIssue(Issue.OUT_OF_ORDER, None, ">".join(present_order)))
    if finish_reason == "length":
        issues.append(SpanIssue(Issue.TRUNCATED))

    style = None if not styles else ("mixed" if len(styles) > 1 else styles.pop())
    return ParsedOutput(spans, tuple(issues), style, thinking, tuple(seen))  # type: ignore[arg-type]


def render_spans(spans: Mapping[str, str], style: TagStyle = "special", sep: str = "\n") -> str:
    """Write spans in canonical order, in one tag style. Missing spans are left out."""
    parts = []
    for name in SPAN_NAMES:
        if name not in spans or spans[name] is None:
            continue
        if style == "special":
            parts.append(f"<|{name}_begin|>{spans[name]}<|{name}_end|>")
        else:
            parts.append(f"<{name}>{spans[name]}</{name}>")
    return sep.join(parts)


def span_markers(style: TagStyle = "special") -> list[str]:
    """The eight tag strings of a style (the special ones are added as tokens to HF tokenizers)."""
    if style == "special":
        return [f"<|{n}_{e}|>" for n in SPAN_NAMES for e in ("begin", "end")]
    return [t for n in SPAN_NAMES for t in (f"<{n}>", f"</{n}>")]


def _clip(s: str, n: int = 80) -> str:
    s = " ".join(s.split())
    return s if len(s) <= n else s[: n - 1] + "…"
