/* test_philox.c - Philox4x32-10 against Random123's known-answer vectors
 * (kat_vectors from librandom123-dev, read through zlib), plus the uniform
 * draw and stream keys.  Exit 77 (skip) when the vectors are not installed.
 * Usage: test_philox [KAT_VECTORS_GZ] */
#include "runtime/rt.h"

#include <stdio.h>
#include <string.h>
#include <zlib.h>

#define KAT_DEFAULT "/usr/share/doc/librandom123-dev/tests/kat_vectors.gz"

static int fails;
#define CHECK(c) do { if (!(c)) { fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #c); fails++; } } while (0)

int main(int argc, char **argv)
{
	const char *path = argc > 1 ? argv[1] : KAT_DEFAULT;
	FILE *probe = fopen(path, "rb");
	if (!probe) {
		printf("skip: %s not found (install librandom123-dev)\n", path);
		return 77;
	}
	fclose(probe);
	gzFile gz = gzopen(path, "rb");
	if (!gz) {
		fprintf(stderr, "cannot open %s\n", path);
		return 1;
	}
	char line[1024];
	int checked = 0;
	while (gzgets(gz, line, sizeof line)) {
		char name[64];
		unsigned rounds;
		uint32_t c[4], k[2], e[4];
		if (sscanf(line, "%63s %u %x %x %x %x %x %x %x %x %x %x", name, &rounds,
		           &c[0], &c[1], &c[2], &c[3], &k[0], &k[1], &e[0], &e[1], &e[2], &e[3]) != 12)
			continue;
		if (strcmp(name, "philox4x32") != 0 || rounds != 10)
			continue;
		uint32_t out[4];
		nnd_philox4x32_10(c, k, out);
		if (memcmp(out, e, sizeof out) != 0) {
			fprintf(stderr, "KAT mismatch: %s got %08x %08x %08x %08x\n", line,
			        out[0], out[1], out[2], out[3]);
			fails++;
		}
		checked++;
	}
	gzclose(gz);
	printf("philox4x32-10: %d known-answer vectors checked\n", checked);
	CHECK(checked >= 3);

	/* uniform: element e takes word e % 4 of the block at counter e / 4,
	 * >> 8 times 2^-24, in [0, 1); asked in any order (the runtime keeps a
	 * one-block memo, which must never change a value) */
	const uint32_t key[2] = { 0xa4093822u, 0x299f31d0u };
	uint32_t out[4];
	const uint32_t ctr[4] = { 0x243f6a88u, 0x85a308d3u, 0x13198a2eu, 0x03707344u };
	nnd_philox4x32_10(ctr, key, out);
	for (int w = 3; w >= 0; w--) {
		float u = nnd_rt_uniform(key, ctr[0] * 4 + (uint32_t)w, ctr[1], ctr[2], ctr[3]);
		CHECK(u == (float)(out[w] >> 8) / 16777216.0f);
	}
	const uint32_t key2[2] = { 1, 2 };
	float a = nnd_rt_uniform(key, 5, 1, 2, 3), b = nnd_rt_uniform(key2, 5, 1, 2, 3);
	CHECK(nnd_rt_uniform(key, 5, 1, 2, 3) == a && a != b);
	for (uint32_t i = 0; i < 100000; i++) {
		float v = nnd_rt_uniform(key, i, 0, 0, 0);
		CHECK(v >= 0.0f && v < 1.0f);
		if (!(v >= 0.0f && v < 1.0f)) break;
	}

	/* stream key: philox(ctr = {h lo, h hi, "nnd\0", 0}, key = seed) w0, w1 */
	uint64_t h = nnd_path_hash("mlp.h1.w");
	uint8_t dig[32];
	nnd_sha256("mlp.h1.w", 8, dig);
	uint64_t h2 = 0;
	for (int i = 0; i < 8; i++)
		h2 |= (uint64_t)dig[i] << (8 * i);
	CHECK(h == h2);
	uint32_t sk[2];
	nnd_stream_key(0x0123456789abcdefull, h, sk);
	const uint32_t sc[4] = { (uint32_t)h, (uint32_t)(h >> 32), 0x6e6e6400u, 0 };
	const uint32_t skey[2] = { 0x89abcdefu, 0x01234567u };
	nnd_philox4x32_10(sc, skey, out);
	CHECK(sk[0] == out[0] && sk[1] == out[1]);
	/* different paths give different keys */
	uint32_t sk2[2];
	nnd_stream_key(0x0123456789abcdefull, nnd_path_hash("mlp.h2"), sk2);
	CHECK(sk2[0] != sk[0] || sk2[1] != sk[1]);

	if (fails)
		fprintf(stderr, "test_philox: %d failure(s)\n", fails);
	return fails ? 1 : 0;
}
