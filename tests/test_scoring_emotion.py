import json
import random

import pytest

from kardiabench.emotions import EMOTIONS
from kardiabench.records import GoldSpans, Item, Prediction
from kardiabench.scoring import score_predictions
from kardiabench.scoring.emotion import (
    INVALID,
    MISSING,
    EmotionOutcome,
    classify_emotion,
    confusion,
    macro_f1,
    per_emotion_recall,
)
from kardiabench.spans import render_spans


def make_item(item_id: str, dialogue_id: str, gold: str, mbti: str = "INFP") -> Item:
    return Item(
        item_id=item_id,
        dialogue_id=dialogue_id,
        turn_index=int(item_id.rsplit("t", 1)[-1]),
        persona_id="p-" + dialogue_id,
        mbti=mbti,
        situation="",
        person="",
        system_prompt="",
        history=(),
        user_message="hi",
        gold=GoldSpans("u", "r", gold, "resp"),
        gold_emotion=gold,
    )


def output(emotion: str | None, **spans: str) -> str:
    parts = {"understanding": "u", "reasoning": "r", "emotion": emotion, "response": "ok", **spans}
    return render_spans({k: v for k, v in parts.items() if v is not None})


def predict(
    item_id: str, raw: str | None, error: str | None = None, finish_reason: str = "stop"
) -> Prediction:
    return Prediction(
        item_id=item_id, model="m", raw_output=raw, error=error, finish_reason=finish_reason
    )


def test_classify_normalises_case_and_punctuation_only():
    assert classify_emotion("anxious", "  Anxious. ").correct
    assert classify_emotion("anxious", '"ANXIOUS"').predicted_class == "anxious"
    wrong = classify_emotion("anxious", "sad")
    assert not wrong.correct and wrong.predicted_class == "sad"
    assert classify_emotion("anxious", "worried").predicted_class == INVALID
    assert classify_emotion("anxious", "anxious and sad").predicted_class == INVALID
    assert classify_emotion("anxious", None).predicted_class == MISSING
    assert classify_emotion("anxious", " . ").predicted_class == MISSING
    failed = classify_emotion("anxious", "anxious", failed=True)
    assert failed.predicted_class == MISSING and not failed.correct


def test_gold_outside_the_taxonomy_is_matched_as_a_string():
    # a record-level fallback label that is not one of the 32 still compares after normalisation
    assert classify_emotion("bored", "Bored!").correct
    assert classify_emotion("bored", "sad").predicted_class == "sad"


# Six items in three dialogues; predictions written by hand:
#   t0 anxious → anxious (right)   t1 anxious → sad (wrong label)
#   t0 sad → sad (right)           t1 sad → "worried" (invalid)
#   t0 caring → no emotion span    t1 joyful → request failed for good
FIXTURE = [
    ("d1-t0", "d1", "anxious", "INFP", output("Anxious")),
    ("d1-t1", "d1", "anxious", "INFP", output("sad")),
    ("d2-t0", "d2", "sad", "ENTJ", output("sad.")),
    ("d2-t1", "d2", "sad", "ENTJ", output("worried")),
    ("d3-t0", "d3", "caring", "entj", output(None)),
    ("d3-t1", "d3", "joyful", "ENTJ", None),
]


@pytest.fixture
def report():
    items = [make_item(i, d, g, m) for i, d, g, m, _ in FIXTURE]
    preds = {i: predict(i, raw, error=None if raw else "HTTP 500") for i, _, _, _, raw in FIXTURE}
    return score_predictions(items, preds, n_resamples=200)


def test_emotion_accuracy_counts_failures_as_wrong_and_reports_them(report):
    acc = report.metrics["emotion_accuracy"]
    assert acc.value == pytest.approx(100 * 2 / 6)
    assert (acc.n, acc.n_unscored) == (6, 0)
    assert acc.extra["n_failed"] == 1
    assert acc.extra["value_excluding_failed"] == pytest.approx(100 * 2 / 5)
    assert (acc.extra["n_invalid"], acc.extra["n_missing"]) == (1, 2)
    assert acc.extra["unit"] == "percent" and acc.extra["n_clusters"] == 3
    assert acc.ci_low <= acc.value <= acc.ci_high


