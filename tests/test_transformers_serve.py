"""OpenAIChatModel against a real OpenAI-compatible server: `transformers serve` on the tiny model."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path

import pytest

from kardiabench.models.base import ChatRequest, Generation, SamplingParams
from kardiabench.models.openai_api import OpenAIChatModel
from kardiabench.testing.fake_openai import free_port, wait_for_health

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def served_model(tiny_model_dir, tmp_path_factory):
    exe = Path(sys.executable).with_name("transformers")
    if not exe.exists():
        pytest.skip(
            "the `transformers` command is not installed (pip install 'transformers[serving]')"
        )
    port = free_port()
    log_path = tmp_path_factory.mktemp("serve") / "serve.log"
    folder = str(tiny_model_dir)
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            [
                str(exe),
                "serve",
                folder,
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--device",
                "cpu",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        if not wait_for_health(f"http://127.0.0.1:{port}", timeout=60):
            tail = log_path.read_text(errors="replace")[-1500:]
            code = proc.poll()
            state = f"exited with {code}" if code is not None else "did not answer /health in 60 s"
            pytest.skip(f"transformers serve {state}; log tail:\n{tail}")
        yield folder, f"http://127.0.0.1:{port}/v1"
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()


def test_adapter_talks_to_transformers_serve(served_model):
    folder, url = served_model
    model = OpenAIChatModel(
        folder, base_url=url, api_key=None, concurrency=2, timeout=60, max_retries=1
    )
    requests = [
        ChatRequest.from_messages(
            [
                {"role": "system", "content": "You are kind."},
                {"role": "user", "content": f"I feel tired today, day {i}."},
            ],
            SamplingParams(temperature=0.7, max_tokens=12, seed=i),
        )
        for i in range(3)
    ]

    async def go():
        try:
            return await asyncio.gather(*(model.generate([r]) for r in requests))
        finally:
            await model.aclose()

    outs = [o[0] for o in asyncio.run(go())]
    for g in outs:
        assert isinstance(g, Generation), g
        assert isinstance(g.text, str)
        assert g.prompt_tokens > 5
        assert 0 < g.completion_tokens <= 12
        assert g.finish_reason in ("stop", "length")
        assert g.latency_s > 0 and g.attempts == 1
    assert model.stats.successes == 3 and model.stats.attempts == 3
