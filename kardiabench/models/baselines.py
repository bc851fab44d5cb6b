"""Offline reference points that run anywhere in seconds: honest floors for the leaderboard.

baseline:majority   the most frequent training emotion, and one fixed supportive response
baseline:retrieval  TF-IDF nearest training user turn (with its situation); answers with that
                    turn's gold four spans

Both read the chat messages like any model and are fitted on a training split, whose fingerprint
is part of their identity (and so of every cache key).
"""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Sequence

from kardiabench.data.expand import expand
from kardiabench.models.base import ChatModel, ChatRequest, Generation, ModelError
from kardiabench.records import Dialogue
from kardiabench.spans import render_spans

MAJORITY_RESPONSE = "That sounds like a lot to carry. I'm here with you. What feels hardest about it right now?"


def _fingerprint(dialogues: Sequence[Dialogue]) -> str:
    h = hashlib.sha256()
    for d in sorted(x.dialogue_id for x in dialogues):
        h.update(d.encode())
    return h.hexdigest()[:16]


class _Baseline(ChatModel):
    max_batch_size = 256

    def __init__(self, name: str, train: Sequence[Dialogue], train_source: str):
        if not train:
            raise ModelError(f"baseline:{name} needs training dialogues, and {train_source} has none")
        self.spec = f"baseline:{name}"
        self.train_source = train_source
        self._fingerprint = _fingerprint(train)

    def identity(self) -> dict:
        return {"spec": self.spec, "train_fingerprint": self._fingerprint}

    async def generate(self, requests: list[ChatRequest]) -> list[Generation | ModelError]:
        return [Generation(text=self.answer(r), finish_reason="stop") for r in requests]

    def answer(self, request: ChatRequest) -> str:
        raise NotImplementedError


class MajorityBaseline(_Baseline):
    def __init__(self, train: Sequence[Dialogue], train_source: str = ""):
        super().__init__("majority", train, train_source)
        counts = Counter(item.gold_emotion for item in expand(train))
        # ties broken alphabetically so the choice never depends on file order
        self.emotion = min(counts, key=lambda e: (-counts[e], e))

    def answer(self, request: ChatRequest) -> str:
        return render_spans(
            {
                "understanding": "The user is sharing something that matters to them.",
                "reasoning": "Acknowledge their feelings and invite them to say more.",
                "emotion": self.emotion,
                "response": MAJORITY_RESPONSE,
            }
        )


class RetrievalBaseline(_Baseline):
    def __init__(self, train: Sequence[Dialogue], train_source: str = ""):
        super().__init__("retrieval", train, train_source)
        from sklearn.feature_extraction.text import TfidfVectorizer

        items = list(expand(train))
        self._answers = [
            render_spans({"understanding": i.gold.understanding, "reasoning": i.gold.reasoning, "emotion": i.gold.emotion, "response": i.gold.response})
            for i in items
        ]
        self._vectorizer = TfidfVectorizer(sublinear_tf=True, ngram_range=(1, 2), min_df=1, stop_words="english")
        self._matrix = self._vectorizer.fit_transform([i.user_message for i in items])

    async def generate(self, requests: list[ChatRequest]) -> list[Generation | ModelError]:
        queries = [next((c for r, c in reversed(req.messages) if r == "user"), "") for req in requests]
        sims = self._vectorizer.transform(queries) @ self._matrix.T
        best = sims.argmax(axis=1).A1
        return [Generation(text=self._answers[b], finish_reason="stop") for b in best]


BASELINES = {"majority": MajorityBaseline, "retrieval": RetrievalBaseline}
