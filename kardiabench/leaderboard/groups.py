"""Comparability groups: entries whose scores may be ranked together.

Two entries share a group when they agree on everything that changes what a score means: the data
(source, split and the fingerprint of the item set, so a `--limit` subset is its own group), the
judge(s), rubric version and every judging setting that changes scores (`JUDGE_SETTINGS`: endpoint,
show-reasoning, pool, repeats, escalation, max tokens, temperature, seed), the history mode, the task prompt (its hash) and the span parser
version. Groups are named G1, G2, … by size (largest first), and each gets a one-line explanation.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kardiabench.leaderboard.entries import Entry


@dataclass(frozen=True, slots=True)
class Group:
    name: str  # G1, G2, …
    key: tuple[tuple[str, Any], ...]
    entries: tuple[Entry, ...]

    @property
    def explanation(self) -> str:
        """One line: what every entry of the group shares."""
        k = dict(self.key)
        items = f"{k['n_items']} items, fingerprint {k['fingerprint']}"
        judge = (
            f"judge {k['judges']} (rubric {k['rubric_version']}; {_settings_text(k['judge_settings'])})"
            if k["judges"]
            else "no judge"
        )
        return (
            f"{self.name}: data {k['source']} / {k['split']} ({items}); {judge}; history {k['history']}; "
            f"task prompt {k['task']}; parser v{k['parser_version']}"
        )

    @property
    def short(self) -> str:
        """A few words for a paper's table: data, items, judge (the explanation has the rest)."""
        return self.short_label()

    def short_label(self, names: Mapping[str, str] | None = None) -> str:
        """`short`, with each judge spec by its display name in `names` (`--names FILE`). A local
        data folder is named by its last component, and a missing split is left out (no "/None")."""
        k, names = dict(self.key), names or {}
        data = "/".join(str(p) for p in (_data_name(k["source"]), k["split"]) if p)
        judges = (
            ", ".join(names.get(j, j) for j in k["judges"].split(", "))
            if k["judges"]
            else "no judge"
        )
        return f"{self.name}: {data or 'data ?'}, {k['n_items']} items, {judges}"


def _data_name(source: str | None) -> str | None:
    """A data source as a paper may show it: a local path by its last component (`/home/me/kb` →
    `kb`); a Hub id or a bundled name as it is."""
    if not source or not (source.startswith(("/", ".", "~")) or "\\" in source):
        return source
    return Path(source.rstrip("/\\")).name or source


# run.json's judge settings that change scores (judge_stage.judge_block, verdict_settings): all of
# them are in the key, so the same judge spec on two servers, or with --judge-show-reasoning, a
# pool rule, repeats, an escalation or another temperature, is its own group; so is a local judge
# (hf:, vllm:) under another dtype, revision or chat template (`models`, only where recorded).
JUDGE_SETTINGS = (
    "endpoints",
    "show_reasoning",
    "pool",
    "repeats",
    "escalation",
    "max_tokens",
    "temperature",
    "seed",
)


def _settings_text(settings: str | None) -> str:
    """The judge settings of a group key in a few words: `endpoint …, show_reasoning false, …`."""
    d = json.loads(settings) if settings else {}
    ends = d.get("endpoints")
    parts = [
        f"endpoint {', '.join(f'{v}' for v in ends.values()) if isinstance(ends, dict) else ends}"
    ]
    parts += [f"{k} {json.dumps(v)}" for k, v in d.items() if k != "endpoints"]
    return ", ".join(parts)


def comparability_key(entry: Entry) -> tuple[tuple[str, Any], ...]:
    """What must be equal for two entries to be ranked together (see the module docstring)."""
    res, man = entry.results, entry.manifest
    data, judge = res.get("data", {}), man.get("judge") or res.get("judge") or {}
    rubric = res.get("rubric") or {}
    judges = ", ".join(rubric.get("judges") or ([judge["spec"]] if judge.get("spec") else []))
    task = (man.get("generation") or {}).get("task") or {}
    task_id = f"{task.get('name', res.get('task'))}#{task.get('sha256', '?')}"
    esc = judge.get("escalation")
    settings = {k: judge.get(k) for k in JUDGE_SETTINGS} | {
        "escalation": esc and {"judge": esc.get("judge"), "threshold": esc.get("threshold")}
    }
    if judge.get("models"):  # a local judge's weights (revision, dtype, chat template)
        settings["models"] = judge["models"]
    return (
        ("source", data.get("source")),
        ("split", data.get("split")),
        ("fingerprint", data.get("fingerprint")),
        ("n_items", data.get("n_items")),
        ("judges", judges),
        ("rubric_version", judge.get("rubric_version")),
        ("judge_settings", json.dumps(settings, sort_keys=True) if judges else None),
        ("history", res.get("history")),
        ("task", task_id),
        ("parser_version", res.get("parser_version")),
    )


def group_entries(entries: Sequence[Entry]) -> list[Group]:
    """Entries grouped by `comparability_key`: largest group first, ties by first entry id."""
    by_key: dict[tuple, list[Entry]] = {}
    for e in entries:
        by_key.setdefault(comparability_key(e), []).append(e)
    ordered = sorted(by_key.items(), key=lambda kv: (-len(kv[1]), kv[1][0].entry_id))
    return [Group(f"G{i}", key, tuple(members)) for i, (key, members) in enumerate(ordered, 1)]
