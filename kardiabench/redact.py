"""Keep credentials out of files and logs.

API keys are only ever read from environment variables, so the one way a secret reaches the
command line is the userinfo of a URL (`https://user:password@host/v1`). These helpers mask it
wherever a URL or a command line is shown or recorded. (Not `secrets.py`: that would shadow the
standard library's module for scripts run from inside the package.)
"""

from __future__ import annotations

import argparse
import re
from urllib.parse import urlsplit

# scheme://userinfo@ — the userinfo runs to the last "@" before the path, query or fragment, as
# urllib.parse.urlsplit reads it, so a raw "@" inside a password is masked too.
_USERINFO = re.compile(r"(?P<scheme>[A-Za-z][A-Za-z0-9+.\-]*://)[^/?#\s]*@")
# An environment variable's name; a key pasted in its place (`sk-…`) does not look like one.
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def has_userinfo(text: str) -> bool:
    """Whether any URL in `text` carries credentials (`user:password@` or `token@`)."""
    return _USERINFO.search(text) is not None


def redact_url(text: str) -> str:
    """`text` with the userinfo of every URL in it replaced by `***`."""
    return _USERINFO.sub(r"\g<scheme>***@", text)


def redact_argv(argv: list[str]) -> list[str]:
    """A command line fit to record: every argument passed through `redact_url`."""
    return [redact_url(a) for a in argv]


def env_var_name(value: str) -> str:
    """argparse `type=` for --api-key-env: `value` if it can name an environment variable. The
    error does not echo `value` (argparse would for a ValueError): it may be a pasted key."""
    if not _ENV_NAME.fullmatch(value):
        raise argparse.ArgumentTypeError(
            "expects the NAME of an environment variable (letters, digits, _), not a key"
        )
    return value


def public_endpoint(url: str) -> str:
    """`scheme://host[:port]/path` of an endpoint URL, fit to record (run.json's judge.endpoints):
    no userinfo, query or fragment, where a key or token could sit."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    host = f"[{host}]" if ":" in host else host
    try:
        port = f":{parts.port}" if parts.port is not None else ""
    except ValueError:  # not a number: left out rather than recorded raw
        port = ""
    return f"{parts.scheme}://{host}{port}{parts.path.rstrip('/')}"


def model_endpoint(model: object) -> str | None:
    """The public endpoint(s) a model's requests go to (replicas: sorted, comma-separated); None
    for an in-process model (hf:, vllm:, baselines), which its spec identifies."""
    urls = [r.base_url for r in getattr(model, "replicas", ())] or [getattr(model, "base_url", None)]
    found = sorted({public_endpoint(u) for u in urls if isinstance(u, str)})
    return ", ".join(found) or None
