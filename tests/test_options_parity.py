"""One definition per option (kardiabench/options.py): every flag of every command reaches the kb.*
function the command wraps, with the value given; the API's keywords are checked at the door, a
misspelt one named with its closest; docs/options.md is what the definitions generate."""

import argparse
import dataclasses
import inspect
from pathlib import Path

import pytest

import kardiabench as kb
from kardiabench import api
from kardiabench.cli import build_parser, main
from kardiabench.options import (
    SIGNATURES,
    JudgeModelOptions,
    JudgeScoringOptions,
    UnknownOption,
    markdown,
)

# Each command and the kb function it wraps: a command added without its function fails here.
WRAPS = {
    ("data", "stats"): "data_stats",
    ("data", "validate"): "validate_data",
    ("data", "show"): "show_dialogue",
    ("data", "synth"): "synth_data",
    ("tasks",): "list_tasks",
    ("generate",): "generate",
    ("run",): "evaluate",
    ("score",): "score",
    ("compare",): "compare",
    ("judge-agreement",): "judge_agreement",
    ("judge-audit",): "judge_audit",
    ("report",): "write_report",
    ("leaderboard", "add"): "leaderboard_add",
    ("leaderboard", "build"): "leaderboard_build",
    ("leaderboard", "push"): "leaderboard_push",
    ("reproduce",): "reproduce_runs",
    ("train", "sft"): "train_model",
    ("train", "grpo"): "train_model",
    ("annotate",): "annotate",
    ("annotate-import",): "annotate_import",
    ("pairwise",): "pairwise",
    ("leaderboard", "add-pairwise"): "leaderboard_add_pairwise",
}
# The CLI's own flags: how it prints, not what is computed (--dry-run calls kb.dry_run instead: tested below).
CLI_ONLY = {"-h", "--help", "--json", "--max-problems", "--dry-run"}
# A flag → the keyword it is, where that is not the flag's own name; positionals by their metavar.
RENAMED = {
    "--judge": "judges",
    "--no-cache": "cache",
    "--no-progress": "progress",
    "--id": "dialogue_id",
    "--set": "overrides",
    "run_a": "a",
    "run_b": "b",
    ("judge-agreement", "run_dir"): "run",
    "DIR": "run_dirs",
    "FILES": "files",
    ("annotate", "run_a"): "run_a",
    ("annotate", "run_b"): "run_b",
    ("annotate-import", "DIR"): "folder",
    ("pairwise", "RUN"): "runs",
    "PAIRWISE_DIR": "pairwise_dir",
    ("score", "--batch-timeout"): "judge_batch_timeout",
    ("pairwise", "--batch-timeout"): "judge_batch_timeout",
    ("run", "--batch-timeout"): ("batch_timeout", "judge_batch_timeout"),
}
# Texts tried in turn as a flag's value; the first its argparse type accepts, other than the default, is used.
CANDIDATES = ["3", "7", "0.5", "disagree:2", "k=1", "MY_KEY", "openai:judge-x", "empathy"]


class Reached(Exception):
    """Raised by the stand-in kb function: the call's keywords, before any work."""


def _leaves(parser: argparse.ArgumentParser, path: tuple[str, ...] = ()):
    subs = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    if not subs:
        yield path, parser
    for action in subs:
        for name, sub in action.choices.items():
            yield from _leaves(sub, (*path, name))


def _text(action: argparse.Action) -> str:
    if action.choices:
        return list(action.choices)[-1]
    for text in CANDIDATES:
        try:
            # a value the keyword would not get anyway
            if (action.type or str)(text) != action.default:
                return text
        except (argparse.ArgumentTypeError, ValueError, TypeError):
            continue
    raise AssertionError(f"no candidate value fits {action.option_strings or action.dest}")


def _argv(action: argparse.Action) -> tuple[list[str], object]:
    """The flag with a value, and the value the API should receive."""
    if isinstance(action, argparse._StoreConstAction):  # store_true/false too
        return list(action.option_strings[:1]), action.const
    text = _text(action)
    value = (action.type or str)(text)
    many = isinstance(action, argparse._AppendAction) or action.nargs in ("+", "*")
    if action.metavar == "RUN" and not action.option_strings:  # pairwise: two runs at least
        return [text, text], [value, value]
    return [*action.option_strings[:1], text], [value] if many else value


