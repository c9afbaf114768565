/* gradcheck.c - checks the backward graph that autodiff builds.
 *
 *   nnd_gradcheck MODEL.nnd [--dump FILE]
 *
 * Compiles MODEL's first train block through the real pipeline and the
 * LLVM JIT, runs its train step once with lr = 0 (the updates then leave
 * every parameter as it was) and compares the gradient block with central
 * finite differences of the loss the same train step reports.  Dropout's
 * mask is a function of (seed, path, epoch, sample, element), so the
 * perturbed runs see the same mask as the analytic gradient did.
 *
 * --dump writes the forward graph, inputs, parameters and gradients for
 * tests/grad/torch_check.py, which recomputes the gradients with PyTorch
 * in float64 as an independent oracle (dropout masks and random_crop
 * windows are written out, from the rules of ops.def, for it to apply). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <math.h>
#include <inttypes.h>
#include "passes/passes.h"
#include "codegen/codegen.h"
#include "runtime/rt.h"

static uint64_t lcg = 0x853c49e6748fea9bULL;
static float urand(void)   /* deterministic uniform in [0, 1) */
{
	lcg = lcg * 6364136223846793005ULL + 1442695040888963407ULL;
	return (float)(lcg >> 40) * (1.0f / 16777216.0f);
}

static void init_param(const ir_tensor *t, float *p)
{
	int64_t n = ir_type_numel(&t->type).c;
	for (int64_t i = 0; i < n; i++) {
		float u = urand();
		switch (t->init) {
		case IR_INIT_UNIFORM: p[i] = (float)(t->a + (t->b - t->a) * u); break;
		case IR_INIT_CONSTANT: p[i] = (float)t->a + (u - 0.5f) * 0.2f; break;
		/* zeros would sit every relu and max on a kink: keep values apart */
		default: p[i] = (u - 0.5f) * 1.2f; break;
		}
	}
}

