"""Training with TRL: SFT, then Rubric-as-Judge GRPO, on the benchmark's data, prompts and rewards.

    kardiabench train sft --config sft-tiny.yaml
    kardiabench train grpo --config grpo-tiny.yaml
    kardiabench run --model hf:out/grpo-tiny --data sample --output runs/grpo-tiny

See docs/training.md. torch, transformers, trl and peft are imported only when training starts.
"""

from __future__ import annotations

from pathlib import Path

from kardiabench.extras import require_extra
from kardiabench.train.config import TrainConfig, TrainConfigError, load_config


def train(cfg: TrainConfig) -> Path:
    """Run the config's stage; returns the checkpoint folder."""
    require_extra("train", "kardiabench train")
    if cfg.stage == "sft":
        from kardiabench.train.sft import train_sft

        return train_sft(cfg)
    from kardiabench.train.grpo import train_grpo

    return train_grpo(cfg)


__all__ = ["TrainConfig", "TrainConfigError", "load_config", "train"]
