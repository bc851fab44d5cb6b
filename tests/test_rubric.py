"""The rubric file and template: complete, validated, versioned by content."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml

from kardiabench.scoring.rubric import (
    DIMENSIONS,
    RubricError,
    coerce_score,
    default_rubric_path,
    load_rubric,
)


def _copy(tmp_path: Path) -> Path:
    src = default_rubric_path()
    shutil.copy(src, tmp_path / src.name)
    shutil.copy(src.parent / "judge_prompt.md", tmp_path / "judge_prompt.md")
    return tmp_path / src.name


def _edit(path: Path, fn) -> None:
    raw = yaml.safe_load(path.read_text())
    fn(raw)
    path.write_text(yaml.safe_dump(raw, sort_keys=False))


def test_shipped_rubric_describes_every_level_of_every_dimension():
    r = load_rubric()
    assert r.names == DIMENSIONS
    for d in r.dimensions:
        assert len(d.levels) == 5 and len(set(d.levels)) == 5
        # real descriptions, not "bad".."good"
        assert all(len(t.split()) >= 8 for t in d.levels), d.name
        assert len(d.definition.split()) >= 15
    text = r.rubric_text()
    for d in r.dimensions:
        for t in d.levels:
            assert t in text
    safety = {d.name: d for d in r.dimensions}["safety"]
    assert "self-harm" in safety.levels[0] and "safe" in safety.levels[4].lower()
    persona = {d.name: d for d in r.dimensions}["persona_consistency"].definition
    assert "MBTI" in persona and "earlier" in persona


def test_version_is_label_plus_content_hash_and_changes_with_either_file(tmp_path):
    path = _copy(tmp_path)
    v0 = load_rubric(path).version
    # same content, other folder: same version
    assert v0 == load_rubric(default_rubric_path()).version
    label, digest = v0.split("+")
    assert label == "1.0" and len(digest) == 12

    _edit(
        path,
        lambda raw: raw["dimensions"][2]["levels"].__setitem__(
            3, "A different level-3 description of empathy here."
        ),
    )
    v1 = load_rubric(path).version
    assert v1 != v0 and v1.startswith("1.0+")

    tpl = tmp_path / "judge_prompt.md"
    tpl.write_text(tpl.read_text().replace("expert evaluator", "careful evaluator"))
    v2 = load_rubric(path).version
    assert v2 not in (v0, v1)

    _edit(path, lambda raw: raw.__setitem__("version", "1.1"))
    assert load_rubric(path).version.startswith("1.1+")


def test_yaml_comments_do_not_change_the_version(tmp_path):
    path = _copy(tmp_path)
    v0 = load_rubric(path).version
    path.write_text("# a new comment\n" + path.read_text())
    assert load_rubric(path).version == v0


@pytest.mark.parametrize(
    "mutate, field",
    [
        (lambda raw: raw["dimensions"][0]["levels"].pop(3), "dimensions[relevance].levels"),
        (
            lambda raw: raw["dimensions"][1]["levels"].__setitem__(6, "six"),
            "dimensions[fluency].levels",
        ),
        (
            lambda raw: raw["dimensions"][2]["levels"].__setitem__(2, "  "),
            "dimensions[empathy].levels.2",
        ),
        (lambda raw: raw["dimensions"].pop(4), "dimensions"),
        (
            lambda raw: raw["dimensions"][3].pop("definition"),
            "dimensions[persona_consistency].definition",
        ),
        (lambda raw: raw.__setitem__("version", ""), "version"),
        (lambda raw: raw.__setitem__("template", "missing.md"), "template"),
        (lambda raw: raw.__setitem__("scale", {"min": 0, "max": 10}), "scale"),
    ],
)
def test_malformed_rubric_is_rejected_naming_the_field(tmp_path, mutate, field):
    path = _copy(tmp_path)
    _edit(path, mutate)
    with pytest.raises(RubricError) as e:
        load_rubric(path)
    assert str(path) in str(e.value) and f"'{field}'" in str(e.value)


def test_template_placeholders_are_checked(tmp_path):
    path = _copy(tmp_path)
    tpl = tmp_path / "judge_prompt.md"
    tpl.write_text(tpl.read_text().replace("{{candidate}}", "{{candidat}}"))
    with pytest.raises(RubricError, match="unknown placeholder"):
        load_rubric(path)
    tpl.write_text("no role markers {{rubric}} {{candidate}}")
    with pytest.raises(RubricError, match="role"):
        load_rubric(path)


def test_render_is_single_pass_and_schema_is_strict():
    r = load_rubric()
    values = {
        k: "x" for k in ("profile", "situation", "history", "user_message", "candidate_notes")
    }
    values["candidate"] = "literal {{rubric}} here"
    msgs = r.render(values)
    assert [m["role"] for m in msgs] == ["system", "user"]
    assert "literal {{rubric}} here" in msgs[1]["content"]
    assert "{{" not in msgs[0]["content"]
    rf = r.response_format()
    assert (
        rf["type"] == "json_schema"
        and rf["json_schema"]["name"] == "rubric_scores"
        and rf["json_schema"]["strict"]
    )
    schema = rf["json_schema"]["schema"]
    assert set(schema["required"]) == set(schema["properties"]) == {*DIMENSIONS, "rationale"}
    assert schema["additionalProperties"] is False
    assert all(
        schema["properties"][d]
        == {
            "type": "integer",
            "enum": [1, 2, 3, 4, 5],
            "description": schema["properties"][d]["description"],
        }
        for d in DIMENSIONS
    )


def test_json_rubric_file_is_read_too(tmp_path):
    import json

    path = _copy(tmp_path)
    raw = yaml.safe_load(path.read_text())
    (tmp_path / "r.json").write_text(json.dumps(raw))
    assert load_rubric(tmp_path / "r.json").version == load_rubric(path).version


def test_coerce_score_rules_and_normalised_reward():
    assert (
        coerce_score(4) == 4
        and coerce_score("4") == 4
        and coerce_score(" 5 ") == 5
        and coerce_score(3.0) == 3
    )
    for bad in (0, 6, 3.5, "4.0", "four", True, None, [4], "-1"):
        with pytest.raises(ValueError):
            coerce_score(bad)
    r = load_rubric()
    assert r.normalised(dict.fromkeys(DIMENSIONS, 5)) == 1.0
    assert r.normalised(dict.fromkeys(DIMENSIONS, 1)) == 0.0
    assert r.normalised({**dict.fromkeys(DIMENSIONS, 3), "safety": 5}) == pytest.approx(
        (4 * 0.5 + 1) / 5
    )
    assert r.normalised({**dict.fromkeys(DIMENSIONS, 3), "safety": None}) is None
