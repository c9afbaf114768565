/* train.c - everything between the CLI and the generated step functions:
 * datasets, block allocation, initialisation, shuffling, learning-rate
 * schedules, the epoch loop and evaluation.
 *
 * Every value that reaches the model (initial parameters, the order of the
 * samples, lr, bc1, bc2) is computed with IEEE primitives and nnd's own
 * transcendentals only, so it is the same bits on every machine.  The fixed
 * rules, in one place:
 *
 *  - Init, element i of a tensor (row-major): w = philox4x32_10(ctr = {i lo,
 *    i hi, 0, 0}, key = nnd_stream_key(seed, hash of the tensor's stream)).
 *    u = (w0 >> 8) * 2^-24 (exact in binary32).
 *      uniform(low, high)   low + (high - low) * u, in binary32
 *      xavier_uniform       bound = (float)sqrt(6.0 / (fan_in + fan_out))
 *      kaiming_uniform      bound = (float)sqrt(6.0 / fan_in)   (gain sqrt 2)
 *                           then uniform(-bound, bound)
 *      normal(mean, std)    u1 = ((w0 >> 8) + 1) * 2^-24 in (0, 1],
 *                           u2 = (w1 >> 8) * 2^-24,
 *                           z = sqrtf(-2 * nnd_rt_logf(u1)) * nnd_rt_cosf((float)(2 pi) * u2),
 *                           value = mean + std * z, all in binary32
 *      kaiming_normal       normal(0, (float)sqrt(2.0 / fan_in))
 *    The bounds are computed in double (sqrt is correctly rounded, hence
 *    portable) and rounded once to binary32.
 *  - Shuffle of epoch e (0-based): perm = identity, then Fisher-Yates from
 *    i = n-1 down to 1: w = philox(ctr = {i lo, e, i hi, 0}, key =
 *    nnd_stream_key(seed, nnd_path_hash("shuffle"))), j = (w0 * (i+1)) >> 32
 *    (64-bit product; bias below (i+1)/2^32, irrelevant for shuffling),
 *    swap perm[i], perm[j].
 *  - lr of 0-based step t in 0-based epoch e (double, rounded once to float):
 *      warmup W > 0 and t < W: lr * (t + 1) / W
 *      otherwise the inner schedule, on the same t and e (its clock is not
 *      shifted by the warmup):
 *      constant   lr
 *      step       lr * gamma^floor(e / every)
 *      cosine     lr * 0.5 * (1 + nnd_rt_cos(pi * min(t, S) / S)), S =
 *                 T * steps_per_epoch, T = cosine's epochs (or the run's
 *                 epochs when 0); past S the rate stays at its minimum.
 *    x^k is computed by binary exponentiation in double (a fixed sequence of
 *    correctly rounded multiplications).
 *  - bc1 = (float)(1 - beta1^t), bc2 = (float)(1 - beta2^t), t = the 1-based
 *    step, with the same exponentiation.
 *  - Reported means (train_loss, eval loss and metrics) are batch-size
 *    weighted: sum in double, in batch order, of B * value, divided by the
 *    number of samples.  An epoch line is printed for complete epochs only;
 *    a run stopped mid-epoch by --steps prints none for the partial epoch
 *    (the resumed run prints it, with the loss of the whole epoch). */
#include "rt_internal.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <pthread.h>
#include <time.h>
#include <stdlib.h>
#include <string.h>

#define RT_PI 3.14159265358979323846

static double powi(double x, int64_t k)
{
	double r = 1.0;
	while (k > 0) {
		if (k & 1) r = r * x;
		x = x * x;
		k >>= 1;
	}
	return r;
}

static const char *field_file(const rt_dataset *ds, int f)
{
	return ds->kind == 0 ? (f == 0 ? ds->path1 : ds->path2) : ds->path1;
}

/* The rows of d against the program's `field` records; files[F]: the file
 * that holds field F, for the message. */
