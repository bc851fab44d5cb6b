"""The one-page static site: the leaderboard table (CIs, n, marks), the group explanations, the
paper's reported rows, deltas to them, and the plots as inline images. Every piece of text is
escaped (`html.escape`), the page loads nothing from the network, and a few lines of inline JS sort
and filter the table. Invisible and bidi control characters are shown as `<U+XXXX>`.

Layout: cells never wrap; the table scrolls sideways in its own box when the window is narrow
(a phone) with the model column fixed at the left. Each comparability group is its own tbody,
headed by its data, judge and harness version: sorting (first click best first) stays within a
group, and the group filter and the search box hide whole groups or rows.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping, Sequence
from html import escape as html_escape
from pathlib import Path

import pandas as pd

from kardiabench import __version__
from kardiabench.leaderboard.tables import (
    FEW_MARK,
    FEW_TEXT,
    METRICS,
    MODEL_MARKS,
    Board,
    Cell,
    delta_rows,
    group_label,
    legend,
    metric_cell,
    n_text,
    not_ranked_note,
    num,
    visible,
)

CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,sans-serif;margin:2rem auto;max-width:1400px;padding:0 1rem;color:#222}
.scroll{overflow-x:auto;max-width:100%;margin:1rem 0}
table{border-collapse:separate;border-spacing:0;font-size:.85rem}th,td{border-bottom:1px solid #ddd;padding:.3rem .4rem;text-align:right;white-space:nowrap}
thead th{background:#f4f4f4;user-select:none}th[data-sort]{cursor:pointer}th.sorted-asc::after{content:" ▲"}th.sorted-desc::after{content:" ▼"}
td.text,th.text{text-align:left}tr.reported td{color:#666;font-style:italic;background:#fafafa}
#leaderboard .model{position:sticky;left:0;z-index:1;background:#fff;border-right:1px solid #ddd}#leaderboard thead .model{background:#f4f4f4;z-index:2}
tr.group-head th{background:#eef3f8;text-align:left;font-weight:600;padding:.45rem .6rem}
tr.group-head span{position:sticky;left:.6rem;white-space:normal}
.ci{color:#666;font-size:.78em}.n{color:#8a5a00;font-size:.75em}.few{color:#8a5a00}td.best .v{font-weight:700}
.controls{display:flex;flex-wrap:wrap;gap:.5rem 1.5rem;align-items:center;font-size:.9rem}.controls input{min-width:14em}
.swatch{display:inline-block;width:.8em;height:.8em;border-radius:2px;margin-right:.4em;vertical-align:middle}
.note,.meta{color:#555;font-size:.85rem}img{max-width:100%;border:1px solid #eee;margin:.5rem 0}
"""
# Sorting: each group's tbody on its own, by data-v (numbers, empty cells last) in the header's
# data-sort direction first (metrics: best, i.e. highest, first), the other way on the next click.
# Filtering: the search box (model name or spec) and the group select hide rows and empty groups.
JS = """
(function(){
  var table = document.getElementById("leaderboard"), bodies = Array.prototype.slice.call(table.tBodies);
  var heads = Array.prototype.slice.call(table.tHead.rows[0].cells);
  function runs(body){ return Array.prototype.filter.call(body.rows, function(r){ return r.hasAttribute("data-entry"); }); }
  heads.forEach(function(th, col){
    if (!th.hasAttribute("data-sort")) return;
    th.addEventListener("click", function(){
      var first = th.getAttribute("data-sort"), other = first === "asc" ? "desc" : "asc";
      var dir = th.classList.contains("sorted-" + first) ? other : first;
      bodies.forEach(function(body){
        runs(body).sort(function(a, b){
          var x = a.cells[col].getAttribute("data-v"), y = b.cells[col].getAttribute("data-v");
          var nx = parseFloat(x), ny = parseFloat(y), r;
          if (isNaN(nx) !== isNaN(ny)) return isNaN(nx) ? 1 : -1;
          r = isNaN(nx) ? String(x).localeCompare(String(y)) : nx - ny;
          return dir === "asc" ? r : -r;
        }).forEach(function(row){ body.appendChild(row); });
      });
      heads.forEach(function(h){ h.classList.remove("sorted-asc", "sorted-desc"); });
      th.classList.add("sorted-" + dir);
    });
  });
  var search = document.getElementById("search"), group = document.getElementById("group-filter");
  function filter(){
    var q = search.value.trim().toLowerCase(), g = group.value, shown = 0;
    bodies.forEach(function(body){
      var n = 0;
      runs(body).forEach(function(r){
        var ok = (!g || body.getAttribute("data-group") === g) && r.getAttribute("data-name").indexOf(q) >= 0;
        r.style.display = ok ? "" : "none"; n += ok ? 1 : 0;
      });
      body.style.display = n ? "" : "none"; shown += n;
    });
    document.getElementById("shown-runs").textContent = String(shown);
  }
  search.addEventListener("input", filter); group.addEventListener("change", filter);
})();
"""


