"""Pairwise preference statistics: win/tie/loss rates, position fairness, length control and
Bradley–Terry scores. Pure: outcomes in, typed results out. Shared by the LLM pairwise judge
(`kardiabench pairwise`) and the human A/B annotation (`kardiabench annotate import`).

An outcome is always said from A's side of the pair of runs (A = the first run named by the user,
whatever side it was shown on): "A" (A preferred), "B" (B preferred), "tie", or None (no usable
verdict: unscored, left out of every rate and counted). Intervals are dialogue-clustered
bootstrap percentile intervals (`stats.cluster_bootstrap`): the turns of one dialogue are not
independent.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any, Literal

import numpy as np

from kardiabench.scoring.stats import (
    DEFAULT_RESAMPLES,
    cluster_bootstrap,
    encode_clusters,
    resample_counts,
)

Outcome = Literal["A", "B", "tie"]
OUTCOMES: tuple[Outcome, ...] = ("A", "B", "tie")
POINTS = {"A": 1.0, "tie": 0.5, "B": 0.0}  # run A's share of one outcome: a tie is half


def flip(outcome: Outcome | None) -> Outcome | None:
    """The same verdict said from the other side: A ↔ B, tie and None unchanged."""
    return {"A": "B", "B": "A"}.get(outcome, outcome)  # type: ignore[return-value]


def combine_orders(a_first: Outcome | None, b_first: Outcome | None) -> Outcome | None:
    """One outcome from the two orders a pair was judged in, both given as shown to the judge
    ("A" = the response shown first). The second verdict is mapped back (flipped) to the runs'
    sides; a verdict that changes with the order is a tie; None when either order has none."""
    if a_first is None or b_first is None:
        return None
    back = flip(b_first)
    return a_first if a_first == back else "tie"


@dataclass(frozen=True, slots=True)
class PositionStats:
    """How much the order of presentation decides a judge's verdict, over pairs judged both ways."""

    n_pairs: int  # pairs with a verdict in both orders
    n_consistent: int  # same preference (or tie) in both orders
    consistency_rate: float | None  # percent
    n_decisive: int  # verdicts (both orders counted) that chose a side
    # percent of decisive verdicts that chose the response shown first
    first_shown_rate: float | None
    first_position_bias: float | None  # first_shown_rate − 50: > 0 favours the first position

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def position_stats(pairs: Sequence[tuple[Outcome | None, Outcome | None]]) -> PositionStats:
    """`pairs`: (verdict with A shown first, verdict with B shown first), both as shown."""
    both = [(x, y) for x, y in pairs if x is not None and y is not None]
    consistent = sum(x == flip(y) for x, y in both)
    decisive = [v for pair in both for v in pair if v != "tie"]
    first = sum(v == "A" for v in decisive)
    rate = 100.0 * first / len(decisive) if decisive else None
    return PositionStats(
        n_pairs=len(both),
        n_consistent=consistent,
        consistency_rate=100.0 * consistent / len(both) if both else None,
        n_decisive=len(decisive),
        first_shown_rate=rate,
        first_position_bias=None if rate is None else rate - 50.0,
    )


@dataclass(frozen=True, slots=True)
class Rate:
    """A percentage with its cluster-bootstrap interval."""

    value: float | None
    low: float | None
    high: float | None


