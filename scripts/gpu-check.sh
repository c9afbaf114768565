#!/usr/bin/env bash
# gpu-check.sh - the CUDA backend on a machine with an NVIDIA GPU, in one
# run of at most ~8 minutes (docs/cuda.md):
#   1. builds nnd (Release, build-gpu/) with what the machine has (no network)
#   2. runs the CUDA tests (ctest -L cuda: NVRTC/PTX checks, host emulation,
#      CPU == GPU, run to run, kernel cache, out of memory)
#   3. trains mlp_fashion and cnn_fashion for a bounded number of steps on
#      the CPU and twice on the GPU and compares their sha256
#   4. cnn_fashion with --cudnn twice: the same bits run to run, its manifest;
#      the register-tiled matmul (NND_CUDA_MM=reg) beside the default
#      shared-memory one: CPU bits, their speed
#   5. throughput: samples/s on CPU and GPU, PyTorch on the same GPU when
#      python3 has torch with CUDA; nnd's matmul kernels (NND_CUDA_PROFILE)
#      against cuBLAS SGEMM at the same shapes
# Everything goes to stdout and, when $OUT is set, to $OUT/gpu-check.txt.
# Exit 0 when every check passed, 1 otherwise (the summary says which).
# --part checks runs 1-4 without the timings, --part speed the trainings of
# 3 and the timings (two calls, so that a lost machine loses half).
#   scripts/gpu-check.sh [--steps N] [--part checks|speed|all]
set -u
cd "$(dirname "${BASH_SOURCE[0]}")/.." || exit 1
ROOT=$(pwd)
STEPS=50
PART=all
while [ $# -gt 0 ]; do
	case $1 in
	--steps) STEPS=$2; shift 2 ;;
	--part) PART=$2; shift 2 ;;
	*) echo "gpu-check.sh: unknown argument '$1' (--steps N, --part checks|speed|all)" >&2; exit 2 ;;
	esac
done
case $PART in checks|speed|all) ;; *) echo "gpu-check.sh: --part $PART: expected checks, speed or all" >&2; exit 2 ;; esac
checks() { [ "$PART" != speed ]; }
speed() { [ "$PART" != checks ]; }
if [ -n "${OUT:-}" ]; then
	mkdir -p "$OUT"
	exec > >(tee "$OUT/gpu-check.txt") 2>&1
