"""Report benchmark: `kardiabench report` of a full-size synthetic run, its size and how soon it opens.

    python benchmarks/bench_report.py [--dialogues 22080] [--seed 0] [--keep DIR] [--repeats 3]
                                      [--redact] [--report FILE] [--json OUT]

Setup (timed, reported apart; reused from DIR with --keep): the run of benchmarks/bench_scoring.py,
made the same way: `kardiabench data synth` (test split 2,547 dialogues, 20,525 items), `generate`
against the scripted fake server and `score --judge` with the fake judge (every item has its user
turn, four spans, seven scores and a rationale).

Measured:
  write     `kardiabench report RUN --output FILE` in a fresh process: wall, CPU, peak RSS
  size      the file's bytes, and those of the items it holds as uncompressed JSON
  open      the page in a fresh headless Chromium (Debian's `chromium`, driven over the DevTools pipe
            as tests/browser.py does), --repeats times. time-to-interactive: from sending the
            navigation until the page answers a script with its first page of items shown (the
            report's `items-ready` performance mark; a page without it, like the report before
            issue 17, counts from its load event), polled every 20 ms, so a main thread still busy
            with layout counts too; also the in-page times (load event end, items-ready mark).
--report FILE measures a page written elsewhere (an older version's) instead of writing one.
Targets: under 5 MB and interactive in under 2 s. Exit status 1 when missed.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench_scoring import JUDGE_MODEL, kb, reply, run_measured, synth_and_generate

from kardiabench.testing.fake_openai import FakeConfig, FakeOpenAIServer

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from browser import Browser, chromium_path  # noqa: E402  (the tests' DevTools-pipe driver)

TARGET_BYTES = 5 * 10**6
TARGET_S = 2.0
POLL_S = 0.02
READY = "(() => { const m = performance.getEntriesByName('items-ready')[0]; return m ? m.startTime : null; })()"
NAV = "(() => { const t = performance.getEntriesByType('navigation')[0]; return t ? t.loadEventEnd : 0; })()"
SHOWN = "document.querySelectorAll('#items tbody tr').length"


def setup(work: Path, args: argparse.Namespace) -> tuple[Path, dict[str, dict[str, float]]]:
    """The scored full-size run in work/run (made unless there), and the setup timings."""
    data, run, logs = work / "data", work / "run", work / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    timings: dict[str, dict[str, float]] = {}
    if (run / "results.json").exists() and (run / "judgments.jsonl").exists():
        return run, timings
    with FakeOpenAIServer(FakeConfig(reply_fn=reply)) as srv:
        timings.update(synth_and_generate(srv, data, run, logs, args))
        timings["judge"] = run_measured(
            kb(
                "score",
                str(run),
                "--judge",
                f"openai:{JUDGE_MODEL}",
                "--judge-base-url",
                srv.url,
                "--no-cache",
                "--judge-concurrency",
                str(args.concurrency),
                "--no-progress",
            ),
            logs / "judge.log",
        )
    return run, timings


def open_once(page: Path) -> dict[str, Any]:
    """One fresh headless Chromium opening `page`: time-to-interactive and what it shows."""
    with Browser(chromium_path()) as b:
        t0 = time.perf_counter()
        b.send("Page.navigate", session=True, url=page.as_uri())
        while True:  # a script answers only once the main thread is free
            try:
                ready = b.js(
                    f"document.readyState === 'complete' && ({READY} !== null || !document.querySelector('script[type=\"application/octet-stream\"]'))"
                )
            except RuntimeError:  # the navigation replaced the context mid-evaluation
                ready = False
            if ready:
                break
            time.sleep(POLL_S)
        wall = time.perf_counter() - t0
        return {
            "interactive_s": wall,
            "load_event_end_ms": b.js(NAV),
            "items_ready_ms": b.js(READY),
            "rows_shown": b.js(SHOWN),
            "console_errors": list(b.console),
        }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--dialogues", type=int, default=22_080)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--concurrency", type=int, default=64, help="requests in flight during setup")
    ap.add_argument(
        "--keep",
        metavar="DIR",
        help="work in DIR and keep it; a scored run already there is reused",
    )
    ap.add_argument(
        "--repeats",
        type=int,
        default=3,
        help="fresh browsers opening the page (min and max reported)",
    )
    ap.add_argument("--redact", action="store_true", help="write the report with --redact")
    ap.add_argument("--report", metavar="FILE", help="measure this page instead of writing one")
    ap.add_argument("--json", metavar="OUT", help="also write the numbers as JSON here")
    args = ap.parse_args(argv)
    if chromium_path() is None:
        raise SystemExit("no chromium on PATH (apt-get install -y chromium)")
    if args.keep:
        return bench(Path(args.keep), args)
    with tempfile.TemporaryDirectory(prefix="kardiabench-bench-report-") as tmp:
        return bench(Path(tmp), args)


def bench(work: Path, args: argparse.Namespace) -> int:
    work.mkdir(parents=True, exist_ok=True)
    out: dict[str, Any] = {
        "machine": f"{platform.node()}, {os.cpu_count()} CPUs, Python {platform.python_version()}",
        "load_average": os.getloadavg()[0],
    }
    print(f"machine: {out['machine']}, load average {out['load_average']:.1f}", flush=True)
    if args.report:
        page = Path(args.report)
    else:
        run, out["setup"] = setup(work, args)
        page = work / ("report-redacted.html" if args.redact else "report.html")
        out["write"] = run_measured(
            kb("report", str(run), "--output", str(page), *(["--redact"] if args.redact else [])),
            work / "report.log",
        )
        out["n_items"] = json.loads((run / "results.json").read_text())["data"]["n_items"]
        from kardiabench.report import embedded_items

        out["items_json_bytes"] = len(
            json.dumps(
                embedded_items(page.read_text(encoding="utf-8")), ensure_ascii=False
            ).encode()
        )
    out["bytes"] = page.stat().st_size
    out["opens"] = [open_once(page) for _ in range(args.repeats)]
    walls = [o["interactive_s"] for o in out["opens"]]
    out["ok"] = (
        out["bytes"] < TARGET_BYTES
        and max(walls) < TARGET_S
        and not any(o["console_errors"] for o in out["opens"])
    )
    for name, m in out.get("setup", {}).items():
        print(
            f"setup {name:<9} {m['wall_s']:6.1f} s wall / {m['cpu_s']:6.1f} s CPU  {m['peak_mb']:5.0f} MiB"
        )
    if "write" in out:
        w = out["write"]
        print(
            f"write report: {w['wall_s']:.1f} s wall / {w['cpu_s']:.1f} s CPU, {w['peak_mb']:.0f} MiB; {out['n_items']} items, "
            f"{out['items_json_bytes'] / 1e6:.1f} MB of them as JSON"
        )
    print(f"size: {out['bytes'] / 1e6:.2f} MB (target < {TARGET_BYTES / 1e6:.0f} MB)")
    print(
        f"time-to-interactive over {args.repeats} fresh browser(s): {min(walls):.2f}–{max(walls):.2f} s (target < {TARGET_S:.0f} s); "
        f"in-page load event {_ms(out['opens'], 'load_event_end_ms')} ms, items-ready {_ms(out['opens'], 'items_ready_ms')} ms; "
        f"rows shown {out['opens'][0]['rows_shown']}"
    )
    for o in out["opens"]:
        for e in o["console_errors"]:
            print(f"PROBLEM: console error: {e}")
    print("ok" if out["ok"] else "MISSED")
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=2) + "\n", encoding="utf-8")
    return 0 if out["ok"] else 1


def _ms(opens: list[dict[str, Any]], key: str) -> str:
    return ", ".join("–" if o[key] is None else f"{o[key]:.0f}" for o in opens)


if __name__ == "__main__":
    sys.exit(main())
