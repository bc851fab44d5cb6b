"""Model families, for the self-preference guard: LLM judges favour text of their own family, so a
run whose evaluated model and judge share a family says so (results.json
`rubric.self_preference_risk`, a warning line in summary.md, a mark on the leaderboard). Likewise a
checkpoint trained with a rubric judge and scored by a judge of that judge's family
(`rubric.training_judge_risk`): the checkpoint learnt that family's taste.

A model spec's name is its part after the provider prefix and after the last '/', lower-cased
("vllm:Qwen/Qwen3-8B" → "qwen3-8b"); the first glob pattern that matches it gives the family. A
user mapping (`--families FILE`, YAML `{pattern: family}`) is tried before DEFAULT_FAMILIES.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from fnmatch import fnmatchcase
from typing import Any

DEFAULT_FAMILIES: dict[str, str] = {
    "gpt-*": "openai",
    "chatgpt-*": "openai",
    "o[0-9]*": "openai",
    "deepseek*": "deepseek",
    "gemini-*": "google",
    "gemma*": "google",
    "qwen*": "qwen",
    "qwq*": "qwen",
    "llama*": "meta",
    "meta-llama*": "meta",
    "claude-*": "anthropic",
    "mistral*": "mistral",
    "mixtral*": "mistral",
}


class FamiliesError(ValueError):
    """A families mapping that is not {pattern: family} strings; the message names the file."""


def model_name(spec: str) -> str:
    """The bare model name of a spec: no provider prefix, no organisation, lower case."""
    return spec.split(":", 1)[-1].rsplit("/", 1)[-1].strip().lower()


def family_of(spec: str, overrides: Mapping[str, str] | None = None) -> str | None:
    name = model_name(spec)
    for table in (overrides or {}, DEFAULT_FAMILIES):
        for pattern, family in table.items():
            if fnmatchcase(name, pattern.lower()):
                return family
    return None


def check_families(obj: Any, source: str) -> dict[str, str]:
    """A user mapping as {pattern: family}, or FamiliesError naming `source` and the bad entry."""
    if isinstance(obj, Mapping) and set(obj) == {"families"}:
        obj = obj["families"]
    if not isinstance(obj, Mapping):
        raise FamiliesError(f"{source}: expected a mapping of model-name patterns to families")
    for k, v in obj.items():
        if not isinstance(k, str) or not isinstance(v, str) or not k.strip() or not v.strip():
            raise FamiliesError(f"{source}: {k!r}: pattern and family must be non-empty strings")
    return dict(obj)


def self_preference_risk(
    model: str | None, judges: Sequence[str], overrides: Mapping[str, str] | None = None
) -> list[list[str]]:
    """[judge, family] for every judge of the evaluated model's family (empty when none or unknown)."""
    family = family_of(model, overrides) if model else None
    if family is None:
        return []
    return [[j, family] for j in judges if family_of(j, overrides) == family]


def training_judge_risk(
    training_judge: str | None, judges: Sequence[str], overrides: Mapping[str, str] | None = None
) -> list[dict[str, str]]:
    """{training_judge, judge, family} for every scoring judge of the training judge's family."""
    if not training_judge:
        return []
    return [
        {"training_judge": training_judge, "judge": j, "family": f}
        for j, f in self_preference_risk(training_judge, judges, overrides)
    ]
