"""Training data from the benchmark's own loader, turn expansion and task prompts.

Every assistant turn of the training split is one example, prompted exactly as the benchmark
prompts it (the task's messages: the dataset's own system prompt, the dialogue so far, the user
turn), so a model is trained on the inputs it is evaluated on.

* SFT: conversational prompt/completion pairs; the completion is the turn's gold four spans in the
  special-token style. TRL's completion-only loss then trains on the assistant turn alone (the
  history is context). This works with any chat template; TRL's assistant_only_loss would need
  `{% generation %}` markers, which most templates (the tiny model's included) lack.
* GRPO: the same prompts, plus every Item field as a column (Item.to_dict()), so the reward
  functions get the gold emotion and persona, and the rubric reward can rebuild the Item.
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from kardiabench.data import expand, load_dialogues, persona_split
from kardiabench.data.load import DataError
from kardiabench.records import Item
from kardiabench.spans import render_spans
from kardiabench.tasks import Task, load_task
from kardiabench.train.config import TrainConfig


def load_items(cfg: TrainConfig) -> tuple[list[Item], list[Item], Task]:
    """(training items, evaluation items, task). Evaluation items are a persona-disjoint hold-out
    of the training split when `eval_fraction` is set, else none."""
    task = load_task(cfg.task)
    loaded = load_dialogues(cfg.data, cfg.split)
    if not loaded.dialogues:
        raise DataError(f"no dialogues in {cfg.data} (split {cfg.split})")
    parts = {"train": loaded.dialogues, "test": []}
    if cfg.eval_fraction:
        parts = persona_split(loaded.dialogues, cfg.eval_fraction, seed=0)
    train = list(expand(parts["train"], task.history))
    evaluation = list(expand(parts["test"], task.history))
    if cfg.limit is not None:
        train = train[: cfg.limit]
    if cfg.eval_limit is not None:
        evaluation = evaluation[: cfg.eval_limit]
    return train, evaluation, task


def target_text(item: Item) -> str:
    """The gold assistant turn in the special-token span style (one token per marker)."""
    return render_spans(asdict(item.gold), "special")


def sft_rows(items: list[Item], task: Task) -> list[dict[str, Any]]:
    return [
        {
            "prompt": task.messages(it),
            "completion": [{"role": "assistant", "content": target_text(it)}],
        }
        for it in items
    ]


def grpo_rows(items: list[Item], task: Task) -> list[dict[str, Any]]:
    return [{"prompt": task.messages(it), **it.to_dict()} for it in items]


def to_dataset(rows: list[dict[str, Any]]):
    from datasets import Dataset

    return Dataset.from_list(rows) if rows else None
