#!/usr/bin/env bash
# The README's sample leaderboard, from runs on the bundled sample: both baselines, a tiny
# random-weight HF model and a scripted API model, all judged by the scripted local server (no key,
# no network). The numbers mean nothing; the commands and artefacts are the real ones.
#   bash leaderboard/make_sample.sh [WORK_DIR]     (default: runs/sample; ~1 min on 2 CPU cores)
# Writes WORK_DIR/leaderboard/ (every artefact) and copies into docs/sample/ (or $SAMPLE_DOCS): the
# Markdown table, radar.png and one run's report.html (the ones the README shows and links).
# tests/test_docs_sample.py runs it into a temporary folder and fails when docs/sample/ differs
# (beyond dates, versions, speeds and the server's port): run it again after changing what they show.
# The server listens on $PORT (default: any free port). The HF model generates while the other
# runs go on, so the script takes about as long as that one run.
set -euo pipefail
cd "$(dirname "$0")/.."
WORK=${1:-runs/sample}
export OPENAI_API_KEY=sk-fake HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 TRANSFORMERS_OFFLINE=1
mkdir -p "$WORK"
DOCS=${SAMPLE_DOCS:-docs/sample}

: >"$WORK/fake_server.log"
python -m kardiabench.testing.fake_openai --port "${PORT:-0}" >>"$WORK/fake_server.log" 2>&1 &
SERVER=$!
trap 'kill $SERVER' EXIT
URL=
for _ in $(seq 300); do  # its first line names the port it listens on
  URL=$(sed -n 's|^fake OpenAI server on \(http://.*/v1\)$|\1|p' "$WORK/fake_server.log")
  [ -n "$URL" ] && break
  kill -0 "$SERVER" || { cat "$WORK/fake_server.log" >&2; exit 1; }
  sleep 0.1
done
python -c "import sys; from kardiabench.testing.fake_openai import wait_for_health; sys.exit(not wait_for_health('${URL%/v1}'))"
JUDGE=(--judge openai:fake-judge --judge-base-url "$URL" --no-progress --cache "$WORK/cache.sqlite")
(
  [ -d "$WORK/tiny-model" ] || python -m kardiabench.testing.tiny_model "$WORK/tiny-model" >/dev/null
  kardiabench run --model "hf:$WORK/tiny-model" --max-tokens 64 --device cpu --data sample --output "$WORK/tiny-hf" "${JUDGE[@]}"
) &
HF=$!
kardiabench run --model baseline:majority --data sample --output "$WORK/majority" "${JUDGE[@]}"
kardiabench run --model baseline:retrieval --data sample --output "$WORK/retrieval" "${JUDGE[@]}"
kardiabench run --model openai:scripted-model --base-url "$URL" --data sample --output "$WORK/scripted-api" "${JUDGE[@]}"
wait "$HF"

kardiabench leaderboard add "$WORK"/{majority,retrieval,scripted-api} --leaderboard "$WORK/leaderboard"
kardiabench leaderboard add "$WORK/tiny-hf" --display-name "tiny random HF model" --leaderboard "$WORK/leaderboard"
kardiabench leaderboard build --leaderboard "$WORK/leaderboard"

mkdir -p "$DOCS"
cp "$WORK/leaderboard/leaderboard.md" "$DOCS/leaderboard.md"
cp "$WORK/leaderboard/plots/radar-G1.png" "$DOCS/radar.png"  # the largest group's radar, 7 in
cp "$WORK/scripted-api/report.html" "$DOCS/report.html"  # `run` wrote it
echo "sample leaderboard: $WORK/leaderboard/site/index.html; README images: $DOCS/"
