"""The Python API (docs/api.md): the README snippet runs against the scripted OpenAI-compatible
server, returns the objects the run folder holds, prints nothing, and refuses bad keywords with a
typed exception. The CLI is a thin wrapper over it (its own tests pin its output)."""

import json
import logging
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

import kardiabench as kb
from kardiabench.api import format_agreement
from kardiabench.cli import main
from kardiabench.params import ParameterError
from kardiabench.tables import markdown_table
from kardiabench.testing.fake_openai import FakeConfig, FakeOpenAIServer, default_reply

LIMIT = 12
DIMS = ("relevance", "fluency", "empathy", "persona_consistency", "safety")


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """Two runs of the README snippet (models served by the fake server, judged by it), and the server."""
    root = tmp_path_factory.mktemp("api")
    with pytest.MonkeyPatch.context() as mp, FakeOpenAIServer() as srv:
        mp.setenv("OPENAI_API_KEY", "sk-local-test")
        runs = {
            name: kb.evaluate(
                model=model,
                data="sample",
                task="kardiabench_instructed",
                judges=["openai:gpt-5-mini"],
                output=root / name,
                limit=LIMIT,
                base_url=srv.url,
                judge_base_url=srv.url,
                cache=root / "cache.sqlite",
                resamples=200,
            )
            for name, model in (("gpt-4o", "openai:gpt-4o"), ("gpt-4o-mini", "openai:gpt-4o-mini"))
        }
        yield runs, srv, root


def read_json(path):
    return json.loads(path.read_text(encoding="utf-8"))


def test_evaluate_returns_the_run_it_wrote(served):
    runs, _, _ = served
    run = runs["gpt-4o"]
    results = read_json(run.path / "results.json")
    for name, metric in results["metrics"].items():
        assert run.metrics[name].value == metric["value"] and run.metrics[name].n == metric["n"]
    empathy = run.metrics["empathy"]
    assert empathy.value is not None and empathy.n + empathy.n_unscored == LIMIT
    assert empathy.ci_low <= empathy.value <= empathy.ci_high
    assert (
        isinstance(run.items, pd.DataFrame)
        and len(run.items) == LIMIT
        and len(run.items.head()) == 5
    )
    assert run.items["empathy"].notna().sum() == empathy.n
    assert (
        run.model == "openai:gpt-4o" and run.task == "kardiabench_instructed" and run.problems == []
    )
    assert read_json(run.path / "run.json")["schema_version"] == results["schema_version"] == 1


def test_load_run_gives_the_same_object(served):
    runs, _, _ = served
    run = runs["gpt-4o"]
    again = kb.load_run(run.path)
    assert again.manifest == run.manifest and again.results == run.results
    pd.testing.assert_frame_equal(again.items, run.items)


def test_score_again_sends_no_request_when_the_verdicts_exist(served):
    runs, srv, _ = served
    run = runs["gpt-4o"]
    before = srv.stats.requests
    with_judge = kb.score(
        run.path, judges=["openai:gpt-5-mini"], judge_base_url=srv.url, resamples=200
    )
    # no judge: the saved verdicts made for these predictions
    reused = kb.score(run.path, resamples=200)
    assert srv.stats.requests == before
    for again in (with_judge, reused):
        assert {k: m.value for k, m in again.metrics.items()} == {
            k: m.value for k, m in run.metrics.items()
        }


def test_compare_gives_a_table_and_the_typed_object_of_the_cli(served, capsys):
    runs, _, _ = served
    a, b = runs["gpt-4o"], runs["gpt-4o-mini"]
    comparison = kb.compare(a, b)
    assert comparison.to_dict() == kb.compare(a.path, str(b.path)).to_dict()  # Run objects or paths
    assert main(["compare", str(a.path), str(b.path), "--json"]) == 0
    assert comparison.to_dict() == json.loads(capsys.readouterr().out)
    table = comparison.table
    assert isinstance(table, pd.DataFrame) and list(table.index) == [
        r.metric for r in comparison.rows
    ]
    assert table.loc["empathy", "delta"] == comparison.to_dict()["metrics"]["empathy"]["delta"]
    assert {"n_shared", "mean_a", "mean_b", "ci_low", "ci_high", "p_value", "p_holm"} <= set(
        table.columns
    )


def test_judge_agreement_reads_the_run_and_renders_as_the_cli(served, tmp_path, capsys):
    runs, _, _ = served
    run = runs["gpt-4o"]
    human = tmp_path / "human.jsonl"
    human.write_text(
        "".join(
            json.dumps({"item_id": i, **dict.fromkeys(DIMS, 1 + k % 5)}) + "\n"
            for k, i in enumerate(run.items["item_id"])
        )
    )
    report = kb.judge_agreement(human, run)
    assert report["n_human_items"] == LIMIT and list(report["judges"]) == ["openai:gpt-5-mini"]
    assert main(["judge-agreement", "--human", str(human), str(run.path)]) == 0
    assert capsys.readouterr().out == format_agreement(report) + "\n"


def test_library_calls_print_nothing_and_log_their_lines(tmp_path, capsys, caplog):
    caplog.set_level(logging.INFO, logger="kardiabench")
    common = {"data": "sample", "limit": 6, "cache": None, "resamples": 50}
    a = kb.evaluate("baseline:majority", tmp_path / "a", **common)
    b = kb.evaluate("baseline:retrieval", tmp_path / "b", **common)
    kb.score(a.path, resamples=50)
    kb.compare(a, b, resamples=50)
    kb.generate("baseline:majority", tmp_path / "c", data="sample", limit=3, cache=False)
    assert capsys.readouterr() == ("", "")
    lines = [r.getMessage() for r in caplog.records if r.name == "kardiabench"]
    assert any(line.startswith("generated 6 of 6 requested") for line in lines)
    assert f"results → {a.path / 'results.json'}" in lines
    assert kb.load_run(tmp_path / "c").results is None


