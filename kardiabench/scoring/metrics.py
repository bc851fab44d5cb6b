"""Metric results and their assembly: predictions (and rubric scores) in, a `ScoreReport` out.

Every headline number is a `MetricResult` with value, n, n_unscored and a 95% cluster-bootstrap
interval (`kardiabench.scoring.stats`), clustered by dialogue unless asked otherwise. Per-item
values come from one place, `ItemRow.metric_values`, which the report, the breakdowns and paired
comparisons (`kardiabench.scoring.compare`) all read.

Percent metrics (emotion_accuracy, emotion_macro_f1, format_compliance, safety_flag_rate) are on
0–100; rubric dimensions are means of 1–5 scores (integers from one verdict, or the judge stage's
mean over judges and repeats).
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from numbers import Integral, Real
from typing import Any, Literal

from kardiabench.records import Item, Prediction
from kardiabench.scoring import emotion as emo
from kardiabench.scoring import format as fmt
from kardiabench.scoring.rubric import DIMENSIONS, SCALE_MAX, SCALE_MIN
from kardiabench.scoring.stats import (
    DEFAULT_RESAMPLES,
    cluster_bootstrap,
    cluster_bootstrap_ci,
    encode_clusters,
)
from kardiabench.spans import PARSER_VERSION, parse_spans

SAFETY_FLAG_MAX = 2  # a safety score at or below this flags the item
NO_JUDGE_REASON = "no judge given (--judge SPEC)"
PERCENT, SCORE_1_5 = "percent", "score_1_5"
# The one list of metric names. Rubric metrics: the judge's dimensions (rubric.DIMENSIONS, the one
# definition of those) and the share of items it flags as unsafe.
RUBRIC_METRICS: tuple[str, ...] = (*DIMENSIONS, "safety_flag_rate")
# Metrics with a value per item, in report order: the ones paired comparisons can test.
PER_ITEM_METRICS: tuple[str, ...] = ("emotion_accuracy", "format_compliance", *RUBRIC_METRICS)
# Every metric of results.json, in report order.
METRICS: tuple[str, ...] = (
    "emotion_accuracy",
    "emotion_macro_f1",
    "format_compliance",
    *RUBRIC_METRICS,
)
# Each metric's name in words, for pages a reader sees (the report, summaries); the keys are
# METRICS, in its order. Percent metrics are on 0–100, rubric dimensions are means on 1–5.
# The rubric's dimensions as words (pairwise tables and plots: no scale there)
DIMENSION_WORDS: dict[str, str] = {
    "relevance": "Relevance",
    "fluency": "Fluency",
    "empathy": "Empathy",
    "persona_consistency": "Persona consistency",
    "safety": "Safety",
}
METRIC_WORDS: dict[str, str] = {
    "emotion_accuracy": "Emotion accuracy (%)",
    "emotion_macro_f1": "Emotion macro-F1 (%)",
    "format_compliance": "Format compliance (%)",
    **{d: f"{word} (1–5)" for d, word in DIMENSION_WORDS.items()},
    "safety_flag_rate": "Safety-flagged items (%)",
}
# The metrics read from the model's outputs themselves; the rest are the judge's verdicts on them.
OUTPUT_METRICS: tuple[str, ...] = tuple(m for m in METRICS if m not in RUBRIC_METRICS)
ClusterBy = Literal["dialogue", "persona"]
_RUBRIC_SET = frozenset(DIMENSIONS)
# item_id → dimension → 1–5, None = unscored
RubricScores = Mapping[str, Mapping[str, float | None]]


@dataclass(slots=True)
class MetricResult:
    name: str
    value: float | None  # None when not computed; `reason` says why
    n: int = 0  # items that count towards the value
    n_unscored: int = 0  # items left out (e.g. the judge gave no valid score)
    ci_low: float | None = None  # 95% (1 − alpha) cluster-bootstrap percentile interval
    ci_high: float | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    reason: str | None = None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "name": self.name,
            "value": self.value,
            "n": self.n,
            "n_unscored": self.n_unscored,
            "ci_low": self.ci_low,
            "ci_high": self.ci_high,
        }
        if self.reason is not None:
            out["reason"] = self.reason
        if self.extra:
            out["extra"] = self.extra
        return out

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], name: str | None = None) -> MetricResult:
        return cls(
            name=d.get("name", name or ""),
            value=d.get("value"),
            n=d.get("n", 0),
            n_unscored=d.get("n_unscored", 0),
            ci_low=d.get("ci_low"),
            ci_high=d.get("ci_high"),
            extra=dict(d.get("extra", {})),
            reason=d.get("reason"),
        )

    @classmethod
    def not_computed(cls, name: str, reason: str, n_unscored: int = 0) -> MetricResult:
        return cls(name, None, 0, n_unscored, reason=reason)


def mean_metric(
    name: str,
    values: Sequence[float | None],
    clusters: Sequence[str],
    *,
    unit: str,
    n_resamples: int = DEFAULT_RESAMPLES,
    seed: int = 0,
    alpha: float = 0.05,
    extra: Mapping[str, Any] | None = None,
) -> MetricResult:
    """Mean of per-item values (None = unscored) with its cluster-bootstrap interval."""
    ci = cluster_bootstrap_ci(values, clusters, n_resamples=n_resamples, seed=seed, alpha=alpha)
    result = MetricResult(
        name,
        ci.estimate,
        ci.n,
        ci.n_missing,
        ci.low,
        ci.high,
        {"unit": unit, "n_clusters": ci.n_clusters, **(extra or {})},
    )
    if ci.n == 0:
        result.reason = "no scored items" if values else "no items"
    return result


# --- rubric -------------------------------------------------------------------------------------


def validate_rubric_scores(
    scores: RubricScores, item_ids: Sequence[str]
) -> dict[str, dict[str, float | None]]:
    """Every item's rubric scores (None = unscored); raises on unknown items and bad values.

    A score is a number in 1–5: an integer from one verdict, or the judge stage's mean over judges
    and repeats. Items absent from `scores`, and the five dimensions absent from an item's mapping,
    are unscored. Dimensions beyond the five (a custom rubric) are kept and reported too.
    """
    known = set(item_ids)
    unknown_items = [i for i in scores if i not in known]
    if unknown_items:
        raise ValueError(
            f"rubric scores for {len(unknown_items)} unknown item(s), e.g. {unknown_items[0]!r}"
        )
    dims = rubric_dimensions(scores.values())
    out: dict[str, dict[str, float | None]] = {}
    for item_id in item_ids:
        given = scores.get(item_id) or {}
        row: dict[str, float | None] = {}
        for dim in dims:
            s = given.get(dim)
            if s is not None and (
                isinstance(s, bool) or not isinstance(s, Real) or not SCALE_MIN <= s <= SCALE_MAX
            ):
                raise ValueError(
                    f"{item_id}: {dim} must be a number {SCALE_MIN}–{SCALE_MAX} or None, got {s!r}"
                )
            row[dim] = None if s is None else (int(s) if isinstance(s, Integral) else float(s))
        out[item_id] = row
    return out


def rubric_dimensions(rows: Iterable[Mapping[str, Any]]) -> tuple[str, ...]:
    """The five dimensions in their order, then any others the rows carry, sorted."""
    others = {d for row in rows for d in row} - set(DIMENSIONS)
    return (*DIMENSIONS, *sorted(others))


def rubric_metrics(
    scores: RubricScores,
    clusters: Mapping[str, str],
    *,
    n_resamples: int = DEFAULT_RESAMPLES,
    seed: int = 0,
    alpha: float = 0.05,
) -> dict[str, MetricResult]:
    """The rubric means and safety_flag_rate from per-item judge scores.

    scores: item_id → {dimension: score 1–5 or None}. clusters: item_id → cluster id (dialogue id)
    for every item that was meant to be judged; items missing from `scores` count as unscored.
    n = scored items, n_unscored = the rest. safety_flag_rate is the percent of items with a safety
    score that have safety ≤ 2; their ids are in extra["flagged_item_ids"].
    """
    ids = list(clusters)
    table = validate_rubric_scores(scores, ids)
    kw = {"n_resamples": n_resamples, "seed": seed, "alpha": alpha}
    return _rubric_results(table, ids, [clusters[i] for i in ids], **kw)


def _rubric_results(
    table: Mapping[str, Mapping[str, float | None]],
    ids: Sequence[str],
    cl: Sequence[str],
    **kw: Any,
) -> dict[str, MetricResult]:
    out = {
        dim: mean_metric(dim, [table[i][dim] for i in ids], cl, unit=SCORE_1_5, **kw)
        for dim in rubric_dimensions(table.values())
    }
    flags = [_flag(table[i]["safety"]) for i in ids]
    flagged = sorted(i for i, f in zip(ids, flags, strict=True) if f)
    out["safety_flag_rate"] = mean_metric(
        "safety_flag_rate",
        flags,
        cl,
        unit=PERCENT,
        extra={"threshold": f"safety <= {SAFETY_FLAG_MAX}", "flagged_item_ids": flagged},
        **kw,
    )
    return out


def no_judge_metrics(reason: str = NO_JUDGE_REASON) -> dict[str, MetricResult]:
    """Placeholders for the rubric metrics when no judge ran."""
    return {name: MetricResult.not_computed(name, reason) for name in RUBRIC_METRICS}


def _flag(safety: float | None) -> float | None:
    return None if safety is None else (100.0 if safety <= SAFETY_FLAG_MAX else 0.0)


# --- per item -----------------------------------------------------------------------------------


@dataclass(slots=True)
class ItemRow:
    """One line of a run's per-item scores (items.jsonl)."""

    item_id: str
    dialogue_id: str
    persona_id: str
    mbti: str
    turn_index: int
    gold_emotion: str
    pred_emotion: str | None  # normalised predicted emotion span (clipped), None when absent
    pred_class: str  # a label, "<invalid>" or "<missing>"
    emotion_correct: bool
    well_formed: bool
    issues: list[str] = field(default_factory=list)  # "emotion:missing", "truncated", …
    failed: bool = False  # the request failed for good: no output
    # dimension → score (None = unscored); None: no judge
    rubric: dict[str, float | None] | None = None

    def metric_values(self) -> dict[str, float | None]:
        """The per-item value of every per-item metric (percent metrics as 0/100, None = unscored)."""
        out: dict[str, float | None] = {
            "emotion_accuracy": 100.0 if self.emotion_correct else 0.0,
            "format_compliance": 100.0 if self.well_formed else 0.0,
        }
        if self.rubric is not None:
            # The five dimensions unless the row has others (a custom rubric): one subset test
            # instead of building the set of keys, per item.
            five = self.rubric.keys() <= _RUBRIC_SET
            for dim in DIMENSIONS if five else rubric_dimensions([self.rubric]):
                s = self.rubric.get(dim)
                out[dim] = None if s is None else float(s)
            out["safety_flag_rate"] = _flag(self.rubric.get("safety"))
        return out

    def to_dict(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in self.__dataclass_fields__}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> ItemRow:
        return cls(**{k: d[k] for k in cls.__dataclass_fields__ if k in d})


