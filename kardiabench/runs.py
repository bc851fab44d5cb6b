"""The run folder, one typed path to it: `RunDir` writes and locks it, `load_run(path)` reads it
back as a `Run` (manifest, results, metrics, items).

A run folder is self-describing, append-only while running, safe to kill at any moment:

  run.json           manifest: what was run and how to reproduce it (task, model, data, decoding,
                     history mode, versions, git commit); written before the first request
  predictions.jsonl  one line per finished item (schema: docs/run-folder.md, predictions.jsonl); append + flush
  judgments.jsonl    one line per judge verdict (see judging.py)
  results.json       metrics with n and 95% CIs; summary.md the readable table
  items.jsonl        per-item rows of the last scoring
  report.html        the page of the last scoring (`run`, `report`); a new scoring removes an old one
  *.rejected         damaged lines set aside from a JSONL file above, with their line numbers
  .lock              held by the process working on the folder (see RunDir.lock)

`run.json` and `results.json` are read and written only through pydantic models (`RunManifest`,
`Results`) that carry a `schema_version` (current: `SCHEMA_VERSION`; a file without one is
version 1). A file of another version, or one that does not match its model, is a `RunFileError`
in one line naming the file and the field, e.g.
`runs/x/results.json: metrics.emotion_accuracy.n: Input should be a valid integer`; it is raised
before anything is written to the folder (`check_schema_versions`).

The stable core is typed strictly (every metric entry is a `Metric`); the top-level models and the
records in them accept keys they do not know, so a newer writer's additions survive a read and a
write. Writing keeps the keys that were read or set, and no others (`exclude_unset`): a file read
and written back is unchanged apart from its `schema_version`.
"""

from __future__ import annotations

import fcntl
import json
import os
import platform
import subprocess
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import cached_property
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Self

from pydantic import BaseModel, ConfigDict, ValidationError

from kardiabench import __version__
from kardiabench.jsonl import REJECTED, JsonlWriter, read_jsonl_tolerant
from kardiabench.records import Prediction
from kardiabench.scoring.metrics import ItemRow, rubric_dimensions
from kardiabench.spans import SPAN_NAMES, parse_spans
from kardiabench.tasks import Task

if TYPE_CHECKING:
    import pandas as pd

PREDICTIONS = "predictions.jsonl"
MANIFEST = "run.json"
JUDGMENTS = "judgments.jsonl"
RESULTS = "results.json"
ITEMS = "items.jsonl"
SUMMARY = "summary.md"
REPORT = "report.html"
LOCK = ".lock"
BATCHES = "batches.json"  # provider batch jobs (models/openai_batch.py)
# what --overwrite removes
DERIVED = (PREDICTIONS, JUDGMENTS, RESULTS, ITEMS, SUMMARY, REPORT, BATCHES)
# What a scoring derives from the predictions and verdicts, replaced as one by every scoring;
# results.json first: its presence says the folder is scored.
SCORED = (RESULTS, ITEMS, SUMMARY, REPORT)
PREDICTION_KEYS = ("item_id", "model", "raw_output")  # a predictions line without one is damaged
_HELD: set[Path] = set()  # run folders whose lock this process holds
_PACKAGES = (
    "torch",
    "transformers",
    "vllm",
    "openai",
    "datasets",
    "trl",
    "scikit-learn",
    "scipy",
    "numpy",
)


class RunDirError(Exception):
    pass


def provenance() -> dict[str, Any]:
    """Versions and commit of the harness and its main dependencies (never environment variables)."""
    versions = {}
    for p in _PACKAGES:
        try:
            versions[p] = metadata.version(p)
        except metadata.PackageNotFoundError:
            continue
    commit = None
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            cwd=Path(__file__).parent,
            capture_output=True,
            text=True,
            timeout=5,
        )
        commit = out.stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        pass
    return {
        "kardiabench": __version__,
        "git_commit": commit,
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "packages": versions,
    }


def now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


