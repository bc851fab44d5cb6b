"""The leaderboard as one pandas DataFrame, and its CSV, Markdown and LaTeX renderings.

One row per entry (kind "run") and per reported row of the paper (kind "reported", group "paper").
Per metric: the value, its 95% CI, its n and unscored count, whether it is over few items, whether
it is the group's best, and, for runs whose model has a reported row, the difference to it. Tables
list runs group by group (each group has its own tiers) and the reported rows last, under their own
heading: entries of different groups are never ranked in one list without the group saying so.

Every number is written by `kardiabench.tables.format_interval` (`75.0 [66.7, 91.7]`); each row
shows its n (items) once, and a number over fewer items its own `n=5/110` (`n_note`).
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import pandas as pd

from kardiabench.leaderboard.entries import Entry, LeaderboardError
from kardiabench.leaderboard.groups import Group
from kardiabench.leaderboard.reported import ReportedRow, match_reported
from kardiabench.leaderboard.tiers import assign_tiers
from kardiabench.tables import (
    FEW_ITEMS_MIN,
    FEW_ITEMS_SHARE,
    FEW_MARK,
    few_items,
    format_interval,
    n_note,
    visible,
)

# results.json key → column title; the order of every table and plot.
METRICS: dict[str, str] = {
    "emotion_accuracy": "Emo Acc (%)",
    "format_compliance": "Format (%)",
    "relevance": "Relevance",
    "fluency": "Fluency",
    "empathy": "Empathy",
    "persona_consistency": "Persona",
    "safety": "Safety",
}
# The one-column LaTeX table's metrics (the paper's headline numbers) when more are chosen.
ONE_COLUMN_METRICS = ("emotion_accuracy", "empathy", "persona_consistency")
RANK_BY = "emotion_accuracy"
SUBSET_MARK = "†"
# a judge of the model's own family scored it (results.json rubric.self_preference_risk)
SELF_PREFERENCE_MARK = "§"
# a judge of the training judge's family scored it (rubric.training_judge_risk)
TRAINING_JUDGE_MARK = "‡"
REPORTED_GROUP = "paper"
# (mark, frame column, what it means): the model-name marks of every rendering, in this order.
MODEL_MARKS = (
    (SUBSET_MARK, "subset", "evaluated on a --limit subset"),
    (
        SELF_PREFERENCE_MARK,
        "self_preference",
        "judged by a model of its own family (self-preference risk)",
    ),
    (
        TRAINING_JUDGE_MARK,
        "training_judge",
        "trained against a judge of the scoring judge's family (training-judge risk)",
    ),
)
FEW_TEXT = (
    f"over fewer than {FEW_ITEMS_MIN} items or under {FEW_ITEMS_SHARE:.0%} of the run's items"
)


@dataclass(frozen=True, slots=True)
class Board:
    """Everything a rendering needs: the frame, the group explanations, the chosen columns."""

    frame: pd.DataFrame
    groups: list[Group]
    rank_by: str
    reported_note: str  # source and confidence of the reported rows
    # the metrics the tables and the site show (`--columns`)
    columns: tuple[str, ...] = tuple(METRICS)
    # `--names`: model spec / entry id → display name
    names: Mapping[str, str] = field(default_factory=dict)


def parse_columns(text: str | Sequence[str] | None) -> tuple[str, ...]:
    """`--columns emotion_accuracy,empathy` → the metrics in that order (results.json keys, checked
    against METRICS); None → all of them."""
    if text is None:
        return tuple(METRICS)
    names = [c.strip() for c in (text.split(",") if isinstance(text, str) else text) if c.strip()]
    bad = [c for c in names if c not in METRICS]
    if bad or not names:
        raise LeaderboardError(
            f"--columns: {', '.join(map(repr, bad)) or 'nothing chosen'}: choose from {', '.join(METRICS)}"
        )
    return tuple(dict.fromkeys(names))


def display_names(
    entries: Sequence[Entry], names: Mapping[str, str] | None = None
) -> dict[str, str]:
    """entry id → the name every table, plot and the site shows: `names` (`--names FILE`) by entry
    id, else the entry's `display_name` (`leaderboard add --display-name`), else `names` by model
    spec, else the model spec. Names two entries share get the run folder's name: `NAME [FOLDER]`."""
    names = names or {}
    chosen = {
        e.entry_id: names.get(e.entry_id)
        or e.data.get("display_name")
        or names.get(e.model)
        or e.model
        for e in entries
    }
    count = (
        pd.Series(list(chosen.values()), dtype=object).value_counts().to_dict() if chosen else {}
    )
    return {
        e.entry_id: n if count[n] == 1 else f"{n} [{e.run_path.name}]"
        for e in entries
        for n in [chosen[e.entry_id]]
    }