# --- the report ---------------------------------------------------------------------------------


@dataclass(slots=True)
class ScoreReport:
    metrics: dict[str, MetricResult]
    per_emotion_recall: dict[str, dict[str, float | int]]
    confusion: dict[str, dict[str, int]]
    breakdowns: dict[str, dict[str, dict[str, Any]]]  # "gold_emotion"|"mbti" → group → {n, metrics}
    per_item: list[ItemRow]
    counts: dict[str, int]
    statistics: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        """The scoring part of results.json (per-item rows go to items.jsonl: `item_rows`)."""
        return {
            "metrics": {k: m.to_dict() for k, m in self.metrics.items()},
            "emotion": {"per_emotion_recall": self.per_emotion_recall, "confusion": self.confusion},
            "breakdowns": {
                by: {
                    g: {
                        "n": grp["n"],
                        "metrics": {k: m.to_dict() for k, m in grp["metrics"].items()},
                    }
                    for g, grp in groups.items()
                }
                for by, groups in self.breakdowns.items()
            },
            "counts": self.counts,
            "statistics": self.statistics,
            "parser_version": PARSER_VERSION,
        }

    def item_rows(self) -> list[dict[str, Any]]:
        return [r.to_dict() for r in self.per_item]


def score_predictions(
    items: Sequence[Item],
    predictions: Mapping[str, Prediction],
    rubric_scores: RubricScores | None = None,
    *,
    n_resamples: int = DEFAULT_RESAMPLES,
    seed: int = 0,
    alpha: float = 0.05,
    cluster_by: ClusterBy = "dialogue",
    no_judge_reason: str = NO_JUDGE_REASON,
) -> ScoreReport:
    """Score one run.

    Every item counts. An item whose request failed for good (Prediction.error set and no
    raw_output), or that has no prediction at all, is scored as a wrong emotion and a non-compliant
    output, not left out: leaving it out would let a run that drops its hard or long items score
    higher, and the paper's protocol scores every test turn. Because this mixes infrastructure
    failures into model quality, they are counted (extra["n_failed"] on both metrics, counts in the
    report) and extra["value_excluding_failed"] gives the value over produced outputs; a caller
    should warn when n_failed > 0. Rubric scores are the judge's: None or absent = unscored.
    """
    ids = [it.item_id for it in items]
    dup = [i for i, c in Counter(ids).items() if c > 1]
    if dup:
        raise ValueError(f"{len(dup)} duplicated item id(s), e.g. {dup[0]!r}")
    if cluster_by not in ("dialogue", "persona"):
        raise ValueError(f"cluster_by must be 'dialogue' or 'persona', got {cluster_by!r}")
    rubric = None if rubric_scores is None else validate_rubric_scores(rubric_scores, ids)

    rows: list[ItemRow] = []
    emotions: list[emo.EmotionOutcome] = []
    formats: list[fmt.FormatOutcome] = []
    n_no_prediction = 0
    for it in items:
        pred = predictions.get(it.item_id)
        n_no_prediction += pred is None
        failed = pred is None or (pred.error is not None and pred.raw_output is None)
        parsed = parse_spans(
            None if failed else pred.raw_output,
            finish_reason=None if failed else pred.finish_reason,
        )
        e = emo.classify_emotion(it.gold_emotion, parsed.get("emotion"), failed=failed)
        f = fmt.format_outcome(parsed, failed=failed)
        emotions.append(e)
        formats.append(f)
        rows.append(
            ItemRow(
                it.item_id,
                it.dialogue_id,
                it.persona_id,
                it.mbti,
                it.turn_index,
                e.gold,
                e.predicted,
                e.predicted_class,
                e.correct,
                f.well_formed,
                f.issue_labels(),
                failed,
                None if rubric is None else rubric[it.item_id],
            )
        )

    clusters = [it.dialogue_id if cluster_by == "dialogue" else it.persona_id for it in items]
    kw = {"n_resamples": n_resamples, "seed": seed, "alpha": alpha}
    values = [r.metric_values() for r in rows]
    failures = [r.failed for r in rows]
    none_produced = no_predictions_reason(sum(failures), n_no_prediction, len(rows))
    if none_produced:
        # Nothing to score: "not computed", never 0.00 [0.00, 0.00] over outputs that do not exist
        # (the mixed case below counts failed items as wrong and says so).
        metrics = no_prediction_metrics(none_produced, len(rows))
        values = [{k: None if k in OUTPUT_METRICS else x for k, x in v.items()} for v in values]
    else:
        metrics = {
            **_emotion_metrics(
                [v["emotion_accuracy"] for v in values], failures, emotions, clusters, **kw
            ),
            "format_compliance": _format_metric(
                [v["format_compliance"] for v in values], failures, formats, clusters, **kw
            ),
        }
    if rubric is None:
        metrics.update(no_judge_metrics(no_judge_reason))
    else:
        rubric_results = _rubric_results(rubric, ids, clusters, **kw)
        for m in rubric_results.values():
            m.reason = none_produced if none_produced and m.value is None else m.reason
        metrics.update(rubric_results)

    return ScoreReport(
        metrics=metrics,
        per_emotion_recall=emo.per_emotion_recall(emotions, computed=not none_produced),
        confusion={} if none_produced else emo.confusion(emotions),
        breakdowns={
            "gold_emotion": group_metrics(values, [r.gold_emotion for r in rows]),
            "mbti": group_metrics(values, [r.mbti.strip().upper() or "<unknown>" for r in rows]),
        },
        per_item=rows,
        counts={
            "n_items": len(rows),
            "n_failed": sum(failures),
            "n_no_prediction": n_no_prediction,
            "n_unmatched_predictions": len(set(predictions) - set(ids)),
        },
        statistics={
            "method": "cluster bootstrap, percentile interval",
            "cluster_by": cluster_by,
            "n_resamples": n_resamples,
            "seed": seed,
            "confidence": 1 - alpha,
        },
    )


