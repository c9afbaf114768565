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
	# labels are 0..2 but the model has 2 classes: found before any step,
	# named by its file, offset and sample (tiny's labels are 0 1 2 0 1 2 ...)
	sed -i 's/f32\[B, 3\]/f32[B, 2]/; s/f32\[16, 3\]/f32[16, 2]/; s/f32\[3\]/f32[2]/' tiny.nnd
	run 0 build.out "$NNDC" build tiny.nnd -o tiny
	run 0 m ./tiny info; has m 'labels in \[0, 2)'
	run 1 a ./tiny train
	has a.err 'tiny-labels-idx1-ubyte: offset 10: label 2 of sample 2 is outside \[0, 2)'
	[ -s a ] && fail "a step ran before the bad label was found: $(cat a)"
	# --limit: only the samples the run uses (labels 0, 1; without the
	# eval set, which is the whole file)
	sed -i '/eval d;/d' tiny.nnd
	run 0 build1.out "$NNDC" build tiny.nnd -o tiny
	run 0 b ./tiny train --limit 2
	# only the eval set is bad: found before training, not after an epoch
	tiny_model
	cp tiny-labels-idx1-ubyte ev-labels
	printf '\003' | dd of=ev-labels bs=1 seek=17 conv=notrunc 2>/dev/null
	sed -i 's/^train t {/dataset e = idx(images = "tiny-images-idx3-ubyte", labels = "ev-labels");\ntrain t {/; s/eval d;/eval e;/' tiny.nnd
	run 0 build2.out "$NNDC" build tiny.nnd -o tiny
	run 1 c ./tiny train
	has c.err 'ev-labels: offset 17: label 3 of sample 9 is outside \[0, 3)'
	[ -s c ] && fail "training ran before the bad eval label was found: $(cat c)"
	cp tiny-labels-idx1-ubyte ev-labels
	run 0 w ./tiny train --steps 2 --save ck
	printf '\003' | dd of=ev-labels bs=1 seek=17 conv=notrunc 2>/dev/null
	run 1 d ./tiny eval --weights ck/params.safetensors
	has d.err 'ev-labels: offset 17: label 3 of sample 9'
	# a label the program computes is checked by the kernel, whose message
	# names the row's sample and where that sample's label lies
	tiny_model
	sed -i 's/cross_entropy(m(images), labels)/cross_entropy(m(images), i32(f32(labels) * 2.0))/' tiny.nnd
	run 0 build3.out "$NNDC" build tiny.nnd -o tiny
	run 1 e ./tiny train
	s=$(sed -n 's/.*label 4 in row [0-9]* of the batch is outside \[0, 3) (sample \([0-9]*\), whose label is at tiny-labels-idx1-ubyte: offset \([0-9]*\))$/\1 \2/p' e.err)
	[ -n "$s" ] && [ "$(( ${s% *} + 8 ))" = "${s#* }" ] || fail "kernel's message: $(cat e.err)"
	# CSV: the line and column
	cp "$SRC/data/tiny.csv" .
	sed -i '7s/,[0-9]$/,5/' tiny.csv
	cat > c.nnd <<NND
nnd 1;
dataset d = csv(path = "tiny.csv", label = "label");
def net(features: f32[B, 4]) -> f32[B, 4] {
  param w: f32[4, 4] = xavier_uniform();
  return features @ w;
}
train c {
  data d;
  loss cross_entropy(net(features), labels);
  optimizer sgd(lr = 0.1);
}
NND
	run 0 build4.out "$NNDC" build c.nnd -o c
	run 1 f ./c train
	has f.err 'tiny.csv:7: column 5: label 5 of sample 5 is outside \[0, 4)'
	;;
