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

import io
import math
import textwrap
from collections.abc import Callable, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402

from kardiabench.leaderboard.entries import Entry  # noqa: E402
from kardiabench.leaderboard.tables import METRICS, Board, group_label, visible  # noqa: E402

RADAR_AXES = {"emotion_accuracy": "Emo Acc", "relevance": "Relevance", "fluency": "Fluency",
              "empathy": "Empathy", "persona_consistency": "Persona", "safety": "Safety"}  # fmt: skip
RADAR_CAPTION = ("Radius: Emo Acc (0–100 %) divided by 100; rubric scores (1–5) mapped by (score − 1) / 4. "
                 "Grey, dashed, hollow markers: reported in the paper (on the axes it reports); coloured markers without a "
                 "polygon: a run with values on some axes only (no judge).")  # fmt: skip
# The paper's reported rows, and only they: this colour, this line style, hollow markers, hatched bars.
REPORTED_COLOUR = "#7f7f7f"
REPORTED_LINESTYLE = "--"
REPORTED_HATCH = "//"
REPORTED_MARKERS = ("D", "s", "^", "v", "P", "X", "*", "h")
# Greys of the tab palettes: kept for the reported rows, never given to a model.
_GREYS = frozenset({"#7f7f7f", "#c7c7c7"})
MIN_FONT = 7.0  # pt at print size
DPI = 300
FORMATS = ("pdf", "png")
# Reproducible files: no date, fixed SVG ids.
_META = {"png": {"Software": None}, "pdf": {"CreationDate": None}, "svg": {"Date": None, "Creator": None}}


@dataclass(frozen=True, slots=True)
class Size:
    """A print width: the file suffix, the width in inches and the font size of every text (pt)."""

    suffix: str
    width: float
    font: float

    @property
    def one_column(self) -> bool:
        return self.width < 5


TWO_COLUMN = Size("", 7.0, 8.0)
ONE_COLUMN = Size("-1col", 3.3, MIN_FONT)
SIZES = (TWO_COLUMN, ONE_COLUMN)


def literal(text: str) -> str:
    """Plot text drawn as written: hidden characters shown (`visible`) and every `$` escaped, so a
    model named `$\\foo$` is not parsed as mathtext (which would fail the whole figure)."""
    return visible(text).replace("$", r"\$")


def model_colors(models: Sequence[str]) -> dict[str, str]:
    """One colour per run model, in the order given (tab10, then tab20 beyond nine), never the
    greys that mark the paper's reported rows."""
    palette = [c for name in ("tab10", "tab20") for c in map(matplotlib.colors.to_hex, plt.get_cmap(name).colors) if c not in _GREYS]
    palette = palette[:9] if len(models) <= 9 else palette[9:]
    return {m: palette[i % len(palette)] for i, m in enumerate(models)}


# ----------------------------------------------------------------------------- sizes and files


def _rc(size: Size) -> dict:
    f = size.font
    return {"font.size": f, "axes.titlesize": f, "axes.labelsize": f, "xtick.labelsize": f, "ytick.labelsize": f,
            "legend.fontsize": f, "legend.title_fontsize": f, "figure.titlesize": f, "figure.labelsize": f,
            "pdf.fonttype": 42, "svg.fonttype": "path", "svg.hashsalt": "kardiabench", "hatch.linewidth": 0.6}  # fmt: skip


@contextmanager
def _sized(size: Size):
    with matplotlib.rc_context(_rc(size)):
        yield


def _finish(fig: Figure, size: Size) -> Figure:
    """Tick labels are made when the figure is drawn: their size is set on each axis, so that the
    figure keeps its sizes outside this module's `rc_context`. The first draw makes them, the
    second lays them out at their size and alignment; then the layout is kept (each file would
    compute it again, to the same result: most of the time a figure takes)."""
    for ax in [a for top in fig.axes for a in (top, *top.child_axes)]:
        ax.tick_params(labelsize=size.font)
    fig.draw_without_rendering()
    fig.draw_without_rendering()
    fig.set_layout_engine("none")
    return fig


def figure_for(size: Size, height: float, **kw) -> Figure:
    """A figure `size.width` wide, laid out by constrained layout."""
    return plt.figure(figsize=(size.width, height), layout="constrained", **kw)


def save(fig: Figure, stem: Path, size: Size = TWO_COLUMN) -> list[Path]:
    """STEM{size.suffix}.pdf and .png, at the figure's size; the figure is closed."""
    stem.parent.mkdir(parents=True, exist_ok=True)
    out = []
    with _sized(size):
        for ext in FORMATS:
            path = stem.parent / f"{stem.name}{size.suffix}.{ext}"  # not with_suffix: entry ids contain dots
            fig.savefig(path, dpi=DPI, metadata=_META[ext])
            out.append(path)
    plt.close(fig)
    return out


