"""`kardiabench annotate RUN_A RUN_B`: a blinded human A/B study of two runs' responses.

The annotators see neither model name nor which run is on which side: each item's sides are drawn
(seeded) and recorded only in DIR/key.json, which `annotate import` uses to unblind and which the
annotators must not be sent. Every text of the data and of the models goes into the pages as JSON
inside `<script type="application/json">` (every `<` escaped) and is put on screen with
`textContent`, so a response that holds markup shows it as text. The page loads nothing from the
network (inline CSS and JS, and a Content-Security-Policy that forbids it).
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Literal
from xml.sax.saxutils import quoteattr

from pydantic import BaseModel, ValidationError

from kardiabench.records import Item
from kardiabench.runs import DataInfo, RunDir, load_run, now, one_line
from kardiabench.scoring.rubric import Rubric, load_rubric

log = logging.getLogger("kardiabench")

KEY = "key.json"
PAGE = "annotator-{}.html"
LABEL_STUDIO = "label-studio"
SCHEMA_VERSION = 1
_TEMPLATE = Path(__file__).resolve().parent.parent / "resources" / "annotation" / "page.html"
_DATA_MARK = "__KB_DATA__"
Side = Literal["A", "B"]


class AnnotateError(ValueError):
    """A user's mistake in an annotation study (runs, key, exported files); one line naming the file."""


class KeyItem(BaseModel):
    item_id: str
    dialogue_id: str  # the cluster of the win-rate intervals
    left: Side  # the run shown on the left ("Response A" on the page)
    # response_hash(run A's response, run B's): `import --adjudicate-with` checks the runs still give them
    responses: str | None = None


class StudyRun(BaseModel):
    path: str
    model: str


class StudyKey(BaseModel):
    """DIR/key.json: which run each item shows on the left. Not for the annotators' eyes."""

    schema_version: int = SCHEMA_VERSION
    study_id: str
    created: str
    seed: int
    run_a: StudyRun
    run_b: StudyRun
    data_source: str
    data_split: str | None
    annotators: list[str]  # "ann1", "ann2", … (annotator-1.html is ann1's page)
    dimensions: list[str]
    items: list[KeyItem]  # in the order the pages show them


@dataclass(frozen=True, slots=True)
class Study:
    """What `create_study` wrote: the key and the files."""

    key: StudyKey
    folder: Path
    pages: list[Path]
    label_studio: Path
    n_shared: int  # items both runs answered (the sample is drawn from these)


def response_hash(response_a: str, response_b: str) -> str:
    """16 hex over run A's and run B's response to one item (key.json `responses`)."""
    blob = json.dumps([response_a, response_b], ensure_ascii=False)
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()[:16]


def read_key(folder: str | Path) -> StudyKey:
    path = Path(folder) / KEY
    if not path.is_file():
        raise AnnotateError(
            f"{path}: no study key here (write the study with `kardiabench annotate RUN_A RUN_B --output {folder}`)"
        )
    try:
        return StudyKey.model_validate_json(path.read_bytes())
    except ValidationError as e:
        raise AnnotateError(one_line(path, e)) from None


def _answers(path: Path) -> tuple[StudyRun, DataInfo, dict[str, Item], dict[str, str]]:
    """A run's identity, manifest data block, items and usable response spans (item id → text)."""
    from kardiabench.score_stage import run_inputs
    from kardiabench.scoring.judge import candidate_response

    run = load_run(path)
    _, items, manifest = run_inputs(RunDir(path))
    preds = RunDir(path).read_predictions()
    responses = {
        i: text for i, p in preds.items() if (text := candidate_response(p)[0]) is not None
    }
    return (
        StudyRun(path=str(path), model=run.model),
        manifest.data,
        {it.item_id: it for it in items},
        responses,
    )


