"""KardiaBench evaluation harness.

The Python API (`kardiabench/api.py`, docs/api.md) is imported on first use, so `import
kardiabench` and `kardiabench --help` stay fast::

    import kardiabench as kb
    run = kb.evaluate(model="openai:gpt-4o", output="runs/gpt-4o", data="sample", judges=["openai:gpt-5-mini"])
"""

import importlib

__version__ = "0.1.0"

_API = {
    **dict.fromkeys(
        (
            "evaluate",
            "generate",
            "score",
            "compare",
            "dry_run",
            "judge_agreement",
            "judge_audit",
            "pairwise",
            "annotate",
            "annotate_import",
            "validate_data",
            "data_stats",
            "show_dialogue",
            "synth_data",
            "list_tasks",
            "write_report",
            "leaderboard_add",
            "leaderboard_build",
            "leaderboard_push",
            "leaderboard_add_pairwise",
            "reproduce_runs",
            "train_model",
            "JudgeOptions",
            "ParameterError",
            "UnknownOption",
            "Interrupted",
        ),
        "kardiabench.api",
    ),
    **dict.fromkeys(("load_run", "Run", "RunFileError"), "kardiabench.runs"),
}
__all__ = ["__version__", *_API]


def __getattr__(name: str):
    if name not in _API:
        raise AttributeError(f"module 'kardiabench' has no attribute {name!r}")
    return getattr(importlib.import_module(_API[name]), name)


def __dir__() -> list[str]:
    return sorted({*globals(), *_API})
