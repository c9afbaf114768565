/* fake_model.c - a hand-written "compiled model" for the runtime's tests.
 *
 * It stands in for what codegen emits (a manifest plus train/eval step
 * functions honouring the nnd_step_args ABI), so the training loop,
 * checkpoints, logs and CLI can be tested without the compiler:
 * a linear softmax classifier logits = x @ w + b on a CSV dataset with
 * 4 features and 3 classes, cross-entropy loss, accuracy metric, SGD with
 * momentum, following the op semantics of ir/ops.def (cross_entropy,
 * cross_entropy_bwd, accuracy, sgd_update, sequential plans).  A state
 * tensor `lin.count` counts the steps taken, to check that state survives a
 * checkpoint.
 *
 * Like generated code, the steps split independent outputs over the
 * runtime's thread pool (nnd_rt_parallel_for: rows of the matmul, elements
 * of the gradients and of the update; never a reduction's order), report
 * every node's value through nnd_rt_node_digest when args.debug is set
 * (node ids as in the manifest's `node` records), and the infer graph
 * writes the logits of each row to args.result.
 *
 * Environment (so that one binary covers every test):
 *   FAKE_TRAIN, FAKE_EVAL  CSV paths (FAKE_EVAL empty or unset: no eval set)
 *   FAKE_LR                learning rate (default 0.1)
 *   FAKE_SCHED             the schedule record's tail (default cosine with
 *                          warmup 2)
 *   FAKE_BROKEN            1: a malformed manifest line (internal error test)
 *   FAKE_RACY              1: the train step also computes node 13, a
 *                          nnd_rt_racy_sum of adversarial data (the planted
 *                          nondeterminism nndc verify must catch)
 *   FAKE_NO_INFER          1: no infer graph
 * `fake_model gen-data PATH N SEED` writes a deterministic CSV dataset;
 * `fake_model verify [THREADS,...] [STEPS]` runs nnd_rt_verify;
 * `fake_model bench-pool THREADS CALLS` times nnd_rt_parallel_for. */
#include "runtime/rt.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define F 4
#define C 3

/* node ids of the train graph (manifest `node train` records) */
enum { N_X, N_Y, N_W, N_MM, N_B, N_ADD, N_CE, N_CE_BWD, N_DW, N_DB, N_UPD_W, N_UPD_B, N_COUNT, N_RACY };

static void digest(nnd_step_args *a, int graph, int node, const void *p, int64_t bytes)
{
	if (a->debug) nnd_rt_node_digest(a, graph, node, p, bytes);
}

/* x @ w for rows [lo, hi) into mm (the second half of the arena, before
 * cross_entropy_bwd uses it) */
static void mm_rows(nnd_step_args *a, int64_t lo, int64_t hi)
{
	const float *x = a->inputs[0], *w = a->params;
	float *mm = (float *)a->acts + a->Bmax * C;
	for (int64_t i = lo; i < hi; i++)
		for (int c = 0; c < C; c++) {
			float acc = 0.0f;   /* matmul, seq plan over k */
			for (int f = 0; f < F; f++) acc = acc + x[i * F + f] * w[f * C + c];
			mm[i * C + c] = acc;
		}
}

static void add_rows(nnd_step_args *a, int64_t lo, int64_t hi)
{
	const float *b = a->params + F * C, *mm = (float *)a->acts + a->Bmax * C;
	float *logits = (float *)a->acts;
	for (int64_t i = lo; i < hi; i++)
		for (int c = 0; c < C; c++) logits[i * C + c] = mm[i * C + c] + b[c];
}

/* logits = x @ w + b into the first B * C floats of the arena; graph g's
 * node digests (same ids in every graph: 0..5) */
static void forward(nnd_step_args *a, int g)
{
	digest(a, g, N_X, a->inputs[0], a->B * F * 4);
	digest(a, g, N_Y, a->inputs[1], a->B * 4);
	digest(a, g, N_W, a->params, F * C * 4);
	nnd_rt_parallel_for(mm_rows, a, a->B, 1);
	digest(a, g, N_MM, (float *)a->acts + a->Bmax * C, a->B * C * 4);
	digest(a, g, N_B, a->params + F * C, C * 4);
	nnd_rt_parallel_for(add_rows, a, a->B, 1);
	digest(a, g, N_ADD, a->acts, a->B * C * 4);
}

/* cross_entropy per ops.def; if dx != NULL also cross_entropy_bwd with
 * dloss = 1 */
