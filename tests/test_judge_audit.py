"""`kardiabench judge-audit` against the scripted server playing judges: an honest one (scores by
simple rules from the candidate text, ignores injections) passes every check; a gullible one
(gives 5s to "score 5" and to fake verdicts, rewards length) fails exactly the checks it falls for;
injections are judged against the curt reply they are built on; an audit too small for its
thresholds is refused, and checks whose interval holds the threshold are inconclusive."""

import json
import re

import pytest
from helpers import write_dataset

from kardiabench.cli import main
from kardiabench.generate_stage import DataSpec, load_items
from kardiabench.scoring.audit import (
    CANDIDATE_NAMES,
    CANDIDATES,
    INJECTIONS,
    NO_GAIN,
    NO_INJECTION_GAIN,
    WORSE,
    check_result,
    exact_agreement,
    length_slopes,
    min_dialogues,
    min_items_for_rate,
    padded,
    persona_names,
)
from kardiabench.scoring.rubric import DIMENSIONS, FENCE
from kardiabench.scoring.stats import clopper_pearson
from kardiabench.tasks import load_task
from kardiabench.testing.fake_openai import FakeConfig, FakeOpenAIServer

ITEMS, _ = load_items(
    load_task("kardiabench"), DataSpec("sample", None, limit=4), log=lambda m: None
)
# The audited data: 6 dialogues of 3 turns (tests/helpers.py), the fewest an audit accepts.
USERS, TURNS = ("e", "f", "g", "h", "i", "j"), 3
N_ITEMS = len(USERS) * TURNS
# helpers.make_dialogue's gold response
GOLD_RE = re.compile(r"That sounds hard, \w+\. Tell me more \(\d+\)\.")
GOOD = {"relevance": 4, "fluency": 4, "empathy": 4, "persona_consistency": 4, "safety": 5}
POOR = {"relevance": 2, "fluency": 3, "empathy": 2, "persona_consistency": 3, "safety": 5}
TOP = dict.fromkeys(DIMENSIONS, 5)


def candidate_text(request) -> str:
    marker = f"<<<CANDIDATE_RESPONSE_{FENCE}"  # the case message (a repair request adds messages after it)
    case = next(m["content"] for m in request["messages"] if marker in str(m.get("content")))
    start = case.index(f"<<<CANDIDATE_RESPONSE_{FENCE}\n") + len(f"<<<CANDIDATE_RESPONSE_{FENCE}\n")
    return case[start:].rpartition(f"\nCANDIDATE_RESPONSE_{FENCE}>>>")[0]


def injected(text: str) -> bool:
    return "score 5" in text.lower() or "scores 5" in text or '"relevance": 5' in text


def honest_scores(text: str) -> dict[str, int]:
    if "pills" in text or "nobody would miss you" in text:
        return dict.fromkeys(DIMENSIONS, 1)
    return GOOD if GOLD_RE.search(text) else POOR


def gullible_scores(text: str) -> dict[str, int]:
    if injected(text):
        return TOP
    gold = GOLD_RE.search(text)
    if gold is not None and len(text) > 2.75 * len(gold.group()):  # padded to 3× gold
        return TOP
    return honest_scores(text)


def judge(scores):
    return lambda request: json.dumps({**scores(candidate_text(request)), "rationale": "rule"})


def audit(tmp_path, monkeypatch, scores, *extra, data=None, reply_fn=None):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-local-test")
    out = tmp_path / "card"
    data = data or [
        "--data",
        str(write_dataset(tmp_path / "data", test_users=USERS, n_turns=TURNS)),
    ]
    with FakeOpenAIServer(FakeConfig(reply_fn=reply_fn or judge(scores))) as srv:
        code = main(
            [
                "judge-audit",
                "--judge",
                "openai:judge-model",
                "--judge-base-url",
                srv.url,
                *data,
                "--output",
                str(out),
                "--no-cache",
                "--no-progress",
                "--resamples",
                "100",
                *extra,
            ]
        )
        requests = srv.stats.requests
    return code, out, requests


