#!/usr/bin/env bash
# run.sh NNDC WORKDIR CASE - reduction plan families on adversarial data.
#   golden:     `infer` under each plan gives exactly gen.py's sums
#   reproducible: one plan, two runs (and two thread counts): same bits;
#               two plans: different bits (the data is chosen for that)
set -u
NNDC=$1; W=$2; CASE=$3
HERE=$(cd "$(dirname "$0")" && pwd)
rm -rf "$W" && mkdir -p "$W" && cd "$W" || exit 1
cp "$HERE/sums.nnd" "$HERE/adversarial.csv" .
fail() { echo "FAIL [$CASE]: $*" >&2; exit 1; }
# infer_under PLAN OUT: saves initial weights, runs infer on the data itself
infer_under() {
	local plan=$1 out=$2
	"$NNDC" build sums.nnd -o prog --plan "$plan" || fail "build --plan $plan"
	./prog train --steps 0 --save w >/dev/null 2>&1 || fail "save initial weights"
	./prog infer --weights w/params.safetensors --input adversarial.csv --batch 5 ${3:-} > "$out" 2>"$out.err" \
		|| { cat "$out.err" >&2; fail "infer under $plan"; }
}
case $CASE in
golden)
	for p in seq blocked:4 blocked:3 tree:2 tree:3; do
		f=$(echo "$p" | tr ':' '_')
		infer_under "$p" "$f.out"
		grep -v '^sha256' "$f.out" > "$f.vals"
		diff -u "$HERE/expected_$f.txt" "$f.vals" || fail "plan $p: sums differ from gen.py's"
	done
	;;
reproducible)
	infer_under seq a; infer_under seq b "--threads 2"
	cmp -s a b || fail "the same plan gave different bits"
	infer_under tree:2 c
	! cmp -s a c || fail "seq and tree:2 gave the same bits on adversarial data"
	# the plan of one op by its instance path, in a whole training run
	"$NNDC" build sums.nnd -o p1 || fail build
	"$NNDC" build sums.nnd -o p2 --plan 'rowsum.s=blocked:3' || fail build
	./p1 train > t1 2>/dev/null; ./p2 train > t2 2>/dev/null; ./p2 train > t3 2>/dev/null
	cmp -s t2 t3 || fail "an overridden plan is not reproducible"
	! cmp -s t1 t2 || fail "overriding the plan did not change the bits"
	;;
*) fail "unknown case" ;;
esac
exit 0
