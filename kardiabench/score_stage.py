"""The scoring stage: a run folder, or predictions made elsewhere, → results.json, items.jsonl and
summary.md. `kardiabench.api.score` is its front door.

Scoring never regenerates: it reads predictions.jsonl (predictions made elsewhere are copied
there, so the folder can be scored again on its own), reloads the items the manifest names (and
checks their fingerprint), judges what has not been judged yet, and replaces the folder's scoring
files as one (`_commit`): results.json, items.jsonl (per-item rows) and summary.md, holding the
folder's lock meanwhile.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path

from kardiabench.data.load import DataError
from kardiabench.generate_stage import (
    DataSpec,
    count_dialogues,
    data_fingerprint,
    load_items,
    task_block,
)
from kardiabench.jsonl import iter_jsonl_objects, write_jsonl_atomic
from kardiabench.judge_stage import (  # noqa: F401  (JudgeOptions, JUDGE_KEYWORDS: also imported from here)
    JUDGE_KEYWORDS,
    JudgeOptions,
    card_verdict,
    judge_block,
    judge_failures,
    judge_stage,
    rubric_report,
)
from kardiabench.records import Item, Prediction
from kardiabench.runs import (
    ITEMS,
    PREDICTIONS,
    REPORT,
    RESULTS,
    SCORED,
    SUMMARY,
    Results,
    Run,
    RunDir,
    RunDirError,
    RunManifest,
    check_schema_versions,
    load_run,
    now,
    provenance,
)
from kardiabench.scoring.metrics import METRIC_WORDS, RUBRIC_METRICS
from kardiabench.spans import PARSER_VERSION
from kardiabench.tables import agreement_tables, markdown_table
from kardiabench.tasks import Task, load_task

log = logging.getLogger("kardiabench")


# ----------------------------------------------------------------------------- inputs


def read_external_predictions(path: Path, model: str = "external") -> dict[str, Prediction]:
    """Predictions made elsewhere: JSONL with `item_id` and `raw_output` (optional `finish_reason`,
    `reasoning`, `error`); raw_output null with an `error` is a failed generation. A bad row (a
    missing field, a second line for one item) is an error naming the file, line and field."""
    from kardiabench.generate_stage import to_prediction
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
            raise DataError(
                f"{path}:{lineno}: item_id: {item_id} already on line {lines[item_id]} (one line per item)"
            )
        if "raw_output" not in row:
            raise DataError(
                f"{path}:{lineno}: raw_output: missing (null with an `error` for a failed generation)"
            )
        raw, error = row["raw_output"], row.get("error")
        if raw is not None and not isinstance(raw, str):
            raise DataError(f"{path}:{lineno}: raw_output: expected a string or null")
        if error is not None and not isinstance(error, str):
            raise DataError(f"{path}:{lineno}: error: expected a string or null")
        out = (
            ModelError(error or "no output")
            if raw is None
            else Generation(raw, row.get("reasoning"), row.get("finish_reason"))
        )
        preds[item_id] = to_prediction(item_id, row.get("model", model), out, None, False)
        lines[item_id] = lineno
    return preds


@dataclass(frozen=True)
class ExternalPredictions:
    """Predictions made elsewhere, and the data and task their item ids come from (`score`)."""

    path: Path
    data: str | None
    task: str | None
    tasks_dir: tuple[str, ...]
    split: str | None
    strict: bool
    derive_split: float | None
    split_seed: int
    limit: int | None = None  # only the first N items of the data (--limit)


def run_inputs(run: RunDir) -> tuple[Task, list[Item], RunManifest]:
    """The task and items a run folder was generated from (its first n_items, the ones the
    fingerprint covers), checked against its fingerprint."""
    manifest = run.read_manifest()
    task, d = manifest.task_config, manifest.data
    spec = DataSpec(
        source=d.source,
        split=d.split,
        derive_split=d.derive_split,
        split_seed=0 if d.split_seed is None else d.split_seed,
        limit=d.n_items,
    )
    items, _ = load_items(task, spec, log=lambda m: None)
    if data_fingerprint(items) != d.fingerprint:
        raise DataError(
            f"{run.path}: the data at {d.source} no longer give the items this run was generated on "
            "(fingerprint differs). Restore the data or generate again."
        )
    return task, items, manifest


def external_inputs(
    run: RunDir, ext: ExternalPredictions
) -> tuple[Task, list[Item], RunManifest, dict[str, Prediction]]:
    """The task, items, manifest and predictions of predictions made elsewhere, checked (the
    folder must not hold another run); nothing is written: `_commit` writes the manifest and the
    folder's copy of the predictions together with the results."""
    if not ext.data:
        raise DataError("--predictions needs --data (the source the item ids come from)")
    task = load_task(ext.task or "kardiabench", list(ext.tasks_dir))
    spec = DataSpec(
        ext.data,
        ext.split or task.data.split,
        strict=ext.strict,
        derive_split=ext.derive_split,
        split_seed=ext.split_seed,
        limit=ext.limit,
    )
    items, loaded = load_items(task, spec, log.info)
    manifest = RunManifest.model_validate(
        {
            "task": task_block(task),
            "task_config": task.model_dump(mode="json"),
            "model_spec": f"external:{ext.path.name}",
            "generation": {"history": task.history},
            "parser_version": PARSER_VERSION,
            "data": {
                "source": spec.source,
                "split": loaded.split,
                "fingerprint": data_fingerprint(items),
                "n_items": len(items),
                "limit": ext.limit,
                "derive_split": ext.derive_split,
                "split_seed": ext.split_seed,
            },
            "provenance": provenance(),
            "created": now(),
        }
    )
    refuse_other_run(run, manifest)
    preds = read_external_predictions(ext.path, manifest.model_spec)
    unknown = set(preds) - {it.item_id for it in items}
    if unknown and ext.limit is not None:  # predictions for items past the limit are left out
        log.info(
            f"--limit {ext.limit}: {len(unknown)} prediction(s) for items outside the first {len(items)} left out"
        )
        preds = {k: v for k, v in preds.items() if k not in unknown}
    elif unknown:
        raise DataError(
            f"{ext.path}: {len(unknown)} item id(s) not in {ext.data} ({loaded.split}), e.g. {sorted(unknown)[0]}"
        )
    return task, items, manifest, preds


