"""`kardiabench report DIR`: DIR/report.html, one self-contained page about one scored run.

Headline metrics with CIs, span diagnostics, the confusion matrix (inline SVG), per-emotion and
per-MBTI breakdowns, the judge's score distribution per dimension, the safety-flagged items, and an
items table a reader can filter (wrong emotion, non-compliant, unscored, flagged) showing the
user's turn, the gold, the four spans written and the judge's verdict. Every text is escaped; CSS
and JS are inline; nothing is loaded from the network.

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

import math
from collections import Counter
from collections.abc import Callable, Iterator
from html import escape
from pathlib import Path
from typing import Any

import pandas as pd

from kardiabench.redact import DATA_MARK, MIN_DATA_CHARS, scrub_dataset_text
from kardiabench.rundir import REPORT, RunDirError
from kardiabench.runs import Run, load_run
from kardiabench.scoring.metrics import SAFETY_FLAG_MAX
from kardiabench.spans import SPAN_NAMES

# What `redact=True` removes, as a version: 2 also removes the data's passages that the model or
# the judge repeated. `leaderboard build --redact` records it in build.json, and `push` uploads
# reports only from a build of the current version.
REDACTION_VERSION = 2
FILTERS = {"wrong": "wrong emotion", "noncompliant": "non-compliant format", "unscored": "unscored by the judge",
           "flagged": f"safety-flagged (safety ≤ {SAFETY_FLAG_MAX})"}  # fmt: skip
CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,sans-serif;margin:2rem auto;max-width:1250px;padding:0 1rem;color:#222}
table{border-collapse:collapse;margin:.8rem 0;font-size:.85rem}th,td{border-bottom:1px solid #ddd;padding:.25rem .5rem;vertical-align:top;text-align:left}
th{background:#f4f4f4}td.num{text-align:right}.note{color:#555;font-size:.85rem}.bad{color:#b00020}
#items td{max-width:22rem;white-space:pre-wrap;word-break:break-word}.bar{display:inline-block;height:.7em;background:#4e79a7}
details{margin:.6rem 0}svg{max-width:100%;height:auto}.label{white-space:nowrap}
"""
# Shows the items rows that have every checked property.
JS = """
function applyFilters(){
  var on = Array.prototype.filter.call(document.querySelectorAll("#filters input"), function(c){ return c.checked; })
    .map(function(c){ return c.value; });
  var shown = 0;
  document.querySelectorAll("#items tbody tr").forEach(function(tr){
    var ok = on.every(function(k){ return tr.getAttribute("data-" + k) === "1"; });
    tr.style.display = ok ? "" : "none"; if (ok) shown++;
  });
  document.getElementById("shown").textContent = shown;
}
document.querySelectorAll("#filters input").forEach(function(c){ c.addEventListener("change", applyFilters); });
applyFilters();
"""


def write_report(run_dir: str | Path, *, output: str | Path | None = None, redact: bool | Redaction = False) -> Path:
    """Render the report of a scored run to `output` (default DIR/report.html); `redact`: True, or
    the `Redaction` of several runs of the same data."""
    run = load_run(run_dir)
    if run.results is None:
        raise RunDirError(f"{run_dir}: not scored yet (no results.json); run `kardiabench score {run_dir}` first")
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
    parts = [f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>{escape(title)}</title>',
             f'<meta name="viewport" content="width=device-width,initial-scale=1"><style>{CSS}</style></head><body>',
             f"<h1>{escape(title)}</h1>", _overview(run), "<h2>Headline metrics</h2>", _metrics(res.metrics),
             "<h2>Span diagnostics</h2>", _diagnostics(res.metrics.get("format_compliance")),
             "<h2>Emotion: confusion matrix</h2>", _confusion(run),
             "<h2>Per gold emotion</h2>", _breakdown(res.breakdowns.get("gold_emotion", {})),
             "<h2>Per MBTI type</h2>", _breakdown(res.breakdowns.get("mbti", {})),
             "<h2>Judge: score distribution per dimension</h2>", _distribution(items, dims),
             "<h2>Safety-flagged items</h2>", _flagged(items, dims, show),
             "<h2>Items</h2>", f'<p class="note" id="redaction">{escape(note)}</p>' if note else "",
             _items(items, dims, turns, why, verdicts, redact, show),
             f"<script>{JS}</script></body></html>"]  # fmt: skip
    return "\n".join(parts) + "\n"


# ----------------------------------------------------------------------------- sections


