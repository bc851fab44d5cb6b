"""`kardiabench report DIR`: DIR/report.html, one self-contained page about one scored run.

Headline metrics with CIs, span diagnostics, the confusion matrix (inline SVG), per-emotion and
per-MBTI breakdowns, the judge's score distribution per dimension and the judges' agreement, the
safety-flagged items, and an items table a reader can filter (wrong emotion, non-compliant,
unscored, flagged) and search, page by page, showing the user's turn, the gold, the four spans
written and the judge's verdict. Every number is `format_interval`'s `75.0 [66.7, 91.7]` with its n.

The items travel as one gzip-compressed, base64 JSON block in a non-executed
`<script type="application/octet-stream">` that the page's script decodes with the browser's
DecompressionStream and shows PAGE_SIZE rows at a time, every text through `textContent` (never
markup): a full-size run (20,525 items) is a few MB and opens in about a second, where one HTML
row per item made 18.8 MB that took 17–22 s. `embedded_items` reads the block back. Every other
text is escaped; CSS and JS are inline; nothing is loaded from the network.

The user's turn is read from the run's data source; when that cannot be loaded (a gated Hub
dataset offline) the column says why. The persona and the gold spans other than the emotion label
are never shown. `redact=True` makes a page that can be shared without redistributing the dataset:
the user's turns are left out, and so is every passage of the data that the model or the judge
repeated (`kardiabench.redact.scrub_dataset_text`: the retrieval baseline answers with training
text, models quote the user, judges quote both), checked against every split of the run's data
source. When that data cannot be loaded, nothing the model or the judge wrote is shown (fail
closed); ids, labels, format and scores always stay.
"""

from __future__ import annotations

import base64
import gzip
import json
import math
import re
from collections import Counter
from collections.abc import Callable, Iterator
from html import escape
from pathlib import Path
from typing import Any

import pandas as pd

from kardiabench.data.load import DataError
from kardiabench.extras import MissingExtra
from kardiabench.leaderboard.tables import FEW_TEXT
from kardiabench.redact import DATA_MARK, MIN_DATA_CHARS, scrub_dataset_text
from kardiabench.runs import REPORT, Run, RunDirError, load_run
from kardiabench.scoring.metrics import METRIC_WORDS, SAFETY_FLAG_MAX
from kardiabench.scoring.rubric import DIMENSIONS
from kardiabench.spans import SPAN_NAMES
from kardiabench.tables import FEW_MARK, agreement_tables, few_items, format_interval, n_note

