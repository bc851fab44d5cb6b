"""The Python API (docs/api.md), and the scoring stage under it: every `kardiabench` command is a
thin wrapper over one function here, with the same parameters as keywords.

    generate   the generation stage only              (`kardiabench generate`)
    evaluate   generate, then score                   (`kardiabench run`)
    score      score saved predictions                (`kardiabench score`)
    compare    paired comparison of two runs          (`kardiabench compare`)
    dry_run    what a run would send and cost         (`--dry-run`)
    judge_agreement  judges against human labels      (`kardiabench judge-agreement`)

Nothing here prints: progress lines are records of the `kardiabench` logger (the CLI shows them on
stderr), the progress bar is opt-in (`progress=True`), and results come back as typed objects
(`Run`, `Comparison`, `Plan`). A bad keyword raises `ParameterError`; bad data, a bad folder or a
bad spec raise the errors of `kardiabench.errors.USER_ERRORS`.

Scoring never regenerates: it reads predictions.jsonl, reloads the items the manifest names (and
checks their fingerprint), judges what has not been judged yet, and writes results.json,
items.jsonl (per-item rows) and summary.md.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import os
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kardiabench.cache import Cache, default_cache_path
from kardiabench.data.load import DataError
from kardiabench.generate import (
    DataSpec,
    GenerateConfig,
    count_dialogues,
    data_fingerprint,
    load_items,
)
from kardiabench.generate import generate as generation_stage
from kardiabench.models import ChatModel, ModelOptions, load_model
from kardiabench.models.base import SamplingParams
from kardiabench.params import ParameterError, check
from kardiabench.plan import Plan
from kardiabench.plan import dry_run as plan_dry_run
from kardiabench.records import Item, Prediction
from kardiabench.rundir import (
    ITEMS,
    JUDGMENTS,
    RESULTS,
    SUMMARY,
    RunDir,
    RunDirError,
    iter_jsonl_objects,
    now,
    provenance,
    read_jsonl_tolerant,
)
from kardiabench.runs import Results, Run, load_run
from kardiabench.scoring.compare import Comparison
from kardiabench.scoring.judge import NOT_SENT, JudgeConfig
from kardiabench.scoring.metrics import RUBRIC_DIMENSIONS
from kardiabench.spans import PARSER_VERSION
from kardiabench.tables import markdown_table
from kardiabench.tasks import Task, load_task

# The judge's file and model I/O: used by judge_stage, saved_outcome and judge_agreement only.
from kardiabench.scoring.judge import (  # isort: skip
    load_judgments,
    matching_verdicts,
    outcome_from_judgments,
    run_judges,
)

__all__ = ["evaluate", "generate", "score", "compare", "dry_run", "judge_agreement", "load_run",
           "generation_config", "JudgeOptions", "ParameterError", "Interrupted", "Run"]  # fmt: skip

log = logging.getLogger("kardiabench")
RUBRIC_METRICS = (*RUBRIC_DIMENSIONS, "safety_flag_rate")


class Interrupted(KeyboardInterrupt):
    """Ctrl-C during a stage: everything finished is saved in `saved`, and the same call resumes."""

    def __init__(self, what: str, saved: str) -> None:
        super().__init__(f"finished {what} are saved in {saved}")
        self.saved = saved


# ----------------------------------------------------------------------------- parameters

_RULES = {
    "limit": "positive_int", "temperature": "nonneg_float", "top_p": "top_p", "max_tokens": "positive_int",
    "seed": "int", "concurrency": "positive_int", "timeout": "positive_float", "batch_size": "positive_int",
    "tensor_parallel_size": "positive_int", "data_parallel_size": "positive_int", "max_cost": "positive_float",
    "derive_split": "open_fraction", "split_seed": "int", "api_key_env": "env_var", "judge_api_key_env": "env_var",
    "judge_concurrency": "positive_int", "judge_repeats": "positive_int", "judge_max_tokens": "positive_int",
    "resamples": "positive_int", "bootstrap_seed": "int",
}  # fmt: skip


def _check(**params: Any) -> None:
    """ParameterError for the first keyword that breaks its rule (params.RULES); None is "not given"."""
    for name, value in params.items():
        if value is not None:
            check(name, value, _RULES[name])


def _cache_path(cache: str | Path | bool | None) -> Path | None:
    """True: the default cache ($KARDIABENCH_CACHE or ~/.cache/kardiabench/cache.sqlite); None or
    False: no cache; a path: that file."""
    if cache is None or cache is False:
        return None
    return default_cache_path() if cache is True else Path(cache)


def _take(options: dict[str, Any], names: Sequence[str]) -> dict[str, Any]:
    return {name: options.pop(name) for name in names if name in options}


def generation_config(
    model: str,
    output: str | Path,
    *,
    data: str | None = None,
    task: str = "kardiabench",
    tasks_dir: Sequence[str] = (),
    split: str | None = None,
    strict: bool = False,
    derive_split: float | None = None,
    split_seed: int = 0,
    limit: int | None = None,
    overwrite: bool = False,
    train_data: str | None = None,
    temperature: float | None = None,
    top_p: float | None = None,
    max_tokens: int | None = None,
    seed: int | None = None,
    base_url: str | None = None,
    api_key_env: str = "OPENAI_API_KEY",
    concurrency: int = 16,
    timeout: float = 120.0,
    prices: str | None = None,
    batch_size: int = 8,
    dtype: str = "auto",
    device: str = "auto",
    revision: str | None = None,
    add_span_tokens: bool = False,
    chat_template: str | None = None,
    tensor_parallel_size: int = 1,
    data_parallel_size: int = 1,
    cache: str | Path | bool | None = True,
    max_cost: float | None = None,
    progress: bool = False,
) -> GenerateConfig:
    """The generation keywords of `generate`, `evaluate` and `dry_run`, checked and resolved against
    the task (sampling defaults come from the task file). Each is the CLI flag of the same name."""
    _check(limit=limit, temperature=temperature, top_p=top_p, max_tokens=max_tokens, seed=seed, concurrency=concurrency,
           timeout=timeout, batch_size=batch_size, tensor_parallel_size=tensor_parallel_size, max_cost=max_cost,
           data_parallel_size=data_parallel_size, derive_split=derive_split, split_seed=split_seed, api_key_env=api_key_env)  # fmt: skip
    the_task = load_task(task, list(tasks_dir))
    g = the_task.generation
    params = SamplingParams(
        temperature=g.temperature if temperature is None else temperature,
        top_p=g.top_p if top_p is None else top_p,
        max_tokens=g.max_tokens if max_tokens is None else max_tokens,
        seed=g.seed if seed is None else seed,
    )
    options = ModelOptions(
        base_url=base_url or os.environ.get("OPENAI_BASE_URL"), concurrency=concurrency, timeout=timeout,
        api_key_env=api_key_env, batch_size=batch_size, dtype=dtype, device=device, revision=revision,
        add_span_tokens=add_span_tokens, chat_template=Path(chat_template).read_text(encoding="utf-8") if chat_template else None,
        tensor_parallel_size=tensor_parallel_size, data_parallel_size=data_parallel_size, prices_file=prices,
    )  # fmt: skip
    spec = DataSpec(source=data or the_task.data.source, split=split or the_task.data.split, strict=strict,
                    derive_split=derive_split, split_seed=split_seed, limit=limit)  # fmt: skip
    return GenerateConfig(task=the_task, model_spec=model, data=spec, output=Path(output), params=params, options=options,
                          train_data=train_data, cache_path=_cache_path(cache), progress=progress, overwrite=overwrite,
                          max_cost_usd=max_cost)  # fmt: skip


@dataclass(frozen=True)
class JudgeOptions:
    """The judge keywords of `score`, `evaluate` and `dry_run` (the CLI's --judge* flags and
    --rubric). `judges` is a list of model specs; one spec alone may be given as a string."""

    judges: Sequence[str] = ()
    judge_base_url: str | None = None
    judge_api_key_env: str = "OPENAI_API_KEY"
    judge_concurrency: int = 16
    judge_repeats: int = 1
    judge_max_tokens: int = 1024
    judge_show_reasoning: bool = False
    rubric: str | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "judges", (self.judges,) if isinstance(self.judges, str) else tuple(self.judges))
        _check(judge_api_key_env=self.judge_api_key_env, judge_concurrency=self.judge_concurrency,
               judge_repeats=self.judge_repeats, judge_max_tokens=self.judge_max_tokens)  # fmt: skip

    def config(self) -> JudgeConfig:
        return JudgeConfig(rubric_path=self.rubric, show_reasoning=self.judge_show_reasoning, repeats=self.judge_repeats,
                           max_tokens=self.judge_max_tokens, concurrency=self.judge_concurrency)  # fmt: skip

    def models(self, require_key: bool = True) -> list[ChatModel]:
        """One model per distinct spec; a judge without its API key fails here (unless require_key
        is False: a dry run sends nothing)."""
        opts = ModelOptions(base_url=self.judge_base_url or os.environ.get("OPENAI_BASE_URL"), concurrency=self.judge_concurrency,
                            api_key_env=self.judge_api_key_env, require_key=require_key)  # fmt: skip
        return [load_model(spec, opts) for spec in dict.fromkeys(self.judges)]


JUDGE_KEYWORDS = tuple(f.name for f in dataclasses.fields(JudgeOptions))


# ----------------------------------------------------------------------------- the API


def generate(model: str, output: str | Path, **options: Any) -> Run:
    """The generation stage only (`kardiabench generate`): write OUTPUT/predictions.jsonl and
    run.json, resuming a folder that holds the same run. Keywords: those of `generation_config`.
    The returned Run is not scored; `run.problems` names items that failed for good."""
    cfg = generation_config(model, output, **options)
    problems = _generate(cfg)
    return dataclasses.replace(load_run(cfg.output), problems=problems)


def evaluate(model: str, output: str | Path, *, resamples: int = 1000, bootstrap_seed: int = 0, **options: Any) -> Run:
    """Generate, then score (`kardiabench run`). Keywords: those of `generation_config`, those of
    `JudgeOptions` (judges=[...], judge_base_url, …), and resamples / bootstrap_seed as for `score`.
    Judges are built first, so a judge's missing API key stops the run before anything is sent."""
    _check(resamples=resamples, bootstrap_seed=bootstrap_seed)
    judging = JudgeOptions(**_take(options, JUDGE_KEYWORDS))
    cfg = generation_config(model, output, **options)
    if judging.judges:
        judging.models()
    problems = _generate(cfg)
    run = _score_folder(RunDir(cfg.output), None, judging, cfg.cache_path, cfg.progress, resamples, bootstrap_seed)
    return dataclasses.replace(run, problems=[*problems, *run.problems])


