"""The rubric judge: one verdict per (judge, item, repeat), validated, repaired, resumable.

Flow for each judge model (any `ChatModel`: openai:, vllm:, hf:):
  1. For every item and repeat, render the case into the rubric's template (`build_request`).
     Items with no response span are not sent: they are recorded as unscored, reason
     "no response span" ("no prediction" when the item has none), and counted (never a silent
     1 or 5).
  2. Send the requests through `run_jobs` (same cache, retries and progress as generation), at
     temperature 0 with seed = cfg.seed + repeat, asking for JSON through `response_format`.
  3. Read each reply (`parse_verdict`): the whole reply as one JSON object, else the one verdict
     its verdict-shaped objects agree on (`extract_json_object`), every dimension an integer
     1..5. An invalid reply gets up to `max_repairs` more attempts, each a new request
     (the conversation so far + the invalid reply + what was wrong), so the cache never hands the
     same bad answer back. After that the verdict is unscored with the raw text and the reason.
  4. Each final verdict is appended to DIR/judgments.jsonl at once. Running again reuses every
     verdict whose judge, rubric version, repeat and request are unchanged (request failures are
     retried).

The judge sees the profile, the situation, the dialogue so far (earlier assistant turns as their
response span only), the latest user message and the candidate's response span (at most
MAX_RESPONSE_CHARS of it, a cut marked and counted), each in its own delimiter block; the
candidate's understanding and reasoning only with `show_reasoning=True`.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

from kardiabench.cache import Cache, request_json, request_key
from kardiabench.models.base import ChatModel, ChatRequest, Generation, ModelError, SamplingParams
from kardiabench.records import Item, Message, Prediction
from kardiabench.rundir import JsonlWriter, RunDir, now, read_jsonl_tolerant
from kardiabench.runner import Job, request_cost, run_jobs
from kardiabench.scoring.agreement import first_scored, inter_judge_agreement, repeat_variance
from kardiabench.scoring.rubric import DIMENSIONS, FENCE, Rubric, coerce_score, load_rubric
from kardiabench.spans import parse_spans, strip_think

JUDGMENTS = "judgments.jsonl"
DEFAULT_JUDGE = "openai:gpt-5-mini"  # the paper's evaluation judge
# Reasons a verdict is unscored; stable strings (they are counted in results files).
NO_PREDICTION = "no prediction"
NO_RESPONSE = "no response span"
INVALID_OUTPUT = "invalid judge output"
REQUEST_FAILED = "judge request failed"
UNSCORED_REASONS = (NO_PREDICTION, NO_RESPONSE, INVALID_OUTPUT, REQUEST_FAILED)
NOT_SENT = (NO_PREDICTION, NO_RESPONSE)  # reasons of verdicts made without asking the judge
_REPAIR_RAW_CHARS = 2000  # how much of an invalid reply is quoted back in a repair request
# The most characters of a response span the judge is shown (the paper's responses are ~30 words,
# ~200 characters); a longer one is cut, marked as cut in the prompt and counted (n_responses_cut).
MAX_RESPONSE_CHARS = 2000
Status = Literal["scored", "unscored"]
_NO_USAGE = {"prompt_tokens": 0, "completion_tokens": 0, "cost_usd": 0.0}


@dataclass(frozen=True, slots=True)
class JudgeConfig:
    rubric_path: str | None = None  # None: judges/rubric.yaml
    show_reasoning: bool = False  # also show the candidate's understanding and reasoning spans
    repeats: int = 1  # verdicts per item and judge (seeds seed .. seed + repeats - 1)
    # Room for reasoning judges (gpt-5-mini, Qwen3 thinking) whose hidden reasoning counts
    # against the limit; a non-reasoning judge stops after ~100 tokens whatever the limit.
    max_tokens: int = 4096
    max_repairs: int = 2  # extra attempts after an invalid reply
    seed: int = 0
    temperature: float = 0.0
    concurrency: int | None = None  # None: the adapter's own limit

    def __post_init__(self) -> None:
        if self.repeats < 1:
            raise ValueError("repeats must be at least 1")
        if self.max_repairs < 0:
            raise ValueError("max_repairs must be 0 or more")
        if self.max_tokens < 1:
            raise ValueError("max_tokens must be positive")

    def params(self, repeat: int) -> SamplingParams:
        return SamplingParams(
            temperature=self.temperature,
            top_p=1.0,
            max_tokens=self.max_tokens,
            seed=self.seed + repeat,
        )


@dataclass(slots=True)
class Judgment:
    """One line of judgments.jsonl."""

    item_id: str
    judge: str  # the judge's model spec
    repeat: int
    scores: dict[str, int | None]
    status: Status
    rubric_version: str
    reason: str | None = None  # one of UNSCORED_REASONS when unscored
    detail: str | None = None  # what exactly was wrong
    raw: str | None = None  # the judge's final raw reply
    rationale: str | None = None
    attempts: int = 0  # requests made (0 when not sent)
    seed: int | None = None
    prompt_hash: str | None = None  # 16 hex of the first request; None when not sent
    show_reasoning: bool = False
    max_tokens: int | None = None  # the judge's token limit (part of prompt_hash); None in old files
    usage: dict[str, float | None] = field(default_factory=dict)  # summed over attempts
    cached: bool = False  # every attempt came from the cache
    response_cut: bool = False  # the judge saw only MAX_RESPONSE_CHARS of a longer response
    created: str = ""

    def to_row(self) -> dict[str, Any]:
        # What asdict gives (the fields are flat, the two dicts hold numbers), without its deep
        # copy: one row per verdict, so it adds up over a full test split.
        row = {name: getattr(self, name) for name in _JUDGMENT_FIELDS}
        row["scores"], row["usage"] = dict(self.scores), dict(self.usage)
        return row

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> Judgment:
        return cls(**{k: v for k, v in row.items() if k in cls.__dataclass_fields__})

    @property
    def key(self) -> tuple[str, str, int]:
        return (self.judge, self.item_id, self.repeat)


_JUDGMENT_FIELDS = tuple(Judgment.__dataclass_fields__)


@dataclass(frozen=True, slots=True)
class Verdict:
    scores: dict[str, int] | None  # None when invalid
    rationale: str | None = None
    error: str | None = None


# --- rendering a case -----------------------------------------------------------------------------


def neutralise(text: str) -> str:
    """Break every run of three or more '<' or '>' so data can never open or close a delimiter
    block (`<<<` becomes `< < <`). Nothing else is changed."""
    if "<<<" not in text and ">>>" not in text:  # nearly always: skip the two regex passes
        return text
    text = re.sub(r"<{3,}", lambda m: " ".join(m.group()), text)
    return re.sub(r">{3,}", lambda m: " ".join(m.group()), text)


def fence(name: str, text: str) -> str:
    """A delimiter block the judge is told to treat as data."""
    return f"<<<{name}_{FENCE}\n{neutralise(text.strip())}\n{name}_{FENCE}>>>"


def candidate_response(pred: Prediction | None) -> tuple[str | None, str]:
    """The response span to judge, or (None, why not)."""
    if pred is None:
        return None, "no prediction for this item"
    if pred.error:
        return None, f"generation failed: {pred.error}"
    response = pred.spans.get("response")
    if response is None or not response.strip():
        return (
            None,
            "the output has no response span" if response is None else "the response span is empty",
        )
    return response.strip(), ""


def candidate_notes(pred: Prediction) -> str:
    """The candidate's understanding and reasoning spans, for show_reasoning runs."""
    spans = pred.spans
    parts = [
        f"{name.capitalize()}: {spans[name].strip()}"
        for name in ("understanding", "reasoning")
        if (spans.get(name) or "").strip()
    ]
    return "\n".join(parts)


