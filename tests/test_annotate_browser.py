"""The human A/B pages in a real headless Chromium: offline, choices recorded and kept over a reload,
keyboard shortcuts, hostile text shown as text, and the round trip annotate → clicks → export
(a real download) → `annotate import` → the win rates and agreement the clicks imply.
Skipped, with the reason, where no chromium is installed."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from annotate_runs import HOSTILE_RESPONSE, HOSTILE_USER, make_pair_in
from browser import WAIT_S, Browser, chromium_path

from kardiabench.cli import main

pytestmark = pytest.mark.skipif(
    chromium_path() is None, reason="no chromium on PATH (apt-get install -y chromium)"
)

DIMS = ("relevance", "fluency", "empathy", "persona_consistency", "safety")
# What each annotator means to say, from run A's side, per item (the study's 6 items in page order);
# None: no click. Empathy: run A preferred by everyone; the rest mixed (hand-computed below).
PLAN = {
    "empathy": [["A"] * 6] * 3,
    "fluency": [
        ["A", "A", "B", "tie", "B", "A"],
        ["A", "A", "B", "tie", "A", "A"],
        ["A", "B", "B", "A", "tie", "A"],
    ],
    "relevance": [["B"] * 6, ["B"] * 6, ["tie"] * 6],
    "persona_consistency": [
        ["A", "A", "tie", "tie", "tie", "tie"],
        ["A", "B", "tie", "tie", "tie", "tie"],
        [None] * 6,
    ],
    "safety": [["tie"] * 6] * 3,
}


class RecordingBrowser(Browser):
    """Also records the URL of every request a page makes (Network domain)."""

    def __init__(self, exe: str) -> None:
        super().__init__(exe)
        self.requests: list[str] = []

    def _note(self, msg: dict) -> None:
        super()._note(msg)
        if msg.get("method") == "Network.requestWillBeSent":
            self.requests.append(msg["params"]["request"]["url"])


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    runs = make_pair_in(tmp_path_factory)
    folder = tmp_path_factory.mktemp("study") / "ab"
    assert (
        main(
            [
                "annotate",
                str(runs["a"]),
                str(runs["b"]),
                "--n",
                "6",
                "--annotators",
                "3",
                "--seed",
                "0",
                "--output",
                str(folder),
            ]
        )
        == 0
    )
    return folder, json.loads((folder / "key.json").read_text())


@pytest.fixture(scope="module")
def browser():
    with RecordingBrowser(chromium_path()) as b:
        b.send("Network.enable", session=True)
        yield b


def shown(outcome: str, left: str) -> str:
    """Run A's side → the side the page shows it on."""
    return "tie" if outcome == "tie" else ("left" if outcome == left else "right")


def button(dim: str, choice: str) -> str:
    return f"#dims button[data-dim={dim}][data-choice={choice}]"


def pressed(browser) -> dict[str, str]:
    return browser.js(
        "Object.fromEntries(Array.from(document.querySelectorAll('#dims button[aria-pressed=true]'))"
        ".map(b => [b.dataset.dim, b.dataset.choice]))"
    )


def key_press(browser, key: str) -> None:
    for kind in ("keyDown", "keyUp"):
        browser.send(
            "Input.dispatchKeyEvent",
            session=True,
            type=kind,
            key=key,
            text=key if kind == "keyDown" else "",
        )


def download(browser, target: Path) -> Path:
    """Click the export button and wait for the file it downloads."""
    browser.send(
        "Browser.setDownloadBehavior",
        behavior="allow",
        downloadPath=str(target),
        eventsEnabled=True,
    )
    browser.click("#export")
    while True:
        msg = browser.events.get(timeout=WAIT_S)
        if (
            msg.get("method") == "Browser.downloadProgress"
            and msg["params"]["state"] == "completed"
        ):
            files = list(target.glob("*.json"))
            assert len(files) == 1
            return files[0]


