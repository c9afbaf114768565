/* threads.c - the runtime's thread pool (nnd_rt_parallel_for) and the
 * test-only racy sum.
 *
 * Why pthreads and not OpenMP: generated programs link only the runtime,
 * libc, libm, zlib, libcrypto and cJSON; OpenMP would add libgomp (or
 * libomp) to every built program and to nndc's JIT process, whose runtime
 * decides thread placement, chunking (schedule(static) is not even
 * specified to cut the same chunks in every implementation) and spin/sleep
 * policy through environment variables we do not control.  Here the
 * partition is ours and written down (below), the pool is the same code
 * whether the step functions were compiled ahead of time or JIT'd inside
 * nndc, and nothing outside nnd can change it.  Results never depend on the
 * partition anyway: codegen only splits independent outputs, never the order
 * of a reduction (determinism.md section 2).
 *
 * Partition of [0, n) with T threads and grain g (g < 1 counts as 1):
 *   chunks K = min(T, n / g) (at least 1); with q = n / K, r = n % K,
 *   chunk c = [c*q + min(c, r), (c+1)*q + min(c+1, r)): contiguous, in
 *   order, the first r one longer than the rest, none smaller than g.
 *   K == 1 (n < 2g, or one thread) runs fn(a, 0, n) inline on the caller.
 *   The caller runs chunk 0, pool worker w (1..T-1) chunk w.
 *
 * Per-call cost: a step of a batch-64 MLP calls the pool ~30 times, so a
 * call must cost a few microseconds, not a futex wake-up per worker.  A
 * call publishes the job by bumping a generation counter; workers spin on
 * it for a while (200 us, with a CPU pause, yielding as the wait gets
 * longer, which matters with more threads than cores) and only then sleep
 * on a condition variable; the caller signals the condvar only when some
 * worker sleeps.  Completion works the same way in reverse (a pending
 * counter the caller spins on, then a second condvar).
 *
 * Safety: the pool is created on the first parallel call and survives
 * across nnd_rt_main calls (nndc verify runs several in one process);
 * nnd_rt_set_threads with another count joins the old workers and the next
 * call starts new ones.  A call from inside a chunk (nested) or from a
 * second thread while the pool is busy runs inline: same results, no
 * deadlock.  Workers hold no pointer into a job after finishing it, so a
 * JIT module can be freed once its step returned.  A forked child starts a
 * fresh pool if it needs one. */
#include "rt_internal.h"

#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define RT_MAX_THREADS 1024
#define SPIN_NS 200000       /* spin up to 200 us before sleeping */

#if defined(__x86_64__) || defined(__i386__)
#define cpu_relax() __builtin_ia32_pause()
#elif defined(__aarch64__)
#define cpu_relax() __asm__ __volatile__("yield")
#else
#define cpu_relax() ((void)0)
#endif

typedef struct job {
	rt_chunk_fn gfn; void *ctx;          /* generic form */
	nnd_range_fn fn; nnd_step_args *a;   /* ABI form (gfn NULL) */
	int64_t n;
	int nchunks;
} job;

static struct pool {
	int nthreads;                /* workers + the caller */
	pthread_t *tids;
	/* ctl = generation << 16 | chunks of that generation: one atomic word,
	 * so a worker that is not part of a job never reads the job fields
	 * (which the caller may already be rewriting for the next job) */
	_Atomic uint64_t ctl;
	atomic_int pending;          /* chunks not yet finished (workers' ones) */
	atomic_int sleepers;         /* workers in (or entering) cond_wait */
	atomic_int caller_sleeps;
	atomic_bool quit;
	pthread_mutex_t mu;
	pthread_cond_t work_cv, done_cv;
	uint64_t start_gen;          /* the generation new workers start from */
	job j;
} pool;

static int want_threads;                  /* 0: default */
static atomic_flag busy = ATOMIC_FLAG_INIT;   /* a parallel call is in flight */
static _Thread_local int in_worker;       /* nested calls run inline */
static pthread_mutex_t setup_mu = PTHREAD_MUTEX_INITIALIZER;

int rt_default_threads(void)
{
	long n = sysconf(_SC_NPROCESSORS_ONLN);
	if (n < 1) n = 1;
	if (n > RT_MAX_THREADS) n = RT_MAX_THREADS;
	return (int)n;
}

static void chunk_bounds(int64_t n, int k, int c, int64_t *lo, int64_t *hi)
{
	int64_t q = n / k, r = n % k;
	*lo = c * q + (c < r ? c : r);
	*hi = *lo + q + (c < r ? 1 : 0);
}

static int64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* One step of a spin wait: false once the wait has lasted SPIN_NS (then
 * the caller sleeps).  Yields now and then, so that with more threads than
 * cores the thread being waited for gets to run. */
