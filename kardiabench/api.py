"""The Python API (docs/api.md): every `kardiabench` command is a thin wrapper over one function
here, with the same parameters as keywords. The stages are generate_stage.py and score_stage.py.

    generate   the generation stage only              (`kardiabench generate`)
    evaluate   generate, then score                   (`kardiabench run`)
    score      score saved predictions                (`kardiabench score`)
    compare    paired comparison of two runs          (`kardiabench compare`)
    dry_run    what a run would send and cost         (`--dry-run`)
    judge_agreement  judges against human labels      (`kardiabench judge-agreement`)
    judge_audit  the judge reliability card           (`kardiabench judge-audit`)
    annotate   blinded human A/B pages for two runs   (`kardiabench annotate`)
    annotate_import  unblind and count their labels   (`kardiabench annotate import`)

Nothing here prints: progress lines are records of the `kardiabench` logger (the CLI shows them on
stderr), the progress bar is opt-in (`progress=True`), and results come back as typed objects
(`Run`, `Comparison`, `Plan`). A bad keyword raises `ParameterError`; bad data, a bad folder or a
bad spec raise the errors of `kardiabench.errors.USER_ERRORS`.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import logging
import os
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from kardiabench.cache import default_cache_path
from kardiabench.fewshot import with_fewshot
from kardiabench.generate_stage import DataSpec, GenerateConfig, tokens_per_s
from kardiabench.generate_stage import generate as generation_stage
from kardiabench.jsonl import read_jsonl_tolerant
from kardiabench.models import ModelOptions
from kardiabench.models.base import SamplingParams
from kardiabench.params import BATCH_TIMEOUT_S, ParameterError, check, check_keywords
from kardiabench.params import gen_kwargs as parse_gen_kwargs
from kardiabench.plan import Plan
from kardiabench.plan import dry_run as plan_dry_run
from kardiabench.rundir import ITEMS, RunDir, RunDirError
from kardiabench.runs import Run, load_run
from kardiabench.score_stage import (
    JUDGE_KEYWORDS,
    ExternalPredictions,
    JudgeOptions,
    saved_judgments,
    score_folder,
    scoring_folder,
)
from kardiabench.scoring.compare import Comparison
from kardiabench.tables import markdown_table
from kardiabench.tasks import load_task

__all__ = ["evaluate", "generate", "score", "compare", "dry_run", "judge_agreement", "judge_audit", "annotate", "annotate_import", "load_run", "generation_config",
           "validate_data", "data_stats", "show_dialogue", "synth_data", "list_tasks",
           "JudgeOptions", "ParameterError", "Interrupted", "Run"]  # fmt: skip

log = logging.getLogger("kardiabench")


class Interrupted(KeyboardInterrupt):
    """Ctrl-C during a stage: everything finished is saved in `saved`, and the same call resumes."""

    def __init__(self, what: str, saved: str) -> None:
        super().__init__(f"finished {what} are saved in {saved}")
        self.saved = saved


# ----------------------------------------------------------------------------- parameters


def _cache_path(cache: str | Path | bool | None) -> Path | None:
    """True: the default cache ($KARDIABENCH_CACHE or ~/.cache/kardiabench/cache.sqlite); None or
    False: no cache; a path: that file."""
    if cache is None or cache is False:
        return None
    return default_cache_path() if cache is True else Path(cache)


def _gen_kwargs(value: dict[str, Any] | str | None) -> tuple[tuple[str, Any], ...]:
    """--gen-kwargs as SamplingParams.extra: sorted pairs (a "k=v,…" string is parsed first)."""
    if isinstance(value, str):
        try:
            value = parse_gen_kwargs(value)
        except argparse.ArgumentTypeError as e:
            raise ParameterError(f"gen_kwargs: {e}") from None
    bad = [k for k, v in (value or {}).items() if not isinstance(v, (str, int, float, bool))]
    if bad:
        raise ParameterError(f"gen_kwargs: {bad[0]!r} must be a number, true/false or text")
    return tuple(sorted((value or {}).items()))


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
    stop: Sequence[str] | None = None,
    top_k: int | None = None,
    min_p: float | None = None,
    repetition_penalty: float | None = None,
    gen_kwargs: dict[str, Any] | str | None = None,
    base_url: str | list[str] | None = None,
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
    batch: bool = False,
    batch_timeout: float | None = BATCH_TIMEOUT_S,
    progress: bool = False,
) -> GenerateConfig:
    """The generation keywords of `generate`, `evaluate` and `dry_run`, checked and resolved against
    the task (sampling defaults come from the task file). Each is the CLI flag of the same name."""
    check_keywords(limit=limit, temperature=temperature, top_p=top_p, max_tokens=max_tokens, seed=seed, concurrency=concurrency,
           timeout=timeout, batch_size=batch_size, tensor_parallel_size=tensor_parallel_size, max_cost=max_cost,
           data_parallel_size=data_parallel_size, derive_split=derive_split, split_seed=split_seed, api_key_env=api_key_env,
           top_k=top_k, min_p=min_p, repetition_penalty=repetition_penalty, batch_timeout=batch_timeout)  # fmt: skip
    the_task = load_task(task, list(tasks_dir))
    g = the_task.generation
    params = SamplingParams(
        temperature=g.temperature if temperature is None else temperature,
        top_p=g.top_p if top_p is None else top_p,
        max_tokens=g.max_tokens if max_tokens is None else max_tokens,
        seed=g.seed if seed is None else seed,
        stop=tuple(stop or ()), top_k=top_k, min_p=min_p, repetition_penalty=repetition_penalty,
        extra=_gen_kwargs(gen_kwargs),
    )
    options = ModelOptions(
        base_url=base_url or os.environ.get("OPENAI_BASE_URL"), concurrency=concurrency, timeout=timeout,
        api_key_env=api_key_env, batch_size=batch_size, dtype=dtype, device=device, revision=revision,
        add_span_tokens=add_span_tokens, chat_template=Path(chat_template).read_text(encoding="utf-8") if chat_template else None,
        tensor_parallel_size=tensor_parallel_size, data_parallel_size=data_parallel_size, prices_file=prices,
    )  # fmt: skip
    spec = DataSpec(source=data or the_task.data.source, split=split or the_task.data.split, strict=strict,
                    derive_split=derive_split, split_seed=split_seed, limit=limit)  # fmt: skip
    the_task = with_fewshot(the_task, spec.source, spec.split, derive_split=derive_split, split_seed=split_seed)
    return GenerateConfig(task=the_task, model_spec=model, data=spec, output=Path(output), params=params, options=options,
                          train_data=train_data, cache_path=_cache_path(cache), progress=progress, overwrite=overwrite,
                          max_cost_usd=max_cost, batch=batch, batch_timeout=batch_timeout)  # fmt: skip



# ----------------------------------------------------------------------------- the API


def generate(model: str, output: str | Path, **options: Any) -> Run:
    """The generation stage only (`kardiabench generate`): write OUTPUT/predictions.jsonl and
    run.json, resuming a folder that holds the same run. Keywords: those of `generation_config`.
    The returned Run is not scored; `run.problems` names items that failed for good."""
    cfg = generation_config(model, output, **options)
    problems, _ = _generate(cfg)
    return dataclasses.replace(load_run(cfg.output), problems=problems)


def evaluate(model: str, output: str | Path, *, resamples: int = 1000, bootstrap_seed: int = 0, **options: Any) -> Run:
    """Generate, score and write OUTPUT/report.html (`kardiabench run`). Keywords: those of `generation_config`, those of
    `JudgeOptions` (judges=[...], judge_base_url, …), and resamples / bootstrap_seed as for `score`.
    Judges are built and their endpoints probed first, so a judge's missing API key or dead endpoint
    stops the run before anything is sent."""
    check_keywords(resamples=resamples, bootstrap_seed=bootstrap_seed)
    judging = JudgeOptions(**_take(options, JUDGE_KEYWORDS))
    check_keywords(judge_max_cost=judging.judge_max_cost)
    cfg = generation_config(model, output, **options)
    if judging.judges:
        judging.models()
        judging.probe()
    problems, cost = _generate(cfg)
    if cfg.max_cost_usd is not None:  # --max-cost covers generation and judging together
        left = cfg.max_cost_usd - (cost or 0.0)
        judging = dataclasses.replace(judging, judge_max_cost=left if judging.judge_max_cost is None else min(left, judging.judge_max_cost))
    run = _scored(RunDir(cfg.output), None, judging, cfg.cache_path, cfg.progress, resamples, bootstrap_seed, report=True)
    return dataclasses.replace(run, problems=[*problems, *run.problems])


def score(
    run_dir: Run | str | Path | None = None,
    *,
    predictions: str | Path | None = None,
    data: str | None = None,
    task: str | None = None,
    tasks_dir: Sequence[str] = (),
    split: str | None = None,
    strict: bool = False,
    derive_split: float | None = None,
    split_seed: int = 0,
    limit: int | None = None,
    output: str | Path | None = None,
    judges: Sequence[str] = (),
    judge_base_url: str | list[str] | None = None,
    judge_api_key_env: str = "OPENAI_API_KEY",
    judge_concurrency: int = 16,
    judge_repeats: int = 1,
    judge_max_tokens: int = 1024,
    judge_show_reasoning: bool = False,
    rubric: str | None = None,
    judge_card: str | None = None,
    families: str | None = None,
    judge_pool: str = "mean",
    escalate_to: str | None = None,
    escalate_when: str = "disagree:1",
    judge_batch: bool = False,
    judge_batch_timeout: float | None = BATCH_TIMEOUT_S,
    judge_max_cost: float | None = None,
    judge_timeout: float = 120.0,
    judge_batch_size: int = 8,
    judge_dtype: str = "auto",
    judge_chat_template: str | None = None,
    resamples: int = 1000,
    bootstrap_seed: int = 0,
    cache: str | Path | bool | None = True,
    progress: bool = False,
) -> Run:
    """Score saved predictions (`kardiabench score`): a run folder in place, or `predictions` (a
    JSONL of {item_id, raw_output} made elsewhere) against `data`, written to `output` (default:
    beside the file, NAME-scored), over the first `limit` items of the data when given (items
    without a prediction count as "no prediction"). Without `judges`, the verdicts already in the folder are reused
    where they were made for the current predictions. `run.problems` names judges that scored nothing."""
    if run_dir is not None and output is not None:
        raise ParameterError("output: is for predictions=FILE; a run folder is scored in place")
    check_keywords(derive_split=derive_split, split_seed=split_seed, resamples=resamples, bootstrap_seed=bootstrap_seed,
                   judge_max_cost=judge_max_cost, limit=limit)  # fmt: skip
    if limit is not None and predictions is None:
        raise ParameterError("limit: is for predictions=FILE; a run folder is scored over the items it holds")
    judging = JudgeOptions(
        judges=judges, judge_base_url=judge_base_url, judge_api_key_env=judge_api_key_env,
        judge_concurrency=judge_concurrency, judge_repeats=judge_repeats, judge_max_tokens=judge_max_tokens,
        judge_show_reasoning=judge_show_reasoning, rubric=rubric, judge_card=judge_card, families=families,
        judge_pool=judge_pool, escalate_to=escalate_to, escalate_when=escalate_when, judge_batch=judge_batch,
        judge_batch_timeout=judge_batch_timeout, judge_max_cost=judge_max_cost, judge_timeout=judge_timeout, judge_batch_size=judge_batch_size,
        judge_dtype=judge_dtype, judge_chat_template=judge_chat_template,
    )  # fmt: skip
    external = None
    if predictions is not None:
        external = ExternalPredictions(Path(predictions), data, task, tuple(tasks_dir), split, strict, derive_split, split_seed, limit)
    run = scoring_folder(_run_path(run_dir) if run_dir is not None else None, external.path if external else None, output)
    return _scored(run, external, judging, _cache_path(cache), progress, resamples, bootstrap_seed)


def compare(a: Run | str | Path, b: Run | str | Path, *, force: bool = False, resamples: int = 1000, seed: int = 0) -> Comparison:
    """Paired comparison of two scored runs on the items they share (`kardiabench compare`):
    B − A per metric with a cluster-bootstrap CI and Holm-adjusted p-values. `.table` is a
    DataFrame, `.to_dict()` the CLI's JSON. Refuses (ComparisonRefused) runs that differ in data,
    split or judge unless force=True. When only one run was judged, rubric metrics are left out."""
    from kardiabench.scoring import COMPARABILITY_KEYS, compare_runs

    check_keywords(resamples=resamples, seed=seed)
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
    from kardiabench.judging import judge_agreement as agreement_with_human_file

    return agreement_with_human_file(human, saved_judgments(_run_path(run)))


def judge_audit(
    output: str | Path,
    *,
    data: str | None = None,
    split: str | None = None,
    strict: bool = False,
    derive_split: float | None = None,
    split_seed: int = 0,
    limit: int | None = None,
    judges: Sequence[str] = (),
    judge_base_url: str | list[str] | None = None,
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
):
    """The judge reliability card (`kardiabench judge-audit`, docs/judge-audit.md): the judges score
    the gold response and constructed candidates (constant, stock, padded, off-topic, unsafe,
    injections …) on the same items; `output` gets judge_card.json, .md and .png. Returns a
    `JudgeCard` (`.passed`, `.failed` / `.inconclusive`: the candidates whose check failed / could not
    be decided). An audit too small to decide its checks raises DataError before any request."""
    from kardiabench.audit import run_audit

    check_keywords(derive_split=derive_split, split_seed=split_seed, limit=limit, resamples=resamples, bootstrap_seed=bootstrap_seed)
    judging = JudgeOptions(
        judges=judges, judge_base_url=judge_base_url, judge_api_key_env=judge_api_key_env,
        judge_concurrency=judge_concurrency, judge_repeats=judge_repeats, judge_max_tokens=judge_max_tokens,
        judge_show_reasoning=judge_show_reasoning, rubric=rubric,
    )  # fmt: skip
    if not judging.judges:
        raise ParameterError("judges: give at least one judge model spec to audit")
    task = load_task("kardiabench")
    spec = DataSpec(data or task.data.source, split or task.data.split, strict=strict, derive_split=derive_split,
                    split_seed=split_seed, limit=limit)  # fmt: skip
    return run_audit(judging, task, spec, Path(output), cache_path=_cache_path(cache), progress=progress,
                     resamples=resamples, bootstrap_seed=bootstrap_seed)


def annotate(run_a: Run | str | Path, run_b: Run | str | Path, output: str | Path, *, n: int = 160, annotators: int = 3,
             seed: int = 0, rubric: str | Path | None = None):
    """A blinded human A/B study of two runs (`kardiabench annotate`, docs/annotate.md): `n` items both
    runs answered, drawn with `seed`, sides shuffled per item; writes output/annotator-K.html (one
    offline page per annotator), output/key.json (the sides: keep it from the annotators) and
    output/label-studio/. Returns a `Study`. Runs over different data raise AnnotateError."""
    from kardiabench.annotation import create_study

    check("n", n, "positive_int")
    check("annotators", annotators, "positive_int")
    check("seed", seed, "int")
    return create_study(_run_path(run_a), _run_path(run_b), output, n=n, annotators=annotators, seed=seed, rubric=rubric)


def annotate_import(folder: str | Path, files: Sequence[str | Path], *, adjudication: str | Path | None = None,
                    resamples: int = 1000, seed: int = 0):
    """Unblind the annotators' exported labels (page exports and/or a Label Studio JSON export) with
    folder/key.json and count them (`kardiabench annotate import`): per dimension run A's win rate with
    a dialogue-clustered CI and sign test, Fleiss' kappa and Krippendorff's alpha, the items to
    discuss; `adjudication` (JSONL) settles outcomes no majority decided. Returns `AnnotationResults`
    and writes human_labels.jsonl, discussion.md, results.json and summary.md into `folder`."""
    from kardiabench.annotation import import_labels

    check_keywords(resamples=resamples, seed=seed)
    if not files:
        raise ParameterError("files: give at least one exported labels file")
    return import_labels(folder, files, adjudication=adjudication, resamples=resamples, seed=seed)


def _run_path(run: Run | str | Path) -> Path:
    return run.path if isinstance(run, Run) else Path(run)


def _scored(run: RunDir, external: ExternalPredictions | None, judging: JudgeOptions, cache_path: Path | None,
            progress: bool, resamples: int, seed: int, report: bool = False) -> Run:  # fmt: skip
    try:
        return score_folder(run, external, judging, cache_path, progress, resamples, seed, report)
    except KeyboardInterrupt:
        raise Interrupted("verdicts", f"{run.path}/judgments.jsonl") from None


# ----------------------------------------------------------------------------- generation


def _generate(cfg: GenerateConfig) -> tuple[list[str], float | None]:
    """Run the generation stage and log what it did; the problems (items failed for good) and
    what this command spent (None: unknown price)."""
    try:
        run, stats, _ = asyncio.run(generation_stage(cfg, log=log.info))
    except KeyboardInterrupt:
        raise Interrupted("items", f"{cfg.output}/predictions.jsonl") from None
    cost = "unknown" if stats.cost_usd is None else f"${stats.cost_usd:.4f}"
    speed = tokens_per_s(stats.generated_tokens, stats.wall_s)
    padding = f"; {stats.pad_tokens_saved:,} pad tokens saved by length-ordered batches" if stats.pad_tokens_saved else ""
    log.info(f"generated {stats.done} of {stats.total} requested ({stats.cached} from cache), {stats.failed} failed; "
             f"tokens in {stats.prompt_tokens:,} out {stats.completion_tokens:,}; cost {cost}; {stats.wall_s:.1f} s"
             f"{f', {speed:,.1f} tokens/s' if speed else ''}{padding} → {run.predictions_path}")  # fmt: skip
    if not stats.failed:
        return [], stats.cost_usd
    preds = run.read_predictions()
    log.warning(_failure_summary(stats.failed, [preds[k].error or "" for k in stats.failed_keys if k in preds]))
    log.warning(f"failed items ({stats.failed}), listed in run.json; run the same command again to retry them:")
    for k in stats.failed_keys[:20]:
        log.warning(f"  {k}")
    return [f"{stats.failed} item(s) failed to generate (listed in run.json); generate again to retry them"], stats.cost_usd


def _failure_summary(n_failed: int, errors: list[str]) -> str:
    """`failed: 5 items — most common: "HTTP 500 from …" ×4`: why, in one line."""
    top = Counter(errors).most_common(1)
    if not top:
        return f"failed: {n_failed} items"
    error, n = top[0]
    error = error if len(error) <= 200 else error[:200] + " …"
    return f"failed: {n_failed} items — most common: {json.dumps(error, ensure_ascii=False)} ×{n}"


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



# ----------------------------------------------------------------------------- data and tasks


def _load_splits(data: str, split: str | None, **kw: Any) -> list:
    """One LoadResult per split of `data` (all of its splits when `split` is None)."""
    from kardiabench.data import load_dialogues
    from kardiabench.data.load import resolve_split_names

    return [load_dialogues(data, s, **kw) for s in ([split] if split else resolve_split_names(data))]


def validate_data(data: str = "sample", *, split: str | None = None, derive_split: float | None = None,
                  split_seed: int = 0) -> list:  # fmt: skip
    """Every record of every split checked (`kardiabench data validate`): one LoadResult per split,
    its `.problems` as `FILE:LINE: FIELD: message`."""
    return _load_splits(data, split, derive_split=derive_split, split_seed=split_seed)


def data_stats(data: str = "sample", *, split: str | None = None, strict: bool = False,
               derive_split: float | None = None, split_seed: int = 0) -> list:  # fmt: skip
    """The paper's split table (`kardiabench data stats`): one SplitStats per split, invalid
    records left out (counted in a log line)."""
    from kardiabench.data.stats import split_stats

    out = []
    for res in _load_splits(data, split, strict=strict, derive_split=derive_split, split_seed=split_seed):
        if res.skipped:
            log.info(f"note: {res.skipped} invalid record(s) in split {res.split} left out (see `kardiabench data validate`)")
        out.append(split_stats(res.split or split or "all", res.dialogues))
    return out


def show_dialogue(data: str = "sample", *, split: str | None = None, index: int = 0, dialogue_id: str | None = None,
                  derive_split: float | None = None, split_seed: int = 0):  # fmt: skip
    """One dialogue of a split by position or id (`kardiabench data show`); LookupError when absent."""
    res = _load_splits(data, split, derive_split=derive_split, split_seed=split_seed)[0]
    if dialogue_id:
        found = [d for d in res.dialogues if d.dialogue_id == dialogue_id]
        if not found:
            raise LookupError(f"no dialogue {dialogue_id} in {data} ({res.split})")
        return found[0]
    if not 0 <= index < len(res.dialogues):
        raise LookupError(f"--index must be in 0..{len(res.dialogues) - 1}")
    return res.dialogues[index]


def synth_data(out: str | Path, *, dialogues: int = 22080, seed: int = 0):
    """A full-size synthetic dataset for benchmarks (`kardiabench data synth`); its summary."""
    from kardiabench.data.synth import write_dataset

    return write_dataset(out, dialogues, seed)


def list_tasks(tasks_dir: Sequence[str] = ()) -> list:
    """The tasks on offer (`kardiabench tasks`): the shipped ones and those in `tasks_dir`."""
    from kardiabench.tasks import list_tasks as shipped_and_extra

    return shipped_and_extra(list(tasks_dir))
