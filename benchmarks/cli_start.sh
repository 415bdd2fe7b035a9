#!/usr/bin/env bash
# Wall time of `embrec predict DIR --user U --item I` (a fresh process each time), alternating
# two source trees so both see the same load. Usage:
#   benchmarks/cli_start.sh OLD_SRC NEW_SRC MODEL_DIR [RUNS]
# e.g. benchmarks/cli_start.sh ../main/src src runs/syn 7
set -euo pipefail
old=$1 new=$2 model=$3 runs=${4:-7}
for _ in $(seq "$runs"); do
  for tree in "$old" "$new"; do
    start=$(date +%s.%N)
    PYTHONPATH=$tree python3 -m embrec predict "$model" --user 1 --item 2 >/dev/null
    echo "$tree $(echo "$(date +%s.%N) - $start" | bc)"
  done
done | sort -k1,1 -k2,2n | awk '{t[$1]=t[$1]" "$2} END {for (k in t) print k ":" t[k]}'
uptime