def score(
    run_dir: str | Path | None = None,
    *,
    predictions: str | Path | None = None,
    data: str | None = None,
    task: str | None = None,
    tasks_dir: Sequence[str] = (),
    split: str | None = None,
    strict: bool = False,
    derive_split: float | None = None,
    split_seed: int = 0,
    output: str | Path | None = None,
    judges: Sequence[str] = (),
    judge_base_url: str | None = None,
    judge_api_key_env: str = "OPENAI_API_KEY",
    judge_concurrency: int = 16,
    judge_repeats: int = 1,
    judge_max_tokens: int = 1024,
    judge_show_reasoning: bool = False,
    rubric: str | None = None,
    resamples: int = 1000,
    bootstrap_seed: int = 0,
    cache: str | Path | bool | None = True,
    progress: bool = False,
) -> Run:
    """Score saved predictions (`kardiabench score`): a run folder in place, or `predictions` (a
    JSONL of {item_id, raw_output} made elsewhere) against `data`, written to `output` (default:
    beside the file, NAME-scored). Without `judges`, the verdicts already in the folder are reused
    where they were made for the current predictions. `run.problems` names judges that scored nothing."""
    if run_dir is not None and output is not None:
        raise ParameterError("output: is for predictions=FILE; a run folder is scored in place")
    _check(derive_split=derive_split, split_seed=split_seed, resamples=resamples, bootstrap_seed=bootstrap_seed)
    judging = JudgeOptions(judges, judge_base_url, judge_api_key_env, judge_concurrency, judge_repeats,
                           judge_max_tokens, judge_show_reasoning, rubric)  # fmt: skip
    external = None
    if predictions is not None:
        external = _External(Path(predictions), data, task, tuple(tasks_dir), split, strict, derive_split, split_seed)
    run = scoring_folder(run_dir, external.path if external else None, output)
    return _score_folder(run, external, judging, _cache_path(cache), progress, resamples, bootstrap_seed)


