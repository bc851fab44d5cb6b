"""The generation stage: items of a task → model → DIR/predictions.jsonl, resumable at item level."""

from __future__ import annotations

import hashlib
import itertools
import json
import logging
import sys
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kardiabench.cache import Cache
from kardiabench.data import expand, load_dialogues
from kardiabench.data.load import (
    DataError,
    LoadResult,
    files_sha256,
    hub_revision,
    is_hub_source,
    resolve_files,
)
from kardiabench.models import ChatModel, ModelOptions, load_model, parse_spec
from kardiabench.models.base import ChatRequest, Generation, Job, ModelError, SamplingParams
from kardiabench.models.openai_batch import BatchJob
from kardiabench.models.replicas import mixed_served_models
from kardiabench.records import Item, Prediction
from kardiabench.redact import redact_argv
from kardiabench.runner import RunStats, request_cost, run_jobs
from kardiabench.runs import (
    GenerationStats,
    RunDir,
    RunDirError,
    RunManifest,
    check_schema_versions,
    now,
    provenance,
)
from kardiabench.spans import PARSER_VERSION, parse_spans, span_markers
from kardiabench.tasks import Task

_info = logging.getLogger("kardiabench").info  # progress lines: the CLI shows them on stderr


@dataclass
class DataSpec:
    source: str
    split: str | None = None
    strict: bool = False
    derive_split: float | None = None
    split_seed: int = 0
    limit: int | None = None

    def __post_init__(self) -> None:
        # run.json names local data by absolute path, so `score RUN` works from any directory
        if (
            self.source != "sample"
            and not is_hub_source(self.source)
            and Path(self.source).expanduser().exists()
        ):
            self.source = str(Path(self.source).expanduser().resolve())

    def load(self) -> LoadResult:
        return load_dialogues(
            self.source,
            self.split,
            strict=self.strict,
            derive_split=self.derive_split,
            split_seed=self.split_seed,
        )


@dataclass
class GenerateConfig:
    task: Task
    model_spec: str
    data: DataSpec
    output: Path
    params: SamplingParams
    options: ModelOptions = field(default_factory=ModelOptions)
    train_data: str | None = None  # training split source for baselines; default: the data source
    cache_path: Path | None = None  # None: no cache
    progress: bool = True
    overwrite: bool = False
    max_cost_usd: float | None = None  # stop sending once generation has cost this much
    batch: bool = False  # send through the provider's batch API (models/openai_batch.py)
    batch_timeout: float | None = None  # seconds to wait for a batch to end (None: no bound)


def load_items(task: Task, data: DataSpec, log=_info) -> tuple[list[Item], LoadResult]:
    loaded = data.load()
    if loaded.skipped:
        kinds = ", ".join(f"{k}: {v}" for k, v in loaded.skipped_by_kind().most_common())
        log(
            f"skipped {loaded.skipped} of {loaded.records_read} records with problems ({kinds}); "
            "`kardiabench data validate` lists them, --strict refuses to run"
        )
    # --limit N: expand dialogues in file order only until N items, not the whole split
    items = list(itertools.islice(expand(loaded.dialogues, task.history), data.limit))
    return items, loaded


def count_dialogues(items: list[Item]) -> int:
    """Dialogues with at least one item evaluated (after --limit)."""
    return len({it.dialogue_id for it in items})


def data_fingerprint(items: list[Item]) -> str:
    h = hashlib.sha256()
    for it in items:
        h.update(it.item_id.encode())
    return h.hexdigest()[:16]


def build_model(cfg: GenerateConfig, log=_info) -> ChatModel:
    provider, name = parse_spec(cfg.model_spec)
    if provider != "baseline":
        return load_model(cfg.model_spec, cfg.options)
    # numpy and scipy: for baselines only
    from kardiabench.models.baselines import RetrievalBaseline

    source = cfg.train_data or cfg.data.source
    # next to the request cache
    index_dir = cfg.cache_path.parent / "indexes" if cfg.cache_path else None
    derive = cfg.data.derive_split if cfg.train_data is None else None
    files_key = (
        train_files_key(source) if index_dir and derive is None and name == "retrieval" else None
    )
    if files_key and (model := RetrievalBaseline.from_files_key(files_key, index_dir, source)):
        log(
            f"{cfg.model_spec}: fitted on {model.n_train} training dialogues from {source} (index read from {index_dir})"
        )
        return model
    try:
        train = load_dialogues(source, "train", derive_split=derive, split_seed=cfg.data.split_seed)
    except DataError as e:
        raise DataError(
            f"{cfg.model_spec} is fitted on a training split, and none was found ({e}). Pass --train-data SOURCE."
        ) from None
    log(f"{cfg.model_spec}: fitted on {len(train.dialogues)} training dialogues from {source}")
    return load_model(
        cfg.model_spec,
        cfg.options,
        train_dialogues=train.dialogues,
        train_source=source,
        index_dir=index_dir,
        files_key=files_key,
    )