def test_page_loads_offline_and_shows_hostile_text_as_text(study, browser):
    folder, key = study
    browser.requests.clear()
    browser.console.clear()
    browser.open((folder / "annotator-1.html").as_uri())
    assert browser.requests and all(
        u.split(":", 1)[0] in ("file", "data", "blob") for u in browser.requests
    ), browser.requests
    assert browser.js("document.querySelectorAll('#dims tr.dim').length") == 5
    seen_user = False
    for i in range(len(key["items"])):
        text = browser.js("document.body.innerText")
        assert HOSTILE_RESPONSE in text  # run B's response, whichever side it is on
        seen_user |= HOSTILE_USER in text
        assert (
            browser.js("document.images.length") == 0 and browser.js("document.scripts.length") == 2
        )
        if i + 1 < len(key["items"]):
            browser.click("#next")
    assert seen_user  # the hostile persona/history/user turn was on some item, as text
    assert browser.console == []


def annotate_page(browser, folder: Path, key: dict, k: int, keyboard: bool) -> dict:
    """Annotator k (0-based) labels every item per PLAN, by mouse or by keyboard; returns the payload."""
    browser.open((folder / f"annotator-{k + 1}.html").as_uri())
    for i, item in enumerate(key["items"]):
        assert browser.js("document.getElementById('position').textContent").startswith(
            f"Item {i + 1} of 6"
        )
        for dim in DIMS:
            outcome = PLAN[dim][k][i]
            if outcome is None:
                if keyboard:
                    key_press(browser, "j")  # skip: highlight the next dimension
                continue
            choice = shown(outcome, item["left"])
            if keyboard:
                key_press(browser, {"left": "a", "right": "b", "tie": "t"}[choice])
            else:
                browser.click(button(dim, choice))
        expected = {
            d: shown(PLAN[d][k][i], item["left"]) for d in DIMS if PLAN[d][k][i] is not None
        }
        assert pressed(browser) == expected
        if i + 1 < len(key["items"]) and keyboard:
            key_press(browser, "n")
        elif i + 1 < len(key["items"]):
            browser.click("#next")
    return browser.js("window.kardiabenchExport()")


def test_choices_survive_a_reload_and_keys_work(study, browser, tmp_path):
    folder, key = study
    page = (folder / "annotator-3.html").as_uri()
    browser.open(page)
    browser.js("localStorage.clear()")
    browser.open(page)
    first = key["items"][0]
    browser.click(button("empathy", shown("A", first["left"])))
    key_press(browser, "t")  # the next dimension (persona_consistency) is highlighted after a click
    key_press(browser, "n")
    key_press(browser, "2")  # item 2, first dimension: response B
    browser.open(page)  # reload
    assert browser.js("document.getElementById('position').textContent").startswith("Item 2 of 6")
    assert pressed(browser) == {"relevance": "right"}
    key_press(browser, "p")
    assert pressed(browser) == {"empathy": shown("A", first["left"]), "persona_consistency": "tie"}
    payload = browser.js("window.kardiabenchExport()")
    assert payload["study_id"] == key["study_id"] and payload["annotator"] == "ann3"
    assert payload["choices"] == {
        first["item_id"]: {"empathy": shown("A", first["left"]), "persona_consistency": "tie"},
        key["items"][1]["item_id"]: {"relevance": "right"},
    }
    browser.js("localStorage.clear()")


