"""Typed records passed between stages: dialogues in, items to models, predictions out.

Identity rules (documented in docs/item-ids.md, relied on by caches and paired comparisons):
  dialogue_id = "d" + first 16 hex digits of SHA-256 over the canonical JSON of the dialogue's
                content fields (person, mbti, emotion, situation, anon_username, messages),
                keys sorted, UTF-8, no whitespace. Independent of file, line, split and machine.
  item_id     = f"{dialogue_id}-t{turn_index}", turn_index = 0-based index of the assistant turn.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from kardiabench.spans import ParsedOutput, parse_spans

HistoryMode = Literal["full", "response"]
HISTORY_MODES: tuple[str, ...] = ("full", "response")


@dataclass(frozen=True, slots=True)
class Message:
    role: str
    content: str

    def to_dict(self) -> dict[str, str]:
        return {"role": self.role, "content": self.content}

    @classmethod
    def from_dict(cls, row: Mapping[str, Any]) -> Message:
        return cls(row["role"], row["content"])


@dataclass(frozen=True, slots=True)
class SourceRef:
    """Where a record came from: a file and its 1-based line (JSONL) or row (JSON array, Parquet)."""

    path: str
    line: int

    def __str__(self) -> str:
        return f"{self.path}:{self.line}"


@dataclass(frozen=True, slots=True)
class Dialogue:
    person: str
    mbti: str
    emotion: str
    situation: str
    anon_username: str
    messages: tuple[Message, ...]
    source: SourceRef | None = field(default=None, compare=False)
    dialogue_id: str = field(default="", compare=False)
    # Parsed spans of each assistant turn, filled by validation so expansion need not parse again.
    turn_spans: tuple[dict[str, str | None], ...] | None = field(
        default=None, compare=False, repr=False
    )

    def __post_init__(self) -> None:
        if not self.dialogue_id:
            object.__setattr__(self, "dialogue_id", compute_dialogue_id(self))

    @property
    def persona_id(self) -> str:
        """The profile a dialogue belongs to: the anonymised username, else a hash of the profile."""
        if self.anon_username:
            return self.anon_username
        return "p" + hashlib.sha256(self.person.encode()).hexdigest()[:12]

    @property
    def system_prompt(self) -> str:
        return (
            self.messages[0].content if self.messages and self.messages[0].role == "system" else ""
        )

    def to_dict(self) -> dict:
        """The content fields as a dataset record (what the dialogue id is computed from)."""
        return {
            "person": self.person,
            "mbti": self.mbti,
            "emotion": self.emotion,
            "situation": self.situation,
            "anon_username": self.anon_username,
            "messages": [m.to_dict() for m in self.messages],
        }


def compute_dialogue_id(d: Dialogue) -> str:
    canonical = json.dumps(d.to_dict(), sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return "d" + hashlib.sha256(canonical.encode("utf-8")).hexdigest()[:16]


@dataclass(frozen=True, slots=True)
class GoldSpans:
    understanding: str
    reasoning: str
    emotion: str
    response: str


@dataclass(frozen=True, slots=True)
class Item:
    """One assistant turn to be generated: everything a model, a scorer and a judge need."""

    item_id: str
    dialogue_id: str
    turn_index: int
    persona_id: str
    mbti: str
    situation: str
    person: str
    system_prompt: str
    history: tuple[Message, ...]  # earlier user/assistant turns, rendered per the history mode
    user_message: str
    gold: GoldSpans
    gold_emotion: str  # the turn's emotion span, normalised; the record-level emotion as fallback
    history_mode: HistoryMode = "full"

    def chat_messages(self, system_prompt: str | None = None) -> list[dict[str, str]]:
        """System prompt, the dialogue so far and the current user turn, as chat messages."""
        system = self.system_prompt if system_prompt is None else system_prompt
        msgs = [{"role": "system", "content": system}] if system else []
        msgs.extend(m.to_dict() for m in self.history)
        msgs.append({"role": "user", "content": self.user_message})
        return msgs

    def to_dict(self) -> dict:
        """A flat row of plain types (a `datasets` row: GRPO prompts carry the item as reward columns)."""
        return {
            "item_id": self.item_id,
            "dialogue_id": self.dialogue_id,
            "turn_index": self.turn_index,
            "persona_id": self.persona_id,
            "mbti": self.mbti,
            "situation": self.situation,
            "person": self.person,
            "system_prompt": self.system_prompt,
            "history": [m.to_dict() for m in self.history],
            "user_message": self.user_message,
            "gold": asdict(self.gold),
            "gold_emotion": self.gold_emotion,
            "history_mode": self.history_mode,
        }

    @classmethod
    def from_dict(cls, row: Mapping[str, Any]) -> Item:
        """The inverse of to_dict; extra columns (a trainer's prompt, say) are ignored."""
        fields = {k: row[k] for k in cls.__dataclass_fields__ if k in row}
        fields["history"] = tuple(Message.from_dict(m) for m in row["history"])
        fields["gold"] = GoldSpans(**row["gold"])
        return cls(**fields)


@dataclass(slots=True)
class Prediction:
    """One line of predictions.jsonl (schema in docs/run-folder.md). The output text is stored
    once, in raw_output: its spans and <think> trace are parsed from it when asked for."""

    item_id: str
    model: str
    raw_output: str | None
    reasoning: str | None = None  # a trace the API returned apart from the output, never a copy
    span_issues: list[dict[str, str]] = field(default_factory=list)  # {"kind", "span", "detail"}
    well_formed: bool = False
    finish_reason: str | None = None
    # prompt_tokens, completion_tokens, cost_usd
    usage: dict[str, float] = field(default_factory=dict)
    latency_s: float = 0.0
    error: str | None = None
    cached: bool = False
    attempts: int = 1

    @property
    def parsed(self) -> ParsedOutput:
        """raw_output through the one span parser (parsed afresh on each call: cheap, and nothing
        parsed is kept beside the text it came from)."""
        return parse_spans(self.raw_output, finish_reason=self.finish_reason)

    @property
    def spans(self) -> dict[str, str | None]:
        return self.parsed.spans

    @property
    def thinking(self) -> str | None:
        """The <think> trace inside raw_output, if any."""
        return self.parsed.thinking

    def to_dict(self) -> dict[str, Any]:
        """One line of predictions.jsonl."""
        return asdict(self)

    @classmethod
    def from_dict(cls, row: Mapping[str, Any]) -> Prediction:
        """The inverse of to_dict; unknown keys (a newer or older writer's) are ignored."""
        return cls(**{k: v for k, v in row.items() if k in cls.__dataclass_fields__})