def _shared(
    a: Path, b: Path
) -> tuple[StudyRun, StudyRun, DataInfo, list[Item], dict[str, tuple[str, str]]]:
    run_a, data_a, items, resp_a = _answers(a)
    run_b, data_b, _, resp_b = _answers(b)
    where = [
        (k, getattr(data_a, k), getattr(data_b, k))
        for k in ("source", "split")
        if getattr(data_a, k) != getattr(data_b, k)
    ]
    if where:
        differ = "; ".join(f"{k} {x} vs {y}" for k, x, y in where)
        raise AnnotateError(
            f"{a} and {b} are runs over different data ({differ}): an A/B study compares answers to the same items"
        )
    shared = sorted(i for i in resp_a.keys() & resp_b.keys() if i in items)
    if not shared:
        raise AnnotateError(
            f"{a} and {b}: no item has a response from both runs; nothing to annotate"
        )
    return (
        run_a,
        run_b,
        data_a,
        [items[i] for i in shared],
        {i: (resp_a[i], resp_b[i]) for i in shared},
    )


def create_study(
    run_a: str | Path,
    run_b: str | Path,
    output: str | Path,
    *,
    n: int = 160,
    annotators: int = 3,
    seed: int = 0,
    rubric: str | Path | None = None,
) -> Study:
    """Sample `n` items both runs answered (seeded), shuffle the sides per item and write DIR/key.json,
    DIR/annotator-1.html … and DIR/label-studio/{config.xml,tasks.json}. The same inputs and seed give
    the same study (the same study id, so an annotator's saved progress still applies)."""
    import numpy as np

    if n < 1 or annotators < 1:
        raise AnnotateError(
            f"--n and --annotators must be at least 1 (got n={n}, annotators={annotators})"
        )
    a, b, folder = Path(run_a), Path(run_b), Path(output)
    spec_a, spec_b, data, items, responses = _shared(a, b)
    if len(items) < n:
        log.info(
            f"note: the runs share {len(items)} answered items, fewer than --n {n}: all {len(items)} are used"
        )
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(items))[: min(n, len(items))]
    sides = rng.integers(0, 2, len(order))
    chosen = [items[i] for i in order]
    key_items = [
        KeyItem(
            item_id=it.item_id,
            dialogue_id=it.dialogue_id,
            left="A" if s == 0 else "B",
            responses=response_hash(*responses[it.item_id]),
        )
        for it, s in zip(chosen, sides, strict=True)
    ]
    rub = load_rubric(rubric)
    identity = json.dumps(
        [
            spec_a.model,
            spec_b.model,
            data.fingerprint,
            seed,
            annotators,
            rub.version,
            [(k.item_id, k.left) for k in key_items],
        ]
    )
    study_id = "s" + hashlib.sha256(identity.encode()).hexdigest()[:12]
    _refuse_other_study(folder, study_id)
    key = StudyKey(
        study_id=study_id,
        created=now(),
        seed=seed,
        run_a=spec_a,
        run_b=spec_b,
        data_source=data.source,
        data_split=data.split,
        annotators=[f"ann{k}" for k in range(1, annotators + 1)],
        dimensions=list(rub.names),
        items=key_items,
    )
    shown = [
        _shown_item(it, k.left, responses[it.item_id])
        for it, k in zip(chosen, key_items, strict=True)
    ]
    store = RunDir(folder)
    store.write_json(KEY, key.model_dump(mode="json"))
    pages = [
        _write_page(folder / PAGE.format(k), study_id, name, rub, shown)
        for k, name in enumerate(key.annotators, start=1)
    ]
    ls = _write_label_studio(folder / LABEL_STUDIO, study_id, rub, shown)
    log.info(
        f"annotate: {len(key_items)} items, {annotators} annotator page(s) → {folder} (study {study_id}; keep {KEY} from the annotators)"
    )
    return Study(key, folder, pages, ls, len(items))


