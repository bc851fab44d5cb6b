"""Plots that print at paper width (issue 17): the files `leaderboard build` writes (two widths, PDF
and PNG, one radar and one bar chart per comparability group) and the matplotlib figures behind
them (text sizes, legend placement, the reported rows' reserved style, heatmap order and n,
confusion matrix ticks and alignment)."""

from __future__ import annotations

import json
import re
import struct
from itertools import combinations

import matplotlib
import pytest
from leaderboard_runs import make_runs_in, plot_board

from kardiabench.cli import main
from kardiabench.emotions import EMOTIONS
from kardiabench.leaderboard import plots
from kardiabench.leaderboard.tables import display_names
from kardiabench.scoring.metrics import DIMENSION_WORDS


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """A leaderboard of the test runs (three groups, the paper's reported rows), built by the CLI."""
    runs = make_runs_in(tmp_path_factory)
    folder = tmp_path_factory.mktemp("lb") / "leaderboard"
    assert main(["leaderboard", "add", *map(str, runs.values()), "--leaderboard", str(folder)]) == 0
    assert main(["leaderboard", "build", "--leaderboard", str(folder), "--resamples", "50"]) == 0
    return folder


@pytest.fixture(scope="module")
def board(built):
    """(entries, the board, the colours) of the built leaderboard, through the Python API."""
    return plot_board(built)


def _figures(entries, board, colors):
    """(name, size, figure) of every kind of plot the build writes, at both widths."""
    labels = display_names(entries)
    e = next(e for e in entries if e.results["emotion"]["confusion"])
    for size in plots.SIZES:
        for g in board.groups:
            yield f"radar-{g.name}", size, plots.radar_figure(board, g.name, colors, size)
            yield f"bars-{g.name}", size, plots.bars_figure(board, g.name, colors, size)
        yield "emotion_heatmap", size, plots.heatmap_figure(board, entries, colors, size)
        yield (
            "confusion",
            size,
            plots.confusion(
                e.results["emotion"]["confusion"],
                labels[e.entry_id],
                colors[labels[e.entry_id]],
                size,
            ),
        )
        yield "confusion-32", size, plots.confusion(_all_emotions_table(), "a model", "black", size)


def _all_emotions_table() -> dict[str, dict[str, int]]:
    """Every one of the 32 labels as gold, mostly right, some wrong or invalid."""
    return {
        g: {g: 7 + i % 5, EMOTIONS[(i + 1) % len(EMOTIONS)]: i % 3, "<invalid>": i % 2}
        for i, g in enumerate(EMOTIONS)
    }


def _pdf_width_pt(path) -> float:
    box = re.search(rb"/MediaBox\s*\[\s*0 0 ([\d.]+) ([\d.]+)", path.read_bytes())
    return float(box.group(1))


def _png_width_px(path) -> int:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    return struct.unpack(">I", data[16:20])[0]


def test_build_writes_every_plot_at_both_widths_as_pdf_and_png(built, board):
    entries, b, _ = board
    p = built / "plots"
    stems = [
        *(f"radar-{g.name}" for g in b.groups),
        *(f"bars-{g.name}" for g in b.groups),
        "emotion_heatmap",
        *(f"confusion/{e.entry_id}" for e in entries),
    ]
    for stem in stems:
        for size in plots.SIZES:
            assert _pdf_width_pt(p / f"{stem}{size.suffix}.pdf") == pytest.approx(
                size.width * 72, abs=0.01
            ), stem
            assert _png_width_px(p / f"{stem}{size.suffix}.png") == round(size.width * plots.DPI), (
                stem
            )
    # one radar (and one bar chart) per comparability group: 3 groups here
    assert len(b.groups) == 3
    assert len([f for f in p.glob("radar-*.pdf") if not f.stem.endswith("-1col")]) == len(b.groups)
    assert len(list(p.glob("bars-*-1col.png"))) == len(b.groups)
    assert not list(p.rglob("*.svg"))
    files = json.loads((built / "build.json").read_text())["files"]
    assert {
        "plots/radar-G1.pdf",
        "plots/radar-G1-1col.png",
        "plots/emotion_heatmap-1col.pdf",
    } <= set(files)
    html = (built / "site" / "index.html").read_text()
    assert all(f"{g.name}: six axes" in html for g in b.groups)


