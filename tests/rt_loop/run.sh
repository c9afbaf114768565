#!/usr/bin/env bash
# run.sh PROGRAM WORKDIR CASE - runtime training-loop tests on fake_model
# (a hand-written compiled model, see fake_model.c).  One CTest case per CASE;
# each works in its own fresh WORKDIR.  Exit 0 pass, 1 fail.
set -u
P=$1; W=$2; CASE=$3
ST=$(cd "$(dirname "$0")" && pwd)/st_edit.py   # edits safetensors files
rm -rf "$W" && mkdir -p "$W" && cd "$W" || exit 1
"$P" gen-data train.csv 50 1 >/dev/null || exit 1
"$P" gen-data test.csv 20 2 >/dev/null || exit 1
export FAKE_TRAIN=$W/train.csv FAKE_EVAL=$W/test.csv
unset FAKE_LR FAKE_SCHED FAKE_BROKEN FAKE_RACY FAKE_NO_INFER

fail() { echo "FAIL [$CASE]: $*" >&2; exit 1; }
# run EXPECTED_RC OUTFILE ARGS...: stdout to OUTFILE, stderr to OUTFILE.err
run() {
	local want=$1 out=$2; shift 2
	"$P" "$@" >"$out" 2>"$out.err"
	local rc=$?
	[ "$rc" = "$want" ] || { cat "$out" "$out.err" >&2; fail "'$*' exited $rc, expected $want"; }
}
sha() { tail -n 1 "$1" | sed -n 's/^sha256 \([0-9a-f]\{64\}\)$/\1/p'; }
has() { grep -q -- "$2" "$1" || { cat "$1" >&2; fail "'$1' lacks '$2'"; }; }

case $CASE in
determinism)
	run 0 a train; run 0 b train
	[ -n "$(sha a)" ] || fail "no sha256 as the last line"
	cmp -s a b || fail "two runs print different results"
	[ "$(grep -c '^epoch [0-9]* train_loss [0-9.]* eval_loss [0-9.]* acc [0-9.]*$' a)" = 3 ] || fail "expected 3 epoch lines"
	run 0 c train --threads 3; cmp -s a c || fail "--threads changed the results"
	run 0 d train --seed 7; [ "$(sha a)" != "$(sha d)" ] || fail "--seed did not change the parameters"
	run 0 e train --seed=7; cmp -s d e || fail "--seed=7 and --seed 7 differ"
	run 0 f train --epochs 1; [ "$(grep -c '^epoch' f)" = 1 ] || fail "--epochs 1"
	# without an eval dataset, epoch lines carry the train loss only
	FAKE_EVAL= run 0 g train --epochs 1; has g '^epoch 1 train_loss [0-9.]*$'
	;;
resume_epoch_end | resume_mid_epoch)
	# 50 samples, batch 8: 7 steps per epoch, 21 in all
	[ "$CASE" = resume_epoch_end ] && S=7 || S=10
	run 0 full.out train --save full
	run 0 part train --steps $S --save ck
	run 0 rest train --resume ck --save res
	[ "$(sha full.out)" = "$(sha rest)" ] || fail "resumed run ends with other parameters"
	# the epoch lines of the two halves are those of the uninterrupted run
	cat part rest | grep '^epoch' >both; grep '^epoch' full.out >fullep
	cmp -s both fullep || { diff both fullep >&2; fail "epoch lines differ"; }
	cmp -s full/params.safetensors res/params.safetensors || fail "params.safetensors differ (state tensor?)"
	cmp -s full/train_state.safetensors res/train_state.safetensors || fail "train_state.safetensors differ"
	# --steps counts the steps before a resume: stop at 15 both ways
	run 0 s15 train --steps 15
	run 0 r15 train --resume ck --steps 15
	[ "$(sha s15)" = "$(sha r15)" ] || fail "--steps 15 after resume differs"
	# a checkpoint of a finished run resumes to the same end
	run 0 again train --resume full
	[ "$(sha again)" = "$(sha full.out)" ] || fail "resuming a finished run changed it"
	;;