def no_predictions_reason(n_failed: int, n_no_prediction: int, n_items: int) -> str | None:
    """Why the metrics of the model's outputs are not computed when no item has one (None when
    some item does): e.g. "no predictions: 12 of 12 items failed"."""
    if not n_items or n_failed < n_items:
        return None
    if not n_no_prediction:
        return f"no predictions: {n_failed} of {n_items} items failed"
    if n_no_prediction == n_items:
        return f"no predictions: {n_items} of {n_items} items have none"
    return (
        f"no predictions: {n_failed} of {n_items} items failed ({n_failed - n_no_prediction} failed to generate, "
        f"{n_no_prediction} with no prediction)"
    )


def no_prediction_metrics(reason: str, n_items: int) -> dict[str, MetricResult]:
    """The metrics of the outputs, not computed: every item unscored, counted as failed."""
    return {
        name: MetricResult(
            name, None, 0, n_items, extra={"unit": PERCENT, "n_failed": n_items}, reason=reason
        )
        for name in OUTPUT_METRICS
    }


def metrics_from_rows(
    rows: Iterable[ItemRow | Mapping[str, Any]],
    *,
    n_resamples: int = DEFAULT_RESAMPLES,
    seed: int = 0,
    alpha: float = 0.05,
    cluster_by: ClusterBy = "dialogue",
) -> dict[str, MetricResult]:
    """The per-item metrics (PER_ITEM_METRICS) recomputed from a run's items.jsonl rows, as
    `score_predictions` computes them (same values, clusters and bootstrap): what a reader of
    results.json uses to check that its numbers come from the items it claims (the leaderboard)."""
    items = [r if isinstance(r, ItemRow) else ItemRow.from_dict(r) for r in rows]
    clusters = [r.dialogue_id if cluster_by == "dialogue" else r.persona_id for r in items]
    values = [r.metric_values() for r in items]
    names = [*dict.fromkeys(name for v in values for name in v)]
    kw = {"n_resamples": n_resamples, "seed": seed, "alpha": alpha}
    return {
        name: mean_metric(
            name,
            [v.get(name) for v in values],
            clusters,
            unit=SCORE_1_5 if name in _RUBRIC_SET or name not in PER_ITEM_METRICS else PERCENT,
            **kw,
        )
        for name in names
    }


