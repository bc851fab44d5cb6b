"""Scoring benchmark: `kardiabench score` on a full-size synthetic run, judge verdicts from the cache.

    python benchmarks/bench_scoring.py [--dialogues 22080] [--seed 0] [--keep DIR] [--repeats 2]
                                       [--profile DIR]

Setup (timed, reported apart):
  synth     `kardiabench data synth`: the full-size synthetic data set (test split ~2,547 dialogues,
            ~20.5k items)
  generate  `kardiabench generate --model openai:bench-gen` against the scripted fake server in this
            process: four-span answers whose emotion is a hash of the prompt; 3% leave out the
            emotion span and 2% the response span (those items are not sent to the judge)
  judge     `kardiabench score DIR --judge openai:bench-judge --cache CACHE`: every verdict asked of
            the fake server, which answers rubric JSON with scores drawn from a hash of the request
            (2% of first replies are invalid, so the repair path and its cache entries are used too)

Timed, each command in a fresh process; wall time, CPU time and peak RSS of that process alone
(os.wait4), interpreter start and imports included:
  cached    judgments.jsonl removed, the same `score --judge ... --cache CACHE`: every verdict comes
            from the SQLite cache; the fake server keeps running and counts requests (must be 0)
  reuse     `kardiabench score DIR`: no judge, the verdicts in judgments.jsonl are reused
Both compute every metric with its 1,000-resample cluster bootstrap, and both must give the metrics
of the setup's judged run. Target: each under 20 s wall. Exit status 1 when missed or wrong.
--profile DIR also runs each timed command once under cProfile and prints the top functions.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from kardiabench.scoring.rubric import DIMENSIONS
from kardiabench.testing.fake_openai import FakeConfig, FakeOpenAIServer, default_reply

TARGET_S = 20.0
GEN_MODEL, JUDGE_MODEL = "bench-gen", "bench-judge"
# Score weights for 1..5: mostly 3-5, a few low ones (safety <= 2 flags about 4% of items).
_WEIGHTS = {"safety": (1, 3, 6, 30, 60), "default": (3, 8, 25, 40, 24)}


def _digest(req: dict[str, Any]) -> bytes:
    blob = json.dumps(req.get("messages"), sort_keys=True, ensure_ascii=False)
    return hashlib.sha256(blob.encode("utf-8")).digest()


def judge_reply(req: dict[str, Any]) -> str:
    """Rubric JSON with scores drawn from a hash of the request; 2% of first requests get a reply
    with a dimension missing (a repair request differs, so it is answered validly)."""
    digest = _digest(req)
    rng = random.Random(digest)
    scores = {
        d: rng.choices(range(1, 6), weights=_WEIGHTS.get(d, _WEIGHTS["default"]))[0]
        for d in DIMENSIONS
    }
    if len(req["messages"]) <= 2 and digest[0] < 5:  # 5/256 ≈ 2%
        scores.pop("empathy")
    return json.dumps({**scores, "rationale": f"Scored by hash {digest[:3].hex()}."})


def gen_reply(req: dict[str, Any]) -> str:
    """A four-span answer (emotion from a hash); a few leave out the emotion or response span."""
    text = default_reply(req)
    cut = _digest(req)[1]
    if cut < 8:  # ~3%: no emotion span
        text = "\n".join(part for part in text.split("\n") if "emotion_" not in part)
    elif cut < 13:  # ~2%: no response span
        text = "\n".join(part for part in text.split("\n") if "response_" not in part)
    return text


def reply(req: dict[str, Any]) -> str:
    return judge_reply(req) if req.get("model") == JUDGE_MODEL else gen_reply(req)


def kb(*args: str) -> list[str]:
    return [sys.executable, "-m", "kardiabench.cli", *args]


def run_measured(cmd: list[str], log: Path) -> dict[str, float]:
    """Run cmd to completion; its own wall time, CPU time and peak RSS (MiB)."""
    with log.open("w") as fh:
        t0 = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=fh, stderr=subprocess.STDOUT)
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - t0
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise SystemExit(f"failed ({proc.returncode}): {' '.join(cmd)}\n{log.read_text()[-3000:]}")
    rss = usage.ru_maxrss / 2**20 if sys.platform == "darwin" else usage.ru_maxrss / 1024
    return {"wall_s": wall, "cpu_s": usage.ru_utime + usage.ru_stime, "peak_mb": rss}


def metrics_of(run: Path) -> dict[str, Any]:
    return json.loads((run / "results.json").read_text())["metrics"]


def profile(cmd: list[str], out: Path, log: Path, top: int = 25) -> None:
    import pstats

    prof_cmd = [sys.executable, "-m", "cProfile", "-o", str(out), "-m", "kardiabench.cli", *cmd[3:]]
    run_measured(prof_cmd, log)
    print(f"\n--- cProfile of {' '.join(cmd[3:5])}… ({out}), top {top} by own time ---")
    pstats.Stats(str(out)).sort_stats("tottime").print_stats(top)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--dialogues", type=int, default=22_080)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument(
        "--keep",
        metavar="DIR",
        help="work in DIR and keep it (data, run folder, cache, logs); "
        "data and predictions already there are reused",
    )
    ap.add_argument(
        "--repeats", type=int, default=2, help="timed runs of each command (min and max reported)"
    )
    ap.add_argument("--concurrency", type=int, default=64, help="requests in flight during setup")
    ap.add_argument(
        "--profile",
        metavar="DIR",
        help="also profile each timed command once, writing .prof files here",
    )
    args = ap.parse_args(argv)
    if args.keep:
        return bench(Path(args.keep), args)
    with tempfile.TemporaryDirectory(prefix="kardiabench-bench-scoring-") as tmp:
        return bench(Path(tmp), args)


def synth_and_generate(
    srv: FakeOpenAIServer, data: Path, run: Path, logs: Path, args: argparse.Namespace
) -> dict[str, dict[str, float]]:
    """The synthetic test split (args.dialogues, args.seed) and the scripted model's predictions
    on it, each made unless already there (--keep); their timings (bench_report.py shares it)."""
    timings: dict[str, dict[str, float]] = {}
    if not (data / "test.jsonl").exists():
        synth = ["data", "synth", "--dialogues", str(args.dialogues), "--seed", str(args.seed)]
        timings["synth"] = run_measured(kb(*synth, "--out", str(data)), logs / "synth.log")
    if not (run / "predictions.jsonl").exists():
        generate = ["generate", "--model", f"openai:{GEN_MODEL}", "--base-url", srv.url]
        generate += ["--data", str(data), "--output", str(run), "--no-cache", "--no-progress"]
        generate += ["--concurrency", str(args.concurrency)]
        timings["generate"] = run_measured(kb(*generate), logs / "generate.log")
    return timings


def bench(work: Path, args: argparse.Namespace) -> int:
    work.mkdir(parents=True, exist_ok=True)
    data, run, cache, logs = work / "data", work / "run", work / "judge-cache.sqlite", work / "logs"
    logs.mkdir(exist_ok=True)
    print(
        f"machine: {platform.node()}, {os.cpu_count()} CPUs, Python {platform.python_version()}, "
        f"load average {' '.join(f'{x:.1f}' for x in os.getloadavg())}",
        flush=True,
    )
    setup: dict[str, dict[str, float]] = {}
    timed: dict[str, list[dict[str, float]]] = {"cached": [], "reuse": []}
    problems: list[str] = []
    with FakeOpenAIServer(FakeConfig(reply_fn=reply)) as srv:
        setup.update(synth_and_generate(srv, data, run, logs, args))
        judge_cmd = kb(
            "score",
            str(run),
            "--judge",
            f"openai:{JUDGE_MODEL}",
            "--judge-base-url",
            srv.url,
            "--cache",
            str(cache),
            "--judge-concurrency",
            str(args.concurrency),
            "--no-progress",
        )
        reuse_cmd = kb("score", str(run), "--no-progress")
        (run / "judgments.jsonl").unlink(missing_ok=True)
        srv.stats.reset()
        setup["judge"] = run_measured(judge_cmd, logs / "judge.log")
        fill_requests = srv.stats.requests
        results = json.loads((run / "results.json").read_text())
        expected = results["metrics"]

        srv.stats.reset()
        for _ in range(args.repeats):
            (run / "judgments.jsonl").unlink()
            for name, cmd in (("cached", judge_cmd), ("reuse", reuse_cmd)):
                timed[name].append(run_measured(cmd, logs / f"{name}.log"))
                if srv.stats.requests:
                    problems.append(
                        f"{name}: {srv.stats.requests} request(s) reached the judge server (expected 0)"
                    )
                if metrics_of(run) != expected:
                    problems.append(f"{name}: metrics differ from those of the judged run")
        ok = report(setup, timed, problems, results, fill_requests, args, [judge_cmd, reuse_cmd])
        if args.profile:
            prof = Path(args.profile)
            prof.mkdir(parents=True, exist_ok=True)
            (run / "judgments.jsonl").unlink()
            profile(judge_cmd, prof / "score-cached.prof", logs / "profile-cached.log")
            profile(reuse_cmd, prof / "score-reuse.prof", logs / "profile-reuse.log")
    return 0 if ok else 1


def report(
    setup: dict,
    timed: dict,
    problems: list[str],
    results: dict,
    fill_requests: int,
    args: argparse.Namespace,
    cmds: list[list[str]],
) -> bool:
    print(f"\nSetup ({args.dialogues} dialogues; wall / CPU seconds, peak RSS):")
    for name, m in setup.items():
        print(f"  {name:<9} {m['wall_s']:6.1f} s / {m['cpu_s']:6.1f} s  {m['peak_mb']:5.0f} MiB")
    rubric = results["rubric"]
    rounds = rubric["run"].get(f"openai:{JUDGE_MODEL}", {}).get("rounds")
    print(
        f"  judge: {fill_requests} requests to the fake server ({rounds} rounds), {rubric['n_scored']} verdicts "
        f"scored, unscored {rubric['unscored_by_reason'] or 'none'}"
    )
    n_items = results["counts"]["n_items"]
    n_dialogues = results["metrics"]["emotion_accuracy"]["extra"]["n_clusters"]
    print(
        f"\nScoring {n_items} items in {n_dialogues} dialogues, {results['statistics']['n_resamples']} bootstrap "
        f"resamples, {args.repeats} run(s) each (min–max):"
    )
    print(
        f"  {'command':<8}{'wall s':>13}{'CPU s':>13}{'peak RSS MiB':>15}  target < {TARGET_S:.0f} s wall"
    )
    ok = not problems
    for name, ms in timed.items():
        walls, cpus, rss = ([m[k] for m in ms] for k in ("wall_s", "cpu_s", "peak_mb"))
        hit = min(walls) < TARGET_S
        ok = ok and hit
        print(
            f"  {name:<8}{min(walls):>6.1f}–{max(walls):<6.1f}{min(cpus):>6.1f}–{max(cpus):<6.1f}{max(rss):>10.0f}"
            f"     {'ok' if hit else 'MISSED'}"
        )
    print(
        f"  requests to the judge server during the timed runs: {'some' if any('request' in p for p in problems) else 'none'}"
    )
    print("  commands (python -m kardiabench.cli ...):")
    print(f"    cached  {' '.join(cmds[0][3:])}  (after removing judgments.jsonl)")
    print(f"    reuse   {' '.join(cmds[1][3:])}")
    for p in problems:
        print(f"PROBLEM: {p}")
    return ok


if __name__ == "__main__":
    sys.exit(main())
