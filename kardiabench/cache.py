"""Content-addressed store of finished model requests (generations and judge calls).

The key is SHA-256 over the model's identity (spec, revision, dtype, template hash...) and the full
request (messages, sampling parameters, response format). Entries are committed one by one, so a
crash loses at most the requests in flight; SQLite's WAL journal keeps the file consistent if the
process is killed mid-write. The default location is shared across runs, so the same request in
another output folder is not paid for twice.
"""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import time
from functools import lru_cache
from pathlib import Path
from typing import Any

from kardiabench.models.base import ChatRequest, Generation


def default_cache_path() -> Path:
    root = os.environ.get("KARDIABENCH_CACHE")
    if root:
        return Path(root)
    return (
        Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache"))
        / "kardiabench"
        / "cache.sqlite"
    )


def canonical_json(obj: Any) -> str:
    return json.dumps(obj, sort_keys=True, ensure_ascii=False, separators=(",", ":"))


def request_json(request: ChatRequest) -> str:
    """The request's part of the cache key: canonical_json(request.key_material()), byte for byte.

    A caller that needs it anyway (the judge hashes it for `prompt_hash`) can hand it to
    `request_key`, so a long prompt is encoded once. Message texts are encoded through a small
    memo: the judge's system prompt (~9k characters, the rubric) is the same in every request."""
    material = request.key_material()
    messages = material.get("messages")
    if not isinstance(messages, list) or not all(
        isinstance(m, list) and all(isinstance(x, str) for x in m) for m in messages
    ):
        return canonical_json(material)
    parts = []
    for key, value in sorted(material.items()):  # str keys, as sort_keys orders them
        if key == "messages":
            encoded = "[" + ",".join("[" + ",".join(map(_json_text, m)) + "]" for m in value) + "]"
        else:
            encoded = canonical_json(value)
        parts.append(canonical_json(key) + ":" + encoded)
    return "{" + ",".join(parts) + "}"


@lru_cache(maxsize=256)
def _json_text(text: str) -> str:
    return json.dumps(text, ensure_ascii=False)


def request_key(identity: dict[str, Any], request: ChatRequest, material: str | None = None) -> str:
    """SHA-256 of the canonical JSON of {"model": identity, "request": key_material}. `material`:
    `request_json(request)` when already computed. The blob is assembled from the two encoded
    parts, which is byte for byte what encoding the whole mapping with sorted keys gives."""
    material = request_json(request) if material is None else material
    blob = '{"model":' + canonical_json(identity) + ',"request":' + material + "}"
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()


class Cache:
    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS entries (key TEXT PRIMARY KEY, value TEXT NOT NULL, created REAL NOT NULL)"
        )

    def get(self, key: str) -> Generation | None:
        row = self._db.execute("SELECT value FROM entries WHERE key = ?", (key,)).fetchone()
        if row is None:
            return None
        data = json.loads(row[0])
        return Generation(**data)

    def get_many(self, keys: list[str]) -> dict[str, Generation]:
        found: dict[str, Generation] = {}
        for i in range(0, len(keys), 500):
            chunk = keys[i : i + 500]
            marks = ",".join("?" * len(chunk))
            for k, v in self._db.execute(
                f"SELECT key, value FROM entries WHERE key IN ({marks})", chunk
            ):
                found[k] = Generation(**json.loads(v))
        return found

    def put(self, key: str, gen: Generation) -> None:
        value = json.dumps(
            {
                "text": gen.text,
                "reasoning": gen.reasoning,
                "finish_reason": gen.finish_reason,
                "prompt_tokens": gen.prompt_tokens,
                "completion_tokens": gen.completion_tokens,
                "latency_s": gen.latency_s,
                "attempts": gen.attempts,
                "served_model": gen.served_model,
            },
            ensure_ascii=False,
        )
        self._db.execute(
            "INSERT OR REPLACE INTO entries VALUES (?, ?, ?)", (key, value, time.time())
        )

    def __len__(self) -> int:
        return self._db.execute("SELECT COUNT(*) FROM entries").fetchone()[0]

    def close(self) -> None:
        self._db.close()
