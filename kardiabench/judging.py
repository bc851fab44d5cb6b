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
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kardiabench.cache import Cache, request_json, request_key
from kardiabench.jsonl import JsonlWriter, iter_jsonl_objects, read_jsonl_tolerant
from kardiabench.models.base import (
    ChatModel,
    ChatRequest,
    Generation,
    Job,
    ModelError,
    SamplingParams,
)
from kardiabench.models.openai_batch import BatchJob
from kardiabench.records import Item, Prediction
from kardiabench.redact import model_endpoint
from kardiabench.runner import RunStats, Usage, request_cost, run_jobs
from kardiabench.runs import JUDGMENTS, RunDir, now
from kardiabench.scoring.agreement import HumanLabelError, agreement_with_humans, human_labels
from kardiabench.scoring.judge import (
    INVALID_OUTPUT,
    REQUEST_FAILED,
    JudgeConfig,
    JudgeOutcome,
    JudgeStats,
    Judgment,
    Status,
    Verdict,
    build_messages,
    candidate_notes,
    candidate_response,
    judge_model_identity,
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
    extra = ChatRequest.from_messages(
        repair_messages(failures, rubric.names), first.params
    ).messages
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
    j: Judgment,
    item: Item,
    pred: Prediction | None,
    rubric: Rubric,
    response_format: dict,
    max_tokens: int,
) -> bool:
    response, why = candidate_response(pred)
    if response is None:
        return j.prompt_hash is None and j.reason == not_sent_reason(pred) and j.detail == why
    if j.prompt_hash is None:
        return False
    cfg = JudgeConfig(
        show_reasoning=j.show_reasoning,
        max_tokens=j.max_tokens or max_tokens,
        seed=0 if j.seed is None else j.seed - j.repeat,
    )
    notes = candidate_notes(pred) if j.show_reasoning else None  # type: ignore[arg-type]
    request = build_request(
        rubric, item, response, cfg, j.repeat, notes, response_format=response_format
    )
    return prompt_hash(request) == j.prompt_hash


def load_outcome(
    run_dir: RunDir | str | Path,
    rubric_version: str | None = None,
    item_ids: Sequence[str] | None = None,
) -> JudgeOutcome:
    folder = run_dir.path if isinstance(run_dir, RunDir) else Path(run_dir)
    return outcome_from_judgments(load_judgments(folder / JUDGMENTS, rubric_version), item_ids)


# --- running --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class JudgeCase:
    """One thing every judge is asked about, `cfg.repeats` times: `build(repeat)` gives the first
    request, or, when `build` is None, nothing is sent and the verdict is unscored for
    `not_sent` = (reason, detail)."""

    case_id: str
    build: Callable[[int], ChatRequest] | None
    not_sent: tuple[str, str] = ("", "")
    response_cut: bool = False


@dataclass(frozen=True)
class Scheme:
    """What a judging stage asks for and how it reads replies: the rubric's 1–5 scores
    (`rubric_scheme`) or pairwise preferences (kardiabench/pairwise_stage.py). `read(text, finish_reason)`
    gives a Verdict; `repair(first, failures)` the request after invalid replies."""

    version: str
    names: tuple[str, ...]
    read: Callable[[str | None, str | None], Verdict]
    repair: Callable[[ChatRequest, Sequence[tuple[str, str]]], ChatRequest]


def rubric_scheme(rubric: Rubric) -> Scheme:
    return Scheme(
        rubric.version,
        rubric.names,
        lambda text, finish: parse_verdict(text, rubric.names, finish),
        lambda first, failures: repair_request(first, failures, rubric),
    )


