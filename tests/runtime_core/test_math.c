/* test_math.c - sampled accuracy of nnd's math functions against MPFR.
 *
 * For every function: ~1M inputs spread over the whole binary32 range (a
 * stride through all bit patterns with a pseudo-random offset, so every
 * exponent of both signs is hit) plus special values.  The reference is
 * computed by MPFR with 160 bits; the error is |y - ref| in units of the
 * binary32 ulp at ref (subnormal spacing 2^-149 below 2^-126).  Fails if any
 * error exceeds 1 ulp, or a NaN/inf/zero sign differs from the rule.
 * Usage: test_math [stride_log2]   (default 12: 2^20 samples / function) */
#include "runtime/rt.h"

#include <math.h>
#include <mpfr.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PREC 160

static float u2f(uint32_t u) { float f; memcpy(&f, &u, 4); return f; }
static uint32_t f2u(float f) { uint32_t u; memcpy(&u, &f, 4); return u; }

typedef enum { F_EXP, F_LOG, F_TANH, F_SIGMOID, F_ERF, F_GELU, F_GELU_GRAD, F_SIN, F_COS,
               F_RSQRT, F_POW, F_NFUNC } fid;
static const char *NAMES[] = { "expf", "logf", "tanhf", "sigmoidf", "erff", "geluf",
                               "gelu_gradf", "sinf", "cosf", "rsqrtf", "powf" };

static mpfr_t t1, t2, t3, ref, diff;

/* reference into `ref` */
static void reference(fid f, float x, float y)
{
	mpfr_set_flt(t1, x, MPFR_RNDN);
	switch (f) {
	case F_EXP: mpfr_exp(ref, t1, MPFR_RNDN); break;
	case F_LOG: mpfr_log(ref, t1, MPFR_RNDN); break;
	case F_TANH: mpfr_tanh(ref, t1, MPFR_RNDN); break;
	case F_SIGMOID: /* 1 / (1 + e^-x) */
		mpfr_neg(t2, t1, MPFR_RNDN); mpfr_exp(t2, t2, MPFR_RNDN);
		mpfr_add_ui(t2, t2, 1, MPFR_RNDN); mpfr_ui_div(ref, 1, t2, MPFR_RNDN); break;
	case F_ERF: mpfr_erf(ref, t1, MPFR_RNDN); break;
	case F_GELU: case F_GELU_GRAD:
		/* Phi = erfc(-x / sqrt2) / 2 */
		mpfr_sqrt_ui(t3, 2, MPFR_RNDN);
		mpfr_div(t2, t1, t3, MPFR_RNDN); mpfr_neg(t2, t2, MPFR_RNDN);
		mpfr_erfc(t2, t2, MPFR_RNDN); mpfr_div_2ui(t2, t2, 1, MPFR_RNDN);
		if (f == F_GELU) {
			if (isinf(x)) mpfr_set_flt(ref, x > 0 ? x : -0.0f, MPFR_RNDN);
			else mpfr_mul(ref, t1, t2, MPFR_RNDN);
		} else {
			if (isinf(x)) { mpfr_set_ui(ref, x > 0, MPFR_RNDN); break; }
			/* + x exp(-x^2/2) / sqrt(2 pi) */
			mpfr_sqr(t3, t1, MPFR_RNDN); mpfr_div_2ui(t3, t3, 1, MPFR_RNDN);
			mpfr_neg(t3, t3, MPFR_RNDN); mpfr_exp(t3, t3, MPFR_RNDN);
			mpfr_mul(t3, t3, t1, MPFR_RNDN);
			mpfr_const_pi(ref, MPFR_RNDN); mpfr_mul_2ui(ref, ref, 1, MPFR_RNDN);
			mpfr_sqrt(ref, ref, MPFR_RNDN); mpfr_div(t3, t3, ref, MPFR_RNDN);
			mpfr_add(ref, t2, t3, MPFR_RNDN);
		}
		break;
	case F_SIN: mpfr_sin(ref, t1, MPFR_RNDN); break;
	case F_COS: mpfr_cos(ref, t1, MPFR_RNDN); break;
	case F_RSQRT: /* nnd's rule: rsqrt(x) = 1/sqrt(x), so rsqrt(-0) = -inf
	                * (MPFR's rec_sqrt gives +inf there) */
		if (x == 0.0f) { mpfr_set_flt(t2, x, MPFR_RNDN); mpfr_ui_div(ref, 1, t2, MPFR_RNDN); }
		else mpfr_rec_sqrt(ref, t1, MPFR_RNDN);
		break;
	case F_POW: mpfr_set_flt(t2, y, MPFR_RNDN); mpfr_pow(ref, t1, t2, MPFR_RNDN); break;
	default: abort();
	}
}