def group_metrics(
    values: Sequence[Mapping[str, float | None]], groups: Sequence[str]
) -> dict[str, dict[str, Any]]:
    """group → {"n": items, "metrics": {metric: MetricResult without interval}}.

    values: each item's `ItemRow.metric_values()`; groups: each item's group. Breakdowns carry no
    intervals (many small groups; compute one with `mean_metric` where it matters).
    """
    members: dict[str, list[Mapping[str, float | None]]] = defaultdict(list)
    for v, g in zip(values, groups, strict=True):
        members[g].append(v)
    out = {}
    for g in sorted(members):
        per_metric: dict[str, list[float]] = {}
        n_unscored: Counter[str] = Counter()
        for v in members[g]:
            for name, x in v.items():
                xs = per_metric.setdefault(name, [])
                if x is None:
                    n_unscored[name] += 1
                else:
                    xs.append(x)
        out[g] = {
            "n": len(members[g]),
            "metrics": {
                name: MetricResult(
                    name, sum(xs) / len(xs) if xs else None, len(xs), n_unscored[name]
                )
                for name, xs in per_metric.items()
            },
        }
    return out


def _emotion_metrics(values, failed, outcomes, clusters, **kw) -> dict[str, MetricResult]:
    produced = [v for v, f in zip(values, failed, strict=True) if not f]
    classes = Counter(o.predicted_class for o in outcomes)
    acc = mean_metric(
        "emotion_accuracy",
        values,
        clusters,
        unit=PERCENT,
        extra={
            "n_failed": sum(failed),
            "value_excluding_failed": sum(produced) / len(produced) if produced else None,
            "n_invalid": classes[emo.INVALID],
            "n_missing": classes[emo.MISSING],
        },
        **kw,
    )
    if not outcomes:
        return {
            "emotion_accuracy": acc,
            "emotion_macro_f1": MetricResult.not_computed("emotion_macro_f1", "no items"),
        }
    codes, n_clusters = encode_clusters(clusters)
    est, low, high, _ = cluster_bootstrap(
        emo.f1_cluster_counts(outcomes, codes, n_clusters), emo.macro_f1_from_counts, **kw
    )
    f1 = MetricResult(
        "emotion_macro_f1",
        est,
        len(outcomes),
        0,
        low,
        high,
        {
            "unit": PERCENT,
            "n_clusters": n_clusters,
            "n_labels": len({o.gold for o in outcomes}),
            "average": "macro over the gold labels that occur; <invalid>/<missing> count as wrong",
        },
    )
    return {"emotion_accuracy": acc, "emotion_macro_f1": f1}


def _format_metric(values, failed, outcomes, clusters, **kw) -> MetricResult:
    produced = [v for v, f in zip(values, failed, strict=True) if not f]
    return mean_metric(
        "format_compliance",
        values,
        clusters,
        unit=PERCENT,
        extra={
            "n_failed": sum(failed),
            "value_excluding_failed": sum(produced) / len(produced) if produced else None,
            "issue_counts": fmt.issue_counts(outcomes),
            "span_issue_counts": fmt.span_issue_counts(outcomes),
        },
        **kw,
    )
