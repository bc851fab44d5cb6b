"""The leaderboard site and a run's report.html in a real headless Chromium (Debian's package; CI
installs it in .ci/run). Skipped, with the reason, where no chromium is installed."""

from __future__ import annotations

import pytest
from browser import Browser, chromium_path
from leaderboard_runs import HOSTILE, make_runs_in

from kardiabench.cli import main

pytestmark = pytest.mark.skipif(chromium_path() is None, reason="no chromium on PATH (apt-get install -y chromium)")


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
    assert browser.js("document.images.length") == 3
    assert browser.js("Array.from(document.images).every(i => i.complete && i.naturalWidth > 0)") is True


def test_site_table_has_one_row_per_run_and_sorts_on_click(pages, browser):
    browser.open(pages[0].as_uri())
    assert browser.js("document.querySelectorAll('#leaderboard tbody tr').length") == 7
    assert browser.js("document.querySelectorAll('#reported tbody tr').length") == 4
    column = "Array.from(document.querySelectorAll('#leaderboard tbody tr')).map(r => r.cells[{}].getAttribute('data-v'))"
    browser.click("#leaderboard th:nth-child(3)")  # Model, ascending
    models = browser.js(column.format(2))
    assert models == sorted(models, key=lambda s: s.lower()) or models == sorted(models)
    browser.click("#leaderboard th:nth-child(8)")  # Empathy: ascending, blanks last
    first = browser.js(column.format(7))
    browser.click("#leaderboard th:nth-child(8)")  # again: descending
    second = browser.js(column.format(7))
    numbers = [float(v) for v in first if v]
    assert numbers == sorted(numbers) and first[len(numbers):] == [""] * (len(first) - len(numbers))
    assert [float(v) for v in second if v] == sorted(numbers, reverse=True)
    assert browser.js("document.querySelector('#leaderboard th:nth-child(8)').className") == "sorted-desc"
    assert browser.console == []


def test_hostile_model_name_stays_text(pages, browser):
    for page in pages:
        browser.console.clear()
        browser.open(page.as_uri())
        assert HOSTILE in browser.js("document.body.innerText")
        assert browser.js("document.scripts.length") == 1  # only the page's own
        assert browser.console == []  # no alert dialog, no error


def test_report_filters_items(pages, browser):
    browser.open(pages[1].as_uri())
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
