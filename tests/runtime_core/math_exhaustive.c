/* math_exhaustive.c - every binary32 input of nnd's unary math functions.
 *
 *   nnd_math_exhaustive [-t THREADS] [-l] [FUNCTION ...]    (default: all)
 *
 * Checks all 2^32 bit patterns of each function and prints a markdown table
 * of the largest error in ulps and the input where it occurs.  The oracle is
 * glibc's binary64 libm (errors ~2^-52 relative, i.e. ~2^-28 binary32 ulp,
 * far below what is measured), or with -l the x86 80-bit long double libm
 * (~2^-40 binary32 ulp, but several times slower); MPFR per input would
 * take hours per function.  The
 * sampled CTest (test_math) checks against MPFR.  Error = |y - ref| / ulp,
 * ulp being the binary32 spacing at |ref| (2^-149 for subnormals); NaN or
 * infinity where the oracle disagrees is reported as "inf".  Exit status 1
 * when any function exceeds 1 ulp.  Not a CTest case (minutes per function). */
#include "runtime/rt.h"

#include <float.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

typedef float (*ffn)(float);
typedef long double (*rfn)(long double);
typedef double (*dfn)(double);

/* long double oracles (-l) */
static long double r_exp(long double x) { return expl(x); }
static long double r_log(long double x) { return logl(x); }
static long double r_tanh(long double x) { return tanhl(x); }
static long double r_sigmoid(long double x) { return 1.0L / (1.0L + expl(-x)); }
static long double r_erf(long double x) { return erfl(x); }
static long double r_phi(long double x) { return 0.5L * erfcl(-x * 0.70710678118654752440084436210484903928L); }
static long double r_gelu(long double x)
{
	if (isinf(x)) return x > 0 ? x : -0.0L;
	return x * r_phi(x);
}
static long double r_gelu_grad(long double x)
{
	if (isinf(x)) return x > 0 ? 1.0L : 0.0L;
	return r_phi(x) + x * expl(-0.5L * x * x) * 0.39894228040143267793994605993438186847L;
}
static long double r_sin(long double x) { return sinl(x); }
static long double r_cos(long double x) { return cosl(x); }
static long double r_rsqrt(long double x) { return 1.0L / sqrtl(x); }

/* binary64 oracles (default): glibc's exp/log/sin/cos are within ~0.5 ulp
 * of binary64 and tanh/erf/erfc within a few, i.e. ~2^-28 binary32 ulp */
static double d_exp(double x) { return exp(x); }
static double d_log(double x) { return log(x); }
static double d_tanh(double x) { return tanh(x); }
static double d_sigmoid(double x) { return 1.0 / (1.0 + exp(-x)); }
static double d_erf(double x) { return erf(x); }
static double d_phi(double x) { return 0.5 * erfc(-x * 0.70710678118654752440); }
static double d_gelu(double x)
{
	if (isinf(x)) return x > 0 ? x : -0.0;
	return x * d_phi(x);
}
static double d_gelu_grad(double x)
{
	if (isinf(x)) return x > 0 ? 1.0 : 0.0;
	return d_phi(x) + x * exp(-0.5 * x * x) * 0.39894228040143267794;
}
static double d_sin(double x) { return sin(x); }
static double d_cos(double x) { return cos(x); }
static double d_rsqrt(double x) { return 1.0 / sqrt(x); }

static const struct { const char *name; ffn f; rfn r; dfn d; } FNS[] = {
	{ "expf", nnd_rt_expf, r_exp, d_exp },
	{ "logf", nnd_rt_logf, r_log, d_log },
	{ "tanhf", nnd_rt_tanhf, r_tanh, d_tanh },
	{ "sigmoidf", nnd_rt_sigmoidf, r_sigmoid, d_sigmoid },
	{ "erff", nnd_rt_erff, r_erf, d_erf },
	{ "geluf", nnd_rt_geluf, r_gelu, d_gelu },
	{ "gelu_gradf", nnd_rt_gelu_gradf, r_gelu_grad, d_gelu_grad },
	{ "sinf", nnd_rt_sinf, r_sin, d_sin },
	{ "cosf", nnd_rt_cosf, r_cos, d_cos },
	{ "rsqrtf", nnd_rt_rsqrtf, r_rsqrt, d_rsqrt },
};
#define NFNS (sizeof FNS / sizeof FNS[0])
static int use_long;

