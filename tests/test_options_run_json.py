"""Every option says where run.json records it (`Option.recorded`, kardiabench/options.py) or that
it deliberately does not; each recorded option of `generate`, `run` and `score`, given a value
other than its default on the command line, is that value at that path of the run.json written;
the sampling block is SamplingOptions' fields, and folders written before keep their identity."""

from __future__ import annotations

import dataclasses
import json
import shutil
import types
import typing
from pathlib import Path
from typing import Any

import pytest
from helpers import write_dataset
from pydantic import BaseModel

from kardiabench.cli import main
from kardiabench.data import load_dialogues
from kardiabench.models.base import SamplingParams
from kardiabench.models.baselines import MajorityBaseline
from kardiabench.models.hf import sha256_text
from kardiabench.options import GROUPS, NOT_RECORDED, SIGNATURES, SamplingOptions, markdown
from kardiabench.redact import public_endpoint
from kardiabench.runs import RunManifest, recorded_value
from kardiabench.scoring.rubric import default_rubric_path, load_rubric
from kardiabench.testing.fake_openai import FakeOpenAIServer

DATA = Path(__file__).parent / "data"
# The commands that write run.json and the function each wraps.
COMMANDS = {"generate": "kb.generate", "run": "kb.evaluate", "score": "kb.score"}
TEMPLATE = (
    "{% for m in messages %}[{{ m['role'] }}] {{ m['content'] }}\n{% endfor %}"
    "{% if add_generation_prompt %}[assistant] {% endif %}"
)


# ----------------------------------------------------------------------------- declarations


def test_every_option_says_whether_run_json_records_it():
    undecided = [
        f"{g.__name__}.{o.name}" for g in GROUPS for o in g.options() if o.recorded is None
    ]
    assert undecided == []
    # An option of a command that writes run.json decides on its own, not by a group-wide
    # NOT_RECORDED (a group whose commands write no run.json).
    own = {o.name for g in GROUPS if g.recorded is None for o in g.options()}
    for function in COMMANDS.values():
        assert {o.name for o in SIGNATURES[function].options} <= own, function


def _field_type(model: type[BaseModel], key: str) -> Any:
    assert key in model.model_fields, f"{model.__name__} has no field {key!r}"
    annotation = model.model_fields[key].annotation
    if isinstance(annotation, types.UnionType) or typing.get_origin(annotation) is typing.Union:
        annotation = next(a for a in typing.get_args(annotation) if a is not type(None))
    return annotation


def test_every_recorded_path_is_a_field_of_the_typed_run_json():
    paths = {o.recorded for g in GROUPS for o in g.options()} - {NOT_RECORDED}
    assert len(paths) > 25
    for path in paths:
        node: Any = RunManifest
        for key in path.split("."):
            if not (isinstance(node, type) and issubclass(node, BaseModel)):
                break  # a dict block (generation.model, generation.sampling): its keys are free
            node = _field_type(node, key)


def test_sampling_params_are_sampling_options_under_their_run_json_keys():
    keys = SamplingOptions.recorded_under("generation.sampling")
    assert list(keys) == [o.name for o in SamplingOptions.options()]  # every one of them
    assert list(keys.values()) == [f.name for f in dataclasses.fields(SamplingParams)]
    assert keys["gen_kwargs"] == "extra"


def test_the_docs_table_has_a_run_json_column_from_the_declarations():
    md = markdown()
    assert "| keyword | flag | default | rule | meaning | run.json |" in md
    assert "| `temperature` | `--temperature` | – | a number ≥ 0 |" in md
    row = next(line for line in md.splitlines() if line.startswith("| `gen_kwargs` |"))
    assert row.endswith("| `generation.sampling.extra` |")
    row = next(line for line in md.splitlines() if line.startswith("| `concurrency` |"))
    assert row.endswith("| – |")


# ----------------------------------------------------------------------------- old folders


