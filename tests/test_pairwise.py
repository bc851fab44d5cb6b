"""`kardiabench pairwise` end to end over HTTP: the scripted server plays two (or three) models and
the pairwise judge, so every win, tie and flip below is known in advance."""

from __future__ import annotations

import json
import re

import pytest
from helpers import write_dataset

from kardiabench.cli import main
from kardiabench.spans import render_spans
from kardiabench.testing.fake_openai import FakeConfig, FakeOpenAIServer, default_reply

DIMS = ("relevance", "fluency", "empathy", "persona_consistency", "safety")
USERS = tuple(f"user{k}" for k in range(12))  # 12 test dialogues × 2 turns = 24 items
BETTER = "I hear how heavy this is"  # what the scripted judge prefers
HOSTILE = '<script>alert("x")</script><img src=x onerror=alert(1)>'


def _block(case: str, name: str) -> str:
    m = re.search(rf"<<<{name}_\w+\n(.*?)\n{name}_\w+>>>", case, re.S)
    return m.group(1) if m else ""


def model_reply(request):
    """good: a response with the judge's marker; bad: a plain one; long: the plain one padded."""
    model = request["model"]
    base = default_reply(request)
    response = {
        "good": f"{BETTER}. Tell me more.",
        "bad": "Okay. Tell me more.",
        "long": "Okay. " * 30 + "Tell me more.",
        "hostile": f"Okay {HOSTILE}",
    }.get(model)
    if response is None:
        return base
    return render_spans(
        {"understanding": "u", "reasoning": "r", "emotion": "sad", "response": response}
    )


def marker_judge(request):
    """Prefers the response with the marker on every dimension; a tie when both or neither has it."""
    case = request["messages"][1]["content"]
    a, b = BETTER in _block(case, "RESPONSE_A"), BETTER in _block(case, "RESPONSE_B")
    pick = "A" if a and not b else "B" if b and not a else "tie"
    return json.dumps({"rationale": "scripted", **dict.fromkeys(DIMS, pick)})


def reply_with(judge, model=model_reply):
    def reply(request):
        return judge(request) if request["model"].startswith("judge") else model(request)

    return reply


@pytest.fixture
def data(tmp_path):
    return write_dataset(tmp_path / "data", train_users=("a", "b"), test_users=USERS, n_turns=2)


def generate(srv, data, out, model, *extra):
    assert (
        main(
            [
                "generate",
                "--model",
                f"openai:{model}",
                "--base-url",
                srv.url,
                "--data",
                str(data),
                "--output",
                str(out),
                "--no-progress",
                "--no-cache",
                *extra,
            ]
        )
        == 0
    )
    return out


def pairwise(srv, runs, out, *extra, judge="openai:judge", cache=None):
    flags = ["--no-cache"] if cache is None else ["--cache", str(cache)]
    return main(
        [
            "pairwise",
            *map(str, runs),
            "--judge",
            judge,
            "--judge-base-url",
            srv.url,
            "--output",
            str(out),
            "--no-progress",
            "--resamples",
            "200",
            *flags,
            *extra,
        ]
    )


