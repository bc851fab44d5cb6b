"""`kardiabench report` and summary.md beyond the sections: the items block's size at a few
thousand items, numbers with their intervals and n, and the judges' agreement (browser checks of
the page are in test_pages_browser.py)."""

from __future__ import annotations

import json
import shutil

import pytest
from helpers import report_rows
from leaderboard_runs import make_paged_run

from kardiabench.cli import main
from kardiabench.report import PAGE_SIZE, embedded_items
from kardiabench.tables import FEW_MARK, agreement_tables, format_interval


@pytest.fixture(scope="module")
def paged(tmp_path_factory):
    return make_paged_run(tmp_path_factory.mktemp("paged"))


def results(run):
    return json.loads((run / "results.json").read_text())


def test_summary_and_report_show_the_agreement_of_two_judges_and_of_repeats(paged):
    rubric = results(paged)["rubric"]
    empathy, relevance = (rubric["agreement"][d]["pairs"][0] for d in ("empathy", "relevance"))
    # judge-b scores empathy higher on some items
    assert empathy["alpha"] < 1 and relevance["alpha"] == 1
    fluency = rubric["repeat_variance"]["openai:judge-a"]["fluency"]
    assert (
        fluency["mean_variance"] > 0
        and rubric["repeat_variance"]["openai:judge-b"]["fluency"]["mean_variance"] == 0
    )
    summary = (paged / "summary.md").read_text()
    assert (
        "Agreement between judges:" in summary
        and "Agreement of each judge with itself (repeats):" in summary
    )
    assert (
        f"| Empathy (1–5) | openai:judge-a vs openai:judge-b | {empathy['n']} | {empathy['alpha']:.2f} | {empathy['kappa']:.2f} "
        f"| {100 * empathy['exact']:.1f} |"
    ) in summary
    assert (
        f"| openai:judge-a | Fluency (1–5) | {fluency['n_items']} | {fluency['mean_variance']:.2f} | {100 * fluency['disagreement_rate']:.1f} |"
        in summary
    )
    html = (paged / "report.html").read_text()
    assert (
        f'<td class="">Empathy (1–5)</td><td class="">openai:judge-a vs openai:judge-b</td><td class="num">{empathy["n"]}</td>'
        f'<td class="num">{empathy["alpha"]:.2f}</td><td class="num">{empathy["kappa"]:.2f}</td>'
    ) in html
    assert (
        f'<td class="">openai:judge-a</td><td class="">Fluency (1–5)</td><td class="num">{fluency["n_items"]}</td>'
        in html
    )
    # one judge, once: none
    assert (
        agreement_tables({"judges": ["openai:j"], "agreement": {}, "repeat_variance": {}}, {}) == []
    )


def test_report_numbers_have_intervals_n_and_names_in_words(paged, tmp_path):
    m = results(paged)["metrics"]
    html = (paged / "report.html").read_text()
    acc, emp = m["emotion_accuracy"], m["empathy"]
    assert (
        f'<td class="">Emotion accuracy (%)</td><td class="num">{format_interval(acc["value"], acc["ci_low"], acc["ci_high"], 1)}</td>'
        f'<td class="num">{acc["n"]}</td><td class="num">0</td>'
    ) in html
    assert (
        f'<td class="">Empathy (1–5)</td><td class="num">{format_interval(emp["value"], emp["ci_low"], emp["ci_high"], 2)}</td>'
        in html
    )
    assert (
        ">emotion_accuracy<" not in html
        and ">persona_consistency<" not in html
        and FEW_MARK not in html.split("<h2>Span")[0]
    )
    # a rubric mean over 5 of the 150 items is marked, and says so
    few = tmp_path / "few"
    shutil.copytree(paged, few)
    res = results(few)
    res["metrics"]["empathy"].update(n=5, n_unscored=145)
    (few / "results.json").write_text(json.dumps(res))
    assert main(["report", str(few)]) == 0
    page = (few / "report.html").read_text()
    value, ci = format_interval(emp["value"], emp["ci_low"], emp["ci_high"], 2).split(" ", 1)
    assert (
        f'<td class="">Empathy (1–5)</td><td class="num">{value}{FEW_MARK} {ci}</td><td class="num">5</td><td class="num">145</td>'
        in page
    )
    assert f"{FEW_MARK}: over fewer than 30 items" in page


def test_report_items_are_one_compressed_block_in_item_order(paged):
    rows = report_rows(paged / "report.html")
    items = [json.loads(x) for x in (paged / "items.jsonl").read_text().splitlines()]
    assert len(items) > PAGE_SIZE and [r["cells"]["item"] for r in rows] == [
        r["item_id"] for r in items
    ]
    block = embedded_items((paged / "report.html").read_text())
    assert block["filters"] == ["wrong", "noncompliant", "unscored", "flagged"] and block["head"][
        :4
    ] == ["item", "user turn", "gold", "predicted"]
    assert all(
        r["cells"]["judge verdict"][1:]
        == ["openai:judge-a: Scripted verdict from the fake server."] * 2
        + ["openai:judge-b: Scripted verdict from the fake server."] * 2
        for r in rows
    )


def test_report_of_a_few_thousand_items_is_much_smaller_than_the_items_it_holds(tmp_path):
    """A synthetic data set of 2,500 dialogues (its test split: 2,322 items), answered by the
    retrieval baseline (training text): the page is a fraction of the items' JSON."""
    data, run = tmp_path / "data", tmp_path / "run"
    assert main(["data", "synth", "--dialogues", "2500", "--out", str(data)]) == 0
    assert (
        main(
            [
                "run",
                "--model",
                "baseline:retrieval",
                "--data",
                str(data),
                "--output",
                str(run),
                "--no-progress",
                "--resamples",
                "20",
            ]
        )
        == 0
    )
    page = (run / "report.html").read_bytes()
    block = embedded_items(page.decode())
    raw = len(json.dumps(block, ensure_ascii=False).encode())
    assert len(block["rows"]) == len((run / "items.jsonl").read_text().splitlines()) > 2000
    assert all(
        r[block["head"].index("user turn") + 2] and r[block["head"].index("response") + 2]
        for r in block["rows"]
    )
    # compressed: under a quarter of the raw items, with the rest of the page
    assert len(page) * 4 < raw
