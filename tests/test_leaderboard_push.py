"""`kardiabench leaderboard push` through the real `huggingface_hub` client against the fake Hub
(tests/fakehub.py). huggingface_hub reads HF_ENDPOINT and HF_HUB_OFFLINE at import, so the command
runs in a subprocess pointed at the fake."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from fakehub import DroppingServer, FakeHub, FakeRepo
from helpers import dataset_strings, leaks, report_text
from leaderboard_runs import make_runs_in

from kardiabench.cli import main
from kardiabench.emotions import EMOTIONS
from kardiabench.redact import DATA_MARK
from kardiabench.testing.fake_openai import FakeConfig, FakeOpenAIServer


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Every kind of run on one dataset: both baselines, API models judged (one on a --limit subset,
    one with a hostile name), the retrieval baseline judged (it answers with training text), and
    the few-shot task judged (its run.json holds three training dialogues)."""
    runs = make_runs_in(tmp_path_factory)
    data = Path(json.loads((runs["gen"] / "run.json").read_text())["data"]["source"])
    mp = pytest.MonkeyPatch()
    mp.setenv("OPENAI_API_KEY", "sk-local-test")
    try:
        with FakeOpenAIServer(FakeConfig()) as srv:
            runs["fewshot"] = data.parent / "fewshot"
            assert (
                main(
                    [
                        "run",
                        "--model",
                        "openai:gen-model",
                        "--base-url",
                        srv.url,
                        "--task",
                        "kardiabench_instructed_fewshot",
                        "--data",
                        str(data),
                        "--output",
                        str(runs["fewshot"]),
                        "--judge",
                        "openai:judge-model",
                        "--judge-base-url",
                        srv.url,
                        "--no-progress",
                        "--no-cache",
                        "--resamples",
                        "100",
                    ]
                )
                == 0
            )
    finally:
        mp.undo()
    return runs


@pytest.fixture(scope="module")
def built(runs, tmp_path_factory):
    folder = tmp_path_factory.mktemp("lb") / "leaderboard"
    assert (
        main(
            [
                "leaderboard",
                "add",
                str(runs["gen"]),
                str(runs["qwen"]),
                "--leaderboard",
                str(folder),
            ]
        )
        == 0
    )
    return folder


def push(
    folder,
    hub: FakeHub | DroppingServer,
    *extra: str,
    token: str | None = "hf_test",
    offline: bool = False,
) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN")}
    env |= {
        "HF_ENDPOINT": hub.url,
        "HF_HUB_OFFLINE": str(int(offline)),
        "HF_HOME": str(folder.parent / "hf_home"),
        "PYTHONPATH": os.getcwd(),
    }
    if token:
        env["HF_TOKEN"] = token
    cmd = [
        sys.executable,
        "-m",
        "kardiabench.cli",
        "leaderboard",
        "push",
        "--repo",
        "me/kb-board",
        "--leaderboard",
        str(folder),
        *extra,
    ]
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120)


def test_push_uploads_card_tables_entries_and_plots_without_unredacted_reports(built):
    assert main(["leaderboard", "build", "--leaderboard", str(built), "--resamples", "100"]) == 0
    with FakeHub() as hub:
        p = push(built, hub)
        assert p.returncode == 0, p.stderr
        repo = hub.repos["me/kb-board"]
    files = set(repo.files)
    assert {
        "README.md",
        "leaderboard.csv",
        "leaderboard.md",
        "leaderboard.tex",
        "build.json",
        "plots/radar-G1.png",
        "plots/radar-G1.pdf",
        "plots/radar-G1-1col.pdf",
        "site/index.html",
    } <= files
    assert (
        len([f for f in files if f.startswith("entries/")]) == 2
        and len([f for f in files if f.startswith("items/")]) == 2
    )
    assert not any(f.startswith("site/reports/") for f in files)  # they hold dialogue text
    assert "not uploaded" in p.stderr
    # the judge settings of the comparability key go up (a rebuild groups as here), the endpoints not
    for name in (f for f in files if f.startswith("entries/")):
        judge = json.loads(repo.files[name])["manifest"]["judge"]
        local = json.loads((built / name).read_text())["manifest"]["judge"]
        assert "endpoints" in local and "endpoints" not in judge
        for k in ("show_reasoning", "max_tokens", "temperature", "seed", "repeats", "pool"):
            assert judge[k] == local[k], k
    card = repo.files["README.md"].decode()
    assert (
        card.startswith("---\npretty_name: KardiaBench leaderboard")
        and (built / "leaderboard.md").read_text() in card
    )
    assert repo.files["leaderboard.csv"] == (built / "leaderboard.csv").read_bytes()
    assert repo.commits == ["kardiabench leaderboard (2 runs)"]
    assert all(had_token for _, method, _, had_token in hub.requests if method == "POST")


