"""The 32-label taxonomy and its deliberately narrow normaliser."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kardiabench.emotions import EMOTION_SET, EMOTIONS, is_emotion, normalize_emotion, to_label


def test_taxonomy_is_the_32_empathetic_dialogues_labels():
    assert len(EMOTIONS) == 32 == len(EMOTION_SET)
    assert list(EMOTIONS) == sorted(EMOTIONS)
    assert all(e == e.strip().lower() and e.isalpha() for e in EMOTIONS)
    assert {"caring", "hopeful", "grateful", "anxious", "trusting", "afraid"} <= EMOTION_SET


@pytest.mark.parametrize(
    "raw",
    [
        "anxious",
        "Anxious",
        "ANXIOUS",
        "  anxious  ",
        "\tanxious\n",
        "anxious.",
        "anxious!",
        "(anxious)",
        "'anxious'",
        '"anxious"',
        "\u201canxious\u201d",
        "\u2018anxious\u2019",
        "\u00abanxious\u00bb",
        "**anxious**",
        "[Anxious].",
        ' "Anxious." ',
        "anxious\u3002",
        "\u00a0anxious\u00a0",
        "\u300canxious\u300d",
        "anxious\u2026",
        "\u3000anxious",
    ],
)
def test_case_whitespace_punctuation_and_quotes_are_normalised(raw):
    assert to_label(raw) == "anxious"
    assert is_emotion(raw)


@pytest.mark.parametrize(
    "raw",
    [
        "happy",
        "anxiety",
        "Anxiousness",
        "sadness",
        "angry-ish",
        "fear",
        "scared",
        "worried",
        "feeling anxious",
        "anxious and sad",
        "anx ious",
        "anxious/sad",
        "grateful, hopeful",
        "",
        "   ",
        "...",
        "n/a",
    ],
)
def test_unknown_labels_are_never_mapped(raw):
    assert to_label(raw) is None
    assert not is_emotion(raw)


def test_none_is_unknown():
    assert normalize_emotion(None) == ""
    assert to_label(None) is None


def test_normalize_keeps_inner_text():
    assert normalize_emotion("  Feeling Anxious! ") == "feeling anxious"
    assert normalize_emotion("anxious/sad") == "anxious/sad"


@settings(max_examples=200, deadline=None)
@given(
    st.sampled_from(EMOTIONS),
    st.text(" \t\n.,!?;:'\"()[]*`\u201c\u201d", max_size=4),
    st.text(" \t\n.,!?;:'\"()[]*`\u201c\u201d", max_size=4),
    st.booleans(),
)
def test_every_label_survives_decoration(label, left, right, upper):
    text = left + (label.upper() if upper else label.capitalize()) + right
    assert to_label(text) == label


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=30))
def test_to_label_is_none_or_a_label_and_idempotent(text):
    label = to_label(text)
    assert label is None or label in EMOTION_SET
    norm = normalize_emotion(text)
    assert normalize_emotion(norm) == norm
    if label is not None:
        assert to_label(label) == label
