"""What of a built leaderboard may leave the machine: the allow-list `leaderboard push` uploads.

KardiaBench is gated (CC-BY-NC-ND-4.0): its text must never be published, and run files hold it in
places that are easy to miss (run.json's `task_config.prompt.few_shot` are training dialogues; a
model's or judge's text can repeat the data). So nothing is uploaded because it is there: a file
is staged only if its name is listed in `stage` below, and a JSON file only as the projection of
its content through a spec that names every field it keeps. A field added to run.json,
results.json or items.jsonl later stays local until it is added here, on purpose.

A spec is KEEP (the value whole: numbers, labels, hashes, ids, harness text), a function (the value
it returns), or a dict naming the keys kept, each with its own spec (ANY: every key not named;
the keys of such maps are metric, emotion, judge or dimension names). A list is projected element
by element; a value whose shape does not fit its spec is dropped (None), never passed through.

Model and judge text is published only in the reports of a `--redact` build, where every passage
of the data it repeats has been removed (kardiabench/report.py, REDACTION_VERSION).
"""

from __future__ import annotations

import hashlib
import json
import shutil
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from kardiabench.emotions import EMOTIONS
from kardiabench.jsonl import read_jsonl_tolerant, write_jsonl_atomic
from kardiabench.leaderboard.build import SITE
from kardiabench.leaderboard.entries import ENTRIES, ITEMS_DIR
from kardiabench.leaderboard.groups import JUDGE_SETTINGS
from kardiabench.leaderboard.pairwise import PAIRWISE
from kardiabench.runs import RunDir

KEEP = True
ANY = "*"
Spec = bool | Callable[[Any], Any] | Mapping[str, Any]


def project(value: Any, spec: Spec) -> Any:
    """`value` reduced to what `spec` allows (see the module docstring)."""
    if spec is KEEP:
        return value
    if callable(spec):
        return spec(value)
    if isinstance(value, list):
        return [project(v, spec) for v in value]
    if not isinstance(value, dict):
        return None
    return {
        k: project(v, spec[k] if k in spec else spec[ANY])
        for k, v in value.items()
        if k in spec or ANY in spec
    }


def _keep(*names: str) -> dict[str, Any]:
    return dict.fromkeys(names, KEEP)


def _opaque_persona(value: Any) -> str | None:
    """A persona id is the dataset's anonymised user name: published as a hash of it, which still
    groups the items of one persona (`compare --cluster-by persona`)."""
    return None if value is None else "p" + hashlib.sha256(str(value).encode()).hexdigest()[:12]


def _label_only(value: Any) -> str | None:
    """A predicted emotion is what the model wrote (up to 100 characters): published only when it
    is one of the labels; `pred_class` says `<invalid>` for the rest."""
    return value if value in EMOTIONS else None