def test_every_figure_is_its_print_width_with_no_text_under_7pt(board):
    checked = 0
    for name, size, fig in _figures(*board):
        fig.canvas.draw()
        assert fig.get_figwidth() == pytest.approx(size.width), name
        texts = [
            t for t in fig.findobj(matplotlib.text.Text) if t.get_visible() and t.get_text().strip()
        ]
        assert texts, name
        small = [
            (t.get_text(), t.get_fontsize()) for t in texts if t.get_fontsize() < plots.MIN_FONT
        ]
        assert not small, (name, size, small)
        # nothing drawn off the page: everything drawn (tick labels, legend, titles) inside the figure
        drawn = fig.get_tightbbox(fig.canvas.get_renderer())
        assert drawn.x0 >= -0.01 and drawn.y0 >= -0.01, (name, size, drawn)
        assert drawn.x1 <= size.width + 0.01 and drawn.y1 <= fig.get_figheight() + 0.01, (
            name,
            size,
            drawn,
        )
        checked += 1
        matplotlib.pyplot.close(fig)
    assert checked == 2 * (2 * 3 + 3)


def test_radar_legend_outside_the_axes_and_reported_rows_in_a_style_no_model_uses(board):
    entries, b, colors = board
    runs = b.frame[b.frame["kind"] == "run"]
    reported = b.frame[b.frame["kind"] == "reported"]
    for g in b.groups:
        for size in plots.SIZES:
            fig = plots.radar_figure(b, g.name, colors, size)
            fig.canvas.draw()
            renderer = fig.canvas.get_renderer()
            (ax,) = fig.axes
            (legend,) = fig.legends
            assert not legend.get_window_extent(renderer).overlaps(ax.get_tightbbox(renderer)), (
                g.name,
                size,
            )
            names = [t.get_text() for t in legend.get_texts()]
            group_runs = [plots.literal(m) for m in runs.loc[runs["group"] == g.name, "model"]]
            assert names == [
                *group_runs,
                *(plots.literal(f"{m} (reported)") for m in reported["model"]),
            ]
            lines = {line.get_label(): line for line in ax.get_lines()}
            for name in group_runs:
                line = lines[name]
                assert matplotlib.colors.to_hex(line.get_color()) != plots.REPORTED_COLOUR
                assert (
                    line.get_linestyle() != plots.REPORTED_LINESTYLE
                    and line.get_markerfacecolor() != "none"
                )
            for m in reported["model"]:
                line = lines[plots.literal(f"{m} (reported)")]
                assert matplotlib.colors.to_hex(line.get_color()) == plots.REPORTED_COLOUR
                assert (
                    line.get_linestyle() == plots.REPORTED_LINESTYLE
                    and line.get_markerfacecolor() == "none"
                )
            matplotlib.pyplot.close(fig)
    # never the reported grey for a model, however many models
    for n in (3, 9, 10, 20):
        assert not {c for c in plots.model_colors([f"m{i}" for i in range(n)]).values()} & {
            plots.REPORTED_COLOUR,
            "#c7c7c7",
        }
    assert len(set(plots.model_colors([f"m{i}" for i in range(18)]).values())) == 18


def test_bars_show_asymmetric_cis_and_no_error_bar_on_reported_rows(board):
    _, b, colors = board
    f = b.frame
    fig = plots.bars_figure(b, "G1", colors)
    axes = dict(zip(plots.METRICS, fig.axes, strict=False))
    asymmetric = 0
    for metric, ax in axes.items():
        for bars in ax.containers:
            if not isinstance(bars, matplotlib.container.BarContainer):
                continue
            label = bars.get_label()
            if label.endswith("(reported)"):
                assert (
                    bars.errorbar is None and bars.patches[0].get_hatch() == plots.REPORTED_HATCH
                ), (metric, label)
                continue
            row = f[(f["group"] == "G1") & (f["model"].map(plots.literal) == label)].iloc[0]
            assert bars.errorbar is not None, (metric, label)
            (segments,) = [c for c in bars.errorbar.lines[2]]
            ((lo, _), (hi, _)) = segments.get_segments()[0]
            assert (lo, hi) == pytest.approx((row[f"{metric}_ci_low"], row[f"{metric}_ci_high"]))
            asymmetric += abs((row[metric] - lo) - (hi - row[metric])) > 1e-9
    assert asymmetric > 0  # the CIs drawn as they are, not as ± half-width
    # 4 rows × 4 metrics known
    assert (
        sum(b.get_label().endswith("(reported)") for ax in fig.axes for b in ax.containers) == 4 * 4
    )
    matplotlib.pyplot.close(fig)