def _required(parser: argparse.ArgumentParser, but: argparse.Action) -> list[str]:
    out = []
    for a in parser._actions:
        if a is but or isinstance(a, argparse._HelpAction):
            continue
        if a.required and (a.option_strings or a.nargs != "?"):
            out += _argv(a)[0]
    return out


def _keywords(path: tuple[str, ...], action: argparse.Action) -> tuple[str, ...]:
    """The keywords the flag (or positional) should set: named by the flag, unless RENAMED says otherwise."""
    name = action.option_strings[0] if action.option_strings else action.metavar or action.dest
    own = name.removeprefix("--").replace("-", "_")
    found = RENAMED.get((path[0], name), RENAMED.get(name, own))
    return found if isinstance(found, tuple) else (found,)


PARSER = build_parser()
LEAVES = dict(_leaves(PARSER))
CASES = [
    (path, a)
    for path, p in LEAVES.items()
    for a in p._actions
    if not isinstance(a, argparse._HelpAction) and not set(a.option_strings) & CLI_ONLY
]


def test_the_walk_finds_every_command_and_each_wraps_a_kb_function():
    assert set(LEAVES) == set(WRAPS)
    assert len(CASES) > 150  # every flag of every command
    for function in set(WRAPS.values()):
        assert getattr(kb, function) is getattr(api, function)
        params = inspect.signature(getattr(kb, function)).parameters.values()
        assert all(p.kind is not p.VAR_KEYWORD for p in params), function  # no bare **options


@pytest.mark.parametrize(
    ("path", "action"),
    CASES,
    ids=[f"{' '.join(p)} {a.option_strings[0] if a.option_strings else a.dest}" for p, a in CASES],
)
def test_every_flag_reaches_the_api_call_it_wraps(path, action, monkeypatch):
    function = WRAPS[path]
    real = getattr(api, function)

    def stand_in(*args, **kwargs):
        # the function takes every keyword the CLI passes
        inspect.signature(real).bind(*args, **kwargs)
        raise Reached(kwargs)

    stand_in.__signature__ = inspect.signature(real)
    monkeypatch.setattr(api, function, stand_in)
    flag, expected = _argv(action)
    extra = ["--judge", "openai:a", "--judge", "openai:b"] if flag[:1] == ["--escalate-to"] else []
    parser = LEAVES[path]
    argv = [*path, *_required(parser, action), *extra, *flag]
    with pytest.raises(Reached) as reached:
        main(argv)
    kwargs = reached.value.args[0]
    # the value given is not what the keyword gets anyway
    assert expected != parser.get_default(action.dest), argv
    for name in _keywords(path, action):
        assert name in kwargs, f"{' '.join(argv)}: {name} did not reach kb.{function}"
        assert kwargs[name] == expected, (argv, name, kwargs[name])


@pytest.mark.parametrize("command", ["generate", "run"])
def test_dry_run_reaches_kb_dry_run_with_the_other_flags(command, monkeypatch):
    monkeypatch.setattr(api, "dry_run", lambda **kw: (_ for _ in ()).throw(Reached(kw)))
    with pytest.raises(Reached) as reached:
        main(
            [
                command,
                "--model",
                "openai:m",
                "--output",
                "out",
                "--dry-run",
                "--temperature",
                "0.3",
                "--batch-timeout",
                "60",
            ]
        )
    kw = reached.value.args[0]
    assert (kw["model"], kw["temperature"], kw["batch_timeout"], kw["judge_batch_timeout"]) == (
        "openai:m",
        0.3,
        60.0,
        60.0,
    )


