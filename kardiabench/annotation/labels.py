"""`kardiabench annotate import DIR FILES…`: the annotators' choices unblinded and counted.

FILES are the JSON files the pages' export button writes and/or a Label Studio JSON export of the
project `annotate` wrote. Each choice is given as shown (left = "Response A" on the page) and is
turned into an outcome from run A's side with DIR/key.json. Per item and dimension the outcome is
the choice of more than half of the annotators imported; without such a majority the cell is
unresolved, and an adjudication file (JSONL: item_id and outcomes from run A's side) settles it.
Still unresolved cells are left out of the win rate and counted (`n_unscored`), never guessed.

Agreement per dimension over the annotators' unblinded outcomes (A / B / tie, nominal): Fleiss'
kappa on the items every annotator labelled, Krippendorff's alpha on every item two or more
labelled. DIR gets human_labels.jsonl (one row per item and annotator, the contract `judge-agreement`
reads), discussion.md (every item with a disagreement, blinded), results.json and summary.md.
"""

from __future__ import annotations

import json
import logging
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel

from kardiabench.annotation.study import AnnotateError, StudyKey, StudyRun, read_key
from kardiabench.jsonl import iter_jsonl_objects, write_jsonl_atomic
from kardiabench.runs import RunDir
from kardiabench.scoring.preference import OUTCOMES, Outcome, WinRate, win_rate
from kardiabench.tables import format_interval, markdown_table

log = logging.getLogger("kardiabench")

HUMAN_LABELS = "human_labels.jsonl"
DISCUSSION = "discussion.md"
RESULTS = "results.json"
SUMMARY = "summary.md"
PAGE_FORMAT = "kardiabench-annotation"
Shown = Literal["left", "right", "tie"]
SHOWN: tuple[Shown, ...] = ("left", "right", "tie")
_AS_LABELLED = {
    "left": "A",
    "right": "B",
    "tie": "tie",
}  # how the page and Label Studio name the shown sides
_FROM_LABELLED = {v: k for k, v in _AS_LABELLED.items()}


@dataclass(frozen=True, slots=True)
class AnnotatorLabels:
    """One annotator's choices as shown: item id → dimension → left / right / tie."""

    annotator: str
    source: str  # the file they came from
    choices: dict[str, dict[str, Shown]]


def unblind(choice: Shown, left: Literal["A", "B"]) -> Outcome:
    """A choice as shown → the outcome from run A's side (`left`: the run shown on the left)."""
    if choice == "tie":
        return "tie"
    other = "B" if left == "A" else "A"
    return left if choice == "left" else other


# ----------------------------------------------------------------------------- reading the files


def read_exports(paths: Sequence[str | Path], key: StudyKey) -> list[AnnotatorLabels]:
    """Every annotator of every file, checked against the key (study id, items, dimensions, values)."""
    found: list[AnnotatorLabels] = []
    for p in map(Path, paths):
        try:
            obj = json.loads(p.read_bytes())
        except ValueError as e:
            raise AnnotateError(f"{p}: not valid JSON ({e})") from None
        if isinstance(obj, dict) and obj.get("format") == PAGE_FORMAT:
            labels = [_page_export(p, obj, key)]
        elif isinstance(obj, list):
            labels = _label_studio_export(p, obj, key)
        else:
            raise AnnotateError(
                f"{p}: neither a page's export (format {PAGE_FORMAT!r}) nor a Label Studio JSON export (a list of tasks)"
            )
        for lab in labels:
            seen = next((f.source for f in found if f.annotator == lab.annotator), None)
            if seen is not None:
                raise AnnotateError(
                    f"{p}: annotator {lab.annotator} is also in {seen}; give each annotator's latest export once"
                )
            found.append(lab)
    return found


def _study_id(path: Path, where: str, study_id: Any, key: StudyKey) -> None:
    if study_id != key.study_id:
        raise AnnotateError(
            f"{path}: {where}study id {study_id!r} does not match key.json ({key.study_id}): an export of another study"
        )


def _choice(
    path: Path,
    where: str,
    item_id: Any,
    dim: str,
    value: Any,
    key: StudyKey,
    allowed: dict[str, str],
) -> Shown:
    if item_id not in _item_ids(key):
        raise AnnotateError(
            f"{path}: {where}item {item_id!r} is not an item of study {key.study_id}"
        )
    if dim not in key.dimensions:
        raise AnnotateError(
            f"{path}: {where}{item_id}: {dim!r} is not a dimension of this study ({', '.join(key.dimensions)})"
        )
    if value not in allowed:
        raise AnnotateError(
            f"{path}: {where}{item_id}.{dim}: {value!r} is not one of {', '.join(allowed)}"
        )
    return allowed[value]  # type: ignore[return-value]