steps0)
	run 0 z train --steps 0 --save init
	[ -s init/params.safetensors ] && [ -s init/train_state.safetensors ] || fail "no checkpoint written"
	grep -q '^epoch' z && fail "no epoch completed, yet an epoch line"
	run 0 z2 train --steps 0; cmp -s z z2 || fail "initial parameters differ"
	run 0 full train; run 0 r train --resume init
	[ "$(sha full)" = "$(sha r)" ] || fail "resume from step 0 differs"
	run 0 ev eval --weights init/params.safetensors; has ev '^eval_loss [0-9.]* acc [0-9.]*$'
	;;
eval)
	run 0 part train --steps 7 --save ck
	run 0 ev eval --weights ck/params.safetensors
	# the epoch-1 evaluation in training and eval --weights agree
	want=$(sed -n 's/^epoch 1 train_loss [0-9.]* //p' part)
	[ "$(cat ev)" = "$want" ] || fail "eval --weights printed '$(cat ev)', training printed '$want'"
	run 0 ev2 eval --weights ck/params.safetensors --data train; has ev2 '^eval_loss'
	run 1 ev3 eval --weights ck/params.safetensors --data nope; has ev3.err "no dataset 'nope'"
	run 1 ev4 eval; has ev4.err "weights"
	run 1 ev5 eval --weights missing.safetensors; has ev5.err "missing.safetensors: cannot open"
	;;
corrupt)
	run 0 part train --steps 10 --save ck
	cp -r ck good
	head -c 100 good/params.safetensors >ck/params.safetensors
	run 1 t1 train --resume ck; has t1.err 'params.safetensors: truncated'
	run 1 t2 eval --weights ck/params.safetensors; has t2.err 'truncated'
	cp good/params.safetensors ck/
	head -c 5 good/train_state.safetensors >ck/train_state.safetensors
	run 1 t3 train --resume ck; has t3.err 'train_state.safetensors: truncated'
	printf '\020\000\000\000\000\000\000\000{"a":"b"}garbage' >ck/train_state.safetensors
	run 1 t4 train --resume ck; has t4.err 'train_state.safetensors'
	# params of another checkpoint: the pair no longer belongs together
	cp good/train_state.safetensors ck/
	run 0 other train --steps 3 --save ck2
	cp ck2/params.safetensors ck/
	run 1 t5 train --resume ck; has t5.err 'does not belong'
	run 1 t6 train --resume nowhere; has t6.err 'nowhere/train_state.safetensors: cannot open'
	run 1 t7 train --resume good --seed 5; has t7.err 'used seed 42'
	run 1 t8 train --resume good --limit 20; has t8.err 'same --limit'
	;;
flags)
	run 1 f1 train --threads abc
	grep -qx "$(basename "$P"): error: --threads: expected a positive integer, found 'abc'" f1.err || { cat f1.err; fail "--threads message"; }
	run 1 f2 train --threads 0; has f2.err 'positive integer'
	run 1 f3 train --bogus 1; has f3.err "unknown option '--bogus'"
	run 1 f4 train --steps; has f4.err 'expects a value'
	run 1 f5 train --device cuda; has f5.err 'this program was built without CUDA kernels'
	run 1 f6 train --device tpu; has f6.err 'expected cpu or cuda'
	run 1 f7 train --seed -3; has f7.err 'unsigned'
	run 1 f8 train --train nope; has f8.err "no train block 'nope' (this program has: fake_linear)"
	run 1 f9 frobnicate; has f9.err "unknown command"
	run 1 f10 train extra; has f10.err "unexpected argument"
	run 0 h0 --help; has h0 'train'
	run 0 h1 train --help; has h1 '--resume'
	run 0 h2 eval --help; run 0 h3 infer --help; run 0 h4 info --help
	run 1 i1 infer --weights x --input y; has i1.err 'y: No such file'
	run 1 g1 train --debug-digests; has g1.err 'needs --log'
	run 1 g2 train --debug-digests=1 --log l.jsonl; has g2.err 'takes no value'
	run 0 h5 logdiff --help; has h5 'logdiff A.jsonl B.jsonl'
	run 0 info info; has info 'stream 0: lin.w'; has info 'plan train'
	run 0 lim train --limit 20 --epochs 1; has lim '^sha256'
	run 0 dev train --device cpu --threads=2 --epochs=1; has dev '^sha256'
	;;
