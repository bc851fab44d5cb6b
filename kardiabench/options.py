"""Every option of the Python API and the CLI, defined once (docs/options.md is generated from here).

An option is a field of a typed group (`SamplingOptions`, `JudgeModelOptions`, …, in the spirit of
inspect_ai's GenerateConfig and TRL's config dataclasses) that carries its keyword, flag, help,
rule (params.RULES: type and bounds) and default. A `Signature` lists the options of one public
function; from it come that function's keywords (`@takes`: a misspelt one is `UnknownOption`
naming the closest), their validation (`ParameterError`), the command's argparse flags
(`add_arguments`: a bad value is a one-line usage error) and the docs table:

    python -m kardiabench.options > docs/options.md

Light on purpose: the CLI builds its parser from here, and `kardiabench --help` stays fast.
"""

from __future__ import annotations

import argparse
import dataclasses
import difflib
import functools
import inspect
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from kardiabench.params import BATCH_TIMEOUT_S, RULES, check, gen_kwargs
from kardiabench.redact import env_var_name


class UnknownOption(TypeError):
    """A keyword no option of the function has (a TypeError, as Python's own): names the closest."""


# ----------------------------------------------------------------------------- one option

_API_DEFAULT: Any = type("_ApiDefault", (), {"__repr__": lambda self: "the API's default"})()

# An option's `recorded` when run.json deliberately does not hold it: it changes how a run goes
# (progress bar, cache file, concurrency, a budget), not what it computes, or its command writes no run.json.
NOT_RECORDED = "not recorded"


@dataclass(frozen=True)
class Option:
    """One keyword of the API and its CLI form.

    flag: "--name" (the CLI flag), a bare name (a positional CLI argument), or "" (API only).
    rule: a key of params.RULES, "env_var" or "spec" (a model spec's bounded length).
    parse: the CLI's text → value when no rule gives it (Path, gen_kwargs, …).
    positional: the API takes it by position too; required: it has no default.
    cli_default: the CLI's default where it differs (progress bar on, the default cache).
    off: (flag, help) of a second flag that sets the option to None (`--no-cache`).
    recorded: where run.json holds the value (a dotted path, `generation.sampling.temperature`), or
    NOT_RECORDED; every option says which (tests/test_options_run_json.py), so a setting that
    changes results cannot be added without run.json saying what it was."""

    name: str
    default: Any
    help: str
    flag: str | None = None
    rule: str | None = None
    parse: Callable[[str], Any] | None = None
    action: str | None = None
    metavar: str | None = None
    choices: tuple[str, ...] | None = None
    nargs: str | None = None
    positional: bool = False
    required: bool = False
    cli_default: Any = _API_DEFAULT
    off: tuple[str, str] | None = None
    annotation: str = "Any"
    recorded: str | None = None

    def __post_init__(self) -> None:
        if self.flag is None:
            object.__setattr__(self, "flag", "--" + self.name.replace("_", "-"))

    def but(self, **changes: Any) -> Option:
        """The same option with another help, default or CLI shape (one command's use of it)."""
        return dataclasses.replace(self, **changes)

    def check(self, value: Any) -> None:
        """ParameterError naming the option (SpecError for a model spec) unless `value` keeps its
        rule; None is "not given"."""
        if value is None or self.rule is None:
            return
        if self.rule == "spec":
            from kardiabench.models import check_spec_length

            for spec in [value] if isinstance(value, str) else value:
                check_spec_length(spec)
            return
        check(self.name, value, self.rule)

    # -- the CLI form

    def cli_type(self) -> Callable[[str], Any] | None:
        if self.rule == "spec":
            return model_spec
        if self.rule == "env_var":
            return env_var_name
        if self.rule is not None:
            return rule_type(self.rule)
        return self.parse

    def add_to(self, parser: argparse.ArgumentParser | Any) -> None:
        """Add the option's flag (and its `off` flag) to `parser`, its value stored under its name."""
        default = self.default if self.cli_default is _API_DEFAULT else self.cli_default
        kw: dict[str, Any] = {"help": self.help, "default": default}
        if self.action in ("store_true", "store_false"):
            kw["action"] = self.action
        else:
            kw.update(
                type=self.cli_type(),
                metavar=self.metavar,
                choices=self.choices,
                nargs=self.nargs,
                action=self.action,
            )
        if not self.flag.startswith("-"):  # positional: argparse takes neither dest nor required
            parser.add_argument(
                self.name, **{k: v for k, v in kw.items() if v is not None or k == "default"}
            )
        else:
            parser.add_argument(
                self.flag, dest=self.name, **kw, **({"required": True} if self.required else {})
            )
        if self.off:
            parser.add_argument(
                self.off[0], dest=self.name, action="store_const", const=None, help=self.off[1]
            )


def option(default: Any, help: str, **shape: Any) -> Any:
    """A field of an option group: its default and `Option` metadata (the name is the field's)."""
    factory = (
        {"default_factory": lambda: list(default)}
        if isinstance(default, list)
        else {"default": default}
    )
    return field(**factory, metadata={"option": {"default": default, "help": help, **shape}})


# ----------------------------------------------------------------------------- groups