class RunDir:
    def __init__(self, path: str | Path):
        self.path = Path(path)

    @property
    def manifest_path(self) -> Path:
        return self.path / MANIFEST

    @property
    def predictions_path(self) -> Path:
        return self.path / PREDICTIONS

    def read_manifest(self) -> RunManifest:
        """run.json, typed and checked (RunFileError: another schema version, or a bad field)."""
        if not self.manifest_path.exists():
            raise RunDirError(f"{self.path}: not a run folder (no {MANIFEST})")
        return RunManifest.read(self.manifest_path)

    def write_manifest(self, manifest: RunManifest) -> None:
        """run.json: schema_version first, atomic."""
        manifest.write(self.manifest_path)

    def write_json(self, name: str, data: Any) -> Path:
        """Write a final JSON file atomically (temp file + rename): never half-written."""
        self.path.mkdir(parents=True, exist_ok=True)
        target = self.path / name
        tmp = target.with_suffix(target.suffix + ".tmp")
        tmp.write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
        os.replace(tmp, target)
        return target

    def read_predictions(self, repair: bool = False) -> dict[str, Prediction]:
        """Latest line per item id (a retried item's later line wins); see read_jsonl_tolerant."""
        preds: dict[str, Prediction] = {}
        for row in read_jsonl_tolerant(self.predictions_path, repair, PREDICTION_KEYS):
            preds[row["item_id"]] = Prediction.from_dict(row)
        return preds

    def prediction_writer(self) -> JsonlWriter:
        self.path.mkdir(parents=True, exist_ok=True)
        return JsonlWriter(self.predictions_path, PREDICTION_KEYS)

    def clear(self) -> None:
        """Remove everything derived from an earlier run (--overwrite); run.json is rewritten after."""
        for path in [*(self.path / name for name in DERIVED), *self.path.glob(f"*{REJECTED}")]:
            path.unlink(missing_ok=True)

    def clear_scored(self) -> None:
        """Remove the files of the last scoring (SCORED), results.json first, so that a folder
        part-way through a new scoring reads as not scored rather than as the old scoring."""
        for name in SCORED:
            (self.path / name).unlink(missing_ok=True)

    @contextmanager
    def lock(self) -> Iterator[None]:
        """Hold the folder for this process: a second process on it refuses at once. An flock on
        DIR/.lock is released by the kernel when its holder dies, so a killed run never blocks the
        next one; within one process the lock is re-entrant (`run` = generate, then score)."""
        if not self.path.is_dir():
            raise RunDirError(f"{self.path}: not a run folder (no such folder)")
        key = self.path.resolve()
        if key in _HELD:
            yield
            return
        with (key / LOCK).open("a+", encoding="utf-8") as fh:
            try:
                fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                fh.seek(0)
                holder = fh.read().strip() or "unknown"
                raise RunDirError(
                    f"{self.path} is in use by another kardiabench process (pid {holder}); "
                    "wait for it to finish, or use another --output"
                ) from None
            fh.truncate(0)
            fh.write(f"{os.getpid()}\n")
            fh.flush()
            _HELD.add(key)
            try:
                yield
            finally:
                _HELD.discard(key)
                fh.truncate(0)  # closing the file releases the lock


# ----------------------------------------------------------------------------- typed files

SCHEMA_VERSION = 1
HEADLINE_METRICS = ("emotion_accuracy", "format_compliance", "empathy")  # shown by repr(run)
ROW_COLUMNS: tuple[str, ...] = tuple(f for f in ItemRow.__dataclass_fields__ if f != "rubric")


class RunFileError(RunDirError):
    """run.json or results.json cannot be read: not JSON, another schema version, or a bad field."""


# ----------------------------------------------------------------------------- records


class _Open(BaseModel):
    """A record that keeps keys it does not know (written by a newer or another stage)."""

    model_config = ConfigDict(extra="allow")


class _Closed(BaseModel):
    """A record of the stable core: exactly these keys, with these types."""

    model_config = ConfigDict(extra="forbid", strict=True)


class Metric(_Closed):
    """One number of results.json (`MetricResult.to_dict`): value None = not computed (`reason`)."""

    name: str | None = None
    value: float | None
    n: int
    n_unscored: int
    ci_low: float | None
    ci_high: float | None
    reason: str | None = None
    extra: dict[str, Any] = {}


