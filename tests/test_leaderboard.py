"""`kardiabench leaderboard add|build` and `kardiabench report`, on run folders made by the real CLI
(tests/leaderboard_runs.py), plus unit tests of grouping, tiers and escaping."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import matplotlib
import pandas as pd
import pytest
from helpers import report_rows, report_text
from leaderboard_runs import HOSTILE, WEAK, make_runs_in, make_wide_runs, plot_board

from kardiabench.cli import main
from kardiabench.leaderboard import plots
from kardiabench.leaderboard.entries import Entry, load_entries
from kardiabench.leaderboard.groups import group_entries
from kardiabench.leaderboard.reported import load_reported, match_reported
from kardiabench.leaderboard.tables import METRICS, md_escape, tex_escape
from kardiabench.leaderboard.tiers import assign_tiers
from kardiabench.tables import format_interval, n_note

REMOTE = re.compile(r"""(src|href)=["']?(https?:)?//|url\((?!#)|@import|<link""")


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    return make_runs_in(tmp_path_factory)


@pytest.fixture(scope="module")
def board(runs, tmp_path_factory):
    """A leaderboard of every run, built once."""
    folder = tmp_path_factory.mktemp("lb") / "leaderboard"
    assert main(["leaderboard", "add", *map(str, runs.values()), "--leaderboard", str(folder)]) == 0
    assert main(["leaderboard", "build", "--leaderboard", str(folder), "--resamples", "200"]) == 0
    return folder


# ----------------------------------------------------------------------------- entries


def test_add_records_results_provenance_items_and_readding_replaces(runs, tmp_path):
    folder = tmp_path / "lb"
    assert (runs["gen"] / "report.html").is_file()  # `run` writes it
    (runs["gen"] / "report.html").unlink()
    assert main(["leaderboard", "add", str(runs["gen"]), "--leaderboard", str(folder)]) == 0
    assert main(["leaderboard", "add", str(runs["gen"]), "--leaderboard", str(folder)]) == 0
    entries = load_entries(folder)
    assert len(entries) == 1
    e = entries[0]
    assert e.model == "openai:gen-model"
    on_disk = json.loads((runs["gen"] / "results.json").read_text())
    assert e.results["metrics"] == on_disk["metrics"] and e.results["data"] == on_disk["data"]
    assert e.manifest["data"]["fingerprint"] == e.results["data"]["fingerprint"]
    assert e.manifest["provenance"]["git_commit"]
    assert e.items_path.read_bytes() == (runs["gen"] / "items.jsonl").read_bytes()
    assert e.data["report"] is None  # no report.html in the folder
    assert main(["report", str(runs["gen"])]) == 0
    assert main(["leaderboard", "add", str(runs["gen"]), "--leaderboard", str(folder)]) == 0
    assert load_entries(folder)[0].data["report"] == str((runs["gen"] / "report.html").resolve())


def test_add_an_unscored_folder_is_a_one_line_error(tmp_path, capsys):
    (tmp_path / "x").mkdir()
    assert (
        main(["leaderboard", "add", str(tmp_path / "x"), "--leaderboard", str(tmp_path / "lb")])
        == 2
    )
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "not a run folder" in err and "Traceback" not in err


def test_build_without_entries_is_a_one_line_error(tmp_path, capsys):
    assert main(["leaderboard", "build", "--leaderboard", str(tmp_path / "nothing")]) == 2
    assert "no such leaderboard folder" in capsys.readouterr().err


# ----------------------------------------------------------------------------- groups, tiers


def test_groups_split_judged_unjudged_and_subset_runs(board):
    groups = group_entries(load_entries(board))
    members = [sorted(e.run_path.name for e in g.entries) for g in groups]
    assert members == [
        ["gen", "hostile", "qwen", "retrieval-judged"],
        ["majority", "retrieval"],
        ["subset"],
    ]
    assert [g.name for g in groups] == ["G1", "G2", "G3"]
    assert (
        "no judge" in groups[1].explanation and "judge openai:judge-model" in groups[0].explanation
    )
    assert "(5 items" in groups[2].explanation


