"""How far judges can be trusted: agreement between judges, with human labels, and with themselves.

* Krippendorff's alpha (ordinal by default; nominal and interval too), implemented here with numpy
  from the coincidence-matrix definition (Krippendorff 2011, "Computing Krippendorff's
  Alpha-Reliability"). Any number of raters, missing values allowed.
* Fleiss' kappa (Fleiss 1971) for nominal labels of a fixed number of raters per item (the human
  A/B annotation's A / B / tie), from the items × categories count table.
* Quadratic-weighted Cohen's kappa (scikit-learn) and Spearman's rho (scipy) for pairs of raters.
* Repeat variance: the same judge asked K times about the same item (seeds seed..seed+K-1).

Which verdict stands for a judge on an item: agreement statistics need one integer per rater and
item, so a judge's value is its scored verdict with the lowest repeat index (repeats are
exchangeable, so this is unbiased; the headline scores still average every repeat). Undefined
statistics (fewer than two paired items, no variation at all) are None, never 0 or 1.
"""

from __future__ import annotations

import itertools
import math
import warnings
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any, Literal, Protocol

import numpy as np

from kardiabench.scoring.rubric import DIMENSIONS, SCALE_MAX, SCALE_MIN, coerce_score

Level = Literal["nominal", "ordinal", "interval"]
# judge → item_id → dimension → integer score
RaterValues = Mapping[str, Mapping[str, Mapping[str, int]]]


class JudgmentLike(Protocol):
    item_id: str
    judge: str
    repeat: int
    status: str
    scores: Mapping[str, int | None]


class HumanLabelError(ValueError):
    """A human label file is malformed; the message names the file, the line and the field."""


# --- the statistics -------------------------------------------------------------------------------


def krippendorff_alpha(
    data: Sequence[Sequence[float | None]] | np.ndarray, level: Level = "ordinal"
) -> float | None:
    """Alpha for a raters × units matrix (None or NaN = no value). None when undefined: fewer than
    two pairable values, or no variation at all (expected disagreement 0).

    Coincidences: each unit with m ≥ 2 values adds every ordered pair of its values, weighted
    1/(m − 1). With n_c the marginals and n their total, alpha = 1 − (n − 1) Σ o_ck δ²_ck /
    Σ n_c n_k δ²_ck. The ordinal δ²_ck = (Σ_{g=c..k} n_g − (n_c + n_k)/2)²: distance in ranks,
    weighted by how many values lie between, so only the order of the categories matters."""
    found = unit_coincidences(data)
    if found is None:
        return None
    cats, per_unit = found
    value = alpha_from_coincidences(per_unit.sum(axis=0, keepdims=True), cats, level)[0]
    return None if np.isnan(value) else float(value)


def unit_coincidences(
    data: Sequence[Sequence[float | None]] | np.ndarray,
) -> tuple[np.ndarray, np.ndarray] | None:
    """(the categories, each unit's coincidence matrix: units × k × k, zero for a unit with fewer
    than two values) of a raters × units matrix; None when it holds no value. Coincidences add up
    over units, so a resample of units (or of clusters of them) is a weighted sum of these."""
    if isinstance(data, np.ndarray):
        arr = data.astype(float)
    else:
        arr = np.array([[np.nan if v is None else float(v) for v in row] for row in data], float)
    if arr.ndim != 2:
        raise ValueError("krippendorff_alpha expects a 2-d raters × units matrix")
    present = ~np.isnan(arr)
    cats = np.unique(arr[present])
    if cats.size == 0:
        return None
    idx = np.searchsorted(cats, np.where(present, arr, cats[0]))
    counts = np.zeros((arr.shape[1], cats.size))
    units, raters = np.nonzero(present.T)
    np.add.at(counts, (units, idx[raters, units]), 1.0)
    m = counts.sum(axis=1)
    w = np.where(m >= 2, 1.0 / np.maximum(m - 1.0, 1.0), 0.0)
    per_unit = counts[:, :, None] * counts[:, None, :] - counts[:, :, None] * np.eye(cats.size)
    return cats, per_unit * w[:, None, None]


