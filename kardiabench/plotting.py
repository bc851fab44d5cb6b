"""Plot code shared by a run's report (report.py) and the leaderboard (leaderboard/plots.py),
sized to print in a paper as they are: matplotlib on Agg with reproducible output (no date, fixed
SVG ids); every figure in two widths (`SIZES`: 7 in two-column, 3.3 in one-column, every text at
7 pt or more, fonts set per figure, never in matplotlib's global state), saved as PDF and PNG or
inlined as SVG markup; the confusion matrix of one run. Every text from a run or the data goes
through `literal`: drawn as written, never as mathtext.
"""

from __future__ import annotations

import io
import textwrap
from collections.abc import Callable, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402

from kardiabench.tables import visible  # noqa: E402

MIN_FONT = 7.0  # pt at print size
DPI = 300
FORMATS = ("pdf", "png")
# Reproducible files: no date, fixed SVG ids.
_META = {
    "png": {"Software": None},
    "pdf": {"CreationDate": None},
    "svg": {"Date": None, "Creator": None},
}


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


# ----------------------------------------------------------------------------- sizes and files


def _rc(size: Size) -> dict:
    f = size.font
    return {
        "font.size": f,
        "axes.titlesize": f,
        "axes.labelsize": f,
        "xtick.labelsize": f,
        "ytick.labelsize": f,
        "legend.fontsize": f,
        "legend.title_fontsize": f,
        "figure.titlesize": f,
        "figure.labelsize": f,
        "pdf.fonttype": 42,
        "svg.fonttype": "path",
        "svg.hashsalt": "kardiabench",
        "hatch.linewidth": 0.6,
    }


@contextmanager
def sized(size: Size):
    with matplotlib.rc_context(_rc(size)):
        yield


def finish(fig: Figure, size: Size) -> Figure:
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
    with sized(size):
        for ext in FORMATS:
            # not with_suffix: entry ids contain dots
            path = stem.parent / f"{stem.name}{size.suffix}.{ext}"
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
    with sized(size):
        fig.savefig(buf, format="svg", metadata=_META["svg"])
    plt.close(fig)
    text = buf.getvalue()
    return text[text.index("<svg") :]


def wrap_to(text: str, size: Size, width: float | None = None) -> str:
    """Wrapped to lines that fit `width` inches (the figure's by default) at the figure's font."""
    chars = int((width or size.width) * 72 / (0.6 * size.font))
    return (
        "\n".join(textwrap.wrap(text, chars, break_long_words=False, break_on_hyphens=False))
        or text
    )


def text_width(texts: Sequence[str], size: Size) -> float:
    """About how wide (inches) the longest text is at the figure's font."""
    return max((len(t) for t in texts), default=0) * 0.6 * size.font / 72


# ----------------------------------------------------------------------------- confusion


def confusion_labels(table: Mapping[str, Mapping[str, int]]) -> tuple[list[str], list[str]]:
    """(rows, columns): every emotion that is a gold label or a predicted label, sorted, in both,
    so that cell (i, i) is a correct prediction; then the columns of predicted classes that are no
    emotion (`<invalid>`, `<missing>`), sorted."""
    from kardiabench.emotions import EMOTION_SET

    predicted = {p for row in table.values() for p in row}
    labels = sorted(set(table) | (predicted & EMOTION_SET))
    return labels, labels + sorted(predicted - set(labels))


def confusion(
    table: Mapping[str, Mapping[str, int]],
    name: str,
    colour: str = "black",
    size: Size = TWO_COLUMN,
) -> Figure:
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
        label_w = text_width([str(n)] if numbered else [*rows, *cols], size) + 0.1
        cell = (size.width - margin - (2 if alternate else 1) * label_w) / n
        if cell * (2 if alternate else 1) >= line:
            break
    names = [str(i) for i in range(1, len(cols) + 1)] if numbered else [literal(c) for c in cols]
    key = (
        wrap_to("Key: " + ", ".join(f"{i}\u00a0{literal(c)}" for i, c in enumerate(cols, 1)), size)
        if numbered
        else ""
    )
    sides = 2 if alternate else 1
    height = (
        len(rows) * cell
        + sides * label_w
        + (1.1 if size.one_column else 0.7)
        + (key.count("\n") + 1) * line * bool(key)
    )
    with sized(size):
        fig = figure_for(size, height)
        ax = fig.add_subplot()
        im = ax.imshow(
            counts, cmap="Blues", aspect="equal", vmin=0, vmax=max(1, int(counts.max(initial=0)))
        )
        _cell_labels(ax, "x", names, alternate)
        # rows are the first columns: same number, same name
        _cell_labels(ax, "y", names[: len(rows)], alternate)
        ax.set_xlabel("predicted emotion")
        ax.set_ylabel("gold emotion")
        ax.set_title(wrap_to(literal(f"Confusion matrix: {name}"), size), color=colour)
        fig.colorbar(
            im,
            ax=ax,
            label="items",
            ticks=MaxNLocator(integer=True),
            location="bottom" if size.one_column else "right",
            shrink=0.8,
        )
        if key:
            fig.supxlabel(key, ha="left", x=0.01, multialignment="left")
        return finish(fig, size)


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