def _refuse_other_study(folder: Path, study_id: str) -> None:
    """Writing over another study's pages would orphan the progress its annotators keep in their browsers."""
    path = folder / KEY
    if not path.exists():
        return
    try:
        old = json.loads(path.read_text(encoding="utf-8")).get("study_id")
    except (ValueError, AttributeError):
        old = None
    if old != study_id:
        raise AnnotateError(
            f"{folder} holds another study ({old}); choose another --output (or remove the folder)"
        )


def _shown_item(item: Item, left: Side, responses: tuple[str, str]) -> dict:
    """What an annotator sees of one item: blinded, the responses as left/right only."""
    from kardiabench.scoring.judge import shown_history

    a, b = responses
    return {
        "item_id": item.item_id,
        "persona": item.person or item.system_prompt or "(no profile)",
        "situation": item.situation or "(not given)",
        "history": [{"role": r, "text": t} for r, t in shown_history(item.history)],
        "user_message": item.user_message,
        "left": a if left == "A" else b,
        "right": b if left == "A" else a,
    }


def embedded_json(data: object) -> str:
    """JSON safe inside a <script> element: no `<` at all, so neither `</script>` nor `<!--` can end
    or change it; JSON.parse reads \\u003c back as `<`."""
    return json.dumps(data, ensure_ascii=False).replace("<", "\\u003c")


def _write_page(
    path: Path, study_id: str, annotator: str, rubric: Rubric, items: list[dict]
) -> Path:
    data = {
        "study_id": study_id,
        "annotator": annotator,
        "items": items,
        "dimensions": [
            {"name": d.name, "title": d.title, "definition": d.definition, "levels": list(d.levels)}
            for d in rubric.dimensions
        ],
    }
    html = _TEMPLATE.read_text(encoding="utf-8")
    path.write_text(html.replace(_DATA_MARK, embedded_json(data), 1), encoding="utf-8")
    return path


def _history_lines(history: list[dict]) -> str:
    lines = [f"{'User' if t['role'] == 'user' else 'Assistant'}: {t['text']}" for t in history]
    return "\n\n".join(lines) or "(none: this is the first turn)"


def _write_label_studio(folder: Path, study_id: str, rubric: Rubric, items: list[dict]) -> Path:
    """A labeling config (the case as Text, one Choices A / B / tie per dimension, the rubric's
    text in collapsible panels) and one blinded task per item."""

    def header(text: str, size: int = 5) -> str:
        return f'<Header value={quoteattr(text)} size="{size}"/>'

    parts = [
        "<View>",
        header("Persona"),
        '<Text name="persona" value="$persona"/>',
        header("Situation"),
        '<Text name="situation" value="$situation"/>',
        header("Dialogue so far"),
        '<Text name="history" value="$history"/>',
        header("User's last message"),
        '<Text name="user_message" value="$user_message"/>',
        header("Response A"),
        '<Text name="response_a" value="$response_a"/>',
        header("Response B"),
        '<Text name="response_b" value="$response_b"/>',
    ]
    for d in rubric.dimensions:
        levels = "".join(header(f"{k}: {text}", 6) for k, text in enumerate(d.levels, start=1))
        parts += [
            header(d.title, 4),
            f"<Collapse><Panel value={quoteattr('What ' + d.title + ' means')}>{header(d.definition, 6)}{levels}</Panel></Collapse>",
            f'<Choices name="{d.name}" toName="response_a" choice="single" showInline="true">',
            '<Choice value="A"/><Choice value="B"/><Choice value="tie"/>',
            "</Choices>",
        ]
    parts.append("</View>")
    tasks = [
        {
            "data": {
                "study_id": study_id,
                "item_id": it["item_id"],
                "persona": it["persona"],
                "situation": it["situation"],
                "history": _history_lines(it["history"]),
                "user_message": it["user_message"],
                "response_a": it["left"],
                "response_b": it["right"],
            }
        }
        for it in items
    ]
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "config.xml").write_text("\n".join(parts) + "\n", encoding="utf-8")
    RunDir(folder).write_json("tasks.json", tasks)
    return folder
