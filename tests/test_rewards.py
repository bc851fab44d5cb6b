"""The training rewards are the benchmark's metrics: on the bundled sample they agree item by item
with the per-item rows of scoring (format reward 1 exactly where the item is compliant, etc.)."""

import pytest

from kardiabench.data import expand, load_dialogues
from kardiabench.emotions import EMOTIONS
from kardiabench.records import Prediction
from kardiabench.scoring import score_predictions
from kardiabench.scoring.rewards import completion_text, emotion_reward, format_reward
from kardiabench.spans import render_spans


def varied_output(k: int, gold) -> str:
    """Nine kinds of output, right and wrong, cycling over the items."""
    spans = {
        "understanding": gold.understanding,
        "reasoning": gold.reasoning,
        "emotion": gold.emotion,
        "response": gold.response,
    }
    wrong = (
        EMOTIONS[(EMOTIONS.index(gold.emotion) + 1) % len(EMOTIONS)]
        if gold.emotion in EMOTIONS
        else "sad"
    )
    kinds = [
        render_spans(spans),
        render_spans(spans, style="xml"),
        render_spans({**spans, "emotion": wrong}),
        render_spans({**spans, "emotion": f"  {gold.emotion.upper()}. "}),
        render_spans({k2: v for k2, v in spans.items() if k2 != "emotion"}),
        render_spans({**spans, "response": " "}),
        "<think>first, the feeling</think>" + render_spans(spans),
        render_spans(spans)[:-20],  # torn end: the response span never closes
        f"I can tell you feel {gold.emotion}.",
    ]
    return kinds[k % len(kinds)]


@pytest.fixture(scope="module")
def sample_items():
    return list(expand(load_dialogues("sample", "test").dialogues))


def test_rewards_agree_with_results_item_by_item(sample_items):
    outputs = [varied_output(k, it.gold) for k, it in enumerate(sample_items)]
    preds = {
        it.item_id: Prediction(it.item_id, "m", out)
        for it, out in zip(sample_items, outputs, strict=True)
    }
    rows = score_predictions(sample_items, preds, n_resamples=10).per_item
    fmt = format_reward(outputs)
    emo = emotion_reward(outputs, gold_emotion=[it.gold_emotion for it in sample_items])
    assert fmt == [1.0 if r.well_formed else 0.0 for r in rows]
    assert emo == [1.0 if r.emotion_correct else 0.0 for r in rows]
    assert 0 < sum(fmt) < len(rows) and 0 < sum(emo) < len(rows)  # both outcomes occur


def test_conversational_completions_and_trl_keywords(sample_items):
    it = sample_items[0]
    text = varied_output(0, it.gold)
    chat = [{"role": "assistant", "content": text}]
    kw = {"prompts": ["p"], "completion_ids": [[1, 2]], "trainer_state": None}
    assert format_reward([chat], **kw) == format_reward([text]) == [1.0]
    assert emotion_reward([chat], gold_emotion=[it.gold_emotion], **kw) == [1.0]
    assert (
        completion_text([{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}])
        == "a"
    )
    assert completion_text([]) == ""


def test_emotion_reward_needs_one_gold_label_per_completion():
    with pytest.raises(ValueError, match="2 completions but 1 gold_emotion"):
        emotion_reward(["a", "b"], gold_emotion=["sad"])


def test_item_round_trips_through_a_datasets_row(sample_items):
    from datasets import Dataset

    ds = Dataset.from_list([it.to_dict() for it in sample_items[:12]])
    back = [type(it).from_dict(row) for it, row in zip(sample_items, ds, strict=False)]
    assert back == sample_items[:12]
    assert any(it.history for it in back) and all(isinstance(it.history, tuple) for it in back)


def test_rewards_agree_with_results_json_of_a_scored_run(sample_items, tmp_path):
    """Through the files a user gets: `score --predictions` on the sample, then the rewards of the
    same outputs equal items.jsonl item by item and results.json on average."""
    import json

    from kardiabench.cli import main

    outputs = {it.item_id: varied_output(k, it.gold) for k, it in enumerate(sample_items)}
    preds = tmp_path / "preds.jsonl"
    preds.write_text(
        "".join(json.dumps({"item_id": i, "raw_output": o}) + "\n" for i, o in outputs.items())
    )
    out = tmp_path / "scored"
    assert (
        main(
            [
                "score",
                "--predictions",
                str(preds),
                "--data",
                "sample",
                "--output",
                str(out),
                "--resamples",
                "10",
            ]
        )
        == 0
    )
    rows = [json.loads(line) for line in (out / "items.jsonl").read_text().splitlines()]
    gold = {it.item_id: it.gold_emotion for it in sample_items}
    texts = [outputs[r["item_id"]] for r in rows]
    fmt = format_reward(texts)
    emo = emotion_reward(texts, gold_emotion=[gold[r["item_id"]] for r in rows])
    assert fmt == [1.0 if r["well_formed"] else 0.0 for r in rows]
    assert emo == [1.0 if r["emotion_correct"] else 0.0 for r in rows]
    metrics = json.loads((out / "results.json").read_text())["metrics"]
    assert metrics["format_compliance"]["value"] == pytest.approx(100 * sum(fmt) / len(fmt))
    assert metrics["emotion_accuracy"]["value"] == pytest.approx(100 * sum(emo) / len(emo))
