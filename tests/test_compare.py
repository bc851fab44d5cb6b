import json

import numpy as np
import pytest

from kardiabench.scoring import (
    ComparisonRefused,
    ItemRow,
    MetricResult,
    RunScores,
    compare_runs,
    holm_correction,
    no_judge_metrics,
    rubric_metrics,
)
from kardiabench.scoring.compare import MIN_CLUSTERS, manifest_differences

MANIFEST = {
    "data": {"source": "sample", "split": "test"},
    "generation": {"history": "full"},
    "parser_version": "1",
    "judge": {"spec": "openai:judge", "rubric_version": "1"},
}


def run(name, values, manifest=MANIFEST, size=4):
    """values: metric → list of per-item values; item k belongs to dialogue k // size."""
    n = len(next(iter(values.values())))
    ids = [f"d{k // size}-t{k % size}" for k in range(n)]
    return RunScores(
        name,
        dict(manifest),
        {i: i.split("-")[0] for i in ids},
        {m: dict(zip(ids, vs, strict=True)) for m, vs in values.items()},
    )


# --- rubric aggregates (what the judge stage calls, and what comparisons read) ---------------------


def test_rubric_means_unscored_and_safety_flags_by_hand():
    clusters = {"d1-t0": "d1", "d1-t1": "d1", "d2-t0": "d2", "d2-t1": "d2", "d3-t0": "d3"}
    scores = {
        "d1-t0": {
            "relevance": 5,
            "fluency": 4,
            "empathy": 3,
            "persona_consistency": 2,
            "safety": 1,
        },
        "d1-t1": {
            "relevance": 4,
            "fluency": 4,
            "empathy": None,
            "persona_consistency": 4,
            "safety": 2,
        },
        "d2-t0": {
            "relevance": 3,
            "fluency": 5,
            "empathy": 5,
            "persona_consistency": 4,
            "safety": 5,
        },
        "d2-t1": {"relevance": None, "safety": None},  # missing dimensions are unscored too
        # d3-t0 absent: the judge gave nothing
    }
    m = rubric_metrics(scores, clusters, n_resamples=200)
    assert (m["relevance"].value, m["relevance"].n, m["relevance"].n_unscored) == (4.0, 3, 2)
    assert (m["empathy"].value, m["empathy"].n, m["empathy"].n_unscored) == (4.0, 2, 3)
    assert m["fluency"].value == pytest.approx(13 / 3)
    assert m["relevance"].extra["unit"] == "score_1_5"
    flag = m["safety_flag_rate"]
    assert flag.value == pytest.approx(100 * 2 / 3) and (flag.n, flag.n_unscored) == (3, 2)
    assert flag.extra["flagged_item_ids"] == ["d1-t0", "d1-t1"]
    assert m["relevance"].ci_low <= m["relevance"].value <= m["relevance"].ci_high


@pytest.mark.parametrize("bad", [0, 6, 5.5, 0.99, True, "unscored", "4", float("nan")])
def test_rubric_scores_must_be_numbers_one_to_five_or_none(bad):
    with pytest.raises(ValueError, match="a number 1–5"):
        rubric_metrics({"a": {"empathy": bad}}, {"a": "d"})


def test_rubric_accepts_judge_means_and_numpy_integers():
    # the judge stage averages judges and repeats: 3.5 is a valid item score
    m = rubric_metrics(
        {"a": {"empathy": 3.5, "safety": np.int64(2)}, "b": {"empathy": 4}}, {"a": "d1", "b": "d2"}
    )
    assert m["empathy"].value == pytest.approx(3.75)
    assert m["safety_flag_rate"].extra["flagged_item_ids"] == ["a"]
    assert rubric_metrics({"a": {"safety": 2.5}}, {"a": "d"})["safety_flag_rate"].value == 0.0


def test_rubric_unknown_items_are_refused_and_extra_dimensions_reported():
    with pytest.raises(ValueError, match="unknown item"):
        rubric_metrics({"b": {"empathy": 3}}, {"a": "d"})
    m = rubric_metrics({"a": {"overall": 3, "empathy": 4}, "b": {}}, {"a": "d", "b": "e"})
    assert list(m)[:5] == ["relevance", "fluency", "empathy", "persona_consistency", "safety"]
    assert (m["overall"].value, m["overall"].n, m["overall"].n_unscored) == (3.0, 1, 1)


def test_no_judge_placeholders_and_metric_result_round_trip():
    placeholders = no_judge_metrics()
    assert set(placeholders) == {
        "relevance",
        "fluency",
        "empathy",
        "persona_consistency",
        "safety",
        "safety_flag_rate",
    }
    d = placeholders["safety"].to_dict()
    assert (
        d["value"] is None and d["reason"] == "no judge given (--judge SPEC)" and "extra" not in d
    )
    full = MetricResult("x", 1.5, 10, 2, 1.0, 2.0, {"unit": "score_1_5"})
    assert MetricResult.from_dict(json.loads(json.dumps(full.to_dict()))) == full


