"""`kardiabench pairwise`: an LLM judge compares the responses of two or more runs item by item.

I/O around the pure parts (scoring/pairwise.py: the prompt and reading verdicts; scoring/preference.py:
the statistics). The runs must be over the same task, data and split; the items both runs of a pair
answered are judged in both orders through the rubric judge's machinery (judging.judge_cases: cache,
resume from DIR/judgments.jsonl, repairs, unscored never defaulted, batch, cost). DIR gets
pairwise.json (PairwiseResult), items.jsonl, summary.md and report.html. docs/pairwise.md.
"""

from __future__ import annotations

import asyncio
import dataclasses
import itertools
import logging
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from html import escape
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict

from kardiabench.cache import Cache
from kardiabench.jsonl import write_jsonl_atomic
from kardiabench.judging import JudgeCase, Scheme, judge_cases, load_judgments, sampling_params
from kardiabench.models.base import ChatRequest
from kardiabench.records import Item, Prediction
from kardiabench.runs import (
    JUDGMENTS,
    RunDir,
    RunDirError,
    RunManifest,
    now,
    provenance,
)
from kardiabench.scoring.compare import ComparisonRefused
from kardiabench.scoring.judge import (
    MAX_RESPONSE_CHARS,
    JudgeConfig,
    Judgment,
    candidate_notes,
    candidate_response,
    not_sent_reason,
    repair_messages,
    response_too_long,
)
from kardiabench.scoring.metrics import DIMENSION_WORDS
from kardiabench.scoring.pairwise import (
    ORDERS,
    PAIRWISE_ANSWER,
    DimensionResult,
    PairItem,
    PairwiseTemplate,
    dimension_results,
    load_template,
    overall_position,
    parse_preferences,
    responses_cut,
)
from kardiabench.scoring.preference import BTScore, PositionStats, bradley_terry
from kardiabench.scoring.rubric import RubricError, load_rubric
from kardiabench.tables import format_interval, markdown_table

log = logging.getLogger("kardiabench")

SCHEMA_VERSION = 1
PAIRWISE_JSON, PAIR_ITEMS, PAIR_SUMMARY, PAIR_REPORT = (
    "pairwise.json",
    "items.jsonl",
    "summary.md",
    "report.html",
)


class PairwiseRefused(ComparisonRefused):
    """Runs that cannot be compared pairwise (other data, task or split; no item in common)."""

    def __init__(self, reasons: Sequence[str]) -> None:
        self.reasons = list(reasons)
        Exception.__init__(self, "runs cannot be compared pairwise: " + "; ".join(self.reasons))


# ----------------------------------------------------------------------------- inputs


@dataclass(frozen=True)
class RunInput:
    """One run folder: its name in the results, model spec, items and predictions."""

    name: str
    path: Path
    model_spec: str
    items: list[Item]
    predictions: dict[str, Prediction]
    manifest: RunManifest = field(repr=False)


_SAME = {
    "task": lambda m: m.task_config.name,
    "data": lambda m: m.data.source,
    "split": lambda m: m.data.split,
}


def _short_names(paths: Sequence[Path]) -> list[str]:
    """The fewest trailing parts of each folder that tell them apart ("run", or "a/run" and
    "b/run"): a name, never the whole local path (names go into published files)."""
    parts = [p.resolve().parts for p in paths]
    for k in range(1, max(len(x) for x in parts) + 1):
        names = ["/".join(x[-k:]) for x in parts]
        if len(set(names)) == len(names):
            return names
    return [str(p) for p in paths]  # not reached: resolved folders given once differ


def load_runs(paths: Sequence[str | Path]) -> list[RunInput]:
    """The runs, checked to be over the same task, data and split (PairwiseRefused naming the
    differences otherwise). A run is named by its model spec, or by its folder when specs repeat."""
    from kardiabench.score_stage import run_inputs

    if len(paths) < 2:
        raise PairwiseRefused(["give at least two run folders"])
    if len({Path(p).resolve() for p in paths}) < len(paths):
        raise PairwiseRefused(["a run folder is given twice"])
    loaded = []
    for p in paths:
        run = RunDir(p)
        if not run.predictions_path.exists():
            raise RunDirError(f"{p}: no predictions.jsonl; generate the run first")
        _, items, manifest = run_inputs(run)
        loaded.append((Path(p), manifest, items, run.read_predictions()))
    first = loaded[0][1]
    reasons = [
        f"{key}: {get(first)} ({loaded[0][0]}) vs {get(m)} ({p})"
        for p, m, _, _ in loaded[1:]
        for key, get in _SAME.items()
        if get(m) != get(first)
    ]
    if reasons:
        raise PairwiseRefused(reasons)
    specs = [m.model_spec for _, m, _, _ in loaded]
    names = specs if len(set(specs)) == len(specs) else _short_names([p for p, *_ in loaded])
    return [
        RunInput(n, p, s, items, preds, m)
        for n, s, (p, m, items, preds) in zip(names, specs, loaded, strict=True)
    ]