def test_push_of_a_redacted_build_includes_the_reports(built):
    assert (
        main(
            ["leaderboard", "build", "--leaderboard", str(built), "--redact", "--resamples", "100"]
        )
        == 0
    )
    with FakeHub() as hub:
        p = push(built, hub)
        assert p.returncode == 0, p.stderr
        files = hub.repos["me/kb-board"].files
    reports = [f for f in files if f.startswith("site/reports/")]
    assert len(reports) == 2
    # the user's turns are not there
    assert all(b"my interview is soon" not in files[f] for f in reports)
    assert json.loads(files["build.json"])["redacted"] is True


def test_push_of_a_build_redacted_by_an_older_kardiabench_leaves_its_reports_out(built):
    """build.json without `redaction`: its reports kept what a model repeated of the data."""
    assert (
        main(
            ["leaderboard", "build", "--leaderboard", str(built), "--redact", "--resamples", "100"]
        )
        == 0
    )
    info = json.loads((built / "build.json").read_text())
    assert info["redaction"] == 2
    del info["redaction"]
    (built / "build.json").write_text(json.dumps(info))
    with FakeHub() as hub:
        p = push(built, hub)
        assert p.returncode == 0, p.stderr
        files = hub.repos["me/kb-board"].files
    assert not any(f.startswith("site/reports/") for f in files) and "entries/" in " ".join(files)
    assert "reports were not uploaded (an older kardiabench redacted them" in p.stderr


def test_push_with_a_rejected_token_is_a_one_line_error(built):
    assert main(["leaderboard", "build", "--leaderboard", str(built), "--resamples", "100"]) == 0
    with FakeHub(valid_tokens={"hf_good"}) as hub:
        p = push(built, hub, token="hf_bad")
    assert p.returncode == 2 and "Traceback" not in p.stderr
    last = p.stderr.strip().splitlines()[-1]
    assert last.startswith("error: push to me/kb-board: ") and "401 Unauthorized" in last
    assert "me/kb-board" not in hub.repos


# ----------------------------------------------------------------------------- no dataset text


def data_of(run: Path) -> Path:
    return Path(json.loads((run / "run.json").read_text())["data"]["source"])