static bool spin_more(int *spins, int64_t *t0)
{
	int s = ++*spins;
	cpu_relax();
	if ((s & 63) == 0) {
		int64_t t = now_ns();
		if (*t0 == 0) *t0 = t;
		else if (t - *t0 > SPIN_NS) return false;
		if ((s & 255) == 0) sched_yield();
	}
	return true;
}

static void run_chunk(const job *j, int c)
{
	int64_t lo, hi;
	chunk_bounds(j->n, j->nchunks, c, &lo, &hi);
	if (j->gfn) j->gfn(j->ctx, lo, hi, c);
	else j->fn(j->a, lo, hi);
}

static void *worker(void *arg)
{
	int w = (int)(intptr_t)arg;
	in_worker = 1;
	/* not the current ctl: the first job may already be published */
	uint64_t seen = pool.start_gen;
	for (;;) {
		uint64_t ctl;
		int spins = 0;
		int64_t t0 = 0;
		for (;;) {
			ctl = atomic_load_explicit(&pool.ctl, memory_order_acquire);
			if ((ctl >> 16) != seen || atomic_load_explicit(&pool.quit, memory_order_relaxed)) break;
			if (spin_more(&spins, &t0)) continue;
			pthread_mutex_lock(&pool.mu);
			atomic_fetch_add(&pool.sleepers, 1);   /* seq_cst: pairs with the caller's ctl store */
			while ((atomic_load(&pool.ctl) >> 16) == seen && !atomic_load(&pool.quit))
				pthread_cond_wait(&pool.work_cv, &pool.mu);
			atomic_fetch_sub(&pool.sleepers, 1);
			pthread_mutex_unlock(&pool.mu);
			spins = 0;
			t0 = 0;
		}
		if (atomic_load(&pool.quit)) return NULL;
		seen = ctl >> 16;
		int nchunks = (int)(ctl & 0xffff);
		if (w >= nchunks) continue;            /* not part of this job */
		run_chunk(&pool.j, w);
		/* seq_cst: pairs with the caller's caller_sleeps store */
		if (atomic_fetch_sub(&pool.pending, 1) == 1 &&
		    atomic_load(&pool.caller_sleeps)) {
			pthread_mutex_lock(&pool.mu);
			pthread_cond_signal(&pool.done_cv);
			pthread_mutex_unlock(&pool.mu);
		}
	}
}

static void pool_stop(void)
{
	if (!pool.tids) return;
	pthread_mutex_lock(&pool.mu);
	atomic_store(&pool.quit, true);
	pthread_cond_broadcast(&pool.work_cv);
	pthread_mutex_unlock(&pool.mu);
	for (int i = 1; i < pool.nthreads; i++) pthread_join(pool.tids[i], NULL);
	free(pool.tids);
	pool.tids = NULL;
	pthread_cond_destroy(&pool.work_cv);
	pthread_cond_destroy(&pool.done_cv);
	pthread_mutex_destroy(&pool.mu);
	pool.nthreads = 0;
}

/* A forked child has the pool's memory but not its threads: forget them
 * (the next parallel call starts new ones) instead of waiting on workers
 * that do not exist. */
static void pool_after_fork_child(void)
{
	pool.tids = NULL;
	pool.nthreads = 0;
	atomic_flag_clear(&busy);
	pthread_mutex_init(&setup_mu, NULL);
}

static pthread_once_t atfork_once = PTHREAD_ONCE_INIT;
static void register_atfork(void) { pthread_atfork(NULL, NULL, pool_after_fork_child); }

/* Starts T-1 workers; false when threads cannot be created (then the
 * caller runs everything inline: same results, only slower). */
static bool pool_start(int T)
{
	pthread_once(&atfork_once, register_atfork);
	pthread_mutex_init(&pool.mu, NULL);
	pthread_cond_init(&pool.work_cv, NULL);
	pthread_cond_init(&pool.done_cv, NULL);
	atomic_store(&pool.quit, false);
	atomic_store(&pool.pending, 0);
	atomic_store(&pool.sleepers, 0);
	atomic_store(&pool.caller_sleeps, 0);
	pool.start_gen = atomic_load(&pool.ctl) >> 16;
	pool.tids = calloc((size_t)T, sizeof *pool.tids);
	if (!pool.tids) return false;
	pool.nthreads = 1;
	for (int i = 1; i < T; i++) {
		if (pthread_create(&pool.tids[i], NULL, worker, (void *)(intptr_t)i) != 0) break;
		pool.nthreads = i + 1;
	}
	return pool.nthreads == T;
}

void nnd_rt_set_threads(int n)
{
	if (n < 1) n = 1;
	if (n > RT_MAX_THREADS) n = RT_MAX_THREADS;
	pthread_mutex_lock(&setup_mu);
	want_threads = n;
	if (pool.tids && pool.nthreads != n) {
		/* never while a job runs: wait for the pool to be idle */
		while (atomic_flag_test_and_set(&busy)) sched_yield();
		pool_stop();
		atomic_flag_clear(&busy);
	}
	pthread_mutex_unlock(&setup_mu);
}