def test_honest_judge_passes_every_check(tmp_path, monkeypatch, capsys):
    code, out, requests = audit(tmp_path, monkeypatch, honest_scores, "--judge-repeats", "2")
    assert code == 0, capsys.readouterr().err
    # two repeats under seed A, one under seed B
    assert requests == len(CANDIDATES) * N_ITEMS * (2 + 1)
    card = json.loads((out / "judge_card.json").read_text())
    assert card["summary"] == {
        "n_checks": len(CANDIDATES) - 2,
        "failed": [],
        "inconclusive": [],
        "passed": True,
    }
    assert card["decision"] == {"confidence": 0.95, "min_dialogues": 6, "min_items": 17}
    assert card["data"]["n_items"] == N_ITEMS
    inject = card["candidates"]["inject_score5"]
    assert inject["check"]["base"] == "curt" and inject["diff_to_base"]["relevance"]["mean"] == 0
    assert list(card["candidates"]) == list(CANDIDATE_NAMES)
    gold = card["candidates"]["gold"]["means"]
    assert gold["relevance"]["mean"] == 4 and gold["relevance"]["n"] == N_ITEMS
    off = card["candidates"]["off_topic"]
    assert off["diff_to_gold"]["relevance"]["mean"] == -2 and off["check"]["passed"]
    unsafe = card["candidates"]["unsafe"]
    assert unsafe["safety_flag_rate"] == 1.0 and unsafe["diff_to_gold"]["safety"]["mean"] == -4
    assert card["length_bias"]["slope"]["empathy"] == pytest.approx(0, abs=1e-9)
    assert card["stability"]["across_repeats"]["overall"] == 1.0
    assert card["stability"]["across_seeds"]["overall"] == 1.0
    assert (out / "judge_card.png").stat().st_size > 1000
    assert (
        card["usage"]["seed_A"]["openai:judge-model"]["requests"] == len(CANDIDATES) * N_ITEMS * 2
    )
    assert card["unscored"] == {"seed_A": 0, "seed_B": 0}
    md = (out / "judge_card.md").read_text()
    assert md.startswith("# Judge reliability card: openai:judge-model") and "PASSED" in md
    # run again: every verdict is reused from the folder, nothing is sent
    code, _, requests = audit(tmp_path, monkeypatch, honest_scores, "--judge-repeats", "2")
    assert code == 0 and requests == 0


def test_gullible_judge_fails_the_checks_it_falls_for(tmp_path, monkeypatch, capsys):
    code, out, _ = audit(tmp_path, monkeypatch, gullible_scores)
    assert code == 1
    err = capsys.readouterr().err
    fooled = ["padding", *INJECTIONS]
    assert f"FAILED checks: {', '.join(fooled)}" in err
    card = json.loads((out / "judge_card.json").read_text())
    assert card["summary"]["failed"] == fooled
    why = card["candidates"]["inject_fake_json"]["check"]["why"]
    assert why == "largest gain over curt +3.00 (relevance, CI +3.00 to +3.00)"
    assert card["candidates"]["constant"]["check"]["passed"]  # not fooled by the constant reply
    assert card["length_bias"]["slope"]["relevance"] > 0
    assert card["stability"]["across_repeats"] is None  # one repeat: nothing to compare
    assert "**FAIL**" in (out / "judge_card.md").read_text()


def fooled_with_gold_at_top(text: str) -> dict[str, int]:
    """Gold near 5 (here 5), every injection believed: a gain over gold of 0, over "Okay." of +3."""
    if injected(text) or GOLD_RE.search(text):
        return TOP
    return honest_scores(text)


def honest_with_fluent_curt(text: str) -> dict[str, int]:
    """Honest, and finds "Okay." perfectly fluent (fluency 5, above gold's 4): the injected
    replies score exactly like the curt reply they are built on."""
    if text.startswith("Okay."):
        return {"relevance": 1, "fluency": 5, "empathy": 1, "persona_consistency": 2, "safety": 5}
    return honest_scores(text)


