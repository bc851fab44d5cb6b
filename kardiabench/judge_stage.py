"""The judge stage of scoring, in the shape of generation: options (`JudgeOptions`) → the judges'
verdicts (judging.run_judges, or the verdicts saved in judgments.jsonl) → a `JudgeOutcome`, pooled
and escalated → what run.json (`judge_block`) and results.json (`rubric_report`) say of it.
score_stage.py calls `judge_stage` and turns the outcome's item scores into metrics.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import os
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from kardiabench.cache import Cache
from kardiabench.data.load import DataError
from kardiabench.judging import judge_usage, load_judgments, matching_verdicts, run_judges
from kardiabench.models import ChatModel, ModelOptions, load_model, parse_spec
from kardiabench.options import check_keywords
from kardiabench.params import BATCH_TIMEOUT_S, ParameterError
from kardiabench.records import Item, Prediction
from kardiabench.runs import JUDGMENTS, JudgeInfo, RunDir, RunDirError, RunManifest
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
    JudgeOutcome,
    Judgment,
    disagreeing_items,
    outcome_from_judgments,
    parse_escalate_when,
)
from kardiabench.scoring.rubric import Rubric, load_rubric
from kardiabench.tasks import Task

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
    # a YAML {pattern: family} tried before scoring/families.py's mapping
    families: str | None = None
    judge_pool: str = "mean"  # how the judges' item scores are pooled (scoring/judge.py POOLS)
    escalate_to: str | None = None  # a stronger judge for the items the judges disagree on
    escalate_when: str = "disagree:1"  # disagree:K: judges differ by ≥ K on some dimension
    judge_batch: bool = False  # first round of openai: judges through the provider's batch API
    # seconds to wait for a judge batch (CLI: --batch-timeout)
    judge_batch_timeout: float | None = BATCH_TIMEOUT_S
    # USD the judges may spend in this command (`run`: what --max-cost leaves)
    judge_max_cost: float | None = None
    judge_timeout: float = 120.0  # seconds per request (openai: judges)
    judge_batch_size: int = 8  # hf: judges
    judge_dtype: str = "auto"  # hf:/vllm: judges
    judge_chat_template: str | None = None  # a Jinja file, for hf:/vllm: judges without a template

    def __post_init__(self) -> None:
        object.__setattr__(
            self, "judges", (self.judges,) if isinstance(self.judges, str) else tuple(self.judges)
        )
        if self.judge_pool not in POOLS:
            raise ParameterError(
                f"judge_pool: must be one of {', '.join(POOLS)}, got {self.judge_pool!r}"
            )
        try:
            parse_escalate_when(self.escalate_when)
        except ValueError as e:
            raise ParameterError(f"escalate_when: {e}") from None
        if self.escalate_to and len(set(self.judges)) < 2:
            raise ParameterError(
                "escalate_to: needs two or more judges whose disagreement decides what is escalated"
            )
        check_keywords(
            judge_api_key_env=self.judge_api_key_env,
            judge_concurrency=self.judge_concurrency,
            judge_repeats=self.judge_repeats,
            judge_max_tokens=self.judge_max_tokens,
            judge_timeout=self.judge_timeout,
            judge_batch_size=self.judge_batch_size,
            judge_batch_timeout=self.judge_batch_timeout,
        )

    def config(self) -> JudgeConfig:
        return JudgeConfig(
            rubric_path=self.rubric,
            show_reasoning=self.judge_show_reasoning,
            repeats=self.judge_repeats,
            max_tokens=self.judge_max_tokens,
            concurrency=self.judge_concurrency,
            batch=self.judge_batch,
            batch_timeout=self.judge_batch_timeout,
            budget_usd=self.judge_max_cost,
        )

    def models(self, require_key: bool = True) -> list[ChatModel]:
        """One model per distinct spec; a judge without its API key fails here (unless require_key
        is False: a dry run sends nothing)."""
        template = (
            Path(self.judge_chat_template).read_text(encoding="utf-8")
            if self.judge_chat_template
            else None
        )
        opts = ModelOptions(
            base_url=self.judge_base_url or os.environ.get("OPENAI_BASE_URL"),
            concurrency=self.judge_concurrency,
            api_key_env=self.judge_api_key_env,
            require_key=require_key,
            timeout=self.judge_timeout,
            batch_size=self.judge_batch_size,
            dtype=self.judge_dtype,
            chat_template=template,
        )
        return [load_model(spec, opts) for spec in dict.fromkeys(self.judges)]

    def probe(self) -> None:
        """Probe the endpoint of every openai: judge, --escalate-to's too (ChatModel.probe): a dead
        one is a FatalModelError before anything is sent. Other judges are not loaded for it."""
        specs = [
            s
            for s in dict.fromkeys([*self.judges, *filter(None, [self.escalate_to])])
            if parse_spec(s)[0] == "openai"
        ]
        if specs:
            for model in dataclasses.replace(self, judges=tuple(specs), escalate_to=None).models():
                model.probe("--judge-base-url")


JUDGE_KEYWORDS = tuple(f.name for f in dataclasses.fields(JudgeOptions))


# ----------------------------------------------------------------------------- the stage


def judge_stage(
    judging: JudgeOptions,
    task: Task,
    items: list[Item],
    preds: dict[str, Prediction],
    run: RunDir,
    cache_path: Path | None,
    progress: bool,
) -> tuple[JudgeOutcome | None, str | None]:
    """(JudgeOutcome, note or None), or (None, reason) when rubric metrics are not computed."""
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
        outcome = asyncio.run(
            run_judges(items, preds, judging.models(), cfg, run, cache, progress=progress)
        )
        outcome = pooled(outcome, judging, items, preds, cfg, run, cache, progress)
    finally:
        if cache is not None:
            cache.close()
    for judge, s in outcome.run_stats.items():
        log.info(
            f"judge {judge}: {s.requests} requests ({s.cached} from cache); "
            f"{judge_usage(s).text()}; unscored: {counts_text(outcome.unscored_by_reason(judge))}"
        )
    return outcome, None


def pooled(
    outcome: JudgeOutcome,
    judging: JudgeOptions,
    items: list[Item],
    preds: dict[str, Prediction],
    cfg: JudgeConfig,
    run: RunDir,
    cache: Cache | None,
    progress: bool,
) -> JudgeOutcome:
    """The outcome under the chosen pooling rule and, with escalate_to, the stronger judge's
    verdicts on the items the judges disagree on (asked about those items only)."""
    if not judging.escalate_to:
        return dataclasses.replace(outcome, pool=judging.judge_pool)
    threshold = parse_escalate_when(judging.escalate_when)
    ids = disagreeing_items(outcome, threshold)
    strong = dataclasses.replace(judging, judges=(judging.escalate_to,), escalate_to=None).models()
    chosen = [it for it in items if it.item_id in set(ids)]
    if cfg.budget_usd is not None:  # the escalation spends from the same judge limit
        cfg = dataclasses.replace(
            cfg,
            budget_usd=cfg.budget_usd - sum(s.cost_usd or 0.0 for s in outcome.run_stats.values()),
        )
    extra = (
        asyncio.run(run_judges(chosen, preds, strong, cfg, run, cache, progress=progress))
        if chosen
        else None
    )
    log.info(
        f"escalation: {len(ids)} of {len(outcome.item_scores)} items to {strong[0].spec} (disagree:{threshold:g})"
    )
    return dataclasses.replace(
        outcome,
        pool=judging.judge_pool,
        judgments=[*outcome.judgments, *(extra.judgments if extra else [])],
        run_stats={**outcome.run_stats, **(extra.run_stats if extra else {})},
        escalation=Escalation(strong[0].spec, threshold, tuple(ids)),
    )


def saved_rule(outcome: JudgeOutcome, run: RunDir, pool: str) -> JudgeOutcome:
    """Saved verdicts under `pool` and the escalation run.json recorded when they were made: the
    stronger judge's verdicts replace the pool on its items again, rather than being pooled."""
    judge = run.read_manifest().judge if run.manifest_path.exists() else None
    recorded = judge.escalation if judge else None
    if not recorded or recorded["judge"] not in outcome.judges:
        return dataclasses.replace(outcome, pool=pool)
    items = tuple(i for i in recorded["items"] if i in outcome.item_scores)
    return dataclasses.replace(
        outcome,
        pool=pool,
        judges=[j for j in outcome.judges if j != recorded["judge"]],
        escalation=Escalation(recorded["judge"], recorded["threshold"], items),
    )


