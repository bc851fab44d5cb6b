"""A checkpoint trained against a rubric judge (kardiabench_training.json beside the weights) and
scored by a judge of that judge's family is flagged: run.json `training`, results.json
`rubric.training_judge_risk`, a summary.md warning and a ‡ on the leaderboard."""

from __future__ import annotations

import json
import shutil

from kardiabench.cli import main
from kardiabench.testing.fake_openai import FakeConfig, FakeOpenAIServer


def checkpoint(tiny_model_dir, tmp_path, judge: str | None):
    """The tiny model, copied, with the training record the trainer writes beside its weights."""
    out = tmp_path / "ckpt"
    shutil.copytree(tiny_model_dir, out)
    config = {"stage": "grpo", "model": "Qwen/Qwen3-0.6B", "judge": judge}
    (out / "kardiabench_training.json").write_text(json.dumps({"config": config, "source": {}}))
    return out


def test_a_judge_of_the_training_judge_family_is_flagged_down_to_the_leaderboard(
    tiny_model_dir, tmp_path
):
    ckpt, run, lb, lb2 = (
        checkpoint(tiny_model_dir, tmp_path, "vllm:Qwen/Qwen3-8B"),
        tmp_path / "run",
        tmp_path / "lb",
        tmp_path / "lb2",
    )
    with FakeOpenAIServer(FakeConfig()) as srv:
        assert (
            main(
                [
                    "run",
                    "--model",
                    f"hf:{ckpt}",
                    "--data",
                    "sample",
                    "--limit",
                    "4",
                    "--max-tokens",
                    "4",
                    "--device",
                    "cpu",
                    "--output",
                    str(run),
                    "--judge",
                    "openai:qwen3-8b-judge",
                    "--judge-base-url",
                    srv.url,
                    "--no-progress",
                    "--no-cache",
                    "--resamples",
                    "20",
                ]
            )
            == 0
        )
    training = json.loads((run / "run.json").read_text())["training"]
    assert (
        training["judge"] == "vllm:Qwen/Qwen3-8B"
        and training["base_model"] == "Qwen/Qwen3-0.6B"
        and training["stage"] == "grpo"
    )
    rubric = json.loads((run / "results.json").read_text())["rubric"]
    assert rubric["training_judge_risk"] == [
        {"training_judge": "vllm:Qwen/Qwen3-8B", "judge": "openai:qwen3-8b-judge", "family": "qwen"}
    ]
    assert "self_preference_risk" not in rubric  # the checkpoint folder's name is of no family
    assert (
        "Warning: training-judge risk: judge openai:qwen3-8b-judge is of the family (qwen)"
        in (run / "summary.md").read_text()
    )
    assert main(["leaderboard", "add", str(run), "--leaderboard", str(lb)]) == 0
    assert main(["leaderboard", "build", "--leaderboard", str(lb), "--resamples", "20"]) == 0
    table = (lb / "leaderboard.md").read_text()
    assert (
        "ckpt † ‡ |" in table
        and "‡: trained against a judge of the scoring judge's family" in table
    )
    assert "‡</span>" in next(lb.glob("**/*.html")).read_text()
    # † and ‡ in LaTeX too
    assert r"\,$^{\dagger}$\,$^{\ddagger}$" in (lb / "leaderboard.tex").read_text()
    # re-scored by a judge of another family (verdicts asked anew): no risk, no mark
    with FakeOpenAIServer(FakeConfig()) as srv:
        assert (
            main(
                [
                    "score",
                    str(run),
                    "--judge",
                    "openai:gpt-5-mini",
                    "--judge-base-url",
                    srv.url,
                    "--no-progress",
                    "--no-cache",
                    "--resamples",
                    "20",
                ]
            )
            == 0
        )
    assert "training_judge_risk" not in json.loads((run / "results.json").read_text())["rubric"]
    assert "training-judge" not in (run / "summary.md").read_text()
    assert main(["leaderboard", "add", str(run), "--leaderboard", str(lb2)]) == 0
    assert main(["leaderboard", "build", "--leaderboard", str(lb2), "--resamples", "20"]) == 0
    assert "ckpt † |" in (lb2 / "leaderboard.md").read_text()


def test_a_model_without_a_training_record_or_judge_records_none(tiny_model_dir, tmp_path):
    from kardiabench.generate_stage import training_block

    assert training_block(f"hf:{tiny_model_dir}") is None
    assert training_block("openai:gpt-4o") is None
    assert training_block(f"vllm:{checkpoint(tiny_model_dir, tmp_path, None)}")["judge"] is None
