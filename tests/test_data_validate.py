"""Record validation: every problem names the file, the editor's 1-based line and the field."""

from __future__ import annotations

import copy
import json

import pytest
from fakehub import jsonl
from helpers import make_dialogue

from kardiabench.data import Problem, load_dialogues, validate_record
from kardiabench.records import SourceRef
from kardiabench.spans import render_spans

REF = SourceRef("f.jsonl", 7)


def rec(user: str = "a", turns: int = 2) -> dict:
    return make_dialogue(user, turns, emotions=["anxious", "hopeful"])


def problems_of(raw) -> list[Problem]:
    dialogue, problems = validate_record(raw, REF)
    assert (dialogue is None) == bool(problems)  # a record with any problem is never built
    return problems


def only(raw) -> Problem:
    [p] = problems_of(raw)
    assert p.source == REF
    return p


def test_valid_record_builds_a_dialogue():
    dialogue, problems = validate_record(rec(), REF)
    assert problems == [] and dialogue is not None
    assert dialogue.source == REF and dialogue.anon_username == "a" and len(dialogue.messages) == 5


@pytest.mark.parametrize(
    "field", ["person", "mbti", "emotion", "situation", "anon_username", "messages"]
)
def test_missing_field(field):
    raw = rec()
    del raw[field]
    p = only(raw)
    assert (p.field, p.kind, p.message) == (field, "missing_field", "missing field")
    assert str(p) == f"f.jsonl:7: {field}: missing field"


def test_null_field_is_missing_and_wrong_type_is_reported():
    raw = rec()
    raw["situation"] = None
    raw["mbti"] = 4
    assert {(p.field, p.kind) for p in problems_of(raw)} == {
        ("situation", "missing_field"),
        ("mbti", "field_type"),
    }
    raw = rec()
    raw["messages"] = "hello"
    assert (only(raw).field, only(raw).kind) == ("messages", "field_type")


def test_record_level_emotion_outside_taxonomy():
    raw = rec()
    raw["emotion"] = "happy"
    p = only(raw)
    assert (
        (p.field, p.kind) == ("emotion", "emotion") and "'happy'" in p.message and "32" in p.message
    )
    raw["emotion"] = " Anxious. "  # normalised, so valid
    assert problems_of(raw) == []


def test_span_level_emotion_outside_taxonomy():
    raw = rec()
    raw["messages"][4]["content"] = render_spans(
        {"understanding": "u", "reasoning": "r", "emotion": "anxiety", "response": "ok"}
    )
    p = only(raw)
    assert (p.field, p.kind) == ("messages[4].content", "emotion") and "'anxiety'" in p.message


@pytest.mark.parametrize(
    "mutate, field",
    [
        (lambda m: m.__setitem__(2, {"role": "user", "content": "again"}), "messages[2].role"),
        (
            lambda m: m.__setitem__(1, {"role": "assistant", "content": m[2]["content"]}),
            "messages[1].role",
        ),
        (lambda m: m.insert(3, {"role": "tool", "content": "x"}), "messages[3].role"),
        (lambda m: m.__setitem__(0, {"role": "user", "content": "hi"}), "messages[0].role"),
    ],
)
def test_roles_not_alternating(mutate, field):
    raw = rec()
    mutate(raw["messages"])
    ps = problems_of(raw)
    assert any(p.field == field and p.kind == "roles" for p in ps), ps


def test_dialogue_ending_with_user_turn_or_without_assistant():
    raw = rec()
    raw["messages"].append({"role": "user", "content": "one more thing"})
    p = only(raw)
    assert (p.field, p.kind) == ("messages[5].role", "roles")
    raw["messages"] = raw["messages"][:2]
    assert only(raw).message == "no assistant turn"
    raw["messages"] = []
    assert (only(raw).field, only(raw).message) == ("messages", "empty list")


def test_message_that_is_not_role_content_object():
    raw = rec()
    raw["messages"][3] = {"role": "user"}
    raw["messages"][1] = "text"
    assert {p.field for p in problems_of(raw)} == {"messages[1]", "messages[3]"}


@pytest.mark.parametrize(
    "content, detail",
    [
        ("Just a plain answer.", "understanding: missing"),
        (
            "<understanding>u</understanding><reasoning>r</reasoning><emotion>sad</emotion>",
            "response: missing",
        ),
        (
            render_spans(
                {"understanding": "u", "reasoning": "r", "emotion": "sad", "response": "  "}
            ),
            "response: empty",
        ),
        (
            "<emotion>sad</emotion><understanding>u</understanding><reasoning>r</reasoning><response>x</response>",
            "out_of_order",
        ),
    ],
)
def test_assistant_turn_without_the_four_spans(content, detail):
    raw = rec()
    raw["messages"][2]["content"] = content
    p = only(raw)
    assert (p.field, p.kind) == ("messages[2].content", "spans")
    assert "four spans" in p.message and detail in p.message


