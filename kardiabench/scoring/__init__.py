"""Scoring: emotion metrics, format compliance, rubric aggregates, cluster-bootstrap statistics and
paired comparisons. The public API is re-exported here; see each module for the definitions.
"""

from kardiabench.scoring.compare import (
    COMPARABILITY_KEYS,
    Comparison,
    ComparisonRefused,
    MetricComparison,
    RunScores,
    compare_runs,
)
from kardiabench.scoring.metrics import (
    METRICS,
    NO_JUDGE_REASON,
    PER_ITEM_METRICS,
    RUBRIC_METRICS,
    ItemRow,
    MetricResult,
    ScoreReport,
    no_judge_metrics,
    rubric_metrics,
    score_predictions,
)
from kardiabench.scoring.rewards import emotion_reward, format_reward
from kardiabench.scoring.rubric import DIMENSIONS
from kardiabench.scoring.stats import cluster_bootstrap_ci, holm_correction, paired_bootstrap

__all__ = [
    "COMPARABILITY_KEYS",
    "DIMENSIONS",
    "METRICS",
    "NO_JUDGE_REASON",
    "PER_ITEM_METRICS",
    "RUBRIC_METRICS",
    "Comparison",
    "ComparisonRefused",
    "ItemRow",
    "MetricComparison",
    "MetricResult",
    "RunScores",
    "ScoreReport",
    "cluster_bootstrap_ci",
    "compare_runs",
    "emotion_reward",
    "format_reward",
    "holm_correction",
    "no_judge_metrics",
    "paired_bootstrap",
    "rubric_metrics",
    "score_predictions",
]