def rubric_cases(
    rubric: Rubric, items: Sequence[Item], predictions: Mapping[str, Prediction], cfg: JudgeConfig
) -> list[JudgeCase]:
    """One case per item: its response span, or why there is none to send."""
    response_format = rubric.response_format()
    cases = []
    for item in items:
        pred = predictions.get(item.item_id)
        response, why = candidate_response(pred)
        if response is None:
            cases.append(JudgeCase(item.item_id, None, (not_sent_reason(pred), why)))
            continue
        notes = candidate_notes(pred) if cfg.show_reasoning and pred is not None else None

        def build(r: int, item=item, response=response, notes=notes) -> ChatRequest:
            return build_request(
                rubric, item, response, cfg, r, notes, response_format=response_format
            )

        cases.append(JudgeCase(item.item_id, build, response_cut=response_too_long(response)))
    return cases


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

    def request(self, scheme: Scheme) -> ChatRequest:
        return scheme.repair(self.first, self.failures) if self.failures else self.first


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
    cases = rubric_cases(rubric, items, predictions, cfg)
    judgments, specs, run_stats = await judge_cases(
        cases, rubric_scheme(rubric), judges, cfg, run_dir, cache, progress
    )
    return JudgeOutcome(rubric.version, rubric.names, specs, cfg.repeats, judgments, run_stats)


async def judge_cases(
    cases: Sequence[JudgeCase],
    scheme: Scheme,
    judges: Sequence[ChatModel],
    cfg: JudgeConfig,
    run_dir: RunDir,
    cache: Cache | None = None,
    progress: bool = True,
    verdicts: str = JUDGMENTS,
) -> tuple[list[Judgment], list[str], dict[str, JudgeStats]]:
    """Every case judged by every judge, `cfg.repeats` times each, resuming from the verdicts in
    run_dir/`verdicts` (judgments.jsonl) of the scheme's version: (verdicts in judge, case, repeat
    order, judge specs, each judge's request stats of this call)."""
    run_dir.path.mkdir(parents=True, exist_ok=True)
    path = run_dir.path / verdicts
    previous = {j.key: j for j in load_judgments(path, scheme.version)} if path.exists() else {}
    writer = JsonlWriter(path)
    final: dict[tuple[str, str, int], Judgment] = {}
    run_stats: dict[str, JudgeStats] = {}
    unique = list({m.spec: m for m in reversed(judges)}.values())[::-1]  # one model per spec
    try:
        for model in unique:
            spent = sum(s.cost_usd or 0.0 for s in run_stats.values())
            budget = None if cfg.budget_usd is None else cfg.budget_usd - spent
            judge = _JudgeRun(model, cfg, scheme, final, writer)
            run_stats[model.spec] = await _judge_with(
                judge, cases, previous, cache, progress, run_dir, budget
            )
    finally:
        writer.close()
    specs = [m.spec for m in unique]
    ordered = [
        final[k]
        for s in specs
        for c in cases
        for r in range(cfg.repeats)
        if (k := (s, c.case_id, r)) in final
    ]
    return ordered, specs, run_stats


@dataclass
class _JudgeRun:
    """One judge's pass over the cases: its model and settings, what it asks for (`scheme`), where
    its verdicts go (`final` and judgments.jsonl), and what its requests came to."""

    model: ChatModel
    cfg: JudgeConfig
    scheme: Scheme
    final: dict[tuple[str, str, int], Judgment]
    writer: JsonlWriter
    stats: JudgeStats = field(default_factory=JudgeStats)

    @property
    def fields(self) -> dict[str, Any]:
        """What every verdict of this judge records about how it was asked."""
        cfg = self.cfg
        return {
            "judge": self.model.spec,
            "rubric_version": self.scheme.version,
            "show_reasoning": cfg.show_reasoning,
            "max_tokens": cfg.max_tokens,
            "temperature": cfg.temperature,
            "endpoint": model_endpoint(self.model),
            "model": judge_model_identity(self.model.identity()),
        }

    def record(self, j: Judgment) -> None:
        self.final[j.key] = j
        self.writer.write(j.to_dict())

    def finish(self, c: _Case, status: Status, scores: dict, **extra: Any) -> None:
        """The final verdict of a case that was sent."""
        usage = {
            "prompt_tokens": c.prompt_tokens,
            "completion_tokens": c.completion_tokens,
            "cost_usd": c.cost,
        }
        self.record(
            Judgment(
                c.item_id,
                repeat=c.repeat,
                scores=scores,
                status=status,
                attempts=len(c.failures) + 1,
                seed=self.cfg.seed + c.repeat,
                prompt_hash=c.phash,
                usage=usage,
                cached=c.all_cached,
                response_cut=c.response_cut,
                served_model=c.served_model,
                created=now(),
                **self.fields,
                **extra,
            )
        )

    def not_sent(self, case_id: str, repeat: int, reason: str, why: str | None) -> None:
        """The verdict of a case with nothing to judge: unscored, its reason counted."""
        self.record(
            Judgment(
                case_id,
                repeat=repeat,
                scores=dict.fromkeys(self.scheme.names),
                status="unscored",
                reason=reason,
                detail=why,
                seed=self.cfg.seed + repeat,
                usage=dict(_NO_USAGE),
                created=now(),
                **self.fields,
            )
        )