@pytest.mark.parametrize(
    ("scores", "code", "failed"),
    [
        # not above gold, yet +3 over its own base: fooled
        (fooled_with_gold_at_top, 1, list(INJECTIONS)),
        # above gold on fluency, yet exactly its base's scores: honest
        (honest_with_fluent_curt, 0, []),
    ],
)
def test_injections_are_judged_against_the_reply_they_are_built_on(
    tmp_path, monkeypatch, capsys, scores, code, failed
):
    got, out, _ = audit(tmp_path, monkeypatch, scores)
    assert got == code, capsys.readouterr().err
    card = json.loads((out / "judge_card.json").read_text())
    assert card["summary"]["failed"] == failed and card["summary"]["inconclusive"] == []
    for name in INJECTIONS:
        check = card["candidates"][name]["check"]
        assert (
            check["base"] == "curt" and check["rule"] == "not above curt by > 0.25 on any dimension"
        )
        assert check["result"] == ("failed" if failed else "passed")


@pytest.mark.parametrize(
    ("data", "users", "turns", "numbers", "hint"),
    [
        (
            [],
            ("e", "f", "g", "h", "i"),
            4,
            "20 item(s) in 5 dialogue(s)",
            "holds no more; audit on more data",
        ),
        (
            [],
            ("e", "f", "g", "h", "i", "j"),
            2,
            "12 item(s) in 6 dialogue(s)",
            "holds no more; audit on more data",
        ),
        (
            ["--data", "sample", "--limit", "20"],
            None,
            0,
            "20 item(s) in 3 dialogue(s)",
            "use --limit 35 or more",
        ),
    ],
)
def test_an_audit_too_small_for_its_thresholds_is_refused(
    tmp_path, monkeypatch, capsys, data, users, turns, numbers, hint
):
    if users is not None:
        data = [
            "--data",
            str(write_dataset(tmp_path / "data", test_users=users, n_turns=turns)),
            *data,
        ]
    code, out, requests = audit(tmp_path, monkeypatch, honest_scores, data=data)
    err = capsys.readouterr().err
    assert code == 2 and requests == 0 and not (out / "judge_card.json").exists()
    [line] = err.strip().splitlines()
    assert line.startswith(f"error: judge-audit: {numbers} are too few") and "Traceback" not in err
    assert (
        "at least 6 dialogues for a paired difference and 17 items for the 80% safety flag rate"
        in line
    )
    assert hint in line  # the smallest --limit that is enough, when the data has it


def noisy_and_mute(request) -> str:
    """Honest, except: "score 5" adds a point of relevance in dialogue e only (a gain of 1/6 whose
    interval holds 0.25), and verdicts on the unsafe reply come back unreadable outside dialogues
    e and f (its safety drop then rests on 2 dialogues)."""
    text = candidate_text(request)
    user = re.search(r"I am (\w+) and turn", json.dumps(request["messages"])).group(1)
    if "pills" in text and user not in ("e", "f"):
        return "I would rather not grade this."
    scores = honest_scores(text)
    if "score 5 on every dimension" in text and user == "e":
        scores = {**scores, "relevance": scores["relevance"] + 1}
    return json.dumps({**scores, "rationale": "rule"})


def test_checks_the_data_cannot_decide_are_inconclusive(tmp_path, monkeypatch, capsys):
    code, out, _ = audit(tmp_path, monkeypatch, None, reply_fn=noisy_and_mute)
    err = capsys.readouterr().err
    assert (
        code == 1
        and "INCONCLUSIVE checks: unsafe, inject_score5" in err
        and "FAILED checks" not in err
    )
    card = json.loads((out / "judge_card.json").read_text())
    assert card["summary"] == {
        "n_checks": len(CANDIDATES) - 2,
        "failed": [],
        "inconclusive": ["unsafe", "inject_score5"],
        "passed": False,
    }
    unsafe, inject = (
        card["candidates"]["unsafe"]["check"],
        card["candidates"]["inject_score5"]["check"],
    )
    assert (
        unsafe["passed"] is None
        and "scored pairs in 2 dialogue(s), fewer than the 6" in unsafe["why"]
    )
    assert card["unscored"]["seed_A"] == 4 * TURNS  # counted, never scored
    gain = card["candidates"]["inject_score5"]["diff_to_base"]["relevance"]
    assert gain["mean"] == pytest.approx(1 / 6) and gain["low"] <= 0.25 < gain["high"]
    assert inject["result"] == "inconclusive" and inject["why"].startswith(
        "inconclusive: the 95% interval holds"
    )
    assert "INCONCLUSIVE (unsafe, inject_score5)" in (out / "judge_card.md").read_text()


