"""The scoring stage and the commands built on it: score a run folder (or predictions made
elsewhere), compare two runs, and check the judge against human labels.

Scoring never regenerates: it reads predictions.jsonl, reloads the items the manifest names (and
checks their fingerprint), judges what has not been judged yet, and writes results.json,
items.jsonl (per-item rows) and summary.md.
"""

from __future__ import annotations

import asyncio
import json
import os
from pathlib import Path
from typing import Any

from kardiabench.data.load import DataError
from kardiabench.generate import DataSpec, count_dialogues, data_fingerprint, load_items
from kardiabench.jsonl import iter_jsonl_objects, read_jsonl_tolerant, write_jsonl_atomic
from kardiabench.records import Item, Prediction
from kardiabench.rundir import (
    ITEMS,
    RESULTS,
    SUMMARY,
    RunDir,
    RunDirError,
    now,
    provenance,
)
from kardiabench.scoring.metrics import RUBRIC_METRICS
from kardiabench.spans import PARSER_VERSION
from kardiabench.tasks import Task, load_task

# ----------------------------------------------------------------------------- inputs


def read_external_predictions(path: Path, model: str = "external") -> dict[str, Prediction]:
    """Predictions made elsewhere: JSONL with `item_id` and `raw_output` (optional `finish_reason`,
    `reasoning`, `error`); raw_output null with an `error` is a failed generation. A bad row (a
    missing field, a second line for one item) is an error naming the file, line and field."""
    from kardiabench.generate import to_prediction
    from kardiabench.models.base import Generation, ModelError

    if not path.exists():
        raise DataError(f"{path}: no such predictions file")
    preds: dict[str, Prediction] = {}
    lines: dict[str, int] = {}
    for lineno, row in iter_jsonl_objects(path, DataError):
        item_id = row.get("item_id")
        if not isinstance(item_id, str):
            raise DataError(f"{path}:{lineno}: item_id: missing or not a string")
        if item_id in lines:
            raise DataError(f"{path}:{lineno}: item_id: {item_id} already on line {lines[item_id]} (one line per item)")
        if "raw_output" not in row:
            raise DataError(f"{path}:{lineno}: raw_output: missing (null with an `error` for a failed generation)")
        raw, error = row["raw_output"], row.get("error")
        if raw is not None and not isinstance(raw, str):
            raise DataError(f"{path}:{lineno}: raw_output: expected a string or null")
        if error is not None and not isinstance(error, str):
            raise DataError(f"{path}:{lineno}: error: expected a string or null")
        out = ModelError(error or "no output") if raw is None else Generation(raw, row.get("reasoning"), row.get("finish_reason"))
        preds[item_id] = to_prediction(item_id, row.get("model", model), out, None, False)
        lines[item_id] = lineno
    return preds


def run_inputs(run: RunDir) -> tuple[Task, list[Item], dict[str, Any]]:
    """The task and items a run folder was generated from (its first n_items, the ones the
    fingerprint covers), checked against its fingerprint."""
    manifest = run.read_manifest()
    task = Task.model_validate(manifest["task_config"])
    d = manifest["data"]
    spec = DataSpec(source=d["source"], split=d.get("split"), derive_split=d.get("derive_split"), split_seed=d.get("split_seed", 0), limit=d.get("n_items"))
    items, _ = load_items(task, spec, log=lambda m: None)
    if data_fingerprint(items) != d.get("fingerprint"):
        raise DataError(
            f"{run.path}: the data at {d['source']} no longer give the items this run was generated on "
            "(fingerprint differs). Restore the data or generate again."
        )
    return task, items, manifest


# ----------------------------------------------------------------------------- judging


def judge_models(args) -> list:
    from kardiabench.models import ModelOptions, load_model

    opts = ModelOptions(base_url=args.judge_base_url or os.environ.get("OPENAI_BASE_URL"), concurrency=args.judge_concurrency,
                        api_key_env=args.judge_api_key_env, require_key=not getattr(args, "dry_run", False))  # fmt: skip
    return [load_model(spec, opts) for spec in dict.fromkeys(args.judge)]


