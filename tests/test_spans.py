"""The four-span parser on adversarial model outputs, plus property tests."""

from __future__ import annotations

import re

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kardiabench.spans import (
    BLOCKING_ISSUES,
    SPAN_NAMES,
    Issue,
    parse_spans,
    render_spans,
    span_markers,
    strip_think,
)

GOLD = {
    "understanding": "They dread the exam tomorrow.",
    "reasoning": "Name the worry, then offer one small step.",
    "emotion": "anxious",
    "response": "Exams can feel huge. What part worries you most?",
}


def special(name: str, text: str) -> str:
    return f"<|{name}_begin|>{text}<|{name}_end|>"


def xml(name: str, text: str) -> str:
    return f"<{name}>{text}</{name}>"


def kinds_of(text: str, **kw) -> set[Issue]:
    return parse_spans(text, **kw).issue_kinds


def issues_for(text: str, kind: Issue, **kw) -> list:
    return [i for i in parse_spans(text, **kw).issues if i.kind == kind]


# --------------------------------------------------------------------------- well-formed outputs


@pytest.mark.parametrize("style", ["special", "xml"])
def test_well_formed_both_styles(style):
    p = parse_spans(render_spans(GOLD, style))
    assert p.well_formed
    assert p.issues == ()
    assert p.spans == GOLD
    assert p.style == style
    assert p.order == SPAN_NAMES
    assert p.thinking is None


def test_mixed_styles_in_one_output():
    text = (
        special("understanding", GOLD["understanding"])
        + xml("reasoning", GOLD["reasoning"])
        + special("emotion", "anxious")
        + xml("response", GOLD["response"])
    )
    p = parse_spans(text)
    assert p.well_formed and p.style == "mixed" and p.spans == GOLD


def test_tags_are_case_insensitive_and_allow_space_before_gt():
    text = (
        "<|UNDERSTANDING_BEGIN|>u<|Understanding_End|><REASONING >r</Reasoning>"
        "<Emotion>Anxious</EMOTION><|response_BEGIN|>ok<|RESPONSE_end|>"
    )
    p = parse_spans(text)
    assert p.well_formed, p.issues
    assert p.spans == {
        "understanding": "u",
        "reasoning": "r",
        "emotion": "Anxious",
        "response": "ok",
    }
    assert p.style == "mixed"


def test_span_text_is_stripped_and_multiline_kept():
    text = render_spans({**GOLD, "response": "\n  line one\nline two  \n"}, "xml")
    assert parse_spans(text).spans["response"] == "line one\nline two"


def test_whitespace_between_and_around_spans_is_not_text_outside():
    text = "\n\n  " + render_spans(GOLD, "special", sep="\n \t\n") + "  \n"
    p = parse_spans(text)
    assert p.well_formed and p.issues == ()


# --------------------------------------------------------------------------- each diagnostic


def test_missing_span():
    text = render_spans({k: v for k, v in GOLD.items() if k != "reasoning"})
    p = parse_spans(text)
    assert not p.well_formed
    assert [(i.kind, i.span) for i in p.issues] == [(Issue.MISSING, "reasoning")]
    assert p.spans["reasoning"] is None and p.get("reasoning") is None


def test_none_and_empty_output_miss_all_four():
    for text in (None, "", "   \n"):
        p = parse_spans(text)
        assert [i.span for i in p.issues if i.kind == Issue.MISSING] == list(SPAN_NAMES)
        assert Issue.TEXT_OUTSIDE not in p.issue_kinds
        assert p.style is None


def test_plain_text_answer_is_text_outside_and_missing():
    p = parse_spans("I'm sorry to hear that. It sounds really hard.")
    assert {Issue.MISSING, Issue.TEXT_OUTSIDE} == p.issue_kinds
    assert "sorry to hear" in next(i for i in p.issues if i.kind == Issue.TEXT_OUTSIDE).detail


@pytest.mark.parametrize("blank", ["", "   ", "\n\t"])
def test_empty_span(blank):
    p = parse_spans(render_spans({**GOLD, "emotion": blank}, "xml"))
    assert not p.well_formed
    assert [(i.kind, i.span) for i in p.issues] == [(Issue.EMPTY, "emotion")]
    assert p.spans["emotion"] == ""