def _overview(run: Run) -> str:
    res, man = run.results, run.manifest
    d = res.data
    judge = res.judge.spec + f" (rubric {res.judge.rubric_version})" if res.judge else "none"
    stats = man.generation_stats
    rows = [("model", run.model), ("task", f"{run.task} (history: {res.history})"),
            ("data", f"{d.source} / {d.split}: {d.n_items} items, {d.n_dialogues} dialogues, fingerprint {d.fingerprint}"
             + (f", limit {d.limit} (a subset)" if d.limit is not None else "")),
            ("judge", judge), ("parser version", str(res.parser_version)), ("created", str(man.created)),
            ("harness", f"kardiabench {(res.provenance or {}).get('kardiabench')} @ {(res.provenance or {}).get('git_commit')}")]  # fmt: skip
    if stats:
        cost = "unknown" if stats.cost_usd is None else f"${stats.cost_usd:.4f}"
        rows.append(("generation", f"{stats.done} done, {stats.failed} failed; tokens in {stats.prompt_tokens:,} out {stats.completion_tokens:,}; cost {cost}"
                     + (f"; {stats.tokens_per_s:,.1f} tokens/s" if stats.tokens_per_s else "")))
    return _table(["", ""], [[escape(k), escape(v)] for k, v in rows], header=False)


def _metrics(metrics: dict) -> str:
    rows = []
    for name, m in metrics.items():
        ci = "–" if m.ci_low is None else f"[{m.ci_low:.2f}, {m.ci_high:.2f}]"
        value = "not computed" if m.value is None else f"{m.value:.2f}"
        rows.append([escape(name), value, ci, str(m.n), str(m.n_unscored), escape(m.reason or "")])
    return _table(["metric", "value", "95% CI", "n", "unscored", "note"], rows)


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
    from kardiabench.leaderboard.plots import confusion, svg_text

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
            v = "–" if m is None or m.value is None else f"{m.value:.2f}"
            cells.append(v + (f" [{m.ci_low:.2f}, {m.ci_high:.2f}]" if m is not None and m.ci_low is not None else ""))
        rows.append([escape(group), str(b.n), *cells])
    return _table(["group", "n", *names], rows) + '<p class="note">Per group: the value over the group\'s items, with its n (no CI where results.json gives none).</p>'


def _distribution(items: pd.DataFrame, dims: list[str]) -> str:
    if not dims:
        return '<p class="note">No judge verdicts (scored without --judge).</p>'
    rows = []
    for d in dims:
        counts = Counter(int(v) for v in items[d].dropna())
        total = sum(counts.values()) or 1
        rows.append([escape(d), *(f'{counts.get(s, 0)} <span class="bar" style="width:{60 * counts.get(s, 0) / total:.0f}px"></span>' for s in range(1, 6)),
                     str(int(items[d].isna().sum()))])  # fmt: skip
    return _table(["dimension", "1", "2", "3", "4", "5", "unscored"], rows)


def _flagged(items: pd.DataFrame, dims: list[str], show: Callable[[str], str]) -> str:
    if "safety" not in dims:
        return '<p class="note">No safety scores.</p>'
    flagged = items[items["safety"] <= SAFETY_FLAG_MAX]
    if flagged.empty:
        return '<p class="note">No item flagged.</p>'
    rows = [[escape(r.item_id), str(int(r.safety)), escape(show(_text(r.response)))] for r in flagged.itertuples()]
    return _table(["item", "safety", "response written"], rows)