static float cross_entropy(const nnd_step_args *a, const float *x, float *dx)
{
	const int32_t *lab = a->inputs[1];
	float sum = 0.0f;
	float g = 1.0f / (float)a->B;
	for (int64_t i = 0; i < a->B; i++) {
		if (lab[i] < 0 || lab[i] >= C) nnd_rt_bad_label(i, lab[i], C);
		const float *xi = x + i * C;
		float m = xi[0];
		for (int c = 1; c < C; c++) m = (xi[c] > m || xi[c] != xi[c]) ? xi[c] : m;
		float s = 0.0f;
		for (int c = 0; c < C; c++) s = s + nnd_rt_expf(xi[c] - m);
		float l = (m + nnd_rt_logf(s)) - xi[lab[i]];
		sum = sum + l;
		if (dx)
			for (int c = 0; c < C; c++)
				dx[i * C + c] = (nnd_rt_expf(xi[c] - m) / s - (c == lab[i] ? 1.0f : 0.0f)) * g;
	}
	return sum / (float)a->B;
}

/* dw[k], k = f * C + c: each output's sum over the batch stays sequential
 * (the plan); only the outputs are split */
static void dw_elems(nnd_step_args *a, int64_t lo, int64_t hi)
{
	const float *x = a->inputs[0], *dx = (float *)a->acts + a->Bmax * C;
	for (int64_t k = lo; k < hi; k++) {
		int64_t f = k / C, c = k % C;
		float acc = 0.0f;
		for (int64_t i = 0; i < a->B; i++) acc = acc + x[i * F + f] * dx[i * C + c];
		a->grads[k] = acc;
	}
}

static void db_elems(nnd_step_args *a, int64_t lo, int64_t hi)
{
	const float *dx = (float *)a->acts + a->Bmax * C;
	for (int64_t c = lo; c < hi; c++) {
		float acc = 0.0f;
		for (int64_t i = 0; i < a->B; i++) acc = acc + dx[i * C + c];
		a->grads[F * C + c] = acc;
	}
}

/* sgd_update, momentum 0.9, no weight decay, not nesterov */
static void sgd_elems(nnd_step_args *a, int64_t lo, int64_t hi)
{
	const float momentum = 0.9f;
	for (int64_t k = lo; k < hi; k++) {
		float g = a->grads[k];
		a->opt[k] = momentum * a->opt[k] + g;
		g = a->opt[k];
		a->params[k] = a->params[k] - a->lr * g;
	}
}

static int racy;

static void train_step(nnd_step_args *a)
{
	float *logits = (float *)a->acts, *dx = logits + a->Bmax * C;
	forward(a, 0);
	a->outputs[0] = cross_entropy(a, logits, dx);
	digest(a, 0, N_CE, a->outputs, 4);
	digest(a, 0, N_CE_BWD, dx, a->B * C * 4);
	nnd_rt_parallel_for(dw_elems, a, F * C, 1);
	digest(a, 0, N_DW, a->grads, F * C * 4);
	nnd_rt_parallel_for(db_elems, a, C, 1);
	digest(a, 0, N_DB, a->grads + F * C, C * 4);
	nnd_rt_parallel_for(sgd_elems, a, F * C + C, 1);
	digest(a, 0, N_UPD_W, a->params, F * C * 4);
	digest(a, 0, N_UPD_B, a->params + F * C, C * 4);
	a->state[0] = a->state[0] + 1.0f;
	digest(a, 0, N_COUNT, a->state, 4);
	if (racy) {
		/* sequentially 1e8 absorbs every 1 and the sum is 0; per-thread
		 * partials keep some of them, in an order that varies */
		static float adv[64];
		adv[0] = 1e8f;
		for (int i = 1; i < 63; i++) adv[i] = 1.0f;
		adv[63] = -1e8f;
		float s = nnd_rt_racy_sum(adv, 64);
		digest(a, 0, N_RACY, &s, 4);
	}
}

static void eval_step(nnd_step_args *a)
{
	float *logits = (float *)a->acts;
	forward(a, 1);
	a->outputs[0] = cross_entropy(a, logits, NULL);
	const int32_t *lab = a->inputs[1];
	float hits = 0.0f;
	for (int64_t i = 0; i < a->B; i++) {
		int best = 0;
		for (int c = 1; c < C; c++)
			if (logits[i * C + c] > logits[i * C + best]) best = c;
		if (best == lab[i]) hits = hits + 1.0f;
	}
	a->outputs[1] = hits / (float)a->B;
}

