"""The `kardiabench` command. Thin: it parses arguments and calls the library."""

from __future__ import annotations

import argparse
import inspect
import json
import logging
import os
import sqlite3
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from kardiabench.params import BATCH_TIMEOUT_S, RULES, gen_kwargs
from kardiabench.redact import env_var_name

EXIT_USAGE = 2
_LOG = logging.getLogger("kardiabench")


# ----------------------------------------------------------------------------- argument types
# Checked by the parser, so a bad number is a one-line usage error (exit 2) before any work starts.


def _number(kind: type, ok, rule: str):
    """An argparse `type=` that parses `kind` and accepts it only when `ok(value)`."""

    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {rule}, got {text!r}") from None
        if value != value or not ok(value):  # NaN fails every rule
            raise argparse.ArgumentTypeError(f"must be {rule}, got {text!r}")
        return value

    parse.__name__ = rule
    return parse


positive_int = _number(*RULES["positive_int"])
nonneg_int = _number(*RULES["nonneg_int"])
positive_float = _number(*RULES["positive_float"])
nonneg_float = _number(*RULES["nonneg_float"])
top_p = _number(*RULES["top_p"])
open_fraction = _number(*RULES["open_fraction"])
unit_interval = _number(*RULES["unit_interval"])
concurrency = _number(*RULES["concurrency"])
batch_size = _number(*RULES["batch_size"])
repeats = _number(*RULES["repeats"])


