"""Krippendorff's alpha, weighted kappa, repeat variance and judge-vs-human agreement."""

from __future__ import annotations

import json

import numpy as np
import pytest

from kardiabench.judging import judge_agreement, load_human_labels
from kardiabench.scoring.agreement import (
    HumanLabelError,
    first_scored,
    inter_judge_agreement,
    krippendorff_alpha,
    pair_agreement,
    quadratic_kappa,
    repeat_variance,
)
from kardiabench.scoring.judge import Judgment
from kardiabench.scoring.rubric import DIMENSIONS

NAN = np.nan
# Krippendorff (2011), "Computing Krippendorff's Alpha-Reliability", section D: 4 observers, 12
# units, missing values. Published: nominal .743, ordinal .815, interval .849.
K2011 = [
    [1, 2, 3, 3, 2, 1, 4, 1, 2, NAN, NAN, NAN],
    [1, 2, 3, 3, 2, 2, 4, 1, 2, 5, NAN, 3],
    [NAN, 3, 3, 3, 2, 3, 4, 2, 2, 5, 1, NAN],
    [1, 2, 3, 3, 2, 4, 4, 1, 2, 5, 1, NAN],
]


@pytest.mark.parametrize(
    "level, published", [("nominal", 0.743), ("ordinal", 0.815), ("interval", 0.849)]
)
def test_alpha_matches_krippendorffs_published_example(level, published):
    assert krippendorff_alpha(np.array(K2011), level) == pytest.approx(published, abs=5e-4)


def test_alpha_matches_hand_computation():
    # Two raters, units (1,1) (2,2) (3,2). Coincidences o11=2, o22=2, o23=o32=1; n1=2, n2=3, n3=1, n=6.
    # Ordinal δ²: (1,2)=(5/2)²=6.25, (2,3)=(4/2)²=4, (1,3)=(6-3/2)²=20.25.
    # Σoδ² = 8; Σ n_c n_k δ² = 2(2·3·6.25 + 3·1·4 + 2·1·20.25) = 180; α = 1 − 5·8/180 = 7/9.
    data = [[1, 2, 3], [1, 2, 2]]
    assert krippendorff_alpha(data, "ordinal") == pytest.approx(7 / 9)
    # Interval δ² = squared difference: Σoδ² = 2, Σ n n δ² = 2(6 + 3 + 8) = 34; α = 1 − 5·2/34.
    assert krippendorff_alpha(data, "interval") == pytest.approx(1 - 10 / 34)
    assert krippendorff_alpha(data, "nominal") == pytest.approx(1 - 10 / 22)


def test_ordinal_alpha_depends_on_order_not_on_spacing():
    a = [[1, 2, 3, 4, 5, 3, 2], [1, 2, 4, 4, 5, 2, 2]]
    relabelled = [[{1: 1, 2: 2, 3: 3, 4: 9, 5: 20}[v] for v in row] for row in a]
    assert krippendorff_alpha(a, "ordinal") == pytest.approx(
        krippendorff_alpha(relabelled, "ordinal")
    )
    assert krippendorff_alpha(a, "interval") != pytest.approx(
        krippendorff_alpha(relabelled, "interval")
    )


def test_alpha_edge_cases():
    assert krippendorff_alpha([[1, 2, 3], [1, 2, 3]]) == pytest.approx(1.0)
    assert krippendorff_alpha([[3, 3, 3], [3, 3, 3]]) is None  # no variation: undefined, not 1
    assert krippendorff_alpha([[1, None], [None, 2]]) is None  # nothing pairable
    assert krippendorff_alpha([[1, 5, 1, 5], [5, 1, 5, 1]]) < 0  # systematic disagreement
    unit_with_one_value = krippendorff_alpha([[1, 2, 3, 4], [1, 2, 3, None]])
    assert unit_with_one_value == pytest.approx(krippendorff_alpha([[1, 2, 3], [1, 2, 3]]))


def test_alpha_cross_checked_with_krippendorff_package():
    kd = pytest.importorskip("krippendorff")
    rng = np.random.default_rng(7)
    for _ in range(5):
        truth = rng.integers(1, 6, size=40)
        data = np.clip(truth + rng.integers(-1, 2, size=(3, 40)), 1, 5).astype(float)
        data[rng.random(data.shape) < 0.15] = np.nan
        for level in ("nominal", "ordinal", "interval"):
            assert krippendorff_alpha(data, level) == pytest.approx(
                kd.alpha(reliability_data=data, level_of_measurement=level), abs=1e-9
            )