def compare(a: Run | str | Path, b: Run | str | Path, *, force: bool = False, resamples: int = 1000, seed: int = 0) -> Comparison:
    """Paired comparison of two scored runs on the items they share (`kardiabench compare`):
    B − A per metric with a cluster-bootstrap CI and Holm-adjusted p-values. `.table` is a
    DataFrame, `.to_dict()` the CLI's JSON. Refuses (ComparisonRefused) runs that differ in data,
    split or judge unless force=True. When only one run was judged, rubric metrics are left out."""
    from kardiabench.scoring import COMPARABILITY_KEYS, compare_runs

    _check(resamples=resamples, seed=seed)
    ra, rb = _run_scores(_run_path(a)), _run_scores(_run_path(b))
    keys, metrics = COMPARABILITY_KEYS, None
    judged = [bool((s.manifest or {}).get("judge")) for s in (ra, rb)]
    if judged[0] != judged[1]:
        log.info("note: only one run was judged; rubric metrics are left out of the comparison")
        keys = tuple(k for k in COMPARABILITY_KEYS if not k.startswith("judge."))
        metrics = ["emotion_accuracy", "format_compliance"]
    return compare_runs(ra, rb, force=force, keys=keys, metrics=metrics, n_resamples=resamples, seed=seed)


def dry_run(model: str, output: str | Path, **options: Any) -> Plan:
    """What `evaluate` would send and cost, computed before anything is sent (`--dry-run`): prompt
    tokens counted, completion tokens estimated. Keywords: those of `generation_config` and of
    `JudgeOptions` (judges are estimated, not asked). No API key is needed."""
    judging = JudgeOptions(**_take(options, JUDGE_KEYWORDS))
    cfg = generation_config(model, output, **options)
    cfg = dataclasses.replace(cfg, options=dataclasses.replace(cfg.options, require_key=False))
    judges = judging.models(require_key=False) if judging.judges else []
    return plan_dry_run(cfg, log=log.info, judges=judges, judge_repeats=judging.judge_repeats, rubric_path=judging.rubric)


