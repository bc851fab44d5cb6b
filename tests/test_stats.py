import math

import numpy as np
import pytest
from scipy import stats as sps

from kardiabench.scoring.stats import (
    cluster_bootstrap_ci,
    holm_correction,
    paired_bootstrap,
    sign_flip_pvalue,
)


def test_singleton_clusters_match_scipy_percentile_bootstrap_and_normal_approximation():
    rng = np.random.default_rng(7)
    x = rng.normal(3.0, 1.0, size=300)
    ours = cluster_bootstrap_ci(list(x), list(range(300)), n_resamples=4000, seed=1)
    ref = sps.bootstrap((x,), np.mean, method="percentile", n_resamples=4000, random_state=2)
    se = x.std(ddof=1) / math.sqrt(len(x))
    assert ours.estimate == pytest.approx(x.mean())
    # Monte-Carlo error of each bound is about 0.05 se at 4000 resamples.
    assert ours.low == pytest.approx(ref.confidence_interval.low, abs=0.25 * se)
    assert ours.high == pytest.approx(ref.confidence_interval.high, abs=0.25 * se)
    assert ours.low == pytest.approx(x.mean() - 1.96 * se, abs=0.25 * se)
    assert ours.high == pytest.approx(x.mean() + 1.96 * se, abs=0.25 * se)
    assert (ours.n, ours.n_clusters, ours.n_missing) == (300, 300, 0)


def test_estimate_is_the_item_mean_whatever_the_cluster_sizes():
    values = [1, 2, 3, 4, 10, 0]
    clusters = ["a", "a", "a", "b", "c", "c"]
    ci = cluster_bootstrap_ci(values, clusters, n_resamples=200)
    assert ci.estimate == pytest.approx(20 / 6)  # items weigh equally: a ratio of sums
    assert ci.low <= ci.estimate <= ci.high


def test_within_cluster_correlation_widens_the_interval():
    rng = np.random.default_rng(0)
    n_clusters, size = 60, 10
    effects = np.repeat(rng.normal(0, 1, n_clusters), size)
    values = effects + rng.normal(0, 0.1, n_clusters * size)
    by_dialogue = np.repeat(np.arange(n_clusters), size)
    clustered = cluster_bootstrap_ci(list(values), list(by_dialogue), seed=3)
    naive = cluster_bootstrap_ci(list(values), list(range(len(values))), seed=3)
    # design effect 1 + (m − 1)ρ ≈ 10, so the interval is about √10 ≈ 3 times wider
    ratio = (clustered.high - clustered.low) / (naive.high - naive.low)
    assert 2.0 < ratio < 4.5


def test_deterministic_by_seed_and_independent_of_item_order():
    rng = np.random.default_rng(1)
    values = list(rng.normal(size=200))
    clusters = [f"d{i // 4}" for i in range(200)]
    a = cluster_bootstrap_ci(values, clusters, seed=5)
    assert a == cluster_bootstrap_ci(values, clusters, seed=5)
    other = cluster_bootstrap_ci(values, clusters, seed=6)
    assert (a.low, a.high) != (other.low, other.high)
    order = rng.permutation(200)
    shuffled = cluster_bootstrap_ci(
        [values[i] for i in order], [clusters[i] for i in order], seed=5
    )
    assert (shuffled.low, shuffled.high) == pytest.approx((a.low, a.high))


def test_unscored_values_and_empty_clusters_are_left_out():
    ci = cluster_bootstrap_ci(
        [1, None, 3, float("nan"), None], ["a", "a", "b", "b", "c"], n_resamples=100
    )
    assert (ci.estimate, ci.n, ci.n_missing, ci.n_clusters) == (2.0, 2, 3, 2)
    empty = cluster_bootstrap_ci([None, None], ["a", "b"])
    assert (empty.estimate, empty.low, empty.n, empty.n_missing) == (None, None, 0, 2)


def test_one_cluster_gives_no_interval_and_unknown_statistics_are_refused():
    one = cluster_bootstrap_ci([1, 0, 1], ["a", "a", "a"])
    assert one.estimate == pytest.approx(2 / 3) and one.low is None and one.high is None
    with pytest.raises(ValueError, match="mean"):
        cluster_bootstrap_ci([1, 2], ["a", "b"], statistic="median")
    with pytest.raises(ValueError):
        cluster_bootstrap_ci([1, 2], ["a"])


