"""Leaderboard entries: a run folder recorded as JSON in FOLDER/entries/, its items in FOLDER/items/.

An entry keeps what the leaderboard needs once the run folder is gone: the run's results.json, its
manifest (provenance: data, judge, task hash, history mode, versions, command), the path of its
report, and a copy of its items.jsonl (ids, gold and predicted emotion, rubric scores: no dialogue
text) so that paired tests between entries can be made later. An entry's id is derived from the
run folder's absolute path, so adding the same folder again replaces its entry.

results.json is not trusted: `check_items` recomputes every per-item metric from the items (the
pure scoring code, same bootstrap) on `add` and again on `build`, and refuses a number that differs;
a run with no predicted item (an endpoint that was down) is refused by `add` and not ranked by
`build`. Entry files are validated on read (`load_entries`): the id is a safe file name, the
schema version known, the fields of the right types.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
import shutil
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError

from kardiabench.jsonl import read_jsonl_tolerant
from kardiabench.runs import (
    ITEMS,
    REPORT,
    Results,
    RunDir,
    RunDirError,
    RunManifest,
    load_run,
    now,
    one_line,
)
from kardiabench.scoring.metrics import PER_ITEM_METRICS, metrics_from_rows

DEFAULT_FOLDER = Path("leaderboard")
ENTRIES = "entries"
ITEMS_DIR = "items"
ENTRY_SCHEMA_VERSION = 1  # of FOLDER/entries/ID.json; a file without one is version 1
SAFE_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")  # a file name: no separator, no leading dot
# Numbers of results.json checked against the items; the value within this tolerance.
CHECKED_FIELDS = ("value", "n", "n_unscored", "ci_low", "ci_high")
TOLERANCE = 1e-9
NO_PREDICTIONS = "no predicted items"


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


def check_items(
    results: Mapping[str, Any], rows: Sequence[Mapping[str, Any]], where: str | Path
) -> str | None:
    """Recompute the per-item metrics (every leaderboard column; not macro F1) from `rows`
    (items.jsonl) with results.json's own bootstrap
    settings and compare them with `results`: a LeaderboardError naming `where` and the first
    metric that differs. Returns NO_PREDICTIONS (not checked further) when no item has a
    prediction, else None. A metric results.json reports as not computed (value null) is not a
    claim and passes."""
    if not any(not r.get("failed", False) for r in rows):
        return NO_PREDICTIONS
    stats = results.get("statistics") or {}
    try:
        recomputed = metrics_from_rows(
            rows,
            n_resamples=stats.get("n_resamples", 1000),
            seed=stats.get("seed", 0),
            alpha=round(1 - stats.get("confidence", 0.95), 12),
            cluster_by=stats.get("cluster_by", "dialogue"),
        )
    except (TypeError, ValueError, KeyError, AttributeError) as e:
        raise LeaderboardError(
            f"{where}: items.jsonl: not the rows `kardiabench score` writes ({type(e).__name__}: {e})"
        ) from None
    checks_ci = "n_resamples" in stats
    for name, claimed in (results.get("metrics") or {}).items():
        if name not in recomputed and (
            claimed.get("value") is None or name not in PER_ITEM_METRICS
        ):
            continue  # not claimed, or not a per-item metric (macro F1: not on the leaderboard)
        if name not in recomputed:
            raise LeaderboardError(
                f"{where}: results.json reports {name} = {claimed['value']} but its items.jsonl has no {name} scores"
            )
        got = recomputed[name].to_dict()
        if claimed.get("value") is None:
            continue
        for key in CHECKED_FIELDS if checks_ci else CHECKED_FIELDS[:3]:
            if not _same(claimed.get(key), got[key]):
                raise LeaderboardError(
                    f"{where}: results.json {name}.{key} is {claimed.get(key)} but its items.jsonl gives {got[key]}; "
                    "score the run again (`kardiabench score DIR`)"
                )
    return None


def _same(a: Any, b: Any) -> bool:
    if a is None or b is None:
        return a is b
    return math.isclose(float(a), float(b), rel_tol=TOLERANCE, abs_tol=TOLERANCE)


def add_run(
    run_dir: str | Path, folder: str | Path = DEFAULT_FOLDER, *, display_name: str | None = None
) -> Entry:
    """Record a scored run folder into `folder` (replacing an earlier entry of the same folder).
    display_name: the name tables, plots and the site show instead of the model spec. Refused: a folder not scored, one whose results.json differs from its items.jsonl, one without
    a single predicted item (`check_items`)."""
    run_dir, folder = Path(run_dir), Path(folder)
    run = load_run(run_dir)
    if run.results is None or not (run_dir / ITEMS).is_file():
        raise LeaderboardError(
            f"{run_dir}: not scored yet (no results.json/{ITEMS}); run `kardiabench score {run_dir}` first"
        )
    results = run.results.model_dump(mode="json", exclude_unset=True)
    if check_items(results, read_jsonl_tolerant(run_dir / ITEMS), run_dir) == NO_PREDICTIONS:
        raise LeaderboardError(
            f"{run_dir}: every metric was computed over no predicted items (0 of {results['data']['n_items']} items "
            "generated: the endpoint was down?); not added. Generate the missing items again first"
        )
    eid = entry_id(run.model, run_dir)
    items_rel = f"{ITEMS_DIR}/{eid}.jsonl"
    (folder / ITEMS_DIR).mkdir(parents=True, exist_ok=True)
    shutil.copyfile(run_dir / ITEMS, folder / items_rel)
    data = {
        "schema_version": ENTRY_SCHEMA_VERSION,
        "entry_id": eid,
        "kind": "run",
        "model": run.model,
        "run_path": str(run_dir.resolve()),
        "report": str((run_dir / REPORT).resolve()) if (run_dir / REPORT).is_file() else None,
        "items": items_rel,
        "added": now(),
        "display_name": display_name or None,
        "results": results,
        "manifest": run.manifest.model_dump(mode="json", exclude_unset=True),
    }
    RunDir(folder / ENTRIES).write_json(f"{eid}.json", data)
    return Entry(folder, data)


class EntryFile(BaseModel):
    """What FOLDER/entries/ID.json must hold (`load_entries` checks it): the id is the file's name
    (so `build` writes only inside the folder), the items copy is items/ID.jsonl, results and
    manifest are a results.json and a run.json."""

    model_config = ConfigDict(extra="allow")
    schema_version: int = ENTRY_SCHEMA_VERSION
    entry_id: str
    kind: Literal["run"] = "run"
    model: str
    run_path: str
    report: str | None = None
    display_name: str | None = None
    items: str
    added: str | None = None
    results: Results
    manifest: RunManifest


def validate_entry(path: Path, data: Any) -> None:
    """A LeaderboardError in one line naming the entries file and the field when `data` is not an
    entry `build` can use safely."""
    if not isinstance(data, dict):
        raise LeaderboardError(f"{path}: not an entry (a JSON object expected)")
    version = data.get("schema_version", 1)
    if version != ENTRY_SCHEMA_VERSION:
        raise LeaderboardError(
            f"{path}: schema_version: {version!r} is not a version this kardiabench reads ({ENTRY_SCHEMA_VERSION})"
        )
    try:
        EntryFile.model_validate(data)
    except ValidationError as e:
        raise LeaderboardError(one_line(path, e)) from None
    eid = data["entry_id"]
    if not SAFE_ID.fullmatch(eid) or eid != path.stem:
        raise LeaderboardError(
            f"{path}: entry_id: {eid!r} is not this file's name ({path.stem!r}) as a safe file name"
        )
    if data["items"] != f"{ITEMS_DIR}/{eid}.jsonl":
        raise LeaderboardError(f"{path}: items: {data['items']!r} is not {ITEMS_DIR}/{eid}.jsonl")


def load_entries(folder: str | Path = DEFAULT_FOLDER) -> list[Entry]:
    """Every entry of `folder`, in id order; a damaged or unsafe entry file is an error naming it."""
    folder = Path(folder)
    if not folder.is_dir():
        raise LeaderboardError(
            f"{folder}: no such leaderboard folder (add runs with `kardiabench leaderboard add DIR --leaderboard {folder}`)"
        )
    entries = []
    for path in sorted((folder / ENTRIES).glob("*.json")):
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except ValueError as e:
            raise LeaderboardError(f"{path}: not valid JSON ({e})") from None
        validate_entry(path, data)
        entries.append(Entry(folder, data))
    return entries


def load_names(path: str | Path, entries: Sequence[Entry]) -> dict[str, str]:
    """`--names FILE`: a YAML or JSON mapping {model spec or entry id: display name} (a judge spec
    names the judge in group labels). One-line LeaderboardError naming the file and the key when
    it is not such a mapping or a key is neither an entry id, a model spec nor a judge of `entries`
    (a misspelt key would otherwise be silently ignored)."""
    path = Path(path)
    try:
        doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as e:
        raise LeaderboardError(f"{path}: cannot read the names file ({e.strerror or e})") from None
    except yaml.YAMLError as e:
        raise LeaderboardError(f"{path}: not YAML or JSON ({_one_line(e)})") from None
    if not isinstance(doc, dict):
        raise LeaderboardError(
            f"{path}: a mapping {{model spec or entry id: display name}} expected, not {type(doc).__name__}"
        )
    known = (
        {e.entry_id for e in entries}
        | {e.model for e in entries}
        | {j for e in entries for j in _judges(e)}
    )
    for key, name in doc.items():
        if not isinstance(key, str) or not isinstance(name, str) or not name.strip():
            raise LeaderboardError(
                f"{path}: {key!r}: a display name (non-empty text) expected, not {name!r}"
            )
        if key not in known:
            raise LeaderboardError(
                f"{path}: {key!r} is neither an entry id, a model spec nor a judge of this leaderboard"
            )
    return {k: v.strip() for k, v in doc.items()}


def _one_line(e: Exception) -> str:
    return " ".join(str(e).split())


def _judges(entry: Entry) -> list[str]:
    rubric = entry.results.get("rubric") or {}
    spec = (entry.manifest.get("judge") or {}).get("spec")
    return list(rubric.get("judges") or ([spec] if spec else []))
