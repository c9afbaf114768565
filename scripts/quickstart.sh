#!/usr/bin/env bash
# README command 1: install what is needed, build nndc (Release), compile the
# Fashion-MNIST MLP example and train it.
#   scripts/quickstart.sh [TRAIN-OPTIONS...]   e.g. --epochs 1 --threads 2
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

bash scripts/deps.sh dataset-fashion-mnist

# A build/ configured from another checkout cannot be reused.
if [ -f build/CMakeCache.txt ] &&
   ! grep -qxF "CMAKE_HOME_DIRECTORY:INTERNAL=$(pwd -P)" build/CMakeCache.txt; then
  echo "quickstart: build/ belongs to another source tree; removing it" >&2
  rm -rf build
fi

jobs=${NND_JOBS:-$(nproc 2>/dev/null || echo 2)}
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release
cmake --build build -j"$jobs"

echo "+ build/nndc build examples/mlp_fashion.nnd -o build/mlp_fashion" >&2
build/nndc build examples/mlp_fashion.nnd -o build/mlp_fashion
echo "+ build/mlp_fashion train $*" >&2
build/mlp_fashion train "$@"
