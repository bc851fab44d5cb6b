"""Dry run: what a generation run would send and cost, computed before anything is sent."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from kardiabench.generate_stage import GenerateConfig, build_model, load_items, model_request
from kardiabench.models.base import ChatModel
from kardiabench.models.pricing import BATCH_PRICE_FACTOR
from kardiabench.records import Item
from kardiabench.runs import RunDir

_info = logging.getLogger("kardiabench").info

# A judge verdict: five integers and a short rationale.
TYPICAL_JUDGE_COMPLETION_TOKENS = 80
# Typical four-span answer length: the paper's average spans (≈41 + 53 + 1 + 27 words) plus tags,
# at ~1.3 tokens per word. Used for the expected cost; max_tokens gives the upper bound.
TYPICAL_COMPLETION_TOKENS = 180


@dataclass
class Plan:
    model: str
    items: int
    to_request: int
    prompt_tokens: int
    expected_completion_tokens: int
    max_completion_tokens: int
    expected_cost_usd: float | None
    max_cost_usd: float | None
    judges: list[JudgePlan] = field(default_factory=list)

    def __str__(self) -> str:
        def usd(x: float | None) -> str:
            return (
                "unknown (no price for this model; add one with --prices FILE)"
                if x is None
                else f"${x:,.4f}"
            )

        return "\n".join(
            [
                f"dry run for {self.model}: nothing was sent",
                f"  items                     {self.items:,} ({self.to_request:,} still to request; the rest are already in the run folder)",
                f"  prompt tokens             {self.prompt_tokens:,}",
                f"  completion tokens         ~{self.expected_completion_tokens:,} expected, {self.max_completion_tokens:,} at most (max_tokens)",
                f"  generation cost           ~{usd(self.expected_cost_usd)} expected, {usd(self.max_cost_usd)} at most"
                + batch_note(self.expected_cost_usd, "--batch"),
                *(str(j) for j in self.judges),
                *([] if self.judges else ["  (no --judge given: rubric judging not included)"]),
            ]
        )


@dataclass
class JudgePlan:
    judge: str
    calls: int
    prompt_tokens: int
    expected_completion_tokens: int
    expected_cost_usd: float | None

    def __str__(self) -> str:
        cost = (
            "unknown (no price for this judge)"
            if self.expected_cost_usd is None
            else f"~${self.expected_cost_usd:,.4f}"
        )
        return (
            f"  judge {self.judge:<18} {self.calls:,} calls, {self.prompt_tokens:,} prompt tokens, "
            f"~{self.expected_completion_tokens:,} completion tokens, {cost} (before repairs of invalid verdicts)"
            + batch_note(self.expected_cost_usd, "--judge-batch")
        )


def batch_note(usd: float | None, flag: str) -> str:
    """The same estimate at the provider batch price (pricing.BATCH_PRICE_FACTOR), when priced."""
    if not usd:
        return ""
    return (
        f"; with {flag}: ~${usd * BATCH_PRICE_FACTOR:,.4f} ({BATCH_PRICE_FACTOR:.0%} batch price)"
    )


def judge_plans(
    items: list[Item], judges: list[ChatModel], repeats: int = 1, rubric_path: str | None = None
) -> list[JudgePlan]:
    """Judge calls and tokens, estimated with each item's gold response standing in for the
    candidate (candidates are of similar length)."""
    from kardiabench.judging import build_request
    from kardiabench.scoring.judge import JudgeConfig
    from kardiabench.scoring.rubric import load_rubric

    rubric = load_rubric(rubric_path)
    cfg = JudgeConfig(rubric_path=rubric_path, repeats=repeats)
    plans = []
    for judge in judges:
        prompt = repeats * sum(
            judge.count_prompt_tokens(build_request(rubric, it, it.gold.response, cfg))
            for it in items
        )
        completion = repeats * len(items) * TYPICAL_JUDGE_COMPLETION_TOKENS
        price = getattr(judge, "cost", None)
        plans.append(
            JudgePlan(
                judge.spec,
                repeats * len(items),
                prompt,
                completion,
                price(prompt, completion) if price else 0.0,
            )
        )
    return plans


def dry_run(
    cfg: GenerateConfig,
    log=_info,
    judges: list[ChatModel] | None = None,
    judge_repeats: int = 1,
    rubric_path: str | None = None,
) -> Plan:
    items, _ = load_items(cfg.task, cfg.data, log)
    model = build_model(cfg, log)
    done = set(RunDir(cfg.output).read_predictions()) if cfg.output.exists() else set()
    todo = [it for it in items if it.item_id not in done]
    prompt = sum(model.count_prompt_tokens(model_request(cfg, it)) for it in todo)
    expected = len(todo) * min(TYPICAL_COMPLETION_TOKENS, cfg.params.max_tokens)
    most = len(todo) * cfg.params.max_tokens
    price = getattr(model, "cost", None)
    return Plan(
        model=cfg.model_spec,
        items=len(items),
        to_request=len(todo),
        prompt_tokens=prompt,
        expected_completion_tokens=expected,
        max_completion_tokens=most,
        expected_cost_usd=price(prompt, expected) if price else 0.0,
        max_cost_usd=price(prompt, most) if price else 0.0,
        judges=judge_plans(items, judges or [], judge_repeats, rubric_path)
        if cfg.task.uses_judge
        else [],
    )