def test_a_judge_that_scores_nothing_is_a_problem_of_the_run(tmp_path, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-local-test")

    def reply(request):  # generation as usual; every verdict unreadable
        return "no JSON here" if request.get("response_format") else default_reply(request)

    with FakeOpenAIServer(FakeConfig(reply_fn=reply)) as srv:
        run = kb.evaluate(
            "baseline:majority",
            tmp_path / "run",
            data="sample",
            limit=3,
            cache=None,
            resamples=50,
            judges="openai:gpt-5-mini",
            judge_base_url=srv.url,
        )
    [problem] = run.problems
    assert problem.startswith(
        "judge openai:gpt-5-mini scored 0 of 3 items: invalid judge output ×3"
    )
    assert run.metrics["empathy"].value is None and run.metrics["emotion_accuracy"].n == 3


def test_dry_run_counts_without_a_key(tmp_path, monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    plan = kb.dry_run(
        "openai:gpt-4o",
        tmp_path / "run",
        data="sample",
        limit=4,
        judges=["openai:gpt-5-mini"],
        judge_repeats=2,
    )
    assert plan.items == plan.to_request == 4 and plan.prompt_tokens > 0
    [judge] = plan.judges
    assert judge.judge == "openai:gpt-5-mini" and judge.calls == 8
    assert not (tmp_path / "run").exists()  # nothing written


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (
            lambda p: kb.evaluate("baseline:majority", p, limit=0),
            "limit: must be an integer ≥ 1, got 0",
        ),
        (
            lambda p: kb.generate("baseline:majority", p, temperature=-0.5),
            "temperature: must be a number ≥ 0, got -0.5",
        ),
        (
            lambda p: kb.generate("baseline:majority", p, top_p=float("nan")),
            "top_p: must be a number in (0, 1]",
        ),
        (
            lambda p: kb.evaluate("baseline:majority", p, judge_repeats=0),
            "judge_repeats: must be an integer from 1 to 100",
        ),
        (
            lambda p: kb.generate("openai:gpt-4o", p, api_key_env="sk-abc123"),
            "api_key_env: expects the NAME of an environment variable",
        ),
        (lambda p: kb.score(p, output=p / "x"), "output: is for predictions=FILE"),
        (
            lambda p: kb.compare(p, p, resamples=True),
            "resamples: must be an integer from 1 to 100,000, got True",
        ),
    ],
)
def test_a_bad_keyword_is_a_typed_error_not_an_exit(tmp_path, call, message):
    with pytest.raises(ParameterError) as e:
        call(tmp_path / "run")
    assert str(e.value).startswith(message) and "sk-abc123" not in str(e.value)
    assert not (tmp_path / "run").exists()


def test_an_unknown_keyword_or_bad_spec_is_a_typed_error(tmp_path):
    from kardiabench.errors import USER_ERRORS

    with pytest.raises(TypeError, match="no_such_flag"):
        kb.generate("baseline:majority", tmp_path / "run", no_such_flag=1)
    with pytest.raises(USER_ERRORS):
        kb.generate("nosuchprovider:x", tmp_path / "run", data="sample", limit=1, cache=None)
    with pytest.raises(USER_ERRORS):
        kb.load_run(tmp_path / "missing")


def test_import_and_help_are_lazy_and_the_names_are_the_functions():
    code = (
        "import contextlib, io, sys, kardiabench as kb; from kardiabench.cli import main\n"
        "with contextlib.suppress(SystemExit), contextlib.redirect_stdout(io.StringIO()): main(['--help'])\n"
        "heavy = [m for m in ('pandas', 'openai') if m in sys.modules]\n"
        "print(heavy, kb.generate.__module__, kb.evaluate.__name__, kb.load_run.__module__)"
    )
    env = {**os.environ, "PYTHONPATH": str(Path(kb.__file__).parents[1])}
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env
    ).stdout.split()
    assert out == ["[]", "kardiabench.api", "evaluate", "kardiabench.runs"]


def test_markdown_table_aligns_columns():
    assert (
        markdown_table(["metric", "n"], [["empathy", 3]], align="lr")
        == "| metric | n |\n|---|---:|\n| empathy | 3 |"
    )
    assert markdown_table(["a", "b"], []) == "| a | b |\n|---|---|"


def test_ctrl_c_raises_interrupted_naming_the_saved_work(tmp_path, monkeypatch):
    async def ctrl_c(cfg, log):
        raise KeyboardInterrupt

    monkeypatch.setattr(sys.modules["kardiabench.api"], "generation_stage", ctrl_c)
    with pytest.raises(kb.Interrupted) as e:
        kb.generate("baseline:majority", tmp_path / "run", data="sample", limit=2, cache=None)
    assert (
        isinstance(e.value, KeyboardInterrupt)
        and e.value.saved == f"{tmp_path / 'run'}/predictions.jsonl"
    )
    assert str(e.value) == f"finished items are saved in {tmp_path / 'run'}/predictions.jsonl"


def test_data_commands_are_api_functions_too():
    results = kb.validate_data("sample")
    assert sorted(r.split for r in results) == ["test", "train"]
    assert all(r.problems == [] for r in results) and sum(r.records_read for r in results) == 64
    stats = {s.split: s for s in kb.data_stats("sample")}
    assert set(stats) == {"train", "test"}
    first = kb.show_dialogue("sample", split="test", index=0)
    assert kb.show_dialogue("sample", split="test", dialogue_id=first.dialogue_id) == first
    with pytest.raises(LookupError):
        kb.show_dialogue("sample", split="test", index=10_000)
    assert "kardiabench_instructed" in {t.name for t in kb.list_tasks()}
