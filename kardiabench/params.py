"""The rules a value may have to keep (an integer ≥ 1, a fraction, an environment variable's name …):
the vocabulary of kardiabench/options.py, which says which option keeps which rule, and of the
training config's checks (train/config.py)."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any

from kardiabench.redact import env_var_name

# Upper bounds of the counts that size what a run holds at once: requests in flight (a connection
# slot and an HTTP client per 16 of them), a local batch, a judge's repeats. Far above any useful
# value, low enough that a typo (--concurrency 99999999) is an error, not gigabytes of memory.
MAX_CONCURRENCY = 1024
MAX_BATCH_SIZE = 4096
MAX_REPEATS = 100
# Bootstrap resamples (each holds a weight per item) and vLLM's GPUs per replica / replicas.
MAX_RESAMPLES = 100_000
MAX_PARALLEL = 64

# rule → (the type a value has, the test it passes, the rule in words)
RULES: dict[str, tuple[type, Callable[[Any], bool], str]] = {
    "positive_int": (int, lambda v: v >= 1, "an integer ≥ 1"),
    "nonneg_int": (int, lambda v: v >= 0, "an integer ≥ 0"),
    "positive_float": (float, lambda v: 0 < v < float("inf"), "a number > 0"),
    "nonneg_float": (float, lambda v: 0 <= v < float("inf"), "a number ≥ 0"),
    "top_p": (float, lambda v: 0 < v <= 1, "a number in (0, 1]"),
    "open_fraction": (float, lambda v: 0 < v < 1, "a fraction strictly between 0 and 1"),
    "unit_interval": (float, lambda v: 0 <= v <= 1, "a number in [0, 1]"),
    "int": (int, lambda v: True, "an integer"),
    "concurrency": (
        int,
        lambda v: 1 <= v <= MAX_CONCURRENCY,
        f"an integer from 1 to {MAX_CONCURRENCY}",
    ),
    "batch_size": (
        int,
        lambda v: 1 <= v <= MAX_BATCH_SIZE,
        f"an integer from 1 to {MAX_BATCH_SIZE}",
    ),
    "repeats": (int, lambda v: 1 <= v <= MAX_REPEATS, f"an integer from 1 to {MAX_REPEATS}"),
    "resamples": (
        int,
        lambda v: 1 <= v <= MAX_RESAMPLES,
        f"an integer from 1 to {MAX_RESAMPLES:,}",
    ),
    "parallel": (int, lambda v: 1 <= v <= MAX_PARALLEL, f"an integer from 1 to {MAX_PARALLEL}"),
    "fraction": (float, lambda v: 0 < v <= 1, "a number in (0, 1]"),
    "below_one": (float, lambda v: 0 <= v < 1, "a number in [0, 1)"),
    "at_least_two": (int, lambda v: v >= 2, "an integer ≥ 2"),
    "steps": (int, lambda v: v == -1 or v >= 1, "-1 (no limit) or an integer ≥ 1"),
}


class ParameterError(ValueError):
    """A keyword argument of the Python API that breaks its rule (the CLI checks its flags first)."""


def check(name: str, value: Any, rule: str) -> None:
    """Raise ParameterError naming `name` unless `value` follows `rule` (a key of RULES, or
    "env_var" for the name of an environment variable). None is left to the caller."""
    if rule == "env_var":
        try:
            env_var_name(value if isinstance(value, str) else "")
        except argparse.ArgumentTypeError as e:
            raise ParameterError(f"{name}: {e}") from None
        return
    kind, ok, text = RULES[rule]
    kinds = (int,) if kind is int else (int, float)
    if isinstance(value, bool) or not isinstance(value, kinds) or value != value or not ok(value):
        raise ParameterError(f"{name}: must be {text}, got {value!r}")


# How long a command waits for a provider batch to end (--batch-timeout): the 24 h completion
# window and an hour's slack. A batch still running then is stuck; it stays recorded for a rerun.
BATCH_TIMEOUT_S = 90_000.0


def gen_kwargs(text: str) -> dict[str, Any]:
    """`key=value,…` (--gen-kwargs) as a dict, each value typed: true/false → bool, then int, then
    float, else the string. argparse.ArgumentTypeError (a usage error) for a malformed pair."""
    out: dict[str, Any] = {}
    for pair in filter(None, (p.strip() for p in text.split(","))):
        key, sep, value = (x.strip() for x in pair.partition("="))
        if not sep or not key.isidentifier():
            raise argparse.ArgumentTypeError(
                f"expected key=value pairs separated by commas, got {pair!r}"
            )
        out[key] = _typed(value)
    return out


def _typed(value: str) -> Any:
    if value.lower() in ("true", "false"):
        return value.lower() == "true"
    for kind in (int, float):
        try:
            return kind(value)
        except ValueError:
            pass
    return value