def judge_agreement(human: str | Path, run: Run | str | Path) -> dict[str, Any]:
    """Agreement of each judge in a run folder with human 1–5 labels (`kardiabench
    judge-agreement`): per judge and dimension, Krippendorff's alpha, weighted kappa, Spearman and
    the mean offset (judge − human). `human`: JSONL of item_id and one integer per dimension."""
    from kardiabench.scoring import agreement

    folder = _run_path(run)
    path = folder / JUDGMENTS
    if not path.exists():
        raise RunDirError(f"{folder}: no {JUDGMENTS}; score the run with --judge first")
    return agreement.judge_agreement(human, load_judgments(path))


def _run_path(run: Run | str | Path) -> Path:
    return run.path if isinstance(run, Run) else Path(run)


# ----------------------------------------------------------------------------- generation


def _generate(cfg: GenerateConfig) -> list[str]:
    """Run the generation stage and log what it did; the problems (items failed for good)."""
    try:
        run, stats, _ = asyncio.run(generation_stage(cfg, log=log.info))
    except KeyboardInterrupt:
        raise Interrupted("items", f"{cfg.output}/predictions.jsonl") from None
    cost = "unknown" if stats.cost_usd is None else f"${stats.cost_usd:.4f}"
    log.info(f"generated {stats.done} of {stats.total} requested ({stats.cached} from cache), {stats.failed} failed; "
             f"tokens in {stats.prompt_tokens:,} out {stats.completion_tokens:,}; cost {cost}; {stats.wall_s:.1f} s → {run.predictions_path}")  # fmt: skip
    if not stats.failed:
        return []
    preds = run.read_predictions()
    log.warning(_failure_summary(stats.failed, [preds[k].error or "" for k in stats.failed_keys if k in preds]))
    log.warning(f"failed items ({stats.failed}), listed in run.json; run the same command again to retry them:")
    for k in stats.failed_keys[:20]:
        log.warning(f"  {k}")
    return [f"{stats.failed} item(s) failed to generate (listed in run.json); generate again to retry them"]


