"""Stage 2: Rubric-as-Judge GRPO from the SFT model (TRL GRPOTrainer).

Rewards are the benchmark's own (kardiabench/rewards.py): format compliance, emotion exact match
and, when a judge is named, the rubric judge; TRL combines them with `reward_weights` (⅓ each by
default) and logs each one per step (rewards/<name>/mean). TRL decodes completions with
`skip_special_tokens=True`, which would delete the span markers (special tokens), so each reward
reads the completion re-decoded from its token ids with the markers kept, exactly as the `hf:`
adapter decodes at evaluation.
"""

from __future__ import annotations

import asyncio
import math
from pathlib import Path
from typing import Any

from kardiabench.models.hf import decode_keeping_span_markers, span_marker_ids
from kardiabench.records import Item
from kardiabench.rewards import emotion_reward, format_reward, rubric_reward
from kardiabench.tasks import Task
from kardiabench.train.config import TrainConfig, build_trl_args
from kardiabench.train.data import grpo_rows, load_items, to_dataset
from kardiabench.train.model import load_model_and_tokenizer, lora_config, resolve_model, save_final


def reward_functions(cfg: TrainConfig) -> list[Any]:
    """format, emotion and (with a judge) rubric, in the order of cfg.rewards() / cfg.weights()."""
    fns: list[Any] = [format_reward, emotion_reward]
    if cfg.judge:
        fns.append(
            rubric_reward(
                cfg.judge,
                base_url=cfg.judge_base_url,
                api_key_env=cfg.judge_api_key_env,
                rubric_path=cfg.rubric,
                concurrency=cfg.judge_concurrency,
                max_tokens=cfg.judge_max_tokens,
            )
        )
    return fns


def keep_span_markers(fn: Any, tokenizer: Any) -> Any:
    """`fn` reading completions decoded from `completion_ids` with the span markers kept; same
    name (TRL logs under it) and same sync/async kind. Without ids (called directly) it is `fn`."""
    from trl.trainer.utils import get_callable_name, is_async_callable

    keep = span_marker_ids(tokenizer)

    def texts(completions, completion_ids):
        if completion_ids is None:
            return completions
        return [decode_keeping_span_markers(tokenizer, ids, keep) for ids in completion_ids]

    if is_async_callable(fn):

        async def wrapped(completions, completion_ids=None, **kw):
            return await fn(texts(completions, completion_ids), **kw)
    else:

        def wrapped(completions, completion_ids=None, **kw):
            return fn(texts(completions, completion_ids), **kw)

    wrapped.__name__ = get_callable_name(fn)
    wrapped.reward = fn  # the original (a RubricReward keeps its stats)
    return wrapped


def hardest(
    items: list[Item], task: Task, model_path: str, cfg: TrainConfig, max_tokens: int
) -> tuple[list[Item], dict[str, float]]:
    """The difficulty split's substitute: the start model answers each turn `difficulty_samples`
    times (temperature 1, through the `hf:` adapter), each answer gets the weighted reward, and the
    `keep_hardest` fraction of turns with the lowest mean reward is kept (ties: data order)."""
    from kardiabench.models import ModelOptions, SamplingParams, load_model
    from kardiabench.models.base import ChatRequest, Job
    from kardiabench.runner import run_jobs

    model = load_model(f"hf:{model_path}", ModelOptions(batch_size=8))
    jobs = [
        Job(
            f"{n}#{s}",
            ChatRequest.from_messages(task.messages(it), SamplingParams(1.0, 1.0, max_tokens, s)),
        )
        for n, it in enumerate(items)
        for s in range(cfg.difficulty_samples)
    ]
    texts: dict[str, str] = {}
    asyncio.run(
        run_jobs(
            model,
            jobs,
            on_result=lambda j, out, _: texts.__setitem__(j.key, getattr(out, "text", "")),
            progress=False,
            desc="difficulty",
        )
    )
    order = [j.key for j in jobs]
    rows = [items[int(k.split("#")[0])].to_dict() for k in order]
    columns = {key: [r[key] for r in rows] for key in rows[0]}
    outs = [texts[k] for k in order]
    total = [0.0] * len(outs)
    for fn, weight in zip(reward_functions(cfg), cfg.weights(), strict=True):
        values = fn(outs, **columns)
        values = asyncio.run(values) if asyncio.iscoroutine(values) else values
        total = [t + weight * (v or 0.0) for t, v in zip(total, values, strict=True)]
    mean = {
        it.item_id: sum(total[n * cfg.difficulty_samples : (n + 1) * cfg.difficulty_samples])
        / cfg.difficulty_samples
        for n, it in enumerate(items)
    }
    ranked = sorted(range(len(items)), key=lambda n: mean[items[n].item_id])
    keep = sorted(ranked[: max(1, math.ceil((cfg.keep_hardest or 1.0) * len(items)))])
    return [items[n] for n in keep], mean


def build_grpo_trainer(cfg: TrainConfig):
    from trl import GRPOTrainer

    # first: TRL's own checks of its fields fail before data and weights load
    args = build_trl_args(cfg)
    train, evaluation, task = load_items(cfg)
    base = resolve_model(cfg.model)
    info: dict[str, Any] = {"base_path": base, "n_turns": len(train)}
    if cfg.keep_hardest is not None:
        train, mean = hardest(train, task, base, cfg, args.max_completion_length or 256)
        info["difficulty"] = {"kept": [it.item_id for it in train], "mean_reward": mean}
    model, tok = load_model_and_tokenizer(base)
    rewards = [keep_span_markers(fn, tok) for fn in reward_functions(cfg)]
    trainer = GRPOTrainer(
        model=model,
        args=args,
        reward_funcs=rewards,
        train_dataset=to_dataset(grpo_rows(train, task)),
        eval_dataset=to_dataset(grpo_rows(evaluation, task)),
        processing_class=tok,
        peft_config=lora_config(cfg, tok),
    )
    info.update(
        n_train=len(train),
        n_eval=len(evaluation),
        rewards=cfg.rewards(),
        reward_weights=cfg.weights(),
        training_judge=cfg.judge,
    )
    return trainer, info


def train_grpo(cfg: TrainConfig) -> Path:
    trainer, info = build_grpo_trainer(cfg)
    result = trainer.train()
    info["train_metrics"] = result.metrics
    info["log_history"] = trainer.state.log_history
    rubric = [
        fn.reward for fn in trainer.reward_funcs if hasattr(getattr(fn, "reward", None), "stats")
    ]
    if rubric:
        info["rubric_reward_stats"] = dict(rubric[0].stats)
    return save_final(trainer, cfg, info)