@pytest.mark.parametrize("redact", [False, True], ids=["build", "build-redact"])
def test_no_uploaded_byte_holds_dataset_text(runs, tmp_path, redact):
    """Every kind of run pushed; every uploaded file searched for every message, persona and
    situation of the data (train and test) and every 30-character passage of them: none is there.
    What is uploaded still says what it must: numbers, which few-shot items, the model's own text."""
    folder = tmp_path / "leaderboard"
    assert main(["leaderboard", "add", *map(str, runs.values()), "--leaderboard", str(folder)]) == 0
    assert (
        main(
            [
                "leaderboard",
                "build",
                "--leaderboard",
                str(folder),
                "--resamples",
                "50",
                *(["--redact"] if redact else []),
            ]
        )
        == 0
    )
    with FakeHub() as hub:
        p = push(folder, hub)
        assert p.returncode == 0, p.stderr
        files = hub.repos["me/kb-board"].files
    assert leaks(dataset_strings(data_of(runs["gen"])), files) == []

    entries = [json.loads(files[f]) for f in files if f.startswith("entries/")]
    assert len(entries) == len(runs) == len([f for f in files if f.startswith("items/")])
    (fewshot,) = [
        e
        for e in entries
        if e["manifest"]["task_config"]["name"] == "kardiabench_instructed_fewshot"
    ]
    local = json.loads(next((folder / "entries").glob(f"{fewshot['entry_id']}.json")).read_text())
    shots = local["manifest"]["task_config"]["prompt"]["few_shot"]
    assert (
        fewshot["manifest"]["task_config"]["prompt"]["few_shot"]
        == [{"item_id": s["item_id"]} for s in shots]
        and len(shots) == 3
    )
    assert (
        fewshot["results"]["metrics"] == local["results"]["metrics"] and "run_path" not in fewshot
    )
    rows = [
        json.loads(line)
        for f in files
        if f.startswith("items/")
        for line in files[f].decode().splitlines()
    ]
    assert all(r["persona_id"].startswith("p") and len(r["persona_id"]) == 13 for r in rows)
    assert all(r["pred_emotion"] is None or r["pred_emotion"] in EMOTIONS for r in rows) and {
        r["pred_class"] for r in rows
    } <= {*EMOTIONS, "<invalid>", "<missing>"}
    reports = {f: report_text(files[f]) for f in files if f.startswith("site/reports/")}
    if not redact:
        assert reports == {} and "not uploaded" in p.stderr
        return
    assert len(reports) == len(runs)
    retrieval = [t for f, t in reports.items() if "baseline-retrieval" in f]
    # its answers are training text, removed
    assert len(retrieval) == 2 and all(DATA_MARK in t for t in retrieval)
    gen = [t for f, t in reports.items() if f.startswith("site/reports/openai-gen-model")]
    # the model's own words stay
    assert gen and all("That sounds hard. I am here with you." in t for t in gen)


def test_push_uploads_only_the_reports_this_redacted_build_wrote(runs, tmp_path):
    """A report left in site/reports/ by an earlier, unredacted build of an entry since removed is
    not uploaded with the redacted build's."""
    folder = tmp_path / "leaderboard"
    assert (
        main(
            [
                "leaderboard",
                "add",
                str(runs["gen"]),
                str(runs["retrieval"]),
                "--leaderboard",
                str(folder),
            ]
        )
        == 0
    )
    assert main(["leaderboard", "build", "--leaderboard", str(folder), "--resamples", "50"]) == 0
    (stale,) = (folder / "entries").glob("baseline-retrieval-*.json")
    stale.unlink()
    assert (
        main(
            ["leaderboard", "build", "--leaderboard", str(folder), "--resamples", "50", "--redact"]
        )
        == 0
    )
    # the stale one is still there
    assert len(list((folder / "site" / "reports").glob("*.html"))) == 2
    with FakeHub() as hub:
        p = push(folder, hub)
        assert p.returncode == 0, p.stderr
        files = hub.repos["me/kb-board"].files
    assert [f for f in files if f.startswith("site/reports/")] == [
        f"site/reports/{next((folder / 'entries').glob('*.json')).stem}.html"
    ]
    assert leaks(dataset_strings(data_of(runs["gen"])), files) == []