def choose_pairs(
    runs: Sequence[RunInput], reference: str | Path | None
) -> list[tuple[RunInput, RunInput]]:
    """Each run against the reference (named by folder, name or model spec), or every pair in the
    order given."""
    if reference is None:
        return list(itertools.combinations(runs, 2))
    ref = [
        r
        for r in runs
        if str(reference) in (r.name, r.model_spec, str(r.path))
        or Path(reference).resolve() == r.path.resolve()
    ]
    if not ref:
        raise PairwiseRefused(
            [
                f"--reference {reference} is none of the runs given ({', '.join(r.name for r in runs)})"
            ]
        )
    return [(ref[0], r) for r in runs if r is not ref[0]]


def shared_items(a: RunInput, b: RunInput) -> list[Item]:
    """The items both runs have a prediction for (a failed one is judged unscored, not dropped)."""
    items = [it for it in a.items if it.item_id in a.predictions and it.item_id in b.predictions]
    if not items:
        raise PairwiseRefused([f"{a.name} and {b.name} share no answered item"])
    return items


# ----------------------------------------------------------------------------- the judge's cases


def case_id(a: RunInput, b: RunInput, item_id: str, order: str) -> str:
    return f"{a.name} vs {b.name}|{item_id}|{order}"


def pairwise_scheme(template: PairwiseTemplate) -> Scheme:
    def repair(first: ChatRequest, failures: Sequence[tuple[str, str]]) -> ChatRequest:
        extra = ChatRequest.from_messages(
            repair_messages(failures, template.names, PAIRWISE_ANSWER), first.params
        ).messages
        return ChatRequest((*first.messages, *extra), first.params, first.response_format)

    return Scheme(
        template.version,
        template.names,
        lambda text, finish: parse_preferences(text, template.names, finish),
        repair,
    )


def pair_cases(
    template: PairwiseTemplate, a: RunInput, b: RunInput, items: Sequence[Item], cfg: JudgeConfig
) -> list[JudgeCase]:
    """Both orders of every shared item; an item where either response is missing is not sent.
    With cfg.show_reasoning each response's understanding and reasoning are shown under it
    (RubricError before anything is sent when the template has no place for them)."""
    if cfg.show_reasoning and not template.shows_notes:
        raise RubricError(
            f"{template.path}: --judge-show-reasoning needs {{{{notes_a}}}} and {{{{notes_b}}}} in the pairwise template"
        )
    rf = template.response_format()
    cases = []
    for item in items:
        pa, pb = a.predictions.get(item.item_id), b.predictions.get(item.item_id)
        (ra, why_a), (rb, why_b) = candidate_response(pa), candidate_response(pb)
        for order in ORDERS:
            cid = case_id(a, b, item.item_id, order)
            if ra is None or rb is None:
                side, pred, why = (a, pa, why_a) if ra is None else (b, pb, why_b)
                cases.append(JudgeCase(cid, None, (not_sent_reason(pred), f"{side.name}: {why}")))
                continue
            first, second = (ra, rb) if order == "ab" else (rb, ra)
            notes = None
            if cfg.show_reasoning:
                na, nb = candidate_notes(pa), candidate_notes(pb)  # type: ignore[arg-type]
                notes = (na, nb) if order == "ab" else (nb, na)

            def build(r: int, item=item, first=first, second=second, notes=notes) -> ChatRequest:
                return ChatRequest.from_messages(
                    template.render(item, first, second, notes), sampling_params(cfg, r), rf
                )

            cut = response_too_long(ra) or response_too_long(rb)
            cases.append(JudgeCase(cid, build, response_cut=cut))
    return cases


