#!/usr/bin/env bash
# nnd vs PyTorch on examples/mlp_fashion.nnd, side by side, in one run:
#   1. `nndc build examples/mlp_fashion.nnd` wall time (best of 3)
#   2. the built program, `train --epochs 1 --threads T`: training samples/s
#      (its own `samples_per_s X` line if it prints one, else samples / wall
#      time of the whole run, loading and evaluation included)
#   3. bench/torch_mlp.py --threads T --epochs 1 --time-only: samples/s
# Prints a table with the ratio nnd/pytorch and writes bench/results.json.
#
#   bench/run.sh [--threads T] [--limit N] [--no-torch]
#   NNDC=path/to/nndc overrides build/nndc; PYTHON overrides /usr/bin/python3
#   TORCH_BLAS_DIR=DIR: a folder with the libblas.so.3 PyTorch should load.
#   Debian's torch calls libblas.so.3, which is netlib's reference BLAS unless
#   OpenBLAS is installed (~15x slower for this model); when an OpenBLAS is
#   present (libopenblas0-pthread/-openmp) it is used for the PyTorch run
#   whatever the system default, and results.json records which BLAS ran.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

threads=1 limit= run_torch=1
while [ $# -gt 0 ]; do
  case "$1" in
    --threads) threads=$2; shift 2 ;;
    --limit) limit=$2; shift 2 ;;
    --no-torch) run_torch=0; shift ;;
    -h|--help) sed -n '2,13p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "bench/run.sh: unknown option $1 (see --help)" >&2; exit 1 ;;
  esac
done

NNDC=${NNDC:-build/nndc}
PYTHON=${PYTHON:-/usr/bin/python3}
MODEL=examples/mlp_fashion.nnd
if [ ! -x "$NNDC" ]; then
  echo "bench/run.sh: $NNDC not found or not executable." >&2
  echo "  build it first: scripts/quickstart.sh, or" >&2
  echo "  cmake -S . -B build -DCMAKE_BUILD_TYPE=Release && cmake --build build -j2" >&2
  exit 1
fi
for f in /usr/share/datasets/fashion-mnist/{train,t10k}-{images-idx3,labels-idx1}-ubyte.gz; do
  [ -r "$f" ] || { echo "bench/run.sh: $f missing: scripts/deps.sh dataset-fashion-mnist" >&2; exit 1; }
done
if [ "$run_torch" = 1 ] && ! "$PYTHON" -c 'import torch, numpy' 2>/dev/null; then
  echo "bench/run.sh: $PYTHON cannot import torch/numpy: scripts/deps.sh python3-torch (or --no-torch)" >&2
  exit 1
fi

work=$(mktemp -d "${TMPDIR:-/tmp}/nnd-bench.XXXXXX")
trap 'rm -rf "$work"' EXIT
now() { date +%s.%N; }
elapsed() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.3f", b - a }'; }
# last `samples_per_s X` in the given files, or nothing
sps_of() { cat "$@" | awk '$1 == "samples_per_s" { v = $2 } END { if (v != "") print v }'; }

samples=${limit:-60000}
limit_args=()
[ -n "$limit" ] && limit_args=(--limit "$limit")

# 1. compile time, best of 3
echo "== nndc build $MODEL (best of 3)" >&2
best=
for i in 1 2 3; do
  t0=$(now)
  if ! "$NNDC" build "$MODEL" -o "$work/mlp_fashion" >"$work/build.out" 2>&1; then
    cat "$work/build.out" >&2
    echo "bench/run.sh: nndc build failed" >&2; exit 1
  fi
  t=$(elapsed "$t0" "$(now)")
  echo "   run $i: ${t}s" >&2
  if [ -z "$best" ] || awk -v a="$t" -v b="$best" 'BEGIN { exit !(a < b) }'; then best=$t; fi
done
build_s=$best

# 2. nnd training, 1 epoch
echo "== $work/mlp_fashion train --epochs 1 --threads $threads ${limit_args[*]}" >&2
t0=$(now)
if ! "$work/mlp_fashion" train --epochs 1 --threads "$threads" "${limit_args[@]}" \
     >"$work/nnd.out" 2>"$work/nnd.err" </dev/null; then
  tail -20 "$work/nnd.err" >&2
  echo "bench/run.sh: training failed" >&2; exit 1
fi
nnd_wall=$(elapsed "$t0" "$(now)")
cat "$work/nnd.out" >&2
nnd_sps=$(sps_of "$work/nnd.out" "$work/nnd.err")
if [ -n "$nnd_sps" ]; then
  nnd_src="program's samples_per_s"
else
  nnd_sps=$(awk -v n="$samples" -v t="$nnd_wall" 'BEGIN { printf "%.1f", n / t }')
  nnd_src="samples / wall of whole run (incl. load+eval)"