@dataclass(frozen=True, slots=True)
class WinRate:
    """A against B on one dimension. win_rate counts a tie as half a win (as AlpacaEval and
    Arena-Hard do); wins/ties/losses are also given as shares, each with its interval."""

    n: int  # pairs with an outcome
    n_unscored: int  # pairs without one (left out)
    n_clusters: int
    wins: int
    ties: int
    losses: int
    win_rate: Rate
    win_share: Rate
    tie_share: Rate
    loss_share: Rate
    sign_test_p: float | None  # two-sided exact binomial test of wins vs losses (ties dropped)
    n_resamples: int
    seed: int
    alpha: float

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def win_rate(
    outcomes: Sequence[Outcome | None],
    clusters: Sequence[Any],
    *,
    n_resamples: int = DEFAULT_RESAMPLES,
    seed: int = 0,
    alpha: float = 0.05,
) -> WinRate:
    """Win / tie / loss rates of A over B with dialogue-clustered bootstrap intervals and a sign test."""
    if len(outcomes) != len(clusters):
        raise ValueError(f"{len(outcomes)} outcomes but {len(clusters)} cluster ids")
    bad = {o for o in outcomes if o is not None and o not in POINTS}
    if bad:
        raise ValueError(f"outcomes must be 'A', 'B', 'tie' or None, got {sorted(map(repr, bad))}")
    kept = [(o, c) for o, c in zip(outcomes, clusters, strict=True) if o is not None]
    counts = {o: sum(k == o for k, _ in kept) for o in OUTCOMES}
    n = len(kept)
    codes, n_clusters = encode_clusters([c for _, c in kept])
    # per cluster: score sum, wins, ties, losses, n; each rate is a ratio of sums over clusters
    columns = [
        [POINTS[o] for o, _ in kept],
        *([float(k == o) for k, _ in kept] for o in ("A", "tie", "B")),
    ]
    per_cluster = (
        np.column_stack(
            [
                np.bincount(codes, weights=np.asarray(col, dtype=float), minlength=n_clusters)
                for col in columns
            ]
            + [np.bincount(codes, minlength=n_clusters).astype(float)]
        )
        if n
        else np.zeros((0, 5))
    )

    def rate(column: int) -> Rate:
        if n == 0:
            return Rate(None, None, None)
        est, low, high, _ = cluster_bootstrap(
            per_cluster,
            lambda t: 100.0 * t[:, column] / t[:, 4],
            n_resamples=n_resamples,
            seed=seed,
            alpha=alpha,
        )
        return Rate(est, low, high)

    decisive = counts["A"] + counts["B"]
    p = None
    if decisive:
        from scipy.stats import binomtest

        p = float(binomtest(counts["A"], decisive, 0.5).pvalue)
    return WinRate(
        n=n,
        n_unscored=len(outcomes) - n,
        n_clusters=n_clusters,
        wins=counts["A"],
        ties=counts["tie"],
        losses=counts["B"],
        win_rate=rate(0),
        win_share=rate(1),
        tie_share=rate(2),
        loss_share=rate(3),
        sign_test_p=p,
        n_resamples=n_resamples,
        seed=seed,
        alpha=alpha,
    )


# ----------------------------------------------------------------------------- length control

# item-weight cells per chunk of resamples: bounds memory on full-size runs
_CHUNK_CELLS = 2_000_000