def _failure_summary(n_failed: int, errors: list[str]) -> str:
    """`failed: 5 items — most common: "HTTP 500 from …" ×4`: why, in one line."""
    top = Counter(errors).most_common(1)
    if not top:
        return f"failed: {n_failed} items"
    error, n = top[0]
    error = error if len(error) <= 200 else error[:200] + " …"
    return f"failed: {n_failed} items — most common: {json.dumps(error, ensure_ascii=False)} ×{n}"


# ----------------------------------------------------------------------------- inputs


def read_external_predictions(path: Path, model: str = "external") -> dict[str, Prediction]:
    """Predictions made elsewhere: JSONL with `item_id` and `raw_output` (optional `finish_reason`,
    `reasoning`, `error`); raw_output null with an `error` is a failed generation. A bad row (a
    missing field, a second line for one item) is an error naming the file, line and field."""
    from kardiabench.generate import to_prediction
    from kardiabench.models.base import Generation, ModelError

    if not path.exists():
        raise DataError(f"{path}: no such predictions file")
    preds: dict[str, Prediction] = {}
    lines: dict[str, int] = {}
    for lineno, row in iter_jsonl_objects(path, DataError):
        item_id = row.get("item_id")
        if not isinstance(item_id, str):
            raise DataError(f"{path}:{lineno}: item_id: missing or not a string")
        if item_id in lines:
            raise DataError(f"{path}:{lineno}: item_id: {item_id} already on line {lines[item_id]} (one line per item)")
        if "raw_output" not in row:
            raise DataError(f"{path}:{lineno}: raw_output: missing (null with an `error` for a failed generation)")
        raw, error = row["raw_output"], row.get("error")
        if raw is not None and not isinstance(raw, str):
            raise DataError(f"{path}:{lineno}: raw_output: expected a string or null")
        if error is not None and not isinstance(error, str):
            raise DataError(f"{path}:{lineno}: error: expected a string or null")
        out = ModelError(error or "no output") if raw is None else Generation(raw, row.get("reasoning"), row.get("finish_reason"))
        preds[item_id] = to_prediction(item_id, row.get("model", model), out, None, False)
        lines[item_id] = lineno
    return preds


@dataclass(frozen=True)
class _External:
    """Predictions made elsewhere, and the data and task their item ids come from (`score`)."""

    path: Path
    data: str | None
    task: str | None
    tasks_dir: tuple[str, ...]
    split: str | None
    strict: bool
    derive_split: float | None
    split_seed: int


def run_inputs(run: RunDir) -> tuple[Task, list[Item], dict[str, Any]]:
    """The task and items a run folder was generated from (its first n_items, the ones the
    fingerprint covers), checked against its fingerprint."""
    manifest = run.read_manifest()
    task = Task.model_validate(manifest["task_config"])
    d = manifest["data"]
    spec = DataSpec(source=d["source"], split=d.get("split"), derive_split=d.get("derive_split"), split_seed=d.get("split_seed", 0), limit=d.get("n_items"))
    items, _ = load_items(task, spec, log=lambda m: None)
    if data_fingerprint(items) != d.get("fingerprint"):
        raise DataError(
            f"{run.path}: the data at {d['source']} no longer give the items this run was generated on "
            "(fingerprint differs). Restore the data or generate again."
        )
    return task, items, manifest


