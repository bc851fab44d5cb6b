"""Turn expansion: every assistant turn of a dialogue becomes one evaluation `Item`."""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from kardiabench.emotions import to_label
from kardiabench.records import Dialogue, GoldSpans, HistoryMode, Item, Message
from kardiabench.spans import parse_spans


def expand_dialogue(d: Dialogue, history_mode: HistoryMode = "full") -> list[Item]:
    """Items for each assistant turn of `d`.

    history_mode "full": earlier assistant turns appear as their gold four-span text (how the data
    are formatted, and how Kardia-R1 was trained). "response": only their response span.
    """
    if history_mode not in ("full", "response"):
        raise ValueError(f"history_mode must be 'full' or 'response', got {history_mode!r}")
    start = 1 if d.messages and d.messages[0].role == "system" else 0
    turns = d.messages[start:]
    items: list[Item] = []
    history: list[Message] = []
    fallback = to_label(d.emotion) or d.emotion.strip().lower()
    for k in range(0, len(turns) - 1, 2):
        user, assistant = turns[k], turns[k + 1]
        known = (
            d.turn_spans[k // 2] if d.turn_spans and len(d.turn_spans) * 2 == len(turns) else None
        )
        spans = {n: (v or "") for n, v in (known or parse_spans(assistant.content).spans).items()}
        gold = GoldSpans(**spans)
        turn_index = k // 2
        items.append(
            Item(
                item_id=f"{d.dialogue_id}-t{turn_index}",
                dialogue_id=d.dialogue_id,
                turn_index=turn_index,
                persona_id=d.persona_id,
                mbti=d.mbti,
                situation=d.situation,
                person=d.person,
                system_prompt=d.system_prompt,
                history=tuple(history),
                user_message=user.content,
                gold=gold,
                gold_emotion=to_label(gold.emotion) or fallback,
                history_mode=history_mode,
            )
        )
        history.append(user)
        history.append(assistant if history_mode == "full" else Message("assistant", gold.response))
    return items


def expand(dialogues: Iterable[Dialogue], history_mode: HistoryMode = "full") -> Iterator[Item]:
    for d in dialogues:
        yield from expand_dialogue(d, history_mode)