def _item_ids(key: StudyKey) -> set[str]:
    return {k.item_id for k in key.items}


def _page_export(path: Path, obj: dict, key: StudyKey) -> AnnotatorLabels:
    _study_id(path, "", obj.get("study_id"), key)
    annotator, choices = obj.get("annotator"), obj.get("choices")
    if annotator not in key.annotators:
        raise AnnotateError(
            f"{path}: annotator {annotator!r} is not one of the study's ({', '.join(key.annotators)})"
        )
    if not isinstance(choices, dict) or not all(isinstance(c, dict) for c in choices.values()):
        raise AnnotateError(
            f"{path}: choices: expected an object of item id → {{dimension: left|right|tie}}"
        )
    same = dict(zip(SHOWN, SHOWN, strict=True))
    out = {
        i: {d: _choice(path, "choices.", i, d, v, key, same) for d, v in c.items()}
        for i, c in choices.items()
    }
    return AnnotatorLabels(annotator, str(path), out)


def _label_studio_export(path: Path, tasks: list, key: StudyKey) -> list[AnnotatorLabels]:
    """Label Studio's JSON export (tasks with `annotations[].result[]`) or its JSON-MIN export
    (one flat row per task and annotator). Annotators are named `ls-<user id>`."""
    by_annotator: dict[str, dict[str, dict[str, Shown]]] = {}
    for n, task in enumerate(tasks):
        where = f"task {n}: "
        if not isinstance(task, dict):
            raise AnnotateError(f"{path}: {where}expected an object")
        data = task.get("data", task)
        if not isinstance(data, dict):
            raise AnnotateError(f"{path}: {where}data: expected an object")
        _study_id(path, where, data.get("study_id"), key)
        item = data.get("item_id")
        if "data" not in task:  # JSON-MIN: the dimensions are columns of the row
            who = f"ls-{_user(task.get('annotator'))}"
            for d in key.dimensions:
                if task.get(d) is not None:
                    by_annotator.setdefault(who, {}).setdefault(item, {})[d] = _choice(
                        path, where, item, d, task[d], key, _FROM_LABELLED
                    )
            continue
        for ann in task.get("annotations") or []:
            if not isinstance(ann, dict) or ann.get("was_cancelled"):
                continue
            who = f"ls-{_user(ann.get('completed_by'))}"
            for r in ann.get("result") or []:
                if (
                    not isinstance(r, dict)
                    or r.get("type") != "choices"
                    or not isinstance(r.get("value"), dict)
                ):
                    continue
                value = r["value"].get("choices")
                if not isinstance(value, list) or not value:
                    continue
                by_annotator.setdefault(who, {}).setdefault(item, {})[r.get("from_name")] = _choice(
                    path, where, item, str(r.get("from_name")), value[0], key, _FROM_LABELLED
                )
    return [AnnotatorLabels(who, str(path), choices) for who, choices in by_annotator.items()]


def _user(completed_by: Any) -> str:
    """Label Studio's annotator: a user id, or an object with one (never the e-mail address)."""
    return str(completed_by.get("id") if isinstance(completed_by, dict) else completed_by)


def read_adjudication(path: str | Path, key: StudyKey) -> dict[str, dict[str, Outcome]]:
    """JSONL rows {"item_id": …, "<dimension>": "A"|"B"|"tie", …}, outcomes from run A's side."""
    p = Path(path)
    out: dict[str, dict[str, Outcome]] = {}
    for line, row in iter_jsonl_objects(p, AnnotateError):
        item = row.get("item_id")
        if item not in _item_ids(key):
            raise AnnotateError(
                f"{p}:{line}: item_id {item!r} is not an item of study {key.study_id}"
            )
        for d in key.dimensions:
            if row.get(d) is not None:
                if row[d] not in OUTCOMES:
                    raise AnnotateError(
                        f"{p}:{line}: {d}: {row[d]!r} is not one of A, B, tie (from run A's side)"
                    )
                out.setdefault(item, {})[d] = row[d]
    return out


# ----------------------------------------------------------------------------- the statistics


def majority(votes: Sequence[Outcome], n_annotators: int) -> Outcome | None:
    """The outcome more than half of the study's annotators chose, else None (unresolved)."""
    if not votes:
        return None
    outcome, count = Counter(votes).most_common(1)[0]
    return outcome if count * 2 > n_annotators else None


class Agreement(BaseModel):
    """Inter-annotator agreement on one dimension (None: undefined, e.g. every label the same)."""

    fleiss_kappa: float | None
    fleiss_n_items: int  # items every annotator labelled
    krippendorff_alpha: float | None  # nominal
    alpha_n_items: int  # items two or more annotators labelled