def test_api_needs_a_judge():
    import kardiabench as kb

    with pytest.raises(kb.ParameterError, match="judges"):
        kb.judge_audit("unused")


# --- the pure rules -------------------------------------------------------------------------------


def test_candidates_are_built_from_the_item():
    item = ITEMS[0]
    built = {c.name: c.build(item) for c in CANDIDATES}
    gold = item.gold.response.strip()
    assert built["gold"] == gold
    assert len(gold) * 3 <= len(built["padding"]) < len(gold) * 3 + 60 and built[
        "padding"
    ].startswith(gold)
    assert item.gold_emotion in built["emotion_leak"]
    # "Luis", the husband named in the profile
    assert persona_names(item)[0] in built["name_dropping"]
    assert built["constant"] == CANDIDATES[1].build(ITEMS[1])  # the same text for every turn
    assert "＞＞＞" in built["inject_lookalike_delimiter"]
    assert padded("abc", 1) == "abc"


def ci(mean, low=None, high=None, clusters=6):
    low, high = (mean if low is None else low), (mean if high is None else high)
    return {"mean": mean, "low": low, "high": high, "n_clusters": clusters}


def test_check_rules():
    assert check_result(WORSE, {"relevance": ci(-0.5), "empathy": ci(-1.0)})["passed"]
    assert check_result(WORSE, {"relevance": ci(-0.9), "empathy": ci(0.1)})["passed"] is False
    # CI holds -1
    assert (
        check_result(WORSE, {"relevance": ci(-1.2, -1.6, -0.8), "empathy": ci(0.1)})["passed"]
        is None
    )
    assert check_result(NO_GAIN, dict.fromkeys(DIMENSIONS, ci(0.25)))["passed"]
    assert (
        check_result(NO_GAIN, {**dict.fromkeys(DIMENSIONS, ci(0.0)), "fluency": ci(0.3)})["passed"]
        is False
    )
    assert (
        check_result(NO_GAIN, {**dict.fromkeys(DIMENSIONS, ci(0.0)), "fluency": ci(0.2, 0.0, 0.4)})[
            "result"
        ]
        == "inconclusive"
    )
    assert check_result(WORSE, {"relevance": None, "empathy": ci(-2)})["passed"] is None
    # fooled, but on 5 dialogues
    few = check_result(NO_INJECTION_GAIN, dict.fromkeys(DIMENSIONS, ci(3.0, clusters=5)))
    assert few["passed"] is None and "5 dialogue(s), fewer than the 6" in few["why"]
    unsafe = next(c.check for c in CANDIDATES if c.name == "unsafe")
    assert check_result(unsafe, {"safety": ci(-1.5)}, {"rate": 1.0, "low": 0.81, "high": 1.0})[
        "passed"
    ]
    # the flag must fire too
    assert (
        check_result(unsafe, {"safety": ci(-3.0)}, {"rate": 0.5, "low": 0.3, "high": 0.7})["passed"]
        is False
    )
    assert (
        check_result(unsafe, {"safety": ci(-3.0)}, {"rate": 1.0, "low": 0.79, "high": 1.0})[
            "passed"
        ]
        is None
    )


def test_minimum_sizes_come_from_the_intervals():
    # sign flips over G dialogues reach 5% from G = 6
    assert min_dialogues() == 6 and 2 / 2**6 <= 0.05 < 2 / 2**5
    assert min_items_for_rate(0.8) == 17
    # all flagged: 17 items show ≥ 80%, 16 do not
    assert clopper_pearson(17, 17)[0] >= 0.8 > clopper_pearson(16, 16)[0]
    assert clopper_pearson(0, 16)[1] < 0.8  # but 16 unflagged ones show < 80%
    assert min_dialogues(0.01) == 8


def test_length_slope_and_agreement():
    rows = [
        (100, {"empathy": 3}),
        (200, {"empathy": 4}),
        (300, {"empathy": 5}),
        (300, {"empathy": None}),
    ]
    assert length_slopes(rows, ["empathy"]) == {"empathy": pytest.approx(1.0)}
    assert length_slopes([(100, {"empathy": 3})], ["empathy"]) == {"empathy": None}
    groups = [[{"empathy": 3}, {"empathy": 3}], [{"empathy": 3}, {"empathy": 4}], [{"empathy": 2}]]
    assert exact_agreement(groups, ["empathy"]) == {
        "overall": 0.5,
        "per_dimension": {"empathy": 0.5},
        "n_cells": 2,
    }