def label(entry: Entry, entries: Sequence[Entry], names: Mapping[str, str] | None = None) -> str:
    """The entry's display name (`display_names`)."""
    return display_names(entries, names)[entry.entry_id]


def build_board(
    entries: Sequence[Entry],
    groups: list[Group],
    reported: Sequence[ReportedRow],
    *,
    rank_by: str = RANK_BY,
    n_resamples: int = 1000,
    seed: int = 0,
    unranked: Mapping[str, str] | None = None,
    columns: Sequence[str] | None = None,
    names: Mapping[str, str] | None = None,
) -> Board:
    """The frame. unranked: entry id → why it is not ranked (no predicted items): such an entry
    keeps a row in its group, after the ranked ones, with no rank, tier or values (not 0.00).
    columns: the metrics shown (all by default); names: display names (`display_names`)."""
    unranked = unranked or {}
    shown = display_names(entries, names)
    rows = []
    for group in groups:
        rankable = [e for e in group.entries if e.entry_id not in unranked]
        ranked, tiers, p_adj = assign_tiers(rankable, rank_by, n_resamples=n_resamples, seed=seed)
        left_out = [e for e in group.entries if e.entry_id in unranked]
        tiers |= dict.fromkeys((e.entry_id for e in left_out), None)
        p_adj |= dict.fromkeys((e.entry_id for e in left_out), None)
        for rank, e in enumerate([*ranked, *left_out], 1):
            why = unranked.get(e.entry_id)
            ref = match_reported(e.model, list(reported))
            data = e.results.get("data", {})
            rubric = e.results.get("rubric") or {}
            row = {
                "group": group.name,
                "rank": None if why else rank,
                "tier": tiers[e.entry_id],
                "tier_p": p_adj[e.entry_id],
                "not_ranked": why,
                "model": shown[e.entry_id],
                "spec": e.model,
                "kind": "run",
                "entry_id": e.entry_id,
                "n_items": data.get("n_items"),
                "limit": data.get("limit"),
                "subset": data.get("limit") is not None,
                "reported_as": ref.name if ref else None,
                "self_preference": bool(rubric.get("self_preference_risk")),
                "training_judge": bool(rubric.get("training_judge_risk")),
                "judge_card": card_text(rubric.get("judge_card")),
                "harness_version": (e.manifest.get("provenance") or {}).get("kardiabench"),
            }
            for m in METRICS:
                met = {} if why else e.metric(m)
                n = met.get("n") if met.get("value") is not None else None
                row |= {
                    m: met.get("value"),
                    f"{m}_ci_low": met.get("ci_low"),
                    f"{m}_ci_high": met.get("ci_high"),
                    f"{m}_n": n,
                    f"{m}_n_unscored": met.get("n_unscored") if n is not None else None,
                    f"{m}_few": n is not None and few_items(n, data.get("n_items")),
                }
                known = ref.metrics.get(m) if ref else None
                row[f"{m}_delta_reported"] = (
                    None if known is None or met.get("value") is None else met["value"] - known
                )
            rows.append(row)
    for r in reported:
        row = {
            "group": REPORTED_GROUP,
            "rank": None,
            "tier": None,
            "tier_p": None,
            "not_ranked": None,
            "model": r.name,
            "spec": None,
            "kind": "reported",
            "entry_id": None,
            "n_items": None,
            "limit": None,
            "subset": False,
            "reported_as": None,
            "self_preference": False,
            "training_judge": False,
            "judge_card": None,
            "harness_version": None,
        }
        for m in METRICS:
            row |= {
                m: r.metrics.get(m),
                f"{m}_ci_low": None,
                f"{m}_ci_high": None,
                f"{m}_n": None,
                f"{m}_n_unscored": None,
                f"{m}_few": False,
                f"{m}_delta_reported": None,
            }
        rows.append(row)
    frame = pd.DataFrame.from_records(rows)
    for m in METRICS:
        frame[f"{m}_best"] = frame.index.isin(best_rows(frame, m))
    note = f"{reported[0].source}; confidence {reported[0].confidence}" if reported else ""
    return Board(frame, groups, rank_by, note, parse_columns(columns), dict(names or {}))