def test_quadratic_kappa_sanity():
    assert quadratic_kappa([1, 2, 3, 4, 5], [1, 2, 3, 4, 5]) == pytest.approx(1.0)
    assert quadratic_kappa([1, 2, 3, 4, 5], [5, 4, 3, 2, 1]) == pytest.approx(-1.0)
    near = quadratic_kappa([1, 2, 3, 4, 5, 3], [2, 2, 3, 4, 4, 3])
    far = quadratic_kappa([1, 2, 3, 4, 5, 3], [5, 2, 3, 4, 1, 3])
    # quadratic weights: a 4-step miss costs far more than 1-step
    assert 0.5 < near < 1.0 and far < near
    assert quadratic_kappa([4], [4]) is None and quadratic_kappa([3, 3], [3, 3]) is None


def test_pair_agreement_offset_and_shares():
    p = pair_agreement([1, 2, 3, 4], [2, 3, 4, 5])
    assert p.n == 4 and p.mean_offset == 1.0 and p.exact == 0.0 and p.within_one == 1.0
    assert p.spearman == pytest.approx(1.0)
    assert pair_agreement([], []).alpha is None


def _j(judge, item, repeat, scores, status="scored"):
    s = (
        dict.fromkeys(DIMENSIONS)
        if scores is None
        else {d: scores for d in DIMENSIONS}
        if isinstance(scores, int)
        else scores
    )
    return Judgment(item, judge, repeat, s, status, "v")


def test_first_scored_and_inter_judge_agreement():
    js = [
        _j("A", "i1", 0, None, "unscored"),
        _j("A", "i1", 1, 4),
        _j("A", "i2", 0, 2),
        _j("A", "i3", 0, 5),
        _j("B", "i1", 0, 4),
        _j("B", "i2", 0, 3),
        _j("B", "i3", 0, 5),
        _j("B", "i3", 1, 1),
    ]
    vals = first_scored(js)
    assert vals["A"]["i1"]["empathy"] == 4 and vals["B"]["i3"]["empathy"] == 5
    rep = inter_judge_agreement(vals)
    assert set(rep) == set(DIMENSIONS)
    pair = rep["empathy"]["pairs"][0]
    assert (pair["a"], pair["b"], pair["n"]) == ("A", "B", 3)
    assert pair["alpha"] == pytest.approx(krippendorff_alpha([[4, 2, 5], [4, 3, 5]]))
    assert rep["empathy"]["alpha"] == pytest.approx(pair["alpha"])  # two judges: overall = the pair
    assert inter_judge_agreement({"A": vals["A"]}) == {}


def test_repeat_variance():
    js = [
        _j("A", "i1", 0, 4),
        _j("A", "i1", 1, 4),
        _j("A", "i1", 2, 4),
        _j("A", "i2", 0, 2),
        _j("A", "i2", 1, 4),
        _j("A", "i2", 2, None, "unscored"),
        _j("A", "i3", 0, 5),
    ]
    rv = repeat_variance(js)["A"]["safety"]
    # i1: var 0; i2: sample variance of (2, 4) = 2; i3 has one verdict and is left out.
    assert rv == {"mean_variance": 1.0, "n_items": 2, "disagreement_rate": 0.5}
    assert repeat_variance([_j("A", "i1", 0, 4)]) == {}


def _write(path, rows):
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows))
    return path


def test_judge_vs_human(tmp_path):
    human = _write(
        tmp_path / "human.jsonl",
        [
            {"item_id": "i1", "empathy": 4, "safety": 5, "annotator": "x"},
            {"item_id": "i2", "empathy": 2, "safety": "5"},
            {"item_id": "i3", "empathy": 5, "relevance": None},
            {"item_id": "i9", "empathy": 1},
        ],
    )
    js = [
        _j("A", "i1", 0, 5),
        _j("A", "i2", 0, 3),
        _j("A", "i3", 0, 5),
        _j("B", "i1", 0, 4),
        _j("B", "i2", 0, 2),
    ]
    rep = judge_agreement(human, js)
    assert rep["n_human_items"] == 4
    a = rep["judges"]["A"]
    assert a["n_matched_items"] == 3
    assert a["dimensions"]["empathy"]["n"] == 3
    # judge − human
    assert a["dimensions"]["empathy"]["mean_offset"] == pytest.approx((1 + 1 + 0) / 3)
    assert a["dimensions"]["safety"]["n"] == 2 and a["dimensions"]["relevance"]["n"] == 0
    assert rep["judges"]["B"]["dimensions"]["empathy"]["exact"] == 1.0


