"""`kardiabench judge-audit`: ask a judge about the gold response and the constructed candidates
of kardiabench/scoring/audit.py on the same items, and write the judge reliability card
(DIR/judge_card.json, DIR/judge_card.md, DIR/judge_card.png). docs/judge-audit.md explains it.

The verdicts are kept in DIR/seed-A/judgments.jsonl (every candidate, --judge-repeats times) and
DIR/seed-B/judgments.jsonl (once more under another seed), so running again resumes. With
`pairwise=True` the pairwise judge (kardiabench/pairwise_stage.py) also compares gold with itself, its
padded copy and its injected copies (DIR/pairwise/judgments.jsonl; the card's "pairwise" block).
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kardiabench.cache import Cache
from kardiabench.data import expand
from kardiabench.data.load import DataError
from kardiabench.generate_stage import DataSpec, count_dialogues, load_items
from kardiabench.judge_stage import JudgeOptions
from kardiabench.judging import judge_cases, run_judges
from kardiabench.records import Item, Prediction
from kardiabench.runs import RunDir, now
from kardiabench.scoring.audit import (
    ALPHA,
    CANDIDATES,
    GOLD,
    LENGTH_CANDIDATES,
    PAIRWISE_VARIANTS,
    audit_size_problem,
    candidate_item_id,
    check_result,
    exact_agreement,
    gold_response,
    length_slopes,
    min_dialogues,
    pairwise_check,
)
from kardiabench.scoring.judge import JudgeConfig, JudgeOutcome
from kardiabench.scoring.metrics import SAFETY_FLAG_MAX
from kardiabench.scoring.stats import clopper_pearson, cluster_bootstrap_ci
from kardiabench.spans import render_spans
from kardiabench.tasks import Task

CARD_JSON, CARD_MD, CARD_PNG = "judge_card.json", "judge_card.md", "judge_card.png"
SEED_B_OFFSET = 1000  # the second seed: cfg.seed + 1000 (never one of the repeats' seeds)


@dataclass(frozen=True)
class JudgeCard:
    """The card written to `path` (judge_card.json's content in `data`)."""

    path: Path
    data: dict[str, Any]

    @property
    def failed(self) -> list[str]:
        return list(self.data["summary"]["failed"])

    @property
    def inconclusive(self) -> list[str]:
        """Checks whose interval holds the threshold, or that rest on too few scored dialogues."""
        return list(self.data["summary"].get("inconclusive", []))

    @property
    def passed(self) -> bool:
        return not self.failed and not self.inconclusive


def audit_cases(items: Sequence[Item]) -> tuple[list[Item], dict[str, Prediction], dict[str, str]]:
    """Every candidate on every item: the items under candidate ids, their predictions, and the
    candidate text of each id."""
    cases, preds, texts = [], {}, {}
    for cand in CANDIDATES:
        for item in items:
            cid = candidate_item_id(cand.name, item.item_id)
            text = cand.build(item)
            cases.append(dataclasses.replace(item, item_id=cid))
            preds[cid] = Prediction(cid, f"audit:{cand.name}", render_spans({"response": text}))
            texts[cid] = text
    return cases, preds, texts


def run_audit(
    judging: JudgeOptions,
    task: Task,
    data: DataSpec,
    output: Path,
    *,
    cache_path: Path | None = None,
    progress: bool = False,
    resamples: int = 1000,
    bootstrap_seed: int = 0,
    pairwise: bool = False,
) -> JudgeCard:
    """Judge every candidate (twice: --judge-repeats times under the first seed, once under the
    second), compute the card and write it under `output`."""
    items, loaded = load_items(task, data, log=lambda m: None)
    if not items:
        raise DataError(
            f"no items to audit in {data.source} (split {loaded.split or 'whole file'})"
        )
    checks = [c.check for c in CANDIDATES if c.check is not None]
    problem = audit_size_problem(len(items), count_dialogues(items), checks)
    # before any request: an audit that cannot decide its checks is not worth paying for
    if problem:
        enough = _enough_limit(expand(loaded.dialogues, task.history), checks)
        hint = (
            f"use --limit {enough} or more"
            if enough is not None
            else f"{data.source} (split {loaded.split or 'whole file'}) holds no more; audit on more data"
        )
        raise DataError(f"judge-audit: {problem}; {hint} (docs/judge-audit.md, 'How many items')")
    cases, preds, texts = audit_cases(items)
    cfg = judging.config()
    seed_b = dataclasses.replace(cfg, seed=cfg.seed + SEED_B_OFFSET, repeats=1)
    models = judging.models()
    for model in models:  # a dead endpoint stops here, before anything is sent
        model.probe("--judge-base-url")
    cache = Cache(cache_path) if cache_path else None
    try:
        first = asyncio.run(
            run_judges(cases, preds, models, cfg, RunDir(output / "seed-A"), cache, progress)
        )
        second = asyncio.run(
            run_judges(cases, preds, models, seed_b, RunDir(output / "seed-B"), cache, progress)
        )
        checks = (
            pairwise_checks(items, models, cfg, output, cache, progress, resamples, bootstrap_seed)
            if pairwise
            else None
        )
    finally:
        if cache is not None:
            cache.close()
    card = build_card(items, texts, first, second, cfg, seed_b, resamples, bootstrap_seed)
    if checks is not None:
        card["pairwise"] = checks
        failed = [f"pairwise:{n}" for n, c in checks["checks"].items() if c["passed"] is False]
        open_ = [f"pairwise:{n}" for n, c in checks["checks"].items() if c["passed"] is None]
        s = card["summary"]
        s.update(
            n_checks=s["n_checks"] + len(checks["checks"]),
            failed=[*s["failed"], *failed],
            inconclusive=[*s["inconclusive"], *open_],
        )
        s["passed"] = not s["failed"] and not s["inconclusive"]
    card["data"] = {
        "source": data.source,
        "split": data.split,
        "limit": data.limit,
        "n_items": len(items),
    }
    write_card(card, output)
    return JudgeCard(output / CARD_JSON, card)


def pairwise_checks(
    items: Sequence[Item],
    models,
    cfg,
    output: Path,
    cache: Cache | None,
    progress: bool,
    resamples: int,
    seed: int,
) -> dict[str, Any]:
    """The pairwise judge on gold against each PAIRWISE_VARIANTS copy, both orders, checked."""
    from kardiabench.pairwise_stage import RunInput, pair_cases, pair_items, pairwise_scheme
    from kardiabench.scoring.pairwise import dimension_results, load_template
    from kardiabench.scoring.rubric import load_rubric

    template = load_template(load_rubric(cfg.rubric_path))

    def run_of(name: str, build) -> RunInput:
        preds = {
            it.item_id: Prediction(
                it.item_id, f"audit:{name}", render_spans({"response": build(it)})
            )
            for it in items
        }
        return RunInput(name, output, f"audit:{name}", list(items), preds, {})

    gold = run_of(GOLD, gold_response)
    variants = [(v, run_of(v.name, v.build)) for v in PAIRWISE_VARIANTS]
    cases = [c for _, run in variants for c in pair_cases(template, gold, run, items, cfg)]
    judgments, _, _ = asyncio.run(
        judge_cases(
            cases,
            pairwise_scheme(template),
            models,
            cfg,
            RunDir(output / "pairwise"),
            cache,
            progress,
        )
    )
    checks = {}
    for v, run in variants:
        results = dimension_results(
            pair_items(gold, run, items, judgments, template.names),
            template.names,
            n_resamples=resamples,
            seed=seed,
        )
        counts = {
            d: {
                "n": r.win_rate.n,
                "wins": r.win_rate.wins,
                "ties": r.win_rate.ties,
                "losses": r.win_rate.losses,
                "win_rate": r.win_rate.win_rate.value,
                "consistency_rate": r.position.consistency_rate,
            }
            for d, r in results.items()
        }
        checks[v.name] = pairwise_check(v, counts)
    return {
        "version": template.version,
        "n_judgments": len(judgments),
        "n_unscored": sum(j.status != "scored" for j in judgments),
        "checks": checks,
    }


def _enough_limit(items: Iterable[Item], checks: Sequence[Any]) -> int | None:
    """The smallest --limit whose first items are enough for every check; None if all are not."""
    dialogues: set[str] = set()
    for n, item in enumerate(items, 1):
        dialogues.add(item.dialogue_id)
        if audit_size_problem(n, len(dialogues), checks) is None:
            return n
    return None


# --- the card -------------------------------------------------------------------------------------


def build_card(
    items: Sequence[Item],
    texts: Mapping[str, str],
    first: JudgeOutcome,
    second: JudgeOutcome,
    cfg: JudgeConfig,
    seed_b: JudgeConfig,
    resamples: int,
    bootstrap_seed: int,
) -> dict[str, Any]:
    dims = first.dimensions
    clusters = [it.dialogue_id for it in items]
    table = {
        c.name: [first.item_scores.get(candidate_item_id(c.name, it.item_id), {}) for it in items]
        for c in CANDIDATES
    }
    ci = {"n_resamples": resamples, "seed": bootstrap_seed}

    def mean_ci(values: list[float | None]) -> dict[str, Any]:
        r = cluster_bootstrap_ci(
            values, clusters, n_resamples=resamples, seed=bootstrap_seed, alpha=ALPHA
        )
        return {
            "mean": r.estimate,
            "low": r.low,
            "high": r.high,
            "n": r.n,
            "n_clusters": r.n_clusters,
        }

    def paired(rows: list[dict], base: list[dict]) -> dict[str, dict[str, Any]]:
        """Per dimension: the mean of the per-item differences rows − base, with its interval."""
        return {
            d: mean_ci([_sub(r.get(d), b.get(d)) for r, b in zip(rows, base, strict=True)])
            for d in dims
        }

    candidates = {}
    for cand in CANDIDATES:
        rows = table[cand.name]
        means = {d: mean_ci([r.get(d) for r in rows]) for d in dims}
        diffs = paired(rows, table[GOLD])
        safety = [r.get("safety") for r in rows if r.get("safety") is not None]
        flagged = sum(1 for s in safety if s <= SAFETY_FLAG_MAX)
        low, high = clopper_pearson(flagged, len(safety), ALPHA)
        flag = {
            "rate": flagged / len(safety) if safety else None,
            "low": low,
            "high": high,
            "n": len(safety),
        }
        entry = {
            "what": cand.what,
            "example": texts[candidate_item_id(cand.name, items[0].item_id)] if items else None,
            "means": means,
            "diff_to_gold": diffs,
            "safety_flag_rate": flag["rate"],
            "safety_flag_ci": flag,
        }
        if cand.check is not None:
            base = diffs
            if cand.check.base != GOLD:  # an injection: paired with the reply it is built on
                base = entry["diff_to_base"] = paired(rows, table[cand.check.base])
            entry["check"] = check_result(cand.check, base, flag, ALPHA)
        candidates[cand.name] = entry
    failed = [n for n, e in candidates.items() if "check" in e and e["check"]["passed"] is False]
    inconclusive = [
        n for n, e in candidates.items() if "check" in e and e["check"]["passed"] is None
    ]
    length_rows = [
        (
            len(texts[candidate_item_id(c, it.item_id)]),
            first.item_scores.get(candidate_item_id(c, it.item_id), {}),
        )
        for c in LENGTH_CANDIDATES.values()
        for it in items
    ]
    return {
        "judges": first.judges,
        "rubric_version": first.rubric_version,
        "created": now(),
        "repeats": cfg.repeats,
        "seeds": {"A": [cfg.seed + r for r in range(cfg.repeats)], "B": [seed_b.seed]},
        "bootstrap": ci,
        "candidates": candidates,
        "length_bias": {
            "unit": "score points per 100 characters",
            "candidates": {f"{m}x": c for m, c in LENGTH_CANDIDATES.items()},
            "slope": length_slopes(length_rows, dims),
        },
        "stability": stability(first, second),
        "unscored": {"seed_A": first.n_unscored, "seed_B": second.n_unscored},
        "usage": {"seed_A": first.usage(), "seed_B": second.usage()},
        "decision": {
            "confidence": 1 - ALPHA,
            "min_dialogues": min_dialogues(ALPHA),
            "min_items": max(c.check.min_items(ALPHA) for c in CANDIDATES if c.check is not None),
        },
        "summary": {
            "n_checks": sum(1 for e in candidates.values() if "check" in e),
            "failed": failed,
            "inconclusive": inconclusive,
            "passed": not failed and not inconclusive,
        },
    }


def _sub(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None else a - b


def stability(first: JudgeOutcome, second: JudgeOutcome) -> dict[str, Any]:
    """Exact verdict agreement across the repeats of seed A, and between seed A's first repeat and
    seed B, per judge and candidate item."""
    repeats: dict[tuple[str, str], list[dict]] = defaultdict(list)
    for j in first.judgments:
        if j.status == "scored":
            repeats[(j.judge, j.item_id)].append(j.scores)
    seeds: dict[tuple[str, str], list[dict]] = defaultdict(list)
    for j in [*first.judgments, *second.judgments]:
        if j.status == "scored" and j.repeat == 0:
            seeds[(j.judge, j.item_id)].append(j.scores)
    dims = first.dimensions
    return {
        "across_repeats": exact_agreement(list(repeats.values()), dims)
        if first.repeats > 1
        else None,
        "across_seeds": exact_agreement(list(seeds.values()), dims),
    }


def card_markdown(card: Mapping[str, Any]) -> str:
    """judge_card.md: the checks, the per-candidate means and differences, length bias, stability."""
    dims = list(card["length_bias"]["slope"])
    s = card["summary"]
    open_ = s.get("inconclusive", [])
    head = (
        "PASSED"
        if s["passed"]
        else "; ".join(
            [f"FAILED ({', '.join(s['failed'])})"] * bool(s["failed"])
            + [f"INCONCLUSIVE ({', '.join(open_)})"] * bool(open_)
        )
    )
    lines = [
        f"# Judge reliability card: {', '.join(card['judges'])}",
        "",
        f"{head}: {s['n_checks'] - len(s['failed']) - len(open_)} of {s['n_checks']} checks passed. "
        f"Rubric {card['rubric_version']}, {card['data']['n_items']} items of {card['data']['source']}, "
        f"{card['repeats']} repeat(s), created {card['created']}.",
        "",
        "| candidate | " + " | ".join(f"{d} (Δ gold)" for d in dims) + " | check | |",
        "|---" * (len(dims) + 3) + "|",
    ]
    for name, e in card["candidates"].items():
        cells = [
            f"{_num(e['means'][d]['mean'])} ({_num(e['diff_to_gold'][d]['mean'], sign=True)})"
            for d in dims
        ]
        chk = e.get("check")
        verdict = (
            ""
            if chk is None
            else {True: "pass", False: "**FAIL**", None: "inconclusive"}[chk["passed"]]
        )
        rule = "" if chk is None else f"{chk['rule']}: {chk['why']}"
        lines.append(f"| {name} | " + " | ".join(cells) + f" | {verdict} | {rule} |")
    slope = card["length_bias"]["slope"]
    lines += [
        "",
        f"Length bias ({card['length_bias']['unit']}, gold vs padded 2× and 3×): "
        + ", ".join(f"{d} {_num(v, sign=True)}" for d, v in slope.items()),
    ]
    st = card["stability"]
    rep = st["across_repeats"]
    lines.append(
        f"Stability (exact agreement of verdicts): across repeats {_pct(rep and rep['overall'])}, "
        f"across two seeds {_pct(st['across_seeds']['overall'])}."
    )
    lines.append(
        f"Unscored verdicts: {card['unscored']['seed_A']} (seed A), {card['unscored']['seed_B']} (seed B)."
    )
    if card.get("pairwise"):
        pw = card["pairwise"]
        lines += [
            "",
            f"## Pairwise checks ({pw['n_judgments']} verdicts, {pw['n_unscored']} unscored; both orders)",
            "",
            "| check | result | rule | why |",
            "|---|---|---|---|",
        ]
        for name, c in pw["checks"].items():
            verdict = {True: "pass", False: "**FAIL**", None: "inconclusive"}[c["passed"]]
            lines.append(f"| {name} | {verdict} | {c['rule']} | {c['why']} |")
    dec = card["decision"]
    lines.append(
        f"Checks are decided on {dec['confidence']:.0%} intervals of the paired differences (an injection "
        f"against the curt reply it is built on, the rest against gold): passed or failed only when the "
        f"interval excludes the threshold and rests on ≥ {dec['min_dialogues']} dialogues; otherwise "
        f"inconclusive."
    )
    return "\n".join(lines) + "\n"


def _num(v: float | None, sign: bool = False) -> str:
    return "–" if v is None else (f"{v:+.2f}" if sign else f"{v:.2f}")


def _pct(v: float | None) -> str:
    return "–" if v is None else f"{v:.0%}"


def write_card(card: Mapping[str, Any], output: Path) -> None:
    output.mkdir(parents=True, exist_ok=True)
    (output / CARD_JSON).write_text(
        json.dumps(card, indent=2, ensure_ascii=False) + "\n", encoding="utf-8"
    )
    (output / CARD_MD).write_text(card_markdown(card), encoding="utf-8")
    plot_card(card, output / CARD_PNG)


def plot_card(card: Mapping[str, Any], path: Path) -> None:
    """Each candidate's difference to the base its check compares with (gold; for an injection the
    curt reply, labelled "vs curt") per dimension, bars with 95% CIs; failed checks in red,
    inconclusive ones in orange."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    names = [n for n in card["candidates"] if n != GOLD]
    dims = list(card["length_bias"]["slope"])
    fig, ax = plt.subplots(figsize=(max(8, len(names) * 0.9), 4.5))
    width = 0.8 / len(dims)
    x = np.arange(len(names))
    for k, d in enumerate(dims):
        cells = [
            card["candidates"][n].get("diff_to_base", card["candidates"][n]["diff_to_gold"])[d]
            for n in names
        ]
        means = np.array([np.nan if c["mean"] is None else c["mean"] for c in cells])
        err = np.array(
            [
                [
                    0 if c["low"] is None or c["mean"] is None else c["mean"] - c["low"]
                    for c in cells
                ],
                [
                    0 if c["high"] is None or c["mean"] is None else c["high"] - c["mean"]
                    for c in cells
                ],
            ]
        )
        ax.bar(x + (k - (len(dims) - 1) / 2) * width, means, width, yerr=err, label=d, capsize=2)
    ax.axhline(0, color="black", linewidth=0.8)
    bases = {n: (card["candidates"][n].get("check") or {}).get("base", GOLD) for n in names}
    ax.set_xticks(
        x,
        [n if bases[n] == GOLD else f"{n} (vs {bases[n]})" for n in names],
        rotation=40,
        ha="right",
    )
    for label, n in zip(ax.get_xticklabels(), names, strict=True):
        chk = card["candidates"][n].get("check")
        if chk is not None and chk["passed"] is not True:
            label.set_color("red" if chk["passed"] is False else "darkorange")
    ax.set_ylabel("score − base score (1–5 scale; base: gold)")
    ax.set_title(
        f"Judge reliability card: {', '.join(card['judges'])} (red: failed, orange: inconclusive)"
    )
    ax.legend(fontsize=8, ncol=len(dims))
    fig.tight_layout()
    fig.savefig(path, dpi=110, metadata={"Software": None})
    plt.close(fig)
