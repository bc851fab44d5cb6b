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
import enum
import functools
import logging
import os
import re
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

from kardiabench.extras import require_extra
from kardiabench.params import ParameterError, check
from kardiabench.redact import redact_url

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
    # persona-disjoint hold-out of the training split for evaluation
    eval_fraction: float | None = None
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
    reward_weights: dict[str, float] = field(
        default_factory=lambda: dict.fromkeys(REWARD_NAMES, 1 / 3)
    )
    # difficulty split: keep this fraction of hardest turns; None: all
    keep_hardest: float | None = None
    difficulty_samples: int = 4  # completions per turn when scoring difficulty
    trl: dict[str, Any] = field(default_factory=dict)  # SFTConfig / GRPOConfig fields
    source: str = ""  # the file it was read from

    def rewards(self) -> list[str]:
        """The reward components in use: rubric only when a judge is named."""
        return [n for n in REWARD_NAMES if n != "rubric" or self.judge]

    def weights(self) -> list[float]:
        return [float(self.reward_weights.get(n, 0.0)) for n in self.rewards()]

    def to_dict(self) -> dict[str, Any]:
        """The config as recorded (kardiabench_training.json, the model card): the judge's URL
        masked by `redact_url`, as a key in its query string must not travel with the checkpoint."""
        skip = {"trl", "source"} | (_GRPO_ONLY if self.stage == "sft" else set())
        out = {k: v for k, v in dataclasses.asdict(self).items() if k not in skip}
        if out.get("judge_base_url"):
            out["judge_base_url"] = redact_url(out["judge_base_url"])
        return {**out, **self.trl}


_PROJECT = {f.name for f in dataclasses.fields(TrainConfig)} - {"trl", "source"}
_GRPO_ONLY = {
    "judge",
    "judge_base_url",
    "judge_api_key_env",
    "judge_max_tokens",
    "judge_concurrency",
    "rubric",
    "reward_weights",
    "keep_hardest",
    "difficulty_samples",
}


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


def load_config(
    name: str | Path,
    stage: Stage,
    overrides: list[str] | None = None,
    output_dir: str | None = None,
) -> TrainConfig:
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
        raise TrainConfigError(
            f"{source}: {unknown[0]}: not a training field (neither the project's nor TRL's {trl_class(stage).__name__})"
        )
    cfg = TrainConfig(
        stage=stage, trl=trl, source=source, **{k: v for k, v in project.items() if k != "stage"}
    )
    _check(cfg, source)
    return cfg


# The project's fields: a rule of kardiabench/params.py, or "text" (a non-empty string) or "spec" (a
# model spec). None passes only where the field's default is None (optional).
PROJECT_RULES = {
    "model": "text",
    "output_dir": "text",
    "data": "text",
    "split": "text",
    "task": "text",
    "limit": "positive_int",
    "eval_fraction": "open_fraction",
    "eval_limit": "positive_int",
    "global_batch_size": "positive_int",
    "judge": "spec",
    "judge_base_url": "text",
    "judge_api_key_env": "env_var",
    "judge_max_tokens": "positive_int",
    "judge_concurrency": "concurrency",
    "rubric": "text",
    "keep_hardest": "fraction",
    "difficulty_samples": "repeats",
}
# Ranges of the TRL fields our configs set or users commonly set; every TRL field is also checked
# against the type TRL declares for it (an int is not a bool, "abc" is not a step count).
TRL_RULES = {
    "learning_rate": "positive_float",
    "num_train_epochs": "positive_float",
    "max_steps": "steps",
    "per_device_train_batch_size": "batch_size",
    "per_device_eval_batch_size": "batch_size",
    "gradient_accumulation_steps": "positive_int",
    "eval_accumulation_steps": "positive_int",
    "warmup_steps": "nonneg_float",
    "weight_decay": "nonneg_float",
    "max_grad_norm": "nonneg_float",
    "adam_beta1": "below_one",
    "adam_beta2": "below_one",
    "adam_epsilon": "positive_float",
    "logging_steps": "positive_float",
    "save_steps": "positive_float",
    "eval_steps": "positive_float",
    "save_total_limit": "nonneg_int",
    "dataloader_num_workers": "nonneg_int",
    "max_length": "positive_int",
    # GRPO
    "num_generations": "at_least_two",
    "max_completion_length": "positive_int",
    "generation_batch_size": "positive_int",
    "steps_per_generation": "positive_int",
    "num_iterations": "positive_int",
    "temperature": "positive_float",
    "top_p": "top_p",
    "top_k": "nonneg_int",
    "min_p": "unit_interval",
    "repetition_penalty": "positive_float",
    "beta": "nonneg_float",
    "epsilon": "positive_float",
    "vllm_gpu_memory_utilization": "fraction",
    "num_completions_to_print": "nonneg_int",
}
LORA_RULES = {"r": "positive_int", "lora_alpha": "positive_float", "lora_dropout": "below_one"}


