"""Reward functions for GRPO, built on the benchmark's own scoring so training optimises exactly
what the benchmark measures (one parser, one emotion rule).

Each has TRL's reward signature: `(completions, **dataset_columns) -> list[float | None]`, where a
completion is a string or, for conversational datasets, a list of chat messages (the last
assistant message is scored). TRL passes every dataset column as a keyword list, plus its own
keywords (prompts, completion_ids, trainer_state, …), which are ignored here.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from kardiabench.scoring.emotion import classify_emotion
from kardiabench.spans import parse_spans

Completion = str | Sequence[Mapping[str, Any]]


def completion_text(completion: Completion) -> str:
    """The text a model wrote: the string itself, or the content of the last assistant message."""
    if isinstance(completion, str):
        return completion
    for message in reversed(completion):
        if message.get("role", "assistant") == "assistant":
            return str(message.get("content") or "")
    return ""


def format_reward(completions: Sequence[Completion], **_: Any) -> list[float]:
    """1.0 when all four spans are present, terminated, in order and non-empty (the benchmark's
    format compliance), else 0.0."""
    return [1.0 if parse_spans(completion_text(c)).well_formed else 0.0 for c in completions]


def emotion_reward(
    completions: Sequence[Completion], gold_emotion: Sequence[str], **_: Any
) -> list[float]:
    """1.0 when the emotion span equals the turn's gold label (the benchmark's emotion accuracy:
    case, whitespace and punctuation normalised, nothing else), else 0.0."""
    if len(gold_emotion) != len(completions):
        raise ValueError(
            f"{len(completions)} completions but {len(gold_emotion)} gold_emotion values"
        )
    return [
        1.0
        if classify_emotion(gold, parse_spans(completion_text(c)).get("emotion")).correct
        else 0.0
        for c, gold in zip(completions, gold_emotion, strict=True)
    ]
