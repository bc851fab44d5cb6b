"""The synthetic full-size generator: schema-valid, persona-disjoint, deterministic, realistically shaped."""

from __future__ import annotations

import re
import statistics
from collections import Counter

import pytest

from kardiabench.data import expand, load_dialogues
from kardiabench.data.synth import (
    DEFAULT_TEST_FRACTION,
    SYSTEM_TEMPLATE,
    _plan,
    synthesize,
    write_dataset,
)
from kardiabench.emotions import EMOTION_SET
from kardiabench.spans import parse_spans

SPLITS = ("train", "test")


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    out = tmp_path_factory.mktemp("synth60")
    return out, write_dataset(out, 60, seed=0)


@pytest.fixture(scope="module")
def medium():
    """Enough dialogues for distribution checks (well under a second to build)."""
    return synthesize(600, seed=3)


def assistant_turns(records):
    for r in records:
        for m in r["messages"][2::2]:
            yield r, parse_spans(m["content"])


def test_written_files_load_with_zero_problems(small):
    out, summary = small
    total = 0
    for split in SPLITS:
        result = load_dialogues(str(out), split, strict=True)
        assert result.problems == []
        assert len(result.dialogues) == summary.dialogues[split] > 0
        items = list(expand(result.dialogues))
        assert len(items) == summary.turns[split]
        assert all(i.gold_emotion in EMOTION_SET for i in items)
        total += len(result.dialogues)
    assert total == 60
    assert summary.dialogues["test"] == round(60 * DEFAULT_TEST_FRACTION)


def test_personas_are_disjoint_and_consistent(small):
    out, summary = small
    users = {}
    for split in SPLITS:
        dialogues = load_dialogues(str(out), split).dialogues
        users[split] = {d.persona_id for d in dialogues}
        profile = {}
        for d in dialogues:  # one profile text and MBTI per persona
            assert profile.setdefault(d.persona_id, (d.person, d.mbti)) == (d.person, d.mbti)
        assert len(users[split]) == summary.personas[split]
    assert users["train"] and users["test"]
    assert not users["train"] & users["test"]


def test_same_seed_same_bytes_other_seed_differs(tmp_path):
    a = write_dataset(tmp_path / "a", 40, seed=7)
    b = write_dataset(tmp_path / "b", 40, seed=7)
    c = write_dataset(tmp_path / "c", 40, seed=8)
    for split in SPLITS:
        text_a = (tmp_path / "a" / f"{split}.jsonl").read_bytes()
        assert text_a == (tmp_path / "b" / f"{split}.jsonl").read_bytes()
        assert text_a != (tmp_path / "c" / f"{split}.jsonl").read_bytes()
    assert a.turns == b.turns
    assert synthesize(40, seed=7) == synthesize(40, seed=7) != synthesize(40, seed=8)
    assert c.dialogues == a.dialogues  # the split sizes depend on n only


