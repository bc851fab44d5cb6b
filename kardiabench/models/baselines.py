"""Offline reference points that run anywhere in seconds: honest floors for the leaderboard.

baseline:majority   the most frequent training emotion, and one fixed supportive response
baseline:retrieval  TF-IDF nearest training user turn (with its situation); answers with that
                    turn's gold four spans

Both read the chat messages like any model and are fitted on a training split, whose fingerprint
is part of their identity (and so of every cache key).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import tempfile
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from itertools import chain, pairwise
from pathlib import Path

import numpy as np
from scipy import sparse

from kardiabench.data.expand import expand
from kardiabench.models.base import ChatModel, ChatRequest, Generation, ModelError
from kardiabench.records import Dialogue
from kardiabench.spans import render_spans

MAJORITY_RESPONSE = (
    "That sounds like a lot to carry. I'm here with you. What feels hardest about it right now?"
)


def _fingerprint(dialogues: Sequence[Dialogue]) -> str:
    h = hashlib.sha256()
    for d in sorted(x.dialogue_id for x in dialogues):
        h.update(d.encode())
    return h.hexdigest()[:16]


class _Baseline(ChatModel):
    max_batch_size = 256

    def __init__(self, name: str, train: Sequence[Dialogue], train_source: str):
        if not train:
            raise ModelError(
                f"baseline:{name} needs training dialogues, and {train_source} has none"
            )
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


# scikit-learn's TfidfVectorizer settings the index is fitted with; part of the index cache key
TFIDF_SETTINGS = {"sublinear_tf": True, "ngram_range": (1, 2), "min_df": 1, "stop_words": "english"}
TOKEN = re.compile(r"(?u)\b\w\w+\b")  # TfidfVectorizer's default token_pattern
INDEX_VERSION = 1
# rounding room in the pruning bounds: an item within it of the floor is scored in full
_SLACK = 1e-9


@dataclass
class RetrievalIndex:
    """A fitted TF-IDF index in plain arrays. Queries are vectorised here with scipy alone: importing
    scikit-learn took ~1.2 s of a 2.5 s sample run (2-core box), so it is imported only to fit."""

    vocabulary: dict[str, int]
    idf: np.ndarray
    stop_words: frozenset[str]
    matrix_t: sparse.csr_matrix  # terms x training items, rows l2-normalised before transposing
    answers: list[str]
    # derived for the top-1 search: items x terms, and each term's largest weight in any item
    rows: sparse.csr_matrix = field(init=False, repr=False)
    term_max: np.ndarray = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self.rows = self.matrix_t.T.tocsr()
        lengths = np.diff(self.matrix_t.indptr)
        self.term_max = np.zeros(self.matrix_t.shape[0])
        self.term_max[lengths > 0] = np.maximum.reduceat(
            self.matrix_t.data, self.matrix_t.indptr[:-1][lengths > 0]
        )

    @classmethod
    def fit(cls, train: Sequence[Dialogue]) -> RetrievalIndex:
        from sklearn.feature_extraction.text import TfidfVectorizer

        items = list(expand(train))
        answers = [
            render_spans(
                {
                    "understanding": i.gold.understanding,
                    "reasoning": i.gold.reasoning,
                    "emotion": i.gold.emotion,
                    "response": i.gold.response,
                }
            )
            for i in items
        ]
        vectorizer = TfidfVectorizer(**TFIDF_SETTINGS)
        matrix = vectorizer.fit_transform([i.user_message for i in items])
        vocabulary = {t: int(c) for t, c in vectorizer.vocabulary_.items()}
        return cls(
            vocabulary,
            vectorizer.idf_,
            frozenset(vectorizer.get_stop_words()),
            matrix.T.tocsr(),
            answers,
        )

    def vectorise(self, texts: Sequence[str]) -> sparse.csr_matrix:
        """TfidfVectorizer.transform: lowercase, tokens minus stop words, their unigrams and bigrams,
        1 + log(count), times idf, rows l2-normalised."""
        indptr, indices, counts = [0], [], []
        for text in texts:
            tokens = [w for w in TOKEN.findall(text.lower()) if w not in self.stop_words]
            terms = Counter(
                self.vocabulary[t]
                for t in chain(tokens, map(" ".join, zip(tokens, tokens[1:], strict=False)))
                if t in self.vocabulary
            )
            for col in sorted(terms):
                indices.append(col)
                counts.append(terms[col])
            indptr.append(len(indices))
        data = np.log(np.asarray(counts, dtype=np.float64)) + 1.0
        data *= self.idf[np.asarray(indices, dtype=np.int64)]
        tf = sparse.csr_matrix((data, indices, indptr), shape=(len(texts), len(self.vocabulary)))
        norms = np.sqrt(np.asarray(tf.multiply(tf).sum(axis=1)).ravel())
        norms[norms == 0] = 1.0
        return sparse.csr_matrix(sparse.diags(1.0 / norms) @ tf)

    def nearest(self, texts: Sequence[str]) -> list[int]:
        """The best-matching training item (largest cosine) per text; ties: the earliest item."""
        queries = self.vectorise(texts)
        return [
            self._top1(queries.indices[lo:hi], queries.data[lo:hi])
            for lo, hi in pairwise(queries.indptr)
        ]

    def _top1(self, terms: np.ndarray, weights: np.ndarray) -> int:
        """Exact top-1 with MaxScore-style pruning. Scoring every item that shares a term with the
        query cost 4.4 ms per item on the full-size train split (157k templated turns: a query's ~36
        terms reach ~550k entries); this takes ~0.6-0.8 ms (benchmarks/bench_baselines.py, 2-core box).
        The low-weight terms that together cannot lift any item to the score of a known item are
        skipped (what terms T add to an item is at most min(sum of their largest weights, |q_T|),
        rows being unit vectors), and only items the other terms lift close enough are scored in full."""
        if len(terms) == 0:
            return 0
        query = np.zeros(self.matrix_t.shape[0])
        query[terms] = weights
        bounds = weights * self.term_max[terms]  # no item gets more than this from a term
        order = np.argsort(bounds, kind="stable")
        cheapest = np.minimum(np.cumsum(bounds[order]), np.sqrt(np.cumsum(weights[order] ** 2)))
        top = terms[order[-1]]  # the item holding the largest single-term bound: a first floor
        lo, hi = self.matrix_t.indptr[top], self.matrix_t.indptr[top + 1]
        floor = self._score(
            int(self.matrix_t.indices[lo + self.matrix_t.data[lo:hi].argmax()]), query
        )
        skipped = int(np.searchsorted(cheapest, floor - _SLACK))  # these terms alone stay below it
        kept = order[skipped:]
        partial = self.matrix_t[terms[kept]].T @ weights[kept]
        floor = max(floor, self._score(int(partial.argmax()), query))
        rest = cheapest[skipped - 1] if skipped else 0.0
        candidates = np.flatnonzero(partial >= floor - rest - _SLACK)
        return int(candidates[(self.rows[candidates] @ query).argmax()])

    def _score(self, item: int, query: np.ndarray) -> float:
        lo, hi = self.rows.indptr[item], self.rows.indptr[item + 1]
        return float(self.rows.data[lo:hi] @ query[self.rows.indices[lo:hi]])

    def save(self, folder: Path) -> None:
        """matrix.npz + idf.npy + index.json (no pickle), written to a temporary folder and renamed
        into place, so a reader never sees half an index."""
        tmp = Path(tempfile.mkdtemp(prefix=folder.name + ".", dir=folder.parent))
        sparse.save_npz(tmp / "matrix.npz", self.matrix_t, compressed=False)
        np.save(tmp / "idf.npy", self.idf)
        (tmp / "index.json").write_text(
            json.dumps(
                {
                    "vocabulary": self.vocabulary,
                    "stop_words": sorted(self.stop_words),
                    "answers": self.answers,
                }
            )
        )
        try:
            tmp.rename(folder)
        except OSError:  # another process saved the same index first
            shutil.rmtree(tmp, ignore_errors=True)

    @classmethod
    def load(cls, folder: Path) -> RetrievalIndex:
        meta = json.loads((folder / "index.json").read_text())
        matrix_t = sparse.load_npz(folder / "matrix.npz").tocsr()
        return cls(
            meta["vocabulary"],
            np.load(folder / "idf.npy", allow_pickle=False),
            frozenset(meta["stop_words"]),
            matrix_t,
            meta["answers"],
        )


def _content_key(train: Sequence[Dialogue]) -> str:
    """What the fitted index depends on: the training dialogues' text, in file order, and the settings."""
    h = hashlib.sha256(json.dumps([INDEX_VERSION, sorted(TFIDF_SETTINGS.items())]).encode())
    for d in train:
        h.update(
            json.dumps(
                [d.dialogue_id, [[m.role, m.content] for m in d.messages], d.turn_spans, d.emotion]
            ).encode()
        )
    return h.hexdigest()[:24]


