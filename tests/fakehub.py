"""Test helper: a fake Hugging Face Hub on 127.0.0.1 (and JSONL text for it to serve).

The fake Hub answers the two endpoints `huggingface_hub` uses to fetch a dataset file (the tree
listing API and the `resolve` file endpoint) with the status codes and `X-Error-Code` headers the
real Hub sends, so the loader's error mapping is exercised through the real client code. For
uploads it answers the endpoints `create_repo` + `upload_folder` use for small files: repo
creation, the card's `validate-yaml`, `preupload` (every file "regular": sent inline, no LFS) and the NDJSON `commit`, whose
files land in the repo's `files`. `DroppingServer` plays an unreachable Hub: it counts the
connections a client makes and drops each.
"""

from __future__ import annotations

import base64
import hashlib
import json
import socket
import threading
from collections.abc import Iterable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import unquote, urlsplit

import yaml


def jsonl(records: Iterable[dict | str]) -> str:
    """Records (dicts, or raw lines given as strings) as JSONL text, one per line."""
    return "".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in records)


# --------------------------------------------------------------------------- the fake Hub


@dataclass
class FakeRepo:
    files: dict[str, bytes] = field(default_factory=dict)
    gated: bool = False
    approved_tokens: set[str] = field(default_factory=set)
    # answer every request (uploads too) with this status and no X-Error-Code (403, 500, ...)
    fail_status: int = 0
    private: bool = False
    commits: list[str] = field(default_factory=list)  # commit summaries, in order