# ----------------------------------------------------------------------------- cells


def num(v) -> float | None:
    return None if v is None or (isinstance(v, float) and math.isnan(v)) else float(v)


def digits(metric: str) -> int:
    """Decimals shown: 1 for percentages, 2 for 1-5 rubric means."""
    return 1 if "(%)" in METRICS[metric] else 2


@dataclass(frozen=True, slots=True)
class Cell:
    """One number of a table, in parts: each rendering lays them out its own way."""

    value: str  # "75.0", "–" when absent
    ci: str  # "[66.7, 91.7]" or ""
    note: str  # "n=5/110" where the number is not over all of the row's items, else ""
    few: bool  # over few items: FEW_MARK after the value
    best: bool  # the group's best (bold)

    def text(self) -> str:
        """`75.0¶ [66.7, 91.7] (n=5/110)`: the plain one-line form (Markdown, the site's sort key text)."""
        return (
            self.value
            + (FEW_MARK if self.few else "")
            + (f" {self.ci}" if self.ci else "")
            + (f" ({self.note})" if self.note else "")
        )


def metric_cell(row: pd.Series, metric: str) -> Cell:
    """The parts of `row`'s `metric` number, all formatted by `format_interval` and `n_note`."""
    v = num(row[metric])
    text = format_interval(
        v, num(row[f"{metric}_ci_low"]), num(row[f"{metric}_ci_high"]), digits(metric)
    )
    value, _, ci = text.partition(" ")
    n, n_items = num(row[f"{metric}_n"]), num(row["n_items"])
    note = (
        ""
        if v is None or n is None
        else n_note(
            int(n),
            int(num(row[f"{metric}_n_unscored"]) or 0),
            None if n_items is None else int(n_items),
        )
    )
    return Cell(
        value,
        ci,
        note,
        bool(row[f"{metric}_few"]) and v is not None,
        bool(row.get(f"{metric}_best", False)),
    )


def cell(row: pd.Series, metric: str) -> str:
    """`metric_cell(row, metric).text()`."""
    return metric_cell(row, metric).text()


def n_text(row: pd.Series) -> str:
    """The row's n: the items of its run ("–" for a reported row)."""
    n = num(row["n_items"])
    return "–" if n is None else str(int(n))


def best_rows(frame: pd.DataFrame, metric: str) -> list:
    """Index labels of the rows shown in bold for `metric`: per group, the ranked runs whose value
    (as displayed) is the best, when at least two ranked runs have a value not over few items and
    not all of them share that value. A number over few items is never bold."""
    out = []
    runs = frame[(frame["kind"] == "run") & frame["rank"].notna()]
    for _, sub in runs.groupby("group"):
        shown = {
            i: round(v, digits(metric))
            for i, r in sub.iterrows()
            if (v := num(r[metric])) is not None and not r[f"{metric}_few"]
        }
        if len(shown) < 2 or len(set(shown.values())) == 1:
            continue
        best = max(shown.values())
        out += [i for i, v in shown.items() if v == best]
    return out


def model_cell(row: pd.Series) -> str:
    return (
        row["model"]
        + "".join(f" {mark}" for mark, key, _ in MODEL_MARKS if row[key])
        + not_ranked_note(row)
    )