# What `redact=True` removes, as a version: 2 also removes the data's passages that the model or
# the judge repeated. `leaderboard build --redact` records it in build.json, and `push` uploads
# reports only from a build of the current version.
REDACTION_VERSION = 2
# Why the run's data may not load for a page (moved, not installed, damaged): the page says so instead.
DATA_ERRORS = (DataError, MissingExtra, OSError, ValueError)
FILTERS = {
    "wrong": "wrong emotion",
    "noncompliant": "non-compliant format",
    "unscored": "unscored by the judge",
    "flagged": f"safety-flagged (safety ≤ {SAFETY_FLAG_MAX})",
}
PAGE_SIZE = 100  # item rows shown at a time
DATA_ID = "items-data"  # the element holding the items block
_DATA_RE = re.compile(
    rf'<script type="application/octet-stream" id="{DATA_ID}"[^>]*>([A-Za-z0-9+/=]*)</script>'
)
CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,sans-serif;margin:2rem auto;max-width:1250px;padding:0 1rem;color:#222}
table{border-collapse:collapse;margin:.8rem 0;font-size:.85rem}th,td{border-bottom:1px solid #ddd;padding:.25rem .5rem;vertical-align:top;text-align:left}
th{background:#f4f4f4}td.num{text-align:right;white-space:nowrap}.note{color:#555;font-size:.85rem}.bad{color:#b00020}
#items td{max-width:22rem;white-space:pre-wrap;word-break:break-word}.bar{display:inline-block;height:.7em;background:#4e79a7}
#items td.label{word-break:normal;overflow-wrap:normal;hyphens:none}th{white-space:nowrap}.label{white-space:nowrap}
details{margin:.6rem 0}svg{max-width:100%;height:auto}#pager button{margin-right:.3rem}#search{width:18rem}
"""
# Decodes the items block (base64 → gunzip → JSON) and shows the rows that have every checked
# property and contain the search text, PAGE_SIZE at a time; cells are set as text only.
JS = """
(function(){
  var block = document.getElementById("@DATA@"), body = document.querySelector("#items tbody");
  var status = document.getElementById("items-status"), size = @PAGE@, data = null, rows = [], page = 0, lower = null;
  function bytes(b64){ var s = atob(b64), a = new Uint8Array(s.length); for (var i = 0; i < s.length; i++) a[i] = s.charCodeAt(i); return a; }
  function td(v, cls){
    var c = document.createElement("td"); if (cls) c.className = cls;
    if (Array.isArray(v)) {
      c.appendChild(document.createTextNode(v[0]));
      for (var i = 1; i < v.length; i++) { c.appendChild(document.createElement("br")); var t = document.createElement("small"); t.textContent = v[i]; c.appendChild(t); }
    } else c.textContent = v;
    return c;
  }
  function render(){
    var pages = Math.max(1, Math.ceil(rows.length / size)); page = Math.min(Math.max(page, 0), pages - 1);
    var frag = document.createDocumentFragment();
    rows.slice(page * size, (page + 1) * size).forEach(function(r){
      var tr = document.createElement("tr");
      data.filters.forEach(function(k, i){ tr.setAttribute("data-" + k, (r[0] >> i) & 1); });
      for (var j = 2; j < r.length; j++) tr.appendChild(td(r[j], [data.classes[j - 2], (r[1] >> (j - 2)) & 1 ? "bad" : ""].join(" ").trim()));
      frag.appendChild(tr);
    });
    body.replaceChildren(frag);
    document.getElementById("shown").textContent = rows.length;
    document.getElementById("page").textContent = "page " + (page + 1) + " of " + pages + " (items " + (rows.length ? page * size + 1 : 0) + "–" + Math.min(rows.length, (page + 1) * size) + ")";
    document.getElementById("prev").disabled = document.getElementById("first").disabled = page === 0;
    document.getElementById("next").disabled = document.getElementById("last").disabled = page >= pages - 1;
  }
  function apply(){
    var mask = 0;
    document.querySelectorAll("#filters input").forEach(function(c){ if (c.checked) mask |= 1 << data.filters.indexOf(c.value); });
    var q = document.getElementById("search").value.trim().toLowerCase();
    if (q && !lower) lower = data.rows.map(function(r){ return r.slice(2).flat().join("\\n").toLowerCase(); });
    rows = data.rows.filter(function(r, i){ return (r[0] & mask) === mask && (!q || lower[i].indexOf(q) >= 0); });
    page = 0; render();
  }
  function go(to){ return function(){ page = to(page); render(); }; }
  new Response(new Blob([bytes(block.textContent)]).stream().pipeThrough(new DecompressionStream("gzip"))).json().then(function(d){
    data = d; status.textContent = "";
    document.querySelectorAll("#filters input").forEach(function(c){ c.addEventListener("change", apply); });
    document.getElementById("search").addEventListener("input", apply);
    document.getElementById("first").addEventListener("click", go(function(){ return 0; }));
    document.getElementById("prev").addEventListener("click", go(function(p){ return p - 1; }));
    document.getElementById("next").addEventListener("click", go(function(p){ return p + 1; }));
    document.getElementById("last").addEventListener("click", go(function(){ return Infinity; }));
    apply();
    performance.mark("items-ready");
  }).catch(function(e){ status.textContent = "The items could not be decoded in this browser: " + e; console.error(e); });
})();
""".replace("@DATA@", DATA_ID).replace("@PAGE@", str(PAGE_SIZE))


def write_report(
    run_dir: str | Path, *, output: str | Path | None = None, redact: bool | Redaction = False
) -> Path:
    """Render the report of a scored run to `output` (default DIR/report.html); `redact`: True, or
    the `Redaction` of several runs of the same data."""
    run = load_run(run_dir)
    if run.results is None:
        raise RunDirError(
            f"{run_dir}: not scored yet (no results.json); run `kardiabench score {run_dir}` first"
        )
    path = Path(output) if output else Path(run_dir) / REPORT
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(render_report(run, redact=redact), encoding="utf-8")
    return path


def render_report(run: Run, *, redact: bool | Redaction = False) -> str:
    res = run.results
    items = run.items
    turns, why = ({}, "left out (redacted export)") if redact else _user_turns(run)
    verdicts = _verdicts(run)
    dims = [d for d in (res.rubric or {}).get("means", {}) if d in items.columns]
    if redact:
        redaction = redact if isinstance(redact, Redaction) else Redaction([run])
        show, note = redaction.show, redaction.note(run)
    else:
        show, note = str, ""
    title = f"KardiaBench report: {run.model}"
    parts = [
        f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>{escape(title)}</title>',
        f'<meta name="viewport" content="width=device-width,initial-scale=1"><style>{CSS}</style></head><body>',
        f"<h1>{escape(title)}</h1>",
        _overview(run),
        "<h2>Headline metrics</h2>",
        _metrics(res.metrics, res.data.n_items),
        "<h2>Span diagnostics</h2>",
        _diagnostics(res.metrics.get("format_compliance")),
        "<h2>Emotion: confusion matrix</h2>",
        _confusion(run),
        "<h2>Per gold emotion</h2>",
        _breakdown(res.breakdowns.get("gold_emotion", {})),
        "<h2>Per MBTI type</h2>",
        _breakdown(res.breakdowns.get("mbti", {})),
        "<h2>Judge: score distribution per dimension</h2>",
        _distribution(items, dims),
        '<h2 id="agreement">Judge agreement</h2>',
        _agreement(res.rubric),
        "<h2>Safety-flagged items</h2>",
        _flagged(items, dims, show),
        "<h2>Items</h2>",
        f'<p class="note" id="redaction">{escape(note)}</p>' if note else "",
        _items(items, dims, turns, why, verdicts, redact, show),
        f"<script>{JS}</script></body></html>",
    ]
    return "\n".join(parts) + "\n"


# ----------------------------------------------------------------------------- sections


def _overview(run: Run) -> str:
    res, man = run.results, run.manifest
    d = res.data
    judge = res.judge.spec + f" (rubric {res.judge.rubric_version})" if res.judge else "none"
    stats = man.generation_stats
    rows = [
        ("model", run.model),
        ("task", f"{run.task} (history: {res.history})"),
        (
            "data",
            f"{d.source} / {d.split}: {d.n_items} items, {d.n_dialogues} dialogues, fingerprint {d.fingerprint}"
            + (f", limit {d.limit} (a subset)" if d.limit is not None else ""),
        ),
        ("judge", judge),
        ("parser version", str(res.parser_version)),
        ("created", str(man.created)),
        (
            "harness",
            f"kardiabench {(res.provenance or {}).get('kardiabench')} @ {(res.provenance or {}).get('git_commit')}",
        ),
    ]
    if stats:
        cost = "unknown" if stats.cost_usd is None else f"${stats.cost_usd:.4f}"
        rows.append(
            (
                "generation",
                f"{stats.done} done, {stats.failed} failed; tokens in {stats.prompt_tokens:,} out {stats.completion_tokens:,}; cost {cost}"
                + (f"; {stats.tokens_per_s:,.1f} tokens/s" if stats.tokens_per_s else ""),
            )
        )
    return _table(["", ""], [[escape(k), escape(v)] for k, v in rows], header=False)


def _metrics(metrics: dict, n_items: int | None) -> str:
    rows = []
    for name, m in metrics.items():
        value = "not computed" if m.value is None else _number(name, m, n_items)
        rows.append(
            [
                escape(METRIC_WORDS.get(name, name)),
                value,
                str(m.n),
                str(m.n_unscored),
                escape(m.reason or ""),
            ]
        )
    few = any(m.value is not None and few_items(m.n, n_items) for m in metrics.values())
    legend = f'<p class="note">Value [95% CI]; n: the items it is over; unscored: items left out.{f" {FEW_MARK}: {FEW_TEXT}." if few else ""}</p>'
    return _table(["metric", "value [95% CI]", "n", "unscored", "note"], rows) + legend


def _number(name: str, m, n_items: int | None) -> str:
    """`75.0 [66.7, 91.7]` (`format_interval`; 1 decimal for percentages, 2 for 1–5 means), with
    FEW_MARK when over few of the `n_items` it was meant for."""
    text = format_interval(m.value, m.ci_low, m.ci_high, 2 if name in DIMENSIONS else 1)
    if m.value is not None and few_items(m.n, n_items):
        value, _, ci = text.partition(" ")
        text = f"{value}{FEW_MARK} {ci}".strip()
    return escape(text)


def _diagnostics(fmt) -> str:
    extra = (fmt.extra if fmt else {}) or {}
    if not extra.get("issue_counts"):
        return '<p class="note">No span diagnostics in results.json.</p>'
    rows = [[escape(k), str(v)] for k, v in extra["issue_counts"].items()]
    per_span = extra.get("span_issue_counts", {})
    kinds = sorted({k for counts in per_span.values() for k in counts})
    span_rows = [[escape(s), *(str(per_span[s].get(k, 0)) for k in kinds)] for s in per_span]
    return _table(["issue", "items"], rows) + _table(["span", *kinds], span_rows)


def _confusion(run: Run) -> str:
    from kardiabench.plotting import confusion, svg_text

    table = (run.results.emotion.confusion if run.results.emotion else {}) or {}
    if not table:
        return '<p class="note">No confusion matrix in results.json.</p>'
    return f'<figure id="confusion">{svg_text(confusion(table, run.model))}</figure>'


def _breakdown(groups: dict) -> str:
    if not groups:
        return '<p class="note">None in results.json.</p>'
    names = list(next(iter(groups.values())).metrics)
    rows = []
    for group, b in sorted(groups.items()):
        cells = []
        for n in names:
            m = b.metrics.get(n)
            note = "" if m is None or m.value is None else n_note(m.n, m.n_unscored, b.n)
            cells.append("–" if m is None else _number(n, m, b.n) + (f" ({note})" if note else ""))
        rows.append([escape(group), str(b.n), *cells])
    return (
        _table(["group", "n", *(METRIC_WORDS.get(n, n) for n in names)], rows, label_column=True)
        + f'<p class="note">Per group: the value [95% CI] over the group\'s n items (no CI where results.json gives none); '
        f"n=k/N: over k of its N items (N − k unscored); {FEW_MARK}: {FEW_TEXT}.</p>"
    )


def _distribution(items: pd.DataFrame, dims: list[str]) -> str:
    if not dims:
        return '<p class="note">No judge verdicts (scored without --judge).</p>'
    rows = []
    for d in dims:
        counts = Counter(int(v) for v in items[d].dropna())
        total = sum(counts.values()) or 1
        rows.append(
            [
                escape(METRIC_WORDS.get(d, d)),
                *(
                    f'{counts.get(s, 0)} <span class="bar" style="width:{60 * counts.get(s, 0) / total:.0f}px"></span>'
                    for s in range(1, 6)
                ),
                str(int(items[d].isna().sum())),
            ]
        )
    return _table(["dimension", "1", "2", "3", "4", "5", "unscored"], rows)


def _flagged(items: pd.DataFrame, dims: list[str], show: Callable[[str], str]) -> str:
    if "safety" not in dims:
        return '<p class="note">No safety scores.</p>'
    flagged = items[items["safety"] <= SAFETY_FLAG_MAX]
    if flagged.empty:
        return '<p class="note">No item flagged.</p>'
    rows = [
        [escape(r.item_id), f"{r.safety:g}", escape(show(_text(r.response)))]
        for r in flagged.itertuples()
    ]
    return _table(["item", "safety", "response written"], rows)


def _agreement(rubric: dict | None) -> str:
    tables = agreement_tables(rubric, METRIC_WORDS)
    if not tables:
        return '<p class="note">One judge, each item judged once: no agreement to show (several --judge or --judge-repeats 2 give it).</p>'
    return "".join(
        f"<h3>{escape(title)}</h3>" + _table(head, [[escape(c) for c in r] for r in rows])
        for title, head, rows in tables
    )


def _items(
    items: pd.DataFrame,
    dims: list[str],
    turns: dict[str, str],
    why: str,
    verdicts: dict[str, list[str]],
    redact: bool,
    show: Callable[[str], str],
) -> str:
    """The filter boxes, search box, pager and an empty table, and the items block the page's
    script fills it from: {"head", "classes", "filters", "rows"}; a row is [filter bits, bits of
    the cells shown as bad, *cells], a cell a text or a list of lines (the verdict: its scores,
    then each rationale)."""
    boxes = "".join(
        f'<label><input type="checkbox" value="{k}"> {escape(v)}</label> '
        for k, v in FILTERS.items()
    )
    head = [
        "item",
        *([] if redact else ["user turn"]),
        "gold",
        "predicted",
        *SPAN_NAMES,
        "format",
        "judge verdict",
    ]
    classes = ["label" if h in ("gold", "predicted", "emotion") else "" for h in head]
    rows = []
    for r in items.to_dict("records"):
        flags = {
            "wrong": not r["emotion_correct"],
            "noncompliant": not r["well_formed"],
            "unscored": bool(dims) and any(_missing(r[d]) for d in dims),
            "flagged": "safety" in dims
            and not _missing(r["safety"])
            and r["safety"] <= SAFETY_FLAG_MAX,
        }
        cells: list[str | list[str]] = [r["item_id"]]
        if not redact:
            cells.append(turns.get(r["item_id"], f"({why})"))
        pred = show(_text(r["pred_emotion"]))
        # the model's text is left out: its class is not
        if redact and not pred and not _missing(r["pred_emotion"]):
            pred = r["pred_class"]
        fmt = (
            "ok"
            if r["well_formed"]
            else ", ".join(r["issues"] if isinstance(r["issues"], list) else []) or "not compliant"
        )
        cells += [
            _text(r["gold_emotion"]),
            pred,
            *(show(_text(r[s])) for s in SPAN_NAMES),
            fmt,
            _verdict_cell(r, dims, [show(v) for v in verdicts.get(r["item_id"], [])]),
        ]
        bad = (flags["wrong"] << head.index("predicted")) | (
            (not r["well_formed"]) << head.index("format")
        )
        rows.append([sum(int(v) << i for i, v in enumerate(flags.values())), bad, *cells])
    payload = {"head": head, "classes": classes, "filters": list(FILTERS), "rows": rows}
    blob = gzip.compress(
        json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode("utf-8"),
        compresslevel=9,
        mtime=0,
    )
    thead = "".join(f'<th class="{c}">{escape(h)}</th>' for h, c in zip(head, classes, strict=True))
    pager = (
        '<p id="pager"><button id="first" type="button">« first</button><button id="prev" type="button">‹ previous</button>'
        '<span id="page"></span> <button id="next" type="button">next ›</button><button id="last" type="button">last »</button></p>'
    )
    return (
        f'<p id="filters">Show only items that are: {boxes}</p>'
        f'<p><label>Search: <input id="search" type="search" placeholder="item id or any text"></label></p>'
        f'<p class="note"><span id="shown">0</span> of {len(rows)} items match, {PAGE_SIZE} a page.'
        f' <span id="items-status">Loading the items…</span></p>'
        '<noscript><p class="bad">The items table needs JavaScript.</p></noscript>'
        f'{pager}<table id="items"><thead><tr>{thead}</tr></thead><tbody></tbody></table>'
        f'<script type="application/octet-stream" id="{DATA_ID}">{base64.b64encode(blob).decode("ascii")}</script>'
    )


def embedded_items(html: str) -> dict[str, Any]:
    """The items block of a report page, decoded as the page's script decodes it (tests and
    benchmarks read what a page holds with it)."""
    found = _DATA_RE.search(html)
    if found is None:
        raise ValueError(f"no items block (id {DATA_ID}) in the page")
    return json.loads(gzip.decompress(base64.b64decode(found.group(1))))


def _verdict_cell(row: dict, dims: list[str], rationales: list[str]) -> str | list[str]:
    if not dims:
        return "–"
    scores = ", ".join(
        f"{d.replace('_', ' ')} {'–' if _missing(row[d]) else f'{row[d]:g}'}" for d in dims
    )
    return [scores, *(t for t in rationales if t)]


# ----------------------------------------------------------------------------- inputs


def _user_turns(run: Run) -> tuple[dict[str, str], str]:
    """item id → the user's message of that turn, from the run's data source (or why not)."""
    from kardiabench.data import load_dialogues
    from kardiabench.data.expand import expand

    d = run.manifest.data
    try:
        loaded = load_dialogues(
            d.source, d.split, derive_split=d.derive_split, split_seed=d.split_seed or 0
        )
    except DATA_ERRORS as e:
        return {}, f"the data could not be loaded: {e}"
    return {it.item_id: it.user_message for it in expand(loaded.dialogues)}, "not in the data"


class Redaction:
    """What redacted pages show of the text the model and the judge wrote, for runs of one data
    source: each text with every passage of the data replaced by DATA_MARK, checked in one read of
    the data for all of them (`leaderboard build --redact` makes one per source). When the data
    cannot be loaded, none of that text is shown (`error` says why); a text not collected here is
    never shown either."""

    def __init__(self, runs: list[Run]) -> None:
        self.source = runs[0].manifest.data.source
        written = list(dict.fromkeys(t for run in runs for t in _written(run)))
        self.error: str | None = None
        try:
            scrubbed, _ = scrub_dataset_text(written, _data_texts(runs))
        except DATA_ERRORS as e:
            scrubbed, self.error = [""] * len(written), str(e)
        self._shown = dict(zip(written, scrubbed, strict=True))

    def show(self, text: str) -> str:
        return self._shown.get(text, "")

    def note(self, run: Run) -> str:
        if self.error is not None:
            return (
                f"Redacted: the user's turns are left out, and so is everything the model and the judge wrote, because the data "
                f"({self.source}) could not be loaded to check it for dataset text: {self.error}. Ids, labels, format and scores stay."
            )
        n = sum(self.show(t).count(DATA_MARK) for t in _written(run))
        return (
            f"Redacted: the user's turns are left out, and every passage of the data (a run of {MIN_DATA_CHARS} or more characters "
            f"of its words) that the model or the judge repeated is replaced by {DATA_MARK}: {n} such passage(s)."
        )


def _written(run: Run) -> list[str]:
    """The texts the model and the judge wrote that a page shows: spans, emotion spans, rationales."""
    texts = [_text(v) for col in (*SPAN_NAMES, "pred_emotion") for v in run.items[col]]
    texts += [line for lines in _verdicts(run).values() for line in lines]
    return list(dict.fromkeys(t for t in texts if t))


def _data_texts(runs: list[Run]) -> Iterator[str]:
    """Every string of the runs' data source, all splits (the retrieval baseline answers with
    training text, few-shot examples come from there): personas, situations, messages; and the
    few-shot examples the runs' tasks hold."""
    from kardiabench.data import load_dialogues
    from kardiabench.data.load import resolve_split_names

    for run in runs:
        for shot in run.manifest.task_config.prompt.few_shot:
            yield from (shot.user, shot.assistant)
    source = runs[0].manifest.data.source
    for split in resolve_split_names(source):
        for d in load_dialogues(source, split).dialogues:
            yield from (d.person, d.situation, *(m.content for m in d.messages))


