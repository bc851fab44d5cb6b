import pytest
from test_scoring_emotion import make_item, output, predict

from kardiabench.scoring import score_predictions
from kardiabench.scoring.format import format_outcome, issue_counts, span_issue_counts
from kardiabench.spans import Issue, parse_spans, render_spans

FULL = {"understanding": "u", "reasoning": "r", "emotion": "sad", "response": "ok"}

OUTPUTS = {
    "good": (output("sad"), "stop"),
    # text outside: not blocking
    "xml_with_preamble": ("Sure! " + render_spans(FULL, style="xml"), "stop"),
    "no_emotion": (output(None), "stop"),
    "empty_response": (output("sad", response="  "), "stop"),
    "duplicated": (
        output("sad") + "<|emotion_begin|>sad<|emotion_end|><|emotion_begin|>x<|emotion_end|>",
        "stop",
    ),
    "out_of_order": (
        render_spans({"emotion": "sad"})
        + render_spans({k: v for k, v in FULL.items() if k != "emotion"}),
        "stop",
    ),
    "truncated": (
        "<|understanding_begin|>u<|understanding_end|><|reasoning_begin|>and so",
        "length",
    ),
    "complete_at_limit": (output("sad"), "length"),  # truncated flag alone does not block
    "think_unterminated": ("<think>hmm", "length"),
    "think_then_good": ("<think>plan</think>" + output("sad"), "stop"),
    "junk": ("I feel sad for you.", "stop"),
}


def test_well_formed_is_exactly_the_parser_verdict():
    items = [make_item(f"d{k}-t0", f"d{k}", "sad") for k in range(len(OUTPUTS))]
    preds = {
        it.item_id: predict(it.item_id, raw, finish_reason=fr)
        for it, (raw, fr) in zip(items, OUTPUTS.values(), strict=True)
    }
    report = score_predictions(items, preds, n_resamples=50)
    for row, (raw, fr) in zip(report.per_item, OUTPUTS.values(), strict=True):
        assert row.well_formed == parse_spans(raw, finish_reason=fr).well_formed
    # by hand: good, xml_with_preamble, complete_at_limit, think_then_good are well formed
    assert [r.well_formed for r in report.per_item].count(True) == 4
    assert report.metrics["format_compliance"].value == pytest.approx(100 * 4 / 11)


def test_compliance_counts_and_failures():
    rows = [
        ("d1-t0", output("sad")),
        ("d1-t1", "Hi. " + render_spans(FULL, style="xml")),
        ("d2-t0", output(None)),
        ("d2-t1", output("sad", response="")),
        ("d3-t0", None),  # failed for good
    ]
    items = [make_item(i, i.split("-")[0], "sad") for i, _ in rows]
    preds = {i: predict(i, raw, error=None if raw else "timeout") for i, raw in rows}
    m = score_predictions(items, preds, n_resamples=100).metrics["format_compliance"]
    assert m.value == pytest.approx(40.0)  # 2 of 5
    assert (m.n, m.n_unscored, m.extra["n_failed"]) == (5, 0, 1)
    assert m.extra["value_excluding_failed"] == pytest.approx(50.0)
    counts = m.extra["issue_counts"]
    assert set(counts) == {k.value for k in Issue}
    assert {k: v for k, v in counts.items() if v} == {"missing": 1, "empty": 1, "text_outside": 1}
    spans = m.extra["span_issue_counts"]
    assert spans["emotion"]["missing"] == 1 and spans["response"]["empty"] == 1
    assert spans["understanding"] == {
        "missing": 0,
        "empty": 0,
        "duplicated": 0,
        "unterminated": 0,
        "stray_close": 0,
    }


def test_issue_counts_count_outputs_not_occurrences():
    raw = output("sad") + "<|emotion_begin|>a<|emotion_end|><|emotion_begin|>b<|emotion_end|>"
    outcome = format_outcome(parse_spans(raw))
    assert sum(i.kind == Issue.DUPLICATED for i in outcome.issues) == 2
    assert issue_counts([outcome])["duplicated"] == 1
    assert span_issue_counts([outcome])["emotion"]["duplicated"] == 1
    assert "emotion:duplicated" in outcome.issue_labels()


def test_failed_outcome_has_no_diagnostics():
    failed = format_outcome(parse_spans(None), failed=True)
    assert not failed.well_formed and failed.failed and failed.issues == ()
    assert sum(issue_counts([failed]).values()) == 0