def folder_predictions(run: RunDir, manifest: RunManifest) -> dict[str, Prediction]:
    """The predictions a run folder holds. A folder scored from --predictions FILE by a kardiabench
    that kept no copy of FILE has none: an error saying how to score it, rather than every item
    scored as "no prediction"."""
    spec = manifest.model_spec
    if spec.startswith("external:") and not run.predictions_path.exists():
        raise RunDirError(
            f"{run.path}: holds no copy of the predictions it was scored from ({spec.removeprefix('external:')}, "
            f"by an older kardiabench); score that file again: kardiabench score --predictions FILE --data "
            f"{manifest.data.source} --output {run.path}"
        )
    return run.read_predictions()


def refuse_other_run(run: RunDir, manifest: RunManifest) -> None:
    """Refuse to score predictions made elsewhere into a folder that holds a different run: the
    same predictions file name, data source, split and task may be scored there again."""
    if not run.manifest_path.exists():
        return
    old = run.read_manifest()
    keys = {
        "model": lambda m: m.model_spec,
        "task": lambda m: m.task_config.name,
        "data": lambda m: m.data.source,
        "split": lambda m: m.data.split,
    }
    differ = [
        f"{k} {get(old)} → {get(manifest)}" for k, get in keys.items() if get(old) != get(manifest)
    ]
    if differ:
        raise RunDirError(
            f"{run.path} holds a different run ({'; '.join(differ)}). Use another --output (or remove the folder)."
        )


# ----------------------------------------------------------------------------- scoring


def output_folder(
    run_dir: str | Path | None,
    predictions: str | Path | None = None,
    output: str | Path | None = None,
) -> Path | None:
    """The folder `score` writes to: `output`, else the run folder, else FILE-scored beside the
    predictions FILE."""
    if predictions is not None:
        predictions = Path(predictions)
        return (
            Path(output)
            if output is not None
            else predictions.parent / (predictions.stem + "-scored")
        )
    return None if run_dir is None else Path(run_dir)


