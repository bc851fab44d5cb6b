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
from collections.abc import Iterable
from itertools import chain
from urllib.parse import urlsplit

# scheme://userinfo@ — the userinfo runs to the last "@" before the path, query or fragment, as
# urllib.parse.urlsplit reads it, so a raw "@" inside a password is masked too.
_USERINFO = re.compile(r"(?P<scheme>[A-Za-z][A-Za-z0-9+.\-]*://)[^/?#\s]*@")
# A query parameter whose name says it carries a credential (api-key, key, token, access_token,
# secret, password, auth, sig/signature, credential, session, code): its value up to the next
# parameter, fragment, whitespace or quote. A name is matched, not a value: `api-version=` stays.
_SECRET_NAME = (
    r"[^=&#?\s]*?(?:key|token|secret|passw|pwd|auth|sig|credential|session|code)[^=&#?\s]*"
)
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
    urls = [r.base_url for r in getattr(model, "replicas", ())] or [
        getattr(model, "base_url", None)
    ]
    found = sorted({public_endpoint(u) for u in urls if isinstance(u, str)})
    return ", ".join(found) or None


# ----------------------------------------------------------------------------- dataset text
#
# KardiaBench is gated (CC-BY-NC-ND): a page or file meant to be shared must not carry its text.
# Besides the fields that hold it (user turns, personas, few-shot examples: left out by whoever
# shares), a model or a judge can repeat it: the retrieval baseline answers with training text, a
# model quotes the user, a judge quotes the reply. `scrub_dataset_text` finds every passage of what
# was written that the data also holds and replaces it with DATA_MARK.
#
# A passage is compared as words (`\w+`, lower case) joined by one space, so a change of case,
# punctuation or spacing does not hide it. Every run of words of at least MIN_DATA_CHARS such
# characters that occurs in the data is removed, to its last whole word: what is left of a
# repeated passage is a word cut at either end, or a passage shorter than that. The words written
# are indexed (they are few), then the data is streamed once, in chunks, its word runs hashed with
# numpy: a full-size dataset (~220M characters) takes about 40 s on a small machine, not the many
# minutes a Python loop over its windows would.

MIN_DATA_CHARS = 24
DATA_MARK = "[dataset text]"
_WORD = re.compile(r"\w+")
_CHUNK_WORDS = 1 << 20  # words of the data hashed at once
_BASE = 0x9E3779B97F4A7C15  # odd, so invertible modulo 2**64
_LEN_SALT = 0xC2B2AE3D27D4EB4F


def scrub_dataset_text(
    texts: list[str], corpus: Iterable[str], *, min_chars: int = MIN_DATA_CHARS
) -> tuple[list[str], int]:
    """`texts` with every passage that `corpus` (the dataset's strings) also holds replaced by
    DATA_MARK, and how many passages were replaced. `corpus` is read once, and not at all when no
    text is long enough to hold a passage."""
    import numpy as np

    keys, owner, start, end = _word_runs([_words(t) for t in texts], min_chars)
    if keys.size == 0:
        return list(texts), 0
    wanted = np.sort(keys)  # np.unique hashes, and is several times slower on this many keys
    wanted = wanted[np.concatenate(([True], wanted[1:] != wanted[:-1]))]
    hit = np.zeros(wanted.size, dtype=bool)
    batch: list[list[str]] = []
    size = 0
    for text in chain(corpus, [None]):  # streamed: the data is never held whole
        if text is not None:
            batch.append(_WORD.findall(text.lower()))
            size += len(batch[-1])
        if batch and (size >= _CHUNK_WORDS or text is None):
            # sorted, the search below runs through memory in order
            found = np.sort(_word_runs(batch, min_chars)[0])
            at = np.minimum(np.searchsorted(wanted, found), wanted.size - 1)
            hit[at[wanted[at] == found]] = True
            batch, size = [], 0
    matched = hit[np.searchsorted(wanted, keys)]  # every key is in `wanted`
    spans: dict[int, list[tuple[int, int]]] = {}
    for o, s, e in zip(
        owner[matched].tolist(), start[matched].tolist(), end[matched].tolist(), strict=True
    ):
        spans.setdefault(o, []).append((s, e))
    out, n = list(texts), 0
    for o, runs in spans.items():
        at = _offsets(texts[o])
        out[o], k = _replace(texts[o], [(at[s][0], at[e - 1][1]) for s, e in runs])
        n += k
    return out, n


