"""The `kardiabench` command. Thin: it parses arguments and calls the library."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sqlite3
import sys
from pathlib import Path

from kardiabench.redact import env_var_name

EXIT_USAGE = 2


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


positive_int = _number(int, lambda v: v >= 1, "an integer ≥ 1")
nonneg_int = _number(int, lambda v: v >= 0, "an integer ≥ 0")
positive_float = _number(float, lambda v: 0 < v < float("inf"), "a number > 0")
nonneg_float = _number(float, lambda v: 0 <= v < float("inf"), "a number ≥ 0")
top_p = _number(float, lambda v: 0 < v <= 1, "a number in (0, 1]")
open_fraction = _number(float, lambda v: 0 < v < 1, "a fraction strictly between 0 and 1")


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


def _add_data_args(p: argparse.ArgumentParser, split_default: str | None = None) -> None:
    p.add_argument("--data", default=None, help="sample | DIR | FILE (.jsonl/.json/.parquet) | hub | OWNER/NAME (gated Hub dataset, uses HF_TOKEN)")
    p.add_argument("--split", default=split_default, help="split to use (default: the task's, or all for data commands)")
    p.add_argument("--strict", action="store_true", help="refuse to run when any record has a problem (default: skip and report)")
    p.add_argument("--derive-split", type=open_fraction, default=None, metavar="TEST_FRACTION",
                   help="derive a persona-disjoint train/test split from a single file (seeded by --split-seed)")  # fmt: skip
    p.add_argument("--split-seed", type=int, default=0, help="seed for --derive-split")


def _add_generation_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--task", default="kardiabench", help="task name (see `kardiabench tasks`) or a YAML file")
    p.add_argument("--tasks-dir", action="append", default=[], help="extra folder of task YAML files (repeatable)")
    p.add_argument("--model", required=True, help="openai:MODEL | hf:PATH_OR_ID | vllm:PATH_OR_ID | baseline:majority|retrieval")
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
    b = p.add_argument_group("backends")
    b.add_argument("--base-url", default=None, help="OpenAI-compatible endpoint (default: $OPENAI_BASE_URL); no credentials in it, see --api-key-env")
    b.add_argument("--api-key-env", default="OPENAI_API_KEY", type=env_var_name, metavar="VAR", help="environment variable holding the API key")
    b.add_argument("--concurrency", type=positive_int, default=16, help="max requests in flight for API models")
    b.add_argument("--timeout", type=positive_float, default=120.0, help="per-request timeout in seconds for API models")
    b.add_argument("--prices", default=None, help="JSON/YAML price table extending the built-in one (USD per 1M tokens)")
    b.add_argument("--batch-size", type=positive_int, default=8, help="batch size for hf: models")
    b.add_argument("--dtype", default="auto", help="hf:/vllm: weight dtype (auto, bfloat16, float16, float32)")
    b.add_argument("--device", default="auto", help="hf: device (auto, cpu, cuda, cuda:N, mps)")
    b.add_argument("--revision", default=None, help="hf:/vllm: model revision (branch, tag or commit) on the Hub")
    b.add_argument("--add-span-tokens", action="store_true", help="hf: add the eight span markers as special tokens")
    b.add_argument("--chat-template", default=None, help="a Jinja chat template file for models without one")
    b.add_argument("--tensor-parallel-size", type=positive_int, default=1, help="vllm: GPUs per model replica")
    b.add_argument("--data-parallel-size", type=positive_int, default=1, help="vllm: model replicas")
    p.add_argument("--cache", default=None, help="cache file (default: $KARDIABENCH_CACHE or ~/.cache/kardiabench/cache.sqlite)")
    p.add_argument("--no-cache", action="store_true", help="neither read nor write the response cache")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--dry-run", action="store_true", help="count prompt tokens and estimate cost; send nothing")
    p.add_argument("--max-cost", type=positive_float, default=None, metavar="USD", help="stop sending generation requests once they have cost this much (resumable)")


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
    p = sub.add_parser("run", help="generate, then score")
    _add_generation_args(p)
    _add_judge_args(p)

    p = sub.add_parser("score", help="score saved predictions (a run folder, or --predictions FILE with --data)")
    p.add_argument("run_dir", nargs="?", type=Path, help="run folder written by `generate` or `run`")
    p.add_argument("--predictions", type=Path, default=None, help="JSONL of {item_id, raw_output} produced elsewhere")
    p.add_argument("--task", default=None, help="task name or YAML file (default: the run's, or kardiabench)")
    p.add_argument("--tasks-dir", action="append", default=[], help="extra folder of task YAML files (repeatable)")
    _add_data_args(p)
    p.add_argument("--output", type=Path, default=None, help="with --predictions: the run folder to write (default: FILE's folder, NAME-scored)")
    p.add_argument("--cache", default=None, help="cache file (default: $KARDIABENCH_CACHE or ~/.cache/kardiabench/cache.sqlite)")
    p.add_argument("--no-cache", action="store_true", help="neither read nor write the response cache")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    _add_judge_args(p)

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

    train = sub.add_parser("train", help="train a model with TRL: SFT, then Rubric-as-Judge GRPO (docs/training.md)")
    tsub = train.add_subparsers(dest="train_command", required=True)
    for stage, help_ in (("sft", "supervised fine-tuning on the training split"), ("grpo", "GRPO with the benchmark's rewards")):
        p = tsub.add_parser(stage, help=help_)
        p.add_argument("--config", required=True, help=f"YAML config file, or a shipped one ({stage}-tiny.yaml, {stage}-qwen2.5-7b.yaml)")
        p.add_argument("--output-dir", default=None, help="where the checkpoint folder goes (overrides output_dir)")
        p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", dest="overrides",
                       help="override any config field (project or TRL), value read as YAML; dotted keys for mappings (lora.r=8); repeatable")  # fmt: skip
    return parser


def _add_judge_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("rubric judge")
    g.add_argument("--judge", action="append", default=[], help="judge model spec (repeatable); e.g. openai:gpt-5-mini")
    g.add_argument("--judge-base-url", default=None, help="endpoint for openai: judges (default: $OPENAI_BASE_URL)")
    g.add_argument("--judge-api-key-env", default="OPENAI_API_KEY", type=env_var_name, metavar="VAR", help="environment variable holding the judges' API key")
    g.add_argument("--judge-concurrency", type=positive_int, default=16, help="max judge requests in flight")
    g.add_argument("--judge-repeats", type=positive_int, default=1, help="judge each item K times; reports the variance")
    g.add_argument("--judge-max-tokens", type=positive_int, default=1024, help="most tokens per judge reply")
    g.add_argument("--judge-show-reasoning", action="store_true", help="also show the judge the understanding/reasoning spans")
    g.add_argument("--rubric", default=None, help="rubric file (default: judges/rubric.yaml)")
    g.add_argument("--resamples", type=positive_int, default=1000, help="bootstrap resamples for confidence intervals")
    g.add_argument("--bootstrap-seed", type=int, default=0, help="seed for the bootstrap resamples")


# ----------------------------------------------------------------------------- commands


def cmd_data(args: argparse.Namespace) -> int:
    from kardiabench.data import load_dialogues
    from kardiabench.data.load import resolve_split_names

    if args.data_command == "synth":
        from kardiabench.data.synth import main_synth

        try:
            return main_synth(args.dialogues, str(args.out), args.seed)
        except ValueError as e:
            print(f"error: {e}", file=sys.stderr)
            return EXIT_USAGE
    source = args.data or "sample"
    splits = [args.split] if args.split else resolve_split_names(source)
    kw = {"derive_split": args.derive_split, "split_seed": args.split_seed}
    if args.data_command == "validate":
        total, n_problems = 0, 0
        for split in splits:
            res = load_dialogues(source, split, **kw)
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
        from kardiabench.data.stats import format_table, split_stats

        stats = []
        for split in splits:
            res = load_dialogues(source, split, strict=args.strict, **kw)
            if res.skipped:
                print(f"note: {res.skipped} invalid record(s) in split {split} left out (see `kardiabench data validate`)", file=sys.stderr)
            stats.append(split_stats(res.split or split or "all", res.dialogues))
        print(json.dumps([s.to_dict() for s in stats], indent=2) if args.json else format_table(stats))
        return 0
    # show
    from kardiabench.data.show import format_dialogue

    res = load_dialogues(source, splits[0], **kw)
    if args.id:
        found = [d for d in res.dialogues if d.dialogue_id == args.id]
        if not found:
            print(f"error: no dialogue {args.id} in {source} ({res.split})", file=sys.stderr)
            return 1
        dialogue = found[0]
    else:
        if not 0 <= args.index < len(res.dialogues):
            print(f"error: --index must be in 0..{len(res.dialogues) - 1}", file=sys.stderr)
            return 1
        dialogue = res.dialogues[args.index]
    print(format_dialogue(dialogue))
    return 0


def cmd_tasks(args: argparse.Namespace) -> int:
    from kardiabench.tasks import list_tasks

    for t in list_tasks(args.tasks_dir):
        print(f"{t.name:<26} {t.description}")
    return 0


def _generate_config(args: argparse.Namespace):
    from kardiabench.cache import default_cache_path
    from kardiabench.generate import DataSpec, GenerateConfig
    from kardiabench.models import ModelOptions
    from kardiabench.models.base import SamplingParams
    from kardiabench.tasks import load_task

    task = load_task(args.task, args.tasks_dir)
    g = task.generation
    params = SamplingParams(
        temperature=g.temperature if args.temperature is None else args.temperature,
        top_p=g.top_p if args.top_p is None else args.top_p,
        max_tokens=g.max_tokens if args.max_tokens is None else args.max_tokens,
        seed=g.seed if args.seed is None else args.seed,
    )
    options = ModelOptions(
        base_url=args.base_url or os.environ.get("OPENAI_BASE_URL"), concurrency=args.concurrency, timeout=args.timeout,
        api_key_env=args.api_key_env, require_key=not args.dry_run,
        batch_size=args.batch_size, dtype=args.dtype, device=args.device, revision=args.revision,
        add_span_tokens=args.add_span_tokens, chat_template=_read_template(args.chat_template),
        tensor_parallel_size=args.tensor_parallel_size, data_parallel_size=args.data_parallel_size, prices_file=args.prices,
    )  # fmt: skip
    data = DataSpec(
        source=args.data or task.data.source, split=args.split or task.data.split, strict=args.strict,
        derive_split=args.derive_split, split_seed=args.split_seed, limit=args.limit,
    )  # fmt: skip
    cache = None if args.no_cache else Path(args.cache) if args.cache else default_cache_path()
    return GenerateConfig(task=task, model_spec=args.model, data=data, output=args.output, params=params, options=options,
                          train_data=args.train_data, cache_path=cache, progress=not args.no_progress, overwrite=args.overwrite,
                          max_cost_usd=args.max_cost)  # fmt: skip


def _read_template(path: str | None) -> str | None:
    return Path(path).read_text(encoding="utf-8") if path else None


def cmd_generate(args: argparse.Namespace) -> int:
    from kardiabench.generate import generate

    cfg = _generate_config(args)
    judges = []
    if args.command == "run" and args.judge:  # built now: a judge's missing key stops the run before generation
        from kardiabench.evaluate import judge_models

        judges = judge_models(args)
    if args.dry_run:
        from kardiabench.plan import dry_run

        print(dry_run(cfg, log=_log, judges=judges, judge_repeats=getattr(args, "judge_repeats", 1), rubric_path=getattr(args, "rubric", None)))
        return 0
    try:
        run, stats, _ = asyncio.run(generate(cfg, log=_log))
    except KeyboardInterrupt:
        print(f"\ninterrupted: finished items are saved in {cfg.output}/predictions.jsonl; run the same command again to resume.", file=sys.stderr)
        return 130
    cost = "unknown" if stats.cost_usd is None else f"${stats.cost_usd:.4f}"
    _log(f"generated {stats.done} of {stats.total} requested ({stats.cached} from cache), {stats.failed} failed; "
         f"tokens in {stats.prompt_tokens:,} out {stats.completion_tokens:,}; cost {cost}; {stats.wall_s:.1f} s → {run.predictions_path}")  # fmt: skip
    if stats.failed:
        preds = run.read_predictions()
        _log(_failure_summary(stats.failed, [preds[k].error or "" for k in stats.failed_keys if k in preds]))
        _log(f"failed items ({stats.failed}), listed in run.json; run the same command again to retry them:")
        for k in stats.failed_keys[:20]:
            _log(f"  {k}")
    code = cmd_score_run(args, run.path) if args.command == "run" else 0
    return code or (1 if stats.failed else 0)  # items that failed for good: results written, exit 1


def _failure_summary(n_failed: int, errors: list[str]) -> str:
    """`failed: 5 items — most common: "HTTP 500 from …" ×4`: why, on the console."""
    from collections import Counter

    top = Counter(errors).most_common(1)
    if not top:
        return f"failed: {n_failed} items"
    error, n = top[0]
    error = error if len(error) <= 200 else error[:200] + " …"
    return f"failed: {n_failed} items — most common: {json.dumps(error, ensure_ascii=False)} ×{n}"


def cmd_score_run(args: argparse.Namespace, run_dir: Path) -> int:
    from kardiabench.evaluate import output_folder, score_command

    try:
        return score_command(args, run_dir=run_dir, log=_log)
    except KeyboardInterrupt:
        print(f"\ninterrupted: finished verdicts are saved in {output_folder(args, run_dir)}/judgments.jsonl; "
              "run the same command again to resume.", file=sys.stderr)  # fmt: skip
        return 130


def cmd_score(args: argparse.Namespace) -> int:
    return cmd_score_run(args, args.run_dir)


def cmd_compare(args: argparse.Namespace) -> int:
    from kardiabench.evaluate import compare_command

    return compare_command(args, log=_log)


def cmd_judge_agreement(args: argparse.Namespace) -> int:
    from kardiabench.evaluate import judge_agreement_command

    return judge_agreement_command(args, log=_log)


def cmd_train(args: argparse.Namespace) -> int:
    from kardiabench.train import load_config, train

    cfg = load_config(args.config, args.train_command, args.overrides, args.output_dir)
    out = train(cfg)
    if os.environ.get("RANK", "0") == "0":  # once, not from every process of `accelerate launch`
        _log(f"checkpoint written to {out}; evaluate it with: kardiabench run --model hf:{out} --data … --output …")
    return 0


def _log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


COMMANDS = {
    "data": cmd_data, "tasks": cmd_tasks, "generate": cmd_generate, "run": cmd_generate, "score": cmd_score,
    "compare": cmd_compare, "judge-agreement": cmd_judge_agreement, "train": cmd_train,
}  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    from kardiabench.errors import USER_ERRORS

    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command == "score" and args.run_dir is not None and args.output is not None:
        parser.error("score: --output is for --predictions FILE; a run folder is scored in place")
    try:
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
