#!/usr/bin/env bash
# Peak RSS of the whole `sowlv2` command on an N-frame and a 10N-frame synthetic video (default 150 and
# 1,500 frames, 320x240), measured by /usr/bin/time -v, with the same settings; prints both and the ratio.
# Issue 3 asks for ratio <= 1.2: memory must not grow with the video's length.
#
# Models: tiny random checkpoints of the real classes (built once into ~/.cache/sowlv2/bench-models).
# What could grow with length is what the pipeline keeps per frame (decoded frames, SAM 2 session
# state, results, writers), not the weights; with real-size models the fixed part is larger and the
# ratio closer to 1. Detector: --threshold 0 --max-objects 2 --match-iou 0 keep the number of tracks
# bounded (at most 2; the script prints how many) whatever random weights detect. Every output is
# written (PNG masks and overlays, merged, MP4s, results.json, annotations.json).
#
# Usage (from the repository root, with the project's Python environment active):
#   benchmarks/memory.sh                 # N=150
#   N=30 SIZE=160x120 benchmarks/memory.sh
#   PYTHON=/path/to/python benchmarks/memory.sh
set -euo pipefail
N=${N:-150}
SIZE=${SIZE:-320x240}
PY=${PYTHON:-python}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
export PYTHONPATH="$ROOT/src${PYTHONPATH:+:$PYTHONPATH}" HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false
# One torch thread: tiny models run fastest so (and a busy machine does not stall them); RSS does not depend on it.
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
if [ ! -x /usr/bin/time ]; then echo "memory.sh: /usr/bin/time is needed (apt-get install time)" >&2; exit 2; fi
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT

paths=$("$PY" -c "
from sowlv2.bench import DEFAULT_CACHE, tiny_model_paths
p = tiny_model_paths(DEFAULT_CACHE)
print(p['owl'], p['sam'])" 2>"$WORK/build.log") || { cat "$WORK/build.log" >&2; exit 1; }
read -r OWL SAM <<<"$paths"

declare -A RSS
for frames in "$N" "$((10 * N))"; do
  "$PY" -m sowlv2 world --output "$WORK/world$frames" --frames "$frames" --size "$SIZE" --seed 0 >/dev/null
  /usr/bin/time -v -o "$WORK/time$frames.txt" "$PY" -m sowlv2 \
    --input "$WORK/world$frames/video_000/video.mp4" --prompt "red circle" "blue square" \
    --owl-model "$OWL" --sam-model "$SAM" --device cpu --threshold 0 --max-objects 2 --match-iou 0 \
    --output "$WORK/out$frames" -q
  RSS[$frames]=$(awk -F': ' '/Maximum resident set size/ {print $2}' "$WORK/time$frames.txt")
  wall=$(awk -F': ' '/Elapsed \(wall clock\)/ {print $2}' "$WORK/time$frames.txt")
  summary=$("$PY" -c "
import json, sys
r = json.load(open(sys.argv[1]))
print(f\"{len(r['frames'])} frames, {len(r['tracks'])} tracks, {len(r['keyframes'])} key frames\")" \
    "$WORK/out$frames/video/results.json")
  printf '%6d frames: peak RSS %8.1f MiB  (wall %s; %s)\n' "$frames" "$(echo "${RSS[$frames]} / 1024" | bc -l)" \
    "$wall" "$summary"
done
ratio=$(echo "${RSS[$((10 * N))]} / ${RSS[$N]}" | bc -l)
printf 'peak RSS ratio %d / %d frames: %.3f (target <= 1.2: %s)\n' "$((10 * N))" "$N" "$ratio" \
  "$(echo "$ratio <= 1.2" | bc -l | sed 's/1/PASS/;s/0/FAIL/')"