errors)
	printf 'x0,x1,x2,x3,y\n3e38,3e38,3e38,3e38,1\n1,2,3,4,0\n' >huge.csv
	FAKE_TRAIN=$W/huge.csv run 1 n1 train; has n1.err 'loss became NaN at epoch 1 step 1 (batch of samples'
	FAKE_LR=1e38 run 1 n2 train; has n2.err 'loss became NaN'
	FAKE_BROKEN=1 run 2 b1 info; has b1.err 'internal error: manifest line [0-9]*:'
	FAKE_TRAIN=$W/absent.csv run 1 d1 train; has d1.err 'absent.csv'
	printf 'x0,x1,y\n1,2,0\n' >narrow.csv
	FAKE_TRAIN=$W/narrow.csv run 1 d2 train; has d2.err 'narrow.csv: the program was compiled for features f32\[N, 4\]'
	;;
log)
	run 0 a train --log run.jsonl
	[ "$(wc -l <run.jsonl)" = 23 ] || fail "expected 1 + 21 + 1 log lines"
	head -n 1 run.jsonl | grep -q '"run":{"compiler":"nndc 0.1.0"' || fail "first line is not the run manifest"
	head -n 1 run.jsonl | grep -q '"plans":\[{"graph":"train","node":3,"op":"matmul"' || fail "plans missing"
	head -n 1 run.jsonl | grep -q '"sha256":"[0-9a-f]\{64\}"' || fail "dataset digests missing"
	sed -n 2p run.jsonl | grep -q '^{"step":1,"epoch":1,"loss":[0-9.e-]*,"loss_bits":"0x[0-9a-f]\{8\}","lr":[0-9.e-]*}$' || fail "step line: $(sed -n 2p run.jsonl)"
	tail -n 1 run.jsonl | grep -q "\"params_sha256\":\"$(sha a)\"" || fail "final digest differs from stdout"
	run 0 b train --log run2.jsonl
	cmp -s run.jsonl run2.jsonl || fail "logs of two runs differ"
	run 1 c train --log /nonexistent-dir/x.jsonl; has c.err 'cannot create the log'
	;;
threads)
	# the steps split rows and gradient elements over the pool: the bits
	# never depend on how many threads share them
	run 0 t1 train --threads 1 --log l1.jsonl; run 0 t2 train --threads 2 --log l2.jsonl
	run 0 t3 train --threads 3 --log l3.jsonl; run 0 t5 train --threads 5
	cmp -s t1 t2 && cmp -s t1 t3 && cmp -s t1 t5 || fail "results depend on --threads"
	cmp -s l1.jsonl l2.jsonl && cmp -s l1.jsonl l3.jsonl || fail "logs depend on --threads"
	# node by node too
	run 0 d1 train --threads 1 --log n1.jsonl --debug-digests
	run 0 d3 train --threads 3 --log n3.jsonl --debug-digests
	cmp -s t1 d1 || fail "--debug-digests changed the results"
	sed -n 2p n1.jsonl | grep -q '"nodes":{"0":"[0-9a-f]\{16\}","1":.*"12":"[0-9a-f]\{16\}"}}$' || fail "node digests: $(sed -n 2p n1.jsonl)"
	sed -n 2p n1.jsonl | grep -q '"params_sha256":"[0-9a-f]\{64\}"' || fail "no params_sha256 on a debug step line"
	cmp -s n1.jsonl n3.jsonl || fail "node digests depend on --threads"
	run 0 b bench-pool 2 2000; has b 'us per call'
	;;