async def _judge_with(
    judge: _JudgeRun,
    cases: Sequence[JudgeCase],
    previous: Mapping[tuple[str, str, int], Judgment],
    cache: Cache | None,
    progress: bool,
    run_dir: RunDir,
    budget_usd: float | None,
) -> JudgeStats:
    """One judge over all cases and repeats, in rounds: the first requests, then the repairs of
    the invalid replies. With cfg.batch, the first round goes through the provider's batch API
    (repairs are ordinary requests)."""
    pending = _cases(judge, cases, previous)
    round_no = 0
    while pending:
        batch = (
            BatchJob(run_dir, f"judge:{judge.model.spec}", timeout=judge.cfg.batch_timeout)
            if judge.cfg.batch and round_no == 0
            else None
        )
        left = None if budget_usd is None else budget_usd - (judge.stats.cost_usd or 0.0)
        pending = await _round(judge, pending, round_no, cache, progress, batch, left)
        round_no += 1
    replicas = judge.model.replica_usage()  # several --judge-base-url: what each replica was asked
    if replicas:
        judge.stats.replicas = replicas
    return judge.stats


def _cases(
    judge: _JudgeRun, cases: Sequence[JudgeCase], previous: Mapping[tuple[str, str, int], Judgment]
) -> list[_Case]:
    """The (case, repeat) requests to send. A case with nothing to judge is recorded unscored at
    once; a saved verdict for the same request is reused (unless its request failed)."""
    cfg, spec = judge.cfg, judge.model.spec
    identity = judge.model.identity()
    weights = judge_model_identity(identity)  # a verdict of other weights/dtype is asked again
    shared: dict[str, str] = {}
    pending: list[_Case] = []
    for case in cases:
        for r in range(cfg.repeats):
            key = (spec, case.case_id, r)
            prev = previous.get(key)
            if case.build is None:
                reason, why = case.not_sent
                if prev is not None and (prev.reason, prev.detail, prev.model) == (
                    reason,
                    why,
                    weights,
                ):
                    judge.final[key] = prev
                else:
                    judge.not_sent(case.case_id, r, reason, why)
                continue
            first = _share_texts(case.build(r), shared)
            material = request_json(first)
            phash = prompt_hash(first, material)
            if (
                prev is not None
                and prev.prompt_hash == phash
                and prev.model == weights
                and prev.reason != REQUEST_FAILED
            ):
                judge.final[key] = prev
                judge.stats.reused_verdicts += 1
                continue
            pending.append(
                _Case(
                    case.case_id,
                    r,
                    first,
                    phash,
                    request_key(identity, first, material),
                    case.response_cut,
                )
            )
    return pending


