"""The `kardiabench leaderboard add|build|push` commands: arguments in, library calls, one line out."""

from __future__ import annotations

import argparse


def run(args: argparse.Namespace, log) -> int:
    if args.leaderboard_command == "add":
        from kardiabench.leaderboard.entries import add_run

        for d in args.run_dirs:
            entry = add_run(d, args.leaderboard)
            log(f"added {entry.model} ({d}) → {args.leaderboard}/entries/{entry.entry_id}.json")
        return 0
    if args.leaderboard_command == "build":
        from kardiabench.leaderboard.build import build

        result = build(args.leaderboard, redact=args.redact, n_resamples=args.resamples)
        for note in result.notes:
            log(note)
        log(f"built {len(result.files)} files → {args.leaderboard}/ (open {args.leaderboard}/site/index.html)")
        return 0
    from kardiabench.leaderboard.push import push

    url = push(args.leaderboard, args.repo, private=args.private, log=log)
    log(f"pushed → {url}")
    return 0
