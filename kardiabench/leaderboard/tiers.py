"""Tiers: within a comparability group, models the paired test cannot separate share a tier.

Procedure (docs/leaderboard.md, "Tiers"): sort the group's entries by the ranking metric, best
first. The first entry opens tier 1 and leads it. Each next entry is compared with the leader of the
current tier by `compare_runs` on the ranking metric (paired over the items both scored, cluster
sign-flip permutation test over dialogues). With m = (entries in the group − 1) tests at most, the
p-value is Bonferroni-adjusted (p·m, capped at 1; Holm's first and most conservative step): when
the adjusted p < alpha (0.05) the entry opens a new tier and leads it; otherwise it joins the
current tier (so does an entry the test cannot be made for: no shared scored items). An entry
without a value for the metric gets no tier.
"""

from __future__ import annotations

from collections.abc import Sequence

from kardiabench.jsonl import read_jsonl_tolerant
from kardiabench.leaderboard.entries import Entry
from kardiabench.scoring.compare import RunScores, compare_runs

ALPHA = 0.05


def metric_value(entry: Entry, metric: str) -> float | None:
    return entry.metric(metric).get("value")


def assign_tiers(
    entries: Sequence[Entry],
    metric: str,
    *,
    n_resamples: int = 1000,
    seed: int = 0,
    alpha: float = ALPHA,
) -> tuple[list[Entry], dict[str, int | None], dict[str, float | None]]:
    """(entries sorted best first, entry id → tier (1-based; None without a value), entry id →
    adjusted p of the test that placed it (None for the first entry and entries without a value))."""
    ranked = sorted(
        entries,
        key=lambda e: (
            metric_value(e, metric) is None,
            -(metric_value(e, metric) or 0.0),
            e.entry_id,
        ),
    )
    valued = [e for e in ranked if metric_value(e, metric) is not None]
    tiers: dict[str, int | None] = {e.entry_id: None for e in ranked}
    p_adjusted: dict[str, float | None] = {e.entry_id: None for e in ranked}
    m = max(1, len(valued) - 1)
    leader, tier = None, 0
    for entry in valued:
        if leader is not None:
            p = _paired_p(leader, entry, metric, n_resamples, seed)
            p_adjusted[entry.entry_id] = None if p is None else min(1.0, p * m)
        p = p_adjusted[entry.entry_id]
        if leader is None or (p is not None and p < alpha):
            leader, tier = entry, tier + 1
        tiers[entry.entry_id] = tier
    return ranked, tiers, p_adjusted


def _paired_p(a: Entry, b: Entry, metric: str, n_resamples: int, seed: int) -> float | None:
    """The permutation p-value of B − A on `metric` over the items both scored (entries of one
    group share data, judge and task, so the comparison is made without the manifest check)."""
    scores = [
        RunScores.from_rows(read_jsonl_tolerant(e.items_path), name=e.entry_id, manifest={})
        for e in (a, b)
    ]
    rows = compare_runs(
        *scores, metrics=[metric], n_resamples=n_resamples, seed=seed, force=True
    ).rows
    return rows[0].p_value if rows else None
