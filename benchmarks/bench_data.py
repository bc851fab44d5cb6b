"""Data-layer benchmark: generate a full-size synthetic KardiaBench, then time loading it.

    python benchmarks/bench_data.py [--dialogues 22080] [--seed 0] [--keep DIR] [--stream]

Each phase runs in a fresh subprocess so its peak RSS (ru_maxrss) covers that phase only:
  generate  kardiabench.data.synth.write_dataset (streams train.jsonl / test.jsonl)
  load      load_dialogues (read + validate) and list(expand(...)) of the test split and the train
            split; every dialogue and every item stays in memory until the end (the worst case).
            With --stream, items are counted as they are made and not kept (dialogues still are).
Target for the load phase at full size: under 30 s and under 2 GB. Exit status 1 when missed.
Also timed: the span parser on hostile inputs (HOSTILE_SPANS: a 1 MB span, 50k duplicated tags, an
unclosed tag before 1 MB of whitespace, a 1 MB unclosed <think>); target under 5 s in all.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

TARGET_S = 30.0
TARGET_MB = 2048.0
SPLITS = ("test", "train")
TARGET_SPANS_S = 5.0


def hostile_spans() -> list[str]:
    """Inputs that would expose a regex with catastrophic backtracking or quadratic scanning."""
    from kardiabench.spans import render_spans

    spans = {
        "understanding": "u",
        "reasoning": "word " * 200_000,
        "emotion": "sad",
        "response": "r",
    }
    return [
        render_spans(spans),
        "<emotion>sad</emotion>" * 50_000,
        ("<emotion" + " " * 200_000) * 5,
        "<think>" + "z" * 1_000_000,
    ]


def time_hostile_spans() -> float:
    from kardiabench.spans import parse_spans

    inputs = hostile_spans()
    t0 = time.perf_counter()
    for text in inputs:
        parse_spans(text)
    return time.perf_counter() - t0


def cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def peak_mb() -> float:
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return rss / 2**20 if sys.platform == "darwin" else rss / 1024  # bytes on macOS, KiB on Linux


def child_generate(out: str, dialogues: int, seed: int) -> dict:
    from kardiabench.data.synth import write_dataset

    start, cpu0 = time.perf_counter(), cpu_s()
    summary = write_dataset(out, dialogues, seed)
    return {
        "seconds": time.perf_counter() - start,
        "cpu_s": cpu_s() - cpu0,
        "peak_mb": peak_mb(),
        "dialogues": summary.dialogues,
        "turns": summary.turns,
        "personas": summary.personas,
        "bytes": {s: Path(p).stat().st_size for s, p in summary.files.items()},
    }


def child_load(data: str, stream: bool) -> dict:
    from kardiabench.data import expand, load_dialogues

    baseline = peak_mb()  # interpreter + kardiabench imports, before any data
    keep = []  # hold everything: the peak is what a whole-dataset run needs
    rows = {}
    start, cpu0 = time.perf_counter(), cpu_s()
    for split in SPLITS:
        t0 = time.perf_counter()
        loaded = load_dialogues(data, split)
        t1 = time.perf_counter()
        items = expand(loaded.dialogues)
        n_items = sum(1 for _ in items) if stream else len(items := list(items))
        t2 = time.perf_counter()
        keep.append((loaded, items))
        rows[split] = {
            "dialogues": len(loaded.dialogues),
            "problems": len(loaded.problems),
            "items": n_items,
            "load_s": t1 - t0,
            "expand_s": t2 - t1,
        }
    return {
        "seconds": time.perf_counter() - start,
        "cpu_s": cpu_s() - cpu0,
        "peak_mb": peak_mb(),
        "baseline_mb": baseline,
        "splits": rows,
    }


def run_child(*args: str) -> dict:
    proc = subprocess.run(
        [sys.executable, __file__, "--child", *args], capture_output=True, text=True, check=False
    )
    if proc.returncode != 0:
        raise SystemExit(f"child {args[0]} failed:\n{proc.stderr}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def report(gen: dict, load: dict, dialogues: int, stream: bool) -> bool:
    mb = sum(gen["bytes"].values()) / 2**20
    print(
        f"\nGenerate {dialogues} dialogues ({sum(gen['turns'].values())} turns, {mb:.0f} MiB JSONL): "
        f"{gen['seconds']:.1f} s wall ({gen['cpu_s']:.1f} s CPU), peak RSS {gen['peak_mb']:.0f} MiB"
    )
    print(
        f"\n{'split':<7}{'dialogues':>11}{'items':>9}{'problems':>10}{'load+validate s':>17}{'expand s':>10}"
    )
    for split, r in load["splits"].items():
        print(
            f"{split:<7}{r['dialogues']:>11}{r['items']:>9}{r['problems']:>10}{r['load_s']:>17.1f}{r['expand_s']:>10.1f}"
        )
    total_items = sum(r["items"] for r in load["splits"].values())
    total_d = sum(r["dialogues"] for r in load["splits"].values())
    print(f"{'total':<7}{total_d:>11}{total_items:>9}{'':>10}{'':>17}{'':>10}")
    ok_time, ok_mem = load["seconds"] < TARGET_S, load["peak_mb"] < TARGET_MB
    held = "items counted, not kept" if stream else "all dialogues and items kept"
    print(
        f"\nLoad + validate + expand, both splits ({held}): {load['seconds']:.1f} s wall "
        f"({load['cpu_s']:.1f} s CPU) "
        f"[{'ok' if ok_time else 'MISSED'}: target < {TARGET_S:.0f} s], peak RSS {load['peak_mb']:.0f} MiB "
        f"(interpreter and imports {load['baseline_mb']:.0f} MiB) "
        f"[{'ok' if ok_mem else 'MISSED'}: target < {TARGET_MB:.0f} MiB]"
    )
    return ok_time and ok_mem


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--child"]:
        kind, rest = argv[1], argv[2:]
        result = (
            child_generate(rest[0], int(rest[1]), int(rest[2]))
            if kind == "generate"
            else child_load(rest[0], rest[1] == "stream")
        )
        print(json.dumps(result))
        return 0
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--dialogues", type=int, default=22_080)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument(
        "--keep", metavar="DIR", help="write the data set here and keep it (default: a temp dir)"
    )
    ap.add_argument(
        "--stream", action="store_true", help="count items without keeping them in memory"
    )
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="kardiabench-bench-") as tmp:
        out = args.keep or tmp
        gen = run_child("generate", out, str(args.dialogues), str(args.seed))
        load = run_child("load", out, "stream" if args.stream else "keep")
    ok = report(gen, load, args.dialogues, args.stream)
    spans_s = time_hostile_spans()
    ok_spans = spans_s < TARGET_SPANS_S
    print(
        f"Span parser on hostile inputs: {spans_s:.2f} s [{'ok' if ok_spans else 'MISSED'}: target < {TARGET_SPANS_S:.0f} s]"
    )
    return 0 if ok and ok_spans else 1


if __name__ == "__main__":
    sys.exit(main())
