#!/usr/bin/env bash
# run.sh NNDC WORKDIR CASE - end-to-end tests: .nnd source through nndc to a
# running program.  One CTest case per CASE, each in a fresh WORKDIR.
# Exit 0 pass, 1 fail, 77 skipped (an optional data set is missing).
. "$(dirname "$0")/../lib.sh" "$@"

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
cpu_levels)
	# NND_CPU picks the x86-64 level: AVX2-only code (x86-64-v3), and the
	# baseline x86-64 (SSE2), give the host build's bits; a bad name is a
	# clear error
	tiny_model
	run 0 build.out "$NNDC" build tiny.nnd -o host
	NND_CPU=x86-64-v3 run 0 build3.out "$NNDC" build tiny.nnd -o v3
	NND_CPU=x86-64 run 0 build1.out "$NNDC" build tiny.nnd -o v1
	run 0 a ./host train --threads 2
	run 0 b ./v3 train --threads 2
	run 0 c ./v1 train --threads 1
	[ "$(sha a)" = "$(sha b)" ] || fail "x86-64-v3 build gives $(sha b), host build $(sha a)"
	[ "$(sha a)" = "$(sha c)" ] || fail "x86-64 build gives $(sha c), host build $(sha a)"
	NND_CPU=pentium4 run 1 bad "$NNDC" build tiny.nnd -o bad
	has bad.err 'NND_CPU=pentium4: expected x86-64, x86-64-v2, x86-64-v3 or x86-64-v4'
	;;
profile)
	# --profile times every node (dot products with GFLOP/s) and never
	# changes a bit
	tiny_model
	run 0 build.out "$NNDC" build tiny.nnd -o tiny
	run 0 a ./tiny train --threads 2
	run 0 b ./tiny train --threads 2 --profile
	[ "$(sha a)" = "$(sha b)" ] || fail "--profile changed the bits: $(sha a) vs $(sha b)"
	has b.err '^profile: train steps [0-9.]* s, eval [0-9.]* s'
	grep -Eq '^train +[0-9]+ matmul +m\.return +[0-9.]+ +[0-9.]+ +9 +[0-9.]+$' b.err ||
		{ cat b.err >&2; fail "no train matmul row with 9 calls and a GFLOP/s figure"; }
	grep -q '^eval ' b.err || fail "no eval rows"
	;;
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
cnn_ci)
	# CI-sized run of the conv example (conv2d, batchnorm, max_pool2d,
	# random_flip): one epoch on 2000 samples, 1 and 2 threads, same bits;
	# batchnorm's running statistics are saved with the parameters
	need_fashion
	run 0 build.out "$NNDC" build "$EX/cnn_fashion.nnd" -o cnn
	run 0 a ./cnn train --limit 2000 --epochs 1 --threads 1 --save ck
	has a '^epoch 1 train_loss [0-9.]* eval_loss [0-9.]* acc [0-9.]*$'
	acc=$(sed -n 's/^epoch 1 .* acc \([0-9.]*\)$/\1/p' a)
	awk -v a="$acc" 'BEGIN { exit !(a >= 0.6) }' || fail "accuracy $acc < 0.6"
	echo "accuracy $acc"
	[ -n "$(sha a)" ] || fail "no sha256 line last"
	run 0 b ./cnn train --limit 2000 --epochs 1 --threads 2
	[ "$(sha a)" = "$(sha b)" ] || fail "1 thread gives $(sha a), 2 threads $(sha b)"
	grep -q 'cnn.c2.return.running_var' ck/params.safetensors || fail "checkpoint lacks the batchnorm state"
	# AOT == JIT on the conv example (a few steps)
	run 0 c ./cnn train --limit 2000 --steps 4 --threads 2
	run 0 d "$NNDC" run "$EX/cnn_fashion.nnd" -- train --limit 2000 --steps 4 --threads 2
	[ -n "$(sha c)" ] && [ "$(sha c)" = "$(sha d)" ] || fail "JIT gives $(sha d), the built program $(sha c)"
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
threads)
	# the same bits at 1, 2, 3 and 4 threads: every-op model and the MLP
	run 0 build.out "$NNDC" build "$SRC/e2e/every_op.nnd" -o every
	for t in 1 2 3 4; do
		run 0 e$t ./every train --threads $t
		run 0 s$t ./every train --train every_sgd --threads $t
	done
	for t in 2 3 4; do
		cmp -s e1 e$t || fail "every_op: $t threads differ from 1"
		cmp -s s1 s$t || fail "every_op (sgd): $t threads differ from 1"
	done
	run 0 j "$NNDC" run "$SRC/e2e/every_op.nnd" -- train --threads 2
	cmp -s e1 j || fail "every_op: JIT differs from AOT"
	need_fashion
	run 0 b2 "$NNDC" build "$EX/mlp_fashion.nnd" -o mlp
	run 0 m1 ./mlp train --steps 120 --threads 1
	run 0 m2 ./mlp train --steps 120 --threads 2
	run 0 m3 ./mlp train --steps 120 --threads 3
	cmp -s m1 m2 && cmp -s m1 m3 || fail "mlp_fashion: thread counts differ"
	;;
