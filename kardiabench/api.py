"""The Python API (docs/api.md): every `kardiabench` command is a thin wrapper over one function
here, with the same parameters as keywords. The stages are generate_stage.py and score_stage.py.

    generate   the generation stage only              (`kardiabench generate`)
    evaluate   generate, then score                   (`kardiabench run`)
    score      score saved predictions                (`kardiabench score`)
    compare    paired comparison of two runs          (`kardiabench compare`)
    dry_run    what a run would send and cost         (`--dry-run`)
    judge_agreement  judges against human labels      (`kardiabench judge-agreement`)
    judge_audit  the judge reliability card           (`kardiabench judge-audit`)
    pairwise   LLM pairwise preference between runs   (`kardiabench pairwise`)
    write_report, leaderboard_add|build|push|add_pairwise, reproduce_runs, train_model
                 (`kardiabench report`, `leaderboard add|build|push|add-pairwise`, `reproduce`, `train`)
    validate_data, data_stats, show_dialogue, synth_data, list_tasks  (`kardiabench data …`, `tasks`)
    annotate   blinded human A/B pages for two runs   (`kardiabench annotate`)
    annotate_import  unblind and count their labels   (`kardiabench annotate import`)

Every keyword is an option of kardiabench/options.py (docs/options.md): the CLI's flags, the checks
and the docs come from the same definitions. A misspelt keyword raises `UnknownOption` (a TypeError)
naming the closest one.

Nothing here prints: progress lines are records of the `kardiabench` logger (the CLI shows them on
stderr), the progress bar is opt-in (`progress=True`), and results come back as typed objects
(`Run`, `Comparison`, `Plan`). A bad value raises `ParameterError`; bad data, a bad folder or a
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
from pathlib import Path
from typing import Any

from kardiabench.cache import default_cache_path
from kardiabench.fewshot import with_fewshot
from kardiabench.generate_stage import DataSpec, GenerateConfig, tokens_per_s
from kardiabench.generate_stage import generate as generation_stage
from kardiabench.jsonl import read_jsonl_tolerant
from kardiabench.judge_stage import JudgeOptions, saved_judgments
from kardiabench.models import ModelOptions
from kardiabench.models.base import SamplingParams
from kardiabench.options import (
    SIGNATURES,
    JudgeModelOptions,
    JudgeScoringOptions,
    UnknownOption,
    Values,
    takes,
)
from kardiabench.params import ParameterError
from kardiabench.params import gen_kwargs as parse_gen_kwargs
from kardiabench.plan import Plan
from kardiabench.plan import dry_run as plan_dry_run
from kardiabench.runs import ITEMS, Run, RunDir, RunDirError, load_run
from kardiabench.score_stage import ExternalPredictions, score_folder, scoring_folder
from kardiabench.scoring.compare import Comparison
from kardiabench.tables import markdown_table
from kardiabench.tasks import load_task

__all__ = [
    "evaluate",
    "generate",
    "score",
    "compare",
    "dry_run",
    "judge_agreement",
    "judge_audit",
    "pairwise",
    "annotate",
    "annotate_import",
    "load_run",
    "generation_config",
    "validate_data",
    "data_stats",
    "show_dialogue",
    "synth_data",
    "list_tasks",
    "write_report",
    "leaderboard_add",
    "leaderboard_build",
    "leaderboard_push",
    "leaderboard_add_pairwise",
    "reproduce_runs",
    "train_model",
    "JudgeOptions",
    "ParameterError",
    "UnknownOption",
    "Interrupted",
    "Run",
]

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


def _judging(o: Values, **changes: Any) -> JudgeOptions:
    """The judge keywords of a call as the JudgeOptions the scoring stage runs on."""
    return JudgeOptions(**{**o.pick(JudgeModelOptions), **o.pick(JudgeScoringOptions), **changes})


@takes(SIGNATURES["generation_config"])
def generation_config(o: Values) -> GenerateConfig:
    """The generation keywords of `generate`, `evaluate` and `dry_run`, checked and resolved against
    the task (sampling defaults come from the task file). Each is the CLI flag of the same name
    (docs/options.md)."""
    return _generation_config(o)


def _generation_config(o: Values) -> GenerateConfig:
    the_task = load_task(o.task or "kardiabench", list(o.tasks_dir))
    g = the_task.generation
    params = SamplingParams(
        temperature=g.temperature if o.temperature is None else o.temperature,
        top_p=g.top_p if o.top_p is None else o.top_p,
        max_tokens=g.max_tokens if o.max_tokens is None else o.max_tokens,
        seed=g.seed if o.seed is None else o.seed,
        stop=tuple(o.stop or ()),
        top_k=o.top_k,
        min_p=o.min_p,
        repetition_penalty=o.repetition_penalty,
        extra=_gen_kwargs(o.gen_kwargs),
    )
    options = ModelOptions(
        base_url=o.base_url or os.environ.get("OPENAI_BASE_URL"),
        concurrency=o.concurrency,
        timeout=o.timeout,
        api_key_env=o.api_key_env,
        batch_size=o.batch_size,
        dtype=o.dtype,
        device=o.device,
        revision=o.revision,
        add_span_tokens=o.add_span_tokens,
        chat_template=Path(o.chat_template).read_text(encoding="utf-8")
        if o.chat_template
        else None,
        tensor_parallel_size=o.tensor_parallel_size,
        data_parallel_size=o.data_parallel_size,
        prices_file=o.prices,
    )
    spec = DataSpec(
        source=o.data or the_task.data.source,
        split=o.split or the_task.data.split,
        strict=o.strict,
        derive_split=o.derive_split,
        split_seed=o.split_seed,
        limit=o.limit,
    )
    the_task = with_fewshot(
        the_task, spec.source, spec.split, derive_split=o.derive_split, split_seed=o.split_seed
    )
    return GenerateConfig(
        task=the_task,
        model_spec=o.model,
        data=spec,
        output=Path(o.output),
        params=params,
        options=options,
        train_data=o.train_data,
        cache_path=_cache_path(o.cache),
        progress=o.progress,
        overwrite=o.overwrite,
        max_cost_usd=o.max_cost,
        batch=o.batch,
        batch_timeout=o.batch_timeout,
    )


# ----------------------------------------------------------------------------- the API


@takes(SIGNATURES["kb.generate"])
def generate(o: Values) -> Run:
    """The generation stage only (`kardiabench generate`): write OUTPUT/predictions.jsonl and
    run.json, resuming a folder that holds the same run. Keywords: those of `generation_config`.
    The returned Run is not scored; `run.problems` names items that failed for good."""
    cfg = _generation_config(o)
    problems, _ = _generate(cfg)
    return dataclasses.replace(load_run(cfg.output), problems=problems)


@takes(SIGNATURES["kb.evaluate"])
def evaluate(o: Values) -> Run:
    """Generate, score and write OUTPUT/report.html (`kardiabench run`). Keywords: those of `generation_config`, the
    judge keywords (judges=[...], judge_base_url, …), and resamples / bootstrap_seed as for `score`.
    Judges are built and their endpoints probed first, so a judge's missing API key or dead endpoint
    stops the run before anything is sent."""
    judging = _judging(o)
    cfg = _generation_config(o)
    if judging.judges:
        judging.models()
        judging.probe()
    problems, cost = _generate(cfg)
    if cfg.max_cost_usd is not None:  # --max-cost covers generation and judging together
        left = cfg.max_cost_usd - (cost or 0.0)
        judging = dataclasses.replace(
            judging,
            judge_max_cost=left
            if judging.judge_max_cost is None
            else min(left, judging.judge_max_cost),
        )
    run = _scored(
        RunDir(cfg.output),
        None,
        judging,
        cfg.cache_path,
        cfg.progress,
        o.resamples,
        o.bootstrap_seed,
        report=True,
    )
    return dataclasses.replace(run, problems=[*problems, *run.problems])


@takes(SIGNATURES["kb.score"])
def score(o: Values) -> Run:
    """Score saved predictions (`kardiabench score`): a run folder in place, or `predictions` (a
    JSONL of {item_id, raw_output} made elsewhere) against `data`, written to `output` (default:
    beside the file, NAME-scored), over the first `limit` items of the data when given (items
    without a prediction count as "no prediction"). Without `judges`, the verdicts already in the folder are reused
    where they were made for the current predictions. `run.problems` names judges that scored nothing."""
    if o.run_dir is not None and o.output is not None:
        raise ParameterError("output: is for predictions=FILE; a run folder is scored in place")
    if o.limit is not None and o.predictions is None:
        raise ParameterError(
            "limit: is for predictions=FILE; a run folder is scored over the items it holds"
        )
    judging = _judging(o)
    external = None
    if o.predictions is not None:
        external = ExternalPredictions(
            Path(o.predictions),
            o.data,
            o.task,
            tuple(o.tasks_dir),
            o.split,
            o.strict,
            o.derive_split,
            o.split_seed,
            o.limit,
        )
    run = scoring_folder(
        _run_path(o.run_dir) if o.run_dir is not None else None,
        external.path if external else None,
        o.output,
    )
    return _scored(
        run, external, judging, _cache_path(o.cache), o.progress, o.resamples, o.bootstrap_seed
    )


@takes(SIGNATURES["kb.compare"])
def compare(o: Values) -> Comparison:
    """Paired comparison of two scored runs on the items they share (`kardiabench compare`):
    B − A per metric with a cluster-bootstrap CI and Holm-adjusted p-values. `.table` is a
    DataFrame, `.to_dict()` the CLI's JSON. Refuses (ComparisonRefused) runs that differ in data,
    split or judge unless force=True. When only one run was judged, rubric metrics are left out."""
    from kardiabench.scoring import COMPARABILITY_KEYS, compare_runs

    runs = [load_run(_run_path(o.a)), load_run(_run_path(o.b))]
    ra, rb = (_run_scores(run) for run in runs)
    keys, metrics = COMPARABILITY_KEYS, None
    judged = [run.manifest.judge is not None for run in runs]
    if judged[0] != judged[1]:
        log.info("note: only one run was judged; rubric metrics are left out of the comparison")
        keys = tuple(k for k in COMPARABILITY_KEYS if not k.startswith("judge."))
        metrics = ["emotion_accuracy", "format_compliance"]
    return compare_runs(
        ra, rb, force=o.force, keys=keys, metrics=metrics, n_resamples=o.resamples, seed=o.seed
    )


@takes(SIGNATURES["kb.dry_run"])
def dry_run(o: Values) -> Plan:
    """What `evaluate` would send and cost, computed before anything is sent (`--dry-run`): prompt
    tokens counted, completion tokens estimated. Keywords: those of `generation_config` and of
    `JudgeOptions` (judges are estimated, not asked). No API key is needed."""
    judging = _judging(o)
    cfg = _generation_config(o)
    cfg = dataclasses.replace(cfg, options=dataclasses.replace(cfg.options, require_key=False))
    judges = judging.models(require_key=False) if judging.judges else []
    return plan_dry_run(
        cfg,
        log=log.info,
        judges=judges,
        judge_repeats=judging.judge_repeats,
        rubric_path=judging.rubric,
    )


@takes(SIGNATURES["kb.judge_agreement"])
def judge_agreement(o: Values) -> dict[str, Any]:
    """Agreement of each judge in a run folder with human 1–5 labels (`kardiabench
    judge-agreement`): per judge and dimension, Krippendorff's alpha, weighted kappa, Spearman and
    the mean offset (judge − human). `human`: JSONL of item_id and one integer per dimension. A
    pairwise folder (`pairwise`) takes human A/B labels instead (docs/pairwise.md)."""
    from kardiabench.judging import judge_agreement as agreement_with_human_file
    from kardiabench.pairwise_stage import is_pairwise_folder, pairwise_agreement

    # human A/B labels against the pairwise judge (docs/pairwise.md)
    if is_pairwise_folder(_run_path(o.run)):
        return pairwise_agreement(
            o.human, _run_path(o.run), resamples=o.resamples, seed=o.bootstrap_seed
        )
    return agreement_with_human_file(o.human, saved_judgments(_run_path(o.run)))


@takes(SIGNATURES["kb.judge_audit"])
def judge_audit(o: Values):
    """The judge reliability card (`kardiabench judge-audit`, docs/judge-audit.md): the judges score
    the gold response and constructed candidates (constant, stock, padded, off-topic, unsafe,
    injections …) on the same items; `output` gets judge_card.json, .md and .png. Returns a
    `JudgeCard` (`.passed`, `.failed` / `.inconclusive`: the candidates whose check failed / could not
    be decided). An audit too small to decide its checks raises DataError before any request.
    `pairwise`: also the pairwise judge's checks (gold against itself ties; against its padded or
    injected copy gold does not lose), docs/pairwise.md."""
    from kardiabench.audit import run_audit

    judging = _judging(o)
    if not judging.judges:
        raise ParameterError("judges: give at least one judge model spec to audit")
    task = load_task("kardiabench")
    spec = DataSpec(
        o.data or task.data.source,
        o.split or task.data.split,
        strict=o.strict,
        derive_split=o.derive_split,
        split_seed=o.split_seed,
        limit=o.limit,
    )
    return run_audit(
        judging,
        task,
        spec,
        Path(o.output),
        cache_path=_cache_path(o.cache),
        progress=o.progress,
        resamples=o.resamples,
        bootstrap_seed=o.bootstrap_seed,
        pairwise=o.pairwise,
    )


@takes(SIGNATURES["kb.pairwise"])
def pairwise(o: Values):
    """LLM pairwise preference (`kardiabench pairwise`, docs/pairwise.md): on the items both runs
    of a pair answered, the judges say which response is better per dimension ("A" / "B" / "tie"),
    in both orders. Two runs: one pair; more: each against `reference`, or every pair, plus
    Bradley–Terry scores. `output` gets pairwise.json, items.jsonl, summary.md, report.html and the
    verdicts (judgments.jsonl: a second call asks only for what is missing). Returns a
    `PairwiseResult`; runs over other data, task or split raise PairwiseRefused."""
    from kardiabench.pairwise_stage import run_pairwise
    from kardiabench.scoring.rubric import DIMENSIONS

    if len(o.runs) < 2:
        raise ParameterError("runs: give two or more run folders")
    dims = (
        [d.strip() for d in o.dimensions.split(",") if d.strip()]
        if isinstance(o.dimensions, str)
        else o.dimensions
    )
    unknown = [d for d in dims or () if d not in DIMENSIONS]
    if unknown or (dims is not None and not dims):
        raise ParameterError(
            f"dimensions: unknown {', '.join(unknown) or '(none given)'}; choose from {', '.join(DIMENSIONS)}"
        )
    judging = _judging(o)
    if not judging.judges:
        raise ParameterError("judges: give at least one judge model spec")
    ref = _run_path(o.reference) if isinstance(o.reference, Run) else o.reference
    try:
        return run_pairwise(
            [_run_path(r) for r in o.runs],
            o.output,
            judging=judging,
            dimensions=dims,
            reference=ref,
            temperature=o.judge_temperature,
            seed=o.judge_seed,
            cache_path=_cache_path(o.cache),
            progress=o.progress,
            resamples=o.resamples,
            bootstrap_seed=o.bootstrap_seed,
        )
    except KeyboardInterrupt:
        raise Interrupted("verdicts", f"{o.output}/judgments.jsonl") from None


@takes(SIGNATURES["kb.annotate"])
def annotate(o: Values):
    """A blinded human A/B study of two runs (`kardiabench annotate`, docs/annotate.md): `n` items both
    runs answered, drawn with `seed`, sides shuffled per item; writes output/annotator-K.html (one
    offline page per annotator), output/key.json (the sides: keep it from the annotators) and
    output/label-studio/. Returns a `Study`. Runs over different data raise AnnotateError."""
    from kardiabench.annotation import create_study

    return create_study(
        _run_path(o.run_a),
        _run_path(o.run_b),
        o.output,
        n=o.n,
        annotators=o.annotators,
        seed=o.seed,
        rubric=o.rubric,
    )


@takes(SIGNATURES["kb.annotate_import"])
def annotate_import(o: Values):
    """Unblind the annotators' exported labels (page exports and/or a Label Studio JSON export) with
    folder/key.json and count them (`kardiabench annotate import`): per dimension run A's win rate with
    a dialogue-clustered CI and sign test, Fleiss' kappa and Krippendorff's alpha with CIs, the items to
    discuss; `adjudication` (JSONL) settles outcomes no majority decided, and `adjudicate_with` (a
    judge model spec: the paper's supervising LLM) what is still unresolved after it, through the
    pairwise judge (its verdicts in folder/adjudication_judgments.jsonl: a second call asks nothing
    again). Returns `AnnotationResults` and writes human_labels.jsonl, discussion.md, results.json and
    summary.md into `folder`."""
    from kardiabench.annotation import import_labels
    from kardiabench.annotation.adjudicate import LLMAdjudicator

    if not o.files:
        raise ParameterError("files: give at least one exported labels file")
    adjudicator = None
    if o.adjudicate_with is not None:
        adjudicator = LLMAdjudicator(
            _judging(o, judges=[o.adjudicate_with]),
            temperature=o.judge_temperature,
            seed=o.judge_seed,
            cache_path=_cache_path(o.cache),
            progress=o.progress,
        )
    try:
        return import_labels(
            o.folder,
            o.files,
            adjudication=o.adjudication,
            adjudicate_with=adjudicator,
            resamples=o.resamples,
            seed=o.seed,
        )
    except KeyboardInterrupt:
        raise Interrupted("verdicts", f"{o.folder}/adjudication_judgments.jsonl") from None


def _run_path(run: Run | str | Path) -> Path:
    return run.path if isinstance(run, Run) else Path(run)


def _scored(
    run: RunDir,
    external: ExternalPredictions | None,
    judging: JudgeOptions,
    cache_path: Path | None,
    progress: bool,
    resamples: int,
    seed: int,
    report: bool = False,
) -> Run:
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
    speed = tokens_per_s(stats.generated_tokens, stats.wall_s)
    padding = (
        f"; {stats.pad_tokens_saved:,} pad tokens saved by length-ordered batches"
        if stats.pad_tokens_saved
        else ""
    )
    log.info(
        f"generated {stats.done} of {stats.total} requested ({stats.cached} from cache); {stats.usage().text()}; "
        f"{stats.wall_s:.1f} s{f', {speed:,.1f} tokens/s' if speed else ''}{padding} → {run.predictions_path}"
    )
    if not stats.failed:
        return [], stats.cost_usd
    preds = run.read_predictions()
    log.warning(
        _failure_summary(
            stats.failed, [preds[k].error or "" for k in stats.failed_keys if k in preds]
        )
    )
    log.warning(
        f"failed items ({stats.failed}), listed in run.json; run the same command again to retry them:"
    )
    for k in stats.failed_keys[:20]:
        log.warning(f"  {k}")
    return [
        f"{stats.failed} item(s) failed to generate (listed in run.json); generate again to retry them"
    ], stats.cost_usd


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
    if "pairs" in report:
        from kardiabench.pairwise_stage import format_pairwise_agreement

        return format_pairwise_agreement(report)
    rows = []
    for judge, rep in report["judges"].items():
        for dim, m in rep["dimensions"].items():
            cells = [m.get(k) for k in ("alpha", "kappa", "spearman", "mean_offset")]
            rows.append(
                [judge, dim, m.get("n", 0), *("–" if c is None else f"{c:.3f}" for c in cells)]
            )
    headers = [
        "judge",
        "dimension",
        "n",
        "alpha (ordinal)",
        "weighted kappa",
        "Spearman",
        "mean offset",
    ]
    title = (
        f"agreement with human labels ({report['n_human_items']} items in {report['human_file']})"
    )
    return title + "\n" + markdown_table(headers, rows, align="llrrrrr")


# ----------------------------------------------------------------------------- compare


def _run_scores(run: Run):
    """The pure comparison's view of a run read by `load_run` (schema versions checked): its
    per-item rows, and its manifest as the plain values the comparability keys look up."""
    from kardiabench.scoring import RunScores

    items_path = run.path / ITEMS
    if not items_path.exists():
        raise RunDirError(
            f"{run.path}: not scored yet (no {ITEMS}); run `kardiabench score {run.path}` first"
        )
    manifest = run.manifest.model_dump(mode="json", exclude_unset=True)
    return RunScores.from_rows(
        read_jsonl_tolerant(items_path), name=run.path.name, manifest=manifest
    )


# ----------------------------------------------------------------------------- data and tasks


def _load_splits(data: str, split: str | None, **kw: Any) -> list:
    """One LoadResult per split of `data` (all of its splits when `split` is None)."""
    from kardiabench.data import load_dialogues
    from kardiabench.data.load import resolve_split_names

    return [
        load_dialogues(data, s, **kw) for s in ([split] if split else resolve_split_names(data))
    ]


@takes(SIGNATURES["kb.validate_data"])
def validate_data(o: Values) -> list:
    """Every record of every split checked (`kardiabench data validate`): one LoadResult per split,
    its `.problems` as `FILE:LINE: FIELD: message`; `strict`: the first split with a problem raises
    DataError instead."""
    return _load_splits(
        o.data, o.split, strict=o.strict, derive_split=o.derive_split, split_seed=o.split_seed
    )


@takes(SIGNATURES["kb.data_stats"])
def data_stats(o: Values) -> list:
    """The paper's split table (`kardiabench data stats`): one SplitStats per split, invalid
    records left out (counted in a log line)."""
    from kardiabench.data.stats import split_stats

    out = []
    for res in _load_splits(
        o.data, o.split, strict=o.strict, derive_split=o.derive_split, split_seed=o.split_seed
    ):
        if res.skipped:
            log.info(
                f"note: {res.skipped} invalid record(s) in split {res.split} left out (see `kardiabench data validate`)"
            )
        out.append(split_stats(res.split or o.split or "all", res.dialogues))
    return out


@takes(SIGNATURES["kb.show_dialogue"])
def show_dialogue(o: Values):
    """One dialogue of a split by position or id (`kardiabench data show`); LookupError when absent."""
    res = _load_splits(
        o.data, o.split, strict=o.strict, derive_split=o.derive_split, split_seed=o.split_seed
    )[0]
    if o.dialogue_id:
        found = [d for d in res.dialogues if d.dialogue_id == o.dialogue_id]
        if not found:
            raise LookupError(f"no dialogue {o.dialogue_id} in {o.data} ({res.split})")
        return found[0]
    if not 0 <= o.index < len(res.dialogues):
        raise LookupError(f"--index must be in 0..{len(res.dialogues) - 1}")
    return res.dialogues[o.index]


@takes(SIGNATURES["kb.synth_data"])
def synth_data(o: Values):
    """A full-size synthetic dataset for benchmarks (`kardiabench data synth`); its summary."""
    from kardiabench.data.synth import write_dataset

    return write_dataset(o.out, o.dialogues, o.seed)


@takes(SIGNATURES["kb.list_tasks"])
def list_tasks(o: Values) -> list:
    """The tasks on offer (`kardiabench tasks`): the shipped ones and those in `tasks_dir`."""
    from kardiabench.tasks import list_tasks as shipped_and_extra

    return shipped_and_extra(list(o.tasks_dir))


# ----------------------------------------------------------------------------- reports, leaderboards, reproduction, training


@takes(SIGNATURES["kb.write_report"])
def write_report(o: Values) -> Path:
    """DIR/report.html (or `output`): one self-contained page about a scored run (`kardiabench
    report`); `redact` leaves out the data's text. Returns the file written."""
    from kardiabench.report import write_report as render_to

    return render_to(_run_path(o.run_dir), output=o.output, redact=o.redact)


@takes(SIGNATURES["kb.leaderboard_add_pairwise"])
def leaderboard_add_pairwise(o: Values) -> Path:
    """Record a `kardiabench pairwise` folder in the leaderboard (`kardiabench leaderboard
    add-pairwise`): `build` then shows its Bradley–Terry table and plot, apart from absolute scores."""
    from kardiabench.leaderboard.pairwise import add_pairwise

    path = add_pairwise(o.pairwise_dir, o.leaderboard)
    log.info(f"added pairwise results {o.pairwise_dir} → {path}")
    return path


@takes(SIGNATURES["kb.leaderboard_add"])
def leaderboard_add(o: Values) -> list:
    """Record scored run folders in the leaderboard folder (`kardiabench leaderboard add`),
    replacing an earlier entry of the same folder; the `Entry` of each. `display_name` names one run."""
    from kardiabench.leaderboard.entries import add_run

    run_dirs = [o.run_dirs] if isinstance(o.run_dirs, (str, Path, Run)) else list(o.run_dirs)
    if o.display_name is not None and len(run_dirs) != 1:
        raise ParameterError("display_name: names one run; give exactly one run folder")
    entries = []
    for d in run_dirs:
        entries.append(add_run(_run_path(d), o.leaderboard, display_name=o.display_name))
        log.info(
            f"added {entries[-1].model} ({_run_path(d)}) → {o.leaderboard}/entries/{entries[-1].entry_id}.json"
        )
    return entries


@takes(SIGNATURES["kb.leaderboard_build"])
def leaderboard_build(o: Values):
    """Tables (CSV, Markdown, LaTeX), plots and the static site of a leaderboard folder (`kardiabench
    leaderboard build`); a `BuildResult` (`.files`, `.notes`, the notes also logged)."""
    from kardiabench.leaderboard.build import build

    result = build(
        o.leaderboard, redact=o.redact, n_resamples=o.resamples, names=o.names, columns=o.columns
    )
    for note in result.notes:
        log.info(note)
    log.info(
        f"built {len(result.files)} files → {o.leaderboard}/ (open {o.leaderboard}/site/index.html)"
    )
    return result


@takes(SIGNATURES["kb.leaderboard_push"])
def leaderboard_push(o: Values) -> str:
    """Upload a built leaderboard as a Hugging Face dataset repo (`kardiabench leaderboard push`;
    token: HF_TOKEN); the repo's URL."""
    from kardiabench.leaderboard.push import push

    return push(o.leaderboard, o.repo, private=o.private)


@takes(SIGNATURES["kb.reproduce_runs"])
def reproduce_runs(o: Values) -> list[str]:
    """Run a comparison set (`kardiabench reproduce`: `paper` or a YAML file) with `evaluate`, each
    system resumable, then add the scored runs to `leaderboard` and build it; the names of the
    systems that did not finish (the others still ran)."""
    from kardiabench.errors import USER_ERRORS
    from kardiabench.leaderboard.build import build
    from kardiabench.leaderboard.entries import add_run
    from kardiabench.reproduce import load_config, system_options

    doc, output, board = load_config(o.config), Path(o.output), Path(o.leaderboard)
    systems = {
        s.name: system_options(
            s, doc, output=output, limit=o.limit, data=o.data, base_url=o.base_url, cache=o.cache
        )
        for s in doc["systems"]
    }
    log.info(
        f"{doc['path']}: {len(systems)} systems, judge {doc['judge']['spec']}; cost estimate first (nothing is sent):"
    )
    for name, options in systems.items():
        log.info(f"--- {name}")
        try:
            log.info(str(dry_run(**options)))
        except USER_ERRORS as e:
            log.info(f"{name}: no estimate ({e}); it will still be run")
    if o.dry_run:
        return []
    failed = []
    for name, options in systems.items():
        log.info(f"=== {name}: {options['model']} → {options['output']}")
        try:
            problems = evaluate(**options).problems
        except USER_ERRORS as e:
            log.error(f"error: {name}: {e}")
            problems = [str(e)]
        if problems:
            failed.append(name)
    done = [
        output / n
        for n in systems
        if (output / n / "results.json").is_file() and (output / n / "items.jsonl").is_file()
    ]
    for run_dir in done:
        add_run(run_dir, board)
    if done:
        result = build(board)
        log.info(
            f"leaderboard: {len(done)} runs → {board}/site/index.html ({len(result.files)} files)"
        )
    if failed:
        log.info(f"not finished: {', '.join(failed)}; run the same command again to resume them")
    return failed


@takes(SIGNATURES["kb.train_model"])
def train_model(o: Values) -> Path:
    """Train with TRL (`kardiabench train sft|grpo`, docs/training.md): the config read, overridden
    (`overrides`: KEY=VALUE, value read as YAML) and checked, then trained; the checkpoint folder."""
    from kardiabench.train import load_config, train

    return train(load_config(o.config, o.stage, list(o.overrides), o.output_dir))
