"""Running the rubric judge: one verdict per (judge, item, repeat), validated, repaired, resumable.
The prompt, the reading of replies and the aggregate are pure (kardiabench/scoring/judge.py); this
module sends requests to models and keeps verdicts in files.

Flow for each judge model (any `ChatModel`: openai:, vllm:, hf:):
  1. For every item and repeat, render the case into the rubric's template (`build_request`).
     Items with no response span are not sent: they are recorded as unscored, reason
     "no response span" ("no prediction" when the item has none), and counted (never a silent
     1 or 5).
  2. Send the requests through `run_jobs` (same cache, retries and progress as generation), at
     temperature 0 with seed = cfg.seed + repeat, asking for JSON through `response_format`.
  3. Read each reply (`parse_verdict`). An invalid reply gets up to `max_repairs` more attempts,
     each a new request (the conversation so far + the invalid reply + what was wrong:
     `repair_request`), so the cache never hands the same bad answer back. After that the verdict
     is unscored with the raw text and the reason.
  4. Each final verdict is appended to DIR/judgments.jsonl at once. Running again reuses every
     verdict whose judge, rubric version, repeat and request are unchanged (request failures are
     retried).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kardiabench.cache import Cache, request_json, request_key
from kardiabench.jsonl import JsonlWriter, iter_jsonl_objects, read_jsonl_tolerant
from kardiabench.models.base import ChatModel, ChatRequest, Generation, ModelError, SamplingParams
from kardiabench.models.openai_batch import BatchJob
from kardiabench.records import Item, Prediction
from kardiabench.redact import model_endpoint
from kardiabench.rundir import JUDGMENTS, RunDir, now
from kardiabench.runner import Job, Usage, request_cost, run_jobs
from kardiabench.scoring.agreement import HumanLabelError, agreement_with_humans, human_labels
from kardiabench.scoring.judge import (
    INVALID_OUTPUT,
    REQUEST_FAILED,
    JudgeConfig,
    JudgeOutcome,
    Judgment,
    Status,
    build_messages,
    candidate_notes,
    candidate_response,
    not_sent_reason,
    outcome_from_judgments,
    parse_verdict,
    repair_messages,
    response_too_long,
)
from kardiabench.scoring.rubric import DIMENSIONS, Rubric, load_rubric

_NO_USAGE = {"prompt_tokens": 0, "completion_tokens": 0, "cost_usd": 0.0}


# --- requests -------------------------------------------------------------------------------------


def sampling_params(cfg: JudgeConfig, repeat: int) -> SamplingParams:
    """The judge's decoding for one repeat: cfg.temperature, top_p 1, seed cfg.seed + repeat."""
    return SamplingParams(
        temperature=cfg.temperature,
        top_p=1.0,
        max_tokens=cfg.max_tokens,
        seed=cfg.seed + repeat,
    )


def build_request(
    rubric: Rubric,
    item: Item,
    response: str,
    cfg: JudgeConfig,
    repeat: int = 0,
    notes: str | None = None,
    *,
    response_format: dict | None = None,
) -> ChatRequest:
    """The first judge request for one item and repeat (the GRPO rubric reward builds the same).
    response_format: `rubric.response_format()` when the caller already built it (it is the same
    for every item)."""
    msgs = build_messages(rubric, item, response, notes if cfg.show_reasoning else None)
    rf = rubric.response_format() if response_format is None else response_format
    return ChatRequest.from_messages(msgs, sampling_params(cfg, repeat), rf)


def repair_request(
    first: ChatRequest, failures: Sequence[tuple[str, str]], rubric: Rubric
) -> ChatRequest:
    """The first request plus, for each invalid reply so far, that reply and what was wrong."""
    extra = ChatRequest.from_messages(repair_messages(failures, rubric.names), first.params).messages
    return ChatRequest((*first.messages, *extra), first.params, first.response_format)


def prompt_hash(request: ChatRequest, material: str | None = None) -> str:
    """16 hex of SHA-256 over the request's canonical JSON (`material`, when already computed)."""
    blob = request_json(request) if material is None else material
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()[:16]


# --- loading verdicts back ------------------------------------------------------------------------


