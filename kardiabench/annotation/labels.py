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
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel

from kardiabench.annotation.adjudicate import LLMAdjudication, LLMAdjudicator, adjudicate
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
    """Inter-annotator agreement on one dimension (None: undefined, e.g. every label the same), each
    with a 95% bootstrap interval resampling dialogues (None with fewer than two)."""

    fleiss_kappa: float | None
    fleiss_kappa_ci_low: float | None = None
    fleiss_kappa_ci_high: float | None = None
    fleiss_n_items: int  # items every annotator labelled
    krippendorff_alpha: float | None  # nominal
    krippendorff_alpha_ci_low: float | None = None
    krippendorff_alpha_ci_high: float | None = None
    alpha_n_items: int  # items two or more annotators labelled
    n_clusters: int = 0  # dialogues of the alpha items


def agreement(
    table: list[list[Outcome | None]],
    clusters: Sequence[str] | None = None,
    *,
    resamples: int = 1000,
    seed: int = 0,
) -> Agreement:
    """`table`: annotators × items, None where an annotator gave no label; `clusters`: each item's
    dialogue (default: every item its own)."""
    from kardiabench.scoring.agreement import fleiss_kappa_ci, krippendorff_alpha_ci

    code = {o: i for i, o in enumerate(OUTCOMES)}
    columns = list(zip(*table, strict=True)) if table else []
    clusters = list(clusters) if clusters is not None else [str(i) for i in range(len(columns))]
    complete = [i for i, col in enumerate(columns) if all(v is not None for v in col)]
    counts = [[columns[i].count(o) for o in OUTCOMES] for i in complete]
    matrix = [[None if v is None else code[v] for v in row] for row in table]
    kappa = (
        fleiss_kappa_ci(counts, [clusters[i] for i in complete], n_resamples=resamples, seed=seed)
        if complete and len(table) >= 2
        else None
    )
    alpha = (
        krippendorff_alpha_ci(matrix, clusters, "nominal", n_resamples=resamples, seed=seed)
        if columns
        else None
    )
    return Agreement(
        fleiss_kappa=kappa and kappa.value,
        fleiss_kappa_ci_low=kappa and kappa.low,
        fleiss_kappa_ci_high=kappa and kappa.high,
        fleiss_n_items=len(complete) if len(table) >= 2 else 0,
        krippendorff_alpha=alpha and alpha.value,
        krippendorff_alpha_ci_low=alpha and alpha.low,
        krippendorff_alpha_ci_high=alpha and alpha.high,
        alpha_n_items=alpha.n if alpha else 0,
        n_clusters=alpha.n_clusters if alpha else 0,
    )


class DimensionResult(BaseModel):
    win: WinRate  # run A against run B; win_rate counts a tie as half
    agreement: Agreement
    n_labelled: int  # items at least one annotator labelled on this dimension
    n_majority: int  # outcomes decided by a majority of the annotators
    n_adjudicated: int  # unresolved outcomes settled by the adjudication file
    n_adjudicated_llm: int = 0  # unresolved outcomes settled by the LLM judge (--adjudicate-with)
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
    llm_adjudication: LLMAdjudication | None = None  # --adjudicate-with: the judge and its counts
    discussion_items: list[str]  # item ids with a disagreement on some dimension (discussion.md)
    dimensions: dict[str, DimensionResult]
    resamples: int
    seed: int


# how an outcome was reached: the annotators' majority, the adjudication file, the LLM judge
Source = Literal["majority", "file", "llm"]


@dataclass
class Cells:
    """Per dimension and item (in key order): the outcome from run A's side and how it was reached
    (None, None: unresolved or unlabelled)."""

    outcome: dict[str, list[Outcome | None]]
    source: dict[str, list[Source | None]]
    labelled: dict[str, list[bool]]
    ignored: int  # adjudication-file cells a majority had already decided

    def unresolved(self, items: Sequence[str]) -> dict[str, list[str]]:
        """item id → its labelled dimensions without an outcome."""
        out: dict[str, list[str]] = {}
        for d, outs in self.outcome.items():
            for i, o in enumerate(outs):
                if o is None and self.labelled[d][i]:
                    out.setdefault(items[i], []).append(d)
        return out