# extra: units, counts
METRIC = _keep("name", "value", "n", "n_unscored", "ci_low", "ci_high", "reason", "extra")
DATA = _keep(
    "source",
    "split",
    "fingerprint",
    "n_items",
    "n_dialogues",
    "files",
    "records_skipped",
    "limit",
    "derive_split",
    "split_seed",
    "files_sha256",
    "revision",
)
# the judge settings that make a comparability group go up with the entry (a rebuild from pushed
# entries groups them as the local build did), but the endpoints: a host name can be private
JUDGE = _keep(
    "spec",
    "rubric_version",
    "judges",
    "prompt_tokens",
    "completion_tokens",
    "cost_usd",
    "served_models",
    "wall_s",
    "models",
    *(k for k in JUDGE_SETTINGS if k != "endpoints"),
)
GENERATION_STATS = _keep(
    "requested",
    "from_cache",
    "done",
    "failed",
    "failed_items",
    "prompt_tokens",
    "completion_tokens",
    "cost_usd",
    "wall_s",
    "finished",
    "started",
    "resumes",
    "served_models",
    "generated_tokens",
    "tokens_per_s",
    "pad_tokens_saved",
)
PROVENANCE = _keep("kardiabench", "git_commit", "python", "platform", "packages")
RUBRIC = {
    **_keep(
        "computed",
        "reason",
        "ignored",
        "rubric_version",
        "judges",
        "repeats",
        "n_items",
        "n_judgments",
        "n_scored",
        "n_unscored",
        "n_responses_cut",
        "max_response_chars",
        "unscored_by_reason",
        "unscored_by_judge",
        "means",
        "per_judge_means",
        "agreement",
        "repeat_variance",
        "usage",
        "pool",
        "run",
        "escalation",
        "self_preference_risk",
        "training_judge_risk",
    ),
    # not its local path
    "judge_card": _keep(
        "judges", "created", "rubric_version", "passed", "failed", "n_checks", "same_judges"
    ),
}
RESULTS = {
    **_keep("schema_version", "task", "model", "history", "counts", "statistics", "parser_version"),
    "data": DATA,
    "judge": JUDGE,
    "metrics": {ANY: METRIC},
    "emotion": _keep("per_emotion_recall", "confusion"),  # gold label → predicted class → count
    # by → emotion label / MBTI type
    "breakdowns": {ANY: {ANY: {"n": KEEP, "metrics": {ANY: METRIC}}}},
    "rubric": RUBRIC,
    "generation_stats": GENERATION_STATS,
    "provenance": PROVENANCE,
}
TASK = {
    **_keep("name", "description", "version", "data", "history", "generation", "metrics"),
    # The few-shot examples are training dialogues: which ones (item ids) is published, their text never.
    "prompt": {
        **_keep("system", "format_instruction", "num_fewshot", "fewshot_seed"),
        "few_shot": _keep("item_id"),
    },
}
MANIFEST = {
    **_keep(
        "schema_version", "model_spec", "task", "parser_version", "command", "created", "scored"
    ),
    "generation": {
        **_keep("task", "sampling", "history", "data"),
        "model": _keep(
            "spec",
            "host",
            "revision",
            "dtype",
            "chat_template_sha256",
            "add_span_tokens",
            "extra_body",
            "train_fingerprint",
        ),
    },
    "training": _keep("judge", "base_model", "stage"),  # not the local path of the training record
    "task_config": TASK,
    "data": DATA,
    "provenance": PROVENANCE,
    "generation_stats": GENERATION_STATS,
    "judge": JUDGE,
}
# An entry without run_path and report: local paths, of no use on the Hub.
ENTRY = {
    **_keep("entry_id", "kind", "model", "items", "added"),
    "results": RESULTS,
    "manifest": MANIFEST,
}
ITEM = {
    **_keep(
        "item_id",
        "dialogue_id",
        "turn_index",
        "mbti",
        "gold_emotion",
        "pred_class",
        "emotion_correct",
        "well_formed",
        "issues",
        "failed",
        "rubric",
    ),
    "persona_id": _opaque_persona,
    "pred_emotion": _label_only,
}
# A pairwise result recorded by `leaderboard add-pairwise` (LB/pairwise/NAME.json, a pairwise.json):
# its numbers and settings; not the runs' folders, the template's or the source folder's local
# paths. It holds no response or dialogue text; the pairwise folder's items.jsonl and verdicts
# (which hold the judge's rationales) never reach the leaderboard.
PAIRWISE_RESULT = {
    **_keep(
        "schema_version",
        "created",
        "dimensions",
        "reference",
        "bradley_terry",
        "n_judgments",
        "n_unscored",
        "unscored_by_reason",
        "usage",
        "statistics",
    ),
    "runs": _keep("name", "model_spec", "n_items", "n_predictions"),
    "judge": {
        **_keep(
            "specs",
            "version",
            "rubric_version",
            "temperature",
            "seed",
            "max_tokens",
            "repeats",
            "max_repairs",
            "show_reasoning",
            "max_response_chars",
            "run",
        ),
        "data": _keep("task", "source", "split"),
    },
    "pairs": _keep(
        "run_a",
        "run_b",
        "n_items",
        "n_unscored_items",
        "unscored_by_reason",
        "n_responses_cut",
        "position",
        "dimensions",
    ),
    "provenance": PROVENANCE,
}
TABLES = (
    "leaderboard.csv",
    "leaderboard.md",
    "leaderboard.tex",
    "build.json",
    "reported.yaml",
    "pairwise.md",
)
PLOT_SUFFIXES = (".pdf", ".png")


def stage(folder: Path, out: Path, *, reports: list[str]) -> list[str]:
    """Write into `out` what may be uploaded of the built leaderboard `folder` (same layout), with
    the `reports` named (paths under site/reports/, of a redacted build); returns the paths
    written, relative to `out`."""
    written: list[Path] = []
    for name in TABLES:
        if (folder / name).is_file():
            written.append(Path(shutil.copy2(folder / name, out / name)))
    for path in sorted((folder / "plots").rglob("*")):
        if path.is_file() and path.suffix in PLOT_SUFFIXES:
            (out / path.relative_to(folder)).parent.mkdir(parents=True, exist_ok=True)
            written.append(Path(shutil.copy2(path, out / path.relative_to(folder))))
    for path in sorted((folder / ENTRIES).glob("*.json")):
        written.append(
            RunDir(out / ENTRIES).write_json(
                path.name, project(json.loads(path.read_text(encoding="utf-8")), ENTRY)
            )
        )
    for path in sorted((folder / PAIRWISE).glob("*.json")):
        written.append(
            RunDir(out / PAIRWISE).write_json(
                path.name, project(json.loads(path.read_text(encoding="utf-8")), PAIRWISE_RESULT)
            )
        )
    for path in sorted((folder / ITEMS_DIR).glob("*.jsonl")):
        (out / ITEMS_DIR).mkdir(parents=True, exist_ok=True)
        write_jsonl_atomic(
            out / ITEMS_DIR / path.name, [project(row, ITEM) for row in read_jsonl_tolerant(path)]
        )
        written.append(out / ITEMS_DIR / path.name)
    (out / SITE).mkdir(exist_ok=True)
    written.append(Path(shutil.copy2(folder / SITE / "index.html", out / SITE / "index.html")))
    for rel in reports:
        (out / rel).parent.mkdir(parents=True, exist_ok=True)
        written.append(Path(shutil.copy2(folder / rel, out / rel)))
    return [str(p.relative_to(out)) for p in written]
