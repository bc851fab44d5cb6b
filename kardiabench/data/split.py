"""Deterministic, persona-disjoint train/test split for sources that ship a single file.

Personas are ordered by SHA-256 of f"{seed}:{persona_id}" and taken into the test split, in that
order, until at least `test_fraction` of the dialogues are in it. No persona lands in both splits,
and the same seed gives the same split on any machine and in any input order.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Sequence

from kardiabench.records import Dialogue


def persona_split(
    dialogues: Sequence[Dialogue], test_fraction: float = 0.1, seed: int = 0
) -> dict[str, list[Dialogue]]:
    if not 0.0 < test_fraction < 1.0:
        raise ValueError(f"test_fraction must be between 0 and 1, got {test_fraction}")
    counts = Counter(d.persona_id for d in dialogues)
    order = sorted(counts, key=lambda p: hashlib.sha256(f"{seed}:{p}".encode()).hexdigest())
    target = test_fraction * len(dialogues)
    test_personas: set[str] = set()
    taken = 0
    for p in order:
        if taken >= target or len(test_personas) == len(order) - 1:
            break
        test_personas.add(p)
        taken += counts[p]
    return {
        "train": [d for d in dialogues if d.persona_id not in test_personas],
        "test": [d for d in dialogues if d.persona_id in test_personas],
    }
