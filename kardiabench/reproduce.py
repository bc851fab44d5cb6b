"""`kardiabench reproduce CONFIG` (`kb.reproduce_runs`): the configs of a comparison set (e.g. the paper's).

A config (leaderboard/paper.yaml; `paper` names the shipped one) lists systems, a judge and the
data. The command prints every system's dry-run plan (items, tokens, cost estimate) first, then
runs each system with `kb.evaluate` (= `kardiabench run`) into OUTPUT/NAME, so a second call resumes where the first
stopped, and ends by adding every scored run to the leaderboard folder and building it. A system
that fails is reported and the others still run (exit 1). `base_url` sends every system and the
judge to one OpenAI-compatible endpoint instead (a local vLLM server, a proxy, the scripted test
server): local `vllm:`/`hf:` systems are then requested under their model name as `openai:`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from kardiabench.leaderboard.entries import LeaderboardError

_PACKAGED = Path(__file__).resolve().parent / "resources" / "leaderboard"


@dataclass(frozen=True, slots=True)
class System:
    name: str
    model: str
    base_url: str | None = None
    api_key_env: str | None = None


def load_config(config: str) -> dict[str, Any]:
    """A config by name (a shipped `NAME.yaml`) or path, checked for the keys the command needs."""
    path = (
        _PACKAGED / f"{config}.yaml" if (_PACKAGED / f"{config}.yaml").is_file() else Path(config)
    )
    if not path.is_file():
        raise LeaderboardError(
            f"{config}: no such reproduce config (shipped: {', '.join(p.stem for p in sorted(_PACKAGED.glob('*.yaml')) if p.stem != 'reported')})"
        )
    try:
        doc = yaml.safe_load(path.read_text(encoding="utf-8"))
        systems = [System(**s) for s in doc["systems"]]
        if not isinstance(doc["judge"].get("spec"), str):
            raise KeyError("judge.spec")
    except (yaml.YAMLError, KeyError, TypeError, AttributeError) as e:
        raise LeaderboardError(
            f"{path}: not a reproduce config ({type(e).__name__}: {e})"
        ) from None
    return doc | {"systems": systems, "path": str(path)}


def system_options(
    system: System,
    doc: dict[str, Any],
    *,
    output: Path,
    limit: int | None,
    data: str | None,
    base_url: str | None,
    cache: str | None,
) -> dict[str, Any]:
    """The keywords of `kb.evaluate` (= the flags of `kardiabench run`) for one system."""
    model = system.model
    if base_url and not model.startswith("openai:"):
        model = "openai:" + model.split(":", 1)[1]
    judge = doc["judge"]
    options: dict[str, Any] = {
        "model": model,
        "output": output / system.name,
        "task": doc.get("task", "kardiabench"),
        "data": data or doc.get("data", "hub"),
        "split": doc.get("split"),
        "limit": limit or None,
        "base_url": base_url or system.base_url,
        "judges": [judge["spec"]],
        "judge_base_url": base_url or judge.get("base_url"),
    }
    if system.api_key_env:
        options["api_key_env"] = system.api_key_env
    if judge.get("api_key_env"):
        options["judge_api_key_env"] = judge["api_key_env"]
    if cache:
        options["cache"] = cache
    return options
