"""Pairwise preference on the leaderboard: `leaderboard add-pairwise DIR` copies a `pairwise`
folder's pairwise.json into FOLDER/pairwise/; `leaderboard build` then writes FOLDER/pairwise.md,
plots/pairwise_bt{,-1col}.{pdf,png} and a section of the site: the Bradley–Terry scores, in their own
table, never mixed with the absolute (1–5 rubric) scores. The plot prints at paper width as every
leaderboard plot does (kardiabench/plotting.py: 7 in `pairwise_bt.*`, 3.3 in `pairwise_bt-1col.*`)."""

from __future__ import annotations

import re
from collections.abc import Sequence
from html import escape
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kardiabench.leaderboard.entries import LeaderboardError
from kardiabench.pairwise_stage import bt_rows, load_pairwise, read_pairwise
from kardiabench.runs import RunDir
from kardiabench.scoring.metrics import DIMENSION_WORDS
from kardiabench.tables import markdown_table

if TYPE_CHECKING:  # matplotlib is imported when a plot is made
    from matplotlib.figure import Figure

    from kardiabench.plotting import Size

PAIRWISE = "pairwise"
TITLE = "Pairwise preference (Bradley–Terry)"


def add_pairwise(source: str | Path, folder: str | Path) -> Path:
    """Record a pairwise folder's results (re-adding the same folder name replaces them)."""
    res = load_pairwise(source)
    if not res.get("bradley_terry"):
        raise LeaderboardError(
            f"{source}: its pairwise.json has no Bradley–Terry scores; run `kardiabench pairwise` again"
        )
    name = re.sub(r"[^A-Za-z0-9._-]+", "-", Path(source).resolve().name).strip(".-") or "pairwise"
    return RunDir(Path(folder) / PAIRWISE).write_json(
        f"{name}.json", {**res, "source": str(source)}
    )


def load_all(folder: str | Path) -> list[tuple[str, dict[str, Any]]]:
    """(name, pairwise.json) of every recorded pairwise result, by name."""
    return [(p.stem, read_pairwise(p)) for p in sorted((Path(folder) / PAIRWISE).glob("*.json"))]


def _caption(res: dict[str, Any]) -> str:
    j = res["judge"]
    ref = res.get("reference") or res["runs"][0]["name"]
    return (
        f"judge {', '.join(j['specs'])}, {j['data']['source']} / {j['data']['split']}; Elo scale with {ref} at 1000, "
        "95% CI from a dialogue-clustered bootstrap"
    )


def markdown(results: Sequence[tuple[str, dict[str, Any]]]) -> str:
    lines = [
        f"# {TITLE}",
        "",
        "Preference between runs judged pairwise (kardiabench pairwise, both orders); not comparable "
        "with the absolute rubric scores of leaderboard.md.",
        "",
    ]
    for name, res in results:
        head, rows = bt_rows(res["bradley_terry"])
        lines += [
            f"## {name}",
            "",
            _caption(res) + ".",
            "",
            markdown_table(head, rows, align="l" + "r" * (len(head) - 1)),
            "",
        ]
    return "\n".join(lines)


def html_section(results: Sequence[tuple[str, dict[str, Any]]]) -> str:
    parts = [
        f"<h2>{escape(TITLE)}</h2>",
        '<p class="note">Judged pairwise; not comparable with the absolute scores above.</p>',
    ]
    for name, res in results:
        head, rows = bt_rows(res["bradley_terry"])
        thead = "".join(f"<th>{escape(h)}</th>" for h in head)
        body = "".join("<tr>" + "".join(f"<td>{escape(c)}</td>" for c in r) + "</tr>" for r in rows)
        parts += [
            f"<h3>{escape(name)}</h3>",
            f'<p class="note">{escape(_caption(res))}</p>',
            f'<div class="scroll"><table class="pairwise"><thead><tr>{thead}</tr></thead><tbody>{body}</tbody></table></div>',
        ]
    return "\n".join(parts)


def reference(res: dict[str, Any]) -> str:
    """The run at 1000 on the Elo scale: `--reference`, else the first run."""
    return res.get("reference") or res["runs"][0]["name"]


