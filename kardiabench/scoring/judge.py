"""The rubric judge's pure part: render a case into the judge prompt, read and validate a reply,
word a repair, and add verdicts up. It computes from values only (no model, cache or file: those
are in kardiabench/judging.py, which runs the judges), so the GRPO rubric reward and evaluation
build the same prompt and read replies by the same rule.

The judge sees the profile, the situation, the dialogue so far (earlier assistant turns as their
response span only), the latest user message and the candidate's response span (at most
MAX_RESPONSE_CHARS of it, a cut marked and counted), each in its own delimiter block; the
candidate's understanding and reasoning only with `show_reasoning=True`.

A reply is read by `parse_verdict`: the whole reply as one JSON object, else the one verdict its
verdict-shaped objects agree on (`extract_json_object`), every dimension an integer 1..5. An
invalid reply is answered with `repair_messages`: the reply quoted back and what was wrong.
"""

from __future__ import annotations

import json
import re
import statistics
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from functools import lru_cache
from typing import Any, Literal

from kardiabench.records import Item, Message, Prediction
from kardiabench.scoring.agreement import first_scored, inter_judge_agreement, repeat_variance
from kardiabench.scoring.rubric import DIMENSIONS, FENCE, Rubric, coerce_score
from kardiabench.spans import parse_spans, strip_think

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
    batch: bool = False  # first round through the provider's batch API (models/openai_batch.py)
    batch_timeout: float | None = None  # seconds to wait for a batch to end (None: no bound)
    # stop sending once the judges have cost this much (runner.BudgetExceeded)
    budget_usd: float | None = None

    def __post_init__(self) -> None:
        if self.repeats < 1:
            raise ValueError("repeats must be at least 1")
        if self.max_repairs < 0:
            raise ValueError("max_repairs must be 0 or more")
        if self.max_tokens < 1:
            raise ValueError("max_tokens must be positive")


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
    # the judge's token limit (part of prompt_hash); None in old files
    max_tokens: int | None = None
    temperature: float | None = None  # the judge's sampling temperature; None in old files
    # scheme://host[:port]/path the request went to (redact.model_endpoint); None: in-process or old files
    endpoint: str | None = None
    # what else decides the judge's replies (judge_model_identity: an hf:/vllm: judge's revision,
    # dtype, chat template hash; an endpoint's extra body); None: nothing beyond spec and endpoint
    model: dict[str, Any] | None = None
    usage: dict[str, float | None] = field(default_factory=dict)  # summed over attempts
    cached: bool = False  # every attempt came from the cache
    response_cut: bool = False  # the judge saw only MAX_RESPONSE_CHARS of a longer response
    served_model: str | None = None  # the model name the judge's API answered with (last attempt)
    created: str = ""

    def to_dict(self) -> dict[str, Any]:
        # What asdict gives (the fields are flat, the two dicts hold numbers), without its deep
        # copy: one row per verdict, so it adds up over a full test split.
        row = {name: getattr(self, name) for name in _JUDGMENT_FIELDS}
        row["scores"], row["usage"] = dict(self.scores), dict(self.usage)
        return row

    @classmethod
    def from_dict(cls, row: Mapping[str, Any]) -> Judgment:
        return cls(**{k: v for k, v in row.items() if k in cls.__dataclass_fields__})

    @property
    def key(self) -> tuple[str, str, int]:
        return (self.judge, self.item_id, self.repeat)


_JUDGMENT_FIELDS = tuple(Judgment.__dataclass_fields__)


def judge_model_identity(identity: Mapping[str, Any]) -> dict[str, Any] | None:
    """A judge model's identity (ChatModel.identity) less its spec and host, which every verdict
    records already: the weights' revision, dtype and chat template of a local judge. None when
    nothing is left (an API judge), as in verdicts written before this field existed."""
    rest = {k: v for k, v in identity.items() if k not in ("spec", "host")}
    # as judgments.jsonl gives it back (tuples as lists), so a reread verdict compares equal
    return json.loads(json.dumps(rest, sort_keys=True)) if rest else None


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
    return "\n\n".join(f"{role.capitalize()}: {text}" for role, text in shown_history(history))


def shown_history(history: Sequence[Message]) -> list[tuple[str, str]]:
    """(role, text) of each user and assistant turn as history_text shows it (the human A/B pages
    show the same)."""
    return [
        (m.role, m.content.strip() if m.role == "user" else _shown_turn(m.content))
        for m in history
        if m.role in ("user", "assistant")
    ]


@lru_cache(maxsize=4096)
def _shown_turn(content: str) -> str:
    """What history_text shows of one assistant turn. Memoised: the turns of a dialogue recur in
    the history of every later item of that dialogue, and parsing them is most of rendering a case."""
    parsed = parse_spans(content)
    text = (
        content.strip() if not parsed.order else (parsed.spans.get("response") or "(no response)")
    )
    return text.strip()


