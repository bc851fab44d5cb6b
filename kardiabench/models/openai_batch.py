"""Provider batch APIs (OpenAI's `/v1/files` + `/v1/batches`): half the price, answers within 24 h.

`--batch` sends a stage's requests as one batch job instead of one by one: a JSONL of requests is
uploaded (purpose "batch"), a batch is created on /v1/chat/completions with a 24 h window, polled
(the interval grows ×1.5 up to `poll_max`), and its output file is read back and matched to the
jobs by `custom_id` (= the job key: the item id for generation, item + repeat for a judge).

Nothing is submitted twice: the batch id is written to DIR/batches.json (with its purpose, its
custom ids with a hash of each request body, and its last status) right after the batch is created and BEFORE polling, so a killed
process run again polls the same job. A job that an earlier batch of the same purpose already
holds (same key, same request) is never put in a new batch: what that batch did not answer (its error file, an expired
or failed job) goes back to the caller, which sends it as ordinary requests.

An output file is read line by line and trusted only where it is unambiguous: a damaged line (not
JSON, no custom_id, a response that does not parse) is set aside in DIR/batch_output.rejected, every
line of a custom_id that appears twice is dropped (either could be another request's answer), and a
custom_id the batch never held is ignored; each is counted in the batch's record (`output_problems`)
and on the console, and the requests concerned go back to the caller like unanswered ones.

Polling is bounded (`timeout`, --batch-timeout): a batch that has not ended by then raises
BatchTimeout naming it and its status; it stays recorded, so the same command run again polls it.
Each status change is a console line (through the caller's `note`, which keeps a progress bar intact).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import os
import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from kardiabench.jsonl import REJECTED, parse_object_line
from kardiabench.models.base import Generation, Job
from kardiabench.models.openai_api import OpenAIChatModel, _httpx_module
from kardiabench.runs import BATCHES, RunDir, now

log = logging.getLogger(__name__)
_console = logging.getLogger("kardiabench")  # the lines the CLI shows (without a progress bar)
Note = Callable[..., None]  # note(text, warning=False): one console line

# first poll interval in seconds (default 10; it grows ×1.5 up to 300)
POLL_ENV = "KARDIABENCH_BATCH_POLL"
ENDPOINT = "/v1/chat/completions"
# a batch in one of these never changes again
ENDED = ("completed", "failed", "expired", "cancelled")
UNANSWERED = ("failed", "expired", "cancelled")  # may still have a partial output file (expired)
# damaged lines of batch output files: BATCH_ID:LINE<TAB>line
OUTPUT_REJECTED = "batch_output" + REJECTED


class BatchUnavailable(Exception):
    """The endpoint refused the batch API (no /v1/files or /v1/batches): send ordinary requests."""


class BatchTimeout(Exception):
    """A batch did not end within the timeout. It stays recorded in batches.json, so the same
    command run again polls it; `answers` holds what other batches answered meanwhile (the
    caller keeps them)."""

    def __init__(self, message: str, answers: dict[str, Generation]) -> None:
        super().__init__(message)
        self.answers = answers


class _Stuck(Exception):
    """One batch still running at the deadline (run_batch gathers them into BatchTimeout)."""


def _log_note(text: str, warning: bool = False) -> None:
    _console.log(logging.WARNING if warning else logging.INFO, text)


@dataclass
class BatchJob:
    """The batch part of one stage: its run folder (for batches.json) and its purpose
    ("generation" or "judge:SPEC"), which keeps a judge's batches apart from the generator's."""

    run: RunDir
    purpose: str
    poll_interval: float = field(default_factory=lambda: float(os.environ.get(POLL_ENV) or 10.0))
    poll_max: float = 300.0
    # seconds this command waits for its batches to end (None: no bound)
    timeout: float | None = None

    def records(self) -> list[dict[str, Any]]:
        path = self.run.path / BATCHES
        return json.loads(path.read_text(encoding="utf-8")) if path.exists() else []

    def _save(self, records: list[dict[str, Any]]) -> None:
        self.run.write_json(BATCHES, records)

    async def run_batch(
        self, model: Any, jobs: Sequence[Job], note: Note = _log_note
    ) -> dict[str, Generation]:
        """Answers by job key for the jobs a batch answered; the caller sends the rest as ordinary
        requests. BatchTimeout (carrying the answers got) when a batch has not ended in `timeout`."""
        if not isinstance(model, OpenAIChatModel):
            from kardiabench.models import SpecError

            raise SpecError(
                f"--batch needs an openai: model at a single --base-url, not {model.spec}"
            )
        wanted = {j.key: _sha(model._body(j.request)) for j in jobs}

        def same(
            rec: dict[str, Any],
        ) -> set[str]:  # the record's requests that are these jobs, unchanged
            return {k for k, h in rec["requests"].items() if wanted.get(k) == h}

        records = self.records()
        mine = [r for r in records if r["purpose"] == self.purpose and same(r)]
        covered = {k for r in mine for k in same(r)}
        answers: dict[str, Generation] = {}
        stuck: list[dict[str, Any]] = []
        deadline = None if self.timeout is None else time.monotonic() + self.timeout
        hx = _httpx_module()
        headers = {"Authorization": f"Bearer {model._api_key}"}
        async with hx.AsyncClient(
            base_url=model.endpoint + "/",
            params=model.query,
            headers=headers,
            timeout=model.timeout,
        ) as http:
            try:
                for rec in mine:
                    if rec["status"] not in ENDED:
                        note(
                            f"batch {rec['id']} ({self.purpose}): recorded as {rec['status']} in {self.run.path / BATCHES}; polling it"
                        )
                    try:
                        got = await self._collect(http, model, rec, records, deadline, note)
                    except _Stuck:
                        stuck.append(rec)
                        continue
                    answers.update({k: g for k, g in got.items() if k in same(rec)})
                new = [j for j in jobs if j.key not in covered]
                if new:
                    rec = await self._submit(http, model, new, records, note)
                    try:
                        answers.update(
                            await self._collect(http, model, rec, records, deadline, note)
                        )
                    except _Stuck:
                        stuck.append(rec)
            except (BatchUnavailable, hx.HTTPError) as e:
                log.warning(
                    "batch API unavailable at %s (%s): sending ordinary requests",
                    model.shown_url,
                    model._scrub(str(e)),
                )
        if stuck:
            ids = ", ".join(f"{r['id']} ({r['status']})" for r in stuck)
            raise BatchTimeout(
                f"batch {ids} has not ended after {self.timeout:g} s (--batch-timeout); it stays recorded "
                f"in {self.run.path / BATCHES} and finished work is saved: run the same command again to "
                "go on polling it",
                answers,
            )
        return answers

    async def _submit(
        self,
        http: Any,
        model: OpenAIChatModel,
        jobs: Sequence[Job],
        records: list[dict[str, Any]],
        note: Note,
    ) -> dict[str, Any]:
        lines = [
            {"custom_id": j.key, "method": "POST", "url": ENDPOINT, "body": model._body(j.request)}
            for j in jobs
        ]
        data = "".join(json.dumps(x, ensure_ascii=False) + "\n" for x in lines).encode()
        upload = await _call(
            http,
            "POST",
            "files",
            files={"file": ("batch.jsonl", data, "application/jsonl")},
            data={"purpose": "batch"},
        )
        batch = await _call(
            http,
            "POST",
            "batches",
            json={"input_file_id": upload["id"], "endpoint": ENDPOINT, "completion_window": "24h"},
        )
        rec = {
            "id": batch["id"],
            "purpose": self.purpose,
            "input_file_id": upload["id"],
            "status": batch.get("status", "validating"),
            "created": now(),
            "requests": {x["custom_id"]: _sha(x["body"]) for x in lines},
        }
        records.append(rec)
        # before polling: a killed process polls this job again, never submits twice
        self._save(records)
        note(
            f"batch {rec['id']} ({self.purpose}): submitted, {len(jobs)} requests; {rec['status']}"
        )
        return rec

    async def _collect(
        self,
        http: Any,
        model: OpenAIChatModel,
        rec: dict[str, Any],
        records: list[dict[str, Any]],
        deadline: float | None,
        note: Note,
    ) -> dict[str, Generation]:
        """Poll until the batch ends (_Stuck once `deadline` has passed), then read its output file."""
        delay = self.poll_interval
        while rec["status"] not in ENDED or (
            rec["status"] == "completed" and "output_file_id" not in rec
        ):
            try:
                batch = await _call(http, "GET", f"batches/{rec['id']}")
            except BatchUnavailable:
                raise
            except Exception as e:  # a transient failure while polling: keep the job, poll again
                note(
                    f"warning: batch {rec['id']}: poll failed ({model._scrub(str(e))}); retrying",
                    warning=True,
                )
                batch = {"status": rec["status"]}
            if batch["status"] != rec["status"] or batch.get("output_file_id") != rec.get(
                "output_file_id"
            ):
                if batch["status"] != rec["status"]:
                    note(f"batch {rec['id']} ({self.purpose}): {batch['status']}")
                rec.update(
                    status=batch["status"],
                    output_file_id=batch.get("output_file_id"),
                    error_file_id=batch.get("error_file_id"),
                )
                self._save(records)
            if rec["status"] in ENDED:
                break
            left = None if deadline is None else deadline - time.monotonic()
            if left is not None and left <= 0:
                raise _Stuck(rec["id"])
            await asyncio.sleep(delay if left is None else min(delay, left))
            delay = min(self.poll_max, delay * 1.5)
        answers = await self._read_output(http, model, rec, records, note)
        left = len(rec["requests"]) - len(answers)
        note(
            f"batch {rec['id']} ({self.purpose}) {rec['status']}: {len(answers)} answered, {left} left for ordinary requests"
        )
        return answers

    async def _read_output(
        self,
        http: Any,
        model: OpenAIChatModel,
        rec: dict[str, Any],
        records: list[dict[str, Any]],
        note: Note,
    ) -> dict[str, Generation]:
        """The answers of the output file's unambiguous lines for requests of this batch; damaged,
        duplicated and unknown lines are counted in rec["output_problems"] and left unanswered."""
        file_id = rec.get("output_file_id")
        if not file_id:
            return {}
        resp = await http.get(f"files/{file_id}/content")
        resp.raise_for_status()
        damaged: list[tuple[int, bytes, str]] = []
        by_id: dict[str, list[tuple[int, bytes, dict[str, Any]]]] = defaultdict(list)
        unknown = 0
        for lineno, raw in enumerate(resp.content.split(b"\n"), start=1):
            if not raw.strip():
                continue
            row, why = parse_object_line(raw, ("custom_id",))
            if row is None:
                damaged.append((lineno, raw, why))
            elif str(row["custom_id"]) not in rec["requests"]:
                unknown += 1
            else:
                by_id[str(row["custom_id"])].append((lineno, raw, row))
        answers: dict[str, Generation] = {}
        duplicates = {cid: rows for cid, rows in by_id.items() if len(rows) > 1}
        for cid, rows in by_id.items():
            if cid in duplicates:
                continue
            [(lineno, raw, row)] = rows
            response = row.get("response")
            if not isinstance(response, dict):
                damaged.append((lineno, raw, "no response object"))
                continue
            if response.get("status_code") != 200:
                continue  # a failed request, as in the error file: sent again as an ordinary request
            gen = model._parse(json.dumps(response.get("body")).encode())
            if not isinstance(gen, Generation):
                damaged.append((lineno, raw, "a response body that does not parse"))
                continue
            gen.batch = True
            answers[cid] = gen
        if damaged or duplicates or unknown:
            self._report(rec, records, sorted(damaged), duplicates, unknown, note)
        return answers

    def _report(
        self,
        rec: dict[str, Any],
        records: list[dict[str, Any]],
        damaged: list[tuple[int, bytes, str]],
        duplicates: dict[str, list],
        unknown: int,
        note: Note,
    ) -> None:
        """Record and show what an output file held that was not used; the damaged lines' bytes go
        to batch_output.rejected once (a rerun reads the same file again)."""
        problems = {
            "damaged": len(damaged),
            "duplicates": sum(len(r) for r in duplicates.values()),
            "unknown": unknown,
        }
        first = rec.get("output_problems") is None
        rec["output_problems"] = problems
        self._save(records)
        rejected = self.run.path / OUTPUT_REJECTED
        if first and damaged:
            with rejected.open("ab") as fh:
                fh.writelines(
                    b"%s:%d\t%s\n" % (rec["id"].encode(), n, raw) for n, raw, _ in damaged
                )
        parts = []
        if damaged:
            where = ", ".join(f"line {n}: {why}" for n, _, why in damaged[:5]) + (
                ", …" if len(damaged) > 5 else ""
            )
            parts.append(f"{len(damaged)} damaged line(s) ({where}) set aside in {rejected}")
        if duplicates:
            parts.append(
                f"{problems['duplicates']} line(s) sharing {len(duplicates)} custom_id(s), none of them used"
            )
        if unknown:
            parts.append(f"{unknown} line(s) for custom_ids it never held, ignored")
        note(
            f"warning: batch {rec['id']}: its output file has {'; '.join(parts)}; those requests are sent again "
            "as ordinary requests",
            warning=True,
        )


def _sha(body: dict[str, Any]) -> str:
    """What a request asked: a batch made for other predictions or settings is never reused."""
    return hashlib.sha256(
        json.dumps(body, sort_keys=True, ensure_ascii=False).encode()
    ).hexdigest()[:16]


async def _call(http: Any, method: str, path: str, **kw: Any) -> dict[str, Any]:
    """One batch-API call's JSON; BatchUnavailable when the endpoint does not offer it."""
    resp = await http.request(method, path, **kw)
    if resp.status_code in (404, 405, 501):
        raise BatchUnavailable(f"HTTP {resp.status_code} on {method} /{path}")
    resp.raise_for_status()
    return resp.json()
