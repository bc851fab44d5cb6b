"""A run folder: self-describing, append-only while running, safe to kill at any moment.

  run.json           manifest: what was run and how to reproduce it (task, model, data, decoding,
                     history mode, versions, git commit); written before the first request
  predictions.jsonl  one line per finished item (schema: docs/predictions.md); append + flush
  judgments.jsonl    one line per judge verdict (see scoring/judge.py)
  results.json       metrics with n and 95% CIs; summary.md the readable table
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import asdict
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

from kardiabench import __version__
from kardiabench.records import Prediction

PREDICTIONS = "predictions.jsonl"
MANIFEST = "run.json"
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


def read_jsonl_tolerant(path: Path, repair: bool = False) -> list[dict]:
    """Read a JSONL file written append-only. A torn last line (process killed mid-write) is
    dropped, and with repair=True cut from the file so later appends start on a clean line."""
    if not path.exists():
        return []
    rows: list[dict] = []
    good_end = 0
    with path.open("rb") as fh:
        data = fh.read()
    pos = 0
    for raw in data.splitlines(keepends=True):
        end = pos + len(raw)
        pos = end
        if not raw.endswith(b"\n"):
            break
        try:
            rows.append(json.loads(raw))
        except json.JSONDecodeError:
            break
        good_end = end
    if repair and good_end < len(data):
        with path.open("r+b") as fh:
            fh.truncate(good_end)
    return rows


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

    def __init__(self, path: Path):
        read_jsonl_tolerant(path, repair=True)
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
        self.path.mkdir(parents=True, exist_ok=True)
        tmp = self.manifest_path.with_suffix(".tmp")
        tmp.write_text(json.dumps(manifest, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
        os.replace(tmp, self.manifest_path)

    def write_json(self, name: str, data: Any) -> Path:
        """Write a final JSON file atomically (temp file + rename): never half-written."""
        self.path.mkdir(parents=True, exist_ok=True)
        target = self.path / name
        tmp = target.with_suffix(target.suffix + ".tmp")
        tmp.write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
        os.replace(tmp, target)
        return target

    def read_predictions(self) -> dict[str, Prediction]:
        """Latest line per item id (a retried item's later line wins)."""
        preds: dict[str, Prediction] = {}
        for row in read_jsonl_tolerant(self.predictions_path):
            preds[row["item_id"]] = Prediction(**{k: v for k, v in row.items() if k in Prediction.__dataclass_fields__})
        return preds

    def prediction_writer(self) -> JsonlWriter:
        self.path.mkdir(parents=True, exist_ok=True)
        return JsonlWriter(self.predictions_path)


def prediction_row(p: Prediction) -> dict[str, Any]:
    return asdict(p)
