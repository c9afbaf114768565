#!/bin/sh
# summary.sh - runs nnd_onnx_run over every ONNX test directory and prints
# passed / failed / skipped counts, the failures, and the skip reasons
# grouped by frequency.
#   sh tests/onnx/summary.sh [NND_ONNX_RUN] [DATA_DIR]
# NND_ONNX_RUN defaults to build/tests/nnd_onnx_run, DATA_DIR to
# /usr/share/libonnx-testdata/data (its node/, pytorch-converted/ and
# pytorch-operator/ subdirectories).  NND_ONNX_JOBS=N runs N at a time.
# Exit status: 0 when nothing failed, 1 otherwise.
set -u
here=$(cd "$(dirname "$0")/../.." && pwd)
run=${1:-$here/build/tests/nnd_onnx_run}
data=${2:-/usr/share/libonnx-testdata/data}
jobs=${NND_ONNX_JOBS:-$(nproc 2>/dev/null || echo 4)}
[ -x "$run" ] || { echo "summary.sh: $run not built" >&2; exit 2; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT INT TERM

for kind in node pytorch-converted pytorch-operator; do
  [ -d "$data/$kind" ] || continue
  for d in "$data/$kind"/*/; do
    [ -f "$d/model.onnx" ] && printf '%s\n' "${d%/}"
  done
done > "$tmp/list"

# one result file per test: "STATUS<TAB>NAME<TAB>first line of output"
export run tmp
xargs -P "$jobs" -I{} sh -c '
  d="{}"; name=$(basename "$(dirname "$d")")/$(basename "$d")
  out=$(timeout 120 "$run" "$d" 2>&1); rc=$?
  case $rc in 0) st=pass;; 77) st=skip;; *) st=fail;; esac
  line=$(printf "%s\n" "$out" | grep -m1 -E "^(skip: |FAIL)" || printf "%s\n" "$out" | tail -n 1)
  [ $rc -ne 0 ] && [ $rc -ne 1 ] && [ $rc -ne 77 ] && line="exit $rc: $line"
  printf "%s\t%s\t%s\n" "$st" "$name" "$line" > "$tmp/r.$(printf "%s" "$name" | tr "/" "_")"
' < "$tmp/list"

cat "$tmp"/r.* 2>/dev/null | sort -k2 > "$tmp/all"
pass=$(grep -c '^pass' "$tmp/all"); fail=$(grep -c '^fail' "$tmp/all"); sk=$(grep -c '^skip' "$tmp/all")
echo "passed: $pass  failed: $fail  skipped: $sk  (of $(wc -l < "$tmp/list"))"
if [ "$fail" -gt 0 ]; then
  echo; echo "failures:"
  grep '^fail' "$tmp/all" | cut -f2,3 | sed 's/^/  /'
fi
echo; echo "skip reasons:"
grep '^skip' "$tmp/all" | cut -f3 | sed 's/^skip: //' | sort | uniq -c | sort -rn | sed 's/^/  /'
[ "$fail" -eq 0 ]
