#!/usr/bin/env bash
# How this project's GPU records are made, on a machine that has a copy of the tree (not a git
# checkout) and the data under $WCBOOK_DATA. Usage:
#   WCBOOK_COMMIT=<sha>[+dirty] OUT=<folder> benchmarks/gpu_session.sh STAGE [SECONDS [RUN-OPTIONS]]
# STAGE: check (GPU tests), bench (training-path comparison and the full step benchmark), or
# train:<experiment>[,<experiment>...] (paper profile, seed 0, one after the other, resumed from
# checkpoints/ if there, all stopped SECONDS after the stage began; checkpoints and records are
# copied to $OUT either way; RUN-OPTIONS, e.g. --engine compiled, go to `python -m wcbook run`).
set -uo pipefail
stage=$1
budget=${2:-540}
shift $(($# < 2 ? $# : 2))
export PYTHONUNBUFFERED=1
mkdir -p "$OUT"
case $stage in
  check)
    nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv
    python3 -c "import torch; print('torch', torch.__version__, torch.cuda.get_device_name())"
    python3 -m pytest -q -p no:cacheprovider -o addopts="" tests/test_gpu.py tests/test_engine.py
    ;;
  bench)
    python3 -m wcbook bench --training mnist-scratch --profile paper --epochs 3 --out "$OUT"
    python3 -m wcbook bench --out "$OUT"    # records in $OUT/benchmarks
    ;;
  train:*)
    nvidia-smi --query-gpu=timestamp,utilization.gpu,memory.used --format=csv,noheader -l 5 \
      > "$OUT/utilisation-${stage//[:,]/_}.csv" &
    sampler=$!
    deadline=$((SECONDS + budget))
    ids=${stage#train:}
    for id in ${ids//,/ }; do
      left=$((deadline - SECONDS))
      [ "$left" -gt 30 ] || { echo "no time left for $id"; continue; }
      timeout --signal=INT "$left" python3 -m wcbook run "$id" --profile paper --seeds 1 \
        --publish --no-progress "$@" || echo "run $id stopped (exit $?); its checkpoint is kept"
    done
    kill $sampler
    tar czf "$OUT/checkpoints-${SECONDS}.tgz" checkpoints 2>/dev/null
    tar czf "$OUT/results-${SECONDS}.tgz" results
    ;;
esac