def scoring_folder(
    run_dir: str | Path | None,
    predictions: str | Path | None = None,
    output: str | Path | None = None,
) -> RunDir:
    """The folder scoring writes to; created for predictions made elsewhere."""
    folder = output_folder(run_dir, predictions, output)
    if folder is None:
        raise RunDirError("give a run folder, or --predictions FILE with --data SOURCE")
    run = RunDir(folder)
    if predictions is not None:
        run.path.mkdir(parents=True, exist_ok=True)
    return run


def score_folder(
    run: RunDir,
    external: ExternalPredictions | None,
    judging: JudgeOptions,
    cache_path: Path | None,
    progress: bool,
    resamples: int,
    seed: int,
    report: bool = False,
) -> Run:
    """Score while holding the folder's lock, so no other process writes it meanwhile (`report`:
    and write report.html for the new results); the folder read back, with `problems` naming the
    judges that scored nothing."""
    with run.lock():
        scored = _score(run, external, judging, cache_path, progress, resamples, seed, report)
        if report:
            from kardiabench.report import write_report

            log.info(f"report → {write_report(run.path)}")
        return scored


def _score(
    run: RunDir,
    external: ExternalPredictions | None,
    judging: JudgeOptions,
    cache_path: Path | None,
    progress: bool,
    resamples: int,
    seed: int,
    report_follows: bool = False,
) -> Run:
    """Score and replace the folder's scoring files (`_commit`): results.json, items.jsonl,
    summary.md; report.html of an earlier scoring is removed unless `report_follows`."""
    from kardiabench.scoring import score_predictions

    # a folder a newer kardiabench wrote: refused before anything is written
    check_schema_versions(run.path)
    if external is not None:
        task, items, manifest, preds = external_inputs(run, external)
        missing_hint = f"{external.path} has no line for them"
    else:
        task, items, manifest = run_inputs(run)
        preds = folder_predictions(run, manifest)
        spec = manifest.model_spec
        missing_hint = (
            f"{spec.removeprefix('external:')} had no line for them"
            if spec.startswith("external:")
            else "run generate again to finish them"
        )
    missing = sum(1 for it in items if it.item_id not in preds)
    if missing == len(items) and items:
        log.warning(
            f"warning: none of the {len(items)} items has a prediction; no metric is computed ({missing_hint})"
        )
    elif missing:
        log.warning(
            f"warning: {missing} of {len(items)} items have no prediction; they count as wrong ({missing_hint})"
        )
    t0 = time.monotonic()
    outcome, note = judge_stage(judging, task, items, preds, run, cache_path, progress)
    judge_wall_s = round(time.monotonic() - t0, 2)
    report = score_predictions(
        items,
        preds,
        outcome.item_scores if outcome else None,
        n_resamples=resamples,
        seed=seed,
        no_judge_reason=note or "",
    )
    scores = report.to_dict()
    if "rubric" not in task.metrics:
        scores["metrics"] = {k: v for k, v in scores["metrics"].items() if k not in RUBRIC_METRICS}
    manifest.judge = judge_block(outcome, judge_wall_s) if outcome else None
    manifest.scored = now()
    results = Results.model_validate(
        {
            "task": task.name,
            "model": manifest.model_spec,
            "data": manifest.data.model_copy(
                update={"n_items": len(items), "n_dialogues": count_dialogues(items)}
            ),
            "history": task.history,
            "judge": manifest.judge,
            **scores,
            "rubric": rubric_report(outcome, note, judging, manifest),
            "generation_stats": manifest.generation_stats,
            "provenance": manifest.provenance,
        }
    )
    removed = _commit(
        run,
        manifest,
        results,
        report.item_rows(),
        format_summary(results),
        preds if external is not None else None,
    )
    if REPORT in removed and not report_follows:
        log.info(
            f"removed {run.path / REPORT} of the earlier scoring; `kardiabench report {run.path}` writes one for these results"
        )
    log.info(f"results → {run.path / RESULTS}")
    failures = judge_failures(outcome) if outcome else []
    for line in failures:
        log.error(f"error: {line}")
    return dataclasses.replace(load_run(run.path), problems=failures)


