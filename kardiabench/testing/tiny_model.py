"""A tiny random-weight chat model for tests and smoke checks: real tokenizer, real code paths.

The tokenizer is a byte-level BPE trained on the committed `corpus.txt`, with a ChatML chat template
and the eight span markers as single special tokens; the model is a 2-layer Qwen2 (head_dim 64, the
smallest vLLM's CPU attention accepts). Its output is random text: assert shapes, counts and
formats, never wording.

    python -m kardiabench.testing.tiny_model OUT_DIR
"""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path

CHATML_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)
PAD_TOKEN = "<|endoftext|>"
EOS_TOKEN = "<|im_end|>"
_BASE_SPECIAL = [PAD_TOKEN, "<|im_start|>", EOS_TOKEN]
_STAMP = "kardiabench_tiny_model.json"
_BUILD_VERSION = 1  # bump when the recipe below changes, so stale folders are rebuilt


def corpus_path() -> Path:
    return Path(__file__).with_name("corpus.txt")


def _recipe(vocab_size: int, seed: int, span_tokens: bool) -> dict:
    corpus_sha = hashlib.sha256(corpus_path().read_bytes()).hexdigest()
    return {
        "version": _BUILD_VERSION,
        "vocab_size": vocab_size,
        "seed": seed,
        "span_tokens": span_tokens,
        "corpus_sha256": corpus_sha,
    }


def build_tiny_model(
    out_dir: str | Path, *, vocab_size: int = 2000, seed: int = 0, span_tokens: bool = True
) -> Path:
    """Build (or reuse, when `out_dir` already holds the same recipe) the tiny model; returns its folder.

    `vocab_size` is an upper bound: the corpus is small, so the BPE stops at ~1,400 tokens.
    `span_tokens=False` leaves the span markers out (to test adding them at load time)."""
    out = Path(out_dir)
    recipe = _recipe(vocab_size, seed, span_tokens)
    stamp = out / _STAMP
    if stamp.is_file() and json.loads(stamp.read_text()) == recipe:
        return out

    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import (
        GenerationConfig,
        PreTrainedTokenizerFast,
        Qwen2Config,
        Qwen2ForCausalLM,
    )

    from kardiabench.spans import span_markers

    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=_BASE_SPECIAL,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    bpe.train([str(corpus_path())], trainer)

    tok = PreTrainedTokenizerFast(tokenizer_object=bpe, eos_token=EOS_TOKEN, pad_token=PAD_TOKEN)
    tok.chat_template = CHATML_TEMPLATE
    if span_tokens:
        tok.add_special_tokens({"additional_special_tokens": span_markers("special")})

    torch.manual_seed(seed)
    config = Qwen2Config(
        vocab_size=len(tok),
        hidden_size=128,
        intermediate_size=256,
        num_hidden_layers=2,
        num_attention_heads=2,  # head_dim 128 / 2 = 64
        num_key_value_heads=2,
        max_position_embeddings=2048,
        # Untied so a test can steer the output head without changing the input embeddings.
        tie_word_embeddings=False,
        bos_token_id=None,
        eos_token_id=tok.eos_token_id,
        pad_token_id=tok.pad_token_id,
    )
    model = Qwen2ForCausalLM(config)
    model.resize_token_embeddings(len(tok))
    model.generation_config = GenerationConfig(
        do_sample=True, eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id
    )

    out.mkdir(parents=True, exist_ok=True)
    tok.save_pretrained(out)
    model.save_pretrained(out)
    stamp.write_text(json.dumps(recipe))
    return out


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python -m kardiabench.testing.tiny_model OUT_DIR", file=sys.stderr)
        return 2
    print(build_tiny_model(args[0]))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