verify)
	run 0 v1 verify 1,2,3 3
	has v1 '^same bits [0-9a-f]\{64\}$'
	has v1 '4 runs (threads 1, 1, 2, 3), 3 steps each, 13 node digests per step'
	# the same steps as train --steps 3
	run 0 s3 train --steps 3
	[ "$(sed -n 's/^same bits //p' v1)" = "$(sha s3)" ] || fail "verify's digest differs from train --steps 3"
	run 0 v2 verify 2 25; has v2 '2 runs (threads 2, 2), 21 steps each'; has v2 'training ends after 21 steps'
	# planted nondeterminism: partial sums of 1e8, 1, ..., -1e8 per thread
	FAKE_RACY=1 run 1 r1 verify 1,2,3 3
	grep -qx 'differ: step 1, graph train, node %13 (racy_sum) at fake.racy: run at 1 threads vs run at 2 threads' r1 \
		|| { cat r1 >&2; fail "racy sum not named"; }
	has r1 '^  digest [0-9a-f]\{16\} vs [0-9a-f]\{16\}; loss_bits 0x'
	run 1 e1 verify 0 3; has e1.err 'thread counts must be positive'
	;;
logdiff)
	run 0 a train --log a.jsonl; run 0 b train --log b.jsonl --threads 2
	run 0 s logdiff a.jsonl b.jsonl; has s '^same: 21 steps compared$'
	FAKE_LR=0.2 run 0 c train --log c.jsonl
	run 1 d logdiff a.jsonl c.jsonl
	# named at the first step, where the learning rates differ (the
	# losses differ only from step 2)
	grep -qx 'differ: step 1, learning rate: a.jsonl vs c.jsonl' d || { cat d >&2; fail "lr change not named at step 1"; }
	has d '^  lr 0.0500000007 vs 0.100000001$'
	# a resumed run's log covers the later steps only
	run 0 p train --steps 10 --save ck; run 0 r train --resume ck --log r.jsonl
	run 0 s2 logdiff a.jsonl r.jsonl; has s2 '^same: 11 steps compared$'
	# node by node: the racy node is the first that differs
	run 0 n1 train --log n1.jsonl --debug-digests
	run 0 n1b train --log n1b.jsonl --debug-digests --threads 2
	run 0 s3 logdiff n1.jsonl n1b.jsonl; has s3 '^same: 21 steps compared, node by node$'
	FAKE_RACY=1 run 0 n2 train --log n2.jsonl --debug-digests --threads 1
	FAKE_RACY=1 run 0 n3 train --log n3.jsonl --debug-digests --threads 2
	FAKE_RACY=1 run 1 d2 logdiff n2.jsonl n3.jsonl
	grep -qx 'differ: step 1, graph train, node %13 (racy_sum) at fake.racy: n2.jsonl vs n3.jsonl' d2 \
		|| { cat d2 >&2; fail "racy node not named"; }
	# another learning rate: the inputs and the forward pass agree, the
	# first update differs
	FAKE_LR=0.2 run 0 n4 train --log n4.jsonl --debug-digests
	run 1 d3 logdiff n1.jsonl n4.jsonl; has d3 '^differ: step 1, graph train, node %10 (sgd_update) at lin.w: n1.jsonl vs n4.jsonl$'
	run 0 n5 train --log n5.jsonl --debug-digests --seed 9
	run 1 d4 logdiff n1.jsonl n5.jsonl; has d4 '^differ: step 1, graph train, node %0 (input) at x: '
	run 1 e1 logdiff a.jsonl; has e1.err 'expected two log files'
	run 1 e2 logdiff a.jsonl nope.jsonl; has e2.err 'nope.jsonl: cannot open'
	echo '{"step":"x"}' >bad.jsonl
	run 1 e3 logdiff a.jsonl bad.jsonl; has e3.err 'bad.jsonl:1: expected a step line'
	;;
