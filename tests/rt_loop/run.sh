#!/usr/bin/env bash
# run.sh PROGRAM WORKDIR CASE - runtime training-loop tests on fake_model
# (a hand-written compiled model, see fake_model.c).  One CTest case per CASE;
# each works in its own fresh WORKDIR.  Exit 0 pass, 1 fail.
set -u
P=$1; W=$2; CASE=$3
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
	grep -qx 'differ: step 2, loss: a.jsonl vs c.jsonl' d || { cat d >&2; fail "lr change not found at step 2"; }
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
*) fail "unknown case" ;;
esac
echo "PASS [$CASE]"