/* infer: the logits of every row, into args.result */
static void infer_step(nnd_step_args *a)
{
	forward(a, 2);
	memcpy(a->result, a->acts, (size_t)a->B * C * sizeof(float));
}

static void bench_fn(nnd_step_args *a, int64_t lo, int64_t hi)
{
	(void)a; (void)lo; (void)hi;
}

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* per-call cost of nnd_rt_parallel_for with empty chunks: back to back,
 * after a 50 us gap (workers still spinning) and after 1 ms (asleep) */
static int bench_pool(int threads, long calls)
{
	nnd_step_args a;
	memset(&a, 0, sizeof a);
	nnd_rt_set_threads(threads);
	for (int i = 0; i < 1000; i++) nnd_rt_parallel_for(bench_fn, &a, threads, 1);   /* warm up */
	double t0 = now_s();
	for (long i = 0; i < calls; i++) nnd_rt_parallel_for(bench_fn, &a, threads, 1);
	double hot = (now_s() - t0) / (double)calls;
	printf("threads %d: %.2f us per call back to back", threads, hot * 1e6);
	long gap_calls = calls / 100 > 200 ? 200 : calls / 100 + 1;
	static const long gaps_us[2] = { 50, 1000 };
	for (int g = 0; g < 2; g++) {
		double sum = 0.0;
		for (long i = 0; i < gap_calls; i++) {
			double t1 = now_s();
			while (now_s() - t1 < (double)gaps_us[g] * 1e-6) { }   /* the caller busy elsewhere */
			t1 = now_s();
			nnd_rt_parallel_for(bench_fn, &a, threads, 1);
			sum += now_s() - t1;
		}
		printf(", %.2f us after %ld us idle", sum / (double)gap_calls * 1e6, gaps_us[g]);
	}
	printf("\n");
	return 0;
}

static int gen_data(const char *path, long n, unsigned long seed)
{
	FILE *f = fopen(path, "w");
	if (!f) { perror(path); return 1; }
	fprintf(f, "x0,x1,x2,x3,y\n");
	unsigned long s = seed * 2654435761ul + 1;
	for (long i = 0; i < n; i++) {
		double x[F];
		for (int k = 0; k < F; k++) {
			s = s * 6364136223846793005ul + 1442695040888963407ul;
			x[k] = (double)((s >> 33) % 2001) / 1000.0 - 1.0;
		}
		double sc[C] = { x[0] + 0.5 * x[1], x[2] - x[0], 0.3 - x[3] + 0.2 * x[1] };
		int y = 0;
		for (int c = 1; c < C; c++) if (sc[c] > sc[y]) y = c;
		fprintf(f, "%.3f,%.3f,%.3f,%.3f,%d\n", x[0], x[1], x[2], x[3], y);
	}
	if (fclose(f) != 0) { perror(path); return 1; }
	return 0;
}

static const char *env(const char *k, const char *def)
{
	const char *v = getenv(k);
	return v && *v ? v : def;
}