def agreement(table: list[list[Outcome | None]]) -> Agreement:
    """`table`: annotators × items, None where an annotator gave no label."""
    from kardiabench.scoring.agreement import fleiss_kappa, krippendorff_alpha

    code = {o: i for i, o in enumerate(OUTCOMES)}
    complete = [col for col in zip(*table, strict=True) if all(v is not None for v in col)]
    counts = [[col.count(o) for o in OUTCOMES] for col in complete]
    matrix = [[None if v is None else code[v] for v in row] for row in table]
    pairable = sum(sum(v is not None for v in col) >= 2 for col in zip(*table, strict=True))
    kappa = fleiss_kappa(counts) if complete and len(table) >= 2 else None
    return Agreement(
        fleiss_kappa=kappa,
        fleiss_n_items=len(complete) if len(table) >= 2 else 0,
        krippendorff_alpha=krippendorff_alpha(matrix, "nominal") if pairable else None,
        alpha_n_items=pairable,
    )


class DimensionResult(BaseModel):
    win: WinRate  # run A against run B; win_rate counts a tie as half
    agreement: Agreement
    n_labelled: int  # items at least one annotator labelled on this dimension
    n_majority: int  # outcomes decided by a majority of the annotators
    n_adjudicated: int  # unresolved outcomes settled by the adjudication file
    n_unresolved: int  # left out of the win rate (win.n_unscored also counts items nobody labelled)
    n_disagreement: int  # items whose annotators did not all choose the same


class AnnotationResults(BaseModel):
    """DIR/results.json of `annotate import`."""

    schema_version: int = 1
    study_id: str
    run_a: StudyRun
    run_b: StudyRun
    n_items: int
    annotators: list[str]
    files: list[str]
    adjudication: str | None
    n_adjudication_ignored: int  # adjudicated cells a majority had already decided
    discussion_items: list[str]  # item ids with a disagreement on some dimension (discussion.md)
    dimensions: dict[str, DimensionResult]
    resamples: int
    seed: int


def import_labels(
    folder: str | Path,
    files: Sequence[str | Path],
    *,
    adjudication: str | Path | None = None,
    resamples: int = 1000,
    seed: int = 0,
) -> AnnotationResults:
    """Read, unblind and count the annotators' exports; write DIR/human_labels.jsonl, discussion.md,
    results.json and summary.md. Nothing is written when a file is refused."""
    folder = Path(folder)
    key = read_key(folder)
    labels = read_exports(files, key)
    settled = read_adjudication(adjudication, key) if adjudication is not None else {}
    left = {k.item_id: k.left for k in key.items}
    # votes[dim][annotator index][item index]: the outcome from run A's side, None: no label
    votes = {
        d: [
            [
                unblind(c, left[k.item_id])
                if (c := lab.choices.get(k.item_id, {}).get(d))
                else None
                for k in key.items
            ]
            for lab in labels
        ]
        for d in key.dimensions
    }
    clusters = [k.dialogue_id for k in key.items]
    dims: dict[str, DimensionResult] = {}
    ignored = 0
    disagree: set[str] = set()
    for d, table in votes.items():
        outcomes, n_major, n_adj, n_labelled, n_dis = [], 0, 0, 0, 0
        for i, k in enumerate(key.items):
            given = [row[i] for row in table if row[i] is not None]
            n_labelled += bool(given)
            if len(set(given)) > 1:
                n_dis += 1
                disagree.add(k.item_id)
            outcome = majority(given, len(labels))
            adj = settled.get(k.item_id, {}).get(d)
            if outcome is not None:
                n_major += 1
                ignored += adj is not None
            elif adj is not None:
                outcome, n_adj = adj, n_adj + 1
            outcomes.append(outcome)
        win = win_rate(outcomes, clusters, n_resamples=resamples, seed=seed)
        n_unresolved = sum(o is None for o in outcomes) - (len(key.items) - n_labelled)
        dims[d] = DimensionResult(
            win=win,
            agreement=agreement(table),
            n_labelled=n_labelled,
            n_majority=n_major,
            n_adjudicated=n_adj,
            n_unresolved=n_unresolved,
            n_disagreement=n_dis,
        )
    if ignored:
        log.info(
            f"note: {ignored} adjudicated outcome(s) were already decided by a majority of the annotators and are not used"
        )
    results = AnnotationResults(
        study_id=key.study_id,
        run_a=key.run_a,
        run_b=key.run_b,
        n_items=len(key.items),
        annotators=[lab.annotator for lab in labels],
        files=[str(f) for f in files],
        adjudication=None if adjudication is None else str(adjudication),
        n_adjudication_ignored=ignored,
        discussion_items=[k.item_id for k in key.items if k.item_id in disagree],
        dimensions=dims,
        resamples=resamples,
        seed=seed,
    )
    write_jsonl_atomic(folder / HUMAN_LABELS, human_label_rows(key, labels))
    (folder / DISCUSSION).write_text(discussion_markdown(key, labels), encoding="utf-8")
    RunDir(folder).write_json(RESULTS, results.model_dump(mode="json"))
    (folder / SUMMARY).write_text(summary_markdown(results), encoding="utf-8")
    return results