@dataclass
class FakeHub:
    """A threaded HTTP server with Hub-like answers. Use as a context manager; `url` is its endpoint.

    `scenarios` maps a name to a repository table; a client switches to one with a GET on
    `/_fake/use/NAME`, so a single client process can run many scenarios (huggingface_hub reads
    HF_ENDPOINT at import time, and importing it costs most of a second).
    """

    repos: dict[str, FakeRepo] = field(default_factory=dict)
    valid_tokens: set[str] | None = None  # None: any token is a valid account
    scenarios: dict[str, dict[str, FakeRepo]] = field(default_factory=dict)
    current: str = ""
    # (scenario, method, path, had token)
    requests: list[tuple[str, str, str, bool]] = field(default_factory=list)

    def __enter__(self) -> FakeHub:
        hub = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802
                hub._handle(self, body=True)

            def do_HEAD(self) -> None:  # noqa: N802
                hub._handle(self, body=False)

            def do_POST(self) -> None:  # noqa: N802
                hub._handle_post(self)

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

    def paths(self, scenario: str | None = None) -> list[str]:
        return [p for s, _, p, _ in self.requests if scenario is None or s == scenario]

    # ------------------------------------------------------------------ request handling

    def _handle(self, h: BaseHTTPRequestHandler, body: bool) -> None:
        path = unquote(urlsplit(h.path).path)
        auth = h.headers.get("Authorization", "")
        token = auth.removeprefix("Bearer ").strip() or None
        parts = path.strip("/").split("/")
        if parts[:2] == ["_fake", "use"] and len(parts) == 3 and parts[2] in self.scenarios:
            self.current, self.repos = parts[2], self.scenarios[parts[2]]
            return self._send(h, 200, {"scenario": self.current}, body)
        self.requests.append((self.current, h.command, path, token is not None))
        if parts[:2] == ["api", "datasets"] and len(parts) >= 6 and parts[4] == "tree":
            kind, repo_id, rest = "tree", f"{parts[2]}/{parts[3]}", ""
        elif parts[:1] == ["datasets"] and len(parts) >= 6 and parts[3] == "resolve":
            kind, repo_id, rest = "resolve", f"{parts[1]}/{parts[2]}", "/".join(parts[5:])
        else:
            return self._send(h, 404, {"error": "unknown endpoint"}, body)

        if token is not None and self.valid_tokens is not None and token not in self.valid_tokens:
            return self._send(
                h,
                401,
                {"error": "Invalid credentials in Authorization header"},
                body,
                {"X-Error-Message": "Invalid credentials in Authorization header"},
            )
        repo = self.repos.get(repo_id)
        if repo is None:  # the Hub answers 401 to anonymous callers, 404 to signed-in ones
            return self._send(
                h,
                401 if token is None else 404,
                {"error": "Repository not found"},
                body,
                {"X-Error-Code": "RepoNotFound", "X-Error-Message": "Repository not found"},
            )
        if repo.fail_status:
            return self._send(h, repo.fail_status, {"error": "something went wrong"}, body)
        # listing stays public
        if repo.gated and kind == "resolve" and token not in repo.approved_tokens:
            if token is None:
                msg = f"Access to dataset {repo_id} is restricted. You must have access to it and be authenticated to access it. Please log in."
                status = 401
            else:
                msg = f"Access to dataset {repo_id} is restricted and you are not in the authorized list. Visit https://huggingface.co/datasets/{repo_id} to ask for access."
                status = 403
            return self._send(
                h,
                status,
                {"error": msg},
                body,
                {"X-Error-Code": "GatedRepo", "X-Error-Message": msg},
            )
        if kind == "tree":
            listing = [
                {
                    "type": "file",
                    "oid": hashlib.sha1(data).hexdigest(),
                    "size": len(data),
                    "path": name,
                }
                for name, data in sorted(repo.files.items())
            ]
            return self._send(h, 200, listing, body)
        data = repo.files.get(rest)
        commit = hashlib.sha1(repo_id.encode()).hexdigest()
        if data is None:
            return self._send(
                h,
                404,
                {"error": "Entry not found"},
                body,
                {"X-Error-Code": "EntryNotFound", "X-Repo-Commit": commit},
            )
        headers = {"X-Repo-Commit": commit, "ETag": f'"{hashlib.sha256(data).hexdigest()}"'}
        return self._send_bytes(h, 200, data, "application/octet-stream", body, headers)

    def _handle_post(self, h: BaseHTTPRequestHandler) -> None:
        path = unquote(urlsplit(h.path).path)
        token = h.headers.get("Authorization", "").removeprefix("Bearer ").strip() or None
        data = h.rfile.read(int(h.headers.get("Content-Length") or 0))
        self.requests.append((self.current, "POST", path, token is not None))
        if token is None or (self.valid_tokens is not None and token not in self.valid_tokens):
            return self._send(
                h,
                401,
                {"error": "Invalid credentials in Authorization header"},
                True,
                {"X-Error-Message": "Invalid credentials in Authorization header"},
            )
        parts = path.strip("/").split("/")
        if parts == [
            "api",
            "validate-yaml",
        ]:  # the dataset card's YAML header, checked before the commit
            try:
                yaml.safe_load(json.loads(data)["content"].split("---")[1])
            except (yaml.YAMLError, IndexError) as e:
                return self._send(h, 400, {"errors": [{"message": str(e)}]}, True)
            return self._send(h, 200, {"errors": [], "warnings": []}, True)
        if parts == ["api", "repos", "create"]:
            req = json.loads(data)
            repo_id = (
                f"{req['organization']}/{req['name']}" if req.get("organization") else req["name"]
            )
            if repo_id in self.repos:
                return self._send(
                    h,
                    409,
                    {
                        "error": "You already created this dataset repo",
                        "url": f"{self.url}/datasets/{repo_id}",
                    },
                    True,
                )
            self.repos[repo_id] = FakeRepo(private=req.get("visibility") == "private")
            return self._send(
                h, 200, {"url": f"{self.url}/datasets/{repo_id}", "name": repo_id}, True
            )
        if (
            parts[:2] == ["api", "datasets"]
            and len(parts) == 6
            and f"{parts[2]}/{parts[3]}" in self.repos
        ):
            repo = self.repos[f"{parts[2]}/{parts[3]}"]
            if repo.fail_status:  # e.g. 403: the token may not write to this repo
                return self._send(h, repo.fail_status, {"error": "something went wrong"}, True)
            if parts[4] == "preupload":
                files = json.loads(data)["files"]
                return self._send(
                    h,
                    200,
                    {
                        "files": [
                            {"path": f["path"], "uploadMode": "regular", "shouldIgnore": False}
                            for f in files
                        ]
                    },
                    True,
                )
            if parts[4] == "commit":
                for line in data.decode().splitlines():
                    op = json.loads(line)
                    if op["key"] == "header":
                        repo.commits.append(op["value"]["summary"])
                    elif op["key"] == "file":
                        repo.files[op["value"]["path"]] = base64.b64decode(op["value"]["content"])
                oid = hashlib.sha1(str(len(repo.commits)).encode()).hexdigest()
                return self._send(
                    h,
                    200,
                    {
                        "commitUrl": f"{self.url}/datasets/{parts[2]}/{parts[3]}/commit/{oid}",
                        "commitOid": oid,
                    },
                    True,
                )
        return self._send(h, 404, {"error": "unknown endpoint"}, True)

    def _send(
        self, h, status: int, payload, body: bool, headers: dict[str, str] | None = None
    ) -> None:
        self._send_bytes(h, status, json.dumps(payload).encode(), "application/json", body, headers)

    @staticmethod
    def _send_bytes(
        h, status: int, data: bytes, ctype: str, body: bool, headers: dict[str, str] | None
    ) -> None:
        h.send_response(status)
        h.send_header("Content-Type", ctype)
        h.send_header("Content-Length", str(len(data)))
        for k, v in (headers or {}).items():
            h.send_header(k, v)
        h.end_headers()
        if body:
            h.wfile.write(data)


# --------------------------------------------------------------------------- an unreachable Hub


class DroppingServer:
    """Accepts TCP connections on 127.0.0.1 and closes each at once, counting them."""

    def __init__(self) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        self.connections = 0
        self.thread = threading.Thread(target=self._serve, daemon=True)

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:  # closed by __exit__
                return
            self.connections += 1
            conn.close()

    def __enter__(self) -> DroppingServer:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.sock.close()
        self.thread.join(10)
