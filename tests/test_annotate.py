"""`kardiabench annotate` / `annotate import` without a browser: the sample, the blinding, the Label
Studio project and its export, and the user's mistakes (one line, exit 2). The pages themselves are
tested in Chromium (test_annotate_browser.py)."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET

import pytest
from annotate_runs import HOSTILE_RESPONSE, KIND, MODELS, make_pair, make_pair_in

import kardiabench as kb
from kardiabench.cli import main

DIMS = ["relevance", "fluency", "empathy", "persona_consistency", "safety"]


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    return make_pair_in(tmp_path_factory)


@pytest.fixture(scope="module")
def study(runs, tmp_path_factory):
    folder = tmp_path_factory.mktemp("study") / "ab"
    assert (
        main(
            [
                "annotate",
                str(runs["a"]),
                str(runs["b"]),
                "--n",
                "8",
                "--annotators",
                "2",
                "--seed",
                "3",
                "--output",
                str(folder),
            ]
        )
        == 0
    )
    return folder, json.loads((folder / "key.json").read_text())


def page_export(key: dict, annotator: str, choices: dict) -> dict:
    return {
        "format": "kardiabench-annotation",
        "version": 1,
        "study_id": key["study_id"],
        "annotator": annotator,
        "choices": choices,
    }


def test_study_samples_shared_items_blinded_and_reproducibly(study, runs, tmp_path):
    folder, key = study
    assert key["run_a"]["model"] == MODELS["a"] and key["run_b"]["model"] == MODELS["b"]
    assert key["annotators"] == ["ann1", "ann2"] and key["dimensions"] == DIMS
    ids = [k["item_id"] for k in key["items"]]
    assert len(ids) == 8 == len(set(ids))
    assert {k["left"] for k in key["items"]} == {"A", "B"}  # sides shuffled
    for page in ("annotator-1.html", "annotator-2.html"):
        html = (folder / page).read_text()
        # blinded
        assert "kind-model" not in html and "terse-model" not in html and str(runs["a"]) not in html
        # no `<` of the data in the HTML
        assert HOSTILE_RESPONSE not in html and "\\u003cscript>alert(1)\\u003c/script>" in html
        assert "http://" not in html and "https://" not in html
    data = json.loads(
        (folder / "annotator-1.html").read_text().split('id="kb-data">')[1].split("</script>")[0]
    )
    # the left response is the run the key names
    for item, k in zip(data["items"], key["items"], strict=True):
        assert (item["left"] == KIND) == (k["left"] == "A") and item["item_id"] == k["item_id"]
    assert [d["name"] for d in data["dimensions"]] == DIMS and all(
        len(d["levels"]) == 5 for d in data["dimensions"]
    )
    again = kb.annotate(runs["a"], runs["b"], tmp_path / "again", n=8, annotators=2, seed=3)
    assert again.key.study_id == key["study_id"] and [k.left for k in again.key.items] == [
        k["left"] for k in key["items"]
    ]
    other = kb.annotate(runs["a"], runs["b"], tmp_path / "other", n=8, annotators=2, seed=4)
    assert other.key.study_id != key["study_id"] and again.n_shared == 12
    # fewer shared items than asked: all of them
    more = kb.annotate(runs["a"], runs["b"], tmp_path / "all", n=500)
    assert len(more.key.items) == 12 and len(more.pages) == 3


def test_label_studio_project_and_its_export_import_like_the_pages(study, tmp_path):
    folder, key = study
    config = ET.fromstring((folder / "label-studio" / "config.xml").read_text())
    choices = config.findall(".//Choices")
    assert [c.get("name") for c in choices] == DIMS
    assert all([x.get("value") for x in c.findall("Choice")] == ["A", "B", "tie"] for c in choices)
    tasks = json.loads((folder / "label-studio" / "tasks.json").read_text())
    assert [t["data"]["item_id"] for t in tasks] == [k["item_id"] for k in key["items"]]
    assert all(t["data"]["study_id"] == key["study_id"] for t in tasks)
    assert "kind-model" not in json.dumps(tasks)
    for t, k in zip(tasks, key["items"], strict=True):
        assert (t["data"]["response_a"] == KIND) == (k["left"] == "A")
    # Label Studio's JSON export: user 7 picks the kind response on empathy, a tie on safety; user 9 cancelled
    exported = [
        {
            **t,
            "id": n,
            "annotations": [
                {
                    "completed_by": 7,
                    "was_cancelled": False,
                    "result": [
                        {
                            "from_name": "empathy",
                            "to_name": "response_a",
                            "type": "choices",
                            "value": {"choices": ["A" if t["data"]["response_a"] == KIND else "B"]},
                        },
                        {
                            "from_name": "safety",
                            "to_name": "response_a",
                            "type": "choices",
                            "value": {"choices": ["tie"]},
                        },
                    ],
                },
                {
                    "completed_by": {"id": 9, "email": "x@example.org"},
                    "was_cancelled": True,
                    "result": [],
                },
            ],
        }
        for n, t in enumerate(tasks)
    ]
    ls_file = tmp_path / "ls.json"
    ls_file.write_text(json.dumps(exported))
    res = kb.annotate_import(folder, [ls_file], resamples=100)
    assert res.annotators == ["ls-7"]
    assert (res.dimensions["empathy"].win.wins, res.dimensions["empathy"].win.n) == (8, 8)
    assert res.dimensions["safety"].win.ties == 8 and res.dimensions["fluency"].win.n == 0
    rows = [json.loads(x) for x in (folder / "human_labels.jsonl").read_text().splitlines()]
    assert rows and all(
        r
        == {
            "item_id": r["item_id"],
            "annotator": "ls-7",
            "run_a": MODELS["a"],
            "run_b": MODELS["b"],
            "empathy": "A",
            "safety": "tie",
        }
        for r in rows
    )
    assert "x@example.org" not in (folder / "human_labels.jsonl").read_text()
    # JSON-MIN export rows, and a page export beside it: two annotators, counted together
    minimal = [
        {
            "study_id": key["study_id"],
            "item_id": t["data"]["item_id"],
            "annotator": 7,
            "empathy": "A" if t["data"]["response_a"] == KIND else "B",
        }
        for t in tasks
    ]
    (tmp_path / "min.json").write_text(json.dumps(minimal))
    page = page_export(
        key,
        "ann1",
        {k["item_id"]: {"empathy": "right" if k["left"] == "A" else "left"} for k in key["items"]},
    )
    (tmp_path / "page.json").write_text(json.dumps(page))
    res = kb.annotate_import(folder, [tmp_path / "min.json", tmp_path / "page.json"], resamples=100)
    e = res.dimensions["empathy"]
    assert (
        res.annotators == ["ls-7", "ann1"]
        and e.n_disagreement == 8
        and e.n_unresolved == 8
        and e.win.n == 0
    )
    assert e.agreement.fleiss_kappa == pytest.approx(-1.0) and len(res.discussion_items) == 8


def test_summary_and_results_carry_n_and_interval(study, tmp_path):
    folder, key = study
    page = page_export(
        key,
        "ann2",
        {k["item_id"]: {"empathy": "left" if k["left"] == "A" else "right"} for k in key["items"]},
    )
    (tmp_path / "p.json").write_text(json.dumps(page))
    assert (
        main(["annotate", "import", str(folder), str(tmp_path / "p.json"), "--resamples", "100"])
        == 0
    )
    summary = (folder / "summary.md").read_text()
    assert "| empathy | 100.0 [100.0, 100.0] | 8 | 8 / 0 / 0 |" in summary
    results = json.loads((folder / "results.json").read_text())
    assert (
        results["study_id"] == key["study_id"]
        and results["dimensions"]["empathy"]["win"]["n_clusters"] >= 2
    )
    assert (folder / "discussion.md").read_text().endswith("No disagreements.\n")


def one_line_error(capsys, argv) -> str:
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1 and "Traceback" not in err
    return err


def test_runs_over_different_data_are_refused(runs, tmp_path, monkeypatch, capsys):
    other = make_pair(tmp_path / "other", monkeypatch, test_users=("p", "q"))
    capsys.readouterr()
    err = one_line_error(
        capsys, ["annotate", str(runs["a"]), str(other["b"]), "--output", str(tmp_path / "s")]
    )
    assert "different data" in err and not (tmp_path / "s").exists()
    err = one_line_error(
        capsys,
        ["annotate", str(runs["a"]), str(tmp_path / "nope"), "--output", str(tmp_path / "s")],
    )
    assert "nope" in err


def test_import_mistakes_are_one_line_errors(study, tmp_path, capsys):
    folder, key = study
    before = (folder / "key.json").read_text()
    item = key["items"][0]["item_id"]

    def write(name, obj):
        (tmp_path / name).write_text(obj if isinstance(obj, str) else json.dumps(obj))
        return str(tmp_path / name)

    other = write("other.json", {**page_export(key, "ann1", {}), "study_id": "s000000000000"})
    assert "other.json: study id 's000000000000' does not match key.json" in one_line_error(
        capsys, ["annotate", "import", str(folder), other]
    )
    bad = write("bad.json", page_export(key, "ann1", {item: {"empathy": "A"}}))
    assert (
        f"bad.json: choices.{item}.empathy: 'A' is not one of left, right, tie"
        in one_line_error(capsys, ["annotate", "import", str(folder), bad])
    )
    unknown = write("unknown.json", page_export(key, "ann1", {"d0-t0": {"empathy": "left"}}))
    assert "'d0-t0' is not an item of study" in one_line_error(
        capsys, ["annotate", "import", str(folder), unknown]
    )
    ok = write("ok.json", page_export(key, "ann1", {item: {"empathy": "left"}}))
    assert "annotator ann1 is also in" in one_line_error(
        capsys, ["annotate", "import", str(folder), ok, ok]
    )
    assert "not valid JSON" in one_line_error(
        capsys, ["annotate", "import", str(folder), write("torn.json", "{")]
    )
    adj = write("adj.jsonl", json.dumps({"item_id": item, "fluency": "left"}) + "\n")
    assert "adj.jsonl:1: fluency: 'left' is not one of A, B, tie" in one_line_error(
        capsys, ["annotate", "import", str(folder), ok, "--adjudication", adj]
    )
    assert "no study key here" in one_line_error(capsys, ["annotate", "import", str(tmp_path), ok])
    assert (
        not (folder / "human_labels.jsonl").exists() or (folder / "key.json").read_text() == before
    )


def test_another_study_in_the_output_folder_is_refused(study, runs, capsys):
    folder, _ = study
    err = one_line_error(
        capsys, ["annotate", str(runs["a"]), str(runs["b"]), "--n", "4", "--output", str(folder)]
    )
    assert "holds another study" in err
