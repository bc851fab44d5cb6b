"""Paired comparison of two runs on the items they share.

Two runs are compared only when their manifests agree on what makes scores comparable (data,
split, judge, rubric version, history mode, parser version); otherwise `compare_runs` refuses,
unless forced, and then records each difference as a warning. Per metric it reports B − A on the
items both runs scored, a paired cluster-bootstrap interval, a cluster sign-flip p-value and the
Holm-adjusted p-value over the metrics compared (`kardiabench.scoring.stats`). A metric whose
interval rests on fewer than MIN_CLUSTERS clusters is named in a warning.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from kardiabench.scoring.metrics import PER_ITEM_METRICS, ClusterBy, ItemRow
from kardiabench.scoring.stats import DEFAULT_RESAMPLES, holm_correction, paired_bootstrap
from kardiabench.tables import markdown_table

if TYPE_CHECKING:
    import pandas as pd

# Manifest entries that must be equal; a dotted key reads a nested value. The defaults follow
# run.json (kardiabench/generate_stage.py writes data.*, generation.history and parser_version; the judge
# stage writes judge.*). Absent on both sides counts as equal.
COMPARABILITY_KEYS: tuple[str, ...] = (
    "data.source",
    "data.split",
    "generation.history",
    "parser_version",
    "judge.spec",
    "judge.rubric_version",
)
_ABSENT = object()
# Fewer clusters than this and a cluster bootstrap interval is rough (it can only resample a
# handful of units), and a sign-flip p-value cannot get small: compare warns.
MIN_CLUSTERS = 10


class ComparisonRefused(Exception):
    def __init__(self, reasons: Sequence[str]) -> None:
        self.reasons = list(reasons)
        super().__init__(
            "runs are not comparable: " + "; ".join(self.reasons) + " (force to compare anyway)"
        )


class NothingToCompare(ComparisonRefused):
    """A run without a single prediction: its zeros are no measurement, and force cannot change that."""

    def __init__(self, names: Sequence[str]) -> None:
        self.reasons = [
            f"{n}: no item has a prediction (every request failed or had no output)" for n in names
        ]
        Exception.__init__(self, "nothing to compare: " + "; ".join(self.reasons))


@dataclass(slots=True)
class RunScores:
    """One run's per-item metric values and the manifest that says how they were made."""

    name: str
    manifest: dict[str, Any]
    clusters: dict[str, str]  # item_id → cluster id (dialogue id by default)
    # metric → item_id → value
    values: dict[str, dict[str, float | None]] = field(default_factory=dict)
    cluster_by: ClusterBy = "dialogue"  # what a cluster id is, for messages
    n_failed: int = 0  # items without an output (failed for good, or no prediction)

    def per_item_values(self, metric: str) -> dict[str, float | None]:
        return dict(self.values.get(metric, {}))

    @property
    def metrics(self) -> list[str]:
        return list(self.values)

    @property
    def item_ids(self) -> set[str]:
        return set(self.clusters)

    @classmethod
    def from_rows(
        cls,
        rows: Iterable[ItemRow | Mapping[str, Any]],
        *,
        name: str,
        manifest: Mapping[str, Any],
        cluster_by: ClusterBy = "dialogue",
    ) -> RunScores:
        """From per-item rows: `ItemRow`s or the dicts of items.jsonl (`ItemRow.to_dict`)."""
        clusters: dict[str, str] = {}
        values: dict[str, dict[str, float | None]] = {}
        n_failed = 0
        for raw in rows:
            row = raw if isinstance(raw, ItemRow) else ItemRow.from_dict(raw)
            n_failed += row.failed
            clusters[row.item_id] = row.dialogue_id if cluster_by == "dialogue" else row.persona_id
            for metric, v in row.metric_values().items():
                values.setdefault(metric, {})[row.item_id] = v
        return cls(name, dict(manifest), clusters, values, cluster_by, n_failed)


@dataclass(frozen=True, slots=True)
class MetricComparison:
    metric: str
    n_shared: int  # items both runs have a value for
    mean_a: float | None  # over those items, not the runs' headline values
    mean_b: float | None
    n_clusters: int  # clusters those items fall in: what the interval and p-value resample
    delta: float | None  # B − A
    ci_low: float | None
    ci_high: float | None
    p_value: float | None
    p_holm: float | None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(slots=True)
