#!/usr/bin/env bash
# The README's sample leaderboard, from runs on the bundled sample: both baselines, a tiny
# random-weight HF model and a scripted API model, all judged by the scripted local server (no key,
# no network). The numbers mean nothing; the commands and artefacts are the real ones.
#   bash leaderboard/make_sample.sh [WORK_DIR]     (default: runs/sample; ~1-2 min on 2 CPU cores)
# Writes WORK_DIR/leaderboard/ (every artefact) and copies into docs/sample/: the Markdown table,
# the largest group's radar (plots/radar-G1.png) as radar.png and one run's report.html (the ones the README shows and links).
set -euo pipefail
cd "$(dirname "$0")/.."
WORK=${1:-runs/sample}
PORT=${PORT:-8199}
export OPENAI_API_KEY=sk-fake HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 TRANSFORMERS_OFFLINE=1
mkdir -p "$WORK"

python -m kardiabench.testing.fake_openai --port "$PORT" >"$WORK/fake_server.log" 2>&1 &
SERVER=$!
trap 'kill $SERVER' EXIT
python -c "import sys; from kardiabench.testing.fake_openai import wait_for_health; sys.exit(not wait_for_health('http://127.0.0.1:$PORT'))"
URL="http://127.0.0.1:$PORT/v1"
JUDGE=(--judge openai:fake-judge --judge-base-url "$URL" --no-progress --cache "$WORK/cache.sqlite")
[ -d "$WORK/tiny-model" ] || python -m kardiabench.testing.tiny_model "$WORK/tiny-model" >/dev/null
kardiabench run --model baseline:majority --data sample --output "$WORK/majority" "${JUDGE[@]}"
kardiabench run --model baseline:retrieval --data sample --output "$WORK/retrieval" "${JUDGE[@]}"
kardiabench run --model "hf:$WORK/tiny-model" --max-tokens 64 --device cpu --data sample --output "$WORK/tiny-hf" "${JUDGE[@]}"
kardiabench run --model openai:scripted-model --base-url "$URL" --data sample --output "$WORK/scripted-api" "${JUDGE[@]}"

kardiabench leaderboard add "$WORK"/{majority,retrieval,scripted-api} --leaderboard "$WORK/leaderboard"
kardiabench leaderboard add "$WORK/tiny-hf" --display-name "tiny random HF model" --leaderboard "$WORK/leaderboard"
kardiabench leaderboard build --leaderboard "$WORK/leaderboard"
kardiabench report "$WORK/scripted-api"

mkdir -p docs/sample
cp "$WORK/leaderboard/leaderboard.md" docs/sample/leaderboard.md
cp "$WORK/leaderboard/plots/radar-G1.png" docs/sample/radar.png  # the largest group's radar, 7 in
cp "$WORK/scripted-api/report.html" docs/sample/report.html
echo "sample leaderboard: $WORK/leaderboard/site/index.html; README images: docs/sample/"