def history_text(history: Sequence[Message]) -> str:
    """Earlier turns as 'User:' / 'Assistant:' lines. An assistant turn shows its response span
    only: that is what the user read; its understanding, reasoning and emotion spans are the gold
    annotations of the data (the history is the reference dialogue, not the candidate's own
    earlier outputs), would lengthen the prompt several-fold and would hand the judge a model's
    analysis to agree with. A turn without span tags (history mode "response") is shown as is."""
    lines = []
    for m in history:
        if m.role == "user":
            lines.append(f"User: {m.content.strip()}")
        elif m.role == "assistant":
            lines.append(f"Assistant: {_shown_turn(m.content)}")
    return "\n\n".join(lines)


@lru_cache(maxsize=4096)
def _shown_turn(content: str) -> str:
    """What history_text shows of one assistant turn. Memoised: the turns of a dialogue recur in
    the history of every later item of that dialogue, and parsing them is most of rendering a case."""
    parsed = parse_spans(content)
    text = content.strip() if not parsed.order else (parsed.spans.get("response") or "(no response)")
    return text.strip()


def response_too_long(response: str) -> bool:
    """Whether the judge is shown only part of this response span."""
    return len(response) > MAX_RESPONSE_CHARS


def candidate_block(response: str) -> str:
    """The response's delimiter block, at most MAX_RESPONSE_CHARS of it. A cut is stated after the
    block, outside the data, so a response cannot fake or hide it."""
    if not response_too_long(response):
        return fence("CANDIDATE_RESPONSE", response)
    shown = fence("CANDIDATE_RESPONSE", response[:MAX_RESPONSE_CHARS])
    return f"{shown}\n[response cut: {MAX_RESPONSE_CHARS} of {len(response)} characters shown]"


