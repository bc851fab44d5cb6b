"""The optional extras (pyproject.toml): a command that needs one says which to install, in one
line, instead of ending in an ImportError traceback from deep inside an adapter or TRL.

The base install (`pip install -e .`) runs API models and the baselines; `hf:` models, `vllm:`
models and `kardiabench train` need the packages below, looked up without importing them (torch
alone takes seconds to import).
"""

from __future__ import annotations

import importlib.util

# extra → the modules its features import (each a package of that extra in pyproject.toml)
EXTRAS: dict[str, tuple[str, ...]] = {
    "hf": ("torch", "transformers"),
    "vllm": ("vllm",),
    "train": ("torch", "transformers", "accelerate", "trl", "peft", "datasets"),
}


class MissingExtra(Exception):
    """An optional extra is not installed; the message names it and the install command."""


def require_extra(extra: str, what: str, note: str = "") -> None:
    """MissingExtra unless every module of `extra` is installed; `what` names the feature (a model
    spec, a command), `note` is added to the message."""
    missing = [m for m in EXTRAS[extra] if _absent(m)]
    if missing:
        raise MissingExtra(
            f'{what} needs {", ".join(missing)} (not installed): pip install -e ".[{extra}]"{note}'
        )


def _absent(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is None
    except (ImportError, ValueError):  # a broken parent package, or a module without a spec
        return True