@dataclass(frozen=True)
class OptionGroup:
    """A typed record of options; constructing one checks every field against its rule."""

    title: ClassVar[str] = ""
    # NOT_RECORDED for a group whose commands write no run.json: its options need not each say so
    recorded: ClassVar[str | None] = None

    def __post_init__(self) -> None:
        for opt in self.options():
            opt.check(getattr(self, opt.name))

    @classmethod
    def options(cls) -> tuple[Option, ...]:
        return _group_options(cls)

    @classmethod
    def option(cls, name: str) -> Option:
        return next(o for o in cls.options() if o.name == name)

    @classmethod
    def pick(cls, *names: str) -> tuple[Option, ...]:
        return tuple(cls.option(n) for n in names)

    @classmethod
    def recorded_under(cls, block: str) -> dict[str, str]:
        """Option name → its key in the run.json block `block` ("generation.sampling"), in order."""
        prefix = block + "."
        return {
            o.name: o.recorded.removeprefix(prefix)
            for o in cls.options()
            if o.recorded and o.recorded.startswith(prefix)
        }


@functools.cache
def _group_options(cls: type[OptionGroup]) -> tuple[Option, ...]:
    return tuple(
        Option(
            name=f.name,
            annotation=str(f.type),
            **{"recorded": cls.recorded, **f.metadata["option"]},
        )
        for f in dataclasses.fields(cls)
        if "option" in f.metadata
    )


@dataclass(frozen=True)
class TaskOptions(OptionGroup):
    title: ClassVar[str] = "task"
    task: str | None = option(
        None,
        "task name (see `kardiabench tasks`) or a YAML file (default: kardiabench; `score`: the run's)",
        recorded="task.name",
    )
    tasks_dir: list[str] = option(
        [],
        "extra folder of task YAML files (repeatable)",
        action="append",
        recorded=NOT_RECORDED,
    )


@dataclass(frozen=True)
class DataOptions(OptionGroup):
    title: ClassVar[str] = "data"
    data: str | None = option(
        None,
        "sample | DIR | FILE (.jsonl/.json/.parquet) | hub | OWNER/NAME (gated Hub dataset, uses HF_TOKEN)",
        recorded="data.source",
    )
    split: str | None = option(
        None, "split to use (default: the task's, or all for data commands)", recorded="data.split"
    )
    strict: bool = option(
        False,
        "refuse to run when any record has a problem (default: skip and report)",
        action="store_true",
        recorded=NOT_RECORDED,
    )
    derive_split: float | None = option(
        None,
        "derive a persona-disjoint train/test split from a single file (seeded by --split-seed)",
        rule="open_fraction",
        metavar="TEST_FRACTION",
        recorded="data.derive_split",
    )
    split_seed: int = option(0, "seed for --derive-split", rule="int", recorded="data.split_seed")


@dataclass(frozen=True)
class RunOptions(OptionGroup):
    title: ClassVar[str] = "run folder"
    model: str = option(
        None,
        "openai:MODEL | hf:PATH_OR_ID | vllm:PATH_OR_ID | baseline:majority|retrieval",
        rule="spec",
        positional=True,
        required=True,
        recorded="model_spec",
    )
    output: Path = option(
        None,
        "run folder (created; an existing one is resumed)",
        parse=Path,
        positional=True,
        required=True,
        recorded=NOT_RECORDED,
    )
    limit: int | None = option(
        None, "only the first N items (in file order)", rule="positive_int", recorded="data.limit"
    )
    overwrite: bool = option(
        False, "discard predictions already in --output", action="store_true", recorded=NOT_RECORDED
    )
    train_data: str | None = option(
        None,
        "training split source for baselines (default: --data)",
        recorded="generation.model.train_fingerprint",
    )
    max_cost: float | None = option(
        None,
        "stop sending requests once they have cost this much: generation, and in `run` the judges too (resumable)",
        rule="positive_float",
        metavar="USD",
        recorded=NOT_RECORDED,
    )


@dataclass(frozen=True)
class SamplingOptions(OptionGroup):
    title: ClassVar[str] = "sampling (defaults from the task file; recorded in run.json)"
    temperature: float | None = option(
        None,
        "sampling temperature (≥ 0)",
        rule="nonneg_float",
        recorded="generation.sampling.temperature",
    )
    top_p: float | None = option(
        None,
        "nucleus sampling mass (0 < p ≤ 1)",
        rule="top_p",
        recorded="generation.sampling.top_p",
    )
    max_tokens: int | None = option(
        None,
        "most tokens the model may generate per item",
        rule="positive_int",
        recorded="generation.sampling.max_tokens",
    )
    seed: int | None = option(
        None,
        "sampling seed (where the backend supports one)",
        rule="int",
        recorded="generation.sampling.seed",
    )
    stop: list[str] | None = option(
        None,
        "stop string (repeatable): generation ends before it; the model's own end tokens always stop it",
        action="append",
        metavar="STR",
        recorded="generation.sampling.stop",
    )
    top_k: int | None = option(
        None,
        "sample only from the K most likely tokens",
        rule="positive_int",
        recorded="generation.sampling.top_k",
    )
    min_p: float | None = option(
        None,
        "drop tokens below this fraction of the top token's probability",
        rule="unit_interval",
        recorded="generation.sampling.min_p",
    )
    repetition_penalty: float | None = option(
        None,
        "penalty for repeated tokens (1 = none)",
        rule="positive_float",
        recorded="generation.sampling.repetition_penalty",
    )
    gen_kwargs: dict[str, Any] | str | None = option(
        None,
        "further generation options passed to the backend as typed values (int, float, true/false, text)",
        parse=gen_kwargs,
        metavar="K=V,…",
        recorded="generation.sampling.extra",
    )