fi
T0=$(date +%s)
# one hung run must not take the whole lease with it
TO="timeout 150"
FAILS=()
section() { echo; echo "=== $* [$(( $(date +%s) - T0 )) s]"; }
bad() { echo "FAIL: $*"; FAILS+=("$*"); }
sha() { sed -n 's/^sha256 \([0-9a-f]\{64\}\)$/\1/p' "$1" | tail -n 1; }
sps() { sed -n 's/^samples_per_s \([0-9]*\).*/\1/p' "$1" | tail -n 1; }
finish() {
	section "summary"
	if [ ${#FAILS[@]} -eq 0 ]; then echo "gpu-check: all checks passed"; exit 0; fi
	echo "gpu-check: ${#FAILS[@]} check(s) failed:"
	printf '  - %s\n' "${FAILS[@]}"
	exit 1
}

section "machine"
uname -a
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>/dev/null || echo "(no nvidia-smi)"
ls /usr/local/cuda/lib64/libnvrtc.so* 2>/dev/null | head -n 2 || echo "(no NVRTC under /usr/local/cuda)"
ldconfig -p 2>/dev/null | grep -m1 'libcuda\.so\.1' || echo "(libcuda.so.1 not in the linker cache)"
nproc

section "build"
need=()
for t in cmake flex bison cc c++; do command -v $t >/dev/null 2>&1 || need+=("$t"); done
ls /usr/bin/llvm-config* /usr/lib/llvm-*/bin/llvm-config >/dev/null 2>&1 || need+=(llvm-config)
B=$ROOT/build-gpu
mkdir -p "$B"
BUNDLE=
NNDC=
if [ ${#need[@]} -gt 0 ] && [ -x "$ROOT/gpu-bundle/mlp_fashion" ]; then
	# a machine that cannot build nnd (no LLVM/flex/bison, no network): the
	# programs scripts/gpu-bundle.sh built elsewhere, their libraries and data
	BUNDLE=$ROOT/gpu-bundle
	echo "missing build tools: ${need[*]}; using the prebuilt programs of gpu-bundle/ (revision $(cat "$BUNDLE/REVISION" 2>/dev/null))"
	export LD_LIBRARY_PATH=$BUNDLE/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
	if [ ! -f /usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz ]; then
		mkdir -p /usr/share/datasets 2>/dev/null && ln -sfn "$BUNDLE/data" /usr/share/datasets/fashion-mnist ||
			echo "(cannot link the bundle's data to /usr/share/datasets/fashion-mnist)"
	fi
else
	if [ ${#need[@]} -gt 0 ]; then
		echo "missing build tools: ${need[*]}; trying scripts/deps.sh (needs the network)"
		bash scripts/deps.sh || { bad "build dependencies missing (${need[*]}), scripts/deps.sh could not install them and there is no gpu-bundle/ (scripts/gpu-bundle.sh)"; finish; }
	fi
	if ! { cmake -S . -B "$B" -DCMAKE_BUILD_TYPE=Release >"$B/cmake.log" 2>&1 &&
	       cmake --build "$B" -j"$(nproc)" --target nndc nnd_cuda_compile_test >"$B/build.log" 2>&1; }; then
		tail -n 40 "$B/cmake.log" "$B/build.log" 2>/dev/null
		bad "build failed"
		finish
	fi
	NNDC=$B/nndc
	"$NNDC" --version
fi
# NVRTC and cuDNN: the system's, else the ones PyTorch's wheels carry
# (site-packages/nvidia/*/lib; the CUDA 13 wheels keep them under cu13/)
wheel_lib() {
	local site
	for site in $(python3 -c 'import site, sys; print(" ".join(site.getsitepackages() + [site.getusersitepackages()]))' 2>/dev/null); do
		find "$site/nvidia" -name "$1" 2>/dev/null | sort | tail -n 1
	done | head -n 1
}
if ! ldconfig -p 2>/dev/null | grep -q 'libnvrtc\.so' && ! ls /usr/local/cuda/lib64/libnvrtc.so* >/dev/null 2>&1 && [ -z "${NND_NVRTC:-}" ]; then
	p=$(wheel_lib 'libnvrtc.so.1[0-9]*')
	if [ -n "$p" ]; then export NND_NVRTC=$p; export LD_LIBRARY_PATH=$(dirname "$p")${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}; fi
fi
echo "NVRTC: ${NND_NVRTC:-the system one}"
if ! ldconfig -p 2>/dev/null | grep -q 'libcudnn\.so\.[89]' && [ ! -e /usr/local/cuda/lib64/libcudnn.so.9 ] && [ -z "${NND_CUDNN:-}" ]; then
	p=$(wheel_lib 'libcudnn.so.9')
	if [ -n "$p" ]; then export NND_CUDNN=$p; export LD_LIBRARY_PATH=$(dirname "$p")${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}; fi
fi
echo "cuDNN: ${NND_CUDNN:-the system one, if any}"
if ! ldconfig -p 2>/dev/null | grep -q 'libcublas\.so' && ! ls /usr/local/cuda/lib64/libcublas.so* >/dev/null 2>&1; then
	p=$(wheel_lib 'libcublas.so.1[0-9]*')   # for bench/cublas_sgemm.c only
	[ -n "$p" ] && export LD_LIBRARY_PATH=${LD_LIBRARY_PATH:-}:$(dirname "$p")
fi
export NND_CACHE_DIR=$B/kernel-cache
rm -rf "$NND_CACHE_DIR"

# program NAME MODEL [reg]: ./NAME built from MODEL (bench/ or examples/),
# or the bundle's copy; reg: with the register-tiled matmul (NND_CUDA_MM)
program() {
	if [ -n "$BUNDLE" ]; then
		cp "$BUNDLE/$(basename "$2" .nnd)${3:+.$3}" "$1"
	else
		NND_CUDA_MM=${3:-} "$NNDC" build "$2" -o "$1" >build.$1.log 2>&1 || { cat build.$1.log; return 1; }
	fi
}

if ! checks; then
	:
elif [ -n "$BUNDLE" ]; then
	section "ctest -L cuda: skipped (no build on this machine); the checks below run the bundle's programs"
else
	section "ctest -L cuda"
	ctest --test-dir "$B" -L cuda -j 4 --output-on-failure --timeout 300 >"$B/ctest.log" 2>&1
	rc=$?
	tail -n 40 "$B/ctest.log"
	[ $rc = 0 ] || bad "ctest -L cuda: $(grep -E '^\s+[0-9]+ - cuda' "$B/ctest.log" | grep -v Skipped | tr -s ' \n' ' ')"
	grep -e '^skipped:' "$B/Testing/Temporary/LastTest.log" 2>/dev/null | sort | uniq -c | head -n 8
fi

FM=/usr/share/datasets/fashion-mnist
if [ ! -f $FM/train-images-idx3-ubyte.gz ]; then
	bad "Fashion-MNIST not at $FM: the training comparisons cannot run"
	finish
fi
W=$B/gpu-check
rm -rf "$W" && mkdir -p "$W" && cd "$W" || exit 1

train_pair() {   # train_pair NAME MODEL ARGS...: CPU once, GPU twice, same sha256
	local name=$1 model=$2; shift 2
	section "$name: $* (CPU, GPU, GPU)"
	program "$name" "$ROOT/examples/$model.nnd" || { bad "$name: build"; return; }
	$TO ./"$name" train "$@" >$name.cpu 2>$name.cpu.err || { cat $name.cpu.err; bad "$name: CPU run"; return; }
	$TO ./"$name" train "$@" --device cuda >$name.gpu1 2>$name.gpu1.err || { cat $name.gpu1.err; bad "$name: GPU run"; return; }
	$TO ./"$name" train "$@" --device cuda >$name.gpu2 2>$name.gpu2.err || { cat $name.gpu2.err; bad "$name: second GPU run"; return; }
	grep -h '^cuda:' $name.gpu1.err $name.gpu2.err
	echo "cpu   sha256 $(sha $name.cpu)   samples_per_s $(sps $name.cpu.err)"
	echo "gpu 1 sha256 $(sha $name.gpu1)   samples_per_s $(sps $name.gpu1.err)"
	echo "gpu 2 sha256 $(sha $name.gpu2)   samples_per_s $(sps $name.gpu2.err)"
	[ -n "$(sha $name.cpu)" ] || bad "$name: no sha256 from the CPU run"
	if [ "$(sha $name.gpu1)" != "$(sha $name.gpu2)" ]; then bad "$name: GPU not the same bits run to run"; fi
	if [ "$(sha $name.cpu)" = "$(sha $name.gpu1)" ]; then
		echo "$name: CPU == GPU == GPU (same bits)"
	else
		bad "$name: CPU and GPU differ"
		echo "first differing node (2 steps, node digests):"
		$TO ./"$name" train --steps 2 --limit 256 --log c.jsonl --debug-digests >/dev/null 2>&1
		$TO ./"$name" train --steps 2 --limit 256 --log g.jsonl --debug-digests --device cuda >/dev/null 2>&1
		$TO ./"$name" logdiff c.jsonl g.jsonl
	fi
}

train_pair mlp mlp_fashion --steps "$STEPS" --limit 20000
train_pair cnn cnn_fashion --steps "$STEPS" --limit 20000

if checks && [ -n "$BUNDLE" ]; then
	# what ctest's gpu_every_op and gpu_errors check, with the bundle's
	# programs: every op, both train blocks, three plans, CPU == GPU; the
	# out-of-memory message.  Their data path is the build machine's.
	T=$(cat "$BUNDLE/TESTS_DIR" 2>/dev/null)
	if [ -n "$T" ] && [ ! -e "$T/data/tiny.csv" ]; then
		mkdir -p "$T/e2e" 2>/dev/null && ln -sfn "$ROOT/tests/data" "$T/data" || echo "(cannot link $T/data)"
	fi
	section "every op, three plans (and seq with block reductions), both train blocks: CPU == GPU (the bundle's programs)"
	for plan in seq tree3 blocked4 block; do
		cp "$BUNDLE/every_op.$plan" every.$plan 2>/dev/null || { bad "every_op.$plan missing from the bundle"; continue; }
		for t in every every_sgd; do
			if ! $TO ./every.$plan train --train $t >ev.cpu 2>ev.cpu.err || ! $TO ./every.$plan train --train $t --device cuda >ev.gpu 2>ev.gpu.err; then
				cat ev.cpu.err ev.gpu.err | tail -n 5; bad "every_op $t $plan: a run failed"; continue
			fi
			if [ -n "$(sha ev.cpu)" ] && [ "$(sha ev.cpu)" = "$(sha ev.gpu)" ]; then
				echo "every_op $t $plan: CPU == GPU $(sha ev.cpu)"
			else
				bad "every_op $t $plan: cpu $(sha ev.cpu), gpu $(sha ev.gpu)"
				$TO ./every.$plan train --train $t --log c.jsonl --debug-digests >/dev/null 2>&1
				$TO ./every.$plan train --train $t --log g.jsonl --debug-digests --device cuda >/dev/null 2>&1
				$TO ./every.$plan logdiff c.jsonl g.jsonl
			fi
		done
	done
	section "the op models of tests/grad, 2 epochs: CPU == GPU (the bundle's programs)"
	for g in "$BUNDLE"/grad/g_*; do
		m=$(basename "$g")
		if ! $TO "$g" train --epochs 2 >op.cpu 2>op.cpu.err || ! $TO "$g" train --epochs 2 --device cuda >op.gpu 2>op.gpu.err; then
			tail -n 3 op.cpu.err op.gpu.err; bad "$m: a run failed"; continue
		fi
		if [ -n "$(sha op.cpu)" ] && [ "$(sha op.cpu)" = "$(sha op.gpu)" ]; then echo "$m: CPU == GPU $(sha op.cpu)"
		else bad "$m: cpu $(sha op.cpu), gpu $(sha op.gpu)"; fi
	done
	section "labels past the classes: the GPU names the CPU's first bad row"
	cp "$BUNDLE/bad_label" . && $TO ./bad_label train >bl.cpu 2>bl.cpu.err; $TO ./bad_label train --device cuda >bl.gpu 2>bl.gpu.err
	echo "cpu: $(tail -n 1 bl.cpu.err)"; echo "gpu: $(tail -n 1 bl.gpu.err)"
	grep -q 'label 2 in row' bl.cpu.err && [ "$(grep -o 'label .*' bl.cpu.err)" = "$(grep -o 'label .*' bl.gpu.err)" ] ||
		bad "bad label: the GPU's message differs from the CPU's"
	section "out of device memory: the message"
	NND_TEST_CUDA_EXTRA_BYTES=400000000000 $TO ./every.seq train --device cuda >oom.out 2>oom.err
	rc=$?
	cat oom.err
	[ $rc = 1 ] && grep -q -e '--device cuda: out of device memory: cannot allocate [0-9]* bytes' oom.err ||
		bad "out of memory: exit $rc, unclear message"
fi

section "cnn --cudnn: pinned deterministic cuDNN convolutions (GPU run to run; not the CPU's bits)"
if $TO ./cnn train --steps "$STEPS" --limit 20000 --device cuda --cudnn --log cnn.dnn1.jsonl >cnn.dnn1 2>cnn.dnn1.err &&
   $TO ./cnn train --steps "$STEPS" --limit 20000 --device cuda --cudnn >cnn.dnn2 2>cnn.dnn2.err; then
	grep -h -e '^cuda:' cnn.dnn1.err
	echo "cudnn 1 sha256 $(sha cnn.dnn1)   samples_per_s $(sps cnn.dnn1.err)"
	echo "cudnn 2 sha256 $(sha cnn.dnn2)   samples_per_s $(sps cnn.dnn2.err)"
	grep -h ' acc ' cnn.cpu cnn.dnn1 | sed 's/^/  /'
	[ "$(sha cnn.dnn1)" = "$(sha cnn.dnn2)" ] && echo "cnn --cudnn: GPU == GPU (same bits)" || bad "cnn --cudnn: not the same bits run to run"
	head -n 1 cnn.dnn1.jsonl | python3 -c 'import json,sys; c=json.loads(sys.stdin.readline())["run"].get("cudnn",{}); print("manifest cudnn", c.get("version"), c.get("math"), sorted({(x["kind"], x["algo"]) for x in c.get("convolutions",[])}))' 2>/dev/null
	if speed; then
		$TO ./cnn train --steps 300 --device cuda --cudnn >cnn.dnnlong 2>cnn.dnnlong.err || bad "cnn --cudnn 300 steps"
		echo "cnn --cudnn 300 steps: $(sps cnn.dnnlong.err) samples/s"
		NND_CUDA_PROFILE=1 $TO ./cnn train --steps 20 --device cuda --cudnn >/dev/null 2>cnn.dnnprof.err && grep '^cuda profile' cnn.dnnprof.err | head -n 8
	fi
elif grep -q 'no cuDNN' cnn.dnn1.err; then
	echo "no cuDNN on this machine: $(head -n 1 cnn.dnn1.err)"
else
	cat cnn.dnn1.err cnn.dnn2.err 2>/dev/null | tail -n 20
	bad "cnn --cudnn run"
fi

speed || finish

section "throughput: a whole epoch of mlp_fashion on the GPU (60000 samples)"
$TO ./mlp train --epochs 1 --device cuda >mlp.epoch 2>mlp.epoch.err || { cat mlp.epoch.err; bad "mlp epoch on the GPU"; }
cat mlp.epoch; grep samples_per_s mlp.epoch.err
section "throughput: 300 steps of cnn_fashion on the GPU"
$TO ./cnn train --steps 300 --device cuda >cnn.long 2>cnn.long.err || { cat cnn.long.err; bad "cnn 300 steps on the GPU"; }
grep samples_per_s cnn.long.err
echo "CPU reference (--threads $(nproc)): mlp $(sps mlp.cpu.err) samples/s, cnn $(sps cnn.cpu.err) samples/s"

section "matmul: nnd's kernels (NND_CUDA_PROFILE) vs cuBLAS SGEMM"
if program wide "$ROOT/bench/cuda_mm.nnd"; then
	NND_CUDA_PROFILE=1 $TO ./wide train --steps 5 --device cuda >wide.out 2>wide.err || { cat wide.err; bad "cuda_mm profile run"; }
	grep '^cuda profile' wide.err | head -n 14
else
	bad "build of bench/cuda_mm.nnd"
fi
section "matmul: the register tiles (NND_CUDA_MM=reg) beside the default shared-memory kernel: same bits, speed"
if program wider "$ROOT/bench/cuda_mm.nnd" reg && program mlpr "$ROOT/examples/mlp_fashion.nnd" reg &&
   program cnnr "$ROOT/examples/cnn_fashion.nnd" reg; then
	NND_CUDA_PROFILE=1 $TO ./wider train --steps 5 --device cuda >wider.out 2>wider.err || { cat wider.err; bad "cuda_mm reg profile run"; }
	grep '^cuda profile' wider.err | head -n 8
	[ "$(sha wide.out)" = "$(sha wider.out)" ] && echo "cuda_mm: register tiles == shared memory (same bits)" || bad "cuda_mm: the two matmul kernels differ"
	for m in mlp cnn; do
		$TO ./${m}r train --steps "$STEPS" --limit 20000 --device cuda >$m.reg 2>$m.reg.err || { cat $m.reg.err; bad "$m reg run"; continue; }
		echo "$m reg: sha256 $(sha $m.reg)  samples_per_s $(sps $m.reg.err) (default: $(sps $m.gpu1.err))"
		[ "$(sha $m.reg)" = "$(sha $m.cpu)" ] || bad "$m: the register tiles do not give the CPU's bits"
	done
else
	bad "build of the reg programs"
fi
section "cnn_fashion's kernels (NND_CUDA_PROFILE, 20 steps)"
NND_CUDA_PROFILE=1 $TO ./cnn train --steps 20 --device cuda >/dev/null 2>cnn.prof.err && grep '^cuda profile' cnn.prof.err | head -n 12
section "cnn_fashion with one output per block up to 32768 outputs (NND_CUDA_BLOCK_MAX): same bits, speed"
if [ -n "$BUNDLE" ]; then cp "$BUNDLE/cnn_fashion.b32k" cnnb; else NND_CUDA_BLOCK_MAX=32768 "$NNDC" build "$ROOT/examples/cnn_fashion.nnd" -o cnnb >build.cnnb.log 2>&1; fi
if [ -x cnnb ] && $TO ./cnnb train --steps "$STEPS" --limit 20000 --device cuda >cnnb.out 2>cnnb.err; then
	echo "cnn block<=32768: sha256 $(sha cnnb.out)  samples_per_s $(sps cnnb.err) (default: $(sps cnn.gpu1.err))"
	[ "$(sha cnnb.out)" = "$(sha cnn.cpu)" ] || bad "cnn with NND_CUDA_BLOCK_MAX=32768: not the CPU's bits"
	NND_CUDA_PROFILE=1 $TO ./cnnb train --steps 20 --device cuda >/dev/null 2>cnnb.prof.err && grep '^cuda profile' cnnb.prof.err | head -n 6
else
	cat cnnb.err build.cnnb.log 2>/dev/null | tail -n 5; bad "cnn with NND_CUDA_BLOCK_MAX=32768"
fi
if cc -O2 "$ROOT/bench/cublas_sgemm.c" -ldl -o cublas_sgemm 2>cublas.err; then
	$TO ./cublas_sgemm 1024 4096 784 1024 4096 4096 4096 4096 4096 || echo "(cuBLAS benchmark did not run)"
else
	cat cublas.err
fi

section "PyTorch on the same GPU"
if python3 -c 'import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)' 2>/dev/null; then
	timeout 100 python3 "$ROOT/bench/torch_cuda.py" 300 || echo "(torch benchmark failed)"
else
	echo "python3 has no torch with CUDA: skipped"
fi

finish
