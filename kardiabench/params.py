"""The rules for numeric and name parameters, shared by the CLI's argument types (a bad flag is a
usage error before any work starts) and the Python API (a bad keyword is a `ParameterError`)."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any

from kardiabench.redact import env_var_name

# rule → (the type a value has, the test it passes, the rule in words)
RULES: dict[str, tuple[type, Callable[[Any], bool], str]] = {
    "positive_int": (int, lambda v: v >= 1, "an integer ≥ 1"),
    "nonneg_int": (int, lambda v: v >= 0, "an integer ≥ 0"),
    "positive_float": (float, lambda v: 0 < v < float("inf"), "a number > 0"),
    "nonneg_float": (float, lambda v: 0 <= v < float("inf"), "a number ≥ 0"),
    "top_p": (float, lambda v: 0 < v <= 1, "a number in (0, 1]"),
    "open_fraction": (float, lambda v: 0 < v < 1, "a fraction strictly between 0 and 1"),
    "int": (int, lambda v: True, "an integer"),
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