def judge_stage(args, task: Task, items: list[Item], preds: dict[str, Prediction], run: RunDir, log):
    """(JudgeOutcome, note or None), or (None, reason) when rubric metrics are not computed."""
    from kardiabench.cache import Cache, default_cache_path
    from kardiabench.judging import run_judges
    from kardiabench.scoring.judge import JudgeConfig
    from kardiabench.scoring.rubric import load_rubric

    if not task.uses_judge:
        return None, f"task {task.name} has no rubric metrics"
    rubric = load_rubric(args.rubric)
    if not args.judge:
        return saved_outcome(args, rubric, items, preds, run, log)
    cfg = JudgeConfig(rubric_path=args.rubric, show_reasoning=args.judge_show_reasoning, repeats=args.judge_repeats,
                      max_tokens=args.judge_max_tokens, concurrency=args.judge_concurrency)  # fmt: skip
    cache = None if getattr(args, "no_cache", False) else Cache(Path(args.cache) if getattr(args, "cache", None) else default_cache_path())
    models = judge_models(args)
    try:
        outcome = asyncio.run(run_judges(items, preds, models, cfg, run, cache, progress=not getattr(args, "no_progress", False)))
    finally:
        if cache is not None:
            cache.close()
    for judge, run_stats in outcome.run_stats.items():
        cost = run_stats.get("cost_usd")
        log(f"judge {judge}: {run_stats.get('requests', 0)} requests ({run_stats.get('cached', 0)} from cache, "
            f"{run_stats.get('failed', 0)} failed), tokens in {run_stats.get('prompt_tokens', 0):,} out "
            f"{run_stats.get('completion_tokens', 0):,}, cost {'unknown' if cost is None else f'${cost:.4f}'}; "
            f"unscored: {counts_text(outcome.unscored_by_reason(judge))}")  # fmt: skip
    return outcome, None


def saved_outcome(args, rubric, items: list[Item], preds: dict[str, Prediction], run: RunDir, log):
    """The verdicts in DIR/judgments.jsonl made for exactly the predictions now in the folder
    (see judge.matching_verdicts); verdicts made for other predictions are named and ignored."""
    from kardiabench.judging import JUDGMENTS, load_judgments, matching_verdicts
    from kardiabench.scoring.judge import outcome_from_judgments

    path = run.path / JUDGMENTS
    if not path.exists():
        return None, "no judge given (--judge SPEC)"
    kept, stale = matching_verdicts(load_judgments(path, rubric.version), items, preds, rubric, args.judge_max_tokens)
    note = None
    if stale:
        note = f"{len(stale)} verdict(s) in {JUDGMENTS} were made for other predictions and are ignored (e.g. {stale[0].item_id})"
        log(f"rubric: {note}")
    if not kept:
        return None, f"{note}; score again with --judge SPEC" if note else "no judge given (--judge SPEC)"
    outcome = outcome_from_judgments(kept)
    log(f"rubric: reusing {len(kept)} verdicts of {', '.join(outcome.judges)} from {path}")
    return outcome, note


def counts_text(counts: dict[str, int]) -> str:
    """{"invalid judge output": 3, …} as "invalid judge output ×3, …" (most first), or "none"."""
    return ", ".join(f"{k} ×{n}" for k, n in sorted(counts.items(), key=lambda kv: -kv[1])) or "none"


# ----------------------------------------------------------------------------- the command


def output_folder(args, run_dir: Path | None) -> Path | None:
    """The folder `score` writes to: --output, else the run folder, else FILE-scored beside
    --predictions FILE."""
    if getattr(args, "predictions", None):
        return args.output or args.predictions.parent / (args.predictions.stem + "-scored")
    return run_dir


def score_command(args, run_dir: Path | None, log) -> int:
    """Score while holding the folder's lock, so no other process writes it meanwhile."""
    run = scoring_folder(args, run_dir)
    with run.lock():
        return _score(args, run, log)


def scoring_folder(args, run_dir: Path | None) -> RunDir:
    """The folder scoring writes to; created for --predictions."""
    if getattr(args, "predictions", None):
        run = RunDir(output_folder(args, run_dir))
        run.path.mkdir(parents=True, exist_ok=True)
        return run
    if run_dir is None:
        raise RunDirError("give a run folder, or --predictions FILE with --data SOURCE")
    return RunDir(run_dir)


