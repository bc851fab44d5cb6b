"""Persona-disjoint derived splits, and expanding dialogues into per-turn items."""

from __future__ import annotations

import json
import random

import pytest
from fakehub import jsonl
from helpers import make_dialogue
from hypothesis import given, settings
from hypothesis import strategies as st

from kardiabench.data import (
    DataError,
    expand,
    expand_dialogue,
    load_dialogues,
    persona_split,
    validate_record,
)
from kardiabench.records import Dialogue, Message, SourceRef
from kardiabench.spans import parse_spans, render_spans


def dialogue(
    user: str, turns: int = 3, emotions=("anxious", "hopeful", "grateful"), tag: str = "", **kw
) -> Dialogue:
    raw = make_dialogue(user, turns, emotions=list(emotions), **kw)
    raw["situation"] += tag
    d, problems = validate_record(raw, SourceRef("mem", 1))
    assert not problems, problems
    return d


def corpus(n_personas: int = 40, seed: int = 1) -> list[Dialogue]:
    rng = random.Random(seed)
    return [
        dialogue(f"p{i}", 1, tag=f" #{j}")
        for i in range(n_personas)
        for j in range(rng.randint(1, 6))
    ]


# --------------------------------------------------------------------------- persona_split


def test_split_is_persona_disjoint_complete_and_near_the_fraction():
    ds = corpus()
    parts = persona_split(ds, 0.2, seed=0)
    train_p = {d.persona_id for d in parts["train"]}
    test_p = {d.persona_id for d in parts["test"]}
    assert train_p.isdisjoint(test_p) and train_p and test_p
    assert sorted(d.dialogue_id for d in parts["train"] + parts["test"]) == sorted(
        d.dialogue_id for d in ds
    )
    max_per_persona = 6
    assert 0.2 * len(ds) <= len(parts["test"]) < 0.2 * len(ds) + max_per_persona


def test_split_is_deterministic_and_depends_on_the_seed():
    ds = corpus()
    ids = lambda parts: sorted(d.dialogue_id for d in parts["test"])  # noqa: E731
    assert ids(persona_split(ds, 0.25, seed=3)) == ids(persona_split(list(ds), 0.25, seed=3))
    assert len({tuple(ids(persona_split(ds, 0.25, seed=s))) for s in range(5)}) > 1


@settings(max_examples=25, deadline=None)
@given(st.randoms(use_true_random=False), st.integers(0, 1000), st.floats(0.05, 0.9))
def test_split_is_independent_of_input_order(rnd, seed, fraction):
    ds = corpus(15)
    shuffled = list(ds)
    rnd.shuffle(shuffled)
    a, b = persona_split(ds, fraction, seed), persona_split(shuffled, fraction, seed)
    for part in ("train", "test"):
        assert {d.dialogue_id for d in a[part]} == {d.dialogue_id for d in b[part]}
    assert a["train"], "some persona always stays in train"


def test_split_keeps_input_order_within_parts():
    ds = corpus()
    parts = persona_split(ds, 0.3)
    pos = {d.dialogue_id: i for i, d in enumerate(ds)}
    for part in parts.values():
        assert [pos[d.dialogue_id] for d in part] == sorted(pos[d.dialogue_id] for d in part)


def test_split_rejects_bad_fractions():
    for f in (0.0, 1.0, -0.1, 2):
        with pytest.raises(ValueError):
            persona_split(corpus(3), f)


def test_persona_id_falls_back_to_profile_hash():
    d = dialogue("x")
    anon = Dialogue(d.person, d.mbti, d.emotion, d.situation, "", d.messages)
    assert d.persona_id == "x" and anon.persona_id.startswith("p") and len(anon.persona_id) == 13


def test_load_with_derived_split(tmp_path):
    f = tmp_path / "all.jsonl"
    f.write_text(jsonl(d.to_dict() for d in corpus()) + "{bad json\n")
    test = load_dialogues(str(f), split="test", derive_split=0.2, split_seed=7)
    train = load_dialogues(str(f), split="train", derive_split=0.2, split_seed=7)
    assert test.split == "test" and train.split == "train"
    assert {d.persona_id for d in test.dialogues}.isdisjoint(
        {d.persona_id for d in train.dialogues}
    )
    assert len(test.dialogues) + len(train.dialogues) == len(corpus())
    assert test.skipped == 1 and train.skipped == 1  # only the bad line, not the other part
    again = load_dialogues(str(f), split="test", derive_split=0.2, split_seed=7)
    assert [d.dialogue_id for d in again.dialogues] == [d.dialogue_id for d in test.dialogues]
    assert load_dialogues(str(f), derive_split=0.2, split_seed=7).split == "test"  # default part
    with pytest.raises(DataError, match="'dev'"):
        load_dialogues(str(f), split="dev", derive_split=0.2)
    with pytest.raises(DataError, match="between 0 and 1"):
        load_dialogues(str(f), derive_split=1.5)


def test_derived_split_of_a_folder_uses_its_train_file(tmp_path):
    (tmp_path / "train.jsonl").write_text(jsonl(d.to_dict() for d in corpus(10)))
    (tmp_path / "test.jsonl").write_text(jsonl([make_dialogue("zz", 1, emotions=["sad"])]))
    res = load_dialogues(str(tmp_path), "test", derive_split=0.3)
    assert "zz" not in {d.persona_id for d in res.dialogues} and res.dialogues


