"""The scoring stage: a run folder, or predictions made elsewhere, → results.json, items.jsonl and
summary.md. `kardiabench.api.score` is its front door.

Scoring never regenerates: it reads predictions.jsonl (predictions made elsewhere are copied
there, so the folder can be scored again on its own), reloads the items the manifest names (and
checks their fingerprint), judges what has not been judged yet, and replaces the folder's scoring
files as one (`_commit`): results.json, items.jsonl (per-item rows) and summary.md, holding the
folder's lock meanwhile.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import os
import time
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from kardiabench.cache import Cache
from kardiabench.data.load import DataError
from kardiabench.generate_stage import (
    DataSpec,
    count_dialogues,
    data_fingerprint,
    load_items,
    task_block,
)
from kardiabench.jsonl import iter_jsonl_objects, write_jsonl_atomic
from kardiabench.models import ChatModel, ModelOptions, load_model, parse_spec
from kardiabench.options import check_keywords
from kardiabench.params import BATCH_TIMEOUT_S, ParameterError
from kardiabench.records import Item, Prediction
from kardiabench.rundir import (
    ITEMS,
    JUDGMENTS,
    PREDICTIONS,
    REPORT,
    RESULTS,
    SCORED,
    SUMMARY,
    RunDir,
    RunDirError,
    now,
    provenance,
)
from kardiabench.runs import Results, Run, RunManifest, load_run
from kardiabench.scoring.families import (
    FamiliesError,
    check_families,
    self_preference_risk,
    training_judge_risk,
)
from kardiabench.scoring.judge import (
    NOT_SENT,
    POOLS,
    Escalation,
    JudgeConfig,
    disagreeing_items,
    outcome_from_judgments,
    parse_escalate_when,
)
from kardiabench.scoring.metrics import RUBRIC_METRICS
from kardiabench.spans import PARSER_VERSION
from kardiabench.tables import markdown_table
from kardiabench.tasks import Task, load_task

# The judge's file and model I/O: used by judge_stage, saved_outcome and saved_judgments only.
from kardiabench.judging import load_judgments, matching_verdicts, run_judges  # isort: skip

log = logging.getLogger("kardiabench")


@dataclass(frozen=True)
class JudgeOptions:
    """The judge keywords of `score`, `evaluate` and `dry_run` (the CLI's --judge* flags and
    --rubric). `judges` is a list of model specs; one spec alone may be given as a string."""

    judges: Sequence[str] = ()
    judge_base_url: str | list[str] | None = None
    judge_api_key_env: str = "OPENAI_API_KEY"
    judge_concurrency: int = 16
    judge_repeats: int = 1
    judge_max_tokens: int = 1024
    judge_show_reasoning: bool = False
    rubric: str | None = None
    judge_card: str | None = None  # a judge_card.json (`judge-audit`) to cite in results.json
    families: str | None = None  # a YAML {pattern: family} tried before scoring/families.py's mapping
    judge_pool: str = "mean"  # how the judges' item scores are pooled (scoring/judge.py POOLS)
    escalate_to: str | None = None  # a stronger judge for the items the judges disagree on
    escalate_when: str = "disagree:1"  # disagree:K: judges differ by ≥ K on some dimension
    judge_batch: bool = False  # first round of openai: judges through the provider's batch API
    judge_batch_timeout: float | None = BATCH_TIMEOUT_S  # seconds to wait for a judge batch (CLI: --batch-timeout)
    judge_max_cost: float | None = None  # USD the judges may spend in this command (`run`: what --max-cost leaves)
    judge_timeout: float = 120.0  # seconds per request (openai: judges)
    judge_batch_size: int = 8  # hf: judges
    judge_dtype: str = "auto"  # hf:/vllm: judges
    judge_chat_template: str | None = None  # a Jinja file, for hf:/vllm: judges without a template

    def __post_init__(self) -> None:
        object.__setattr__(self, "judges", (self.judges,) if isinstance(self.judges, str) else tuple(self.judges))
        if self.judge_pool not in POOLS:
            raise ParameterError(f"judge_pool: must be one of {', '.join(POOLS)}, got {self.judge_pool!r}")
        try:
            parse_escalate_when(self.escalate_when)
        except ValueError as e:
            raise ParameterError(f"escalate_when: {e}") from None
        if self.escalate_to and len(set(self.judges)) < 2:
            raise ParameterError("escalate_to: needs two or more judges whose disagreement decides what is escalated")
        check_keywords(judge_api_key_env=self.judge_api_key_env, judge_concurrency=self.judge_concurrency,
               judge_repeats=self.judge_repeats, judge_max_tokens=self.judge_max_tokens, judge_timeout=self.judge_timeout,
               judge_batch_size=self.judge_batch_size, judge_batch_timeout=self.judge_batch_timeout)  # fmt: skip

    def config(self) -> JudgeConfig:
        return JudgeConfig(rubric_path=self.rubric, show_reasoning=self.judge_show_reasoning, repeats=self.judge_repeats,
                           max_tokens=self.judge_max_tokens, concurrency=self.judge_concurrency, batch=self.judge_batch,
                           batch_timeout=self.judge_batch_timeout, budget_usd=self.judge_max_cost)  # fmt: skip

    def models(self, require_key: bool = True) -> list[ChatModel]:
        """One model per distinct spec; a judge without its API key fails here (unless require_key
        is False: a dry run sends nothing)."""
        template = Path(self.judge_chat_template).read_text(encoding="utf-8") if self.judge_chat_template else None
        opts = ModelOptions(base_url=self.judge_base_url or os.environ.get("OPENAI_BASE_URL"), concurrency=self.judge_concurrency,
                            api_key_env=self.judge_api_key_env, require_key=require_key, timeout=self.judge_timeout,
                            batch_size=self.judge_batch_size, dtype=self.judge_dtype, chat_template=template)  # fmt: skip
        return [load_model(spec, opts) for spec in dict.fromkeys(self.judges)]

    def probe(self) -> None:
        """Probe the endpoint of every openai: judge, --escalate-to's too (ChatModel.probe): a dead
        one is a FatalModelError before anything is sent. Other judges are not loaded for it."""
        specs = [s for s in dict.fromkeys([*self.judges, *filter(None, [self.escalate_to])]) if parse_spec(s)[0] == "openai"]
        if specs:
            for model in dataclasses.replace(self, judges=tuple(specs), escalate_to=None).models():
                model.probe("--judge-base-url")


JUDGE_KEYWORDS = tuple(f.name for f in dataclasses.fields(JudgeOptions))


# ----------------------------------------------------------------------------- inputs


def read_external_predictions(path: Path, model: str = "external") -> dict[str, Prediction]:
    """Predictions made elsewhere: JSONL with `item_id` and `raw_output` (optional `finish_reason`,
    `reasoning`, `error`); raw_output null with an `error` is a failed generation. A bad row (a
    missing field, a second line for one item) is an error naming the file, line and field."""
    from kardiabench.generate_stage import to_prediction
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


@dataclass(frozen=True)
class ExternalPredictions:
    """Predictions made elsewhere, and the data and task their item ids come from (`score`)."""

    path: Path
    data: str | None
    task: str | None
    tasks_dir: tuple[str, ...]
    split: str | None
    strict: bool
    derive_split: float | None
    split_seed: int
    limit: int | None = None  # only the first N items of the data (--limit)


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


def external_inputs(run: RunDir, ext: ExternalPredictions) -> tuple[Task, list[Item], dict[str, Any], dict[str, Prediction]]:
    """The task, items, manifest and predictions of predictions made elsewhere, checked (the
    folder must not hold another run); nothing is written: `_commit` writes the manifest and the
    folder's copy of the predictions together with the results."""
    if not ext.data:
        raise DataError("--predictions needs --data (the source the item ids come from)")
    task = load_task(ext.task or "kardiabench", list(ext.tasks_dir))
    spec = DataSpec(ext.data, ext.split or task.data.split, strict=ext.strict, derive_split=ext.derive_split, split_seed=ext.split_seed, limit=ext.limit)
    items, loaded = load_items(task, spec, log.info)
    manifest = {"task": task_block(task), "task_config": task.model_dump(mode="json"), "model_spec": f"external:{ext.path.name}",
                "generation": {"history": task.history}, "parser_version": PARSER_VERSION,
                "data": {"source": spec.source, "split": loaded.split, "fingerprint": data_fingerprint(items), "n_items": len(items),
                         "limit": ext.limit, "derive_split": ext.derive_split, "split_seed": ext.split_seed},
                "provenance": provenance(), "created": now()}  # fmt: skip
    refuse_other_run(run, manifest)
    preds = read_external_predictions(ext.path, manifest["model_spec"])
    unknown = set(preds) - {it.item_id for it in items}
    if unknown and ext.limit is not None:  # predictions for items past the limit are left out
        log.info(f"--limit {ext.limit}: {len(unknown)} prediction(s) for items outside the first {len(items)} left out")
        preds = {k: v for k, v in preds.items() if k not in unknown}
    elif unknown:
        raise DataError(f"{ext.path}: {len(unknown)} item id(s) not in {ext.data} ({loaded.split}), e.g. {sorted(unknown)[0]}")
    return task, items, manifest, preds