def case_values(item: Item, response: str, notes: str | None = None) -> dict[str, str]:
    history = history_text(item.history)
    notes_block = ""
    if notes:
        notes_block = ("## The candidate's own understanding and reasoning (context only: score the response, not these)\n\n"
                       f"{fence('CANDIDATE_NOTES', notes)}\n\n")  # fmt: skip
    return {
        "profile": fence("PROFILE", item.person or item.system_prompt or "(no profile)"),
        "situation": fence("SITUATION", item.situation or "(not given)"),
        "history": fence("DIALOGUE", history)
        if history
        else "(none: this is the first turn of the dialogue)",
        "user_message": fence("USER_MESSAGE", item.user_message),
        "candidate_notes": notes_block,
        "candidate": candidate_block(response),
    }


def build_messages(
    rubric: Rubric, item: Item, response: str, notes: str | None = None
) -> list[dict[str, str]]:
    return rubric.render(case_values(item, response, notes))


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
    return ChatRequest.from_messages(msgs, cfg.params(repeat), rf)


def repair_request(
    first: ChatRequest, failures: Sequence[tuple[str, str]], rubric: Rubric
) -> ChatRequest:
    """The first request plus, for each invalid reply so far, that reply and what was wrong."""
    msgs = list(first.messages)
    for n, (raw, error) in enumerate(failures, start=1):
        quoted = raw if len(raw) <= _REPAIR_RAW_CHARS else raw[:_REPAIR_RAW_CHARS] + " …[cut]"
        msgs.append(("assistant", quoted))
        msgs.append(("user", f"That reply could not be used (attempt {n}): {error}. Reply again with only one JSON "
                             f"object with an integer from 1 to 5 for each of {', '.join(rubric.names)}, and an "
                             "optional short \"rationale\". No other text."))  # fmt: skip
    return ChatRequest(tuple(msgs), first.params, first.response_format)


def prompt_hash(request: ChatRequest, material: str | None = None) -> str:
    """16 hex of SHA-256 over the request's canonical JSON (`material`, when already computed)."""
    blob = request_json(request) if material is None else material
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()[:16]


# --- reading a verdict ----------------------------------------------------------------------------


_FENCED = re.compile(r"\A```(?:json)?[ \t]*\n(.*)\n```\Z", re.S | re.I)