def train_files_key(source: str) -> str | None:
    """The bytes and paths of a local training split's files (the index version follows the loader:
    it decides what is read from them); None for Hub sources or when there is no such split."""
    from kardiabench.models.baselines import INDEX_VERSION

    if is_hub_source(source):
        return None
    try:
        files, _ = resolve_files(source, "train")
    except DataError:
        return None
    return _sha256(
        [
            INDEX_VERSION,
            files_sha256([str(f) for f in files]),
            [str(Path(f).resolve()) for f in files],
        ]
    )


def _sha256(obj: Any) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True).encode()).hexdigest()[:16]


def generation_identity(cfg: GenerateConfig, model: ChatModel) -> dict[str, Any]:
    """What determines the predictions. A run folder refuses to resume under a different one."""
    return {
        "task": {
            "name": cfg.task.name,
            "version": cfg.task.version,
            "sha256": _sha256(cfg.task.model_dump(mode="json")),
        },
        "model": model.identity(),
        "sampling": cfg.params.to_dict(),
        "history": cfg.task.history,
        "data": {
            "source": cfg.data.source,
            "split": cfg.data.split,
            "derive_split": cfg.data.derive_split,
            "split_seed": cfg.data.split_seed,
        },
    }


def task_block(task: Task) -> dict[str, Any]:
    """run.json's `task`: the identity's task hash, plus the prompt template's own hash and the
    span tag style it asks for. Kept out of `generation` (they follow from the task config already
    in it), so folders written before them still resume."""
    return {
        "name": task.name,
        "version": task.version,
        "sha256": _sha256(task.model_dump(mode="json")),
        "prompt_sha256": _sha256(task.prompt.model_dump(mode="json")),
        "tag_style": tag_style(task),
    }


def tag_style(task: Task) -> str | None:
    """The span tags the prompt shows ("special" or "xml"; "mixed" for both), None for none."""
    p = task.prompt
    text = "\n".join([p.format_instruction or "", *(s.assistant for s in p.few_shot)])
    found = [style for style in ("special", "xml") if any(m in text for m in span_markers(style))]
    return found[0] if len(found) == 1 else ("mixed" if found else None)


def data_block(cfg: GenerateConfig, loaded: LoadResult, items: list[Item]) -> dict[str, Any]:
    """run.json's `data`: where the items came from and which revision of it (file hashes; the
    Hub commit), and how many were evaluated."""
    return {
        "source": cfg.data.source,
        "split": loaded.split,
        "files": [Path(f).name for f in loaded.files],
        "files_sha256": files_sha256(loaded.files),
        "revision": hub_revision(loaded.files) if is_hub_source(cfg.data.source) else None,
        "fingerprint": data_fingerprint(items),
        "n_dialogues": count_dialogues(items),
        "n_items": len(items),
        "records_skipped": loaded.skipped,
        "limit": cfg.data.limit,
        "derive_split": cfg.data.derive_split,
        "split_seed": cfg.data.split_seed,
    }


_UNSET = "(unset)"


def settings_diff(old: dict[str, Any], new: dict[str, Any]) -> str:
    """The settings that differ, `key: old → new`, nested keys dotted (`sampling.temperature: 0.0 → 0.7`)."""
    a, b = _flatten(old), _flatten(new)
    changed = [k for k in dict.fromkeys([*a, *b]) if a.get(k, _UNSET) != b.get(k, _UNSET)]
    return "; ".join(f"{k}: {_show(a.get(k, _UNSET))} → {_show(b.get(k, _UNSET))}" for k in changed)


