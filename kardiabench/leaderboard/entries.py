"""Leaderboard entries: a run folder recorded as JSON in FOLDER/entries/, its items in FOLDER/items/.

An entry keeps what the leaderboard needs once the run folder is gone: the run's results.json, its
manifest (provenance: data, judge, task hash, history mode, versions, command), the path of its
report, and a copy of its items.jsonl (ids, gold and predicted emotion, rubric scores: no dialogue
text) so that paired tests between entries can be made later. An entry's id is derived from the
run folder's absolute path, so adding the same folder again replaces its entry.
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kardiabench.rundir import ITEMS, REPORT, RunDir, RunDirError, now
from kardiabench.runs import load_run

DEFAULT_FOLDER = Path("leaderboard")
ENTRIES = "entries"
ITEMS_DIR = "items"


class LeaderboardError(RunDirError):
    """A run that cannot be recorded, or a leaderboard folder that cannot be read."""


@dataclass(frozen=True, slots=True)
class Entry:
    """One recorded run: `data` is the JSON object of FOLDER/entries/ID.json."""

    folder: Path
    data: dict[str, Any]

    @property
    def entry_id(self) -> str:
        return self.data["entry_id"]

    @property
    def model(self) -> str:
        return self.data["model"]

    @property
    def results(self) -> dict[str, Any]:
        return self.data["results"]

    @property
    def manifest(self) -> dict[str, Any]:
        return self.data["manifest"]

    @property
    def run_path(self) -> Path:
        return Path(self.data["run_path"])

    @property
    def items_path(self) -> Path:
        return self.folder / self.data["items"]

    def metric(self, name: str) -> dict[str, Any]:
        """results.json's entry for `name` ({} when the run has no such metric)."""
        return self.results.get("metrics", {}).get(name) or {}


def entry_id(model: str, run_path: Path) -> str:
    """`slug-of-model-<8 hex of the absolute run path>`: stable for a folder, readable in a listing."""
    slug = re.sub(r"[^A-Za-z0-9._-]+", "-", model).strip("-")[:48] or "run"
    return f"{slug}-{hashlib.sha256(str(run_path.resolve()).encode()).hexdigest()[:8]}"


def add_run(run_dir: str | Path, folder: str | Path = DEFAULT_FOLDER) -> Entry:
    """Record a scored run folder into `folder` (replacing an earlier entry of the same folder)."""
    run_dir, folder = Path(run_dir), Path(folder)
    run = load_run(run_dir)
    if run.results is None or not (run_dir / ITEMS).is_file():
        raise LeaderboardError(f"{run_dir}: not scored yet (no results.json/{ITEMS}); run `kardiabench score {run_dir}` first")
    eid = entry_id(run.model, run_dir)
    items_rel = f"{ITEMS_DIR}/{eid}.jsonl"
    (folder / ITEMS_DIR).mkdir(parents=True, exist_ok=True)
    shutil.copyfile(run_dir / ITEMS, folder / items_rel)
    data = {
        "entry_id": eid, "kind": "run", "model": run.model, "run_path": str(run_dir.resolve()),
        "report": str((run_dir / REPORT).resolve()) if (run_dir / REPORT).is_file() else None,
        "items": items_rel, "added": now(),
        "results": run.results.model_dump(mode="json", exclude_unset=True),
        "manifest": run.manifest.model_dump(mode="json", exclude_unset=True),
    }  # fmt: skip
    RunDir(folder / ENTRIES).write_json(f"{eid}.json", data)
    return Entry(folder, data)


def load_entries(folder: str | Path = DEFAULT_FOLDER) -> list[Entry]:
    """Every entry of `folder`, in id order; a damaged entry file is an error naming it."""
    folder = Path(folder)
    if not folder.is_dir():
        raise LeaderboardError(f"{folder}: no such leaderboard folder (add runs with `kardiabench leaderboard add DIR --leaderboard {folder}`)")
    entries = []
    for path in sorted((folder / ENTRIES).glob("*.json")):
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except ValueError as e:
            raise LeaderboardError(f"{path}: not valid JSON ({e})") from None
        missing = [k for k in ("entry_id", "model", "results", "manifest", "items") if k not in data]
        if missing:
            raise LeaderboardError(f"{path}: missing field {missing[0]!r}")
        entries.append(Entry(folder, data))
    return entries
