"""The leaderboard site and a run's report.html in a real headless Chromium (Debian's package; CI
installs it in .ci/run). Skipped, with the reason, where no chromium is installed."""

from __future__ import annotations

import json
import re

import pytest
from browser import Browser, chromium_path
from leaderboard_runs import HOSTILE, HOSTILE_RESPONSE, HOSTILE_SPAN, make_paged_run, make_runs_in

from kardiabench import __version__
from kardiabench.cli import main
from kardiabench.report import PAGE_SIZE

pytestmark = pytest.mark.skipif(
    chromium_path() is None, reason="no chromium on PATH (apt-get install -y chromium)"
)


@pytest.fixture(scope="module")
def pages(tmp_path_factory):
    """(site index.html, one run's report.html) built from real runs."""
    runs = make_runs_in(tmp_path_factory)
    folder = tmp_path_factory.mktemp("lb") / "leaderboard"
    assert main(["leaderboard", "add", *map(str, runs.values()), "--leaderboard", str(folder)]) == 0
    assert main(["leaderboard", "build", "--leaderboard", str(folder), "--resamples", "100"]) == 0
    assert main(["report", str(runs["hostile"])]) == 0
    return folder / "site" / "index.html", runs["hostile"] / "report.html"


@pytest.fixture(scope="module")
def browser():
    with Browser(chromium_path()) as b:
        yield b


def test_site_loads_without_console_errors_and_images_load(pages, browser):
    browser.console.clear()
    browser.open(pages[0].as_uri())
    assert browser.console == []
    groups = browser.js("document.querySelectorAll('#leaderboard tbody[data-group]').length")
    # a radar and bars per group, the heatmap
    assert groups >= 2 and browser.js("document.images.length") == 2 * groups + 1
    assert (
        browser.js("Array.from(document.images).every(i => i.complete && i.naturalWidth > 0)")
        is True
    )


ROWS = "Array.from(document.querySelectorAll('#leaderboard tr[data-entry]'))"
CODE = 'script:not([type="application/octet-stream"])'  # the scripts that run (a report's items block does not)
READY = (
    "performance.getEntriesByName('items-ready').length"  # a report's first page of items is shown
)
VISIBLE = ROWS + ".filter(r => r.offsetParent !== null)"
# Lines a cell's text takes: its boxes sorted by top, a new line where one starts below the last.
LINES = """(el => { const r = document.createRange(); r.selectNodeContents(el);
  const boxes = Array.from(r.getClientRects()).filter(b => b.width > 0).sort((a, b) => a.top - b.top);
  let n = 0, bottom = -1e9; for (const b of boxes) { if (b.top >= bottom - 1) { n++; bottom = b.bottom; } else bottom = Math.max(bottom, b.bottom); }
  return n; })"""


def test_site_table_has_one_row_per_run_and_sorts_best_first_within_groups(pages, browser):
    browser.open(pages[0].as_uri())
    assert browser.js(f"{ROWS}.length") == 7
    assert browser.js("document.querySelectorAll('#reported tbody tr').length") == 4
    groups = f"{ROWS}.map(r => r.parentElement.getAttribute('data-group') + ' ' + r.getAttribute('data-entry'))"
    before = browser.js(groups)
    column = "Array.from(document.querySelectorAll('#leaderboard tbody')).map(b => Array.from(b.querySelectorAll('tr[data-entry]')).map(r => r.cells[{}].getAttribute('data-v')))"
    # Empathy: first click best (highest) first, blanks last
    browser.click("#leaderboard th:nth-child(8)")
    first = browser.js(column.format(7))
    assert (
        browser.js("document.querySelector('#leaderboard th:nth-child(8)').className")
        == "sorted-desc"
    )
    browser.click("#leaderboard th:nth-child(8)")  # again: lowest first
    second = browser.js(column.format(7))
    # per group: sorted, never mixed with another group
    for desc, asc in zip(first, second, strict=True):
        numbers = [float(v) for v in desc if v]
        assert numbers == sorted(numbers, reverse=True) and desc[len(numbers) :] == [""] * (
            len(desc) - len(numbers)
        )
        assert [float(v) for v in asc if v] == sorted(numbers)
    assert sorted(browser.js(groups)) == sorted(before)  # every row still in its own group
    browser.click("#leaderboard th:nth-child(2)")  # Model: text, A to Z first
    for models in browser.js(column.format(1)):
        assert models == sorted(models, key=str.lower) or models == sorted(models)
    assert browser.console == []


