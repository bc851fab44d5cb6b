"""Pairwise preference on the leaderboard: `leaderboard add-pairwise DIR` copies a `pairwise`
folder's pairwise.json into FOLDER/pairwise/; `leaderboard build` then writes FOLDER/pairwise.md,
plots/pairwise_bt.{png,svg} and a section of the site: the Bradley–Terry scores, in their own
table, never mixed with the absolute (1–5 rubric) scores."""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from html import escape
from pathlib import Path
from typing import Any

from kardiabench.leaderboard.entries import LeaderboardError
from kardiabench.pairwise_stage import bt_rows, load_pairwise
from kardiabench.runs import RunDir
from kardiabench.tables import markdown_table

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
    return [
        (p.stem, json.loads(p.read_text(encoding="utf-8")))
        for p in sorted((Path(folder) / PAIRWISE).glob("*.json"))
    ]


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


def plot(results: Sequence[tuple[str, dict[str, Any]]], stem: Path) -> list[Path]:
    """One row of panels per recorded result, one panel per dimension: each model's score and CI."""
    import matplotlib.pyplot as plt
    import numpy as np

    from kardiabench.leaderboard.plots import literal, save

    dims = max((list(res["bradley_terry"]) for _, res in results), key=len)
    fig, axs = plt.subplots(
        len(results), len(dims), figsize=(3.0 * len(dims), 2.2 * len(results) + 0.8), squeeze=False
    )
    for row, (name, res) in zip(axs, results, strict=True):
        for ax, d in zip(row, dims, strict=True):
            scores = res["bradley_terry"].get(d, [])
            y = np.arange(len(scores))
            v = np.array([s["score"] for s in scores])
            err = np.array(
                [
                    [
                        s["score"] - (s["low"] if s["low"] is not None else s["score"])
                        for s in scores
                    ],
                    [
                        (s["high"] if s["high"] is not None else s["score"]) - s["score"]
                        for s in scores
                    ],
                ]
            )
            ax.errorbar(v, y, xerr=err, fmt="o", capsize=3)
            ax.axvline(1000, color="grey", lw=0.5)
            ax.set_yticks(y, [literal(s["model"]) for s in scores])
            ax.invert_yaxis()
            ax.set_title(literal(f"{name}: {d}"), fontsize=9)
    fig.suptitle(f"{TITLE}, 95% CIs")
    fig.tight_layout()
    return save(fig, stem)