class RetrievalBaseline(_Baseline):
    """`index_dir`: where fitted indexes are kept (next to the request cache); None fits every time.
    `files_key` (the training files' bytes, see generate_stage.train_files_key) also names the index,
    so the next run finds it without reading the training split (~5 s, ~450 MB at full size)."""

    def __init__(
        self,
        train: Sequence[Dialogue],
        train_source: str = "",
        index_dir: Path | None = None,
        files_key: str | None = None,
    ):
        super().__init__("retrieval", train, train_source)
        self._index = self._load_or_fit(train, index_dir)
        self.n_train = len(train)
        if index_dir is not None and files_key:
            alias = {
                "index": f"retrieval-{_content_key(train)}",
                "train_fingerprint": self._fingerprint,
                "n_train": self.n_train,
            }
            path = Path(index_dir) / f"retrieval-files-{files_key}.json"
            tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
            tmp.write_text(json.dumps(alias))
            tmp.replace(path)  # atomic: a concurrent reader sees the old file or the whole new one

    @classmethod
    def from_files_key(
        cls, files_key: str, index_dir: Path, train_source: str
    ) -> RetrievalBaseline | None:
        """The baseline fitted before on the same training files, or None."""
        alias = Path(index_dir) / f"retrieval-files-{files_key}.json"
        if not alias.exists():
            return None
        meta = json.loads(alias.read_text())
        folder = Path(index_dir) / meta["index"]
        if not (folder / "index.json").exists():
            return None
        model = cls.__new__(cls)
        model.spec, model.train_source, model._fingerprint = (
            "baseline:retrieval",
            train_source,
            meta["train_fingerprint"],
        )
        model._index, model.n_train = RetrievalIndex.load(folder), meta["n_train"]
        return model

    @staticmethod
    def _load_or_fit(train: Sequence[Dialogue], index_dir: Path | None) -> RetrievalIndex:
        if index_dir is None:
            return RetrievalIndex.fit(train)
        folder = Path(index_dir) / f"retrieval-{_content_key(train)}"
        if (folder / "index.json").exists():
            return RetrievalIndex.load(folder)
        index = RetrievalIndex.fit(train)
        folder.parent.mkdir(parents=True, exist_ok=True)
        index.save(folder)
        return index

    async def generate(self, requests: list[ChatRequest]) -> list[Generation | ModelError]:
        queries = [
            next((c for r, c in reversed(req.messages) if r == "user"), "") for req in requests
        ]
        return [
            Generation(text=self._index.answers[b], finish_reason="stop")
            for b in self._index.nearest(queries)
        ]


BASELINES = {"majority": MajorityBaseline, "retrieval": RetrievalBaseline}