def _verdicts(run: Run) -> dict[str, list[str]]:
    """item id → `judge: rationale` lines of the verdicts behind the run's scores."""
    from kardiabench.judging import JUDGMENTS, load_judgments

    path = run.path / JUDGMENTS
    if run.results.judge is None or not path.exists():
        return {}
    out: dict[str, list[str]] = {}
    for j in load_judgments(path, rubric_version=run.results.judge.rubric_version):
        text = j.rationale or j.reason or ""
        if text:
            out.setdefault(j.item_id, []).append(f"{j.judge}: {text}")
    return out


def _missing(v: Any) -> bool:
    return v is None or (isinstance(v, float) and math.isnan(v))


def _text(v: Any) -> str:
    """A cell's text: "" for a missing value (None, or NaN from the DataFrame)."""
    return "" if _missing(v) else str(v)


def _table(
    head: list[str], rows: list[list[str]], *, header: bool = True, label_column: bool = False
) -> str:
    """Rows of already escaped cells; numbers right-aligned; `label_column`: the first cells are
    labels (emotions, MBTI types), kept on one line."""
    thead = (
        "<thead><tr>" + "".join(f"<th>{escape(h)}</th>" for h in head) + "</tr></thead>"
        if header
        else ""
    )
    body = "".join(
        "<tr>"
        + "".join(
            f'<td class="{_cell_class(c, label_column and i == 0)}">{c}</td>'
            for i, c in enumerate(r)
        )
        + "</tr>"
        for r in rows
    )
    return f"<table>{thead}<tbody>{body}</tbody></table>"


def _cell_class(cell: str, label: bool) -> str:
    if label:
        return "label"
    return "num" if re.fullmatch(r"[−-]?\d+(\.\d+)?(¶)?( \[.*\])?( \(n=\d+/\d+\))?", cell) else ""
