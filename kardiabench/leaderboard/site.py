"""The one-page static site: the leaderboard table (sortable, CIs shown), the group explanations,
the paper's reported rows, deltas to them, and the plots as inline images. Every piece of text is
escaped (`html.escape`), the page loads nothing from the network, and a few lines of inline JS sort
the table when a header is clicked. Invisible and bidi control characters are shown as `<U+XXXX>`.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping
from html import escape as html_escape
from pathlib import Path

import pandas as pd

from kardiabench.leaderboard.tables import (
    METRICS,
    SELF_PREFERENCE_MARK,
    SUBSET_MARK,
    TRAINING_JUDGE_MARK,
    Board,
    cell,
    delta_rows,
    not_ranked_note,
    num,
    visible,
)

CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,sans-serif;margin:2rem auto;max-width:1200px;padding:0 1rem;color:#222}
table{border-collapse:collapse;margin:1rem 0;font-size:.9rem}th,td{border-bottom:1px solid #ddd;padding:.3rem .6rem;text-align:right}
th{cursor:pointer;background:#f4f4f4;user-select:none}th.sorted-asc::after{content:" ▲"}th.sorted-desc::after{content:" ▼"}
td.text,th.text{text-align:left}tr.reported td{color:#666;font-style:italic;background:#fafafa}
.swatch{display:inline-block;width:.8em;height:.8em;border-radius:2px;margin-right:.4em;vertical-align:middle}
.note{color:#555;font-size:.85rem}img{max-width:100%;border:1px solid #eee;margin:.5rem 0}
"""
# Sorts the rows of the table's first tbody by the clicked column: numbers by data-v, else text.
JS = """
document.querySelectorAll("table.sortable").forEach(function(table){
  table.querySelectorAll("th").forEach(function(th, col){
    th.addEventListener("click", function(){
      var body = table.tBodies[0], asc = !th.classList.contains("sorted-asc");
      var rows = Array.prototype.slice.call(body.rows);
      rows.sort(function(a, b){
        var x = a.cells[col].getAttribute("data-v"), y = b.cells[col].getAttribute("data-v");
        var nx = parseFloat(x), ny = parseFloat(y), r;
        if (isNaN(nx) !== isNaN(ny)) return isNaN(nx) ? 1 : -1;  // empty cells last
        r = isNaN(nx) ? String(x).localeCompare(String(y)) : nx - ny;
        return asc ? r : -r;
      });
      rows.forEach(function(row){ body.appendChild(row); });
      table.querySelectorAll("th").forEach(function(h){ h.classList.remove("sorted-asc", "sorted-desc"); });
      th.classList.add(asc ? "sorted-asc" : "sorted-desc");
    });
  });
});
"""


def escape(text: str) -> str:
    """Every text of the page: hidden characters shown (`visible`, so U+202E cannot reorder a
    row), then HTML-escaped."""
    return html_escape(visible(text))


def data_uri(path: Path) -> str:
    kind = "image/svg+xml" if path.suffix == ".svg" else "image/png"
    return f"data:{kind};base64,{base64.b64encode(path.read_bytes()).decode()}"


