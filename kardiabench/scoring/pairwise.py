"""The pairwise judge's pure part: render a case with two responses into the pairwise template,
read a verdict of "A" / "B" / "tie" per dimension, word a repair, and add verdicts up into win
rates (statistics: scoring/preference.py). Values in, values out; kardiabench/pairwise_stage.py runs it.

One rubric: the dimension names and definitions come from rubric.yaml; the template
(judges/pairwise_prompt.md, beside the rubric) holds only the instructions for comparing. Every
pair is judged in both orders: "ab" shows run A's response first, "ba" run B's. A verdict is kept
as shown to the judge ("A" = the response shown first); `combine_orders` maps the second back.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from kardiabench.records import Item
from kardiabench.scoring.judge import (
    MAX_RESPONSE_CHARS,
    Verdict,
    case_values,
    extract_json_object,
    notes_block,
    response_block,
)
from kardiabench.scoring.preference import (
    POINTS,
    LengthControlled,
    Outcome,
    PositionStats,
    WinRate,
    combine_orders,
    length_controlled_win_rate,
    position_stats,
    win_rate,
)
from kardiabench.scoring.rubric import (
    _PACKAGED_JUDGES,
    FENCE,
    PLACEHOLDERS,
    Rubric,
    RubricError,
    fill_sections,
    split_sections,
)

TEMPLATE_NAME = "pairwise_prompt.md"
TEMPLATE_VERSION = "2"  # bump when `render` changes how a case is assembled
ORDERS = ("ab", "ba")  # ab: run A's response shown first; ba: run B's
_KNOWN = frozenset(
    PLACEHOLDERS - {"rubric", "candidate", "candidate_notes"}
    | {"definitions", "response_a", "response_b", "notes_a", "notes_b"}
)
NOTES = ("notes_a", "notes_b")  # where a show_reasoning prompt puts each response's own notes
NO_NOTES = "(this response came without an understanding or reasoning span)"
_SPELLINGS = {"a": "A", "b": "B", "tie": "tie"}


@dataclass(frozen=True)
class PairwiseTemplate:
    """The pairwise prompt for a rubric and a choice of its dimensions."""

    rubric: Rubric
    names: tuple[str, ...]
    sections: tuple[tuple[str, str], ...]
    path: str
    digest: str  # 12 hex over the template text, the definitions used and TEMPLATE_VERSION

    @property
    def version(self) -> str:
        """What every pairwise verdict records (judgments.jsonl's rubric_version); resume matches on it."""
        return f"{self.rubric.version}/pairwise+{self.digest}"

    def definitions(self) -> str:
        dims = [d for d in self.rubric.dimensions if d.name in self.names]
        return "\n\n".join(f"## {d.title} (`{d.name}`)\n{d.definition}" for d in dims)

    def json_example(self) -> str:
        example: dict[str, str] = {"rationale": "One or two sentences on the main differences."}
        example.update({n: ("A", "B", "tie")[i % 3] for i, n in enumerate(self.names)})
        return json.dumps(example, indent=2)

    def response_format(self) -> dict[str, Any]:
        """OpenAI structured output: every dimension one of "A", "B", "tie"; a nullable rationale first."""
        props: dict[str, Any] = {
            "rationale": {"type": ["string", "null"], "description": "at most two sentences"}
        }
        props.update({n: {"type": "string", "enum": ["A", "B", "tie"]} for n in self.names})
        schema = {
            "type": "object",
            "properties": props,
            "required": list(props),
            "additionalProperties": False,
        }
        return {
            "type": "json_schema",
            "json_schema": {"name": "pairwise_preference", "strict": True, "schema": schema},
        }

    @property
    def shows_notes(self) -> bool:
        """Whether the template has a place for each response's notes (show_reasoning)."""
        used = "".join(text for _, text in self.sections)
        return all(f"{{{{{n}}}}}" in used for n in NOTES)

    def render(
        self, item: Item, first: str, second: str, notes: tuple[str, str] | None = None
    ) -> list[dict[str, str]]:
        """The messages for one case, `first` shown as Response A. Both responses fenced as data and
        cut as the rubric judge's candidate is (`response_block`: at most MAX_RESPONSE_CHARS, the
        cut marked). `notes`: (first's, second's) understanding and reasoning, shown under each
        response with show_reasoning (an empty one says so, so that a prompt with notes is never
        the prompt without); None: no notes."""
        case = case_values(item, first)
        values = {k: case[k] for k in ("profile", "situation", "history", "user_message")}
        shown = dict.fromkeys(NOTES, "")
        if notes is not None:
            for key, side, text in zip(NOTES, "AB", notes, strict=True):
                heading = f"### Response {side}'s own understanding and reasoning (context only: compare the responses, not these)"
                shown[key] = notes_block(heading, f"NOTES_{side}", text or NO_NOTES)
        values.update(
            shown,
            response_a=response_block("RESPONSE_A", first),
            response_b=response_block("RESPONSE_B", second),
            definitions=self.definitions(),
            dimensions=", ".join(f'"{n}"' for n in self.names),
            json_example=self.json_example(),
            fence=FENCE,
        )
        return fill_sections(self.sections, values)


def choose_dimensions(rubric: Rubric, dimensions: Sequence[str] | None) -> tuple[str, ...]:
    """The rubric's dimensions to compare on, in the rubric's order; ValueError naming an unknown one."""
    if not dimensions:
        return rubric.names
    unknown = [d for d in dimensions if d not in rubric.names]
    if unknown:
        raise ValueError(
            f"unknown dimension(s) {', '.join(unknown)}; the rubric has {', '.join(rubric.names)}"
        )
    return tuple(n for n in rubric.names if n in set(dimensions))


def load_template(rubric: Rubric, dimensions: Sequence[str] | None = None) -> PairwiseTemplate:
    """The pairwise template beside the rubric's own template, else the one shipped in the package."""
    here = Path(rubric.template_path).parent / TEMPLATE_NAME
    path = here if here.is_file() else _PACKAGED_JUDGES / TEMPLATE_NAME
    if not path.is_file():
        raise RubricError(f"{here}: pairwise prompt template not found")
    text = path.read_text(encoding="utf-8").replace("\r\n", "\n")
    sections = split_sections(text, path, _KNOWN, ("definitions", "response_a", "response_b"))
    names = choose_dimensions(rubric, dimensions)
    blob = json.dumps(
        {
            "template": text,
            "version": TEMPLATE_VERSION,
            "definitions": [(d.name, d.title, d.definition) for d in rubric.dimensions],
        },
        sort_keys=True,
    )
    digest = hashlib.sha256(blob.encode("utf-8")).hexdigest()[:12]
    return PairwiseTemplate(rubric, names, sections, str(path), digest)


# --- reading a verdict ----------------------------------------------------------------------------


def parse_preferences(
    text: str | None, names: Sequence[str], finish_reason: str | None = None
) -> Verdict:
    """Every dimension "A", "B" or "tie" (any letter case); anything else is an error, never a guess."""
    obj, error = extract_json_object(text or "", names)
    if obj is None:
        verdict = Verdict(None, None, error)
    else:
        flat = {str(k).strip().lower(): v for k, v in obj.items()}
        problems, prefs = [], {}
        for n in names:
            v = flat.get(n)
            choice = _SPELLINGS.get(v.strip().lower()) if isinstance(v, str) else None
            if n not in flat:
                problems.append(f"missing dimension {n}")
            elif choice is None:
                problems.append(f'{n}: {v!r} is not "A", "B" or "tie"')
            else:
                prefs[n] = choice
        rationale = flat.get("rationale") if isinstance(flat.get("rationale"), str) else None
        verdict = (
            Verdict(None, rationale, "; ".join(problems)) if problems else Verdict(prefs, rationale)
        )
    if verdict.error and finish_reason == "length":
        return Verdict(None, verdict.rationale, f"reply cut at the token limit; {verdict.error}")
    return verdict


PAIRWISE_ANSWER = 'giving "A", "B" or "tie"'  # what a pairwise verdict gives for each dimension


# --- adding verdicts up ---------------------------------------------------------------------------


def pooled_outcome(orders: Sequence[tuple[Outcome | None, Outcome | None]]) -> Outcome | None:
    """One outcome from several (judge, repeat) pairs of verdicts (a_first, b_first) as shown: each
    pair combined (a flip is a tie), then the mean of A = 1, tie = ½, B = 0 over those with one
    decides (> ½ A, < ½ B, ½ tie). None when no pair has both orders."""
    combined = [o for x, y in orders if (o := combine_orders(x, y)) is not None]
    if not combined:
        return None
    mean = sum(POINTS[o] for o in combined) / len(combined)
    return "A" if mean > 0.5 else "B" if mean < 0.5 else "tie"


@dataclass(frozen=True)
class PairItem:
    """One item of one pair of runs: the verdicts per dimension as (A shown first, B shown first)
    for each judge and repeat, the response lengths (characters) and why it is unscored, if it is."""

    item_id: str
    dialogue_id: str
    length_a: int
    length_b: int
    verdicts: Mapping[str, Sequence[tuple[Outcome | None, Outcome | None]]]
    unscored: str | None = None

    def outcome(self, dim: str) -> Outcome | None:
        return pooled_outcome(self.verdicts.get(dim, ()))


def responses_cut(items: Sequence[PairItem]) -> dict[str, int]:
    """Per side ("a": run A's, "b": run B's), the responses the judge saw only MAX_RESPONSE_CHARS
    of, on the items it was asked about (both responses there)."""
    sent = [it for it in items if it.length_a and it.length_b]
    return {
        "a": sum(it.length_a > MAX_RESPONSE_CHARS for it in sent),
        "b": sum(it.length_b > MAX_RESPONSE_CHARS for it in sent),
    }


@dataclass(frozen=True)
class DimensionResult:
    """Run A against run B on one dimension."""

    win_rate: WinRate
    length_controlled: LengthControlled
    position: PositionStats

    def to_dict(self) -> dict[str, Any]:
        return {
            "win_rate": self.win_rate.to_dict(),
            "length_controlled": self.length_controlled.to_dict(),
            "position": self.position.to_dict(),
        }


def dimension_results(
    items: Sequence[PairItem], dims: Sequence[str], *, n_resamples: int, seed: int
) -> dict[str, DimensionResult]:
    clusters = [it.dialogue_id for it in items]
    out = {}
    for d in dims:
        outcomes = [it.outcome(d) for it in items]
        out[d] = DimensionResult(
            win_rate(outcomes, clusters, n_resamples=n_resamples, seed=seed),
            length_controlled_win_rate(
                outcomes,
                [it.length_a for it in items],
                [it.length_b for it in items],
                clusters,
                n_resamples=n_resamples,
                seed=seed,
            ),
            position_stats([p for it in items for p in it.verdicts.get(d, ())]),
        )
    return out


def overall_position(items: Sequence[PairItem], dims: Sequence[str]) -> PositionStats:
    """Position consistency and first-position bias over every dimension's verdict pairs."""
    return position_stats([p for it in items for d in dims for p in it.verdicts.get(d, ())])


def result_dict(obj: Any) -> Any:
    """A dataclass (or a mapping/list of them) as plain JSON values."""
    if hasattr(obj, "to_dict"):
        return obj.to_dict()
    if isinstance(obj, Mapping):
        return {k: result_dict(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [result_dict(v) for v in obj]
    if hasattr(obj, "__dataclass_fields__"):
        return asdict(obj)
    return obj


# --- agreement with human A/B labels --------------------------------------------------------------

_CODES = {"A": 0.0, "B": 1.0, "tie": 2.0}  # nominal codes for Krippendorff's alpha


def human_preferences(
    rows, source: str, pairs: Sequence[tuple[str, str, Sequence[str]]], dims: Sequence[str]
):
    """Human A/B labels from (line, row) pairs, one row per item and annotator: {"item_id",
    "annotator", "run_a", "run_b", <dimension>: "A" | "B" | "tie" (missing or null: not labelled)},
    outcomes from run_a's side. `pairs`: (run A's name, run B's name, other names of the two, e.g. their
    model specs) of the pairwise folder; a row naming a pair's runs swapped is flipped. Returns
    {(run_a, run_b): {item_id: {annotator: {dim: outcome}}}}; HumanLabelError names the line and field."""
    from kardiabench.scoring.agreement import HumanLabelError
    from kardiabench.scoring.preference import flip

    known = {}
    for a, b, aliases in pairs:
        for x in (a, aliases[0]):
            for y in (b, aliases[1]):
                known[(x, y)], known[(y, x)] = ((a, b), False), ((a, b), True)
    out: dict[tuple[str, str], dict[str, dict[str, dict[str, str]]]] = {}
    seen: dict[tuple, int] = {}
    for lineno, row in rows:
        for key in ("item_id", "annotator", "run_a", "run_b"):
            if not isinstance(row.get(key), str) or not row[key]:
                raise HumanLabelError(
                    f"{source}:{lineno}: field '{key}': must be a non-empty string"
                )
        match = known.get((row["run_a"], row["run_b"]))
        if match is None:
            names = "; ".join(f"{a} vs {b}" for a, b, _ in pairs)
            raise HumanLabelError(
                f"{source}:{lineno}: field 'run_a': {row['run_a']} vs {row['run_b']} is no pair of the pairwise folder ({names})"
            )
        pair, swapped = match
        where = (pair, row["item_id"], row["annotator"])
        if where in seen:
            raise HumanLabelError(
                f"{source}:{lineno}: field 'annotator': {row['annotator']} already labelled {row['item_id']} on line {seen[where]}"
            )
        seen[where] = lineno
        labels = {}
        for d in dims:
            v = row.get(d)
            if v is None:
                continue
            choice = _SPELLINGS.get(v.strip().lower()) if isinstance(v, str) else None
            if choice is None:
                raise HumanLabelError(
                    f'{source}:{lineno}: field \'{d}\': {v!r} is not "A", "B" or "tie"'
                )
            labels[d] = flip(choice) if swapped else choice
        out.setdefault(pair, {}).setdefault(row["item_id"], {})[row["annotator"]] = labels
    return out


def majority(labels: Sequence[str]) -> str | None:
    """The label more than half of the annotators gave, else None (no majority)."""
    if not labels:
        return None
    top, n = Counter(labels).most_common(1)[0]
    return top if n * 2 > len(labels) else None


def preference_agreement(
    human: Mapping[str, Mapping[str, Mapping[str, str]]],
    judge: Mapping[str, Mapping[str, str | None]],
    dims: Sequence[str],
    clusters: Mapping[str, str] | None = None,
    *,
    n_resamples: int = 1000,
    seed: int = 0,
) -> dict[str, dict[str, Any]]:
    """Per dimension: n (items with a human majority and a judge outcome), percent agreement and
    Cohen's kappa of the judge against the human majority, Krippendorff's alpha (nominal) among the
    annotators and the judge, each with a 95% bootstrap interval resampling `clusters` (item id →
    dialogue id; an item without one is its own), and the items left out (no majority, no judge
    outcome)."""
    from kardiabench.scoring.agreement import (
        agreement_rate_ci,
        cohen_kappa_ci,
        krippendorff_alpha_ci,
    )

    annotators = sorted({a for per in human.values() for a in per})
    cluster_of = dict(clusters or {})
    boot = {"n_resamples": n_resamples, "seed": seed}
    out = {}
    for d in dims:
        pairs, paired_items, no_majority, no_judge = [], [], 0, 0
        matrix, units = [], []
        for item, per in human.items():
            given = [per[a][d] for a in annotators if d in per.get(a, {})]
            if not given:
                continue
            j = (judge.get(item) or {}).get(d)
            matrix.append(
                [_CODES[per[a][d]] if d in per.get(a, {}) else None for a in annotators]
                + [None if j is None else _CODES[j]]
            )
            units.append(cluster_of.get(item, item))
            m = majority(given)
            if m is None:
                no_majority += 1
            elif j is None:
                no_judge += 1
            else:
                pairs.append((m, j))
                paired_items.append(cluster_of.get(item, item))
        humans, judged = [m for m, _ in pairs], [j for _, j in pairs]
        rate = agreement_rate_ci(humans, judged, paired_items, **boot)
        kappa = cohen_kappa_ci(humans, judged, list(_CODES), paired_items, **boot)
        # raters × items
        raters = np.array(
            [[np.nan if v is None else v for v in row] for row in matrix], float
        ).T.reshape(len(annotators) + 1, len(matrix))
        alpha = krippendorff_alpha_ci(raters, units, "nominal", **boot)
        out[d] = {
            "n": len(pairs),
            "n_clusters": rate.n_clusters,
            "agreement": rate.value,
            "agreement_ci_low": rate.low,
            "agreement_ci_high": rate.high,
            "kappa": kappa.value,
            "kappa_ci_low": kappa.low,
            "kappa_ci_high": kappa.high,
            "alpha": alpha.value,
            "alpha_ci_low": alpha.low,
            "alpha_ci_high": alpha.high,
            "n_no_majority": no_majority,
            "n_no_judge_outcome": no_judge,
            "n_annotators": len(annotators),
        }
    return out