def _length(pred: Prediction | None) -> int:
    response, _ = candidate_response(pred)
    return len(response or "")


def pair_items(
    a: RunInput,
    b: RunInput,
    items: Sequence[Item],
    judgments: Sequence[Judgment],
    names: Sequence[str],
) -> list[PairItem]:
    """The verdicts of one pair regrouped per item: (A first, B first) for each judge and repeat."""
    by_key = {(j.judge, j.item_id, j.repeat): j for j in judgments}
    runs = sorted({(j.judge, j.repeat) for j in judgments})
    out = []
    for item in items:
        verdicts: dict[str, list[tuple[Any, Any]]] = {d: [] for d in names}
        unscored = None
        for judge, r in runs:
            ab, ba = (by_key.get((judge, case_id(a, b, item.item_id, o), r)) for o in ORDERS)
            if ab is None or ba is None:
                continue
            bad = next((j for j in (ab, ba) if j.status != "scored"), None)
            unscored = unscored or (bad.reason if bad else None)
            for d in names:
                verdicts[d].append(
                    (
                        ab.scores.get(d) if ab.status == "scored" else None,
                        ba.scores.get(d) if ba.status == "scored" else None,
                    )
                )
        out.append(
            PairItem(
                item.item_id,
                item.dialogue_id,
                _length(a.predictions.get(item.item_id)),
                _length(b.predictions.get(item.item_id)),
                verdicts,
                unscored,
            )
        )
    return out


# ----------------------------------------------------------------------------- results


@dataclass(frozen=True)
class PairResult:
    """Run A against run B: per dimension win/tie/loss with CIs and a sign test, the
    length-controlled win rate and the judge's position statistics."""

    run_a: str
    run_b: str
    n_items: int  # items both runs answered
    n_unscored_items: int  # items without an outcome on some dimension
    unscored_by_reason: dict[str, int]  # verdicts (each order, judge and repeat) by reason
    dimensions: dict[str, DimensionResult]
    position: PositionStats  # over every dimension
    # per side ("a", "b"): responses the judge saw only MAX_RESPONSE_CHARS of
    n_responses_cut: dict[str, int]

    def to_dict(self) -> dict[str, Any]:
        return {
            "run_a": self.run_a,
            "run_b": self.run_b,
            "n_items": self.n_items,
            "n_unscored_items": self.n_unscored_items,
            "unscored_by_reason": self.unscored_by_reason,
            "n_responses_cut": self.n_responses_cut,
            "position": self.position.to_dict(),
            "dimensions": {d: r.to_dict() for d, r in self.dimensions.items()},
        }


@dataclass(frozen=True)
class PairwiseResult:
    """pairwise.json."""

    path: Path
    runs: list[dict[str, Any]]
    judge: dict[str, Any]
    dimensions: tuple[str, ...]
    reference: str | None
    pairs: list[PairResult]
    # per dimension, best first (dimensions without any outcome left out)
    bradley_terry: dict[str, list[BTScore]]
    n_judgments: int
    n_unscored: int
    unscored_by_reason: dict[str, int]
    usage: dict[str, dict[str, Any]]
    statistics: dict[str, Any]
    created: str = ""
    schema_version: int = SCHEMA_VERSION

    def to_dict(self) -> dict[str, Any]:
        bt = {d: [s.to_dict() for s in rows] for d, rows in self.bradley_terry.items()}
        return {
            "schema_version": self.schema_version,
            "created": self.created,
            "runs": self.runs,
            "judge": self.judge,
            "dimensions": list(self.dimensions),
            "reference": self.reference,
            "pairs": [p.to_dict() for p in self.pairs],
            "bradley_terry": bt,
            "n_judgments": self.n_judgments,
            "n_unscored": self.n_unscored,
            "unscored_by_reason": self.unscored_by_reason,
            "usage": self.usage,
            "statistics": self.statistics,
            "provenance": provenance(),
        }


def _usage(judgments: Sequence[Judgment]) -> dict[str, dict[str, Any]]:
    out = {}
    for judge in dict.fromkeys(j.judge for j in judgments):
        js = [j for j in judgments if j.judge == judge]
        costs = [j.usage.get("cost_usd") for j in js if j.attempts]
        out[judge] = {
            "requests": sum(j.attempts for j in js),
            "prompt_tokens": int(sum(j.usage.get("prompt_tokens") or 0 for j in js)),
            "completion_tokens": int(sum(j.usage.get("completion_tokens") or 0 for j in js)),
            "cost_usd": None if any(c is None for c in costs) else float(sum(costs)),
        }
    return out


