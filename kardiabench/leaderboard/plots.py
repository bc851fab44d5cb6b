"""Leaderboard plots with matplotlib (Agg), sized to print in a paper as they are.

Every plot comes in two widths (`SIZES`): 7 in, a two-column figure (`STEM.pdf`, `STEM.png`) and
3.3 in, a one-column figure (`STEM-1col.pdf`, `STEM-1col.png`), laid out at that width (no
`bbox_inches="tight"`, which would change it) with every text at 7 pt or more. Font sizes are set
per figure (`rc_context` and each Text's own size), never in matplotlib's global state.

radar-GROUP: six axes like the paper's Figure 1 (Emo Acc, Relevance, Fluency, Empathy, Persona,
Safety), one per comparability group, legend outside the axes; bars-GROUP: each metric with its
asymmetric 95% CI, one per group; emotion_heatmap: per-emotion accuracy (recall) of every run in
leaderboard order, each cell with its n; confusion/ENTRY: one confusion matrix per run, square
cells with the diagonal on the diagonal. A model keeps one colour in every plot (`model_colors`,
never the grey of the paper's reported rows, which are drawn grey, dashed, with hollow markers, or
hatched without an error bar). Every text from a run or the data goes through `literal`: drawn as
written, never as mathtext.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402

from kardiabench.leaderboard.entries import Entry  # noqa: E402
from kardiabench.leaderboard.tables import METRICS, Board, group_label  # noqa: E402
from kardiabench.plotting import (  # noqa: E402, F401  (the shared pieces are also used from here)
    DPI,
    MIN_FONT,
    SIZES,
    TWO_COLUMN,
    Size,
    confusion,
    confusion_labels,
    figure_for,
    finish,
    literal,
    save,
    save_sizes,
    sized,
    svg_text,
    text_width,
    wrap_to,
)

RADAR_AXES = {
    "emotion_accuracy": "Emo Acc",
    "relevance": "Relevance",
    "fluency": "Fluency",
    "empathy": "Empathy",
    "persona_consistency": "Persona",
    "safety": "Safety",
}
RADAR_CAPTION = (
    "Radius: Emo Acc (0–100 %) divided by 100; rubric scores (1–5) mapped by (score − 1) / 4. "
    "Grey, dashed, hollow markers: reported in the paper (on the axes it reports); coloured markers without a "
    "polygon: a run with values on some axes only (no judge)."
)
# The paper's reported rows, and only they: this colour, this line style, hollow markers, hatched bars.
REPORTED_COLOUR = "#7f7f7f"
REPORTED_LINESTYLE = "--"
REPORTED_HATCH = "//"
REPORTED_MARKERS = ("D", "s", "^", "v", "P", "X", "*", "h")
# Greys of the tab palettes: kept for the reported rows, never given to a model.
_GREYS = frozenset({"#7f7f7f", "#c7c7c7"})


def model_colors(models: Sequence[str]) -> dict[str, str]:
    """One colour per run model, in the order given (tab10, then tab20 beyond nine), never the
    greys that mark the paper's reported rows."""
    palette = [
        c
        for name in ("tab10", "tab20")
        for c in map(matplotlib.colors.to_hex, plt.get_cmap(name).colors)
        if c not in _GREYS
    ]
    palette = palette[:9] if len(models) <= 9 else palette[9:]
    return {m: palette[i % len(palette)] for i, m in enumerate(models)}


# ----------------------------------------------------------------------------- radar