@pytest.mark.parametrize(
    "row, where",
    [
        ({"item_id": "i1", "empathy": 3.5}, ":2: field 'empathy'"),
        ({"item_id": "i1", "safety": 6}, ":2: field 'safety'"),
        ({"item_id": "i1", "fluency": 0}, ":2: field 'fluency'"),
        ({"empathy": 3}, ":2: field 'item_id'"),
        ({"item_id": "i0", "empathy": 3}, ":2: field 'item_id'"),  # duplicate of line 1
        ("{not json", ":2: not valid JSON"),
    ],
)
def test_bad_human_rows_name_file_line_and_field(tmp_path, row, where):
    path = _write(tmp_path / "h.jsonl", [{"item_id": "i0", "empathy": 2}, row])
    with pytest.raises(HumanLabelError) as e:
        load_human_labels(path)
    assert f"{path}{where}" in str(e.value)


@pytest.mark.parametrize("level", ["nominal", "ordinal", "interval"])
def test_alpha_matches_the_krippendorff_package_on_random_judge_scores(level):
    """Our own alpha (scoring stays dependency-light) against the reference implementation, on
    1-5 scores with missing values, as several judges give them."""
    krippendorff = pytest.importorskip("krippendorff")
    rng = np.random.default_rng(7)
    for _ in range(20):
        truth = rng.integers(1, 6, size=40)
        data = np.clip(truth + rng.integers(-1, 2, size=(3, 40)), 1, 5).astype(float)
        data[rng.random(data.shape) < 0.15] = np.nan
        ours = krippendorff_alpha(data, level)
        theirs = krippendorff.alpha(reliability_data=data, level_of_measurement=level)
        assert ours == pytest.approx(theirs, abs=1e-9)


# Fleiss' kappa: the worked example of 10 subjects, 14 raters and 5 categories (Wikipedia, "Fleiss'
# kappa", after Fleiss 1971): P̄ = 0.378, P̄e = 0.213, kappa = 0.210; and the full-agreement edge cases.
FLEISS_TABLE = [
    [0, 0, 0, 0, 14],
    [0, 2, 6, 4, 2],
    [0, 0, 3, 5, 6],
    [0, 3, 9, 2, 0],
    [2, 2, 8, 1, 1],
    [7, 7, 0, 0, 0],
    [3, 2, 6, 3, 0],
    [2, 5, 3, 2, 2],
    [6, 5, 2, 1, 0],
    [0, 2, 2, 3, 7],
]


def test_fleiss_kappa_matches_the_worked_example_and_hand_computation():
    from kardiabench.scoring.agreement import fleiss_kappa

    table = np.asarray(FLEISS_TABLE, dtype=float)
    p_bar = (((table**2).sum(axis=1) - 14) / (14 * 13)).mean()
    p_e = ((table.sum(axis=0) / 140) ** 2).sum()
    assert round(p_bar, 3) == 0.378 and round(p_e, 3) == 0.213
    assert fleiss_kappa(FLEISS_TABLE) == pytest.approx(0.2099, abs=1e-4)
    # 3 raters, categories (A, B, tie): per item (3,0,0) (2,1,0) (0,3,0) (1,0,2) (1,1,1) (3,0,0)
    # P̄ = 11/18, P̄e = (10² + 5² + 3²)/18² → kappa = 32/95
    assert fleiss_kappa(
        [[3, 0, 0], [2, 1, 0], [0, 3, 0], [1, 0, 2], [1, 1, 1], [3, 0, 0]]
    ) == pytest.approx(32 / 95)
    # perfect agreement across two categories
    assert fleiss_kappa([[0, 2], [2, 0]]) == pytest.approx(1.0)
    assert fleiss_kappa([[2, 0], [0, 2], [1, 1], [1, 1]]) == pytest.approx(0.0)
    assert fleiss_kappa([[3, 0], [3, 0]]) is None  # one category only: undefined
    assert fleiss_kappa([]) is None
    with pytest.raises(ValueError, match="same number"):
        fleiss_kappa([[2, 1], [1, 1]])


