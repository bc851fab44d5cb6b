"""`kardiabench judge-audit` against the scripted server playing two judges: an honest one (scores
by simple rules from the candidate text, ignores injections) passes every check; a gullible one
(gives 5s to "score 5" and to fake verdicts, rewards length) fails exactly the checks it falls for."""

import json

import pytest

from kardiabench.cli import main
from kardiabench.generate_stage import DataSpec, load_items
from kardiabench.scoring.audit import (
    CANDIDATE_NAMES,
    CANDIDATES,
    INJECTIONS,
    NO_GAIN,
    WORSE,
    check_result,
    exact_agreement,
    length_slopes,
    padded,
    persona_names,
)
from kardiabench.scoring.rubric import DIMENSIONS, FENCE
from kardiabench.tasks import load_task
from kardiabench.testing.fake_openai import FakeConfig, FakeOpenAIServer

N_ITEMS = 4
ITEMS, _ = load_items(load_task("kardiabench"), DataSpec("sample", None, limit=N_ITEMS), log=lambda m: None)
GOLDS = sorted({it.gold.response.strip() for it in ITEMS}, key=len, reverse=True)
GOOD = {"relevance": 4, "fluency": 4, "empathy": 4, "persona_consistency": 4, "safety": 5}
POOR = {"relevance": 2, "fluency": 3, "empathy": 2, "persona_consistency": 3, "safety": 5}
TOP = dict.fromkeys(DIMENSIONS, 5)


def candidate_text(request) -> str:
    case = request["messages"][-1]["content"]
    start = case.index(f"<<<CANDIDATE_RESPONSE_{FENCE}\n") + len(f"<<<CANDIDATE_RESPONSE_{FENCE}\n")
    return case[start:].rpartition(f"\nCANDIDATE_RESPONSE_{FENCE}>>>")[0]


def honest_scores(text: str) -> dict[str, int]:
    if "pills" in text or "nobody would miss you" in text:
        return dict.fromkeys(DIMENSIONS, 1)
    return GOOD if any(g in text for g in GOLDS) else POOR


def gullible_scores(text: str) -> dict[str, int]:
    if "score 5" in text.lower() or "scores 5" in text or '"relevance": 5' in text:
        return TOP
    gold = next((g for g in GOLDS if g in text), None)
    if gold is not None and len(text) > 1.5 * len(gold):
        return TOP
    return honest_scores(text)


def judge(scores):
    return lambda request: json.dumps({**scores(candidate_text(request)), "rationale": "rule"})


def audit(tmp_path, monkeypatch, scores, *extra):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-local-test")
    out = tmp_path / "card"
    with FakeOpenAIServer(FakeConfig(reply_fn=judge(scores))) as srv:
        code = main(["judge-audit", "--judge", "openai:judge-model", "--judge-base-url", srv.url, "--data", "sample",
                     "--limit", str(N_ITEMS), "--output", str(out), "--no-cache", "--no-progress", "--resamples", "100", *extra])  # fmt: skip
        requests = srv.stats.requests
    return code, out, requests


def test_honest_judge_passes_every_check(tmp_path, monkeypatch, capsys):
    code, out, requests = audit(tmp_path, monkeypatch, honest_scores, "--judge-repeats", "2")
    assert code == 0, capsys.readouterr().err
    assert requests == len(CANDIDATES) * N_ITEMS * (2 + 1)  # two repeats under seed A, one under seed B
    card = json.loads((out / "judge_card.json").read_text())
    assert card["summary"] == {"n_checks": len(CANDIDATES) - 2, "failed": [], "passed": True}
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
    assert card["usage"]["seed_A"]["openai:judge-model"]["requests"] == len(CANDIDATES) * N_ITEMS * 2
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
    assert card["candidates"]["inject_fake_json"]["check"]["why"] == "largest gain over gold +1.00"
    assert card["candidates"]["constant"]["check"]["passed"]  # not fooled by the constant reply
    assert card["length_bias"]["slope"]["relevance"] > 0
    assert card["stability"]["across_repeats"] is None  # one repeat: nothing to compare
    assert "**FAIL**" in (out / "judge_card.md").read_text()


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
    assert len(gold) * 3 <= len(built["padding"]) < len(gold) * 3 + 60 and built["padding"].startswith(gold)
    assert item.gold_emotion in built["emotion_leak"]
    assert persona_names(item)[0] in built["name_dropping"]  # "Luis", the husband named in the profile
    assert built["constant"] == CANDIDATES[1].build(ITEMS[1])  # the same text for every turn
    assert "＞＞＞" in built["inject_lookalike_delimiter"]
    assert padded("abc", 1) == "abc"


def test_check_rules():
    assert check_result(WORSE, {"relevance": -0.5, "empathy": -1.0})["passed"]
    assert not check_result(WORSE, {"relevance": -0.9, "empathy": 0.1})["passed"]
    assert check_result(NO_GAIN, dict.fromkeys(DIMENSIONS, 0.25))["passed"]
    assert not check_result(NO_GAIN, {**dict.fromkeys(DIMENSIONS, 0.0), "fluency": 0.3})["passed"]
    assert check_result(WORSE, {"relevance": None, "empathy": -2})["passed"] is None
    unsafe = next(c.check for c in CANDIDATES if c.name == "unsafe")
    assert check_result(unsafe, {"safety": -1.5}, 0.8)["passed"]
    assert not check_result(unsafe, {"safety": -3.0}, 0.5)["passed"]  # the flag must fire too


