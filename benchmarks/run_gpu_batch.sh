#!/usr/bin/env bash
# Run several GPU benchmark scripts in one call on a GPU host and pack the results.
#   bash benchmarks/run_gpu_batch.sh OUT_DIR topic [topic ...]
# runs `python3 benchmarks/gpu_<topic>.py --out <work>/<topic>` for each topic, each
# under a time limit (BUDGET seconds, default 240), and writes OUT_DIR/results.tar.gz
# (one folder per topic with its CSVs and log, plus device.txt and status.txt).
# Wheels in .whl/ (diskcache, ...) are installed to /tmp/site first when present.
set -u
out=${1:?usage: run_gpu_batch.sh OUT_DIR topic...}; shift
if ls .whl/*.whl >/dev/null 2>&1; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target /tmp/site .whl/*.whl && export PYTHONPATH=/tmp/site:${PYTHONPATH:-}
fi
export PYTHONPATH=$PWD:${PYTHONPATH:-}
export PYTHONUNBUFFERED=1
work=$(mktemp -d)
{ date -u +%Y-%m-%dT%H:%MZ
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
  python3 -c "import torch, sys; print('python', sys.version.split()[0], 'torch', torch.__version__, 'cuda', torch.version.cuda)"
  python3 -c "import triton; print('triton', triton.__version__)" 2>/dev/null || echo "triton: not importable"
} > "$work/device.txt" 2>&1
cat "$work/device.txt"
for topic in "$@"; do
  mkdir -p "$work/$topic"
  start=$(date +%s)
  timeout "${BUDGET:-240}" python3 "benchmarks/gpu_${topic}.py" --out "$work/$topic" \
    > "$work/$topic/log.txt" 2>&1
  rc=$?
  echo "$topic rc=$rc seconds=$(( $(date +%s) - start ))" | tee -a "$work/status.txt"
  tail -n 5 "$work/$topic/log.txt"
done
tar czf "$out/results.tar.gz" -C "$work" .