def _flatten(d: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in d.items():
        out.update(_flatten(v, f"{prefix}{k}.") if isinstance(v, dict) else {f"{prefix}{k}": v})
    return out


def _show(v: Any) -> str:
    return v if isinstance(v, str) else json.dumps(v)


def check_resumable(
    run: RunDir,
    manifest: RunManifest,
    identity: dict[str, Any],
    items: list[Item],
    limit: int | None,
) -> None:
    """Refuse to continue a run under other settings, or over fewer items than it holds (a higher
    --limit, or none after a limited run, continues it)."""
    old = (
        manifest.generation.model_dump(mode="json", exclude_unset=True)
        if manifest.generation
        else {}
    )
    if old != identity:
        raise RunDirError(
            f"{run.path} holds a run with different settings: {settings_diff(old, identity)}. "
            "Use another --output, or --overwrite to start it afresh."
        )
    held = manifest.data.n_items
    if len(items) < held:
        asked = f"--limit {limit}" if limit is not None else f"the {len(items)} items of the data"
        raise RunDirError(
            f"{run.path} holds {held} items (limit {manifest.data.limit or 'none'}); {asked} would cover fewer: "
            "use --overwrite or another --output"
        )


def to_prediction(
    item_id: str, model_spec: str, out: Generation | ModelError, cost: float | None, cached: bool
) -> Prediction:
    if isinstance(out, ModelError):
        return Prediction(
            item_id=item_id, model=model_spec, raw_output=None, error=str(out), cached=cached
        )
    parsed = parse_spans(out.text, finish_reason=out.finish_reason)
    return Prediction(
        item_id=item_id,
        model=model_spec,
        raw_output=out.text,
        reasoning=out.reasoning,  # a <think> trace stays in raw_output only (Prediction.thinking)
        span_issues=[
            {"kind": i.kind.value, "span": i.span or "", "detail": i.detail} for i in parsed.issues
        ],
        well_formed=parsed.well_formed,
        finish_reason=out.finish_reason,
        usage={
            "prompt_tokens": out.prompt_tokens,
            "completion_tokens": out.completion_tokens,
            "cost_usd": cost,
        },
        latency_s=round(out.latency_s, 4),
        cached=cached,
        attempts=out.attempts,
    )


def training_block(spec: str) -> dict[str, Any] | None:
    """The training judge and base model of a `kardiabench train` checkpoint (hf:/vllm: FOLDER with
    kardiabench_training.json), so scoring can flag a judge of the training judge's family."""
    provider, name = parse_spec(spec)
    path = Path(name) / "kardiabench_training.json"
    if provider not in ("hf", "vllm") or not path.is_file():
        return None
    try:
        config = json.loads(path.read_text()).get("config") or {}
    except (OSError, ValueError, AttributeError) as e:
        raise DataError(f"{path}: not a kardiabench training record ({e})") from None
    return {
        "judge": config.get("judge"),
        "base_model": config.get("model"),
        "stage": config.get("stage"),
        "record": str(path),
    }


def prepare(
    cfg: GenerateConfig, log=_info
) -> tuple[list[Item], ChatModel, RunDir, RunManifest, list[Job]]:
    """Load items and model, check the run folder, and list the jobs still to do."""
    items, loaded = load_items(cfg.task, cfg.data, log)
    if not items:
        raise DataError(
            f"no items to evaluate in {cfg.data.source} (split {loaded.split or 'whole file'})"
        )
    model = build_model(cfg, log)
    model.probe("--base-url")  # a dead endpoint stops here, before the folder is touched
    run = RunDir(cfg.output)
    identity = generation_identity(cfg, model)
    old: RunManifest | None = None
    if cfg.overwrite:
        run.clear()
    elif run.path.exists():
        # a folder a newer kardiabench wrote: refused before anything is written
        check_schema_versions(run.path)
        if run.manifest_path.exists():
            old = run.read_manifest()
            check_resumable(run, old, identity, items, cfg.data.limit)
    manifest = RunManifest.model_validate(
        {
            # an earlier session's stats, scoring
            **(old.model_dump(mode="json", exclude_unset=True) if old else {}),
            "generation": identity,
            "model_spec": cfg.model_spec,
            "training": training_block(cfg.model_spec),
            "task": task_block(cfg.task),
            "task_config": cfg.task.model_dump(mode="json"),
            "data": data_block(cfg, loaded, items),
            "parser_version": PARSER_VERSION,
            "provenance": provenance(),
            "command": redact_argv(sys.argv),
            "created": (old.created if old else None) or now(),
        }
    )
    run.write_manifest(manifest)
    done = {pid for pid, p in run.read_predictions(repair=True).items() if p.error is None}
    jobs = [Job(it.item_id, model_request(cfg, it)) for it in items if it.item_id not in done]
    return items, model, run, manifest, jobs


def model_request(cfg: GenerateConfig, item: Item) -> ChatRequest:
    return ChatRequest.from_messages(cfg.task.messages(item), cfg.params)


async def generate(cfg: GenerateConfig, log=_info) -> tuple[RunDir, RunStats, list[Item]]:
    """Generate under the run folder's lock (see RunDir.lock)."""
    run = RunDir(cfg.output)
    run.path.mkdir(parents=True, exist_ok=True)
    with run.lock():
        return await _generate(cfg, log)


async def _generate(cfg: GenerateConfig, log) -> tuple[RunDir, RunStats, list[Item]]:
    items, model, run, manifest, jobs = prepare(cfg, log)
    if len(jobs) < len(items):
        log(
            f"resuming: {len(items) - len(jobs)} of {len(items)} items already in {run.predictions_path}"
        )
    cache = Cache(cfg.cache_path) if cfg.cache_path else None
    writer = run.prediction_writer()

    def on_result(job: Job, out: Generation | ModelError, cached: bool) -> None:
        cost = request_cost(model, out) if isinstance(out, Generation) else None
        writer.write(to_prediction(job.key, cfg.model_spec, out, cost, cached).to_dict())

    started = now()
    try:
        stats = await run_jobs(
            model,
            jobs,
            on_result=on_result,
            cache=cache,
            concurrency=cfg.options.concurrency
            if parse_spec(cfg.model_spec)[0] == "openai"
            else None,
            progress=cfg.progress,
            desc=f"generate {cfg.model_spec}",
            budget_usd=cfg.max_cost_usd,
            batch=BatchJob(run, "generation", timeout=cfg.batch_timeout) if cfg.batch else None,
        )
    finally:
        writer.close()
        if cache is not None:
            cache.close()
        await model.aclose()
    manifest.generation_stats = add_stats(
        manifest.generation_stats, stats, started, model.replica_usage()
    )
    run.write_manifest(manifest)
    return run, stats, items


def add_stats(
    previous: GenerationStats | None,
    stats: RunStats,
    started: str,
    replicas: list[dict[str, Any]] | None = None,
) -> GenerationStats:
    """run.json's `generation_stats`: this session's requests added to those of the sessions before
    it in the folder (`resumes` of them), so a resume with nothing left to do loses no totals.
    `tokens_per_s` is generated (uncached) completion tokens over the sessions' wall time.
    `failed`/`failed_items` are this session's: every item that failed before is asked again.
    `replicas` (a pool's `replica_usage`) are added up per URL the same way, and
    `mixed_served_models` names the models they answered as when that is more than one."""
    new = {
        "requested": stats.total,
        "from_cache": stats.cached,
        "done": stats.done,
        "failed": stats.failed,
        "failed_items": stats.failed_keys,
        "prompt_tokens": stats.prompt_tokens,
        "completion_tokens": stats.completion_tokens,
        "cost_usd": stats.cost_usd,
        "wall_s": round(stats.wall_s, 2),
        "served_models": dict(stats.served_models),
        "started": started,
        "finished": now(),
        "resumes": 0,
        "generated_tokens": stats.generated_tokens,
        "pad_tokens_saved": stats.pad_tokens_saved,
    }
    if replicas:
        new["replicas"] = replicas
    if previous:
        _add_previous(new, previous, started)
    if new.get("replicas"):
        new["mixed_served_models"] = mixed_served_models(new["replicas"])
    new["tokens_per_s"] = tokens_per_s(new["generated_tokens"], new["wall_s"])
    return GenerationStats.model_validate(new)


def tokens_per_s(generated_tokens: int, wall_s: float) -> float | None:
    """Completion tokens the model generated (not those from the cache) per second of the sessions."""
    return round(generated_tokens / wall_s, 2) if wall_s > 0 else None


def _add_previous(new: dict[str, Any], previous: GenerationStats, started: str) -> None:
    old_cost = previous.cost_usd
    for k in (
        "requested",
        "from_cache",
        "done",
        "prompt_tokens",
        "completion_tokens",
        "generated_tokens",
        "pad_tokens_saved",
    ):
        new[k] += getattr(previous, k)
    new["cost_usd"] = (
        None if old_cost is None or new["cost_usd"] is None else old_cost + new["cost_usd"]
    )
    new["wall_s"] = round(new["wall_s"] + previous.wall_s, 2)
    new["served_models"] = dict(Counter(previous.served_models) + Counter(new["served_models"]))
    new["started"] = previous.started or started
    new["resumes"] = previous.resumes + 1
    if previous.replicas or new.get("replicas"):
        old = [r.model_dump(mode="json", exclude_unset=True) for r in previous.replicas or []]
        new["replicas"] = _add_replicas(old, new.get("replicas") or [])


def _add_replicas(old: list[dict[str, Any]], new: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per-replica totals over sessions, matched by URL (a session may use other replicas)."""
    merged = {r["url"]: dict(r) for r in old}
    for r in new:
        if r["url"] not in merged:
            merged[r["url"]] = dict(r)
            continue
        m = merged[r["url"]]
        for k, v in r.items():
            if k == "served_models":
                m[k] = dict(Counter(m.get(k) or {}) + Counter(v))
            elif isinstance(v, int):
                m[k] = m.get(k, 0) + v
    return list(merged.values())
