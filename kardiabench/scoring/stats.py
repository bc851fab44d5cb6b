"""Cluster-bootstrap confidence intervals, paired comparisons and Holm's correction.

Turns are nested in dialogues (and dialogues in personas): the turns of one dialogue share a
profile, a scenario and a history, so their scores are correlated. Resampling turns as if they
were independent gives intervals that are too narrow. Everything here resamples whole clusters
(by default the caller passes dialogue ids) with replacement: the cluster bootstrap.

Speed: a mean over items is a ratio of sums, so each cluster is reduced once to its sufficient
statistics (sum, count); a resample is then a row of multinomial cluster counts, and all resamples
together are one matrix product (B × C) @ (C × k). 20,290 items in 2,547 clusters with 1,000
resamples take a few milliseconds per metric.

Conventions: seeded (`numpy.random.default_rng(seed)`), 1,000 resamples by default, percentile
intervals at level 1 − alpha (95% by default). The same seed and the same set of clusters give the
same resamples, whatever the order of the items.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

DEFAULT_RESAMPLES = 1000
_CHUNK_CELLS = 4_000_000  # resample-matrix cells per chunk: bounds memory when clusters are many


@dataclass(frozen=True, slots=True)
class BootstrapCI:
    estimate: float | None
    low: float | None  # None when there are fewer than two clusters (no interval can be formed)
    high: float | None
    n: int  # items with a value
    n_missing: int  # items whose value was None or NaN, left out
    n_clusters: int
    n_resamples: int
    seed: int
    alpha: float


@dataclass(frozen=True, slots=True)
class PairedBootstrap:
    """B minus A on the items both have a value for."""

    n: int
    n_clusters: int
    mean_a: float | None
    mean_b: float | None
    delta: float | None
    ci_low: float | None
    ci_high: float | None
    p_value: float | None
    n_resamples: int
    seed: int
    alpha: float

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def as_values(values: Sequence[float | None]) -> np.ndarray:
    """Floats with None turned into NaN (NaN marks "no value": unscored)."""
    return np.fromiter(
        (np.nan if v is None else float(v) for v in values), float, count=len(values)
    )


def encode_clusters(clusters: Sequence[Any]) -> tuple[np.ndarray, int]:
    """Cluster ids → codes 0..C-1 in sorted id order (so codes do not depend on item order)."""
    if len(clusters) == 0:
        return np.zeros(0, dtype=np.intp), 0
    uniques, codes = np.unique(np.asarray(list(clusters)), return_inverse=True)
    return codes.reshape(-1), len(uniques)


def resample_counts(n_clusters: int, n_resamples: int, rng: np.random.Generator) -> np.ndarray:
    """(B × C) float matrix: how often each cluster is drawn in each of B resamples of C clusters."""
    idx = rng.integers(0, n_clusters, size=(n_resamples, n_clusters))
    idx += (np.arange(n_resamples) * n_clusters)[:, None]
    counts = np.bincount(idx.ravel(), minlength=n_resamples * n_clusters)
    return counts.reshape(n_resamples, n_clusters).astype(float)


def cluster_bootstrap(
    per_cluster: np.ndarray,
    statistic: Callable[[np.ndarray], np.ndarray],
    *,
    n_resamples: int = DEFAULT_RESAMPLES,
    seed: int = 0,
    alpha: float = 0.05,
) -> tuple[float, float | None, float | None, np.ndarray]:
    """The general cluster bootstrap for statistics of summed per-cluster counts.

    per_cluster: (C × k) sufficient statistics of each cluster (e.g. sum and count; TP/FP/FN per
    label). statistic: maps (R × k) totals to R values; it is applied to the full-sample totals for
    the estimate and to each resample's totals (counts-weighted sums of clusters) for the
    distribution. Returns (estimate, low, high, distribution); low/high are percentile bounds, None
    with fewer than two clusters.
    """
    per_cluster = np.asarray(per_cluster, dtype=float)
    n_clusters = per_cluster.shape[0]
    estimate = float(statistic(per_cluster.sum(axis=0, keepdims=True))[0])
    if n_clusters < 2:
        return estimate, None, None, np.full(0, np.nan)
    rng = np.random.default_rng(seed)
    chunk = max(1, _CHUNK_CELLS // n_clusters)
    parts = []
    for start in range(0, n_resamples, chunk):
        weights = resample_counts(n_clusters, min(chunk, n_resamples - start), rng)
        parts.append(statistic(weights @ per_cluster))
    dist = np.concatenate(parts)
    low, high = _percentile_interval(dist, alpha)
    return estimate, low, high, dist


def cluster_bootstrap_ci(
    values: Sequence[float | None],
    clusters: Sequence[Any],
    statistic: str = "mean",
    n_resamples: int = DEFAULT_RESAMPLES,
    seed: int = 0,
    alpha: float = 0.05,
) -> BootstrapCI:
    """Mean of `values` with a cluster-bootstrap percentile interval.

    Items whose value is None/NaN are left out (unscored) and so are clusters left without items.
    Each resample draws as many clusters as there are, with replacement, and takes the ratio of
    sums (sum of values / number of items over the drawn clusters): clusters weigh by their size,
    as in the point estimate. A proportion is the mean of 0/1 values; a percentage of 0/100 ones.
    Only statistic="mean" is offered here; other statistics go through `cluster_bootstrap`.
    """
    if statistic != "mean":
        raise ValueError(
            f"statistic must be 'mean' (use cluster_bootstrap for others), got {statistic!r}"
        )
    if len(values) != len(clusters):
        raise ValueError(f"{len(values)} values but {len(clusters)} cluster ids")
    v = as_values(values)
    keep = ~np.isnan(v)
    n = int(keep.sum())
    kept_clusters = [c for c, k in zip(clusters, keep, strict=True) if k]
    codes, n_clusters = encode_clusters(kept_clusters)
    if n == 0:
        return BootstrapCI(None, None, None, 0, len(v), 0, n_resamples, seed, alpha)
    per_cluster = np.column_stack(
        [
            np.bincount(codes, weights=v[keep], minlength=n_clusters),
            np.bincount(codes, minlength=n_clusters),
        ]
    )
    est, low, high, _ = cluster_bootstrap(
        per_cluster, _ratio, n_resamples=n_resamples, seed=seed, alpha=alpha
    )
    return BootstrapCI(est, low, high, n, len(v) - n, n_clusters, n_resamples, seed, alpha)


def paired_bootstrap(
    a_values: Sequence[float | None],
    b_values: Sequence[float | None],
    clusters: Sequence[Any],
    *,
    n_resamples: int = DEFAULT_RESAMPLES,
    seed: int = 0,
    alpha: float = 0.05,
) -> PairedBootstrap:
    """Paired difference of means, B − A, over the items where both runs have a value.

    Interval: cluster bootstrap of the mean paired difference (whole clusters resampled, both runs'
    values kept together), percentile method.

    p-value (two-sided): a cluster sign-flip randomisation test. Under the null hypothesis that A
    and B are exchangeable, swapping the two systems' outputs within a whole cluster is as likely
    as not, so each cluster's summed difference D_c keeps or flips its sign at random:
    T* = Σ_c s_c·D_c / n with s_c = ±1. p = (1 + #{|T*| ≥ |T_obs|}) / (B + 1), which is valid at
    any B (never 0; the smallest value is 1/(B+1)). With C clusters there are only 2^C sign
    patterns, so very few clusters cannot give a small p. The p-value and the interval come from
    different procedures and can, near the boundary, disagree about 0.05.
    """
    if not (len(a_values) == len(b_values) == len(clusters)):
        raise ValueError("a_values, b_values and clusters must have the same length")
    a, b = as_values(a_values), as_values(b_values)
    keep = ~(np.isnan(a) | np.isnan(b))
    n = int(keep.sum())
    if n == 0:
        return PairedBootstrap(0, 0, None, None, None, None, None, None, n_resamples, seed, alpha)
    codes, n_clusters = encode_clusters([c for c, k in zip(clusters, keep, strict=True) if k])
    a, b = a[keep], b[keep]
    per_cluster = np.column_stack(
        [
            np.bincount(codes, weights=b - a, minlength=n_clusters),
            np.bincount(codes, minlength=n_clusters),
        ]
    )
    delta, low, high, _ = cluster_bootstrap(
        per_cluster, _ratio, n_resamples=n_resamples, seed=seed, alpha=alpha
    )
    p = sign_flip_pvalue(per_cluster[:, 0], n, n_resamples=n_resamples, seed=seed)
    return PairedBootstrap(
        n,
        n_clusters,
        float(a.mean()),
        float(b.mean()),
        delta,
        low,
        high,
        p,
        n_resamples,
        seed,
        alpha,
    )


def sign_flip_pvalue(cluster_diffs: np.ndarray, n: int, *, n_resamples: int, seed: int) -> float:
    """Two-sided randomisation p-value of Σ D_c / n against random sign flips of whole clusters."""
    d = np.asarray(cluster_diffs, dtype=float)
    observed = abs(d.sum()) / n
    tol = 1e-12 * max(1.0, float(np.abs(d).sum()) / n)  # float noise must not decide ties
    rng = np.random.default_rng([seed, 1])  # a stream apart from the bootstrap's
    chunk = max(1, _CHUNK_CELLS // max(1, len(d)))
    extreme = 0
    for start in range(0, n_resamples, chunk):
        signs = rng.integers(0, 2, size=(min(chunk, n_resamples - start), len(d))) * 2.0 - 1.0
        extreme += int((np.abs(signs @ d) / n >= observed - tol).sum())
    return (1 + extreme) / (n_resamples + 1)


def clopper_pearson(k: int, n: int, alpha: float = 0.05) -> tuple[float | None, float | None]:
    """The exact (Clopper–Pearson) 1 − alpha interval of a rate from k of n: it never claims more
    than n items can show, e.g. all of 16 flagged gives a lower bound under 0.8. (None, None) for n = 0."""
    if n <= 0:
        return None, None
    from scipy.stats import beta

    low = 0.0 if k == 0 else float(beta.ppf(alpha / 2, k, n - k + 1))
    high = 1.0 if k == n else float(beta.ppf(1 - alpha / 2, k + 1, n - k))
    return low, high


def holm_correction(pvalues: Mapping[str, float | None]) -> dict[str, float | None]:
    """Holm–Bonferroni adjusted p-values (step-down, monotone, capped at 1).

    The family is the non-None p-values; None stays None. For sorted p_(1) ≤ … ≤ p_(m):
    adj_(i) = max_{j ≤ i} min(1, (m − j + 1)·p_(j)). Reject at level α where adj ≤ α.
    """
    present = sorted(((p, k) for k, p in pvalues.items() if p is not None), key=lambda t: t[0])
    m = len(present)
    adjusted: dict[str, float | None] = {k: None for k, p in pvalues.items() if p is None}
    running = 0.0
    for j, (p, key) in enumerate(present):
        running = max(running, min(1.0, (m - j) * p))
        adjusted[key] = running
    return {k: adjusted[k] for k in pvalues}


def _ratio(totals: np.ndarray) -> np.ndarray:
    return totals[:, 0] / totals[:, 1]


def _percentile_interval(dist: np.ndarray, alpha: float) -> tuple[float | None, float | None]:
    finite = dist[np.isfinite(dist)]
    if finite.size == 0:
        return None, None
    low, high = np.percentile(finite, [100 * alpha / 2, 100 * (1 - alpha / 2)])
    return float(low), float(high)
