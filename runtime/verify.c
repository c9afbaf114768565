/* verify.c - nnd_rt_verify, the engine of `nndc verify`: runs the same
 * training steps several times in one process and compares them bit for
 * bit, node by node.
 *
 * Runs: twice at threads[0] (run to run), then once at every other thread
 * count, each from the same initial state (the manifest's seed, the
 * program's initialisers) over the same data, loaded once.  Every run takes
 * `steps` optimizer steps (fewer if the training ends first) with
 * args.debug = 1, so generated code reports each node's value through
 * nnd_rt_node_digest (digest.c).  Each run is compared against the first:
 * per step, the node digests in graph order (node id order within the
 * graph), then the loss bits; after the last step the parameters' SHA-256.
 * The first difference of the first run that differs is reported:
 *
 *   differ: step S, graph train, node %N (OP) at PATH: run at T1 threads vs run at T2 threads
 *     digest 0123456789abcdef vs fedcba9876543210; loss_bits 0x... vs 0x...
 *
 * or, when every run agrees:
 *
 *   same bits SHA256-OF-FINAL-PARAMS
 *     4 runs (threads 1, 1, 2, 4), 3 steps each, 34 node digests per step */
#include "rt_internal.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

typedef struct vrun {
	int threads;
	uint32_t *loss_bits;         /* [steps] */
	int64_t nsteps;              /* steps actually taken */
	rt_digests d;
	char sha[65];
} vrun;

typedef struct vctx {
	const nnd_model *model;
	const char *prog_name;
	const int *threads; int nthreads;
	int64_t steps;
	/* what the error path frees */
	rt_manifest man; bool have_man;
	nnd_data data; bool have_data;
	rt_run run; bool have_run;
	vrun *runs; int nruns;
} vctx;

static void on_step(void *ctx, const rt_run *r, float loss)
{
	vrun *v = ctx;
	uint32_t bits;
	memcpy(&bits, &loss, 4);
	v->loss_bits[v->nsteps++] = bits;
	(void)r;
}

static void one_run(vctx *c, const rt_program *p, vrun *v)
{
	nnd_rt_set_threads(v->threads);
	rt_run *r = &c->run;
	memset(r, 0, sizeof *r);
	r->model = c->model;
	r->man = &c->man;
	r->prog = p;
	r->seed = c->man.seed;
	r->epochs = p->epochs;
	r->data = c->data;           /* shared: have_data stays false, so rt_run_free keeps it */
	r->n = c->data.n;
	r->steps_per_epoch = (r->n + p->batch - 1) / p->batch;
	c->have_run = true;
	rt_run_alloc(r);
	rt_init_params(r);
	rt_opts o = { 0 };
	o.threads = v->threads;
	o.epochs = -1;
	o.steps = c->steps;
	o.limit = -1;
	o.quiet = true;
	o.digests = &v->d;
	o.on_step = on_step;
	o.on_step_ctx = v;
	rt_train(r, &o);
	rt_params_sha256(r, v->sha);
	memset(&r->data, 0, sizeof r->data);
	rt_run_free(r);
	c->have_run = false;
	rt_digests_sort(&v->d);
}

/* [*lo, *hi) = the records of step s, from *lo on */
static void step_range(const rt_digests *d, int64_t s, int64_t *lo, int64_t *hi)
{
	int64_t i = *lo;
	while (i < d->n && d->v[i].step < s) i++;
	int64_t j = i;
	while (j < d->n && d->v[j].step == s) j++;
	*lo = i;
	*hi = j;
}

typedef struct vdiff {
	int64_t step;                /* 0: none */
	int kind;                    /* 0 node, 1 loss, 2 final params, 3 step count */
	int graph; int64_t node;
	bool in_a, in_b;             /* the node was reported in run a / b */
	uint64_t ha, hb;
} vdiff;

static int key_cmp(const rt_digest *a, const rt_digest *b)
{
	if (a->graph != b->graph) return a->graph < b->graph ? -1 : 1;
	return a->node < b->node ? -1 : a->node > b->node;
}