def radial(metric: str, value: float | None) -> float | None:
    """A value on the radar's common radius 0–1 (see RADAR_CAPTION)."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    return value / 100 if metric == "emotion_accuracy" else (value - 1) / 4


def group_rows(board: Board, group: str) -> pd.DataFrame:
    """The group's runs in leaderboard order, then the paper's reported rows (for reference)."""
    f = board.frame
    return f[((f["kind"] == "run") & (f["group"] == group)) | (f["kind"] == "reported")]


def row_name(row: pd.Series) -> str:
    return literal(row["model"] if row["kind"] == "run" else f"{row['model']} (reported)")


def radar_figure(
    board: Board, group: str, colors: Mapping[str, str], size: Size = TWO_COLUMN
) -> Figure:
    """The six-axis radar of one comparability group (with the reported rows); the legend outside
    the axes: at the right (two columns) or under the radar (one column)."""
    rows = group_rows(board, group)
    axes = list(RADAR_AXES)
    angles = np.linspace(0, 2 * np.pi, len(axes), endpoint=False)
    with sized(size):
        legend_h = 0.16 * size.font / 7 * len(rows) if size.one_column else 0
        fig = figure_for(size, (3.1 + legend_h) if size.one_column else 4.2)
        ax = fig.add_subplot(polar=True)
        markers = iter(REPORTED_MARKERS * 8)
        for _, row in rows.iterrows():
            r = [radial(m, row[m]) for m in axes]
            if row["kind"] == "run":
                colour = colors[row["model"]]
                if None not in r:
                    ax.plot(
                        [*angles, angles[0]],
                        [*r, r[0]],
                        color=colour,
                        lw=1.5,
                        ls="-",
                        label=row_name(row),
                    )
                    ax.fill([*angles, angles[0]], [*r, r[0]], color=colour, alpha=0.08)
                    continue
                style = {"marker": "o", "mfc": colour}
            else:
                style = {"marker": next(markers), "mfc": "none"}
                colour = REPORTED_COLOUR
                if None not in r:  # a reported row with all six axes: a dashed polygon
                    ax.plot(
                        [*angles, angles[0]],
                        [*r, r[0]],
                        color=colour,
                        lw=1.2,
                        ls=REPORTED_LINESTYLE,
                        label=row_name(row),
                        **style,
                    )
                    continue
            # only the axes it has a value for: no polygon through made-up zeros
            known = [(a, v) for a, v in zip(angles, r, strict=True) if v is not None]
            ls = "none" if row["kind"] == "run" else REPORTED_LINESTYLE
            ax.plot(
                [a for a, _ in known],
                [v for _, v in known],
                color=colour,
                ls=ls,
                lw=0,
                ms=5,
                label=row_name(row),
                **style,
            )
        ax.set_xticks(angles, [RADAR_AXES[m] for m in axes])
        # away from the circle, never across it
        for text, a in zip(ax.get_xticklabels(), angles, strict=True):
            text.set_horizontalalignment(
                "left" if math.cos(a) > 0.1 else "right" if math.cos(a) < -0.1 else "center"
            )
        ax.tick_params(axis="x", pad=2)
        ax.set_ylim(0, 1)
        ax.set_yticks([0.25, 0.5, 0.75, 1.0], ["0.25", "0.5", "0.75", "1"])
        ax.set_rlabel_position(90 / len(axes))
        title = f"{group_label(next(g for g in board.groups if g.name == group), board)}: outer is better"
        fig.suptitle(wrap_to(literal(title), size))
        where = "outside lower center" if size.one_column else "outside right upper"
        fig.legend(loc=where, ncols=1, title="model", frameon=False)
        return finish(fig, size)


# ----------------------------------------------------------------------------- bars


def bars_figure(
    board: Board, group: str, colors: Mapping[str, str], size: Size = TWO_COLUMN
) -> Figure:
    """One panel per metric: a bar per run of the group with its 95% CI as it is (asymmetric), and
    the reported rows hatched grey with no error bar (the paper gives no CI)."""
    f = group_rows(board, group)
    names = [row_name(r) for _, r in f.iterrows()]
    ncols = 2 if size.one_column else 4
    nrows = math.ceil(len(METRICS) / ncols)
    with sized(size):
        fig = figure_for(size, nrows * (0.17 * size.font / 7 * len(f) + 0.55) + 0.6)
        axs = fig.subplots(nrows, ncols, sharey=True, squeeze=False).ravel()
        y = np.arange(len(f))
        for ax, (metric, title) in zip(axs, METRICS.items(), strict=False):
            for i, (_, r) in enumerate(f.iterrows()):
                v = r[metric]
                if v is None or (isinstance(v, float) and math.isnan(v)):
                    continue
                if r["kind"] == "run":
                    lo, hi = r[f"{metric}_ci_low"], r[f"{metric}_ci_high"]
                    err = None if pd.isna(lo) or pd.isna(hi) else [[v - lo], [hi - v]]
                    ax.barh(
                        y[i],
                        v,
                        xerr=err,
                        color=colors[r["model"]],
                        edgecolor="black",
                        lw=0.3,
                        capsize=2,
                        error_kw={"lw": 0.8},
                        label=names[i],
                    )
                else:
                    ax.barh(
                        y[i],
                        v,
                        color="white",
                        hatch=REPORTED_HATCH,
                        edgecolor=REPORTED_COLOUR,
                        lw=0.6,
                        label=names[i],
                    )
            ax.set_title(title.replace(" (%)", ""))
            ax.set_xlabel("%" if "(%)" in title else "score (1–5)")
            ax.set_xlim(0, 100 if "(%)" in title else 5)
            ax.xaxis.set_major_locator(MaxNLocator(nbins=3 if size.one_column else 4))
        for ax in axs[len(METRICS) :]:
            ax.set_axis_off()
        axs[0].set_yticks(y, names)
        axs[0].invert_yaxis()
        grp = next(g for g in board.groups if g.name == group)
        fig.suptitle(
            wrap_to(
                literal(
                    f"{group_label(grp, board)}. Mean and 95% CI; hatched grey: reported in the paper (no CI)"
                ),
                size,
            )
        )
        return finish(fig, size)


# ----------------------------------------------------------------------------- heatmap


def heatmap_rows(board: Board, entries: Sequence[Entry]) -> list[tuple[str, str, dict]]:
    """(row label `GROUP · MODEL`, model, gold emotion → {"recall", "n"}) of each run in
    leaderboard order (group by group, rank order), for the entries given."""
    by_id = {e.entry_id: e for e in entries}
    f = board.frame
    out = []
    for _, r in f[(f["kind"] == "run") & f["entry_id"].isin(list(by_id))].iterrows():
        per = ((by_id[r["entry_id"]].results.get("emotion") or {}).get("per_emotion_recall")) or {}
        out.append((f"{r['group']} · {r['model']}", r["model"], per))
    return out


def heatmap_figure(
    board: Board, entries: Sequence[Entry], colors: Mapping[str, str], size: Size = TWO_COLUMN
) -> Figure:
    """Per-emotion accuracy (recall over the items of each gold emotion), runs × emotions, the runs
    in leaderboard order, each cell annotated with its n (the run's items of that emotion). The
    emotions are split over stacked panels so that a cell keeps room for its n at this width."""
    rows = heatmap_rows(board, entries)
    emotions = sorted({k for *_, per in rows for k in per})
    recall = np.array(
        [
            [np.nan if (v := per.get(e, {}).get("recall")) is None else v for e in emotions]
            for *_, per in rows
        ],
        dtype=float,
    )
    count = [[per.get(e, {}).get("n") for e in emotions] for *_, per in rows]
    labels = [literal(name) for name, *_ in rows]
    cell = 1.6 * size.font / 72  # inches: room for a two-digit n, and between two upright labels
    room = max(1.0, size.width - text_width(labels, size) - 0.9)
    panels = max(1, math.ceil(len(emotions) * cell / room))
    per_panel = math.ceil(max(1, len(emotions)) / panels)
    height = panels * (len(rows) * cell + text_width(emotions, size) + 0.25) + 0.5
    with sized(size):
        fig = figure_for(size, height)
        axs = fig.subplots(panels, 1, squeeze=False).ravel()
        for p, ax in enumerate(axs):
            cols = slice(p * per_panel, (p + 1) * per_panel)
            im = ax.imshow(recall[:, cols], vmin=0, vmax=100, cmap="viridis", aspect="auto")
            for i in range(len(rows)):
                for j, (n, v) in enumerate(zip(count[i][cols], recall[i, cols], strict=True)):
                    if n is not None and not math.isnan(v):
                        ax.text(
                            j,
                            i,
                            str(n),
                            ha="center",
                            va="center",
                            fontsize=size.font,
                            color="black" if v > 60 else "white",
                        )
            ax.set_xticks(
                range(len(emotions[cols])), [literal(c) for c in emotions[cols]], rotation=90
            )
            ax.set_yticks(range(len(rows)), labels)
            ax.set_xlim(-0.5, per_panel - 0.5)  # a short last panel keeps the cells' width
            ax.spines[["right", "top"]].set_visible(False)
            for tick, (_, model, _) in zip(ax.get_yticklabels(), rows, strict=True):
                tick.set_color(colors.get(model, "black"))
        fig.colorbar(im, ax=list(axs), label="accuracy (%)", shrink=0.9)
        title = "Per-emotion accuracy (%, colour); each cell: n, the run's items of that gold emotion (blank: none)"
        fig.suptitle(wrap_to(title, size))
        return finish(fig, size)


# ----------------------------------------------------------------------------- the build's plots


def write_plots(
    board: Board,
    entries: Sequence[Entry],
    labels: Mapping[str, str],
    colors: Mapping[str, str],
    folder: Path,
) -> list[Path]:
    """Every plot of a leaderboard in both sizes under `folder`: radar-GROUP, bars-GROUP for each
    comparability group, emotion_heatmap, confusion/ENTRY for each of `entries` (the ranked ones)."""
    out = []
    for g in board.groups:
        out += save_sizes(
            lambda s, g=g: radar_figure(board, g.name, colors, s), folder / f"radar-{g.name}"
        )
        out += save_sizes(
            lambda s, g=g: bars_figure(board, g.name, colors, s), folder / f"bars-{g.name}"
        )
    out += save_sizes(
        lambda s: heatmap_figure(board, entries, colors, s), folder / "emotion_heatmap"
    )
    for e in entries:
        table = (e.results.get("emotion") or {}).get("confusion") or {}
        if table:
            name = labels[e.entry_id]
            out += save_sizes(
                lambda s, t=table, n=name: confusion(t, n, colors[n], s),
                folder / "confusion" / e.entry_id,
            )
    return out