def run_pairwise(
    runs: Sequence[str | Path],
    output: str | Path,
    *,
    judging,
    dimensions: Sequence[str] | None = None,
    reference: str | Path | None = None,
    temperature: float = 0.0,
    seed: int = 0,
    cache_path: Path | None = None,
    progress: bool = False,
    resamples: int = 1000,
    bootstrap_seed: int = 0,
) -> PairwiseResult:
    """Judge every pair (each run against `reference`, or all pairs) and write DIR's files.
    `judging`: score_stage.JudgeOptions (specs, endpoint, concurrency, repeats, batch, cost limit)."""
    inputs = load_runs(runs)
    pairs = choose_pairs(inputs, reference)
    cfg = dataclasses.replace(judging.config(), temperature=temperature, seed=seed)
    template = load_template(load_rubric(cfg.rubric_path), dimensions)
    shared = {(a.name, b.name): shared_items(a, b) for a, b in pairs}
    cases = [c for a, b in pairs for c in pair_cases(template, a, b, shared[(a.name, b.name)], cfg)]
    out = RunDir(output)
    judging.probe()
    cache = Cache(cache_path) if cache_path else None
    try:
        judgments, specs, run_stats = asyncio.run(
            judge_cases(
                cases, pairwise_scheme(template), judging.models(), cfg, out, cache, progress
            )
        )
    finally:
        if cache is not None:
            cache.close()
    for judge, st in run_stats.items():
        log.info(
            f"judge {judge}: {st.requests} requests ({st.cached} from cache, {st.failed} failed), "
            f"{st.reused_verdicts} verdicts reused from {out.path / JUDGMENTS}"
        )
    result = build_result(
        out.path,
        inputs,
        pairs,
        shared,
        judgments,
        template,
        cfg,
        specs,
        reference,
        resamples,
        bootstrap_seed,
    )
    result = dataclasses.replace(
        result, judge={**result.judge, "run": {k: v.to_dict() for k, v in run_stats.items()}}
    )
    write_outputs(result, inputs, pairs, shared, judgments, template.names)
    return result


def build_result(
    path: Path,
    inputs: Sequence[RunInput],
    pairs,
    shared,
    judgments: Sequence[Judgment],
    template: PairwiseTemplate,
    cfg: JudgeConfig,
    specs: Sequence[str],
    reference,
    resamples: int,
    seed: int,
) -> PairwiseResult:
    names = template.names
    pair_results, comparisons, clusters = [], {d: [] for d in names}, []
    for a, b in pairs:
        items = pair_items(a, b, shared[(a.name, b.name)], judgments, names)
        prefix = f"{a.name} vs {b.name}|"
        reasons = Counter(
            j.reason or "?"
            for j in judgments
            if j.status != "scored" and j.item_id.startswith(prefix)
        )
        n_unscored = sum(any(it.outcome(d) is None for d in names) for it in items)
        pair_results.append(
            PairResult(
                a.name,
                b.name,
                len(items),
                n_unscored,
                dict(sorted(reasons.items())),
                dimension_results(items, names, n_resamples=resamples, seed=seed),
                overall_position(items, names),
                responses_cut(items),
            )
        )
        for it in items:
            clusters.append(it.dialogue_id)
            for d in names:
                comparisons[d].append((a.name, b.name, it.outcome(d)))
    ref = pairs[0][0].name if reference is not None else inputs[0].name
    bt = {
        d: bradley_terry(comparisons[d], clusters, reference=ref, n_resamples=resamples, seed=seed)
        for d in names
        if any(o is not None for *_, o in comparisons[d])
    }
    unscored = Counter(j.reason or "?" for j in judgments if j.status != "scored")
    runs = [
        {
            "name": r.name,
            "path": str(r.path),
            "model_spec": r.model_spec,
            "n_items": len(r.items),
            "n_predictions": len(r.predictions),
        }
        for r in inputs
    ]
    first = inputs[0].manifest
    judge = {
        "specs": list(specs),
        "version": template.version,
        "rubric_version": template.rubric.version,
        "template": template.path,
        "temperature": cfg.temperature,
        "seed": cfg.seed,
        "max_tokens": cfg.max_tokens,
        "repeats": cfg.repeats,
        "max_repairs": cfg.max_repairs,
        "show_reasoning": cfg.show_reasoning,
        "max_response_chars": MAX_RESPONSE_CHARS,
        "data": {
            "task": _SAME["task"](first),
            "source": _SAME["data"](first),
            "split": _SAME["split"](first),
        },
    }
    stats = {
        "n_resamples": resamples,
        "seed": seed,
        "alpha": 0.05,
        "clusters": "dialogue",
        "ties": "a tie counts half a win in win_rate; a verdict that flips with the order is a tie",
    }
    return PairwiseResult(
        path,
        runs,
        judge,
        names,
        pairs[0][0].name if reference is not None else None,
        pair_results,
        bt,
        len(judgments),
        sum(unscored.values()),
        dict(sorted(unscored.items())),
        _usage(judgments),
        stats,
        now(),
    )


