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
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from kardiabench.models.base import Generation
from kardiabench.models.openai_api import OpenAIChatModel, _httpx_module
from kardiabench.rundir import BATCHES, now

if TYPE_CHECKING:
    from kardiabench.rundir import RunDir
    from kardiabench.runner import Job

log = logging.getLogger(__name__)

POLL_ENV = "KARDIABENCH_BATCH_POLL"  # first poll interval in seconds (default 10; it grows ×1.5 up to 300)
ENDPOINT = "/v1/chat/completions"
ENDED = ("completed", "failed", "expired", "cancelled")  # a batch in one of these never changes again
UNANSWERED = ("failed", "expired", "cancelled")  # may still have a partial output file (expired)


class BatchUnavailable(Exception):
    """The endpoint refused the batch API (no /v1/files or /v1/batches): send ordinary requests."""


@dataclass
class BatchJob:
    """The batch part of one stage: its run folder (for batches.json) and its purpose
    ("generation" or "judge:SPEC"), which keeps a judge's batches apart from the generator's."""

    run: RunDir
    purpose: str
    poll_interval: float = field(default_factory=lambda: float(os.environ.get(POLL_ENV) or 10.0))
    poll_max: float = 300.0

    def records(self) -> list[dict[str, Any]]:
        path = self.run.path / BATCHES
        return json.loads(path.read_text(encoding="utf-8")) if path.exists() else []

    def _save(self, records: list[dict[str, Any]]) -> None:
        self.run.write_json(BATCHES, records)

    async def run_batch(self, model: Any, jobs: Sequence[Job]) -> dict[str, Generation]:
        """Answers by job key for the jobs a batch answered; the caller sends the rest as ordinary requests."""
        if not isinstance(model, OpenAIChatModel):
            from kardiabench.models import SpecError

            raise SpecError(f"--batch needs an openai: model at a single --base-url, not {model.spec}")
        wanted = {j.key: _sha(model._body(j.request)) for j in jobs}

        def same(rec: dict[str, Any]) -> set[str]:  # the record's requests that are these jobs, unchanged
            return {k for k, h in rec["requests"].items() if wanted.get(k) == h}

        records = self.records()
        mine = [r for r in records if r["purpose"] == self.purpose and same(r)]
        covered = {k for r in mine for k in same(r)}
        answers: dict[str, Generation] = {}
        hx = _httpx_module()
        headers = {"Authorization": f"Bearer {model._api_key}"}
        async with hx.AsyncClient(base_url=model.endpoint + "/", params=model.query, headers=headers, timeout=model.timeout) as http:
            try:
                for rec in mine:
                    got = await self._collect(http, model, rec, records)
                    answers.update({k: g for k, g in got.items() if k in same(rec)})
                new = [j for j in jobs if j.key not in covered]
                if new:
                    rec = await self._submit(http, model, new, records)
                    answers.update(await self._collect(http, model, rec, records))
            except (BatchUnavailable, hx.HTTPError) as e:
                log.warning("batch API unavailable at %s (%s): sending ordinary requests", model.shown_url, model._scrub(str(e)))
        return answers

    async def _submit(self, http: Any, model: OpenAIChatModel, jobs: Sequence[Job], records: list[dict[str, Any]]) -> dict[str, Any]:
        lines = [{"custom_id": j.key, "method": "POST", "url": ENDPOINT, "body": model._body(j.request)} for j in jobs]
        data = "".join(json.dumps(x, ensure_ascii=False) + "\n" for x in lines).encode()
        upload = await _call(http, "POST", "files", files={"file": ("batch.jsonl", data, "application/jsonl")}, data={"purpose": "batch"})
        batch = await _call(http, "POST", "batches", json={"input_file_id": upload["id"], "endpoint": ENDPOINT, "completion_window": "24h"})
        rec = {"id": batch["id"], "purpose": self.purpose, "input_file_id": upload["id"], "status": batch.get("status", "validating"),
               "created": now(), "requests": {x["custom_id"]: _sha(x["body"]) for x in lines}}  # fmt: skip
        records.append(rec)
        self._save(records)  # before polling: a killed process polls this job again, never submits twice
        log.info("batch %s submitted: %d requests (%s)", rec["id"], len(jobs), self.purpose)
        return rec

    async def _collect(self, http: Any, model: OpenAIChatModel, rec: dict[str, Any], records: list[dict[str, Any]]) -> dict[str, Generation]:
        """Poll until the batch ends, then read its output file."""
        delay = self.poll_interval
        while rec["status"] not in ENDED or (rec["status"] == "completed" and "output_file_id" not in rec):
            try:
                batch = await _call(http, "GET", f"batches/{rec['id']}")
            except BatchUnavailable:
                raise
            except Exception as e:  # a transient failure while polling: keep the job, poll again
                log.warning("batch %s: poll failed (%s); retrying", rec["id"], model._scrub(str(e)))
                batch = {"status": rec["status"]}
            if batch["status"] != rec["status"] or batch.get("output_file_id") != rec.get("output_file_id"):
                rec.update(status=batch["status"], output_file_id=batch.get("output_file_id"), error_file_id=batch.get("error_file_id"))
                self._save(records)
            if rec["status"] in ENDED:
                break
            await asyncio.sleep(delay)
            delay = min(self.poll_max, delay * 1.5)
        answers = await self._read_output(http, model, rec.get("output_file_id"))
        left = len(rec["requests"]) - len(answers)
        log.info("batch %s %s: %d answered, %d left for ordinary requests", rec["id"], rec["status"], len(answers), left)
        return answers

    async def _read_output(self, http: Any, model: OpenAIChatModel, file_id: str | None) -> dict[str, Generation]:
        if not file_id:
            return {}
        resp = await http.get(f"files/{file_id}/content")
        resp.raise_for_status()
        answers: dict[str, Generation] = {}
        for line in resp.text.splitlines():
            row = json.loads(line) if line.strip() else {}
            response = row.get("response") or {}
            if response.get("status_code") != 200 or not isinstance(response.get("body"), dict):
                continue
            gen = model._parse(json.dumps(response["body"]).encode())
            if isinstance(gen, Generation):
                gen.batch = True
                answers[str(row.get("custom_id"))] = gen
        return answers


def _sha(body: dict[str, Any]) -> str:
    """What a request asked: a batch made for other predictions or settings is never reused."""
    return hashlib.sha256(json.dumps(body, sort_keys=True, ensure_ascii=False).encode()).hexdigest()[:16]


async def _call(http: Any, method: str, path: str, **kw: Any) -> dict[str, Any]:
    """One batch-API call's JSON; BatchUnavailable when the endpoint does not offer it."""
    resp = await http.request(method, path, **kw)
    if resp.status_code in (404, 405, 501):
        raise BatchUnavailable(f"HTTP {resp.status_code} on {method} /{path}")
    resp.raise_for_status()
    return resp.json()
