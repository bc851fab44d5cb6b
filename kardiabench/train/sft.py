"""Stage 1: supervised fine-tuning on the training split's gold four-span turns (TRL SFTTrainer)."""

from __future__ import annotations

from pathlib import Path

from kardiabench.train.config import TrainConfig, build_trl_args
from kardiabench.train.data import load_items, sft_rows, to_dataset
from kardiabench.train.model import load_model_and_tokenizer, lora_config, resolve_model, save_final


def build_sft_trainer(cfg: TrainConfig):
    """The SFTTrainer for a config: prompt/completion pairs, loss on the completion only."""
    from trl import SFTTrainer

    # first: TRL's own checks of its fields fail before data and weights load
    args = build_trl_args(cfg)
    args.completion_only_loss = True
    train, evaluation, task = load_items(cfg)
    base = resolve_model(cfg.model)
    model, tok = load_model_and_tokenizer(base)
    trainer = SFTTrainer(
        model=model,
        args=args,
        train_dataset=to_dataset(sft_rows(train, task)),
        eval_dataset=to_dataset(sft_rows(evaluation, task)),
        processing_class=tok,
        peft_config=lora_config(cfg, tok),
    )
    info = {"base_path": base, "n_train": len(train), "n_eval": len(evaluation)}
    return trainer, info


def train_sft(cfg: TrainConfig) -> Path:
    """Train, then write the checkpoint folder with its card; returns the folder."""
    trainer, info = build_sft_trainer(cfg)
    result = trainer.train()
    info["train_metrics"] = result.metrics
    info["log_history"] = trainer.state.log_history  # the loss curve, as for GRPO's rewards
    return save_final(trainer, cfg, info)