@dataclass(frozen=True)
class BackendOptions(OptionGroup):
    title: ClassVar[str] = "backends"
    base_url: str | list[str] | None = option(
        None,
        "OpenAI-compatible endpoint (default: $OPENAI_BASE_URL); no credentials in it, see --api-key-env. "
        "Repeat for replicas of one model: requests go to the least busy",
        action="append",
        recorded="generation.model.host",
    )
    api_key_env: str = option(
        "OPENAI_API_KEY",
        "environment variable holding the API key",
        rule="env_var",
        metavar="VAR",
        recorded=NOT_RECORDED,
    )
    concurrency: int = option(
        16, "max requests in flight for API models", rule="concurrency", recorded=NOT_RECORDED
    )
    timeout: float = option(
        120.0,
        "per-request timeout in seconds for API models (a local server's timed-out request is not re-sent)",
        rule="positive_float",
        recorded=NOT_RECORDED,
    )
    batch: bool = option(
        False,
        "openai: send the requests as one provider batch job (50%% price, up to 24 h; docs/backends.md)",
        action="store_true",
        recorded=NOT_RECORDED,
    )
    batch_timeout: float | None = option(
        BATCH_TIMEOUT_S,
        "--batch/--judge-batch: stop waiting for a batch that has not ended after this long; it stays "
        "recorded and the same command run again polls it",
        rule="positive_float",
        metavar="SECONDS",
        recorded=NOT_RECORDED,
    )
    prices: str | None = option(
        None,
        "JSON/YAML price table extending the built-in one (USD per 1M tokens)",
        recorded=NOT_RECORDED,
    )
    batch_size: int = option(
        8, "batch size for hf: models", rule="batch_size", recorded=NOT_RECORDED
    )
    dtype: str = option(
        "auto",
        "hf:/vllm: weight dtype (auto, bfloat16, float16, float32)",
        recorded="generation.model.dtype",
    )
    device: str = option("auto", "hf: device (auto, cpu, cuda, cuda:N, mps)", recorded=NOT_RECORDED)
    revision: str | None = option(
        None,
        "hf:/vllm: model revision (branch, tag or commit) on the Hub",
        recorded="generation.model.revision",
    )
    add_span_tokens: bool = option(
        False,
        "hf: add the eight span markers as special tokens",
        action="store_true",
        recorded="generation.model.add_span_tokens",
    )
    chat_template: str | None = option(
        None,
        "a Jinja chat template file for models without one",
        recorded="generation.model.chat_template_sha256",
    )
    tensor_parallel_size: int = option(
        1, "vllm: GPUs per model replica", rule="parallel", recorded=NOT_RECORDED
    )
    data_parallel_size: int = option(
        1, "vllm: model replicas", rule="parallel", recorded=NOT_RECORDED
    )


@dataclass(frozen=True)
class CacheOptions(OptionGroup):
    title: ClassVar[str] = "cache and progress"
    cache: str | Path | bool | None = option(
        True,
        "response cache file (default: $KARDIABENCH_CACHE or ~/.cache/kardiabench/cache.sqlite)",
        off=("--no-cache", "neither read nor write the response cache"),
        recorded=NOT_RECORDED,
    )
    progress: bool = option(
        False,
        "no progress bar",
        flag="--no-progress",
        action="store_false",
        cli_default=True,
        recorded=NOT_RECORDED,
    )


@dataclass(frozen=True)
class JudgeModelOptions(OptionGroup):
    """The judges themselves: every command that asks judges (`run`, `score`, `judge-audit`)."""

    title: ClassVar[str] = "rubric judge"
    judges: list[str] = option(
        [],
        "judge model spec (repeatable); e.g. openai:gpt-5-mini",
        flag="--judge",
        rule="spec",
        action="append",
        metavar="SPEC",
        recorded="judge.judges",
    )
    judge_base_url: str | list[str] | None = option(
        None,
        "endpoint for openai: judges (default: $OPENAI_BASE_URL); repeat for replicas",
        action="append",
        recorded="judge.endpoints",
    )
    judge_api_key_env: str = option(
        "OPENAI_API_KEY",
        "environment variable holding the judges' API key",
        rule="env_var",
        metavar="VAR",
        recorded=NOT_RECORDED,
    )
    judge_concurrency: int = option(
        16, "max judge requests in flight", rule="concurrency", recorded=NOT_RECORDED
    )
    judge_repeats: int = option(
        1, "judge each item K times; reports the variance", rule="repeats", recorded="judge.repeats"
    )
    judge_max_tokens: int = option(
        1024, "most tokens per judge reply", rule="positive_int", recorded="judge.max_tokens"
    )
    judge_show_reasoning: bool = option(
        False,
        "also show the judge the understanding/reasoning spans",
        action="store_true",
        recorded="judge.show_reasoning",
    )
    judge_timeout: float = option(
        120.0,
        "per-request timeout in seconds for openai: judges (a local server's timed-out request is not re-sent)",
        rule="positive_float",
        recorded=NOT_RECORDED,
    )
    judge_batch_size: int = option(
        8, "batch size for hf: judges", rule="batch_size", recorded=NOT_RECORDED
    )
    judge_dtype: str = option(
        "auto",
        "hf:/vllm: judge weight dtype (auto, bfloat16, float16, float32)",
        recorded="judge.models",
    )
    judge_chat_template: str | None = option(
        None,
        "a Jinja chat template file for hf:/vllm: judges without one",
        recorded="judge.models",
    )
    rubric: str | None = option(
        None, "rubric file (default: judges/rubric.yaml)", recorded="judge.rubric_version"
    )