def load_judgments(
    path: str | Path, rubric_version: str | None = None, judges: Iterable[str] | None = None
) -> list[Judgment]:
    """The latest verdict per (judge, item, repeat) in a judgments.jsonl, for one rubric version.
    With rubric_version None the file must hold a single version (else ValueError naming them)."""
    rows = [Judgment.from_dict(r) for r in read_jsonl_tolerant(Path(path))]
    versions = sorted({r.rubric_version for r in rows})
    if rubric_version is None and len(versions) > 1:
        raise ValueError(
            f"{path}: verdicts of several rubric versions ({', '.join(versions)}); choose one"
        )
    wanted = set(judges) if judges is not None else None
    latest: dict[tuple[str, str, int], Judgment] = {}
    for r in rows:
        if (rubric_version is None or r.rubric_version == rubric_version) and (
            wanted is None or r.judge in wanted
        ):
            latest[r.key] = r
    return list(latest.values())


def matching_verdicts(
    judgments: Iterable[Judgment],
    items: Sequence[Item],
    predictions: Mapping[str, Prediction],
    rubric: Rubric,
    max_tokens: int,
) -> tuple[list[Judgment], list[Judgment]]:
    """Split saved verdicts on `items` into those made for exactly the current predictions (kept)
    and those made for other ones (stale: the prediction, rubric text or prompt changed since).
    A verdict is kept when the first request for the current prediction, rebuilt with the
    verdict's own settings, has its prompt_hash; a verdict made without asking the judge, when the
    prediction still gives the same reason and detail. `max_tokens` stands in for verdicts written
    before they recorded theirs. Verdicts on other items are in neither list."""
    by_id = {it.item_id: it for it in items}
    response_format = rubric.response_format()
    kept: list[Judgment] = []
    stale: list[Judgment] = []
    for j in judgments:
        item = by_id.get(j.item_id)
        if item is not None:
            pred = predictions.get(j.item_id)
            made_for = _made_for(j, item, pred, rubric, response_format, max_tokens)
            (kept if made_for else stale).append(j)
    return kept, stale


def _made_for(
    j: Judgment, item: Item, pred: Prediction | None, rubric: Rubric, response_format: dict, max_tokens: int
) -> bool:
    response, why = candidate_response(pred)
    if response is None:
        return j.prompt_hash is None and j.reason == not_sent_reason(pred) and j.detail == why
    if j.prompt_hash is None:
        return False
    cfg = JudgeConfig(show_reasoning=j.show_reasoning, max_tokens=j.max_tokens or max_tokens,
                      seed=0 if j.seed is None else j.seed - j.repeat)  # fmt: skip
    notes = candidate_notes(pred) if j.show_reasoning else None  # type: ignore[arg-type]
    request = build_request(rubric, item, response, cfg, j.repeat, notes, response_format=response_format)
    return prompt_hash(request) == j.prompt_hash


def load_outcome(
    run_dir: RunDir | str | Path,
    rubric_version: str | None = None,
    item_ids: Sequence[str] | None = None,
) -> JudgeOutcome:
    folder = run_dir.path if isinstance(run_dir, RunDir) else Path(run_dir)
    return outcome_from_judgments(load_judgments(folder / JUDGMENTS, rubric_version), item_ids)


# --- running --------------------------------------------------------------------------------------


@dataclass
class _Case:
    item_id: str
    repeat: int
    first: ChatRequest
    phash: str
    cache_key: str  # request_key of `first`, made with phash from one encoding of the request
    response_cut: bool
    failures: list[tuple[str, str]] = field(default_factory=list)
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost: float | None = 0.0
    all_cached: bool = True
    served_model: str | None = None

    def request(self, rubric: Rubric) -> ChatRequest:
        return repair_request(self.first, self.failures, rubric) if self.failures else self.first


def _share_texts(request: ChatRequest, shared: dict[str, str]) -> ChatRequest:
    """The request with every message text but the last (the case) replaced by the one copy in
    `shared`: the system prompt (~9k characters, the rubric) is rendered afresh for each item, and
    20k pending requests would otherwise hold 20k copies of it (~180 MB)."""
    *head, last = request.messages
    messages = (*((role, shared.setdefault(text, text)) for role, text in head), last)
    return ChatRequest(messages, request.params, request.response_format)


