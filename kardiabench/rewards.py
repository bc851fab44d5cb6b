"""GRPO reward functions, all with TRL's signature `(completions, **dataset_columns) -> list[float | None]`.

`format_reward` and `emotion_reward` are pure (kardiabench/scoring/rewards.py). `rubric_reward`
is the I/O side: it asks the benchmark's rubric judge about each completion through the project's
own adapters, cache and runner, with the benchmark's rubric file, prompt, request settings, repair
rounds and verdict parser, so a completion earns exactly the normalised mean of the scores that
`kardiabench score --judge` would record for it (mean of (s - 1) / 4 over the five dimensions).

An unscored verdict (no response span, invalid judge output after the repairs, a failed request)
gives None, never 0: TRL then leaves that component out of the completion's weighted sum. Such
verdicts are counted in `RubricReward.stats` and, during training, logged per step through TRL's
`log_metric` (rubric/unscored).
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from kardiabench.cache import Cache, default_cache_path
from kardiabench.judging import build_request, repair_request
from kardiabench.models import ChatModel, ModelOptions, load_model
from kardiabench.models.base import ChatRequest, Generation, Job, ModelError
from kardiabench.records import Item, Prediction
from kardiabench.runner import run_jobs
from kardiabench.scoring.judge import (
    INVALID_OUTPUT,
    NO_RESPONSE,
    REQUEST_FAILED,
    JudgeConfig,
    candidate_response,
    parse_verdict,
)
from kardiabench.scoring.rewards import Completion, completion_text, emotion_reward, format_reward
from kardiabench.scoring.rubric import Rubric, load_rubric

log = logging.getLogger(__name__)

# The judge's reply limit of `kardiabench score --judge` (its --judge-max-tokens default), so the
# training judge and the evaluation judge send byte-identical requests and share cache entries.
DEFAULT_JUDGE_MAX_TOKENS = 1024
# columns a rubric reward needs at least
ITEM_COLUMNS = ("item_id", "history", "gold", "user_message")
_Pending = tuple[int, ChatRequest, list[tuple[str, str]]]


class RubricReward:
    """The rubric judge as an async TRL reward function (a callable object, so it carries stats).

    `judge` is a model spec (openai:MODEL, hf:PATH, vllm:PATH) or an already built ChatModel. The
    adapter is built on first use (inside TRL's event loop), the cache opened once."""

    def __init__(
        self,
        judge: str | ChatModel,
        *,
        base_url: str | None = None,
        api_key_env: str = "OPENAI_API_KEY",
        rubric_path: str | None = None,
        cache: str | Path | None | bool = True,
        concurrency: int = 16,
        max_tokens: int = DEFAULT_JUDGE_MAX_TOKENS,
        max_repairs: int = 2,
    ) -> None:
        self.__name__ = "rubric_reward"  # TRL logs each reward under its callable's name
        self.rubric: Rubric = load_rubric(rubric_path)
        self.config = JudgeConfig(
            rubric_path=rubric_path,
            max_tokens=max_tokens,
            max_repairs=max_repairs,
            concurrency=concurrency,
        )
        self.spec = judge if isinstance(judge, str) else judge.spec
        self._model = None if isinstance(judge, str) else judge
        self._options = ModelOptions(
            base_url=base_url, api_key_env=api_key_env, concurrency=concurrency
        )
        path = default_cache_path() if cache is True else cache or None
        self._cache = Cache(path) if path else None
        self._response_format = self.rubric.response_format()
        # completions, scored, unscored, unscored:<reason>, requests
        self.stats: Counter[str] = Counter()

    @property
    def model(self) -> ChatModel:
        if self._model is None:
            self._model = load_model(self.spec, self._options)
        return self._model

    async def __call__(
        self, completions: Sequence[Completion], **columns: Any
    ) -> list[float | None]:
        items = items_from_columns(columns, len(completions))
        texts = [completion_text(c) for c in completions]
        scores = await self.score(items, texts)
        unscored = sum(s is None for s in scores)
        log_metric = columns.get("log_metric")
        if callable(log_metric):
            log_metric("rubric/unscored", float(unscored))
        if unscored:
            log.info(
                "rubric reward: %d of %d completions unscored (%s)",
                unscored,
                len(scores),
                dict(self.unscored_by_reason()),
            )
        return scores

    def unscored_by_reason(self) -> dict[str, int]:
        return {k.split(":", 1)[1]: v for k, v in self.stats.items() if k.startswith("unscored:")}

    async def score(self, items: Sequence[Item], texts: Sequence[str]) -> list[float | None]:
        """The normalised rubric score of each (item, completion text); None when unscored."""
        scores: list[float | None] = [None] * len(texts)
        pending: dict[str, _Pending] = {}  # job key → (index, first request, failures so far)
        for i, (item, text) in enumerate(zip(items, texts, strict=True)):
            self.stats["completions"] += 1
            response, _ = candidate_response(Prediction(item.item_id, self.spec, text))
            if response is None:
                self._unscored(NO_RESPONSE)
                continue
            request = build_request(
                self.rubric, item, response, self.config, response_format=self._response_format
            )
            pending[f"{i}"] = (i, request, [])

        while pending:
            jobs = [
                Job(key, repair_request(first, failures, self.rubric) if failures else first)
                for key, (_, first, failures) in pending.items()
            ]
            retry: dict[str, _Pending] = {}

            def on_result(
                job: Job, out: Generation | ModelError, cached: bool, pending=pending, retry=retry
            ) -> None:
                index, first, failures = pending[job.key]
                self.stats["requests"] += 1
                if isinstance(out, ModelError):
                    self._unscored(REQUEST_FAILED)
                    return
                verdict = parse_verdict(out.text, self.rubric.names, out.finish_reason)
                if verdict.scores is not None:
                    scores[index] = self.rubric.normalised(verdict.scores)
                    self.stats["scored"] += 1
                elif len(failures) < self.config.max_repairs:
                    retry[job.key] = (
                        index,
                        first,
                        [*failures, (out.text, verdict.error or "invalid")],
                    )
                else:
                    self._unscored(INVALID_OUTPUT)

            await run_jobs(
                self.model,
                jobs,
                on_result=on_result,
                cache=self._cache,
                concurrency=self.config.concurrency,
                progress=False,
            )
            pending = retry
        return scores

    def _unscored(self, reason: str) -> None:
        self.stats["unscored"] += 1
        self.stats[f"unscored:{reason}"] += 1

    async def aclose(self) -> None:
        if self._model is not None:
            await self._model.aclose()
        if self._cache is not None:
            self._cache.close()


def rubric_reward(judge: str | ChatModel, **options: Any) -> RubricReward:
    """An async TRL reward function scoring completions with the benchmark's rubric judge
    (options: base_url, api_key_env, rubric_path, cache, concurrency, max_tokens, max_repairs)."""
    return RubricReward(judge, **options)


def items_from_columns(columns: Mapping[str, Any], n: int) -> list[Item]:
    """The n Items a batch of reward columns describes (the dataset rows are `Item.to_dict()`)."""
    missing = [c for c in ITEM_COLUMNS if c not in columns]
    if missing:
        raise ValueError(
            f"the rubric reward needs the Item columns of the prompts (Item.to_dict()); missing: {', '.join(missing)}"
        )
    names = [k for k in Item.__dataclass_fields__ if k in columns]
    for k in names:
        if len(columns[k]) != n:
            raise ValueError(f"{n} completions but {len(columns[k])} values in column {k!r}")
    return [Item.from_dict({k: columns[k][i] for k in names}) for i in range(n)]


__all__ = ["RubricReward", "emotion_reward", "format_reward", "items_from_columns", "rubric_reward"]
