"""The leaderboard as one pandas DataFrame, and its CSV, Markdown and LaTeX renderings.

One row per entry (kind "run") and per reported row of the paper (kind "reported", group "paper").
Per metric: the value, its 95% CI and, for runs whose model has a reported row, the difference to
it. Tables list runs group by group (each group has its own tiers) and the reported rows last,
under their own heading: entries of different groups are never ranked in one list without the
group column saying so.
"""

from __future__ import annotations

import math
import re
import unicodedata
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import pandas as pd

from kardiabench.leaderboard.entries import Entry
from kardiabench.leaderboard.groups import Group
from kardiabench.leaderboard.reported import ReportedRow, match_reported
from kardiabench.leaderboard.tiers import assign_tiers

# results.json key → column title; the order of every table and plot.
METRICS: dict[str, str] = {
    "emotion_accuracy": "Emo Acc (%)", "format_compliance": "Format (%)", "relevance": "Relevance",
    "fluency": "Fluency", "empathy": "Empathy", "persona_consistency": "Persona", "safety": "Safety",
}  # fmt: skip
RANK_BY = "emotion_accuracy"
SUBSET_MARK = "†"
SELF_PREFERENCE_MARK = "§"  # a judge of the model's own family scored it (results.json rubric.self_preference_risk)
TRAINING_JUDGE_MARK = "‡"  # a judge of the training judge's family scored it (rubric.training_judge_risk)
REPORTED_GROUP = "paper"


@dataclass(frozen=True, slots=True)
class Board:
    """Everything a rendering needs: the frame and the group explanations."""

    frame: pd.DataFrame
    groups: list[Group]
    rank_by: str
    reported_note: str  # source and confidence of the reported rows


def label(entry: Entry, entries: Sequence[Entry]) -> str:
    """The model spec; with the run folder's name when two entries share a spec."""
    same = sum(e.model == entry.model for e in entries)
    return entry.model if same == 1 else f"{entry.model} [{entry.run_path.name}]"


def build_board(
    entries: Sequence[Entry], groups: list[Group], reported: Sequence[ReportedRow], *,
    rank_by: str = RANK_BY, n_resamples: int = 1000, seed: int = 0, unranked: Mapping[str, str] | None = None,
) -> Board:  # fmt: skip
    """The frame. unranked: entry id → why it is not ranked (no predicted items): such an entry
    keeps a row in its group, after the ranked ones, with no rank, tier or values (not 0.00)."""
    unranked = unranked or {}
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
            row = {
                "group": group.name, "rank": None if why else rank, "tier": tiers[e.entry_id], "tier_p": p_adj[e.entry_id],
                "not_ranked": why,
                "model": label(e, entries), "kind": "run", "entry_id": e.entry_id, "n_items": data.get("n_items"),
                "limit": data.get("limit"), "subset": data.get("limit") is not None,
                "reported_as": ref.name if ref else None,
                "self_preference": bool((e.results.get("rubric") or {}).get("self_preference_risk")),
                "training_judge": bool((e.results.get("rubric") or {}).get("training_judge_risk")),
                "judge_card": card_text((e.results.get("rubric") or {}).get("judge_card")),
            }  # fmt: skip
            for m in METRICS:
                met = {} if why else e.metric(m)
                row |= {m: met.get("value"), f"{m}_ci_low": met.get("ci_low"), f"{m}_ci_high": met.get("ci_high")}
                known = ref.metrics.get(m) if ref else None
                row[f"{m}_delta_reported"] = None if known is None or met.get("value") is None else met["value"] - known
            rows.append(row)
    for r in reported:
        row = {"group": REPORTED_GROUP, "rank": None, "tier": None, "tier_p": None, "not_ranked": None, "model": r.name, "kind": "reported",
               "entry_id": None, "n_items": None, "limit": None, "subset": False, "reported_as": None,
               "self_preference": False, "training_judge": False, "judge_card": None}  # fmt: skip
        for m in METRICS:
            row |= {m: r.metrics.get(m), f"{m}_ci_low": None, f"{m}_ci_high": None, f"{m}_delta_reported": None}
        rows.append(row)
    note = f"{reported[0].source}; confidence {reported[0].confidence}" if reported else ""
    return Board(pd.DataFrame.from_records(rows), groups, rank_by, note)


# ----------------------------------------------------------------------------- cells