fuse)
	# elementwise fusion never changes a bit: every-op model (both train
	# blocks), the tiny model and the MLP built with and without it, and
	# their per-node digests (nodes that exist in both builds) agree
	run 0 ir "$NNDC" emit "$SRC/e2e/every_op.nnd" --stage ir
	has ir 'fused into %'
	run 0 build.out "$NNDC" build "$SRC/e2e/every_op.nnd" -o every
	run 0 build2.out "$NNDC" build "$SRC/e2e/every_op.nnd" --no-fuse -o every_nf
	run 0 ir2 "$NNDC" emit "$SRC/e2e/every_op.nnd" --stage ir --no-fuse
	grep -q 'fused into' ir2 && fail "--no-fuse still fuses"
	run 0 e1 ./every train --threads 2
	run 0 e2 ./every_nf train --threads 2
	cmp -s e1 e2 || fail "every_op: fused and unfused builds differ"
	run 0 s1 ./every train --train every_sgd --threads 1
	run 0 s2 ./every_nf train --train every_sgd --threads 1
	cmp -s s1 s2 || fail "every_op (sgd): fused and unfused builds differ"
	tiny_model
	run 0 tb "$NNDC" build tiny.nnd -o tiny
	run 0 tb2 "$NNDC" build tiny.nnd --no-fuse -o tiny_nf
	run 0 t1 ./tiny train --threads 2
	run 0 t2 ./tiny_nf train --threads 2
	cmp -s t1 t2 || fail "tiny: fused and unfused builds differ"
	need_fashion
	run 0 mb "$NNDC" build "$EX/mlp_fashion.nnd" -o mlp
	run 0 mb2 "$NNDC" build "$EX/mlp_fashion.nnd" --no-fuse -o mlp_nf
	run 0 m1 ./mlp train --steps 60 --threads 2
	run 0 m2 ./mlp_nf train --steps 60 --threads 2
	cmp -s m1 m2 || fail "mlp_fashion: fused and unfused builds differ"
	;;
resume)
	# save mid-epoch, resume at another thread count: the bits of an
	# uninterrupted run, at the end and at every logged step
	run 0 build.out "$NNDC" build "$SRC/e2e/every_op.nnd" -o every
	run 0 full ./every train --threads 1 --log full.jsonl
	run 0 half ./every train --threads 1 --steps 9 --save ck
	run 0 rest ./every train --threads 3 --resume ck --log rest.jsonl
	[ "$(sha full)" = "$(sha rest)" ] || fail "resumed run ends with other bits"
	grep '"step":1[0-9]' full.jsonl | sed 's/"lr[^,]*,//' > a.steps
	grep '"step":1[0-9]' rest.jsonl | sed 's/"lr[^,]*,//' > b.steps
	[ -s a.steps ] && cmp -s a.steps b.steps || fail "per-step losses after the resume differ"
	# a checkpoint of another model is refused with a clear message
	tiny_model
	run 0 tb.out "$NNDC" build tiny.nnd -o tiny
	run 1 other ./tiny train --resume ck
	has other.err 'ck'
	head -c 100 ck/params.safetensors > ck2.safetensors
	mkdir -p ck2 && cp ck/train_state.safetensors ck2/ && mv ck2.safetensors ck2/params.safetensors
	run 1 trunc ./every train --resume ck2
	has trunc.err 'params.safetensors'
	;;
