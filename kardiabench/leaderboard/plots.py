"""Leaderboard plots with matplotlib (Agg), each written as PNG and SVG.

radar: six axes like the paper's Figure 1 (Emo Acc, Relevance, Fluency, Empathy, Persona, Safety),
bars: each metric with its 95% CI, emotion_heatmap: per-emotion accuracy (recall) across models,
confusion/ENTRY: one confusion matrix per run. A model keeps one colour in every plot
(`model_colors`); the paper's reported rows are drawn dashed or hatched, in grey. Every text from a
run or the data goes through `literal`: drawn as written, never as mathtext.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path

import matplotlib
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from kardiabench.leaderboard.entries import Entry
from kardiabench.leaderboard.tables import METRICS, Board
from kardiabench.plotting import confusion, literal, save, svg_text  # sets the Agg backend

__all__ = ["bars", "confusion", "emotion_heatmap", "literal", "model_colors", "radar", "save", "svg_text"]

RADAR_AXES = {"emotion_accuracy": "Emo Acc", "relevance": "Relevance", "fluency": "Fluency",
              "empathy": "Empathy", "persona_consistency": "Persona", "safety": "Safety"}  # fmt: skip
RADAR_CAPTION = ("Radius: Emo Acc (0–100 %) divided by 100; rubric scores (1–5) mapped by (score − 1) / 4. "
                 "Grey markers: reported in the paper (on the axes it reports); coloured markers without a polygon: "
                 "a run with values on some axes only (no judge).")  # fmt: skip
REPORTED_COLOUR = "#7f7f7f"


def model_colors(models: Sequence[str]) -> dict[str, str]:
    """One colour per run model, in the order given (tab10, then tab20 beyond ten)."""
    cmap = plt.get_cmap("tab10" if len(models) <= 10 else "tab20")
    return {m: matplotlib.colors.to_hex(cmap(i % cmap.N)) for i, m in enumerate(models)}


def radial(metric: str, value: float | None) -> float | None:
    """A value on the radar's common radius 0–1 (see RADAR_CAPTION)."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    return value / 100 if metric == "emotion_accuracy" else (value - 1) / 4


def radar(board: Board, colors: Mapping[str, str], stem: Path) -> list[Path]:
    axes = list(RADAR_AXES)
    angles = np.linspace(0, 2 * np.pi, len(axes), endpoint=False)
    fig, ax = plt.subplots(figsize=(7.5, 6.5), subplot_kw={"polar": True})
    reported_markers = iter(["D", "s", "^", "v", "P", "X", "*", "h"] * 8)
    for _, row in board.frame.iterrows():
        r = [radial(m, row[m]) for m in axes]
        colour = colors[row["model"]] if row["kind"] == "run" else REPORTED_COLOUR
        name = row["model"] if row["kind"] == "run" else f"{row['model']} (reported)"
        if row["kind"] == "run" and None not in r:
            ax.plot([*angles, angles[0]], [*r, r[0]], color=colour, lw=2, label=literal(name))
            ax.fill([*angles, angles[0]], [*r, r[0]], color=colour, alpha=0.08)
        else:  # only the axes it has a value for: no polygon through made-up zeros
            known = [(a, v) for a, v in zip(angles, r, strict=True) if v is not None]
            style = {"ls": "none", "marker": "o" if row["kind"] == "run" else next(reported_markers), "ms": 7}
            ax.plot([a for a, _ in known], [v for _, v in known], color=colour, label=literal(name), **style)
    ax.set_xticks(angles, [RADAR_AXES[m] for m in axes])
    ax.set_ylim(0, 1)
    ax.set_yticks([0.25, 0.5, 0.75, 1.0], ["0.25", "0.5", "0.75", "1"], fontsize=7)
    ax.set_title("KardiaBench: six axes (outer is better)")
    ax.legend(loc="upper left", bbox_to_anchor=(1.05, 1.0), fontsize=8, title="model")
    fig.text(0.02, 0.01, RADAR_CAPTION, fontsize=7, wrap=True)
    return save(fig, stem)


def bars(board: Board, colors: Mapping[str, str], stem: Path) -> list[Path]:
    """One panel per metric: a bar per model with its 95% CI as an error bar."""
    f = board.frame
    fig, axs = plt.subplots(1, len(METRICS), figsize=(3.0 * len(METRICS), 0.45 * len(f) + 1.8), sharey=True)
    labels = [literal(m if k == "run" else f"{m} (reported)") for m, k in zip(f["model"], f["kind"], strict=True)]
    y = np.arange(len(f))
    for ax, (metric, title) in zip(axs, METRICS.items(), strict=True):
        v = f[metric].astype(float).to_numpy()
        lo = (v - f[f"{metric}_ci_low"].astype(float)).to_numpy()
        hi = (f[f"{metric}_ci_high"].astype(float) - v).to_numpy()
        err = np.nan_to_num(np.vstack([lo, hi]))
        col = [colors.get(m, REPORTED_COLOUR) if k == "run" else REPORTED_COLOUR for m, k in zip(f["model"], f["kind"], strict=True)]
        hatch = ["" if k == "run" else "//" for k in f["kind"]]
        for i in range(len(f)):
            if not np.isnan(v[i]):
                ax.barh(y[i], v[i], xerr=err[:, i : i + 1], color=col[i], hatch=hatch[i], edgecolor="black", lw=0.3, capsize=3)
        ax.set_title(title)
        ax.set_xlabel("% of items" if "(%)" in title else "mean score (1–5)")
        ax.set_xlim(0, 100 if "(%)" in title else 5)
    axs[0].set_yticks(y, labels)
    axs[0].invert_yaxis()
    axs[0].set_ylabel("model")
    fig.suptitle("Metrics with 95% CIs (hatched: reported in the paper, no CI)")
    return save(fig, stem)


def emotion_heatmap(entries: Sequence[Entry], labels: Mapping[str, str], colors: Mapping[str, str], stem: Path) -> list[Path]:
    """Per-emotion accuracy (recall over the items of each gold emotion), models × emotions."""
    recalls = {labels[e.entry_id]: {k: v.get("recall") for k, v in ((e.results.get("emotion") or {}).get("per_emotion_recall") or {}).items()}
               for e in entries}  # fmt: skip
    frame = pd.DataFrame(recalls).T.astype(float)
    frame = frame.reindex(sorted(frame.columns), axis=1)
    fig, ax = plt.subplots(figsize=(0.32 * max(8, frame.shape[1]) + 3, 0.45 * max(2, frame.shape[0]) + 1.8))
    im = ax.imshow(frame.to_numpy(), vmin=0, vmax=100, cmap="viridis", aspect="auto")
    ax.set_xticks(range(frame.shape[1]), [literal(c) for c in frame.columns], rotation=90, fontsize=8)
    ax.set_yticks(range(frame.shape[0]), [literal(m) for m in frame.index], fontsize=8)
    for tick, model in zip(ax.get_yticklabels(), frame.index, strict=True):
        tick.set_color(colors.get(model, "black"))
    ax.set_xlabel("gold emotion")
    ax.set_ylabel("model")
    ax.set_title("Per-emotion accuracy (%) (blank: emotion absent from the run's items)")
    fig.colorbar(im, ax=ax, label="accuracy (%)")
    return save(fig, stem)
