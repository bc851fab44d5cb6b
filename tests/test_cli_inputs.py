"""Inputs are checked at the door: bad numbers, unusable paths and empty data files are one-line
errors (exit 2) or reported problems (exit 1), never a traceback or a silent "OK"."""

import argparse
import json
import os
import subprocess
import sys
import urllib.request
from collections import Counter

import pytest
from helpers import write_dataset

from kardiabench import __version__
from kardiabench.cli import build_parser, main
from kardiabench.data import load_dialogues
from kardiabench.data.synth import DEFAULT_TEST_FRACTION
from kardiabench.scoring.rubric import load_rubric
from kardiabench.spans import parse_spans
from kardiabench.testing.fake_openai import free_port, wait_for_health

RUN = ["run", "--model", "baseline:majority", "--output", "unused-run-folder"]
SCORE = ["score", "unused-run-folder"]

BAD_NUMBERS = [
    (RUN, "--limit", "-3"),
    (RUN, "--limit", "0"),
    (RUN, "--concurrency", "0"),
    (RUN, "--judge-concurrency", "-1"),
    (RUN, "--judge-repeats", "0"),
    (RUN, "--resamples", "0"),
    (RUN, "--batch-size", "0"),
    (RUN, "--max-tokens", "0"),
    (RUN, "--judge-max-tokens", "0"),
    (RUN, "--timeout", "0"),
    (RUN, "--timeout", "nan"),
    (RUN, "--max-cost", "-1"),
    (RUN, "--temperature", "-0.1"),
    (RUN, "--top-p", "0"),
    (RUN, "--top-p", "1.5"),
    (RUN, "--derive-split", "1"),
    (RUN, "--derive-split", "0"),
    (RUN, "--tensor-parallel-size", "0"),
    (RUN, "--data-parallel-size", "0"),
    (RUN, "--limit", "ten"),
    (["generate", "--model", "baseline:majority", "--output", "x"], "--limit", "-3"),
    (SCORE, "--judge-repeats", "0"),
    (SCORE, "--resamples", "-5"),
    (SCORE, "--judge-concurrency", "0"),
    (["compare", "a", "b"], "--resamples", "0"),
    (["data", "synth", "--out", "x"], "--dialogues", "0"),
    (["data", "validate"], "--max-problems", "-1"),
    (["data", "show"], "--index", "-1"),
    (["data", "stats"], "--derive-split", "2"),
    (["judge-audit", "--output", "x"], "--limit", "0"),
    (["judge-audit", "--output", "x"], "--judge-repeats", "0"),
    # bounded counts: each sizes what a run holds at once (issue 16: --concurrency 99999999 took 22 GB)
    (RUN, "--concurrency", "99999999"),
    (RUN, "--concurrency", "1025"),
    (RUN, "--judge-concurrency", "5000"),
    (SCORE, "--judge-concurrency", "99999999"),
    (RUN, "--batch-size", "100000"),
    (RUN, "--judge-batch-size", "4097"),
    (RUN, "--judge-repeats", "101"),
    (["judge-audit", "--output", "x"], "--judge-concurrency", "2048"),
    (SCORE, "--resamples", "100001"),
    (["compare", "a", "b"], "--resamples", "10000000"),
    (["leaderboard", "build"], "--resamples", "999999999"),
    (RUN, "--tensor-parallel-size", "65"),
    (RUN, "--data-parallel-size", "1000"),
]


@pytest.mark.parametrize(
    ("prefix", "flag", "value"), BAD_NUMBERS, ids=[f"{p[0]} {f} {v}" for p, f, v in BAD_NUMBERS]
)
def test_bad_numeric_flag_is_a_one_line_usage_error(prefix, flag, value, capsys):
    with pytest.raises(SystemExit) as exc:
        main([*prefix, flag, value])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert len(err.splitlines()) == 1, err  # the mistake alone: no usage block (that is --help's)
    assert "error:" in err and f"argument {flag}:" in err and repr(value) in err, err


