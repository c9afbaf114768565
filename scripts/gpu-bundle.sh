#!/usr/bin/env bash
# Prepares gpu-bundle/ for a GPU machine that cannot build nnd itself (no
# LLVM, flex or bison there, no network): the example programs built here
# ahead of time for a portable x86-64 level (NND_CPU=x86-64-v3: AVX2 + FMA,
# the same bits as a native build), the shared libraries they load that such
# a machine may lack, the Fashion-MNIST files, and the every-op model under
# three plans.  scripts/gpu-check.sh
# uses the bundle when it finds no toolchain.  Copy the tree (with
# gpu-bundle/) to the GPU machine and run scripts/gpu-check.sh there.
#   scripts/gpu-bundle.sh        (NNDC=path/to/nndc overrides build/nndc)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
NNDC=${NNDC:-build/nndc}
[ -x "$NNDC" ] || { echo "gpu-bundle.sh: $NNDC not found: build first" >&2; exit 1; }
FM=/usr/share/datasets/fashion-mnist
out=gpu-bundle
rm -rf "$out"
mkdir -p "$out/lib" "$out/data"
for m in examples/mlp_fashion.nnd examples/cnn_fashion.nnd bench/cuda_mm.nnd; do
  NND_CPU=${NND_CPU:-x86-64-v3} "$NNDC" build "$m" -o "$out/$(basename "$m" .nnd)"
  # the same with the register-tiled matmul instead of the shared-memory one
  NND_CUDA_MM=reg NND_CPU=${NND_CPU:-x86-64-v3} "$NNDC" build "$m" -o "$out/$(basename "$m" .nnd).reg"
done
# the every-op model under three plans (the ctest case gpu_every_op, which
# that machine cannot build); its data path is this checkout's tests/data,
# recorded so gpu-check.sh can link it there
for plan in seq tree:3 blocked:4; do
  NND_CPU=${NND_CPU:-x86-64-v3} "$NNDC" build "$(pwd)/tests/e2e/every_op.nnd" --plan $plan -o "$out/every_op.${plan//:/}"
  strip "$out/every_op.${plan//:/}" 2>/dev/null || true
done
# cnn_fashion with the block form up to 32768 outputs (its second
# convolution's filter gradient, 18432 outputs, too): to time the threshold
NND_CUDA_BLOCK_MAX=32768 NND_CPU=${NND_CPU:-x86-64-v3} "$NNDC" build examples/cnn_fashion.nnd -o "$out/cnn_fashion.b32k"
# and with every seq reduction of few outputs one output per block
NND_CUDA_BLOCK_MIN=1 NND_CPU=${NND_CPU:-x86-64-v3} "$NNDC" build "$(pwd)/tests/e2e/every_op.nnd" -o "$out/every_op.block"
strip "$out/every_op.block" 2>/dev/null || true
# the op models of tests/grad (ctest's gpu_ops): conv with groups, pooling,
# batchnorm, layernorm, embedding, slice/concat, random_flip, ...
mkdir -p "$out/grad"
for m in tests/grad/g_*.nnd; do
  NND_CPU=${NND_CPU:-x86-64-v3} "$NNDC" build "$(pwd)/$m" -o "$out/grad/$(basename "$m" .nnd)"
  strip "$out/grad/$(basename "$m" .nnd)" 2>/dev/null || true
done
# labels past the classes: the GPU must name the CPU's first bad row
NND_CPU=${NND_CPU:-x86-64-v3} "$NNDC" build "$(pwd)/tests/cuda/bad_label.nnd" -o "$out/bad_label"
echo "$(pwd)/tests" > "$out/TESTS_DIR"
# libraries outside the C library and the CUDA driver: copied so the
# programs start on a machine without them (LD_LIBRARY_PATH=gpu-bundle/lib)
for lib in $(ldd "$out/mlp_fashion" | awk '$3 ~ /^\// { print $3 }'); do
  case "$(basename "$lib")" in
    libc.so*|libm.so*|libpthread.so*|libdl.so*|ld-linux*|librt.so*) ;;
    *) cp -L "$lib" "$out/lib/" ;;
  esac
done
for f in train-images-idx3-ubyte.gz train-labels-idx1-ubyte.gz t10k-images-idx3-ubyte.gz t10k-labels-idx1-ubyte.gz; do
  [ -r "$FM/$f" ] || { echo "gpu-bundle.sh: $FM/$f missing (scripts/deps.sh dataset-fashion-mnist)" >&2; exit 1; }
  cp "$FM/$f" "$out/data/"
done
git rev-parse HEAD > "$out/REVISION" 2>/dev/null || true
du -sh "$out" >&2
echo "gpu-bundle.sh: wrote $out/ ($(ls "$out" | tr '\n' ' '))" >&2
