"""Training configs: one flat YAML file per stage, the project's own fields plus TRL's.

A key that is a field of `TrainConfig` below belongs to the project (model, data, judge, reward
weights, LoRA, difficulty split); every other key must be a field of TRL's `SFTConfig` (stage sft)
or `GRPOConfig` (stage grpo) and is passed to it unchanged. Command-line overrides
(`--set key=value`, values read as YAML; dotted keys reach into mappings, e.g. `lora.r=8` or
`reward_weights.rubric=0.5`) are applied before validation, so they obey the same rules.

`--config NAME` accepts a file path or the name of a shipped config (kardiabench/resources/train).
"""

from __future__ import annotations

import dataclasses
import logging
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

from kardiabench.extras import require_extra

SHIPPED = Path(__file__).resolve().parents[1] / "resources" / "train"
Stage = Literal["sft", "grpo"]
REWARD_NAMES = ("format", "emotion", "rubric")


class _Loader(yaml.SafeLoader):
    """YAML 1.1 reads `3e-5` (no dot) as a string; a learning rate written so must be a number."""


_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:[0-9][0-9_]*)(?:\.[0-9_]*)?[eE][-+]?[0-9]+$"),
    list("-+0123456789"),
)


def read_yaml(text: str) -> Any:
    return yaml.load(text, Loader=_Loader)  # noqa: S506 - a SafeLoader subclass


class TrainConfigError(Exception):
    """A training config is malformed; the message names the file and the key."""


@dataclass
class TrainConfig:
    """The project's fields of a training config (TRL's fields are kept apart in `trl`)."""

    stage: Stage
    model: str  # "tiny" (built offline), a local folder or a Hub id
    output_dir: str
    data: str = "sample"  # a --data source of the benchmark: sample | DIR | FILE | hub | OWNER/NAME
    split: str = "train"
    task: str = "kardiabench"  # the benchmark task whose prompts the model is trained on
    limit: int | None = None  # only the first N training turns (file order)
    eval_fraction: float | None = None  # persona-disjoint hold-out of the training split for evaluation
    eval_limit: int | None = None  # only the first N held-out turns (evaluation cost per eval step)
    global_batch_size: int | None = None  # sets gradient_accumulation_steps from the world size
    lora: dict[str, Any] | None = None  # peft LoraConfig fields; None: full fine-tuning
    # GRPO only
    judge: str | None = None  # model spec of the training judge; None: no rubric reward
    judge_base_url: str | None = None
    judge_api_key_env: str = "OPENAI_API_KEY"
    judge_max_tokens: int = 1024
    judge_concurrency: int = 16
    rubric: str | None = None  # rubric file (default: the benchmark's)
    reward_weights: dict[str, float] = field(default_factory=lambda: dict.fromkeys(REWARD_NAMES, 1 / 3))
    keep_hardest: float | None = None  # difficulty split: keep this fraction of hardest turns; None: all
    difficulty_samples: int = 4  # completions per turn when scoring difficulty
    trl: dict[str, Any] = field(default_factory=dict)  # SFTConfig / GRPOConfig fields
    source: str = ""  # the file it was read from

    def rewards(self) -> list[str]:
        """The reward components in use: rubric only when a judge is named."""
        return [n for n in REWARD_NAMES if n != "rubric" or self.judge]

    def weights(self) -> list[float]:
        return [float(self.reward_weights.get(n, 0.0)) for n in self.rewards()]

    def to_dict(self) -> dict[str, Any]:
        skip = {"trl", "source"} | (_GRPO_ONLY if self.stage == "sft" else set())
        out = {k: v for k, v in dataclasses.asdict(self).items() if k not in skip}
        return {**out, **self.trl}


_PROJECT = {f.name for f in dataclasses.fields(TrainConfig)} - {"trl", "source"}
_GRPO_ONLY = {"judge", "judge_base_url", "judge_api_key_env", "judge_max_tokens", "judge_concurrency",
              "rubric", "reward_weights", "keep_hardest", "difficulty_samples"}  # fmt: skip


def resolve_config_path(name: str | Path) -> Path:
    """A file path, else a shipped config by name (with or without .yaml)."""
    path = Path(name)
    if path.is_file():
        return path
    for candidate in (SHIPPED / path.name, SHIPPED / f"{path.name}.yaml"):
        if candidate.is_file():
            return candidate
    shipped = ", ".join(sorted(p.name for p in SHIPPED.glob("*.yaml")))
    raise TrainConfigError(f"{name}: no such config file, and not a shipped config ({shipped})")