def test_duplicated_span_keeps_first_occurrence():
    text = render_spans(GOLD) + special("response", "a second answer")
    p = parse_spans(text)
    assert not p.well_formed
    assert [(i.kind, i.span) for i in p.issues] == [(Issue.DUPLICATED, "response")]
    assert p.spans["response"] == GOLD["response"]
    assert p.order == SPAN_NAMES  # a duplicate is not a new appearance


def test_out_of_order_spans():
    text = "".join(
        special(n, GOLD[n]) for n in ("understanding", "emotion", "reasoning", "response")
    )
    p = parse_spans(text)
    assert not p.well_formed
    [issue] = p.issues
    assert issue.kind == Issue.OUT_OF_ORDER
    assert issue.detail == "understanding>emotion>reasoning>response"
    assert p.spans == GOLD  # the content is still recovered
    assert p.order == ("understanding", "emotion", "reasoning", "response")


def test_unterminated_last_span_runs_to_the_end():
    text = (
        render_spans({k: v for k, v in GOLD.items() if k != "response"})
        + "<|response_begin|> cut off here"
    )
    p = parse_spans(text)
    assert not p.well_formed
    assert [(i.kind, i.span) for i in p.issues] == [(Issue.UNTERMINATED, "response")]
    assert p.spans["response"] == "cut off here"


def test_unterminated_middle_span_runs_to_the_next_tag():
    text = (
        xml("understanding", "u")
        + "<reasoning>r without close"
        + xml("emotion", "sad")
        + xml("response", "ok")
    )
    p = parse_spans(text)
    assert [(i.kind, i.span) for i in p.issues] == [(Issue.UNTERMINATED, "reasoning")]
    assert p.spans["reasoning"] == "r without close"
    assert p.spans["emotion"] == "sad"


def test_stray_close_tag():
    text = render_spans(GOLD, "xml") + "</emotion>"
    p = parse_spans(text)
    assert [(i.kind, i.span) for i in p.issues] == [(Issue.STRAY_CLOSE, "emotion")]
    assert p.well_formed  # stray closes are reported, but the four spans are intact


def test_mismatched_close_ends_open_span_unterminated():
    text = "<understanding>u</reasoning>" + render_spans(
        {k: GOLD[k] for k in SPAN_NAMES[1:]}, "xml"
    )
    p = parse_spans(text)
    assert {(i.kind, i.span) for i in p.issues} == {
        (Issue.UNTERMINATED, "understanding"),
        (Issue.STRAY_CLOSE, "reasoning"),
    }
    assert p.spans["understanding"] == "u"
    assert not p.well_formed


@pytest.mark.parametrize(
    "text, expected",
    [
        ("Sure! " + render_spans(GOLD), "Sure!"),
        (render_spans(GOLD) + " Hope this helps.", "Hope this helps."),
        (
            special("understanding", "u")
            + " between "
            + render_spans({k: GOLD[k] for k in SPAN_NAMES[1:]}),
            "between",
        ),
    ],
)
def test_text_outside(text, expected):
    p = parse_spans(text)
    [issue] = p.issues
    assert issue.kind == Issue.TEXT_OUTSIDE and issue.span is None
    assert expected in issue.detail
    assert p.well_formed  # not blocking: the paper's format reward only asks for the four spans


def test_text_outside_detail_is_clipped():
    p = parse_spans("x" * 10_000 + render_spans(GOLD))
    [issue] = issues_for("x" * 10_000 + render_spans(GOLD), Issue.TEXT_OUTSIDE)
    assert len(issue.detail) <= 80
    assert p.well_formed