def item_rows(
    pairs, shared, judgments: Sequence[Judgment], names: Sequence[str]
) -> list[dict[str, Any]]:
    """items.jsonl: one row per pair, item and dimension: the verdicts of both orders (as shown:
    "A" = the response shown first) per judge and repeat, each pair's combined outcome, and the
    item's outcome from run A's side."""
    from kardiabench.scoring.preference import combine_orders

    rows = []
    for a, b in pairs:
        for it in pair_items(a, b, shared[(a.name, b.name)], judgments, names):
            for d in names:
                verdicts = [
                    {"a_first": x, "b_first": y, "combined": combine_orders(x, y)}
                    for x, y in it.verdicts[d]
                ]
                rows.append(
                    {
                        "run_a": a.name,
                        "run_b": b.name,
                        "item_id": it.item_id,
                        "dialogue_id": it.dialogue_id,
                        "dimension": d,
                        "length_a": it.length_a,
                        "length_b": it.length_b,
                        "verdicts": verdicts,
                        "outcome": it.outcome(d),
                        "unscored": it.unscored,
                    }
                )
    return rows


def write_outputs(
    result: PairwiseResult,
    inputs,
    pairs,
    shared,
    judgments: Sequence[Judgment],
    names: Sequence[str],
) -> None:
    out = RunDir(result.path)
    write_jsonl_atomic(result.path / PAIR_ITEMS, item_rows(pairs, shared, judgments, names))
    out.write_json(PAIRWISE_JSON, result.to_dict())
    (result.path / PAIR_SUMMARY).write_text(summary_markdown(result.to_dict()), encoding="utf-8")
    (result.path / PAIR_REPORT).write_text(
        render_html(result.to_dict(), pairs, shared, judgments), encoding="utf-8"
    )


# ----------------------------------------------------------------------------- summary and page


def _pct(rate: Mapping[str, Any]) -> str:
    return format_interval(rate.get("value"), rate.get("low"), rate.get("high"), digits=1)


def _num(v: float | None, digits: int = 1, sign: bool = False) -> str:
    return "–" if v is None else f"{v:+.{digits}f}" if sign else f"{v:.{digits}f}"


PAIR_HEADERS = [
    "dimension",
    "n",
    "unscored",
    "win",
    "tie",
    "loss",
    "win rate % [95% CI]",
    "LC win rate % [95% CI]",
    "sign test p",
    "consistent %",
    "first-position bias",
]


def pair_rows(pair: Mapping[str, Any]) -> list[list[str]]:
    rows = []
    for d, r in pair["dimensions"].items():
        w, lc, pos = r["win_rate"], r["length_controlled"], r["position"]
        p = w["sign_test_p"]
        rows.append(
            [
                DIMENSION_WORDS.get(d, d),
                str(w["n"]),
                str(w["n_unscored"]),
                str(w["wins"]),
                str(w["ties"]),
                str(w["losses"]),
                _pct(w["win_rate"]),
                _pct(lc["win_rate"]),
                "–" if p is None else f"{p:.3g}",
                _num(pos["consistency_rate"]),
                _num(pos["first_position_bias"], sign=True),
            ]
        )
    return rows


