"""GRPO throughput: `kardiabench train grpo`'s trainer (resources/train/grpo-tiny.yaml: format +
emotion rewards, no judge) on MODEL_DIR, with TRL's vLLM generation colocated on the training GPU
(`use_vllm=True, vllm_mode="colocate"`). Prints one JSON line: steps/s and tokens/s (prompt +
completion tokens TRL counted, `num_tokens`, over the train runtime). UNTESTED on a GPU; run by
benchmarks/gpu_grpo.sh. `--no-vllm` (generation by transformers) is the CPU smoke test of the plumbing.

    python benchmarks/gpu_grpo.py MODEL_DIR [--steps N] [--completion-tokens N] [--no-vllm]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("model_dir")
    p.add_argument("--steps", type=int, default=10)
    p.add_argument("--completion-tokens", type=int, default=256)
    p.add_argument("--no-vllm", action="store_true")
    a = p.parse_args()
    from kardiabench.train.config import load_config
    from kardiabench.train.grpo import build_grpo_trainer

    vllm = (
        []
        if a.no_vllm
        else ["use_vllm=true", "vllm_mode=colocate", "vllm_gpu_memory_utilization=0.3"]
    )
    overrides = [
        f"model={a.model_dir}",
        f"max_steps={a.steps}",
        f"max_completion_length={a.completion_tokens}",
        "per_device_train_batch_size=8",
        "num_generations=8",
        "bf16=" + str(not a.no_vllm).lower(),
        *vllm,
    ]
    cfg = load_config(
        "grpo-tiny.yaml", "grpo", overrides, output_dir=tempfile.mkdtemp(prefix="kb-gpu-grpo-")
    )
    trainer, _ = build_grpo_trainer(cfg)
    t0 = time.perf_counter()
    trainer.train()
    wall = time.perf_counter() - t0
    tokens = max((h.get("num_tokens", 0) for h in trainer.state.log_history), default=0)
    print(
        json.dumps(
            {
                "vllm": not a.no_vllm,
                "steps": trainer.state.global_step,
                "wall_s": round(wall, 2),
                "steps_per_s": round(trainer.state.global_step / wall, 4),
                "tokens": tokens,
                "tokens_per_s": round(tokens / wall, 1),
            }
        )
    )


if __name__ == "__main__":
    main()
