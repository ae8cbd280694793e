#!/usr/bin/env bash
# The checks that need a GPU, in one script that fits in 8 minutes on one GPU (docs/performance.md, "GPU check"):
#   1. tests/test_cuda.py: fast mLSTM against the plain cell (forward and gradients), bf16 and fp16
#      autocast, featurize, a few training steps in each precision, two NCCL processes (with 2 GPUs);
#   2. `sentiment-discovery benchmark --cuda` at H=4096, B=128, T=256, in bf16 and fp32.
# Without CUDA it says so, runs the parts that need no GPU (the CUDA tests are collected and
# skipped; the shipped model classifies a sentence on the CPU in -precision auto) and exits 0.
#
#   benchmarks/gpu_check.sh            # results under experiments/gpu_check/ (or $OUT)
#   PYTHON=/path/to/python benchmarks/gpu_check.sh
set -euo pipefail

cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-.venv/bin/python}
[ -x "$PYTHON" ] || PYTHON=python3
RESULTS=${OUT:-experiments/gpu_check}
mkdir -p "$RESULTS"
started=$SECONDS

say() { echo "gpu_check: $*"; }

if ! "$PYTHON" -c "import sys, torch; sys.exit(0 if torch.cuda.is_available() else 1)"; then
    say "no CUDA device here (torch.cuda.is_available() is False): only the parts that need no GPU run"
    "$PYTHON" -m pytest tests/test_cuda.py -q -rs -p no:cacheprovider
    "$PYTHON" -m sentiment_discovery classify --text "I loved it"
    say "no GPU: the CUDA tests were skipped, the CPU parts passed ($((SECONDS - started)) s)"
    exit 0
fi

nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
"$PYTHON" -c "import torch; print('torch', torch.__version__, 'CUDA', torch.version.cuda, torch.cuda.get_device_name(0), \
'bf16 native:', torch.cuda.is_bf16_supported(including_emulation=False), 'GPUs:', torch.cuda.device_count())"

say "CUDA tests"
timeout 240 "$PYTHON" -m pytest tests/test_cuda.py -q -rs -p no:cacheprovider --durations=5 \
    --junitxml "$RESULTS/test_cuda.xml"

for precision in bf16 fp32; do
    say "benchmark H=4096 B=128 T=256 $precision"
    timeout 100 "$PYTHON" -m sentiment_discovery benchmark --cuda --rnn_size 4096 --batch_size 128 --seq_length 256 \
        --repeats 3 --precision "$precision" --json "$RESULTS/benchmark_h4096_$precision.json"
done
say "all passed in $((SECONDS - started)) s; results in $RESULTS/"