def alpha_from_coincidences(o: np.ndarray, cats: np.ndarray, level: Level) -> np.ndarray:
    """Alpha for each of R coincidence matrices (R × k × k) at once; NaN where undefined."""
    n_c = o.sum(axis=2)
    n = n_c.sum(axis=1)
    delta = _distance(cats, n_c, level)
    d_e = (n_c[:, :, None] * n_c[:, None, :] * delta).sum(axis=(1, 2))
    d_o = (o * delta).sum(axis=(1, 2))
    with np.errstate(divide="ignore", invalid="ignore"):
        alpha = 1.0 - (n - 1.0) * d_o / d_e
    return np.where((n > 1) & (d_e > 1e-12), alpha, np.nan)


def fleiss_kappa(counts: Sequence[Sequence[int]] | np.ndarray) -> float | None:
    """Fleiss' kappa for an items × categories table of how many raters chose each category; every
    row must sum to the same number of raters (≥ 2). kappa = (P̄ − P̄e) / (1 − P̄e), with P̄ the mean
    per-item share of agreeing rater pairs and P̄e = Σ p_j² from the category shares p_j. None when
    undefined: no items, or every rating in one category (P̄e = 1)."""
    table = np.asarray(counts, dtype=float)
    if table.ndim != 2 or table.shape[0] == 0:
        return None
    rows, raters = _fleiss_items(table)
    value = _fleiss_from_totals(rows.sum(axis=0, keepdims=True), raters)[0]
    return None if np.isnan(value) else float(value)


def _fleiss_items(table: np.ndarray) -> tuple[np.ndarray, float]:
    """Per item (agreeing rater pairs × 2, count per category), and the raters per item: Fleiss'
    kappa is a function of the rows' sums, so a resample of items is a weighted sum of rows."""
    raters = table.sum(axis=1)
    if not np.all(raters == raters[0]) or raters[0] < 2:
        raise ValueError(
            "fleiss_kappa needs the same number (at least 2) of ratings for every item"
        )
    return np.column_stack([(table * table).sum(axis=1) - raters, table]), float(raters[0])


