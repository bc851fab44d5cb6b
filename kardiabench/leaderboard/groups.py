"""Comparability groups: entries whose scores may be ranked together.

Two entries share a group when they agree on everything that changes what a score means: the data
(source, split and the fingerprint of the item set, so a `--limit` subset is its own group), the
judge(s) and rubric version, the history mode, the task prompt (its hash) and the span parser
version. Groups are named G1, G2, … by size (largest first), and each gets a one-line explanation.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
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
        judge = f"judge {k['judges']} (rubric {k['rubric_version']})" if k["judges"] else "no judge"
        return (f"{self.name}: data {k['source']} / {k['split']} ({items}); {judge}; history {k['history']}; "
                f"task prompt {k['task']}; parser v{k['parser_version']}")  # fmt: skip


    @property
    def short(self) -> str:
        """A few words for a paper's table: data, items, judge (the explanation has the rest)."""
        k = dict(self.key)
        return f"{self.name}: {k['source']}/{k['split']}, {k['n_items']} items, {k['judges'] or 'no judge'}"


def comparability_key(entry: Entry) -> tuple[tuple[str, Any], ...]:
    """What must be equal for two entries to be ranked together (see the module docstring)."""
    res, man = entry.results, entry.manifest
    data, judge = res.get("data", {}), res.get("judge") or {}
    rubric = res.get("rubric") or {}
    judges = ", ".join(rubric.get("judges") or ([judge["spec"]] if judge.get("spec") else []))
    task = ((man.get("generation") or {}).get("task") or {})
    task_id = f"{task.get('name', res.get('task'))}#{task.get('sha256', '?')}"
    return (
        ("source", data.get("source")), ("split", data.get("split")), ("fingerprint", data.get("fingerprint")),
        ("n_items", data.get("n_items")), ("judges", judges), ("rubric_version", judge.get("rubric_version")),
        ("history", res.get("history")), ("task", task_id), ("parser_version", res.get("parser_version")),
    )  # fmt: skip


def group_entries(entries: Sequence[Entry]) -> list[Group]:
    """Entries grouped by `comparability_key`: largest group first, ties by first entry id."""
    by_key: dict[tuple, list[Entry]] = {}
    for e in entries:
        by_key.setdefault(comparability_key(e), []).append(e)
    ordered = sorted(by_key.items(), key=lambda kv: (-len(kv[1]), kv[1][0].entry_id))
    return [Group(f"G{i}", key, tuple(members)) for i, (key, members) in enumerate(ordered, 1)]