infer_pipe)
	# infer --input that cannot be rewound (bash's <(...), /dev/stdin):
	# the bytes that tell gzip from plain are not lost; plain and gzip,
	# through a pipe, give the file's bits
	tiny_model
	run 0 build.out "$NNDC" build tiny.nnd -o tiny
	run 0 t ./tiny train --save ck
	I="infer --weights ck/params.safetensors --input"
	run 0 f ./tiny $I tiny-images-idx3-ubyte
	run 0 p ./tiny $I <(cat tiny-images-idx3-ubyte)
	run 0 s ./tiny $I /dev/stdin <tiny-images-idx3-ubyte
	gzip -c tiny-images-idx3-ubyte >img.gz
	run 0 g ./tiny $I img.gz
	run 0 gp ./tiny $I <(cat img.gz)
	run 0 gs ./tiny $I /dev/stdin <img.gz
	for o in p s g gp gs; do cmp -s f $o || fail "infer --input ($o) differs from the plain file"; done
	# another gzip member is read; anything else after the stream is an
	# error at its compressed offset, as is a stream cut short
	{ head -c 100 tiny-images-idx3-ubyte | gzip -c; tail -c +101 tiny-images-idx3-ubyte | gzip -c; } >two.gz
	run 0 m ./tiny $I <(cat two.gz)
	cmp -s f m || fail "two gzip members differ from the plain file"
	{ cat img.gz; printf 'junk'; } >junk.gz
	n=$(stat -c %s img.gz)
	run 1 e1 ./tiny $I junk.gz
	has e1.err "junk.gz: compressed offset $n: expected the end of the file or another gzip member after the gzip data, found bytes 6a 75 6e 6b (trailing garbage)"
	run 1 e2 ./tiny $I <(cat junk.gz)
	has e2.err "compressed offset $n: expected the end of the file or another gzip member"
	head -c 30 img.gz >cut.gz
	run 1 e3 ./tiny $I cut.gz
	has e3.err 'cut.gz: compressed offset 30: corrupt gzip data: unexpected end of file'
	run 1 e4 ./tiny $I <(cat cut.gz)
	has e4.err 'compressed offset 30: corrupt gzip data: unexpected end of file'
	# a training set whose labels come through a FIFO (gzip)
	sed -i '/eval d;/d' tiny.nnd
	run 0 build2.out "$NNDC" build tiny.nnd -o tiny
	run 0 a ./tiny train
	gzip -c "$SRC/data/tiny-labels-idx1-ubyte" >lab.gz
	rm tiny-labels-idx1-ubyte && mkfifo tiny-labels-idx1-ubyte || fail "mkfifo"
	cat lab.gz >tiny-labels-idx1-ubyte &
	run 0 b ./tiny train
	wait
	cmp -s a b || fail "labels through a FIFO train otherwise"
	;;
csv_names)
	# CSV columns are matched by name: infer --input against the training
	# data's header (recorded in the program), an eval set in another
	# order, a training file reordered since the build
	cp "$SRC/data/tiny.csv" .
	cat > c.nnd <<NND
nnd 1;
seed 3;
dataset d = csv(path = "tiny.csv", label = "label");
dataset e = csv(path = "EVAL", label = "label");
def net(features: f32[B, 4]) -> f32[B, 4] {
  param w: f32[4, 4] = xavier_uniform();
  param b: f32[4] = zeros();
  return features @ w + b;
}
train c {
  data d;
  loss cross_entropy(net(features), labels);
  optimizer sgd(lr = 0.1);
  batch 8;
  epochs 2;
  eval e;
}
NND
	awk -F, -v OFS=, '{ print $5, $4, $2, $3, $1 }' tiny.csv >perm.csv
	sed 's/EVAL/tiny.csv/' c.nnd >c1.nnd
	sed 's/EVAL/perm.csv/' c.nnd >c2.nnd
	run 0 b1.out "$NNDC" build c1.nnd -o c1
	run 0 b2.out "$NNDC" build c2.nnd -o c2
	run 0 info ./c2 info; has info 'feature columns: f0 f1 f2 f3'
	run 0 t1 ./c1 train --save ck
	run 0 t2 ./c2 train
	cmp -s t1 t2 || fail "an eval set with its columns in another order evaluates otherwise"
	I="infer --weights ck/params.safetensors --input"
	head -n 6 tiny.csv >in.csv
	head -n 6 perm.csv >inp.csv
	run 0 a ./c1 $I in.csv
	run 0 b ./c1 $I inp.csv
	cmp -s a b || fail "infer: a header in another order changes the predictions"
	{ echo f3,f2,f1,f0,label; tail -n +2 in.csv; } >renamed.csv
	run 0 r ./c1 $I renamed.csv
	cmp -s a r && fail "infer: the header's names are ignored"
	{ echo f0,f1,f2,label; tail -n +2 in.csv | cut -d, -f1-3,5; } >missing.csv
	run 1 e1 ./c1 $I missing.csv
	has e1.err "missing.csv:1: expected a column named 'f3' (feature 4 of the training data), found none"
	{ echo f0,f1,f2,f3,label,id; tail -n +2 in.csv | sed 's/$/,7/'; } >extra.csv
	run 1 e2 ./c1 $I extra.csv
	has e2.err "extra.csv:1: column 6: expected one of the feature columns 'f0', 'f1', 'f2', 'f3' (those of the training data) or the label column 'label', found 'id'"
	head -n 1 tiny.csv >hdr.csv
	run 1 e3 ./c1 $I hdr.csv
	has e3.err 'hdr.csv:1: expected a row of data after the header, found the end of the file'
	# the training file reordered after the build: read by name
	cp perm.csv tiny.csv
	run 0 t3 ./c1 train
	cmp -s t1 t3 || fail "a training file with its columns reordered trains otherwise"
	sed -i '1s/f2/g2/' tiny.csv
	run 1 e4 ./c1 train
	has e4.err "tiny.csv:1: expected a column named 'f2' (feature 3 of the data the program was compiled for), found none; rebuild the program for this data"
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
	# other reduction plans give other bits: a build with --plan tree:2
	# refuses the checkpoint, naming a reduction; a build with -O0 and
	# --no-fuse (the same bits) resumes it to the uninterrupted end
	run 0 tfull ./tiny train --threads 1
	run 0 tpart ./tiny train --threads 1 --steps 4 --save tck
	run 0 tb2.out "$NNDC" build tiny.nnd -o tiny_tree --plan tree:2
	run 1 tree ./tiny_tree train --resume tck
	has tree.err "tiny_tree: error: tck/train_state.safetensors: saved by a program built with other reduction plans: train node [0-9]* (matmul at m.return) was seq+fma, in this program it is tree(2)"
	run 0 tb3.out "$NNDC" build tiny.nnd -o tiny_o0 -O0 --no-fuse
	run 0 tres ./tiny_o0 train --resume tck --threads 2
	[ "$(sha tres)" = "$(sha tfull)" ] || fail "a -O0 --no-fuse build resumes to other bits"
	# training data of the same shape but other bytes are refused
	cp tiny-images-idx3-ubyte tiny-images.orig
	printf '\377' | dd of=tiny-images-idx3-ubyte bs=1 seek=20 conv=notrunc 2>/dev/null
	cmp -s tiny-images-idx3-ubyte tiny-images.orig && fail "could not change the images"
	run 1 data ./tiny train --resume tck
	has data.err "tck/train_state.safetensors: the saved run trained on other data: tiny-images-idx3-ubyte has sha256 "
	;;