def _check(cfg: TrainConfig, source: str) -> None:
    """Every field's type and range, before anything is loaded: a bad value is one line naming
    the file and the field here, not a traceback from TRL or torch minutes later (or, for a
    negative learning rate, a model trained the wrong way)."""
    defaults = {f.name: f.default for f in dataclasses.fields(TrainConfig)}
    for name, rule in PROJECT_RULES.items():
        value = getattr(cfg, name)
        if value is None and defaults[name] is None:
            continue
        if rule in ("text", "spec") and (not isinstance(value, str) or not value.strip()):
            raise TrainConfigError(f"{source}: {name}: expected text, got {value!r}")
        if rule == "spec":
            _spec(source, name, value)
        elif rule != "text":
            _rule(source, name, value, rule)
    if cfg.stage == "grpo":
        _check_weights(cfg, source)
    if cfg.lora is not None:
        _check_lora(cfg.lora, source)
    types = trl_types(cfg.stage)
    for name, value in cfg.trl.items():
        kind = types.get(name)
        if value is None and kind is not None and _fits(None, kind):
            continue
        if name in TRL_RULES:
            _rule(source, name, value, TRL_RULES[name])
        elif kind is not None and not _fits(value, kind):
            raise TrainConfigError(f"{source}: {name}: expected {_describe(kind)}, got {value!r}")


def _rule(source: str, name: str, value: Any, rule: str) -> None:
    try:
        check(name, value, rule)
    except ParameterError as e:
        raise TrainConfigError(f"{source}: {e}") from None


def _spec(source: str, name: str, value: str) -> None:
    from kardiabench.models import SpecError, parse_spec

    try:
        parse_spec(value)
    except SpecError as e:
        raise TrainConfigError(f"{source}: {name}: {e}") from None


def _check_weights(cfg: TrainConfig, source: str) -> None:
    weights = cfg.reward_weights
    if not isinstance(weights, dict) or any(k not in REWARD_NAMES for k in weights):
        raise TrainConfigError(
            f"{source}: reward_weights: a mapping with keys among {', '.join(REWARD_NAMES)}"
        )
    for name, value in weights.items():
        _rule(source, f"reward_weights.{name}", value, "nonneg_float")
    if not any(cfg.weights()):
        raise TrainConfigError(
            f"{source}: reward_weights: the rewards in use ({', '.join(cfg.rewards())}) all have "
            "weight 0, so every completion would get reward 0 and GRPO would learn nothing"
        )


def _check_lora(lora: Any, source: str) -> None:
    """The `lora` mapping against peft's LoraConfig: known fields, their types, the usual ranges."""
    if not isinstance(lora, dict):
        raise TrainConfigError(f"{source}: lora: a mapping of peft LoraConfig fields (or null)")
    from peft import LoraConfig

    types = _type_hints(LoraConfig)
    for name, value in lora.items():
        if name not in types:
            raise TrainConfigError(f"{source}: lora.{name}: not a field of peft's LoraConfig")
        if name in LORA_RULES and value is not None:
            _rule(source, f"lora.{name}", value, LORA_RULES[name])
        elif not _fits(value, types[name]):
            raise TrainConfigError(
                f"{source}: lora.{name}: expected {_describe(types[name])}, got {value!r}"
            )


def trl_types(stage: Stage) -> dict[str, Any]:
    """TRL's declared type of each field of the stage's config class."""
    return _type_hints(trl_class(stage))


