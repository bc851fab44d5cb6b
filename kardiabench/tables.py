"""Markdown tables, rendered in one place (run summaries, comparisons, judge agreement), and the
one way every rendering shows hidden characters (`visible`)."""

from __future__ import annotations

import unicodedata
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

_RULE = {"l": "---", "r": "---:", "c": ":---:"}


def markdown_table(
    headers: Sequence[str], rows: Iterable[Sequence[object]], align: str = ""
) -> str:
    """`| a | b |` lines under a header and its rule; `align` has one letter per column (l, r, c;
    missing letters are l). Cells are shown with str(): format numbers before."""
    rule = "|" + "".join(_RULE[a] + "|" for a in align.ljust(len(headers), "l"))
    lines = [_row(headers), rule, *(_row(r) for r in rows)]
    return "\n".join(lines)


def _row(cells: Sequence[object]) -> str:
    return "| " + " | ".join(str(c) for c in cells) + " |"


def format_interval(
    value: float | None, low: float | None = None, high: float | None = None, digits: int = 2
) -> str:
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
    return "".join(
        f"<U+{ord(c):04X}>" if unicodedata.category(c) in _HIDDEN else c for c in str(text)
    )


def agreement_tables(
    rubric: Mapping[str, Any] | None, words: Mapping[str, str]
) -> list[tuple[str, list[str], list[list[str]]]]:
    """results.json's judge agreement as (title, headers, rows) tables, cells as text, for
    summary.md and the report: between judges (`rubric.agreement`: with two or more judges) and
    between a judge's repeats (`rubric.repeat_variance`: with --judge-repeats 2 or more). Empty
    when one judge judged each item once. Every number has its n (items both sides scored). `words`:
    the metrics' names as words (scoring.metrics.METRIC_WORDS; passed in, as scoring imports this module)."""
    rubric = rubric or {}
    out = []
    rows = []
    for dim, a in (rubric.get("agreement") or {}).items():
        word = words.get(dim, dim)
        if len(a.get("pairs") or []) != 1:  # several judges: alpha over all of them, then each pair
            rows.append(
                [
                    word,
                    f"all {len(rubric.get('judges') or [])} judges",
                    str(a.get("n_items", 0)),
                    _num(a.get("alpha")),
                    "–",
                    "–",
                ]
            )
        rows += [
            [
                word,
                f"{p['a']} vs {p['b']}",
                str(p.get("n", 0)),
                _num(p.get("alpha")),
                _num(p.get("kappa")),
                _num(None if p.get("exact") is None else 100 * p["exact"], 1),
            ]
            for p in a.get("pairs") or []
        ]
    if rows:
        out.append(
            (
                "Agreement between judges",
                [
                    "dimension",
                    "judges",
                    "n",
                    "Krippendorff's alpha (ordinal)",
                    "Cohen's kappa (quadratic)",
                    "same score (%)",
                ],
                rows,
            )
        )
    rows = [
        [
            judge,
            words.get(dim, dim),
            str(v.get("n_items", 0)),
            _num(v.get("mean_variance")),
            _num(None if v.get("disagreement_rate") is None else 100 * v["disagreement_rate"], 1),
        ]
        for judge, dims in (rubric.get("repeat_variance") or {}).items()
        for dim, v in dims.items()
    ]
    if rows:
        out.append(
            (
                "Agreement of each judge with itself (repeats)",
                [
                    "judge",
                    "dimension",
                    "n",
                    "variance between repeats (mean)",
                    "items whose repeats differ (%)",
                ],
                rows,
            )
        )
    return out


def _num(v: float | None, digits: int = 2) -> str:
    return "–" if v is None else f"{v:.{digits}f}"