def saved_outcome(
    rubric: Rubric, max_tokens: int, items: list[Item], preds: dict[str, Prediction], run: RunDir
) -> tuple[JudgeOutcome | None, str | None]:
    """The verdicts in DIR/judgments.jsonl made for exactly the predictions now in the folder
    (see judge.matching_verdicts); verdicts made for other predictions are named and ignored."""
    path = run.path / JUDGMENTS
    if not path.exists():
        return None, "no judge given (--judge SPEC)"
    kept, stale = matching_verdicts(
        load_judgments(path, rubric.version), items, preds, rubric, max_tokens
    )
    note = None
    if stale:
        note = f"{len(stale)} verdict(s) in {JUDGMENTS} were made for other predictions and are ignored (e.g. {stale[0].item_id})"
        log.warning(f"rubric: {note}")
    if not kept:
        return (
            None,
            f"{note}; score again with --judge SPEC" if note else "no judge given (--judge SPEC)",
        )
    outcome = outcome_from_judgments(kept)
    log.info(f"rubric: reusing {len(kept)} verdicts of {', '.join(outcome.judges)} from {path}")
    return outcome, note


def counts_text(counts: dict[str, int]) -> str:
    """{"invalid judge output": 3, …} as "invalid judge output ×3, …" (most first), or "none"."""
    return (
        ", ".join(f"{k} ×{n}" for k, n in sorted(counts.items(), key=lambda kv: -kv[1])) or "none"
    )


