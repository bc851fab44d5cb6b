"""The few-shot task: K fixed example exchanges from the train split, recorded in run.json."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from kardiabench.api import generation_config
from kardiabench.cli import main
from kardiabench.data import expand, load_dialogues
from kardiabench.data.load import DataError
from kardiabench.spans import parse_spans

TASK = "kardiabench_instructed_fewshot"


def shots(**kw):
    kw.setdefault("task", TASK)
    return generation_config("baseline:majority", "out", data="sample", **kw).task.prompt.few_shot


def test_examples_come_from_first_turns_of_training_dialogues_never_the_evaluated_split():
    drawn = shots()
    assert len(drawn) == 3 and all(s.item_id and s.item_id.endswith("-t0") for s in drawn)
    train = {it.item_id: it for it in expand(load_dialogues("sample", "train").dialogues)}
    test_dialogues = {it.dialogue_id for it in expand(load_dialogues("sample", "test").dialogues)}
    for s in drawn:
        item = train[s.item_id]
        assert s.user == item.user_message and item.dialogue_id not in test_dialogues
        assert (
            parse_spans(s.assistant).well_formed
            and parse_spans(s.assistant).spans["response"] == item.gold.response
        )


def test_examples_are_fixed_by_the_seed(tmp_path):
    ids = [s.item_id for s in shots()]
    assert [s.item_id for s in shots()] == ids
    other = tmp_path / "other_seed.yaml"
    text = (Path(__file__).parents[1] / "tasks" / f"{TASK}.yaml").read_text()
    other.write_text(
        text.replace(f"name: {TASK}", "name: other_seed").replace(
            "fewshot_seed: 0", "fewshot_seed: 1"
        )
    )
    assert [s.item_id for s in shots(task=str(other))] != ids


def test_the_prompt_shows_the_examples_between_system_prompt_and_dialogue():
    cfg = generation_config("baseline:majority", "out", data="sample", task=TASK)
    item = next(iter(expand(load_dialogues("sample", "test").dialogues)))
    msgs = cfg.task.messages(item)
    assert [m["role"] for m in msgs] == [
        "system",
        "user",
        "assistant",
        "user",
        "assistant",
        "user",
        "assistant",
        "user",
    ]
    assert (
        msgs[1]["content"] == cfg.task.prompt.few_shot[0].user
        and msgs[-1]["content"] == item.user_message
    )


def test_evaluating_the_train_split_is_refused():
    with pytest.raises(DataError, match="train split"):
        shots(split="train")


def test_run_json_records_which_items_the_examples_are_and_the_run_resumes(tmp_path):
    out = tmp_path / "run"
    argv = [
        "generate",
        "--model",
        "baseline:majority",
        "--task",
        TASK,
        "--data",
        "sample",
        "--limit",
        "2",
        "--output",
        str(out),
        "--no-cache",
        "--no-progress",
    ]
    assert main(argv) == 0
    prompt = json.loads((out / "run.json").read_text())["task_config"]["prompt"]
    assert prompt["num_fewshot"] == 3 and [s["item_id"] for s in prompt["few_shot"]] == [
        s.item_id for s in shots()
    ]
    assert main(argv) == 0  # same examples drawn again: same run
