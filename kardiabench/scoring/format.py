"""Format compliance: is each output well formed under the four-span contract, and what went wrong.

"Well formed" is `kardiabench.spans.parse_spans(raw, finish_reason=...).well_formed`, the same call
the training format reward makes; nothing here re-decides it.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

from kardiabench.spans import SPAN_NAMES, Issue, ParsedOutput, SpanIssue

# The diagnostic kinds that belong to one span (the others describe the output as a whole).
SPAN_ISSUE_KINDS: tuple[Issue, ...] = (
    Issue.MISSING,
    Issue.EMPTY,
    Issue.DUPLICATED,
    Issue.UNTERMINATED,
    Issue.STRAY_CLOSE,
)


@dataclass(frozen=True, slots=True)
class FormatOutcome:
    well_formed: bool
    issues: tuple[SpanIssue, ...] = ()
    failed: bool = False  # no output: the request failed for good (counted as not well formed)

    def issue_labels(self) -> list[str]:
        """Compact per-item labels: "emotion:missing", "text_outside"."""
        return [f"{i.span}:{i.kind.value}" if i.span else i.kind.value for i in self.issues]


def format_outcome(parsed: ParsedOutput, *, failed: bool = False) -> FormatOutcome:
    if failed:
        return FormatOutcome(False, (), True)
    return FormatOutcome(parsed.well_formed, parsed.issues, False)


def issue_counts(outcomes: Sequence[FormatOutcome]) -> dict[str, int]:
    """Issue kind → number of outputs with at least one issue of that kind (every kind listed).

    Failed requests have no output and so no diagnostics: they are counted apart (n_failed), not as
    four missing spans, so the counts describe what models wrote.
    """
    counts = Counter(kind for o in outcomes for kind in {i.kind for i in o.issues})
    return {kind.value: counts[kind] for kind in Issue}


def span_issue_counts(outcomes: Sequence[FormatOutcome]) -> dict[str, dict[str, int]]:
    """Span → issue kind → number of outputs where that span had it (missing, empty, …)."""
    counts = Counter(
        pair for o in outcomes for pair in {(i.span, i.kind) for i in o.issues if i.span}
    )
    return {s: {k.value: counts[(s, k)] for k in SPAN_ISSUE_KINDS} for s in SPAN_NAMES}