def render_site(board: Board, colors: Mapping[str, str], reports: Mapping[str, str], images: Mapping[str, Path], *, title: str = "KardiaBench leaderboard", redacted: bool = False) -> str:
    """The page. reports: entry id → relative link of its report; images: caption → PNG file."""
    f = board.frame
    runs, rep = f[f["kind"] == "run"], f[f["kind"] == "reported"]
    head = "".join(f'<th class="text">{h}</th>' for h in ("Group", "Tier", "Model")) + "".join(f"<th>{escape(t)}</th>" for t in METRICS.values())
    head += '<th class="text">Report</th>'
    body = "\n".join(_run_row(r, colors, reports) for _, r in runs.iterrows())
    parts = [f"<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>{escape(title)}</title>",
             f"<meta name=\"viewport\" content=\"width=device-width,initial-scale=1\"><style>{CSS}</style></head><body>",
             f"<h1>{escape(title)}</h1>",
             f'<table class="sortable" id="leaderboard"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>',
             f'<p class="note">Ranked within a group by {escape(METRICS[board.rank_by])}; models in one tier are not separated by '
             f"the paired test. Click a header to sort. Values: mean ± half the width of the 95% CI. {SUBSET_MARK}: evaluated on a "
             f"<code>--limit</code> subset. {SELF_PREFERENCE_MARK}: judged by a model of its own family. {TRAINING_JUDGE_MARK}: "
             "trained against a judge of the scoring judge's family. Rows of different groups are not comparable.</p>",
             "<h2>Comparability groups</h2><ul>" + "".join(f"<li>{escape(g.explanation)}</li>" for g in board.groups)
             + "".join(f"<li>Judge card ({escape(r['group'])}): {escape(r['judge_card'])}</li>"
                       for _, r in runs.dropna(subset=["judge_card"]).drop_duplicates(["group", "judge_card"]).iterrows()) + "</ul>"]  # fmt: skip
    if len(rep):
        rhead = '<th class="text">Model</th>' + "".join(f"<th>{escape(t)}</th>" for t in METRICS.values())
        rbody = "".join('<tr class="reported"><td class="text">' + escape(r["model"]) + " (reported)</td>"
                        + "".join(f"<td>{escape(cell(r, m))}</td>" for m in METRICS) + "</tr>" for _, r in rep.iterrows())  # fmt: skip
        parts += ["<h2>Reported in the paper (not run here)</h2>",
                  f'<table id="reported"><thead><tr>{rhead}</tr></thead><tbody>{rbody}</tbody></table>',
                  f'<p class="note">{escape(board.reported_note)}</p>']  # fmt: skip
    deltas = delta_rows(board)
    if deltas:
        dhead = "".join(f'<th class="text">{h}</th>' for h in ("Group", "Model", "Reported row")) + "".join(f"<th>{escape(t)}</th>" for t in METRICS.values())
        drows = "".join("<tr>" + "".join(f'<td class="text">{escape(x)}</td>' for x in (g, m, ref)) + "".join(f"<td>{escape(d)}</td>" for d in ds) + "</tr>"
                        for g, m, ref, ds in deltas)  # fmt: skip
        parts += ["<h2>Runs against the paper's reported numbers (run − reported)</h2>",
                  f'<table id="deltas"><thead><tr>{dhead}</tr></thead><tbody>{drows}</tbody></table>']
    parts += ["<h2>Plots</h2>"] + [f'<figure><img src="{data_uri(p)}" alt="{escape(c)}"><figcaption class="note">{escape(c)}</figcaption></figure>' for c, p in images.items()]
    if redacted:
        parts.append('<p class="note">Redacted export: the reports leave out the users\' turns and every passage of the data a model or judge repeated.</p>')
    parts.append(f"<script>{JS}</script></body></html>")
    return "\n".join(parts) + "\n"


def _run_row(r: pd.Series, colors: Mapping[str, str], reports: Mapping[str, str]) -> str:
    tier = "" if pd.isna(r["tier"]) else str(int(r["tier"]))
    model = escape(r["model"] + not_ranked_note(r)) + (f' <span title="evaluated on a --limit subset ({int(r["limit"])} items)">{SUBSET_MARK}</span>' if r["subset"] else "")
    if r["self_preference"]:
        model += f' <span title="judged by a model of its own family (self-preference risk)">{SELF_PREFERENCE_MARK}</span>'
    if r["training_judge"]:
        model += f' <span title="trained against a judge of the scoring judge\'s family (training-judge risk)">{TRAINING_JUDGE_MARK}</span>'
    swatch = f'<span class="swatch" style="background:{colors[r["model"]]}"></span>'
    cells = [f'<td class="text" data-v="{escape(r["group"])}">{escape(r["group"])}</td>', f'<td data-v="{tier}">{tier or "–"}</td>',
             f'<td class="text" data-v="{escape(r["model"])}">{swatch}{model}</td>']  # fmt: skip
    for m in METRICS:
        v = num(r[m])
        cells.append(f'<td data-v="{"" if v is None else v}">{escape(cell(r, m))}</td>')
    link = reports.get(r["entry_id"])
    cells.append(f'<td class="text"><a href="{escape(link)}">report</a></td>' if link else '<td class="text">–</td>')
    return f'<tr data-entry="{escape(r["entry_id"])}">' + "".join(cells) + "</tr>"
