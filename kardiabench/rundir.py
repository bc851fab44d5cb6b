"""A run folder: self-describing, append-only while running, safe to kill at any moment.

  run.json           manifest: what was run and how to reproduce it (task, model, data, decoding,
                     history mode, versions, git commit); written before the first request
  predictions.jsonl  one line per finished item (schema: docs/predictions.md); append + flush
  judgments.jsonl    one line per judge verdict (see scoring/judge.py)
  results.json       metrics with n and 95% CIs; summary.md the readable table
  items.jsonl        per-item rows of the last scoring
  *.rejected         damaged lines set aside from a JSONL file above, with their line numbers
  .lock              held by the process working on the folder (see RunDir.lock)
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import platform
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

from kardiabench import __version__
from kardiabench.records import Prediction

PREDICTIONS = "predictions.jsonl"
MANIFEST = "run.json"
JUDGMENTS = "judgments.jsonl"
RESULTS = "results.json"
ITEMS = "items.jsonl"
SUMMARY = "summary.md"
REPORT = "report.html"
LOCK = ".lock"
REJECTED = ".rejected"  # suffix of the file that keeps a JSONL file's damaged lines
DERIVED = (PREDICTIONS, JUDGMENTS, RESULTS, ITEMS, SUMMARY, REPORT)  # what --overwrite removes
PREDICTION_KEYS = ("item_id", "model", "raw_output")  # a predictions line without one is damaged
log = logging.getLogger(__name__)
_HELD: set[Path] = set()  # run folders whose lock this process holds
_PACKAGES = ("torch", "transformers", "vllm", "openai", "datasets", "trl", "scikit-learn", "scipy", "numpy")


class RunDirError(Exception):
    pass


def provenance() -> dict[str, Any]:
    """Versions and commit of the harness and its main dependencies (never environment variables)."""
    versions = {}
    for p in _PACKAGES:
        try:
            versions[p] = metadata.version(p)
        except metadata.PackageNotFoundError:
            continue
    commit = None
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=Path(__file__).parent, capture_output=True, text=True, timeout=5)
        commit = out.stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        pass
    return {
        "kardiabench": __version__,
        "git_commit": commit,
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "packages": versions,
    }


def now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def read_jsonl_tolerant(path: Path, repair: bool = False, required: tuple[str, ...] = ()) -> list[dict]:
    """Read one of the run's own append-only JSONL files, losing no good line.

    A torn last line (no newline: the process was killed mid-write) is dropped silently. A damaged
    line anywhere else (not JSON, not an object, or lacking a `required` key) is skipped with a
    warning naming its line, and every good line after it is kept. With repair=True the file is
    rewritten atomically without them, and the damaged lines are appended to `<name>.rejected`."""
    if not path.exists():
        return []
    *lines, tail = path.read_bytes().split(b"\n")  # tail: b"" unless the last line is torn
    rows: list[dict] = []
    kept: list[bytes] = []
    damaged: list[tuple[int, bytes, str]] = []
    for lineno, raw in enumerate([*lines, tail], start=1):
        if not raw.strip():
            continue
        row, why = _parse_line(raw, required)
        if row is not None:
            rows.append(row)
            kept.append(raw)
        elif lineno <= len(lines):  # a torn tail is the expected crash artefact, not damage
            damaged.append((lineno, raw, why))
    where = ", ".join(f"line {n}: {why}" for n, _, why in damaged[:10]) + (", …" if len(damaged) > 10 else "")
    if not repair:
        if damaged:
            log.warning(f"warning: {path}: {len(damaged)} damaged line(s) ignored ({where}); the {len(rows)} good lines are used")
        return rows
    if damaged:
        with path.with_name(path.name + REJECTED).open("ab") as fh:
            fh.writelines(b"%d\t%s\n" % (n, raw) for n, raw, _ in damaged)
        log.warning(f"warning: {path}: {len(damaged)} damaged line(s) set aside in {path.name}{REJECTED} "
                    f"({where}); the {len(rows)} good lines are kept")  # fmt: skip
    if damaged or tail:
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_bytes(b"".join(raw + b"\n" for raw in kept))
        os.replace(tmp, path)
    return rows


def _parse_line(raw: bytes, required: tuple[str, ...]) -> tuple[dict | None, str]:
    """(the line's object, "") or (None, why it is damaged)."""
    try:
        row = json.loads(raw)
    except ValueError:  # JSONDecodeError, or bytes that are not UTF-8
        return None, "not valid JSON"
    if not isinstance(row, dict):
        return None, "not a JSON object"
    missing = [k for k in required if k not in row]
    return (None, f"no {', '.join(missing)}") if missing else (row, "")


def iter_jsonl_objects(path: Path, error: type[Exception]) -> Iterator[tuple[int, dict]]:
    """(1-based line, object) for each non-blank line of a user-supplied JSONL file; the first line
    that is not a JSON object raises `error` naming the file and line."""
    with path.open(encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, start=1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as e:
                raise error(f"{path}:{lineno}: not valid JSON: {e.msg}") from None
            if not isinstance(row, dict):
                raise error(f"{path}:{lineno}: expected a JSON object")
            yield lineno, row


class JsonlWriter:
    """Append one JSON object per line and flush it, so a killed process keeps every finished line."""

    def __init__(self, path: Path, required: tuple[str, ...] = ()):
        read_jsonl_tolerant(path, repair=True, required=required)
        self._fh = path.open("a", encoding="utf-8")

    def write(self, row: dict) -> None:
        self._fh.write(json.dumps(row, ensure_ascii=False) + "\n")
        self._fh.flush()

    def close(self) -> None:
        self._fh.flush()
        os.fsync(self._fh.fileno())
        self._fh.close()


class RunDir:
    def __init__(self, path: str | Path):
        self.path = Path(path)

    @property
    def manifest_path(self) -> Path:
        return self.path / MANIFEST

    @property
    def predictions_path(self) -> Path:
        return self.path / PREDICTIONS

    def read_manifest(self) -> dict[str, Any]:
        if not self.manifest_path.exists():
            raise RunDirError(f"{self.path}: not a run folder (no {MANIFEST})")
        return json.loads(self.manifest_path.read_text(encoding="utf-8"))

    def write_manifest(self, manifest: dict[str, Any]) -> None:
        """run.json through its typed model (runs.RunManifest): checked, schema_version first, atomic."""
        from kardiabench.runs import RunManifest  # runs.py builds on this module

        RunManifest.model_validate(manifest).write(self.manifest_path)

    def write_json(self, name: str, data: Any) -> Path:
        """Write a final JSON file atomically (temp file + rename): never half-written."""
        self.path.mkdir(parents=True, exist_ok=True)
        target = self.path / name
        tmp = target.with_suffix(target.suffix + ".tmp")
        tmp.write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
        os.replace(tmp, target)
        return target

    def read_predictions(self, repair: bool = False) -> dict[str, Prediction]:
        """Latest line per item id (a retried item's later line wins); see read_jsonl_tolerant."""
        preds: dict[str, Prediction] = {}
        for row in read_jsonl_tolerant(self.predictions_path, repair, PREDICTION_KEYS):
            preds[row["item_id"]] = Prediction(**{k: v for k, v in row.items() if k in Prediction.__dataclass_fields__})
        return preds

    def prediction_writer(self) -> JsonlWriter:
        self.path.mkdir(parents=True, exist_ok=True)
        return JsonlWriter(self.predictions_path, PREDICTION_KEYS)

    def clear(self) -> None:
        """Remove everything derived from an earlier run (--overwrite); run.json is rewritten after."""
        for path in [*(self.path / name for name in DERIVED), *self.path.glob(f"*{REJECTED}")]:
            path.unlink(missing_ok=True)

    @contextmanager
    def lock(self) -> Iterator[None]:
        """Hold the folder for this process: a second process on it refuses at once. An flock on
        DIR/.lock is released by the kernel when its holder dies, so a killed run never blocks the
        next one; within one process the lock is re-entrant (`run` = generate, then score)."""
        if not self.path.is_dir():
            raise RunDirError(f"{self.path}: not a run folder (no such folder)")
        key = self.path.resolve()
        if key in _HELD:
            yield
            return
        with (key / LOCK).open("a+", encoding="utf-8") as fh:
            try:
                fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                fh.seek(0)
                holder = fh.read().strip() or "unknown"
                raise RunDirError(f"{self.path} is in use by another kardiabench process (pid {holder}); "
                                  "wait for it to finish, or use another --output") from None  # fmt: skip
            fh.truncate(0)
            fh.write(f"{os.getpid()}\n")
            fh.flush()
            _HELD.add(key)
            try:
                yield
            finally:
                _HELD.discard(key)
                fh.truncate(0)  # closing the file releases the lock


def prediction_row(p: Prediction) -> dict[str, Any]:
    return asdict(p)