def models_in_order(res: dict[str, Any]) -> list[str]:
    """The result's models, best first by their mean score over the dimensions."""
    scores: dict[str, list[float]] = {}
    for rows in res["bradley_terry"].values():
        for s in rows:
            scores.setdefault(s["model"], []).append(s["score"])
    return sorted(scores, key=lambda m: -sum(scores[m]) / len(scores[m]))


def bt_figure(results: Sequence[tuple[str, dict[str, Any]]], size: Size | None = None) -> Figure:
    """One panel per recorded result, stacked: a row per model (best first, the reference marked
    "(reference)" in bold at the dashed line of 1000) with each dimension's score and its 95% CI
    as it is (asymmetric), one marker and colour per dimension, the legend under the panels."""
    import matplotlib.pyplot as plt
    import numpy as np

    from kardiabench.plotting import TWO_COLUMN, figure_for, finish, literal, sized, wrap_to

    size = size or TWO_COLUMN
    dims = list(dict.fromkeys(d for _, res in results for d in res["bradley_terry"]))
    colours = dict(zip(dims, plt.get_cmap("tab10").colors, strict=False))
    markers = dict(zip(dims, "osD^vP*Xh", strict=False))
    band = 0.09 * len(dims) + 0.12  # inches per model: its dimensions' markers apart
    rows = [len(models_in_order(res)) for _, res in results]
    legend_rows = -(-len(dims) // (2 if size.one_column else 5))
    height = sum(n * band + 0.75 for n in rows) + 0.45 + legend_rows * 0.2
    with sized(size):
        fig = figure_for(size, height)
        axs = fig.subplots(len(results), 1, squeeze=False, height_ratios=rows).ravel()
        offsets = (np.arange(len(dims)) - (len(dims) - 1) / 2) * 0.7 / max(len(dims), 1)
        for ax, (name, res) in zip(axs, results, strict=True):
            models, ref = models_in_order(res), reference(res)
            y = {m: i for i, m in enumerate(models)}
            for d, off in zip(dims, offsets, strict=True):
                scores = res["bradley_terry"].get(d, [])
                if not scores:
                    continue
                v = np.array([s["score"] for s in scores])
                lo = np.array([s["score"] if s["low"] is None else s["low"] for s in scores])
                hi = np.array([s["score"] if s["high"] is None else s["high"] for s in scores])
                ax.errorbar(
                    v,
                    [y[s["model"]] + off for s in scores],
                    xerr=[v - lo, hi - v],
                    fmt=markers[d],
                    ms=3.5,
                    lw=0.8,
                    capsize=1.5,
                    color=colours[d],
                    label=DIMENSION_WORDS.get(d, d),
                )
            ax.axvline(1000, color="grey", lw=0.6, ls="--", zorder=0)
            labels = [literal(m + (" (reference)" if m == ref else "")) for m in models]
            ax.set_yticks(range(len(models)), labels)
            for tick, m in zip(ax.get_yticklabels(), models, strict=True):
                tick.set_fontweight("bold" if m == ref else "normal")
            ax.set_ylim(len(models) - 0.5, -0.5)
            ax.set_title(wrap_to(literal(name), size))
            ax.set_xlabel("Bradley–Terry score (Elo scale)")
        handles, names = axs[0].get_legend_handles_labels()
        fig.legend(
            handles,
            names,
            loc="outside lower center",
            ncols=2 if size.one_column else 5,
            title="dimension",
            frameon=False,
        )
        fig.suptitle(
            wrap_to(f"{TITLE}: reference at 1000 (dashed), 95% CIs (dialogue bootstrap)", size)
        )
        return finish(fig, size)


def plot(results: Sequence[tuple[str, dict[str, Any]]], stem: Path) -> list[Path]:
    """The Bradley–Terry plot at both print widths (plotting.SIZES): STEM.pdf/.png and
    STEM-1col.pdf/.png."""
    from kardiabench.plotting import save_sizes

    return save_sizes(lambda size: bt_figure(results, size), stem)
