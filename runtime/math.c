/* math.c - nnd's own transcendental functions.
 *
 * Why: generated code on every backend (LLVM CPU, CUDA) must produce the
 * same bits, and libm implementations differ.  So these functions use only
 * IEEE operations that are correctly rounded everywhere: + - * / sqrt on
 * binary64, conversions, and integer/bit manipulation (exponent extraction
 * and powers of two are built from bit patterns).  No libm call computes a
 * value here.  A CUDA port executes the same sequence of double operations
 * (no fma contraction: build with -ffp-contract=off / --fmad=false).
 *
 * How: every binary32 function is evaluated in binary64 with a relative
 * error of a few 1e-16 (about 2^-50), then rounded once to binary32.  The
 * total error is therefore at most 0.5 ulp + 2^-26 ulp of the binary32
 * result, i.e. always within 1 ulp of the correctly rounded result (it
 * differs from it only for inputs whose exact result lies within ~2^-26 ulp
 * of a rounding boundary).  Measured figures: docs/math.md.
 *
 * Polynomials are truncated Taylor series (exp, sin, cos), the atanh series
 * (log), and for erf the everywhere-positive series
 *     erf(z) = 2/sqrt(pi) e^(-z^2) sum_n 2^n z^(2n+1) / (1*3*...*(2n+1))
 * plus the Laplace continued fraction for erfc at large z.  Coefficients
 * are 1/n! etc. rounded to nearest binary64, written as hex literals.
 * Truncation points are chosen so the truncation error is below 2^-52
 * relative on the whole reduced interval.
 *
 * Branches are only taken on special values (NaN, inf, 0, sign) and for the
 * interval choice of erf and of sin/cos argument reduction; the main
 * sequences are straight-line or fixed-trip-count loops. */
/* The same text is device code: codegen/cuda.c embeds this file in the
 * CUDA source it generates, after defining NND_DEVICE, and NVRTC compiles
 * it with -default-device (every function here becomes a __device__
 * function) and --fmad=false, so the GPU executes exactly these binary64
 * operations.  Only the includes and the bit casts differ below. */
#ifndef NND_DEVICE
#include "rt.h"

#include <math.h>    /* sqrt only: correctly rounded by IEEE 754 */
#include <string.h>

/* ---- bit helpers ---- */
static inline uint64_t d2u(double x) { uint64_t u; memcpy(&u, &x, 8); return u; }
static inline double u2d(uint64_t u) { double x; memcpy(&x, &u, 8); return x; }
static inline uint32_t f2u(float x) { uint32_t u; memcpy(&u, &x, 4); return u; }
static inline float u2f(uint32_t u) { float x; memcpy(&x, &u, 4); return x; }
#else
static inline uint64_t d2u(double x) { return (uint64_t)__double_as_longlong(x); }
static inline double u2d(uint64_t u) { return __longlong_as_double((long long)u); }
static inline uint32_t f2u(float x) { return __float_as_uint(x); }
static inline float u2f(uint32_t u) { return __uint_as_float(u); }
#endif
/* 2^k for -1022 <= k <= 1023, built from its bit pattern */
static inline double pow2i(int k) { return u2d((uint64_t)(k + 1023) << 52); }
static inline float f_nan(void) { return u2f(0x7fc00000u); }
static inline float f_inf(void) { return u2f(0x7f800000u); }
static inline double d_nan(void) { return u2d(0x7ff8000000000000ull); }
static inline float f_abs(float x) { return u2f(f2u(x) & 0x7fffffffu); }
static inline int f_signbit(float x) { return (int)(f2u(x) >> 31); }
static inline float f_neg_if(float x, int neg) { return u2f(f2u(x) ^ ((uint32_t)neg << 31)); }

/* ---- constants (see file comment) ---- */
static const double LN2HI = 0x1.62e42fee00000p-1;  /* ln2, 32 significant bits */
static const double LN2LO = 0x1.a39ef35793c76p-33; /* ln2 - LN2HI */
static const double INVLN2 = 0x1.71547652b82fep+0;
static const double ROUND_MAGIC = 0x1.8p52;        /* x + M - M rounds to integer (|x| < 2^51) */
static const double SQRT1_2 = 0x1.6a09e667f3bcdp-1;
static const double TWO_OVER_SQRTPI = 0x1.20dd750429b6dp+0;
static const double INV_SQRTPI = 0x1.20dd750429b6dp-1;
static const double INV_SQRT2PI = 0x1.9884533d43651p-2;
static const double PIO2H = 0x1.921fb54442d18p+0;  /* pi/2 = PIO2H + PIO2L */
static const double PIO2L = 0x1.1a62633145c07p-54;
static const double PIO4 = 0x1.921fb54442d18p-1;

