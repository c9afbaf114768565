#!/usr/bin/env bash
# The cost of reduction plans: examples/mlp_fashion.nnd built with each plan
# family, one epoch each, side by side in one run.  Prints training
# samples/s per plan and the ratio to the default plan (seq).
#   bench/plans.sh [--threads T] [--limit N]
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
threads=1 limit=
while [ $# -gt 0 ]; do
  case "$1" in
    --threads) threads=$2; shift 2 ;;
    --limit) limit="--limit $2"; shift 2 ;;
    -h|--help) sed -n '2,6p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "bench/plans.sh: unknown option $1" >&2; exit 1 ;;
  esac
done
NNDC=${NNDC:-build/nndc}
[ -x "$NNDC" ] || { echo "bench/plans.sh: $NNDC not found (build first)" >&2; exit 1; }
work=$(mktemp -d "${TMPDIR:-/tmp}/nnd-plans.XXXXXX")
trap 'rm -rf "$work"' EXIT
printf '%-14s %12s %8s  %s\n' plan samples/s ratio sha256
base=
for plan in seq blocked:16 blocked:64 blocked:256 tree:2 tree:8; do
  "$NNDC" build examples/mlp_fashion.nnd -o "$work/p" --plan "$plan"
  # shellcheck disable=SC2086
  "$work/p" train --epochs 1 --threads "$threads" $limit >"$work/out" 2>"$work/err"
  sps=$(awk '$1 == "samples_per_s" { print $2 }' "$work/err")
  sha=$(awk '$1 == "sha256" { print substr($2, 1, 16) }' "$work/out")
  [ -n "$base" ] || base=$sps
  printf '%-14s %12s %8.2f  %s\n' "$plan" "$sps" "$(awk -v a="$sps" -v b="$base" 'BEGIN { print a / b }')" "$sha"
done