def folder_predictions(run: RunDir, manifest: dict[str, Any]) -> dict[str, Prediction]:
    """The predictions a run folder holds. A folder scored from --predictions FILE by a kardiabench
    that kept no copy of FILE has none: an error saying how to score it, rather than every item
    scored as "no prediction"."""
    spec = str(manifest.get("model_spec") or "")
    if spec.startswith("external:") and not run.predictions_path.exists():
        raise RunDirError(
            f"{run.path}: holds no copy of the predictions it was scored from ({spec.removeprefix('external:')}, "
            f"by an older kardiabench); score that file again: kardiabench score --predictions FILE --data "
            f"{(manifest.get('data') or {}).get('source')} --output {run.path}"
        )
    return run.read_predictions()


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


# ----------------------------------------------------------------------------- judging


def judge_stage(judging: JudgeOptions, task: Task, items: list[Item], preds: dict[str, Prediction], run: RunDir,
                cache_path: Path | None, progress: bool):  # fmt: skip
    """(JudgeOutcome, note or None), or (None, reason) when rubric metrics are not computed."""
    from kardiabench.scoring.rubric import load_rubric

    if not task.uses_judge:
        return None, f"task {task.name} has no rubric metrics"
    rubric = load_rubric(judging.rubric)
    if not judging.judges:
        outcome, note = saved_outcome(rubric, judging.judge_max_tokens, items, preds, run)
        return (saved_rule(outcome, run, judging.judge_pool) if outcome else None), note
    cfg = judging.config()
    judging.probe()
    cache = Cache(cache_path) if cache_path else None
    try:
        outcome = asyncio.run(run_judges(items, preds, judging.models(), cfg, run, cache, progress=progress))
        outcome = pooled(outcome, judging, items, preds, cfg, run, cache, progress)
    finally:
        if cache is not None:
            cache.close()
    for judge, run_stats in outcome.run_stats.items():
        cost = run_stats.get("cost_usd")
        log.info(f"judge {judge}: {run_stats.get('requests', 0)} requests ({run_stats.get('cached', 0)} from cache, "
                 f"{run_stats.get('failed', 0)} failed), tokens in {run_stats.get('prompt_tokens', 0):,} out "
                 f"{run_stats.get('completion_tokens', 0):,}, cost {'unknown' if cost is None else f'${cost:.4f}'}; "
                 f"unscored: {counts_text(outcome.unscored_by_reason(judge))}")  # fmt: skip
    return outcome, None