def decide(
    key: StudyKey,
    votes: Mapping[str, list[list[Outcome | None]]],
    n_annotators: int,
    settled: Mapping[str, Mapping[str, Outcome]],
) -> Cells:
    """The majority of the annotators, else the adjudication file."""
    cells = Cells({}, {}, {}, 0)
    for d, table in votes.items():
        outs, srcs, lab = [], [], []
        for i, k in enumerate(key.items):
            given = [row[i] for row in table if row[i] is not None]
            outcome = majority(given, n_annotators)
            adj = settled.get(k.item_id, {}).get(d)
            source: Source | None = "majority" if outcome is not None else None
            if outcome is not None:
                cells.ignored += adj is not None
            elif adj is not None:
                outcome, source = adj, "file"
            outs.append(outcome)
            srcs.append(source)
            lab.append(bool(given))
        cells.outcome[d], cells.source[d], cells.labelled[d] = outs, srcs, lab
    return cells


def import_labels(
    folder: str | Path,
    files: Sequence[str | Path],
    *,
    adjudication: str | Path | None = None,
    adjudicate_with: LLMAdjudicator | None = None,
    resamples: int = 1000,
    seed: int = 0,
) -> AnnotationResults:
    """Read, unblind and count the annotators' exports; write DIR/human_labels.jsonl, discussion.md,
    results.json and summary.md. `adjudicate_with`: an LLM pairwise judge for the cells the
    majority and the adjudication file left unresolved (annotation/adjudicate.py). Nothing is
    written when a file is refused or the runs no longer give what the study showed."""
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
    ids = [k.item_id for k in key.items]
    cells = decide(key, votes, len(labels), settled)
    llm = None
    if adjudicate_with is not None:
        asked, llm = adjudicate(folder, key, cells.unresolved(ids), adjudicate_with)
        for d in key.dimensions:
            for i, item in enumerate(ids):
                if (o := asked.get(item, {}).get(d)) is not None:
                    cells.outcome[d][i], cells.source[d][i] = o, "llm"
    clusters = [k.dialogue_id for k in key.items]
    dims: dict[str, DimensionResult] = {}
    disagree: set[str] = set()
    for d, table in votes.items():
        n_dis = 0
        for i, item in enumerate(ids):
            if len({row[i] for row in table if row[i] is not None}) > 1:
                n_dis += 1
                disagree.add(item)
        outcomes, sources = cells.outcome[d], cells.source[d]
        n_labelled = sum(cells.labelled[d])
        dims[d] = DimensionResult(
            win=win_rate(outcomes, clusters, n_resamples=resamples, seed=seed),
            agreement=agreement(table, clusters, resamples=resamples, seed=seed),
            n_labelled=n_labelled,
            n_majority=sources.count("majority"),
            n_adjudicated=sources.count("file"),
            n_adjudicated_llm=sources.count("llm"),
            n_unresolved=sum(o is None for o in outcomes) - (len(ids) - n_labelled),
            n_disagreement=n_dis,
        )
    if cells.ignored:
        log.info(
            f"note: {cells.ignored} adjudicated outcome(s) were already decided by a majority of the annotators and are not used"
        )
    results = AnnotationResults(
        study_id=key.study_id,
        run_a=key.run_a,
        run_b=key.run_b,
        n_items=len(key.items),
        annotators=[lab.annotator for lab in labels],
        files=[str(f) for f in files],
        adjudication=None if adjudication is None else str(adjudication),
        n_adjudication_ignored=cells.ignored,
        llm_adjudication=llm,
        discussion_items=[i for i in ids if i in disagree],
        dimensions=dims,
        resamples=resamples,
        seed=seed,
    )
    write_jsonl_atomic(folder / HUMAN_LABELS, human_label_rows(key, labels))
    (folder / DISCUSSION).write_text(discussion_markdown(key, labels, cells), encoding="utf-8")
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


def as_shown(outcome: Outcome, left: Literal["A", "B"]) -> str:
    """An outcome from run A's side as the pages showed it ("A" = the left response)."""
    return "tie" if outcome == "tie" else "A" if outcome == left else "B"