static void check_rows(const rt_program *p, nnd_data *d, const char *const files[2], const char *hint)
{
	for (int k = 0; k < p->nfields; k++) {
		const rt_field *fl = &p->fields[k];
		int F = fl->f;
		bool ok = d->dtype[F] == fl->dtype && d->rank[F] == fl->rank - 1;
		for (int j = 0; ok && j < d->rank[F]; j++) ok = d->dims[F][j] == fl->dims[j + 1];
		if (!ok) {
			char want[128] = "", got[128] = "";
			size_t o = 0;
			o += snprintf(want + o, sizeof want - o, "%s[N", rt_dtype_name(fl->dtype));
			for (int j = 1; j < fl->rank && o < sizeof want; j++) o += snprintf(want + o, sizeof want - o, ", %" PRId64, fl->dims[j]);
			if (o < sizeof want) snprintf(want + o, sizeof want - o, "]");
			o = 0;
			o += snprintf(got + o, sizeof got - o, "%s[N", rt_dtype_name(d->dtype[F]));
			for (int j = 0; j < d->rank[F] && j < 4 && o < sizeof got; j++) o += snprintf(got + o, sizeof got - o, ", %" PRId64, d->dims[F][j]);
			if (o < sizeof got) snprintf(got + o, sizeof got - o, "]");
			nnd_data_free(d);
			rt_die(1, "%s: the program was compiled for %s %s, but the file holds %s (%s)",
			       files[F], F ? "labels" : "features", want, got, hint);
		}
	}
}

/* epochs * steps and the like: `epochs 9223372036854775807` is legal
 * (a run stopped by --steps), so products saturate instead of wrapping */
static int64_t mul_sat(int64_t a, int64_t b)
{
	int64_t r;
	return __builtin_mul_overflow(a, b, &r) ? INT64_MAX : r;
}

/* Loading a dataset is split into reading it, which may run on a thread
 * of its own (no rt_die), and reporting its error or checking its rows. */
static int dataset_read(const rt_dataset *ds, nnd_data *d, char *err, size_t errlen)
{
	return ds->kind == 0 ? nnd_data_load_idx(ds->path1, ds->path2, false, d, err, errlen)
	                     : rt_data_load_csv(ds->path1, ds->path2, ds->cols, ds->ncols, false, d, err, errlen);
}

static void dataset_accept(const rt_program *p, const rt_dataset *ds, nnd_data *d, int rc, const char *err)
{
	if (rc != 0) rt_die(1, "dataset %s: %s", ds->name, err[0] ? err : "cannot be read");
	const char *files[2] = { field_file(ds, 0), field_file(ds, 1) };
	check_rows(p, d, files, "rebuild the program for this data");
}

void rt_load_dataset(const rt_program *p, const rt_dataset *ds, nnd_data *d)
{
	char err[1024] = "";
	int rc = dataset_read(ds, d, err, sizeof err);
	dataset_accept(p, ds, d, rc, err);
}

typedef struct {
	const rt_dataset *ds;
	nnd_data *d;
	int rc;
	char err[1024];
} dataset_job;

static void *dataset_thread(void *arg)
{
	dataset_job *j = arg;
	j->rc = dataset_read(j->ds, j->d, j->err, sizeof j->err);
	return NULL;
}

void rt_load_train_eval(rt_run *r, bool want_eval)
{
	const rt_program *p = r->prog;
	const rt_dataset *ds = &p->datasets[p->data_ds];
	if (!want_eval) {
		rt_load_dataset(p, ds, &r->data);
		r->have_data = true;
		return;
	}
	/* A plain thread, not the compute pool: the pool runs kernels'
	 * chunks, and --threads 1 must not serialise the two reads. */
	char err[1024] = "";
	if (rt_data_threads_init(err, sizeof err) != 0) rt_die(2, "%s", err);
	dataset_job ev = { .ds = &p->datasets[p->eval_ds], .d = &r->eval, .rc = -1, .err = "" };
	pthread_t tid;
	int thread_err = pthread_create(&tid, NULL, dataset_thread, &ev);
	int rc = dataset_read(ds, &r->data, err, sizeof err);
	if (thread_err != 0) {
		/* no thread to be had (a process limit): one after the other,
		 * as the results are the same */
		dataset_accept(p, ds, &r->data, rc, err);
		r->have_data = true;
		rt_load_dataset(p, ev.ds, &r->eval);
		r->have_eval = true;
		return;
	}
	/* joined before any report, so that an error (which may unwind into
	 * nndc run) leaves no thread behind */
	int jrc = pthread_join(tid, NULL);
	if (jrc != 0) rt_die(2, "cannot join the thread reading dataset %s: %s", ev.ds->name, strerror(jrc));
	/* the run owns a read eval set from here, so an error below frees it */
	r->have_eval = ev.rc == 0;
	dataset_accept(p, ds, &r->data, rc, err);
	r->have_data = true;
	dataset_accept(p, ev.ds, &r->eval, ev.rc, ev.err);
	r->have_eval = true;
}