def _commit(
    run: RunDir,
    manifest: RunManifest,
    results: Results,
    rows: list[dict],
    summary: str,
    preds: dict[str, Prediction] | None,
) -> list[str]:
    """Replace the folder's scoring with a new one, computed and checked in full beforehand: the
    new files are written beside the old ones (NAME.new), the old scoring's files (rundir.SCORED)
    are removed, results.json first, then run.json is written and the new files renamed into
    place, results.json last. However far this gets, the folder never shows old and new files side
    by side: a results.json there is complete and agrees with every other scoring file. `preds`:
    predictions made elsewhere, kept as the folder's predictions.jsonl so that `score DIR` finds
    them again. The names of the old files that the new scoring has no replacement for."""
    staged: dict[str, Path] = {}

    def stage(name: str, write) -> None:
        staged[name] = run.path / f"{name}.new"
        write(staged[name])

    try:
        if preds is not None:
            stage(
                PREDICTIONS,
                lambda p: write_jsonl_atomic(p, [pred.to_dict() for pred in preds.values()]),
            )
        stage(ITEMS, lambda p: write_jsonl_atomic(p, rows))
        stage(SUMMARY, lambda p: p.write_text(summary + "\n", encoding="utf-8"))
        stage(RESULTS, results.write)
        removed = [name for name in SCORED if (run.path / name).exists() and name not in staged]
        run.clear_scored()
        manifest.write(run.manifest_path)
        for name in sorted(staged, key=lambda n: n == RESULTS):
            os.replace(staged[name], run.path / name)
    finally:
        for path in staged.values():  # what a failure left unrenamed
            path.unlink(missing_ok=True)
    return removed


def format_summary(results: Results) -> str:
    """A Markdown table of the headline metrics, each with n, unscored and its 95% CI."""
    d = results.data
    rows = []
    for name, m in results.metrics.items():
        if m.value is None:
            rows.append([name, "not computed", m.reason or "", m.n, m.n_unscored])
            continue
        ci = (
            f"[{m.ci_low:.2f}, {m.ci_high:.2f}]"
            if m.ci_low is not None and m.ci_high is not None
            else "–"
        )
        rows.append([name, f"{m.value:.2f}", ci, m.n, m.n_unscored])
    lines = [
        f"## {results.model} on {results.task} ({d.source}, {d.split or 'whole file'})",
        "",
        f"{d.n_items} items in {d.n_dialogues} dialogues (limit: {d.limit or 'none'})",
        "",
        markdown_table(["metric", "value", "95% CI", "n", "unscored"], rows, align="lrlrr"),
    ]
    stats = results.statistics
    if stats:
        lines += [
            "",
            f"CIs: {stats.get('method', 'cluster bootstrap')}, {stats.get('n_resamples')} resamples, seed {stats.get('seed')}.",
        ]
    rubric = results.rubric or {}
    for judge, family in rubric.get("self_preference_risk") or []:
        lines.append(
            f"Warning: self-preference risk: judge {judge} is of the evaluated model's family ({family})."
        )
    for risk in rubric.get("training_judge_risk") or []:
        lines.append(
            f"Warning: training-judge risk: judge {risk['judge']} is of the family ({risk['family']}) of the judge "
            f"{risk['training_judge']} the model was trained against."
        )
    card = rubric.get("judge_card")
    if card:
        verdict = "passed" if card["passed"] else card_verdict(card)
        lines.append(
            f"Judge card: {', '.join(card['judges'])}, {card['created'][:10]}, {verdict}"
            + (
                ""
                if card.get("same_judges", True)
                else " (audited other judges than the ones used here)"
            )
        )
    fc = results.metrics.get("format_compliance")
    n_failed = fc.extra.get("n_failed") if fc else None
    if fc and n_failed and fc.value is None:
        lines.append(f"Not computed: {fc.reason}; see run.json.")
    elif n_failed:
        lines.append(f"{n_failed} item(s) failed to generate and count as wrong; see run.json.")
    for title, head, rows in agreement_tables(rubric, METRIC_WORDS):
        lines += [
            "",
            f"{title}:",
            "",
            markdown_table(head, rows, align="ll" + "r" * (len(head) - 2)),
        ]
    return "\n".join(lines)