static float call(fid f, float x, float y)
{
	switch (f) {
	case F_EXP: return nnd_rt_expf(x);
	case F_LOG: return nnd_rt_logf(x);
	case F_TANH: return nnd_rt_tanhf(x);
	case F_SIGMOID: return nnd_rt_sigmoidf(x);
	case F_ERF: return nnd_rt_erff(x);
	case F_GELU: return nnd_rt_geluf(x);
	case F_GELU_GRAD: return nnd_rt_gelu_gradf(x);
	case F_SIN: return nnd_rt_sinf(x);
	case F_COS: return nnd_rt_cosf(x);
	case F_RSQRT: return nnd_rt_rsqrtf(x);
	case F_POW: return nnd_rt_powf(x, y);
	default: abort();
	}
}

/* error of y against ref in binary32 ulps; HUGE_VAL for a class mismatch */
static double ulp_err(float y)
{
	if (mpfr_nan_p(ref))
		return isnan(y) ? 0.0 : HUGE_VAL;
	if (isnan(y))
		return HUGE_VAL;
	/* correctly rounded binary32 result (with overflow/underflow) */
	float cr = mpfr_get_flt(ref, MPFR_RNDN);
	if (mpfr_zero_p(ref) || isinf(cr) || cr == 0.0f) {
		/* exact zero/inf, or rounds to them: compare the result class */
		if (isinf(cr) || isinf(y)) {
			if (y == cr)
				return 0.0;
			if (!isinf(y) || !isinf(cr)) {
				/* finite vs inf: distance from FLT_MAX in ulps + 1 */
				float fin = isinf(y) ? cr : y;
				if (fabsf(fin) == 0x1.fffffep127f && !signbit(fin) == !signbit(isinf(y) ? y : cr))
					return 1.0;
			}
			return HUGE_VAL;
		}
		if (mpfr_zero_p(ref) && y == 0.0f && !signbit(y) != !mpfr_signbit(ref))
			return HUGE_VAL;                 /* sign of an exact zero */
	}
	mpfr_set_flt(diff, y, MPFR_RNDN);
	mpfr_sub(diff, diff, ref, MPFR_RNDN);
	long e = mpfr_zero_p(ref) ? -200 : mpfr_get_exp(ref) - 1; /* |ref| in [2^e, 2^(e+1)) */
	if (e < -126) e = -126;
	mpfr_mul_2si(diff, diff, -(e - 23), MPFR_RNDN);
	return fabs(mpfr_get_d(diff, MPFR_RNDN));
}

typedef struct { double max; float worst_x, worst_y; long n; } stat;

static void check(fid f, float x, float y, stat *s)
{
	float r = call(f, x, y);
	reference(f, x, y);
	double e = ulp_err(r);
	s->n++;
	if (e > s->max || (e != e)) {
		s->max = e;
		s->worst_x = x;
		s->worst_y = y;
	}
}

static const float SPECIALS[] = {
	0.0f, -0.0f, 1.0f, -1.0f, 0.5f, -0.5f, 2.0f, -2.0f, 3.0f, -3.0f, 10.0f, -10.0f,
	0x1p-149f, -0x1p-149f, 0x1p-126f, -0x1p-126f, 0x1.fffffep127f, -0x1.fffffep127f,
	88.72283f, 88.72284f, -87.33654f, -103.97208f, -103.2789f, 89.0f, -104.0f,
	0.75179f, -0.75179f, -0.7517916f, 3.9192059f, -3.9192059f, 9.0109f, 1e-20f, -1e-20f,
	1.5707964f, 3.1415927f, 6.2831855f, 0.7853982f, 0.7853981f, 1e30f, -1e30f,
	1.0000001f, 0.99999994f, 2.5f * 1.41421356f, 1e-3f, 1e-8f,
	INFINITY, -INFINITY, NAN,
};
#define NSPECIAL (sizeof SPECIALS / sizeof SPECIALS[0])