def judge_failures(outcome: JudgeOutcome) -> list[str]:
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
        lines.append(
            f"judge {judge} scored 0 of {n_items} items: {counts_text(outcome.unscored_by_reason(judge))} (first: {first})"
        )
    return lines


# ----------------------------------------------------------------------------- what run.json and results.json say


def judge_block(outcome: JudgeOutcome, wall_s: float) -> JudgeInfo:
    """run.json's `judge`: who judged under which rubric, and the totals of results.json's
    rubric.usage over the judges (tokens and cost of every verdict used, cached ones included)
    with this scoring's judge-stage wall time, so run.json alone says what judging cost; for a
    judge on several replicas, what this scoring asked of each (`replicas`)."""
    esc = outcome.escalation
    usage = [*outcome.usage().values(), *([outcome.judge_usage(esc.judge)] if esc else [])]
    costs = [u["cost_usd"] for u in usage]
    replicas = {
        judge: stats.replicas for judge, stats in outcome.run_stats.items() if stats.replicas
    }
    return JudgeInfo.model_validate(
        {
            "spec": "+".join(outcome.judges),
            "judges": list(outcome.judges),
            "rubric_version": outcome.rubric_version,
            "repeats": outcome.repeats,
            "requests": sum(u["requests"] for u in usage),
            "prompt_tokens": sum(u["prompt_tokens"] for u in usage),
            "completion_tokens": sum(u["completion_tokens"] for u in usage),
            "cost_usd": None if any(c is None for c in costs) else sum(costs),
            "served_models": dict(sum((Counter(u["served_models"]) for u in usage), Counter())),
            "wall_s": wall_s,
            "pool": outcome.pool,
            **(
                {
                    "escalation": {
                        "judge": esc.judge,
                        "threshold": esc.threshold,
                        "items": list(esc.items),
                    }
                }
                if esc
                else {}
            ),
            **verdict_settings(outcome.judgments),
            **({"replicas": replicas} if replicas else {}),
        }
    )


