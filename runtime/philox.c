/* philox.c - Philox4x32-10 (Salmon et al., "Parallel random numbers: as
 * easy as 1, 2, 3", SC'11; the Random123 reference), the stream keys of
 * random ops, and the uniform draw used by generated code.  Integer only:
 * the same bits on every backend. */
#ifndef NND_DEVICE
#include "rt.h"

#include <string.h>
#endif

#define PHILOX_M0 0xD2511F53u
#define PHILOX_M1 0xCD9E8D57u
#define PHILOX_W0 0x9E3779B9u   /* golden ratio */
#define PHILOX_W1 0xBB67AE85u   /* sqrt(3) - 1 */

static inline void mulhilo(uint32_t a, uint32_t b, uint32_t *hi, uint32_t *lo)
{
	uint64_t p = (uint64_t)a * (uint64_t)b;
	*hi = (uint32_t)(p >> 32);
	*lo = (uint32_t)p;
}

void nnd_philox4x32_10(const uint32_t ctr[4], const uint32_t key[2], uint32_t out[4])
{
	uint32_t c0 = ctr[0], c1 = ctr[1], c2 = ctr[2], c3 = ctr[3];
	uint32_t k0 = key[0], k1 = key[1];
	for (int r = 0; r < 10; r++) {
		if (r > 0) { /* key schedule: bump before every round but the first */
			k0 += PHILOX_W0;
			k1 += PHILOX_W1;
		}
		uint32_t hi0, lo0, hi1, lo1;
		mulhilo(PHILOX_M0, c0, &hi0, &lo0);
		mulhilo(PHILOX_M1, c2, &hi1, &lo1);
		uint32_t n0 = hi1 ^ c1 ^ k0;
		uint32_t n1 = lo1;
		uint32_t n2 = hi0 ^ c3 ^ k1;
		uint32_t n3 = lo0;
		c0 = n0; c1 = n1; c2 = n2; c3 = n3;
	}
	out[0] = c0; out[1] = c1; out[2] = c2; out[3] = c3;
}

/* The CUDA source embeds this file (codegen/cuda.c) with NND_DEVICE
 * defined: the kernels call nnd_philox4x32_10 above; the rest is host only. */
#ifndef NND_DEVICE
void nnd_stream_key(uint64_t seed, uint64_t path_hash, uint32_t key[2])
{
	const uint32_t ctr[4] = { (uint32_t)path_hash, (uint32_t)(path_hash >> 32),
	                          0x6e6e6400u /* "nnd\0" */, 0 };
	const uint32_t k[2] = { (uint32_t)seed, (uint32_t)(seed >> 32) };
	uint32_t out[4];
	nnd_philox4x32_10(ctr, k, out);
	key[0] = out[0];
	key[1] = out[1];
}

uint64_t nnd_path_hash(const char *path)
{
	uint8_t d[32];
	nnd_sha256(path, strlen(path), d);
	uint64_t h = 0;
	for (int i = 7; i >= 0; i--)
		h = (h << 8) | d[i];        /* first 8 bytes, little-endian */
	return h;
}

/* One Philox block gives four words: element c0 takes word c0 % 4 of the
 * block at counter c0 / 4.  Kernels ask for consecutive elements, so a
 * one-block memo per thread turns four block computations into one; it
 * only remembers, it never changes a value. */
float nnd_rt_uniform(const uint32_t *key, uint32_t c0, uint32_t c1, uint32_t c2, uint32_t c3)
{
	static _Thread_local uint32_t mkey[2], mctr[4], mout[4];
	static _Thread_local bool valid;
	const uint32_t ctr[4] = { c0 >> 2, c1, c2, c3 };
	if (!valid || mkey[0] != key[0] || mkey[1] != key[1] || mctr[0] != ctr[0] ||
	    mctr[1] != ctr[1] || mctr[2] != ctr[2] || mctr[3] != ctr[3]) {
		nnd_philox4x32_10(ctr, key, mout);
		memcpy(mkey, key, sizeof mkey);
		memcpy(mctr, ctr, sizeof mctr);
		valid = true;
	}
	/* 24 random bits times 2^-24: exact in binary32, in [0, 1) */
	return (float)(mout[c0 & 3] >> 8) * 0x1p-24f;
}
#endif /* NND_DEVICE */