def not_ranked_note(row: pd.Series) -> str:
    """` (not ranked: WHY)` for an entry `build` does not rank, else ""."""
    why = row.get("not_ranked")
    return f" (not ranked: {why})" if isinstance(why, str) and why else ""


def card_text(card: dict | None) -> str | None:
    """A cited judge card in one line: its judges, date and checks passed."""
    if not card:
        return None
    open_ = card.get("inconclusive") or []
    verdict = (
        "passed"
        if card["passed"]
        else "; ".join(
            ([f"failed {', '.join(card['failed'])}"] if card["failed"] else [])
            + ([f"inconclusive {', '.join(open_)}"] if open_ else [])
        )
    )
    n_passed = card["n_checks"] - len(card["failed"]) - len(open_)
    return f"{', '.join(card['judges'])} ({card['created'][:10]}): {n_passed}/{card['n_checks']} checks, {verdict}"


def legend(board: Board) -> str:
    """What the numbers and marks mean, in one paragraph (Markdown and the site)."""
    return (
        f"Ranked within a group by {METRICS[board.rank_by]}; models in one tier are not separated by the paired test "
        "(docs/leaderboard.md). Values: mean [95% CI]; n: the run's items; n=k/N: this number is over k of the N "
        f"items it was meant for (N − k unscored). {FEW_MARK}: {FEW_TEXT}. Bold: the best of a group of two or more "
        f"ranked runs (not for a tie of all, nor a {FEW_MARK} number). {SUBSET_MARK}: evaluated on a --limit subset. "
        f"{SELF_PREFERENCE_MARK}: judged by a model of its own family (self-preference risk). {TRAINING_JUDGE_MARK}: "
        "trained against a judge of the scoring judge's family (training-judge risk)."
    )


def group_label(group: Group, board: Board) -> str:
    """The group's few words for a table (`Group.short`), judges by their display names."""
    return group.short_label(board.names)


# ----------------------------------------------------------------------------- CSV


def to_csv(board: Board) -> str:
    return board.frame.to_csv(index=False)


# ----------------------------------------------------------------------------- Markdown

_MD_SPECIAL = re.compile(r"([\\`*_\[\]|~])")


