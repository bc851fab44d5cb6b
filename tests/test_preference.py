"""scoring/preference.py: win rates, position fairness, length control, Bradley–Terry."""

from __future__ import annotations

import numpy as np
import pytest

from kardiabench.scoring.preference import (
    _logistic_fit,
    bradley_terry,
    combine_orders,
    length_controlled_win_rate,
    position_stats,
    win_rate,
)


def test_combine_orders_maps_the_swapped_verdict_back_and_a_flip_is_a_tie():
    # A first: A; B first: the second shown (A) → A both times
    assert combine_orders("A", "B") == "A"
    assert combine_orders("B", "A") == "B"
    assert combine_orders("A", "A") == "tie"  # always the first shown: the order decided
    assert combine_orders("tie", "tie") == "tie"
    assert combine_orders("A", None) is None


def test_position_stats_catch_a_judge_that_picks_the_first_shown():
    always_first = [("A", "A")] * 8 + [("A", "B")] * 2
    s = position_stats(always_first)
    assert (s.n_pairs, s.n_consistent, s.n_decisive) == (10, 2, 20)
    assert (
        s.consistency_rate == 20.0 and s.first_shown_rate == 90.0 and s.first_position_bias == 40.0
    )
    fair = position_stats([("A", "B"), ("B", "A"), ("tie", "tie"), (None, "A")])
    assert fair.n_pairs == 3 and fair.consistency_rate == 100.0 and fair.first_position_bias == 0.0


def _dialogues(n_dialogues: int, per: int):
    return [f"d{d}" for d in range(n_dialogues) for _ in range(per)]


def test_win_rate_counts_ties_as_half_and_excludes_50_for_a_clearly_better_model():
    clusters = _dialogues(30, 4)
    rng = np.random.default_rng(1)
    outcomes = list(rng.choice(["A", "B", "tie"], size=len(clusters), p=[0.7, 0.2, 0.1]))
    outcomes[0] = None
    r = win_rate(outcomes, clusters, n_resamples=500)
    assert r.n == 119 and r.n_unscored == 1 and r.n_clusters == 30
    assert r.wins + r.ties + r.losses == 119
    assert r.win_rate.value == pytest.approx(100 * (r.wins + r.ties / 2) / 119)
    assert r.win_share.value + r.tie_share.value + r.loss_share.value == pytest.approx(100)
    assert 50 < r.win_rate.low < r.win_rate.value < r.win_rate.high
    assert r.sign_test_p < 0.001


def test_win_rate_of_an_even_pair_includes_50_and_clustering_widens_the_interval():
    # whole dialogues won or lost together: the interval must reflect 20 clusters, not 200 items
    outcomes = ["A"] * 100 + ["B"] * 100
    clustered = win_rate(outcomes, _dialogues(20, 10), n_resamples=500)
    independent = win_rate(outcomes, [str(i) for i in range(200)], n_resamples=500)
    assert clustered.win_rate.low < 50 < clustered.win_rate.high
    width = lambda r: r.win_rate.high - r.win_rate.low  # noqa: E731
    assert width(clustered) > 2 * width(independent)
    assert clustered.sign_test_p == pytest.approx(1.0)


def test_win_rate_refuses_unknown_outcomes():
    with pytest.raises(ValueError, match="'C'"):
        win_rate(["A", "C"], ["d1", "d2"])


def test_logistic_fit_matches_scikit_learn():
    from sklearn.linear_model import LogisticRegression

    rng = np.random.default_rng(0)
    x = rng.normal(size=300)
    y = (rng.random(300) < 1 / (1 + np.exp(-(0.3 + 1.5 * x)))).astype(float)
    w = rng.integers(1, 4, size=300).astype(float)
    ours = _logistic_fit(x, y, w[None, :])[0]
    # sklearn penalises the intercept too unless it is large-scaled; intercept_scaling makes that negligible
    theirs = LogisticRegression(C=1.0, intercept_scaling=1e4, tol=1e-10, max_iter=10_000).fit(
        x[:, None], y, sample_weight=w
    )
    assert ours[0] == pytest.approx(theirs.intercept_[0], abs=1e-3) and ours[1] == pytest.approx(
        theirs.coef_[0, 0], abs=1e-3
    )


def test_length_control_shows_a_judge_that_prefers_the_longer_answer():
    rng = np.random.default_rng(3)
    n = 200
    clusters = _dialogues(40, 5)
    len_a = rng.integers(100, 900, size=n)
    len_b = rng.integers(100, 900, size=n)
    # length alone decides
    outcomes = ["A" if a > b else "B" for a, b in zip(len_a, len_b, strict=True)]
    outcomes = [o if i % 5 else "tie" for i, o in enumerate(outcomes)]
    raw = win_rate(outcomes, clusters, n_resamples=300)
    lc = length_controlled_win_rate(outcomes, len_a, len_b, clusters, n_resamples=300)
    assert lc.n == n and lc.length_coef > 1.0
    assert lc.win_rate.low < 50 < lc.win_rate.high
    # A made longer: the raw rate rises with length, the controlled one stays near 50
    longer_a = len_a + 400
    biased = ["A" if a > b else "B" for a, b in zip(longer_a, len_b, strict=True)]
    raw_b = win_rate(biased, clusters, n_resamples=300)
    lc_b = length_controlled_win_rate(biased, longer_a, len_b, clusters, n_resamples=300)
    assert raw_b.win_rate.value > raw.win_rate.value + 20
    assert abs(lc_b.win_rate.value - 50) < abs(raw_b.win_rate.value - 50)


def test_bradley_terry_matches_choix_and_orders_models():
    choix = pytest.importorskip("choix")
    rng = np.random.default_rng(7)
    models = ["m0", "m1", "m2", "m3"]
    strength = np.array([0.0, 0.5, 1.0, -0.7])
    rows, data = [], []
    for _ in range(600):
        i, j = rng.choice(4, size=2, replace=False)
        a_wins = rng.random() < 1 / (1 + np.exp(strength[j] - strength[i]))
        rows.append((models[i], models[j], "A" if a_wins else "B"))
        data.append((i, j) if a_wins else (j, i))
    clusters = [f"d{t // 3}" for t in range(600)]
    ours = bradley_terry(rows, clusters, reference="m0", prior=0.0, n_resamples=200)
    theirs = choix.mm_pairwise(4, data, max_iter=10_000, tol=1e-10)
    theirs = theirs - theirs[0]
    by_model = {s.model: s for s in ours}
    for i, m in enumerate(models):
        assert (by_model[m].score - 1000) / (400 / np.log(10)) == pytest.approx(theirs[i], abs=1e-4)
    assert [s.model for s in ours] == ["m2", "m1", "m0", "m3"]
    assert by_model["m0"].score == 1000 and by_model["m0"].win_rate_vs_reference == pytest.approx(
        50
    )
    assert all(s.low <= s.score <= s.high for s in ours if s.model != "m0")
    assert by_model["m2"].low > 1000  # clearly stronger than the reference


def test_bradley_terry_ties_and_an_unbeaten_model_stay_finite():
    rows = [("a", "b", "A")] * 5 + [("b", "c", "tie")] * 4 + [("a", "c", "A")] * 3
    scores = bradley_terry(rows, [f"d{i}" for i in range(12)], reference="c", n_resamples=100)
    by = {s.model: s for s in scores}
    assert np.isfinite([s.score for s in scores]).all() and by["a"].score > by["b"].score
    assert by["b"].score == pytest.approx(by["c"].score, abs=60)
    with pytest.raises(ValueError, match="reference 'z'"):
        bradley_terry(rows, ["d"] * 12, reference="z")
