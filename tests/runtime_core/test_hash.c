/* test_hash.c - SHA-256 known answers (FIPS 180-2 examples), one-shot and
 * incremental. */
#include "runtime/rt.h"

#include <stdio.h>
#include <string.h>

static int fails;

static void expect(const char *what, const uint8_t d[32], const char *hex)
{
	char got[65];
	nnd_sha256_hex(d, got);
	if (strcmp(got, hex) != 0) {
		fprintf(stderr, "%s: expected %s, got %s\n", what, hex, got);
		fails++;
	}
}

int main(void)
{
	uint8_t d[32];
	nnd_sha256("abc", 3, d);
	expect("abc", d, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
	nnd_sha256("", 0, d);
	expect("empty", d, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
	const char *two = "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq";
	nnd_sha256(two, strlen(two), d);
	expect("448-bit", d, "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");

	/* incremental: one million 'a' in uneven pieces */
	static char buf[1000];
	memset(buf, 'a', sizeof buf);
	nnd_sha256_ctx *c = nnd_sha256_begin();
	size_t left = 1000000, step = 1;
	while (left) {
		size_t n = step < left ? step : left;
		if (n > sizeof buf) n = sizeof buf;
		nnd_sha256_update(c, buf, n);
		left -= n;
		step = step * 7 % 997 + 1;
	}
	nnd_sha256_update(c, buf, 0);
	nnd_sha256_end(c, d);
	expect("million a", d, "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");

	if (fails)
		fprintf(stderr, "test_hash: %d failure(s)\n", fails);
	else
		printf("sha256: ok\n");
	return fails ? 1 : 0;
}