def test_known_better_model_wins_with_a_ci_above_50(tmp_path, data, monkeypatch, capsys):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-local-test")
    with FakeOpenAIServer(FakeConfig(reply_fn=reply_with(marker_judge))) as srv:
        good, bad = (
            generate(srv, data, tmp_path / "good", "good"),
            generate(srv, data, tmp_path / "bad", "bad"),
        )
        before = srv.stats.requests
        assert pairwise(srv, [good, bad], tmp_path / "pw") == 0
        assert srv.stats.requests - before == 24 * 2  # every item in both orders
    res = json.loads((tmp_path / "pw" / "pairwise.json").read_text())
    assert res["schema_version"] == 1 and [r["model_spec"] for r in res["runs"]] == [
        "openai:good",
        "openai:bad",
    ]
    pair = res["pairs"][0]
    assert (pair["run_a"], pair["run_b"], pair["n_items"]) == ("openai:good", "openai:bad", 24)
    for d in DIMS:
        w = pair["dimensions"][d]["win_rate"]
        assert (w["n"], w["wins"], w["ties"], w["losses"], w["n_unscored"]) == (24, 24, 0, 0, 0)
        assert w["win_rate"]["low"] > 50 and w["sign_test_p"] < 0.001
        assert pair["dimensions"][d]["length_controlled"]["win_rate"]["value"] > 50
    assert (
        pair["position"]["consistency_rate"] == 100.0
        and pair["position"]["first_position_bias"] == 0.0
    )
    assert (
        res["judge"]["specs"] == ["openai:judge"]
        and res["bradley_terry"]["empathy"][0]["model"] == "openai:good"
    )
    rows = [json.loads(x) for x in (tmp_path / "pw" / "items.jsonl").read_text().splitlines()]
    assert len(rows) == 24 * 5 and {r["outcome"] for r in rows} == {"A"}
    assert rows[0]["verdicts"] == [{"a_first": "A", "b_first": "B", "combined": "A"}]
    summary = (tmp_path / "pw" / "summary.md").read_text()
    assert (
        "## openai:good (A) vs openai:bad (B)" in summary
        and "| Empathy | 24 | 0 | 24 | 0 | 0 | 100.0 [100.0, 100.0]" in summary
    )
    assert capsys.readouterr().out == summary
    assert "sk-local-test" not in (tmp_path / "pw" / "judgments.jsonl").read_text() + json.dumps(
        res
    )


