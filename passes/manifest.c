/* manifest.c - the text that tells the runtime what a compiled program is:
 * datasets, settings, parameters with their initializers and streams,
 * block sizes and every reduction plan.  Format: runtime/rt.h.  Floats are
 * printed with %.17g so the runtime reads back exactly the compiler's
 * doubles. */
#include <string.h>
#include <inttypes.h>
#include <stdlib.h>
#include "passes.h"
#include "../runtime/rt.h"

static void qstr(FILE *f, const char *s)
{
	fputc('"', f);
	for (; *s; s++) {
		if (*s == '"' || *s == '\\')
			fputc('\\', f), fputc(*s, f);
		else if (*s == '\n')
			fputs("\\n", f);
		else
			fputc(*s, f);
	}
	fputc('"', f);
}

static void dataset(FILE *f, const char *role, const ir_dataset *d)
{
	fprintf(f, "dataset %s ", role);
	qstr(f, d->name);
	if (d->kind == 0) {
		fputs(" idx ", f);
		qstr(f, d->images);
		fputc(' ', f);
		qstr(f, d->labels);
	} else {
		fputs(" csv ", f);
		qstr(f, d->path);
		fputc(' ', f);
		qstr(f, d->label);
	}
	fprintf(f, " %" PRId64 "\n", d->n);
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* whether a and b hold the same names, in any order */
static bool same_names(const char **a, int na, const char **b, int nb)
{
	if (na != nb)
		return false;
	const char **x = malloc(sizeof *x * (size_t)(na + 1)), **y = malloc(sizeof *y * (size_t)(nb + 1));
	if (!x || !y)
		nnd_ice("out of memory");
	memcpy(x, a, sizeof *x * (size_t)na);
	memcpy(y, b, sizeof *y * (size_t)nb);
	qsort(x, (size_t)na, sizeof *x, cmp_str);
	qsort(y, (size_t)nb, sizeof *y, cmp_str);
	bool same = true;
	for (int i = 0; same && i < na; i++)
		same = strcmp(x[i], y[i]) == 0;
	free(x);
	free(y);
	return same;
}

/* `columns`: the feature columns a CSV dataset's rows are read from, by
 * name.  An eval set whose header has the training data's names in
 * another order is read in the training data's order, so that feature k
 * is the same column in both; otherwise its own header's order. */
static void columns(FILE *f, const char *role, const ir_dataset *d, const ir_dataset *data)
{
	if (d->kind != 1 || d->ncolumns == 0)
		return;
	const ir_dataset *by = d;
	if (d != data && data->kind == 1 && same_names(d->columns, d->ncolumns, data->columns, data->ncolumns))
		by = data;
	fprintf(f, "columns %s %d", role, by->ncolumns);
	for (int k = 0; k < by->ncolumns; k++) {
		fputc(' ', f);
		qstr(f, by->columns[k]);
	}
	fputc('\n', f);
}

/* The number of classes the labels field must respect: the C of every
 * cross_entropy of the train and eval graphs whose labels are the field
 * as it is (an input, through integer casts, which keep the values); the
 * smallest if several; 0 when none (labels computed otherwise are checked
 * only by the kernels). */
static int64_t label_classes(const ir_program *p)
{
	int64_t classes = 0;
	const ir_graph *gs[2] = { p->train, p->eval_g };
	for (int gi = 0; gi < 2; gi++) {
		const ir_graph *g = gs[gi];
		for (int i = 0; g && i < g->nnodes; i++) {
			const ir_node *n = g->nodes[i];
			if (n->op != IR_CROSS_ENTROPY)
				continue;
			const ir_node *x = g->nodes[n->in[0]], *l = g->nodes[n->in[1]];
			while (l->op == IR_CAST && g->nodes[l->in[0]]->type.dt != IR_F32)
				l = g->nodes[l->in[0]];
			if (l->op != IR_INPUT || l->ia[0] < 0 || l->ia[0] >= p->ninputs ||
			    p->field_of_input[l->ia[0]] != 1 || x->type.rank != 2 || x->type.d[1].sym)
				continue;
			int64_t c = x->type.d[1].c;
			if (classes == 0 || c < classes)
				classes = c;
		}
	}
	return classes;
}

static void tensor(FILE *f, const char *kind, int i, const ir_tensor *t, bool has_opt)
{
	fprintf(f, "%s %d ", kind, i);
	qstr(f, t->path);
	fprintf(f, " %d", t->type.rank);
	for (int k = 0; k < t->type.rank; k++)
		fprintf(f, " %" PRId64, t->type.d[k].c);
	fprintf(f, " offset %" PRId64 " init %s a %.17g b %.17g fan_in %" PRId64 " fan_out %" PRId64
	        " stream %d opt %" PRId64 "\n", t->offset, ir_init_name(t->init), t->a, t->b,
	        t->fan_in, t->fan_out, t->stream, has_opt ? t->opt_slot : (int64_t)-1);
}

static void graph(FILE *f, const ir_graph *g)
{
	fprintf(f, "graph %s act %" PRId64 " %" PRId64 " outputs %d", g->name, g->act_c, g->act_b,
	        g->noutputs);
	for (int i = 0; i < g->noutputs; i++) {
		fputc(' ', f);
		qstr(f, g->output_names[i]);
	}
	fputc('\n', f);
	if (g->result >= 0) {
		const ir_type *t = &g->nodes[g->result]->type;
		fprintf(f, "result %d", t->rank);
		for (int d = 0; d < t->rank; d++)
			fprintf(f, " %" PRId64 " %d", t->d[d].c, t->d[d].sym);
		fputc('\n', f);
	}
	for (int i = 0; i < g->nnodes; i++) {
		const ir_node *n = g->nodes[i];
		fprintf(f, "node %s %d %s ", g->name, n->id, ir_ops[n->op].name);
		qstr(f, n->path ? n->path : "-");
		fputc('\n', f);
	}
	for (int i = 0; i < g->nnodes; i++) {
		const ir_node *n = g->nodes[i];
		if (!(ir_ops[n->op].flags & IR_F_REDUCE))
			continue;
		char pb[64];
		fprintf(f, "plan %s %d %s ", g->name, n->id, ir_ops[n->op].name);
		qstr(f, n->path ? n->path : "-");
		fprintf(f, " %s\n", ir_plan_str(n->plan, pb, sizeof pb));
	}
}

char *pass_manifest(const ir_module *m)
{
	static const char *opt[] = { "sgd", "adam", "adamw" };
	static const char *sch[] = { "constant", "step", "cosine" };
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);
	if (!f)
		nnd_ice("open_memstream failed");
	fputs("nnd-manifest 1\ncompiler ", f);
	qstr(f, "nndc " NND_VERSION);
	fputs("\n", f);
	for (int i = 0; i < m->nprogs; i++) {
		const ir_program *p = m->progs[i];
		if (i == 0) {
			fputs("source ", f);
			qstr(f, p->source_path);
			fprintf(f, " %s\nseed %" PRIu64 "\n", p->source_sha256, p->seed);
		}
		fprintf(f, "program %d ", i);
		qstr(f, p->train_name);
		fputc('\n', f);
		dataset(f, "data", p->data);
		columns(f, "data", p->data, p->data);
		if (p->eval) {
			dataset(f, "eval", p->eval);
			columns(f, "eval", p->eval, p->data);
		}
		for (int k = 0; k < p->ninputs; k++) {
			int fi = p->field_of_input[k];
			const ir_type *t = &p->data->fields[fi];
			fprintf(f, "field %d %d %s %d", k, fi, ir_dtype_name(t->dt), t->rank);
			for (int d = 0; d < t->rank; d++)
				fprintf(f, " %" PRId64 " %d", t->d[d].c, t->d[d].sym);
			fputc('\n', f);
		}
		int64_t classes = label_classes(p);
		if (classes > 0)
			fprintf(f, "classes %" PRId64 "\n", classes);
		if (p->bn_rows.line)
			fprintf(f, "min_rows 2 %d %d\n", p->bn_rows.line, p->bn_rows.col);
		fprintf(f, "batch %" PRId64 "\nepochs %" PRId64 "\nshuffle %d\n", p->batch, p->epochs,
		        p->shuffle);
		fprintf(f, "optimizer %s lr %.17g momentum %.17g weight_decay %.17g nesterov %d "
		        "beta1 %.17g beta2 %.17g eps %.17g\n", opt[p->opt], p->lr, p->momentum,
		        p->weight_decay, p->nesterov, p->beta1, p->beta2, p->eps);
		fprintf(f, "schedule %s every %" PRId64 " gamma %.17g epochs %" PRId64 " warmup %" PRId64 "\n",
		        sch[p->sched.kind], p->sched.every, p->sched.gamma, p->sched.epochs,
		        p->sched.warmup_steps);
		for (int k = 0; k < p->nparams; k++)
			tensor(f, "param", k, &p->params[k], true);
		for (int k = 0; k < p->nstates; k++)
			tensor(f, "state", k, &p->states[k], false);
		for (int k = 0; k < p->nstreams; k++) {
			fprintf(f, "stream %d ", k);
			qstr(f, p->streams[k].path);
			fprintf(f, " %016" PRIx64 "\n", p->streams[k].path_hash);
		}
		fprintf(f, "sizes params %" PRId64 " states %" PRId64 " opt %" PRId64 "\n",
		        p->param_floats, p->state_floats, p->opt_floats);
		ir_graph *gs[3];
		for (int k = 0, n = ir_graphs(p, gs); k < n; k++)
			graph(f, gs[k]);
		fputs("end\n", f);
	}
	if (fclose(f))
		nnd_ice("writing the manifest failed");
	return buf;
}