def extract_json_object(text: str, names: Sequence[str] = DIMENSIONS) -> tuple[dict | None, str | None]:
    """The verdict object in a judge's reply, by a rule a quoted candidate cannot win.

    A leading <think>…</think> trace and one ```json fence around the whole reply are dropped. If
    what remains is one JSON object, that is the verdict. Otherwise every JSON object in the free
    text is collected; those that name a rubric dimension (at the top level or under "scores") are
    verdict-shaped. None: the first object (validation then says what it lacks). One, or several
    that give the same scores: that verdict. Several that disagree (the judge quoted the candidate's
    injected scores, or wrote a draft): an "ambiguous verdict" error, never a pick among them."""
    body, _, unterminated = strip_think(text or "")
    if unterminated:
        return None, "reasoning trace (<think>) never closed"
    body = body.strip()
    if not body:
        return None, "empty reply"
    fenced = _FENCED.match(body)
    whole = _json_dict(fenced.group(1) if fenced else body)
    if whole is not None:
        return whole, None
    found = _free_text_objects(body)
    if not found:
        return None, "no JSON object found" if "{" not in body else "malformed JSON"
    shaped = [(o, given) for o in found if (given := _dimension_keys(o, names))]
    if not shaped:
        return found[0], None
    if any(given != shaped[0][1] for _, given in shaped):
        return None, f"ambiguous verdict: {len(shaped)} verdict-shaped objects disagree"
    return shaped[0][0], None


def _json_dict(text: str) -> dict | None:
    try:
        obj = json.loads(text)
    except json.JSONDecodeError:
        return None
    return obj if isinstance(obj, dict) else None


def _free_text_objects(body: str) -> list[dict]:
    """Every top-level JSON object in text (objects nested in one are part of it)."""
    decoder = json.JSONDecoder()
    found: list[dict] = []
    skip_to = 0
    for m in re.finditer(r"\{", body):
        if m.start() < skip_to:
            continue
        try:
            obj, end = decoder.raw_decode(body, m.start())
        except json.JSONDecodeError:
            continue
        if isinstance(obj, dict):
            found.append(obj)
            skip_to = end
    return found


def _norm_key(k: str) -> str:
    key = str(k).strip().lower()
    if key.isidentifier():  # the usual "persona_consistency": no whitespace or '-' to replace
        return key
    return re.sub(r"[\s\-]+", "_", key)


def _flat_keys(obj: Mapping[str, Any], names: Sequence[str]) -> dict[str, Any]:
    """The object's keys normalised, with scores nested under "scores" lifted to the top when
    the top level names no dimension."""
    flat = {_norm_key(k): v for k, v in obj.items()}
    nested = flat.get("scores")
    if isinstance(nested, dict) and not any(n in flat for n in names):
        flat = {**flat, **{_norm_key(k): v for k, v in nested.items()}}
    return flat


def _dimension_keys(obj: Mapping[str, Any], names: Sequence[str]) -> dict[str, Any]:
    """The dimension → value entries an object gives (what two verdicts must agree on)."""
    flat = _flat_keys(obj, names)
    return {n: flat[n] for n in names if n in flat}


def validate_scores(obj: Mapping[str, Any], names: Sequence[str]) -> Verdict:
    """Every dimension present and a valid score (see rubric.coerce_score); extra keys ignored.
    Scores nested under "scores" are accepted."""
    flat = _flat_keys(obj, names)
    problems, scores = [], {}
    missing = [n for n in names if n not in flat]
    if missing:
        problems.append(f"missing dimension(s) {', '.join(missing)}")
    for n in names:
        if n in flat:
            try:
                scores[n] = coerce_score(flat[n])
            except ValueError as e:
                problems.append(f"{n}: {e}")
    rationale = flat.get("rationale")
    rationale = rationale.strip() if isinstance(rationale, str) and rationale.strip() else None
    if problems:
        return Verdict(None, rationale, "; ".join(problems))
    return Verdict(scores, rationale)


def parse_verdict(
    text: str | None, names: Sequence[str], finish_reason: str | None = None
) -> Verdict:
    obj, error = extract_json_object(text or "", names)
    verdict = Verdict(None, None, error) if obj is None else validate_scores(obj, names)
    if verdict.error and finish_reason == "length":
        return Verdict(None, verdict.rationale, f"reply cut at the token limit; {verdict.error}")
    return verdict


# --- the outcome ----------------------------------------------------------------------------------