def test_heatmap_rows_follow_the_leaderboard_with_each_cells_n(board):
    entries, b, colors = board
    runs = b.frame[b.frame["kind"] == "run"]
    order = [plots.literal(f"{g} · {m}") for g, m in zip(runs["group"], runs["model"], strict=True)]
    by_name = {
        plots.literal(f"{r['group']} · {r['model']}"): r["entry_id"] for _, r in runs.iterrows()
    }
    per = {e.entry_id: e.results["emotion"]["per_emotion_recall"] for e in entries}
    for size in plots.SIZES:
        fig = plots.heatmap_figure(b, entries, colors, size)
        panels = [ax for ax in fig.axes if ax.images]
        annotated = 0
        for ax in panels:
            rows = [t.get_text() for t in ax.get_yticklabels()]
            assert rows == order, size
            emotions = [t.get_text() for t in ax.get_xticklabels()]
            for t in ax.texts:
                x, y = t.get_position()
                assert t.get_text() == str(per[by_name[rows[round(y)]]][emotions[round(x)]]["n"])
                annotated += 1
        assert annotated == sum(len(p) for p in per.values())
        matplotlib.pyplot.close(fig)


def test_confusion_matrix_square_aligned_integer_ticks_labels_apart(board):
    for size in plots.SIZES:
        fig = plots.confusion(_all_emotions_table(), "a model", "black", size)
        fig.canvas.draw()
        ax, cbar = fig.axes[0], next(a for a in fig.axes if a.get_label() == "<colorbar>")
        ticks = [
            t for t in (cbar.get_xticks() if size.one_column else cbar.get_yticks()) if 0 <= t <= 11
        ]
        assert len(ticks) >= 2 and all(float(t).is_integer() for t in ticks)
        rows, cols = plots.confusion_labels(_all_emotions_table())
        # the diagonal is the correct predictions
        assert cols[: len(rows)] == rows and cols[len(rows) :] == ["<invalid>"]
        image = ax.images[0].get_array()
        assert [image[i, i] for i in range(len(rows))] == [7 + i % 5 for i in range(len(rows))]
        box = ax.get_window_extent()
        # square cells
        assert box.width / len(cols) == pytest.approx(box.height / len(rows), rel=0.01)
        x_labels = _tick_labels(fig, "x")
        y_labels = _tick_labels(fig, "y")
        by_x = {round(t.get_position()[0]): t.get_text() for t in x_labels}
        by_y = {round(t.get_position()[1]): t.get_text() for t in y_labels}
        # row i and column i: one label
        assert len(by_x) == len(cols) and all(by_y[i] == by_x[i] for i in range(len(rows)))
        # 33 names do not fit 3.3 in: numbers, and a key that names each one whole
        if size.one_column:
            key = fig.get_supxlabel()
            assert [by_x[i] for i in range(len(cols))] == [str(i) for i in range(1, len(cols) + 1)]
            assert all(f"{i}\u00a0{c}" in key.replace("\n", " ") for i, c in enumerate(cols, 1))
            assert all(
                w in [*cols, "Key:"] or re.fullmatch(r"\d+\u00a0\S+", w)
                for w in re.split(r"[ \n]+", key.replace(",", ""))
            )
        else:
            # whole words, never split
            assert [by_x[i] for i in range(len(cols))] == [plots.literal(c) for c in cols]
        for t in x_labels:  # upright, centred on its cell
            assert t.get_rotation() == 90 and t.get_horizontalalignment() == "center"
        for labels in (x_labels, y_labels):
            for a, c in combinations(labels, 2):
                if a.get_position() != c.get_position() and _same_side(a, c):
                    assert not a.get_window_extent().overlaps(c.get_window_extent()), (
                        size,
                        a.get_text(),
                        c.get_text(),
                    )
        matplotlib.pyplot.close(fig)


def _tick_labels(fig, axis: str) -> list:
    """The visible, non-empty tick labels of the matrix's `axis`, on either side."""
    out = []
    for ax in [a for top in fig.axes for a in (top, *top.child_axes)]:
        if ax.get_label() == "<colorbar>":
            continue
        a = ax.xaxis if axis == "x" else ax.yaxis
        for tick in a.get_major_ticks():
            out += [t for t in (tick.label1, tick.label2) if t.get_visible() and t.get_text()]
    return out


def _same_side(a, c) -> bool:
    ea, ec = a.get_window_extent(), c.get_window_extent()
    return (
        abs(ea.y0 - ec.y0) < 1
        if a.get_rotation() == 90
        else abs(ea.x1 - ec.x1) < 1 or abs(ea.x0 - ec.x0) < 1
    )


def test_report_confusion_svg_and_emotion_labels_that_do_not_break(built):
    report = next((built / "site" / "reports").glob("*.html")).read_text()
    assert '<figure id="confusion"><svg' in report
    assert ".label{white-space:nowrap}" in report and 'class="label"' in report