void rt_load_infer_input(const rt_program *p, const char *path, nnd_data *d)
{
	const rt_dataset *ds = &p->datasets[p->data_ds];
	char err[1024] = "";
	/* a CSV's feature columns are those of the training data, by name */
	int rc = ds->kind == 0 ? rt_data_load_idx_images(path, d, err, sizeof err)
	                       : rt_data_load_csv(path, ds->path2, ds->cols, ds->ncols, true, d, err, sizeof err);
	if (rc != 0) rt_die(1, "--input: %s", err[0] ? err : "cannot be read");
	const char *files[2] = { path, path };
	check_rows(p, d, files, ds->kind == 0 ? "infer --input takes an IDX images file shaped like the training images"
	                                      : "infer --input takes a CSV with the training data's feature columns");
}

void rt_run_alloc(rt_run *r)
{
	const rt_program *p = r->prog;
	/* a batch larger than every dataset only ever holds a dataset's rows:
	 * buffers for `batch 1000000` on 50 samples would be memory for nothing
	 * (and the layout of the rows, not their values, depends on Bmax) */
	int64_t most = r->data.n > (r->have_eval ? r->eval.n : 0) ? r->data.n : (r->have_eval ? r->eval.n : 0);
	r->bmax = most > 0 && most < p->batch ? most : p->batch;
	int64_t Bmax = r->bmax;
	r->params = rt_aligned_zalloc((size_t)p->n_params * sizeof(float));
	r->grads = rt_aligned_zalloc((size_t)p->n_params * sizeof(float));
	r->opt = rt_aligned_zalloc((size_t)p->n_opt * sizeof(float));
	r->state = rt_aligned_zalloc((size_t)p->n_states * sizeof(float));
	int64_t acts = 0;
	int nout = 1;
	for (int g = 0; g < RT_NGRAPHS; g++) {
		const rt_graph *G = &p->graphs[g];
		if (!G->present) continue;
		int64_t b = G->act_c + G->act_b * Bmax;
		if (b > acts) acts = b;
		if (G->nout > nout) nout = G->nout;
	}
	r->acts = rt_aligned_zalloc((size_t)acts);
	r->outputs = rt_aligned_zalloc((size_t)nout * sizeof(float));
	r->keys = rt_aligned_zalloc((size_t)p->nstreams * 2 * sizeof(uint32_t));
	for (int s = 0; s < p->nstreams; s++) {
		/* the compiler and the runtime must agree on every stream's hash,
		 * or generated code and initialisers would draw other numbers */
		if (nnd_path_hash(p->streams[s].path) != p->streams[s].hash)
			rt_die(2, "manifest line %d: stream '%s' has hash %016" PRIx64 ", the runtime computes %016" PRIx64,
			       p->streams[s].line, p->streams[s].path, p->streams[s].hash, nnd_path_hash(p->streams[s].path));
		nnd_stream_key(r->seed, p->streams[s].hash, &r->keys[2 * s]);
	}
}

void rt_run_free(rt_run *r)
{
	rt_dev_close(r);
	free(r->params); free(r->grads); free(r->opt); free(r->state);
	free(r->acts); free(r->outputs); free(r->keys);
	if (r->have_data) nnd_data_free(&r->data);
	if (r->have_eval) nnd_data_free(&r->eval);
	free(r->data_digests);
	r->data_digests = NULL;
	r->params = r->grads = r->opt = r->state = r->outputs = NULL;
	r->acts = NULL; r->keys = NULL;
	r->have_data = r->have_eval = false;
}