@dataclass
class JudgeOutcome:
    """All verdicts of one judging stage and what they add up to.

    item_scores: item → dimension → mean over judges of each judge's mean over its scored repeats
    (None when no judge scored it). Unscored verdicts are counted by reason, never averaged in."""

    rubric_version: str
    dimensions: tuple[str, ...]
    judges: list[str]
    repeats: int
    judgments: list[Judgment]
    run_stats: dict[str, dict[str, Any]] = field(
        default_factory=dict
    )  # judge → this run's requests
    item_scores: dict[str, dict[str, float | None]] = field(init=False)
    per_judge: dict[str, dict[str, dict[str, float | None]]] = field(init=False)

    def __post_init__(self) -> None:
        dims = self.dimensions
        scored: dict[tuple[str, str], dict[str, list[int]]] = {}  # (judge, item) → dim → scores
        for j in self.judgments:
            if j.status == "scored":
                acc = scored.get((j.judge, j.item_id))
                if acc is None:
                    acc = scored[(j.judge, j.item_id)] = {}
                for d in dims:
                    s = j.scores.get(d)
                    if s is not None:
                        acc.setdefault(d, []).append(s)
        items = dict.fromkeys(j.item_id for j in self.judgments)
        empty: dict[str, list[int]] = {}
        self.per_judge = {}
        for judge in self.judges:
            rows = self.per_judge[judge] = {}
            for i in items:
                acc = scored.get((judge, i), empty)
                rows[i] = {d: _mean(acc.get(d)) for d in dims}
        tables = [self.per_judge[j] for j in self.judges]
        self.item_scores = {}
        for i in items:
            per = [t[i] for t in tables]
            self.item_scores[i] = {d: _mean([v for r in per if (v := r[d]) is not None]) for d in dims}

    def __repr__(self) -> str:
        # Short on purpose: asyncio.run formats its main task, result included, into an error
        # message while restoring the SIGINT handler, and the default repr of 20k verdicts takes
        # a noticeable part of a second (twice) at the end of every judge stage.
        return (f"JudgeOutcome(rubric_version={self.rubric_version!r}, judges={self.judges!r}, "
                f"repeats={self.repeats}, judgments=<{len(self.judgments)}>)")  # fmt: skip

    @property
    def n_unscored(self) -> int:
        return sum(1 for j in self.judgments if j.status != "scored")

    @property
    def n_responses_cut(self) -> int:
        """Items whose response the judge saw only in part (MAX_RESPONSE_CHARS)."""
        return len({j.item_id for j in self.judgments if j.response_cut})

    def unscored_by_reason(self, judge: str | None = None) -> dict[str, int]:
        c = Counter(
            j.reason or "?"
            for j in self.judgments
            if j.status != "scored" and (judge is None or j.judge == judge)
        )
        return dict(sorted(c.items()))

    def means(self) -> dict[str, dict[str, Any]]:
        """Plain means of the headline item scores (the metrics module adds confidence intervals)."""
        out = {}
        for d in self.dimensions:
            vals = [row[d] for row in self.item_scores.values() if row[d] is not None]
            out[d] = {
                "mean": _mean(vals),
                "n": len(vals),
                "n_unscored": len(self.item_scores) - len(vals),
            }
        return out

    def agreement(self) -> dict[str, Any]:
        return inter_judge_agreement(first_scored(self.judgments), self.dimensions)

    def repeat_variance(self) -> dict[str, dict[str, Any]]:
        return repeat_variance(self.judgments, self.dimensions)

    def usage(self) -> dict[str, dict[str, Any]]:
        """judge → tokens and cost of every verdict in the outcome (cached ones included: what
        they cost when first made), and requests made."""
        out: dict[str, dict[str, Any]] = {}
        for judge in self.judges:
            js = [j for j in self.judgments if j.judge == judge]
            costs = [j.usage.get("cost_usd") for j in js if j.attempts]
            out[judge] = {
                "requests": sum(j.attempts for j in js),
                "prompt_tokens": int(sum(j.usage.get("prompt_tokens") or 0 for j in js)),
                "completion_tokens": int(sum(j.usage.get("completion_tokens") or 0 for j in js)),
                "cost_usd": None if any(c is None for c in costs) else float(sum(costs)),  # type: ignore[arg-type]
            }
        return out

    def to_dict(self, per_item: bool = False) -> dict[str, Any]:
        out: dict[str, Any] = {
            "rubric_version": self.rubric_version,
            "judges": self.judges,
            "repeats": self.repeats,
            "n_items": len(self.item_scores),
            "n_judgments": len(self.judgments),
            "n_scored": len(self.judgments) - self.n_unscored,
            "n_unscored": self.n_unscored,
            "n_responses_cut": self.n_responses_cut,
            "max_response_chars": MAX_RESPONSE_CHARS,
            "unscored_by_reason": self.unscored_by_reason(),
            "unscored_by_judge": {j: self.unscored_by_reason(j) for j in self.judges},
            "means": self.means(),
            "per_judge_means": {
                j: {
                    d: _mean([r[d] for r in rows.values() if r[d] is not None])
                    for d in self.dimensions
                }
                for j, rows in self.per_judge.items()
            },
            "agreement": self.agreement(),
            "repeat_variance": self.repeat_variance(),
            "usage": self.usage(),
            "run": self.run_stats,
        }
        if per_item:
            out["item_scores"] = self.item_scores
        return out