class Breakdown(_Closed):
    """One group of a breakdown (a gold emotion, an MBTI type): its size and metrics, no CIs."""

    n: int
    metrics: dict[str, Metric]


class EmotionRecall(_Closed):
    recall: float | None
    n: int


class EmotionReport(_Open):
    per_emotion_recall: dict[str, EmotionRecall] = {}
    confusion: dict[str, dict[str, int]] = {}  # gold label → predicted class → count


class DataInfo(_Open):
    """Where the items came from: `data` of run.json, copied into results.json."""

    source: str
    split: str | None = None
    fingerprint: str
    n_items: int
    n_dialogues: int | None = None
    files: list[str] | None = None
    records_skipped: int | None = None
    limit: int | None = None
    derive_split: float | None = None
    split_seed: int | None = None
    files_sha256: dict[str, str] | None = None  # file name → 16 hex of its SHA-256
    revision: str | None = None  # the Hub commit; None for local data


class ReplicaStats(_Open):
    """One replica of a pool (`--base-url` given more than once; models/replicas.py): its live
    requests (the cache never reaches a replica); in `generation_stats`, totals over the folder's
    sessions, in `judge`, the last scoring's."""

    url: str  # credentials masked
    requests: int  # HTTP requests sent to it
    replies: int
    failures: int  # requests that failed there (those worth retrying were retried on the pool)
    retries: int  # requests sent to it that had failed before, here or on another replica
    cooldowns: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    served_models: dict[str, int] = {}  # the `model` its replies named → replies


class JudgeInfo(_Open):
    spec: str
    rubric_version: str | None = None
    repeats: int = 1
    judges: list[str] | None = None
    prompt_tokens: int | None = None  # totals over the judges (results.json rubric.usage)
    completion_tokens: int | None = None
    cost_usd: float | None = None
    served_models: dict[str, int] | None = None
    wall_s: float | None = None
    pool: str | None = None  # how the judges were pooled (results.json rubric.pool)
    escalation: dict[str, Any] | None = None  # judge, threshold, items: the stronger judge's items
    # The settings of the verdicts used (judge_stage.verdict_settings): a list where they differ.
    endpoints: dict[str, Any] | None = None  # judge → scheme://host[:port]/path, None in-process
    # judge → its revision, dtype, chat_template_sha256 (hf:/vllm:; a list where verdicts differ)
    models: dict[str, Any] | None = None
    show_reasoning: bool | list[Any] | None = None
    max_tokens: int | list[Any] | None = None
    temperature: float | list[Any] | None = None
    seed: int | list[Any] | None = None  # the base seed (repeat r uses seed + r)
    # judge → its replicas (several --judge-base-url), this scoring's requests
    replicas: dict[str, list[ReplicaStats]] | None = None


class GenerationIdentity(_Open):
    """What determines the predictions (`generate.generation_identity`); a run resumes only under
    the same one. Runs scored from `--predictions` carry only `history`."""

    task: dict[str, Any] | None = None
    model: dict[str, Any] | None = None
    sampling: dict[str, Any] | None = None
    history: str | None = None
    data: dict[str, Any] | None = None


class GenerationStats(_Open):
    requested: int
    from_cache: int
    done: int
    failed: int
    failed_items: list[str]
    prompt_tokens: int
    completion_tokens: int
    cost_usd: float | None
    wall_s: float
    finished: str
    started: str | None = None  # of the first session
    resumes: int = 0  # sessions after the first; the counts above are totals over all of them
    served_models: dict[str, int] = {}  # the `model` an API answered with → replies
    generated_tokens: int = 0  # completion tokens generated now, not taken from the cache
    tokens_per_s: float | None = None  # generated_tokens / wall_s
    pad_tokens_saved: int = 0  # padding avoided by length-ordered batches (hf:)
    # several --base-url: per replica; absent for one endpoint
    replicas: list[ReplicaStats] | None = None
    mixed_served_models: list[str] | None = None  # the replicas answered as these different models