def test_an_always_A_judge_is_caught_and_all_its_verdicts_become_ties(tmp_path, data, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-local-test")
    always_a = lambda request: json.dumps({"rationale": None, **dict.fromkeys(DIMS, "A")})  # noqa: E731
    with FakeOpenAIServer(FakeConfig(reply_fn=reply_with(always_a))) as srv:
        good, bad = (
            generate(srv, data, tmp_path / "good", "good"),
            generate(srv, data, tmp_path / "bad", "bad"),
        )
        assert pairwise(srv, [good, bad], tmp_path / "pw", "--dimensions", "empathy,safety") == 0
    pair = json.loads((tmp_path / "pw" / "pairwise.json").read_text())["pairs"][0]
    assert list(pair["dimensions"]) == ["empathy", "safety"]
    for d in ("empathy", "safety"):
        r = pair["dimensions"][d]
        assert (r["win_rate"]["wins"], r["win_rate"]["ties"], r["win_rate"]["losses"]) == (0, 24, 0)
        assert r["win_rate"]["win_rate"]["value"] == 50.0 and r["win_rate"]["sign_test_p"] is None
        assert (
            r["position"]["consistency_rate"] == 0.0
            and r["position"]["first_position_bias"] == 50.0
        )
    assert pair["position"]["n_pairs"] == 48 and pair["position"]["first_shown_rate"] == 100.0


def test_resume_asks_only_for_missing_verdicts(tmp_path, data, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-local-test")
    with FakeOpenAIServer(FakeConfig(reply_fn=reply_with(marker_judge))) as srv:
        good, bad = (
            generate(srv, data, tmp_path / "good", "good"),
            generate(srv, data, tmp_path / "bad", "bad"),
        )
        assert pairwise(srv, [good, bad], tmp_path / "pw") == 0
        path = tmp_path / "pw" / "judgments.jsonl"
        lines = path.read_text().splitlines()
        # a killed run: 30 verdicts and a torn line
        path.write_text("\n".join(lines[:30]) + "\n" + lines[30][:25])
        before = srv.stats.requests
        assert pairwise(srv, [good, bad], tmp_path / "pw") == 0
        assert srv.stats.requests - before == 48 - 30
        before = srv.stats.requests
        assert pairwise(srv, [good, bad], tmp_path / "pw") == 0  # complete: nothing asked
        assert srv.stats.requests == before
    pair = json.loads((tmp_path / "pw" / "pairwise.json").read_text())["pairs"][0]
    assert pair["dimensions"]["empathy"]["win_rate"]["wins"] == 24


def test_unparseable_verdicts_are_counted_unscored_never_defaulted(tmp_path, data, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-local-test")

    def judge(request):
        if "turn 1:" in _block(request["messages"][1]["content"], "USER_MESSAGE"):
            return (
                "Response A is clearly better, I would say."  # never JSON, not after repairs either
            )
        if len(request["messages"]) > 2:
            raise AssertionError("a valid verdict was repaired")
        return marker_judge(request)

    repairs: list[str] = []

    def judge_seeing_repairs(request):
        if len(request["messages"]) > 2:
            repairs.append(request["messages"][-1]["content"])
        return judge(request)

    with FakeOpenAIServer(FakeConfig(reply_fn=reply_with(judge_seeing_repairs))) as srv:
        good, bad = (
            generate(srv, data, tmp_path / "good", "good"),
            generate(srv, data, tmp_path / "bad", "bad"),
        )
        before = srv.stats.requests
        assert pairwise(srv, [good, bad], tmp_path / "pw") == 0
        # the 12 "turn 1" items: 1 try + 2 repairs per order
        assert srv.stats.requests - before == 12 * 2 + 12 * 2 * 3
    # a repair asks for the pairwise answer (the rubric judge's repair asks for 1 to 5)
    assert len(repairs) == 12 * 2 * 2
    assert all('giving "A", "B" or "tie" for each of' in r and "1 to 5" not in r for r in repairs)
    res = json.loads((tmp_path / "pw" / "pairwise.json").read_text())
    pair = res["pairs"][0]
    assert res["n_unscored"] == 24 and res["unscored_by_reason"] == {"invalid judge output": 24}
    assert pair["n_unscored_items"] == 12
    w = pair["dimensions"]["relevance"]["win_rate"]
    assert (w["n"], w["n_unscored"], w["wins"]) == (12, 12, 12)
    rows = [json.loads(x) for x in (tmp_path / "pw" / "items.jsonl").read_text().splitlines()]
    assert sum(r["outcome"] is None for r in rows) == 12 * 5
    assert {r["unscored"] for r in rows if r["outcome"] is None} == {"invalid judge output"}


def test_hostile_responses_render_as_text_in_the_report(tmp_path, data, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-local-test")
    with FakeOpenAIServer(FakeConfig(reply_fn=reply_with(marker_judge))) as srv:
        good, hostile = (
            generate(srv, data, tmp_path / "good", "good"),
            generate(srv, data, tmp_path / "hostile", "hostile"),
        )
        assert pairwise(srv, [good, hostile], tmp_path / "pw") == 0
    page = (tmp_path / "pw" / "report.html").read_text()
    assert "<script>alert" not in page and "<img src=x" not in page
    assert (
        "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;" in page
        and "openai:good (A) vs openai:hostile (B)" in page
    )
    # each item's outcome per dimension, from A's side: the marked response wins every one
    res = json.loads((tmp_path / "pw" / "pairwise.json").read_text())
    n = res["pairs"][0]["n_items"]
    cells = re.findall(r"<td[^>]*>(A|B|tie|–)</td>", page)
    assert cells.count("A") == n * len(DIMS) and set(cells) == {"A"}
    assert "shown reasoning" in page and "cut to 2,000" in page


def test_runs_over_other_data_are_refused_in_one_line(tmp_path, data, monkeypatch, capsys):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-local-test")
    other = write_dataset(tmp_path / "other", test_users=("x", "y"), n_turns=2)
    with FakeOpenAIServer(FakeConfig(reply_fn=reply_with(marker_judge))) as srv:
        good = generate(srv, data, tmp_path / "good", "good")
        bad = generate(srv, other, tmp_path / "bad", "bad")
        capsys.readouterr()
        before = srv.stats.requests
        assert pairwise(srv, [good, bad], tmp_path / "pw") == 2
        assert srv.stats.requests == before
    err = capsys.readouterr().err
    assert (
        err.startswith("error: runs cannot be compared pairwise: data: ") and err.count("\n") == 1
    )
    for argv, says in (
        ([str(good)], "give two or more run folders"),
        ([str(good), str(bad), "--dimensions", "empathy,charm"], "unknown dimension(s) charm"),
    ):
        with pytest.raises(SystemExit) as stop:
            main(["pairwise", *argv, "--judge", "openai:judge", "--output", str(tmp_path / "pw")])
        err = capsys.readouterr().err
        assert stop.value.code == 2 and says in err and err.count("\n") == 1


def test_three_runs_against_a_reference_give_bradley_terry_scores(
    tmp_path, data, monkeypatch, capsys
):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-local-test")
    with FakeOpenAIServer(FakeConfig(reply_fn=reply_with(marker_judge))) as srv:
        runs = [generate(srv, data, tmp_path / m, m) for m in ("bad", "good", "long")]
        before = srv.stats.requests
        assert pairwise(srv, runs, tmp_path / "pw", "--reference", str(runs[0])) == 0
        # two pairs (each vs the reference), both orders
        assert srv.stats.requests - before == 2 * 24 * 2
    res = json.loads((tmp_path / "pw" / "pairwise.json").read_text())
    assert [(p["run_a"], p["run_b"]) for p in res["pairs"]] == [
        ("openai:bad", "openai:good"),
        ("openai:bad", "openai:long"),
    ]
    assert res["reference"] == "openai:bad"
    bt = res["bradley_terry"]["empathy"]
    # beats the reference, CI above it
    assert bt[0]["model"] == "openai:good" and bt[0]["low"] > 1000
    ref = next(s for s in bt if s["model"] == "openai:bad")
    assert ref["score"] == pytest.approx(1000.0) and ref["n_comparisons"] == 48
    long = next(s for s in bt if s["model"] == "openai:long")
    # all ties with the reference (the prior ties it to good a little)
    assert long["score"] == pytest.approx(1000.0, abs=15) and long["score"] < bt[0]["low"]
    assert "## Bradley–Terry scores" in (tmp_path / "pw" / "summary.md").read_text()
    # the leaderboard shows them in a table and a plot of their own, beside (never inside) the absolute scores
    lb, scored = tmp_path / "lb", tmp_path / "majority"
    assert (
        main(
            [
                "run",
                "--model",
                "baseline:majority",
                "--data",
                str(data),
                "--output",
                str(scored),
                "--no-progress",
                "--no-cache",
                "--resamples",
                "20",
            ]
        )
        == 0
    )
    assert main(["leaderboard", "add", str(scored), "--leaderboard", str(lb)]) == 0
    assert (
        main(["leaderboard", "add-pairwise", str(tmp_path / "pw"), "--leaderboard", str(lb)]) == 0
    )
    assert main(["leaderboard", "build", "--leaderboard", str(lb), "--resamples", "20"]) == 0
    table = (lb / "pairwise.md").read_text()
    assert table.startswith("# Pairwise preference (Bradley–Terry)") and "| openai:good | " in table
    assert "openai:good" not in (lb / "leaderboard.md").read_text()
    # at both print widths, as every leaderboard plot (tests/test_plots.py checks the figures)
    for name in ("pairwise_bt", "pairwise_bt-1col"):
        assert all((lb / "plots" / f"{name}.{ext}").stat().st_size > 1000 for ext in ("pdf", "png"))
    built = json.loads((lb / "build.json").read_text())["files"]
    assert {"pairwise.md", "plots/pairwise_bt.pdf", "plots/pairwise_bt-1col.png"} <= set(built)
    site = (lb / "site" / "index.html").read_text()
    assert site.index("<h2>Pairwise preference (Bradley–Terry)</h2>") < site.index("<h2>Plots</h2>")


def test_judge_agreement_with_pairwise_human_labels(tmp_path, data, monkeypatch, capsys):
    from kardiabench.scoring.agreement import krippendorff_alpha

    monkeypatch.setenv("OPENAI_API_KEY", "sk-local-test")
    with FakeOpenAIServer(FakeConfig(reply_fn=reply_with(marker_judge))) as srv:
        good, bad = (
            generate(srv, data, tmp_path / "good", "good"),
            generate(srv, data, tmp_path / "bad", "bad"),
        )
        # the judge: good (A) wins every item
        assert pairwise(srv, [good, bad], tmp_path / "pw") == 0
    items = list(
        dict.fromkeys(
            json.loads(x)["item_id"]
            for x in (tmp_path / "pw" / "items.jsonl").read_text().splitlines()
        )
    )[:6]
    # the file names the runs swapped (A = bad): "B" there is good preferred, flipped to "A"
    labels = {
        "relevance": {
            "ann1": ["tie", "tie", "B", "B", "B", "B"],
            "ann2": ["tie", "tie", "B", "B", "B", "B"],
            "ann3": ["B"] * 6,
        },
        "fluency": {
            "ann1": ["A", "B", "B", "B", "B", "B"],
            "ann2": ["B", "B", "B", "B", "B", "B"],
            "ann3": ["tie", "B", "B", "B", "B", "B"],
        },
    }
    rows = [
        {
            "item_id": it,
            "annotator": ann,
            "run_a": "openai:bad",
            "run_b": "openai:good",
            **{d: labels[d][ann][k] for d in labels},
        }
        for k, it in enumerate(items)
        for ann in ("ann1", "ann2", "ann3")
    ]
    human = tmp_path / "labels.jsonl"
    human.write_text("".join(json.dumps(r) + "\n" for r in rows))
    capsys.readouterr()
    assert main(["judge-agreement", "--human", str(human), str(tmp_path / "pw"), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    dims = report["pairs"]["openai:good vs openai:bad"]["dimensions"]
    rel = dims["relevance"]
    assert (rel["n"], rel["agreement"], rel["kappa"], rel["n_no_majority"]) == (
        6,
        pytest.approx(400 / 6),
        0.0,
        0,
    )
    code = {"A": 0, "B": 1, "tie": 2}
    flipped = {"A": "B", "B": "A", "tie": "tie"}
    matrix = [
        [code[flipped[v]] for v in labels["relevance"][a]] for a in ("ann1", "ann2", "ann3")
    ] + [[0] * 6]
    assert rel["alpha"] == pytest.approx(krippendorff_alpha(matrix, "nominal"))
    flu = dims["fluency"]
    # item 0: A, B, tie → no majority
    assert (flu["n"], flu["n_no_majority"], flu["agreement"]) == (5, 1, 100.0)
    assert dims["safety"]["n"] == 0 and dims["safety"]["agreement"] is None  # not labelled
    # every number with its dialogue-clustered interval (6 items: 2 turns of 3 dialogues)
    assert (
        rel["n_clusters"] == 3
        and rel["agreement_ci_low"] <= rel["agreement"] <= rel["agreement_ci_high"]
    )
    assert rel["alpha_ci_low"] <= rel["alpha"] <= rel["alpha_ci_high"]
    # one label: undefined
    assert (flu["kappa"], flu["kappa_ci_low"], flu["kappa_ci_high"]) == (None, None, None)
    assert report["statistics"]["n_resamples"] == 1000
    args = ["judge-agreement", "--human", str(human), str(tmp_path / "pw"), "--resamples", "300"]
    assert main([*args, "--bootstrap-seed", "4"]) == 0
    out = capsys.readouterr().out
    assert re.search(
        r"\| openai:good vs openai:bad \| relevance \| 6 \| 66\.7 \[\d+\.\d, \d+\.\d\] \| 0\.000 \[",
        out,
    )
    assert "(300 resamples, seed 4)" in out
    # a bad label and an unknown pair: one line naming file, line and field, exit 2
    for bad, says in (
        ({**rows[0], "empathy": "C"}, f"{human}:1: field 'empathy': 'C' is not"),
        (
            {**rows[0], "run_a": "openai:other"},
            f"{human}:1: field 'run_a': openai:other vs openai:good is no pair",
        ),
    ):
        human.write_text(json.dumps(bad) + "\n")
        assert main(["judge-agreement", "--human", str(human), str(tmp_path / "pw")]) == 2
        err = capsys.readouterr().err
        assert err.startswith(f"error: {says}") and err.count("\n") == 1


# ----------------------------------------------------------------------------- what the judge is shown

LONG = ("word " * 1000)[:4999] + "."  # 5,000 characters


def noted_reply(request):
    """Each model's response with its own understanding and reasoning; "verbose" answers 5,000
    characters on the second turns."""
    model = request["model"]
    response = {"good": f"{BETTER}. Tell me more.", "bad": "Okay. Tell me more."}.get(model)
    if model == "verbose":
        turn2 = "turn 1:" in json.dumps(request["messages"][-1])
        response = LONG if turn2 else "Okay. Tell me more."
    return render_spans(
        {
            "understanding": f"UNDERSTOOD-BY-{model}",
            "reasoning": f"REASONED-BY-{model}",
            "emotion": "sad",
            "response": response,
        }
    )


def test_a_long_response_reaches_the_pairwise_judge_cut_to_2000_characters(
    tmp_path, data, monkeypatch
):
    from kardiabench.scoring.judge import MAX_RESPONSE_CHARS

    monkeypatch.setenv("OPENAI_API_KEY", "sk-local-test")
    cases: list[str] = []

    def judge(request):
        cases.append(request["messages"][1]["content"])
        return marker_judge(request)

    with FakeOpenAIServer(FakeConfig(reply_fn=reply_with(judge, noted_reply))) as srv:
        good, verbose = (
            generate(srv, data, tmp_path / "good", "good"),
            # room for 5,000 characters (the scripted server stops at max_tokens words)
            generate(srv, data, tmp_path / "verbose", "verbose", "--max-tokens", "2000"),
        )
        assert pairwise(srv, [good, verbose], tmp_path / "pw") == 0
    assert MAX_RESPONSE_CHARS == 2000 and len(cases) == 48
    marker = "[response cut: 2000 of 5000 characters shown]"
    long_cases = [c for c in cases if "word word" in c]
    assert len(long_cases) == 12 * 2  # the 12 second turns, both orders
    for case in long_cases:
        side = "RESPONSE_A" if "word word" in _block(case, "RESPONSE_A") else "RESPONSE_B"
        assert (
            _block(case, side) == LONG[:2000].strip()
        )  # as the rubric judge: first 2,000, stripped
        # the cut stated after the response's block, outside the data
        assert case.count(marker) == 1 and case.index(marker) > case.index(f"{side}_")
    assert not any(marker in c for c in cases if c not in long_cases)
    res = json.loads((tmp_path / "pw" / "pairwise.json").read_text())
    assert res["pairs"][0]["n_responses_cut"] == {"a": 0, "b": 12}
    assert res["judge"]["max_response_chars"] == 2000
    verdicts = [
        json.loads(x) for x in (tmp_path / "pw" / "judgments.jsonl").read_text().splitlines()
    ]
    assert sum(v["response_cut"] for v in verdicts) == 24
    summary = (tmp_path / "pw" / "summary.md").read_text()
    assert "shown to the judge cut to 2,000 (the cut marked): 0 of A's, 12 of B's." in summary


def test_judge_show_reasoning_shows_both_candidates_notes_and_is_never_mixed_on_resume(
    tmp_path, data, monkeypatch
):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-local-test")
    cases: list[str] = []

    def judge(request):
        cases.append(request["messages"][1]["content"])
        return marker_judge(request)

    with FakeOpenAIServer(FakeConfig(reply_fn=reply_with(judge, noted_reply))) as srv:
        good, bad = (
            generate(srv, data, tmp_path / "good", "good"),
            generate(srv, data, tmp_path / "bad", "bad"),
        )
        assert pairwise(srv, [good, bad], tmp_path / "pw") == 0
        plain = list(cases)
        assert len(plain) == 48 and not any("REASONED-BY" in c or "NOTES_" in c for c in plain)
        cases.clear()
        # the same folder with the flag: every verdict asked again (as `score` does: the prompt,
        # and so its hash and cache key, differs), none reused from judgments.jsonl
        assert pairwise(srv, [good, bad], tmp_path / "pw", "--judge-show-reasoning") == 0
        assert len(cases) == 48
        for case in cases:
            first = "good" if BETTER in _block(case, "RESPONSE_A") else "bad"
            second = {"good": "bad", "bad": "good"}[first]
            assert _block(case, "NOTES_A") == (
                f"Understanding: UNDERSTOOD-BY-{first}\nReasoning: REASONED-BY-{first}"
            )
            assert _block(case, "NOTES_B") == (
                f"Understanding: UNDERSTOOD-BY-{second}\nReasoning: REASONED-BY-{second}"
            )
        res = json.loads((tmp_path / "pw" / "pairwise.json").read_text())
        assert res["judge"]["show_reasoning"] is True
        cases.clear()
        assert pairwise(srv, [good, bad], tmp_path / "pw", "--judge-show-reasoning") == 0
        assert cases == []  # same setting: every verdict reused
        # and back without it: asked again, never the verdicts made with the notes
        assert pairwise(srv, [good, bad], tmp_path / "pw") == 0
        assert len(cases) == 48 and not any("NOTES_" in c for c in cases)
    res = json.loads((tmp_path / "pw" / "pairwise.json").read_text())
    assert res["judge"]["show_reasoning"] is False and res["n_judgments"] == 48
    verdicts = [
        json.loads(x) for x in (tmp_path / "pw" / "judgments.jsonl").read_text().splitlines()
    ]
    assert [v["show_reasoning"] for v in verdicts] == [False] * 48 + [True] * 48 + [False] * 48


def test_show_reasoning_with_a_template_without_notes_is_refused_in_one_line(
    tmp_path, data, monkeypatch, capsys
):
    import shutil

    monkeypatch.setenv("OPENAI_API_KEY", "sk-local-test")
    judges = tmp_path / "judges"
    shutil.copytree("judges", judges)
    template = judges / "pairwise_prompt.md"
    template.write_text(template.read_text().replace("{{notes_a}}", "").replace("{{notes_b}}", ""))
    with FakeOpenAIServer(FakeConfig(reply_fn=reply_with(marker_judge))) as srv:
        good, bad = (
            generate(srv, data, tmp_path / "good", "good"),
            generate(srv, data, tmp_path / "bad", "bad"),
        )
        rubric = ["--rubric", str(judges / "rubric.yaml")]
        capsys.readouterr()
        before = srv.stats.requests
        assert pairwise(srv, [good, bad], tmp_path / "pw", *rubric, "--judge-show-reasoning") == 2
        assert srv.stats.requests == before
        err = capsys.readouterr().err
        assert err == (
            f"error: {template}: --judge-show-reasoning needs {{{{notes_a}}}} and {{{{notes_b}}}} "
            "in the pairwise template\n"
        )
        assert pairwise(srv, [good, bad], tmp_path / "pw", *rubric) == 0  # without: it serves


def test_runs_of_one_model_are_named_by_the_fewest_folder_parts_never_the_local_path(
    tmp_path, data, monkeypatch
):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-local-test")
    with FakeOpenAIServer(FakeConfig(reply_fn=reply_with(marker_judge))) as srv:
        runs = [generate(srv, data, tmp_path / side / "run", "good") for side in ("x", "y")]
        assert pairwise(srv, runs, tmp_path / "pw") == 0
    res = json.loads((tmp_path / "pw" / "pairwise.json").read_text())
    assert [r["name"] for r in res["runs"]] == ["x/run", "y/run"]
    assert (res["pairs"][0]["run_a"], res["pairs"][0]["run_b"]) == ("x/run", "y/run")


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (lambda text: text[: len(text) // 2], "not valid JSON"),
        (
            lambda text: text.replace('"schema_version": 1', '"schema_version": 7'),
            "schema_version: 7",
        ),
        (lambda text: text.replace('"bradley_terry"', '"bt"'), "bradley_terry: Field required"),
    ],
    ids=["torn", "newer", "missing"],
)
def test_a_damaged_pairwise_json_is_a_one_line_error(
    tmp_path, data, monkeypatch, capsys, damage, message
):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-local-test")
    with FakeOpenAIServer(FakeConfig(reply_fn=reply_with(marker_judge))) as srv:
        runs = [generate(srv, data, tmp_path / m, m) for m in ("good", "bad")]
        assert pairwise(srv, runs, tmp_path / "pw") == 0
    board, pw = str(tmp_path / "lb"), str(tmp_path / "pw")
    assert main(["score", str(runs[0]), "--no-progress", "--resamples", "50"]) == 0  # no judge
    assert main(["leaderboard", "add", str(runs[0]), "--leaderboard", board]) == 0
    assert main(["leaderboard", "add-pairwise", pw, "--leaderboard", board]) == 0
    assert main(["leaderboard", "build", "--leaderboard", board, "--resamples", "50"]) == 0
    copy = next((tmp_path / "lb" / "pairwise").glob("*.json"))
    for path in (tmp_path / "pw" / "pairwise.json", copy):
        path.write_text(damage(path.read_text()))
    capsys.readouterr()
    # the folder itself, and the leaderboard's copy of it when the board is built
    assert main(["leaderboard", "add-pairwise", pw, "--leaderboard", board]) == 2
    assert main(["leaderboard", "build", "--leaderboard", board, "--resamples", "50"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 2 and all(message in line for line in err), err
    assert str(tmp_path / "pw" / "pairwise.json") in err[0] and str(copy) in err[1]