# Unicode categories a reader cannot see: controls (line breaks included), format characters (bidi
# overrides like U+202E, zero-width joiners), line and paragraph separators.
_HIDDEN = frozenset({"Cc", "Cf", "Zl", "Zp"})


def visible(text: str) -> str:
    """`text` with every invisible or control character written as `<U+XXXX>`: a model name with
    U+202E cannot reorder what the site, the tables or the plots show, and a line break cannot end
    a LaTeX comment or a Markdown row. Every rendering applies it before its own escaping."""
    return "".join(f"<U+{ord(c):04X}>" if unicodedata.category(c) in _HIDDEN else c for c in str(text))



def num(v) -> float | None:
    return None if v is None or (isinstance(v, float) and math.isnan(v)) else float(v)


def cell(row: pd.Series, metric: str, digits: int | None = None) -> str:
    """`value ± half-width of the 95% CI` (or the value alone), "–" when absent."""
    v = num(row[metric])
    if v is None:
        return "–"
    d = digits if digits is not None else (1 if "(%)" in METRICS[metric] else 2)
    lo, hi = num(row[f"{metric}_ci_low"]), num(row[f"{metric}_ci_high"])
    return f"{v:.{d}f}" if lo is None or hi is None else f"{v:.{d}f} ± {(hi - lo) / 2:.{d}f}"


def model_cell(row: pd.Series) -> str:
    marks = [(SUBSET_MARK, "subset"), (SELF_PREFERENCE_MARK, "self_preference"), (TRAINING_JUDGE_MARK, "training_judge")]
    return row["model"] + "".join(f" {mark}" for mark, key in marks if row[key]) + not_ranked_note(row)


def not_ranked_note(row: pd.Series) -> str:
    """` (not ranked: WHY)` for an entry `build` does not rank, else ""."""
    why = row.get("not_ranked")
    return f" (not ranked: {why})" if isinstance(why, str) and why else ""


def card_text(card: dict | None) -> str | None:
    """A cited judge card in one line: its judges, date and checks passed."""
    if not card:
        return None
    open_ = card.get("inconclusive") or []
    verdict = "passed" if card["passed"] else "; ".join(
        ([f"failed {', '.join(card['failed'])}"] if card["failed"] else []) + ([f"inconclusive {', '.join(open_)}"] if open_ else []))
    n_passed = card["n_checks"] - len(card["failed"]) - len(open_)
    return f"{', '.join(card['judges'])} ({card['created'][:10]}): {n_passed}/{card['n_checks']} checks, {verdict}"


def best_values(frame: pd.DataFrame) -> dict[tuple[str, str], float]:
    """(group, metric) → the best value among the group's runs (all metrics: higher is better)."""
    runs = frame[frame["kind"] == "run"]
    return {(g, m): v for g, sub in runs.groupby("group") for m in METRICS if (v := num(sub[m].max())) is not None}


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


def to_markdown(board: Board) -> str:
    f = board.frame
    runs, rep = f[f["kind"] == "run"], f[f["kind"] == "reported"]
    head = ["Group", "Tier", "Model", *METRICS.values()]
    lines = [_md_row(head), "|" + "---|" * 3 + "---:|" * len(METRICS)]
    for _, r in runs.iterrows():
        tier = "–" if pd.isna(r["tier"]) else str(int(r["tier"]))
        lines.append(_md_row([r["group"], tier, md_escape(model_cell(r)), *(cell(r, m) for m in METRICS)]))
    out = [*lines, "", f"Ranked within a group by {METRICS[board.rank_by]}; tiers: models in one tier are not "
           "separated by the paired test (docs/leaderboard.md). Values: mean ± half the width of the 95% CI. "
           f"{SUBSET_MARK}: evaluated on a `--limit` subset. {SELF_PREFERENCE_MARK}: judged by a model of its own "
           f"family (self-preference risk). {TRAINING_JUDGE_MARK}: trained against a judge of the scoring judge's "
           "family (training-judge risk).", ""]  # fmt: skip
    out += [f"- {md_escape(g.explanation)}" for g in board.groups]
    cards = runs.dropna(subset=["judge_card"]).drop_duplicates(["group", "judge_card"])
    out += [f"- Judge card ({md_escape(r['group'])}): {md_escape(r['judge_card'])}" for _, r in cards.iterrows()]
    if len(rep):
        out += ["", "Reported in the paper (not run here; other judge prompt and setup, not comparable to the rows above):", ""]
        out += [_md_row(["Model", *METRICS.values()]), "|---|" + "---:|" * len(METRICS)]
        out += [_md_row([md_escape(r["model"]) + " (reported)", *(cell(r, m) for m in METRICS)]) for _, r in rep.iterrows()]
        out += ["", f"Source: {md_escape(board.reported_note)}"]
    deltas = delta_rows(board)
    if deltas:
        out += ["", "Runs against the paper's reported row of the same model (run − reported):", ""]
        out += [_md_row(["Group", "Model", "Reported row", *METRICS.values()]), "|---|---|---|" + "---:|" * len(METRICS)]
        out += [_md_row([g, md_escape(m), md_escape(ref), *ds]) for g, m, ref, ds in deltas]
    return "\n".join(out) + "\n"


