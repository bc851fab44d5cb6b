"""Loader paths: bundled sample, folders, single JSONL / JSON / Parquet files, bad paths, strictness."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from fakehub import jsonl
from helpers import make_dialogue, write_dataset

from kardiabench.data import DataError, LoadResult, load_dialogues
from kardiabench.data.load import SAMPLE_DIR
from kardiabench.emotions import EMOTIONS, to_label
from kardiabench.spans import parse_spans

EMOS = ["anxious", "hopeful", "grateful"]


def records(users, n_turns: int = 2) -> list[dict]:
    return [make_dialogue(u, n_turns, emotions=EMOS) for u in users]


# --------------------------------------------------------------------------- the bundled sample


@pytest.mark.parametrize("split", ["train", "test"])
def test_sample_split_is_valid_and_structured(split):
    assert (SAMPLE_DIR / f"{split}.jsonl").is_file(), (
        "the bundled sample must ship train.jsonl and test.jsonl"
    )
    res = load_dialogues("sample", split)
    assert res.split == split and res.problems == [] and res.skipped == 0
    assert len(res.dialogues) >= 5
    assert res.files == [str(SAMPLE_DIR / f"{split}.jsonl")]
    for d in res.dialogues:
        assert d.messages[0].role == "system" and d.mbti and d.anon_username
        assert to_label(d.emotion) is not None
        roles = [m.role for m in d.messages[1:]]
        assert roles == ["user", "assistant"] * (len(roles) // 2) and roles
        for m in d.messages[2::2]:
            p = parse_spans(m.content)
            assert p.well_formed and to_label(p.spans["emotion"]) is not None


def test_sample_defaults_to_test_and_splits_are_persona_disjoint():
    test = load_dialogues("sample")
    assert test.split == "test"
    train = load_dialogues("sample", "train")
    assert {d.persona_id for d in test.dialogues}.isdisjoint(
        {d.persona_id for d in train.dialogues}
    )
    assert {d.dialogue_id for d in test.dialogues}.isdisjoint(
        {d.dialogue_id for d in train.dialogues}
    )


# --------------------------------------------------------------------------- folders


def test_folder_with_train_and_test(tmp_path):
    write_dataset(tmp_path, train_users=("a", "b", "c", "d"), test_users=("e", "f", "g"))
    test = load_dialogues(str(tmp_path))
    train = load_dialogues(str(tmp_path), "train")
    assert test.split == "test" and [d.anon_username for d in test.dialogues] == ["e", "f", "g"]
    assert train.split == "train" and len(train.dialogues) == 4
    assert test.files == [str(tmp_path / "test.jsonl")] and test.records_read == 3
    assert isinstance(test, LoadResult) and test.source == str(tmp_path)


def test_folder_missing_split_lists_the_splits_found(tmp_path):
    write_dataset(tmp_path)
    (tmp_path / "dev.json").write_text(json.dumps(records(["x"])))
    (tmp_path / "_notes.jsonl").write_text("")  # private files are not splits
    (tmp_path / "README.md").write_text("# data")
    with pytest.raises(DataError) as err:
        load_dialogues(str(tmp_path), "validation")
    msg = str(err.value)
    assert "'validation'" in msg and "found splits: train, test, dev" in msg
    assert "_notes" not in msg and "README" not in msg
    assert [d.anon_username for d in load_dialogues(str(tmp_path), "dev").dialogues] == ["x"]


def test_folder_without_test_uses_first_split(tmp_path):
    (tmp_path / "train.jsonl").write_text(jsonl(records(["a", "b"])))
    res = load_dialogues(str(tmp_path))
    assert res.split == "train" and len(res.dialogues) == 2


def test_empty_folder(tmp_path):
    (tmp_path / "notes.txt").write_text("hi")
    with pytest.raises(DataError, match="no .jsonl/.json/.parquet files"):
        load_dialogues(str(tmp_path))


# --------------------------------------------------------------------------- single files


def test_single_jsonl_is_one_split_evaluated_whole(tmp_path):
    f = tmp_path / "mine.jsonl"
    f.write_text(jsonl(records(["a", "b", "c"])))
    res = load_dialogues(str(f))
    assert res.split is None and res.files == [str(f)]
    assert [d.anon_username for d in res.dialogues] == ["a", "b", "c"]
    # a split name does not cut a file
    assert load_dialogues(str(f), "test").dialogues == res.dialogues


def test_single_json_array_and_data_wrapper(tmp_path):
    recs = records(["a", "b"])
    arr = tmp_path / "arr.json"
    arr.write_text(json.dumps(recs, indent=2))
    wrapped = tmp_path / "wrapped.json"
    wrapped.write_text(json.dumps({"data": recs}))
    a, w = load_dialogues(str(arr)), load_dialogues(str(wrapped))
    assert [d.dialogue_id for d in a.dialogues] == [d.dialogue_id for d in w.dialogues]
    assert len(a.dialogues) == 2 and a.problems == []
    assert a.dialogues[1].source.line == 2  # the row in the array


def test_json_that_is_not_an_array(tmp_path):
    f = tmp_path / "obj.json"
    f.write_text(json.dumps({"person": "x"}))
    res = load_dialogues(str(f))
    assert res.dialogues == [] and res.skipped == 1
    assert "expected a JSON array" in str(res.problems[0])


def test_invalid_json_file_names_the_line(tmp_path):
    f = tmp_path / "broken.json"
    f.write_text('[\n  {"a": 1},\n  {"b": oops}\n]\n')
    res = load_dialogues(str(f))
    [p] = res.problems
    assert p.kind == "json" and p.source.line == 3 and str(f) in str(p)
    with pytest.raises(DataError, match="broken.json:3"):
        load_dialogues(str(f), strict=True)


def test_single_parquet(tmp_path):
    pa = pytest.importorskip("pyarrow")
    pq = pytest.importorskip("pyarrow.parquet")
    recs = records(["a", "b", "c"], n_turns=3)
    f = tmp_path / "part.parquet"
    pq.write_table(pa.Table.from_pylist(recs), f)
    res = load_dialogues(str(f))
    assert res.problems == [] and len(res.dialogues) == 3
    jl = tmp_path / "same.jsonl"
    jl.write_text(jsonl(recs))
    # the same content gives the same dialogues and ids whatever the file format
    assert [d.dialogue_id for d in res.dialogues] == [
        d.dialogue_id for d in load_dialogues(str(jl)).dialogues
    ]
    assert res.dialogues[2].source.line == 3


def test_folder_of_parquet_splits(tmp_path):
    pa = pytest.importorskip("pyarrow")
    pq = pytest.importorskip("pyarrow.parquet")
    pq.write_table(pa.Table.from_pylist(records(["a"])), tmp_path / "test.parquet")
    res = load_dialogues(str(tmp_path))
    assert res.split == "test" and len(res.dialogues) == 1


def test_unsupported_file_type(tmp_path):
    f = tmp_path / "data.csv"
    f.write_text("a,b\n")
    with pytest.raises(DataError, match="unsupported file type '.csv'"):
        load_dialogues(str(f))


@pytest.mark.parametrize(
    "data", ["does/not/exist.jsonl", "missing_dir/", "/nonexistent/data.json", "./nope"]
)
def test_nonexistent_path(data, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(DataError, match="no such file or folder"):
        load_dialogues(data)


def test_utf8_bom_and_crlf_are_read(tmp_path):
    f = tmp_path / "win.jsonl"
    f.write_bytes(b"\xef\xbb\xbf" + jsonl(records(["a", "b"])).replace("\n", "\r\n").encode())
    res = load_dialogues(str(f))
    assert res.problems == [] and len(res.dialogues) == 2


# --------------------------------------------------------------------------- strict and lenient


def bad_file(tmp_path: Path) -> Path:
    good = records(["a", "b"])
    missing = {k: v for k, v in make_dialogue("c", 2, emotions=EMOS).items() if k != "mbti"}
    f = tmp_path / "mixed.jsonl"
    f.write_text(jsonl([good[0], missing, "{not json", good[1], json.dumps(good[0]), "[1, 2]"]))
    return f


def test_lenient_mode_skips_bad_records_and_counts_them(tmp_path):
    res = load_dialogues(str(bad_file(tmp_path)))
    assert [d.anon_username for d in res.dialogues] == ["a", "b"]
    assert res.records_read == 6 and res.skipped == 4
    assert res.skipped_by_kind() == {"missing_field": 1, "json": 1, "duplicate": 1, "not_object": 1}
    assert sorted(p.source.line for p in res.problems) == [2, 3, 5, 6]


def test_strict_mode_raises_listing_problems(tmp_path):
    f = bad_file(tmp_path)
    with pytest.raises(DataError) as err:
        load_dialogues(str(f), strict=True)
    msg = str(err.value)
    assert "4 problem(s)" in msg and "strict" in msg
    for line, text in (
        (2, "mbti: missing field"),
        (3, "invalid JSON"),
        (5, "duplicate"),
        (6, "expected a JSON object"),
    ):
        assert f"{f}:{line}: " in msg and text in msg


def test_strict_mode_shows_at_most_20_problems(tmp_path):
    f = tmp_path / "many.jsonl"
    f.write_text(jsonl(["{bad"] * 25))
    with pytest.raises(DataError) as err:
        load_dialogues(str(f), strict=True)
    assert "25 problem(s)" in str(err.value) and "… and 5 more" in str(err.value)


def test_strict_clean_file_loads(tmp_path):
    write_dataset(tmp_path)
    assert len(load_dialogues(str(tmp_path), strict=True).dialogues) == 3


def test_sample_covers_every_label_both_tag_styles_and_disjoint_personas():
    """The sample's JSONL files are its only source: this is the coverage it promises."""
    personas = {}
    for split in ("train", "test"):
        res = load_dialogues("sample", split)
        labels, styles = set(), set()
        for d in res.dialogues:
            turn_styles = {parse_spans(m.content).style for m in d.messages[2::2]}
            assert len(turn_styles) == 1, f"{d.dialogue_id}: one tag style per dialogue"
            styles |= turn_styles
            labels |= {to_label(parse_spans(m.content).spans["emotion"]) for m in d.messages[2::2]}
        assert labels == set(EMOTIONS), f"{split}: labels missing {sorted(set(EMOTIONS) - labels)}"
        assert styles == {"special", "xml"}
        personas[split] = {d.persona_id for d in res.dialogues}
    assert personas["train"].isdisjoint(personas["test"])
    assert len(personas["train"]) + len(personas["test"]) == 20