def test_truncated_via_finish_reason():
    text = render_spans(GOLD)
    assert Issue.TRUNCATED in kinds_of(text, finish_reason="length")
    assert parse_spans(text, finish_reason="length").well_formed  # complete spans despite the limit
    assert kinds_of(text, finish_reason="stop") == set()
    assert kinds_of(text) == set()
    cut = text[: len(text) // 2]
    assert {Issue.TRUNCATED, Issue.UNTERMINATED} <= kinds_of(cut, finish_reason="length")


# --------------------------------------------------------------------------- <think> traces


def test_think_trace_is_stripped_and_kept():
    p = parse_spans("<think>\nLet me consider the user.\n</think>\n\n" + render_spans(GOLD))
    assert p.well_formed and p.issues == ()
    assert p.thinking == "Let me consider the user."
    assert p.spans == GOLD


def test_think_trace_case_insensitive_and_leading_whitespace():
    p = parse_spans("  \n<THINK>hmm</Think>" + render_spans(GOLD, "xml"))
    assert p.well_formed and p.thinking == "hmm"


def test_bare_close_think_ends_a_trace_from_the_prompt():
    p = parse_spans("the user is worried, so...\n</think>\n" + render_spans(GOLD))
    assert p.well_formed and p.issues == ()
    assert p.thinking == "the user is worried, so..."


def test_bare_close_think_after_a_trace_that_quotes_the_tags():
    """R1-style templates open <think> in the prompt; the trace often plans the tags it will write."""
    trace = "Format: <|understanding_begin|>...<|understanding_end|>, then <emotion>x</emotion>; and 1 < 2."
    p = parse_spans(trace + "\n</think>\n" + render_spans(GOLD))
    assert p.well_formed and p.issues == (), p.issues
    assert p.thinking == trace and p.spans == GOLD


def test_bare_close_think_after_the_spans_is_stray_text():
    p = parse_spans(render_spans(GOLD) + "\n</think>")
    assert p.thinking is None and p.spans == GOLD
    assert p.issue_kinds == {Issue.TEXT_OUTSIDE}


def test_unterminated_think():
    p = parse_spans("<think>I keep thinking " + render_spans(GOLD))
    assert Issue.UNTERMINATED_THINK in p.issue_kinds
    assert not p.well_formed
    assert p.thinking.startswith("I keep thinking")
    assert all(v is None for v in p.spans.values())


def test_spans_mentioning_think_inside_are_not_stripped():
    text = render_spans({**GOLD, "reasoning": "I wrote </think> by mistake"})
    p = parse_spans(text)
    assert p.well_formed and p.thinking is None
    assert p.spans["reasoning"] == "I wrote </think> by mistake"


def test_strip_think_returns_rest_trace_flag():
    assert strip_think("<think>a</think>b") == ("b", "a", False)
    assert strip_think("plain") == ("plain", None, False)
    assert strip_think("<think>never closed") == ("", "never closed", True)


# --------------------------------------------------------------------------- garbage and size


@pytest.mark.parametrize(
    "text",
    [
        "<understanding><reasoning><emotion><response>",
        "</response></emotion></reasoning></understanding>",
        "<|understanding_begin|><|understanding_begin|><|understanding_end|><|understanding_end|>",
        "<understand>x</understand><emotions>sad</emotions><|response|>hi<|/response|>",
        "<understanding>a<understanding>b</understanding></understanding>",
        "<<<>>><|<|>|>" * 50,
        "\x00\ufffd\U0001f600<emotion>\u200b</emotion>",
    ],
)
def test_garbage_and_nested_tags_never_raise_and_are_not_well_formed(text):
    p = parse_spans(text)
    assert not p.well_formed
    assert p.issues
    assert set(p.spans) == set(SPAN_NAMES)


def test_nested_same_tag_is_duplicated_and_stray_close():
    p = parse_spans("<understanding>a<understanding>b</understanding></understanding>")
    assert {Issue.DUPLICATED, Issue.UNTERMINATED, Issue.STRAY_CLOSE} <= p.issue_kinds
    assert p.spans["understanding"] == "a"


def test_unknown_lookalike_tags_are_just_text():
    p = parse_spans("<understand>x</understand>")
    assert p.style is None
    assert {Issue.MISSING, Issue.TEXT_OUTSIDE} == p.issue_kinds


def test_huge_inputs_parse():
    """Hostile sizes are parsed correctly (their timing: benchmarks/bench_data.py, HOSTILE_SPANS)."""
    big_span = "word " * 200_000  # ~1 MB inside one span
    many_tags = "<emotion>sad</emotion>" * 50_000  # 50k duplicated spans
    whitespace_bomb = "<emotion" + " " * 200_000  # an unclosed tag followed by whitespace
    p1 = parse_spans(render_spans({**GOLD, "reasoning": big_span}))
    p2 = parse_spans(many_tags)
    p3 = parse_spans(whitespace_bomb * 5)
    p4 = parse_spans("<think>" + "z" * 1_000_000)
    assert p1.well_formed and len(p1.spans["reasoning"]) == len(big_span.strip())
    assert len(issues_for(many_tags, Issue.DUPLICATED)) == 49_999
    assert not p2.well_formed and not p3.well_formed and not p4.well_formed


def test_issue_str_and_blocking_set():
    p = parse_spans("<emotion></emotion>")
    assert "emotion: empty" in [str(i) for i in p.issues]
    assert Issue.TEXT_OUTSIDE not in BLOCKING_ISSUES and Issue.STRAY_CLOSE not in BLOCKING_ISSUES
    assert Issue.TRUNCATED not in BLOCKING_ISSUES
    assert {Issue.MISSING, Issue.EMPTY, Issue.OUT_OF_ORDER} <= BLOCKING_ISSUES


# --------------------------------------------------------------------------- render and markers


def test_render_skips_missing_and_none():
    text = render_spans({"response": "hi", "emotion": None})  # type: ignore[dict-item]
    assert text == "<|response_begin|>hi<|response_end|>"
    assert [i.span for i in parse_spans(text).issues if i.kind == Issue.MISSING] == list(
        SPAN_NAMES[:3]
    )


def test_span_markers():
    assert span_markers("special")[:2] == ["<|understanding_begin|>", "<|understanding_end|>"]
    assert span_markers("xml")[-2:] == ["<response>", "</response>"]
    assert len(set(span_markers("special") + span_markers("xml"))) == 16


# --------------------------------------------------------------------------- properties

FRAGMENTS = [
    *span_markers("special"),
    *span_markers("xml"),
    "<think>",
    "</think>",
    "<",
    ">",
    "|",
    "/",
    "<|",
    "|>",
    "_begin",
    "_end",
    "understanding",
    "emotion",
    " ",
    "\n",
    "text",
    "<response ",
    "</",
]
# span texts may hold anything but span tags (<think> and </think> included: they must survive)
TAG_LIKE = re.compile(r"<\s*/?\s*\|?\s*(understanding|reasoning|emotion|response)", re.IGNORECASE)

fast = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@fast
@given(
    st.one_of(st.text(), st.lists(st.sampled_from(FRAGMENTS), max_size=40).map("".join)),
    st.sampled_from([None, "stop", "length"]),
)
def test_parse_never_raises(text, finish_reason):
    p = parse_spans(text, finish_reason=finish_reason)
    assert set(p.spans) == set(SPAN_NAMES)
    assert p.well_formed == (not (p.issue_kinds & BLOCKING_ISSUES))
    for name, value in p.spans.items():
        assert value is None or value == value.strip()
        missing = any(i.kind == Issue.MISSING and i.span == name for i in p.issues)
        assert missing == (value is None)
    assert (Issue.TRUNCATED in p.issue_kinds) == (finish_reason == "length")


span_text = st.one_of(
    st.text(st.characters(blacklist_categories=("Cs",)), max_size=60),
    st.lists(
        st.sampled_from(
            ["<think>", "</think>", "</THINK>", "<", ">", "|", " ", "\n", "a", "_end|>"]
        ),
        max_size=12,
    ).map("".join),
).filter(lambda t: not TAG_LIKE.search(t))


@fast
@given(
    st.fixed_dictionaries({n: span_text for n in SPAN_NAMES}),
    st.sampled_from(["special", "xml"]),
    st.sampled_from(["\n", "", " \n "]),
)
def test_render_parse_round_trip(spans, style, sep):
    p = parse_spans(render_spans(spans, style, sep=sep))
    assert p.spans == {n: t.strip() for n, t in spans.items()}
    assert p.well_formed == all(t.strip() for t in spans.values())
    assert [i.span for i in p.issues] == [n for n in SPAN_NAMES if not spans[n].strip()]
    assert p.issue_kinds <= {Issue.EMPTY}
    assert p.style == style and p.thinking is None
