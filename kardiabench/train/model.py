"""The model side of training: which weights to start from, span tokens, LoRA, and the final
checkpoint folder (a plain transformers folder with a model card) that `kardiabench run --model
hf:FOLDER` evaluates directly."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml

from kardiabench.cache import default_cache_path
from kardiabench.models.hf import _keep_existing_extra_tokens, hub_load_kwargs, load_error
from kardiabench.spans import span_markers
from kardiabench.train.config import TrainConfig

TINY = "tiny"
TRAINING_FILE = "kardiabench_training.json"
# the config and outcome, machine-readable, beside the card
REWARD_MEANING = {
    "format": "the benchmark's format compliance",
    "emotion": "its emotion exact match",
    "rubric": "its rubric judge, mean of (s - 1) / 4",
}


def resolve_model(name: str) -> str:
    """`tiny`: the project's tiny random model, built offline once (in the cache folder); anything
    else is a folder or Hub id for transformers."""
    if name != TINY:
        return name
    from accelerate import PartialState

    from kardiabench.testing.tiny_model import build_tiny_model

    with PartialState().main_process_first():  # one process builds it, the others reuse it
        return str(build_tiny_model(default_cache_path().parent / "tiny-model"))


def load_model_and_tokenizer(path: str) -> tuple[Any, Any]:
    """The model and tokenizer, with the eight span markers as special tokens (embeddings resized
    only when the vocabulary grows). The chat template is kept as it is."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    hub = hub_load_kwargs(path)
    try:
        tok = AutoTokenizer.from_pretrained(path, **hub)
        if not tok.chat_template:
            raise ValueError(
                "the tokenizer has no chat template (training keeps the model's own template)"
            )
        model = AutoModelForCausalLM.from_pretrained(path, dtype="auto", **hub)
    except (OSError, ValueError) as exc:
        raise load_error(path, exc, unreachable=bool(hub)) from exc
    missing = [m for m in span_markers("special") if m not in tok.get_vocab()]
    tok.add_special_tokens(
        {"additional_special_tokens": span_markers("special")}, **_keep_existing_extra_tokens(tok)
    )
    if len(tok) > model.get_input_embeddings().weight.shape[0]:
        model.resize_token_embeddings(len(tok), pad_to_multiple_of=64)
    init_marker_embeddings(model, tok, missing)
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    return model, tok


def init_marker_embeddings(model: Any, tok: Any, markers: list[str]) -> None:
    """Start each new marker's input (and untied output) embedding at the mean embedding of its
    words ("understanding begin"): resizing gives all new rows nearly the same vector (or, in a
    padded vocabulary such as Qwen2.5's, an untrained one), so the eight markers start out
    indistinguishable and a short SFT confuses them."""
    import torch

    tables = {
        id(w): w
        for w in (model.get_input_embeddings().weight, model.get_output_embeddings().weight)
    }
    with torch.no_grad():
        for marker in markers:
            pieces = tok(marker.strip("<|>").replace("_", " "), add_special_tokens=False)[
                "input_ids"
            ]
            row = tok.convert_tokens_to_ids(marker)
            for table in tables.values():
                table[row] = table[pieces].mean(dim=0)


def lora_config(cfg: TrainConfig, tokenizer: Any) -> Any:
    """peft LoraConfig from the config's `lora` mapping; the span-marker embeddings stay trainable
    (new tokens would otherwise keep their initial vectors)."""
    if cfg.lora is None:
        return None
    from peft import LoraConfig

    fields = {"task_type": "CAUSAL_LM", **cfg.lora}
    fields.setdefault(
        "trainable_token_indices",
        {"embed_tokens": tokenizer.convert_tokens_to_ids(span_markers("special"))},
    )
    return LoraConfig(**fields)


def save_final(trainer: Any, cfg: TrainConfig, extra: dict[str, Any]) -> Path:
    """Save the trained model (LoRA merged into the weights) and tokenizer to output_dir, with the
    model card README.md and kardiabench_training.json. Returns the folder."""
    out = Path(cfg.output_dir)
    model = trainer.accelerator.unwrap_model(trainer.model)
    if hasattr(model, "merge_and_unload"):
        trainer.accelerator.wait_for_everyone()
        model = model.merge_and_unload()
        if trainer.is_world_process_zero():
            model.save_pretrained(out)
    else:
        trainer.save_model(str(out))
    best = trainer.state.best_model_checkpoint if trainer.args.load_best_model_at_end else None
    if best:  # the weights saved are those of the best evaluation, not of the last step
        extra = {
            **extra,
            "best_checkpoint": {
                "path": best,
                "metric": trainer.args.metric_for_best_model,
                "value": trainer.state.best_metric,
            },
        }
    if trainer.is_world_process_zero():
        trainer.processing_class.save_pretrained(out)
        record = {
            "config": cfg.to_dict(),
            "source": cfg.source,
            "world_size": trainer.accelerator.num_processes,
            "distributed_type": trainer.accelerator.distributed_type.value,
            **extra,
        }
        (out / TRAINING_FILE).write_text(json.dumps(record, indent=2, default=str))
        (out / "README.md").write_text(model_card(cfg, extra))
    trainer.accelerator.wait_for_everyone()
    return out


def model_card(cfg: TrainConfig, extra: dict[str, Any]) -> str:
    """The card: base model, data and split, config, rewards and the training judge."""
    rewards = ", ".join(
        f"{n} × {w:.3g} ({REWARD_MEANING[n]})"
        for n, w in zip(cfg.rewards(), cfg.weights(), strict=True)
    )
    judge = cfg.judge or "none (no rubric reward)"
    lines = [
        "---",
        "library_name: transformers",
        "tags: [kardiabench, trl, " + cfg.stage + "]",
        "---",
        "",
        f"# {Path(cfg.output_dir).name}: KardiaBench {cfg.stage.upper()}",
        "",
        "Trained with `kardiabench train " + cfg.stage + "` (TRL). Evaluate it with",
        f"`kardiabench run --model hf:{cfg.output_dir} --judge …`.",
        "",
        f"- Base model: `{cfg.model}`"
        + (
            f" (weights from `{extra['base_path']}`)"
            if extra.get("base_path") not in (None, cfg.model)
            else ""
        ),
        f"- Data: `{cfg.data}`, split `{cfg.split}`, task `{cfg.task}` prompts; "
        f"{extra.get('n_train', '?')} training turns, {extra.get('n_eval', 0)} held out",
        f"- Loss: {'completion-only (assistant turn) SFT' if cfg.stage == 'sft' else 'GRPO'}; "
        f"LoRA: {'merged into the weights' if cfg.lora else 'no (full fine-tuning)'}",
    ]
    if cfg.stage == "grpo":
        lines += [
            f"- Rewards: {rewards}",
            f"- Training judge: `{judge}`"
            + (f", rubric `{cfg.rubric or 'judges/rubric.yaml'}`" if cfg.judge else ""),
            f"- Difficulty split: {'all turns' if cfg.keep_hardest is None else f'hardest {cfg.keep_hardest:.0%} by the start model mean reward'}",
        ]
    if extra.get("best_checkpoint"):
        b = extra["best_checkpoint"]
        lines.append(
            f"- Weights: the best evaluation by `{b['metric']}` ({b['value']:.4g}), from `{Path(b['path']).name}`"
        )
    lines += [
        "- Span markers: the eight `<|…_begin|>`/`<|…_end|>` markers are special tokens",
        "",
        "## Config",
        "",
        "```yaml",
        yaml.safe_dump(cfg.to_dict(), sort_keys=False).rstrip(),
        "```",
        "",
    ]
    return "\n".join(lines)