def pooled(outcome, judging: JudgeOptions, items: list[Item], preds: dict[str, Prediction], cfg: JudgeConfig,
           run: RunDir, cache: Cache | None, progress: bool):  # fmt: skip
    """The outcome under the chosen pooling rule and, with escalate_to, the stronger judge's
    verdicts on the items the judges disagree on (asked about those items only)."""
    if not judging.escalate_to:
        return dataclasses.replace(outcome, pool=judging.judge_pool)
    threshold = parse_escalate_when(judging.escalate_when)
    ids = disagreeing_items(outcome, threshold)
    strong = dataclasses.replace(judging, judges=(judging.escalate_to,), escalate_to=None).models()
    chosen = [it for it in items if it.item_id in set(ids)]
    if cfg.budget_usd is not None:  # the escalation spends from the same judge limit
        cfg = dataclasses.replace(cfg, budget_usd=cfg.budget_usd - sum(s["cost_usd"] or 0.0 for s in outcome.run_stats.values()))
    extra = asyncio.run(run_judges(chosen, preds, strong, cfg, run, cache, progress=progress)) if chosen else None
    log.info(f"escalation: {len(ids)} of {len(outcome.item_scores)} items to {strong[0].spec} (disagree:{threshold:g})")
    return dataclasses.replace(outcome, pool=judging.judge_pool, judgments=[*outcome.judgments, *(extra.judgments if extra else [])],
                               run_stats={**outcome.run_stats, **(extra.run_stats if extra else {})},
                               escalation=Escalation(strong[0].spec, threshold, tuple(ids)))  # fmt: skip