def test_push_uploads_the_pairwise_results_through_the_allow_list(runs, tmp_path, monkeypatch):
    """A leaderboard with a `leaderboard add-pairwise` result: its table, plot (both widths) and
    numbers go up; the local paths, the pairwise folder's items and verdicts and the data's text
    do not (one of the runs is the retrieval baseline, which answers with training text)."""
    monkeypatch.setenv("OPENAI_API_KEY", "sk-local-test")
    pw = tmp_path / "pw"
    compared = [runs["gen"], runs["qwen"], runs["retrieval-judged"]]
    with FakeOpenAIServer(FakeConfig()) as srv:
        argv = ["pairwise", *map(str, compared), "--judge", "openai:judge-model"]
        argv += ["--judge-base-url", srv.url, "--output", str(pw), "--no-progress", "--no-cache"]
        assert main([*argv, "--resamples", "50"]) == 0
    assert (pw / "items.jsonl").is_file() and (pw / "judgments.jsonl").is_file()
    folder = tmp_path / "leaderboard"
    assert main(["leaderboard", "add", str(runs["gen"]), "--leaderboard", str(folder)]) == 0
    assert main(["leaderboard", "add-pairwise", str(pw), "--leaderboard", str(folder)]) == 0
    # a stray file beside the recorded result is not uploaded either
    (folder / "pairwise" / "pw-items.jsonl").write_bytes((pw / "items.jsonl").read_bytes())
    assert main(["leaderboard", "build", "--leaderboard", str(folder), "--resamples", "50"]) == 0
    with FakeHub() as hub:
        p = push(folder, hub)
        assert p.returncode == 0, p.stderr
        files = hub.repos["me/kb-board"].files
    assert {
        "pairwise.md",
        "pairwise/pw.json",
        "plots/pairwise_bt.pdf",
        "plots/pairwise_bt.png",
        "plots/pairwise_bt-1col.pdf",
        "plots/pairwise_bt-1col.png",
    } <= set(files)
    assert [f for f in files if f.startswith("pairwise/")] == ["pairwise/pw.json"]
    assert files["pairwise.md"] == (folder / "pairwise.md").read_bytes()
    local = json.loads((folder / "pairwise" / "pw.json").read_text())
    up = json.loads(files["pairwise/pw.json"])
    # the numbers whole
    for key in ("bradley_terry", "pairs", "dimensions", "reference", "n_judgments", "statistics"):
        assert up[key] == local[key], key
    assert len(up["pairs"]) == 3 and up["judge"]["specs"] == ["openai:judge-model"]
    assert up["judge"]["max_response_chars"] == 2000 and up["judge"]["show_reasoning"] is False
    # no local path: the runs' folders, the template's, the pairwise folder's
    assert "source" in local and "template" in local["judge"] and "path" in local["runs"][0]
    assert "source" not in up and "template" not in up["judge"]
    assert all(set(r) == {"name", "model_spec", "n_items", "n_predictions"} for r in up["runs"])
    text = files["pairwise/pw.json"].decode()
    assert str(tmp_path) not in text and not any(str(r) in text for r in compared)
    assert "pairwise/*.json" in files["README.md"].decode()
    assert leaks(dataset_strings(data_of(runs["gen"])), files) == []


# ----------------------------------------------------------------------------- errors in one line


@pytest.mark.parametrize("offline", [False, True], ids=["unreachable", "HF_HUB_OFFLINE"])
def test_push_with_the_hub_out_of_reach_is_a_one_line_error(built, offline):
    assert main(["leaderboard", "build", "--leaderboard", str(built), "--resamples", "100"]) == 0
    with DroppingServer() as hub:  # drops every connection
        p = push(built, hub, offline=offline)
    assert p.returncode == 2 and "Traceback" not in p.stderr
    assert p.stderr.strip().splitlines() == [
        f"error: push to me/kb-board: the Hub at {hub.url} cannot be reached "
        + (
            "(HF_HUB_OFFLINE is set)"
            if offline
            else "(" + p.stderr.split("cannot be reached (", 1)[1].split(")")[0] + ")"
        )
        + "; nothing was uploaded"
    ]
    assert hub.connections == 0 if offline else hub.connections >= 1


@pytest.mark.parametrize(("status", "hint"), [(403, "may not write there"), (404, "no such repo")])
def test_push_refused_by_the_hub_is_a_one_line_error(built, status, hint):
    assert main(["leaderboard", "build", "--leaderboard", str(built), "--resamples", "100"]) == 0
    with FakeHub(repos={"me/kb-board": FakeRepo(fail_status=status)}) as hub:
        p = push(built, hub)
    assert p.returncode == 2 and "Traceback" not in p.stderr
    (line,) = p.stderr.strip().splitlines()
    assert line.startswith("error: push to me/kb-board: ") and str(status) in line and hint in line