def test_schema_and_system_prompt(medium):
    for split in SPLITS:
        for r in medium[split]:
            assert set(r) == {"person", "mbti", "emotion", "situation", "anon_username", "messages"}
            assert re.fullmatch(r"[EI][NS][TF][JP]", r["mbti"])
            assert r["person"].startswith(f"MBTI: {r['mbti']}\nAbout: ")
            assert "\nSignature: " in r["person"] and "\nRecent Activities: " in r["person"]
            system, *turns = r["messages"]
            assert system == {
                "role": "system",
                "content": SYSTEM_TEMPLATE.format(person=r["person"], situation=r["situation"]),
            }
            assert [m["role"] for m in turns] == ["user", "assistant"] * (len(turns) // 2)


def test_turn_counts_in_range_and_mostly_8_to_10(medium):
    counts = [(len(r["messages"]) - 1) // 2 for s in SPLITS for r in medium[s]]
    assert min(counts) >= 2 and max(counts) <= 10
    share = sum(8 <= c <= 10 for c in counts) / len(counts)
    assert 0.85 <= share < 1.0  # over 90% expected; some short dialogues must exist
    assert 7.6 <= statistics.mean(counts) <= 8.5  # real: 178,080 / 22,080 = 8.07


def test_labels_within_taxonomy_imbalanced_and_shifting(medium):
    labels = Counter()
    shifted = 0
    for split in SPLITS:
        for r in medium[split]:
            assert r["emotion"] in EMOTION_SET
            turn_labels = [p.spans["emotion"] for _, p in assistant_turns([r])]
            assert set(turn_labels) <= EMOTION_SET
            assert turn_labels[0] == r["emotion"]  # the record label is where the dialogue starts
            shifted += len(set(turn_labels)) > 1
            labels.update(turn_labels)
    top = {label for label, _ in labels.most_common(4)}
    assert {"caring", "hopeful", "grateful"} <= top
    assert labels.most_common(1)[0][1] > 5 * max(labels[x] for x in ("disgusted", "furious"))
    assert 0.1 < shifted / sum(len(medium[s]) for s in SPLITS) < 0.5


def test_both_tag_styles_one_per_dialogue(medium):
    styles = Counter()
    for split in SPLITS:
        for r in medium[split]:
            per_dialogue = {p.style for _, p in assistant_turns([r])}
            assert len(per_dialogue) == 1
            styles.update(per_dialogue)
    assert set(styles) == {"special", "xml"}
    assert styles["special"] > 2 * styles["xml"]


def test_span_lengths_near_the_real_averages(medium):
    words = {k: [] for k in ("user", "understanding", "reasoning", "response")}
    for split in SPLITS:
        for r in medium[split]:
            for u, a in zip(r["messages"][1::2], r["messages"][2::2], strict=True):
                words["user"].append(len(u["content"].split()))
                p = parse_spans(a["content"])
                assert p.well_formed and not p.issues
                for k in ("understanding", "reasoning", "response"):
                    words[k].append(len(p.spans[k].split()))
    real = {"user": 51, "understanding": 41, "reasoning": 53, "response": 27}
    for k, values in words.items():
        assert abs(statistics.mean(values) - real[k]) <= 0.2 * real[k], (k, statistics.mean(values))
        assert statistics.pstdev(values) > 4  # a spread, not one fixed length


def test_text_is_filled_and_in_the_right_person(medium):
    first_person = re.compile(r"\b(I|my|me|myself)\b")
    for split in SPLITS:
        for _r, p in assistant_turns(medium[split]):
            for k in ("understanding", "reasoning", "response"):
                text = p.spans[k]
                assert "{" not in text and "}" not in text and "  " not in text
                assert text[0].isupper() and text[-1] in ".?!"
            # the analysis talks about the user, never as the user
            assert not first_person.search(p.spans["understanding"]), p.spans["understanding"]
            assert not first_person.search(p.spans["reasoning"]), p.spans["reasoning"]
        for r in medium[split]:
            assert not first_person.search(r["situation"])
            for m in r["messages"][1::2]:
                assert m["content"][0].isupper() and "{" not in m["content"]


def test_full_size_plan_matches_the_real_split():
    assert _plan(22_080, DEFAULT_TEST_FRACTION, None) == (2_547, 19_533, 32, 639)
    n_test, n_train, p_test, p_train = _plan(5, DEFAULT_TEST_FRACTION, None)
    assert n_test + n_train == 5 and 1 <= p_test <= n_test and 1 <= p_train <= n_train
    with pytest.raises(ValueError):
        _plan(1, DEFAULT_TEST_FRACTION, None)
    with pytest.raises(ValueError):
        synthesize(10, test_fraction=1.5)


def test_n_personas_override():
    data = synthesize(50, seed=1, n_personas=20)
    users = {s: {r["anon_username"] for r in data[s]} for s in SPLITS}
    assert len(users["train"]) + len(users["test"]) == 20


def test_data_synth_writes_and_reports(tmp_path, capsys):
    from kardiabench.cli import main

    assert (
        main(["data", "synth", "--dialogues", "12", "--out", str(tmp_path / "d"), "--seed", "2"])
        == 0
    )
    printed = capsys.readouterr().out
    assert "train:" in printed and "test:" in printed
    assert load_dialogues(str(tmp_path / "d"), "train", strict=True).dialogues