def test_judge_audit_gives_the_judges_their_timeout_batch_size_dtype_and_template(
    tmp_path, monkeypatch
):
    """The bug of issue 19: these four flags were accepted and ignored."""
    import kardiabench.audit
    import kardiabench.judge_stage

    template = tmp_path / "t.jinja"
    template.write_text("{{ messages }}")
    monkeypatch.setattr(
        kardiabench.audit,
        "run_audit",
        lambda judging, *a, **kw: (_ for _ in ()).throw(Reached(judging)),
    )
    argv = [
        "judge-audit",
        "--output",
        str(tmp_path / "card"),
        "--judge",
        "hf:judge",
        "--judge-timeout",
        "7",
        "--judge-batch-size",
        "3",
        "--judge-dtype",
        "float16",
        "--judge-chat-template",
        str(template),
    ]
    with pytest.raises(Reached) as reached:
        main(argv)
    built = []
    monkeypatch.setattr(
        kardiabench.judge_stage, "load_model", lambda spec, opts: built.append((spec, opts))
    )
    reached.value.args[0].models(require_key=False)
    [(spec, opts)] = built
    assert (spec, opts.timeout, opts.batch_size, opts.dtype, opts.chat_template) == (
        "hf:judge",
        7.0,
        3,
        "float16",
        "{{ messages }}",
    )


def test_a_misspelt_keyword_names_the_function_and_the_closest_option(tmp_path):
    with pytest.raises(UnknownOption) as e:
        kb.evaluate("baseline:majority", tmp_path / "run", temprature=0.5)
    assert isinstance(e.value, TypeError) and kb.UnknownOption is UnknownOption
    assert (
        str(e.value)
        == "kb.evaluate() got an unexpected option 'temprature'; did you mean 'temperature'?"
    )
    with pytest.raises(
        UnknownOption,
        match=r"^kb.judge_audit\(\) got an unexpected option 'judge_timout'; did you mean 'judge_timeout'\?$",
    ):
        kb.judge_audit(tmp_path / "card", judges=["openai:j"], judge_timout=5)
    with pytest.raises(UnknownOption, match=r"^kb.compare\(\) got an unexpected option 'zzz'$"):
        kb.compare(tmp_path, tmp_path, zzz=1)
    assert not (tmp_path / "run").exists()


def test_missing_or_extra_positionals_are_python_type_errors(tmp_path):
    with pytest.raises(TypeError, match=r"kb.generate\(\): missing a required argument: 'output'"):
        kb.generate("baseline:majority")
    with pytest.raises(TypeError, match=r"kb.compare\(\): too many positional arguments"):
        kb.compare(tmp_path, tmp_path, tmp_path)


def test_one_keyword_has_one_rule_wherever_it_appears():
    rules: dict[str, set] = {}
    for sig in SIGNATURES.values():
        for o in sig.options:
            rules.setdefault(o.name, set()).add(o.rule)
    assert {k: v for k, v in rules.items() if len(v) > 1} == {}


def test_judge_option_groups_are_the_fields_of_kb_judge_options():
    """score_stage.JudgeOptions (kb.JudgeOptions) is built from these groups: same names, same defaults."""
    groups = {
        o.name: o.default for g in (JudgeModelOptions, JudgeScoringOptions) for o in g.options()
    }
    fields = {f.name: f.default for f in dataclasses.fields(kb.JudgeOptions)}
    assert {k: tuple(v) if isinstance(v, list) else v for k, v in groups.items()} == fields
    from kardiabench.scoring.judge import POOLS

    assert JudgeScoringOptions.option("judge_pool").choices == tuple(POOLS)


def test_docs_options_md_is_generated_from_the_definitions():
    path = Path(__file__).parents[1] / "docs" / "options.md"
    assert path.read_text(encoding="utf-8") == markdown(), (
        "docs/options.md is stale: python -m kardiabench.options > docs/options.md"
    )
    assert "| `judge_timeout` | `--judge-timeout` | `120.0` | a number > 0 |" in markdown()
    assert "| `concurrency` | `--concurrency` | `16` | an integer from 1 to 1024 |" in markdown()


def test_a_rule_only_the_api_can_check_is_a_one_line_usage_error(tmp_path, capsys):
    assert main(["judge-audit", "--output", str(tmp_path / "card")]) == 2
    err = capsys.readouterr().err
    assert (
        err == "error: judges: give at least one judge model spec to audit\n"
        and not (tmp_path / "card").exists()
    )


def test_a_group_checks_its_fields_as_the_api_does():
    from kardiabench.options import SamplingOptions

    assert SamplingOptions(temperature=0.7, top_k=5).top_k == 5
    with pytest.raises(kb.ParameterError, match=r"^top_p: must be a number in \(0, 1\], got 1.5$"):
        SamplingOptions(top_p=1.5)