def _mean(vals: Sequence[float] | None) -> float | None:
    return sum(vals) / len(vals) if vals else None


# --- loading verdicts back ------------------------------------------------------------------------


def load_judgments(
    path: str | Path, rubric_version: str | None = None, judges: Iterable[str] | None = None
) -> list[Judgment]:
    """The latest verdict per (judge, item, repeat) in a judgments.jsonl, for one rubric version.
    With rubric_version None the file must hold a single version (else ValueError naming them)."""
    rows = [Judgment.from_row(r) for r in read_jsonl_tolerant(Path(path))]
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


def outcome_from_judgments(
    judgments: Sequence[Judgment], item_ids: Sequence[str] | None = None
) -> JudgeOutcome:
    """Rebuild an outcome without calling any judge (re-scoring a finished run)."""
    if item_ids is not None:
        keep = set(item_ids)
        judgments = [j for j in judgments if j.item_id in keep]
    versions = {j.rubric_version for j in judgments}
    if len(versions) > 1:
        raise ValueError(f"verdicts of several rubric versions: {sorted(versions)}")
    judges = list(dict.fromkeys(j.judge for j in judgments))
    repeats = max((j.repeat for j in judgments), default=-1) + 1
    return JudgeOutcome(
        versions.pop() if versions else "", DIMENSIONS, judges, max(repeats, 1), list(judgments)
    )


def not_sent_reason(pred: Prediction | None) -> str:
    """The unscored reason of an item that has nothing to send to the judge."""
    return NO_PREDICTION if pred is None else NO_RESPONSE


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
            run_stats[model.spec] = await _judge_with(
                model, items, predictions, cfg, rubric, previous, final, writer, cache, progress
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
) -> dict[str, Any]:
    """One judge over all items and repeats; verdicts go to `final` and the file."""
    spec = model.spec
    base = {"judge": spec, "rubric_version": rubric.version, "show_reasoning": cfg.show_reasoning,
            "max_tokens": cfg.max_tokens}  # fmt: skip
    stats = {"requests": 0, "cached": 0, "failed": 0, "reused_verdicts": 0, "prompt_tokens": 0,
             "completion_tokens": 0, "cost_usd": 0.0, "wall_s": 0.0, "rounds": 0}  # fmt: skip

    def record(j: Judgment) -> None:
        final[j.key] = j
        writer.write(j.to_row())

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
                                response_cut=c.response_cut, created=now(), **base, **extra))  # fmt: skip

            if isinstance(out, ModelError):
                c.all_cached = False
                finish(
                    "unscored", dict.fromkeys(rubric.names), reason=REQUEST_FAILED, detail=str(out)
                )
                return
            c.all_cached = c.all_cached and cached
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
    return stats