_HOW = {"majority": "", "file": " (adjudication file)", "llm": " (LLM)"}


def discussion_markdown(
    key: StudyKey, labels: Sequence[AnnotatorLabels], cells: Cells | None = None
) -> str:
    """The items the annotators disagree on (or that no majority decided), blinded: the choices as
    the pages showed them, and the outcome with what settled it (majority, file, LLM)."""
    lines = [
        f"# Items to discuss: study {key.study_id}",
        "",
        "Every item on which the annotators did not all choose the same, with each annotator's choice as the pages show it "
        "(A = the left response) and the outcome (as shown): the majority's, else the adjudication file's, else the "
        "adjudicating LLM's (--adjudicate-with), else unresolved. Blinded: no model names. Settle what remains "
        "unresolved in an adjudication file (docs/annotate.md).",
        "",
    ]
    n = 0
    for pos, k in enumerate(key.items, start=1):
        rows = []
        for d in key.dimensions:
            given = [lab.choices.get(k.item_id, {}).get(d) for lab in labels]
            present = [g for g in given if g]
            if cells is None:
                top = majority([unblind(g, k.left) for g in present], len(labels))
                how = "majority" if top else None
            else:
                top, how = cells.outcome[d][pos - 1], cells.source[d][pos - 1]
            if len(set(present)) > 1 or (present and how != "majority"):
                outcome = f"{as_shown(top, k.left)}{_HOW[how]}" if top and how else "unresolved"
                rows.append([d, *(_AS_LABELLED[g] if g else "–" for g in given), outcome])
        if rows:
            n += 1
            lines += [
                f"## Item {pos} of {len(key.items)} (`{k.item_id}`)",
                "",
                markdown_table(["dimension", *(lab.annotator for lab in labels), "outcome"], rows),
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
                f"{res.n_majority} / {res.n_adjudicated} / {res.n_adjudicated_llm}",
                res.n_unresolved,
                f"{format_interval(a.fleiss_kappa, a.fleiss_kappa_ci_low, a.fleiss_kappa_ci_high, 3)} ({a.fleiss_n_items})",
                f"{format_interval(a.krippendorff_alpha, a.krippendorff_alpha_ci_low, a.krippendorff_alpha_ci_high, 3)} "
                f"({a.alpha_n_items})",
            ]
        )
    head = [
        "dimension",
        "A win rate % [95% CI]",
        "n",
        "A wins / ties / B wins",
        "sign test p",
        "settled by majority / file / LLM",
        "unresolved",
        "Fleiss' κ [95% CI] (n)",
        "Krippendorff's α [95% CI] (n)",
    ]
    llm = r.llm_adjudication
    judge = (
        [
            f"- adjudicating LLM: {llm.judge} ({llm.endpoint_host or 'in process'}; pairwise {llm.version}, both orders, "
            f"a verdict that flips with the order is a tie): {llm.n_cells_settled} of {llm.n_cells_asked} unresolved "
            f"cell(s) settled on {llm.n_items_asked} item(s); {llm.n_unparseable} unparseable verdict(s), "
            f"{llm.n_cells_unresolved} cell(s) left unresolved ({llm.verdicts_file})"
        ]
        if llm
        else []
    )
    return "\n".join(
        [
            f"# Human A/B annotation: study {r.study_id}",
            "",
            f"- run A: {r.run_a.model} ({r.run_a.path})",
            f"- run B: {r.run_b.model} ({r.run_b.path})",
            f"- {r.n_items} items; {len(r.annotators)} annotator(s): {', '.join(r.annotators)}",
            f"- adjudication: {r.adjudication or 'none'}; {len(r.discussion_items)} item(s) to discuss ({DISCUSSION})",
            *judge,
            "",
            markdown_table(head, rows, "lrrrrrrrr"),
            "",
            "Outcome per item: the choice of more than half of the annotators, else the adjudication file, else the "
            "adjudicating LLM (--adjudicate-with), else unresolved (left out). "
            "The win rate counts a tie as half a win. Agreement over the annotators' A / B / tie labels, nominal. "
            f"Intervals resample dialogues ({r.resamples} resamples, seed {r.seed}).",
            "",
        ]
    )