# ----------------------------------------------------------------------------- pairwise Bradley–Terry


def _pairwise_result(models, ref):
    """A pairwise.json's Bradley–Terry part: per dimension each model's score with an asymmetric CI."""
    dims = ("relevance", "fluency", "empathy", "persona_consistency", "safety")
    bt = {
        d: [
            {
                "model": m,
                "score": 1000.0 if m == ref else 1000.0 + 40 * (len(models) - 2 * i) + k,
                "low": 1000.0 if m == ref else 1000.0 + 40 * (len(models) - 2 * i) + k - 35,
                "high": 1000.0 if m == ref else 1000.0 + 40 * (len(models) - 2 * i) + k + 12,
                "win_rate_vs_reference": 50.0,
                "n_comparisons": 48,
            }
            for i, m in enumerate(models)
        ]
        for k, d in enumerate(dims)
    }
    return {"reference": ref, "runs": [{"name": m} for m in models], "bradley_terry": bt}


PAIRWISE = [
    (
        "r1-vs-all",
        _pairwise_result(
            ["openai:kardia-r1", "openai:gpt-4o", "hf:Qwen/Qwen2.5-7B-Instruct"], "openai:gpt-4o"
        ),
    ),
    ("good-vs-bad", _pairwise_result(["openai:bad", "openai:good"], None)),
]


def test_pairwise_bradley_terry_plot_at_both_widths_with_asymmetric_cis_and_the_reference_marked(
    tmp_path,
):
    from kardiabench.leaderboard import pairwise

    files = pairwise.plot(PAIRWISE, tmp_path / "plots" / "pairwise_bt")
    assert sorted(f.name for f in files) == [
        "pairwise_bt-1col.pdf",
        "pairwise_bt-1col.png",
        "pairwise_bt.pdf",
        "pairwise_bt.png",
    ]
    for size in plots.SIZES:
        stem = tmp_path / "plots" / f"pairwise_bt{size.suffix}"
        assert _pdf_width_pt(stem.with_suffix(".pdf")) == pytest.approx(size.width * 72, abs=0.01)
        assert _png_width_px(stem.with_suffix(".png")) == round(size.width * plots.DPI)

        fig = pairwise.bt_figure(PAIRWISE, size)
        fig.canvas.draw()
        assert fig.get_figwidth() == pytest.approx(size.width)
        texts = [
            t for t in fig.findobj(matplotlib.text.Text) if t.get_visible() and t.get_text().strip()
        ]
        assert not [(t.get_text(), t.get_fontsize()) for t in texts if t.get_fontsize() < 7], size
        drawn = fig.get_tightbbox(fig.canvas.get_renderer())
        assert drawn.x0 >= -0.01 and drawn.x1 <= size.width + 0.01, (size, drawn)
        assert drawn.y0 >= -0.01 and drawn.y1 <= fig.get_figheight() + 0.01, (size, drawn)
        panels = [ax for ax in fig.axes if ax.containers]
        assert [ax.get_title() for ax in panels] == ["r1-vs-all", "good-vs-bad"]
        asymmetric = 0
        for ax, (_, res) in zip(panels, PAIRWISE, strict=True):
            ref = res["reference"] or res["runs"][0]["name"]
            ticks = ax.get_yticklabels()
            marked = [t.get_text() for t in ticks if t.get_fontweight() == "bold"]
            assert marked == [f"{ref} (reference)"]
            assert sum("(reference)" in t.get_text() for t in ticks) == 1
            rows = {t.get_text().removesuffix(" (reference)"): t.get_position()[1] for t in ticks}
            words = {DIMENSION_WORDS[d]: d for d in res["bradley_terry"]}
            for bars in ax.containers:  # one per dimension, named in words
                scores = res["bradley_terry"][words[bars.get_label()]]
                segments = bars.lines[2][0].get_segments()
                assert len(segments) == len(scores)
                for s, ((lo, y), (hi, _)) in zip(scores, segments, strict=True):
                    # the CI as it is, on the model's own row
                    assert (lo, hi) == pytest.approx((s["low"], s["high"]))
                    assert abs(y - rows[s["model"]]) < 0.5
                    asymmetric += abs((s["score"] - lo) - (hi - s["score"])) > 1e-9
        assert asymmetric > 0
        (legend,) = fig.legends
        assert [t.get_text() for t in legend.get_texts()] == [
            DIMENSION_WORDS[d] for d in PAIRWISE[0][1]["bradley_terry"]
        ]
        matplotlib.pyplot.close(fig)