# ----------------------------------------------------------------------------- the two files


class _RunFile(_Open):
    """A JSON file of the run folder with a schema version, read and written whole."""

    FILE: ClassVar[str]
    schema_version: int = SCHEMA_VERSION

    @classmethod
    def read(cls, path: str | Path) -> Self:
        path = Path(path)
        data = read_json(path)
        check_version(path, data, lambda v: v != SCHEMA_VERSION)
        try:
            return cls.model_validate(data)
        except ValidationError as e:
            raise RunFileError(one_line(path, e)) from None

    def write(self, path: str | Path) -> Path:
        """Atomically (temp file + rename), with the current schema_version first."""
        path = Path(path)
        data = {
            "schema_version": SCHEMA_VERSION,
            **self.model_dump(mode="json", exclude_unset=True),
        }
        return RunDir(path.parent).write_json(path.name, data)


def read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except ValueError as e:  # JSONDecodeError, or bytes that are not UTF-8
        raise RunFileError(f"{path}: not valid JSON ({e})") from None


def check_version(
    path: Path, data: Any, refused: Callable[[Any], bool], current: int = SCHEMA_VERSION
) -> None:
    """RunFileError, one line, when the file's schema_version (1 when absent) is `refused`;
    `current`: the version this code writes for that file."""
    version = data.get("schema_version", 1) if isinstance(data, dict) else 1
    if refused(version):
        raise RunFileError(
            f"{path}: schema_version: {version!r} is not a version this kardiabench reads "
            f"({current}); a newer kardiabench wrote it, or the file is damaged"
        )


def check_schema_versions(path: str | Path) -> None:
    """Refuse (RunFileError, one line) a folder whose run.json or results.json a newer kardiabench
    wrote, before a stage writes anything there. Only the version is checked: a damaged
    results.json of this version may be replaced by scoring again."""
    for name in (MANIFEST, RESULTS):
        file = Path(path) / name
        if file.is_file():
            check_version(
                file, read_json(file), lambda v: not isinstance(v, int) or v > SCHEMA_VERSION
            )


class RunManifest(_RunFile):
    """run.json: what was run and how to reproduce it (`generate.prepare`, `score_stage`)."""

    FILE: ClassVar[str] = MANIFEST
    generation: GenerationIdentity | None = None
    model_spec: str
    # generate.training_block: a train checkpoint's judge and base model
    training: dict[str, Any] | None = None
    task_config: Task
    # generate.task_block: hashes of the task and its prompt, tag style
    task: dict[str, Any] | None = None
    data: DataInfo
    parser_version: str
    provenance: dict[str, Any] | None = None
    command: list[str] | None = None
    created: str | None = None
    generation_stats: GenerationStats | None = None
    judge: JudgeInfo | None = None  # set by scoring; None: scored without a judge
    scored: str | None = None


def recorded_value(manifest: RunManifest, path: str) -> Any:
    """The value at a dotted run.json path (an option's `recorded`, kardiabench/options.py), read
    through the typed models and the dicts in them; KeyError naming the path when run.json holds
    nothing there (a run scored without a judge has no `judge.*`)."""
    value: Any = manifest
    for key in path.split("."):
        if isinstance(value, BaseModel) and (
            key in type(value).model_fields or key in (value.model_extra or {})
        ):
            value = getattr(value, key)
        elif isinstance(value, dict) and key in value:
            value = value[key]
        else:
            raise KeyError(f"run.json holds no {path}")
    return value


class Results(_RunFile):
    """results.json: every metric with n and its 95% CI, and the reports around them."""

    FILE: ClassVar[str] = RESULTS
    task: str
    model: str | None
    data: DataInfo
    history: str | None = None
    judge: JudgeInfo | None = None
    metrics: dict[str, Metric]
    emotion: EmotionReport | None = None
    breakdowns: dict[str, dict[str, Breakdown]] = {}  # "gold_emotion" | "mbti" → group → Breakdown
    counts: dict[str, int] = {}
    statistics: dict[str, Any] = {}
    parser_version: str | None = None
    rubric: dict[str, Any] | None = None  # the judge report, or {"computed": false, "reason"}
    generation_stats: GenerationStats | None = None
    provenance: dict[str, Any] | None = None