def response_too_long(response: str) -> bool:
    """Whether the judge is shown only part of this response span."""
    return len(response) > MAX_RESPONSE_CHARS


def response_block(name: str, response: str) -> str:
    """A response's delimiter block `name`, at most MAX_RESPONSE_CHARS of it. A cut is stated after
    the block, outside the data, so a response cannot fake or hide it. The rubric judge's candidate
    and the pairwise judge's two responses go through here: one rule for what a judge is shown."""
    if not response_too_long(response):
        return fence(name, response)
    shown = fence(name, response[:MAX_RESPONSE_CHARS])
    return f"{shown}\n[response cut: {MAX_RESPONSE_CHARS} of {len(response)} characters shown]"


def candidate_block(response: str) -> str:
    """The rubric judge's candidate response block (`response_block`)."""
    return response_block("CANDIDATE_RESPONSE", response)


def notes_block(heading: str, name: str, notes: str) -> str:
    """A candidate's understanding and reasoning (show_reasoning) under `heading`, as data in the
    delimiter block `name`, followed by a blank line."""
    return f"{heading}\n\n{fence(name, notes)}\n\n"


def case_values(item: Item, response: str, notes: str | None = None) -> dict[str, str]:
    history = history_text(item.history)
    notes_text = ""
    if notes:
        notes_text = notes_block(
            "## The candidate's own understanding and reasoning (context only: score the response, not these)",
            "CANDIDATE_NOTES",
            notes,
        )
    return {
        "profile": fence("PROFILE", item.person or item.system_prompt or "(no profile)"),
        "situation": fence("SITUATION", item.situation or "(not given)"),
        "history": fence("DIALOGUE", history)
        if history
        else "(none: this is the first turn of the dialogue)",
        "user_message": fence("USER_MESSAGE", item.user_message),
        "candidate_notes": notes_text,
        "candidate": candidate_block(response),
    }


def build_messages(
    rubric: Rubric, item: Item, response: str, notes: str | None = None
) -> list[dict[str, str]]:
    return rubric.render(case_values(item, response, notes))


RUBRIC_ANSWER = "with an integer from 1 to 5"  # what a rubric verdict gives for each dimension


def repair_messages(
    failures: Sequence[tuple[str, str]], names: Sequence[str], answer: str = RUBRIC_ANSWER
) -> list[dict[str, str]]:
    """The turns that follow the first request's messages in a repair: for each invalid reply so
    far (raw text, what was wrong), that reply (quoted, at most _REPAIR_RAW_CHARS) and the request
    to answer again with only the verdict object, giving `answer` for each dimension (the rubric's
    score, or the pairwise judge's "A", "B" or "tie")."""
    msgs = []
    for n, (raw, error) in enumerate(failures, start=1):
        quoted = raw if len(raw) <= _REPAIR_RAW_CHARS else raw[:_REPAIR_RAW_CHARS] + " …[cut]"
        msgs.append({"role": "assistant", "content": quoted})
        msgs.append(
            {
                "role": "user",
                "content": f"That reply could not be used (attempt {n}): {error}. Reply again with only one JSON "
                f"object {answer} for each of {', '.join(names)}, and an "
                'optional short "rationale". No other text.',
            }
        )
    return msgs


# --- reading a verdict ----------------------------------------------------------------------------


_FENCED = re.compile(r"\A```(?:json)?[ \t]*\n(.*)\n```\Z", re.S | re.I)