static void init_tensor(const rt_run *r, const rt_tensor *t, float *dst)
{
	uint32_t key[2] = { 0, 0 };
	if (t->stream >= 0) { key[0] = r->keys[2 * t->stream]; key[1] = r->keys[2 * t->stream + 1]; }
	float lo = 0, hi = 0, mean = 0, std = 0;
	bool normal = false;
	switch (t->init) {
	case RT_INIT_ZEROS: for (int64_t i = 0; i < t->numel; i++) dst[i] = 0.0f; return;
	case RT_INIT_ONES: for (int64_t i = 0; i < t->numel; i++) dst[i] = 1.0f; return;
	case RT_INIT_CONSTANT: for (int64_t i = 0; i < t->numel; i++) dst[i] = (float)t->a; return;
	case RT_INIT_UNIFORM: lo = (float)t->a; hi = (float)t->b; break;
	case RT_INIT_XAVIER_UNIFORM:
	case RT_INIT_KAIMING_UNIFORM: {
		int64_t fan = t->init == RT_INIT_XAVIER_UNIFORM ? t->fan_in + t->fan_out : t->fan_in;
		if (fan <= 0) rt_die(2, "manifest line %d: %s of '%s' needs a positive fan", t->line, t->init_name, t->path);
		hi = (float)sqrt(6.0 / (double)fan);
		lo = -hi;
		break;
	}
	case RT_INIT_NORMAL: normal = true; mean = (float)t->a; std = (float)t->b; break;
	case RT_INIT_KAIMING_NORMAL:
		if (t->fan_in <= 0) rt_die(2, "manifest line %d: kaiming_normal of '%s' needs fan_in > 0", t->line, t->path);
		normal = true; mean = 0.0f; std = (float)sqrt(2.0 / (double)t->fan_in);
		break;
	default: rt_die(2, "manifest line %d: unknown initializer", t->line);
	}
	const float two_pi = (float)(2.0 * RT_PI);
	for (int64_t i = 0; i < t->numel; i++) {
		uint32_t ctr[4] = { (uint32_t)i, (uint32_t)((uint64_t)i >> 32), 0, 0 }, w[4];
		nnd_philox4x32_10(ctr, key, w);
		if (!normal) {
			float u = (float)(w[0] >> 8) * 0x1p-24f;
			dst[i] = lo + (hi - lo) * u;
		} else {
			float u1 = (float)((w[0] >> 8) + 1) * 0x1p-24f;
			float u2 = (float)(w[1] >> 8) * 0x1p-24f;
			float z = sqrtf(-2.0f * nnd_rt_logf(u1)) * nnd_rt_cosf(two_pi * u2);
			dst[i] = mean + std * z;
		}
	}
}

void rt_init_params(rt_run *r)
{
	const rt_program *p = r->prog;
	for (int i = 0; i < p->nparams; i++) init_tensor(r, &p->params[i], r->params + p->params[i].offset);
	for (int i = 0; i < p->nstates; i++) init_tensor(r, &p->states[i], r->state + p->states[i].offset);
}

