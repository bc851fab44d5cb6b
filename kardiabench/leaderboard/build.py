"""`kardiabench leaderboard build`: every artefact of a leaderboard folder, from its entries.

  FOLDER/leaderboard.csv, .md, .tex       the tables (tables.py); .tex is a two-column-page table*
  FOLDER/leaderboard-1col.tex             the same for one column (at most four metrics)
  FOLDER/plots/radar-GROUP.{pdf,png}, bars-GROUP.*, emotion_heatmap.*, confusion/ENTRY.*
                                          7 in wide (two columns); STEM-1col.* 3.3 in (one column)
  FOLDER/site/index.html                  the one-page site, plots inline
  FOLDER/site/reports/ENTRY.html          each run's report, rendered from its run folder
  FOLDER/build.json                       what was built, and whether (and how: `redaction`) it was redacted
  FOLDER/pairwise.md, plots/pairwise_bt.*  Bradley–Terry tables of `leaderboard add-pairwise` results (pairwise.py)

A run folder that no longer exists keeps its row; its report is left out (and said so). Every
entry's numbers are checked against its items copy first (`entries.check_items`): a mismatch stops
the build; an entry with no predicted item keeps a row, marked and without rank or values.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from kardiabench.jsonl import read_jsonl_tolerant
from kardiabench.leaderboard import plots
from kardiabench.leaderboard.entries import (
    DEFAULT_FOLDER,
    ENTRIES,
    LeaderboardError,
    check_items,
    load_entries,
    load_names,
)
from kardiabench.leaderboard.groups import group_entries
from kardiabench.leaderboard.reported import load_reported
from kardiabench.leaderboard.site import render_site
from kardiabench.leaderboard.tables import (
    RANK_BY,
    build_board,
    display_names,
    parse_columns,
    to_csv,
    to_latex,
    to_markdown,
)
from kardiabench.runs import RunDir, now

BUILD_INFO = "build.json"
SITE = "site"


@dataclass(slots=True)
class BuildResult:
    folder: Path
    files: list[Path] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # one line each: groups, missing reports


def build(
    folder: str | Path = DEFAULT_FOLDER,
    *,
    redact: bool = False,
    rank_by: str = RANK_BY,
    n_resamples: int = 1000,
    seed: int = 0,
    with_reported: bool = True,
    names: str | Path | None = None,
    columns: str | list[str] | None = None,
) -> BuildResult:
    """Render the leaderboard of `folder` (see the module docstring). names: a `--names FILE`
    (display names); columns: the metrics the tables and the site show (`--columns`)."""
    from kardiabench.report import REDACTION_VERSION, write_report

    folder = Path(folder)
    chosen = parse_columns(columns)  # a wrong --columns stops before anything is read or written
    entries = load_entries(folder)
    if not entries:
        raise LeaderboardError(
            f"{folder}: no entries yet (add runs with `kardiabench leaderboard add DIR --leaderboard {folder}`)"
        )
    shown = load_names(names, entries) if names is not None else {}
    unranked = {}
    for e in entries:
        where = f"{e.run_path} (entry {folder / ENTRIES / e.entry_id}.json)"
        if not e.items_path.is_file():
            raise LeaderboardError(
                f"{where}: its items copy {e.items_path} is missing; add the run again"
            )
        if (why := check_items(e.results, read_jsonl_tolerant(e.items_path), where)) is not None:
            unranked[e.entry_id] = why
    groups = group_entries(entries)
    reported = load_reported(folder) if with_reported else []
    board = build_board(
        entries,
        groups,
        reported,
        rank_by=rank_by,
        n_resamples=n_resamples,
        seed=seed,
        unranked=unranked,
        columns=chosen,
        names=shown,
    )
    out = BuildResult(folder, notes=[g.explanation for g in groups])
    built = now()
    tables = (
        ("leaderboard.csv", to_csv(board)),
        ("leaderboard.md", to_markdown(board)),
        ("leaderboard.tex", to_latex(board)),
        ("leaderboard-1col.tex", to_latex(board, one_column=True)),
    )
    for name, text in tables:
        (folder / name).write_text(text, encoding="utf-8")
        out.files.append(folder / name)

    labels = display_names(entries, shown)
    colors = plots.model_colors(list(board.frame.loc[board.frame["kind"] == "run", "model"]))
    pdir = folder / "plots"
    out.files += plots.write_plots(
        board, [e for e in entries if e.entry_id not in unranked], labels, colors, pdir
    )

    from kardiabench.leaderboard import pairwise

    preference = pairwise.load_all(folder)  # `leaderboard add-pairwise`: its own table and plot
    if preference:
        (folder / "pairwise.md").write_text(pairwise.markdown(preference), encoding="utf-8")
        out.files += [folder / "pairwise.md", *pairwise.plot(preference, pdir / "pairwise_bt")]

    site = folder / SITE
    reports = {}
    redactions = (
        _redactions([e.run_path for e in entries if (e.run_path / "results.json").is_file()])
        if redact
        else {}
    )
    for e in entries:
        if (e.run_path / "results.json").is_file():
            out.files.append(
                write_report(
                    e.run_path,
                    output=site / "reports" / f"{e.entry_id}.html",
                    redact=redactions.get(e.run_path, redact),
                )
            )
            reports[e.entry_id] = f"reports/{e.entry_id}.html"
        else:
            out.notes.append(
                f"{labels[e.entry_id]}: run folder {e.run_path} not found; its report is left out"
            )
    images = {
        f"{g.name}: six axes (like the paper's Figure 1). {plots.RADAR_CAPTION}": pdir
        / f"radar-{g.name}.png"
        for g in groups
    }
    images |= {
        f"{g.name}: each metric with its 95% CI": pdir / f"bars-{g.name}.png" for g in groups
    }
    images["Per-emotion accuracy across runs, in leaderboard order, with each cell's n"] = (
        pdir / "emotion_heatmap.png"
    )
    if preference:
        images[f"{pairwise.TITLE} with 95% CIs"] = pdir / "pairwise_bt.png"
    sections = [pairwise.html_section(preference)] if preference else []
    (site / "index.html").write_text(
        render_site(
            board, colors, reports, images, redacted=redact, built=built, sections=sections
        ),
        encoding="utf-8",
    )
    out.files.append(site / "index.html")
    out.notes += [f"{labels[i]}: not ranked ({why})" for i, why in unranked.items()]
    info = {
        "built": built,
        "redacted": redact,
        "redaction": REDACTION_VERSION if redact else None,
        "rank_by": rank_by,
        "columns": list(chosen),
        "names": shown,
        "entries": [e.entry_id for e in entries],
        "not_ranked": unranked,
        "groups": out.notes[: len(groups)],
        "files": [str(p.relative_to(folder)) for p in out.files],
    }
    RunDir(folder).write_json(BUILD_INFO, info)
    return out


def _redactions(run_paths: list[Path]) -> dict:
    """run folder → the `Redaction` of all the runs of its data source: the data is read once per
    source, not once per report."""
    from kardiabench.report import Redaction
    from kardiabench.runs import load_run

    by_source: dict[str, list] = {}
    for path in run_paths:
        run = load_run(path)
        by_source.setdefault(run.manifest.data.source, []).append(run)
    return {
        run.path: redaction
        for runs in by_source.values()
        for redaction in [Redaction(runs)]
        for run in runs
    }


def read_build_info(folder: Path) -> dict:
    path = folder / BUILD_INFO
    if not path.is_file():
        raise LeaderboardError(
            f"{folder}: not built yet (run `kardiabench leaderboard build --leaderboard {folder}`)"
        )
    return json.loads(path.read_text(encoding="utf-8"))