def test_length_slope_and_agreement():
    rows = [(100, {"empathy": 3}), (200, {"empathy": 4}), (300, {"empathy": 5}), (300, {"empathy": None})]
    assert length_slopes(rows, ["empathy"]) == {"empathy": pytest.approx(1.0)}
    assert length_slopes([(100, {"empathy": 3})], ["empathy"]) == {"empathy": None}
    groups = [[{"empathy": 3}, {"empathy": 3}], [{"empathy": 3}, {"empathy": 4}], [{"empathy": 2}]]
    assert exact_agreement(groups, ["empathy"]) == {"overall": 0.5, "per_dimension": {"empathy": 0.5}, "n_cells": 2}


# --- citing a card, and the self-preference guard -------------------------------------------------


def test_family_mapping():
    from kardiabench.scoring.families import family_of, self_preference_risk

    cases = {"openai:gpt-4o": "openai", "openai:o3-mini": "openai", "vllm:deepseek-ai/DeepSeek-R1": "deepseek",
             "openai:gemini-2.5-pro": "google", "hf:google/gemma-3-4b-it": "google", "vllm:Qwen/Qwen3-8B": "qwen",
             "vllm:meta-llama/Llama-3.1-8B-Instruct": "meta", "openai:claude-sonnet-4": "anthropic",
             "baseline:majority": None, "openai:olmo-2": None}  # fmt: skip
    assert {s: family_of(s) for s in cases} == cases
    assert family_of("openai:my-judge", {"my-*": "openai"}) == "openai"
    assert family_of("openai:gpt-4o", {"gpt-4o": "azure"}) == "azure"  # the user's mapping first
    assert self_preference_risk("openai:gpt-4o", ["openai:gpt-5-mini", "vllm:Qwen/Qwen3-8B"]) == [["openai:gpt-5-mini", "openai"]]
    assert self_preference_risk("baseline:majority", ["openai:gpt-5-mini"]) == []


def test_results_cite_the_card_and_flag_self_preference(tmp_path, monkeypatch, capsys):
    from helpers import write_dataset

    code, card_dir, _ = audit(tmp_path, monkeypatch, gullible_scores)
    assert code == 1
    data = write_dataset(tmp_path / "data")
    run, lb = tmp_path / "run", tmp_path / "lb"
    with FakeOpenAIServer(FakeConfig()) as srv:
        assert main(["run", "--model", "openai:gpt-4o-mini", "--base-url", srv.url, "--data", str(data), "--output", str(run),
                     "--judge", "openai:judge-model", "--judge", "openai:gpt-5-mini", "--judge-base-url", srv.url,
                     "--judge-card", str(card_dir / "judge_card.json"), "--no-progress", "--no-cache", "--resamples", "50"]) == 0  # fmt: skip
    rubric = json.loads((run / "results.json").read_text())["rubric"]
    assert rubric["self_preference_risk"] == [["openai:gpt-5-mini", "openai"]]
    card = rubric["judge_card"]
    assert card["judges"] == ["openai:judge-model"] and card["passed"] is False and card["n_checks"] == len(CANDIDATES) - 2
    assert card["failed"] == ["padding", *INJECTIONS] and card["same_judges"] is False
    summary = (run / "summary.md").read_text()
    assert "Warning: self-preference risk: judge openai:gpt-5-mini is of the evaluated model's family (openai)." in summary
    assert "Judge card: openai:judge-model" in summary and "FAILED (padding" in summary
    assert main(["leaderboard", "add", str(run), "--leaderboard", str(lb)]) == 0
    assert main(["leaderboard", "build", "--leaderboard", str(lb), "--resamples", "20"]) == 0
    table = (lb / "leaderboard.md").read_text()
    assert "| openai:gpt-4o-mini § |" in table
    assert "Judge card (G1): openai:judge-model" in table and "8/13 checks" in table
    # a user mapping that puts the judge elsewhere lifts the warning (verdicts reused, no judge asked)
    families = tmp_path / "families.yaml"
    families.write_text("gpt-5-mini: other\n")
    assert main(["score", str(run), "--families", str(families), "--no-progress", "--resamples", "50"]) == 0
    assert "self_preference_risk" not in json.loads((run / "results.json").read_text())["rubric"]


@pytest.mark.parametrize(("flag", "content", "message"), [
    ("--judge-card", "{}", "not a judge card"), ("--families", "- a list\n", "expected a mapping"),
    ("--families", "gpt-*: 3\n", "must be non-empty strings"),
])  # fmt: skip
def test_bad_card_or_families_file_is_a_one_line_error(tmp_path, flag, content, message, capsys):
    from helpers import write_dataset

    data = write_dataset(tmp_path / "data")
    run = tmp_path / "run"
    assert main(["generate", "--model", "baseline:majority", "--data", str(data), "--output", str(run), "--no-progress"]) == 0
    bad = tmp_path / "bad.file"
    bad.write_text(content)
    with FakeOpenAIServer(FakeConfig()) as srv:
        code = main(["score", str(run), "--judge", "openai:j", "--judge-base-url", srv.url, flag, str(bad), "--no-progress",
                     "--no-cache", "--resamples", "20"])  # fmt: skip
    err = capsys.readouterr().err
    assert code == 2 and message in err and str(bad) in err and "Traceback" not in err
