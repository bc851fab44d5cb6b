"""`annotate import --adjudicate-with SPEC`: the paper's supervising LLM settles what stays unresolved.

After the annotators' majority and the adjudication file, every labelled (item, dimension) cell
without an outcome is put to an LLM pairwise judge through the machinery of `kardiabench pairwise`
(pairwise_stage.pair_cases: both orders, a verdict that flips with the order is a tie; cache;
resume; repairs; unparseable verdicts counted, never defaulted). Only the items with such a cell
are sent, each once per order with every study dimension in one verdict (the prompt, and so the
saved verdict, does not change when fewer cells are unresolved on a rerun); only the unresolved
cells' outcomes are used. The verdicts go to DIR/adjudication_judgments.jsonl, so a rerun asks
nothing again.

The judge must see what the annotators saw: key.json names run A's and run B's folders and holds a
hash of the two responses of every item; a folder that is gone, or predictions that no longer give
those responses, is refused (AnnotateError, one line) before any request.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from pydantic import BaseModel

from kardiabench.annotation.study import KEY, AnnotateError, StudyKey, response_hash
from kardiabench.scoring.preference import Outcome

if TYPE_CHECKING:
    from kardiabench.judge_stage import JudgeOptions

log = logging.getLogger("kardiabench")

ADJUDICATION_JUDGMENTS = "adjudication_judgments.jsonl"


@dataclass(frozen=True)
class LLMAdjudicator:
    """The adjudicating judge and how it is asked. `judging`: judge_stage.JudgeOptions with one spec."""

    judging: JudgeOptions
    temperature: float = 0.0
    seed: int = 0
    cache_path: Path | None = None
    progress: bool = False


class LLMAdjudication(BaseModel):
    """results.json `llm_adjudication`: who settled what, and what could not be settled."""

    judge: str  # the model spec
    endpoint_host: str | None  # the endpoint's host name only (never a key, path or query)
    version: str  # the pairwise prompt version every verdict records
    temperature: float
    seed: int
    repeats: int
    verdicts_file: str
    n_items_asked: int  # items with an unresolved cell, each judged in both orders
    n_cells_asked: int  # unresolved (item, dimension) cells put to the judge
    n_cells_settled: int  # of them, given an outcome (a verdict that flips with the order: tie)
    n_cells_unresolved: int  # of them, still without one (unparseable verdicts): left out, counted
    n_verdicts: int
    n_unparseable: int  # verdicts without a usable answer after repairs (unscored)
    unscored_by_reason: dict[str, int]
    requests: int  # sent by this call (0 when every verdict was already saved)
    reused_verdicts: int


def _host(endpoint: str | None) -> str | None:
    hosts = sorted({urlsplit(u.strip()).hostname or "" for u in (endpoint or "").split(",")})
    return ", ".join(h for h in hosts if h) or None


def study_runs(folder: Path, key: StudyKey):
    """Run A and run B as pairwise_stage.RunInput, checked to still hold the responses the study
    showed; AnnotateError naming the folder or item otherwise."""
    from kardiabench.pairwise_stage import load_runs
    from kardiabench.scoring.judge import candidate_response

    where = folder / KEY
    for side, run in (("A", key.run_a), ("B", key.run_b)):
        if not (Path(run.path) / "predictions.jsonl").is_file():
            raise AnnotateError(
                f"{where}: run {side}'s folder {run.path} is gone (no predictions.jsonl there); "
                "--adjudicate-with needs both runs as the study showed them"
            )
    a, b = load_runs([key.run_a.path, key.run_b.path])
    for k in key.items:
        if k.responses is None:
            raise AnnotateError(
                f"{where}: item {k.item_id} has no response hash (a study written before "
                "--adjudicate-with); write the study again with the same `kardiabench annotate` command"
            )
        ra = candidate_response(a.predictions.get(k.item_id))[0]
        rb = candidate_response(b.predictions.get(k.item_id))[0]
        if ra is None or rb is None or response_hash(ra, rb) != k.responses:
            raise AnnotateError(
                f"{where}: item {k.item_id}: the responses in {a.path} and {b.path} are not those the "
                "study showed (the runs changed since `annotate`); the judge would settle other answers"
            )
    return a, b


def adjudicate(
    folder: Path,
    key: StudyKey,
    pending: Mapping[str, Sequence[str]],
    adjudicator: LLMAdjudicator,
) -> tuple[dict[str, dict[str, Outcome | None]], LLMAdjudication]:
    """Ask the judge about the items in `pending` (item id → its unresolved dimensions): the
    outcome of each of those cells from run A's side (None: no usable verdict), and the record."""
    from kardiabench.cache import Cache
    from kardiabench.judging import judge_cases
    from kardiabench.pairwise_stage import pair_cases, pair_items, pairwise_scheme
    from kardiabench.redact import model_endpoint
    from kardiabench.runs import RunDir
    from kardiabench.scoring.pairwise import load_template
    from kardiabench.scoring.rubric import load_rubric

    a, b = study_runs(folder, key)
    judging = adjudicator.judging
    cfg = dataclasses.replace(
        judging.config(), temperature=adjudicator.temperature, seed=adjudicator.seed
    )
    try:
        template = load_template(load_rubric(cfg.rubric_path), key.dimensions)
    except ValueError as e:
        raise AnnotateError(f"{folder / KEY}: dimensions: {e}") from None
    items = [it for it in a.items if it.item_id in pending]
    cases = pair_cases(template, a, b, items, cfg)
    models = judging.models()
    if cases:
        judging.probe()
    cache = Cache(adjudicator.cache_path) if adjudicator.cache_path and cases else None
    try:
        judgments, _, stats = asyncio.run(
            judge_cases(
                cases,
                pairwise_scheme(template),
                models,
                cfg,
                RunDir(folder),
                cache,
                adjudicator.progress,
                verdicts=ADJUDICATION_JUDGMENTS,
            )
        )
    finally:
        if cache is not None:
            cache.close()
    outcomes = {
        it.item_id: {d: it.outcome(d) for d in pending[it.item_id]}
        for it in pair_items(a, b, items, judgments, template.names)
    }
    cells = [o for per in outcomes.values() for o in per.values()]
    bad = Counter(j.reason or "?" for j in judgments if j.status != "scored")
    st = stats.get(models[0].spec)
    record = LLMAdjudication(
        judge=models[0].spec,
        endpoint_host=_host(model_endpoint(models[0])),
        version=template.version,
        temperature=cfg.temperature,
        seed=cfg.seed,
        repeats=cfg.repeats,
        verdicts_file=ADJUDICATION_JUDGMENTS,
        n_items_asked=len(items),
        n_cells_asked=len(cells),
        n_cells_settled=sum(o is not None for o in cells),
        n_cells_unresolved=sum(o is None for o in cells),
        n_verdicts=len(judgments),
        n_unparseable=sum(bad.values()),
        unscored_by_reason=dict(sorted(bad.items())),
        requests=st.requests if st else 0,
        reused_verdicts=st.reused_verdicts if st else 0,
    )
    log.info(
        f"adjudication by {record.judge}: {record.n_cells_settled} of {record.n_cells_asked} unresolved "
        f"cell(s) settled on {record.n_items_asked} item(s); {record.requests} request(s), "
        f"{record.reused_verdicts} verdict(s) reused from {folder / ADJUDICATION_JUDGMENTS}; "
        f"{record.n_unparseable} unparseable verdict(s)"
    )
    return outcomes, record
