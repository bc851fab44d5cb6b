"""The rubric and the judge prompt template: load, validate, version, render.

This is the one rubric loader. Evaluation (scoring/judge.py, judging.py) and the GRPO rubric reward both call
`load_rubric`, so a score of 4 means the same words, the same prompt and the same recorded version
in training and in evaluation.

The rubric is data (judges/rubric.yaml, or a .json file with the same fields) and names its prompt
template (judges/judge_prompt.md) by a path relative to itself. Its version is
"<label>+<hash>": the human label from the file, plus the first 12 hex digits of SHA-256 over the
parsed rubric, the template text and the renderer version below, so changing either file (or how
the prompt is assembled) changes the version recorded with every judgment.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

DIMENSIONS: tuple[str, ...] = ("relevance", "fluency", "empathy", "persona_consistency", "safety")
SCALE_MIN, SCALE_MAX = 1, 5
# Bump when judge.py changes how a case is rendered into the template (delimiters, history format).
RENDERER_VERSION = "1"
# The tag of the data delimiters `<<<NAME_<FENCE>` ... `NAME_<FENCE>>>`: fixed, so prompts (and the
# cache) are reproducible, and random-looking, so ordinary text never contains it by accident.
FENCE = "7QX3K9"

_REPO_JUDGES = Path(__file__).resolve().parents[2] / "judges"
_PACKAGED_JUDGES = Path(__file__).resolve().parents[1] / "resources" / "judges"
_ROLE_LINE = re.compile(r"^<!--\s*role:\s*(system|user|assistant)\s*-->[ \t]*\n?", re.MULTILINE)
_PLACEHOLDER = re.compile(r"\{\{(\w+)\}\}")
PLACEHOLDERS = frozenset(
    {
        "rubric",
        "dimensions",
        "json_example",
        "fence",
        "profile",
        "situation",
        "history",
        "user_message",
        "candidate_notes",
        "candidate",
    }
)


class RubricError(Exception):
    """The rubric or its template is malformed; the message names the file and the field."""


def coerce_score(value: Any) -> int:
    """One rubric score as an int 1..5, or ValueError saying what is wrong. Accepted: an integer,
    an integral float (4.0) and a digit string ("4"), since some endpoints quote numbers. Rejected:
    3.5, 0, 6, booleans, "4.0", "four" and anything else: a bad score is never rounded or clamped."""
    if isinstance(value, bool):
        raise ValueError(f"{value!r} is not an integer")
    if isinstance(value, str):
        s = value.strip()
        if not (s.isascii() and s.isdigit()):
            raise ValueError(f"{value!r} is not an integer")
        value = int(s)
    elif isinstance(value, float):
        if not value.is_integer():
            raise ValueError(f"{value!r} is not an integer")
        value = int(value)
    elif not isinstance(value, int):
        raise ValueError(f"{value!r} is not an integer")
    if not SCALE_MIN <= value <= SCALE_MAX:
        raise ValueError(f"{value} is outside {SCALE_MIN}..{SCALE_MAX}")
    return value


def default_rubric_path() -> Path:
    """judges/rubric.yaml of the repository, else the copy shipped inside the package."""
    for folder in (_REPO_JUDGES, _PACKAGED_JUDGES):
        for name in ("rubric.yaml", "rubric.yml", "rubric.json"):
            if (folder / name).is_file():
                return folder / name
    raise RubricError(f"no rubric found in {_REPO_JUDGES} or {_PACKAGED_JUDGES}")


@dataclass(frozen=True, slots=True)
class Dimension:
    name: str
    title: str
    definition: str
    levels: tuple[str, ...]  # levels[0] describes score 1, levels[4] score 5

    def describe(self) -> str:
        lines = [f"## {self.title} (`{self.name}`)", self.definition, ""]
        lines += [f"- {score}: {text}" for score, text in enumerate(self.levels, start=SCALE_MIN)]
        return "\n".join(lines)


@dataclass(frozen=True, slots=True)
class Rubric:
    name: str
    label: str  # the human version string from the file
    digest: str  # 12 hex digits over rubric + template + renderer version
    dimensions: tuple[Dimension, ...]
    sections: tuple[tuple[str, str], ...]  # (role, template text) in message order
    path: str
    template_path: str
    fixed: Mapping[str, str] = field(init=False, repr=False, compare=False)  # rubric placeholders

    def __post_init__(self) -> None:
        # Rendered once: the same for every case, and json.dumps per request would dominate.
        object.__setattr__(
            self,
            "fixed",
            {
                "rubric": self.rubric_text(),
                "dimensions": ", ".join(f'"{n}"' for n in self.names),
                "json_example": self.json_example(),
                "fence": FENCE,
            },
        )

    @property
    def version(self) -> str:
        """What every judgment records, and what resume and comparisons match on."""
        return f"{self.label}+{self.digest}"

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(d.name for d in self.dimensions)

    def rubric_text(self) -> str:
        return "\n\n".join(d.describe() for d in self.dimensions)

    def json_example(self) -> str:
        example = {"rationale": "One or two sentences on the main strengths and weaknesses."}
        example.update({n: 3 for n in self.names})
        return json.dumps(example, indent=2)

    def response_format(self) -> dict[str, Any]:
        """OpenAI structured output: every dimension an integer 1..5, and a nullable rationale.
        Strict mode needs every property required, so "optional" is spelled as nullable. The
        rationale comes first so a judge writes its reasons before its numbers."""
        props: dict[str, Any] = {
            "rationale": {"type": ["string", "null"], "description": "at most two sentences"}
        }
        for d in self.dimensions:
            props[d.name] = {
                "type": "integer",
                "enum": list(range(SCALE_MIN, SCALE_MAX + 1)),
                "description": d.title,
            }
        schema = {
            "type": "object",
            "properties": props,
            "required": list(props),
            "additionalProperties": False,
        }
        return {
            "type": "json_schema",
            "json_schema": {"name": "rubric_scores", "strict": True, "schema": schema},
        }

    def render(self, values: Mapping[str, str]) -> list[dict[str, str]]:
        """Fill the template in one pass (text inserted for one placeholder is never re-scanned,
        so a candidate containing `{{rubric}}` stays literal). Rubric-level placeholders are
        filled here; the case placeholders come from `values`."""
        return fill_sections(self.sections, {**self.fixed, **values})

    def normalised(self, scores: Mapping[str, int | None]) -> float | None:
        """Mean of (s - 1) / 4 over the dimensions: the [0, 1] rubric reward of the training
        recipe. None unless every dimension has a score (a partial verdict is not a reward)."""
        vals = [scores.get(n) for n in self.names]
        if any(v is None for v in vals):
            return None
        span = SCALE_MAX - SCALE_MIN
        return sum((v - SCALE_MIN) / span for v in vals) / len(vals)  # type: ignore[operator]


def fill_sections(
    sections: Sequence[tuple[str, str]], filled: Mapping[str, str]
) -> list[dict[str, str]]:
    """Chat messages from template sections, every `{{name}}` filled in one pass (text inserted for
    one placeholder is never re-scanned). Shared by the rubric and the pairwise template."""
    missing = {
        m.group(1) for _, text in sections for m in _PLACEHOLDER.finditer(text)
    } - filled.keys()
    if missing:
        raise KeyError(f"no value for template placeholder(s) {sorted(missing)}")
    return [
        {"role": role, "content": _PLACEHOLDER.sub(lambda m: filled[m.group(1)], text).strip()}
        for role, text in sections
    ]


def load_rubric(path: str | Path | None = None) -> Rubric:
    """Read and validate a rubric file and its template. Raises RubricError naming the field."""
    p = Path(path) if path is not None else default_rubric_path()
    if not p.is_file():
        raise RubricError(f"{p}: rubric file not found")
    text = p.read_text(encoding="utf-8")
    try:
        raw = json.loads(text) if p.suffix == ".json" else yaml.safe_load(text)
    except (json.JSONDecodeError, yaml.YAMLError) as e:
        raise RubricError(f"{p}: cannot parse: {e}") from None
    if not isinstance(raw, dict):
        raise RubricError(f"{p}: expected a mapping at the top level")

    def text(v: Any, field: str) -> str:
        if not isinstance(v, str) or not v.strip():
            raise RubricError(f"{p}: field '{field}' must be a non-empty string")
        return " ".join(v.split())

    def need_str(obj: Mapping, key: str, where: str) -> str:
        return text(obj.get(key), f"{where}{key}")

    name = need_str(raw, "name", "")
    label = str(raw.get("version", "")).strip()
    if not label:
        raise RubricError(
            f"{p}: field 'version' must be a non-empty string (the human version label)"
        )
    scale = raw.get("scale", {"min": SCALE_MIN, "max": SCALE_MAX})
    if scale != {"min": SCALE_MIN, "max": SCALE_MAX}:
        raise RubricError(
            f"{p}: field 'scale' must be {{min: {SCALE_MIN}, max: {SCALE_MAX}}}, got {scale!r}"
        )
    dims_raw = raw.get("dimensions")
    if not isinstance(dims_raw, list):
        raise RubricError(f"{p}: field 'dimensions' must be a list")
    dims: list[Dimension] = []
    for i, d in enumerate(dims_raw):
        if not isinstance(d, dict):
            raise RubricError(f"{p}: field 'dimensions[{i}]' must be a mapping")
        dname = need_str(d, "name", f"dimensions[{i}].")
        where = f"dimensions[{dname}]."
        levels = d.get("levels")
        if not isinstance(levels, dict) or {_int_key(k) for k in levels} != set(
            range(SCALE_MIN, SCALE_MAX + 1)
        ):
            raise RubricError(
                f"{p}: field '{where}levels' must describe every level {SCALE_MIN}..{SCALE_MAX} exactly once"
            )
        by_score = {_int_key(k): v for k, v in levels.items()}
        texts = tuple(
            text(by_score[s], f"{where}levels.{s}") for s in range(SCALE_MIN, SCALE_MAX + 1)
        )
        dims.append(
            Dimension(dname, need_str(d, "title", where), need_str(d, "definition", where), texts)
        )
    names = [d.name for d in dims]
    if sorted(names) != sorted(DIMENSIONS) or len(set(names)) != len(names):
        raise RubricError(
            f"{p}: field 'dimensions' must define each of {', '.join(DIMENSIONS)} once, got {names}"
        )

    tname = raw.get("template")
    if not isinstance(tname, str) or not tname.strip():
        raise RubricError(f"{p}: field 'template' must name the prompt template file")
    tpath = (p.parent / tname).resolve()
    if not tpath.is_file():
        raise RubricError(f"{p}: field 'template': {tpath} not found")
    template = tpath.read_text(encoding="utf-8").replace("\r\n", "\n")
    sections = split_sections(template, tpath)

    material = {
        "rubric": _canon(raw),
        "template": template,
        "renderer": RENDERER_VERSION,
        "fence": FENCE,
    }
    blob = json.dumps(
        material, sort_keys=True, ensure_ascii=False, separators=(",", ":"), default=str
    )
    digest = hashlib.sha256(blob.encode("utf-8")).hexdigest()[:12]
    return Rubric(name, label, digest, tuple(dims), sections, str(p), str(tpath))


def _canon(obj: Any) -> Any:
    """Keys as strings (YAML reads `1:` as an int), so mixed key types still sort and hash."""
    if isinstance(obj, dict):
        return {str(k): _canon(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_canon(v) for v in obj]
    return obj


def _int_key(k: Any) -> int | None:
    try:
        return int(k)
    except (TypeError, ValueError):
        return None


def split_sections(
    template: str,
    path: Path,
    known: frozenset[str] = PLACEHOLDERS,
    required: Sequence[str] = ("rubric", "candidate"),
) -> tuple[tuple[str, str], ...]:
    """A template's (role, text) sections, split at `<!-- role: ... -->` lines; RubricError naming
    the file for a missing marker, an unknown placeholder or a missing required one."""
    marks = list(_ROLE_LINE.finditer(template))
    if not marks:
        raise RubricError(
            f"{path}: no '<!-- role: system -->' / '<!-- role: user -->' section markers"
        )
    sections = []
    for i, m in enumerate(marks):
        end = marks[i + 1].start() if i + 1 < len(marks) else len(template)
        sections.append((m.group(1), template[m.end() : end]))
    if sections[-1][0] != "user":
        raise RubricError(f"{path}: the last section must be 'role: user' (the case to judge)")
    used = [m.group(1) for _, text in sections for m in _PLACEHOLDER.finditer(text)]
    unknown = sorted(set(used) - known)
    if unknown:
        raise RubricError(f"{path}: unknown placeholder(s) {unknown}; known: {sorted(known)}")
    for name in required:
        if name not in used:
            raise RubricError(f"{path}: the template must contain {{{{{name}}}}}")
    return tuple(sections)