def _words(text: str) -> list[str]:
    """The words of a text written, in lower case (as `_offsets` finds them)."""
    low = text.lower()
    return _WORD.findall(low) if len(low) == len(text) else [w.lower() for w in _WORD.findall(text)]


def _offsets(text: str) -> list[tuple[int, int]]:
    """(start, end) in `text` of each of `_words(text)`."""
    low = text.lower()
    return [m.span() for m in _WORD.finditer(low if len(low) == len(text) else text)]


def _word_runs(texts: list[list[str]], min_chars: int):
    """For every word of every text, the shortest run of words that starts at it, and the shortest
    that ends at it, whose joined length reaches `min_chars` (none where the text ends first):
    (hash keys, text index, first word, end word). Runs from both ends, so that a repeated passage
    is covered to its last word, not only up to the last run that starts within it."""
    import numpy as np

    counts = np.fromiter(map(len, texts), dtype=np.int64, count=len(texts))
    n = int(counts.sum())
    if n == 0:
        empty = np.zeros(0, dtype=np.int64)
        return np.zeros(0, dtype=np.uint64), empty, empty, empty
    flat = list(chain.from_iterable(texts))
    lens = np.fromiter(map(len, flat), dtype=np.int64, count=n)
    # str hashes: per process, as both sides are
    vals = np.fromiter(map(hash, flat), dtype=np.int64, count=n).view(np.uint64)
    firsts = np.concatenate(([0], np.cumsum(counts)[:-1]))
    owner = np.repeat(np.arange(len(texts)), counts)
    text_end = (firsts + counts)[owner]
    cum = np.zeros(n + 1, dtype=np.int64)
    # words joined by one space: length(i, j) = cum[j] - cum[i] - 1
    np.cumsum(lens + 1, out=cum[1:])
    # the run from word i ends before word j
    j = np.searchsorted(cum, cum[:-1] + min_chars + 1, side="left")
    # the run up to word e starts at word h
    h = np.searchsorted(cum, cum[1:] - min_chars - 1, side="right") - 1
    ok, back = j <= text_end, h >= firsts[owner]
    i = np.concatenate((np.nonzero(ok)[0], h[back]))
    j = np.concatenate((j[ok], np.nonzero(back)[0] + 1))
    # A polynomial hash of each run, relative to its first word (arithmetic modulo 2**64):
    # sum(v[s] * B**-s for s in i..j-1) * B**i, from prefix sums.
    with np.errstate(over="ignore"):
        inv = np.full(n, pow(_BASE, -1, 1 << 64), dtype=np.uint64)
        inv[0] = 1
        pw = np.full(n, _BASE, dtype=np.uint64)
        pw[0] = 1
        prefix = np.zeros(n + 1, dtype=np.uint64)
        np.cumsum(vals * np.cumprod(inv, dtype=np.uint64), dtype=np.uint64, out=prefix[1:])
        keys = (prefix[j] - prefix[i]) * np.cumprod(pw, dtype=np.uint64)[i] ^ (
            (j - i).astype(np.uint64) * np.uint64(_LEN_SALT)
        )
    return keys, owner[i], i - firsts[owner[i]], j - firsts[owner[i]]


def _replace(text: str, ranges: list[tuple[int, int]]) -> tuple[str, int]:
    """`text` with each of `ranges` (merged where they overlap or only non-word characters part
    them) replaced by DATA_MARK; and how many marks."""
    merged: list[list[int]] = []
    for s, e in sorted(ranges):
        if merged and (s <= merged[-1][1] or not _WORD.search(text, merged[-1][1], s)):
            merged[-1][1] = max(merged[-1][1], e)
        else:
            merged.append([s, e])
    parts, at = [], 0
    for s, e in merged:
        parts += [text[at:s], DATA_MARK]
        at = e
    return "".join(parts) + text[at:], len(merged)