@dataclass(frozen=True)
class JudgeScoringOptions(OptionGroup):
    """How verdicts become results.json (`run`, `score`): the judge card cited, pooling, escalation, batches, budget."""

    title: ClassVar[str] = "judge scoring"
    judge_card: str | None = option(
        None,
        "judge_card.json from `judge-audit` to cite in results.json (rubric.judge_card)",
        metavar="FILE",
        recorded=NOT_RECORDED,
    )
    families: str | None = option(
        None,
        "YAML {model-name pattern: family} tried before the built-in mapping (self-preference guard)",
        metavar="FILE",
        recorded=NOT_RECORDED,
    )
    judge_batch: bool = option(
        False,
        "openai: judges: send the first round as a provider batch job (docs/backends.md)",
        action="store_true",
        recorded=NOT_RECORDED,
    )
    judge_batch_timeout: float | None = option(
        BATCH_TIMEOUT_S,
        BackendOptions.option("batch_timeout").help,
        flag="--batch-timeout",
        rule="positive_float",
        metavar="SECONDS",
        recorded=NOT_RECORDED,
    )
    judge_max_cost: float | None = option(
        None,
        "stop sending judge requests once they have cost this much (resumable)",
        rule="positive_float",
        metavar="USD",
        recorded=NOT_RECORDED,
    )
    judge_pool: str = option(
        "mean",
        "how several judges' item scores are pooled",
        choices=("mean", "median"),
        recorded="judge.pool",
    )
    escalate_to: str | None = option(
        None,
        "a stronger judge for the items the --judge models disagree on",
        rule="spec",
        metavar="SPEC",
        recorded="judge.escalation.judge",
    )
    escalate_when: str = option(
        "disagree:1",
        "escalate an item when two judges differ by ≥ K points on any dimension",
        parse=lambda text: _escalate_when(text),
        metavar="disagree:K",
        recorded="judge.escalation.threshold",
    )


@dataclass(frozen=True)
class BootstrapOptions(OptionGroup):
    title: ClassVar[str] = "confidence intervals"
    resamples: int = option(
        1000,
        "bootstrap resamples for confidence intervals",
        rule="resamples",
        recorded=NOT_RECORDED,
    )
    bootstrap_seed: int = option(
        0, "seed for the bootstrap resamples", rule="int", recorded=NOT_RECORDED
    )


# ----------------------------------------------------------------------------- one command's own options


@dataclass(frozen=True)
class CommandOptions(OptionGroup):
    """Options that belong to one command (its positional arguments, its output file …)."""

    title: ClassVar[str] = "command"
    # score
    run_dir: Path | None = option(
        None,
        "run folder written by `generate` or `run`",
        flag="run_dir",
        parse=Path,
        nargs="?",
        positional=True,
        recorded=NOT_RECORDED,
    )
    predictions: Path | None = option(
        None,
        "JSONL of {item_id, raw_output} produced elsewhere",
        parse=Path,
        recorded=NOT_RECORDED,
    )
    # compare
    a: Path = option(
        None,
        "first run folder",
        flag="a",
        metavar="run_a",
        parse=Path,
        positional=True,
        required=True,
        recorded=NOT_RECORDED,
    )
    b: Path = option(
        None,
        "second run folder",
        flag="b",
        metavar="run_b",
        parse=Path,
        positional=True,
        required=True,
        recorded=NOT_RECORDED,
    )
    force: bool = option(
        False,
        "compare even when data, split or judge differ",
        action="store_true",
        recorded=NOT_RECORDED,
    )
    seed: int = option(0, "bootstrap seed", rule="int", recorded=NOT_RECORDED)
    # judge-agreement
    human: Path = option(
        None,
        "JSONL: item_id + one integer 1-5 per dimension; for a pairwise folder item_id, annotator, run_a, run_b "
        "+ A/B/tie per dimension",
        parse=Path,
        positional=True,
        required=True,
        recorded=NOT_RECORDED,
    )
    run: Path = option(
        None,
        "run folder with judge verdicts, or a `pairwise` output folder",
        flag="run",
        metavar="run_dir",
        parse=Path,
        positional=True,
        required=True,
        recorded=NOT_RECORDED,
    )
    # data show / synth
    index: int = option(
        0, "dialogue number in the split (0-based)", rule="nonneg_int", recorded=NOT_RECORDED
    )
    dialogue_id: str | None = option(
        None, "dialogue id (overrides --index)", flag="--id", recorded=NOT_RECORDED
    )
    out: Path = option(
        None,
        "folder for train.jsonl and test.jsonl",
        parse=Path,
        positional=True,
        required=True,
        recorded=NOT_RECORDED,
    )
    dialogues: int = option(
        22080,
        "total dialogues, train + test (at least 2)",
        rule="positive_int",
        recorded=NOT_RECORDED,
    )
    # report
    redact: bool = option(
        False,
        "leave out the data's text: the user's turns and every passage of the data the model or judge repeated "
        "(keep ids, labels, scores)",
        action="store_true",
        recorded=NOT_RECORDED,
    )