def test_good_numbers_still_parse():
    args = build_parser().parse_args(
        [
            *RUN,
            "--limit",
            "1",
            "--temperature",
            "0",
            "--top-p",
            "1",
            "--derive-split",
            "0.2",
            "--timeout",
            "0.5",
        ]
    )
    assert (args.limit, args.temperature, args.top_p, args.derive_split, args.timeout) == (
        1,
        0.0,
        1.0,
        0.2,
        0.5,
    )
    args = build_parser().parse_args(
        [
            *RUN,
            "--concurrency",
            "1024",
            "--judge-concurrency",
            "1024",
            "--batch-size",
            "4096",
            "--judge-repeats",
            "100",
            "--model",
            "openai:" + "m" * 505,
            "--resamples",
            "100000",
            "--tensor-parallel-size",
            "64",
            "--data-parallel-size",
            "64",
        ]
    )
    assert (
        args.concurrency,
        args.judge_concurrency,
        args.batch_size,
        args.judge_repeats,
        len(args.model),
        args.resamples,
        args.tensor_parallel_size,
        args.data_parallel_size,
    ) == (1024, 1024, 4096, 100, 512, 100_000, 64, 64)


USAGE_MISTAKES = [
    ["generate", "--model", "baseline:majority", "--output", "x", "--limit", "0"],
    ["run", "--model", "baseline:majority", "--output", "x", "--top-p", "1.5"],
    ["score", "x", "--judge-pool", "mode"],
    ["data", "show", "--index", "-1"],
    ["compare", "a"],
    ["leaderboard", "build", "--resamples", "ten"],
    ["train", "sft"],
    ["reproduce", "paper", "--limit", "0"],
    ["no-such-command"],
    ["generate", "--output", "x"],
]