/* ===================================================================
 * exp in binary64.  y = k ln2 + r, k = round(y / ln2), |r| <= ln2/2:
 * k*LN2HI is exact (k has <= 11 bits, LN2HI 32) and y - k*LN2HI is exact
 * (Sterbenz), so r carries ~85 bits of ln2.  e^r by its Taylor series to
 * r^13 (truncation < 2e-16 relative at |r| = 0.347), Horner form.
 * e^y = 2^k e^r, with 2^k applied as two exact powers of two so that k
 * may reach +-1443.  Input clamped to [-1000, 1000] (the results there
 * are 0 and inf in any precision we return).  No NaN on input. */
static const double EXPC[12] = { /* 1/n!, n = 2..13 */
	0x1.0000000000000p-1, 0x1.5555555555555p-3, 0x1.5555555555555p-5, 0x1.1111111111111p-7,
	0x1.6c16c16c16c17p-10, 0x1.a01a01a01a01ap-13, 0x1.a01a01a01a01ap-16, 0x1.71de3a556c734p-19,
	0x1.27e4fb7789f5cp-22, 0x1.ae64567f544e4p-26, 0x1.1eed8eff8d898p-29, 0x1.6124613a86d09p-33,
};

/* Reduces y to (k, r) and returns q = e^r - 1, so that the caller can form
 * exp (2^k (1 + q)) or expm1 without cancellation. */
static inline double exp_reduce(double y, int *k)
{
	y = y < -1000.0 ? -1000.0 : y;
	y = y > 1000.0 ? 1000.0 : y;
	double t = (y * INVLN2 + ROUND_MAGIC) - ROUND_MAGIC;
	*k = (int)t;
	double r = (y - t * LN2HI) - t * LN2LO;
	double p = EXPC[11];
	for (int i = 10; i >= 0; i--)
		p = EXPC[i] + r * p;
	/* q = r + r^2 (1/2 + r/6 + ...) */
	return r + (r * r) * p;
}

static inline double scale2(double v, int k)
{
	int k1 = k / 2;
	return (v * pow2i(k1)) * pow2i(k - k1);
}

static double exp_d(double y)
{
	int k;
	double q = exp_reduce(y, &k);
	return scale2(1.0 + q, k);
}

/* e^y - 1 for 0 <= y <= 40 (used by tanh): (2^k - 1) + 2^k q; for k = 0
 * this is q itself, which is relatively accurate for tiny y. */
static double expm1_d(double y)
{
	int k;
	double q = exp_reduce(y, &k);
	double s = pow2i(k);
	return (s - 1.0) + s * q;
}

/* ===================================================================
 * log in binary64 for finite x > 0 (normal as a double: every binary32
 * value, subnormals included, is).  x = 2^e m with m in [sqrt(1/2),
 * sqrt(2)) (integer trick: subtracting the bits of sqrt(1/2) makes the
 * exponent field roll over exactly at m = sqrt(2)).  f = m - 1 (exact),
 * s = f / (2 + f), log m = 2 atanh s = 2s (1 + s^2/3 + ... + s^20/21),
 * |s| <= 0.1716 so the truncation is < 1e-18.  log x = e ln2 + log m. */
static const double LOGC[10] = { /* 1/(2k+1), k = 1..10 */
	0x1.5555555555555p-2, 0x1.999999999999ap-3, 0x1.2492492492492p-3, 0x1.c71c71c71c71cp-4,
	0x1.745d1745d1746p-4, 0x1.3b13b13b13b14p-4, 0x1.1111111111111p-4, 0x1.e1e1e1e1e1e1ep-5,
	0x1.af286bca1af28p-5, 0x1.8618618618618p-5,
};

