#!/usr/bin/env bash
# Training chains that outlive one 10-minute device command, on a GPU machine held by a series of
# calls (the runs behind the paper-profile records of the encoder and IMDB experiments). Usage:
#   WCBOOK_COMMIT=<sha> benchmarks/gpu_background.sh start NAME ID[,ID...] [RUN-OPTIONS]
#       runs the ids one after the other (paper profile, seed 0, resumed from checkpoints) in a
#       new process session, results and checkpoints under $WC (default /tmp/wc), log $WC/NAME.log
#   OUT=<folder> benchmarks/gpu_background.sh watch SECONDS
#       waits until every chain has ended or SECONDS have passed, prints the end of each log and
#       the GPU's load, and copies the records finished so far to $OUT/results.tgz
set -uo pipefail
WC=${WC:-/tmp/wc}
mkdir -p "$WC"
case $1 in
  start)
    name=$2
    ids=${3//,/ }
    shift 3
    setsid nohup bash -c "
      for id in $ids; do
        python3 -m wcbook run \$id --profile paper --results-dir $WC/results \
          --checkpoint-dir $WC/checkpoints $* || echo \"run \$id failed (exit \$?)\"
      done
      echo CHAIN-DONE" >"$WC/$name.log" 2>&1 </dev/null &
    echo "started $name: $ids"
    ;;
  watch)
    end=$((SECONDS + $2))
    while [ $SECONDS -lt $end ]; do
      running=$(grep -L CHAIN-DONE "$WC"/*.log 2>/dev/null | wc -l)
      [ "$running" -eq 0 ] && break
      sleep 10
    done
    for log in "$WC"/*.log; do
      echo "== $log"
      tail -c 2000 "$log" | tr '\r' '\n' | grep -v '^\s*$' | tail -4
    done
    nvidia-smi --query-gpu=utilization.gpu,memory.used --format=csv,noheader
    [ -d "$WC/results" ] && tar czf "$OUT/results.tgz" -C "$WC" results && find "$WC/results" -name '*.json'
    ;;
esac
