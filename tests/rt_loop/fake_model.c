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
 * Environment (so that one binary covers every test):
 *   FAKE_TRAIN, FAKE_EVAL  CSV paths (FAKE_EVAL empty or unset: no eval set)
 *   FAKE_LR                learning rate (default 0.1)
 *   FAKE_SCHED             the schedule record's tail (default cosine with
 *                          warmup 2)
 *   FAKE_BROKEN            1: a malformed manifest line (internal error test)
 * `fake_model gen-data PATH N SEED` writes a deterministic CSV dataset. */
#include "runtime/rt.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define F 4
#define C 3

static void forward(const nnd_step_args *a, float *logits)
{
	const float *x = a->inputs[0];
	const float *w = a->params, *b = a->params + F * C;
	for (int64_t i = 0; i < a->B; i++)
		for (int c = 0; c < C; c++) {
			float acc = 0.0f;   /* matmul, seq plan over k */
			for (int f = 0; f < F; f++) acc = acc + x[i * F + f] * w[f * C + c];
			logits[i * C + c] = acc + b[c];
		}
}

/* cross_entropy per ops.def; if dx != NULL also cross_entropy_bwd with
 * dloss = 1 */
static float cross_entropy(const nnd_step_args *a, const float *x, float *dx)
{
	const int32_t *lab = a->inputs[1];
	float sum = 0.0f;
	float g = 1.0f / (float)a->B;
	for (int64_t i = 0; i < a->B; i++) {
		if (lab[i] < 0 || lab[i] >= C) nnd_rt_bad_label(a->sample_idx[i], lab[i], C);
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

static void train_step(nnd_step_args *a)
{
	float *logits = (float *)a->acts, *dx = logits + a->Bmax * C;
	forward(a, logits);
	a->outputs[0] = cross_entropy(a, logits, dx);
	const float *x = a->inputs[0];
	float *gw = a->grads, *gb = a->grads + F * C;
	for (int f = 0; f < F; f++)
		for (int c = 0; c < C; c++) {
			float acc = 0.0f;
			for (int64_t i = 0; i < a->B; i++) acc = acc + x[i * F + f] * dx[i * C + c];
			gw[f * C + c] = acc;
		}
	for (int c = 0; c < C; c++) {
		float acc = 0.0f;
		for (int64_t i = 0; i < a->B; i++) acc = acc + dx[i * C + c];
		gb[c] = acc;
	}
	/* sgd_update, momentum 0.9, no weight decay, not nesterov */
	const float momentum = 0.9f;
	for (int k = 0; k < F * C + C; k++) {
		float g = a->grads[k];
		a->opt[k] = momentum * a->opt[k] + g;
		g = a->opt[k];
		a->params[k] = a->params[k] - a->lr * g;
	}
	a->state[0] = a->state[0] + 1.0f;
}

static void eval_step(nnd_step_args *a)
{
	float *logits = (float *)a->acts;
	forward(a, logits);
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
	const char *train = env("FAKE_TRAIN", "train.csv"), *eval = env("FAKE_EVAL", NULL);
	static char man[8192];
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
		"graph eval act 0 24 outputs 2 \"loss\" \"acc\"\n"
		"plan train 3 matmul \"fake.lin\" seq\n"
		"plan train 5 cross_entropy \"fake.loss\" seq\n"
		"plan eval 3 matmul \"fake.lin\" seq\n"
		"%s"
		"end\n",
		env("FAKE_LR", "0.10000000000000001"),
		env("FAKE_SCHED", "cosine every 0 gamma 1 epochs 3 warmup 2"),
		(unsigned long long)nnd_path_hash("lin.w"), (unsigned long long)nnd_path_hash("lin.b"),
		getenv("FAKE_BROKEN") ? "batch eight\n" : "");
	static const nnd_step_fn trains[1] = { train_step }, evals[1] = { eval_step };
	nnd_model m = { man, 1, trains, evals };
	return nnd_rt_main(argc, argv, &m);
}