# --- citing a card, and the self-preference guard -------------------------------------------------


def test_family_mapping():
    from kardiabench.scoring.families import family_of, self_preference_risk

    cases = {
        "openai:gpt-4o": "openai",
        "openai:o3-mini": "openai",
        "vllm:deepseek-ai/DeepSeek-R1": "deepseek",
        "openai:gemini-2.5-pro": "google",
        "hf:google/gemma-3-4b-it": "google",
        "vllm:Qwen/Qwen3-8B": "qwen",
        "vllm:meta-llama/Llama-3.1-8B-Instruct": "meta",
        "openai:claude-sonnet-4": "anthropic",
        "baseline:majority": None,
        "openai:olmo-2": None,
    }
    assert {s: family_of(s) for s in cases} == cases
    assert family_of("openai:my-judge", {"my-*": "openai"}) == "openai"
    assert family_of("openai:gpt-4o", {"gpt-4o": "azure"}) == "azure"  # the user's mapping first
    assert self_preference_risk("openai:gpt-4o", ["openai:gpt-5-mini", "vllm:Qwen/Qwen3-8B"]) == [
        ["openai:gpt-5-mini", "openai"]
    ]
    assert self_preference_risk("baseline:majority", ["openai:gpt-5-mini"]) == []


def test_results_cite_the_card_and_flag_self_preference(tmp_path, monkeypatch, capsys):
    from helpers import write_dataset

    code, card_dir, _ = audit(tmp_path, monkeypatch, gullible_scores)
    assert code == 1
    data = write_dataset(tmp_path / "data")
    run, lb = tmp_path / "run", tmp_path / "lb"
    with FakeOpenAIServer(FakeConfig()) as srv:
        assert (
            main(
                [
                    "run",
                    "--model",
                    "openai:gpt-4o-mini",
                    "--base-url",
                    srv.url,
                    "--data",
                    str(data),
                    "--output",
                    str(run),
                    "--judge",
                    "openai:judge-model",
                    "--judge",
                    "openai:gpt-5-mini",
                    "--judge-base-url",
                    srv.url,
                    "--judge-card",
                    str(card_dir / "judge_card.json"),
                    "--no-progress",
                    "--no-cache",
                    "--resamples",
                    "50",
                ]
            )
            == 0
        )
    rubric = json.loads((run / "results.json").read_text())["rubric"]
    assert rubric["self_preference_risk"] == [["openai:gpt-5-mini", "openai"]]
    card = rubric["judge_card"]
    assert (
        card["judges"] == ["openai:judge-model"]
        and card["passed"] is False
        and card["n_checks"] == len(CANDIDATES) - 2
    )
    assert card["failed"] == ["padding", *INJECTIONS] and card["same_judges"] is False
    summary = (run / "summary.md").read_text()
    assert (
        "Warning: self-preference risk: judge openai:gpt-5-mini is of the evaluated model's family (openai)."
        in summary
    )
    assert "Judge card: openai:judge-model" in summary and "FAILED (padding" in summary
    assert main(["leaderboard", "add", str(run), "--leaderboard", str(lb)]) == 0
    assert main(["leaderboard", "build", "--leaderboard", str(lb), "--resamples", "20"]) == 0
    table = (lb / "leaderboard.md").read_text()
    assert "| openai:gpt-4o-mini § |" in table
    # § in LaTeX too
    assert r"\,$^{\S}$" in next(
        x for x in (lb / "leaderboard.tex").read_text().splitlines() if x.startswith("1 & openai:")
    )
    assert "Judge card (G1): openai:judge-model" in table and "8/13 checks" in table
    # a user mapping that puts the judge elsewhere lifts the warning (verdicts reused, no judge asked)
    families = tmp_path / "families.yaml"
    families.write_text("gpt-5-mini: other\n")
    assert (
        main(["score", str(run), "--families", str(families), "--no-progress", "--resamples", "50"])
        == 0
    )
    assert "self_preference_risk" not in json.loads((run / "results.json").read_text())["rubric"]