def _fleiss_from_totals(t: np.ndarray, raters: float) -> np.ndarray:
    """Kappa for each row of summed `_fleiss_items` rows (R × (1 + k)); NaN where undefined.
    P̄ = Σ pairs / (N n (n − 1)) and p_j = n_j / (N n), with N n the ratings of the row."""
    pairs, per_cat = t[:, 0], t[:, 1:]
    ratings = per_cat.sum(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        p_bar = pairs / (ratings * (raters - 1.0))
        p_j = per_cat / ratings[:, None]
        p_e = (p_j * p_j).sum(axis=1)
        kappa = (p_bar - p_e) / (1.0 - p_e)
    return np.where((ratings > 0) & (p_e < 1.0 - 1e-12), kappa, np.nan)


def _distance(cats: np.ndarray, n_c: np.ndarray, level: Level) -> np.ndarray:
    """δ² between categories; `n_c`: (R × k) marginals, the result broadcasts against (R × k × k)."""
    if level == "nominal":
        return 1.0 - np.eye(cats.size)
    if level == "interval":
        return (cats[:, None] - cats[None, :]) ** 2
    if level == "ordinal":
        cum = np.concatenate([np.zeros((n_c.shape[0], 1)), np.cumsum(n_c, axis=1)], axis=1)
        lo = np.minimum.outer(np.arange(cats.size), np.arange(cats.size))
        hi = np.maximum.outer(np.arange(cats.size), np.arange(cats.size))
        between = cum[:, hi + 1] - cum[:, lo]  # Σ_{g=lo..hi} n_g
        return (between - (n_c[:, :, None] + n_c[:, None, :]) / 2.0) ** 2 * (lo != hi)
    raise ValueError(f"level must be nominal, ordinal or interval, got {level!r}")


# --- intervals: the same statistics with dialogue-clustered bootstrap CIs ---------------------------


@dataclass(frozen=True, slots=True)
class AgreementCI:
    """An agreement statistic with its 95% cluster-bootstrap percentile interval (None: undefined,
    or fewer than two clusters). Resamples whose statistic is undefined are left out."""

    value: float | None
    low: float | None
    high: float | None
    n: int  # items (units) it is computed on
    n_clusters: int

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _clustered(
    per_item: np.ndarray,
    clusters: Sequence[Any],
    statistic: Callable[[np.ndarray], np.ndarray],
    n_resamples: int,
    seed: int,
    alpha: float,
) -> AgreementCI:
    """`statistic` of summed per-item rows (items × …), with whole clusters of items resampled."""
    from kardiabench.scoring.stats import cluster_bootstrap, encode_clusters

    n = per_item.shape[0]
    if n == 0:
        return AgreementCI(None, None, None, 0, 0)
    codes, n_clusters = encode_clusters(clusters)
    flat = per_item.reshape(n, -1)
    per_cluster = np.zeros((n_clusters, flat.shape[1]))
    np.add.at(per_cluster, codes, flat)

    def stat(totals: np.ndarray) -> np.ndarray:
        return statistic(totals.reshape(-1, *per_item.shape[1:]))

    est, low, high, _ = cluster_bootstrap(
        per_cluster, stat, n_resamples=n_resamples, seed=seed, alpha=alpha
    )
    if np.isnan(est):
        return AgreementCI(None, None, None, n, n_clusters)
    return AgreementCI(float(est), low, high, n, n_clusters)


def fleiss_kappa_ci(
    counts: Sequence[Sequence[int]] | np.ndarray,
    clusters: Sequence[Any],
    *,
    n_resamples: int = 1000,
    seed: int = 0,
    alpha: float = 0.05,
) -> AgreementCI:
    """Fleiss' kappa of an items × categories count table, its interval resampling the items'
    `clusters` (dialogues): one matrix product for all resamples."""
    table = np.asarray(counts, dtype=float)
    if table.ndim != 2 or table.shape[0] == 0:
        return AgreementCI(None, None, None, 0, 0)
    rows, raters = _fleiss_items(table)
    return _clustered(
        rows, clusters, lambda t: _fleiss_from_totals(t, raters), n_resamples, seed, alpha
    )


def krippendorff_alpha_ci(
    data: Sequence[Sequence[float | None]] | np.ndarray,
    clusters: Sequence[Any],
    level: Level = "ordinal",
    *,
    n_resamples: int = 1000,
    seed: int = 0,
    alpha: float = 0.05,
) -> AgreementCI:
    """Krippendorff's alpha of a raters × units matrix, its interval resampling the units'
    `clusters`: coincidence matrices add up over units, so each resample is a weighted sum.
    n: the pairable units (two or more values)."""
    found = unit_coincidences(data)
    if found is None:
        return AgreementCI(None, None, None, 0, 0)
    cats, per_unit = found
    keep = per_unit.sum(axis=(1, 2)) > 0
    return _clustered(
        per_unit[keep],
        [c for c, k in zip(clusters, keep, strict=True) if k],
        lambda o: alpha_from_coincidences(o, cats, level),
        n_resamples,
        seed,
        alpha,
    )


def cohen_kappa_ci(
    a: Sequence[Any],
    b: Sequence[Any],
    labels: Sequence[Any],
    clusters: Sequence[Any],
    *,
    n_resamples: int = 1000,
    seed: int = 0,
    alpha: float = 0.05,
) -> AgreementCI:
    """Unweighted Cohen's kappa of two raters over nominal `labels`, its interval resampling the
    items' clusters (each item's confusion-matrix cell summed per cluster)."""
    k = len(labels)
    index = {v: i for i, v in enumerate(labels)}
    cells = np.zeros((len(a), k, k))
    cells[np.arange(len(a)), [index[x] for x in a], [index[y] for y in b]] = 1.0

    def kappa(m: np.ndarray) -> np.ndarray:
        n = m.sum(axis=(1, 2))
        with np.errstate(divide="ignore", invalid="ignore"):
            p_o = np.trace(m, axis1=1, axis2=2) / n
            p_e = (m.sum(axis=2) * m.sum(axis=1)).sum(axis=1) / (n * n)
            out = (p_o - p_e) / (1.0 - p_e)
        return np.where((n > 0) & (p_e < 1.0 - 1e-12), out, np.nan)

    return _clustered(cells, clusters, kappa, n_resamples, seed, alpha)


def agreement_rate_ci(
    a: Sequence[Any],
    b: Sequence[Any],
    clusters: Sequence[Any],
    *,
    n_resamples: int = 1000,
    seed: int = 0,
    alpha: float = 0.05,
) -> AgreementCI:
    """Percent of items on which the two raters give the same label, with its clustered interval."""
    same = np.array([[100.0 * (x == y), 1.0] for x, y in zip(a, b, strict=True)]).reshape(-1, 2)
    return _clustered(same, clusters, lambda t: t[:, 0] / t[:, 1], n_resamples, seed, alpha)


def quadratic_kappa(a: Sequence[int], b: Sequence[int]) -> float | None:
    """Cohen's kappa with quadratic weights over the fixed labels 1..5; None when undefined."""
    if len(a) < 2:
        return None
    from sklearn.metrics import cohen_kappa_score

    with warnings.catch_warnings(), np.errstate(divide="ignore", invalid="ignore"):
        warnings.simplefilter("ignore")
        k = cohen_kappa_score(
            a, b, labels=list(range(SCALE_MIN, SCALE_MAX + 1)), weights="quadratic"
        )
    return None if not math.isfinite(k) else float(k)


def spearman(a: Sequence[float], b: Sequence[float]) -> float | None:
    if len(a) < 2:
        return None
    from scipy.stats import spearmanr

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        rho = spearmanr(a, b).statistic
    return None if rho is None or not math.isfinite(rho) else float(rho)


@dataclass(frozen=True, slots=True)
class PairAgreement:
    """Rater b against rater a on the items both scored (offset = mean of b − a)."""

    n: int
    alpha: float | None  # Krippendorff, ordinal
    kappa: float | None  # Cohen, quadratic weights
    spearman: float | None
    mean_offset: float | None
    exact: float | None  # share of items with the same score
    within_one: float | None  # share with |b − a| ≤ 1

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def pair_agreement(a: Sequence[int], b: Sequence[int]) -> PairAgreement:
    if len(a) != len(b):
        raise ValueError("pair_agreement needs two equally long sequences")
    n = len(a)
    if n == 0:
        return PairAgreement(0, None, None, None, None, None, None)
    x, y = np.asarray(a, float), np.asarray(b, float)
    return PairAgreement(
        n=n,
        alpha=krippendorff_alpha(np.vstack([x, y]), "ordinal"),
        kappa=quadratic_kappa(list(a), list(b)),
        spearman=spearman(x, y),
        mean_offset=float((y - x).mean()),
        exact=float((x == y).mean()),
        within_one=float((np.abs(y - x) <= 1).mean()),
    )


# --- from judgments -------------------------------------------------------------------------------


def first_scored(judgments: Iterable[JudgmentLike]) -> dict[str, dict[str, dict[str, int]]]:
    """judge → item → {dimension: score}, from each judge's scored verdict with the lowest repeat."""
    best: dict[tuple[str, str], JudgmentLike] = {}
    for j in judgments:
        if j.status != "scored":
            continue
        key = (j.judge, j.item_id)
        if key not in best or j.repeat < best[key].repeat:
            best[key] = j
    out: dict[str, dict[str, dict[str, int]]] = defaultdict(dict)
    for (judge, item), j in best.items():
        out[judge][item] = {d: s for d, s in j.scores.items() if s is not None}
    return dict(out)


def inter_judge_agreement(values: RaterValues, dims: Sequence[str] = DIMENSIONS) -> dict[str, Any]:
    """Per dimension: alpha over all judges together, and every pair's statistics. Empty when
    fewer than two judges."""
    judges = sorted(values)
    if len(judges) < 2:
        return {}
    items = sorted({i for j in judges for i in values[j]})
    out: dict[str, Any] = {}
    for dim in dims:
        matrix = [[values[j].get(i, {}).get(dim) for i in items] for j in judges]
        n_units = sum(
            1 for col in zip(*matrix, strict=True) if sum(v is not None for v in col) >= 2
        )
        pairs = []
        for ja, jb in itertools.combinations(judges, 2):
            a, b = _paired(values[ja], values[jb], dim)
            pairs.append({"a": ja, "b": jb, **pair_agreement(a, b).to_dict()})
        out[dim] = {
            "alpha": krippendorff_alpha(matrix, "ordinal"),
            "n_items": n_units,
            "pairs": pairs,
        }
    return out


def _paired(
    a: Mapping[str, Mapping[str, int]], b: Mapping[str, Mapping[str, int]], dim: str
) -> tuple[list[int], list[int]]:
    xs, ys = [], []
    for item in sorted(set(a) & set(b)):
        va, vb = a[item].get(dim), b[item].get(dim)
        if va is not None and vb is not None:
            xs.append(va)
            ys.append(vb)
    return xs, ys


def repeat_variance(
    judgments: Iterable[JudgmentLike], dims: Sequence[str] = DIMENSIONS
) -> dict[str, dict[str, Any]]:
    """judge → dimension → mean within-item variance of the scored repeats (sample variance,
    ddof=1, over items with ≥ 2 scored repeats), their number, and the share of those items whose
    repeats do not all agree. Empty for a judge with no item judged twice."""
    groups: dict[str, dict[str, list[Mapping[str, int | None]]]] = defaultdict(
        lambda: defaultdict(list)
    )
    for j in judgments:
        if j.status == "scored":
            groups[j.judge][j.item_id].append(j.scores)
    out: dict[str, dict[str, Any]] = {}
    for judge, by_item in groups.items():
        per_dim: dict[str, Any] = {}
        for dim in dims:
            variances, flips = [], 0
            for verdicts in by_item.values():
                vals = [v[dim] for v in verdicts if v.get(dim) is not None]
                if len(vals) >= 2:
                    variances.append(float(np.var(vals, ddof=1)))
                    flips += len(set(vals)) > 1
            if variances:
                per_dim[dim] = {
                    "mean_variance": float(np.mean(variances)),
                    "n_items": len(variances),
                    "disagreement_rate": flips / len(variances),
                }
        if per_dim:
            out[judge] = per_dim
    return out


# --- judge against human labels ---------------------------------------------------------------------


def human_labels(
    rows: Iterable[tuple[int, Mapping[str, Any]]], source: str, dims: Sequence[str] = DIMENSIONS
) -> dict[str, dict[str, int]]:
    """Human labels from (line, row) pairs, one row per item: {"item_id": ..., "empathy": 4, ...}.
    Any subset of the dimensions may be given (null = not labelled); other fields are ignored.
    Scores follow the judge's rule: integers 1–5, a digit string like "4" accepted, 3.5 / 0 / 6 /
    true rejected. A bad row raises HumanLabelError naming `source`, the line and the field."""
    labels: dict[str, dict[str, int]] = {}
    first_line: dict[str, int] = {}
    for lineno, row in rows:
        item = row.get("item_id")
        if not isinstance(item, str) or not item:
            raise HumanLabelError(f"{source}:{lineno}: field 'item_id': must be a non-empty string")
        if item in first_line:
            raise HumanLabelError(
                f"{source}:{lineno}: field 'item_id': {item!r} already labelled on line {first_line[item]} (one row per item)"
            )
        first_line[item] = lineno
        scores: dict[str, int] = {}
        for dim in dims:
            if row.get(dim) is None:
                continue
            try:
                scores[dim] = coerce_score(row[dim])
            except ValueError as e:
                raise HumanLabelError(f"{source}:{lineno}: field '{dim}': {e}") from None
        labels[item] = scores
    return labels


def agreement_with_humans(
    human: Mapping[str, Mapping[str, int]], judgments: Any, dims: Sequence[str] = DIMENSIONS
) -> dict[str, Any]:
    """Agreement of each judge with human 1–5 labels (item → dimension → score), per dimension
    (judge = b, human = a, so the offset is judge − human). `judgments`: a JudgeOutcome or any
    iterable of judgments."""
    rows = getattr(judgments, "judgments", judgments)
    values = first_scored(rows)
    report: dict[str, Any] = {"n_human_items": len(human), "judges": {}}
    for judge in sorted(values):
        per_dim = {}
        for dim in dims:
            a, b = _paired(human, values[judge], dim)
            per_dim[dim] = pair_agreement(a, b).to_dict()
        report["judges"][judge] = {
            "n_matched_items": len(set(human) & set(values[judge])),
            "dimensions": per_dim,
        }
    return report
