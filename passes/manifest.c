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
		if (p->eval)
			dataset(f, "eval", p->eval);
		for (int k = 0; k < p->ninputs; k++) {
			int fi = p->field_of_input[k];
			const ir_type *t = &p->data->fields[fi];
			fprintf(f, "field %d %d %s %d", k, fi, ir_dtype_name(t->dt), t->rank);
			for (int d = 0; d < t->rank; d++)
				fprintf(f, " %" PRId64 " %d", t->d[d].c, t->d[d].sym);
			fputc('\n', f);
		}
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