def bt_rows(bt: Mapping[str, Sequence[Mapping[str, Any]]]) -> tuple[list[str], list[list[str]]]:
    """Bradley–Terry table: one row per model, one column per dimension (Elo scale, [95% CI])."""
    dims = list(bt)
    models = list(dict.fromkeys(s["model"] for d in dims for s in bt[d]))
    cell = {(d, s["model"]): s for d in dims for s in bt[d]}
    rows = [
        [
            m,
            *(
                format_interval(c["score"], c["low"], c["high"], digits=0)
                if (c := cell.get((d, m)))
                else "–"
                for d in dims
            ),
            str(max((cell[(d, m)]["n_comparisons"] for d in dims if (d, m) in cell), default=0)),
        ]
        for m in models
    ]
    return ["model", *(DIMENSION_WORDS.get(d, d) for d in dims), "n comparisons"], rows


def _cut_text(pair: Mapping[str, Any], judge: Mapping[str, Any]) -> str:
    """What summary.md says of the responses the judge saw only in part."""
    cut = pair.get("n_responses_cut") or {"a": 0, "b": 0}
    limit = judge.get("max_response_chars", MAX_RESPONSE_CHARS)
    return (
        f"Responses longer than {limit:,} characters, shown to the judge cut to {limit:,} (the cut marked): "
        f"{cut['a']} of A's, {cut['b']} of B's."
    )


def summary_markdown(res: Mapping[str, Any]) -> str:
    j = res["judge"]
    notes = "; shown each response's understanding and reasoning" if j.get("show_reasoning") else ""
    lines = [
        "# Pairwise preference",
        "",
        f"Judge: {', '.join(j['specs'])} (pairwise {j['version']}; temperature {j['temperature']}, seed {j['seed']}, "
        f"{j['repeats']} repeat(s){notes}); "
        f"data {j['data']['source']} / {j['data']['split']}.",
        f"Verdicts: {res['n_judgments']} ({res['n_unscored']} unscored"
        + (
            f": {', '.join(f'{k} ×{v}' for k, v in res['unscored_by_reason'].items())}"
            if res["unscored_by_reason"]
            else ""
        )
        + ").",
        "",
    ]
    for pair in res["pairs"]:
        pos = pair["position"]
        lines += [
            f"## {pair['run_a']} (A) vs {pair['run_b']} (B)",
            "",
            f"{pair['n_items']} items both runs answered, {pair['n_unscored_items']} without an outcome on some dimension. "
            f"Position consistency {_num(pos['consistency_rate'])}% of {pos['n_pairs']} verdict pairs; the judge chose the "
            f"response shown first in {_num(pos['first_shown_rate'])}% of {pos['n_decisive']} decisive verdicts "
            f"(first-position bias {_num(pos['first_position_bias'], sign=True)} points). {_cut_text(pair, j)}",
            "",
            markdown_table(PAIR_HEADERS, pair_rows(pair), align="lrrrrrrrrrr"),
            "",
        ]
    if res.get("bradley_terry"):
        head, rows = bt_rows(res["bradley_terry"])
        ref = res.get("reference") or res["runs"][0]["name"]
        lines += [
            "## Bradley–Terry scores",
            "",
            f"Elo scale, {ref} at 1000; 95% CI from dialogue-clustered bootstrap.",
            "",
            markdown_table(head, rows, align="l" + "r" * (len(head) - 1)),
            "",
        ]
    s = res["statistics"]
    lines += [
        "Win rate: A's wins plus half its ties, in percent of the items with an outcome (n); each pair is judged with "
        "A shown first and with B shown first, and a verdict that flips with the order counts as a tie. 95% CIs: "
        f"bootstrap over dialogues ({s['n_resamples']} resamples, seed {s['seed']}). Sign test: exact binomial on wins "
        "vs losses. LC: length-controlled win rate (logistic regression on the length difference, AlpacaEval LC). "
        "First-position bias: percent of decisive verdicts for the response shown first, minus 50.",
        "",
    ]
    return "\n".join(lines)


