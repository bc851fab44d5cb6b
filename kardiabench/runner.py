"""Run many chat requests against one model: cache first, then bounded concurrency, live progress.

Used for generation and for judging alike. Every finished request is handed to `on_result` at once
(the caller appends it to its JSONL file) and stored in the cache, so a crash loses only the
requests in flight and the same call again resumes where it stopped.
"""

from __future__ import annotations

import asyncio
import logging
import sys
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from itertools import accumulate
from typing import TYPE_CHECKING

from kardiabench.cache import Cache, request_key
from kardiabench.models.base import (
    ChatModel,
    FatalModelError,
    Generation,
    Job,
    ModelError,
)
from kardiabench.models.pricing import BATCH_PRICE_FACTOR

if TYPE_CHECKING:
    from kardiabench.models.openai_batch import BatchJob

OnResult = Callable[[Job, "Generation | ModelError", bool], None]


@dataclass(frozen=True, slots=True)
class Usage:
    """Tokens, cost and failed requests: what the progress bar ends on and the summary line after
    it says, both from `text()`, so the two always agree."""

    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost_usd: float | None = 0.0  # None once any request had no known price
    failed: int = 0

    def __add__(self, other: Usage) -> Usage:
        cost = (
            None
            if self.cost_usd is None or other.cost_usd is None
            else self.cost_usd + other.cost_usd
        )
        return Usage(
            self.prompt_tokens + other.prompt_tokens,
            self.completion_tokens + other.completion_tokens,
            cost,
            self.failed + other.failed,
        )

    def text(self) -> str:
        cost = "unknown" if self.cost_usd is None else f"${self.cost_usd:.4f}"
        return f"tokens in {self.prompt_tokens:,} out {self.completion_tokens:,}, cost {cost}, {self.failed} failed"


@dataclass
class RunStats:
    total: int = 0
    cached: int = 0
    done: int = 0
    failed: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost_usd: float | None = 0.0  # None once any request had no known price
    wall_s: float = 0.0
    generated_tokens: int = 0  # completion tokens of requests answered now (not from the cache)
    pad_tokens_saved: int = 0  # padding that length-ordered batches avoided (padded engines)
    failed_keys: list[str] = field(default_factory=list)
    served_models: Counter = field(default_factory=Counter)  # served model name → replies

    def usage(self) -> Usage:
        return Usage(self.prompt_tokens, self.completion_tokens, self.cost_usd, self.failed)

    def add_usage(self, gen: Generation, cost: float | None) -> None:
        if gen.served_model:
            self.served_models[gen.served_model] += 1
        self.prompt_tokens += gen.prompt_tokens
        self.completion_tokens += gen.completion_tokens
        if cost is None:
            self.cost_usd = None
        elif self.cost_usd is not None:
            self.cost_usd += cost


class BudgetExceeded(Exception):
    """The spending limit was reached; finished work is saved and the same command resumes."""


def request_cost(model: ChatModel, gen: Generation) -> float | None:
    price = getattr(model, "cost", None)
    usd = price(gen.prompt_tokens, gen.completion_tokens) if price else 0.0
    return usd * BATCH_PRICE_FACTOR if usd is not None and gen.batch else usd


class _Progress:
    """tqdm bar with tokens, cost and failures in the postfix (`Usage.text`, added to `before`:
    earlier rounds of the same work), redrawn at most twice a second and once more on close, so
    the bar ends on the numbers of the summary line."""

    def __init__(self, total: int, desc: str, enabled: bool, before: Usage | None = None):
        self.bar = None
        self.before = before or Usage()
        if enabled:
            from tqdm.auto import tqdm

            self.bar = tqdm(total=total, desc=desc, unit="it", dynamic_ncols=True, smoothing=0.1)
        self._last = 0.0

    def update(self, n: int, stats: RunStats) -> None:
        if self.bar is None:
            return
        self.bar.update(n)
        now = time.monotonic()
        if now - self._last > 0.5:
            self._last = now
            self.bar.set_postfix_str((self.before + stats.usage()).text(), refresh=False)

    def note(self, text: str, warning: bool = False) -> None:
        """One console line (a batch's status): above the bar when there is one, so the bar is
        redrawn intact below it; else a log line the CLI shows."""
        if self.bar is not None:
            self.bar.write(text, file=sys.stderr)
        else:
            logging.getLogger("kardiabench").log(logging.WARNING if warning else logging.INFO, text)

    def close(self, stats: RunStats) -> None:
        if self.bar is not None:
            self.bar.set_postfix_str((self.before + stats.usage()).text(), refresh=False)
            self.bar.close()  # draws the bar a last time, with the final postfix