def _generate_as_before(old: dict[str, Any], out: Path, url: str) -> int:
    """`generate` with the settings the folder's run.json records (fixtures written by the code
    before the options recorded themselves: tests/data/run_v1_*.json)."""
    s = old["generation"]["sampling"]
    argv = ["generate", "--model", old["model_spec"], "--output", str(out), "--data", "sample"]
    argv += ["--limit", str(old["data"]["limit"]), "--base-url", url, "--no-cache", "--no-progress"]
    for key in ("temperature", "top_p", "max_tokens", "seed", "top_k", "min_p"):
        argv += [f"--{key.replace('_', '-')}", str(s[key])] if key in s else []
    argv += (
        ["--repetition-penalty", str(s["repetition_penalty"])] if "repetition_penalty" in s else []
    )
    for stop in s.get("stop", []):
        argv += ["--stop", stop]
    if "extra" in s:
        argv += ["--gen-kwargs", ",".join(f"{k}={json.dumps(v)}" for k, v in s["extra"].items())]
    return main(argv)


@pytest.mark.parametrize("name", ["defaults", "every_setting"])
def test_a_folder_written_before_resumes_with_the_same_identity(name, tmp_path, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    text = (DATA / f"run_v1_{name}.json").read_text(encoding="utf-8")
    old = json.loads(text)
    out = tmp_path / "run"
    out.mkdir()
    (out / "run.json").write_text(text, encoding="utf-8")
    with FakeOpenAIServer() as server:
        assert _generate_as_before(old, out, server.url) == 0  # not "different settings"
    new = json.loads((out / "run.json").read_text(encoding="utf-8"))
    # the identity byte for byte (key order too), and run.json's keys as they were
    assert json.dumps(new["generation"]) == json.dumps(old["generation"])
    assert list(new) == list(old)
    assert new["generation_stats"]["resumes"] == old["generation_stats"]["resumes"] + 1  # resumed
    if name == "defaults":
        assert list(old["generation"]["sampling"]) == ["temperature", "top_p", "max_tokens", "seed"]


def test_a_changed_setting_still_refuses_to_resume(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    text = (DATA / "run_v1_every_setting.json").read_text(encoding="utf-8")
    old = json.loads(text)
    old["generation"]["sampling"]["top_k"] = 6  # the folder says 6, the command says 5
    out = tmp_path / "run"
    out.mkdir()
    (out / "run.json").write_text(json.dumps(old), encoding="utf-8")
    with FakeOpenAIServer() as server:
        assert _generate_as_before(json.loads(text), out, server.url) == 2
    assert "sampling.top_k: 6 → 5" in capsys.readouterr().err
    assert not (out / "predictions.jsonl").exists()


# ----------------------------------------------------------------------------- the parity walk


@dataclasses.dataclass
class Setting:
    """One option's CLI words and what run.json should hold at its `recorded` path (`view`: the
    part of it the option decides)."""

    argv: list[str]
    expected: Any
    view: Any = None


@dataclasses.dataclass
class Ctx:
    root: Path
    data: Path  # a single file (--derive-split)
    other_train: Path
    rubric: Path
    template: Path
    gen_url: str  # --base-url: host "localhost"; $OPENAI_BASE_URL is 127.0.0.1
    judge_url: str  # --judge-base-url: another port than $OPENAI_BASE_URL


def _settings(ctx: Ctx, kind: str) -> dict[str, Setting]:
    """The options each kind of run sets, every one off its default."""
    data = {
        "task": Setting(["--task", "kardiabench_instructed"], "kardiabench_instructed"),
        "data": Setting(["--data", str(ctx.data)], str(ctx.data.resolve())),
        "split": Setting(["--split", "train"], "train"),
        "derive_split": Setting(["--derive-split", "0.5"], 0.5),
        "split_seed": Setting(["--split-seed", "3"], 3),
        "limit": Setting(["--limit", "2"], 2),
    }
    judges = {
        "judges": Setting(
            ["--judge", "openai:judge-a", "--judge", "openai:judge-b"],
            ["openai:judge-a", "openai:judge-b"],
        ),
        "judge_base_url": Setting(
            ["--judge-base-url", ctx.judge_url],
            [public_endpoint(ctx.judge_url)],
            view=lambda endpoints: sorted(set(endpoints.values())),
        ),
        "judge_repeats": Setting(["--judge-repeats", "2"], 2),
        "judge_max_tokens": Setting(["--judge-max-tokens", "300"], 300),
        "judge_show_reasoning": Setting(["--judge-show-reasoning"], True),
        "rubric": Setting(["--rubric", str(ctx.rubric)], load_rubric(ctx.rubric).version),
        "judge_pool": Setting(["--judge-pool", "median"], "median"),
        "escalate_to": Setting(["--escalate-to", "openai:judge-c"], "openai:judge-c"),
        "escalate_when": Setting(["--escalate-when", "disagree:2"], 2),
    }
    if kind == "api":
        return {
            **data,
            "model": Setting(["--model", "openai:gen-x"], "openai:gen-x"),
            "base_url": Setting(["--base-url", ctx.gen_url], "localhost"),
            "temperature": Setting(["--temperature", "0.7"], 0.7),
            "top_p": Setting(["--top-p", "0.9"], 0.9),
            "max_tokens": Setting(["--max-tokens", "64"], 64),
            "seed": Setting(["--seed", "11"], 11),
            "stop": Setting(["--stop", "END", "--stop", "</r>"], ["END", "</r>"]),
            "top_k": Setting(["--top-k", "5"], 5),
            "min_p": Setting(["--min-p", "0.05"], 0.05),
            "repetition_penalty": Setting(["--repetition-penalty", "1.1"], 1.1),
            "gen_kwargs": Setting(
                ["--gen-kwargs", "presence_penalty=0.5"], {"presence_penalty": 0.5}
            ),
            **judges,
        }
    if kind == "hf":  # what only a local model records; two tokens of one item
        return {
            "dtype": Setting(["--dtype", "bfloat16"], "bfloat16"),
            "revision": Setting(["--revision", "v1"], "v1"),
            "add_span_tokens": Setting(["--add-span-tokens"], True),
            "chat_template": Setting(["--chat-template", str(ctx.template)], sha256_text(TEMPLATE)),
        }
    if kind == "hf_judge":  # a local judge's weights: its verdicts record them (two tokens each)

        def weights(key):
            return lambda models: [m[key] for m in models.values()]

        return {
            "judge_dtype": Setting(["--judge-dtype", "bfloat16"], ["bfloat16"], weights("dtype")),
            "judge_chat_template": Setting(
                ["--judge-chat-template", str(ctx.template)],
                [sha256_text(TEMPLATE)],
                weights("chat_template_sha256"),
            ),
        }
    if kind == "baseline":
        train = load_dialogues(str(ctx.other_train), "train").dialogues
        fingerprint = MajorityBaseline(train).identity()["train_fingerprint"]
        return {"train_data": Setting(["--train-data", str(ctx.other_train)], fingerprint)}
    assert kind == "predictions"
    return {**data, **judges}


DATA_OPTIONS = ("task", "data", "split", "derive_split", "split_seed", "limit")
SAMPLING_OPTIONS = tuple(SamplingOptions.recorded_under("generation.sampling"))
JUDGE_OPTIONS = (
    "judges",
    "judge_base_url",
    "judge_repeats",
    "judge_max_tokens",
    "judge_show_reasoning",
    "rubric",
    "judge_pool",
    "escalate_to",
    "escalate_when",
)
# The kinds of run the walk makes and the options each sets (`_settings`).
KINDS = {
    "api": (*DATA_OPTIONS, "model", "base_url", *SAMPLING_OPTIONS, *JUDGE_OPTIONS),
    "hf": ("dtype", "revision", "add_span_tokens", "chat_template"),
    "baseline": ("train_data",),
    "predictions": (*DATA_OPTIONS, *JUDGE_OPTIONS),  # `score --predictions FILE`
    "hf_judge": ("judge_dtype", "judge_chat_template"),
}
RUNS = {
    "generate": ("api", "hf", "baseline"),
    "run": ("api", "hf", "baseline", "hf_judge"),
    "score": ("predictions", "hf_judge"),
}


def _kinds(command: str) -> dict[str, str]:
    """Option → the kind of run that checks it, for the options `command` takes."""
    takes = {o.name for o in SIGNATURES[COMMANDS[command]].options}
    out: dict[str, str] = {}
    for kind in RUNS[command]:
        out.update({n: kind for n in KINDS[kind] if n in takes and n not in out})
    return out


CASES = [(command, name) for command in COMMANDS for name in _kinds(command)]


def test_the_walk_sets_every_recorded_option_of_each_command():
    for command, function in COMMANDS.items():
        recorded = {o.name for o in SIGNATURES[function].options if o.recorded != NOT_RECORDED}
        assert set(_kinds(command)) == recorded, command
    assert len(CASES) > 50


def test_the_walk_gives_a_value_to_every_option_it_sets(ctx):
    for kind, names in KINDS.items():
        assert list(_settings(ctx, kind)) == list(names), kind


@pytest.fixture(scope="module")
def ctx(tmp_path_factory):
    root = tmp_path_factory.mktemp("recorded")
    data = write_dataset(root / "data", test_users=tuple("efghijkl")) / "test.jsonl"
    other = write_dataset(root / "other", train_users=("p", "q"), test_users=("r",))
    rubric_dir = root / "rubric"
    shutil.copytree(default_rubric_path().parent, rubric_dir)
    rubric = rubric_dir / default_rubric_path().name
    rubric.write_text(
        rubric.read_text(encoding="utf-8").replace('version: "1.0"', 'version: "1.0-test"'),
        encoding="utf-8",
    )
    template = root / "template.jinja"
    template.write_text(TEMPLATE, encoding="utf-8")
    with (
        pytest.MonkeyPatch.context() as mp,
        FakeOpenAIServer() as default,
        FakeOpenAIServer(host="localhost") as gen,
        FakeOpenAIServer() as judge,
    ):
        mp.setenv("OPENAI_API_KEY", "sk-test")
        mp.setenv("OPENAI_BASE_URL", default.url)
        yield Ctx(root, data, other, rubric, template, gen.url, judge.url)


@pytest.fixture(scope="module")
def written(ctx, request):
    """(command, kind) → the run.json that run wrote (each run made once, on first use)."""
    made: dict[tuple[str, str], RunManifest] = {}

    def get(command: str, kind: str) -> RunManifest:
        if kind == "predictions":  # scores the predictions of `generate` on the same data
            get("generate", "api")
        if (command, kind) == ("score", "hf_judge"):
            get("generate", "baseline")
        if (command, kind) not in made:
            made[command, kind] = _make(ctx, command, kind, request)
        return made[command, kind]

    return get


def _make(ctx: Ctx, command: str, kind: str, request) -> RunManifest:
    out = ctx.root / f"{command}-{kind}"
    settings = _settings(ctx, kind)
    names = [n for n, k in _kinds(command).items() if k == kind]
    argv = [command, "--output", str(out), "--no-cache", "--no-progress"]
    if kind == "hf":
        tiny = request.getfixturevalue("tiny_model_dir")
        argv += ["--model", f"hf:{tiny}", "--device", "cpu", "--max-tokens", "2"]
    if kind in ("hf", "baseline"):
        argv += ["--data", str(ctx.data.parent), "--limit", "1"]
    if kind == "baseline":
        argv += ["--model", "baseline:majority"]
    if kind == "predictions":
        argv[1:1] = ["--predictions", str(ctx.root / "generate-api" / "predictions.jsonl")]
    if kind == "hf_judge":
        tiny = request.getfixturevalue("tiny_model_dir")
        argv += ["--judge", f"hf:{tiny}", "--judge-max-tokens", "2"]
        argv += ["--data", str(ctx.data.parent), "--limit", "1"]
        if command == "run":
            argv += ["--model", "baseline:majority"]
        else:
            predictions = ctx.root / "generate-baseline" / "predictions.jsonl"
            argv[1:1] = ["--predictions", str(predictions)]
    for name in names:
        argv += settings[name].argv
    # a random-weight judge writes no verdict JSON: the command reports it (exit 1), and run.json
    # still records how the verdicts were asked
    assert main(argv) == (1 if kind == "hf_judge" else 0), argv
    return RunManifest.read(out / "run.json")


@pytest.mark.parametrize(("command", "name"), CASES, ids=[f"{c} {n}" for c, n in CASES])
def test_a_recorded_option_is_in_run_json_at_its_path(command, name, ctx, written):
    option = SIGNATURES[COMMANDS[command]][name]
    kind = _kinds(command)[name]
    setting = _settings(ctx, kind)[name]
    manifest = written(command, kind)
    value = recorded_value(manifest, option.recorded)
    assert (setting.view or (lambda v: v))(value) == setting.expected, (command, name, value)
    assert setting.expected != option.default  # a value the option would not have anyway