def _items(items: pd.DataFrame, dims: list[str], turns: dict[str, str], why: str, verdicts: dict[str, list[str]], redact: bool,
           show: Callable[[str], str]) -> str:  # fmt: skip
    boxes = "".join(f'<label><input type="checkbox" value="{k}"> {escape(v)}</label> ' for k, v in FILTERS.items())
    head = ["item", *([] if redact else ["user turn"]), "gold", "predicted", *SPAN_NAMES, "format", "judge verdict"]
    rows = []
    for r in items.to_dict("records"):
        flags = {"wrong": not r["emotion_correct"], "noncompliant": not r["well_formed"],
                 "unscored": bool(dims) and any(_missing(r[d]) for d in dims),
                 "flagged": "safety" in dims and not _missing(r["safety"]) and r["safety"] <= SAFETY_FLAG_MAX}  # fmt: skip
        attrs = "".join(f' data-{k}="{int(v)}"' for k, v in flags.items())
        cells = [escape(r["item_id"])]
        if not redact:
            cells.append(escape(turns.get(r["item_id"], f"({why})")))
        pred = show(_text(r["pred_emotion"]))
        if redact and not pred and not _missing(r["pred_emotion"]):  # the model's text is left out: its class is not
            pred = r["pred_class"]
        cells += [f'<span class="label">{escape(_text(r["gold_emotion"]))}</span>', f'<span class="label{" bad" if flags["wrong"] else ""}">{escape(pred)}</span>',
                  *(escape(show(_text(r[s]))) for s in SPAN_NAMES),
                  "ok" if r["well_formed"] else '<span class="bad">' + escape(", ".join(r["issues"] if isinstance(r["issues"], list) else []) or "not compliant") + "</span>",
                  _verdict_cell(r, dims, [show(v) for v in verdicts.get(r["item_id"], [])])]  # fmt: skip
        rows.append(f"<tr{attrs}>" + "".join(f"<td>{c}</td>" for c in cells) + "</tr>")
    thead = "".join(f"<th>{escape(h)}</th>" for h in head)
    return (f'<p id="filters">Show only items that are: {boxes}</p><p class="note"><span id="shown">{len(rows)}</span> of {len(rows)} items shown.</p>'
            f'<table id="items"><thead><tr>{thead}</tr></thead><tbody>{"".join(rows)}</tbody></table>')  # fmt: skip


def _verdict_cell(row: dict, dims: list[str], rationales: list[str]) -> str:
    if not dims:
        return "–"
    scores = ", ".join(f"{d} {'–' if _missing(row[d]) else f'{row[d]:g}'}" for d in dims)
    return escape(scores) + "".join(f"<br><small>{escape(t)}</small>" for t in rationales if t)


# ----------------------------------------------------------------------------- inputs


def _user_turns(run: Run) -> tuple[dict[str, str], str]:
    """item id → the user's message of that turn, from the run's data source (or why not)."""
    from kardiabench.data import load_dialogues
    from kardiabench.data.expand import expand
    from kardiabench.errors import USER_ERRORS

    d = run.manifest.data
    try:
        loaded = load_dialogues(d.source, d.split, derive_split=d.derive_split, split_seed=d.split_seed or 0)
    except (*USER_ERRORS, OSError, ValueError) as e:
        return {}, f"the data could not be loaded: {e}"
    return {it.item_id: it.user_message for it in expand(loaded.dialogues)}, "not in the data"


class Redaction:
    """What redacted pages show of the text the model and the judge wrote, for runs of one data
    source: each text with every passage of the data replaced by DATA_MARK, checked in one read of
    the data for all of them (`leaderboard build --redact` makes one per source). When the data
    cannot be loaded, none of that text is shown (`error` says why); a text not collected here is
    never shown either."""

    def __init__(self, runs: list[Run]) -> None:
        from kardiabench.errors import USER_ERRORS

        self.source = runs[0].manifest.data.source
        written = list(dict.fromkeys(t for run in runs for t in _written(run)))
        self.error: str | None = None
        try:
            scrubbed, _ = scrub_dataset_text(written, _data_texts(runs))
        except (*USER_ERRORS, OSError, ValueError) as e:
            scrubbed, self.error = [""] * len(written), str(e)
        self._shown = dict(zip(written, scrubbed, strict=True))

    def show(self, text: str) -> str:
        return self._shown.get(text, "")

    def note(self, run: Run) -> str:
        if self.error is not None:
            return (f"Redacted: the user's turns are left out, and so is everything the model and the judge wrote, because the data "
                    f"({self.source}) could not be loaded to check it for dataset text: {self.error}. Ids, labels, format and scores stay.")  # fmt: skip
        n = sum(self.show(t).count(DATA_MARK) for t in _written(run))
        return (f"Redacted: the user's turns are left out, and every passage of the data (a run of {MIN_DATA_CHARS} or more characters "
                f"of its words) that the model or the judge repeated is replaced by {DATA_MARK}: {n} such passage(s).")  # fmt: skip


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


def _table(head: list[str], rows: list[list[str]], *, header: bool = True) -> str:
    """Rows of already escaped cells; numbers right-aligned."""
    thead = "<thead><tr>" + "".join(f"<th>{escape(h)}</th>" for h in head) + "</tr></thead>" if header else ""
    body = "".join("<tr>" + "".join(f'<td class="{"num" if c.replace(".", "", 1).isdigit() else ""}">{c}</td>' for c in r) + "</tr>" for r in rows)
    return f"<table>{thead}<tbody>{body}</tbody></table>"
