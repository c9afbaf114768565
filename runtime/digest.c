/* digest.c - node digests: what generated code reports with args.debug set
 * (nnd_rt_node_digest), kept in a table per run for nndc verify and for
 * `train --debug-digests` logs.
 *
 * The digest of a node's value is the SHA-256 of its bytes (as laid out in
 * memory: little-endian binary32 for floats), truncated to its first 64
 * bits, written as 16 hex digits.  SHA-256 rather than a cheaper 64-bit
 * hash such as FNV-1a: it is as fast or faster (OpenSSL's SHA-256 runs at
 * about 2 GB/s with the SHA extensions, byte-wise FNV-1a at about 1), it
 * is the digest used everywhere else in nnd's evidence, and no structured
 * difference between two values (one flipped low bit, swapped halves) can
 * cancel out.  64 bits are plenty to tell two values apart within a run
 * comparison. */
#include "rt_internal.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

static rt_digests *active;
static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static int64_t seq;

void rt_digests_activate(rt_digests *t)
{
	pthread_mutex_lock(&mu);
	active = t;
	pthread_mutex_unlock(&mu);
}

void rt_digests_clear(rt_digests *t)
{
	t->n = 0;
}

void rt_digests_free(rt_digests *t)
{
	if (active == t) rt_digests_activate(NULL);
	free(t->v);
	memset(t, 0, sizeof *t);
}

void nnd_rt_node_digest(nnd_step_args *a, int32_t graph, int32_t node,
                        const void *data, int64_t bytes)
{
	if (!a || !(a->debug & 1)) return;
	uint8_t dig[32];
	/* hashed before taking the lock: concurrent reports (if codegen ever
	 * makes them) only serialise the append */
	nnd_sha256(bytes > 0 ? data : "", bytes > 0 ? (size_t)bytes : 0, dig);
	uint64_t h = 0;
	for (int i = 0; i < 8; i++) h = h << 8 | dig[i];
	pthread_mutex_lock(&mu);
	rt_digests *t = active;
	if (t) {
		if (t->n == t->cap) {
			int64_t nc = t->cap ? 2 * t->cap : 256;
			rt_digest *nv = realloc(t->v, (size_t)nc * sizeof *nv);
			if (!nv) {
				pthread_mutex_unlock(&mu);
				rt_die(2, "out of memory (node digests)");
			}
			t->v = nv;
			t->cap = nc;
		}
		rt_digest *d = &t->v[t->n++];
		d->step = a->step;
		d->graph = graph;
		d->node = node;
		d->h = h;
		d->seq = seq++;
	}
	pthread_mutex_unlock(&mu);
}

static int cmp_digest(const void *x, const void *y)
{
	const rt_digest *a = x, *b = y;
	if (a->step != b->step) return a->step < b->step ? -1 : 1;
	if (a->graph != b->graph) return a->graph < b->graph ? -1 : 1;
	if (a->node != b->node) return a->node < b->node ? -1 : 1;
	return a->seq < b->seq ? -1 : a->seq > b->seq;
}

void rt_digests_sort(rt_digests *t)
{
	if (t->n > 1) qsort(t->v, (size_t)t->n, sizeof *t->v, cmp_digest);
}
