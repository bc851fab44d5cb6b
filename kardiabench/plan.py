"""Dry run: what a generation run would send and cost, computed before anything is sent."""

from __future__ import annotations

from dataclasses import dataclass

from kardiabench.generate import GenerateConfig, build_model, load_items, model_request
from kardiabench.rundir import RunDir

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

    def __str__(self) -> str:
        def usd(x: float | None) -> str:
            return "unknown (no price for this model; add one with --prices FILE)" if x is None else f"${x:,.4f}"

        return "\n".join(
            [
                f"dry run for {self.model}: nothing was sent",
                f"  items                     {self.items:,} ({self.to_request:,} still to request; the rest are already in the run folder)",
                f"  prompt tokens             {self.prompt_tokens:,}",
                f"  completion tokens         ~{self.expected_completion_tokens:,} expected, {self.max_completion_tokens:,} at most (max_tokens)",
                f"  generation cost           ~{usd(self.expected_cost_usd)} expected, {usd(self.max_cost_usd)} at most",
                "  (judge calls are not included: about one call per item per judge and repeat)",
            ]
        )


def dry_run(cfg: GenerateConfig, log=print) -> Plan:
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
    )