int nnd_rt_threads(void)
{
	return want_threads > 0 ? want_threads : rt_default_threads();
}

void rt_pool_run(rt_chunk_fn gfn, void *ctx, int64_t n, int64_t grain)
{
	if (n <= 0) return;
	if (grain < 1) grain = 1;
	int T = nnd_rt_threads();
	int64_t k = n / grain;
	if (k > T) k = T;
	if (k <= 1) { gfn(ctx, 0, n, 0); return; }
	if (in_worker || atomic_flag_test_and_set(&busy)) {
		/* nested, or another thread holds the pool: the same partition,
		 * chunk by chunk on this thread */
		job j = { gfn, ctx, NULL, NULL, n, (int)k };
		for (int c = 0; c < (int)k; c++) run_chunk(&j, c);
		return;
	}
	if (!pool.tids || pool.nthreads != T) {
		pthread_mutex_lock(&setup_mu);
		if (pool.tids && pool.nthreads != T) pool_stop();
		if (!pool.tids && !pool_start(T)) {
			pool_stop();
			pthread_mutex_unlock(&setup_mu);
			atomic_flag_clear(&busy);
			job j = { gfn, ctx, NULL, NULL, n, (int)k };
			for (int c = 0; c < (int)k; c++) run_chunk(&j, c);
			return;
		}
		pthread_mutex_unlock(&setup_mu);
	}
	pool.j.gfn = gfn;
	pool.j.ctx = ctx;
	pool.j.n = n;
	pool.j.nchunks = (int)k;
	atomic_store_explicit(&pool.pending, (int)k - 1, memory_order_relaxed);
	uint64_t gen = (atomic_load_explicit(&pool.ctl, memory_order_relaxed) >> 16) + 1;
	atomic_store(&pool.ctl, gen << 16 | (uint64_t)k);     /* seq_cst: publishes the job */
	if (atomic_load(&pool.sleepers) > 0) {
		pthread_mutex_lock(&pool.mu);
		pthread_cond_broadcast(&pool.work_cv);
		pthread_mutex_unlock(&pool.mu);
	}
	in_worker = 1;     /* a nested call from chunk 0 runs inline */
	run_chunk(&pool.j, 0);
	in_worker = 0;
	int spins = 0;
	int64_t t0 = 0;
	while (atomic_load_explicit(&pool.pending, memory_order_acquire) > 0) {
		if (spin_more(&spins, &t0)) continue;
		pthread_mutex_lock(&pool.mu);
		atomic_store(&pool.caller_sleeps, 1);
		while (atomic_load(&pool.pending) > 0) pthread_cond_wait(&pool.done_cv, &pool.mu);
		atomic_store(&pool.caller_sleeps, 0);
		pthread_mutex_unlock(&pool.mu);
	}
	atomic_flag_clear(&busy);
}

/* the ABI form: fn(a, lo, hi) */
typedef struct abi_ctx { nnd_range_fn fn; nnd_step_args *a; } abi_ctx;

static void abi_chunk(void *ctx, int64_t lo, int64_t hi, int c)
{
	(void)c;
	abi_ctx *x = ctx;
	x->fn(x->a, lo, hi);
}

void nnd_rt_parallel_for(nnd_range_fn fn, nnd_step_args *a, int64_t n, int64_t grain)
{
	if (n <= 0) return;
	if (n <= grain || nnd_rt_threads() == 1) { fn(a, 0, n); return; }
	abi_ctx x = { fn, a };
	rt_pool_run(abi_chunk, &x, n, grain);
}

/* ---- test only: planted nondeterminism ----
 * Each chunk (one per thread) sums its slice sequentially; the partials
 * are added to the total in the order the chunks finish.  A small jitter,
 * from the chunk index and the clock, shuffles that order from run to run.
 * With one thread it is the sequential sum. */
typedef struct racy_ctx { const float *x; float total; pthread_mutex_t mu; } racy_ctx;

static void racy_chunk(void *ctx, int64_t lo, int64_t hi, int c)
{
	racy_ctx *r = ctx;
	float s = 0.0f;
	for (int64_t i = lo; i < hi; i++) s = s + r->x[i];
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	int yields = (int)(((unsigned)c * 7u + (unsigned)(ts.tv_nsec >> 10)) % 5u);
	for (int k = 0; k < yields; k++) sched_yield();
	pthread_mutex_lock(&r->mu);
	r->total = r->total + s;
	pthread_mutex_unlock(&r->mu);
}

float nnd_rt_racy_sum(const float *x, int64_t n)
{
	racy_ctx r = { x, 0.0f, PTHREAD_MUTEX_INITIALIZER };
	rt_pool_run(racy_chunk, &r, n, 1);
	pthread_mutex_destroy(&r.mu);
	return r.total;
}