int main(int argc, char **argv)
{
	int stride_log2 = argc > 1 ? atoi(argv[1]) : 12;
	if (stride_log2 < 0 || stride_log2 > 30) stride_log2 = 12;
	mpfr_set_emin(mpfr_get_emin_min());
	mpfr_set_emax(mpfr_get_emax_max());
	mpfr_inits2(PREC, t1, t2, t3, ref, diff, (mpfr_ptr)0);
	int fails = 0;
	printf("| function | samples | max ulp | worst input |\n|---|---|---|---|\n");
	for (int f = 0; f < F_NFUNC; f++) {
		stat s = { 0, 0, 0, 0 };
		uint64_t lcg = 0x9E3779B97F4A7C15ull ^ (uint64_t)f;
		uint64_t stride = 1ull << stride_log2;
		for (uint64_t base = 0; base < (1ull << 32); base += stride) {
			lcg = lcg * 6364136223846793005ull + 1442695040888963407ull;
			uint32_t off = (uint32_t)(lcg >> 33) & (uint32_t)(stride - 1);
			float x = u2f((uint32_t)(base + off));
			float y = 0.0f;
			if (f == F_POW) {
				/* exponents spread so that results cover the whole range:
				 * y = t / log2|x| for t uniform-ish in [-160, 160], plus
				 * small integers and random float bit patterns */
				uint32_t sel = (uint32_t)(lcg >> 20) & 7;
				float lx = log2f(fabsf(x));
				float t = (float)((int)((lcg >> 40) & 0x3ffff) - 0x20000) * (160.0f / 0x20000);
				if (sel < 4 && isfinite(lx) && lx != 0.0f) y = t / lx;
				else if (sel < 6) y = (float)((int)((lcg >> 44) & 31) - 15);
				else y = u2f((uint32_t)(lcg >> 8));
			}
			check((fid)f, x, y, &s);
		}
		for (size_t i = 0; i < NSPECIAL; i++)
			for (size_t j = 0; j < (f == F_POW ? NSPECIAL : 1); j++)
				check((fid)f, SPECIALS[i], SPECIALS[j], &s);
		if (f == F_POW) /* integer powers with exact results, odd/even signs */
			for (int b = -20; b <= 20; b++)
				for (int k = -40; k <= 40; k++)
					check((fid)f, (float)b * 0.5f, (float)k, &s);
		if (f == F_GELU_GRAD) /* around the zero of gelu' near -0.75179 */
			for (uint32_t u = f2u(-0.7517f); u < f2u(-0.7519f); u++)
				check((fid)f, u2f(u), 0, &s);
		int bad = !(s.max <= 1.0);
		fails += bad;
		if (f == F_POW)
			printf("| %s | %ld | %.3f | x=%a y=%a%s |\n", NAMES[f], s.n, s.max,
			       (double)s.worst_x, (double)s.worst_y, bad ? " FAIL" : "");
		else
			printf("| %s | %ld | %.3f | %a%s |\n", NAMES[f], s.n, s.max,
			       (double)s.worst_x, bad ? " FAIL" : "");
		fflush(stdout);
	}
	/* the double cosine (LR schedule): a few thousand points of [0, pi] and
	 * wider, against MPFR, error in binary64 ulps (informational bound 4) */
	{
		double maxe = 0, wx = 0;
		for (int i = 0; i <= 20000; i++) {
			double x = (double)i * (3.141592653589793 / 20000.0) * (i % 7 == 0 ? 1000.0 : 1.0);
			double c = nnd_rt_cos(x);
			mpfr_set_d(t1, x, MPFR_RNDN);
			mpfr_cos(ref, t1, MPFR_RNDN);
			mpfr_set_d(diff, c, MPFR_RNDN);
			mpfr_sub(diff, diff, ref, MPFR_RNDN);
			long e = mpfr_get_exp(ref) - 1;
			if (e < -1022) e = -1022;
			mpfr_mul_2si(diff, diff, -(e - 52), MPFR_RNDN);
			double err = fabs(mpfr_get_d(diff, MPFR_RNDN));
			if (err > maxe) { maxe = err; wx = x; }
		}
		int bad = !(maxe <= 4.0);
		fails += bad;
		printf("| cos (binary64) | 20001 | %.3f | %a%s |\n", maxe, wx, bad ? " FAIL" : "");
	}
	mpfr_clears(t1, t2, t3, ref, diff, (mpfr_ptr)0);
	mpfr_free_cache();
	if (fails)
		fprintf(stderr, "test_math: %d function(s) above the bound\n", fails);
	return fails ? 1 : 0;
}
