"""Markdown tables, rendered in one place (run summaries, comparisons, judge agreement), and the
one way every rendering shows hidden characters (`visible`)."""

from __future__ import annotations

import unicodedata
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


def format_interval(value: float | None, low: float | None = None, high: float | None = None, digits: int = 2) -> str:
    """`75.0 [66.7, 91.7]`: a value and its CI as they are. An interval is shown by its ends, never
    as `± half-width`, because bootstrap intervals are asymmetric (`1.7 ± 2.5` would suggest a
    negative accuracy). The value alone without an interval; "–" without a value. Used by the
    leaderboard's Markdown, LaTeX and site (and meant for report.py)."""
    if value is None:
        return "–"
    if low is None or high is None:
        return f"{value:.{digits}f}"
    return f"{value:.{digits}f} [{low:.{digits}f}, {high:.{digits}f}]"


def n_note(n: int | None, n_unscored: int | None, n_items: int | None) -> str:
    """`n=5/110` (5 scored of the 110 meant to be: 105 unscored) when a number is not over all of
    its row's `n_items`, else "": tables show the row's n once and this only where it differs."""
    n, unscored = int(n or 0), int(n_unscored or 0)
    return "" if unscored == 0 and n == n_items else f"n={n}/{n + unscored}"


FEW_MARK = "¶"  # a number over few items (`few_items`); LaTeX \P
FEW_ITEMS_MIN = 30
FEW_ITEMS_SHARE = 0.5


def few_items(n: int | None, n_items: int | None) -> bool:
    """A number over fewer than 30 items, or under half of its run's items (a judge that scored 5
    of 110): shown with FEW_MARK and never in bold as a group's best."""
    n = int(n or 0)
    return n < FEW_ITEMS_MIN or (n_items is not None and n < FEW_ITEMS_SHARE * n_items)


# Unicode categories a reader cannot see: controls (line breaks included), format characters (bidi
# overrides like U+202E, zero-width joiners), line and paragraph separators.
_HIDDEN = frozenset({"Cc", "Cf", "Zl", "Zp"})


def visible(text: str) -> str:
    """`text` with every invisible or control character written as `<U+XXXX>`: a model name with
    U+202E cannot reorder what the site, the tables or the plots show, and a line break cannot end
    a LaTeX comment or a Markdown row. Every rendering applies it before its own escaping."""
    return "".join(f"<U+{ord(c):04X}>" if unicodedata.category(c) in _HIDDEN else c for c in str(text))
