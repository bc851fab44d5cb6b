"""The one JSONL reader and writer of the project.

* `read_jsonl_tolerant`: the run's own append-only files (predictions, judgments, items), read so
  that a crash loses nothing: a torn last line is dropped, a damaged line is skipped (or set aside
  in `<name>.rejected`) and every good line after it kept.
* `iter_jsonl_objects`: a user-supplied file (human labels, external predictions), strict: the
  first bad line is an error naming the file and line.
* `iter_jsonl_lines`: every non-blank line parsed, a bad one handed back as its error (the dataset
  loader reports all of them at once).
* `parse_object_line`: one line as an object, or why it is damaged (also for a provider's batch
  output file, read over the network).
* `JsonlWriter` appends and flushes line by line; `write_jsonl_atomic` writes a whole file at once.

Our own rather than the `jsonlines` package: crash repair needs byte-level control of torn and
damaged lines (a torn tail is no error, a damaged line keeps its bytes in `.rejected`), which a
line-object reader hides.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

REJECTED = ".rejected"  # suffix of the file that keeps a JSONL file's damaged lines
log = logging.getLogger(__name__)


def encode_line(row: Mapping[str, Any]) -> str:
    """One JSONL line (newline included), UTF-8 text kept as is."""
    return json.dumps(row, ensure_ascii=False) + "\n"


def decode_line(raw: bytes | str) -> Any:
    """The JSON value of one line; raises ValueError (JSONDecodeError, or UnicodeDecodeError for
    bytes that are not UTF-8). Bytes: json decodes UTF-8 itself, a BOM too."""
    return json.loads(raw)


def iter_jsonl_lines(path: Path) -> Iterator[tuple[int, Any]]:
    """(1-based line, parsed value) for each non-blank line; a line that does not parse yields its
    ValueError instead of a value, and reading goes on."""
    with path.open("rb") as fh:
        for lineno, line in enumerate(fh, start=1):
            if not line.strip():
                continue
            try:
                yield lineno, decode_line(line)
            except ValueError as e:
                yield lineno, e


def iter_jsonl_objects(path: Path, error: type[Exception]) -> Iterator[tuple[int, dict]]:
    """(1-based line, object) for each non-blank line of a user-supplied JSONL file; the first line
    that is not a JSON object raises `error` naming the file and line."""
    for lineno, row in iter_jsonl_lines(path):
        if isinstance(row, json.JSONDecodeError):
            raise error(f"{path}:{lineno}: not valid JSON: {row.msg}")
        if isinstance(row, UnicodeDecodeError):
            raise error(
                f"{path}:{lineno}: not valid JSON: not UTF-8 text (byte {row.start + 1} of the line)"
            )
        if not isinstance(row, dict):
            raise error(f"{path}:{lineno}: expected a JSON object")
        yield lineno, row


def read_jsonl_tolerant(
    path: Path, repair: bool = False, required: tuple[str, ...] = ()
) -> list[dict]:
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
        row, why = parse_object_line(raw, required)
        if row is not None:
            rows.append(row)
            kept.append(raw)
        elif lineno <= len(lines):  # a torn tail is the expected crash artefact, not damage
            damaged.append((lineno, raw, why))
    where = ", ".join(f"line {n}: {why}" for n, _, why in damaged[:10]) + (
        ", …" if len(damaged) > 10 else ""
    )
    if not repair:
        if damaged:
            log.warning(
                f"warning: {path}: {len(damaged)} damaged line(s) ignored ({where}); the {len(rows)} good lines are used"
            )
        return rows
    if damaged:
        with path.with_name(path.name + REJECTED).open("ab") as fh:
            fh.writelines(b"%d\t%s\n" % (n, raw) for n, raw, _ in damaged)
        log.warning(
            f"warning: {path}: {len(damaged)} damaged line(s) set aside in {path.name}{REJECTED} "
            f"({where}); the {len(rows)} good lines are kept"
        )
    if damaged or tail:
        _replace(path, b"".join(raw + b"\n" for raw in kept))
    return rows


def parse_object_line(raw: bytes, required: tuple[str, ...] = ()) -> tuple[dict | None, str]:
    """(the line's object, "") or (None, why it is damaged: not JSON, not an object, a required key
    missing). Also for JSONL that arrives over the network (a provider's batch output file)."""
    try:
        row = decode_line(raw)
    except ValueError:  # JSONDecodeError, or bytes that are not UTF-8
        return None, "not valid JSON"
    if not isinstance(row, dict):
        return None, "not a JSON object"
    missing = [k for k in required if k not in row]
    return (None, f"no {', '.join(missing)}") if missing else (row, "")


def _replace(path: Path, data: bytes) -> None:
    """Write `data` as the whole of `path` atomically (temp file + rename): never half-written."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def write_jsonl_atomic(path: Path, rows: Iterable[Mapping[str, Any]]) -> None:
    """Write every row as the whole file at once: a reader sees the old file or the new one."""
    _replace(path, "".join(encode_line(r) for r in rows).encode("utf-8"))


class JsonlWriter:
    """Append one JSON object per line and flush it, so a killed process keeps every finished line.
    Opening it repairs the file first (see read_jsonl_tolerant), so new lines never follow a torn one."""

    def __init__(self, path: Path, required: tuple[str, ...] = ()):
        read_jsonl_tolerant(path, repair=True, required=required)
        self._fh = path.open("a", encoding="utf-8")

    def write(self, row: Mapping[str, Any]) -> None:
        self._fh.write(encode_line(row))
        self._fh.flush()

    def close(self) -> None:
        self._fh.flush()
        os.fsync(self._fh.fileno())
        self._fh.close()
