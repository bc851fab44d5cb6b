"""A checkpoint written by `kardiabench train sft` (span markers added as special tokens, embeddings
resized) evaluated by `kardiabench run --model vllm:FOLDER`: the same greedy text as `hf:FOLDER`, and
the checkpoint's training record in run.json. .ci/vllm_check.sh trains the tiny config with the main
venv (this one has no TRL) and names the folder in KARDIABENCH_TRAINED_CHECKPOINT; skipped without it."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from kardiabench.cli import main


@pytest.fixture(scope="module")
def checkpoint() -> Path:
    if os.environ.get("KARDIABENCH_REQUIRE_VLLM") != "1":
        pytest.importorskip("vllm")
    folder = os.environ.get("KARDIABENCH_TRAINED_CHECKPOINT")
    if not folder:
        pytest.skip("KARDIABENCH_TRAINED_CHECKPOINT is not set (.ci/vllm_check.sh sets it)")
    assert (Path(folder) / "kardiabench_training.json").is_file(), (
        f"{folder} is not a kardiabench training checkpoint"
    )
    return Path(folder)


def outputs(run: Path) -> dict[str, str]:
    return {
        p["item_id"]: p["raw_output"]
        for p in map(json.loads, (run / "predictions.jsonl").read_text().splitlines())
    }


@pytest.mark.slow
def test_vllm_evaluates_a_trained_checkpoint_like_hf(checkpoint, tmp_path):
    os.environ.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")
    os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "1")
    common = [
        "--data",
        "sample",
        "--limit",
        "4",
        "--max-tokens",
        "32",
        "--dtype",
        "float32",
        "--no-progress",
        "--no-cache",
    ]
    assert (
        main(["run", "--model", f"vllm:{checkpoint}", "--output", str(tmp_path / "vllm"), *common])
        == 0
    )
    assert (
        main(
            [
                "run",
                "--model",
                f"hf:{checkpoint}",
                "--device",
                "cpu",
                "--output",
                str(tmp_path / "hf"),
                *common,
            ]
        )
        == 0
    )
    from_vllm, from_hf = outputs(tmp_path / "vllm"), outputs(tmp_path / "hf")
    assert len(from_vllm) == 4 and all(from_vllm.values())
    assert from_vllm == from_hf
    training = json.loads((tmp_path / "vllm" / "run.json").read_text())["training"]
    assert training["stage"] == "sft" and training["base_model"] == "tiny"