@dataclass(frozen=True)
class LeaderboardOptions(OptionGroup):
    title: ClassVar[str] = "leaderboard"
    recorded: ClassVar[str | None] = NOT_RECORDED  # writes no run.json
    leaderboard: Path = option(Path("leaderboard"), "leaderboard folder", parse=Path)
    run_dirs: list[Path] = option(
        None,
        "scored run folders",
        flag="run_dirs",
        parse=Path,
        nargs="+",
        metavar="DIR",
        positional=True,
        required=True,
    )
    display_name: str | None = option(
        None, "the name tables, plots and the site show (one DIR only)", metavar="NAME"
    )
    names: Path | None = option(
        None,
        "YAML/JSON {model spec, entry id or judge spec: display name} for tables, plots and the site",
        parse=Path,
        metavar="FILE",
    )
    columns: str | list[str] | None = option(
        None,
        "the metrics the tables and the site show, in order (results.json keys: emotion_accuracy, empathy, ...)",
        metavar="M1,M2,...",
    )
    repo: str = option(
        None,
        "dataset repo id, e.g. USER/kardiabench-leaderboard (token: HF_TOKEN)",
        positional=True,
        required=True,
    )
    private: bool = option(False, "create the repo private", action="store_true")


@dataclass(frozen=True)
class ReproduceOptions(OptionGroup):
    title: ClassVar[str] = "reproduce"
    recorded: ClassVar[str | None] = NOT_RECORDED  # its runs record kb.evaluate's
    config: str = option(
        None, "paper | a reproduce YAML file", flag="config", positional=True, required=True
    )
    limit: int | None = option(None, "only the first N items per model", rule="positive_int")
    dry_run: bool = option(
        False, "print the plan and cost estimate; send nothing", action="store_true"
    )
    output: Path = option(Path("runs/paper"), "folder of the run folders", parse=Path)
    leaderboard: Path = option(Path("leaderboard/paper"), "leaderboard folder to build", parse=Path)
    base_url: str | None = option(
        None, "send every system and the judge to this endpoint instead (testing, a proxy)"
    )
    data: str | None = option(None, "data source (default: the config's)")
    cache: str | None = option(None, CacheOptions.option("cache").help)


@dataclass(frozen=True)
class TrainOptions(OptionGroup):
    title: ClassVar[str] = "train"
    recorded: ClassVar[str | None] = NOT_RECORDED  # writes no run.json
    stage: str = option(
        None,
        "sft or grpo (the CLI's subcommand)",
        flag="",
        choices=("sft", "grpo"),
        positional=True,
        required=True,
    )
    config: str = option(
        None,
        "YAML config file, or a shipped one (STAGE-tiny.yaml, STAGE-qwen2.5-7b.yaml)",
        positional=True,
        required=True,
    )
    output_dir: str | None = option(None, "where the checkpoint folder goes (overrides output_dir)")
    overrides: list[str] = option(
        [],
        "override any config field (project or TRL), value read as YAML; dotted keys for mappings (lora.r=8); repeatable",
        flag="--set",
        action="append",
        metavar="KEY=VALUE",
    )


@dataclass(frozen=True)
class AnnotateOptions(OptionGroup):
    title: ClassVar[str] = "annotate"
    recorded: ClassVar[str | None] = NOT_RECORDED  # writes no run.json
    run_a: Path = option(
        None,
        "run folder A (win rates are said from its side)",
        flag="run_a",
        parse=Path,
        positional=True,
        required=True,
    )
    run_b: Path = option(
        None, "run folder B", flag="run_b", parse=Path, positional=True, required=True
    )
    output: Path = option(None, "study folder to write", parse=Path, positional=True, required=True)
    n: int = option(160, "items to sample from those both runs answered", rule="positive_int")
    annotators: int = option(
        3, "annotators: one page each (annotator-1.html …)", rule="positive_int"
    )
    seed: int = option(0, "seed of the sample and of the sides", rule="int")
    rubric: str | None = option(
        None,
        "rubric file whose dimensions and level texts the pages show (default: judges/rubric.yaml)",
    )
    # annotate import
    folder: Path = option(
        None,
        "the study folder `annotate` wrote (holds key.json)",
        flag="folder",
        metavar="DIR",
        parse=Path,
        positional=True,
        required=True,
    )
    files: list[Path] = option(
        None,
        "the pages' exported JSON files and/or a Label Studio JSON export",
        flag="files",
        nargs="+",
        metavar="FILES",
        parse=Path,
        positional=True,
        required=True,
    )
    adjudication: Path | None = option(
        None,
        "JSONL: item_id + outcomes A|B|tie (run A's side) per dimension, for outcomes no majority decided",
        parse=Path,
        metavar="FILE",
    )
    adjudicate_with: str | None = option(
        None,
        "an LLM pairwise judge (the paper's supervising LLM) for the outcomes still unresolved after the "
        "majority and --adjudication; asked in both orders, like `kardiabench pairwise`",
        rule="spec",
        metavar="SPEC",
    )


@dataclass(frozen=True)
class PairwiseOptions(OptionGroup):
    title: ClassVar[str] = "pairwise"
    recorded: ClassVar[str | None] = NOT_RECORDED  # writes no run.json
    runs: list[Path] = option(
        None,
        "run folders (two, or more with --reference or all pairs)",
        flag="runs",
        parse=Path,
        nargs="+",
        metavar="RUN",
        positional=True,
        required=True,
    )
    output: Path = option(
        None,
        "folder for pairwise.json, items.jsonl, summary.md, report.html and the verdicts",
        parse=Path,
        required=True,
    )
    dimensions: str | list[str] | None = option(
        None,
        "rubric dimensions to compare on, comma-separated (default: all five)",
        metavar="D1,D2,...",
        parse=lambda text: _dimensions(text),
    )
    reference: Path | None = option(
        None,
        "with three or more runs: each against this one (default: all pairs)",
        parse=Path,
        metavar="RUN",
    )
    judge_temperature: float = option(
        0.0, "the pairwise judge's sampling temperature", rule="nonneg_float"
    )
    judge_seed: int = option(0, "the pairwise judge's seed (repeat k uses seed + k)", rule="int")
    # judge-audit --pairwise, leaderboard add-pairwise
    pairwise: bool = option(
        False,
        "also the pairwise judge's checks: gold against itself ties, against its padded or injected copies "
        "it does not lose",
        action="store_true",
    )
    pairwise_dir: Path = option(
        None,
        "output folder of `kardiabench pairwise`",
        flag="pairwise_dir",
        metavar="PAIRWISE_DIR",
        parse=Path,
        positional=True,
        required=True,
    )