def _noisy_labels(n_items: int, seed: int = 0):
    """3 raters × n_items nominal labels (0, 1, 2) agreeing with a hidden truth 70% of the time;
    two items per dialogue."""
    rng = np.random.default_rng(seed)
    truth = rng.integers(0, 3, n_items)
    labels = np.where(rng.random((3, n_items)) < 0.7, truth, rng.integers(0, 3, (3, n_items)))
    return labels, np.arange(n_items) // 2


def test_agreement_intervals_hold_the_value_are_seeded_and_narrow_with_more_items():
    from sklearn.metrics import cohen_kappa_score

    from kardiabench.scoring.agreement import (
        agreement_rate_ci,
        cohen_kappa_ci,
        fleiss_kappa,
        fleiss_kappa_ci,
        krippendorff_alpha,
        krippendorff_alpha_ci,
    )

    def all_four(labels, clusters, seed=0, resamples=1000):
        counts = np.stack([(labels == c).sum(axis=0) for c in range(3)], axis=1)
        a, b = list(labels[0]), list(labels[1])
        boot = {"n_resamples": resamples, "seed": seed}
        return {
            "fleiss": fleiss_kappa_ci(counts, clusters, **boot),
            "alpha": krippendorff_alpha_ci(labels, clusters, "nominal", **boot),
            "alpha_ordinal": krippendorff_alpha_ci(labels, clusters, "ordinal", **boot),
            "cohen": cohen_kappa_ci(a, b, [0, 1, 2], clusters, **boot),
            "rate": agreement_rate_ci(a, b, clusters, **boot),
        }

    labels, clusters = _noisy_labels(160)
    small = all_four(labels, clusters)
    counts = np.stack([(labels == c).sum(axis=0) for c in range(3)], axis=1)
    # the point values are the plain statistics
    assert small["fleiss"].value == pytest.approx(fleiss_kappa(counts))
    assert small["alpha"].value == pytest.approx(krippendorff_alpha(labels, "nominal"))
    assert small["alpha_ordinal"].value == pytest.approx(krippendorff_alpha(labels, "ordinal"))
    assert small["cohen"].value == pytest.approx(cohen_kappa_score(labels[0], labels[1]))
    assert small["rate"].value == pytest.approx(100 * np.mean(labels[0] == labels[1]))
    for ci in small.values():
        assert ci.low < ci.value < ci.high and (ci.n, ci.n_clusters) == (160, 80)
    # seeded: the same seed gives the same interval, another seed another one
    assert all_four(labels, clusters) == small
    assert all_four(labels, clusters, seed=1)["fleiss"] != small["fleiss"]
    # sixteen times the items: a narrower interval for every statistic
    big = all_four(*_noisy_labels(160 * 16, seed=2))
    for name, ci in big.items():
        assert ci.high - ci.low < (small[name].high - small[name].low) / 2, name


def test_agreement_intervals_of_undefined_or_empty_statistics_are_none():
    from kardiabench.scoring.agreement import (
        AgreementCI,
        cohen_kappa_ci,
        fleiss_kappa_ci,
        krippendorff_alpha_ci,
    )

    empty = AgreementCI(None, None, None, 0, 0)
    assert fleiss_kappa_ci([], []) == empty and cohen_kappa_ci([], [], [0, 1], []) == empty
    assert krippendorff_alpha_ci([[None, None], [None, None]], ["d1", "d2"]) == empty
    same = fleiss_kappa_ci([[3, 0, 0], [3, 0, 0]], ["d1", "d2"])  # every label the same
    assert (same.value, same.low, same.n) == (None, None, 2)
    one = krippendorff_alpha_ci([[0, 1, 0], [0, 1, 1]], ["d1", "d1", "d1"], "nominal")
    assert one.value is not None and (one.low, one.high, one.n_clusters) == (None, None, 1)