def saved_rule(outcome, run: RunDir, pool: str):
    """Saved verdicts under `pool` and the escalation run.json recorded when they were made: the
    stronger judge's verdicts replace the pool on its items again, rather than being pooled."""
    recorded = ((run.read_manifest().get("judge") or {}) if run.manifest_path.exists() else {}).get("escalation")
    if not recorded or recorded["judge"] not in outcome.judges:
        return dataclasses.replace(outcome, pool=pool)
    items = tuple(i for i in recorded["items"] if i in outcome.item_scores)
    return dataclasses.replace(outcome, pool=pool, judges=[j for j in outcome.judges if j != recorded["judge"]],
                               escalation=Escalation(recorded["judge"], recorded["threshold"], items))  # fmt: skip


def saved_outcome(rubric, max_tokens: int, items: list[Item], preds: dict[str, Prediction], run: RunDir):
    """The verdicts in DIR/judgments.jsonl made for exactly the predictions now in the folder
    (see judge.matching_verdicts); verdicts made for other predictions are named and ignored."""
    path = run.path / JUDGMENTS
    if not path.exists():
        return None, "no judge given (--judge SPEC)"
    kept, stale = matching_verdicts(load_judgments(path, rubric.version), items, preds, rubric, max_tokens)
    note = None
    if stale:
        note = f"{len(stale)} verdict(s) in {JUDGMENTS} were made for other predictions and are ignored (e.g. {stale[0].item_id})"
        log.warning(f"rubric: {note}")
    if not kept:
        return None, f"{note}; score again with --judge SPEC" if note else "no judge given (--judge SPEC)"
    outcome = outcome_from_judgments(kept)
    log.info(f"rubric: reusing {len(kept)} verdicts of {', '.join(outcome.judges)} from {path}")
    return outcome, note


def counts_text(counts: dict[str, int]) -> str:
    """{"invalid judge output": 3, …} as "invalid judge output ×3, …" (most first), or "none"."""
    return ", ".join(f"{k} ×{n}" for k, n in sorted(counts.items(), key=lambda kv: -kv[1])) or "none"


def judge_failures(outcome) -> list[str]:
    """One readable line per judge that was asked and scored nothing (endpoint down, every reply
    invalid), with the reasons counted and the first detail."""
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


# ----------------------------------------------------------------------------- scoring


def output_folder(run_dir: str | Path | None, predictions: str | Path | None = None, output: str | Path | None = None) -> Path | None:
    """The folder `score` writes to: `output`, else the run folder, else FILE-scored beside the
    predictions FILE."""
    if predictions is not None:
        predictions = Path(predictions)
        return Path(output) if output is not None else predictions.parent / (predictions.stem + "-scored")
    return None if run_dir is None else Path(run_dir)


def scoring_folder(run_dir: str | Path | None, predictions: str | Path | None = None, output: str | Path | None = None) -> RunDir:
    """The folder scoring writes to; created for predictions made elsewhere."""
    folder = output_folder(run_dir, predictions, output)
    if folder is None:
        raise RunDirError("give a run folder, or --predictions FILE with --data SOURCE")
    run = RunDir(folder)
    if predictions is not None:
        run.path.mkdir(parents=True, exist_ok=True)
    return run