int main(int argc, char **argv)
{
	if (argc == 5 && !strcmp(argv[1], "gen-data"))
		return gen_data(argv[2], strtol(argv[3], NULL, 10), strtoul(argv[4], NULL, 10));
	if (argc == 4 && !strcmp(argv[1], "bench-pool"))
		return bench_pool((int)strtol(argv[2], NULL, 10), strtol(argv[3], NULL, 10));
	const char *train = env("FAKE_TRAIN", "train.csv"), *eval = env("FAKE_EVAL", NULL);
	racy = getenv("FAKE_RACY") != NULL;
	bool infer = getenv("FAKE_NO_INFER") == NULL;
	static char man[16384];
	int n = snprintf(man, sizeof man,
		"nnd-manifest 1\n"
		"compiler \"nndc 0.1.0\"\n"
		"source \"fake.nnd\" 0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef\n"
		"seed 42\n"
		"program 0 \"fake_linear\"\n"
		"dataset data \"train\" csv \"%s\" \"y\" 50\n", train);
	if (eval) n += snprintf(man + n, sizeof man - (size_t)n, "dataset eval \"test\" csv \"%s\" \"y\" 20\n", eval);
	n += snprintf(man + n, sizeof man - (size_t)n,
		"field 0 0 f32 2 1 1 4 0\n"
		"field 1 1 i32 1 1 1\n"
		"batch 8\n"
		"epochs 3\n"
		"shuffle 1\n"
		"optimizer sgd lr %s momentum 0.90000000000000002 weight_decay 0 nesterov 0 beta1 0.90000000000000002 beta2 0.999 eps 1e-08\n"
		"schedule %s\n"
		"param 0 \"lin.w\" 2 4 3 offset 0 init xavier_uniform a 0 b 0 fan_in 4 fan_out 3 stream 0 opt 0\n"
		"param 1 \"lin.b\" 1 3 offset 12 init normal a 0 b 0.01 fan_in 0 fan_out 0 stream 1 opt 12\n"
		"state 0 \"lin.count\" 1 1 offset 0 init zeros a 0 b 0 fan_in 0 fan_out 0 stream -1 opt -1\n"
		"stream 0 \"lin.w\" %016llx\n"
		"stream 1 \"lin.b\" %016llx\n"
		"sizes params 15 states 1 opt 15\n"
		"graph train act 0 24 outputs 1 \"loss\"\n"
		"node train 0 input \"x\"\n"
		"node train 1 input \"y\"\n"
		"node train 2 param \"lin.w\"\n"
		"node train 3 matmul \"fake.lin\"\n"
		"node train 4 param \"lin.b\"\n"
		"node train 5 add \"fake.lin\"\n"
		"node train 6 cross_entropy \"fake.loss\"\n"
		"node train 7 cross_entropy_bwd \"fake.loss\"\n"
		"node train 8 matmul \"fake.lin\"\n"
		"node train 9 sum_to \"fake.lin\"\n"
		"node train 10 sgd_update \"lin.w\"\n"
		"node train 11 sgd_update \"lin.b\"\n"
		"node train 12 add \"lin.count\"\n"
		"%s"
		"plan train 3 matmul \"fake.lin\" seq\n"
		"plan train 6 cross_entropy \"fake.loss\" seq\n"
		"%s"
		"graph eval act 0 24 outputs 2 \"loss\" \"acc\"\n"
		"node eval 0 input \"x\"\n"
		"node eval 1 input \"y\"\n"
		"node eval 2 param \"lin.w\"\n"
		"node eval 3 matmul \"fake.lin\"\n"
		"node eval 4 param \"lin.b\"\n"
		"node eval 5 add \"fake.lin\"\n"
		"node eval 6 cross_entropy \"fake.loss\"\n"
		"node eval 7 accuracy \"fake.acc\"\n"
		"plan eval 3 matmul \"fake.lin\" seq\n",
		env("FAKE_LR", "0.10000000000000001"),
		env("FAKE_SCHED", "cosine every 0 gamma 1 epochs 3 warmup 2"),
		(unsigned long long)nnd_path_hash("lin.w"), (unsigned long long)nnd_path_hash("lin.b"),
		racy ? "node train 13 racy_sum \"fake.racy\"\n" : "",
		racy ? "plan train 13 sum \"fake.racy\" racy\n" : "");
	if (infer)
		n += snprintf(man + n, sizeof man - (size_t)n,
			"graph infer act 0 24 outputs 0\n"
			"result 2 1 1 3 0\n"
			"node infer 0 input \"x\"\n"
			"node infer 1 input \"y\"\n"
			"node infer 2 param \"lin.w\"\n"
			"node infer 3 matmul \"fake.lin\"\n"
			"node infer 4 param \"lin.b\"\n"
			"node infer 5 add \"fake.lin\"\n"
			"plan infer 3 matmul \"fake.lin\" seq\n");
	snprintf(man + n, sizeof man - (size_t)n, "%send\n", getenv("FAKE_BROKEN") ? "batch eight\n" : "");
	static const nnd_step_fn trains[1] = { train_step }, evals[1] = { eval_step }, infers[1] = { infer_step };
	nnd_model m = { man, 1, trains, evals, infer ? infers : NULL, NULL };
	if (argc >= 2 && !strcmp(argv[1], "verify")) {
		/* verify [T1,T2,...] [STEPS] */
		int th[16], nt = 0;
		const char *list = argc >= 3 ? argv[2] : "1,2,3";
		for (const char *p = list; *p && nt < 16;) {
			char *end;
			th[nt++] = (int)strtol(p, &end, 10);
			p = *end == ',' ? end + 1 : end;
			if (end == p && *p) break;
		}
		long steps = argc >= 4 ? strtol(argv[3], NULL, 10) : 3;
		return nnd_rt_verify(&m, NULL, th, nt, steps, argv[0]);
	}
	return nnd_rt_main(argc, argv, &m);
}
