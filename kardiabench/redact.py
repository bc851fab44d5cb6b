"""Keep credentials out of files and logs.

API keys are only ever read from environment variables, so the ways a secret reaches the command
line are a URL's userinfo (`https://user:password@host/v1`) and its query string
(`…/v1?api-key=…`, `?key=`, `&access_token=`, `?sig=`, `?code=`: some gateways take the key
there). `redact_url` masks both; every place that shows or records a URL or a command line goes
through it. (Not `secrets.py`: that would shadow the standard library's module for scripts run from
inside the package.)
"""

from __future__ import annotations

import argparse
import re

# scheme://userinfo@ — the userinfo runs to the last "@" before the path, query or fragment, as
# urllib.parse.urlsplit reads it, so a raw "@" inside a password is masked too.
_USERINFO = re.compile(r"(?P<scheme>[A-Za-z][A-Za-z0-9+.\-]*://)[^/?#\s]*@")
# A query parameter whose name says it carries a credential (api-key, key, token, access_token,
# secret, password, auth, sig/signature, credential, session, code): its value up to the next
# parameter, fragment, whitespace or quote. A name is matched, not a value: `api-version=` stays.
_SECRET_NAME = r"[^=&#?\s]*?(?:key|token|secret|passw|pwd|auth|sig|credential|session|code)[^=&#?\s]*"
_SECRET_PARAM = re.compile(rf"(?P<name>[?&;]{_SECRET_NAME}=)[^&#\s'\"<>]*", re.IGNORECASE)
# An environment variable's name; a key pasted in its place (`sk-…`) does not look like one.
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def has_userinfo(text: str) -> bool:
    """Whether any URL in `text` carries credentials (`user:password@` or `token@`)."""
    return _USERINFO.search(text) is not None


def redact_url(text: str) -> str:
    """`text` with the userinfo of every URL in it, and the value of every credential-named query
    parameter, replaced by `***`."""
    return _SECRET_PARAM.sub(r"\g<name>***", _USERINFO.sub(r"\g<scheme>***@", text))


def query_secrets(url: str) -> list[str]:
    """The values `redact_url` masks in `url`'s query string, for scrubbing an echo of them (a
    server's error message that quotes the key without its URL)."""
    return [v for m in _SECRET_PARAM.finditer(url) if (v := m.group(0)[len(m.group("name")) :])]


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