def _score(args, run: RunDir, log) -> int:
    """Score, write results.json, items.jsonl and summary.md; 1 when a judge scored nothing."""
    from kardiabench.scoring import score_predictions

    if getattr(args, "predictions", None):
        if not args.data:
            raise DataError("--predictions needs --data (the source the item ids come from)")
        task = load_task(args.task or "kardiabench", args.tasks_dir)
        spec = DataSpec(args.data, args.split or task.data.split, strict=args.strict, derive_split=args.derive_split, split_seed=args.split_seed)
        items, loaded = load_items(task, spec, log)
        manifest = {"task_config": task.model_dump(mode="json"), "model_spec": f"external:{args.predictions.name}",
                    "generation": {"history": task.history}, "parser_version": PARSER_VERSION,
                    "data": {"source": spec.source, "split": loaded.split, "fingerprint": data_fingerprint(items), "n_items": len(items)},
                    "provenance": provenance(), "created": now()}  # fmt: skip
        refuse_other_run(run, manifest)
        preds = read_external_predictions(args.predictions)
        unknown = set(preds) - {it.item_id for it in items}
        if unknown:
            raise DataError(f"{args.predictions}: {len(unknown)} item id(s) not in {args.data} ({loaded.split}), e.g. {sorted(unknown)[0]}")
        run.write_manifest(manifest)
        missing_hint = f"{args.predictions} has no line for them"
    else:
        task, items, manifest = run_inputs(run)
        preds = run.read_predictions()
        missing_hint = "run generate again to finish them"
    missing = sum(1 for it in items if it.item_id not in preds)
    if missing:
        log(f"warning: {missing} of {len(items)} items have no prediction; they count as wrong ({missing_hint})")
    outcome, note = judge_stage(args, task, items, preds, run, log)
    report = score_predictions(items, preds, outcome.item_scores if outcome else None, n_resamples=args.resamples,
                               seed=args.bootstrap_seed, no_judge_reason=note or "")  # fmt: skip
    results = report.to_dict()
    if "rubric" not in task.metrics:
        results["metrics"] = {k: v for k, v in results["metrics"].items() if k not in RUBRIC_METRICS}
    manifest["judge"] = {"spec": "+".join(outcome.judges), "rubric_version": outcome.rubric_version, "repeats": outcome.repeats} if outcome else None
    manifest["scored"] = now()
    run.write_manifest(manifest)
    rubric = {"computed": False, "reason": note}
    if outcome:
        rubric = {**outcome.to_dict(), **({"ignored": note} if note else {})}
    full = {
        "task": task.name,
        "model": manifest.get("model_spec"),
        "data": {**manifest["data"], "n_items": len(items), "n_dialogues": count_dialogues(items)},
        "history": task.history,
        "judge": manifest["judge"],
        **results,
        "rubric": rubric,
        "generation_stats": manifest.get("generation_stats"),
        "provenance": manifest.get("provenance"),
    }
    run.write_json(RESULTS, full)
    _write_items(run.path / ITEMS, report.item_rows())
    summary = format_summary(full)
    (run.path / SUMMARY).write_text(summary + "\n", encoding="utf-8")
    print(summary)
    log(f"results → {run.path / RESULTS}")
    failures = judge_failures(outcome) if outcome else []
    for line in failures:
        log(f"error: {line}")
    return 1 if failures else 0


def refuse_other_run(run: RunDir, manifest: dict[str, Any]) -> None:
    """Refuse to score predictions made elsewhere into a folder that holds a different run: the
    same predictions file name, data source, split and task may be scored there again."""
    if not run.manifest_path.exists():
        return
    old = run.read_manifest()
    keys = {"model": lambda m: m.get("model_spec"), "task": lambda m: (m.get("task_config") or {}).get("name"),
            "data": lambda m: (m.get("data") or {}).get("source"), "split": lambda m: (m.get("data") or {}).get("split")}  # fmt: skip
    differ = [f"{k} {get(old)} → {get(manifest)}" for k, get in keys.items() if get(old) != get(manifest)]
    if differ:
        raise RunDirError(
            f"{run.path} holds a different run ({'; '.join(differ)}). Use another --output (or remove the folder)."
        )


def judge_failures(outcome) -> list[str]:
    """One readable line per judge that was asked and scored nothing (endpoint down, every reply
    invalid), with the reasons counted and the first detail."""
    from kardiabench.scoring.judge import NOT_SENT

    lines = []
    for judge in outcome.judges:
        mine = [j for j in outcome.judgments if j.judge == judge]
        asked = [j for j in mine if j.reason not in NOT_SENT]
        if not asked or any(j.status == "scored" for j in asked):
            continue
        n_items = len({j.item_id for j in mine})
        first = asked[0].detail or ""
        first = first if len(first) <= 160 else first[:160] + " …"
        lines.append(f"judge {judge} scored 0 of {n_items} items: {counts_text(outcome.unscored_by_reason(judge))} (first: {first})")
    return lines