def score_folder(run: RunDir, external: ExternalPredictions | None, judging: JudgeOptions, cache_path: Path | None,
                 progress: bool, resamples: int, seed: int, report: bool = False) -> Run:  # fmt: skip
    """Score while holding the folder's lock, so no other process writes it meanwhile (`report`:
    and write report.html for the new results); the folder read back, with `problems` naming the
    judges that scored nothing."""
    with run.lock():
        scored = _score(run, external, judging, cache_path, progress, resamples, seed, report)
        if report:
            from kardiabench.report import write_report

            log.info(f"report → {write_report(run.path)}")
        return scored


def _score(run: RunDir, external: ExternalPredictions | None, judging: JudgeOptions, cache_path: Path | None,
           progress: bool, resamples: int, seed: int, report_follows: bool = False) -> Run:  # fmt: skip
    """Score and replace the folder's scoring files (`_commit`): results.json, items.jsonl,
    summary.md; report.html of an earlier scoring is removed unless `report_follows`."""
    from kardiabench.scoring import score_predictions

    if external is not None:
        task, items, manifest, preds = external_inputs(run, external)
        missing_hint = f"{external.path} has no line for them"
    else:
        task, items, manifest = run_inputs(run)
        preds = folder_predictions(run, manifest)
        spec = str(manifest.get("model_spec") or "")
        missing_hint = f"{spec.removeprefix('external:')} had no line for them" if spec.startswith("external:") else "run generate again to finish them"
    missing = sum(1 for it in items if it.item_id not in preds)
    if missing == len(items) and items:
        log.warning(f"warning: none of the {len(items)} items has a prediction; no metric is computed ({missing_hint})")
    elif missing:
        log.warning(f"warning: {missing} of {len(items)} items have no prediction; they count as wrong ({missing_hint})")
    t0 = time.monotonic()
    outcome, note = judge_stage(judging, task, items, preds, run, cache_path, progress)
    judge_wall_s = round(time.monotonic() - t0, 2)
    report = score_predictions(items, preds, outcome.item_scores if outcome else None, n_resamples=resamples,
                               seed=seed, no_judge_reason=note or "")  # fmt: skip
    results = report.to_dict()
    if "rubric" not in task.metrics:
        results["metrics"] = {k: v for k, v in results["metrics"].items() if k not in RUBRIC_METRICS}
    manifest["judge"] = judge_block(outcome, judge_wall_s) if outcome else None
    manifest["scored"] = now()
    rubric = {"computed": False, "reason": note}
    if outcome:
        rubric = {**outcome.to_dict(), **({"ignored": note} if note else {})}
        families = load_families(judging.families)
        risk = self_preference_risk(manifest.get("model_spec"), outcome.judges, families)
        if risk:
            rubric["self_preference_risk"] = risk
        trained = training_judge_risk((manifest.get("training") or {}).get("judge"), outcome.judges, families)
        if trained:
            rubric["training_judge_risk"] = trained
    if judging.judge_card:
        rubric["judge_card"] = cite_card(Path(judging.judge_card), outcome.judges if outcome else None)
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
    removed = _commit(run, RunManifest.model_validate(manifest), Results.model_validate(full), report.item_rows(),
                      format_summary(full), preds if external is not None else None)  # fmt: skip
    if REPORT in removed and not report_follows:
        log.info(f"removed {run.path / REPORT} of the earlier scoring; `kardiabench report {run.path}` writes one for these results")
    log.info(f"results → {run.path / RESULTS}")
    failures = judge_failures(outcome) if outcome else []
    for line in failures:
        log.error(f"error: {line}")
    return dataclasses.replace(load_run(run.path), problems=failures)