int main(int argc, char **argv)
{
	if (argc < 2) {
		fprintf(stderr, "usage: nnd_gradcheck MODEL.nnd [--dump FILE]\n");
		return 2;
	}
	const char *dump = argc >= 4 && !strcmp(argv[2], "--dump") ? argv[3] : NULL;
	arena *a = arena_new();
	int status;
	pass_options po = { 0 };
	ir_module *m = pass_compile(a, argv[1], &po, NULL, NULL, &status);
	if (!m)
		return status;
	ir_program *p = m->progs[0];
	char *manifest = pass_manifest(m);
	cg_module *cm = cg_build(m, manifest, NULL, 2, false);
	if (!cm)
		return 2;
	nnd_step_fn train = (nnd_step_fn)(uintptr_t)cg_jit_lookup(cm, "nnd_train_0");
	if (!train)
		return 2;

	nnd_data d;
	char err[1024];
	int rc = p->data->kind == 0
		? nnd_data_load_idx(p->data->images, p->data->labels, false, &d, err, sizeof err)
		: nnd_data_load_csv(p->data->path, p->data->label, false, &d, err, sizeof err);
	if (rc) {
		fprintf(stderr, "%s\n", err);
		return 1;
	}
	int64_t B = p->batch < d.n ? p->batch : d.n;
	const void *inputs[2];
	for (int k = 0; k < p->ninputs; k++)
		inputs[k] = d.buf[p->field_of_input[k]];
	float *params = calloc((size_t)p->param_floats + 1, 4), *grads = calloc((size_t)p->param_floats + 1, 4);
	float *opt = calloc((size_t)p->opt_floats + 1, 4), *state = calloc((size_t)p->state_floats + 1, 4);
	uint8_t *acts = calloc((size_t)(p->train->act_c + p->train->act_b * B + 64), 1);
	int64_t *sidx = calloc((size_t)B, sizeof *sidx);
	uint32_t *keys = calloc((size_t)p->nstreams * 2 + 2, 4);
	float outputs[16] = { 0 };
	for (int64_t i = 0; i < B; i++)
		sidx[i] = i;
	for (int s = 0; s < p->nstreams; s++)
		nnd_stream_key(p->seed, p->streams[s].path_hash, keys + 2 * s);
	for (int i = 0; i < p->nparams; i++)
		init_param(&p->params[i], params + p->params[i].offset);
	nnd_step_args args = {
		.params = params, .grads = grads, .opt = opt, .state = state, .acts = acts,
		.inputs = inputs, .sample_idx = sidx, .keys = keys, .outputs = outputs,
		.B = B, .Bmax = B, .step = 1, .epoch = 0, .lr = 0.0f,
		.bc1 = 0.1f, .bc2 = 0.001f,
	};
	train(&args);
	float loss0 = outputs[0];
	float *g0 = malloc((size_t)p->param_floats * 4 + 4);
	memcpy(g0, grads, (size_t)p->param_floats * 4);

	int checked = 0, failed = 0;
	for (int i = 0; i < p->nparams; i++) {
		const ir_tensor *t = &p->params[i];
		int64_t n = ir_type_numel(&t->type).c, stride = n > 12 ? n / 12 : 1;
		for (int64_t e = 0; e < n; e += stride) {
			float *x = params + t->offset + e, keep = *x;
			float h = 1e-2f * (fabsf(keep) > 1.0f ? fabsf(keep) : 1.0f);
			*x = keep + h;
			train(&args);
			double lp = outputs[0];
			*x = keep - h;
			train(&args);
			double lm = outputs[0];
			*x = keep;
			double fd = (lp - lm) / (2.0 * (double)h), g = g0[t->offset + e];
			double tol = 5e-3 + 5e-2 * fmax(fabs(g), fabs(fd));
			checked++;
			if (!(fabs(fd - g) <= tol)) {
				failed++;
				fprintf(stderr, "%s: %s[%" PRId64 "]: autodiff %.6g, finite differences %.6g\n",
				        argv[1], t->path, e, g, fd);
			}
		}
	}
	printf("%s: loss %.6g, %d gradient entries checked, %d differ\n", argv[1], (double)loss0,
	       checked, failed);

	if (dump) {
		FILE *f = fopen(dump, "w");
		if (!f) {
			perror(dump);
			return 2;
		}
		const ir_graph *g = p->train;
		fprintf(f, "B %" PRId64 "\nloss %d\n", B, g->loss);
		for (int i = 0; i <= g->loss; i++) {
			const ir_node *n = g->nodes[i];
			fprintf(f, "node %d %s %d", i, ir_ops[n->op].name, n->nin);
			for (int k = 0; k < n->nin; k++)
				fprintf(f, " %d", n->in[k]);
			fprintf(f, " ia %" PRId64 " %" PRId64 " %" PRId64 " %" PRId64 " fa %.9g %.9g %.9g %.9g"
			        " dt %s rank %d", n->ia[0], n->ia[1], n->ia[2], n->ia[3], (double)n->fa[0],
			        (double)n->fa[1], (double)n->fa[2], (double)n->fa[3], ir_dtype_name(n->type.dt),
			        n->type.rank);
			for (int k = 0; k < n->type.rank; k++)
				fprintf(f, " %" PRId64, ir_dim_eval(n->type.d[k], B));
			fputc('\n', f);
		}
		/* dropout masks by the rule of ops.def, so torch can apply them */
		for (int i = 0; i <= g->loss; i++) {
			const ir_node *n = g->nodes[i];
			if (n->op != IR_DROPOUT)
				continue;
			int64_t numel = ir_dim_eval(ir_type_numel(&n->type), B), per = numel / B;
			fprintf(f, "mask %d %" PRId64, i, numel);
			for (int64_t e = 0; e < numel; e++) {
				float u = nnd_rt_uniform(keys + 2 * n->stream, (uint32_t)(e % per),
				                         (uint32_t)sidx[e / per], 0, 0);
				fprintf(f, " %d", u >= n->fa[0]);
			}
			fputc('\n', f);
		}
		/* random_crop windows by the rule of ops.def (Philox at {0, sample,
		 * epoch, 2}, oy from word 0, ox from word 1), so torch can replay them */
		for (int i = 0; i <= g->loss; i++) {
			const ir_node *n = g->nodes[i];
			if (n->op != IR_RANDOM_CROP)
				continue;
			const ir_type *xt = &g->nodes[n->in[0]]->type;
			int64_t S = n->ia[0], P = n->ia[1];
			int64_t H = xt->d[xt->rank - 2].c, W = xt->d[xt->rank - 1].c;
			fprintf(f, "crop %d %" PRId64, i, B);
			for (int64_t r = 0; r < B; r++) {
				uint32_t ctr[4] = { 0, (uint32_t)sidx[r], 0, 2 }, w[4];
				nnd_philox4x32_10(ctr, keys + 2 * n->stream, w);
				fprintf(f, " %" PRIu64 " %" PRIu64, ((uint64_t)w[0] * (uint64_t)(H + 2 * P - S + 1)) >> 32,
				        ((uint64_t)w[1] * (uint64_t)(W + 2 * P - S + 1)) >> 32);
			}
			fputc('\n', f);
		}
		for (int k = 0; k < p->ninputs; k++) {
			int fi = p->field_of_input[k];
			int64_t per = d.row_bytes[fi] / (d.dtype[fi] == 2 ? 1 : 4);
			fprintf(f, "input %d %d %" PRId64, k, d.dtype[fi], per * B);
			for (int64_t e = 0; e < per * B; e++) {
				if (d.dtype[fi] == 0) fprintf(f, " %.9g", (double)((float *)d.buf[fi])[e]);
				else if (d.dtype[fi] == 1) fprintf(f, " %d", ((int32_t *)d.buf[fi])[e]);
				else fprintf(f, " %u", d.buf[fi][e]);
			}
			fputc('\n', f);
		}
		for (int i = 0; i < p->nparams; i++) {
			const ir_tensor *t = &p->params[i];
			int64_t n = ir_type_numel(&t->type).c;
			fprintf(f, "param %d %" PRId64, i, n);
			for (int64_t e = 0; e < n; e++)
				fprintf(f, " %.9g", (double)params[t->offset + e]);
			fprintf(f, "\ngrad %d %" PRId64, i, n);
			for (int64_t e = 0; e < n; e++)
				fprintf(f, " %.9g", (double)g0[t->offset + e]);
			fputc('\n', f);
		}
		fprintf(f, "lossvalue %.9g\n", (double)loss0);
		fclose(f);
	}
	cg_free(cm);
	free(manifest);
	nnd_data_free(&d);
	free(params); free(grads); free(opt); free(state); free(acts); free(sidx); free(keys); free(g0);
	arena_free(a);
	return failed ? 1 : 0;
}