GROUPS: tuple[type[OptionGroup], ...] = (
    TaskOptions,
    DataOptions,
    RunOptions,
    SamplingOptions,
    BackendOptions,
    CacheOptions,
    JudgeModelOptions,
    JudgeScoringOptions,
    BootstrapOptions,
    CommandOptions,
    LeaderboardOptions,
    ReproduceOptions,
    TrainOptions,
    AnnotateOptions,
    PairwiseOptions,
)


# ----------------------------------------------------------------------------- signatures


class Values(Mapping[str, Any]):
    """The checked keywords of one call: `o.limit`, `o["limit"]`, or a group's as keywords `o.pick(JudgeModelOptions)`."""

    def __init__(self, values: dict[str, Any]) -> None:
        self._values = values

    def __getitem__(self, name: str) -> Any:
        return self._values[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)

    def __getattr__(self, name: str) -> Any:
        try:
            return self._values[name]
        except KeyError:
            raise AttributeError(name) from None

    def pick(self, group: type[OptionGroup]) -> dict[str, Any]:
        """The values of `group`'s options, as keywords."""
        return {o.name: self._values[o.name] for o in group.options() if o.name in self._values}


@dataclass(frozen=True)
class Signature:
    """The options of one public function, in order: its keywords, their checks and its CLI flags."""

    function: str  # the public name, e.g. "kb.evaluate"
    options: tuple[Option, ...]

    def __post_init__(self) -> None:
        names = [o.name for o in self.options]
        if len(names) != len(set(names)):
            raise ValueError(f"{self.function}: an option twice")

    def __getitem__(self, name: str) -> Option:
        return next(o for o in self.options if o.name == name)

    def python(self) -> inspect.Signature:
        """The signature `help()` and `inspect` show: positional options first, then keyword-only."""
        params = []
        for o in sorted(self.options, key=lambda o: not o.positional):
            kind = (
                inspect.Parameter.POSITIONAL_OR_KEYWORD
                if o.positional
                else inspect.Parameter.KEYWORD_ONLY
            )
            default = (
                inspect.Parameter.empty
                if o.required
                else (tuple(o.default) if isinstance(o.default, list) else o.default)
            )
            params.append(inspect.Parameter(o.name, kind, default=default, annotation=o.annotation))
        return inspect.Signature(params)

    def bind(self, args: tuple, kwargs: dict[str, Any]) -> Values:
        """The call's values, defaults filled in and every value checked; UnknownOption for a
        keyword the function does not take, a TypeError (as Python's) for a missing or extra one."""
        known = {o.name for o in self.options}
        for name in kwargs:
            if name not in known:
                close = difflib.get_close_matches(name, sorted(known), n=1)
                hint = f"; did you mean {close[0]!r}?" if close else ""
                raise UnknownOption(f"{self.function}() got an unexpected option {name!r}{hint}")
        try:
            bound = self.python().bind(*args, **kwargs)
        except TypeError as e:
            raise TypeError(f"{self.function}(): {e}") from None
        bound.apply_defaults()
        for o in self.options:
            o.check(bound.arguments[o.name])
        return Values(dict(bound.arguments))

    # -- the CLI form

    def add_arguments(self, parser: argparse.ArgumentParser, *, titled: bool = True) -> None:
        """The flags of every option with a CLI form, a group's under its title; an option whose flag
        another has already added takes that flag's value (`run`'s --batch-timeout: both batches)."""
        seen: set[str] = set()
        sections: dict[str, Any] = {}
        for o in self.options:
            if not o.flag or o.flag in seen:
                continue
            seen.add(o.flag)
            title = _title_of(o) if titled else ""
            target = (
                parser
                if not title
                else sections.setdefault(title, parser.add_argument_group(title))
            )
            o.add_to(target)

    def keywords(self, args: argparse.Namespace) -> dict[str, Any]:
        """The parsed flags as this function's keywords (only those the command has)."""
        dest = {}
        for o in self.options:
            if o.flag:
                dest.setdefault(o.flag, o.name)
        return {
            o.name: getattr(args, dest[o.flag])
            for o in self.options
            if o.flag and hasattr(args, dest[o.flag])
        }


def _title_of(opt: Option) -> str:
    for group in (SamplingOptions, BackendOptions, JudgeModelOptions, JudgeScoringOptions):
        if any(o.name == opt.name for o in group.options()):
            return group.title
    return ""


def signature(function: str, *parts: type[OptionGroup] | Option | tuple[Option, ...]) -> Signature:
    opts: list[Option] = []
    for part in parts:
        opts.extend(
            part.options()
            if isinstance(part, type)
            else (part,)
            if isinstance(part, Option)
            else part
        )
    return Signature(function, tuple(opts))


