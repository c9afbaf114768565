#!/usr/bin/env bash
# The benchmark, one command: installs what it needs (OpenBLAS, PyTorch,
# Fashion-MNIST), builds build/ if needed, then runs bench/bench.py, which
# measures side by side in one run:
#   - the FMA peak, and sgemm 256..2048 against OpenBLAS and the peak
#     (1 and 2 threads)
#   - nndc build time and program start-up
#   - mlp_fashion and cnn_fashion training samples/s against PyTorch at 1 and
#     2 threads, and one epoch + eval against PyTorch's fastest configuration
# and prints a table of ratios, writing bench/results.json and
# bench/results.svg.
#   bench/run.sh [--quick] [--no-torch] [--no-kernels] [--models mlp_fashion,cnn_fashion]
#                [--mlp-limit N] [--cnn-limit N] [--threads 1,2] [--repeat N]
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
case "${1:-}" in -h|--help) exec /usr/bin/python3 bench/bench.py --help ;; esac
bash scripts/deps.sh python3-torch python3-numpy libopenblas0-pthread dataset-fashion-mnist
if [ ! -x build/nndc ] || [ ! -x build/nnd_bench ]; then
  cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo
  cmake --build build -j"$(nproc)"
fi
exec /usr/bin/python3 bench/bench.py "$@"
