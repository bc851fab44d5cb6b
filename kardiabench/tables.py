"""Markdown tables, rendered in one place (run summaries, comparisons, judge agreement)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

_RULE = {"l": "---", "r": "---:", "c": ":---:"}


def markdown_table(headers: Sequence[str], rows: Iterable[Sequence[object]], align: str = "") -> str:
    """`| a | b |` lines under a header and its rule; `align` has one letter per column (l, r, c;
    missing letters are l). Cells are shown with str(): format numbers before."""
    rule = "|" + "".join(_RULE[a] + "|" for a in align.ljust(len(headers), "l"))
    lines = [_row(headers), rule, *(_row(r) for r in rows)]
    return "\n".join(lines)


def _row(cells: Sequence[object]) -> str:
    return "| " + " | ".join(str(c) for c in cells) + " |"
