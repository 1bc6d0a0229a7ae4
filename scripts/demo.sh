#!/usr/bin/env bash
# The main job end to end on the built-in course series.
set -euo pipefail
cd "$(dirname "$0")/.."
ENGINE=.venv/bin/engine
echo "== baselines on the course series"
$ENGINE baselines