def test_full_test_split_size():
    """The real test split's shape (20,290 items in 2,547 dialogues). Its timing is in
    benchmarks/bench_scoring.py, which scores a full-size run with every metric's bootstrap."""
    rng = np.random.default_rng(0)
    clusters = list(np.sort(rng.integers(0, 2547, 20290)).astype(str))
    values = list(rng.integers(1, 6, 20290).astype(float))
    ci = cluster_bootstrap_ci(values, clusters, n_resamples=1000)
    assert ci.n == 20290 and ci.n_clusters == len(set(clusters))
    assert ci.low < float(np.mean(values)) < ci.high and ci.high - ci.low < 0.1


# --- paired ---------------------------------------------------------------------------------------


def test_paired_difference_on_items_both_runs_scored():
    a = [1, 2, None, 4, 5, 6]
    b = [2, 2, 3, None, 8, 6]
    r = paired_bootstrap(a, b, ["x", "x", "y", "y", "z", "z"], n_resamples=200)
    # shared: items 0, 1, 4, 5 → A mean 3.5, B mean 4.5, delta 1
    assert (r.n, r.n_clusters) == (4, 2)
    assert (r.mean_a, r.mean_b, r.delta) == pytest.approx((3.5, 4.5, 1.0))
    constant = paired_bootstrap(
        [1, 2, 3, 4], [1.5, 2.5, 3.5, 4.5], ["x", "x", "y", "z"], n_resamples=200
    )
    assert (constant.ci_low, constant.ci_high) == pytest.approx((0.5, 0.5))


def _paired_data(rng, effect, n_clusters=40, size=4):
    clusters = np.repeat(np.arange(n_clusters), size)
    shared = np.repeat(rng.normal(0, 1, n_clusters), size)  # items are hard or easy for both runs
    a = shared + rng.normal(0, 1, n_clusters * size)
    b = shared + effect + rng.normal(0, 1, n_clusters * size)
    return list(a), list(b), list(clusters)


def test_paired_pvalue_is_roughly_uniform_under_the_null():
    rng = np.random.default_rng(11)
    ps = np.array(
        [
            paired_bootstrap(*_paired_data(rng, 0.0), n_resamples=199, seed=i).p_value
            for i in range(300)
        ]
    )
    assert 0.01 <= (ps < 0.05).mean() <= 0.10
    assert 0.4 <= ps.mean() <= 0.6
    assert ps.min() >= 1 / 200


def test_paired_pvalue_is_small_and_interval_excludes_zero_under_a_clear_effect():
    r = paired_bootstrap(*_paired_data(np.random.default_rng(2), 0.8), n_resamples=999)
    assert r.p_value == pytest.approx(1 / 1000)
    assert 0 < r.ci_low < 0.8 < r.ci_high
    same = paired_bootstrap([1.0, 2.0, 3.0], [1.0, 2.0, 3.0], ["a", "b", "c"])
    assert same.delta == 0 and same.p_value == 1.0


def test_sign_flip_cannot_be_significant_with_very_few_clusters():
    # 2 clusters: 4 sign patterns, two of them as extreme as the observed one
    assert sign_flip_pvalue(np.array([5.0, 7.0]), 10, n_resamples=2000, seed=0) > 0.3


def test_paired_is_seeded():
    data = _paired_data(np.random.default_rng(4), 0.2)
    assert paired_bootstrap(*data, seed=9) == paired_bootstrap(*data, seed=9)


# --- Holm -----------------------------------------------------------------------------------------


def test_holm_against_hand_computed_values():
    # sorted: d .005 (×4 = .02), a .01 (×3 = .03), c .03 (×2 = .06), b .04 (×1 = .04 → max .06)
    adj = holm_correction({"a": 0.01, "b": 0.04, "c": 0.03, "d": 0.005, "e": None})
    assert list(adj) == ["a", "b", "c", "d", "e"]
    assert adj["e"] is None
    assert [adj[k] for k in "abcd"] == pytest.approx([0.03, 0.06, 0.06, 0.02])


def test_holm_caps_at_one_and_keeps_a_single_pvalue():
    assert holm_correction({"x": 0.6, "y": 0.7}) == {"x": 1.0, "y": 1.0}
    assert holm_correction({"x": 0.03}) == {"x": 0.03}
    assert holm_correction({}) == {}
