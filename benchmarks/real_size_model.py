"""A random-weight model of a real size (Qwen2.5-0.5B-Instruct's architecture), built offline, for
throughput figures where no real checkpoint can be downloaded. Tokenizer and chat template come
from kardiabench.testing.tiny_model, so the vocabulary (and the output head) is ~1,400 tokens, not
151,936: every other layer has the real shape. UNTESTED on a GPU (see docs/benchmarks.md).

    python benchmarks/real_size_model.py OUT_DIR
"""

from __future__ import annotations

import sys
from pathlib import Path

# Qwen2.5-0.5B-Instruct's config.json, less the vocabulary
QWEN25_05B = {
    "hidden_size": 896,
    "intermediate_size": 4864,
    "num_hidden_layers": 24,
    "num_attention_heads": 14,
    "num_key_value_heads": 2,
    "max_position_embeddings": 32768,
    "rope_theta": 1000000.0,
    "rms_norm_eps": 1e-6,
    "tie_word_embeddings": True,
}


def build(out_dir: str | Path) -> Path:
    import torch
    from transformers import AutoTokenizer, GenerationConfig, Qwen2Config, Qwen2ForCausalLM

    from kardiabench.testing.tiny_model import build_tiny_model

    out = Path(out_dir)
    tok = AutoTokenizer.from_pretrained(build_tiny_model(out / "tokenizer-source"))
    torch.manual_seed(0)
    config = Qwen2Config(
        vocab_size=len(tok),
        bos_token_id=None,
        eos_token_id=tok.eos_token_id,
        pad_token_id=tok.pad_token_id,
        **QWEN25_05B,
    )
    model = Qwen2ForCausalLM(config).to(torch.bfloat16)
    model.generation_config = GenerationConfig(
        do_sample=True, eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id
    )
    tok.save_pretrained(out)
    model.save_pretrained(out)
    return out


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: python benchmarks/real_size_model.py OUT_DIR")
    print(build(sys.argv[1]))