static double ulp_err(float y, long double ref)
{
	if (isnan(ref))
		return isnan(y) ? 0.0 : INFINITY;
	if (isnan(y))
		return INFINITY;
	float cr = (float)ref;
	if (isinf(cr) || isinf(y)) {
		if (y == cr)
			return 0.0;
		/* FLT_MAX against an overflowing reference */
		if (!isinf(y) && fabsf(y) == FLT_MAX && !signbit(y) == !signbit(cr))
			return 1.0;
		return INFINITY;
	}
	if (ref == 0.0L && y == 0.0f)
		return (!signbit(y) == !signbit(ref)) ? 0.0 : INFINITY;
	int e;
	frexpl(ref, &e);                  /* |ref| in [2^(e-1), 2^e) */
	e -= 1;
	if (e < -126 || ref == 0.0L)
		e = -126;
	return (double)(fabsl((long double)y - ref) * ldexpl(1.0L, 23 - e));
}

typedef struct {
	int fn;
	uint64_t lo, hi;
	double max;
	uint32_t worst;
} job;

static void *work(void *p)
{
	job *j = p;
	ffn f = FNS[j->fn].f;
	rfn r = FNS[j->fn].r;
	dfn dd = FNS[j->fn].d;
	j->max = -1;
	for (uint64_t u = j->lo; u < j->hi; u++) {
		uint32_t b = (uint32_t)u;
		float x;
		memcpy(&x, &b, 4);
		long double ref = use_long ? r((long double)x) : (long double)dd((double)x);
		double e = ulp_err(f(x), ref);
		if (e > j->max) {
			j->max = e;
			j->worst = b;
		}
	}
	return NULL;
}

int main(int argc, char **argv)
{
	int threads = 2, fail = 0;
	int want[NFNS] = { 0 }, any = 0;
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "-l") == 0) {
			use_long = 1;
			continue;
		}
		if (strcmp(argv[i], "-t") == 0 && i + 1 < argc) {
			threads = atoi(argv[++i]);
			if (threads < 1 || threads > 256) threads = 2;
			continue;
		}
		size_t k;
		for (k = 0; k < NFNS; k++)
			if (strcmp(argv[i], FNS[k].name) == 0 || strcmp(argv[i] + (strncmp(argv[i], "nnd_rt_", 7) ? 0 : 7), FNS[k].name) == 0)
				break;
		if (k == NFNS) {
			fprintf(stderr, "unknown function '%s'\n", argv[i]);
			return 2;
		}
		want[k] = 1;
		any = 1;
	}
	printf("oracle: %s\n\n", use_long ? "long double libm" : "binary64 libm");
	printf("| function | max ulp | worst input | seconds |\n|---|---|---|---|\n");
	fflush(stdout);
	for (size_t k = 0; k < NFNS; k++) {
		if (any && !want[k])
			continue;
		job *jobs = calloc((size_t)threads, sizeof *jobs);
		pthread_t *tid = calloc((size_t)threads, sizeof *tid);
		if (!jobs || !tid) return 2;
		struct timespec t0, t1;
		clock_gettime(CLOCK_MONOTONIC, &t0);
		uint64_t per = (1ull << 32) / (uint64_t)threads;
		for (int t = 0; t < threads; t++) {
			jobs[t].fn = (int)k;
			jobs[t].lo = per * (uint64_t)t;
			jobs[t].hi = t == threads - 1 ? (1ull << 32) : per * (uint64_t)(t + 1);
			pthread_create(&tid[t], NULL, work, &jobs[t]);
		}
		double max = -1;
		uint32_t worst = 0;
		for (int t = 0; t < threads; t++) {
			pthread_join(tid[t], NULL);
			if (jobs[t].max > max) {
				max = jobs[t].max;
				worst = jobs[t].worst;
			}
		}
		clock_gettime(CLOCK_MONOTONIC, &t1);
		float wx;
		memcpy(&wx, &worst, 4);
		if (!(max <= 1.0))
			fail = 1;
		printf("| %s | %.4f | %a (0x%08x) | %.0f |\n", FNS[k].name, max, (double)wx, worst,
		       (double)(t1.tv_sec - t0.tv_sec) + 1e-9 * (double)(t1.tv_nsec - t0.tv_nsec));
		fflush(stdout);
		free(jobs);
		free(tid);
	}
	return fail;
}
