"""Test helpers: synthetic KardiaBench records, and a fake Hugging Face Hub on 127.0.0.1.

The fake Hub answers the two endpoints `huggingface_hub` uses to fetch a dataset file (the tree
listing API and the `resolve` file endpoint) with the status codes and `X-Error-Code` headers the
real Hub sends, so the loader's error mapping is exercised through the real client code.
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections.abc import Iterable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote, urlsplit

from kardiabench.spans import render_spans

# --------------------------------------------------------------------------- synthetic records


def assistant_turn(emotion: str = "anxious", style: str = "special", tag: str = "") -> str:
    """A well-formed four-span assistant message; `tag` makes the text unique."""
    return render_spans(
        {
            "understanding": f"They feel uneasy about it {tag}".strip(),
            "reasoning": f"Acknowledge the worry first {tag}".strip(),
            "emotion": emotion,
            "response": f"That sounds hard; I am here with you {tag}".strip(),
        },
        style,  # type: ignore[arg-type]
    )


def make_record(
    user: str = "user_a",
    emotion: str = "anxious",
    turns: int = 2,
    tag: str = "",
    style: str = "special",
    turn_emotions: Iterable[str] | None = None,
) -> dict:
    """One valid dialogue record with `turns` user/assistant exchanges."""
    emos = list(turn_emotions) if turn_emotions is not None else [emotion] * turns
    messages = [{"role": "system", "content": f"Profile of {user}. Situation {tag}."}]
    for k in range(turns):
        messages.append({"role": "user", "content": f"User message {k} {tag}".strip()})
        messages.append({"role": "assistant", "content": assistant_turn(emos[k], style, f"{tag}#{k}")})
    return {
        "person": f"MBTI: INFP. About: {user}",
        "mbti": "INFP",
        "emotion": emotion,
        "situation": f"A situation {tag}".strip(),
        "anon_username": user,
        "messages": messages,
    }


def write_jsonl(path: Path, records: Iterable[dict | str]) -> Path:
    """Write records (dicts, or raw lines given as strings) one per line."""
    lines = [r if isinstance(r, str) else json.dumps(r) for r in records]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


# --------------------------------------------------------------------------- the fake Hub


@dataclass
class FakeRepo:
    files: dict[str, bytes] = field(default_factory=dict)
    gated: bool = False
    approved_tokens: set[str] = field(default_factory=set)
    gate_listing: bool = False  # the real Hub lists files of gated repos to anyone; this gates it too


@dataclass
class FakeHub:
    """A threaded HTTP server with Hub-like answers. Use as a context manager; `url` is its endpoint."""

    repos: dict[str, FakeRepo] = field(default_factory=dict)
    valid_tokens: set[str] | None = None  # None: any token is a valid account
    requests: list[tuple[str, str, bool]] = field(default_factory=list)  # (method, path, had token)

    def __enter__(self) -> FakeHub:
        hub = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802
                hub._handle(self, body=True)

            def do_HEAD(self) -> None:  # noqa: N802
                hub._handle(self, body=False)

            def log_message(self, *args) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._server.shutdown()
        self._server.server_close()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def paths(self) -> list[str]:
        return [p for _, p, _ in self.requests]

    # ------------------------------------------------------------------ request handling

    def _handle(self, h: BaseHTTPRequestHandler, body: bool) -> None:
        path = unquote(urlsplit(h.path).path)
        auth = h.headers.get("Authorization", "")
        token = auth.removeprefix("Bearer ").strip() or None
        self.requests.append((h.command, path, token is not None))
        parts = path.strip("/").split("/")
        if parts[:2] == ["api", "datasets"] and len(parts) >= 6 and parts[4] == "tree":
            kind, repo_id, rest = "tree", f"{parts[2]}/{parts[3]}", ""
        elif parts[:1] == ["datasets"] and len(parts) >= 6 and parts[3] == "resolve":
            kind, repo_id, rest = "resolve", f"{parts[1]}/{parts[2]}", "/".join(parts[5:])
        else:
            return self._send(h, 404, {"error": "unknown endpoint"}, body)

        if token is not None and self.valid_tokens is not None and token not in self.valid_tokens:
            return self._send(h, 401, {"error": "Invalid credentials in Authorization header"}, body,
                              {"X-Error-Message": "Invalid credentials in Authorization header"})  # fmt: skip
        repo = self.repos.get(repo_id)
        if repo is None:  # the Hub answers 401 to anonymous callers, 404 to signed-in ones
            return self._send(h, 401 if token is None else 404, {"error": "Repository not found"}, body,
                              {"X-Error-Code": "RepoNotFound", "X-Error-Message": "Repository not found"})  # fmt: skip
        if repo.gated and (kind == "resolve" or repo.gate_listing) and token not in repo.approved_tokens:
            if token is None:
                msg = f"Access to dataset {repo_id} is restricted. You must have access to it and be authenticated to access it. Please log in."
                status = 401
            else:
                msg = f"Access to dataset {repo_id} is restricted and you are not in the authorized list. Visit https://huggingface.co/datasets/{repo_id} to ask for access."
                status = 403
            return self._send(h, status, {"error": msg}, body, {"X-Error-Code": "GatedRepo", "X-Error-Message": msg})
        if kind == "tree":
            listing = [
                {"type": "file", "oid": hashlib.sha1(data).hexdigest(), "size": len(data), "path": name}
                for name, data in sorted(repo.files.items())
            ]
            return self._send(h, 200, listing, body)
        data = repo.files.get(rest)
        commit = hashlib.sha1(repo_id.encode()).hexdigest()
        if data is None:
            return self._send(h, 404, {"error": "Entry not found"}, body,
                              {"X-Error-Code": "EntryNotFound", "X-Repo-Commit": commit})  # fmt: skip
        headers = {"X-Repo-Commit": commit, "ETag": f'"{hashlib.sha256(data).hexdigest()}"'}
        return self._send_bytes(h, 200, data, "application/octet-stream", body, headers)

    def _send(self, h, status: int, payload, body: bool, headers: dict[str, str] | None = None) -> None:
        self._send_bytes(h, status, json.dumps(payload).encode(), "application/json", body, headers)

    @staticmethod
    def _send_bytes(h, status: int, data: bytes, ctype: str, body: bool, headers: dict[str, str] | None) -> None:
        h.send_response(status)
        h.send_header("Content-Type", ctype)
        h.send_header("Content-Length", str(len(data)))
        for k, v in (headers or {}).items():
            h.send_header(k, v)
        h.end_headers()
        if body:
            h.wfile.write(data)