kill_in_save)
	# a run killed at any point of a save leaves a directory that resumes
	# to the old checkpoint or to the new one, never to neither: killed
	# half way through writing either file or before the commit (the
	# rename of the train state), the old pair is untouched; killed after
	# it, the resume finishes the save (renames the pending params file)
	run 0 build.out "$NNDC" build "$SRC/e2e/every_op.nnd" -o every
	run 0 first ./every train --steps 4 --save ck4
	run 0 second ./every train --steps 8 --save ck8
	run 0 straight ./every train --steps 12
	state_step() { grep -a -o '"step":"[0-9]*"' "$1/train_state.safetensors" | head -n 1 | tr -dc 0-9; }
	for point in params.safetensors train_state.safetensors before-commit between-renames before-cleanup; do
		rm -rf ck && cp -r ck4 ck
		NND_TEST_KILL_IN_SAVE=$point ./every train --resume ck --steps 8 --save ck > killed.$point 2>&1 &&
			fail "the test hook did not kill the run at $point"
		case $point in between-renames | before-cleanup) want=8 ;; *) want=4 ;; esac
		[ "$(state_step ck)" = $want ] || fail "killed at $point: the train state is of step $(state_step ck), expected $want"
		# params.safetensors is always a whole file (eval reads it)
		run 0 ev.$point ./every eval --weights ck/params.safetensors
		if [ $point = between-renames ]; then
			cmp -s ck/params.safetensors ck4/params.safetensors || fail "between the renames: params.safetensors is not the old file"
			ls -A ck | grep -q '^\.pending-params-' || fail "between the renames: no pending params file"
			# the pending file must be the state's: damaged, or missing with
			# no params.safetensors, the directory is refused
			cp -r ck ck.bad && p=$(ls -A ck.bad | grep '^\.pending-params-')
			printf 'x' | dd of="ck.bad/$p" bs=1 seek=100 conv=notrunc 2>/dev/null
			run 1 bad ./every train --resume ck.bad --steps 12
			has bad.err "ck.bad/$p: damaged: its digest differs from the params_sha256 of ck.bad/train_state.safetensors"
			rm -f "ck.bad/$p" ck.bad/params.safetensors
			run 1 gone ./every train --resume ck.bad --steps 12
			has gone.err 'ck.bad/params.safetensors: cannot open'
		fi
		run 0 again.$point ./every train --resume ck --steps 12
		[ "$(sha again.$point)" = "$(sha straight)" ] || fail "killed at $point: the resumed run ends with other bits"
		# the directory now holds exactly the old or the new checkpoint
		cmp -s ck/params.safetensors ck$want/params.safetensors || fail "killed at $point: params.safetensors is not step $want's"
		cmp -s ck/train_state.safetensors ck$want/train_state.safetensors || fail "killed at $point: train_state is not step $want's"
		# (a save killed before its commit leaves its pending params file to
		# the next save's tidying; the one the state names is consumed)
		[ $point = between-renames ] && ls -A ck | grep -q '^\.pending-params-' && fail "the resume left the pending params file"
	done
	# a later save clears what a killed one left
	rm -rf ck && cp -r ck4 ck
	NND_TEST_KILL_IN_SAVE=train_state.safetensors ./every train --resume ck --steps 8 --save ck > killed 2>&1 &&
		fail "the test hook did not kill the run"
	ls -A ck | grep -q '^\.tmp-train_state' || fail "no temporary file left by the kill: $(ls -A ck)"
	run 0 last ./every train --resume ck --steps 12 --save ck
	[ "$(ls -A ck | tr '\n' ' ')" = "params.safetensors train_state.safetensors " ] || fail "after a save ck holds: $(ls -A ck)"
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
