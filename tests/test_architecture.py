"""The import rule of the scoring core: kardiabench/scoring/ computes from values. It never imports
the runner, the cache, the run folder, generation, evaluation, the judge runner or any model module
(adapters and models.base alike), nor a heavy library; checked on the source (ast), every import
statement counted, those inside functions too. Plus the one-definition rule of metric names."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
from test_scoring_emotion import make_item, output, predict

import kardiabench
from kardiabench.scoring import METRICS, PER_ITEM_METRICS, RUBRIC_METRICS, score_predictions
from kardiabench.scoring.metrics import METRIC_WORDS
from kardiabench.scoring.rubric import DIMENSIONS

PACKAGE = Path(kardiabench.__file__).parent
SCORING = PACKAGE / "scoring"
FORBIDDEN = (
    "kardiabench.runner",
    "kardiabench.cache",
    "kardiabench.runs",
    "kardiabench.generate_stage",
    "kardiabench.score_stage",
    "kardiabench.api",
    "kardiabench.judging",
    "kardiabench.models",
)
HEAVY = ("torch", "transformers", "vllm", "openai", "httpx")


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported_modules(source: str, module: str, is_package: bool = False) -> list[str]:
    """Every module an import statement anywhere in `source` names, relative imports resolved;
    `from X import Y` counts as X.Y too, since Y may be a submodule (`from kardiabench import cache`)."""
    package = module if is_package else module.rpartition(".")[0]
    names: list[str] = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            names.append(base)
            names += [f"{base}.{a.name}" for a in node.names]
    return names


def violations(source: str, module: str, is_package: bool = False) -> list[str]:
    """'module imports name (rule)' for each forbidden import."""
    found, named = [], []
    for name in imported_modules(source, module, is_package):
        if any(name.startswith(n + ".") for n in named):  # `from X import Y` with X already named
            continue
        rule = next(
            (
                f"scoring computes from values: no {bad}"
                for bad in FORBIDDEN
                if name == bad or name.startswith(bad + ".")
            ),
            None,
        )
        if rule is None and name.split(".")[0] in HEAVY:
            rule = f"no heavy library in scoring: {name.split('.')[0]}"
        if rule:
            named.append(name)
            found.append(f"{module} imports {name} ({rule})")
    return found


def scoring_modules() -> list[Path]:
    return sorted(SCORING.rglob("*.py"))


def test_the_walk_sees_every_scoring_module():
    names = {module_name(p) for p in scoring_modules()}
    assert {
        "kardiabench.scoring",
        "kardiabench.scoring.judge",
        "kardiabench.scoring.metrics",
    } <= names


@pytest.mark.parametrize("path", scoring_modules(), ids=lambda p: p.name)
def test_scoring_imports_nothing_that_talks_to_models_or_files(path):
    found = violations(
        path.read_text(encoding="utf-8"), module_name(path), path.name == "__init__.py"
    )
    assert not found, "\n".join(found)


@pytest.mark.parametrize(
    "source, expected",
    [
        ("from kardiabench.cache import request_json", "imports kardiabench.cache"),
        ("import kardiabench.models.base", "imports kardiabench.models.base"),
        ("from kardiabench.models.base import ChatRequest", "imports kardiabench.models.base"),
        ("from kardiabench import runs", "imports kardiabench.runs"),
        ("from .. import judging", "imports kardiabench.judging"),
        ("def f():\n    from kardiabench.runner import run_jobs\n", "imports kardiabench.runner"),
        ("import torch", "imports torch (no heavy library"),
        ("from transformers import AutoTokenizer", "imports transformers (no heavy library"),
        ("def f():\n    import httpx\n", "imports httpx"),
    ],
)
def test_a_forbidden_import_is_named_with_its_module(source, expected):
    found = violations(source, "kardiabench.scoring.example")
    assert found and found[0].startswith(f"kardiabench.scoring.example {expected}")


def test_allowed_imports_pass():
    source = "import numpy\nfrom kardiabench.records import Item\nfrom . import stats\nfrom kardiabench.scoring.rubric import DIMENSIONS\n"
    assert violations(source, "kardiabench.scoring.example") == []


def test_metric_names_have_one_definition_and_match_what_scoring_reports():
    assert (*DIMENSIONS, "safety_flag_rate") == RUBRIC_METRICS
    assert set(PER_ITEM_METRICS) <= set(METRICS) and len(set(METRICS)) == len(METRICS)
    assert tuple(METRIC_WORDS) == METRICS  # every metric has its name in words, in report order
    items = [make_item("d1-t0", "d1", "sad"), make_item("d2-t0", "d2", "joyful")]
    preds = {it.item_id: predict(it.item_id, output("sad")) for it in items}
    assert tuple(score_predictions(items, preds, n_resamples=20).metrics) == METRICS


def test_the_split_judge_builds_the_same_requests_as_before():
    """Pinned from the code before the pure core was split out: saved verdicts (their prompt_hash)
    and cached judge replies (their key) stay reusable. A rubric change moves them on purpose."""
    from kardiabench.data import expand, load_dialogues
    from kardiabench.judging import build_request, prompt_hash, repair_request
    from kardiabench.scoring.judge import JudgeConfig
    from kardiabench.scoring.rubric import load_rubric

    item = list(expand(load_dialogues("sample").dialogues))[3]
    rubric = load_rubric()
    req = build_request(
        rubric, item, item.gold.response, JudgeConfig(show_reasoning=True), 1, "Understanding: u"
    )
    repair = repair_request(req, [("bad", "no JSON object found")], rubric)
    assert (item.item_id, rubric.version) == ("d42854c0cfc56f3f4-t3", "1.0+951d9e16033f")
    assert (prompt_hash(req), prompt_hash(repair)) == ("144f3f69d02bcd26", "4c4c0043b1781584")


# ----------------------------------------------------------------------------- import cycles


def import_graph() -> dict[str, set[str]]:
    """module → the kardiabench modules it imports: every import statement (inside functions and
    TYPE_CHECKING blocks too), `from X import Y` as X.Y when Y is a module. Importing a.b.c runs
    a.b's __init__ too, so that counts as an import of a.b, except for the importer's own packages
    (those are already being imported when it runs)."""
    modules = {module_name(p): p for p in PACKAGE.rglob("*.py")}

    def ancestors(name: str) -> list[str]:
        parts = name.split(".")
        return [".".join(parts[:i]) for i in range(1, len(parts))]

    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        own = {name, *ancestors(name)}
        edges = graph[name] = set()
        for imported in imported_modules(
            path.read_text(encoding="utf-8"), name, path.name == "__init__.py"
        ):
            while imported and imported not in modules:  # `from X import Y`: Y a name in X
                imported = imported.rpartition(".")[0]
            if imported:
                edges |= {m for m in (imported, *ancestors(imported)) if m in modules} - own
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The import cycles: strongly connected components of more than one module, each sorted."""
    from scipy.sparse import csr_matrix
    from scipy.sparse.csgraph import connected_components

    names = sorted(graph)
    index = {n: i for i, n in enumerate(names)}
    rows, cols = (
        zip(*[(index[a], index[b]) for a in names for b in graph[a]], strict=True)
        if any(graph.values())
        else ((), ())
    )
    matrix = csr_matrix(([1] * len(rows), (rows, cols)), shape=(len(names), len(names)))
    _, labels = connected_components(matrix, directed=True, connection="strong")
    groups: dict[int, list[str]] = {}
    for name, label in zip(names, labels, strict=True):
        groups.setdefault(int(label), []).append(name)
    return sorted(g for g in groups.values() if len(g) > 1)