def takes(sig: Signature) -> Callable[[Callable[[Values], Any]], Callable[..., Any]]:
    """Make `fn(o: Values)` the public function of `sig`: its keywords are the options, checked on
    each call; a misspelt one raises UnknownOption naming the closest."""

    def decorate(fn: Callable[[Values], Any]) -> Callable[..., Any]:
        @functools.wraps(fn)
        def public(*args: Any, **kwargs: Any) -> Any:
            return fn(sig.bind(args, kwargs))

        public.__signature__ = sig.python()  # type: ignore[attr-defined]
        public.options = sig  # type: ignore[attr-defined]
        return public

    return decorate


_GEN = (RunOptions, TaskOptions, DataOptions, SamplingOptions, BackendOptions, CacheOptions)
_JUDGE = (JudgeModelOptions, JudgeScoringOptions)
_OUTPUT_CARD = RunOptions.option("output").but(
    help="folder for judge_card.json/.md/.png and the verdicts"
)
_DATA_CMD = (
    DataOptions.option("data").but(default="sample", positional=True),
    *DataOptions.pick("split", "strict", "derive_split", "split_seed"),
)
_FOLDER = LeaderboardOptions.option("leaderboard")

SIGNATURES: dict[str, Signature] = {
    s.function: s
    for s in (
        signature("generation_config", *_GEN),
        signature("kb.generate", *_GEN),
        signature("kb.evaluate", *_GEN, *_JUDGE, BootstrapOptions),
        signature("kb.dry_run", *_GEN, *_JUDGE),
        signature(
            "kb.score",
            CommandOptions.pick("run_dir", "predictions"),
            TaskOptions,
            DataOptions,
            RunOptions.option("limit").but(
                help="with --predictions: only the first N items of the data (predictions for others are left out)"
            ),
            RunOptions.option("output").but(
                default=None,
                positional=False,
                required=False,
                help="with --predictions: the run folder to write (default: FILE's folder, NAME-scored)",
            ),
            CacheOptions,
            *_JUDGE,
            BootstrapOptions,
        ),
        signature(
            "kb.compare",
            CommandOptions.pick("a", "b", "force"),
            BootstrapOptions.option("resamples").but(help="bootstrap resamples"),
            CommandOptions.option("seed"),
        ),
        signature(
            "kb.judge_agreement",
            CommandOptions.pick("human", "run"),
            BootstrapOptions.option("resamples").but(
                help="bootstrap resamples for the intervals of the pairwise judge's agreement with human A/B labels"
            ),
            BootstrapOptions.option("bootstrap_seed"),
        ),
        signature(
            "kb.judge_audit",
            _OUTPUT_CARD,
            RunOptions.option("limit").but(help="only the first N items"),
            CacheOptions,
            DataOptions,
            JudgeModelOptions,
            BootstrapOptions,
            PairwiseOptions.option("pairwise"),
        ),
        signature(
            "kb.pairwise",
            PairwiseOptions.pick("runs", "output", "dimensions", "reference"),
            CacheOptions,
            JudgeModelOptions,
            PairwiseOptions.pick("judge_temperature", "judge_seed"),
            JudgeScoringOptions.pick("judge_batch", "judge_batch_timeout", "judge_max_cost"),
            BootstrapOptions,
        ),
        signature("kb.validate_data", *_DATA_CMD),
        signature("kb.data_stats", *_DATA_CMD),
        signature("kb.show_dialogue", *_DATA_CMD, CommandOptions.pick("index", "dialogue_id")),
        signature(
            "kb.synth_data",
            CommandOptions.pick("out", "dialogues"),
            CommandOptions.option("seed").but(
                help="random seed (the same seed writes the same files)"
            ),
        ),
        signature("kb.list_tasks", TaskOptions.option("tasks_dir").but(positional=True)),
        signature(
            "kb.write_report",
            CommandOptions.option("run_dir").but(
                help="scored run folder", nargs=None, required=True
            ),
            RunOptions.option("output").but(
                default=None,
                positional=False,
                required=False,
                help="HTML file to write (default: DIR/report.html)",
            ),
            CommandOptions.option("redact"),
        ),
        signature(
            "kb.leaderboard_add", LeaderboardOptions.pick("run_dirs", "leaderboard", "display_name")
        ),
        signature(
            "kb.leaderboard_build",
            _FOLDER.but(positional=True),
            CommandOptions.option("redact").but(
                help="reports without the data's text (as `report --redact`); push uploads reports only then"
            ),
            BootstrapOptions.option("resamples").but(
                help="resamples of the paired tests behind the tiers"
            ),
            LeaderboardOptions.pick("names", "columns"),
        ),
        signature(
            "kb.leaderboard_push",
            _FOLDER,
            LeaderboardOptions.option("repo"),
            LeaderboardOptions.option("private"),
        ),
        signature("kb.leaderboard_add_pairwise", PairwiseOptions.option("pairwise_dir"), _FOLDER),
        signature("kb.reproduce_runs", ReproduceOptions),
        signature("kb.train_model", TrainOptions),
        signature(
            "kb.annotate",
            AnnotateOptions.pick("run_a", "run_b", "output", "n", "annotators", "seed", "rubric"),
        ),
        signature(
            "kb.annotate_import",
            AnnotateOptions.pick("folder", "files", "adjudication", "adjudicate_with"),
            BootstrapOptions.option("resamples").but(
                help="bootstrap resamples for the win-rate and agreement intervals"
            ),
            CommandOptions.option("seed"),
            # the adjudicating judge: the pairwise command's judge options, its spec given above
            CacheOptions,
            tuple(
                o
                for o in JudgeModelOptions.options()
                if o.name not in ("judges", "judge_show_reasoning")
            ),
            PairwiseOptions.pick("judge_temperature", "judge_seed"),
            JudgeScoringOptions.option("judge_max_cost"),
        ),
    )
}