def model_spec(text: str) -> str:
    """An argparse `type=` for --model, --judge, --escalate-to: a bounded length (SpecError's rule)."""
    from kardiabench.models import SpecError, check_spec_length

    try:
        return check_spec_length(text)
    except SpecError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def _escalate_when(text: str) -> str:
    """An argparse `type=` for disagree:K (K > 0)."""
    from kardiabench.scoring.judge import parse_escalate_when

    try:
        parse_escalate_when(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None
    return text


class _HelpFormatter(argparse.HelpFormatter):
    """Adds "(default: X)" to an option's help when it has a meaningful default (not None/False/[])."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        help_ = action.help or ""
        default = action.default
        shown = default not in (None, [], argparse.SUPPRESS) and not isinstance(default, bool)
        if shown and "default" not in help_ and action.option_strings:
            help_ += " (default: %(default)s)"
        return help_


class _Parser(argparse.ArgumentParser):
    """Every (sub)parser shows defaults: `add_subparsers` builds subparsers of the parent's class."""

    def __init__(self, *args, **kwargs) -> None:
        kwargs.setdefault("formatter_class", _HelpFormatter)
        super().__init__(*args, **kwargs)

    def error(self, message: str):
        """One line, exit 2: the mistake, not argparse's 20-40 line usage block, which buries it
        (that block is what --help prints)."""
        text = " ".join(message.split())
        self.exit(EXIT_USAGE, f"{self.prog}: error: {text} (see {self.prog} --help)\n")


def _add_data_args(p: argparse.ArgumentParser, split_default: str | None = None) -> None:
    p.add_argument("--data", default=None, help="sample | DIR | FILE (.jsonl/.json/.parquet) | hub | OWNER/NAME (gated Hub dataset, uses HF_TOKEN)")
    p.add_argument("--split", default=split_default, help="split to use (default: the task's, or all for data commands)")
    p.add_argument("--strict", action="store_true", help="refuse to run when any record has a problem (default: skip and report)")
    p.add_argument("--derive-split", type=open_fraction, default=None, metavar="TEST_FRACTION",
                   help="derive a persona-disjoint train/test split from a single file (seeded by --split-seed)")  # fmt: skip
    p.add_argument("--split-seed", type=int, default=0, help="seed for --derive-split")


def _add_cache_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--cache", default=None, help="response cache file (default: $KARDIABENCH_CACHE or ~/.cache/kardiabench/cache.sqlite)")
    p.add_argument("--no-cache", action="store_true", help="neither read nor write the response cache")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


def _add_generation_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--task", default="kardiabench", help="task name (see `kardiabench tasks`) or a YAML file")
    p.add_argument("--tasks-dir", action="append", default=[], help="extra folder of task YAML files (repeatable)")
    p.add_argument("--model", required=True, type=model_spec, help="openai:MODEL | hf:PATH_OR_ID | vllm:PATH_OR_ID | baseline:majority|retrieval")
    _add_data_args(p)
    p.add_argument("--limit", type=positive_int, default=None, help="only the first N items (in file order)")
    p.add_argument("--output", required=True, type=Path, help="run folder (created; an existing one is resumed)")
    p.add_argument("--overwrite", action="store_true", help="discard predictions already in --output")
    p.add_argument("--train-data", default=None, help="training split source for baselines (default: --data)")
    g = p.add_argument_group("sampling (defaults from the task file; recorded in run.json)")
    g.add_argument("--temperature", type=nonneg_float, default=None, help="sampling temperature (≥ 0)")
    g.add_argument("--top-p", type=top_p, default=None, help="nucleus sampling mass (0 < p ≤ 1)")
    g.add_argument("--max-tokens", type=positive_int, default=None, help="most tokens the model may generate per item")
    g.add_argument("--seed", type=int, default=None, help="sampling seed (where the backend supports one)")
    g.add_argument("--stop", action="append", default=None, metavar="STR",
                   help="stop string (repeatable): generation ends before it; the model's own end tokens always stop it")  # fmt: skip
    g.add_argument("--top-k", type=positive_int, default=None, help="sample only from the K most likely tokens")
    g.add_argument("--min-p", type=unit_interval, default=None, help="drop tokens below this fraction of the top token's probability")
    g.add_argument("--repetition-penalty", type=positive_float, default=None, help="penalty for repeated tokens (1 = none)")
    g.add_argument("--gen-kwargs", type=gen_kwargs, default=None, metavar="K=V,…",
                   help="further generation options passed to the backend as typed values (int, float, true/false, text)")  # fmt: skip
    b = p.add_argument_group("backends")
    b.add_argument("--base-url", action="append", default=None, help="OpenAI-compatible endpoint (default: $OPENAI_BASE_URL); no credentials in it, see --api-key-env. Repeat for replicas of one model: requests go to the least busy")
    b.add_argument("--api-key-env", default="OPENAI_API_KEY", type=env_var_name, metavar="VAR", help="environment variable holding the API key")
    b.add_argument("--concurrency", type=concurrency, default=16, help="max requests in flight for API models")
    b.add_argument("--timeout", type=positive_float, default=120.0, help="per-request timeout in seconds for API models (a local server's timed-out request is not re-sent)")
    b.add_argument("--batch", action="store_true", help="openai: send the requests as one provider batch job (50%% price, up to 24 h; docs/backends.md)")
    _add_batch_timeout(b)
    b.add_argument("--prices", default=None, help="JSON/YAML price table extending the built-in one (USD per 1M tokens)")
    b.add_argument("--batch-size", type=batch_size, default=8, help="batch size for hf: models")
    b.add_argument("--dtype", default="auto", help="hf:/vllm: weight dtype (auto, bfloat16, float16, float32)")
    b.add_argument("--device", default="auto", help="hf: device (auto, cpu, cuda, cuda:N, mps)")
    b.add_argument("--revision", default=None, help="hf:/vllm: model revision (branch, tag or commit) on the Hub")
    b.add_argument("--add-span-tokens", action="store_true", help="hf: add the eight span markers as special tokens")
    b.add_argument("--chat-template", default=None, help="a Jinja chat template file for models without one")
    b.add_argument("--tensor-parallel-size", type=positive_int, default=1, help="vllm: GPUs per model replica")
    b.add_argument("--data-parallel-size", type=positive_int, default=1, help="vllm: model replicas")
    _add_cache_args(p)
    p.add_argument("--dry-run", action="store_true", help="count prompt tokens and estimate cost; send nothing")
    p.add_argument("--max-cost", type=positive_float, default=None, metavar="USD", help="stop sending requests once they have cost this much: generation, and in `run` the judges too (resumable)")


def _add_batch_timeout(p) -> None:
    """--batch-timeout, for every command with --batch or --judge-batch (one flag for both in `run`)."""
    p.add_argument("--batch-timeout", type=positive_float, default=BATCH_TIMEOUT_S, metavar="SECONDS",
                   help="--batch/--judge-batch: stop waiting for a batch that has not ended after this long; it stays "
                        "recorded and the same command run again polls it")  # fmt: skip


def build_parser() -> argparse.ArgumentParser:
    from kardiabench import __version__

    parser = _Parser(prog="kardiabench", description="Evaluation harness for KardiaBench.")
    parser.add_argument("--version", action="version", version=f"kardiabench {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    data = sub.add_parser("data", help="inspect, validate and synthesise KardiaBench data")
    dsub = data.add_subparsers(dest="data_command", required=True)
    for name, help_ in (("stats", "the paper's split table for a source"), ("validate", "check every record; exit 1 on problems"), ("show", "print one dialogue readably")):
        p = dsub.add_parser(name, help=help_)
        _add_data_args(p)
        if name == "stats":
            p.add_argument("--json", action="store_true", help="print JSON instead of a table")
        if name == "validate":
            p.add_argument("--max-problems", type=nonneg_int, default=200, help="print at most this many problems")
        if name == "show":
            p.add_argument("--index", type=nonneg_int, default=0, help="dialogue number in the split (0-based)")
            p.add_argument("--id", default=None, help="dialogue id (overrides --index)")
    p = dsub.add_parser("synth", help="write a full-size synthetic dataset (for benchmarks)")
    p.add_argument("--dialogues", type=positive_int, default=22080, help="total dialogues, train + test (at least 2)")
    p.add_argument("--out", required=True, type=Path, help="folder for train.jsonl and test.jsonl")
    p.add_argument("--seed", type=int, default=0, help="random seed (the same seed writes the same files)")

    p = sub.add_parser("tasks", help="list tasks")
    p.add_argument("--tasks-dir", action="append", default=[], help="extra folder of task YAML files (repeatable)")

    p = sub.add_parser("generate", help="generation stage only: write DIR/predictions.jsonl")
    _add_generation_args(p)
    p = sub.add_parser("run", help="generate, score, and write DIR/report.html")
    _add_generation_args(p)
    _add_judge_args(p)

    p = sub.add_parser("score", help="score saved predictions (a run folder, or --predictions FILE with --data)")
    p.add_argument("run_dir", nargs="?", type=Path, help="run folder written by `generate` or `run`")
    p.add_argument("--predictions", type=Path, default=None, help="JSONL of {item_id, raw_output} produced elsewhere")
    p.add_argument("--task", default=None, help="task name or YAML file (default: the run's, or kardiabench)")
    p.add_argument("--tasks-dir", action="append", default=[], help="extra folder of task YAML files (repeatable)")
    _add_data_args(p)
    p.add_argument("--limit", type=positive_int, default=None, help="with --predictions: only the first N items of the data (predictions for others are left out)")
    p.add_argument("--output", type=Path, default=None, help="with --predictions: the run folder to write (default: FILE's folder, NAME-scored)")
    _add_cache_args(p)
    _add_judge_args(p)
    _add_batch_timeout(p)

    p = sub.add_parser("compare", help="paired comparison of two runs on the items they share")
    p.add_argument("run_a", type=Path, help="first run folder")
    p.add_argument("run_b", type=Path, help="second run folder")
    p.add_argument("--force", action="store_true", help="compare even when data, split or judge differ")
    p.add_argument("--resamples", type=positive_int, default=1000, help="bootstrap resamples")
    p.add_argument("--seed", type=int, default=0, help="bootstrap seed")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")

    p = sub.add_parser("judge-agreement", help="agreement of each judge with human 1-5 labels")
    p.add_argument("--human", required=True, type=Path, help="JSONL: item_id + one integer 1-5 per dimension")
    p.add_argument("run_dir", type=Path, help="run folder with judge verdicts")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p = sub.add_parser("judge-audit", help="the judge reliability card: how a judge scores constructed and adversarial replies")
    p.add_argument("--output", required=True, type=Path, help="folder for judge_card.json/.md/.png and the verdicts")
    p.add_argument("--limit", type=positive_int, default=None, help="only the first N items")
    _add_cache_args(p)
    _add_data_args(p)
    _add_judge_args(p, scoring=False)
    _add_leaderboard_args(sub)
    _add_annotate_args(sub)

    train = sub.add_parser("train", help="train a model with TRL: SFT, then Rubric-as-Judge GRPO (docs/training.md)")
    tsub = train.add_subparsers(dest="train_command", required=True)
    for stage, help_ in (("sft", "supervised fine-tuning on the training split"), ("grpo", "GRPO with the benchmark's rewards")):
        p = tsub.add_parser(stage, help=help_)
        p.add_argument("--config", required=True, help=f"YAML config file, or a shipped one ({stage}-tiny.yaml, {stage}-qwen2.5-7b.yaml)")
        p.add_argument("--output-dir", default=None, help="where the checkpoint folder goes (overrides output_dir)")
        p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", dest="overrides",
                       help="override any config field (project or TRL), value read as YAML; dotted keys for mappings (lora.r=8); repeatable")  # fmt: skip
    return parser


def _add_leaderboard_args(sub) -> None:
    """`report`, `leaderboard add|build|push` and `reproduce` (docs/leaderboard.md)."""
    p = sub.add_parser("report", help="write DIR/report.html: one self-contained page about a scored run")
    p.add_argument("run_dir", type=Path, help="scored run folder")
    p.add_argument("--output", type=Path, default=None, help="HTML file to write (default: DIR/report.html)")
    p.add_argument("--redact", action="store_true",
                   help="leave out the data's text: the user's turns and every passage of the data the model or judge repeated (keep ids, labels, scores)")  # fmt: skip
    lb = sub.add_parser("leaderboard", help="record runs and build tables, plots and a static site")
    lsub = lb.add_subparsers(dest="leaderboard_command", required=True)
    p = lsub.add_parser("add", help="record scored run folders (re-adding a folder replaces its entry)")
    p.add_argument("run_dirs", nargs="+", type=Path, metavar="DIR", help="scored run folders")
    p.add_argument("--leaderboard", type=Path, default=Path("leaderboard"), help="leaderboard folder")
    p.add_argument("--display-name", default=None, metavar="NAME", help="the name tables, plots and the site show (one DIR only)")
    p = lsub.add_parser("build", help="render tables (CSV, Markdown, LaTeX), plots and the site")
    p.add_argument("--leaderboard", type=Path, default=Path("leaderboard"), help="leaderboard folder")
    p.add_argument("--redact", action="store_true", help="reports without the data's text (as `report --redact`); push uploads reports only then")
    p.add_argument("--resamples", type=positive_int, default=1000, help="resamples of the paired tests behind the tiers")
    p.add_argument("--names", type=Path, default=None, metavar="FILE",
                   help="YAML/JSON {model spec, entry id or judge spec: display name} for tables, plots and the site")
    p.add_argument("--columns", default=None, metavar="M1,M2,...",
                   help="the metrics the tables and the site show, in order (results.json keys: emotion_accuracy, empathy, ...)")
    p = lsub.add_parser("push", help="upload a built leaderboard as a Hugging Face dataset repo")
    p.add_argument("--leaderboard", type=Path, default=Path("leaderboard"), help="leaderboard folder")
    p.add_argument("--repo", required=True, help="dataset repo id, e.g. USER/kardiabench-leaderboard (token: HF_TOKEN)")
    p.add_argument("--private", action="store_true", help="create the repo private")
    p = sub.add_parser("reproduce", help="run the paper's comparison set and build its leaderboard")
    p.add_argument("config", help="paper | a reproduce YAML file")
    p.add_argument("--limit", type=positive_int, default=None, help="only the first N items per model")
    p.add_argument("--dry-run", action="store_true", help="print the plan and cost estimate; send nothing")
    p.add_argument("--output", type=Path, default=Path("runs/paper"), help="folder of the run folders")
    p.add_argument("--leaderboard", type=Path, default=Path("leaderboard/paper"), help="leaderboard folder to build")
    p.add_argument("--base-url", default=None, help="send every system and the judge to this endpoint instead (testing, a proxy)")
    p.add_argument("--data", default=None, help="data source (default: the config's)")
    p.add_argument("--cache", default=None, help="response cache file (default: $KARDIABENCH_CACHE or ~/.cache/kardiabench/cache.sqlite)")


ANNOTATE_IMPORT = "annotate-import"  # `annotate import …` is parsed as this command (main rewrites it)


def _add_annotate_args(sub) -> None:
    """`annotate RUN_A RUN_B` and `annotate import DIR FILES…` (docs/annotate.md)."""
    p = sub.add_parser("annotate", help="blinded human A/B pages for two runs (then: annotate import DIR FILES…)",
                       description="Write a blinded A/B study: one offline HTML page per annotator, DIR/key.json (keep it from "
                                   "the annotators) and a Label Studio project. Count the exported labels with "
                                   "`kardiabench annotate import DIR FILES…`.")  # fmt: skip
    p.add_argument("run_a", type=Path, help="run folder A (win rates are said from its side)")
    p.add_argument("run_b", type=Path, help="run folder B")
    p.add_argument("--n", type=positive_int, default=160, help="items to sample from those both runs answered")
    p.add_argument("--annotators", type=positive_int, default=3, help="annotators: one page each (annotator-1.html …)")
    p.add_argument("--seed", type=int, default=0, help="seed of the sample and of the sides")
    p.add_argument("--output", required=True, type=Path, help="study folder to write")
    p.add_argument("--rubric", default=None, help="rubric file whose dimensions and level texts the pages show (default: judges/rubric.yaml)")
    p = sub.add_parser(ANNOTATE_IMPORT, prog="kardiabench annotate import", help="(run as: kardiabench annotate import DIR FILES…)",
                       description="Unblind and count the annotators' exported labels: win rates, agreement, items to discuss.")  # fmt: skip
    p.add_argument("study_dir", type=Path, metavar="DIR", help="the study folder `annotate` wrote (holds key.json)")
    p.add_argument("files", nargs="+", type=Path, metavar="FILES", help="the pages' exported JSON files and/or a Label Studio JSON export")
    p.add_argument("--adjudication", type=Path, default=None, metavar="FILE",
                   help="JSONL: item_id + outcomes A|B|tie (run A's side) per dimension, for outcomes no majority decided")  # fmt: skip
    p.add_argument("--resamples", type=positive_int, default=1000, help="bootstrap resamples for the win-rate intervals")
    p.add_argument("--seed", type=int, default=0, help="bootstrap seed")


def _add_judge_args(p: argparse.ArgumentParser, scoring: bool = True) -> None:
    """The judge flags; `scoring`: also those about results.json (judge card, families)."""
    g = p.add_argument_group("rubric judge")
    g.add_argument("--judge", action="append", default=[], type=model_spec, help="judge model spec (repeatable); e.g. openai:gpt-5-mini")
    g.add_argument("--judge-base-url", action="append", default=None, help="endpoint for openai: judges (default: $OPENAI_BASE_URL); repeat for replicas")
    g.add_argument("--judge-api-key-env", default="OPENAI_API_KEY", type=env_var_name, metavar="VAR", help="environment variable holding the judges' API key")
    g.add_argument("--judge-concurrency", type=concurrency, default=16, help="max judge requests in flight")
    g.add_argument("--judge-repeats", type=repeats, default=1, help="judge each item K times; reports the variance")
    g.add_argument("--judge-max-tokens", type=positive_int, default=1024, help="most tokens per judge reply")
    g.add_argument("--judge-show-reasoning", action="store_true", help="also show the judge the understanding/reasoning spans")
    g.add_argument("--judge-timeout", type=positive_float, default=120.0, help="per-request timeout in seconds for openai: judges (a local server's timed-out request is not re-sent)")
    g.add_argument("--judge-batch-size", type=batch_size, default=8, help="batch size for hf: judges")
    g.add_argument("--judge-dtype", default="auto", help="hf:/vllm: judge weight dtype (auto, bfloat16, float16, float32)")
    g.add_argument("--judge-chat-template", default=None, help="a Jinja chat template file for hf:/vllm: judges without one")
    g.add_argument("--rubric", default=None, help="rubric file (default: judges/rubric.yaml)")
    if scoring:
        g.add_argument("--judge-card", default=None, metavar="FILE", help="judge_card.json from `judge-audit` to cite in results.json (rubric.judge_card)")
        g.add_argument("--families", default=None, metavar="FILE", help="YAML {model-name pattern: family} tried before the built-in mapping (self-preference guard)")
        g.add_argument("--judge-batch", action="store_true", help="openai: judges: send the first round as a provider batch job (docs/backends.md)")
        g.add_argument("--judge-max-cost", type=positive_float, default=None, metavar="USD", help="stop sending judge requests once they have cost this much (resumable)")
        g.add_argument("--judge-pool", choices=("mean", "median"), default="mean", help="how several judges' item scores are pooled")
        g.add_argument("--escalate-to", default=None, type=model_spec, metavar="SPEC", help="a stronger judge for the items the --judge models disagree on")
        g.add_argument("--escalate-when", type=_escalate_when, default="disagree:1", metavar="disagree:K",
                       help="escalate an item when two judges differ by ≥ K points on any dimension")  # fmt: skip
    g.add_argument("--resamples", type=positive_int, default=1000, help="bootstrap resamples for confidence intervals")
    g.add_argument("--bootstrap-seed", type=int, default=0, help="seed for the bootstrap resamples")


# ----------------------------------------------------------------------------- commands


def cmd_data(args: argparse.Namespace) -> int:
    from kardiabench import api

    if args.data_command == "synth":
        try:
            print(api.synth_data(args.out, dialogues=args.dialogues, seed=args.seed))
        except ValueError as e:
            print(f"error: {e}", file=sys.stderr)
            return EXIT_USAGE
        return 0
    source = args.data or "sample"
    kw = {"split": args.split, "derive_split": args.derive_split, "split_seed": args.split_seed}
    if args.data_command == "validate":
        total, n_problems = 0, 0
        for res in api.validate_data(source, **kw):
            total += res.records_read
            for p in res.problems[: max(0, args.max_problems - n_problems)]:
                print(p)
            n_problems += len(res.problems)
            print(f"{', '.join(res.files)}: {res.records_read} records, {len(res.dialogues)} valid, {len(res.problems)} problem(s)", file=sys.stderr)
        if n_problems > args.max_problems:
            print(f"… {n_problems - args.max_problems} more problems not shown (--max-problems)")
        print(f"{'FAILED' if n_problems else 'OK'}: {total} records, {n_problems} problem(s)")
        return 1 if n_problems else 0
    if args.data_command == "stats":
        from kardiabench.data.stats import format_table

        stats = api.data_stats(source, strict=args.strict, **kw)
        print(json.dumps([s.to_dict() for s in stats], indent=2) if args.json else format_table(stats))
        return 0
    from kardiabench.data.show import format_dialogue

    try:
        dialogue = api.show_dialogue(source, index=args.index, dialogue_id=args.id, **kw)
    except LookupError as e:
        print(f"error: {e.args[0]}", file=sys.stderr)
        return 1
    print(format_dialogue(dialogue))
    return 0


def cmd_tasks(args: argparse.Namespace) -> int:
    from kardiabench.api import list_tasks

    for t in list_tasks(args.tasks_dir):
        print(f"{t.name:<26} {t.description}")
    return 0


def _keywords(args: argparse.Namespace, names) -> dict:
    """The parsed flags as the API's keywords: the same names, with --judge → judges,
    --no-cache → cache=None, --no-progress → progress=False, and --batch-timeout also →
    judge_batch_timeout."""
    flags = {**vars(args), "judges": getattr(args, "judge", None), "progress": not getattr(args, "no_progress", False),
             "cache": None if getattr(args, "no_cache", False) else getattr(args, "cache", None) or True,
             "judge_batch_timeout": getattr(args, "batch_timeout", None)}  # fmt: skip
    return {name: flags[name] for name in names}


def _parameters(fn) -> list[str]:
    return [p.name for p in inspect.signature(fn).parameters.values() if p.kind is not p.VAR_KEYWORD]


def cmd_generate(args: argparse.Namespace) -> int:
    from kardiabench.api import (
        JUDGE_KEYWORDS,
        Interrupted,
        dry_run,
        evaluate,
        generate,
        generation_config,
    )

    options = _keywords(args, _parameters(generation_config))
    if args.command == "run":
        options.update(_keywords(args, JUDGE_KEYWORDS))
    if args.dry_run:
        print(dry_run(**options))
        return 0
    try:
        if args.command == "generate":
            return 1 if generate(**options).problems else 0  # items failed for good: exit 1
        run = evaluate(**options, resamples=args.resamples, bootstrap_seed=args.bootstrap_seed)
    except Interrupted as e:
        return _interrupted(e)
    _print_summary(run)
    return 1 if run.problems else 0  # failed items, or a judge that scored nothing: results written, exit 1


def cmd_score(args: argparse.Namespace) -> int:
    from kardiabench.api import Interrupted, score

    try:
        run = score(**_keywords(args, _parameters(score)))
    except Interrupted as e:
        return _interrupted(e)
    _print_summary(run)
    return 1 if run.problems else 0


def _print_summary(run) -> None:
    from kardiabench.rundir import SUMMARY

    print((run.path / SUMMARY).read_text(encoding="utf-8"), end="")


def _interrupted(e: KeyboardInterrupt) -> int:
    print(f"\ninterrupted: {e}; run the same command again to resume.", file=sys.stderr)
    return 130


def cmd_compare(args: argparse.Namespace) -> int:
    from kardiabench.api import compare

    comparison = compare(args.run_a, args.run_b, force=args.force, resamples=args.resamples, seed=args.seed)
    print(json.dumps(comparison.to_dict(), indent=2) if args.json else comparison.to_markdown())
    return 0


def cmd_judge_agreement(args: argparse.Namespace) -> int:
    from kardiabench.api import format_agreement, judge_agreement

    report = judge_agreement(args.human, args.run_dir)
    print(json.dumps(report, indent=2) if args.json else format_agreement(report))
    return 0


def cmd_annotate(args: argparse.Namespace) -> int:
    from kardiabench.api import annotate, annotate_import

    if args.command == ANNOTATE_IMPORT:
        results = annotate_import(args.study_dir, args.files, adjudication=args.adjudication, resamples=args.resamples, seed=args.seed)
        _LOG.info(f"{len(results.annotators)} annotator(s) → {args.study_dir}/results.json, summary.md, discussion.md, human_labels.jsonl")
        print((args.study_dir / "summary.md").read_text(encoding="utf-8"), end="")
        return 0
    study = annotate(args.run_a, args.run_b, args.output, n=args.n, annotators=args.annotators, seed=args.seed, rubric=args.rubric)
    for page in study.pages:
        print(page)
    return 0


def cmd_judge_audit(args: argparse.Namespace) -> int:
    from kardiabench.api import judge_audit

    card = judge_audit(**_keywords(args, _parameters(judge_audit)))
    _LOG.info(f"judge card → {card.path}")
    print((card.path.parent / "judge_card.md").read_text(encoding="utf-8"), end="")
    if card.failed:
        print(f"FAILED checks: {', '.join(card.failed)}", file=sys.stderr)
    if card.inconclusive:  # not shown to pass: gates like a failure (docs/judge-audit.md)
        print(f"INCONCLUSIVE checks: {', '.join(card.inconclusive)} (too few scored dialogues, or an interval "
              "across the threshold: judge_card.md says which; audit more items)", file=sys.stderr)  # fmt: skip
    return 0 if card.passed else 1


class _Console(logging.Handler):
    """The library's log lines on stderr, as the CLI always printed them: every record of the
    `kardiabench` logger, and the warnings of the loggers under it (an adapter's retry notes stay
    quiet). Looks sys.stderr up on each line, so a redirected stderr is honoured."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.addFilter(lambda r: r.name == "kardiabench" or r.levelno >= logging.WARNING)

    def emit(self, record: logging.LogRecord) -> None:
        print(self.format(record), file=sys.stderr, flush=True)


@contextmanager
def _console_logging() -> Iterator[None]:
    logger = logging.getLogger("kardiabench")
    handler, level = _Console(), logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        yield
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)


def cmd_report(args: argparse.Namespace) -> int:
    from kardiabench.report import write_report

    _LOG.info(f"report → {write_report(args.run_dir, output=args.output, redact=args.redact)}")
    return 0


def cmd_leaderboard(args: argparse.Namespace) -> int:
    folder = args.leaderboard
    if args.leaderboard_command == "add":
        from kardiabench.leaderboard.entries import add_run

        for d in args.run_dirs:
            entry = add_run(d, folder, display_name=args.display_name)
            _LOG.info(f"added {entry.model} ({d}) → {folder}/entries/{entry.entry_id}.json")
        return 0
    if args.leaderboard_command == "build":
        from kardiabench.leaderboard.build import build

        result = build(folder, redact=args.redact, n_resamples=args.resamples, names=args.names, columns=args.columns)
        for note in result.notes:
            _LOG.info(note)
        _LOG.info(f"built {len(result.files)} files → {folder}/ (open {folder}/site/index.html)")
        return 0
    from kardiabench.leaderboard.push import push

    _LOG.info(f"pushed → {push(folder, args.repo, private=args.private)}")
    return 0


def cmd_reproduce(args: argparse.Namespace) -> int:
    from kardiabench.reproduce import reproduce

    return reproduce(args.config, limit=args.limit, dry_run=args.dry_run, output=args.output,
                     leaderboard=args.leaderboard, base_url=args.base_url, data=args.data, cache=args.cache)


def cmd_train(args: argparse.Namespace) -> int:
    from kardiabench.train import load_config, train

    cfg = load_config(args.config, args.train_command, args.overrides, args.output_dir)
    out = train(cfg)
    if os.environ.get("RANK", "0") == "0":  # once, not from every process of `accelerate launch`
        _LOG.info(f"checkpoint written to {out}; evaluate it with: kardiabench run --model hf:{out} --data … --output …")
    return 0


COMMANDS = {
    "data": cmd_data, "tasks": cmd_tasks, "generate": cmd_generate, "run": cmd_generate, "score": cmd_score,
    "compare": cmd_compare, "judge-agreement": cmd_judge_agreement, "judge-audit": cmd_judge_audit, "report": cmd_report,
    "leaderboard": cmd_leaderboard, "reproduce": cmd_reproduce, "train": cmd_train,
    "annotate": cmd_annotate, ANNOTATE_IMPORT: cmd_annotate,
}  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    from kardiabench.errors import USER_ERRORS

    parser = build_parser()
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:2] == ["annotate", "import"]:
        argv = [ANNOTATE_IMPORT, *argv[2:]]
    args = parser.parse_args(argv)
    if args.command == "score" and args.run_dir is not None and args.output is not None:
        parser.error("score: --output is for --predictions FILE; a run folder is scored in place")
    if getattr(args, "display_name", None) is not None and len(args.run_dirs) != 1:
        parser.error("leaderboard add: --display-name names one run; give exactly one DIR")
    if getattr(args, "escalate_to", None) and len(set(args.judge)) < 2:
        parser.error("--escalate-to needs two or more --judge models (their disagreement decides what is escalated)")
    if args.command == "score" and args.run_dir is not None and args.limit is not None:
        parser.error("score: --limit is for --predictions FILE; a run folder is scored over the items it holds")
    try:
        with _console_logging():
            return COMMANDS[args.command](args)
    except USER_ERRORS as e:
        print(f"error: {_path_error(e) if isinstance(e, OSError) and e.filename else e}", file=sys.stderr)
        return EXIT_USAGE
    except BrokenPipeError:  # `kardiabench data stats | head`
        sys.stderr.close()
        return 0
    except OSError as e:
        if e.filename is None:  # not about a path the user gave: a bug, keep the traceback
            raise
        print(f"error: {_path_error(e)}", file=sys.stderr)
        return EXIT_USAGE
    except sqlite3.OperationalError as e:  # the cache file cannot be opened or written
        print(f"error: cache {getattr(args, 'cache', None) or 'file'}: {e} (choose another --cache, or --no-cache)", file=sys.stderr)
        return EXIT_USAGE


def _path_error(e: OSError) -> str:
    """One line for a file-system error on a path the user gave (an --output that is a file, a
    --cache under a file, a folder without write permission)."""
    what = {NotADirectoryError: "a part of this path is a file, not a folder",
            FileExistsError: "a file of that name exists where a folder is needed",
            IsADirectoryError: "this is a folder, a file is needed",
            PermissionError: "permission denied", FileNotFoundError: "no such file or folder"}.get(type(e), e.strerror or str(e))  # fmt: skip
    where = f"{e.filename} -> {e.filename2}" if e.filename2 else str(e.filename)
    return f"{where}: {what}"


if __name__ == "__main__":
    sys.exit(main())