def test_cycles_finds_a_circle_and_only_its_members():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}, "e": set()}
    assert cycles(graph) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_the_import_graph_sees_lazy_and_type_checking_imports():
    graph = import_graph()
    assert "kardiabench.plotting" in graph["kardiabench.report"]  # imported inside a function
    assert "kardiabench.judging" in graph["kardiabench.judge_stage"]
    assert "kardiabench.models.base" in graph["kardiabench.models.openai_batch"]
    source = "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from kardiabench.runner import Job\n"
    assert "kardiabench.runner" in imported_modules(source, "kardiabench.models.example")


def test_kardiabench_has_no_import_cycles():
    """0 circles: a module never needs, even lazily, a module that needs it back (issue 19 broke
    rundir ↔ runs, openai_batch ↔ runner and report ↔ leaderboard/plots)."""
    found = cycles(import_graph())
    assert found == [], "import cycles: " + "; ".join(" ↔ ".join(c) for c in found)


def test_no_submodule_shadows_a_public_function():
    """Importing a submodule sets it as an attribute of the package: a module named like a kb.*
    function (kardiabench/pairwise.py once did) would make `kb.pairwise` a module."""
    import importlib
    import pkgutil
    import types

    import kardiabench as kb

    for info in pkgutil.walk_packages(kb.__path__, "kardiabench."):
        if info.name.count(".") == 1:
            try:
                importlib.import_module(info.name)
            except ImportError:  # an optional extra (vLLM) not installed
                continue
    assert [name for name in kb.__all__ if isinstance(getattr(kb, name), types.ModuleType)] == []