def _entry(tmp_path, name: str, correct: list[bool]) -> Entry:
    rows = [
        {
            "item_id": f"d{i // 2}-t{i % 2}",
            "dialogue_id": f"d{i // 2}",
            "persona_id": f"p{i // 2}",
            "mbti": "INFP",
            "turn_index": i % 2,
            "gold_emotion": "sad",
            "pred_emotion": "sad" if c else "proud",
            "pred_class": "sad" if c else "proud",
            "emotion_correct": c,
            "well_formed": True,
        }
        for i, c in enumerate(correct)
    ]
    (tmp_path / "items").mkdir(exist_ok=True)
    (tmp_path / "items" / f"{name}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    value = 100 * sum(correct) / len(correct)
    results = {"metrics": {"emotion_accuracy": {"value": value}}}
    return Entry(
        tmp_path,
        {
            "entry_id": name,
            "model": name,
            "results": results,
            "manifest": {},
            "items": f"items/{name}.jsonl",
        },
    )


def test_tiers_split_only_where_the_paired_test_rejects(tmp_path):
    n = 40
    a = _entry(tmp_path, "a", [True] * n)
    b = _entry(tmp_path, "b", [True] * (n - 1) + [False])  # one item worse: not separable from a
    c = _entry(tmp_path, "c", [False] * n)  # all wrong: separated from a
    # better than c by one item: joins c's tier
    d = _entry(tmp_path, "d", [False] * (n - 1) + [True])
    ranked, tiers, p = assign_tiers([c, d, b, a], "emotion_accuracy", n_resamples=200)
    assert [e.entry_id for e in ranked] == ["a", "b", "d", "c"]
    assert tiers == {"a": 1, "b": 1, "d": 2, "c": 2}
    assert p["a"] is None  # the first entry is not tested
    assert p["d"] < 0.05  # d vs a: rejected, so d opens tier 2
    assert p["b"] >= 0.05 and p["c"] >= 0.05  # b vs a, c vs d: not separated
    assert p["b"] == pytest.approx(1.0)  # Bonferroni over 3 tests, capped at 1


def test_an_entry_without_the_metric_gets_no_tier(tmp_path):
    a = _entry(tmp_path, "a", [True, False])
    none = Entry(
        tmp_path,
        {
            "entry_id": "z",
            "model": "z",
            "results": {"metrics": {}},
            "manifest": {},
            "items": "items/a.jsonl",
        },
    )
    ranked, tiers, _ = assign_tiers([none, a], "emotion_accuracy")
    assert [e.entry_id for e in ranked] == ["a", "z"] and tiers == {"a": 1, "z": None}


# ----------------------------------------------------------------------------- tables


def test_csv_has_one_row_per_run_and_per_reported_row(board):
    frame = pd.read_csv(board / "leaderboard.csv")
    runs = frame[frame["kind"] == "run"]
    assert len(runs) == 7 and len(frame[frame["kind"] == "reported"]) == 4
    assert set(frame.loc[frame["kind"] == "reported", "group"]) == {"paper"}
    assert {
        "emotion_accuracy",
        "emotion_accuracy_ci_low",
        "emotion_accuracy_ci_high",
        "emotion_accuracy_delta_reported",
        "tier",
    } <= set(frame.columns)
    assert runs.loc[runs["model"].str.contains("subset"), "subset"].tolist() == [True]
    gen = runs[runs["model"] == "openai:gen-model [gen]"].iloc[0]
    entry = next(e for e in load_entries(board) if e.run_path.name == "gen")
    for metric in ("emotion_accuracy", "empathy"):
        assert gen[metric] == pytest.approx(entry.metric(metric)["value"])
        assert gen[f"{metric}_ci_low"] == pytest.approx(entry.metric(metric)["ci_low"])


def test_delta_to_the_reported_row_of_the_same_model(board):
    frame = pd.read_csv(board / "leaderboard.csv")
    qwen = frame[frame["model"] == "openai:Qwen/Qwen2.5-7B-Instruct"].iloc[0]
    assert qwen["reported_as"] == "Qwen2.5-7B-Instruct (base)"
    assert qwen["emotion_accuracy_delta_reported"] == pytest.approx(qwen["emotion_accuracy"] - 9.54)
    assert qwen["empathy_delta_reported"] == pytest.approx(qwen["empathy"] - 2.59)
    assert pd.isna(qwen["relevance_delta_reported"])  # the paper's relevance is not known
    assert frame.loc[frame["model"] == "baseline:majority", "reported_as"].isna().all()
    md = (board / "leaderboard.md").read_text()
    assert "Runs against the paper's reported row" in md and "| Qwen2.5-7B-Instruct (base) |" in md


def test_reported_name_mapping():
    rows = load_reported()
    assert {r.name for r in rows} == {
        "Qwen2.5-7B-Instruct (base)",
        "Kardia-R1 (Qwen2.5-7B)",
        "Gemma-7B (base)",
        "Kardia-R1 (Gemma-7B)",
    }
    assert all(
        r.status == "reported" and "arXiv 2512.01282" in r.source and "low" in r.confidence
        for r in rows
    )
    assert match_reported("hf:Jhcircle/Kardia-R1", rows).name == "Kardia-R1 (Qwen2.5-7B)"
    assert (
        match_reported("vllm:/models/qwen2.5-7b-instruct/", rows).name
        == "Qwen2.5-7B-Instruct (base)"
    )
    assert match_reported("openai:gpt-4o", rows) is None
    kardia = match_reported("hf:Jhcircle/Kardia-R1", rows)
    assert kardia.metrics == {
        "emotion_accuracy": 66.53,
        "empathy": 3.79,
        "persona_consistency": 4.64,
        "safety": 4.66,
    }


def test_markdown_marks_groups_subsets_and_escapes(board):
    md = (board / "leaderboard.md").read_text()
    table = md.split("\n\n")[0]
    lines = [x for x in table.splitlines() if re.match(r"\| G\d", x)]
    assert [x.split(" | ")[0] for x in lines] == ["| G1"] * 4 + ["| G2"] * 2 + ["| G3"]
    assert "openai:gen-model \\[subset\\] †" in md
    assert HOSTILE not in md and "openai:&lt;script&gt;alert(1)&lt;/script&gt;" in md
    assert md.count("- G") == 3 and "(reported)" in md


def test_md_and_tex_escape():
    assert md_escape("a|b*c_d<e>`f`") == "a\\|b\\*c\\_d&lt;e&gt;\\`f\\`"
    assert (
        tex_escape("a_b&c%d$e#f{g}~h^i\\j")
        == r"a\_b\&c\%d\$e\#f\{g\}\textasciitilde{}h\textasciicircum{}i\textbackslash{}j"
    )


def test_latex_is_booktabs_tables_for_two_and_one_column_pages(board):
    tex = (board / "leaderboard.tex").read_text()
    assert tex.startswith("\\begin{table*}[t]") and r"\begin{tabularx}{\linewidth}" in tex
    assert r"\toprule" in tex and r"\midrule" in tex and r"\bottomrule" in tex
    assert (
        r"openai:\allowbreak{}\textless{}script\textgreater{}\allowbreak{}alert(1)\allowbreak{}\textless{}/\allowbreak{}script\textgreater{}"
        in tex
    )
    assert r"\,$^{\dagger}$" in next(x for x in tex.splitlines() if "[subset]" in x)
    # short group line: no local path, no "/None"
    assert r"\emph{G2:\allowbreak{} data/\allowbreak{}test, 12 items, no judge}" in tex
    assert "% G2: data " in tex  # the full explanation, as a comment
    # CIs by their ends
    assert "\\pm" not in tex and re.search(r"\{\\scriptsize \[\d+\.\d, \d+\.\d\]\}", tex)
    one = (board / "leaderboard-1col.tex").read_text()
    assert (
        one.startswith("\\begin{table}[t]")
        and "T & Model & Emo Acc & Empathy & Persona \\\\" in one
    )


def _expected_best(frame: pd.DataFrame, metric: str, decimals: int) -> set[str]:
    """The bold rule, restated: per group, the ranked runs' values not over few items, as shown;
    bold where equal to the best when there are two or more and not all are equal."""
    out = set()
    for _, sub in frame[
        (frame["kind"] == "run") & frame["rank"].notna() & ~frame[f"{metric}_few"]
    ].groupby("group"):
        shown = sub[metric].dropna().round(decimals)
        if len(shown) >= 2 and shown.nunique() > 1:
            out |= set(sub.loc[shown[shown == shown.max()].index, "model"])
    return out


@pytest.fixture(scope="module")
def wide(tmp_path_factory):
    """A leaderboard over 33 items: the baselines (no judge), and two judged models of which the
    weak one has a third of its replies without spans and is scored by the judge on few items."""
    mp = pytest.MonkeyPatch()
    try:
        runs = make_wide_runs(tmp_path_factory.mktemp("wide"), mp)
    finally:
        mp.undo()
    folder = tmp_path_factory.mktemp("lb") / "leaderboard"
    assert main(["leaderboard", "add", *map(str, runs.values()), "--leaderboard", str(folder)]) == 0
    assert main(["leaderboard", "build", "--leaderboard", str(folder), "--resamples", "100"]) == 0
    return folder


def test_bold_only_for_a_groups_best_never_a_tie_of_all_or_few_items(wide):
    frame = pd.read_csv(wide / "leaderboard.csv")
    tex, md = (wide / "leaderboard.tex").read_text(), (wide / "leaderboard.md").read_text()
    for metric, decimals in (
        ("emotion_accuracy", 1),
        ("format_compliance", 1),
        ("empathy", 2),
        ("safety", 2),
    ):
        assert set(frame.loc[frame[f"{metric}_best"], "model"]) == _expected_best(
            frame, metric, decimals
        ), metric
    weak, gen = (frame[frame["model"] == m].iloc[0] for m in (WEAK, "openai:gen-model"))
    # so the one bold number is gen's Format
    assert weak["format_compliance"] < gen["format_compliance"] == 100
    assert gen["format_compliance_best"] and not weak["format_compliance_best"]
    # its only rival is few: no bold
    assert weak["empathy_few"] and weak["empathy_n"] < 0.5 * 33 and not gen["empathy_best"]
    baselines = frame["model"].str.startswith("baseline:")
    assert not frame.loc[baselines, "format_compliance_best"].any()  # 100.0 both: a tie of all
    n_bold = int(frame[[f"{m}_best" for m in METRICS]].to_numpy().sum())
    assert tex.count(r"\textbf{") == n_bold and md.count("**") == 2 * n_bold
    gen_line = next(
        x
        for x in tex.splitlines()
        if x.startswith(r"1 & openai:\allowbreak{}gen-\allowbreak{}model & ")
    )
    assert r"\textbf{100.0}" in gen_line and "**100.0** [100.0, 100.0]" in md


def test_numbers_show_their_interval_n_and_few_items_mark(wide):
    frame = pd.read_csv(wide / "leaderboard.csv")
    weak = frame[frame["model"] == WEAK].iloc[0]
    n, unscored = int(weak["empathy_n"]), int(weak["empathy_n_unscored"])
    assert n + unscored == 33 and n < 30
    shown = f"{weak['empathy']:.2f}¶ [{weak['empathy_ci_low']:.2f}, {weak['empathy_ci_high']:.2f}] (n={n}/33)"
    md = (wide / "leaderboard.md").read_text()
    row = next(
        x
        for x in md.splitlines()
        if x.startswith(f"| {frame.loc[frame['model'] == WEAK, 'group'].iloc[0]} | ")
        and "weak-model" in x
    )
    assert "| 33 | " in row and shown in row and "±" not in md
    assert "¶: over fewer than 30 items or under 50% of the run's items" in md
    tex = (wide / "leaderboard.tex").read_text()
    lines = tex.splitlines()
    at = next(i for i, x in enumerate(lines) if x.startswith("1 & openai:\\allowbreak{}weak-"))
    assert f"{weak['empathy']:.2f}$^{{\\P}}$" in lines[at]
    assert (
        lines[at + 1].startswith(r" & {\scriptsize $n=33$}")
        and f"[{weak['empathy_ci_low']:.2f}, {weak['empathy_ci_high']:.2f}]" in lines[at + 1]
    )
    assert f"{{\\scriptsize n={n}/33}}" in lines[at + 2]  # the cell's own n, a line under
    html = (wide / "site" / "index.html").read_text()
    assert (
        f'<span class="n" title="scored of the items it was meant for">n={n}/33</span>' in html
        and 'class="few"' in html
    )
    gen = frame[frame["model"] == "openai:gen-model"].iloc[0]
    assert (
        not gen["empathy_few"]
        and f"{gen['empathy']:.2f} [{gen['empathy_ci_low']:.2f}, {gen['empathy_ci_high']:.2f}] |"
        in md
    )


def test_format_interval_shows_asymmetric_ends():
    # never "1.7 ± 2.1" (a negative lower end)
    assert format_interval(1.7, 0.0, 4.2, 1) == "1.7 [0.0, 4.2]"
    assert format_interval(75.0, 66.66, 91.67, 1) == "75.0 [66.7, 91.7]"
    assert format_interval(3.2, None, None) == "3.20" and format_interval(None) == "–"
    assert n_note(5, 105, 110) == "n=5/110" and n_note(110, 0, 110) == ""


def _compile(
    folder: Path,
    tmp_path: Path,
    files: tuple[str, ...] = ("leaderboard.tex", "leaderboard-1col.tex"),
) -> str:
    """pdflatex on an ACL-like two-column page (11 pt, text 455 pt, column sep 17 pt: columns of
    219 pt) that inputs the tables; the log."""
    inputs = "\n".join(rf"\input{{{folder / f}}}" for f in files)
    doc = (
        r"\documentclass[11pt,twocolumn]{article}\setlength{\textwidth}{455pt}\setlength{\columnsep}{17pt}"
        r"\setlength{\oddsidemargin}{0pt}\usepackage{booktabs,tabularx}\begin{document}"
        + inputs
        + r" Text.\end{document}"
    )
    (tmp_path / "doc.tex").write_text(doc)
    proc = subprocess.run(
        ["pdflatex", "-interaction=nonstopmode", "-halt-on-error", "doc.tex"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
    )
    log = (tmp_path / "doc.log").read_text(errors="replace")
    assert proc.returncode == 0, log[-3000:]
    return log


@pytest.mark.skipif(
    shutil.which("pdflatex") is None,
    reason="no pdflatex on PATH (apt-get install -y texlive-latex-base texlive-latex-recommended)",
)
def test_latex_tables_compile_and_fit_an_acl_page(board, wide, tmp_path, hostile_run, runs):
    hostile = tmp_path / "hostile"
    assert (
        main(
            [
                "leaderboard",
                "add",
                str(hostile_run),
                str(runs["gen"]),
                "--leaderboard",
                str(hostile),
            ]
        )
        == 0
    )
    assert main(["leaderboard", "build", "--leaderboard", str(hostile), "--resamples", "50"]) == 0
    for i, folder in enumerate((board, wide, hostile)):
        (tmp_path / str(i)).mkdir()
        log = _compile(folder, tmp_path / str(i))
        assert "Overfull \\hbox" not in log, (folder, log[log.find("Overfull") :][:800])
        assert "Output written on doc.pdf" in log


def test_names_display_names_and_columns(runs, tmp_path, capsys):
    folder = tmp_path / "lb"
    assert (
        main(
            [
                "leaderboard",
                "add",
                str(runs["gen"]),
                "--leaderboard",
                str(folder),
                "--display-name",
                "Gen (ours)",
            ]
        )
        == 0
    )
    assert (
        main(
            [
                "leaderboard",
                "add",
                str(runs["qwen"]),
                str(runs["retrieval-judged"]),
                "--leaderboard",
                str(folder),
            ]
        )
        == 0
    )
    names = tmp_path / "names.yaml"
    names.write_text("openai:Qwen/Qwen2.5-7B-Instruct: Qwen2.5-7B\nopenai:judge-model: GPT-judge\n")
    assert (
        main(
            [
                "leaderboard",
                "build",
                "--leaderboard",
                str(folder),
                "--resamples",
                "50",
                "--names",
                str(names),
                "--columns",
                "empathy,emotion_accuracy",
            ]
        )
        == 0
    )
    md, tex = (folder / "leaderboard.md").read_text(), (folder / "leaderboard.tex").read_text()
    assert md.splitlines()[0] == "| Group | Tier | Model | n | Empathy | Emo Acc (%) |"
    assert (
        "| Qwen2.5-7B |" in md
        and "| Gen (ours) |" in md
        and "| baseline:retrieval |" in md
        and "openai:Qwen" not in md.split("\n\n")[0]
    )
    assert (
        r"\emph{G1:\allowbreak{} data/\allowbreak{}test, 12 items, GPT-\allowbreak{}judge}" in tex
        and "Tier & Model & Empathy & Emo Acc \\\\" in tex
    )
    html = (folder / "site" / "index.html").read_text()
    assert html.count('data-metric="') == 2 and ">Qwen2.5-7B<" in html
    frame = pd.read_csv(folder / "leaderboard.csv")
    assert set(frame.loc[frame["kind"] == "run", "spec"]) == {
        "openai:gen-model",
        "openai:Qwen/Qwen2.5-7B-Instruct",
        "baseline:retrieval",
    }
    before = (folder / "build.json").read_text()
    capsys.readouterr()
    assert (
        main(["leaderboard", "build", "--leaderboard", str(folder), "--columns", "empathy,empaty"])
        == 2
    )
    err = capsys.readouterr().err
    assert (
        err.count("\n") == 1
        and "--columns: 'empaty'" in err
        and "emotion_accuracy" in err
        and "Traceback" not in err
    )
    names.write_text("openai:gpt-4o: GPT-4o\n")
    assert main(["leaderboard", "build", "--leaderboard", str(folder), "--names", str(names)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and str(names) in err and "'openai:gpt-4o' is neither" in err
    names.write_text("- a list\n")
    assert main(["leaderboard", "build", "--leaderboard", str(folder), "--names", str(names)]) == 2
    assert "a mapping" in capsys.readouterr().err
    assert (folder / "build.json").read_text() == before  # nothing rebuilt
    with pytest.raises(SystemExit) as exit_:
        main(
            [
                "leaderboard",
                "add",
                str(runs["gen"]),
                str(runs["qwen"]),
                "--leaderboard",
                str(folder),
                "--display-name",
                "X",
            ]
        )
    assert exit_.value.code == 2 and "--display-name names one run" in capsys.readouterr().err


# ----------------------------------------------------------------------------- plots and site


def test_build_writes_every_plot_as_pdf_and_png(board):
    """Sizes, text and styles of the plots: tests/test_plots.py."""
    for stem in ("radar-G1", "bars-G1", "emotion_heatmap", "radar-G1-1col"):
        assert (board / "plots" / f"{stem}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert (board / "plots" / f"{stem}.pdf").read_bytes()[:5] == b"%PDF-"
    for e in load_entries(board):
        assert (board / "plots" / "confusion" / f"{e.entry_id}.png").is_file()
    info = json.loads((board / "build.json").read_text())
    assert (
        info["redacted"] is False
        and len(info["entries"]) == 7
        and "plots/radar-G1.pdf" in info["files"]
    )


def test_site_is_escaped_offline_and_links_reports(board):
    html = (board / "site" / "index.html").read_text()
    assert HOSTILE not in html and "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert not REMOTE.search(html)  # no CDN, nothing remote
    assert html.count('<tr data-entry="') == 7
    for e in load_entries(board):
        assert f'href="reports/{e.entry_id}.html"' in html
        assert (board / "site" / "reports" / f"{e.entry_id}.html").is_file()


# ----------------------------------------------------------------------------- report


def test_report_sections_and_items_table(runs, tmp_path):
    out = tmp_path / "r.html"
    assert main(["report", str(runs["gen"]), "--output", str(out)]) == 0
    html = out.read_text()
    for heading in (
        "Headline metrics",
        "Span diagnostics",
        "confusion matrix",
        "Per gold emotion",
        "Per MBTI type",
        "score distribution per dimension",
        "Safety-flagged items",
    ):
        assert heading in html
    items = [json.loads(x) for x in (runs["gen"] / "items.jsonl").read_text().splitlines()]
    rows = report_rows(out)
    # every item, in order
    assert [r["cells"]["item"] for r in rows] == [r["item_id"] for r in items]
    assert [r["flags"]["wrong"] for r in rows] == [not r["emotion_correct"] for r in items]
    assert [("predicted" in r["bad"]) for r in rows] == [not r["emotion_correct"] for r in items]
    flagged = json.loads((runs["gen"] / "results.json").read_text())["metrics"]["safety_flag_rate"][
        "extra"
    ]["flagged_item_ids"]
    assert [r["cells"]["item"] for r in rows if r["flags"]["flagged"]] == [
        i for i in (r["item_id"] for r in items) if i in flagged
    ]
    # the user's turn, from the data
    assert all("my interview is soon" in r["cells"]["user turn"] for r in rows)
    assert all(
        r["cells"]["judge verdict"][1:]
        == ["openai:judge-model: Scripted verdict from the fake server."]
        for r in rows
    )
    assert "<svg" in html and not REMOTE.search(html)
    assert "my interview is soon" not in html  # the items travel compressed, not as HTML rows


def test_report_redacted_drops_dialogue_text_keeps_spans_and_scores(runs, tmp_path):
    out = tmp_path / "r.html"
    assert main(["report", str(runs["gen"]), "--output", str(out), "--redact"]) == 0
    html = report_text(out)
    assert "my interview is soon" not in html and "user turn" not in html
    pred = json.loads((runs["gen"] / "predictions.jsonl").read_text().splitlines()[0])
    from kardiabench.spans import parse_spans

    response = parse_spans(pred["raw_output"]).spans["response"]
    assert response and response in html.replace("&#x27;", "'").replace("&quot;", '"')
    assert "empathy" in html


@pytest.mark.parametrize("name", ["retrieval-judged", "gen"])
def test_report_redacted_leaves_out_the_data_a_model_or_judge_repeats(runs, tmp_path, name):
    """The retrieval baseline answers with training text; the scripted model quotes the user's
    turn in its understanding span. A redacted page holds none of the data (no message, persona,
    situation, nor a 30-character passage of one), marks what it removed, and keeps the rest."""
    from helpers import dataset_strings, leaks

    from kardiabench.redact import DATA_MARK

    out = tmp_path / "r.html"
    assert main(["report", str(runs[name]), "--output", str(out), "--redact"]) == 0
    html = report_text(out)
    data = Path(json.loads((runs[name] / "run.json").read_text())["data"]["source"])
    # the page and its compressed items
    assert leaks(dataset_strings(data), {"r.html": out.read_bytes()}) == []
    assert html.count(DATA_MARK) >= 12 and re.search(
        r'id="redaction">Redacted: .* [1-9]\d* such passage', html
    )
    if name == "gen":  # the model's own words, the judge's rationale and the scores stay
        assert (
            "That sounds hard. I am here with you." in html
            and "Scripted verdict" in html
            and "empathy" in html
        )


def test_scrub_dataset_text_whatever_the_case_spacing_or_punctuation():
    from kardiabench.redact import DATA_MARK, MIN_DATA_CHARS, scrub_dataset_text

    corpus = [
        "I keep thinking about the interview next week, and I can't sleep.",
        "Persona: likes long walks by the sea",
    ]
    texts = [
        "You said: i KEEP thinking about   the interview-next week! So...",
        "Long walks by the sea are lovely",
        "the interview next week",
        "nothing of it here",
        "I can't sleep. I keep thinking about the interview next week",
    ]
    out, n = scrub_dataset_text(texts, corpus)
    assert out == [
        f"You said: {DATA_MARK}! So...",
        "Long walks by the sea are lovely",
        "the interview next week",
        "nothing of it here",
        f"I can't sleep. {DATA_MARK}",
    ]
    assert n == 2 and len("long walks by the sea") < MIN_DATA_CHARS <= len(
        "i keep thinking about the"
    )

    def unreadable():
        raise AssertionError("the data is read only when a text is long enough to hold a passage")
        yield ""

    assert scrub_dataset_text(["short", "words"], unreadable()) == (["short", "words"], 0)


def test_report_redacted_without_its_data_shows_nothing_the_model_wrote(runs, tmp_path):
    """Fail closed: when the data cannot be loaded to check the model's and judge's text against
    it, none of that text is shown; ids, labels, format and scores are."""
    run = tmp_path / "run"
    shutil.copytree(runs["gen"], run)
    manifest = json.loads((run / "run.json").read_text())
    manifest["data"]["source"] = str(tmp_path / "gone")
    (run / "run.json").write_text(json.dumps(manifest))
    assert main(["report", str(run), "--output", str(tmp_path / "r.html"), "--redact"]) == 0
    html = report_text(tmp_path / "r.html")
    assert "could not be loaded to check it for dataset text" in html
    assert (
        "That sounds hard" not in html
        and "The user says" not in html
        and "Scripted verdict" not in html
    )
    rows = [json.loads(line) for line in (run / "items.jsonl").read_text().splitlines()]
    shown = report_rows(tmp_path / "r.html")
    assert [r["cells"]["item"] for r in shown] == [r["item_id"] for r in rows]
    assert [r["cells"]["gold"] for r in shown] == [r["gold_emotion"] for r in rows] and all(
        r["cells"]["response"] == "" for r in shown
    )


def test_report_of_a_hostile_model_name_is_text(runs, tmp_path):
    out = tmp_path / "r.html"
    assert main(["report", str(runs["hostile"]), "--output", str(out)]) == 0
    html = out.read_text()
    assert HOSTILE not in html and "&lt;script&gt;alert(1)&lt;/script&gt;" in html


def test_report_of_outputs_without_spans(tmp_path, monkeypatch):
    """A model that writes no spans (and a judge that gives no valid verdict): every item is
    non-compliant, wrong and unscored, and the page still renders them."""
    from helpers import write_dataset

    from kardiabench.testing.fake_openai import FakeConfig, FakeOpenAIServer

    monkeypatch.setenv("OPENAI_API_KEY", "sk-local-test")
    data, out = write_dataset(tmp_path / "data"), tmp_path / "run"
    with FakeOpenAIServer(
        FakeConfig(reply_fn=lambda request: "just words & <b>no</b> spans")
    ) as srv:
        assert (
            main(
                [
                    "run",
                    "--model",
                    "openai:m",
                    "--base-url",
                    srv.url,
                    "--data",
                    str(data),
                    "--output",
                    str(out),
                    "--judge",
                    "openai:j",
                    "--judge-base-url",
                    srv.url,
                    "--no-progress",
                    "--no-cache",
                    "--resamples",
                    "50",
                ]
            )
            == 0
        )
    assert main(["report", str(out)]) == 0
    html = (out / "report.html").read_text()
    rows = report_rows(out / "report.html")
    assert len(rows) == len((out / "items.jsonl").read_text().splitlines())
    assert all(
        r["flags"]["wrong"] and r["flags"]["noncompliant"] and r["flags"]["unscored"] for r in rows
    )
    assert all(r["bad"] == ["predicted", "format"] for r in rows)
    assert "<b>no</b>" not in html


def test_one_colour_per_model_across_the_site_and_every_plot(board):
    html = (board / "site" / "index.html").read_text()
    swatches = re.findall(r'class="swatch" style="background:(#[0-9a-f]{6})"', html)
    assert len(swatches) == 7 and len(set(swatches)) == 7
    entries, b, colors = plot_board(board)
    assert set(colors.values()) == set(swatches)
    for g in b.groups:
        models = set(
            b.frame.loc[(b.frame["kind"] == "run") & (b.frame["group"] == g.name), "model"]
        )
        radar = plots.radar_figure(b, g.name, colors)
        drawn = {
            line.get_label(): matplotlib.colors.to_hex(line.get_color())
            for line in radar.axes[0].get_lines()
        }
        assert {m: drawn[plots.literal(m)] for m in models} == {m: colors[m] for m in models}
        bars = plots.bars_figure(b, g.name, colors)
        filled = {
            c.get_label(): matplotlib.colors.to_hex(c.patches[0].get_facecolor())
            for ax in bars.axes
            for c in ax.containers
            if isinstance(c, matplotlib.container.BarContainer)
        }
        assert {m: filled[plots.literal(m)] for m in models} == {m: colors[m] for m in models}
    heatmap = plots.heatmap_figure(b, entries, colors)
    ticks = [matplotlib.colors.to_hex(t.get_color()) for t in heatmap.axes[0].get_yticklabels()]
    assert ticks == [colors[m] for m in b.frame.loc[b.frame["kind"] == "run", "model"]]
    matplotlib.pyplot.close("all")


def test_build_redacted_reports_leave_out_the_users_turns(runs, tmp_path):
    folder = tmp_path / "lb"
    assert main(["leaderboard", "add", str(runs["gen"]), "--leaderboard", str(folder)]) == 0
    assert (
        main(
            ["leaderboard", "build", "--leaderboard", str(folder), "--redact", "--resamples", "50"]
        )
        == 0
    )
    (report,) = (folder / "site" / "reports").glob("*.html")
    html = report_text(report)
    assert (
        "That sounds hard" in html
        and "my interview is soon" not in html
        and "Redacted export" in (folder / "site" / "index.html").read_text()
    )
    rows = report_rows(report)
    # spans, scores
    assert len(rows) == 12 and all(
        r["cells"]["response"] and len(r["cells"]["judge verdict"][0].split(",")) == 5 for r in rows
    )


def test_report_of_an_unscored_run_is_a_one_line_error(tmp_path, capsys):
    from helpers import write_dataset

    data = write_dataset(tmp_path / "data")
    assert (
        main(
            [
                "generate",
                "--model",
                "baseline:majority",
                "--data",
                str(data),
                "--output",
                str(tmp_path / "g"),
                "--no-progress",
            ]
        )
        == 0
    )
    capsys.readouterr()
    assert main(["report", str(tmp_path / "g")]) == 2
    assert (
        capsys.readouterr().err.strip()
        == f"error: {tmp_path / 'g'}: not scored yet (no results.json); run `kardiabench score {tmp_path / 'g'}` first"
    )


# ----------------------------------------------------------------------------- trust, safety


def _copy_run(runs, name: str, dest) -> Path:
    return Path(shutil.copytree(runs[name], dest / name))


def _edit_json(path, edit) -> None:
    data = json.loads(path.read_text())
    edit(data)
    path.write_text(json.dumps(data))


def test_add_and_build_refuse_numbers_the_items_do_not_support(runs, tmp_path, capsys):
    """A results.json hand-edited to Emo Acc 99.0 is refused by add; an entry edited after add is
    refused by build: one line naming the run folder and the metric, exit 2."""
    run = _copy_run(runs, "gen", tmp_path)
    honest = json.loads((run / "results.json").read_text())["metrics"]["emotion_accuracy"]["value"]
    _edit_json(run / "results.json", lambda d: d["metrics"]["emotion_accuracy"].update(value=99.0))
    folder = tmp_path / "lb"
    assert main(["leaderboard", "add", str(run), "--leaderboard", str(folder)]) == 2
    err = capsys.readouterr().err
    assert (
        err.count("\n") == 1
        and str(run) in err
        and "emotion_accuracy.value is 99.0" in err
        and f"gives {honest}" in err
    )
    assert not (folder / "entries").is_dir() or not list((folder / "entries").glob("*.json"))
    # a narrower CI
    _edit_json(run / "results.json", lambda d: d["metrics"]["empathy"].update(ci_low=4.9))
    _edit_json(
        run / "results.json", lambda d: d["metrics"]["emotion_accuracy"].update(value=honest)
    )
    assert main(["leaderboard", "add", str(run), "--leaderboard", str(folder)]) == 2
    assert "empathy.ci_low is 4.9" in capsys.readouterr().err
    _edit_json(
        run / "results.json",
        lambda d: d["metrics"]["empathy"].update(
            ci_low=runs_metric(runs, "gen", "empathy", "ci_low")
        ),
    )
    assert main(["leaderboard", "add", str(run), "--leaderboard", str(folder)]) == 0
    (entry,) = (folder / "entries").glob("*.json")
    _edit_json(entry, lambda d: d["results"]["metrics"]["format_compliance"].update(value=12.5))
    capsys.readouterr()
    assert main(["leaderboard", "build", "--leaderboard", str(folder), "--resamples", "50"]) == 2
    err = capsys.readouterr().err
    assert (
        err.count("\n") == 1
        and str(run.resolve()) in err
        and "format_compliance.value is 12.5" in err
        and "Traceback" not in err
    )
    assert not (folder / "leaderboard.csv").exists()


def runs_metric(runs, name: str, metric: str, key: str):
    return json.loads((runs[name] / "results.json").read_text())["metrics"][metric][key]


def _failed_run(runs, tmp_path) -> Path:
    """Scored through the CLI from predictions that all failed (the endpoint was down)."""
    ids = [json.loads(x)["item_id"] for x in (runs["gen"] / "items.jsonl").read_text().splitlines()]
    preds = tmp_path / "down.jsonl"
    preds.write_text(
        "".join(
            json.dumps({"item_id": i, "raw_output": None, "error": "connection refused"}) + "\n"
            for i in ids
        )
    )
    out = tmp_path / "down"
    data = runs["gen"].parent / "data"
    assert (
        main(
            [
                "score",
                "--predictions",
                str(preds),
                "--data",
                str(data),
                "--output",
                str(out),
                "--resamples",
                "50",
            ]
        )
        == 0
    )
    return out


def test_a_run_without_any_prediction_is_refused_by_add_and_not_ranked_by_build(
    runs, tmp_path, capsys
):
    down = _failed_run(runs, tmp_path)
    folder = tmp_path / "lb"
    capsys.readouterr()
    assert main(["leaderboard", "add", str(down), "--leaderboard", str(folder)]) == 2
    err = capsys.readouterr().err
    assert (
        err.count("\n") == 1
        and str(down) in err
        and "no predicted items" in err
        and "0 of 12" in err
    )
    # An entry recorded before this check (old results.json: 0.0, or the new null form): kept, marked, not ranked.
    import kardiabench.leaderboard.entries as ent

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(ent, "check_items", lambda *a: None)  # record it as an older kardiabench did
        entry = folder / "entries" / f"{ent.add_run(down, folder).entry_id}.json"
    assert main(["leaderboard", "add", str(runs["retrieval"]), "--leaderboard", str(folder)]) == 0
    for value in (0.0, None):
        _edit_json(
            entry,
            lambda d, v=value: [
                d["results"]["metrics"][m].update(value=v)
                for m in ("emotion_accuracy", "format_compliance")
            ],
        )
        assert (
            main(["leaderboard", "build", "--leaderboard", str(folder), "--resamples", "50"]) == 0
        )
        frame = pd.read_csv(folder / "leaderboard.csv")
        row = frame[frame["entry_id"] == entry.stem].iloc[0]
        assert (
            pd.isna(row["rank"])
            and pd.isna(row["tier"])
            and pd.isna(row["emotion_accuracy"])
            and row["not_ranked"] == "no predicted items"
        )
        assert frame.loc[frame["model"] == "baseline:retrieval", "rank"].tolist() == [1]
        md = (folder / "leaderboard.md").read_text()
        line = next(x for x in md.splitlines() if "(not ranked: no predicted items)" in x)
        assert line.endswith("| – | – | – | – | – | – | – |") and "0.0" not in line
        assert "not ranked: no predicted items" in (folder / "site" / "index.html").read_text()
        assert json.loads((folder / "build.json").read_text())["not_ranked"] == {
            entry.stem: "no predicted items"
        }


def test_groups_split_on_the_judges_endpoint_and_every_scoring_setting(
    runs, tmp_path, monkeypatch, capsys
):
    """The same judge spec on two servers, or with --judge-show-reasoning / another --judge-pool,
    is not one group; run.json records the endpoint (scheme, host, port, path; no credentials)."""
    from helpers import write_dataset

    from kardiabench.redact import public_endpoint
    from kardiabench.testing.fake_openai import FakeConfig, FakeOpenAIServer

    monkeypatch.setenv("OPENAI_API_KEY", "sk-local-test")
    data = write_dataset(tmp_path / "data")
    common = [
        "--model",
        "baseline:majority",
        "--data",
        str(data),
        "--no-progress",
        "--no-cache",
        "--resamples",
        "50",
        "--judge",
        "openai:judge-model",
    ]
    out = {}
    with FakeOpenAIServer(FakeConfig()) as one, FakeOpenAIServer(FakeConfig()) as two:
        for name, extra in {
            "a": ["--judge-base-url", one.url],
            "a2": ["--judge-base-url", one.url],
            "b": ["--judge-base-url", two.url],
            "reasoning": ["--judge-base-url", one.url, "--judge-show-reasoning"],
            "median": ["--judge-base-url", one.url, "--judge-pool", "median"],
        }.items():
            out[name] = tmp_path / name
            assert main(["run", *common, *extra, "--output", str(out[name])]) == 0
        urls = {"a": one.url, "b": two.url}
    judge = json.loads((out["a"] / "run.json").read_text())["judge"]
    assert judge["endpoints"] == {
        "openai:judge-model": public_endpoint(urls["a"])
    } and public_endpoint(urls["a"]).startswith("http://127.0.0.1:")
    assert (
        judge["show_reasoning"] is False and judge["temperature"] == 0.0 and judge["pool"] == "mean"
    )
    assert json.loads((out["b"] / "results.json").read_text())["judge"]["endpoints"] == {
        "openai:judge-model": public_endpoint(urls["b"])
    }
    folder = tmp_path / "lb"
    assert main(["leaderboard", "add", *map(str, out.values()), "--leaderboard", str(folder)]) == 0
    groups = group_entries(load_entries(folder))
    assert sorted(sorted(e.run_path.name for e in g.entries) for g in groups) == [
        ["a", "a2"],
        ["b"],
        ["median"],
        ["reasoning"],
    ]
    assert (
        public_endpoint(urls["b"])
        in next(g for g in groups if g.entries[0].run_path.name == "b").explanation
    )


def test_public_endpoint_keeps_no_credentials_or_query():
    from kardiabench.redact import public_endpoint

    assert (
        public_endpoint("https://user:sk-secret@API.example.com:8443/v1/?key=sk-x#frag")
        == "https://api.example.com:8443/v1"
    )
    assert public_endpoint("http://127.0.0.1:8000/v1") == "http://127.0.0.1:8000/v1"


def _one_entry_board(runs, tmp_path) -> tuple[Path, Path]:
    folder = tmp_path / "lb"
    assert main(["leaderboard", "add", str(runs["majority"]), "--leaderboard", str(folder)]) == 0
    (entry,) = (folder / "entries").glob("*.json")
    return folder, entry


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (
            lambda d: d.update(entry_id="../../outside"),
            "entry_id: '../../outside' is not this file's name",
        ),
        (lambda d: d.update(entry_id="/tmp/abs"), "entry_id: '/tmp/abs'"),
        (
            lambda d: d.update(items="../../../etc/passwd"),
            "items: '../../../etc/passwd' is not items/",
        ),
        (lambda d: d.update(schema_version=99), "schema_version: 99 is not a version"),
        (
            lambda d: d["results"]["metrics"]["emotion_accuracy"].update(value="high"),
            "results.metrics.emotion_accuracy.value",
        ),
        (lambda d: d.update(model=["x"]), "model: Input should be a valid string"),
        (lambda d: d.pop("manifest"), "manifest: Field required"),
    ],
)
def test_build_refuses_an_unsafe_or_malformed_entry_in_one_line(
    runs, tmp_path, capsys, edit, message
):
    folder, entry = _one_entry_board(runs, tmp_path)
    _edit_json(entry, edit)
    capsys.readouterr()
    assert main(["leaderboard", "build", "--leaderboard", str(folder), "--resamples", "50"]) == 2
    err = capsys.readouterr().err
    assert (
        err.count("\n") == 1
        and err.startswith(f"error: {entry}: ")
        and message in err
        and "Traceback" not in err
    )
    assert not (folder / "leaderboard.csv").exists() and not (tmp_path / "outside.html").exists()


# ----------------------------------------------------------------------------- hostile texts

SPOOF = "\u202egnp.exe"  # a bidi override: shows as "exe.png"
MATH_MODEL = "openai:$\\frac{$x" + SPOOF  # `$…$`: mathtext that fails to parse
HOSTILE_JUDGE = "openai:judge\n\\input{/etc/hostname}"


@pytest.fixture(scope="module")
def hostile_run(tmp_path_factory):
    """A run whose model name is mathtext with a bidi override, judged by a spec with a newline."""
    from helpers import write_dataset

    from kardiabench.testing.fake_openai import FakeConfig, FakeOpenAIServer

    root = tmp_path_factory.mktemp("hostile")
    with pytest.MonkeyPatch.context() as mp, FakeOpenAIServer(FakeConfig()) as srv:
        mp.setenv("OPENAI_API_KEY", "sk-local-test")
        assert (
            main(
                [
                    "run",
                    "--model",
                    MATH_MODEL,
                    "--base-url",
                    srv.url,
                    "--data",
                    str(write_dataset(root / "data")),
                    "--output",
                    str(root / "run"),
                    "--judge",
                    HOSTILE_JUDGE,
                    "--judge-base-url",
                    srv.url,
                    "--no-progress",
                    "--no-cache",
                    "--resamples",
                    "50",
                ]
            )
            == 0
        )
    return root / "run"


def test_hostile_names_build_a_leaderboard_shown_literally(hostile_run, runs, tmp_path):
    folder = tmp_path / "lb"
    assert (
        main(
            [
                "leaderboard",
                "add",
                str(hostile_run),
                str(runs["majority"]),
                "--leaderboard",
                str(folder),
            ]
        )
        == 0
    )
    assert main(["leaderboard", "build", "--leaderboard", str(folder), "--resamples", "50"]) == 0
    tex = (folder / "leaderboard.tex").read_text()
    assert "\n\\input" not in tex and r"\textbackslash{}input\{/etc/hostname\}" in tex
    assert all(not line.lstrip().startswith("\\input") for line in tex.splitlines())
    assert (
        r"openai:\allowbreak{}\$\textbackslash{}frac\{\$x\textless{}U+\allowbreak{}202E\textgreater{}\allowbreak{}gnp.\allowbreak{}exe"
        in tex
    )
    md, html = (folder / "leaderboard.md").read_text(), (folder / "site" / "index.html").read_text()
    assert "&lt;U+202E&gt;gnp.exe" in md and "&lt;U+000A&gt;\\\\input" in md
    assert "openai:$\\frac{$x&lt;U+202E&gt;gnp.exe" in html
    assert not any(
        "\u202e" in p.read_text()
        for p in (
            folder / "leaderboard.md",
            folder / "leaderboard.tex",
            folder / "site" / "index.html",
        )
    )
    entries, b, colors = plot_board(folder)
    group = b.frame.loc[b.frame["spec"] == MATH_MODEL, "group"].iloc[0]
    figures = [
        plots.radar_figure(b, group, colors),
        plots.bars_figure(b, group, colors),
        plots.heatmap_figure(b, entries, colors),
    ]
    texts = [t.get_text() for fig in figures for t in fig.findobj(matplotlib.text.Text)]
    assert not any("\u202e" in t for t in texts)
    # named visibly, $ escaped
    assert "openai:\\$\\frac{\\$x<U+202E>gnp.exe" in [
        t.get_text() for t in figures[0].legends[0].get_texts()
    ]
    matplotlib.pyplot.close("all")
    assert (folder / "plots" / f"radar-{group}.pdf").is_file()


def test_report_of_a_mathtext_model_name_renders(hostile_run, tmp_path):
    out = tmp_path / "r.html"
    assert main(["report", str(hostile_run), "--output", str(out)]) == 0
    assert "<svg" in out.read_text()


def test_a_local_judge_under_other_weights_is_its_own_group(tmp_path):
    from kardiabench.leaderboard.entries import Entry
    from kardiabench.leaderboard.groups import comparability_key

    def entry(models=None):
        judge = {"spec": "hf:judge", "show_reasoning": False, "temperature": 0.0}
        if models is not None:
            judge["models"] = models
        results = {"data": {"source": "hub", "split": "test"}, "judge": judge}
        return Entry(tmp_path, {"results": results, "manifest": {"judge": judge}})

    bf16, fp32 = ({"hf:judge": {"dtype": d, "revision": None}} for d in ("bfloat16", "float32"))
    assert comparability_key(entry(bf16)) == comparability_key(entry(bf16))
    assert comparability_key(entry(bf16)) != comparability_key(entry(fp32))
    # an API judge records no weights: its key is the one it had before `models` existed
    assert "models" not in dict(comparability_key(entry()))["judge_settings"]