fi
nnd_acc=$(awk '$1 == "epoch" { for (i = 1; i < NF; i++) if ($i == "acc") v = $(i + 1) } END { print v }' "$work/nnd.out")
nnd_sha=$(awk '$1 == "sha256" { v = $2 } END { print v }' "$work/nnd.out")

# 3. PyTorch, 1 epoch, training only
torch_sps= torch_ver= torch_blas=
if [ "$run_torch" = 1 ]; then
  if [ -z "${TORCH_BLAS_DIR:-}" ]; then
    for d in /usr/lib/*/openblas-pthread /usr/lib/*/openblas-openmp; do
      if [ -e "$d/libblas.so.3" ]; then TORCH_BLAS_DIR=$d; break; fi
    done
  fi
  echo "== $PYTHON bench/torch_mlp.py --threads $threads --epochs 1 --time-only ${limit_args[*]}" >&2
  OMP_NUM_THREADS=$threads OPENBLAS_NUM_THREADS=$threads \
  LD_LIBRARY_PATH=${TORCH_BLAS_DIR:+$TORCH_BLAS_DIR${LD_LIBRARY_PATH:+:}}${LD_LIBRARY_PATH:-} \
    "$PYTHON" bench/torch_mlp.py --threads "$threads" --epochs 1 \
      --time-only "${limit_args[@]}" >"$work/torch.out" 2>"$work/torch.err" </dev/null || {
    cat "$work/torch.err" >&2; echo "bench/run.sh: torch_mlp.py failed" >&2; exit 1; }
  torch_sps=$(sps_of "$work/torch.out")
  torch_ver=$("$PYTHON" -c 'import torch; print(torch.__version__)')
  torch_blas=$(awk '$1 == "blas" { $1 = ""; sub(/^ /, ""); v = $0 } END { print v }' "$work/torch.err")
  case "$torch_blas" in
    */blas/libblas.so*)
      echo "WARNING: PyTorch ran on the reference BLAS ($torch_blas); its figure is" \
           "far below a normal install: apt-get install libopenblas0-pthread" \
           "(or set TORCH_BLAS_DIR) for a fair ratio" >&2 ;;
  esac
fi

ratio=
[ -n "$torch_sps" ] && ratio=$(awk -v a="$nnd_sps" -v b="$torch_sps" 'BEGIN { printf "%.2f", a / b }')

cpu=$(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo 2>/dev/null || true)
rev=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)

echo
printf '%-34s %14s %14s %8s\n' "mlp_fashion, 1 epoch, $threads thread(s)" "nnd" "pytorch" "ratio"
printf '%-34s %14s %14s %8s\n' "compile (best of 3), s" "$build_s" "-" "-"
printf '%-34s %14s %14s %8s\n' "training samples/s" "$nnd_sps" "${torch_sps:--}" "${ratio:--}"
printf '%-34s %14s %14s %8s\n' "nnd train wall (whole run), s" "$nnd_wall" "-" "-"
echo "nnd samples/s from: $nnd_src; ratio = nnd/pytorch (higher is better for nnd)"
[ -n "$torch_blas" ] && echo "pytorch $torch_ver BLAS: $torch_blas"

json_str() { printf '"%s"' "$(printf '%s' "$1" | sed 's/\\/\\\\/g; s/"/\\"/g')"; }
json_num() { if [ -n "$1" ]; then printf '%s' "$1"; else printf 'null'; fi; }
{
  printf '{\n'
  printf '  "model": %s,\n' "$(json_str "$MODEL")"
  printf '  "threads": %s,\n' "$threads"
  printf '  "epochs": 1,\n'
  printf '  "samples": %s,\n' "$samples"
  printf '  "nndc_build_s_best_of_3": %s,\n' "$build_s"
  printf '  "nnd_train_wall_s": %s,\n' "$nnd_wall"
  printf '  "nnd_samples_per_s": %s,\n' "$nnd_sps"
  printf '  "nnd_samples_per_s_source": %s,\n' "$(json_str "$nnd_src")"
  printf '  "nnd_acc": %s,\n' "$(json_num "$nnd_acc")"
  printf '  "nnd_sha256": %s,\n' "$(json_str "$nnd_sha")"
  printf '  "pytorch_version": %s,\n' "$(json_str "$torch_ver")"
  printf '  "pytorch_blas": %s,\n' "$(json_str "$torch_blas")"
  printf '  "pytorch_samples_per_s": %s,\n' "$(json_num "$torch_sps")"
  printf '  "ratio_nnd_over_pytorch": %s,\n' "$(json_num "$ratio")"
  printf '  "cpu": %s,\n' "$(json_str "$cpu")"
  printf '  "nproc": %s,\n' "$(nproc)"
  printf '  "git_rev": %s,\n' "$(json_str "$rev")"
  printf '  "date": %s\n' "$(json_str "$(date -u +%Y-%m-%dT%H:%M:%SZ)")"
  printf '}\n'
} >bench/results.json
echo "wrote bench/results.json" >&2