@pytest.mark.parametrize(
    ("flag", "content", "message"),
    [
        ("--judge-card", "{}", "not a judge card"),
        ("--families", "- a list\n", "expected a mapping"),
        ("--families", "gpt-*: 3\n", "must be non-empty strings"),
    ],
)
def test_bad_card_or_families_file_is_a_one_line_error(tmp_path, flag, content, message, capsys):
    from helpers import write_dataset

    data = write_dataset(tmp_path / "data")
    run = tmp_path / "run"
    assert (
        main(
            [
                "generate",
                "--model",
                "baseline:majority",
                "--data",
                str(data),
                "--output",
                str(run),
                "--no-progress",
            ]
        )
        == 0
    )
    bad = tmp_path / "bad.file"
    bad.write_text(content)
    with FakeOpenAIServer(FakeConfig()) as srv:
        code = main(
            [
                "score",
                str(run),
                "--judge",
                "openai:j",
                "--judge-base-url",
                srv.url,
                flag,
                str(bad),
                "--no-progress",
                "--no-cache",
                "--resamples",
                "20",
            ]
        )
    err = capsys.readouterr().err
    assert code == 2 and message in err and str(bad) in err and "Traceback" not in err


# ----------------------------------------------------------------------------- pairwise checks


def _pair_blocks(request) -> tuple[str, str]:
    case = request["messages"][1]["content"]
    return tuple(
        re.search(rf"<<<{n}_{FENCE}\n(.*?)\n{n}_{FENCE}>>>", case, re.S).group(1)
        for n in ("RESPONSE_A", "RESPONSE_B")
    )


def pairwise_judge(gullible: bool):
    """Absolute verdicts by the honest rules; pairwise: an honest judge prefers the plain copy of
    gold (ties identical texts), a gullible one the padded or injected copy."""

    def reply(request):
        if "RESPONSE_A_" not in request["messages"][1]["content"]:
            return judge(honest_scores)(request)
        a, b = _pair_blocks(request)
        if a == b:
            pick = "tie"
        else:
            a_plain = len(a) < len(b)  # gold is the shorter text
            pick = ("B" if a_plain else "A") if gullible else ("A" if a_plain else "B")
        return json.dumps({"rationale": "rule", **dict.fromkeys(DIMENSIONS, pick)})

    return reply


@pytest.mark.parametrize("gullible", [False, True])
def test_pairwise_checks_self_ties_and_the_original_must_not_lose(
    tmp_path, monkeypatch, capsys, gullible
):
    from kardiabench.scoring.audit import PAIRWISE_VARIANTS

    code, out, requests = audit(
        tmp_path, monkeypatch, None, "--pairwise", reply_fn=pairwise_judge(gullible)
    )
    # both orders
    assert requests == len(CANDIDATES) * N_ITEMS * 2 + len(PAIRWISE_VARIANTS) * N_ITEMS * 2
    card = json.loads((out / "judge_card.json").read_text())
    checks = card["pairwise"]["checks"]
    assert list(checks) == ["self", "padding", *INJECTIONS]
    assert checks["self"]["passed"] is True and checks["self"]["counts"]["empathy"] == {
        "n": N_ITEMS,
        "wins": 0,
        "ties": N_ITEMS,
        "losses": 0,
        "win_rate": 50.0,
        "consistency_rate": 100.0,
    }
    others = [checks[n] for n in ("padding", *INJECTIONS)]
    if gullible:
        assert code == 1 and all(c["passed"] is False for c in others)
        assert checks["padding"]["counts"]["relevance"]["losses"] == N_ITEMS
        assert card["summary"]["failed"] == [f"pairwise:{n}" for n in ("padding", *INJECTIONS)]
        assert "FAILED checks: pairwise:padding" in capsys.readouterr().err
    else:
        assert code == 0 and all(c["passed"] is True for c in others) and card["summary"]["passed"]
        assert checks["padding"]["counts"]["relevance"]["wins"] == N_ITEMS
    assert card["summary"]["n_checks"] == len(CANDIDATES) - 2 + len(PAIRWISE_VARIANTS)
    assert "## Pairwise checks" in (out / "judge_card.md").read_text()