static double log_d(double x)
{
	uint64_t u = d2u(x);
	int64_t t = (int64_t)(u - d2u(SQRT1_2));
	int64_t e = t >> 52;                         /* arithmetic shift: floor */
	double m = u2d(u - ((uint64_t)e << 52));      /* in [sqrt(1/2), sqrt(2)) */
	double f = m - 1.0;
	double s = f / (2.0 + f);
	double z = s * s;
	double p = LOGC[9];
	for (int i = 8; i >= 0; i--)
		p = LOGC[i] + z * p;
	double lm = 2.0 * s + (2.0 * s) * (z * p);
	double de = (double)e;
	return de * LN2HI + (de * LN2LO + lm);
}

/* ---- binary32 entry points ---- */
float nnd_rt_expf(float x)
{
	if (x != x)
		return x + x;
	/* (inf clamps to 1000 -> inf; -inf -> 0; overflow and underflow to
	 * subnormal/0 happen in the single final rounding) */
	return (float)exp_d((double)x);
}

float nnd_rt_logf(float x)
{
	if (x != x)
		return x + x;
	if (x < 0.0f)
		return f_nan();
	if (x == 0.0f)
		return -f_inf();
	if (x == f_inf())
		return x;
	return (float)log_d((double)x);
}

/* tanh |x| = e / (e + 2), e = expm1(2|x|); |x| clamped to 20 (tanh = 1 in
 * binary64 there already); sign restored by bit so tanh(-0) = -0. */
float nnd_rt_tanhf(float x)
{
	if (x != x)
		return x + x;
	double a = (double)f_abs(x);
	a = a > 20.0 ? 20.0 : a;
	double e = expm1_d(2.0 * a);
	return f_neg_if((float)(e / (e + 2.0)), f_signbit(x));
}

/* 1 / (1 + e^-x); x clamped to [-200, 200] (results 0 and 1 in binary32). */
float nnd_rt_sigmoidf(float x)
{
	if (x != x)
		return x + x;
	double d = (double)x;
	d = d < -200.0 ? -200.0 : d;
	d = d > 200.0 ? 200.0 : d;
	return (float)(1.0 / (1.0 + exp_d(-d)));
}

/* ===================================================================
 * erf / erfc in binary64 for z >= 0.
 * z < 2.5: the positive series above, 41 terms (each term is the previous
 *   times 2 z^2 / (2n+3); all terms positive, so no cancellation; after 41
 *   terms the tail is < 1e-15 relative at z = 2.5).
 * z >= 2.5: erfc z = e^(-z^2)/sqrt(pi) / (z + (1/2)/(z + 1/(z + (3/2)/(z
 *   + ...)))), the continued fraction evaluated bottom-up from 35 levels
 *   (< 1e-15 relative at z = 2.5, better for larger z).
 * Both were checked against mpmath for the trip counts. */
static const double INVODD[40] = { /* 1/(2n+3), n = 0..39 */
	0x1.5555555555555p-2, 0x1.999999999999ap-3, 0x1.2492492492492p-3, 0x1.c71c71c71c71cp-4,
	0x1.745d1745d1746p-4, 0x1.3b13b13b13b14p-4, 0x1.1111111111111p-4, 0x1.e1e1e1e1e1e1ep-5,
	0x1.af286bca1af28p-5, 0x1.8618618618618p-5, 0x1.642c8590b2164p-5, 0x1.47ae147ae147bp-5,
	0x1.2f684bda12f68p-5, 0x1.1a7b9611a7b96p-5, 0x1.0842108421084p-5, 0x1.f07c1f07c1f08p-6,
	0x1.d41d41d41d41dp-6, 0x1.bacf914c1bad0p-6, 0x1.a41a41a41a41ap-6, 0x1.8f9c18f9c18fap-6,
	0x1.7d05f417d05f4p-6, 0x1.6c16c16c16c17p-6, 0x1.5c9882b931057p-6, 0x1.4e5e0a72f0539p-6,
	0x1.4141414141414p-6, 0x1.3521cfb2b78c1p-6, 0x1.29e4129e4129ep-6, 0x1.1f7047dc11f70p-6,
	0x1.15b1e5f75270dp-6, 0x1.0c9714fbcda3bp-6, 0x1.0410410410410p-6, 0x1.f81f81f81f820p-7,
	0x1.e9131abf0b767p-7, 0x1.dae6076b981dbp-7, 0x1.cd85689039b0bp-7, 0x1.c0e070381c0e0p-7,
	0x1.b4e81b4e81b4fp-7, 0x1.a98ef606a63bep-7, 0x1.9ec8e951033d9p-7, 0x1.948b0fcd6e9e0p-7,
};
#define ERF_SPLIT 2.5