def one_line(path: Path, error: ValidationError) -> str:
    """`FILE: dotted.field.path: message`, for the first problem (and how many more there are)."""
    first = error.errors()[0]
    where = ".".join(str(p) for p in first["loc"])
    more = f" (and {error.error_count() - 1} more)" if error.error_count() > 1 else ""
    return f"{path}: {where + ': ' if where else ''}{first['msg']}{more}"


# ----------------------------------------------------------------------------- a run


@dataclass(repr=False)
class Run:
    """A run folder read back: its manifest, its results (None until scored) and, on first use,
    its items as a DataFrame. A plain dataclass: the files are validated, the object is a view;
    two reads of one folder compare equal (path, manifest, results and problems)."""

    path: Path
    manifest: RunManifest
    results: Results | None = None
    # What went wrong in the call that returned this Run (items that failed to generate, judges
    # that scored nothing); the CLI exits 1 when there are any. Empty for `load_run`.
    problems: list[str] = field(default_factory=list)

    @property
    def model(self) -> str:
        """The model spec, e.g. `openai:gpt-4o`."""
        return self.manifest.model_spec

    @property
    def task(self) -> str:
        """The task name (`manifest.task_config` is the whole task)."""
        return self.manifest.task_config.name

    @property
    def metrics(self) -> dict[str, Metric]:
        """results.json's metrics by name; empty when the run is not scored yet."""
        return self.results.metrics if self.results else {}

    @cached_property
    def items(self) -> pd.DataFrame:
        """One row per item (docs/run-folder.md, "Reading a run from Python")."""
        return items_frame(self.path)

    def __repr__(self) -> str:
        data = self.results.data if self.results else self.manifest.data
        head = f"Run({str(self.path)!r}: {self.model} on {self.task}, {data.n_items} items"
        if self.results is None:
            return head + ", not scored)"
        shown = [
            f"{k} {m.value:.2f}"
            for k in HEADLINE_METRICS
            if (m := self.metrics.get(k)) and m.value is not None
        ]
        return head + "; " + ", ".join(shown) + ")"


def load_run(path: str | Path) -> Run:
    """Read a run folder: run.json, and results.json when it has been scored."""
    path = Path(path)
    if not (path / MANIFEST).is_file():
        why = "no such folder" if not path.exists() else f"not a run folder (no {MANIFEST})"
        raise RunDirError(f"{path}: {why}")
    results = path / RESULTS
    return Run(
        path, RunManifest.read(path / MANIFEST), Results.read(results) if results.exists() else None
    )


def items_frame(path: Path) -> pd.DataFrame:
    """items.jsonl joined with predictions.jsonl on item_id, the spans parsed from raw_output.

    Rows follow items.jsonl (the scored items); a run not scored yet has one row per prediction,
    with the scoring columns empty. Rubric columns are NaN where unscored or without a judge.
    """
    import pandas as pd

    scored = read_jsonl_tolerant(path / ITEMS)
    preds = RunDir(path).read_predictions()
    rows = scored or [{"item_id": i} for i in preds]
    dims = rubric_dimensions(r["rubric"] for r in scored if r.get("rubric"))
    records = []
    for row in rows:
        pred = preds.get(row["item_id"])
        raw = pred.raw_output if pred else None
        spans = parse_spans(raw, finish_reason=pred.finish_reason).spans if raw is not None else {}
        rubric = row.get("rubric") or {}
        records.append(
            {
                **{c: row.get(c) for c in ROW_COLUMNS},
                **{s: spans.get(s) for s in SPAN_NAMES},
                "raw_output": raw,
                **{d: rubric.get(d) for d in dims},
            }
        )
    frame = pd.DataFrame.from_records(
        records, columns=[*ROW_COLUMNS, *SPAN_NAMES, "raw_output", *dims]
    )
    return frame.astype(dict.fromkeys(dims, "float64"))
