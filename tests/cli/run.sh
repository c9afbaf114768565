#!/usr/bin/env bash
# run.sh NNDC WORKDIR CASE - the command line at its edges (cli.cmake).
# Exit 0 pass, 1 fail, 77 skipped.
. "$(dirname "$0")/../lib.sh" "$@"

# a linear model over a copy of tests/data/tiny.csv (40 samples, 4 classes); $1: batch
tiny_model() {
	cp "$SRC/data/tiny.csv" .
	cat > tiny.nnd <<NND
nnd 1;
seed 9;
dataset d = csv(path = "tiny.csv", label = "label");
def m(features: f32[B, 4]) -> f32[B, 4] {
  param w: f32[4, 4] = xavier_uniform();
  param b: f32[4] = zeros();
  return features @ w + b;
}
train t {
  data d;
  loss cross_entropy(m(features), labels);
  optimizer sgd(lr = 0.1);
  batch ${1:-8};
  epochs 3;
  eval d;
}
NND
}

case $CASE in
build_output)
	# the object file is a temporary of its own (PROGRAM.o is the user's),
	# the program appears whole or not at all, with the umask's mode; an
	# -o that cannot be written is a user error before compiling
	tiny_model
	echo mine >prog.o
	run 0 b.out "$NNDC" build tiny.nnd -o prog
	[ "$(cat prog.o)" = mine ] || fail "build overwrote prog.o"
	[ -x prog ] || fail "no executable"
	[ -z "$(ls -A | grep '^\.prog\.')" ] || fail "temporaries left: $(ls -A)"
	[ "$(stat -c %a prog)" = "$(printf '%o' $((0777 & ~$(umask))))" ] || fail "mode $(stat -c %a prog), umask $(umask)"
	run 0 t.out ./prog train --steps 2
	run 1 nodir.out "$NNDC" build tiny.nnd -o no/such/dir/prog
	has nodir.out.err '^nndc: error: -o no/such/dir/prog: cannot create a file there: No such file or directory'
	mkdir sub
	run 1 isdir.out "$NNDC" build tiny.nnd -o sub
	has isdir.out.err '^nndc: error: -o sub: is a directory'
	# a failed compile leaves the old program in place
	cp prog prog.before
	echo 'nnd 1; oops' >bad.nnd
	run 1 bad.out "$NNDC" build bad.nnd -o prog
	cmp -s prog prog.before || fail "a failed build changed the program"
	;;
target)
	# all (the default) and cuda carry the kernels, cpu does not; cuda
	# makes --device cuda the default, --device cpu still gives the bits
	tiny_model
	run 0 a.out "$NNDC" build tiny.nnd -o all
	run 0 c.out "$NNDC" build tiny.nnd -o cpu --target cpu
	run 0 g.out "$NNDC" build tiny.nnd -o gpu --target cuda
	run 1 x.out "$NNDC" build tiny.nnd -o x --target gpu
	has x.out.err '^nndc: error: --target gpu: expected cpu, cuda or all'
	run 0 a ./all train
	run 0 c ./cpu train
	run 0 g ./gpu train --device cpu
	[ "$(sha a)" = "$(sha c)" ] && [ "$(sha a)" = "$(sha g)" ] || fail "targets give different bits"
	run 1 cd ./cpu train --device cuda
	has cd.err 'this program has no CUDA kernels: built with --target cpu; rebuild it with --target all'
	# the cuda build defaults to the GPU: on a machine without one it says so
	./gpu train >gd 2>gd.err
	rc=$?
	if [ $rc = 1 ]; then
		has gd.err -- '--device cuda'
	else
		[ $rc = 0 ] && [ "$(sha gd)" = "$(sha a)" ] || fail "--target cuda program exited $rc, sha $(sha gd)"
	fi
	;;
stdout_full)
	# results that cannot be written are an error, not exit 0
	[ -w /dev/full ] || skip "no /dev/full"
	tiny_model
	run 0 b.out "$NNDC" build tiny.nnd -o prog
	for cmd in "train --steps 2" info; do
		./prog $cmd >/dev/full 2>err
		rc=$?
		[ $rc = 1 ] || fail "'prog $cmd >/dev/full' exited $rc"
		has err 'error: standard output: cannot write'
	done
	;;
save_early)
	# --save DIR is checked before the first step
	tiny_model
	run 0 b.out "$NNDC" build tiny.nnd -o prog
	touch afile
	run 1 f.out ./prog train --save afile
	has f.out.err 'error: --save afile: not a directory'
	[ ! -s f.out ] || fail "trained before refusing --save: $(cat f.out)"
	run 1 n.out ./prog train --save no/such/dir
	has n.out.err 'error: --save no/such/dir: cannot create the directory'
	run 0 ok.out ./prog train --steps 1 --save newdir
	[ -f newdir/params.safetensors ] || fail "no checkpoint in newdir"
	[ -z "$(ls -A newdir | grep probe)" ] || fail "the write probe was left: $(ls -A newdir)"
	# --steps below the saved step: said, not silently ignored
	run 0 r.out ./prog train --resume newdir --steps 0
	has r.out.err 'note: --steps 0: the run saved in newdir has taken 1 steps already; no step is taken'
	[ "$(sha r.out)" = "$(sha ok.out)" ] || fail "resume with nothing to do changed the parameters"
	;;