def _item_weights(codes: np.ndarray, n_clusters: int, n_resamples: int, seed: int):
    """The cluster bootstrap's resamples as per-item weights, (r × n) chunks of at most
    _CHUNK_CELLS cells: the fits below need them per item, not per cluster."""
    rng = np.random.default_rng(seed)
    chunk = max(1, _CHUNK_CELLS // max(1, len(codes)))
    for start in range(0, n_resamples, chunk):
        yield resample_counts(n_clusters, min(chunk, n_resamples - start), rng)[:, codes]


@dataclass(frozen=True, slots=True)
class LengthControlled:
    """A's win rate had both responses been of equal length (AlpacaEval's length-controlled win
    rate): a logistic regression of P(A preferred) on tanh(length difference / its std); the
    rate is the fit's prediction at difference 0. `length_coef` > 0: the judge prefers the longer."""

    n: int
    win_rate: Rate
    length_coef: float | None
    mean_length_difference: float | None  # A − B, in characters

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


_MAX_LOGIT = 30.0  # |intercept| and |slope| bound: P = 1 − 1e-13, "always"


def _logistic_fit(
    x: np.ndarray, y: np.ndarray, weights: np.ndarray, iterations: int = 50
) -> np.ndarray:
    """Intercept and slope of an L2-penalised (on the slope, C=1 as scikit-learn's default) logistic
    regression, fitted by Newton's method for every row of `weights` at once: (R × n) → (R × 2).
    Own code, not sklearn: the bootstrap needs R = 1,000 weighted fits, which this does as one
    vectorised solve (a few ms for 20k pairs) where 1,000 LogisticRegression fits take seconds;
    tests/test_preference.py checks it against scikit-learn."""
    theta = np.zeros((weights.shape[0], 2))
    X = np.column_stack([np.ones_like(x), x])
    for _ in range(iterations):
        p = 1.0 / (1.0 + np.exp(-(theta @ X.T)))
        grad = (weights * (p - y)) @ X + np.column_stack([np.zeros(len(theta)), theta[:, 1]])
        w = weights * p * (1 - p)
        h00, h01, h11 = w.sum(1), w @ x, w @ (x * x) + 1.0
        det = h00 * h11 - h01 * h01
        with np.errstate(divide="ignore", invalid="ignore"):
            step = (
                np.column_stack(
                    [h11 * grad[:, 0] - h01 * grad[:, 1], h00 * grad[:, 1] - h01 * grad[:, 0]]
                )
                / det[:, None]
            )
        # One side won every pair (separable data): the intercept runs off to ±∞ and the Hessian
        # vanishes. Stop there, bounded: the rate is then 0 or 100 %, as the raw rate is.
        step = np.nan_to_num(step, nan=0.0, posinf=0.0, neginf=0.0)
        theta = np.clip(theta - step, -_MAX_LOGIT, _MAX_LOGIT)
        if np.abs(step).max() < 1e-10:
            break
    return theta


def length_controlled_win_rate(
    outcomes: Sequence[Outcome | None],
    length_a: Sequence[int],
    length_b: Sequence[int],
    clusters: Sequence[Any],
    *,
    n_resamples: int = DEFAULT_RESAMPLES,
    seed: int = 0,
    alpha: float = 0.05,
) -> LengthControlled:
    """Ties count half to each side (weight 0.5 as A preferred, 0.5 as B preferred)."""
    rows = [
        (o, la - lb, c)
        for o, la, lb, c in zip(outcomes, length_a, length_b, clusters, strict=True)
        if o is not None
    ]
    if not rows:
        return LengthControlled(0, Rate(None, None, None), None, None)
    diff = np.asarray([d for _, d, _ in rows], dtype=float)
    scale = diff.std() or 1.0
    x = np.tanh(diff / scale)
    # each pair twice: as "A preferred" with weight score, as "B preferred" with weight 1 − score
    score = np.asarray([POINTS[o] for o, _, _ in rows])
    xx, yy = np.concatenate([x, x]), np.concatenate([np.ones_like(x), np.zeros_like(x)])
    base = np.concatenate([score, 1 - score])
    theta = _logistic_fit(xx, yy, base[None, :])[0]
    estimate = 100.0 / (1.0 + np.exp(-theta[0]))
    codes, n_clusters = encode_clusters([c for _, _, c in rows])
    low = high = None
    if n_clusters >= 2:
        fits = [
            _logistic_fit(xx, yy, np.concatenate([counts, counts], axis=1) * base[None, :])
            for counts in _item_weights(codes, n_clusters, n_resamples, seed)
        ]
        dist = 100.0 / (1.0 + np.exp(-np.concatenate(fits)[:, 0]))
        low, high = (
            float(v) for v in np.percentile(dist, [100 * alpha / 2, 100 * (1 - alpha / 2)])
        )
    return LengthControlled(
        len(rows), Rate(float(estimate), low, high), float(theta[1]), float(diff.mean())
    )


# ----------------------------------------------------------------------------- Bradley–Terry

ELO_SCALE = 400.0 / np.log(10.0)  # BT log-strength → Elo points, as Chatbot Arena reports them
ELO_BASE = 1000.0


@dataclass(frozen=True, slots=True)
class BTScore:
    """A model's Bradley–Terry strength on the Elo scale (the reference model at 1000) with its
    interval, and its expected win rate against the reference."""

    model: str
    score: float
    low: float | None
    high: float | None
    win_rate_vs_reference: float  # percent
    n_comparisons: int

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _bt_fit(wins: np.ndarray, iterations: int = 2000, tol: float = 1e-10) -> np.ndarray:
    """Log-strengths (mean 0) by Hunter's MM algorithm for every (k × k) win matrix in `wins`
    (R × k × k; wins[r, i, j] = weight of i beating j, ties counted half each way), at once.
    Own code: the bootstrap refits R times; choix (tests only) cross-checks it."""
    total = wins + np.swapaxes(wins, 1, 2)
    won = wins.sum(axis=2)
    p = np.ones(wins.shape[:2])
    for _ in range(iterations):
        denom = (total / (p[:, :, None] + p[:, None, :])).sum(axis=2)
        new = np.where(denom > 0, won / np.where(denom > 0, denom, 1.0), p)
        new = np.maximum(new, 1e-12)
        new /= np.exp(np.log(new).mean(axis=1, keepdims=True))
        if np.abs(np.log(new) - np.log(p)).max() < tol:
            p = new
            break
        p = new
    return np.log(p)


def bradley_terry(
    comparisons: Sequence[tuple[str, str, Outcome | None]],
    clusters: Sequence[Any],
    *,
    reference: str | None = None,
    prior: float = 0.5,
    n_resamples: int = DEFAULT_RESAMPLES,
    seed: int = 0,
    alpha: float = 0.05,
) -> list[BTScore]:
    """Bradley–Terry scores of every model in `comparisons` ((model_a, model_b, outcome) rows),
    best first. `prior` pseudo-comparisons (half won each way) between every pair keep a model that
    never lost (or never won) finite. Intervals: the rows resampled by dialogue cluster."""
    rows = [
        (a, b, o, c) for (a, b, o), c in zip(comparisons, clusters, strict=True) if o is not None
    ]
    models = sorted({m for a, b, _, _ in rows for m in (a, b)})
    if len(models) < 2:
        raise ValueError("Bradley–Terry needs comparisons between at least two models")
    ref = reference if reference is not None else models[0]
    if ref not in models:
        raise ValueError(f"reference {ref!r} is not among the compared models: {', '.join(models)}")
    index = {m: i for i, m in enumerate(models)}
    k = len(models)
    codes, n_clusters = encode_clusters([c for *_, c in rows])
    # per row: the (i, j) cell credited, the weight; a tie credits both directions with 0.5
    cells_i, cells_j, weight, row_of = [], [], [], []
    for r, (a, b, o, _) in enumerate(rows):
        i, j = index[a], index[b]
        for (x, y), w in (((i, j), POINTS[o]), ((j, i), 1 - POINTS[o])):
            if w:
                cells_i.append(x), cells_j.append(y), weight.append(w), row_of.append(r)
    cells_i, cells_j, weight, row_of = map(np.asarray, (cells_i, cells_j, weight, row_of))
    flat = cells_i * k + cells_j
    prior_matrix = np.full((k, k), prior / 2) * (1 - np.eye(k))

    def matrices(row_weights: np.ndarray) -> np.ndarray:  # (R × n_rows) → (R × k × k)
        out = np.zeros((row_weights.shape[0], k * k))
        for cell in np.unique(flat):
            sel = flat == cell
            out[:, cell] = row_weights[:, row_of[sel]] @ weight[sel]
        return out.reshape(-1, k, k) + prior_matrix

    point = _bt_fit(matrices(np.ones((1, len(rows)))))[0]
    point -= point[index[ref]]
    low = high = np.full(k, np.nan)
    if n_clusters >= 2:
        dist = np.concatenate(
            [_bt_fit(matrices(w)) for w in _item_weights(codes, n_clusters, n_resamples, seed)]
        )
        dist -= dist[:, [index[ref]]]
        low, high = np.percentile(dist, [100 * alpha / 2, 100 * (1 - alpha / 2)], axis=0)
    n_comp = {m: sum(m in (a, b) for a, b, _, _ in rows) for m in models}
    scores = [
        BTScore(
            model=m,
            score=float(ELO_BASE + ELO_SCALE * point[i]),
            low=None if np.isnan(low[i]) else float(ELO_BASE + ELO_SCALE * low[i]),
            high=None if np.isnan(high[i]) else float(ELO_BASE + ELO_SCALE * high[i]),
            win_rate_vs_reference=float(100.0 / (1.0 + np.exp(-point[i]))),
            n_comparisons=n_comp[m],
        )
        for m, i in index.items()
    ]
    return sorted(scores, key=lambda s: -s.score)