def render_html(res: Mapping[str, Any], pairs, shared, judgments: Sequence[Judgment]) -> str:
    """report.html: the judge's settings, the summary's tables and every item with both responses
    and its outcome per dimension from run A's side (all text escaped)."""
    from kardiabench.report import CSS, _table

    j = res["judge"]
    names = list(res["dimensions"])
    parts = [
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>KardiaBench pairwise preference</title>',
        f'<meta name="viewport" content="width=device-width,initial-scale=1"><style>{CSS}</style></head><body>',
        "<h1>Pairwise preference</h1>",
        _table(
            ["", ""],
            [
                [escape(k), escape(str(v))]
                for k, v in (
                    ("judge", ", ".join(j["specs"])),
                    ("pairwise version", j["version"]),
                    (
                        "settings",
                        f"temperature {j['temperature']}, seed {j['seed']}, {j['repeats']} repeat(s)",
                    ),
                    ("shown reasoning", "yes" if j.get("show_reasoning") else "no"),
                    ("verdicts", f"{res['n_judgments']} ({res['n_unscored']} unscored)"),
                )
            ],
            header=False,
        ),
    ]
    for pair, (a, b) in zip(res["pairs"], pairs, strict=True):
        parts += [
            f"<h2>{escape(pair['run_a'])} (A) vs {escape(pair['run_b'])} (B)</h2>",
            _table(PAIR_HEADERS, [[escape(c) for c in row] for row in pair_rows(pair)]),
            f"<p>{escape(_cut_text(pair, j))}</p>",
        ]
        outcomes = {
            it.item_id: it
            for it in pair_items(a, b, shared[(a.name, b.name)], judgments, res["dimensions"])
        }
        rows = []
        for it in shared[(a.name, b.name)]:
            ra, _ = candidate_response(a.predictions.get(it.item_id))
            rb, _ = candidate_response(b.predictions.get(it.item_id))
            got = outcomes.get(it.item_id)
            rows.append(
                [
                    escape(it.item_id),
                    escape(it.user_message),
                    escape(ra or "(none)"),
                    escape(rb or "(none)"),
                    *(escape((got and got.outcome(d)) or "–") for d in names),
                ]
            )
        parts += [
            "<details><summary>Items (outcome from A's side; – : no outcome)</summary>",
            _table(["item", "user", "A", "B", *names], rows),
            "</details>",
        ]
    if res.get("bradley_terry"):
        head, rows = bt_rows(res["bradley_terry"])
        parts += [
            "<h2>Bradley–Terry scores</h2>",
            _table(head, [[escape(c) for c in r] for r in rows]),
        ]
    return "\n".join([*parts, "</body></html>"]) + "\n"


# ----------------------------------------------------------------------------- reading back


class _BTRow(BaseModel):
    model_config = ConfigDict(extra="forbid")

    model: str
    score: float
    low: float | None
    high: float | None
    win_rate_vs_reference: float
    n_comparisons: int


class _PairRecord(BaseModel):
    model_config = ConfigDict(extra="allow")

    run_a: str
    run_b: str
    n_items: int
    n_unscored_items: int
    position: dict[str, Any]
    dimensions: dict[str, dict[str, Any]]


class _RunRecord(BaseModel):
    model_config = ConfigDict(extra="allow")

    name: str
    model_spec: str


class _JudgeRecord(BaseModel):
    model_config = ConfigDict(extra="allow")

    specs: list[str]
    data: dict[str, Any]


class PairwiseFile(BaseModel):
    """pairwise.json as `load_pairwise` checks it: what the leaderboard, the agreement with human
    labels and the reports read from it (other keys are kept as written)."""

    model_config = ConfigDict(extra="allow")

    schema_version: int
    runs: list[_RunRecord]
    judge: _JudgeRecord
    dimensions: list[str]
    reference: str | None = None
    pairs: list[_PairRecord]
    bradley_terry: dict[str, list[_BTRow]]
    n_judgments: int
    n_unscored: int


def load_pairwise(folder: str | Path) -> dict[str, Any]:
    """A pairwise folder's pairwise.json, checked (`read_pairwise`); RunDirError when the folder
    holds none."""
    path = Path(folder) / PAIRWISE_JSON
    if not path.is_file():
        raise RunDirError(
            f"{folder}: not a pairwise folder (no {PAIRWISE_JSON}); run `kardiabench pairwise` first"
        )
    return read_pairwise(path)