async def run_judges(
    items: Sequence[Item],
    predictions: Mapping[str, Prediction],
    judges: Sequence[ChatModel],
    cfg: JudgeConfig,
    run_dir: RunDir,
    cache: Cache | None = None,
    progress: bool = True,
) -> JudgeOutcome:
    """Judge every item's prediction with every judge, `cfg.repeats` times each; resume from the
    verdicts already in run_dir/judgments.jsonl. Raises FatalModelError (after writing every
    finished verdict) when a judge cannot answer at all."""
    rubric = load_rubric(cfg.rubric_path)
    run_dir.path.mkdir(parents=True, exist_ok=True)
    path = run_dir.path / JUDGMENTS
    previous = {j.key: j for j in load_judgments(path, rubric.version)} if path.exists() else {}
    writer = JsonlWriter(path)
    final: dict[tuple[str, str, int], Judgment] = {}
    run_stats: dict[str, dict[str, Any]] = {}
    unique = list({m.spec: m for m in reversed(judges)}.values())[::-1]  # one model per spec
    try:
        for model in unique:
            spent = sum(s["cost_usd"] or 0.0 for s in run_stats.values())
            budget = None if cfg.budget_usd is None else cfg.budget_usd - spent
            run_stats[model.spec] = await _judge_with(
                model, items, predictions, cfg, rubric, previous, final, writer, cache, progress, run_dir, budget
            )
    finally:
        writer.close()
    specs = [m.spec for m in unique]
    ordered = [
        final[(s, it.item_id, r)]
        for s in specs
        for it in items
        for r in range(cfg.repeats)
        if (s, it.item_id, r) in final
    ]
    return JudgeOutcome(rubric.version, rubric.names, specs, cfg.repeats, ordered, run_stats)