def load_config(name: str | Path, stage: Stage, overrides: list[str] | None = None,
                output_dir: str | None = None) -> TrainConfig:  # fmt: skip
    """Read, override and validate a config for `stage` (validation reads TRL's config classes,
    so a missing [train] extra is said first)."""
    require_extra("train", "kardiabench train")
    path = resolve_config_path(name)
    try:
        raw = read_yaml(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as e:
        raise TrainConfigError(f"{path}: not valid YAML: {e}") from None
    if not isinstance(raw, dict):
        raise TrainConfigError(f"{path}: expected a mapping at the top level")
    for item in overrides or []:
        apply_override(raw, item)
    if output_dir is not None:
        raw["output_dir"] = output_dir
    return validate(raw, stage, str(path))


def apply_override(raw: dict[str, Any], item: str) -> None:
    """`key=value` (value read as YAML, dotted keys reach into mappings) applied to `raw`."""
    key, sep, text = item.partition("=")
    if not sep or not key.strip():
        raise TrainConfigError(f"--set {item!r}: expected KEY=VALUE")
    try:
        value = read_yaml(text)
    except yaml.YAMLError:
        value = text
    *parents, last = key.strip().split(".")
    target = raw
    for p in parents:
        if not isinstance(target.get(p), dict):
            target[p] = {} if target.get(p) is None else target[p]
        if not isinstance(target[p], dict):
            raise TrainConfigError(f"--set {item!r}: {p} is not a mapping")
        target = target[p]
    target[last] = value


def validate(raw: dict[str, Any], stage: Stage, source: str) -> TrainConfig:
    if raw.get("stage", stage) != stage:
        raise TrainConfigError(f"{source}: stage: this is a {raw['stage']} config, not {stage}")
    project = {k: v for k, v in raw.items() if k in _PROJECT}
    trl = {k: v for k, v in raw.items() if k not in _PROJECT}
    for key in ("model", "output_dir"):
        if not project.get(key):
            raise TrainConfigError(f"{source}: {key}: required")
    if stage == "sft":
        wrong = sorted(k for k in project if k in _GRPO_ONLY)
        if wrong:
            raise TrainConfigError(f"{source}: {wrong[0]}: a GRPO field, not used by SFT")
    known = trl_fields(stage)
    unknown = sorted(k for k in trl if k not in known)
    if unknown:
        raise TrainConfigError(f"{source}: {unknown[0]}: not a training field (neither the project's nor TRL's {trl_class(stage).__name__})")
    cfg = TrainConfig(stage=stage, trl=trl, source=source, **{k: v for k, v in project.items() if k != "stage"})
    _check(cfg, source)
    return cfg


def _check(cfg: TrainConfig, source: str) -> None:
    weights = cfg.reward_weights
    if not isinstance(weights, dict) or any(k not in REWARD_NAMES for k in weights):
        raise TrainConfigError(f"{source}: reward_weights: a mapping with keys among {', '.join(REWARD_NAMES)}")
    if any(not isinstance(v, int | float) or v < 0 for v in weights.values()):
        raise TrainConfigError(f"{source}: reward_weights: weights must be numbers ≥ 0")
    for name, value, ok in (
        ("eval_fraction", cfg.eval_fraction, lambda v: 0 < v < 1),
        ("keep_hardest", cfg.keep_hardest, lambda v: 0 < v <= 1),
        ("limit", cfg.limit, lambda v: isinstance(v, int) and v >= 1),
        ("eval_limit", cfg.eval_limit, lambda v: isinstance(v, int) and v >= 1),
        ("global_batch_size", cfg.global_batch_size, lambda v: isinstance(v, int) and v >= 1),
    ):
        if value is not None and (not isinstance(value, int | float) or not ok(value)):
            raise TrainConfigError(f"{source}: {name}: invalid value {value!r}")
    if cfg.lora is not None and not isinstance(cfg.lora, dict):
        raise TrainConfigError(f"{source}: lora: a mapping of peft LoraConfig fields (or null)")


def trl_class(stage: Stage) -> type:
    from trl import GRPOConfig, SFTConfig

    return SFTConfig if stage == "sft" else GRPOConfig


def trl_fields(stage: Stage) -> set[str]:
    return {f.name for f in dataclasses.fields(trl_class(stage))}


def build_trl_args(cfg: TrainConfig) -> Any:
    """TRL's SFTConfig / GRPOConfig: the config's TRL fields, the output folder, CPU defaults when
    there is no GPU, reward weights (GRPO), and gradient accumulation from `global_batch_size`."""
    import torch

    kwargs: dict[str, Any] = {"report_to": "none", **cfg.trl, "output_dir": cfg.output_dir}
    if not torch.cuda.is_available():
        dropped = [k for k in ("bf16", "fp16") if kwargs.get(k)]
        if dropped:  # said, not silent: a GPU recipe (the 7B configs) run here trains in float32
            logging.getLogger("kardiabench").warning("no GPU: %s ignored, training in float32", " and ".join(dropped))
        kwargs.update(use_cpu=True, bf16=False, fp16=False)
    if cfg.stage == "grpo":
        kwargs["reward_weights"] = cfg.weights()
    if cfg.global_batch_size is not None:
        kwargs["gradient_accumulation_steps"] = accumulation_steps(cfg, kwargs.get("per_device_train_batch_size", 8))
    try:
        return trl_class(cfg.stage)(**kwargs)
    except (ValueError, TypeError) as e:
        raise TrainConfigError(f"{cfg.source}: {e}") from None


def accumulation_steps(cfg: TrainConfig, per_device: int) -> int:
    world = int(os.environ.get("WORLD_SIZE", "1"))
    steps, rest = divmod(cfg.global_batch_size or 0, per_device * world)
    if rest or steps < 1:
        raise TrainConfigError(f"{cfg.source}: global_batch_size: {cfg.global_batch_size} is not a multiple of "
                               f"per_device_train_batch_size ({per_device}) × processes ({world})")  # fmt: skip
    return steps