# ----------------------------------------------------------------------------- the files


def human_label_rows(key: StudyKey, labels: Sequence[AnnotatorLabels]) -> list[dict[str, Any]]:
    """One row per item and annotator, outcomes unblinded (run A's side); unanswered dimensions absent."""
    rows = []
    for k in key.items:
        for lab in labels:
            chosen = lab.choices.get(k.item_id) or {}
            if chosen:
                rows.append(
                    {
                        "item_id": k.item_id,
                        "annotator": lab.annotator,
                        "run_a": key.run_a.model,
                        "run_b": key.run_b.model,
                        **{d: unblind(chosen[d], k.left) for d in key.dimensions if d in chosen},
                    }
                )
    return rows


def discussion_markdown(key: StudyKey, labels: Sequence[AnnotatorLabels]) -> str:
    """The items the annotators disagree on, blinded: the choices as the pages showed them."""
    lines = [
        f"# Items to discuss: study {key.study_id}",
        "",
        "Every item on which the annotators did not all choose the same, with each annotator's choice as the pages show it "
        "(A = the left response). Blinded: no model names. Settle what remains unresolved in an adjudication file "
        "(docs/annotate.md).",
        "",
    ]
    n = 0
    for pos, k in enumerate(key.items, start=1):
        rows = []
        for d in key.dimensions:
            given = [lab.choices.get(k.item_id, {}).get(d) for lab in labels]
            present = [g for g in given if g]
            if len(set(present)) > 1:
                top = majority(present, len(labels))  # type: ignore[arg-type]
                rows.append(
                    [
                        d,
                        *(_AS_LABELLED[g] if g else "–" for g in given),
                        _AS_LABELLED[top] if top else "unresolved",
                    ]
                )
        if rows:
            n += 1
            lines += [
                f"## Item {pos} of {len(key.items)} (`{k.item_id}`)",
                "",
                markdown_table(["dimension", *(lab.annotator for lab in labels), "majority"], rows),
                "",
            ]
    if not n:
        lines.append("No disagreements.")
    return "\n".join(lines).rstrip() + "\n"


def summary_markdown(r: AnnotationResults) -> str:
    def num(v: float | None, digits: int = 3) -> str:
        return "–" if v is None else f"{v:.{digits}f}"

    rows = []
    for d, res in r.dimensions.items():
        w, a = res.win, res.agreement
        rows.append(
            [
                d,
                format_interval(w.win_rate.value, w.win_rate.low, w.win_rate.high, 1),
                w.n,
                f"{w.wins} / {w.ties} / {w.losses}",
                num(w.sign_test_p),
                res.n_unresolved,
                f"{num(a.fleiss_kappa)} ({a.fleiss_n_items})",
                f"{num(a.krippendorff_alpha)} ({a.alpha_n_items})",
            ]
        )
    head = [
        "dimension",
        "A win rate % [95% CI]",
        "n",
        "A wins / ties / B wins",
        "sign test p",
        "unresolved",
        "Fleiss' κ (n)",
        "Krippendorff's α (n)",
    ]
    return "\n".join(
        [
            f"# Human A/B annotation: study {r.study_id}",
            "",
            f"- run A: {r.run_a.model} ({r.run_a.path})",
            f"- run B: {r.run_b.model} ({r.run_b.path})",
            f"- {r.n_items} items; {len(r.annotators)} annotator(s): {', '.join(r.annotators)}",
            f"- adjudication: {r.adjudication or 'none'}; {len(r.discussion_items)} item(s) to discuss ({DISCUSSION})",
            "",
            markdown_table(head, rows, "lrrrrrrr"),
            "",
            "Outcome per item: the choice of more than half of the annotators, else the adjudication, else unresolved (left out). "
            "The win rate counts a tie as half a win; intervals resample dialogues "
            f"({r.resamples} resamples, seed {r.seed}). Agreement over the annotators' A / B / tie labels, nominal.",
            "",
        ]
    )
