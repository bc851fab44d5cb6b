"""The paper's reported numbers (leaderboard/reported.yaml) and which run models they belong to.

Name mapping: a run's model spec `prefix:NAME` matches a reported row when NAME, or the last part
of NAME as a path (`hf:/models/Qwen2.5-7B-Instruct` → `Qwen2.5-7B-Instruct`), equals one of the
row's `aliases`, case-insensitively. FOLDER/reported.yaml is used when present (edit it there);
otherwise the copy shipped with the package.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from kardiabench.leaderboard.entries import LeaderboardError

REPORTED = "reported.yaml"
_PACKAGED = Path(__file__).resolve().parents[1] / "resources" / "leaderboard" / REPORTED


@dataclass(frozen=True, slots=True)
class ReportedRow:
    name: str
    metrics: dict[str, float]
    aliases: tuple[str, ...]
    source: str
    confidence: str
    status: str = "reported"

    def matches(self, model_spec: str) -> bool:
        name = model_spec.split(":", 1)[-1].rstrip("/")
        candidates = {name.lower(), name.rsplit("/", 1)[-1].lower()}
        return any(a.lower() in candidates for a in self.aliases)


def load_reported(folder: str | Path | None = None) -> list[ReportedRow]:
    """The rows of FOLDER/reported.yaml, else of the packaged file."""
    path = (
        Path(folder) / REPORTED
        if folder is not None and (Path(folder) / REPORTED).is_file()
        else _PACKAGED
    )
    try:
        doc: dict[str, Any] = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        return [
            ReportedRow(
                r["name"],
                {k: float(v) for k, v in r["metrics"].items()},
                tuple(r.get("aliases") or ()),
                doc.get("source", ""),
                doc.get("confidence", ""),
                r.get("status", "reported"),
            )
            for r in doc.get("rows", [])
        ]
    except (yaml.YAMLError, KeyError, TypeError, ValueError, AttributeError) as e:
        raise LeaderboardError(
            f"{path}: not a reported-numbers file ({type(e).__name__}: {e})"
        ) from None


def match_reported(model_spec: str, rows: list[ReportedRow]) -> ReportedRow | None:
    """The reported row of the same model (the first whose aliases match), or None."""
    return next((r for r in rows if r.matches(model_spec)), None)