async def _judge_with(
    model: ChatModel,
    items: Sequence[Item],
    predictions: Mapping[str, Prediction],
    cfg: JudgeConfig,
    rubric: Rubric,
    previous: Mapping[tuple[str, str, int], Judgment],
    final: dict[tuple[str, str, int], Judgment],
    writer: JsonlWriter,
    cache: Cache | None,
    progress: bool,
    run_dir: RunDir,
    budget_usd: float | None,
) -> dict[str, Any]:
    """One judge over all items and repeats; verdicts go to `final` and the file. With cfg.batch,
    the first round goes through the provider's batch API (repairs are ordinary requests)."""
    spec = model.spec
    base = {"judge": spec, "rubric_version": rubric.version, "show_reasoning": cfg.show_reasoning,
            "max_tokens": cfg.max_tokens, "temperature": cfg.temperature, "endpoint": model_endpoint(model)}  # fmt: skip
    stats = {"requests": 0, "cached": 0, "failed": 0, "reused_verdicts": 0, "prompt_tokens": 0,
             "completion_tokens": 0, "cost_usd": 0.0, "wall_s": 0.0, "rounds": 0}  # fmt: skip

    def record(j: Judgment) -> None:
        final[j.key] = j
        writer.write(j.to_dict())

    pending: list[_Case] = []
    response_format = rubric.response_format()
    identity = model.identity()
    shared: dict[str, str] = {}
    for item in items:
        pred = predictions.get(item.item_id)
        response, why = candidate_response(pred)
        notes = (
            candidate_notes(pred) if cfg.show_reasoning and pred is not None and response else None
        )
        for r in range(cfg.repeats):
            key = (spec, item.item_id, r)
            prev = previous.get(key)
            if response is None:
                if prev is not None and prev.reason == not_sent_reason(pred) and prev.detail == why:
                    final[key] = prev
                else:
                    record(Judgment(item.item_id, repeat=r, scores=dict.fromkeys(rubric.names), status="unscored",
                                    reason=not_sent_reason(pred), detail=why, seed=cfg.seed + r, usage=dict(_NO_USAGE), created=now(), **base))  # fmt: skip
                continue
            first = _share_texts(
                build_request(rubric, item, response, cfg, r, notes, response_format=response_format), shared
            )
            material = request_json(first)
            phash = prompt_hash(first, material)
            if prev is not None and prev.prompt_hash == phash and prev.reason != REQUEST_FAILED:
                final[key] = prev
                stats["reused_verdicts"] += 1
                continue
            pending.append(_Case(item.item_id, r, first, phash, request_key(identity, first, material),
                                 response_too_long(response)))

    round_no = 0
    while pending:
        jobs = [Job(f"{c.item_id}#r{c.repeat}", c.request(rubric), None if c.failures else c.cache_key)
                for c in pending]  # fmt: skip
        by_key = {job.key: c for job, c in zip(jobs, pending, strict=True)}
        retry: list[_Case] = []

        def on_result(
            job: Job, out: Generation | ModelError, cached: bool, by_key=by_key, retry=retry
        ) -> None:
            c = by_key[job.key]
            attempts = len(c.failures) + 1

            def finish(status: Status, scores: dict, **extra: Any) -> None:
                usage = {
                    "prompt_tokens": c.prompt_tokens,
                    "completion_tokens": c.completion_tokens,
                    "cost_usd": c.cost,
                }
                record(Judgment(c.item_id, repeat=c.repeat, scores=scores, status=status, attempts=attempts,
                                seed=cfg.seed + c.repeat, prompt_hash=c.phash, usage=usage, cached=c.all_cached,
                                response_cut=c.response_cut, served_model=c.served_model, created=now(), **base, **extra))  # fmt: skip

            if isinstance(out, ModelError):
                c.all_cached = False
                finish(
                    "unscored", dict.fromkeys(rubric.names), reason=REQUEST_FAILED, detail=str(out)
                )
                return
            c.all_cached = c.all_cached and cached
            c.served_model = out.served_model
            c.prompt_tokens += out.prompt_tokens
            c.completion_tokens += out.completion_tokens
            cost = request_cost(model, out)
            c.cost = None if cost is None or c.cost is None else c.cost + cost
            verdict = parse_verdict(out.text, rubric.names, out.finish_reason)
            if verdict.scores is not None:
                finish("scored", dict(verdict.scores), raw=out.text, rationale=verdict.rationale)
            elif len(c.failures) < cfg.max_repairs:
                c.failures.append((out.text, verdict.error or "invalid"))
                retry.append(c)
            else:
                finish("unscored", dict.fromkeys(rubric.names), reason=INVALID_OUTPUT, detail=verdict.error,
                       raw=out.text, rationale=verdict.rationale)  # fmt: skip

        desc = f"judge {spec}" if round_no == 0 else f"judge {spec} repair {round_no}"
        rs = await run_jobs(
            model,
            jobs,
            on_result=on_result,
            cache=cache,
            concurrency=cfg.concurrency,
            progress=progress,
            desc=desc,
            batch=BatchJob(run_dir, f"judge:{spec}", timeout=cfg.batch_timeout) if cfg.batch and round_no == 0 else None,
            budget_usd=None if budget_usd is None else budget_usd - (stats["cost_usd"] or 0.0),
            shown_before=judge_usage(stats),
        )
        stats["rounds"] += 1
        stats["requests"] += rs.total
        stats["cached"] += rs.cached
        stats["failed"] += rs.failed
        stats["prompt_tokens"] += rs.prompt_tokens
        stats["completion_tokens"] += rs.completion_tokens
        stats["cost_usd"] = (
            None
            if rs.cost_usd is None or stats["cost_usd"] is None
            else stats["cost_usd"] + rs.cost_usd
        )
        stats["wall_s"] += rs.wall_s
        pending = retry
        round_no += 1
    replicas = model.replica_usage()  # several --judge-base-url: what each replica was asked
    if replicas:
        stats["replicas"] = replicas
    return stats


def judge_usage(stats: Mapping[str, Any]) -> Usage:
    """The usage in one judge's run statistics (`JudgeOutcome.run_stats[spec]`), all rounds."""
    return Usage(stats.get("prompt_tokens", 0), stats.get("completion_tokens", 0), stats.get("cost_usd"),
                 stats.get("failed", 0))  # fmt: skip


# --- human labels ---------------------------------------------------------------------------------


def load_human_labels(path: str | Path, dims: Sequence[str] = DIMENSIONS) -> dict[str, dict[str, int]]:
    """A human label file (JSONL, one row per item; see scoring.agreement.human_labels)."""
    p = Path(path)
    if not p.is_file():
        raise HumanLabelError(f"{p}: human label file not found")
    return human_labels(iter_jsonl_objects(p, HumanLabelError), str(p), dims)


def judge_agreement(human_file: str | Path, judgments: Any, dims: Sequence[str] = DIMENSIONS) -> dict[str, Any]:
    """Agreement of each judge with the human labels in `human_file` (see
    scoring.agreement.agreement_with_humans)."""
    report = agreement_with_humans(load_human_labels(human_file, dims), judgments, dims)
    return {"human_file": str(human_file), **report}