infer)
	run 0 t train --save ck
	run 0 i1 infer --weights ck/params.safetensors --input test.csv --batch 1
	run 0 i7 infer --weights ck/params.safetensors --input test.csv --batch 7 --threads 3
	run 0 i8 infer --weights ck/params.safetensors --input test.csv
	run 0 i50 infer --weights ck/params.safetensors --input test.csv --batch 50
	[ "$(wc -l <i1)" = 21 ] || fail "expected 20 result lines and the digest"
	[ -n "$(sha i1)" ] || fail "no sha256 line"
	cmp -s i1 i7 && cmp -s i1 i8 && cmp -s i1 i50 || fail "infer results depend on --batch"
	head -n 1 i1 | grep -q '^-\?[0-9.e-]* -\?[0-9.e-]* -\?[0-9.e-]*$' || fail "result line: $(head -n 1 i1)"
	# the label column may be absent; --output
	cut -d, -f1-4 test.csv >feat.csv
	run 0 o infer --weights ck/params.safetensors --input feat.csv --output out.txt
	cmp -s out.txt i1 || fail "--output or a CSV without labels differs"
	[ "$(cat o)" = "$(tail -n 1 i1)" ] || fail "with --output, stdout holds the digest"
	run 1 e1 infer --weights ck/params.safetensors --input absent.csv; has e1.err 'absent.csv: No such file'
	cut -d, -f1-3 test.csv >narrow.csv
	run 1 e2 infer --weights ck/params.safetensors --input narrow.csv
	has e2.err 'narrow.csv: the program was compiled for features f32\[N, 4\], but the file holds f32\[N, 3\]'
	FAKE_NO_INFER=1 run 1 e3 infer --weights ck/params.safetensors --input test.csv; has e3.err 'has no infer graph'
	run 1 e4 infer --input test.csv; has e4.err 'weights'
	run 1 e5 infer --weights ck/params.safetensors --input test.csv --batch 0; has e5.err 'positive integer'
	;;
safetensors)
	# the reader accepts only well-formed files: the tensors cover the data
	# exactly, no key twice, integers written as integers (eval and resume)
	command -v python3 >/dev/null || { echo "skipped: no python3"; exit 77; }
	run 0 part train --steps 10 --save ck
	run 0 ev0 eval --weights ck/params.safetensors
	bad() {   # bad NAME MESSAGE EDIT...: the edited params file is refused by eval and resume
		local name=$1 msg=$2; shift 2
		python3 "$ST" ck/params.safetensors $name.safetensors "$@" || fail "st_edit.py $*"
		run 1 $name eval --weights $name.safetensors
		grep -qF -- "$(basename "$P"): error: $name.safetensors: $msg" $name.err || { cat $name.err >&2; fail "$name: expected '$msg'"; }
		rm -rf ck_$name && cp -r ck ck_$name && cp $name.safetensors ck_$name/params.safetensors
		run 1 $name.r train --resume ck_$name
		grep -qF -- "ck_$name/params.safetensors: $msg" $name.r.err || { cat $name.r.err >&2; fail "$name (resume): expected '$msg'"; }
	}
	# lin.w [0,48], lin.b [48,60], lin.count [60,64]
	bad overlap "tensor 'lin.w' (data_offsets [0, 48]) overlaps tensor 'lin.b' (data_offsets [0, 12])" \
		sub '"data_offsets":[48,60]' '"data_offsets":[0,12]'
	bad hole "data bytes 60 to 64 belong to no tensor (a hole before tensor 'lin.count')" \
		sub '"data_offsets":[60,64]' '"data_offsets":[64,68]' append 4
	bad trailing "the last 4 bytes of the data belong to no tensor (after tensor 'lin.count', which ends at byte 64)" append 4
	bad dup "tensor 'lin.b' appears twice in the header" \
		sub '"lin.b":{' '"lin.b":{"dtype":"F32","shape":[3],"data_offsets":[48,60]},"lin.b":{'
	bad dupkey "tensor 'lin.b': key \"shape\" appears twice" sub '"shape":[3],' '"shape":[3],"shape":[3],'
	bad dupmeta "__metadata__: key \"format\" appears twice" sub '"format":"pt"' '"format":"pt","format":"pt"'
	bad float "tensor 'lin.count': data_offsets: '64.0' is not an integer" sub '[60,64]' '[60,64.0]'
	bad expo "tensor 'lin.count': data_offsets: '6e1' is not an integer" sub '[60,64]' '[6e1,64]'
	bad fshape "tensor 'lin.b': shape: '3.0' is not an integer" sub '"shape":[3]' '"shape":[3.0]'
	bad negative "tensor 'lin.b': data_offsets: '-48' is not an integer" sub '[48,60]' '[-48,60]'
	bad metanum "__metadata__ \"step\" is not a string" sub '"step":"10"' '"step":10'
	bad after "the safetensors header has bytes after its JSON object" sub '"format":"pt"}}' '"format":"pt"}}x'
	bad span "tensor 'lin.b': data_offsets span 8 bytes, its shape needs 12" sub '[48,60]' '[48,56]' sub '[60,64]' '[56,64]' append 4
	# the good file, rewritten the same way, still loads
	python3 "$ST" ck/params.safetensors same.safetensors || fail "st_edit.py"
	run 0 ev1 eval --weights same.safetensors
	cmp -s ev0 ev1 || fail "a rewritten file evaluates differently"
	;;