# --------------------------------------------------------------------------- expansion


def test_items_per_assistant_turn_with_stable_ids():
    d = dialogue("a", 3)
    items = expand_dialogue(d)
    assert [i.item_id for i in items] == [f"{d.dialogue_id}-t{k}" for k in range(3)]
    assert [i.turn_index for i in items] == [0, 1, 2]
    assert all(
        i.dialogue_id == d.dialogue_id and i.persona_id == "a" and i.mbti == "INFP" for i in items
    )
    assert items[1].user_message == d.messages[3].content
    assert items[0].history == () and items[0].system_prompt == d.messages[0].content
    assert [i.item_id for i in expand_dialogue(d, "response")] == [i.item_id for i in items]


def test_full_history_has_gold_four_span_turns():
    d = dialogue("a", 3)
    items = expand_dialogue(d, "full")
    last = items[2]
    assert [m.role for m in last.history] == ["user", "assistant"] * 2
    assert last.history[1] == d.messages[2] and last.history[3] == d.messages[4]
    assert parse_spans(last.history[3].content).well_formed
    msgs = last.chat_messages()
    assert msgs[0] == {"role": "system", "content": d.messages[0].content}
    assert msgs[-1] == {"role": "user", "content": d.messages[5].content} and len(msgs) == 6
    assert last.chat_messages(system_prompt="")[0]["role"] == "user"


def test_response_history_has_only_the_response_span():
    d = dialogue("a", 3)
    items = expand_dialogue(d, "response")
    hist = items[2].history
    assert [m.role for m in hist] == ["user", "assistant"] * 2
    for k, m in ((0, hist[1]), (1, hist[3])):
        assert m.content == parse_spans(d.messages[2 + 2 * k].content).spans["response"]
        assert "<|" not in m.content and "<response>" not in m.content
    assert items[2].history_mode == "response"


def test_bad_history_mode():
    with pytest.raises(ValueError, match="history_mode"):
        expand_dialogue(dialogue("a"), "summary")  # type: ignore[arg-type]


def test_gold_spans_and_emotion_per_turn_with_record_fallback():
    d = dialogue("a", 3, emotions=("Anxious.", "hopeful", "grateful"))
    items = expand_dialogue(d)
    assert [i.gold_emotion for i in items] == ["anxious", "hopeful", "grateful"]
    assert items[0].gold.emotion == "Anxious." and items[1].gold.response.startswith(
        "That sounds hard"
    )
    # a turn whose emotion span is not a label (or is missing) falls back to the record's emotion
    msgs = list(d.messages)
    msgs[4] = Message(
        "assistant",
        render_spans({"understanding": "u", "reasoning": "r", "emotion": "meh", "response": "ok"}),
    )
    msgs[6] = Message(
        "assistant", render_spans({"understanding": "u", "reasoning": "r", "response": "ok"})
    )
    odd = Dialogue(d.person, d.mbti, " Grateful ", d.situation, d.anon_username, tuple(msgs))
    assert [i.gold_emotion for i in expand_dialogue(odd)] == ["anxious", "grateful", "grateful"]
    assert expand_dialogue(odd)[2].gold.emotion == ""


def test_dialogue_without_system_message():
    d = dialogue("a", 2)
    bare = Dialogue(d.person, d.mbti, d.emotion, d.situation, d.anon_username, d.messages[1:])
    items = expand_dialogue(bare)
    assert (
        len(items) == 2
        and items[0].system_prompt == ""
        and items[0].chat_messages()[0]["role"] == "user"
    )


def test_expand_many():
    ds = [dialogue("a", 2), dialogue("b", 3)]
    items = list(expand(ds, "response"))
    assert len(items) == 5 and len({i.item_id for i in items}) == 5


def test_dialogue_id_independent_of_file_line_and_key_order(tmp_path):
    raw = make_dialogue("a", 2, emotions=["sad", "proud"])
    reordered = {k: raw[k] for k in sorted(raw, reverse=True)}
    reordered["messages"] = [
        {"content": m["content"], "role": m["role"], "name": "x"} for m in raw["messages"]
    ]
    reordered["extra_field"] = 1
    (tmp_path / "one.jsonl").write_text(jsonl([raw]))
    (tmp_path / "two.jsonl").write_text(
        "\n\n" + jsonl([make_dialogue("b", 1, emotions=["sad"]), reordered])
    )
    (tmp_path / "three.json").write_text(json.dumps([reordered], indent=4, sort_keys=True))
    ids = {
        load_dialogues(str(tmp_path / n)).dialogues[-1].dialogue_id
        for n in ("one.jsonl", "two.jsonl", "three.json")
    }
    assert len(ids) == 1
    [did] = ids
    assert did.startswith("d") and len(did) == 17 and int(did[1:], 16) >= 0
    changed = dict(raw, situation=raw["situation"] + "!")
    (tmp_path / "four.jsonl").write_text(jsonl([changed]))
    assert load_dialogues(str(tmp_path / "four.jsonl")).dialogues[0].dialogue_id != did