def test_site_search_box_group_filter_and_build_facts(pages, browser):
    browser.open(pages[0].as_uri())
    meta = browser.js("document.getElementById('meta').textContent")
    assert (
        re.search(r"Built \d{4}-\d\d-\d\dT", meta)
        and f"kardiabench {__version__}" in meta
        and "G1: openai:judge-model" in meta
    )
    heads = browser.js(
        "Array.from(document.querySelectorAll('#leaderboard tr.group-head')).map(r => r.textContent)"
    )
    assert (
        len(heads) == 3
        and "openai:judge-model" in heads[0]
        and "no judge" in heads[1]
        and all(f"kardiabench {__version__}" in h for h in heads)
    )
    browser.click("#search")
    browser.send("Input.insertText", session=True, text="GEN-model")
    names = browser.js(f"{VISIBLE}.map(r => r.cells[1].getAttribute('data-v'))")
    assert sorted(names) == ["openai:gen-model [gen]", "openai:gen-model [subset]"]
    assert browser.js("document.getElementById('shown-runs').textContent") == "2"
    browser.js(
        "(s => { s.value = ''; s.dispatchEvent(new Event('input')); })(document.getElementById('search'))"
    )
    browser.js(
        "(g => { g.value = 'G2'; g.dispatchEvent(new Event('change')); })(document.getElementById('group-filter'))"
    )
    assert browser.js(f"{VISIBLE}.map(r => r.parentElement.getAttribute('data-group'))") == [
        "G2",
        "G2",
    ]
    assert (
        browser.js(
            "Array.from(document.querySelectorAll('#leaderboard tbody')).filter(b => b.offsetParent !== null).length"
        )
        == 1
    )
    assert browser.console == []


def test_site_cells_never_wrap_and_the_model_column_stays_on_a_phone(pages, browser):
    try:
        browser.send(
            "Emulation.setDeviceMetricsOverride",
            session=True,
            width=1400,
            height=900,
            deviceScaleFactor=1,
            mobile=False,
        )
        browser.open(pages[0].as_uri())
        lines = browser.js(
            f"Array.from(document.querySelectorAll('#leaderboard td, #leaderboard thead th')).map({LINES})"
        )
        assert len(lines) > 7 * 10 and set(lines) <= {0, 1}  # one line each (0: an empty cell)
        # fits: no sideways scroll
        assert (
            browser.js("(s => s.scrollWidth <= s.clientWidth)(document.querySelector('.scroll'))")
            is True
        )
        browser.send(
            "Emulation.setDeviceMetricsOverride",
            session=True,
            width=420,
            height=900,
            deviceScaleFactor=1,
            mobile=False,
        )
        browser.open(pages[0].as_uri())
        # the page itself does not scroll sideways
        assert browser.js("document.documentElement.scrollWidth <= 420") is True
        assert set(
            browser.js(f"Array.from(document.querySelectorAll('#leaderboard td')).map({LINES})")
        ) <= {0, 1}
        where = (
            "(() => { const r = document.querySelector('#leaderboard tr[data-entry]'), m = r.cells[1].getBoundingClientRect();"
            "return [m.left, r.cells[4].getBoundingClientRect().left, document.querySelector('.scroll').getBoundingClientRect().left,"
            "document.elementFromPoint(m.left + 5, m.top + m.height / 2).closest('td') === r.cells[1]]; })()"
        )
        model0, metric0, edge, on_top0 = browser.js(where)
        browser.js("document.querySelector('.scroll').scrollLeft = 300")
        model1, metric1, _, on_top1 = browser.js(where)
        assert metric1 < metric0 - 100  # the table scrolled sideways in its box
        # the model column stays at the box's left edge, on top
        assert model0 > edge and model1 == edge and on_top0 and on_top1
    finally:
        browser.send("Emulation.clearDeviceMetricsOverride", session=True)


def test_hostile_model_name_stays_text(pages, browser):
    for page in pages:
        browser.console.clear()
        browser.open(page.as_uri())
        assert HOSTILE in browser.js("document.body.innerText")
        # only the page's own code
        assert browser.js(f"document.querySelectorAll('{CODE}').length") == 1
        assert browser.console == []  # no alert dialog, no error