def escape(text: str) -> str:
    """Every text of the page: hidden characters shown (`visible`, so U+202E cannot reorder a
    row), then HTML-escaped."""
    return html_escape(visible(text))


def data_uri(path: Path) -> str:
    kind = "image/svg+xml" if path.suffix == ".svg" else "image/png"
    return f"data:{kind};base64,{base64.b64encode(path.read_bytes()).decode()}"


def render_site(
    board: Board,
    colors: Mapping[str, str],
    reports: Mapping[str, str],
    images: Mapping[str, Path],
    *,
    title: str = "KardiaBench leaderboard",
    redacted: bool = False,
    built: str = "",
    sections: Sequence[str] = (),
) -> str:
    """The page. reports: entry id → relative link of its report; images: caption → PNG file;
    built: the build's time, shown with the harness version; sections: further HTML (escaped by
    their makers) shown before the plots, e.g. the pairwise preference tables."""
    f, cols = board.frame, board.columns
    runs, rep = f[f["kind"] == "run"], f[f["kind"] == "reported"]
    head = (
        '<th class="text" data-sort="asc">Tier</th><th class="text model" data-sort="asc">Model</th><th data-sort="desc">n</th>'
        + "".join(f'<th data-sort="desc" data-metric="{m}">{escape(METRICS[m])}</th>' for m in cols)
        + '<th class="text">Report</th>'
    )
    bodies = []
    for group in board.groups:
        sub = runs[runs["group"] == group.name]
        versions = (
            ", ".join(sorted({str(v) for v in sub["harness_version"] if isinstance(v, str)})) or "?"
        )
        caption = f"{group_label(group, board)} · kardiabench {versions}"
        rows = "".join(_run_row(r, cols, colors, reports) for _, r in sub.iterrows())
        bodies.append(
            f'<tbody data-group="{escape(group.name)}"><tr class="group-head"><th colspan="{len(cols) + 4}">'
            f"<span>{escape(caption)}</span></th></tr>{rows}</tbody>"
        )
    options = "".join(
        f'<option value="{escape(g.name)}">{escape(g.name)} ({len(g.entries)})</option>'
        for g in board.groups
    )
    controls = (
        f'<div class="controls"><label>Search <input id="search" type="search" placeholder="model name"></label>'
        f'<label>Group <select id="group-filter"><option value="">all groups</option>{options}</select></label>'
        f'<span><span id="shown-runs">{len(runs)}</span> of {len(runs)} runs shown</span></div>'
    )
    judges = "; ".join(
        f"{g.name}: {escape(group_label(g, board).split(' items, ', 1)[-1])}" for g in board.groups
    )
    parts = [
        f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>{escape(title)}</title>',
        f'<meta name="viewport" content="width=device-width,initial-scale=1"><style>{CSS}</style></head><body>',
        f"<h1>{escape(title)}</h1>",
        f'<p class="meta" id="meta">Built {escape(built or "?")} with kardiabench {escape(__version__)}. Judges: {judges}.</p>',
        controls,
        f'<div class="scroll"><table id="leaderboard"><thead><tr>{head}</tr></thead>{"".join(bodies)}</table></div>',
        f'<p class="note">{escape(legend(board))} Click a header to sort (within each group); rows of different groups are not comparable.</p>',
        "<h2>Comparability groups</h2><ul>"
        + "".join(f"<li>{escape(g.explanation)}</li>" for g in board.groups)
        + "".join(
            f"<li>Judge card ({escape(r['group'])}): {escape(r['judge_card'])}</li>"
            for _, r in runs.dropna(subset=["judge_card"])
            .drop_duplicates(["group", "judge_card"])
            .iterrows()
        )
        + "</ul>",
    ]
    if len(rep):
        rhead = '<th class="text">Model</th>' + "".join(
            f"<th>{escape(METRICS[m])}</th>" for m in cols
        )
        rbody = "".join(
            '<tr class="reported"><td class="text">'
            + escape(r["model"])
            + " (reported)</td>"
            + "".join(_metric_td(metric_cell(r, m), r[m]) for m in cols)
            + "</tr>"
            for _, r in rep.iterrows()
        )
        parts += [
            "<h2>Reported in the paper (not run here)</h2>",
            f'<div class="scroll"><table id="reported"><thead><tr>{rhead}</tr></thead><tbody>{rbody}</tbody></table></div>',
            f'<p class="note">{escape(board.reported_note)}</p>',
        ]
    deltas = delta_rows(board)
    if deltas:
        dhead = "".join(
            f'<th class="text">{h}</th>' for h in ("Group", "Model", "Reported row")
        ) + "".join(f"<th>{escape(METRICS[m])}</th>" for m in cols)
        drows = "".join(
            "<tr>"
            + "".join(f'<td class="text">{escape(x)}</td>' for x in (g, m, ref))
            + "".join(f"<td>{escape(d)}</td>" for d in ds)
            + "</tr>"
            for g, m, ref, ds in deltas
        )
        parts += [
            "<h2>Runs against the paper's reported numbers (run − reported)</h2>",
            f'<div class="scroll"><table id="deltas"><thead><tr>{dhead}</tr></thead><tbody>{drows}</tbody></table></div>',
        ]
    parts += list(sections)
    parts += ["<h2>Plots</h2>"] + [
        f'<figure><img src="{data_uri(p)}" alt="{escape(c)}"><figcaption class="note">{escape(c)}</figcaption></figure>'
        for c, p in images.items()
    ]
    if redacted:
        parts.append(
            '<p class="note">Redacted export: the reports leave out the users\' turns and every passage of the data a model or judge repeated.</p>'
        )
    parts.append(f"<script>{JS}</script></body></html>")
    return "\n".join(parts) + "\n"