def save_sizes(make: Callable[[Size], Figure], stem: Path) -> list[Path]:
    """`make(size)` for every size in SIZES, saved (`save`)."""
    return [p for size in SIZES for p in save(make(size), stem, size)]


def svg_text(fig: Figure, size: Size = TWO_COLUMN) -> str:
    """The figure as inline SVG markup (for self-contained HTML); the figure is closed."""
    buf = io.StringIO()
    with _sized(size):
        fig.savefig(buf, format="svg", metadata=_META["svg"])
    plt.close(fig)
    text = buf.getvalue()
    return text[text.index("<svg"):]


def _wrap(text: str, size: Size, width: float | None = None) -> str:
    """Wrapped to lines that fit `width` inches (the figure's by default) at the figure's font."""
    chars = int((width or size.width) * 72 / (0.6 * size.font))
    return "\n".join(textwrap.wrap(text, chars, break_long_words=False, break_on_hyphens=False)) or text


def _text_width(texts: Sequence[str], size: Size) -> float:
    """About how wide (inches) the longest text is at the figure's font."""
    return max((len(t) for t in texts), default=0) * 0.6 * size.font / 72


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


def radar_figure(board: Board, group: str, colors: Mapping[str, str], size: Size = TWO_COLUMN) -> Figure:
    """The six-axis radar of one comparability group (with the reported rows); the legend outside
    the axes: at the right (two columns) or under the radar (one column)."""
    rows = group_rows(board, group)
    axes = list(RADAR_AXES)
    angles = np.linspace(0, 2 * np.pi, len(axes), endpoint=False)
    with _sized(size):
        legend_h = 0.16 * size.font / 7 * len(rows) if size.one_column else 0
        fig = figure_for(size, (3.1 + legend_h) if size.one_column else 4.2)
        ax = fig.add_subplot(polar=True)
        markers = iter(REPORTED_MARKERS * 8)
        for _, row in rows.iterrows():
            r = [radial(m, row[m]) for m in axes]
            if row["kind"] == "run":
                colour = colors[row["model"]]
                if None not in r:
                    ax.plot([*angles, angles[0]], [*r, r[0]], color=colour, lw=1.5, ls="-", label=row_name(row))
                    ax.fill([*angles, angles[0]], [*r, r[0]], color=colour, alpha=0.08)
                    continue
                style = {"marker": "o", "mfc": colour}
            else:
                style = {"marker": next(markers), "mfc": "none"}
                colour = REPORTED_COLOUR
                if None not in r:  # a reported row with all six axes: a dashed polygon
                    ax.plot([*angles, angles[0]], [*r, r[0]], color=colour, lw=1.2, ls=REPORTED_LINESTYLE, label=row_name(row), **style)
                    continue
            # only the axes it has a value for: no polygon through made-up zeros
            known = [(a, v) for a, v in zip(angles, r, strict=True) if v is not None]
            ls = "none" if row["kind"] == "run" else REPORTED_LINESTYLE
            ax.plot([a for a, _ in known], [v for _, v in known], color=colour, ls=ls, lw=0, ms=5, label=row_name(row), **style)
        ax.set_xticks(angles, [RADAR_AXES[m] for m in axes])
        for text, a in zip(ax.get_xticklabels(), angles, strict=True):  # away from the circle, never across it
            text.set_horizontalalignment("left" if math.cos(a) > 0.1 else "right" if math.cos(a) < -0.1 else "center")
        ax.tick_params(axis="x", pad=2)
        ax.set_ylim(0, 1)
        ax.set_yticks([0.25, 0.5, 0.75, 1.0], ["0.25", "0.5", "0.75", "1"])
        ax.set_rlabel_position(90 / len(axes))
        title = f"{group_label(next(g for g in board.groups if g.name == group), board)}: outer is better"
        fig.suptitle(_wrap(literal(title), size))
        where = "outside lower center" if size.one_column else "outside right upper"
        fig.legend(loc=where, ncols=1, title="model", frameon=False)
        return _finish(fig, size)


# ----------------------------------------------------------------------------- bars