def test_item_row_values_with_and_without_a_judge():
    row = ItemRow("d1-t0", "d1", "p1", "INFP", 0, "sad", "sad", "sad", True, False)
    assert row.metric_values() == {"emotion_accuracy": 100.0, "format_compliance": 0.0}
    row.rubric = {
        "relevance": 4,
        "fluency": None,
        "empathy": 2,
        "persona_consistency": 5,
        "safety": 2,
    }
    v = row.metric_values()
    assert (v["relevance"], v["fluency"], v["safety_flag_rate"]) == (4.0, None, 100.0)
    assert ItemRow.from_dict(json.loads(json.dumps(row.to_dict()))) == row


# --- RunScores ---------------------------------------------------------------------------------------


def test_run_scores_from_item_rows_and_their_dicts():
    rows = [
        ItemRow(
            "d1-t0", "d1", "p1", "INFP", 0, "sad", "sad", "sad", True, True, rubric={"empathy": 4}
        ),
        ItemRow("d1-t1", "d1", "p1", "INFP", 1, "sad", None, "<missing>", False, False, rubric={}),
        ItemRow(
            "d2-t0",
            "d2",
            "p2",
            "ENTJ",
            0,
            "proud",
            "sad",
            "sad",
            False,
            True,
            rubric={"empathy": 2},
        ),
    ]
    by_rows = RunScores.from_rows(rows, name="a", manifest=MANIFEST)
    by_dicts = RunScores.from_rows([r.to_dict() for r in rows], name="a", manifest=MANIFEST)
    assert by_rows == by_dicts
    assert by_rows.per_item_values("emotion_accuracy") == {
        "d1-t0": 100.0,
        "d1-t1": 0.0,
        "d2-t0": 0.0,
    }
    assert by_rows.per_item_values("empathy") == {"d1-t0": 4.0, "d1-t1": None, "d2-t0": 2.0}
    assert by_rows.per_item_values("nonexistent") == {}
    assert by_rows.clusters == {"d1-t0": "d1", "d1-t1": "d1", "d2-t0": "d2"}
    by_persona = RunScores.from_rows(rows, name="a", manifest={}, cluster_by="persona")
    assert by_persona.clusters["d2-t0"] == "p2"


# --- compare_runs --------------------------------------------------------------------------------------


def test_refuses_different_manifests_with_every_reason_unless_forced():
    other = {
        **MANIFEST,
        "data": {"source": "sample", "split": "train"},
        "judge": {"spec": "openai:other", "rubric_version": "1"},
    }
    a, b = run("a", {"empathy": [3, 4, 5, 4]}), run("b", {"empathy": [3, 4, 5, 5]}, manifest=other)
    with pytest.raises(ComparisonRefused) as e:
        compare_runs(a, b)
    assert len(e.value.reasons) == 2
    assert any("data.split" in r and "'train'" in r for r in e.value.reasons)
    assert any("judge.spec" in r for r in e.value.reasons)
    forced = compare_runs(a, b, force=True, n_resamples=50)
    assert sum(w.startswith("forced:") for w in forced.warnings) == 2
    assert forced.rows[0].delta == pytest.approx(0.25)


def test_absent_on_both_sides_is_equal_absent_on_one_is_a_difference():
    assert manifest_differences({}, {}) == []
    assert manifest_differences({"judge": {"spec": "x"}}, {}) == [
        "judge.spec differs: A='x', B=<absent>"
    ]
    assert manifest_differences(
        {"history_mode": "full"}, {"history_mode": "response"}, keys=["history_mode"]
    )


def test_no_shared_items_is_refused():
    a = run("a", {"emotion_accuracy": [0.0, 100.0]})
    b = RunScores("b", dict(MANIFEST), {"x-t0": "x"}, {"emotion_accuracy": {"x-t0": 100.0}})
    with pytest.raises(ComparisonRefused, match="no shared items"):
        compare_runs(a, b)


def test_per_metric_deltas_on_shared_items_by_hand():
    a = run("a", {"emotion_accuracy": [100.0, 0, 0, 100, 0, 0], "empathy": [3, None, 4, 2, 5, 1]})
    b = run(
        "b",
        {
            "emotion_accuracy": [100.0, 100, 0, 100, 100, 0, 100, 100],
            "empathy": [4, 4, None, 3, 5, 2, 1, 1],
        },
    )
    c = compare_runs(a, b, n_resamples=200)
    assert (c.n_items_a, c.n_items_b, c.n_shared_items) == (6, 8, 6)
    assert any("6 shared items" in w for w in c.warnings)
    acc, emp = c.rows
    assert acc.metric == "emotion_accuracy" and emp.metric == "empathy"
    assert (acc.n_shared, acc.mean_a, acc.mean_b, acc.delta) == pytest.approx(
        (6, 100 / 3, 400 / 6, 100 / 3)
    )
    # empathy on items 0, 3, 4, 5 (item 1 unscored in A, item 2 in B): A 11/4, B 14/4
    assert (emp.n_shared, emp.mean_a, emp.mean_b, emp.delta) == pytest.approx((4, 2.75, 3.5, 0.75))
    assert c.rows[1].p_holm == holm_correction({r.metric: r.p_value for r in c.rows})["empathy"]


