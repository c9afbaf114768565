#!/usr/bin/env bash
# run.sh NNDC WORKDIR CASE - end-to-end tests: .nnd source through nndc to a
# running program.  One CTest case per CASE, each in a fresh WORKDIR.
# Exit 0 pass, 1 fail, 77 skipped (an optional data set is missing).
set -u
NNDC=$1; W=$2; CASE=$3
SRC=$(cd "$(dirname "$0")/.." && pwd)
EX=$SRC/../examples
FM=/usr/share/datasets/fashion-mnist
rm -rf "$W" && mkdir -p "$W" && cd "$W" || exit 1
fail() { echo "FAIL [$CASE]: $*" >&2; exit 1; }
run() {   # run EXPECTED_RC OUT CMD...: stdout to OUT, stderr to OUT.err
	local want=$1 out=$2; shift 2
	"$@" >"$out" 2>"$out.err"
	local rc=$?
	[ "$rc" = "$want" ] || { cat "$out" "$out.err" >&2; fail "'$*' exited $rc, expected $want"; }
}
sha() { tail -n 1 "$1" | sed -n 's/^sha256 \([0-9a-f]\{64\}\)$/\1/p'; }
has() { grep -q -- "$2" "$1" || { cat "$1" >&2; fail "'$1' lacks '$2'"; }; }
need_fashion() { [ -f $FM/train-images-idx3-ubyte.gz ] || { echo "dataset-fashion-mnist not installed: skipped"; exit 77; }; }

# a small model over a copy of the shipped tiny IDX files
tiny_model() {
	cp "$SRC/data/tiny-images-idx3-ubyte" "$SRC/data/tiny-labels-idx1-ubyte" .
	cat > tiny.nnd <<NND
nnd 1;
seed 5;
dataset d = idx(images = "tiny-images-idx3-ubyte", labels = "tiny-labels-idx1-ubyte");
def m(images: u8[B, 4, 4]) -> f32[B, 3] {
  param w: f32[16, 3] = xavier_uniform();
  param b: f32[3] = zeros();
  return reshape(f32(images) / 255.0, [-1, 16]) @ w + b;
}
train t {
  data d;
  loss cross_entropy(m(images), labels);
  metric acc = accuracy(m(images), labels);
  optimizer sgd(lr = ${1:-0.1}, momentum = 0.9);
  batch 5;
  epochs 3;
  eval d;
}
NND
}

case $CASE in
mlp_ci)
	# CI-sized run of the main example: one epoch on 10000 samples
	need_fashion
	run 0 build.out "$NNDC" build "$EX/mlp_fashion.nnd" -o mlp
	run 0 a ./mlp train --limit 10000 --epochs 1
	has a '^epoch 1 train_loss [0-9.]* eval_loss [0-9.]* acc [0-9.]*$'
	acc=$(sed -n 's/^epoch 1 .* acc \([0-9.]*\)$/\1/p' a)
	awk -v a="$acc" 'BEGIN { exit !(a >= 0.75) }' || fail "accuracy $acc < 0.75"
	echo "accuracy $acc"
	[ -n "$(sha a)" ] || fail "no sha256 line last"
	run 0 b ./mlp train --limit 10000 --epochs 1
	cmp -s a b || fail "two runs differ"
	run 0 c "$NNDC" run "$EX/mlp_fashion.nnd" -- train --limit 10000 --epochs 1
	[ "$(sha a)" = "$(sha c)" ] || fail "nndc run (JIT) gives $(sha c), the built program $(sha a)"
	cmp -s a c || fail "JIT and AOT print different results"
	;;
tiny_same_bits)
	tiny_model
	run 0 build.out "$NNDC" build tiny.nnd -o tiny
	run 0 a ./tiny train; run 0 b ./tiny train
	cmp -s a b || fail "two runs differ"
	[ "$(grep -c '^epoch' a)" = 3 ] || fail "expected 3 epoch lines"
	run 0 c "$NNDC" run tiny.nnd -- train
	cmp -s a c || fail "JIT and AOT differ"
	for o in 0 1 3; do
		run 0 b$o "$NNDC" build tiny.nnd -o tiny$o -O$o
		run 0 o$o ./tiny$o train
		cmp -s a o$o || fail "-O$o changes the bits"
	done
	run 0 i ./tiny info; has i 'plan'
	;;
truncated_idx)
	tiny_model
	run 0 build.out "$NNDC" build tiny.nnd -o tiny
	head -c 100 "$SRC/data/tiny-images-idx3-ubyte" > tiny-images-idx3-ubyte
	run 1 a ./tiny train
	has a.err 'tiny-images-idx3-ubyte'; has a.err 'offset'
	;;
corrupt_idx)
	tiny_model
	run 0 build.out "$NNDC" build tiny.nnd -o tiny
	printf 'garbage!garbage!' > tiny-labels-idx1-ubyte
	run 1 a ./tiny train
	has a.err 'tiny-labels-idx1-ubyte'
	gzip -c "$SRC/data/tiny-images-idx3-ubyte" | head -c 40 > tiny-images-idx3-ubyte
	cp "$SRC/data/tiny-labels-idx1-ubyte" .
	run 1 b ./tiny train
	has b.err 'tiny-images-idx3-ubyte'
	;;
missing_file)
	tiny_model
	rm tiny-labels-idx1-ubyte
	run 1 a "$NNDC" build tiny.nnd -o tiny
	has a.err 'tiny.nnd:3:'; has a.err 'tiny-labels-idx1-ubyte'
	cp "$SRC/data/tiny-labels-idx1-ubyte" .
	run 0 b "$NNDC" build tiny.nnd -o tiny
	rm tiny-labels-idx1-ubyte
	run 1 c ./tiny train
	has c.err 'tiny-labels-idx1-ubyte'
	;;
nan_loss)
	# logits that overflow to inf make the loss inf - inf = NaN
	tiny_model 1e30
	sed -i 's/loss cross_entropy(m(images), labels)/loss cross_entropy(m(images) * 1e38, labels)/' tiny.nnd
	run 0 build.out "$NNDC" build tiny.nnd -o tiny
	run 1 a ./tiny train
	has a.err 'NaN'
	;;
bad_label)
	tiny_model
	# labels are 0..2 but the model has 2 classes
	sed -i 's/f32\[B, 3\]/f32[B, 2]/; s/f32\[16, 3\]/f32[16, 2]/; s/f32\[3\]/f32[2]/' tiny.nnd
	run 0 build.out "$NNDC" build tiny.nnd -o tiny
	run 1 a ./tiny train
	has a.err 'label 2'
	;;
*) fail "unknown case" ;;
esac
exit 0
