"""`kardiabench reproduce CONFIG`: run a comparison set (e.g. the paper's) and build its leaderboard.

A config (leaderboard/paper.yaml; `paper` names the shipped one) lists systems, a judge and the
data. The command prints every system's dry-run plan (items, tokens, cost estimate) first, then
runs each system with `kardiabench run` into OUTPUT/NAME, so a second call resumes where the first
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
    path = _PACKAGED / f"{config}.yaml" if (_PACKAGED / f"{config}.yaml").is_file() else Path(config)
    if not path.is_file():
        raise LeaderboardError(f"{config}: no such reproduce config (shipped: {', '.join(p.stem for p in sorted(_PACKAGED.glob('*.yaml')) if p.stem != 'reported')})")
    try:
        doc = yaml.safe_load(path.read_text(encoding="utf-8"))
        systems = [System(**s) for s in doc["systems"]]
        if not isinstance(doc["judge"].get("spec"), str):
            raise KeyError("judge.spec")
    except (yaml.YAMLError, KeyError, TypeError, AttributeError) as e:
        raise LeaderboardError(f"{path}: not a reproduce config ({type(e).__name__}: {e})") from None
    return doc | {"systems": systems, "path": str(path)}


def run_argv(system: System, doc: dict[str, Any], *, output: Path, limit: int | None, data: str | None,
             base_url: str | None, cache: str | None) -> list[str]:  # fmt: skip
    """The `kardiabench run` command line of one system."""
    model = system.model
    if base_url and not model.startswith("openai:"):
        model = "openai:" + model.split(":", 1)[1]
    argv = ["run", "--model", model, "--task", doc.get("task", "kardiabench"), "--data", data or doc.get("data", "hub"),
            "--output", str(output / system.name), "--no-progress"]  # fmt: skip
    if doc.get("split"):
        argv += ["--split", doc["split"]]
    if base_url or system.base_url:
        argv += ["--base-url", base_url or system.base_url]
    if system.api_key_env:
        argv += ["--api-key-env", system.api_key_env]
    judge = doc["judge"]
    argv += ["--judge", judge["spec"]]
    if base_url or judge.get("base_url"):
        argv += ["--judge-base-url", base_url or judge["base_url"]]
    if judge.get("api_key_env"):
        argv += ["--judge-api-key-env", judge["api_key_env"]]
    argv += ["--limit", str(limit)] if limit else []
    argv += ["--cache", cache] if cache else []
    return argv


def reproduce(config: str, *, limit: int | None = None, dry_run: bool = False, output: Path = Path("runs/paper"),
              leaderboard: Path = Path("leaderboard/paper"), base_url: str | None = None, data: str | None = None,
              cache: str | None = None, log=print) -> int:  # fmt: skip
    from kardiabench.cli import main
    from kardiabench.leaderboard.build import build
    from kardiabench.leaderboard.entries import add_run

    doc = load_config(config)
    argvs = {s.name: run_argv(s, doc, output=output, limit=limit, data=data, base_url=base_url, cache=cache) for s in doc["systems"]}
    log(f"{doc['path']}: {len(argvs)} systems, judge {doc['judge']['spec']}; cost estimate first (nothing is sent):")
    for name, argv in argvs.items():
        log(f"--- {name}")
        if main([*argv, "--dry-run"]) != 0:
            log(f"{name}: no estimate (see the error above); it will still be run")
    if dry_run:
        return 0
    failed = []
    for name, argv in argvs.items():
        log(f"=== {name}: kardiabench {' '.join(argv)}")
        if main(argv) != 0:
            failed.append(name)
    done = [output / n for n in argvs if (output / n / "results.json").is_file() and (output / n / "items.jsonl").is_file()]
    for run_dir in done:
        add_run(run_dir, leaderboard)
    if done:
        result = build(leaderboard)
        log(f"leaderboard: {len(done)} runs → {leaderboard}/site/index.html ({len(result.files)} files)")
    if failed:
        log(f"not finished: {', '.join(failed)}; run the same command again to resume them")
    return 1 if failed else 0