def check_keywords(**values: Any) -> None:
    """ParameterError for the first value that breaks its option's rule (None: not given). For the
    typed records that take options directly (score_stage.JudgeOptions)."""
    for name, value in values.items():
        _by_name()[name].check(value)


@functools.cache
def _by_name() -> dict[str, Option]:
    """Every option by keyword; one keyword has one rule wherever it appears (tests/test_options_parity.py)."""
    out: dict[str, Option] = {}
    for sig in SIGNATURES.values():
        for o in sig.options:
            out.setdefault(o.name, o)
    return out


# ----------------------------------------------------------------------------- CLI value types
# Checked by the parser, so a bad number is a one-line usage error (exit 2) before any work starts.


def rule_type(name: str) -> Callable[[str], Any]:
    """An argparse `type=` for the rule `name` of params.RULES: it parses the rule's type and
    accepts a value only when the rule holds."""
    kind, ok, rule = RULES[name]

    def parse(text: str) -> Any:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {rule}, got {text!r}") from None
        if value != value or not ok(value):  # NaN fails every rule
            raise argparse.ArgumentTypeError(f"must be {rule}, got {text!r}")
        return value

    parse.__name__ = rule
    return parse


def model_spec(text: str) -> str:
    """An argparse `type=` for --model, --judge, --escalate-to: a bounded length (SpecError's rule)."""
    from kardiabench.models import SpecError, check_spec_length

    try:
        return check_spec_length(text)
    except SpecError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def _dimensions(text: str) -> str:
    """An argparse `type=` for --dimensions: rubric dimension names, comma-separated."""
    from kardiabench.scoring.rubric import DIMENSIONS

    dims = [d.strip() for d in text.split(",") if d.strip()]
    unknown = [d for d in dims if d not in DIMENSIONS]
    if unknown or not dims:
        raise argparse.ArgumentTypeError(
            f"unknown dimension(s) {', '.join(unknown) or '(none given)'}; choose from {', '.join(DIMENSIONS)}"
        )
    return text


def _escalate_when(text: str) -> str:
    """An argparse `type=` for disagree:K (K > 0)."""
    from kardiabench.scoring.judge import parse_escalate_when

    try:
        parse_escalate_when(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None
    return text


# ----------------------------------------------------------------------------- docs/options.md


def _cell(value: Any) -> str:
    if value is None:
        return "–"
    if isinstance(value, list):
        value = tuple(value)
    return f"`{value!r}`" if not isinstance(value, Path) else f"`{str(value)!r}`"


def _rule_text(o: Option) -> str:
    if o.rule in RULES:
        return RULES[o.rule][2]
    return {
        "env_var": "an environment variable's NAME",
        "spec": "a model spec (≤ 512 characters)",
    }.get(o.rule or "", "one of " + ", ".join(o.choices) if o.choices else "")


def _recorded_text(o: Option) -> str:
    return "–" if o.recorded in (None, NOT_RECORDED) else f"`{o.recorded}`"


def markdown() -> str:
    """docs/options.md: one table per group, then which options each function takes."""
    out = [
        "# Options",
        "",
        "Generated from `kardiabench/options.py` by `python -m kardiabench.options > docs/options.md`; do not edit.",
        "Each keyword of the Python API (`kb.*`) is the CLI flag shown (`judges=[...]` is `--judge ...`, repeatable;",
        "`cache=None` is `--no-cache`; `progress=False` is the CLI's `--no-progress`, and the CLI shows the bar by default).",
        "A value that breaks its rule is `kb.ParameterError` in Python and a one-line usage error (exit 2) on the",
        "command line; a misspelt keyword is `kb.UnknownOption` naming the closest one.",
        "The run.json column is where a run folder's run.json records the value (docs/run-folder.md). `–`: run.json",
        "does not hold it, because the option changes how a run goes (progress, cache, concurrency, a budget),",
        "not what it computes; or results.json records it (`resamples`, `bootstrap_seed`: `statistics`;",
        "`judge_card`, `families`: `rubric`); or its command writes no run.json.",
        "",
    ]
    for group in GROUPS:
        out += [
            f"## {group.__name__}: {group.title}",
            "",
            "| keyword | flag | default | rule | meaning | run.json |",
            "|---|---|---|---|---|---|",
        ]
        for o in group.options():
            flag = (
                o.flag
                if o.flag and o.flag.startswith("-")
                else (f"`{o.metavar or o.flag}` (positional)" if o.flag else "–")
            )
            flag = f"`{flag}`" if flag.startswith("-") else flag
            if o.off:
                flag += f", `{o.off[0]}`"
            default = "required" if o.required else _cell(o.default)
            meaning = o.help.replace("|", "\\|").replace("%%", "%")
            out.append(
                f"| `{o.name}` | {flag} | {default} | {_rule_text(o)} | {meaning} | {_recorded_text(o)} |"
            )
        out.append("")
    out += ["## Functions and commands", "", "| function | options |", "|---|---|"]
    for sig in SIGNATURES.values():
        out.append(f"| `{sig.function}` | {', '.join(o.name for o in sig.options)} |")
    return "\n".join(out) + "\n"


if __name__ == "__main__":
    print(markdown(), end="")