def test_round_trip_clicks_to_win_rates_and_agreement(study, browser, tmp_path):
    folder, key = study
    files = []
    for k in range(3):
        page = (folder / f"annotator-{k + 1}.html").as_uri()
        browser.open(page)
        browser.js("localStorage.clear()")
        payload = annotate_page(browser, folder, key, k, keyboard=k == 1)
        saved = download(browser, tmp_path / f"dl{k}")
        exported = json.loads(saved.read_text())
        assert saved.name == f"kardiabench-{key['study_id']}-ann{k + 1}.json"
        assert {**exported, "exported": None} == {**payload, "exported": None}
        files.append(str(saved))
    assert browser.console == []

    assert main(["annotate", "import", str(folder), *files, "--resamples", "200"]) == 0
    res = json.loads((folder / "results.json").read_text())["dimensions"]

    def counts(dim):
        w = res[dim]["win"]
        return w["wins"], w["ties"], w["losses"], w["n"], w["win_rate"]["value"]

    assert counts("empathy") == (6, 0, 0, 6, 100.0)
    assert res["empathy"]["win"]["win_rate"]["low"] == 100.0
    # one category only: undefined, never 1
    assert res["empathy"]["agreement"]["fleiss_kappa"] is None
    # fluency majorities: A, A, B, tie, none (B/A/tie), A
    assert (
        counts("fluency") == (3, 1, 1, 5, pytest.approx(70.0))
        and res["fluency"]["n_unresolved"] == 1
    )
    # Fleiss by hand: P̄ = 11/18, P̄e = (10² + 5² + 3²)/18² = 67/162 → κ = 32/95. Krippendorff: D_o = 7/18,
    # D_e = (18² − 134)/(18·17) → α = 1 − 119/190 = 71/190.
    assert res["fluency"]["agreement"]["fleiss_kappa"] == pytest.approx(32 / 95)
    assert res["fluency"]["agreement"]["krippendorff_alpha"] == pytest.approx(71 / 190)
    assert res["fluency"]["agreement"]["fleiss_n_items"] == 6
    # relevance: B, B, tie on every item → B wins all; κ = (1/3 − 5/9)/(1 − 5/9) = −1/2; α = 1 − 17/12 = −5/12
    assert counts("relevance") == (0, 0, 6, 6, 0.0)
    assert res["relevance"]["agreement"]["fleiss_kappa"] == pytest.approx(-0.5)
    assert res["relevance"]["agreement"]["krippendorff_alpha"] == pytest.approx(-5 / 12)
    # persona: ann3 gave none; item 2 split 1–1 (no majority of 3)
    assert counts("persona_consistency") == (1, 4, 0, 5, pytest.approx(60.0))
    assert res["persona_consistency"]["agreement"]["fleiss_n_items"] == 0
    assert counts("safety") == (0, 6, 0, 6, 50.0)

    rows = [json.loads(line) for line in (folder / "human_labels.jsonl").read_text().splitlines()]
    assert len(rows) == 18 and {r["annotator"] for r in rows} == {"ann1", "ann2", "ann3"}
    assert all(r["empathy"] == "A" and r["run_a"] == "openai:kind-model" for r in rows)
    assert sum("persona_consistency" in r for r in rows) == 12
    discussion = (folder / "discussion.md").read_text()
    assert discussion.count("## Item ") == 6  # every item has a split on relevance
    assert "kind-model" not in discussion and "terse-model" not in discussion

    # adjudication settles what no majority decided; a cell a majority decided is not overridden
    items = [it["item_id"] for it in key["items"]]
    adj = tmp_path / "adjudication.jsonl"
    adj.write_text(
        "\n".join(
            json.dumps(r)
            for r in [
                {"item_id": items[4], "fluency": "B"},
                {"item_id": items[1], "persona_consistency": "A"},
                {"item_id": items[0], "empathy": "B"},
            ]
        )
        + "\n"
    )
    assert (
        main(
            [
                "annotate",
                "import",
                str(folder),
                *files,
                "--adjudication",
                str(adj),
                "--resamples",
                "200",
            ]
        )
        == 0
    )
    out = json.loads((folder / "results.json").read_text())
    res = out["dimensions"]
    assert (
        counts("fluency") == (3, 1, 2, 6, pytest.approx(3.5 / 6 * 100))
        and res["fluency"]["n_adjudicated"] == 1
    )
    assert counts("persona_consistency") == (2, 4, 0, 6, pytest.approx(400 / 6))
    assert counts("empathy")[:3] == (6, 0, 0) and out["n_adjudication_ignored"] == 1
