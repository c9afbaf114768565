# lib.sh - the prologue of the shell test drivers (tests/*/run.sh): their
# arguments NNDC WORKDIR CASE, a fresh WORKDIR as the current directory,
# and the helpers they share.  Sourced: . "$(dirname "$0")/../lib.sh" "$@"
set -u
NNDC=$1; W=$2; CASE=$3
SRC=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
EX=$SRC/../examples
FM=/usr/share/datasets/fashion-mnist
rm -rf "$W" && mkdir -p "$W" && cd "$W" || exit 1
fail() { echo "FAIL [$CASE]: $*" >&2; exit 1; }
skip() { echo "skipped: $*"; exit 77; }
run() {   # run EXPECTED_RC OUT CMD...: stdout to OUT, stderr to OUT.err
	local want=$1 out=$2; shift 2
	"$@" >"$out" 2>"$out.err"
	local rc=$?
	[ "$rc" = "$want" ] || { cat "$out" "$out.err" >&2; fail "'$*' exited $rc, expected $want"; }
}
sha() { tail -n 1 "$1" | sed -n 's/^sha256 \([0-9a-f]\{64\}\)$/\1/p'; }
has() { grep -q -- "$2" "$1" || { cat "$1" >&2; fail "'$1' lacks '$2'"; }; }
need_fashion() { [ -f $FM/train-images-idx3-ubyte.gz ] || skip "dataset-fashion-mnist not installed"; }