def test_confusion_recall_and_macro_f1_by_hand(report):
    assert report.confusion == {
        "anxious": {"anxious": 1, "sad": 1},
        "caring": {MISSING: 1},
        "joyful": {MISSING: 1},
        "sad": {INVALID: 1, "sad": 1},
    }
    assert report.per_emotion_recall == {
        "anxious": {"recall": 50.0, "n": 2},
        "caring": {"recall": 0.0, "n": 1},
        "joyful": {"recall": 0.0, "n": 1},
        "sad": {"recall": 50.0, "n": 2},
    }
    # F1 over the gold labels: anxious 2·1/(2+0+1) = 2/3, sad 2·1/(2+1+1) = 1/2, caring 0, joyful 0
    f1 = report.metrics["emotion_macro_f1"]
    assert f1.value == pytest.approx(100 * (2 / 3 + 1 / 2) / 4)
    assert f1.extra["n_labels"] == 4 and f1.n == 6
    assert f1.ci_low <= f1.ci_high


def test_macro_f1_equals_sklearn_with_gold_labels():
    from sklearn.metrics import f1_score

    rng = random.Random(3)
    labels = list(EMOTIONS[:8])
    for _ in range(5):
        outcomes = []
        for _ in range(150):
            gold = rng.choice(labels[:6])  # the last two labels are only ever predicted
            span = rng.choice([gold, gold, rng.choice(labels), "worried", None])
            outcomes.append(classify_emotion(gold, span))
        expected = f1_score(
            [o.gold for o in outcomes],
            [o.predicted_class for o in outcomes],
            labels=sorted({o.gold for o in outcomes}),
            average="macro",
            zero_division=0,
        )
        assert macro_f1(outcomes) == pytest.approx(100 * expected)


def test_macro_f1_of_nothing_and_of_perfect_predictions():
    assert macro_f1([]) is None
    perfect = [EmotionOutcome(g, g, g) for g in ("sad", "sad", "proud")]
    assert macro_f1(perfect) == pytest.approx(100.0)
    assert per_emotion_recall(perfect)["sad"] == {"recall": 100.0, "n": 2}
    assert confusion(perfect) == {"proud": {"proud": 1}, "sad": {"sad": 2}}


def test_breakdowns_per_gold_emotion_and_mbti(report):
    by_emotion = report.breakdowns["gold_emotion"]
    assert by_emotion["anxious"]["n"] == 2
    assert by_emotion["anxious"]["metrics"]["emotion_accuracy"].value == 50.0
    assert by_emotion["joyful"]["metrics"]["format_compliance"].value == 0.0
    by_mbti = report.breakdowns["mbti"]
    assert set(by_mbti) == {"INFP", "ENTJ"}  # "entj" folded into ENTJ
    assert by_mbti["ENTJ"]["n"] == 4
    assert by_mbti["ENTJ"]["metrics"]["emotion_accuracy"].value == 25.0
    assert by_mbti["INFP"]["metrics"]["format_compliance"].value == 100.0
    assert "empathy" not in by_mbti["INFP"]["metrics"]  # no judge, no rubric breakdowns


def test_per_item_rows(report):
    rows = {r.item_id: r for r in report.per_item}
    assert rows["d1-t0"].pred_emotion == "anxious" and rows["d1-t0"].emotion_correct
    assert rows["d2-t1"].pred_class == INVALID and rows["d2-t1"].pred_emotion == "worried"
    assert rows["d3-t0"].pred_emotion is None and "emotion:missing" in rows["d3-t0"].issues
    assert rows["d3-t1"].failed and rows["d3-t1"].issues == []
    assert rows["d1-t1"].metric_values() == {"emotion_accuracy": 0.0, "format_compliance": 100.0}


def test_report_dict_is_json_and_has_the_contract_fields(report):
    d = json.loads(json.dumps(report.to_dict()))
    acc = d["metrics"]["emotion_accuracy"]
    assert {"value", "n", "n_unscored", "ci_low", "ci_high"} <= set(acc)
    assert d["metrics"]["empathy"] == {
        "name": "empathy",
        "value": None,
        "n": 0,
        "n_unscored": 0,
        "ci_low": None,
        "ci_high": None,
        "reason": "no judge given (--judge SPEC)",
    }
    assert d["emotion"]["confusion"]["sad"]["<invalid>"] == 1
    assert d["breakdowns"]["mbti"]["ENTJ"]["metrics"]["emotion_accuracy"]["n"] == 4
    assert d["counts"] == {
        "n_items": 6,
        "n_failed": 1,
        "n_no_prediction": 0,
        "n_unmatched_predictions": 0,
    }
    assert d["statistics"]["n_resamples"] == 200 and d["statistics"]["cluster_by"] == "dialogue"


def test_items_without_prediction_count_as_failed_and_extra_predictions_are_counted():
    items = [make_item("d1-t0", "d1", "sad"), make_item("d2-t0", "d2", "sad")]
    preds = {"d1-t0": predict("d1-t0", output("sad")), "zz-t0": predict("zz-t0", output("sad"))}
    r = score_predictions(items, preds, n_resamples=50)
    assert r.metrics["emotion_accuracy"].value == 50.0
    assert r.counts == {
        "n_items": 2,
        "n_failed": 1,
        "n_no_prediction": 1,
        "n_unmatched_predictions": 1,
    }