def cite_card(path: Path, judges: Sequence[str] | None) -> dict[str, Any]:
    """What results.json's rubric.judge_card says of a judge reliability card: its judge, date and
    pass/fail summary, and whether it audited the judges that scored this run."""
    try:
        card = json.loads(path.read_text(encoding="utf-8"))
        summary = card["summary"]
        cited = {"path": str(path.resolve()), "judges": list(card["judges"]), "created": card["created"],
                 "rubric_version": card.get("rubric_version"), "passed": bool(summary["passed"]),
                 "failed": list(summary["failed"]), "inconclusive": list(summary.get("inconclusive", [])),
                 "n_checks": summary["n_checks"]}  # fmt: skip
    except FileNotFoundError:
        raise DataError(f"{path}: no such judge card (write one with `kardiabench judge-audit`)") from None
    except (ValueError, KeyError, TypeError) as e:
        raise DataError(f"{path}: not a judge card from `kardiabench judge-audit` ({type(e).__name__}: {e})") from None
    if judges is not None:
        cited["same_judges"] = sorted(cited["judges"]) == sorted(judges)
    return cited


def card_verdict(card: Mapping[str, Any]) -> str:
    """"FAILED (a, b); INCONCLUSIVE (c)" for a cited card that did not pass."""
    parts = [f"FAILED ({', '.join(card['failed'])})"] if card["failed"] else []
    open_ = card.get("inconclusive") or []
    return "; ".join(parts + ([f"INCONCLUSIVE ({', '.join(open_)})"] if open_ else [])) or "FAILED"


def load_families(path: str | None) -> dict[str, str]:
    """The user's family mapping (`--families FILE`), {} when none."""
    if path is None:
        return {}
    try:
        obj = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except yaml.YAMLError as e:
        raise FamiliesError(f"{path}: not valid YAML ({e})") from None
    return check_families(obj, path)


def judge_block(outcome, wall_s: float) -> dict[str, Any]:
    """run.json's `judge`: who judged under which rubric, and the totals of results.json's
    rubric.usage over the judges (tokens and cost of every verdict used, cached ones included)
    with this scoring's judge-stage wall time, so run.json alone says what judging cost; for a
    judge on several replicas, what this scoring asked of each (`replicas`)."""
    esc = outcome.escalation
    usage = [*outcome.usage().values(), *([outcome.judge_usage(esc.judge)] if esc else [])]
    costs = [u["cost_usd"] for u in usage]
    replicas = {judge: stats["replicas"] for judge, stats in outcome.run_stats.items() if stats.get("replicas")}
    return {
        "spec": "+".join(outcome.judges), "judges": list(outcome.judges), "rubric_version": outcome.rubric_version,
        "repeats": outcome.repeats, "requests": sum(u["requests"] for u in usage),
        "prompt_tokens": sum(u["prompt_tokens"] for u in usage), "completion_tokens": sum(u["completion_tokens"] for u in usage),
        "cost_usd": None if any(c is None for c in costs) else sum(costs),
        "served_models": dict(sum((Counter(u["served_models"]) for u in usage), Counter())), "wall_s": wall_s,
        "pool": outcome.pool,
        **({"escalation": {"judge": esc.judge, "threshold": esc.threshold, "items": list(esc.items)}} if esc else {}),
        **verdict_settings(outcome.judgments),
        **({"replicas": replicas} if replicas else {}),
    }  # fmt: skip


def verdict_settings(judgments) -> dict[str, Any]:
    """The judging settings that change scores, as the verdicts used record them (saved verdicts
    reused by a later `score` keep theirs): each judge's endpoint (scheme://host[:port]/path, no
    credentials), show_reasoning, max_tokens, temperature and base seed. A setting the verdicts
    disagree on is the sorted list of its values; None: not recorded (older judgments.jsonl)."""

    def one(values):
        found = sorted(set(values), key=repr)
        return found[0] if len(found) == 1 else found

    by_judge: dict[str, set] = {}
    for j in judgments:
        by_judge.setdefault(j.judge, set()).add(j.endpoint)
    return {
        "endpoints": {judge: one(urls) for judge, urls in sorted(by_judge.items())},
        "show_reasoning": one(j.show_reasoning for j in judgments), "max_tokens": one(j.max_tokens for j in judgments),
        "temperature": one(j.temperature for j in judgments),
        "seed": one(None if j.seed is None else j.seed - j.repeat for j in judgments),
    }  # fmt: skip