def test_report_filters_items(pages, browser):
    browser.open(pages[1].as_uri())
    browser.wait_for(READY)
    total = browser.js("document.querySelectorAll('#items tbody tr').length")
    wrong = browser.js("document.querySelectorAll('#items tbody tr[data-wrong=\"1\"]').length")
    assert total == 12
    browser.click("#filters input[value=wrong]")
    visible = "Array.from(document.querySelectorAll('#items tbody tr')).filter(r => r.style.display !== 'none').length"
    assert browser.js(visible) == wrong
    assert browser.js("document.getElementById('shown').textContent") == str(wrong)
    browser.click("#filters input[value=wrong]")
    assert browser.js(visible) == total
    assert browser.js("document.querySelectorAll('#confusion svg').length") == 1
    assert browser.console == []


# ----------------------------------------------------------------------------- a report's items, page by page


@pytest.fixture(scope="module")
def paged(tmp_path_factory):
    """A run of 150 items whose model wrote hostile markup (`run` writes its report.html)."""
    run = make_paged_run(tmp_path_factory.mktemp("paged"))
    return run, [json.loads(x)["item_id"] for x in (run / "items.jsonl").read_text().splitlines()]


SHOWN_IDS = (
    "Array.from(document.querySelectorAll('#items tbody tr')).map(r => r.cells[0].textContent)"
)


def test_report_opens_offline_and_shows_the_first_page_of_items(paged, browser):
    run, ids = paged
    browser.console.clear()
    browser.open((run / "report.html").as_uri())
    browser.wait_for(READY)
    # nothing fetched: one self-contained file
    assert browser.js("performance.getEntriesByType('resource').length") == 0
    assert browser.js(SHOWN_IDS) == ids[:PAGE_SIZE]
    assert (
        browser.js("document.getElementById('page').textContent")
        == f"page 1 of 2 (items 1–{PAGE_SIZE})"
    )
    assert browser.js("document.getElementById('shown').textContent") == str(len(ids))
    assert browser.js("document.getElementById('items-status').textContent") == ""
    assert browser.js("document.querySelector('#items tbody tr').cells[1].textContent").startswith(
        "I am user00 and turn 0"
    )
    assert browser.console == []


def test_report_pages_filters_and_searches_its_items(paged, browser):
    run, ids = paged
    rows = [json.loads(x) for x in (run / "items.jsonl").read_text().splitlines()]
    browser.open((run / "report.html").as_uri())
    browser.wait_for(READY)
    browser.click("#next")
    assert browser.js(SHOWN_IDS) == ids[PAGE_SIZE:]  # the later items, loaded from the block
    assert browser.js("document.getElementById('next').disabled") is True
    browser.click("#first")
    assert browser.js(SHOWN_IDS) == ids[:PAGE_SIZE]
    browser.click("#filters input[value=wrong]")
    wrong = [r["item_id"] for r in rows if not r["emotion_correct"]]
    assert browser.js(SHOWN_IDS) == wrong[:PAGE_SIZE] and browser.js(
        "document.getElementById('shown').textContent"
    ) == str(len(wrong))
    assert (
        browser.js(
            "Array.from(document.querySelectorAll('#items tbody tr')).every(r => r.getAttribute('data-wrong') === '1')"
        )
        is True
    )
    browser.click("#filters input[value=wrong]")
    browser.click("#search")
    browser.send("Input.insertText", session=True, text=ids[123].upper())
    assert browser.js(SHOWN_IDS) == [ids[123]]  # found wherever its page is, whatever the case
    assert browser.console == []


def test_report_shows_hostile_item_text_as_text(paged, browser):
    run, _ = paged
    browser.console.clear()
    browser.open((run / "report.html").as_uri())
    browser.wait_for(READY)
    title = browser.js("document.title")
    cells = browser.js(
        "Array.from(document.querySelector('#items tbody tr').cells).map(c => c.textContent)"
    )
    # understanding and response, as written
    assert HOSTILE_SPAN in cells[4] and HOSTILE_RESPONSE in cells
    assert (
        browser.js("document.querySelectorAll('#items img, #items b, #items script').length") == 0
    )
    assert browser.js(f"document.querySelectorAll('{CODE}').length") == 1
    # no handler ran, no alert
    assert browser.js("document.title") == title != "pwned" and browser.console == []