def test_usage_mistakes_are_one_line_through_the_real_entry_point():
    """As a user runs it: every subcommand's argparse error is one line on stderr, exit 2."""
    for argv in USAGE_MISTAKES:
        r = subprocess.run(
            [sys.executable, "-m", "kardiabench.cli", *argv],
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert r.returncode == 2, (argv, r.stderr)
        lines = r.stderr.splitlines()
        assert len(lines) == 1 and "error:" in lines[0] and "usage:" not in r.stderr, (
            argv,
            r.stderr,
        )
        assert lines[0].startswith("kardiabench") and "--help" in lines[0], lines[0]
        assert r.stdout == ""


@pytest.mark.parametrize("flag", ["--model", "--judge", "--escalate-to"])
def test_an_overlong_model_spec_is_a_one_line_error(flag, capsys):
    """A pasted 100 KB "model name" is refused before anything is built, and not echoed whole."""
    spec = "openai:" + "x" * 100_000
    argv = [
        "run",
        "--model",
        "baseline:majority",
        "--output",
        "unused",
        "--judge",
        "openai:a",
        "--judge",
        "openai:b",
        flag,
        spec,
    ]
    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert len(err.splitlines()) == 1 and f"argument {flag}:" in err and "100,007 characters" in err
    assert len(err) < 300


def test_an_overlong_model_spec_through_the_api(tmp_path):
    from kardiabench.api import generate
    from kardiabench.models import MAX_SPEC_LENGTH, SpecError, parse_spec

    assert parse_spec("openai:" + "m" * (MAX_SPEC_LENGTH - 7)) == (
        "openai",
        "m" * (MAX_SPEC_LENGTH - 7),
    )
    with pytest.raises(SpecError, match="at most 512"):
        parse_spec("openai:" + "m" * MAX_SPEC_LENGTH)
    with pytest.raises(SpecError, match="at most 512"):
        generate(
            "baseline:" + "m" * 100_000,
            tmp_path / "run",
            data="sample",
            limit=1,
            cache=None,
            progress=False,
        )
    assert not (tmp_path / "run" / "predictions.jsonl").exists()


def test_the_api_bounds_the_same_counts(tmp_path):
    from kardiabench.api import generate
    from kardiabench.params import ParameterError

    for kw in ({"concurrency": 99_999_999}, {"batch_size": 10**6}, {"concurrency": True}):
        with pytest.raises(ParameterError, match=next(iter(kw))):
            generate(
                "baseline:majority",
                tmp_path / "run",
                data="sample",
                limit=1,
                cache=None,
                progress=False,
                **kw,
            )


def test_version(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["--version"])
    assert exc.value.code == 0
    assert capsys.readouterr().out.strip() == f"kardiabench {__version__}"


def _parsers(parser: argparse.ArgumentParser, name: str = "kardiabench"):
    """Every parser and subparser, with its command path."""
    yield name, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub_name, sub in action.choices.items():
                yield from _parsers(sub, f"{name} {sub_name}")


def test_every_option_has_help_text():
    missing = [
        f"{name} {a.option_strings or a.dest}"
        for name, p in _parsers(build_parser())
        for a in p._actions
        if not isinstance(a, argparse._SubParsersAction) and not (a.help or "").strip()
    ]
    assert not missing, missing
    assert len(list(_parsers(build_parser()))) >= 11  # the walk reached the nested data subcommands


def test_help_shows_defaults_on_every_subcommand(capsys):
    for argv, shown in (
        (["run"], "(default: 16)"),
        (["score"], "(default: 1000)"),
        (["compare"], "(default: 1000)"),
        (["data", "synth"], "(default: 22080)"),
        (["data", "validate"], "(default: 200)"),
    ):
        with pytest.raises(SystemExit):
            main([*argv, "--help"])
        out = " ".join(capsys.readouterr().out.split())  # help text wraps lines
        assert shown in out, argv
        assert "(default: None)" not in out and "(default: False)" not in out


# ----------------------------------------------------------------------------- paths


def _one_line_error(capsys, *needles: str) -> str:
    err = capsys.readouterr().err
    assert "Traceback" not in err
    lines = [x for x in err.splitlines() if x.startswith("error:")]
    assert len(lines) == 1, err
    for n in needles:
        assert n in lines[0], lines[0]
    return lines[0]


def _generate(*extra: str) -> list[str]:
    return [
        "generate",
        "--model",
        "baseline:majority",
        "--data",
        "sample",
        "--limit",
        "2",
        "--no-progress",
        *extra,
    ]


def test_output_that_is_an_existing_file(tmp_path, capsys):
    f = tmp_path / "a-file"
    f.write_text("not a folder")
    assert main(_generate("--output", str(f), "--no-cache")) == 2
    _one_line_error(capsys, str(f), "a file of that name exists")
    assert f.read_text() == "not a folder"


def test_output_that_cannot_be_created(tmp_path, capsys):
    f = tmp_path / "a-file"
    f.write_text("x")
    assert main(_generate("--output", str(f / "run"), "--no-cache")) == 2
    _one_line_error(capsys, str(f / "run"), "is a file, not a folder")


def test_unwritable_cache(tmp_path, capsys):
    f = tmp_path / "a-file"
    f.write_text("x")
    assert (
        main(_generate("--output", str(tmp_path / "run"), "--cache", str(f / "cache.sqlite"))) == 2
    )
    _one_line_error(capsys, str(f))


def test_cache_that_is_a_folder(tmp_path, capsys):
    (tmp_path / "cachedir").mkdir()
    assert (
        main(_generate("--output", str(tmp_path / "run"), "--cache", str(tmp_path / "cachedir")))
        == 2
    )
    _one_line_error(capsys, "cache", str(tmp_path / "cachedir"), "--no-cache")


def test_missing_run_folder_and_missing_predictions(tmp_path, capsys):
    assert main(["score", str(tmp_path / "nope")]) == 2
    _one_line_error(capsys, str(tmp_path / "nope"))
    assert (
        main(
            [
                "score",
                "--predictions",
                str(tmp_path / "p.jsonl"),
                "--data",
                "sample",
                "--output",
                str(tmp_path / "o"),
            ]
        )
        == 2
    )
    _one_line_error(capsys, str(tmp_path / "p.jsonl"))


def test_missing_input_file_names_it(tmp_path, capsys):
    template = tmp_path / "nope.jinja"
    assert (
        main(
            _generate(
                "--output", str(tmp_path / "run"), "--no-cache", "--chat-template", str(template)
            )
        )
        == 2
    )
    assert _one_line_error(capsys) == f"error: {template}: no such file or folder"


def test_score_run_folder_refuses_output_instead_of_ignoring_it(tmp_path, capsys):
    with pytest.raises(SystemExit) as exc:
        main(["score", str(tmp_path / "run"), "--output", str(tmp_path / "elsewhere")])
    assert exc.value.code == 2
    assert "--output is for --predictions FILE" in capsys.readouterr().err


def test_user_errors_through_the_real_entry_point(tmp_path):
    """The same, as a user runs it: a subprocess, stderr one line, no traceback."""
    f = tmp_path / "a-file"
    f.write_text("x")
    r = subprocess.run(
        [sys.executable, "-m", "kardiabench.cli", *_generate("--output", str(f), "--no-cache")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert r.stderr.strip().splitlines()[-1].startswith(f"error: {f}")


# ----------------------------------------------------------------------------- data validate


@pytest.mark.parametrize(
    ("content", "message"),
    [("", "empty file"), ("  \n\n\t \n", "empty file")],
    ids=["empty", "whitespace"],
)
def test_validate_reports_an_empty_file(tmp_path, capsys, content, message):
    f = tmp_path / "test.jsonl"
    f.write_text(content)
    assert main(["data", "validate", "--data", str(f)]) == 1
    out = capsys.readouterr().out
    assert f"{f}:1: <file>: {message}" in out and "FAILED" in out


def test_generate_on_an_empty_file_is_an_error_not_a_skipped_record(tmp_path, capsys):
    f = tmp_path / "test.jsonl"
    f.write_text("\n")
    code = main(
        [
            "generate",
            "--model",
            "baseline:majority",
            "--data",
            str(f),
            "--train-data",
            "sample",
            "--output",
            str(tmp_path / "run"),
            "--no-cache",
            "--no-progress",
        ]
    )
    err = capsys.readouterr().err
    assert code == 2 and "no items to evaluate" in err and "skipped" not in err


def test_validate_reports_a_symlink_loop(tmp_path, capsys):
    loop = tmp_path / "loop.jsonl"
    os.symlink(loop, loop)
    assert main(["data", "validate", "--data", str(loop)]) == 1
    assert f"{loop}:1: <file>: cannot be read" in capsys.readouterr().out


def test_validate_reports_a_looping_split_in_a_folder(tmp_path, capsys):
    data = write_dataset(tmp_path / "d")
    (data / "test.jsonl").unlink()
    os.symlink(data / "test.jsonl", data / "test.jsonl")  # the test split would silently vanish
    assert main(["data", "validate", "--data", str(data)]) == 1
    out = capsys.readouterr().out
    assert f"{data / 'test.jsonl'}:1: <file>: cannot be read" in out
    assert "FAILED: 4 records, 1 problem(s)" in out


# ----------------------------------------------------------------------------- the scripted server as a judge


@pytest.fixture
def fake_server_process():
    """`python -m kardiabench.testing.fake_openai --port N`, as the README starts it."""
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "kardiabench.testing.fake_openai", "--port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        assert wait_for_health(f"http://127.0.0.1:{port}"), "fake server did not start"
        yield f"http://127.0.0.1:{port}/v1"
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def _post(url: str, body: dict) -> dict:
    req = urllib.request.Request(
        url + "/chat/completions",
        data=json.dumps(body).encode(),
        headers={"content-type": "application/json"},
    )
    with urllib.request.urlopen(req, timeout=30) as r:
        return json.loads(r.read())


def test_fake_server_answers_a_judge_request_with_a_valid_verdict(fake_server_process):
    rubric = load_rubric()
    messages = [{"role": "user", "content": "Score this reply."}]
    body = {"model": "judge", "messages": messages, "response_format": rubric.response_format()}
    first = json.loads(_post(fake_server_process, body)["choices"][0]["message"]["content"])
    names = [d.name for d in rubric.dimensions]
    assert set(first) == {"rationale", *names}
    assert all(first[n] in range(1, 6) for n in names) and first["rationale"]
    # deterministic
    assert json.loads(_post(fake_server_process, body)["choices"][0]["message"]["content"]) == first
    plain = _post(fake_server_process, {"model": "m", "messages": messages})["choices"][0][
        "message"
    ]["content"]
    assert parse_spans(plain).well_formed  # other requests: four spans, as before


def test_run_with_the_command_line_fake_as_model_and_judge(
    fake_server_process, tmp_path, monkeypatch, capsys
):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-not-a-secret")
    out = tmp_path / "run"
    code = main(
        [
            "run",
            "--model",
            "openai:x",
            "--judge",
            "openai:y",
            "--base-url",
            fake_server_process,
            "--judge-base-url",
            fake_server_process,
            "--data",
            "sample",
            "--limit",
            "6",
            "--output",
            str(out),
            "--no-cache",
            "--no-progress",
        ]
    )
    assert code == 0, capsys.readouterr().err
    metrics = json.loads((out / "results.json").read_text())["metrics"]
    for d in load_rubric().dimensions:
        m = metrics[d.name]
        assert m["n"] == 6 and 1 <= m["value"] <= 5, m


# ----------------------------------------------------------------------------- data synth


@pytest.mark.parametrize("n", [40, 400])
def test_synth_gives_the_test_split_at_least_two_personas(tmp_path, capsys, n):
    out = tmp_path / "synth"
    assert main(["data", "synth", "--dialogues", str(n), "--out", str(out)]) == 0
    per_split = {}
    for split in ("train", "test"):
        dialogues = load_dialogues(str(out), split, strict=True).dialogues
        per_split[split] = (len(dialogues), Counter(d.persona_id for d in dialogues))
    (n_test, test_personas), (n_train, train_personas) = per_split["test"], per_split["train"]
    assert n_test == round(n * DEFAULT_TEST_FRACTION) and n_test + n_train == n
    assert len(test_personas) >= 2  # one persona = one bootstrap cluster: no usable CI
    assert not set(test_personas) & set(train_personas)
    # proportional: the real share of test personas (32 of 671) at most, above the floor of 2
    assert len(test_personas) <= max(
        2, round((len(test_personas) + len(train_personas)) * 32 / 671)
    )
    assert f"test: {n_test} dialogues" in capsys.readouterr().out


# ----------------------------------------------------------------------------- API-only install

NO_TORCH_SCRIPT = """
import sys
from kardiabench.cli import build_parser, main
from kardiabench.testing.fake_openai import FakeOpenAIServer
build_parser()
out = sys.argv[1]
with FakeOpenAIServer() as srv:
    assert main(["run", "--model", "openai:m", "--judge", "openai:j", "--base-url", srv.url, "--judge-base-url", srv.url,
                 "--data", "sample", "--limit", "3", "--output", out + "/api", "--no-cache", "--no-progress"]) == 0
assert main(["run", "--model", "baseline:retrieval", "--data", "sample", "--limit", "3", "--output", out + "/base",
             "--no-cache", "--no-progress"]) == 0
assert main(["compare", out + "/api", out + "/base"]) == 0
print(sorted({m.split(".")[0] for m in sys.modules} & {"torch", "transformers", "vllm", "accelerate"}))
"""


def test_api_and_baseline_runs_never_import_torch(tmp_path):
    """The README's API-only install (`pip install -e .`, no torch) covers run, score and compare
    with openai: and baseline: models. A fresh interpreter, so no other test's import counts."""
    r = subprocess.run(
        [sys.executable, "-c", NO_TORCH_SCRIPT, str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "OPENAI_API_KEY": "sk-test-not-a-secret"},
    )
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip().splitlines()[-1] == "[]"


# ----------------------------------------------------------------------------- light install: a missing extra is one line

LIGHT_INSTALL_SCRIPT = """
import sys
for name in sys.argv[1].split(","):
    sys.modules[name] = None  # as if not installed: importing it fails, find_spec finds nothing
from kardiabench.cli import main
sys.exit(main(sys.argv[2:]))
"""
HF_MODULES = "torch,transformers,accelerate,trl,peft,datasets,vllm"
LIGHT = [
    (
        HF_MODULES,
        ["generate", "--model", "hf:owner/model", "--data", "sample", "--limit", "2"],
        "hf:owner/model needs torch, transformers",
        ".[hf]",
    ),
    (
        HF_MODULES,
        [
            "run",
            "--model",
            "baseline:majority",
            "--judge",
            "hf:owner/judge",
            "--data",
            "sample",
            "--limit",
            "2",
        ],
        "hf:owner/judge needs torch",
        ".[hf]",
    ),
    (
        HF_MODULES,
        ["generate", "--model", "hf:owner/model", "--data", "sample", "--limit", "2", "--dry-run"],
        "hf:owner/model needs",
        ".[hf]",
    ),
    (
        HF_MODULES,
        ["generate", "--model", "vllm:owner/model", "--data", "sample", "--limit", "2"],
        "vllm:owner/model needs vllm",
        ".[vllm]",
    ),
    (
        HF_MODULES,
        ["train", "sft", "--config", "sft-tiny.yaml"],
        "kardiabench train needs torch, transformers, accelerate, trl",
        ".[train]",
    ),
    (
        "trl",
        ["train", "grpo", "--config", "grpo-tiny.yaml"],
        "kardiabench train needs trl (not installed)",
        ".[train]",
    ),
]


@pytest.mark.parametrize(
    ("blocked", "argv", "needle", "extra"),
    LIGHT,
    ids=["hf-model", "hf-judge", "hf-dry-run", "vllm-model", "train", "train-without-trl"],
)
def test_a_missing_extra_says_which_to_install(tmp_path, blocked, argv, needle, extra):
    """`pip install -e .` without torch/transformers/trl: `hf:` models and `train` ended in 20-40
    line import tracebacks. Now one line naming the extra, exit 2, before any item is generated."""
    if argv[0] in ("generate", "run"):
        argv = [*argv, "--output", str(tmp_path / "run"), "--no-cache", "--no-progress"]
    r = subprocess.run(
        [sys.executable, "-c", LIGHT_INSTALL_SCRIPT, blocked, *argv],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert r.returncode == 2, r.stderr
    assert r.stderr.splitlines() == [r.stderr.strip()] and "Traceback" not in r.stderr, r.stderr
    assert r.stderr.startswith(f"error: {needle}") and f'pip install -e "{extra}"' in r.stderr, (
        r.stderr
    )
    assert not (tmp_path / "run" / "predictions.jsonl").exists()


def test_the_extras_checked_are_those_pyproject_installs():
    """kardiabench/extras.py names, for each extra, modules that `pip install -e ".[extra]"` installs."""
    import re
    import tomllib
    from pathlib import Path

    from kardiabench.extras import EXTRAS

    optional = tomllib.loads((Path(__file__).resolve().parents[1] / "pyproject.toml").read_text())[
        "project"
    ]["optional-dependencies"]

    def packages(extra: str) -> set[str]:
        out: set[str] = set()
        for req in optional[extra]:
            name, _, nested = re.match(r"([\w.-]+)(\[([\w,]+)\])?", req).groups()
            out |= (
                set().union(*(packages(e) for e in nested.split(",")))
                if name == "kardiabench"
                else {name.lower()}
            )
        return out

    for extra, modules in EXTRAS.items():
        assert set(modules) <= packages(extra), extra