static vdiff compare(const vrun *A, const vrun *B)
{
	vdiff d = { 0 };
	int64_t n = A->nsteps < B->nsteps ? A->nsteps : B->nsteps;
	int64_t ia = 0, ib = 0;
	for (int64_t s = 1; s <= n; s++) {
		int64_t ea, eb;
		step_range(&A->d, s, &ia, &ea);
		step_range(&B->d, s, &ib, &eb);
		int64_t i = ia, j = ib;
		while (i < ea || j < eb) {
			int c = i >= ea ? 1 : j >= eb ? -1 : key_cmp(&A->d.v[i], &B->d.v[j]);
			if (c == 0 && A->d.v[i].h == B->d.v[j].h) { i++, j++; continue; }
			d.step = s;
			d.kind = 0;
			const rt_digest *r = c <= 0 ? &A->d.v[i] : &B->d.v[j];
			d.graph = r->graph;
			d.node = r->node;
			d.in_a = c <= 0;
			d.in_b = c >= 0;
			if (d.in_a) d.ha = A->d.v[i].h;
			if (d.in_b) d.hb = B->d.v[j].h;
			return d;
		}
		ia = ea;
		ib = eb;
		if (A->loss_bits[s - 1] != B->loss_bits[s - 1]) {
			d.step = s;
			d.kind = 1;
			return d;
		}
	}
	if (A->nsteps != B->nsteps) { d.step = n + 1; d.kind = 3; return d; }
	if (strcmp(A->sha, B->sha)) { d.step = n; d.kind = 2; return d; }
	return d;
}