static double erf_series(double z)
{
	double z2 = 2.0 * (z * z);
	double t = z, s = z;
	for (int n = 0; n < 40; n++) {
		t = (t * z2) * INVODD[n];
		s += t;
	}
	return TWO_OVER_SQRTPI * (exp_d(-(z * z)) * s);
}

static double erfc_cf(double z)
{
	double f = z;
	for (int k = 35; k >= 1; k--)
		f = z + (0.5 * (double)k) / f;
	return (exp_d(-(z * z)) * INV_SQRTPI) / f;
}

/* erf and erfc of z >= 0 (finite) */
static double erf_pos(double z) { return z < ERF_SPLIT ? erf_series(z) : 1.0 - erfc_cf(z); }
static double erfc_pos(double z) { return z < ERF_SPLIT ? 1.0 - erf_series(z) : erfc_cf(z); }

float nnd_rt_erff(float x)
{
	if (x != x)
		return x + x;
	double z = (double)f_abs(x);
	z = z > 10.0 ? 10.0 : z;               /* erf = 1 in binary32 beyond 3.92 */
	return f_neg_if((float)erf_pos(z), f_signbit(x));
}

/* Phi(x) = P(N(0,1) <= x) in binary64: 0.5 (1 + erf(x/sqrt2)) for x >= 0,
 * 0.5 erfc(|x|/sqrt2) for x < 0 (no cancellation in the left tail). */
static double phi_cdf(double x)
{
	double z = (x < 0.0 ? -x : x) * SQRT1_2;
	return x < 0.0 ? 0.5 * erfc_pos(z) : 0.5 * (1.0 + erf_pos(z));
}

/* gelu x = x Phi(x).  x below -40 is clamped (result -0; also makes
 * gelu(-inf) = -0 instead of -inf * 0). */
float nnd_rt_geluf(float x)
{
	if (x != x)
		return x + x;
	double d = (double)x;
	d = d < -40.0 ? -40.0 : d;
	double c = d > 40.0 ? 40.0 : d;
	return (float)(d * phi_cdf(c));
}

/* gelu'(x) = Phi(x) + x phi(x), phi(x) = e^(-x^2/2) / sqrt(2 pi); x^2/2 is
 * exact in binary64.  x clamped to [-40, 40] (results 0 and 1). */
float nnd_rt_gelu_gradf(float x)
{
	if (x != x)
		return x + x;
	double d = (double)x;
	d = d < -40.0 ? -40.0 : d;
	d = d > 40.0 ? 40.0 : d;
	double pdf = INV_SQRT2PI * exp_d(-0.5 * (d * d));
	return (float)(phi_cdf(d) + d * pdf);
}

/* ===================================================================
 * pow: C99 Annex F special cases, then |x|^y = exp(y log|x|) in binary64.
 * |y log|x|| < 1000 matters only (beyond: 0 or inf); there its absolute
 * error is ~1e-13, so the relative error of the result stays ~1e-13. */
float nnd_rt_powf(float x, float y)
{
	if (y == 0.0f || x == 1.0f)
		return 1.0f;
	if (x != x || y != y)
		return x + y;
	float ax = f_abs(x), ay = f_abs(y);
	/* y is an integer / an odd integer (all |y| >= 2^24 are even integers) */
	int yint = 1, yodd = 0;
	if (ay < 0x1p24f) {
		int32_t iy = (int32_t)y;
		yint = (float)iy == y;
		yodd = yint && (iy & 1);
	}
	if (ay == f_inf()) {
		if (ax == 1.0f)
			return 1.0f;
		return ((ax > 1.0f) == (y > 0.0f)) ? f_inf() : 0.0f;
	}
	if (ax == 0.0f) {
		if (y < 0.0f)
			return yodd ? f_neg_if(f_inf(), f_signbit(x)) : f_inf();
		return yodd ? x : 0.0f;
	}
	if (ax == f_inf()) {
		float r = y < 0.0f ? 0.0f : f_inf();
		return f_neg_if(r, f_signbit(x) && yodd);
	}
	if (x < 0.0f && !yint)
		return f_nan();
	double t = (double)y * log_d((double)ax);
	float r = (float)exp_d(t);
	return f_neg_if(r, f_signbit(x) && yodd);
}