async def _round(
    judge: _JudgeRun,
    pending: Sequence[_Case],
    round_no: int,
    cache: Cache | None,
    progress: bool,
    batch: BatchJob | None,
    budget_usd: float | None,
) -> list[_Case]:
    """Send one round of requests; the cases whose invalid reply earns another attempt."""
    jobs = [
        Job(
            f"{c.item_id}#r{c.repeat}", c.request(judge.scheme), None if c.failures else c.cache_key
        )
        for c in pending
    ]
    by_key = {job.key: c for job, c in zip(jobs, pending, strict=True)}
    retry: list[_Case] = []

    def on_result(job: Job, out: Generation | ModelError, cached: bool) -> None:
        if _read_reply(judge, by_key[job.key], out, cached):
            retry.append(by_key[job.key])

    spec = judge.model.spec
    rs = await run_jobs(
        judge.model,
        jobs,
        on_result=on_result,
        cache=cache,
        concurrency=judge.cfg.concurrency,
        progress=progress,
        desc=f"judge {spec}" if round_no == 0 else f"judge {spec} repair {round_no}",
        batch=batch,
        budget_usd=budget_usd,
        shown_before=judge_usage(judge.stats),
    )
    _add_round(judge.stats, rs)
    return retry


def _read_reply(judge: _JudgeRun, c: _Case, out: Generation | ModelError, cached: bool) -> bool:
    """Record the case's verdict from one reply; True when the reply was invalid and the case
    gets a repair attempt (the invalid reply and what was wrong join its conversation)."""
    names = judge.scheme.names
    if isinstance(out, ModelError):
        c.all_cached = False
        judge.finish(c, "unscored", dict.fromkeys(names), reason=REQUEST_FAILED, detail=str(out))
        return False
    c.all_cached = c.all_cached and cached
    c.served_model = out.served_model
    c.prompt_tokens += out.prompt_tokens
    c.completion_tokens += out.completion_tokens
    cost = request_cost(judge.model, out)
    c.cost = None if cost is None or c.cost is None else c.cost + cost
    verdict = judge.scheme.read(out.text, out.finish_reason)
    if verdict.scores is not None:
        judge.finish(c, "scored", dict(verdict.scores), raw=out.text, rationale=verdict.rationale)
        return False
    if len(c.failures) < judge.cfg.max_repairs:
        c.failures.append((out.text, verdict.error or "invalid"))
        return True
    judge.finish(
        c,
        "unscored",
        dict.fromkeys(names),
        reason=INVALID_OUTPUT,
        detail=verdict.error,
        raw=out.text,
        rationale=verdict.rationale,
    )
    return False


def _add_round(stats: JudgeStats, rs: RunStats) -> None:
    """One round's requests (the runner's RunStats) added to the judge's totals."""
    stats.rounds += 1
    stats.requests += rs.total
    stats.cached += rs.cached
    stats.failed += rs.failed
    stats.prompt_tokens += rs.prompt_tokens
    stats.completion_tokens += rs.completion_tokens
    stats.cost_usd = (
        None if rs.cost_usd is None or stats.cost_usd is None else stats.cost_usd + rs.cost_usd
    )
    stats.wall_s += rs.wall_s


def judge_usage(stats: JudgeStats) -> Usage:
    """The usage in one judge's run statistics (`JudgeOutcome.run_stats[spec]`), all rounds: the
    progress bar of a repair round starts from it, so its last numbers are the judge's summary."""
    return Usage(stats.prompt_tokens, stats.completion_tokens, stats.cost_usd, stats.failed)


# --- human labels ---------------------------------------------------------------------------------


def load_human_labels(
    path: str | Path, dims: Sequence[str] = DIMENSIONS
) -> dict[str, dict[str, int]]:
    """A human label file (JSONL, one row per item; see scoring.agreement.human_labels)."""
    p = Path(path)
    if not p.is_file():
        raise HumanLabelError(f"{p}: human label file not found")
    return human_labels(iter_jsonl_objects(p, HumanLabelError), str(p), dims)


def judge_agreement(
    human_file: str | Path, judgments: Any, dims: Sequence[str] = DIMENSIONS
) -> dict[str, Any]:
    """Agreement of each judge with the human labels in `human_file` (see
    scoring.agreement.agreement_with_humans)."""
    report = agreement_with_humans(load_human_labels(human_file, dims), judgments, dims)
    return {"human_file": str(human_file), **report}