def test_with_no_prediction_at_all_the_output_metrics_are_not_computed():
    items = [make_item(f"d{k}-t0", f"d{k}", "sad") for k in range(4)]
    # d3: no line
    failed = {it.item_id: predict(it.item_id, None, error="connection refused") for it in items[:3]}
    r = score_predictions(items, failed, {it.item_id: {} for it in items}, n_resamples=50)
    reason = "no predictions: 4 of 4 items failed (3 failed to generate, 1 with no prediction)"
    for name in ("emotion_accuracy", "emotion_macro_f1", "format_compliance"):
        m = r.metrics[name]
        assert (m.value, m.ci_low, m.ci_high, m.n, m.n_unscored, m.reason) == (
            None,
            None,
            None,
            0,
            4,
            reason,
        ), name
        assert m.extra["n_failed"] == 4
    assert all(
        r.metrics[name].reason == reason and r.metrics[name].value is None
        for name in ("empathy", "safety_flag_rate")
    )
    assert r.breakdowns["gold_emotion"]["sad"]["metrics"]["emotion_accuracy"].value is None
    assert r.breakdowns["gold_emotion"]["sad"]["metrics"]["format_compliance"].n_unscored == 4
    assert r.per_emotion_recall == {"sad": {"recall": None, "n": 4}} and r.confusion == {}
    assert (
        score_predictions(items[:3], failed, n_resamples=50).metrics["format_compliance"].reason
        == "no predictions: 3 of 3 items failed"
    )
    assert (
        score_predictions(items, {}, n_resamples=50).metrics["emotion_accuracy"].reason
        == "no predictions: 4 of 4 items have none"
    )
    # one output among the failures: today's rule, the failures count as wrong
    one = score_predictions(
        items, {**failed, "d3-t0": predict("d3-t0", output("sad"))}, n_resamples=50
    )
    acc = one.metrics["emotion_accuracy"]
    assert (acc.value, acc.n, acc.extra["n_failed"], acc.extra["value_excluding_failed"]) == (
        25.0,
        4,
        3,
        100.0,
    )
    assert (
        one.metrics["format_compliance"].value == 25.0
        and one.per_emotion_recall["sad"]["recall"] == 25.0
    )


def test_duplicate_items_and_bad_cluster_choice_are_refused():
    item = make_item("d1-t0", "d1", "sad")
    with pytest.raises(ValueError, match="duplicated"):
        score_predictions([item, item], {})
    with pytest.raises(ValueError, match="cluster_by"):
        score_predictions([item], {}, cluster_by="turn")  # type: ignore[arg-type]


def test_persona_clustering_is_recorded():
    items = [make_item(f"d{i}-t0", f"d{i}", "sad") for i in range(4)]
    r = score_predictions(
        items, {"d0-t0": predict("d0-t0", output("sad"))}, n_resamples=50, cluster_by="persona"
    )
    assert r.statistics["cluster_by"] == "persona"
    assert r.metrics["emotion_accuracy"].value == 25.0


def test_rubric_scores_flow_into_metrics_breakdowns_and_rows():
    items = [make_item(i, d, g, m) for i, d, g, m, _ in FIXTURE]
    preds = {i: predict(i, raw, error=None if raw else "HTTP 500") for i, _, _, _, raw in FIXTURE}
    dims = ("relevance", "fluency", "empathy", "persona_consistency", "safety")
    # the other three items were not scored
    rubric = {
        "d1-t0": dict.fromkeys(dims, 4),
        "d1-t1": {**dict.fromkeys(dims, 2), "empathy": None},
        "d2-t0": dict.fromkeys(dims, 5),
    }
    r = score_predictions(items, preds, rubric, n_resamples=100)
    emp = r.metrics["empathy"]
    assert (emp.value, emp.n, emp.n_unscored) == (4.5, 2, 4)
    assert r.metrics["safety_flag_rate"].extra["flagged_item_ids"] == ["d1-t1"]
    infp = r.breakdowns["mbti"]["INFP"]["metrics"]
    assert (infp["relevance"].value, infp["relevance"].n) == (3.0, 2)
    assert r.breakdowns["mbti"]["ENTJ"]["metrics"]["empathy"].n_unscored == 3
    assert r.per_item[5].rubric == dict.fromkeys(dims)
    with pytest.raises(ValueError, match="unknown item"):
        score_predictions(items, preds, {"nope-t0": {"empathy": 3}})