def read_pairwise(path: Path) -> dict[str, Any]:
    """pairwise.json (or the leaderboard's copy of one) as written, after checking it against
    `PairwiseFile`: RunFileError, one line, for a file that is not JSON, of another schema version
    or missing a field."""
    from pydantic import ValidationError

    from kardiabench.runs import RunFileError, check_version, one_line, read_json

    data = read_json(path)
    check_version(path, data, lambda v: v != SCHEMA_VERSION, SCHEMA_VERSION)
    try:
        PairwiseFile.model_validate(data)
    except ValidationError as e:
        raise RunFileError(one_line(path, e)) from None
    return data


def saved_verdicts(folder: str | Path) -> list[Judgment]:
    res = load_pairwise(folder)
    return load_judgments(Path(folder) / JUDGMENTS, res["judge"]["version"])


def is_pairwise_folder(folder: str | Path) -> bool:
    return (Path(folder) / PAIRWISE_JSON).is_file()


def pairwise_agreement(
    human_file: str | Path, folder: str | Path, *, resamples: int = 1000, seed: int = 0
) -> dict[str, Any]:
    """`judge-agreement --human LABELS PAIRWISE_DIR`: the pairwise judge's outcomes (items.jsonl)
    against human A/B labels, per pair and dimension (scoring.pairwise.preference_agreement), with
    intervals resampling the items' dialogues."""
    from kardiabench.jsonl import iter_jsonl_objects, read_jsonl_tolerant
    from kardiabench.scoring.agreement import HumanLabelError
    from kardiabench.scoring.pairwise import human_preferences, preference_agreement

    res = load_pairwise(folder)
    spec = {r["name"]: r["model_spec"] for r in res["runs"]}
    pairs = [(p["run_a"], p["run_b"], (spec[p["run_a"]], spec[p["run_b"]])) for p in res["pairs"]]
    path = Path(human_file)
    if not path.is_file():
        raise HumanLabelError(f"{path}: human label file not found")
    dims = res["dimensions"]
    human = human_preferences(iter_jsonl_objects(path, HumanLabelError), str(path), pairs, dims)
    judge: dict[tuple[str, str], dict[str, dict[str, Any]]] = {}
    dialogue: dict[str, str] = {}
    for row in read_jsonl_tolerant(Path(folder) / PAIR_ITEMS):
        judge.setdefault((row["run_a"], row["run_b"]), {}).setdefault(row["item_id"], {})[
            row["dimension"]
        ] = row["outcome"]
        dialogue[row["item_id"]] = row.get("dialogue_id") or row["item_id"]
    report = {
        "human_file": str(path),
        "pairwise_dir": str(folder),
        "judge": res["judge"]["specs"],
        "statistics": {
            "n_resamples": resamples,
            "seed": seed,
            "alpha": 0.05,
            "clusters": "dialogue",
        },
        "pairs": {},
    }
    for (a, b), labels in human.items():
        report["pairs"][f"{a} vs {b}"] = {
            "run_a": a,
            "run_b": b,
            "n_human_items": len(labels),
            "dimensions": preference_agreement(
                labels, judge.get((a, b), {}), dims, dialogue, n_resamples=resamples, seed=seed
            ),
        }
    return report


def format_pairwise_agreement(report: Mapping[str, Any]) -> str:
    rows = []
    for name, pair in report["pairs"].items():
        for d, m in pair["dimensions"].items():
            rows.append(
                [
                    name,
                    d,
                    m["n"],
                    format_interval(
                        m["agreement"], m["agreement_ci_low"], m["agreement_ci_high"], 1
                    ),
                    *(
                        format_interval(m[k], m[f"{k}_ci_low"], m[f"{k}_ci_high"], 3)
                        for k in ("kappa", "alpha")
                    ),
                    m["n_no_majority"],
                    m["n_annotators"],
                ]
            )
    head = [
        "pair",
        "dimension",
        "n",
        "agreement % [95% CI]",
        "Cohen's kappa (judge vs majority) [95% CI]",
        "alpha (nominal, humans + judge) [95% CI]",
        "no majority",
        "annotators",
    ]
    title = f"pairwise judge {', '.join(report['judge'])} against human A/B labels ({report['human_file']})"
    s = report.get("statistics") or {}
    note = (
        f"95% CIs: bootstrap over dialogues ({s['n_resamples']} resamples, seed {s['seed']})."
        if s
        else ""
    )
    return title + "\n" + markdown_table(head, rows, align="llrrrrrr") + "\n" + note