def bars_figure(board: Board, group: str, colors: Mapping[str, str], size: Size = TWO_COLUMN) -> Figure:
    """One panel per metric: a bar per run of the group with its 95% CI as it is (asymmetric), and
    the reported rows hatched grey with no error bar (the paper gives no CI)."""
    f = group_rows(board, group)
    names = [row_name(r) for _, r in f.iterrows()]
    ncols = 2 if size.one_column else 4
    nrows = math.ceil(len(METRICS) / ncols)
    with _sized(size):
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
                    ax.barh(y[i], v, xerr=err, color=colors[r["model"]], edgecolor="black", lw=0.3, capsize=2,
                            error_kw={"lw": 0.8}, label=names[i])  # fmt: skip
                else:
                    ax.barh(y[i], v, color="white", hatch=REPORTED_HATCH, edgecolor=REPORTED_COLOUR, lw=0.6, label=names[i])
            ax.set_title(title.replace(" (%)", ""))
            ax.set_xlabel("%" if "(%)" in title else "score (1–5)")
            ax.set_xlim(0, 100 if "(%)" in title else 5)
            ax.xaxis.set_major_locator(MaxNLocator(nbins=3 if size.one_column else 4))
        for ax in axs[len(METRICS):]:
            ax.set_axis_off()
        axs[0].set_yticks(y, names)
        axs[0].invert_yaxis()
        grp = next(g for g in board.groups if g.name == group)
        fig.suptitle(_wrap(literal(f"{group_label(grp, board)}. Mean and 95% CI; hatched grey: reported in the paper (no CI)"), size))
        return _finish(fig, size)


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


def heatmap_figure(board: Board, entries: Sequence[Entry], colors: Mapping[str, str], size: Size = TWO_COLUMN) -> Figure:
    """Per-emotion accuracy (recall over the items of each gold emotion), runs × emotions, the runs
    in leaderboard order, each cell annotated with its n (the run's items of that emotion). The
    emotions are split over stacked panels so that a cell keeps room for its n at this width."""
    rows = heatmap_rows(board, entries)
    emotions = sorted({k for *_, per in rows for k in per})
    recall = np.array([[np.nan if (v := per.get(e, {}).get("recall")) is None else v for e in emotions] for *_, per in rows], dtype=float)
    count = [[per.get(e, {}).get("n") for e in emotions] for *_, per in rows]
    labels = [literal(name) for name, *_ in rows]
    cell = 1.6 * size.font / 72  # inches: room for a two-digit n, and between two upright labels
    room = max(1.0, size.width - _text_width(labels, size) - 0.9)
    panels = max(1, math.ceil(len(emotions) * cell / room))
    per_panel = math.ceil(max(1, len(emotions)) / panels)
    height = panels * (len(rows) * cell + _text_width(emotions, size) + 0.25) + 0.5
    with _sized(size):
        fig = figure_for(size, height)
        axs = fig.subplots(panels, 1, squeeze=False).ravel()
        for p, ax in enumerate(axs):
            cols = slice(p * per_panel, (p + 1) * per_panel)
            im = ax.imshow(recall[:, cols], vmin=0, vmax=100, cmap="viridis", aspect="auto")
            for i in range(len(rows)):
                for j, (n, v) in enumerate(zip(count[i][cols], recall[i, cols], strict=True)):
                    if n is not None and not math.isnan(v):
                        ax.text(j, i, str(n), ha="center", va="center", fontsize=size.font, color="black" if v > 60 else "white")
            ax.set_xticks(range(len(emotions[cols])), [literal(c) for c in emotions[cols]], rotation=90)
            ax.set_yticks(range(len(rows)), labels)
            ax.set_xlim(-0.5, per_panel - 0.5)  # a short last panel keeps the cells' width
            ax.spines[["right", "top"]].set_visible(False)
            for tick, (_, model, _) in zip(ax.get_yticklabels(), rows, strict=True):
                tick.set_color(colors.get(model, "black"))
        fig.colorbar(im, ax=list(axs), label="accuracy (%)", shrink=0.9)
        title = "Per-emotion accuracy (%, colour); each cell: n, the run's items of that gold emotion (blank: none)"
        fig.suptitle(_wrap(title, size))
        return _finish(fig, size)



# ----------------------------------------------------------------------------- confusion


def confusion_labels(table: Mapping[str, Mapping[str, int]]) -> tuple[list[str], list[str]]:
    """(rows, columns): every emotion that is a gold label or a predicted label, sorted, in both,
    so that cell (i, i) is a correct prediction; then the columns of predicted classes that are no
    emotion (`<invalid>`, `<missing>`), sorted."""
    from kardiabench.emotions import EMOTION_SET

    predicted = {p for row in table.values() for p in row}
    labels = sorted(set(table) | (predicted & EMOTION_SET))
    return labels, labels + sorted(predicted - set(labels))