def md_escape(text: str) -> str:
    """Text safe in a Markdown table cell: hidden characters shown (`visible`), Markdown
    punctuation backslashed, <, >, & as entities."""
    text = visible(text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return _MD_SPECIAL.sub(r"\\\1", text)


def _md_cell(c: Cell) -> str:
    """Our own digits, brackets and marks: written as they are (`75.0 [66.7, 91.7]`), the value
    in bold when it is the group's best."""
    text = c.text()
    return text if not c.best else f"**{c.value}**" + text[len(c.value) :]


def to_markdown(board: Board) -> str:
    f, cols = board.frame, board.columns
    runs, rep = f[f["kind"] == "run"], f[f["kind"] == "reported"]
    head = ["Group", "Tier", "Model", "n", *(METRICS[m] for m in cols)]
    lines = [_md_row(head), "|" + "---|" * 3 + "---:|" * (len(cols) + 1)]
    for _, r in runs.iterrows():
        tier = "–" if pd.isna(r["tier"]) else str(int(r["tier"]))
        lines.append(
            _md_row(
                [
                    r["group"],
                    tier,
                    md_escape(model_cell(r)),
                    n_text(r),
                    *(_md_cell(metric_cell(r, m)) for m in cols),
                ]
            )
        )
    out = [*lines, "", legend(board), ""]
    out += [f"- {md_escape(g.explanation)}" for g in board.groups]
    cards = runs.dropna(subset=["judge_card"]).drop_duplicates(["group", "judge_card"])
    out += [
        f"- Judge card ({md_escape(r['group'])}): {md_escape(r['judge_card'])}"
        for _, r in cards.iterrows()
    ]
    if len(rep):
        out += [
            "",
            "Reported in the paper (not run here; other judge prompt and setup, not comparable to the rows above):",
            "",
        ]
        out += [_md_row(["Model", *(METRICS[m] for m in cols)]), "|---|" + "---:|" * len(cols)]
        out += [
            _md_row(
                [
                    md_escape(r["model"]) + " (reported)",
                    *(_md_cell(metric_cell(r, m)) for m in cols),
                ]
            )
            for _, r in rep.iterrows()
        ]
        out += ["", f"Source: {md_escape(board.reported_note)}"]
    deltas = delta_rows(board)
    if deltas:
        out += ["", "Runs against the paper's reported row of the same model (run − reported):", ""]
        out += [
            _md_row(["Group", "Model", "Reported row", *(METRICS[m] for m in cols)]),
            "|---|---|---|" + "---:|" * len(cols),
        ]
        out += [_md_row([g, md_escape(m), md_escape(ref), *ds]) for g, m, ref, ds in deltas]
    return "\n".join(out) + "\n"


def delta_rows(board: Board) -> list[tuple[str, str, str, list[str]]]:
    """(group, model, reported row name, formatted deltas of the shown columns) for each run with a reported row."""
    f = board.frame
    out = []
    for _, r in f[(f["kind"] == "run") & f["reported_as"].notna()].iterrows():
        ds = [
            "–" if (d := num(r[f"{m}_delta_reported"])) is None else f"{d:+.{digits(m)}f}"
            for m in board.columns
        ]
        out.append((r["group"], model_cell(r), r["reported_as"], ds))
    return out


def _md_row(cells: Sequence[str]) -> str:
    return "| " + " | ".join(cells) + " |"


# ----------------------------------------------------------------------------- LaTeX

_TEX = {
    "\\": r"\textbackslash{}",
    "&": r"\&",
    "%": r"\%",
    "$": r"\$",
    "#": r"\#",
    "_": r"\_",
    "{": r"\{",
    "}": r"\}",
    "~": r"\textasciitilde{}",
    "^": r"\textasciicircum{}",
    "<": r"\textless{}",
    ">": r"\textgreater{}",
}
_TEX_MARKS = {
    SUBSET_MARK: r"$^{\dagger}$",
    SELF_PREFERENCE_MARK: r"$^{\S}$",
    TRAINING_JUDGE_MARK: r"$^{\ddagger}$",
    FEW_MARK: r"$^{\P}$",
}
# a long model spec may break after these (no overfull box)
_BREAK_AFTER = frozenset("/:-_.)>]+=|@")


def tex_escape(text: str) -> str:
    """Text safe anywhere in the .tex file (cells, captions, comments): hidden characters and line
    breaks shown (`visible`), so no text can end a `%` comment line; TeX specials escaped."""
    return "".join(_TEX.get(c, c) for c in visible(text))


def tex_name(text: str) -> str:
    """`tex_escape`, with a break allowed after / : - _ . ) > and the like, so a long spec wraps in its column."""
    return "".join(
        _TEX.get(c, c) + (r"\allowbreak{}" if c in _BREAK_AFTER else "") for c in visible(text)
    )


def one_column_columns(columns: Sequence[str]) -> tuple[str, ...]:
    """The one-column table's metrics: the chosen ones when three or fewer (what fits a 219 pt
    column with CIs), else those of ONE_COLUMN_METRICS among them (the first three chosen when none is)."""
    if len(columns) <= len(ONE_COLUMN_METRICS):
        return tuple(columns)
    return tuple(m for m in columns if m in ONE_COLUMN_METRICS) or tuple(
        columns[: len(ONE_COLUMN_METRICS)]
    )


def to_latex(board: Board, *, one_column: bool = False) -> str:
    """A booktabs + tabularx table as wide as the text: `table*` over both columns of an ACL/ACM
    page (every chosen metric, \\small), or with one_column a `table` for one column (at most three
    metrics, \\footnotesize). Each run is a line of values and, under it, a \\scriptsize line with
    the run's n under the model and the CIs (and `n=k/N` where a number is over fewer items) under
    the values; the model column wraps long specs. Needs \\usepackage{booktabs,tabularx}."""
    f = board.frame
    cols = one_column_columns(board.columns) if one_column else board.columns
    ncols = len(cols) + 2
    env, size, sep = (
        ("table", r"\footnotesize", "2.5pt") if one_column else ("table*", r"\small", "3pt")
    )
    lines = [
        rf"\begin{{{env}}}[t]",
        r"\centering",
        size,
        rf"\setlength{{\tabcolsep}}{{{sep}}}",
        r"\begin{tabularx}{\linewidth}{@{}l>{\raggedright\arraybackslash}X"
        + "r" * len(cols)
        + "@{}}",
        r"\toprule",
        " & ".join(
            [
                "T" if one_column else "Tier",
                "Model",
                *(tex_escape(METRICS[m].replace(" (%)", "")) for m in cols),
            ]
        )
        + r" \\",
        r"\midrule",
    ]
    for group in board.groups:
        sub = f[(f["kind"] == "run") & (f["group"] == group.name)]
        lines.append(f"% {tex_escape(group.explanation)}")
        lines.append(_tex_span(ncols, rf"\emph{{{tex_name(group_label(group, board))}}}"))
        for _, r in sub.iterrows():
            tier = "--" if pd.isna(r["tier"]) else str(int(r["tier"]))
            name = tex_name(r["model"]) + "".join(
                rf"\,{_TEX_MARKS[mark]}" for mark, key, _ in MODEL_MARKS if r[key]
            )
            name += tex_escape(not_ranked_note(r))
            lines += _tex_run_lines(
                [tier, name], f"$n={n_text(r)}$", [metric_cell(r, m) for m in cols]
            )
        lines.append(r"\midrule")
    rep = f[f["kind"] == "reported"]
    if len(rep):
        lines.append(_tex_span(ncols, r"\emph{Reported in the paper (not run here)}"))
        for _, r in rep.iterrows():
            lines += _tex_run_lines(
                ["--", tex_name(r["model"]) + " (rep.)"], "", [metric_cell(r, m) for m in cols]
            )
    else:
        lines.pop()
    label = "tab:kardiabench-1col" if one_column else "tab:kardiabench"
    percent = " and ".join(METRICS[m].replace(" (%)", "") for m in cols if "(%)" in METRICS[m])
    lines += [
        r"\bottomrule",
        r"\end{tabularx}",
        rf"\caption{{Ranked within each group by {tex_escape(METRICS[board.rank_by].replace(' (%)', ''))}; a tier holds models "
        r"the paired test does not separate. Mean, 95\% CI under it"
        + (f" ({percent} in \\%)" if percent else "")
        + r"; $n$: the run's items; $n{=}k/N$: a number over $k$ of its $N$ items. "
        rf"$^{{\P}}$: {tex_escape(FEW_TEXT)}. Bold: the best of a group of two or more ranked runs. "
        r"$^{\dagger}$: a \texttt{-{}-limit} subset; $^{\S}$: judged by a model of its own family; "
        r"$^{\ddagger}$: trained against a judge of the scoring judge's family.}",
        rf"\label{{{label}}}",
        rf"\end{{{env}}}",
    ]
    return "\n".join(lines) + "\n"


def _tex_span(ncols: int, text: str) -> str:
    """A line across the whole table that wraps instead of running past its edge."""
    return rf"\multicolumn{{{ncols}}}{{@{{}}>{{\raggedright\arraybackslash}}p{{\linewidth}}@{{}}}}{{{text}}} \\"


def _tex_run_lines(first: list[str], n: str, cells: list[Cell]) -> list[str]:
    """A run's value line; under it (\\scriptsize) `n` under the model and the CIs under the
    values; and where any number is over fewer items, a line of their `n=k/N`."""
    values = [
        (rf"\textbf{{{c.value}}}" if c.best else c.value.replace("–", "--"))
        + (_TEX_MARKS[FEW_MARK] if c.few else "")
        for c in cells
    ]
    out = [" & ".join([*first, *values]) + r" \\"]
    for lead, texts in ((n, [c.ci for c in cells]), ("", [c.note for c in cells])):
        if lead or any(texts):
            small = [
                rf"{{\scriptsize {t}}}" if t else ""
                for t in (lead, *(tex_escape(x) for x in texts))
            ]
            out.append(" & ".join(["", *small]) + r" \\")
    return out
