"""The 32-label emotion taxonomy of KardiaBench (the EmpatheticDialogues labels) and its normaliser.

Normalisation is deliberately narrow: case, surrounding whitespace and surrounding punctuation.
Anything else (synonyms, inflections, typos) is an unknown label and is reported as such, never
mapped silently onto a label, because that would change Emotion Accuracy relative to the paper.
"""

from __future__ import annotations

import string
import unicodedata

EMOTIONS: tuple[str, ...] = (
    "afraid",
    "angry",
    "annoyed",
    "anticipating",
    "anxious",
    "apprehensive",
    "ashamed",
    "caring",
    "confident",
    "content",
    "devastated",
    "disappointed",
    "disgusted",
    "embarrassed",
    "excited",
    "faithful",
    "furious",
    "grateful",
    "guilty",
    "hopeful",
    "impressed",
    "jealous",
    "joyful",
    "lonely",
    "nostalgic",
    "prepared",
    "proud",
    "sad",
    "sentimental",
    "surprised",
    "terrified",
    "trusting",
)
EMOTION_SET = frozenset(EMOTIONS)

_STRIP = string.whitespace + string.punctuation + "\u201c\u201d\u2018\u2019\u00ab\u00bb\u3002\uff0e"


def _is_edge(ch: str) -> bool:
    """Whitespace or punctuation, ASCII or not (NBSP, ideographic space, 「」, …)."""
    return ch in _STRIP or ch.isspace() or unicodedata.category(ch).startswith("P")


def normalize_emotion(text: str | None) -> str:
    """Lower-case and strip surrounding whitespace and punctuation (quotes, periods, brackets)."""
    if text is None:
        return ""
    start, end = 0, len(text)
    while start < end and _is_edge(text[start]):
        start += 1
    while end > start and _is_edge(text[end - 1]):
        end -= 1
    return text[start:end].lower()


def to_label(text: str | None) -> str | None:
    """The taxonomy label `text` denotes after normalisation, or None when it is not one of the 32."""
    norm = normalize_emotion(text)
    return norm if norm in EMOTION_SET else None


def is_emotion(text: str | None) -> bool:
    return to_label(text) is not None
