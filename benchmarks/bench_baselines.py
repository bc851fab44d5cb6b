"""Fixed and per-item cost of baseline:retrieval on a full-size synthetic train split.

    python benchmarks/bench_baselines.py DATA_DIR [--items 200] [--cache-dir DIR]

DATA_DIR holds train.jsonl and test.jsonl (`kardiabench data synth --dialogues 22080 --out DIR`).
Each phase runs in a fresh subprocess so its peak RSS (ru_maxrss) is its own:
  cold   no fitted index in --cache-dir: load the train split, fit, answer --items test items
  warm   same again, the fitted index now read from --cache-dir
Printed per phase: seconds and peak RSS to a ready model (fixed cost: imports, train load and
fit, or reading the index; generate_stage.build_model, as `kardiabench run` does), ms per item for the --items answers (batches of 256, as the runner sends them), peak RSS at the end.
Targets (issue 11): fixed < 5 s and < 500 MB on the warm run, <= 1 ms per item.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile

CHILD = r"""
import asyncio, itertools, json, resource, sys, time  # noqa: E401
from pathlib import Path
t0 = time.perf_counter()
from kardiabench.data import expand, load_dialogues
from kardiabench.generate_stage import DataSpec, GenerateConfig, build_model
from kardiabench.models.base import ChatRequest, SamplingParams
from kardiabench.tasks import load_task
data, n, cache_dir = sys.argv[1], int(sys.argv[2]), sys.argv[3]
cfg = GenerateConfig(task=load_task("kardiabench"), model_spec="baseline:retrieval", data=DataSpec(data, "test"), output=Path("unused"),
                     params=SamplingParams(), cache_path=Path(cache_dir) / "cache.sqlite", progress=False)
model = build_model(cfg, log=lambda m: None)
fixed = time.perf_counter() - t0
peak_fixed = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
items = list(itertools.islice(expand(load_dialogues(data, "test").dialogues), n))
reqs = [ChatRequest(messages=(("user", it.user_message),)) for it in items]
t1 = time.perf_counter()
outs = [o for k in range(0, len(reqs), 256) for o in asyncio.run(model.generate(reqs[k:k + 256]))]
per_item = (time.perf_counter() - t1) / len(reqs) * 1000
print(json.dumps({"fixed_s": round(fixed, 2), "fixed_peak_mb": round(peak_fixed), "ms_per_item": round(per_item, 3),
                  "peak_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
                  "answers": [o.text for o in outs]}))
"""


def phase(data: str, items: int, cache_dir: str) -> dict:
    out = subprocess.run(
        [sys.executable, "-c", CHILD, data, str(items), cache_dir],
        check=True,
        capture_output=True,
        text=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("data")
    ap.add_argument("--items", type=int, default=200)
    ap.add_argument("--cache-dir", default=None, help="default: a fresh temporary folder")
    args = ap.parse_args()
    cache_dir = args.cache_dir or tempfile.mkdtemp(prefix="kb-bench-baselines-")
    runs = {name: phase(args.data, args.items, cache_dir) for name in ("cold", "warm")}
    same = runs["cold"].pop("answers") == runs["warm"].pop("answers")
    print(json.dumps({**runs, "warm_answers_equal_cold": same}, indent=1))


if __name__ == "__main__":
    main()