@functools.cache
def _type_hints(cls: type) -> dict[str, Any]:
    try:
        hints = typing.get_type_hints(cls)
    except (NameError, TypeError):  # an annotation this Python cannot resolve: the names alone
        hints = {}
    return {f.name: hints.get(f.name, Any) for f in dataclasses.fields(cls)}


def _fits(value: Any, kind: Any) -> bool:
    """Whether a value read from YAML is of the declared type. bool is not an int here (`limit:
    true`), an int is a float, and a type this cannot judge (a class TRL builds itself) passes."""
    origin, args = typing.get_origin(kind), typing.get_args(kind)
    if origin in (typing.Union, types.UnionType):
        return any(_fits(value, a) for a in args)
    if origin is Literal:
        return value in args
    if kind is type(None):
        return value is None
    if kind is bool:
        return isinstance(value, bool)
    if kind is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if kind is float:
        return isinstance(value, int | float) and not isinstance(value, bool) and value == value
    if kind is str or (isinstance(kind, type) and issubclass(kind, enum.Enum)):
        # TRL's enums (IntervalStrategy, ...) are given as their names
        return isinstance(value, str)
    if kind in (list, tuple, set) or origin in (list, tuple, set):
        inner = args[0] if origin is list and args else Any
        return isinstance(value, list | tuple) and all(_fits(v, inner) for v in value)
    if kind is dict or origin is dict:
        return isinstance(value, dict)
    return True


def _describe(kind: Any) -> str:
    origin, args = typing.get_origin(kind), typing.get_args(kind)
    if origin in (typing.Union, types.UnionType):
        return " or ".join(dict.fromkeys(_describe(a) for a in args))
    if origin is Literal:
        return " or ".join(repr(a) for a in args)
    words = {
        type(None): "null",
        bool: "true or false",
        int: "an integer",
        float: "a number",
        str: "text",
        dict: "a mapping",
    }
    if kind in words:
        return words[kind]
    if origin is dict:
        return "a mapping"
    if kind in (list, tuple, set) or origin in (list, tuple, set):
        return "a list"
    return (
        "text"
        if isinstance(kind, type) and issubclass(kind, enum.Enum)
        else getattr(kind, "__name__", str(kind))
    )


def trl_class(stage: Stage) -> type:
    from trl import GRPOConfig, SFTConfig

    return SFTConfig if stage == "sft" else GRPOConfig


def trl_fields(stage: Stage) -> set[str]:
    return set(trl_types(stage))


def build_trl_args(cfg: TrainConfig) -> Any:
    """TRL's SFTConfig / GRPOConfig: the config's TRL fields, the output folder, CPU defaults when
    there is no GPU, reward weights (GRPO), and gradient accumulation from `global_batch_size`."""
    import torch

    kwargs: dict[str, Any] = {"report_to": "none", **cfg.trl, "output_dir": cfg.output_dir}
    if not torch.cuda.is_available():
        dropped = [k for k in ("bf16", "fp16") if kwargs.get(k)]
        if dropped:  # said, not silent: a GPU recipe (the 7B configs) run here trains in float32
            logging.getLogger("kardiabench").warning(
                "no GPU: %s ignored, training in float32", " and ".join(dropped)
            )
        kwargs.update(use_cpu=True, bf16=False, fp16=False)
    if cfg.stage == "grpo":
        kwargs["reward_weights"] = cfg.weights()
    if cfg.global_batch_size is not None:
        kwargs["gradient_accumulation_steps"] = accumulation_steps(
            cfg, kwargs.get("per_device_train_batch_size", 8)
        )
    try:
        return trl_class(cfg.stage)(**kwargs)
    except (ValueError, TypeError) as e:
        raise TrainConfigError(f"{cfg.source}: {e}") from None


def accumulation_steps(cfg: TrainConfig, per_device: int) -> int:
    world = int(os.environ.get("WORLD_SIZE", "1"))
    steps, rest = divmod(cfg.global_batch_size or 0, per_device * world)
    if rest or steps < 1:
        raise TrainConfigError(
            f"{cfg.source}: global_batch_size: {cfg.global_batch_size} is not a multiple of "
            f"per_device_train_batch_size ({per_device}) × processes ({world})"
        )
    return steps
