#!/usr/bin/env bash
# The bench on a CUDA machine, in bfloat16, with the real-size architectures (built there, random weights).
# Run from a folder holding src/ (this repository's) and, when the machine lacks them, wheels in whl/
# (PyAV, pycocotools, transformers): they are installed into /tmp/site, nothing else is installed.
# Writes the report to $OUT (or benchmarks/results) and prints the markdown.
#   bash benchmarks/gpu.sh [extra bench flags]
set -uo pipefail
HERE=$(pwd)
OUTDIR=${OUT:-benchmarks/results}
mkdir -p "$OUTDIR"
if ls whl/*.whl >/dev/null 2>&1; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site whl/*.whl \
    || exit 1
  export PYTHONPATH=/tmp/site
fi
export PYTHONPATH="$HERE/src${PYTHONPATH:+:$PYTHONPATH}" HF_HUB_OFFLINE=1 PYTHONUNBUFFERED=1 TOKENIZERS_PARALLELISM=false
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
python3 -c "import torch, transformers, av, pycocotools; print('torch', torch.__version__, 'transformers', \
transformers.__version__, 'av', av.__version__, 'cuda', torch.cuda.is_available())" || exit 1
python3 -m sowlv2 bench --device cuda --dtype bfloat16 --models /tmp/bench-models --output "$OUTDIR" \
  --memory-frames 30 "$@" 2>&1 | tee "$OUTDIR/gpu-log.txt"
rc=${PIPESTATUS[0]}
cat "$OUTDIR"/bench-cuda-bfloat16.md 2>/dev/null
exit "$rc"