def padding(lengths: Sequence[int], size: int) -> int:
    """Pad tokens of batches of `size` taken in this order, each padded to its longest prompt."""
    return batch_padding(chunk(list(lengths), size))


def batch_padding(batches: Sequence[Sequence[int]]) -> int:
    return sum(len(b) * max(b) - sum(b) for b in batches)


def chunk(items: list, size: int) -> list[list]:
    return [items[i : i + size] for i in range(0, len(items), size)]


def length_batches(
    model: ChatModel, pending: list[tuple[Job, str]], size: int
) -> tuple[list[list[tuple[Job, str]]], int]:
    """Batches of `pending` in prompt-length order (longest first) and the pad tokens that saves
    over batches in the given order, for a model whose batches are padded (`batch_length`); the
    given order where that is no better (any other model, batches of one)."""
    plain = chunk(pending, size)
    if size < 2 or len(pending) < 2:
        return plain, 0
    lengths = [model.batch_length(job.request) for job, _ in pending]
    if None in lengths:
        return plain, 0
    order = sorted(range(len(pending)), key=lambda i: -lengths[i])  # type: ignore[operator]
    cuts = sorted_cuts([lengths[i] for i in order], size)  # type: ignore[misc]
    batches = [[pending[i] for i in order[a:b]] for a, b in cuts]
    saved = padding(lengths, size) - batch_padding(
        [[lengths[i] for i in order[a:b]] for a, b in cuts]
    )  # type: ignore[misc]
    return (batches, saved) if saved > 0 else (plain, 0)


def sorted_cuts(desc: Sequence[int], size: int) -> list[tuple[int, int]]:
    """(start, end) of the batches of a longest-first list: full batches, and the one short batch
    (n % size) placed where it adds the least padding. A batch costs len × its first length."""
    n, r = len(desc), len(desc) % size
    m = n // size
    if not r:
        return [(a, a + size) for a in range(0, n, size)]

    # heads of full batches before it
    before = list(accumulate((desc[j * size] for j in range(m)), initial=0))
    # ... after it
    after = list(accumulate((desc[r + j * size] for j in reversed(range(m))), initial=0))[::-1]
    # the short batch after k full ones
    k = min(range(m + 1), key=lambda k: size * (before[k] + after[k]) + r * desc[k * size])
    starts = (
        [j * size for j in range(k)] + [k * size] + [k * size + r + j * size for j in range(m - k)]
    )
    return [(a, starts[i + 1] if i + 1 < len(starts) else n) for i, a in enumerate(starts)]


