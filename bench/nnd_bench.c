/* nnd_bench.c - kernel benchmarks, side by side with the references, in one
 * process:
 *
 *   nnd_bench peak  [--threads T] [--seconds S]
 *       the machine's measured fp32 FMA peak: T threads, each running 12
 *       independent chains of vector fmas (AVX-512 when the CPU has it,
 *       else AVX2+FMA), GFLOP/s counting an fma as 2 flops
 *   nnd_bench sgemm [--threads T] [--sizes 256,512,...] [--reps R]
 *       C = A @ B, square, row-major: nnd's matmul kernel under its default
 *       plan (seq+fma), JIT-compiled through the LLVM backend exactly as in
 *       a model, against OpenBLAS's cblas_sgemm (libopenblas, dlopen'd, with
 *       openblas_set_num_threads(T)), best of R runs each
 *
 * Output: one JSON object per line on stdout (bench/run.sh collects them),
 * a readable line per result on stderr.  Timing only: nothing here is a
 * pass/fail test (tests/codegen checks the kernels' bits). */
#include <dlfcn.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <immintrin.h>

#include "codegen/codegen.h"
#include "ir/ir.h"
#include "runtime/rt.h"

static double now(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

/* ---- FMA peak ---- */

typedef struct peak_job { long iters; float sink; } peak_job;

/* 12 chains in named registers (an array would live in memory), each fma
 * depending on the previous one of its chain through the addend, as a
 * matmul's accumulators do (AMD Zen 4 runs a chain through the multiplicand
 * at half that rate): 12 in flight covers the fma latency times the number
 * of fma pipes of current x86 cores */
#define CHAINS(X) X(0) X(1) X(2) X(3) X(4) X(5) X(6) X(7) X(8) X(9) X(10) X(11)

__attribute__((target("avx512f"))) static void *peak512(void *p)
{
	peak_job *j = p;
	__m512 m = _mm512_set1_ps(1e-7f), a = _mm512_set1_ps(1e-7f);   /* no overflow, no subnormals */
#define DECL(i) __m512 r##i = _mm512_set1_ps((float)(i + 1));
	CHAINS(DECL)
#undef DECL
	for (long k = 0; k < j->iters; k++) {
#define STEP(i) r##i = _mm512_fmadd_ps(m, a, r##i);
		CHAINS(STEP)
#undef STEP
	}
	__m512 s = _mm512_setzero_ps();
#define SUM(i) s = _mm512_add_ps(s, r##i);
	CHAINS(SUM)
#undef SUM
	j->sink = _mm512_reduce_add_ps(s);
	return NULL;
}

__attribute__((target("avx2,fma"))) static void *peak256(void *p)
{
	peak_job *j = p;
	__m256 m = _mm256_set1_ps(1e-7f), a = _mm256_set1_ps(1e-7f);
#define DECL(i) __m256 r##i = _mm256_set1_ps((float)(i + 1));
	CHAINS(DECL)
#undef DECL
	for (long k = 0; k < j->iters; k++) {
#define STEP(i) r##i = _mm256_fmadd_ps(m, a, r##i);
		CHAINS(STEP)
#undef STEP
	}
	__m256 s = _mm256_setzero_ps();
#define SUM(i) s = _mm256_add_ps(s, r##i);
	CHAINS(SUM)
#undef SUM
	float v[8];
	_mm256_storeu_ps(v, s);
	j->sink = v[0];
	return NULL;
}

static double run_peak(int threads, long iters, int lanes)
{
	pthread_t th[64];
	peak_job jobs[64];
	void *(*fn)(void *) = lanes == 16 ? peak512 : peak256;
	double t0 = now();
	for (int i = 0; i < threads; i++) {
		jobs[i].iters = iters;
		if (pthread_create(&th[i], NULL, fn, &jobs[i])) {
			fprintf(stderr, "nnd_bench: pthread_create failed\n");
			exit(1);
		}
	}
	for (int i = 0; i < threads; i++)
		pthread_join(th[i], NULL);
	double t = now() - t0;
	return 12.0 * lanes * 2.0 * (double)iters * threads / t * 1e-9;
}

static int cmd_peak(int threads, double seconds)
{
	__builtin_cpu_init();
	if (!__builtin_cpu_supports("fma")) {
		fprintf(stderr, "nnd_bench peak: this CPU has no FMA3\n");
		return 1;
	}
	/* AVX2 and AVX-512 (when present) each calibrated to runs of about
	 * `seconds`, best of 20 (short runs, many: the best one is the one no
	 * other process interrupted): some cores (AMD Zen 4) run a 512-bit fma as two 256-bit
	 * halves, so either width can be the faster */
	double best = 0;
	int lanes = 8;
	for (int l = 8; l <= 16; l += 8) {
		if (l == 16 && !__builtin_cpu_supports("avx512f"))
			break;
		long iters = 1000000;
		double g = run_peak(1, iters, l);
		iters = (long)(seconds * g * 1e9 / (12.0 * l * 2.0));
		if (iters < 1000000)
			iters = 1000000;
		for (int r = 0; r < 20; r++) {
			double v = run_peak(threads, iters, l);
			if (v > best) {
				best = v;
				lanes = l;
			}
		}
	}
	fprintf(stderr, "fma peak, %d thread%s, %s: %.1f GFLOP/s\n", threads, threads > 1 ? "s" : "",
	        lanes == 16 ? "avx512" : "avx2", best);
	printf("{\"bench\":\"peak\",\"threads\":%d,\"isa\":\"%s\",\"gflops\":%.2f}\n", threads,
	       lanes == 16 ? "avx512" : "avx2", best);
	return 0;
}

/* ---- sgemm ---- */

/* the runtime's hook for bad labels is never reached by a matmul */
__attribute__((weak)) void nnd_rt_bad_label(int64_t row, int64_t label, int64_t classes)
{
	fprintf(stderr, "bad label %" PRId64 " in row %" PRId64 " (classes %" PRId64 ")\n", row, label, classes);
	exit(1);
}

static ir_type mat(int64_t r, int64_t c)
{
	ir_type t;
	memset(&t, 0, sizeof t);
	t.dt = IR_F32;
	t.rank = 2;
	t.d[0].c = r;
	t.d[1].c = c;
	return t;
}

/* one program whose train graph is c = a @ b with inputs a and b and c in
 * the activation block; returns the JIT'd step function */
typedef struct nnd_mm { arena *a; cg_module *cm; nnd_step_fn fn; } nnd_mm;

static int nnd_mm_build(nnd_mm *m, int n)
{
	m->a = arena_new();
	ir_program *p = arena_alloc(m->a, sizeof *p);
	ir_graph *g = ir_graph_new(m->a, "train");
	p->train = g;
	ir_type t = mat(n, n);
	int in[2];
	for (int i = 0; i < 2; i++) {
		ir_node *x = ir_add(m->a, g, IR_INPUT, 0, NULL, &t);
		x->ia[0] = i;
		x->blk = IR_BLK_INPUT;
		in[i] = x->id;
	}
	ir_node *c = ir_add(m->a, g, IR_MATMUL, 2, in, &t);
	c->plan = (ir_plan){ IR_PLAN_SEQ, 0, 0, true };   /* the default plan for dot products */
	c->path = "bench.sgemm";
	c->blk = IR_BLK_ACT;
	c->off_c = 0;
	ir_module mod = { .source_path = "sgemm", .progs = &p, .nprogs = 1 };
	m->cm = cg_build(&mod, "nnd-manifest 1\n", NULL, 2, false);
	void *sym = m->cm ? cg_jit_lookup(m->cm, "nnd_train_0") : NULL;
	if (!sym) {
		fprintf(stderr, "nnd_bench sgemm: the LLVM backend failed to build the matmul\n");
		return -1;
	}
	memcpy(&m->fn, &sym, sizeof m->fn);
	return 0;
}

typedef void (*cblas_sgemm_fn)(int, int, int, int, int, int, float, const float *, int, const float *, int,
                               float, float *, int);
typedef void (*set_threads_fn)(int);

static double best_of(int reps, void (*run)(void *), void *ctx)
{
	double best = 1e30;
	for (int r = 0; r < reps; r++) {
		double t0 = now();
		run(ctx);
		double t = now() - t0;
		if (t < best)
			best = t;
	}
	return best;
}

typedef struct sg_ctx {
	nnd_step_fn fn;
	nnd_step_args *args;
	cblas_sgemm_fn sgemm;
	int n;
	const float *a, *b;
	float *c;
} sg_ctx;

static void run_nnd(void *p)
{
	sg_ctx *s = p;
	s->fn(s->args);
}

static void run_blas(void *p)
{
	sg_ctx *s = p;
	/* CblasRowMajor = 101, CblasNoTrans = 111 */
	s->sgemm(101, 111, 111, s->n, s->n, s->n, 1.0f, s->a, s->n, s->b, s->n, 0.0f, s->c, s->n);
}

static int cmd_sgemm(int threads, const char *sizes, int reps)
{
	const char *libs[] = { "libopenblas.so.0", "libopenblas.so", "libopenblasp.so.0" };
	void *ob = NULL;
	for (size_t i = 0; i < sizeof libs / sizeof libs[0] && !ob; i++)
		ob = dlopen(libs[i], RTLD_NOW | RTLD_LOCAL);
	cblas_sgemm_fn sgemm = NULL;
	set_threads_fn set_threads = NULL;
	if (!ob)
		fprintf(stderr, "nnd_bench sgemm: no OpenBLAS (%s): apt-get install libopenblas0; nnd only\n", dlerror());
	else {
		*(void **)&sgemm = dlsym(ob, "cblas_sgemm");
		*(void **)&set_threads = dlsym(ob, "openblas_set_num_threads");
		if (!sgemm)
			fprintf(stderr, "nnd_bench sgemm: OpenBLAS has no cblas_sgemm: nnd only\n");
		if (set_threads)
			set_threads(threads);
	}
	nnd_rt_set_threads(threads);
	for (const char *s = sizes; *s;) {
		char *end;
		long n = strtol(s, &end, 10);
		if (end == s || n < 1 || n > 16384) {
			fprintf(stderr, "nnd_bench sgemm: bad --sizes entry '%s'\n", s);
			return 1;
		}
		s = *end == ',' ? end + 1 : end;
		size_t bytes = (size_t)n * (size_t)n * sizeof(float);
		float *a = aligned_alloc(64, bytes), *b = aligned_alloc(64, bytes), *c = aligned_alloc(64, bytes);
		float *cn = aligned_alloc(64, bytes);
		if (!a || !b || !c || !cn) {
			fprintf(stderr, "nnd_bench sgemm: out of memory for n = %ld\n", n);
			return 1;
		}
		uint32_t x = 12345;
		for (size_t i = 0; i < (size_t)n * (size_t)n; i++) {
			x = x * 1664525u + 1013904223u;
			a[i] = (float)(x >> 8) * 0x1p-24f - 0.5f;
			x = x * 1664525u + 1013904223u;
			b[i] = (float)(x >> 8) * 0x1p-24f - 0.5f;
		}
		nnd_mm m;
		double t0 = now();
		if (nnd_mm_build(&m, (int)n))
			return 1;
		double tc = now() - t0;
		const void *inputs[2] = { a, b };
		nnd_step_args args;
		memset(&args, 0, sizeof args);
		args.acts = (uint8_t *)cn;
		args.inputs = inputs;
		args.B = 1;
		args.Bmax = 1;
		sg_ctx ctx = { m.fn, &args, sgemm, (int)n, a, b, c };
		double flops = 2.0 * (double)n * (double)n * (double)n;
		int r = reps > 0 ? reps : (n <= 512 ? 20 : n <= 1024 ? 8 : 3);
		run_nnd(&ctx);   /* warm-up (pages, pool) */
		double tn = best_of(r, run_nnd, &ctx);
		double tb = 0;
		if (sgemm) {
			run_blas(&ctx);
			tb = best_of(r, run_blas, &ctx);
		}
		double gn = flops / tn * 1e-9, gb = sgemm ? flops / tb * 1e-9 : 0;
		fprintf(stderr, "sgemm %ld^3, %d thread%s: nnd %.1f GFLOP/s, openblas %.1f GFLOP/s, ratio %.2f "
		        "(compile %.2f s)\n", n, threads, threads > 1 ? "s" : "", gn, gb, sgemm ? gn / gb : 0.0, tc);
		printf("{\"bench\":\"sgemm\",\"n\":%ld,\"threads\":%d,\"nnd_gflops\":%.2f,\"openblas_gflops\":%.2f,"
		       "\"plan\":\"seq+fma\"}\n", n, threads, gn, gb);
		fflush(stdout);
		cg_free(m.cm);
		arena_free(m.a);
		free(a);
		free(b);
		free(c);
		free(cn);
	}
	return 0;
}

static void usage(void)
{
	fprintf(stderr, "usage: nnd_bench peak [--threads T] [--seconds S]\n"
	                "       nnd_bench sgemm [--threads T] [--sizes 256,512,1024,2048] [--reps R]\n");
}

int main(int argc, char **argv)
{
	if (argc < 2) {
		usage();
		return 2;
	}
	int threads = 1, reps = 0;
	double seconds = 0.05;
	const char *sizes = "256,512,1024,2048";
	for (int i = 2; i < argc; i++) {
		if (i + 1 < argc && !strcmp(argv[i], "--threads"))
			threads = atoi(argv[++i]);
		else if (i + 1 < argc && !strcmp(argv[i], "--seconds"))
			seconds = atof(argv[++i]);
		else if (i + 1 < argc && !strcmp(argv[i], "--sizes"))
			sizes = argv[++i];
		else if (i + 1 < argc && !strcmp(argv[i], "--reps"))
			reps = atoi(argv[++i]);
		else {
			fprintf(stderr, "nnd_bench: unknown option '%s'\n", argv[i]);
			usage();
			return 2;
		}
	}
	if (threads < 1 || threads > 64) {
		fprintf(stderr, "nnd_bench: --threads must be 1..64\n");
		return 2;
	}
	if (!strcmp(argv[1], "peak"))
		return cmd_peak(threads, seconds);
	if (!strcmp(argv[1], "sgemm"))
		return cmd_sgemm(threads, sizes, reps);
	usage();
	return 2;
}