def _metric_td(c: Cell, value) -> str:
    """A number's cell: value (bold when best), FEW_MARK, CI and n note; data-v sorts it."""
    v = num(value)
    few = f'<span class="few" title="{escape(FEW_TEXT)}">{FEW_MARK}</span>' if c.few else ""
    ci = f' <span class="ci">{escape(c.ci)}</span>' if c.ci else ""
    note = (
        f' <span class="n" title="scored of the items it was meant for">{escape(c.note)}</span>'
        if c.note
        else ""
    )
    cls = ' class="best"' if c.best else ""
    return f'<td{cls} data-v="{"" if v is None else v}"><span class="v">{escape(c.value)}</span>{few}{ci}{note}</td>'


def _run_row(r: pd.Series, cols, colors: Mapping[str, str], reports: Mapping[str, str]) -> str:
    tier = "" if pd.isna(r["tier"]) else str(int(r["tier"]))
    model = escape(r["model"] + not_ranked_note(r))
    for mark, key, meaning in MODEL_MARKS:
        if r[key]:
            why = f"{meaning} ({int(r['limit'])} items)" if key == "subset" else meaning
            model += f' <span title="{escape(why)}">{mark}</span>'
    swatch = f'<span class="swatch" style="background:{colors[r["model"]]}"></span>'
    n = num(r["n_items"])
    cells = [
        f'<td class="text" data-v="{tier}">{tier or "–"}</td>',
        f'<td class="text model" data-v="{escape(r["model"])}" title="{escape(r["spec"] or "")}">{swatch}{model}</td>',
        f'<td data-v="{"" if n is None else int(n)}">{n_text(r)}</td>',
    ]
    cells += [_metric_td(metric_cell(r, m), r[m]) for m in cols]
    link = reports.get(r["entry_id"])
    cells.append(
        f'<td class="text"><a href="{escape(link)}">report</a></td>'
        if link
        else '<td class="text">–</td>'
    )
    name = f"{r['model']} {r['spec'] or ''}".lower()
    return (
        f'<tr data-entry="{escape(r["entry_id"])}" data-name="{escape(name)}">'
        + "".join(cells)
        + "</tr>"
    )