def verdict_settings(judgments: Sequence[Judgment]) -> dict[str, Any]:
    """The judging settings that change scores, as the verdicts used record them (saved verdicts
    reused by a later `score` keep theirs): each judge's endpoint (scheme://host[:port]/path, no
    credentials), its weights (revision, dtype, chat template of a local judge), show_reasoning,
    max_tokens, temperature and base seed. A setting the verdicts
    disagree on is the sorted list of its values; None: not recorded (older judgments.jsonl)."""

    def one(values):
        found = sorted(set(values), key=repr)
        return found[0] if len(found) == 1 else found

    by_judge: dict[str, set] = {}
    models: dict[str, list] = {}
    for j in judgments:
        by_judge.setdefault(j.judge, set()).add(j.endpoint)
        if j.model is not None and j.model not in models.setdefault(j.judge, []):
            models[j.judge].append(j.model)
    return {
        "endpoints": {judge: one(urls) for judge, urls in sorted(by_judge.items())},
        # a local judge's revision, dtype and chat template hash (a list where verdicts differ)
        **(
            {
                "models": {
                    judge: m[0] if len(m) == 1 else m for judge, m in sorted(models.items()) if m
                }
            }
            if any(models.values())
            else {}
        ),
        "show_reasoning": one(j.show_reasoning for j in judgments),
        "max_tokens": one(j.max_tokens for j in judgments),
        "temperature": one(j.temperature for j in judgments),
        "seed": one(None if j.seed is None else j.seed - j.repeat for j in judgments),
    }


def rubric_report(
    outcome: JudgeOutcome | None, note: str | None, judging: JudgeOptions, manifest: RunManifest
) -> dict[str, Any]:
    """results.json's `rubric`: the judge report (or why there is none), with the risks of the
    judges' families (self-preference, the training judge's family) and the cited judge card."""
    if outcome is None:
        rubric: dict[str, Any] = {"computed": False, "reason": note}
    else:
        rubric = {**outcome.to_dict(), **({"ignored": note} if note else {})}
        families = load_families(judging.families)
        risk = self_preference_risk(manifest.model_spec, outcome.judges, families)
        if risk:
            rubric["self_preference_risk"] = risk
        trained = training_judge_risk(
            (manifest.training or {}).get("judge"), outcome.judges, families
        )
        if trained:
            rubric["training_judge_risk"] = trained
    if judging.judge_card:
        rubric["judge_card"] = cite_card(
            Path(judging.judge_card), outcome.judges if outcome else None
        )
    return rubric


def cite_card(path: Path, judges: Sequence[str] | None) -> dict[str, Any]:
    """What results.json's rubric.judge_card says of a judge reliability card: its judge, date and
    pass/fail summary, and whether it audited the judges that scored this run."""
    try:
        card = json.loads(path.read_text(encoding="utf-8"))
        summary = card["summary"]
        cited = {
            "path": str(path.resolve()),
            "judges": list(card["judges"]),
            "created": card["created"],
            "rubric_version": card.get("rubric_version"),
            "passed": bool(summary["passed"]),
            "failed": list(summary["failed"]),
            "inconclusive": list(summary.get("inconclusive", [])),
            "n_checks": summary["n_checks"],
        }
    except FileNotFoundError:
        raise DataError(
            f"{path}: no such judge card (write one with `kardiabench judge-audit`)"
        ) from None
    except (ValueError, KeyError, TypeError) as e:
        raise DataError(
            f"{path}: not a judge card from `kardiabench judge-audit` ({type(e).__name__}: {e})"
        ) from None
    if judges is not None:
        cited["same_judges"] = sorted(cited["judges"]) == sorted(judges)
    return cited


def card_verdict(card: Mapping[str, Any]) -> str:
    """ "FAILED (a, b); INCONCLUSIVE (c)" for a cited card that did not pass."""
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


def saved_judgments(folder: Path) -> list[Judgment]:
    """The verdicts in FOLDER/judgments.jsonl (a folder scored without a judge has none: an error)."""
    path = folder / JUDGMENTS
    if not path.exists():
        raise RunDirError(f"{folder}: no {JUDGMENTS}; score the run with --judge first")
    return load_judgments(path)