float nnd_rt_rsqrtf(float x)
{
	/* sqrt and / are correctly rounded; two binary64 roundings then one to
	 * binary32.  rsqrt(-0) = -inf, rsqrt(+inf) = 0, negative -> NaN. */
	double d = (double)x;
	if (x != x)
		return x + x;
	if (x < 0.0f)
		return f_nan();
	return (float)(1.0 / sqrt(d));
}

/* ===================================================================
 * sin / cos.  Argument reduction x = (4j + q) pi/2 + r, |r| <= pi/4:
 * |x| <= pi/4: r = x.  Otherwise Payne-Hanek: x = m 2^e (m < 2^53) times
 * the bits of 2/pi, keeping only the product bits of weight 2^1 down to
 * ~2^-128 (bits of 2/pi that only contribute multiples of 4 are skipped),
 * in exact 32-bit-limb integer arithmetic.  That gives q and the fraction
 * f in [-1/2, 1/2) to >= 128 bits; r = f pi/2 in binary64.
 * sin r, cos r: Taylor series to r^17 / r^18 (truncation < 1e-18). */
static const uint32_t TWO_OVER_PI[48] = { /* 2/pi = sum w_i 2^(-32(i+1)) */
	0xA2F9836E, 0x4E441529, 0xFC2757D1, 0xF534DDC0, 0xDB629599, 0x3C439041, 0xFE5163AB, 0xDEBBC561,
	0xB7246E3A, 0x424DD2E0, 0x06492EEA, 0x09D1921C, 0xFE1DEB1C, 0xB129A73E, 0xE88235F5, 0x2EBB4484,
	0xE99C7026, 0xB45F7E41, 0x3991D639, 0x835339F4, 0x9C845F8B, 0xBDF9283B, 0x1FF897FF, 0xDE05980F,
	0xEF2F118B, 0x5A0A6D1F, 0x6D367ECF, 0x27CB09B7, 0x4F463F66, 0x9E5FEA2D, 0x7527BAC7, 0xEBE5F17B,
	0x3D0739F7, 0x8A5292EA, 0x6BFB5FB1, 0x1F8D5D08, 0x56033046, 0xFC7B6BAB, 0xF0CFBC20, 0x9AF4361D,
	0xA9E39161, 0x5EE61B08, 0x6599855F, 0x14A06840, 0x8DFFD880, 0x4D732731, 0x06061556, 0xCA73A8C9,
};
#define PH_K 6           /* words of 2/pi used */
#define PH_L (PH_K + 2)  /* limbs of the product */

static inline uint64_t limb(const uint32_t *a, int i)
{
	return (i >= 0 && i < PH_L) ? a[i] : 0;
}

/* bits [lo, lo+64) of the little-endian limb array (outside: 0); lo >= 0 */
static uint64_t bits64(const uint32_t *a, int lo)
{
	int w = lo >> 5, sh = lo & 31;
	uint64_t v = ((limb(a, w + 1) << 32) | limb(a, w)) >> sh;
	if (sh)
		v |= limb(a, w + 2) << (64 - sh);
	return v;
}

static int clz64(uint64_t v)
{
	int n = 0;
	while (!(v >> 63)) { v <<= 1; n++; }
	return n;
}

