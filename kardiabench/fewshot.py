"""Few-shot examples drawn from the training split (a task's `prompt.num_fewshot`).

The instructed task shows a model the four-span format only in words; on a dialogue's first turn it
has no example to follow (later turns have the gold history). A few-shot task prepends K fixed
example exchanges: the first turn of K training dialogues (chosen with `prompt.fewshot_seed`), the
user's message and the gold answer written as the history shows earlier turns (all four spans, or
the response alone under `history: response`). They come from the train split only, never from the
split being evaluated; each shot keeps the item id it came from, so run.json's `task_config` says
which dialogue and turn every example is.
"""

from __future__ import annotations

import random
from dataclasses import asdict

from kardiabench.data import expand_dialogue, load_dialogues
from kardiabench.data.load import DataError
from kardiabench.records import Item
from kardiabench.spans import render_spans
from kardiabench.tasks import FewShot, Task

FEWSHOT_SPLIT = "train"


def with_fewshot(
    task: Task,
    source: str,
    split: str | None,
    *,
    derive_split: float | None = None,
    split_seed: int = 0,
) -> Task:
    """`task` with its `num_fewshot` training examples added after its own few-shot turns (the same
    task when it asks for none, or holds its drawn examples already)."""
    k = task.prompt.num_fewshot
    if k == 0 or any(s.item_id for s in task.prompt.few_shot):
        return task
    if (split or "").lower() == FEWSHOT_SPLIT:
        raise DataError(
            f"task {task.name} draws its few-shot examples from the {FEWSHOT_SPLIT} split; evaluate another split"
        )
    try:
        train = load_dialogues(
            source, FEWSHOT_SPLIT, derive_split=derive_split, split_seed=split_seed
        ).dialogues
    except DataError as e:
        raise DataError(
            f"task {task.name} draws few-shot examples from a {FEWSHOT_SPLIT} split, and none was found ({e})"
        ) from None
    firsts = [
        items[0]
        for d in sorted(train, key=lambda d: d.dialogue_id)
        if (items := expand_dialogue(d, task.history))
    ]
    if len(firsts) < k:
        raise DataError(
            f"task {task.name} asks for {k} few-shot examples; the {FEWSHOT_SPLIT} split has {len(firsts)} dialogues"
        )
    shots = [
        shot(it, task.history) for it in random.Random(task.prompt.fewshot_seed).sample(firsts, k)
    ]
    prompt = task.prompt.model_copy(update={"few_shot": [*task.prompt.few_shot, *shots]})
    return task.model_copy(update={"prompt": prompt})


def shot(item: Item, history: str) -> FewShot:
    """One example exchange: the item's user message and its gold answer, as earlier turns appear."""
    answer = render_spans(asdict(item.gold)) if history == "full" else item.gold.response
    return FewShot(user=item.user_message, assistant=answer, item_id=item.item_id)
