"""A run folder: self-describing, append-only while running, safe to kill at any moment.

  run.json           manifest: what was run and how to reproduce it (task, model, data, decoding,
                     history mode, versions, git commit); written before the first request
  predictions.jsonl  one line per finished item (schema: docs/run-folder.md, predictions.jsonl); append + flush
  judgments.jsonl    one line per judge verdict (see judging.py)
  results.json       metrics with n and 95% CIs; summary.md the readable table
  items.jsonl        per-item rows of the last scoring
  report.html        the page of the last scoring (`run`, `report`); a new scoring removes an old one
  *.rejected         damaged lines set aside from a JSONL file above, with their line numbers
  .lock              held by the process working on the folder (see RunDir.lock)
"""

from __future__ import annotations

import fcntl
import json
import os
import platform
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

from kardiabench import __version__
from kardiabench.jsonl import REJECTED, JsonlWriter, read_jsonl_tolerant
from kardiabench.records import Prediction

PREDICTIONS = "predictions.jsonl"
MANIFEST = "run.json"
JUDGMENTS = "judgments.jsonl"
RESULTS = "results.json"
ITEMS = "items.jsonl"
SUMMARY = "summary.md"
REPORT = "report.html"
LOCK = ".lock"
BATCHES = "batches.json"  # provider batch jobs (models/openai_batch.py)
DERIVED = (PREDICTIONS, JUDGMENTS, RESULTS, ITEMS, SUMMARY, REPORT, BATCHES)  # what --overwrite removes
# What a scoring derives from the predictions and verdicts, replaced as one by every scoring;
# results.json first: its presence says the folder is scored.
SCORED = (RESULTS, ITEMS, SUMMARY, REPORT)
PREDICTION_KEYS = ("item_id", "model", "raw_output")  # a predictions line without one is damaged
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
            preds[row["item_id"]] = Prediction.from_dict(row)
        return preds

    def prediction_writer(self) -> JsonlWriter:
        self.path.mkdir(parents=True, exist_ok=True)
        return JsonlWriter(self.predictions_path, PREDICTION_KEYS)

    def clear(self) -> None:
        """Remove everything derived from an earlier run (--overwrite); run.json is rewritten after."""
        for path in [*(self.path / name for name in DERIVED), *self.path.glob(f"*{REJECTED}")]:
            path.unlink(missing_ok=True)

    def clear_scored(self) -> None:
        """Remove the files of the last scoring (SCORED), results.json first, so that a folder
        part-way through a new scoring reads as not scored rather than as the old scoring."""
        for name in SCORED:
            (self.path / name).unlink(missing_ok=True)

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
