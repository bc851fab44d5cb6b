"""Plot code shared by a run's report (report.py) and the leaderboard (leaderboard/plots.py):
matplotlib on Agg with reproducible output (no date, fixed SVG ids), figures saved as PNG and SVG
or inlined as SVG markup, the confusion matrix of one run. Every text from a run or the data goes
through `literal`: drawn as written, never as mathtext.
"""

from __future__ import annotations

import io
from collections.abc import Mapping
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402

from kardiabench.tables import visible  # noqa: E402

# Reproducible SVG files: no date, fixed ids.
matplotlib.rcParams.update({"svg.hashsalt": "kardiabench", "svg.fonttype": "path"})
_META = {"png": {"Software": None}, "svg": {"Date": None, "Creator": None}}


def literal(text: str) -> str:
    """Plot text drawn as written: hidden characters shown (`visible`) and every `$` escaped, so a
    model named `$\\foo$` is not parsed as mathtext (which would fail the whole figure)."""
    return visible(text).replace("$", r"\$")


def save(fig, stem: Path) -> list[Path]:
    """stem.png and stem.svg; the figure is closed."""
    stem.parent.mkdir(parents=True, exist_ok=True)
    out = []
    for ext in ("png", "svg"):
        path = stem.parent / f"{stem.name}.{ext}"  # not with_suffix: entry ids contain dots
        fig.savefig(path, dpi=110, bbox_inches="tight", metadata=_META[ext])
        out.append(path)
    plt.close(fig)
    return out


def confusion(table: Mapping[str, Mapping[str, int]], name: str, colour: str = "black"):
    """The figure of one run's confusion matrix: gold label × predicted class counts
    (results.json's `emotion.confusion`; rows: the gold emotions present)."""
    frame = pd.DataFrame(table).T.fillna(0).astype(int)
    frame = frame.reindex(sorted(frame.index)).reindex(sorted(frame.columns), axis=1)
    fig, ax = plt.subplots(figsize=(0.28 * max(8, frame.shape[1]) + 3, 0.28 * max(8, frame.shape[0]) + 2))
    im = ax.imshow(frame.to_numpy(), cmap="Blues", aspect="auto")
    ax.set_xticks(range(frame.shape[1]), [literal(c) for c in frame.columns], rotation=90, fontsize=7)
    ax.set_yticks(range(frame.shape[0]), [literal(c) for c in frame.index], fontsize=7)
    ax.set_xlabel("predicted emotion")
    ax.set_ylabel("gold emotion")
    ax.set_title(f"Confusion matrix: {literal(name)}", color=colour)
    fig.colorbar(im, ax=ax, label="items")
    return fig


def svg_text(fig) -> str:
    """The figure as inline SVG markup (for self-contained HTML); the figure is closed."""
    buf = io.StringIO()
    fig.savefig(buf, format="svg", bbox_inches="tight", metadata=_META["svg"])
    plt.close(fig)
    text = buf.getvalue()
    return text[text.index("<svg"):]