def external_inputs(run: RunDir, ext: _External) -> tuple[Task, list[Item], dict[str, Any], dict[str, Prediction]]:
    """The task, items, manifest and predictions of predictions made elsewhere; the manifest is
    written to the folder (which must not hold another run)."""
    if not ext.data:
        raise DataError("--predictions needs --data (the source the item ids come from)")
    task = load_task(ext.task or "kardiabench", list(ext.tasks_dir))
    spec = DataSpec(ext.data, ext.split or task.data.split, strict=ext.strict, derive_split=ext.derive_split, split_seed=ext.split_seed)
    items, loaded = load_items(task, spec, log.info)
    manifest = {"task_config": task.model_dump(mode="json"), "model_spec": f"external:{ext.path.name}",
                "generation": {"history": task.history}, "parser_version": PARSER_VERSION,
                "data": {"source": spec.source, "split": loaded.split, "fingerprint": data_fingerprint(items), "n_items": len(items)},
                "provenance": provenance(), "created": now()}  # fmt: skip
    refuse_other_run(run, manifest)
    preds = read_external_predictions(ext.path)
    unknown = set(preds) - {it.item_id for it in items}
    if unknown:
        raise DataError(f"{ext.path}: {len(unknown)} item id(s) not in {ext.data} ({loaded.split}), e.g. {sorted(unknown)[0]}")
    run.write_manifest(manifest)
    return task, items, manifest, preds


def refuse_other_run(run: RunDir, manifest: dict[str, Any]) -> None:
    """Refuse to score predictions made elsewhere into a folder that holds a different run: the
    same predictions file name, data source, split and task may be scored there again."""
    if not run.manifest_path.exists():
        return
    old = run.read_manifest()
    keys = {"model": lambda m: m.get("model_spec"), "task": lambda m: (m.get("task_config") or {}).get("name"),
            "data": lambda m: (m.get("data") or {}).get("source"), "split": lambda m: (m.get("data") or {}).get("split")}  # fmt: skip
    differ = [f"{k} {get(old)} → {get(manifest)}" for k, get in keys.items() if get(old) != get(manifest)]
    if differ:
        raise RunDirError(
            f"{run.path} holds a different run ({'; '.join(differ)}). Use another --output (or remove the folder)."
        )


# ----------------------------------------------------------------------------- judging


def judge_stage(judging: JudgeOptions, task: Task, items: list[Item], preds: dict[str, Prediction], run: RunDir,
                cache_path: Path | None, progress: bool):  # fmt: skip
    """(JudgeOutcome, note or None), or (None, reason) when rubric metrics are not computed."""
    from kardiabench.scoring.rubric import load_rubric

    if not task.uses_judge:
        return None, f"task {task.name} has no rubric metrics"
    rubric = load_rubric(judging.rubric)
    if not judging.judges:
        return saved_outcome(rubric, judging.judge_max_tokens, items, preds, run)
    cfg = judging.config()
    cache = Cache(cache_path) if cache_path else None
    try:
        outcome = asyncio.run(run_judges(items, preds, judging.models(), cfg, run, cache, progress=progress))
    finally:
        if cache is not None:
            cache.close()
    for judge, run_stats in outcome.run_stats.items():
        cost = run_stats.get("cost_usd")
        log.info(f"judge {judge}: {run_stats.get('requests', 0)} requests ({run_stats.get('cached', 0)} from cache, "
                 f"{run_stats.get('failed', 0)} failed), tokens in {run_stats.get('prompt_tokens', 0):,} out "
                 f"{run_stats.get('completion_tokens', 0):,}, cost {'unknown' if cost is None else f'${cost:.4f}'}; "
                 f"unscored: {counts_text(outcome.unscored_by_reason(judge))}")  # fmt: skip
    return outcome, None


def saved_outcome(rubric, max_tokens: int, items: list[Item], preds: dict[str, Prediction], run: RunDir):
    """The verdicts in DIR/judgments.jsonl made for exactly the predictions now in the folder
    (see judge.matching_verdicts); verdicts made for other predictions are named and ignored."""
    path = run.path / JUDGMENTS
    if not path.exists():
        return None, "no judge given (--judge SPEC)"
    kept, stale = matching_verdicts(load_judgments(path, rubric.version), items, preds, rubric, max_tokens)
    note = None
    if stale:
        note = f"{len(stale)} verdict(s) in {JUDGMENTS} were made for other predictions and are ignored (e.g. {stale[0].item_id})"
        log.warning(f"rubric: {note}")
    if not kept:
        return None, f"{note}; score again with --judge SPEC" if note else "no judge given (--judge SPEC)"
    outcome = outcome_from_judgments(kept)
    log.info(f"rubric: reusing {len(kept)} verdicts of {', '.join(outcome.judges)} from {path}")
    return outcome, note


