import pytest

from kardiabench.emotions import EMOTIONS
from kardiabench.records import GoldSpans, Item, Message
from kardiabench.tasks import TaskError, list_tasks, load_task


def item():
    return Item(
        "d1-t1",
        "d1",
        1,
        "p",
        "INFP",
        "sit",
        "person",
        "SYSTEM PROMPT",
        (Message("user", "u0"), Message("assistant", "a0")),
        "current",
        GoldSpans("u", "r", "sad", "resp"),
        "sad",
    )


def test_builtin_tasks_load():
    names = {t.name for t in list_tasks()}
    assert {"kardiabench", "kardiabench_instructed", "kardiabench_emotion"} <= names


def test_paper_task_uses_dataset_prompt_and_history():
    msgs = load_task("kardiabench").messages(item())
    assert msgs == [
        {"role": "system", "content": "SYSTEM PROMPT"},
        {"role": "user", "content": "u0"},
        {"role": "assistant", "content": "a0"},
        {"role": "user", "content": "current"},
    ]


def test_instructed_task_lists_all_labels():
    system = load_task("kardiabench_instructed").messages(item())[0]["content"]
    assert system.startswith("SYSTEM PROMPT")
    assert all(e in system for e in EMOTIONS)
    assert "{labels}" not in system


def test_user_task_dir_and_few_shot(tmp_path):
    (tmp_path / "mine.yaml").write_text(
        "name: mine\ndescription: d\nprompt:\n  few_shot:\n    - user: hi\n      assistant: hello\nmetrics: [emotion]\n"
    )
    task = load_task("mine", [str(tmp_path)])
    msgs = task.messages(item())
    assert msgs[1:3] == [
        {"role": "user", "content": "hi"},
        {"role": "assistant", "content": "hello"},
    ]
    assert not task.uses_judge


@pytest.mark.parametrize(
    "body, field",
    [
        ("name: bad\ndescription: d\ngeneration:\n  temperature: -1\n", "generation.temperature"),
        ("name: bad\ndescription: d\nhistory: everything\n", "history"),
        ("name: bad\ndescription: d\nmetricz: [emotion]\n", "metricz"),
        ("name: bad\n", "description"),
    ],
)
def test_malformed_task_names_file_and_field(tmp_path, body, field):
    (tmp_path / "bad.yaml").write_text(body)
    with pytest.raises(TaskError) as e:
        load_task("bad", [str(tmp_path)])
    assert str(tmp_path / "bad.yaml") in str(e.value)
    assert f"'{field}'" in str(e.value)


def test_unknown_task_lists_available():
    with pytest.raises(TaskError, match="kardiabench_emotion"):
        load_task("nope")


def test_tasks_and_judges_ship_inside_the_package():
    """kardiabench/resources/{tasks,judges} link to the top-level folders, so a wheel carries them."""
    from pathlib import Path

    import kardiabench

    res = Path(kardiabench.__file__).parent / "resources"
    assert sorted(p.name for p in (res / "tasks").glob("*.yaml")) == sorted(
        p.name for p in (res.parent.parent / "tasks").glob("*.yaml")
    )
    assert (res / "judges" / "rubric.yaml").is_file() and (
        res / "judges" / "judge_prompt.md"
    ).is_file()