def delta_rows(board: Board) -> list[tuple[str, str, str, list[str]]]:
    """(group, model, reported row name, formatted deltas) for each run with a reported row."""
    f = board.frame
    out = []
    for _, r in f[(f["kind"] == "run") & f["reported_as"].notna()].iterrows():
        ds = ["–" if (d := num(r[f"{m}_delta_reported"])) is None else f"{d:+.2f}" for m in METRICS]
        out.append((r["group"], model_cell(r), r["reported_as"], ds))
    return out


def _md_row(cells: Sequence[str]) -> str:
    return "| " + " | ".join(cells) + " |"


# ----------------------------------------------------------------------------- LaTeX

_TEX = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_", "{": r"\{",
        "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}", "<": r"\textless{}", ">": r"\textgreater{}"}  # fmt: skip


def tex_escape(text: str) -> str:
    """Text safe anywhere in the .tex file (cells, captions, comments): hidden characters and line
    breaks shown (`visible`), so no text can end a `%` comment line; TeX specials escaped."""
    return "".join(_TEX.get(c, c) for c in visible(text))


def to_latex(board: Board) -> str:
    """A booktabs table: runs by group (the best value per column and group in bold), then the
    paper's reported rows under their own rule. Needs \\usepackage{booktabs}."""
    f = board.frame
    best = best_values(f)
    cols = len(METRICS) + 2
    lines = [r"\begin{table}[t]", r"\centering", r"\small", r"\begin{tabular}{ll" + "r" * len(METRICS) + "}", r"\toprule",
             " & ".join(["Tier", "Model", *(tex_escape(t) for t in METRICS.values())]) + r" \\", r"\midrule"]  # fmt: skip
    for group in board.groups:
        sub = f[(f["kind"] == "run") & (f["group"] == group.name)]
        lines.append(f"% {tex_escape(group.explanation)}")
        lines.append(rf"\multicolumn{{{cols}}}{{l}}{{\emph{{{tex_escape(group.short)}}}}} \\")
        for _, r in sub.iterrows():
            tier = "--" if pd.isna(r["tier"]) else str(int(r["tier"]))
            cells = [_tex_cell(r, m, best.get((group.name, m))) for m in METRICS]
            name = tex_escape(r["model"] + not_ranked_note(r)) + (r" $^\dagger$" if r["subset"] else "")
            lines.append(" & ".join([tier, name, *cells]) + r" \\")
        lines.append(r"\midrule")
    rep = f[f["kind"] == "reported"]
    if len(rep):
        lines.append(rf"\multicolumn{{{cols}}}{{l}}{{\emph{{Reported in the paper (not run here)}}}} \\")
        for _, r in rep.iterrows():
            lines.append(" & ".join(["--", tex_escape(r["model"]) + " (rep.)", *(_tex_cell(r, m, None) for m in METRICS)]) + r" \\")
    else:
        lines.pop()
    lines += [r"\bottomrule", r"\end{tabular}",
              rf"\caption{{Ranked within each group by {tex_escape(METRICS[board.rank_by])}; a tier holds models the paired test "
              rf"does not separate. Mean $\pm$ half the width of the 95\% CI; best per group in bold; $^\dagger$: "
              r"a \texttt{--limit} subset.}", r"\end{table}"]  # fmt: skip
    return "\n".join(lines) + "\n"


def _tex_cell(row: pd.Series, metric: str, best: float | None) -> str:
    text = cell(row, metric)
    if text == "–":
        return "--"
    text = "$" + text.replace(" ± ", r" \pm ") + "$"
    return rf"$\mathbf{{{text[1:-1]}}}$" if best is not None and num(row[metric]) == best else text