def _commit(run: RunDir, manifest: RunManifest, results: Results, rows: list[dict], summary: str,
            preds: dict[str, Prediction] | None) -> list[str]:  # fmt: skip
    """Replace the folder's scoring with a new one, computed and checked in full beforehand: the
    new files are written beside the old ones (NAME.new), the old scoring's files (rundir.SCORED)
    are removed, results.json first, then run.json is written and the new files renamed into
    place, results.json last. However far this gets, the folder never shows old and new files side
    by side: a results.json there is complete and agrees with every other scoring file. `preds`:
    predictions made elsewhere, kept as the folder's predictions.jsonl so that `score DIR` finds
    them again. The names of the old files that the new scoring has no replacement for."""
    staged: dict[str, Path] = {}

    def stage(name: str, write) -> None:
        staged[name] = run.path / f"{name}.new"
        write(staged[name])

    try:
        if preds is not None:
            stage(PREDICTIONS, lambda p: write_jsonl_atomic(p, [pred.to_dict() for pred in preds.values()]))
        stage(ITEMS, lambda p: write_jsonl_atomic(p, rows))
        stage(SUMMARY, lambda p: p.write_text(summary + "\n", encoding="utf-8"))
        stage(RESULTS, results.write)
        removed = [name for name in SCORED if (run.path / name).exists() and name not in staged]
        run.clear_scored()
        manifest.write(run.manifest_path)
        for name in sorted(staged, key=lambda n: n == RESULTS):
            os.replace(staged[name], run.path / name)
    finally:
        for path in staged.values():  # what a failure left unrenamed
            path.unlink(missing_ok=True)
    return removed


def format_summary(results: dict[str, Any]) -> str:
    """A Markdown table of the headline metrics, each with n, unscored and its 95% CI."""
    d = results["data"]
    rows = []
    for name, m in results["metrics"].items():
        if m.get("value") is None:
            rows.append([name, "not computed", m.get("reason", ""), m.get("n", 0), m.get("n_unscored", 0)])
            continue
        ci = f"[{m['ci_low']:.2f}, {m['ci_high']:.2f}]" if m.get("ci_low") is not None else "–"
        rows.append([name, f"{m['value']:.2f}", ci, m["n"], m["n_unscored"]])
    lines = [
        f"## {results['model']} on {results['task']} ({d['source']}, {d.get('split') or 'whole file'})",
        "",
        f"{d.get('n_items')} items in {d.get('n_dialogues')} dialogues (limit: {d.get('limit') or 'none'})",
        "",
        markdown_table(["metric", "value", "95% CI", "n", "unscored"], rows, align="lrlrr"),
    ]
    stats = results.get("statistics") or {}
    if stats:
        lines += ["", f"CIs: {stats.get('method', 'cluster bootstrap')}, {stats.get('n_resamples')} resamples, seed {stats.get('seed')}."]
    rubric = results.get("rubric") or {}
    for judge, family in rubric.get("self_preference_risk") or []:
        lines.append(f"Warning: self-preference risk: judge {judge} is of the evaluated model's family ({family}).")
    for risk in rubric.get("training_judge_risk") or []:
        lines.append(f"Warning: training-judge risk: judge {risk['judge']} is of the family ({risk['family']}) of the judge "
                     f"{risk['training_judge']} the model was trained against.")
    card = rubric.get("judge_card")
    if card:
        verdict = "passed" if card["passed"] else card_verdict(card)
        lines.append(f"Judge card: {', '.join(card['judges'])}, {card['created'][:10]}, {verdict}"
                     + ("" if card.get("same_judges", True) else " (audited other judges than the ones used here)"))
    fc = results["metrics"].get("format_compliance", {})
    n_failed = (fc.get("extra") or {}).get("n_failed")
    if n_failed and fc.get("value") is None:
        lines.append(f"Not computed: {fc.get('reason')}; see run.json.")
    elif n_failed:
        lines.append(f"{n_failed} item(s) failed to generate and count as wrong; see run.json.")
    return "\n".join(lines)




def saved_judgments(folder: Path) -> list:
    """The verdicts in FOLDER/judgments.jsonl (a folder scored without a judge has none: an error)."""
    path = folder / JUDGMENTS
    if not path.exists():
        raise RunDirError(f"{folder}: no {JUDGMENTS}; score the run with --judge first")
    return load_judgments(path)
