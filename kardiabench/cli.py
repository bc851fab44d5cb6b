"""The `kardiabench` command. Thin: it parses arguments and calls the library."""

from __future__ import annotations

import argparse
import json
import logging
import os
import sqlite3
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from kardiabench.options import SIGNATURES, rule_type
from kardiabench.params import ParameterError

EXIT_USAGE = 2
_LOG = logging.getLogger("kardiabench")


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


def _command(sub, name: str, help_: str, function: str, **kw: Any) -> argparse.ArgumentParser:
    """A subcommand whose flags are the options of the API function it wraps (kardiabench/options.py)."""
    p = sub.add_parser(name, help=help_, **kw)
    SIGNATURES[function].add_arguments(p)
    return p


def build_parser() -> argparse.ArgumentParser:
    from kardiabench import __version__

    parser = _Parser(prog="kardiabench", description="Evaluation harness for KardiaBench.")
    parser.add_argument("--version", action="version", version=f"kardiabench {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    data = sub.add_parser("data", help="inspect, validate and synthesise KardiaBench data")
    dsub = data.add_subparsers(dest="data_command", required=True)
    p = _command(dsub, "stats", "the paper's split table for a source", "kb.data_stats")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p = _command(dsub, "validate", "check every record; exit 1 on problems", "kb.validate_data")
    p.add_argument(
        "--max-problems",
        type=rule_type("nonneg_int"),
        default=200,
        help="print at most this many problems",
    )
    _command(dsub, "show", "print one dialogue readably", "kb.show_dialogue")
    _command(dsub, "synth", "write a full-size synthetic dataset (for benchmarks)", "kb.synth_data")
    _command(sub, "tasks", "list tasks", "kb.list_tasks")

    for name, help_, function in (
        ("generate", "generation stage only: write DIR/predictions.jsonl", "kb.generate"),
        ("run", "generate, score, and write DIR/report.html", "kb.evaluate"),
    ):
        p = _command(sub, name, help_, function)
        p.add_argument(
            "--dry-run",
            action="store_true",
            help="count prompt tokens and estimate cost; send nothing",
        )
    _command(
        sub,
        "score",
        "score saved predictions (a run folder, or --predictions FILE with --data)",
        "kb.score",
    )
    p = _command(
        sub, "compare", "paired comparison of two runs on the items they share", "kb.compare"
    )
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p = _command(
        sub,
        "judge-agreement",
        "agreement of each judge with human 1-5 labels (or A/B labels for a pairwise folder)",
        "kb.judge_agreement",
    )
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    _command(
        sub,
        "judge-audit",
        "the judge reliability card: how a judge scores constructed and adversarial replies",
        "kb.judge_audit",
    )
    _command(
        sub,
        "pairwise",
        "LLM pairwise preference between runs: A / B / tie per dimension, both orders",
        "kb.pairwise",
    )

    _command(
        sub,
        "report",
        "write DIR/report.html: one self-contained page about a scored run",
        "kb.write_report",
    )
    lb = sub.add_parser("leaderboard", help="record runs and build tables, plots and a static site")
    lsub = lb.add_subparsers(dest="leaderboard_command", required=True)
    _command(
        lsub,
        "add",
        "record scored run folders (re-adding a folder replaces its entry)",
        "kb.leaderboard_add",
    )
    _command(
        lsub,
        "build",
        "render tables (CSV, Markdown, LaTeX), plots and the site",
        "kb.leaderboard_build",
    )
    _command(
        lsub,
        "push",
        "upload a built leaderboard as a Hugging Face dataset repo",
        "kb.leaderboard_push",
    )
    _command(
        lsub,
        "add-pairwise",
        "record a `kardiabench pairwise` folder: its Bradley–Terry table and plot on the leaderboard",
        "kb.leaderboard_add_pairwise",
    )
    _command(
        sub,
        "reproduce",
        "run the paper's comparison set and build its leaderboard",
        "kb.reproduce_runs",
    )
    _command(
        sub,
        "annotate",
        "blinded human A/B pages for two runs (then: annotate import DIR FILES…)",
        "kb.annotate",
        description="Write a blinded A/B study: one offline HTML page per annotator, DIR/key.json (keep it from "
        "the annotators) and a Label Studio project. Count the exported labels with "
        "`kardiabench annotate import DIR FILES…`.",
    )
    _command(
        sub,
        ANNOTATE_IMPORT,
        "(run as: kardiabench annotate import DIR FILES…)",
        "kb.annotate_import",
        prog="kardiabench annotate import",
        description="Unblind and count the annotators' exported labels: win rates, agreement, items to discuss.",
    )

    train = sub.add_parser(
        "train", help="train a model with TRL: SFT, then Rubric-as-Judge GRPO (docs/training.md)"
    )
    tsub = train.add_subparsers(dest="train_command", required=True)
    _command(tsub, "sft", "supervised fine-tuning on the training split", "kb.train_model")
    _command(tsub, "grpo", "GRPO with the benchmark's rewards", "kb.train_model")
    return parser


# `annotate import …` is parsed as this command (main rewrites it)
ANNOTATE_IMPORT = "annotate-import"


def _call(function: str, args: argparse.Namespace, **extra: Any) -> Any:
    """Call kb.FUNCTION with the parsed flags as its keywords (looked up on each call: tests replace it)."""
    from kardiabench import api

    return getattr(api, function)(**SIGNATURES[f"kb.{function}"].keywords(args), **extra)


# ----------------------------------------------------------------------------- commands


def cmd_data(args: argparse.Namespace) -> int:
    if args.data_command == "synth":
        try:
            print(_call("synth_data", args))
        except ValueError as e:
            print(f"error: {e}", file=sys.stderr)
            return EXIT_USAGE
        return 0
    if args.data_command == "validate":
        total, n_problems = 0, 0
        for res in _call("validate_data", args):
            total += res.records_read
            for p in res.problems[: max(0, args.max_problems - n_problems)]:
                print(p)
            n_problems += len(res.problems)
            print(
                f"{', '.join(res.files)}: {res.records_read} records, {len(res.dialogues)} valid, {len(res.problems)} problem(s)",
                file=sys.stderr,
            )
        if n_problems > args.max_problems:
            print(f"… {n_problems - args.max_problems} more problems not shown (--max-problems)")
        print(f"{'FAILED' if n_problems else 'OK'}: {total} records, {n_problems} problem(s)")
        return 1 if n_problems else 0
    if args.data_command == "stats":
        from kardiabench.data.stats import format_table

        stats = _call("data_stats", args)
        print(
            json.dumps([s.to_dict() for s in stats], indent=2) if args.json else format_table(stats)
        )
        return 0
    from kardiabench.data.show import format_dialogue

    try:
        dialogue = _call("show_dialogue", args)
    except LookupError as e:
        print(f"error: {e.args[0]}", file=sys.stderr)
        return 1
    print(format_dialogue(dialogue))
    return 0


def cmd_tasks(args: argparse.Namespace) -> int:
    for t in _call("list_tasks", args):
        print(f"{t.name:<26} {t.description}")
    return 0


def cmd_generate(args: argparse.Namespace) -> int:
    from kardiabench.api import Interrupted

    if args.dry_run:
        print(_call("dry_run", args))
        return 0
    try:
        if args.command == "generate":
            return 1 if _call("generate", args).problems else 0  # items failed for good: exit 1
        run = _call("evaluate", args)
    except Interrupted as e:
        return _interrupted(e)
    _print_summary(run)
    # failed items, or a judge that scored nothing: results written, exit 1
    return 1 if run.problems else 0


def cmd_score(args: argparse.Namespace) -> int:
    from kardiabench.api import Interrupted

    try:
        run = _call("score", args)
    except Interrupted as e:
        return _interrupted(e)
    _print_summary(run)
    return 1 if run.problems else 0


def _print_summary(run) -> None:
    from kardiabench.runs import SUMMARY

    print((run.path / SUMMARY).read_text(encoding="utf-8"), end="")


def _interrupted(e: KeyboardInterrupt) -> int:
    print(f"\ninterrupted: {e}; run the same command again to resume.", file=sys.stderr)
    return 130


def cmd_compare(args: argparse.Namespace) -> int:
    comparison = _call("compare", args)
    print(json.dumps(comparison.to_dict(), indent=2) if args.json else comparison.to_markdown())
    return 0


def cmd_judge_agreement(args: argparse.Namespace) -> int:
    from kardiabench.api import format_agreement

    report = _call("judge_agreement", args)
    print(json.dumps(report, indent=2) if args.json else format_agreement(report))
    return 0


def cmd_annotate(args: argparse.Namespace) -> int:
    from kardiabench.api import Interrupted

    if args.command == ANNOTATE_IMPORT:
        try:
            results = _call("annotate_import", args)
        except Interrupted as e:
            return _interrupted(e)
        _LOG.info(
            f"{len(results.annotators)} annotator(s) → {args.folder}/results.json, summary.md, discussion.md, human_labels.jsonl"
        )
        print((args.folder / "summary.md").read_text(encoding="utf-8"), end="")
        return 0
    for page in _call("annotate", args).pages:
        print(page)
    return 0


def cmd_judge_audit(args: argparse.Namespace) -> int:
    card = _call("judge_audit", args)
    _LOG.info(f"judge card → {card.path}")
    print((card.path.parent / "judge_card.md").read_text(encoding="utf-8"), end="")
    if card.failed:
        print(f"FAILED checks: {', '.join(card.failed)}", file=sys.stderr)
    if card.inconclusive:  # not shown to pass: gates like a failure (docs/judge-audit.md)
        print(
            f"INCONCLUSIVE checks: {', '.join(card.inconclusive)} (too few scored dialogues, or an interval "
            "across the threshold: judge_card.md says which; audit more items)",
            file=sys.stderr,
        )
    return 0 if card.passed else 1


def cmd_pairwise(args: argparse.Namespace) -> int:
    from kardiabench.api import Interrupted

    try:
        result = _call("pairwise", args)
    except Interrupted as e:
        return _interrupted(e)
    print((result.path / "summary.md").read_text(encoding="utf-8"), end="")
    return 0


class _Console(logging.Handler):
    """The library's log lines on stderr, as the CLI always printed them: every record of the
    `kardiabench` logger, and the warnings of the loggers under it (an adapter's retry notes stay
    quiet) and of Python's `warnings`. Written through tqdm, which clears a progress bar before the
    line and redraws it below, so a line is never glued to the bar. Looks sys.stderr up on each
    line, so a redirected stderr is honoured."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.addFilter(lambda r: r.name == "kardiabench" or r.levelno >= logging.WARNING)

    def emit(self, record: logging.LogRecord) -> None:
        from tqdm.auto import tqdm

        tqdm.write(self.format(record), file=sys.stderr)
        sys.stderr.flush()


@contextmanager
def _console_logging() -> Iterator[None]:
    logger, warned = logging.getLogger("kardiabench"), logging.getLogger("py.warnings")
    handler, level = _Console(), logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    warned.addHandler(handler)
    # `warnings.warn` of any library: a record of py.warnings, not a raw write
    logging.captureWarnings(True)
    try:
        yield
    finally:
        logging.captureWarnings(False)
        warned.removeHandler(handler)
        logger.removeHandler(handler)
        logger.setLevel(level)


def cmd_report(args: argparse.Namespace) -> int:
    _LOG.info(f"report → {_call('write_report', args)}")
    return 0


def cmd_leaderboard(args: argparse.Namespace) -> int:
    if args.leaderboard_command == "add":
        _call("leaderboard_add", args)
    elif args.leaderboard_command == "add-pairwise":
        _call("leaderboard_add_pairwise", args)
    elif args.leaderboard_command == "build":
        _call("leaderboard_build", args)
    else:
        _LOG.info(f"pushed → {_call('leaderboard_push', args)}")
    return 0


def cmd_reproduce(args: argparse.Namespace) -> int:
    # systems that did not finish (the others ran): exit 1
    return 1 if _call("reproduce_runs", args) else 0


def cmd_train(args: argparse.Namespace) -> int:
    out = _call("train_model", args, stage=args.train_command)
    if os.environ.get("RANK", "0") == "0":  # once, not from every process of `accelerate launch`
        _LOG.info(
            f"checkpoint written to {out}; evaluate it with: kardiabench run --model hf:{out} --data … --output …"
        )
    return 0


COMMANDS = {
    "data": cmd_data,
    "tasks": cmd_tasks,
    "generate": cmd_generate,
    "run": cmd_generate,
    "score": cmd_score,
    "compare": cmd_compare,
    "judge-agreement": cmd_judge_agreement,
    "judge-audit": cmd_judge_audit,
    "pairwise": cmd_pairwise,
    "report": cmd_report,
    "leaderboard": cmd_leaderboard,
    "reproduce": cmd_reproduce,
    "train": cmd_train,
    "annotate": cmd_annotate,
    ANNOTATE_IMPORT: cmd_annotate,
}


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
    if args.command == "pairwise" and len(args.runs) < 2:
        parser.error("pairwise: give two or more run folders")
    if getattr(args, "escalate_to", None) and len(set(args.judges)) < 2:
        parser.error(
            "--escalate-to needs two or more --judge models (their disagreement decides what is escalated)"
        )
    if args.command == "score" and args.run_dir is not None and args.limit is not None:
        parser.error(
            "score: --limit is for --predictions FILE; a run folder is scored over the items it holds"
        )
    try:
        with _console_logging():
            return COMMANDS[args.command](args)
    except USER_ERRORS as e:
        print(
            f"error: {_path_error(e) if isinstance(e, OSError) and e.filename else e}",
            file=sys.stderr,
        )
        return EXIT_USAGE
    # a rule the parser cannot see alone (`judge-audit` without --judge)
    except ParameterError as e:
        print(f"error: {e}", file=sys.stderr)
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
        print(
            f"error: cache {getattr(args, 'cache', None) or 'file'}: {e} (choose another --cache, or --no-cache)",
            file=sys.stderr,
        )
        return EXIT_USAGE


def _path_error(e: OSError) -> str:
    """One line for a file-system error on a path the user gave (an --output that is a file, a
    --cache under a file, a folder without write permission)."""
    what = {
        NotADirectoryError: "a part of this path is a file, not a folder",
        FileExistsError: "a file of that name exists where a folder is needed",
        IsADirectoryError: "this is a folder, a file is needed",
        PermissionError: "permission denied",
        FileNotFoundError: "no such file or folder",
    }.get(type(e), e.strerror or str(e))
    where = f"{e.filename} -> {e.filename2}" if e.filename2 else str(e.filename)
    return f"{where}: {what}"


if __name__ == "__main__":
    sys.exit(main())