state_integrity)
	# train_state.safetensors carries state_sha256 over its metadata and
	# the opt bytes; the position fields must agree with each other
	command -v python3 >/dev/null || { echo "skipped: no python3"; exit 77; }
	run 0 part train --steps 10 --save ck   # 7 batches per epoch: epoch 1, pos 3
	run 0 full train
	edit() {   # edit NAME EDIT...: a copy of ck with an edited train state
		local name=$1; shift
		rm -rf $name && cp -r ck $name
		python3 "$ST" ck/train_state.safetensors $name/train_state.safetensors "$@" || fail "st_edit.py $*"
	}
	digest_msg='train_state.safetensors: the contents do not match state_sha256'
	for kv in pos=4 step=11 epoch=0 seed=43 epoch_samples=32 samples=49 epoch_loss_sum_bits=0x4033420e68000001 train=other; do
		edit e_${kv%%=*} meta ${kv%%=*} ${kv#*=}
		run 1 e_${kv%%=*}.out train --resume e_${kv%%=*}
		has e_${kv%%=*}.out.err "e_${kv%%=*}/$digest_msg"
	done
	edit flip flip 5
	run 1 flip.out train --resume flip; has flip.out.err "flip/$digest_msg"
	# the seed is read first (main.c): the digest is checked there too
	run 1 seed.out train --resume e_seed --seed 43; has seed.out.err "e_seed/$digest_msg"
	# edits that keep the digest right: the invariants catch them
	edit r_pos meta pos 4 resign
	run 1 r_pos.out train --resume r_pos
	has r_pos.out.err 'r_pos/train_state.safetensors: inconsistent position: step 10 is not epoch 1 \* 7 batches per epoch + batch 4'
	edit r_step meta step 9 resign
	run 1 r_step.out train --resume r_step; has r_step.out.err 'inconsistent position: step 9 is not'
	edit r_es meta epoch_samples 20 resign
	run 1 r_es.out train --resume r_es
	has r_es.out.err 'r_es/train_state.safetensors: inconsistent position: 20 samples into the epoch after 3 batches of 8'
	edit r_nan meta epoch_loss_sum_bits 0x7ff8000000000000 resign
	run 1 r_nan.out train --resume r_nan; has r_nan.out.err 'epoch_loss_sum_bits 0x7ff8000000000000 is not the loss sum of 3 batches'
	edit r_ver meta state_version 1 resign
	run 1 r_ver.out train --resume r_ver
	has r_ver.out.err 'r_ver/train_state.safetensors: train state version 1; this program resumes version 2 only'
	edit r_par meta params_sha256 0000000000000000000000000000000000000000000000000000000000000000 resign
	run 1 r_par.out train --resume r_par; has r_par.out.err 'r_par/params.safetensors does not belong to r_par/train_state.safetensors'
	edit r_hex meta params_sha256 ../../etc/passwd resign
	run 1 r_hex.out train --resume r_hex; has r_hex.out.err "bad params_sha256 '../../etc/passwd'"
	edit r_cu meta cudnn 2 resign
	run 1 r_cu.out train --resume r_cu; has r_cu.out.err '"cudnn": expected 0 or 1'
	# a run whose convolutions cuDNN computed goes on with cuDNN only
	edit r_cu1 meta cudnn 1 resign
	run 1 r_cu1.out train --resume r_cu1
	has r_cu1.out.err "r_cu1/train_state.safetensors: the saved run computed its convolutions with cuDNN, this run with nnd's kernels"
	# at an epoch's end the running sums are zero
	run 0 end train --steps 7 --save ck7
	rm -rf r_sum && cp -r ck7 r_sum
	python3 "$ST" ck7/train_state.safetensors r_sum/train_state.safetensors meta epoch_loss_sum_bits 0x3ff0000000000000 resign || fail "st_edit.py"
	run 1 r_sum.out train --resume r_sum; has r_sum.out.err 'is not the loss sum of 0 batches'
	# a re-signed but otherwise unchanged state still resumes to the same end
	edit same resign
	run 0 same.out train --resume same
	[ "$(sha same.out)" = "$(sha full)" ] || fail "an unchanged, re-signed state resumes to other bits"
	;;
identity)
	# a resume refuses what changes the bits (other reduction plans, other
	# training data) and allows what does not (threads, --steps, --epochs)
	run 0 part train --steps 10 --save ck
	run 0 full train --threads 1
	FAKE_RACY=1 run 1 racy train --resume ck
	has racy.err 'ck/train_state.safetensors: saved by a program built with other reduction plans: '
	has racy.err 'train 13 sum fake.racy racy'
	cp train.csv train.csv.orig
	"$P" gen-data train.csv 50 9 >/dev/null || fail "gen-data"
	run 1 data train --resume ck
	has data.err "ck/train_state.safetensors: the saved run trained on other data: $W/train.csv has sha256 [0-9a-f]\{64\}, the saved run's file had [0-9a-f]\{64\}"
	cp train.csv.orig train.csv
	# another eval set is not training data
	"$P" gen-data test2.csv 20 5 >/dev/null || fail "gen-data"
	FAKE_EVAL=$W/test2.csv run 0 ev train --resume ck --threads 2
	[ "$(sha ev)" = "$(sha full)" ] || fail "resume with another eval set changed the parameters"
	run 0 t3 train --resume ck --threads 3
	[ "$(sha t3)" = "$(sha full)" ] || fail "resume at 3 threads differs"
	run 0 s15 train --steps 15 --threads 2
	run 0 r15 train --resume ck --steps 15 --threads 2
	[ "$(sha r15)" = "$(sha s15)" ] || fail "resume with --steps differs"
	run 0 e4 train --epochs 4
	run 0 r4 train --resume ck --epochs 4
	[ "$(sha r4)" = "$(sha e4)" ] || fail "resume with --epochs differs"
	# permissions: 0666 less the umask, as for any file the program makes
	for u in 022 077 002; do
		(umask $u && "$P" train --steps 3 --save m$u >/dev/null 2>&1) || fail "save with umask $u"
		want=$(printf '%o' $((0666 & ~0$u)))
		for f in params.safetensors train_state.safetensors; do
			[ "$(stat -c %a m$u/$f)" = "$want" ] || fail "umask $u: $f has mode $(stat -c %a m$u/$f), expected $want"
		done
	done
	# a completed save leaves the two files and nothing else
	[ "$(ls -A ck | tr '\n' ' ')" = "params.safetensors train_state.safetensors " ] || fail "ck holds: $(ls -A ck)"
	;;
*) fail "unknown case" ;;
esac
echo "PASS [$CASE]"