async def run_jobs(
    model: ChatModel,
    jobs: Sequence[Job],
    *,
    on_result: OnResult,
    cache: Cache | None = None,
    concurrency: int | None = None,
    progress: bool = True,
    desc: str = "generate",
    budget_usd: float | None = None,
    batch: BatchJob | None = None,
    sort_by_length: bool = True,
    shown_before: Usage | None = None,
) -> RunStats:
    """Answer every job once. Raises FatalModelError (after stopping all workers) when the model
    says no request can succeed; everything finished before that has been handed to on_result.
    With `budget_usd`, no new request is sent once the cost so far reaches it (requests in flight
    finish), and BudgetExceeded is raised if work is left. With `batch`, the jobs not in the cache
    go first to a provider batch job; what it does not answer is sent as ordinary requests (the
    budget is checked against the batch's cost before those); a batch that outlives its timeout
    raises BatchTimeout after the answers of the others are handed on. For a model that pads its batches
    (`batch_length`), batches are formed longest prompts first unless `sort_by_length` is False;
    each result still goes to its own job. `shown_before` (earlier rounds of the same work) is
    added to the usage the progress bar shows."""
    if (
        budget_usd is not None
        and request_cost(model, Generation("", prompt_tokens=1, completion_tokens=1)) is None
    ):
        raise BudgetExceeded(
            f"a cost limit needs a price for {model.spec}; add one with --prices FILE"
        )
    t0 = time.monotonic()
    stats = RunStats(total=len(jobs))
    bar = _Progress(len(jobs), desc, progress, shown_before)
    identity = model.identity()
    keys = (
        [j.cache_key or request_key(identity, j.request) for j in jobs]
        if cache is not None
        else [""] * len(jobs)
    )
    hits = cache.get_many(keys) if cache is not None else {}

    pending: list[tuple[Job, str]] = []
    for job, key in zip(jobs, keys, strict=True):
        gen = hits.get(key)
        if gen is None:
            pending.append((job, key))
            continue
        stats.cached += 1
        stats.done += 1
        stats.add_usage(gen, request_cost(model, gen))
        on_result(job, gen, True)
        bar.update(1, stats)

    def finish(job: Job, key: str, out: Generation | ModelError) -> None:
        if isinstance(out, Generation):
            stats.done += 1
            stats.generated_tokens += out.completion_tokens
            stats.add_usage(out, request_cost(model, out))
            if cache is not None:
                cache.put(key, out)
        else:
            stats.failed += 1
            stats.failed_keys.append(job.key)
        on_result(job, out, False)
        bar.update(1, stats)

    if batch is not None and pending:
        from kardiabench.models.openai_batch import BatchTimeout

        stuck = None
        try:
            answered = await batch.run_batch(model, [job for job, _ in pending], note=bar.note)
        # keep what other batches answered; the stuck one is polled on a rerun
        except BatchTimeout as e:
            answered, stuck = e.answers, e
        for job, key in pending:
            if job.key in answered:
                finish(job, key, answered[job.key])
        # never sent as ordinary requests too: the batch may still answer them
        if stuck is not None:
            bar.close(stats)
            raise stuck
        pending = [(job, key) for job, key in pending if job.key not in answered]

    size = max(1, model.max_batch_size)
    if sort_by_length:
        batches, stats.pad_tokens_saved = length_batches(model, pending, size)
    else:
        batches = chunk(pending, size)
    queue: asyncio.Queue = asyncio.Queue()
    for b in batches:
        queue.put_nowait(b)
    n_workers = max(1, min(concurrency or model.max_concurrency, len(batches) or 1))

    def over_budget() -> bool:
        return (
            budget_usd is not None and stats.cost_usd is not None and stats.cost_usd >= budget_usd
        )

    async def worker() -> None:
        while not over_budget():
            try:
                group = queue.get_nowait()
            except asyncio.QueueEmpty:
                return
            try:
                outs = await model.generate([j.request for j, _ in group])
            except FatalModelError:
                raise
            except Exception as e:  # an adapter bug must not lose the other items
                outs = [ModelError(f"{type(e).__name__}: {e}")] * len(group)
            for (job, key), out in zip(group, outs, strict=True):
                finish(job, key, out)

    workers = [asyncio.create_task(worker()) for _ in range(n_workers)]
    try:
        await asyncio.gather(*workers)
    except BaseException:
        for w in workers:
            w.cancel()
        await asyncio.gather(*workers, return_exceptions=True)
        raise
    finally:
        bar.close(stats)
        stats.wall_s = time.monotonic() - t0
    left = stats.total - stats.done - stats.failed
    if left and over_budget():
        raise BudgetExceeded(
            f"cost limit reached: ${stats.cost_usd:.4f} of ${budget_usd:.4f} spent, {stats.done} of {stats.total} "
            f"requests done, {left} not sent. Finished work is saved; raise the limit and run the same command to resume."
        )
    return stats
