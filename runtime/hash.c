/* hash.c - SHA-256 through OpenSSL's EVP interface.  Every call is checked:
 * a failing digest would silently break the evidence a run leaves, so it
 * aborts with a message instead (exit status 2: internal error). */
#include "rt.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>

struct nnd_sha256_ctx {
	EVP_MD_CTX *md;
};

static void sha_fail(const char *what)
{
	fprintf(stderr, "nnd: internal error: SHA-256 %s failed\n", what);
	exit(2);
}

/* OpenSSL reads the system's openssl.cnf on first use (10 ms of a
 * training program's start-up here) and, in 3.x, looks the SHA-256
 * implementation up in its provider on every EVP_DigestInit.  nnd needs
 * neither: no configuration, and one fetch kept for the process. */
static const EVP_MD *sha_md;
static pthread_once_t sha_once = PTHREAD_ONCE_INIT;

static void sha_init(void)
{
	if (OPENSSL_init_crypto(OPENSSL_INIT_NO_LOAD_CONFIG, NULL) != 1)
		sha_fail("OPENSSL_init_crypto");
#if OPENSSL_VERSION_NUMBER >= 0x30000000L
	sha_md = EVP_MD_fetch(NULL, "SHA256", NULL);
#endif
	if (!sha_md)
		sha_md = EVP_sha256();
	if (!sha_md)
		sha_fail("EVP_sha256");
}

nnd_sha256_ctx *nnd_sha256_begin(void)
{
	if (pthread_once(&sha_once, sha_init) != 0)
		sha_fail("initialisation");
	nnd_sha256_ctx *c = malloc(sizeof *c);
	if (!c)
		sha_fail("allocation");
	c->md = EVP_MD_CTX_new();
	if (!c->md)
		sha_fail("EVP_MD_CTX_new");
	if (EVP_DigestInit_ex(c->md, sha_md, NULL) != 1)
		sha_fail("EVP_DigestInit_ex");
	return c;
}

void nnd_sha256_update(nnd_sha256_ctx *c, const void *data, size_t n)
{
	if (n == 0)
		return;
	if (EVP_DigestUpdate(c->md, data, n) != 1)
		sha_fail("EVP_DigestUpdate");
}

void nnd_sha256_end(nnd_sha256_ctx *c, uint8_t out[32])
{
	unsigned int len = 0;
	if (EVP_DigestFinal_ex(c->md, out, &len) != 1 || len != 32)
		sha_fail("EVP_DigestFinal_ex");
	EVP_MD_CTX_free(c->md);
	free(c);
}

void nnd_sha256(const void *data, size_t n, uint8_t out[32])
{
	nnd_sha256_ctx *c = nnd_sha256_begin();
	nnd_sha256_update(c, data, n);
	nnd_sha256_end(c, out);
}

void nnd_sha256_hex(const uint8_t dig[32], char hex[65])
{
	static const char digits[] = "0123456789abcdef";
	for (int i = 0; i < 32; i++) {
		hex[2 * i] = digits[dig[i] >> 4];
		hex[2 * i + 1] = digits[dig[i] & 15];
	}
	hex[64] = '\0';
}
