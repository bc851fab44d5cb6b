"""Test helper: two generated run folders over the same data for the human A/B annotation tests.

Run A (`openai:kind-model`) answers warmly; run B (`openai:terse-model`) answers with hostile markup,
and one user of the data is named with hostile markup too (persona, history and user turns): the
pages must show all of it as text.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from helpers import write_dataset

from kardiabench.cli import main
from kardiabench.spans import render_spans
from kardiabench.testing.fake_openai import FakeConfig, FakeOpenAIServer

HOSTILE_RESPONSE = "<script>alert(1)</script><img src=x onerror=alert(2)> ok."
HOSTILE_USER = "<img src=y onerror=alert(3)>"
KIND = "I can hear how much this interview weighs on you; it makes sense to feel this way."
MODELS = {"a": "openai:kind-model", "b": "openai:terse-model"}


def _reply(request: dict) -> str:
    response = KIND if request.get("model") == "kind-model" else HOSTILE_RESPONSE
    return render_spans(
        {
            "understanding": "worried",
            "reasoning": "validate",
            "emotion": "anxious",
            "response": response,
        }
    )


def make_pair(root: Path, monkeypatch, test_users=("e", "f", "g", HOSTILE_USER)) -> dict[str, Path]:
    """{"a": run folder A, "b": run folder B, "data": dataset folder}: 3 turns per user, all answered."""
    monkeypatch.setenv("OPENAI_API_KEY", "sk-local-test")
    data = write_dataset(root / "data", test_users=test_users)
    out = {"data": data}
    with FakeOpenAIServer(FakeConfig(reply_fn=_reply)) as srv:
        for name, spec in MODELS.items():
            out[name] = root / f"run-{name}"
            assert (
                main(
                    [
                        "generate",
                        "--model",
                        spec,
                        "--base-url",
                        srv.url,
                        "--data",
                        str(data),
                        "--output",
                        str(out[name]),
                        "--no-progress",
                        "--no-cache",
                    ]
                )
                == 0
            )
    return out


def make_pair_in(tmp_path_factory) -> dict[str, Path]:
    mp = pytest.MonkeyPatch()
    try:
        return make_pair(tmp_path_factory.mktemp("pair"), mp)
    finally:
        mp.undo()
