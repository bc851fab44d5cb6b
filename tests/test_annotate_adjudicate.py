"""`annotate import --adjudicate-with SPEC`: the paper's supervising LLM settles what the annotators'
majority and the adjudication file left unresolved, through the pairwise judge (both orders, a flip
is a tie, resume, unparseable verdicts counted). The scripted server generated both runs
(annotate_runs.py) and plays the judge here, so every settled cell is known in advance."""

from __future__ import annotations

import json
import re
import shutil

import pytest
from annotate_runs import KIND, make_pair_in

import kardiabench as kb
from kardiabench.cli import main
from kardiabench.testing.fake_openai import FakeConfig, FakeOpenAIServer

DIMS = ["relevance", "fluency", "empathy", "persona_consistency", "safety"]
SPLIT = (
    0,
    1,
    2,
)  # items (key order) the three annotators split 1-1-1 on empathy; item 0 on safety too


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    return make_pair_in(tmp_path_factory)


@pytest.fixture(scope="module")
def made(runs, tmp_path_factory):
    folder = tmp_path_factory.mktemp("adj") / "study"
    kb.annotate(runs["a"], runs["b"], folder, n=8, annotators=3, seed=1)
    return folder


@pytest.fixture
def study(made, tmp_path, monkeypatch):
    """A fresh copy of the study with three annotators' exports: empathy split 1-1-1 on SPLIT and
    the kind response (run A) chosen by all on the other items; safety split on item 0, a tie by
    all on the others; nothing else labelled. Item 1's empathy is settled by the adjudication file."""
    monkeypatch.setenv("OPENAI_API_KEY", "sk-adjudicate-secret")
    folder = tmp_path / "study"
    shutil.copytree(made, folder)
    key = json.loads((folder / "key.json").read_text())
    kind = {k["item_id"]: "left" if k["left"] == "A" else "right" for k in key["items"]}
    other = {i: "right" if s == "left" else "left" for i, s in kind.items()}
    files = []
    for n, ann in enumerate(("ann1", "ann2", "ann3")):
        choices = {}
        for pos, k in enumerate(key["items"]):
            i = k["item_id"]
            split = (kind[i], other[i], "tie")[n]
            choices[i] = {
                "empathy": split if pos in SPLIT else kind[i],
                "safety": split if pos == 0 else "tie",
            }
        export = {
            "format": "kardiabench-annotation",
            "version": 1,
            "study_id": key["study_id"],
            "annotator": ann,
            "choices": choices,
        }
        files.append(tmp_path / f"{ann}.json")
        files[-1].write_text(json.dumps(export))
    adj = tmp_path / "adjudicated.jsonl"
    adj.write_text(json.dumps({"item_id": key["items"][1]["item_id"], "empathy": "tie"}) + "\n")
    return folder, key, [str(f) for f in files], str(adj)


def _first_response(request) -> str:
    case = request["messages"][1]["content"]
    m = re.search(r"<<<RESPONSE_A_\w+\n(.*?)\nRESPONSE_A_\w+>>>", case, re.S)
    return m.group(1) if m else ""


def supervising_judge(request) -> str:
    """Prefers the kind response on every dimension but safety, where it prefers the other."""
    kind = "A" if KIND in _first_response(request) else "B"
    verdict = {d: kind for d in DIMS} | {"safety": "B" if kind == "A" else "A"}
    return json.dumps({"rationale": "scripted", **verdict})


def first_shown_judge(request) -> str:
    return json.dumps({"rationale": None, **dict.fromkeys(DIMS, "A")})


def babbling_judge(request) -> str:
    return "Response A is better, I think."  # never JSON, not after repairs either


def adjudicate(srv, folder, files, *extra, judge="openai:judge"):
    return main(
        [
            "annotate",
            "import",
            str(folder),
            *files,
            "--adjudicate-with",
            judge,
            "--judge-base-url",
            srv.url,
            "--no-cache",
            "--no-progress",
            "--resamples",
            "200",
            *extra,
        ]
    )