def extract_json_object(
    text: str, names: Sequence[str] = DIMENSIONS
) -> tuple[dict | None, str | None]:
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
class JudgeStats:
    """What one judge's requests in one judging stage came to (results.json rubric.run.JUDGE), the
    judge's counterpart of generation's RunStats: requests sent over all rounds (first requests and
    repairs), of them answered from the cache or failed, verdicts reused from judgments.jsonl
    without a request, tokens, cost (None once a price was unknown), wall time and rounds; for a
    judge on several replicas, what each was asked (`replicas`, absent otherwise)."""

    requests: int = 0
    cached: int = 0
    failed: int = 0
    reused_verdicts: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost_usd: float | None = 0.0
    wall_s: float = 0.0
    rounds: int = 0
    replicas: list[dict[str, Any]] | None = None

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        if not self.replicas:
            del out["replicas"]
        return out


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
    run_stats: dict[str, JudgeStats] = field(default_factory=dict)  # judge → this stage's requests
    pool: str = "mean"  # how the judges' item means are pooled: "mean" or "median" (POOLS)
    escalation: Escalation | None = None  # items whose score the stronger judge gives instead
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
        if self.pool not in POOLS:
            raise ValueError(f"pool must be one of {', '.join(POOLS)}, got {self.pool!r}")
        pool = POOLS[self.pool]
        tables = [self.per_judge[j] for j in self.judges]
        self.item_scores = {}
        for i in items:
            per = [t[i] for t in tables]
            self.item_scores[i] = {
                d: pool([v for r in per if (v := r[d]) is not None]) for d in dims
            }
        esc = self.escalation
        for i in esc.items if esc else ():
            acc = scored.get((esc.judge, i))  # type: ignore[union-attr]
            if acc:  # the stronger judge scored it: its mean over repeats replaces the pool
                self.item_scores[i] = {d: _mean(acc.get(d)) for d in dims}

    def __repr__(self) -> str:
        # Short on purpose: asyncio.run formats its main task, result included, into an error
        # message while restoring the SIGINT handler, and the default repr of 20k verdicts takes
        # a noticeable part of a second (twice) at the end of every judge stage.
        return (
            f"JudgeOutcome(rubric_version={self.rubric_version!r}, judges={self.judges!r}, "
            f"repeats={self.repeats}, judgments=<{len(self.judgments)}>)"
        )

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
        """Agreement of the pooled judges (an escalation judge saw only the items they disagreed on)."""
        pooled = set(self.judges)
        return inter_judge_agreement(
            first_scored(j for j in self.judgments if j.judge in pooled), self.dimensions
        )

    def repeat_variance(self) -> dict[str, dict[str, Any]]:
        return repeat_variance(self.judgments, self.dimensions)

    def usage(self) -> dict[str, dict[str, Any]]:
        """judge → tokens and cost of every verdict in the outcome (cached ones included: what
        they cost when first made), and requests made."""
        return {judge: self.judge_usage(judge) for judge in self.judges}

    def judge_usage(self, judge: str) -> dict[str, Any]:
        """Tokens, cost and requests of one judge's verdicts in the outcome."""
        js = [j for j in self.judgments if j.judge == judge]
        costs = [j.usage.get("cost_usd") for j in js if j.attempts]
        return {
            "requests": sum(j.attempts for j in js),
            "prompt_tokens": int(sum(j.usage.get("prompt_tokens") or 0 for j in js)),
            "completion_tokens": int(sum(j.usage.get("completion_tokens") or 0 for j in js)),
            "cost_usd": None if any(c is None for c in costs) else float(sum(costs)),  # type: ignore[arg-type]
            "served_models": dict(Counter(j.served_model for j in js if j.served_model)),
        }

    def escalation_report(self) -> dict[str, Any] | None:
        """results.json's rubric.escalation: who, when, the share of items escalated and its cost."""
        esc = self.escalation
        if esc is None:
            return None
        n = len(self.item_scores)
        return {
            "judge": esc.judge,
            "when": f"disagree:{esc.threshold:g}",
            "n_items": n,
            "n_escalated": len(esc.items),
            "share": len(esc.items) / n if n else None,
            "item_ids": list(esc.items),
            "usage": self.judge_usage(esc.judge),
        }

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
            "pool": self.pool,
            "run": {judge: stats.to_dict() for judge, stats in self.run_stats.items()},
        }
        if self.escalation is not None:
            out["escalation"] = self.escalation_report()
        if per_item:
            out["item_scores"] = self.item_scores
        return out


def _mean(vals: Sequence[float] | None) -> float | None:
    return sum(vals) / len(vals) if vals else None


def _median(vals: Sequence[float]) -> float | None:
    return statistics.median(vals) if vals else None


# How the judges' item means are pooled into an item's score: the mean (every judge weighs the
# same), or the median (with three or more judges one outlying judge cannot move it; with two it
# equals the mean).
POOLS = {"mean": _mean, "median": _median}


@dataclass(frozen=True)
class Escalation:
    """The items the pooled judges disagreed on by ≥ threshold on some dimension, sent to `judge`."""

    judge: str
    threshold: float
    items: tuple[str, ...]


def parse_escalate_when(text: str) -> float:
    """ "disagree:K" → K (a positive number of score points), or ValueError saying what is expected."""
    kind, _, k = str(text).partition(":")
    try:
        value = float(k)
    except ValueError:
        value = float("nan")
    if kind != "disagree" or not value > 0:
        raise ValueError(f"expected disagree:K with K > 0 (score points), got {text!r}")
    return value


def disagreeing_items(outcome: JudgeOutcome, threshold: float) -> list[str]:
    """Items on which two of the outcome's judges differ by ≥ threshold on any dimension (each
    judge's mean over its repeats; judges that did not score an item are left out)."""
    out = []
    for i in outcome.item_scores:
        for d in outcome.dimensions:
            vals = [v for t in outcome.per_judge.values() if (v := t[i][d]) is not None]
            if len(vals) >= 2 and max(vals) - min(vals) >= threshold:
                out.append(i)
                break
    return out


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