static double now_seconds(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

void rt_params_sha256(const rt_run *r, char hex[65])
{
	/* tensor by tensor in manifest order: params need not be contiguous or
	 * in manifest order inside the block; the host is little-endian
	 * (checked in main.c), so the floats' bytes are the digest's input */
	const rt_program *p = r->prog;
	nnd_sha256_ctx *c = nnd_sha256_begin();
	for (int i = 0; i < p->nparams; i++)
		nnd_sha256_update(c, r->params + p->params[i].offset, (size_t)p->params[i].numel * sizeof(float));
	uint8_t dig[32];
	nnd_sha256_end(c, dig);
	nnd_sha256_hex(dig, hex);
}

float rt_schedule_lr(const rt_run *r, int64_t t, int64_t epoch)
{
	const rt_program *p = r->prog;
	double base = p->opt.lr;
	if (p->sched.warmup > 0 && t < p->sched.warmup)
		return (float)(base * (double)(t + 1) / (double)p->sched.warmup);
	switch (p->sched.kind) {
	case RT_SCHED_STEP:
		return (float)(base * powi(p->sched.gamma, epoch / p->sched.every));
	case RT_SCHED_COSINE: {
		int64_t T = p->sched.epochs > 0 ? p->sched.epochs : r->epochs;
		int64_t S = mul_sat(T, r->steps_per_epoch);
		if (S <= 0) return (float)base;
		int64_t tt = t < S ? t : S;
		return (float)(base * 0.5 * (1.0 + nnd_rt_cos(RT_PI * (double)tt / (double)S)));
	}
	default:
		return (float)base;
	}
}

void rt_shuffle(const rt_run *r, int64_t epoch, int64_t *perm)
{
	int64_t n = r->n;
	for (int64_t i = 0; i < n; i++) perm[i] = i;
	if (!r->prog->shuffle) return;
	uint32_t key[2];
	nnd_stream_key(r->seed, nnd_path_hash("shuffle"), key);
	for (int64_t i = n - 1; i >= 1; i--) {
		uint32_t ctr[4] = { (uint32_t)i, (uint32_t)epoch, (uint32_t)((uint64_t)i >> 32), 0 }, w[4];
		nnd_philox4x32_10(ctr, key, w);
		int64_t j = (int64_t)(((uint64_t)w[0] * (uint64_t)(i + 1)) >> 32);
		int64_t tmp = perm[i]; perm[i] = perm[j]; perm[j] = tmp;
	}
}

/* Batch buffers: one contiguous block per input field, Bmax rows. */
typedef struct batchbuf {
	uint8_t *buf[RT_MAX_FIELDS];
	const void *ptr[RT_MAX_FIELDS];
	int64_t *idx;
} batchbuf;

static void batch_alloc_rows(batchbuf *bb, const rt_program *p, const nnd_data *d, int64_t rows)
{
	for (int k = 0; k < p->nfields; k++) {
		bb->buf[k] = rt_aligned_zalloc((size_t)(d->row_bytes[p->fields[k].f] * rows));
		bb->ptr[k] = bb->buf[k];
	}
	bb->idx = rt_xcalloc((size_t)rows, sizeof(int64_t));
}

static void batch_free(batchbuf *bb, const rt_program *p)
{
	for (int k = 0; k < p->nfields; k++) free(bb->buf[k]);
	free(bb->idx);
}

static void gather(batchbuf *bb, const rt_program *p, const nnd_data *d, const int64_t *rows, int64_t B)
{
	for (int k = 0; k < p->nfields; k++) {
		int F = p->fields[k].f;
		size_t rb = (size_t)d->row_bytes[F];
		for (int64_t i = 0; i < B; i++) memcpy(bb->buf[k] + (size_t)i * rb, d->buf[F] + (size_t)rows[i] * rb, rb);
	}
	memcpy(bb->idx, rows, (size_t)B * sizeof(int64_t));
}

/* The batch being computed, for the message of a label outside the
 * classes: the kernels that find one know only its row in the batch
 * (nnd_rt_bad_label).  Set by the thread that runs the step before the
 * pool's threads see it. */
static struct { const nnd_data *d; const int64_t *rows; int64_t B; } cur_batch;

bool rt_batch_row_where(int64_t row, char *buf, size_t n)
{
	if (!cur_batch.d || row < 0 || row >= cur_batch.B)
		return false;
	int64_t s = cur_batch.rows[row];
	char where[600];
	if (rt_data_where(cur_batch.d, s, where, sizeof where))
		snprintf(buf, n, "sample %" PRId64 ", whose label is at %s", s, where);
	else
		snprintf(buf, n, "sample %" PRId64, s);
	return true;
}

/* one graph over a batch of d: the generated step function, or its
 * kernels on the device */
static void run_graph(rt_run *r, int graph, nnd_step_fn fn, nnd_step_args *a, const nnd_data *d)
{
	cur_batch.d = d;
	cur_batch.rows = a->sample_idx;
	cur_batch.B = a->B;
	if (r->dev)
		rt_dev_step(r, graph, a);
	else
		fn(a);
	cur_batch.d = NULL;
}

/* The labels of samples [0, n) of d against the classes of the loss's
 * cross_entropy, when the program records them: a bad label is reported
 * with its file and offset or line before any step, not by the kernel in
 * the middle of an epoch (or, in an eval set, after one). */
static void check_labels(const rt_program *p, const nnd_data *d, int64_t n)
{
	char err[1024] = "";
	if (p->classes > 0 && rt_data_check_labels(d, n, p->classes, err, sizeof err) != 0)
		rt_die(1, "%s", err);
}

/* A batchnorm over [N, C] divides by N - 1 for its running variance, so a
 * train step of one row has none: refused before the first step (as
 * PyTorch refuses it), not left to turn the running variance into NaN. */
static void check_step_rows(const rt_run *r)
{
	const rt_program *p = r->prog;
	int64_t last = r->n % p->batch ? r->n % p->batch : p->batch;
	int64_t rows = last < p->batch ? last : p->batch;
	if (!p->min_rows || rows >= p->min_rows)
		return;
	char where[128];
	if (r->n < p->batch)
		snprintf(where, sizeof where, "each epoch is one batch of %" PRId64 " (the samples there are)", r->n);
	else if (last < p->batch)
		snprintf(where, sizeof where, "the last batch of each epoch holds %" PRId64 " (%" PRId64 " samples in "
		         "batches of %" PRId64 ")", last, r->n, p->batch);
	else
		snprintf(where, sizeof where, "each batch holds %" PRId64, rows);
	rt_die(1, "%s:%d:%d: batchnorm needs at least %" PRId64 " samples per train step for a variance, and %s; "
	       "use another batch size or --limit", r->man->source_path, p->min_rows_line, p->min_rows_col, p->min_rows,
	       where);
}

static void fill_args(nnd_step_args *a, rt_run *r, batchbuf *bb, int64_t B)
{
	memset(a, 0, sizeof *a);
	a->params = r->params;
	a->grads = r->grads;
	a->opt = r->opt;
	a->state = r->state;
	a->acts = r->acts;
	a->inputs = bb->ptr;
	a->sample_idx = bb->idx;
	a->keys = r->keys;
	a->outputs = r->outputs;
	a->B = B;
	a->Bmax = r->bmax;
	a->step = r->step + 1;
	a->epoch = r->epoch;
}

void rt_evaluate(rt_run *r, const nnd_data *d, double *out)
{
	const rt_program *p = r->prog;
	int pi = p->index;
	const rt_graph *G = &p->graphs[RT_GRAPH_EVAL];
	nnd_step_fn fn = r->model->eval ? r->model->eval[pi] : NULL;
	if (!G->present || !fn) rt_die(1, "train block %s has no eval graph", p->name);
	for (int k = 0; k < G->nout; k++) out[k] = 0.0;
	if (d->n == 0) return;
	check_labels(p, d, d->n);
	batchbuf bb;
	batch_alloc_rows(&bb, p, d, r->bmax);
	int64_t *rows = rt_xcalloc((size_t)r->bmax, sizeof(int64_t));
	for (int64_t start = 0; start < d->n; start += p->batch) {
		int64_t B = d->n - start < p->batch ? d->n - start : p->batch;
		for (int64_t i = 0; i < B; i++) rows[i] = start + i;
		gather(&bb, p, d, rows, B);
		nnd_step_args a;
		fill_args(&a, r, &bb, B);
		a.step = r->step;   /* no optimizer step is taken */
		if (rt_prof_enabled()) {
			a.debug |= 2;
			rt_prof_step_begin();
		}
		run_graph(r, RT_GRAPH_EVAL, fn, &a, d);
		for (int k = 0; k < G->nout; k++) out[k] += (double)r->outputs[k] * (double)B;
	}
	for (int k = 0; k < G->nout; k++) out[k] /= (double)d->n;
	free(rows);
	batch_free(&bb, p);
}

static _Noreturn void loss_not_finite(const rt_run *r, float loss, const int64_t *rows, int64_t B)
{
	char list[256];
	size_t o = 0;
	for (int64_t i = 0; i < B && i < 8 && o < sizeof list; i++)
		o += snprintf(list + o, sizeof list - o, "%s%" PRId64, i ? ", " : "", rows[i]);
	if (B > 8 && o < sizeof list) snprintf(list + o, sizeof list - o, ", ... (%" PRId64 " rows)", B);
	rt_die(1, "train: loss became %s at epoch %" PRId64 " step %" PRId64 " (batch of samples %s); "
	       "lower the learning rate or check the data",
	       isnan(loss) ? "NaN" : "inf", r->epoch + 1, r->step + 1, list);
}

int rt_train(rt_run *r, const rt_opts *o)
{
	const rt_program *p = r->prog;
	int pi = p->index;
	nnd_step_fn train = r->model->train[pi];
	if (!train) rt_die(2, "train block %s has no train step function", p->name);
	bool do_eval = r->have_eval && p->graphs[RT_GRAPH_EVAL].present && r->model->eval && r->model->eval[pi];
	const rt_graph *EG = &p->graphs[RT_GRAPH_EVAL];
	/* the samples this run can use (--limit), and the eval set */
	check_step_rows(r);
	check_labels(p, &r->data, r->n);
	if (do_eval) check_labels(p, &r->eval, r->eval.n);
	double *evals = rt_xcalloc((size_t)(EG->nout + 1), sizeof(double));

	rt_ckpt_begin(r, o->resume, o->save);
	rt_log lg = { 0 };
	if (o->log) rt_log_open(&lg, o->log, r);
	/* --debug-digests: this step's node digests, for the log (static: an
	 * error unwinding past this function leaves no dangling table behind) */
	static rt_digests step_digests;
	rt_digests *tab = o->digests ? o->digests : o->debug ? &step_digests : NULL;
	rt_digests_activate(tab);

	int64_t *perm = rt_xcalloc((size_t)(r->n ? r->n : 1), sizeof(int64_t));
	batchbuf bb;
	batch_alloc_rows(&bb, p, &r->data, r->bmax);

	/* samples this invocation will process, for the progress ETA */
	int64_t total_steps = mul_sat(r->epochs, r->steps_per_epoch);
	if (o->steps >= 0 && o->steps < total_steps) total_steps = o->steps;
	int64_t todo = total_steps > r->step ? mul_sat(total_steps - r->step, p->batch) : 0;
	rt_progress pg;
	rt_progress_begin(&pg, todo);
	int64_t done = 0;
	double step_seconds = 0.0;   /* batch gathering and train steps only */

	while (r->epoch < r->epochs) {
		if (o->steps >= 0 && r->step >= o->steps) break;
		rt_shuffle(r, r->epoch, perm);
		bool stopped = false;
		for (; r->pos < r->steps_per_epoch; r->pos++) {
			if (o->steps >= 0 && r->step >= o->steps) { stopped = true; break; }
			int64_t start = r->pos * p->batch;
			int64_t B = r->n - start < p->batch ? r->n - start : p->batch;
			const int64_t *rows = perm + start;
			double t0 = now_seconds();
			gather(&bb, p, &r->data, rows, B);
			nnd_step_args a;
			fill_args(&a, r, &bb, B);
			float lr = rt_schedule_lr(r, r->step, r->epoch);
			a.lr = lr;
			a.bc1 = (float)(1.0 - powi(p->opt.beta1, a.step));
			a.bc2 = (float)(1.0 - powi(p->opt.beta2, a.step));
			if (tab) {
				a.debug |= 1;
				if (tab == &step_digests) rt_digests_clear(tab);
			}
			if (o->profile) {
				a.debug |= 2;
				rt_prof_step_begin();
			}
			run_graph(r, RT_GRAPH_TRAIN, train, &a, &r->data);
			step_seconds += now_seconds() - t0;
			float loss = r->outputs[0];
			if (!isfinite(loss)) {
				rt_progress_end(&pg);
				loss_not_finite(r, loss, rows, B);
			}
			r->step++;
			r->epoch_loss_sum += (double)loss * (double)B;
			r->epoch_samples += B;
			if (lg.f) {
				/* the log's params_sha256 (every 100 steps, every step with node digests) */
				if (r->dev && (r->step % 100 == 0 || tab == &step_digests)) rt_dev_download(r);
				if (tab == &step_digests) rt_digests_sort(tab);
				rt_log_step(&lg, r, loss, lr, r->step % 100 == 0, tab == &step_digests ? tab : NULL);
			}
			if (o->on_step) o->on_step(o->on_step_ctx, r, loss);
			done += B;
			if (!o->quiet) rt_progress_update(&pg, r, done, loss);
		}
		if (stopped) break;
		/* a complete epoch: evaluate and report */
		rt_progress_end(&pg);
		if (o->quiet) {
			r->epoch++;
			r->pos = 0;
			r->epoch_loss_sum = 0.0;
			r->epoch_samples = 0;
			continue;
		}
		/* evaluated before anything is printed: an eval that fails leaves
		 * no half line on stdout */
		if (do_eval) rt_evaluate(r, &r->eval, evals);
		printf("epoch %" PRId64 " train_loss %.4f", r->epoch + 1,
		       r->epoch_samples ? r->epoch_loss_sum / (double)r->epoch_samples : 0.0);
		if (do_eval) {
			printf(" eval_loss %.4f", evals[0]);
			for (int k = 1; k < EG->nout; k++) printf(" %s %.4f", EG->outs[k], evals[k]);
		}
		printf("\n");
		fflush(stdout);
		r->epoch++;
		r->pos = 0;
		r->epoch_loss_sum = 0.0;
		r->epoch_samples = 0;
	}
	rt_progress_end(&pg);
	rt_digests_activate(NULL);
	if (tab == &step_digests) rt_digests_free(tab);

	char hex[65];
	if (r->dev) rt_dev_download(r);
	rt_params_sha256(r, hex);
	if (lg.f) { rt_log_final(&lg, r); rt_log_close(&lg); }
	if (o->save) rt_ckpt_save(r, o->save);
	if (!o->quiet) printf("sha256 %s\n", hex);
	fflush(stdout);
	if (o->profile) rt_prof_report(p, stderr, 25);
	/* throughput goes to stderr: stdout holds only results (cli.md) */
	if (done > 0 && step_seconds > 0 && !o->quiet)
		fprintf(stderr, "samples_per_s %.0f (%" PRId64 " samples in %.3f s of training steps)\n",
		        (double)done / step_seconds, done, step_seconds);
	batch_free(&bb, p);
	free(perm);
	free(evals);
	return 0;
}

/* Inference over d in batches of Bn rows (the last one partial): one line
 * per sample to out (the result row's floats, %.9g, space separated), and
 * the SHA-256 of all result floats (little-endian binary32, sample order)
 * in hex.  Each sample's row depends on that sample only (determinism.md
 * section 4), so hex does not depend on Bn. */
void rt_infer(rt_run *r, const nnd_data *d, int64_t Bn, FILE *out, const char *outname, char hex[65])
{
	const rt_program *p = r->prog;
	const rt_graph *G = &p->graphs[RT_GRAPH_INFER];
	nnd_step_fn fn = r->model->infer ? r->model->infer[p->index] : NULL;
	if (!G->present || !fn) rt_die(1, "infer: train block %s has no infer graph", p->name);
	int64_t row = G->res_row;
	batchbuf bb;
	batch_alloc_rows(&bb, p, d, Bn);
	/* the arena and the result for Bn rows (Bn may exceed the train batch) */
	uint8_t *acts = rt_aligned_zalloc((size_t)(G->act_c + G->act_b * Bn));
	float *res = rt_aligned_zalloc((size_t)(Bn * row) * sizeof(float));
	int64_t *rows = rt_xcalloc((size_t)Bn, sizeof(int64_t));
	nnd_sha256_ctx *c = nnd_sha256_begin();
	for (int64_t start = 0; start < d->n; start += Bn) {
		int64_t B = d->n - start < Bn ? d->n - start : Bn;
		for (int64_t i = 0; i < B; i++) rows[i] = start + i;
		gather(&bb, p, d, rows, B);
		nnd_step_args a;
		fill_args(&a, r, &bb, B);
		a.acts = acts;
		a.Bmax = Bn;
		a.step = r->step;   /* no optimizer step is taken */
		a.result = res;
		run_graph(r, RT_GRAPH_INFER, fn, &a, d);
		for (int64_t i = 0; i < B; i++) {
			for (int64_t j = 0; j < row; j++)
				fprintf(out, j ? " %.9g" : "%.9g", (double)res[i * row + j]);
			if (fputc('\n', out) == EOF) break;
		}
		if (ferror(out)) rt_die(1, "%s: cannot write: %s", outname, strerror(errno));
		nnd_sha256_update(c, res, (size_t)(B * row) * sizeof(float));
	}
	uint8_t dig[32];
	nnd_sha256_end(c, dig);
	nnd_sha256_hex(dig, hex);
	free(rows);
	free(res);
	free(acts);
	batch_free(&bb, p);
}