def test_clear_improvement_is_significant_and_identical_runs_are_not():
    rng = np.random.default_rng(0)
    base = rng.integers(1, 5, 400).astype(float)
    better = np.minimum(base + (rng.random(400) < 0.7), 5)
    a, b = run("a", {"empathy": list(base)}), run("b", {"empathy": list(better)})
    c = compare_runs(a, b, n_resamples=999)
    row = c.rows[0]
    assert row.p_value < 0.01 and row.p_holm < 0.01 and 0 < row.ci_low < row.delta < row.ci_high
    same = compare_runs(a, a, n_resamples=200).rows[0]
    assert same.delta == 0 and same.p_value == 1.0


def test_comparison_output_formats():
    a = run("base", {"emotion_accuracy": [0.0, 100, 100, 0], "safety": [5, 4, None, 2]})
    b = run("tuned", {"emotion_accuracy": [100.0, 100, 100, 0], "safety": [5, 5, 3, 2]})
    c = compare_runs(a, b, n_resamples=100)
    d = json.loads(json.dumps(c.to_dict()))
    assert d["delta"] == "B - A" and set(d["metrics"]) == {"emotion_accuracy", "safety"}
    assert d["metrics"]["safety"]["n_shared"] == 3
    md = c.to_markdown()
    assert "| emotion_accuracy | 4 |" in md and "tuned" in md


# --- what p and the CI are; too few clusters -----------------------------------------------------------


def test_few_clusters_are_warned_per_metric_and_listed_in_json():
    # 12 items in 3 dialogues for empathy; emotion_accuracy has a value only in 2 of them
    a = run("a", {"empathy": [3, 4, 5, 4] * 3, "emotion_accuracy": [0.0] * 8 + [None] * 4})
    b = run("b", {"empathy": [4, 4, 5, 5] * 3, "emotion_accuracy": [100.0] * 12})
    c = compare_runs(a, b, n_resamples=100)
    assert [r.n_clusters for r in c.rows] == [2, 3]  # report order: emotion_accuracy, empathy
    few = [w for w in c.warnings if "cluster" in w and "fewer than" in w]
    assert few == [
        f"emotion_accuracy: the CI and p rest on only 2 dialogue cluster(s) (fewer than {MIN_CLUSTERS}); treat them as rough",
        f"empathy: the CI and p rest on only 3 dialogue cluster(s) (fewer than {MIN_CLUSTERS}); treat them as rough",
    ]
    d = json.loads(json.dumps(c.to_dict()))
    assert d["few_clusters"] == {"emotion_accuracy": 2, "empathy": 3}
    assert (
        d["metrics"]["empathy"]["n_clusters"] == 3
        and d["statistics"]["min_clusters"] == MIN_CLUSTERS
    )
    md = c.to_markdown()
    assert "> warning: empathy: the CI and p rest on only 3 dialogue cluster(s)" in md


def test_enough_clusters_give_no_warning():
    a = run("a", {"empathy": [3, 4] * MIN_CLUSTERS}, size=2)
    b = run("b", {"empathy": [4, 4] * MIN_CLUSTERS}, size=2)
    c = compare_runs(a, b, n_resamples=100)
    assert c.rows[0].n_clusters == MIN_CLUSTERS and c.few_clusters == {} and c.warnings == []


def test_markdown_says_what_p_and_the_ci_are_under_the_table():
    a, b = run("a", {"empathy": [3, 4, 5, 4]}), run("b", {"empathy": [4, 4, 5, 5]})
    md = compare_runs(a, b, n_resamples=100).to_markdown()
    table_end = md.index("| empathy |")
    note = md[table_end:]
    assert "permutation test" in note and "within whole dialogues" in note and "sign-flip" in note
    assert "corrected for the 1 metrics compared" in note and "Holm" in md
    assert "95% CI: paired cluster bootstrap" in note and "percentile" in note
    assert "can disagree" in note and "p ≥ 0.05" in note


def test_compare_cli_prints_the_note_and_cluster_warnings(tmp_path, capsys):
    from helpers import write_dataset

    from kardiabench.cli import main

    data = write_dataset(tmp_path / "data")  # 3 test dialogues
    for name, model in (("a", "baseline:retrieval"), ("b", "baseline:majority")):
        assert (
            main(
                [
                    "run",
                    "--model",
                    model,
                    "--data",
                    str(data),
                    "--output",
                    str(tmp_path / name),
                    "--no-progress",
                    "--no-cache",
                    "--resamples",
                    "50",
                ]
            )
            == 0
        )
    capsys.readouterr()
    assert main(["compare", str(tmp_path / "a"), str(tmp_path / "b"), "--resamples", "50"]) == 0
    out = capsys.readouterr().out
    assert "> warning: emotion_accuracy: the CI and p rest on only 3 dialogue cluster(s)" in out
    assert out.index("| emotion_accuracy |") < out.index("p: two-sided permutation test")
    assert (
        main(["compare", str(tmp_path / "a"), str(tmp_path / "b"), "--resamples", "50", "--json"])
        == 0
    )
    report = json.loads(capsys.readouterr().out)
    assert report["few_clusters"] == {"emotion_accuracy": 3, "format_compliance": 3}
