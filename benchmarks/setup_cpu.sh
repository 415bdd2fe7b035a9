#!/usr/bin/env bash
# The README's CPU-only set-up on a fresh clone, in a fresh venv with an empty pip cache:
# download sizes, environment sizes and times of each step, whether any CUDA (nvidia-*) package
# came in, then the dev line and README's test command. Writes benchmarks/results/setup_cpu.json.
#
#   bash benchmarks/setup_cpu.sh [TORCH_INDEX_URL]
#
# TORCH_INDEX_URL defaults to PyTorch's CPU index; where that host is unreachable (as on the
# machine that produced the committed figures) pass "" to use the configured index, which must
# then serve a CPU build of torch 2.13.0.
set -euo pipefail
REPO=$(cd "$(dirname "$0")/.." && pwd)
INDEX=${1-https://download.pytorch.org/whl/cpu}
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
git clone -q "$REPO" "$WORK/clone"
export PIP_CACHE_DIR="$WORK/cache" PIP_DISABLE_PIP_VERSION_CHECK=1
python3 -m venv "$WORK/v"
PIP="$WORK/v/bin/pip"
TORCH_ARGS=(torch==2.13.0); [ -n "$INDEX" ] && TORCH_ARGS+=(--index-url "$INDEX")

mb() { du -sm "$1" | cut -f1; }
seconds() { python3 -c "import time; print(round(time.time() - $1, 1))"; }

# Each step is timed; its download size is that of the wheels it installed (pip freeze before
# and after, then those exact pins fetched again with --no-deps into a folder of their own).
fetched() {  # $1: freeze before, $2: folder
  comm -13 <(sort "$1") <("$PIP" freeze --exclude-editable | sort) > "$2.txt"
  "$PIP" download -q --no-deps -d "$2" -r "$2.txt" >/dev/null
  mb "$2"
}
BASE=$(mb "$WORK/v")
"$PIP" freeze > "$WORK/f0"
t=$(date +%s.%N); "$PIP" install -q "${TORCH_ARGS[@]}"; T_TORCH=$(seconds "$t")
ENV_TORCH=$(mb "$WORK/v"); "$PIP" freeze > "$WORK/f1"
t=$(date +%s.%N); (cd "$WORK/clone" && "$PIP" install -q -e ".[serve]"); T_SERVE=$(seconds "$t")
ENV_SERVE=$(mb "$WORK/v"); "$PIP" freeze --exclude-editable > "$WORK/f2"
NVIDIA=$("$PIP" list 2>/dev/null | grep -ci '^nvidia-' || true)
TORCH_BUILD=$("$WORK/v/bin/python" -c "import torch; print(torch.__version__)")
t=$(date +%s.%N); (cd "$WORK/clone" && "$PIP" install -q -e ".[dev,serve,r,tune]"); T_DEV=$(seconds "$t")
ENV_DEV=$(mb "$WORK/v")
DL_TORCH=$(comm -13 <(sort "$WORK/f0") <(sort "$WORK/f1") > "$WORK/dl-torch.txt"; \
  "$PIP" download -q --no-deps -d "$WORK/dl-torch" -r "$WORK/dl-torch.txt" >/dev/null; mb "$WORK/dl-torch")
DL_SERVE=$(comm -13 <(sort "$WORK/f1") <(sort "$WORK/f2") > "$WORK/dl-serve.txt"; \
  "$PIP" download -q --no-deps -d "$WORK/dl-serve" -r "$WORK/dl-serve.txt" >/dev/null; mb "$WORK/dl-serve")
DL_DEV=$(fetched "$WORK/f2" "$WORK/dl-dev")
t=$(date +%s.%N)
TESTS=$(cd "$WORK/clone" && "$WORK/v/bin/python3" -m pytest -q -p no:cacheprovider 2>&1 | tail -1 || true)
T_TESTS=$(seconds "$t")

python3 - "$REPO/benchmarks/results/setup_cpu.json" <<EOF
import json, os, sys
record = {
    "torch_index": "${INDEX:-configured index (pip config)}",
    "download_mb": {"torch_step": $DL_TORCH, "serve_step": $DL_SERVE, "dev_step": $DL_DEV,
                    "torch_step_wheels": sorted(os.listdir("$WORK/dl-torch"))},
    "env_mb": {"empty_venv": $BASE, "after_torch": $ENV_TORCH, "after_serve": $ENV_SERVE,
               "after_dev_serve_r_tune": $ENV_DEV},
    "seconds": {"torch": $T_TORCH, "serve": $T_SERVE, "dev_serve_r_tune": $T_DEV,
                "pytest": $T_TESTS},
    "torch_build": "$TORCH_BUILD", "nvidia_packages": $NVIDIA,
    "pytest_summary": """$TESTS""".strip(),
    "load_average_end": os.getloadavg(),
}
open(sys.argv[1], "w").write(json.dumps(record, indent=2) + "\n")
print(json.dumps(record, indent=2))
EOF
