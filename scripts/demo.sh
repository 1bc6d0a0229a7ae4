#!/usr/bin/env bash
# The main job end to end on the built-in course series:
# baselines -> train -> evaluate -> export (verified) -> serve (gRPC and REST) -> forecast.
set -euo pipefail
cd "$(dirname "$0")/.."
ENGINE=.venv/bin/engine
RUN_DIR="runs/demo-$(date +%Y%m%d-%H%M%S)"
MODEL_BASE=models/seqcast
PORT="${SEQCAST_DEMO_PORT:-8500}"
REST_PORT="${SEQCAST_DEMO_REST_PORT:-8501}"

echo "== 1. baselines on the course series"
$ENGINE baselines

echo
echo "== 2. train the default model ($RUN_DIR)"
$ENGINE train --run-dir "$RUN_DIR"

echo
echo "== 3. evaluate it beside the baselines"
$ENGINE evaluate "$RUN_DIR"

echo
echo "== 4. export a verified version for TensorFlow Serving ($MODEL_BASE)"
$ENGINE export "$RUN_DIR" --model-base-path "$MODEL_BASE"

echo
echo "== 5. serve it on 127.0.0.1:$PORT (TensorFlow Serving's gRPC API; REST on $REST_PORT) and fetch a forecast"
$ENGINE serve --model-base-path "$MODEL_BASE" --model-name seqcast --port "$PORT" \
  --rest_api_port "$REST_PORT" --quiet &
SERVER=$!
trap 'kill $SERVER 2>/dev/null || true; wait $SERVER 2>/dev/null || true' EXIT
for _ in $(seq 1 120); do
  if $ENGINE forecast --server "127.0.0.1:$PORT" --model-name seqcast --horizon 30 \
      --timeout 5 --plot "$RUN_DIR/plots/served_forecast.png" > "$RUN_DIR/served_forecast.txt" 2>/dev/null; then
    cat "$RUN_DIR/served_forecast.txt"
    break
  fi
  kill -0 $SERVER 2>/dev/null || { echo "the server stopped"; exit 1; }
  sleep 1
done
test -s "$RUN_DIR/served_forecast.txt" || { echo "no forecast came back from the server"; exit 1; }

echo
echo "== 6. the same server over TensorFlow Serving's REST API: serving_default, the next value"
if command -v curl > /dev/null; then
  # The course series' last 400 values (at least the trained window, 384 for the default
  # model): the answer is the gRPC forecast's first step above.
  WINDOW=$(.venv/bin/python -c "from engine.series.course import course_series
print(','.join(f'{v:.6f}' for v in course_series()[1][-400:]))")
  curl --silent --show-error --max-time 30 \
    -d "{\"signature_name\": \"serving_default\", \"instances\": [[$WINDOW]]}" \
    "http://127.0.0.1:$REST_PORT/v1/models/seqcast:predict"
  echo
else
  echo "(curl is not installed: skipped)"
fi

echo
echo "Done. Run dir: $RUN_DIR (plots in $RUN_DIR/plots/), model versions in $MODEL_BASE/"