class Comparison:
    a_name: str
    b_name: str
    rows: list[MetricComparison]
    warnings: list[str]
    n_items_a: int
    n_items_b: int
    n_shared_items: int
    statistics: dict[str, Any]

    @property
    def few_clusters(self) -> dict[str, int]:
        """metric → cluster count, for the metrics whose interval rests on fewer than MIN_CLUSTERS."""
        return {r.metric: r.n_clusters for r in self.rows if 0 < r.n_clusters < MIN_CLUSTERS}

    def to_dict(self) -> dict[str, Any]:
        return {
            "a": self.a_name,
            "b": self.b_name,
            "delta": "B - A",
            "n_items_a": self.n_items_a,
            "n_items_b": self.n_items_b,
            "n_shared_items": self.n_shared_items,
            "warnings": self.warnings,
            "few_clusters": self.few_clusters,
            "metrics": {r.metric: r.to_dict() for r in self.rows},
            "statistics": self.statistics,
        }

    def to_markdown(self) -> str:
        headers = ["metric", "n", self.a_name, self.b_name, "Δ (B−A)", "95% CI", "p", "p (Holm)"]
        rows = [
            [
                r.metric,
                r.n_shared,
                _f(r.mean_a),
                _f(r.mean_b),
                _f(r.delta, "+"),
                "–" if r.ci_low is None else f"[{r.ci_low:+.3f}, {r.ci_high:+.3f}]",
                _f(r.p_value),
                _f(r.p_holm),
            ]
            for r in self.rows
        ]
        table = markdown_table(headers, rows)
        return "\n".join(
            [*(f"> warning: {w}" for w in self.warnings), table, "", self.method_note()]
        )

    @property
    def table(self) -> pd.DataFrame:
        """One row per metric (index: metric), the columns of `MetricComparison`."""
        import pandas as pd

        frame = pd.DataFrame.from_records(
            [asdict(r) for r in self.rows], columns=list(MetricComparison.__dataclass_fields__)
        )
        return frame.set_index("metric")

    def method_note(self) -> str:
        """What p and the CI are, and why they can disagree (printed under the table)."""
        st = self.statistics
        unit, b, level = st["clusters"], st["n_resamples"], round(100 * st["confidence"])
        return (
            f"p: two-sided permutation test that swaps A's and B's values within whole {unit}s at random "
            f"(cluster sign-flip, {b} resamples); p (Holm): corrected for the {len(self.rows)} metrics compared. "
            f"{level}% CI: paired cluster bootstrap of Δ over {unit}s, percentile interval ({b} resamples). "
            "They are different procedures, so near the boundary they can disagree: the CI can exclude 0 "
            "while p ≥ 0.05, or include 0 while p < 0.05. With few clusters they can disagree by far: "
            f"with C {unit}s p is at least about 2^(1−C), whatever the CI."
        )


def manifest_differences(
    a: Mapping[str, Any], b: Mapping[str, Any], keys: Sequence[str] = COMPARABILITY_KEYS
) -> list[str]:
    """One line per comparability key whose values differ (absent in both counts as equal)."""
    out = []
    for key in keys:
        va, vb = _lookup(a, key), _lookup(b, key)
        if va != vb:
            out.append(f"{key} differs: A={_show(va)}, B={_show(vb)}")
    return out


def compare_runs(
    a: RunScores,
    b: RunScores,
    *,
    force: bool = False,
    metrics: Sequence[str] | None = None,
    keys: Sequence[str] = COMPARABILITY_KEYS,
    n_resamples: int = DEFAULT_RESAMPLES,
    seed: int = 0,
    alpha: float = 0.05,
) -> Comparison:
    """Compare B against A metric by metric on shared items (see the module docstring).

    Raises ComparisonRefused listing every reason (manifest differences, no shared items) unless
    force=True, and NothingToCompare (whatever force says) when a run has no prediction at all. metrics: default every per-item metric both runs have, in report order. Clusters
    come from A.
    """
    empty = [r.name for r in (a, b) if r.clusters and r.n_failed == len(r.clusters)]
    if empty:
        raise NothingToCompare(empty)
    reasons = manifest_differences(a.manifest, b.manifest, keys)
    shared = sorted(a.item_ids & b.item_ids)
    if not shared:
        reasons.append("no shared items")
    if reasons and not force:
        raise ComparisonRefused(reasons)
    warnings = [f"forced: {r}" for r in reasons]
    if len(shared) < max(len(a.item_ids), len(b.item_ids)):
        warnings.append(
            f"compared on the {len(shared)} shared items (A has {len(a.item_ids)}, B has {len(b.item_ids)})"
        )
    moved = sum(a.clusters[i] != b.clusters[i] for i in shared)
    if moved:
        warnings.append(f"{moved} shared items have different cluster ids in A and B; A's are used")

    if metrics is None:
        common = set(a.metrics) & set(b.metrics)
        metrics = [m for m in PER_ITEM_METRICS if m in common] + sorted(
            common - set(PER_ITEM_METRICS)
        )
    clusters = [a.clusters[i] for i in shared]
    results = {}
    for metric in metrics:
        va, vb = a.per_item_values(metric), b.per_item_values(metric)
        results[metric] = paired_bootstrap(
            [va.get(i) for i in shared],
            [vb.get(i) for i in shared],
            clusters,
            n_resamples=n_resamples,
            seed=seed,
            alpha=alpha,
        )
    holm = holm_correction({m: r.p_value for m, r in results.items()})
    rows = [
        MetricComparison(
            m,
            r.n,
            r.mean_a,
            r.mean_b,
            r.n_clusters,
            r.delta,
            r.ci_low,
            r.ci_high,
            r.p_value,
            holm[m],
        )
        for m, r in results.items()
    ]
    comparison = Comparison(
        a.name,
        b.name,
        rows,
        warnings,
        len(a.item_ids),
        len(b.item_ids),
        len(shared),
        {
            "interval": "paired cluster bootstrap, percentile",
            "p_value": "cluster sign-flip, two-sided",
            "multiple_comparisons": "Holm over the metrics compared",
            "clusters": a.cluster_by,
            "min_clusters": MIN_CLUSTERS,
            "n_resamples": n_resamples,
            "seed": seed,
            "confidence": 1 - alpha,
        },
    )
    warnings.extend(
        f"{m}: the CI and p rest on only {n} {a.cluster_by} cluster(s) (fewer than {MIN_CLUSTERS}); "
        "treat them as rough"
        for m, n in comparison.few_clusters.items()
    )
    return comparison


def _lookup(manifest: Mapping[str, Any], key: str) -> Any:
    if key in manifest:
        return manifest[key]
    node: Any = manifest
    for part in key.split("."):
        if not isinstance(node, Mapping) or part not in node:
            return _ABSENT
        node = node[part]
    return node


def _show(v: Any) -> str:
    return "<absent>" if v is _ABSENT else repr(v)


def _f(x: float | None, sign: str = "") -> str:
    return "–" if x is None else f"{x:{sign}.3f}"