/* ax >= pi/4, finite.  Returns q (mod 4); *rh + *rl = r. */
static int rem_pio2(double ax, double *rh, double *rl)
{
	uint64_t u = d2u(ax);
	int be = (int)(u >> 52);
	uint64_t m = (u & 0xfffffffffffffull) | ((uint64_t)(be != 0) << 52);
	int e = (be ? be : 1) - 1075;                 /* ax = m 2^e */
	int j0 = e >= 34 ? (e - 34) / 32 + 1 : 0;
	uint64_t col[PH_L + 1] = { 0 };
	uint32_t ml = (uint32_t)m, mh = (uint32_t)(m >> 32);
	for (int k = 0; k < PH_K; k++) {
		uint64_t w = TWO_OVER_PI[j0 + k];
		int base = PH_K - 1 - k;
		uint64_t pl = (uint64_t)ml * w, ph = (uint64_t)mh * w;
		col[base] += (uint32_t)pl;
		col[base + 1] += (pl >> 32) + (uint32_t)ph;
		col[base + 2] += ph >> 32;
	}
	uint32_t acc[PH_L];
	for (int i = 0; i < PH_L; i++) {
		acc[i] = (uint32_t)col[i];
		col[i + 1] += col[i] >> 32;
	}
	int P = 32 * (j0 + PH_K) - e;                 /* bit of weight 2^0 */
	int q = (int)(bits64(acc, P) & 3);
	uint64_t H = bits64(acc, P - 64), L = bits64(acc, P - 128);
	double sign = 1.0;
	if (H >> 63) {                                /* f >= 1/2: f - 1 */
		q = (q + 1) & 3;
		sign = -1.0;
		L = ~L + 1;
		H = ~H + (L == 0);
	}
	if (H == 0 && L == 0) {
		*rh = *rl = 0.0;
		return q;
	}
	int s = H ? clz64(H) : 64 + clz64(L);
	if (s >= 64) { H = L << (s - 64); L = 0; }
	else if (s > 0) { H = (H << s) | (L >> (64 - s)); L <<= s; }
	/* f = (H 2^-64 + L 2^-128) 2^-s: top 53 bits and next 53 bits, exact */
	double fa = (double)(H >> 11) * pow2i(-53 - s);
	double fb = (double)(((H & 0x7ff) << 42) | (L >> 22)) * pow2i(-106 - s);
	fa *= sign;
	fb *= sign;
	*rh = fa * PIO2H;
	*rl = fa * PIO2L + fb * PIO2H;
	return q;
}

static const double SINC[8] = { /* (-1)^n/(2n+1)!, n = 1..8 */
	-0x1.5555555555555p-3, 0x1.1111111111111p-7, -0x1.a01a01a01a01ap-13, 0x1.71de3a556c734p-19,
	-0x1.ae64567f544e4p-26, 0x1.6124613a86d09p-33, -0x1.ae7f3e733b81fp-41, 0x1.952c77030ad4ap-49,
};
static const double COSC[9] = { /* (-1)^n/(2n)!, n = 1..9 */
	-0x1.0000000000000p-1, 0x1.5555555555555p-5, -0x1.6c16c16c16c17p-10, 0x1.a01a01a01a01ap-16,
	-0x1.27e4fb7789f5cp-22, 0x1.1eed8eff8d898p-29, -0x1.93974a8c07c9dp-37, 0x1.ae7f3e733b81fp-45,
	-0x1.6827863b97d97p-53,
};

static double sin_k(double r)
{
	double z = r * r, p = SINC[7];
	for (int i = 6; i >= 0; i--)
		p = SINC[i] + z * p;
	return r + (r * z) * p;
}

static double cos_k(double r)
{
	double z = r * r, p = COSC[8];
	for (int i = 7; i >= 0; i--)
		p = COSC[i] + z * p;
	return 1.0 + z * p;
}

/* sin (which = 0) or cos (which = 1) of a finite double, |x| = ax */
static double sincos_d(double x, int which)
{
	double ax = x < 0.0 ? -x : x;
	double rh = ax, rl = 0.0;
	int q = 0;
	if (ax > PIO4)
		q = rem_pio2(ax, &rh, &rl);
	q = (q + which) & 3;                 /* cos x = sin(x + pi/2) */
	/* first-order correction for rl: sin(rh + rl) ~ sin rh + rl cos rh */
	double s = sin_k(rh), c = cos_k(rh);
	double v = (q & 1) ? c - rl * s : s + rl * c;
	v = (q & 2) ? -v : v;
	/* sin is odd, cos even */
	return (which == 0 && x < 0.0) ? -v : v;
}

float nnd_rt_sinf(float x)
{
	if (x != x)
		return x + x;
	if (f_abs(x) == f_inf())
		return f_nan();
	if (x == 0.0f)
		return x;                        /* keeps -0 */
	return (float)sincos_d((double)x, 0);
}

float nnd_rt_cosf(float x)
{
	if (x != x)
		return x + x;
	if (f_abs(x) == f_inf())
		return f_nan();
	return (float)sincos_d((double)x, 1);
}

double nnd_rt_cos(double x)
{
	if (x != x)
		return x + x;
	if (x - x != 0.0)
		return d_nan();                  /* +-inf */
	return sincos_d(x, 1);
}