def test_the_llm_settles_exactly_the_unresolved_cells_and_a_rerun_asks_nothing(study, capsys):
    folder, key, files, adj = study
    ids = [k["item_id"] for k in key["items"]]
    with FakeOpenAIServer(FakeConfig(reply_fn=supervising_judge)) as srv:
        assert adjudicate(srv, folder, files, "--adjudication", adj) == 0
        # majority and file first: items 0 and 2 are left, each asked in both orders
        assert srv.stats.requests == 2 * 2
        first = (folder / "results.json").read_text()
        verdicts = [json.loads(x) for x in (folder / "adjudication_judgments.jsonl").open()]
        assert {v["item_id"].split("|")[1] for v in verdicts} == {ids[0], ids[2]}
        # a rerun: every verdict is saved, nothing is asked again, the same results
        assert adjudicate(srv, folder, files, "--adjudication", adj) == 0
        assert srv.stats.requests == 4
    res = json.loads((folder / "results.json").read_text())
    assert res["dimensions"] == json.loads(first)["dimensions"]
    emp, safety = res["dimensions"]["empathy"], res["dimensions"]["safety"]
    # empathy: 5 majority wins of run A, the file's tie on item 1, the judge's two wins of A
    assert (emp["n_majority"], emp["n_adjudicated"], emp["n_adjudicated_llm"]) == (5, 1, 2)
    assert (emp["win"]["wins"], emp["win"]["ties"], emp["win"]["losses"]) == (7, 1, 0)
    assert emp["n_unresolved"] == 0 and emp["win"]["win_rate"]["value"] == pytest.approx(93.75)
    # safety: 7 majority ties, and the judge prefers run B on item 0
    assert (safety["n_majority"], safety["n_adjudicated_llm"]) == (7, 1)
    assert (safety["win"]["wins"], safety["win"]["ties"], safety["win"]["losses"]) == (0, 7, 1)
    assert res["dimensions"]["fluency"]["win"]["n"] == 0  # unlabelled cells are never sent
    # agreement with dialogue-clustered intervals (the annotators' labels, not the settled outcomes)
    agree = emp["agreement"]
    assert agree["fleiss_kappa_ci_low"] <= agree["fleiss_kappa"] <= agree["fleiss_kappa_ci_high"]
    assert (
        agree["krippendorff_alpha_ci_low"]
        <= agree["krippendorff_alpha"]
        <= agree["krippendorff_alpha_ci_high"]
    )
    assert agree["fleiss_n_items"] == 8 and agree["n_clusters"] >= 2
    llm = res["llm_adjudication"]
    assert (llm["judge"], llm["endpoint_host"], llm["n_items_asked"]) == (
        "openai:judge",
        "127.0.0.1",
        2,
    )
    assert (llm["n_cells_asked"], llm["n_cells_settled"], llm["n_unparseable"]) == (3, 3, 0)
    assert (llm["requests"], llm["reused_verdicts"]) == (0, 4)  # of the rerun
    saved = "".join(p.read_text() for p in folder.iterdir() if p.is_file())
    assert "sk-adjudicate-secret" not in saved
    discussion = (folder / "discussion.md").read_text()
    assert "(LLM)" in discussion and "(adjudication file)" in discussion
    summary = (folder / "summary.md").read_text()
    assert "adjudicating LLM: openai:judge (127.0.0.1" in summary and "3 of 3 unresolved" in summary
    assert "| empathy | 93.8 [" in summary and "| 5 / 1 / 2 | 0 |" in summary
    kappa = f"{agree['fleiss_kappa']:.3f} [{agree['fleiss_kappa_ci_low']:.3f}, {agree['fleiss_kappa_ci_high']:.3f}] (8)"
    assert kappa in summary


def test_an_order_flipping_judge_settles_ties(study):
    folder, _, files, _ = study
    with FakeOpenAIServer(FakeConfig(reply_fn=first_shown_judge)) as srv:
        res = kb.annotate_import(
            folder,
            files,
            adjudicate_with="openai:judge-first",
            judge_base_url=srv.url,
            cache=None,
            resamples=100,
        )
        assert srv.stats.requests == len(SPLIT) * 2  # no file: items 0, 1, 2
    emp, safety = res.dimensions["empathy"], res.dimensions["safety"]
    assert (emp.n_adjudicated_llm, emp.win.wins, emp.win.ties) == (3, 5, 3)
    assert (safety.n_adjudicated_llm, safety.win.ties, safety.win.losses) == (1, 8, 0)


def test_unparseable_verdicts_leave_cells_unresolved_and_counted(study):
    folder, _, files, adj = study
    with FakeOpenAIServer(FakeConfig(reply_fn=babbling_judge)) as srv:
        res = kb.annotate_import(
            folder,
            files,
            adjudication=adj,
            adjudicate_with="openai:judge",
            judge_base_url=srv.url,
            cache=None,
            resamples=100,
        )
        assert srv.stats.requests == 2 * 2 * 3  # each order: the first try and two repairs
    llm = res.llm_adjudication
    assert (llm.n_unparseable, llm.n_cells_settled, llm.n_cells_unresolved) == (4, 0, 3)
    assert llm.unscored_by_reason == {"invalid judge output": 4}
    emp = res.dimensions["empathy"]
    assert (emp.n_adjudicated_llm, emp.n_unresolved, emp.win.n) == (0, 2, 6)  # never defaulted
    assert "0 of 3 unresolved cell(s) settled" in (folder / "summary.md").read_text()


def test_runs_that_are_gone_or_changed_are_refused_before_any_request(study, tmp_path, capsys):
    folder, key, files, _ = study
    before = sorted(p.name for p in folder.iterdir())
    original = (folder / "key.json").read_text()
    gone = {**key, "run_b": {**key["run_b"], "path": str(tmp_path / "nope")}}
    items = [dict(k) for k in key["items"]]
    items[3]["responses"] = "0" * 16  # the runs no longer give what item 3 showed
    changed = {**key, "items": items}
    with FakeOpenAIServer(FakeConfig(reply_fn=supervising_judge)) as srv:
        for bad, says in (
            (gone, f"run B's folder {tmp_path / 'nope'} is gone"),
            (changed, f"item {key['items'][3]['item_id']}: the responses in"),
        ):
            (folder / "key.json").write_text(json.dumps(bad))
            capsys.readouterr()
            assert adjudicate(srv, folder, files) == 2
            err = capsys.readouterr().err
            assert err.startswith("error: ") and says in err and err.count("\n") == 1
        assert srv.stats.requests == 0
    (folder / "key.json").write_text(original)
    assert sorted(p.name for p in folder.iterdir()) == before  # nothing written