def test_xml_style_turns_are_valid():
    assert problems_of(make_dialogue("x", 2, emotions=["sad", "proud"], style="xml")) == []


@pytest.mark.parametrize("raw", [[1, 2], "text", 3, None, True])
def test_non_object_record(raw):
    p = only(raw)
    assert (p.field, p.kind) == ("<record>", "not_object")


# --------------------------------------------------------------------------- through files


def test_line_numbers_count_blank_lines_like_an_editor(tmp_path):
    good, other = rec("a"), rec("b")
    no_mbti = {k: v for k, v in rec("c").items() if k != "mbti"}
    bad_role = copy.deepcopy(rec("d"))
    bad_role["messages"][2]["role"] = "user"
    bad_emo = rec("e")
    bad_emo["emotion"] = "happy"
    lines = [
        json.dumps(good),  # 1
        "",  # 2
        "   ",  # 3
        json.dumps(no_mbti),  # 4
        "{broken",  # 5
        "",  # 6
        json.dumps(bad_role),  # 7
        json.dumps(good),  # 8: duplicate of line 1
        "[1, 2, 3]",  # 9
        json.dumps(bad_emo),  # 10
        json.dumps(other),  # 11
    ]
    f = tmp_path / "mixed.jsonl"
    f.write_text("\n".join(lines) + "\n")
    res = load_dialogues(str(f))
    got = {(p.source.path, p.source.line, p.field, p.kind) for p in res.problems}
    assert got == {
        (str(f), 4, "mbti", "missing_field"),
        (str(f), 5, "<line>", "json"),
        (str(f), 7, "messages[2].role", "roles"),
        (str(f), 8, "<record>", "duplicate"),
        (str(f), 9, "<record>", "not_object"),
        (str(f), 10, "emotion", "emotion"),
    }
    dup = next(p for p in res.problems if p.kind == "duplicate")
    assert f"{f}:1" in dup.message  # names the first occurrence
    assert "invalid JSON" in next(p for p in res.problems if p.kind == "json").message
    assert [d.anon_username for d in res.dialogues] == ["a", "b"]
    assert [d.source.line for d in res.dialogues] == [1, 11]
    assert res.records_read == 8 and res.skipped == 6
    assert res.skipped_by_kind() == {
        "missing_field": 1,
        "json": 1,
        "roles": 1,
        "duplicate": 1,
        "not_object": 1,
        "emotion": 1,
    }
    assert all(str(p).startswith(f"{f}:{p.source.line}: {p.field}: ") for p in res.problems)


def test_skipped_by_kind_counts_each_record_once(tmp_path):
    raw = rec()
    del raw["mbti"], raw["person"]
    raw["emotion"] = "happy"
    f = tmp_path / "x.jsonl"
    f.write_text(jsonl([raw, rec("b")]))
    res = load_dialogues(str(f))
    assert len(res.problems) == 3 and res.skipped == 1
    assert res.skipped_by_kind() == {"missing_field": 1}


def test_duplicates_ignore_key_order(tmp_path):
    a = rec()
    b = {k: a[k] for k in reversed(list(a))}
    b["messages"] = [{"content": m["content"], "role": m["role"]} for m in a["messages"]]
    f = tmp_path / "x.jsonl"
    f.write_text(jsonl([a, b]))
    res = load_dialogues(str(f))
    assert len(res.dialogues) == 1 and res.skipped_by_kind() == {"duplicate": 1}


def test_non_utf8_line_is_one_problem_and_the_rest_loads(tmp_path):
    f = tmp_path / "latin.jsonl"
    f.write_bytes(
        jsonl([rec("a")]).encode() + b'{"person": "caf\xe9"}\n' + jsonl([rec("b")]).encode()
    )
    res = load_dialogues(str(f))
    [p] = res.problems
    assert p.source.line == 2 and "UTF-8" in p.message
    assert [d.anon_username for d in res.dialogues] == ["a", "b"]
    j = tmp_path / "latin.json"
    j.write_bytes(b'[\n{"person": "caf\xe9"}\n]')
    [p] = load_dialogues(str(j)).problems
    assert p.source.line == 2 and "UTF-8" in p.message


def test_unreadable_parquet_is_a_data_error(tmp_path):
    from kardiabench.data import DataError

    f = tmp_path / "x.parquet"
    f.write_bytes(b"not parquet at all")
    with pytest.raises(DataError, match="x.parquet"):
        load_dialogues(str(f))