def counts_text(counts: dict[str, int]) -> str:
    """{"invalid judge output": 3, …} as "invalid judge output ×3, …" (most first), or "none"."""
    return ", ".join(f"{k} ×{n}" for k, n in sorted(counts.items(), key=lambda kv: -kv[1])) or "none"


def judge_failures(outcome) -> list[str]:
    """One readable line per judge that was asked and scored nothing (endpoint down, every reply
    invalid), with the reasons counted and the first detail."""
    lines = []
    for judge in outcome.judges:
        mine = [j for j in outcome.judgments if j.judge == judge]
        asked = [j for j in mine if j.reason not in NOT_SENT]
        if not asked or any(j.status == "scored" for j in asked):
            continue
        n_items = len({j.item_id for j in mine})
        first = asked[0].detail or ""
        first = first if len(first) <= 160 else first[:160] + " …"
        lines.append(f"judge {judge} scored 0 of {n_items} items: {counts_text(outcome.unscored_by_reason(judge))} (first: {first})")
    return lines


# ----------------------------------------------------------------------------- scoring


def output_folder(run_dir: str | Path | None, predictions: str | Path | None = None, output: str | Path | None = None) -> Path | None:
    """The folder `score` writes to: `output`, else the run folder, else FILE-scored beside the
    predictions FILE."""
    if predictions is not None:
        predictions = Path(predictions)
        return Path(output) if output is not None else predictions.parent / (predictions.stem + "-scored")
    return None if run_dir is None else Path(run_dir)


def scoring_folder(run_dir: str | Path | None, predictions: str | Path | None = None, output: str | Path | None = None) -> RunDir:
    """The folder scoring writes to; created for predictions made elsewhere."""
    folder = output_folder(run_dir, predictions, output)
    if folder is None:
        raise RunDirError("give a run folder, or --predictions FILE with --data SOURCE")
    run = RunDir(folder)
    if predictions is not None:
        run.path.mkdir(parents=True, exist_ok=True)
    return run


def _score_folder(run: RunDir, external: _External | None, judging: JudgeOptions, cache_path: Path | None,
                  progress: bool, resamples: int, seed: int) -> Run:  # fmt: skip
    """Score while holding the folder's lock, so no other process writes it meanwhile."""
    try:
        with run.lock():
            return _score(run, external, judging, cache_path, progress, resamples, seed)
    except KeyboardInterrupt:
        raise Interrupted("verdicts", f"{run.path}/{JUDGMENTS}") from None


def _score(run: RunDir, external: _External | None, judging: JudgeOptions, cache_path: Path | None,
           progress: bool, resamples: int, seed: int) -> Run:  # fmt: skip
    """Score, write results.json, items.jsonl and summary.md; problems: judges that scored nothing."""
    from kardiabench.scoring import score_predictions

    if external is not None:
        task, items, manifest, preds = external_inputs(run, external)
        missing_hint = f"{external.path} has no line for them"
    else:
        task, items, manifest = run_inputs(run)
        preds = run.read_predictions()
        missing_hint = "run generate again to finish them"
    missing = sum(1 for it in items if it.item_id not in preds)
    if missing:
        log.warning(f"warning: {missing} of {len(items)} items have no prediction; they count as wrong ({missing_hint})")
    outcome, note = judge_stage(judging, task, items, preds, run, cache_path, progress)
    report = score_predictions(items, preds, outcome.item_scores if outcome else None, n_resamples=resamples,
                               seed=seed, no_judge_reason=note or "")  # fmt: skip
    results = report.to_dict()
    if "rubric" not in task.metrics:
        results["metrics"] = {k: v for k, v in results["metrics"].items() if k not in RUBRIC_METRICS}
    manifest["judge"] = {"spec": "+".join(outcome.judges), "rubric_version": outcome.rubric_version, "repeats": outcome.repeats} if outcome else None
    manifest["scored"] = now()
    run.write_manifest(manifest)
    rubric = {"computed": False, "reason": note}
    if outcome:
        rubric = {**outcome.to_dict(), **({"ignored": note} if note else {})}
    full = {
        "task": task.name,
        "model": manifest.get("model_spec"),
        "data": {**manifest["data"], "n_items": len(items), "n_dialogues": count_dialogues(items)},
        "history": task.history,
        "judge": manifest["judge"],
        **results,
        "rubric": rubric,
        "generation_stats": manifest.get("generation_stats"),
        "provenance": manifest.get("provenance"),
    }
    Results.model_validate(full).write(run.path / RESULTS)
    _write_items(run.path / ITEMS, report.item_rows())
    (run.path / SUMMARY).write_text(format_summary(full) + "\n", encoding="utf-8")
    log.info(f"results → {run.path / RESULTS}")
    failures = judge_failures(outcome) if outcome else []
    for line in failures:
        log.error(f"error: {line}")
    return dataclasses.replace(load_run(run.path), problems=failures)