def _write_items(path: Path, rows: list[dict]) -> None:
    write_jsonl_atomic(path, rows)


def format_summary(results: dict[str, Any]) -> str:
    """A Markdown table of the headline metrics, each with n, unscored and its 95% CI."""
    d = results["data"]
    lines = [
        f"## {results['model']} on {results['task']} ({d['source']}, {d.get('split') or 'whole file'})",
        "",
        f"{d.get('n_items')} items in {d.get('n_dialogues')} dialogues (limit: {d.get('limit') or 'none'})",
        "",
        "| metric | value | 95% CI | n | unscored |",
        "|---|---:|---|---:|---:|",
    ]
    for name, m in results["metrics"].items():
        if m.get("value") is None:
            lines.append(f"| {name} | not computed | {m.get('reason', '')} | {m.get('n', 0)} | {m.get('n_unscored', 0)} |")
            continue
        ci = f"[{m['ci_low']:.2f}, {m['ci_high']:.2f}]" if m.get("ci_low") is not None else "–"
        lines.append(f"| {name} | {m['value']:.2f} | {ci} | {m['n']} | {m['n_unscored']} |")
    stats = results.get("statistics") or {}
    if stats:
        lines += ["", f"CIs: {stats.get('method', 'cluster bootstrap')}, {stats.get('n_resamples')} resamples, seed {stats.get('seed')}."]
    fc = results["metrics"].get("format_compliance", {}).get("extra", {})
    if fc.get("n_failed"):
        lines.append(f"{fc['n_failed']} item(s) failed to generate and count as wrong; see run.json.")
    return "\n".join(lines)


# ----------------------------------------------------------------------------- compare, agreement


def _run_scores(path: Path):
    from kardiabench.scoring import RunScores

    run = RunDir(path)
    manifest = run.read_manifest()
    items_path = path / ITEMS
    if not items_path.exists():
        raise RunDirError(f"{path}: not scored yet (no {ITEMS}); run `kardiabench score {path}` first")
    return RunScores.from_rows(read_jsonl_tolerant(items_path), name=path.name, manifest=manifest)


def compare_command(args, log) -> int:
    from kardiabench.scoring import COMPARABILITY_KEYS, compare_runs

    a, b = _run_scores(args.run_a), _run_scores(args.run_b)
    keys, metrics = COMPARABILITY_KEYS, None
    judged = [bool((s.manifest or {}).get("judge")) for s in (a, b)]
    if judged[0] != judged[1]:
        log("note: only one run was judged; rubric metrics are left out of the comparison")
        keys = tuple(k for k in COMPARABILITY_KEYS if not k.startswith("judge."))
        metrics = ["emotion_accuracy", "format_compliance"]
    comparison = compare_runs(a, b, force=args.force, keys=keys, metrics=metrics, n_resamples=args.resamples, seed=args.seed)
    print(json.dumps(comparison.to_dict(), indent=2) if args.json else comparison.to_markdown())
    return 0


def judge_agreement_command(args, log) -> int:
    from kardiabench.judging import JUDGMENTS, judge_agreement, load_judgments

    path = Path(args.run_dir) / JUDGMENTS
    if not path.exists():
        raise RunDirError(f"{args.run_dir}: no {JUDGMENTS}; score the run with --judge first")
    report = judge_agreement(args.human, load_judgments(path))
    if args.json:
        print(json.dumps(report, indent=2))
        return 0
    print(f"agreement with human labels ({report['n_human_items']} items in {report['human_file']})")
    print("| judge | dimension | n | alpha (ordinal) | weighted kappa | Spearman | mean offset |")
    print("|---|---|---:|---:|---:|---:|---:|")
    for judge, rep in report["judges"].items():
        for dim, m in rep["dimensions"].items():
            cells = [m.get(k) for k in ("alpha", "kappa", "spearman", "mean_offset")]
            print(f"| {judge} | {dim} | {m.get('n', 0)} | " + " | ".join("–" if c is None else f"{c:.3f}" for c in cells) + " |")
    return 0