kill_in_save)
	# a run killed while writing its checkpoint leaves the previous one whole
	run 0 build.out "$NNDC" build "$SRC/e2e/every_op.nnd" -o every
	run 0 first ./every train --steps 4 --save ck
	cp -r ck ck.before
	NND_TEST_KILL_IN_SAVE=params.safetensors ./every train --steps 8 --save ck > killed 2>&1 && fail "the test hook did not kill the run"
	cmp -s ck/params.safetensors ck.before/params.safetensors || fail "params.safetensors was damaged"
	cmp -s ck/train_state.safetensors ck.before/train_state.safetensors || fail "train_state was damaged"
	run 0 again ./every train --steps 8 --resume ck
	run 0 straight ./every train --steps 8
	[ "$(sha again)" = "$(sha straight)" ] || fail "resuming from the surviving checkpoint gives other bits"
	;;
batch_invariance)
	# inference of a sample alone or inside any batch: the same bits
	need_fashion
	run 0 b.out "$NNDC" build "$EX/mlp_fashion.nnd" -o mlp
	run 0 t ./mlp train --steps 30 --limit 2000 --save w
	python3 - <<'PY' || fail "cannot write the test images"
import gzip, struct
d = gzip.open("/usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz").read()
n = 37
open("some-images-idx3-ubyte", "wb").write(struct.pack(">IIII", 0x803, n, 28, 28) + d[16:16 + n * 784])
PY
	run 0 i1 ./mlp infer --weights w/params.safetensors --input some-images-idx3-ubyte --batch 1
	run 0 i7 ./mlp infer --weights w/params.safetensors --input some-images-idx3-ubyte --batch 7
	run 0 i64 ./mlp infer --weights w/params.safetensors --input some-images-idx3-ubyte --batch 64 --threads 2
	cmp -s i1 i7 && cmp -s i1 i64 || fail "outputs depend on the batch size"
	[ "$(grep -c . i1)" = 38 ] || fail "expected 37 rows and a sha256 line"
	;;
layer_add)
	# adding a layer leaves every other parameter's initial bits unchanged
	tiny_model
	sed 's/  return reshape(f32(images) \/ 255.0, \[-1, 16\]) @ w + b;/  param extra: f32[3, 3] = xavier_uniform();\n  return (reshape(f32(images) \/ 255.0, [-1, 16]) @ w + b) @ extra;/' tiny.nnd > tiny2.nnd
	grep -q extra tiny2.nnd || fail "could not edit the model"
	run 0 b1 "$NNDC" build tiny.nnd -o t1
	run 0 b2 "$NNDC" build tiny2.nnd -o t2
	run 0 s1 ./t1 train --steps 0 --save c1
	run 0 s2 ./t2 train --steps 0 --save c2
	python3 "$SRC/e2e/st_compare.py" c1/params.safetensors c2/params.safetensors > cmp.out || { cat cmp.out; fail "initial values moved"; }
	has cmp.out 'm.w: same'; has cmp.out 'm.b: same'
	# the same names with other shapes: refused, naming the tensor
	sed 's/param w: f32\[16, 3\] = xavier_uniform();/param w: f32[16, 5] = xavier_uniform();\n  param v: f32[5, 3] = xavier_uniform();/; s/@ w + b;/@ w @ v + b;/' tiny.nnd > tiny3.nnd
	grep -q 'f32\[16, 5\]' tiny3.nnd || fail "could not edit the model"
	run 0 b3 "$NNDC" build tiny3.nnd -o t3
	run 1 e3 ./t3 eval --weights c1/params.safetensors
	has e3.err 'm.w'
	;;
verify)
	run 0 v "$NNDC" verify "$SRC/e2e/every_op.nnd" --threads 1,2,4 --steps 4
	has v '^same bits [0-9a-f]\{64\}'
	# a planted race (test-only plan) is caught and the op named
	cp "$SRC/plans/sums.nnd" "$SRC/plans/adversarial.csv" .
	NND_TEST_RACY=1 "$NNDC" verify sums.nnd --threads 1,2,3 --steps 3 --plan 'rowsum.s=racy' > r 2> r.err
	[ $? = 1 ] || { cat r r.err; fail "verify did not report the planted race"; }
	has r 'rowsum.s'
	;;
*) fail "unknown case" ;;
esac
exit 0
