"""The one JSONL module: strict reader, line iterator, atomic writer, append writer; and the one
serialisation idiom (to_dict / from_dict) of the records written through it."""

from __future__ import annotations

import json
import re

import pytest

from kardiabench.jsonl import (
    JsonlWriter,
    iter_jsonl_lines,
    iter_jsonl_objects,
    read_jsonl_tolerant,
    write_jsonl_atomic,
)
from kardiabench.judging import repair_request
from kardiabench.models.base import ChatRequest, SamplingParams
from kardiabench.records import Message, Prediction
from kardiabench.scoring.judge import Judgment, repair_messages
from kardiabench.scoring.rubric import DIMENSIONS, load_rubric


class BadFile(ValueError):
    pass


def test_strict_reader_names_file_and_line_of_the_first_bad_line(tmp_path):
    path = tmp_path / "u.jsonl"
    path.write_bytes(b'{"a": 1}\n\n"text"\n{"b": 2}\n')
    rows = iter_jsonl_objects(path, BadFile)
    assert next(rows) == (1, {"a": 1})  # blank lines are skipped, numbering is the file's
    with pytest.raises(BadFile, match=rf"^{re.escape(str(path))}:3: expected a JSON object$"):
        next(rows)


def test_strict_reader_reports_bytes_that_are_not_utf8_as_a_line_error(tmp_path):
    path = tmp_path / "latin.jsonl"
    path.write_bytes('{"a": 1}\n{"name": "Jos\u00e9"}\n'.encode("latin-1"))
    with pytest.raises(
        BadFile,
        match=rf"^{re.escape(str(path))}:2: not valid JSON: not UTF-8 text \(byte 14 of the line\)$",
    ):
        list(iter_jsonl_objects(path, BadFile))


def test_line_iterator_hands_back_each_bad_line_and_reads_on(tmp_path):
    path = tmp_path / "d.jsonl"
    path.write_bytes(b'\xef\xbb\xbf{"a": 1}\n{bad\n[1]\n')  # a UTF-8 BOM is accepted
    rows = list(iter_jsonl_lines(path))
    assert rows[0] == (1, {"a": 1}) and rows[2] == (3, [1])
    assert rows[1][0] == 2 and isinstance(rows[1][1], json.JSONDecodeError)


def test_atomic_writer_replaces_the_whole_file_and_reads_back(tmp_path):
    path = tmp_path / "items.jsonl"
    path.write_text("old\n")
    rows = [{"item_id": "i1", "text": "über"}, {"item_id": "i2", "text": None}]
    write_jsonl_atomic(path, rows)
    assert (
        path.read_text(encoding="utf-8")
        == '{"item_id": "i1", "text": "über"}\n{"item_id": "i2", "text": null}\n'
    )
    assert read_jsonl_tolerant(path) == rows
    assert [p.name for p in tmp_path.iterdir()] == ["items.jsonl"]  # no temp file left


def test_append_writer_continues_a_file_after_its_torn_line(tmp_path):
    path = tmp_path / "predictions.jsonl"
    path.write_text('{"a": 1}\n{"a": 2, "b"')
    writer = JsonlWriter(path)
    writer.write({"a": 3})
    writer.close()
    assert read_jsonl_tolerant(path) == [{"a": 1}, {"a": 3}]


def test_records_round_trip_through_to_dict_and_from_dict():
    pred = Prediction("i1", "m", "raw", finish_reason="stop", usage={"prompt_tokens": 3.0})
    assert Prediction.from_dict({**pred.to_dict(), "unknown": 1}) == pred
    j = Judgment("i1", "openai:j", 1, {"empathy": 4}, "scored", "v1", usage={"cost_usd": 0.1})
    assert Judgment.from_dict(json.loads(json.dumps(j.to_dict()))) == j
    assert Message.from_dict(Message("user", "hi").to_dict()) == Message("user", "hi")
    assert SamplingParams(seed=3).to_dict()["seed"] == 3


def test_repair_text_is_pure_and_the_request_appends_it():
    failures = [("nope", "no JSON object found"), ("x" * 2500, "malformed JSON")]
    msgs = repair_messages(failures, DIMENSIONS)
    assert [m["role"] for m in msgs] == ["assistant", "user", "assistant", "user"]
    assert msgs[0]["content"] == "nope" and msgs[2]["content"] == "x" * 2000 + " …[cut]"
    assert msgs[3]["content"].startswith(
        "That reply could not be used (attempt 2): malformed JSON."
    )
    assert ", ".join(DIMENSIONS) in msgs[1]["content"]
    first = ChatRequest(
        (("system", "s"), ("user", "u")), SamplingParams(seed=7), {"type": "json_object"}
    )
    req = repair_request(first, failures, load_rubric())
    assert req.messages == (*first.messages, *((m["role"], m["content"]) for m in msgs))
    assert (req.params, req.response_format) == (first.params, first.response_format)