def confusion(table: Mapping[str, Mapping[str, int]], name: str, colour: str = "black", size: Size = TWO_COLUMN) -> Figure:
    """One run's confusion matrix: gold label × predicted class counts (results.json's
    `emotion.confusion`). Square cells, the diagonal aligned (`confusion_labels`), labels centred
    on their cells and never broken, a colour bar with integer ticks. The first layout that fits
    the width with labels apart: the names on one side; the names, every other one on the opposite
    side (top, right); numbers on alternate sides and a key under the matrix (32 emotions at 3.3 in)."""
    rows, cols = confusion_labels(table)
    counts = np.array([[table.get(g, {}).get(p, 0) for p in cols] for g in rows], dtype=int)
    n = max(len(cols), 1)
    line = 1.45 * size.font / 72  # inches between the centres of two labels side by side
    margin = 0.45 if size.one_column else 1.0  # axis label, pads, the colour bar at the right
    for numbered, alternate in ((False, False), (False, True), (True, True)):
        label_w = _text_width([str(n)] if numbered else [*rows, *cols], size) + 0.1
        cell = (size.width - margin - (2 if alternate else 1) * label_w) / n
        if cell * (2 if alternate else 1) >= line:
            break
    names = [str(i) for i in range(1, len(cols) + 1)] if numbered else [literal(c) for c in cols]
    key = _wrap("Key: " + ", ".join(f"{i}\u00a0{literal(c)}" for i, c in enumerate(cols, 1)), size) if numbered else ""
    sides = 2 if alternate else 1
    height = len(rows) * cell + sides * label_w + (1.1 if size.one_column else 0.7) + (key.count("\n") + 1) * line * bool(key)
    with _sized(size):
        fig = figure_for(size, height)
        ax = fig.add_subplot()
        im = ax.imshow(counts, cmap="Blues", aspect="equal", vmin=0, vmax=max(1, int(counts.max(initial=0))))
        _cell_labels(ax, "x", names, alternate)
        _cell_labels(ax, "y", names[: len(rows)], alternate)  # rows are the first columns: same number, same name
        ax.set_xlabel("predicted emotion")
        ax.set_ylabel("gold emotion")
        ax.set_title(_wrap(literal(f"Confusion matrix: {name}"), size), color=colour)
        fig.colorbar(im, ax=ax, label="items", ticks=MaxNLocator(integer=True), location="bottom" if size.one_column else "right",
                     shrink=0.8)  # fmt: skip
        if key:
            fig.supxlabel(key, ha="left", x=0.01, multialignment="left")
        return _finish(fig, size)


def _cell_labels(ax, axis: str, labels: list[str], alternate: bool) -> None:
    """Each label at its cell's centre (x labels upright, centred); with `alternate`, the odd ones
    on the other side of the matrix, so that labels taller than a cell do not overlap."""
    ticks = list(range(len(labels)))
    rot = {"rotation": 90, "ha": "center"} if axis == "x" else {"va": "center"}
    set_ticks = ax.set_xticks if axis == "x" else ax.set_yticks
    if not alternate:
        set_ticks(ticks, labels, **rot)
        return
    set_ticks(ticks[::2], labels[::2], **rot)
    other = ax.secondary_xaxis("top") if axis == "x" else ax.secondary_yaxis("right")
    other.set_ticks(ticks[1::2], labels[1::2], **rot)


# ----------------------------------------------------------------------------- the build's plots


def write_plots(board: Board, entries: Sequence[Entry], labels: Mapping[str, str], colors: Mapping[str, str], folder: Path) -> list[Path]:
    """Every plot of a leaderboard in both sizes under `folder`: radar-GROUP, bars-GROUP for each
    comparability group, emotion_heatmap, confusion/ENTRY for each of `entries` (the ranked ones)."""
    out = []
    for g in board.groups:
        out += save_sizes(lambda s, g=g: radar_figure(board, g.name, colors, s), folder / f"radar-{g.name}")
        out += save_sizes(lambda s, g=g: bars_figure(board, g.name, colors, s), folder / f"bars-{g.name}")
    out += save_sizes(lambda s: heatmap_figure(board, entries, colors, s), folder / "emotion_heatmap")
    for e in entries:
        table = (e.results.get("emotion") or {}).get("confusion") or {}
        if table:
            name = labels[e.entry_id]
            out += save_sizes(lambda s, t=table, n=name: confusion(t, n, colors[n], s), folder / "confusion" / e.entry_id)
    return out
