"""Emotion scoring: per-item classification of the predicted emotion span, confusion, recall, F1.

A prediction is correct when its emotion span, normalised by `kardiabench.emotions.normalize_emotion`
(case, surrounding whitespace and punctuation: nothing else), equals the item's gold label. For the
confusion matrix and macro-F1 every prediction falls into one class:
  - the gold label itself, when correct;
  - another of the 32 labels;
  - INVALID: a non-empty span that is not one of the 32 labels ("worried", "I think sad");
  - MISSING: no emotion span, an empty one, or no output at all (the request failed for good).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from kardiabench.emotions import normalize_emotion, to_label

MISSING = "<missing>"
INVALID = "<invalid>"
_PRED_CLIP = 100  # a long non-label "span" is kept for reading, not in full


@dataclass(frozen=True, slots=True)
class EmotionOutcome:
    gold: str  # normalised gold label
    predicted: str | None  # normalised emotion span (clipped), None when there is none
    predicted_class: str  # a label, INVALID or MISSING
    failed: bool = False  # no output: the request failed for good

    @property
    def correct(self) -> bool:
        return self.predicted_class == self.gold


def classify_emotion(
    gold_emotion: str, emotion_span: str | None, *, failed: bool = False
) -> EmotionOutcome:
    gold = normalize_emotion(gold_emotion)
    pred = None if failed or emotion_span is None else normalize_emotion(emotion_span)
    if not pred:
        cls = MISSING
    elif pred == gold:
        cls = gold  # also when gold is outside the taxonomy (a record-level fallback label)
    else:
        cls = to_label(pred) or INVALID
    return EmotionOutcome(gold, pred[:_PRED_CLIP] if pred else None, cls, failed)


def per_emotion_recall(
    outcomes: Sequence[EmotionOutcome], computed: bool = True
) -> dict[str, dict[str, float | int | None]]:
    """gold label → {"recall": percent of its items predicted correctly, "n": its items}; recall
    None when not `computed` (no item has a prediction to recall from)."""
    n = Counter(o.gold for o in outcomes)
    hits = Counter(o.gold for o in outcomes if o.correct)
    return {
        g: {"recall": 100.0 * hits[g] / n[g] if computed else None, "n": n[g]} for g in sorted(n)
    }


def confusion(outcomes: Sequence[EmotionOutcome]) -> dict[str, dict[str, int]]:
    """gold label → predicted class → count; only non-zero cells, keys sorted."""
    cells = Counter((o.gold, o.predicted_class) for o in outcomes)
    out: dict[str, dict[str, int]] = {}
    for (g, p), c in sorted(cells.items()):
        out.setdefault(g, {})[p] = c
    return out


def macro_f1(outcomes: Sequence[EmotionOutcome]) -> float | None:
    """Macro-F1 in percent over the gold labels that occur.

    Defined as scikit-learn's `f1_score(y_true, y_pred, labels=<gold labels that occur>,
    average="macro", zero_division=0)` (tests/test_scoring_emotion.py checks the equality); computed
    here from TP/FP/FN counts, with the same code the bootstrap uses, so scoring does not import
    scikit-learn (several seconds) for one formula.

    Averaging over the gold labels (not gold ∪ predicted): a class the data never contains has no
    F1 worth averaging, and predicting a label absent from the test set costs exactly the recall
    lost on the true class. INVALID and MISSING count as wrong classes: they lower the recall of
    the gold class and are never averaged themselves.
    """
    if not outcomes:
        return None
    counts = f1_cluster_counts(outcomes, np.zeros(len(outcomes), dtype=np.intp), 1)
    return float(macro_f1_from_counts(counts)[0])


def f1_cluster_counts(
    outcomes: Sequence[EmotionOutcome], codes: np.ndarray, n_clusters: int
) -> np.ndarray:
    """(C × 3L) per-cluster TP, FP, FN of each gold label L (sorted), for a bootstrapped macro-F1."""
    labels = sorted({o.gold for o in outcomes})
    index = {label: i for i, label in enumerate(labels)}
    n_labels = len(labels)
    counts = np.zeros((n_clusters, 3 * n_labels))
    for o, c in zip(outcomes, codes, strict=True):
        if o.correct:
            counts[c, index[o.gold]] += 1  # TP
        else:
            counts[c, 2 * n_labels + index[o.gold]] += 1  # FN of the gold class
            if o.predicted_class in index:
                counts[c, n_labels + index[o.predicted_class]] += 1  # FP of the predicted class
    return counts


def macro_f1_from_counts(totals: np.ndarray) -> np.ndarray:
    """Macro-F1 (percent) of each row of summed TP|FP|FN blocks, over labels with gold support.

    The same definition as `macro_f1`, applied to a resample: labels that occur in its gold.
    """
    tp, fp, fn = np.split(np.asarray(totals, dtype=float), 3, axis=1)
    support = (tp + fn) > 0
    with np.errstate(invalid="ignore", divide="ignore"):
        f1 = np.where(support, 2 * tp / (2 * tp + fp + fn), 0.0)
    return 100.0 * f1.sum(axis=1) / support.sum(axis=1)