static int verify_body(void *ctx)
{
	vctx *c = ctx;
	if (!c->model || !c->model->manifest) rt_die(2, "no manifest in this program");
	if (c->nthreads < 1) rt_die(1, "verify: no thread counts given");
	for (int i = 0; i < c->nthreads; i++)
		if (c->threads[i] < 1) rt_die(1, "verify: thread counts must be positive, found %d", c->threads[i]);
	if (c->steps < 1) rt_die(1, "verify: --steps must be positive, found %" PRId64, c->steps);
	c->have_man = true;
	rt_manifest_parse(c->model->manifest, &c->man);
	if (c->man.nprogs != c->model->nprogs)
		rt_die(2, "the manifest names %d train blocks, the program has %d step functions", c->man.nprogs, (int)c->model->nprogs);
	const rt_program *p = &c->man.progs[0];
	if (c->prog_name) {
		p = NULL;
		for (int i = 0; i < c->man.nprogs; i++)
			if (!strcmp(c->man.progs[i].name, c->prog_name)) p = &c->man.progs[i];
		if (!p) rt_die(1, "verify: no train block '%s'", c->prog_name);
	}
	if (!c->model->train[p->index]) rt_die(2, "train block %s has no train step function", p->name);
	rt_load_dataset(p, &p->datasets[p->data_ds], &c->data);
	c->have_data = true;
	if (c->data.n == 0) rt_die(1, "%s: dataset %s has no samples", p->datasets[p->data_ds].path1, p->datasets[p->data_ds].name);
	if (c->data.n > (int64_t)UINT32_MAX) rt_die(1, "dataset %s: more than 2^32 samples are not supported", p->datasets[p->data_ds].name);

	c->nruns = c->nthreads + 1;
	c->runs = rt_xcalloc((size_t)c->nruns, sizeof *c->runs);
	for (int k = 0; k < c->nruns; k++) {
		vrun *v = &c->runs[k];
		v->threads = c->threads[k < 2 ? 0 : k - 1];
		v->loss_bits = rt_xcalloc((size_t)c->steps, sizeof *v->loss_bits);
		one_run(c, p, v);
	}
	const vrun *A = &c->runs[0];
	int rc = 0;
	for (int k = 1; k < c->nruns && rc == 0; k++) {
		const vrun *B = &c->runs[k];
		vdiff d = compare(A, B);
		if (!d.step) continue;
		rc = 1;
		char who[160];
		snprintf(who, sizeof who, "run at %d threads vs run at %d threads%s", A->threads, B->threads,
		         k == 1 ? " (the same count, run again)" : "");
		switch (d.kind) {
		case 0: {
			const rt_node *nd = rt_find_node(p, d.graph, d.node);
			const char *gname = d.graph >= 0 && d.graph < RT_NGRAPHS ? rt_graph_names[d.graph] : "?";
			if (nd)
				printf("differ: step %" PRId64 ", graph %s, node %%%" PRId64 " (%s) at %s: %s\n",
				       d.step, gname, d.node, nd->op, nd->path, who);
			else
				printf("differ: step %" PRId64 ", graph %s, node %%%" PRId64 ": %s\n", d.step, gname, d.node, who);
			char ha[24] = "(not reported)", hb[24] = "(not reported)";
			if (d.in_a) snprintf(ha, sizeof ha, "%016" PRIx64, d.ha);
			if (d.in_b) snprintf(hb, sizeof hb, "%016" PRIx64, d.hb);
			printf("  digest %s vs %s; loss_bits 0x%08" PRIx32 " vs 0x%08" PRIx32 "\n", ha, hb,
			       A->loss_bits[d.step - 1], B->loss_bits[d.step - 1]);
			break;
		}
		case 1:
			printf("differ: step %" PRId64 ", loss: %s\n", d.step, who);
			printf("  loss_bits 0x%08" PRIx32 " vs 0x%08" PRIx32 " (no node digest differs: does the program report its nodes?)\n",
			       A->loss_bits[d.step - 1], B->loss_bits[d.step - 1]);
			break;
		case 2:
			printf("differ: final parameters after step %" PRId64 ": %s\n", d.step, who);
			printf("  sha256 %s vs %s\n", A->sha, B->sha);
			break;
		default:
			printf("differ: number of steps taken (%" PRId64 " vs %" PRId64 "): %s\n", A->nsteps, B->nsteps, who);
			break;
		}
	}
	if (rc == 0) {
		int64_t per = A->nsteps ? A->d.n / A->nsteps : 0;
		printf("same bits %s\n", A->sha);
		printf("  %d runs (threads", c->nruns);
		for (int k = 0; k < c->nruns; k++) printf("%s %d", k ? "," : "", c->runs[k].threads);
		printf("), %" PRId64 " step%s each, %" PRId64 " node digests per step%s\n", A->nsteps, A->nsteps == 1 ? "" : "s",
		       per, per == 0 ? " (the program reports no nodes: losses and parameters compared only)" : "");
		if (A->nsteps < c->steps)
			printf("  (the training ends after %" PRId64 " steps)\n", A->nsteps);
	}
	fflush(stdout);
	return rc;
}

static void verify_free(vctx *c)
{
	if (c->have_run) {
		memset(&c->run.data, 0, sizeof c->run.data);
		rt_run_free(&c->run);
		c->have_run = false;
	}
	for (int k = 0; k < c->nruns; k++) {
		free(c->runs[k].loss_bits);
		rt_digests_free(&c->runs[k].d);
	}
	free(c->runs);
	c->runs = NULL;
	c->nruns = 0;
	if (c->have_data) nnd_data_free(&c->data);
	c->have_data = false;
	rt_manifest_cleanup();
	if (c->have_man) rt_manifest_free(&c->man);
	c->have_man = false;
}

static void verify_cleanup(void *ctx)
{
	verify_free(ctx);
}

int nnd_rt_verify(const nnd_model *m, const char *prog_name, const int *threads, int nthreads,
                  int64_t steps, const char *progname)
{
	static vctx c;   /* static: large, and the error path reaches it */
	memset(&c, 0, sizeof c);
	c.model = m;
	c.prog_name = prog_name;
	c.threads = threads;
	c.nthreads = nthreads;
	c.steps = steps;
	int rc = rt_protected(progname ? progname : "nndc verify", verify_body, verify_cleanup, &c);
	verify_free(&c);   /* idempotent: after an error verify_cleanup freed it all */
	return rc;
}