big_batch)
	# a batch larger than the data trains as one batch of all of it, with
	# the same bits, without buffers for the rows that are not there
	tiny_model 40
	run 0 b.out "$NNDC" build tiny.nnd -o p40
	tiny_model 1000000000
	run 0 b.out "$NNDC" build tiny.nnd -o pbig
	run 0 a ./p40 train
	run 0 g ./pbig train
	[ "$(sha a)" = "$(sha g)" ] || fail "batch 1e9 gives $(sha g), batch 40 $(sha a)"
	run 0 s ./pbig train --steps 0 --save w
	run 0 i1 ./pbig infer --weights w/params.safetensors --input tiny.csv
	run 0 i2 ./pbig infer --weights w/params.safetensors --input tiny.csv --batch 1000000000000
	cmp -s i1 i2 || fail "infer --batch 1e12 differs"
	;;
huge_epochs)
	# epochs at the int64 limit, with a cosine schedule as long: a run
	# stopped by --steps, its step totals saturating (UBSan would see a
	# wrap) and its learning rates those of an endless schedule
	tiny_model
	sed -i 's/  epochs 3;/  epochs 9223372036854775807;\n  schedule cosine(epochs = 9223372036854775807);/' tiny.nnd
	grep -q 'cosine(epochs = 9223372036854775807)' tiny.nnd || fail "the model was not rewritten"
	run 0 a.out "$NNDC" run tiny.nnd -- train --steps 3 --log a.jsonl
	[ -n "$(sha a.out)" ] || fail "no sha256"
	grep -q '"lr":0.100000001' a.jsonl || fail "step 1's learning rate is not lr: $(head -2 a.jsonl | tail -1)"
	;;
out_of_memory)
	# parameters larger than any machine: a user error naming the size
	cp "$SRC/data/tiny.csv" .
	cat > huge.nnd <<NND
nnd 1;
dataset d = csv(path = "tiny.csv", label = "label");
def m(features: f32[B, 4]) -> f32[B, 4] {
  param w: f32[4, 4] = xavier_uniform();
  param h: f32[300000, 300000] = zeros();
  return features @ w + mean(h);
}
train t { data d; loss cross_entropy(m(features), labels); optimizer sgd(lr = 0.1); batch 8; }
NND
	# (AddressSanitizer's allocator aborts where malloc returns NULL)
	ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}allocator_may_return_null=1" \
		run 1 o.out "$NNDC" run huge.nnd -- train --steps 1
	has o.out.err 'error: out of memory: cannot allocate [0-9.]* GiB'
	;;
deep_defs)
	# 30 defs, each calling the one before inside an expression 200 deep:
	# within every per-def limit, too deep in all for lowering's recursion
	cp "$SRC/data/tiny.csv" .
	{
		echo 'nnd 1;'
		echo 'dataset d = csv(path = "tiny.csv", label = "label");'
		echo 'def f0(x: f32[B, 4]) -> f32[B, 4] { return x; }'
		for i in $(seq 1 30); do
			printf 'def f%d(x: f32[B, 4]) -> f32[B, 4] { return %sf%d(x)%s; }\n' $i \
				"$(printf '(%.0s' $(seq 200))" $((i - 1)) "$(printf ' + x)%.0s' $(seq 200))"
		done
		echo 'train t { data d; loss cross_entropy(f30(features), labels); optimizer sgd(lr = 0.1); batch 8; }'
	} >deep.nnd
	run 1 d.out "$NNDC" check deep.nnd
	has d.out.err '^deep.nnd:[0-9]*:[0-9]*: error: expressions nest too deeply through def calls'
	;;
batchnorm_rows)
	# a batchnorm over [N, C] cannot train on a step of one row (41 samples
	# in batches of 8 leave one): refused before the first step, naming the
	# batchnorm, instead of a NaN running variance and exit 0
	{ cat "$SRC/data/tiny.csv"; sed -n 2p "$SRC/data/tiny.csv"; } >d41.csv
	[ "$(wc -l <d41.csv)" = 42 ] || fail "d41.csv: $(wc -l <d41.csv) lines, expected a header and 41 rows"
	cat > bn.nnd <<NND
nnd 1;
dataset d = csv(path = "d41.csv", label = "label");
def m(features: f32[B, 4]) -> f32[B, 4] {
  param w: f32[4, 4] = xavier_uniform();
  return batchnorm(features @ w);
}
train t { data d; loss cross_entropy(m(features), labels); optimizer sgd(lr = 0.1); batch 8; eval d; }
NND
	run 1 a.out "$NNDC" run bn.nnd -- train
	has a.out.err 'bn.nnd:5:10: batchnorm needs at least 2 samples per train step for a variance, and the last batch of each epoch holds 1 (41 samples in batches of 8)'
	[ ! -s a.out ] || fail "printed before refusing: $(cat a.out)"
	run 0 b.out "$NNDC" run bn.nnd -- train --limit 40
	grep -q nan b.out && fail "NaN with 40 samples: $(cat b.out)"
	;;
emit_after)
	# --after's list of passes is the pass table's
	tiny_model
	run 1 a.out "$NNDC" emit tiny.nnd --stage ir --after bogus
	has a.out.err 'one of lower, shape, autodiff, optimizer, plans, rng, fuse, memplan'
	run 0 f.out "$NNDC" emit tiny.nnd --stage ir --after fuse
	;;
*) fail "unknown case $CASE" ;;
esac
echo "ok: $CASE"