def _write_items(path: Path, rows: list[dict]) -> None:
    tmp = path.with_suffix(".tmp")
    with tmp.open("w", encoding="utf-8") as fh:
        for r in rows:
            fh.write(json.dumps(r, ensure_ascii=False) + "\n")
    os.replace(tmp, path)


def format_summary(results: dict[str, Any]) -> str:
    """A Markdown table of the headline metrics, each with n, unscored and its 95% CI."""
    d = results["data"]
    rows = []
    for name, m in results["metrics"].items():
        if m.get("value") is None:
            rows.append([name, "not computed", m.get("reason", ""), m.get("n", 0), m.get("n_unscored", 0)])
            continue
        ci = f"[{m['ci_low']:.2f}, {m['ci_high']:.2f}]" if m.get("ci_low") is not None else "–"
        rows.append([name, f"{m['value']:.2f}", ci, m["n"], m["n_unscored"]])
    lines = [
        f"## {results['model']} on {results['task']} ({d['source']}, {d.get('split') or 'whole file'})",
        "",
        f"{d.get('n_items')} items in {d.get('n_dialogues')} dialogues (limit: {d.get('limit') or 'none'})",
        "",
        markdown_table(["metric", "value", "95% CI", "n", "unscored"], rows, align="lrlrr"),
    ]
    stats = results.get("statistics") or {}
    if stats:
        lines += ["", f"CIs: {stats.get('method', 'cluster bootstrap')}, {stats.get('n_resamples')} resamples, seed {stats.get('seed')}."]
    fc = results["metrics"].get("format_compliance", {}).get("extra", {})
    if fc.get("n_failed"):
        lines.append(f"{fc['n_failed']} item(s) failed to generate and count as wrong; see run.json.")
    return "\n".join(lines)


def format_agreement(report: dict[str, Any]) -> str:
    """`judge_agreement`'s report as a title line and a Markdown table."""
    rows = []
    for judge, rep in report["judges"].items():
        for dim, m in rep["dimensions"].items():
            cells = [m.get(k) for k in ("alpha", "kappa", "spearman", "mean_offset")]
            rows.append([judge, dim, m.get("n", 0), *("–" if c is None else f"{c:.3f}" for c in cells)])
    headers = ["judge", "dimension", "n", "alpha (ordinal)", "weighted kappa", "Spearman", "mean offset"]
    title = f"agreement with human labels ({report['n_human_items']} items in {report['human_file']})"
    return title + "\n" + markdown_table(headers, rows, align="llrrrrr")


# ----------------------------------------------------------------------------- compare


def _run_scores(path: Path):
    from kardiabench.scoring import RunScores

    run = RunDir(path)
    manifest = run.read_manifest()
    items_path = path / ITEMS
    if not items_path.exists():
        raise RunDirError(f"{path}: not scored yet (no {ITEMS}); run `kardiabench score {path}` first")
    return RunScores.from_rows(read_jsonl_tolerant(items_path), name=path.name, manifest=manifest)

