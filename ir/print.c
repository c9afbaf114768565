/* print.c - the canonical text form of the IR (nndc emit --stage ir|plans).
 * Deterministic: the same program always prints the same bytes, so dumps
 * can be diffed in golden tests. */
#include <inttypes.h>
#include <string.h>
#include "ir.h"

static const char *blk_name(ir_block b)
{
	static const char *n[] = { "-", "act", "param", "grad", "opt", "state", "input", "output", "result", "fused" };
	return (unsigned)b < sizeof n / sizeof n[0] ? n[b] : "?";
}

/* Attributes worth printing per op; slots an op does not use stay zero. */
static void print_attrs(const ir_node *n, FILE *out)
{
	bool any = false;
	for (int i = 0; i < 4; i++)
		if (n->ia[i]) any = true;
	for (int i = 0; i < 4; i++)
		if (n->fa[i] != 0.0f) any = true;
	if (n->op == IR_CONST)
		any = true;
	if (!any)
		return;
	fputs(" {", out);
	const char *sep = "";
	for (int i = 0; i < 4; i++)
		if (n->ia[i]) {
			fprintf(out, "%si%d=%" PRId64, sep, i, n->ia[i]);
			sep = ", ";
		}
	for (int i = 0; i < 4; i++)
		if (n->fa[i] != 0.0f || (n->op == IR_CONST && i == 0)) {
			fprintf(out, "%sf%d=%.9g", sep, i, (double)n->fa[i]);
			sep = ", ";
		}
	fputc('}', out);
}

void ir_print_graph(const ir_program *p, const ir_graph *g, FILE *out)
{
	fprintf(out, "graph %s {\n", g->name);
	for (int i = 0; i < g->nnodes; i++) {
		const ir_node *n = g->nodes[i];
		char tb[128], pb[64];
		fprintf(out, "  %%%d = %s", n->id, ir_ops[n->op].name);
		for (int k = 0; k < n->nin; k++)
			fprintf(out, "%s%%%d", k ? ", " : " ", n->in[k]);
		print_attrs(n, out);
		fprintf(out, " : %s", ir_type_str(&n->type, tb, sizeof tb));
		if (n->op == IR_PARAM && p && n->ia[0] < p->nparams)
			fprintf(out, " \"%s\"", p->params[n->ia[0]].path);
		if (n->op == IR_STATE && p && n->ia[0] < p->nstates)
			fprintf(out, " \"%s\"", p->states[n->ia[0]].path);
		if (ir_ops[n->op].flags & IR_F_REDUCE)
			fprintf(out, " plan=%s", ir_plan_str(n->plan, pb, sizeof pb));
		if (ir_ops[n->op].flags & IR_F_RANDOM)
			fprintf(out, " stream=%d", n->stream);
		if (n->path)
			fprintf(out, " @%s", n->path);
		if (n->blk == IR_BLK_FUSED) {
			fprintf(out, " [fused into %%%" PRId64 "]", n->off_c);
		} else if (n->blk != IR_BLK_NONE) {
			fprintf(out, " [%s %" PRId64, blk_name(n->blk), n->off_c);
			if (n->off_b)
				fprintf(out, "+%" PRId64 "*Bmax", n->off_b);
			fputc(']', out);
		}
		fputc('\n', out);
	}
	if (g->loss >= 0)
		fprintf(out, "  loss %%%d\n", g->loss);
	for (int i = 0; i < g->noutputs; i++)
		fprintf(out, "  output %s %%%d\n", g->output_names[i], g->outputs[i]);
	if (g->result >= 0)
		fprintf(out, "  result %%%d\n", g->result);
	if (g->act_c || g->act_b)
		fprintf(out, "  activations %" PRId64 "+%" PRId64 "*Bmax bytes\n", g->act_c, g->act_b);
	fputs("}\n", out);
}

static void print_tensor(const char *kind, int i, const ir_tensor *t, FILE *out)
{
	char tb[128];
	fprintf(out, "%s %d \"%s\" : %s = %s", kind, i, t->path,
	        ir_type_str(&t->type, tb, sizeof tb), ir_init_name(t->init));
	switch (t->init) {
	case IR_INIT_CONSTANT: fprintf(out, "(value=%.9g)", t->a); break;
	case IR_INIT_UNIFORM: fprintf(out, "(low=%.9g, high=%.9g)", t->a, t->b); break;
	case IR_INIT_NORMAL: fprintf(out, "(mean=%.9g, std=%.9g)", t->a, t->b); break;
	default: break;
	}
	fprintf(out, " fan_in=%" PRId64 " fan_out=%" PRId64 " stream=%d offset=%" PRId64 "\n",
	        t->fan_in, t->fan_out, t->stream, t->offset);
}

void ir_print_program(const ir_program *p, FILE *out)
{
	static const char *opt[] = { "sgd", "adam", "adamw" };
	static const char *sch[] = { "constant", "step", "cosine" };
	fprintf(out, "program %s seed=%" PRIu64 "\n", p->train_name, p->seed);
	fprintf(out, "data %s n=%" PRId64 "\n", p->data->name, p->data->n);
	if (p->eval)
		fprintf(out, "eval %s n=%" PRId64 "\n", p->eval->name, p->eval->n);
	fprintf(out, "optimizer %s lr=%.9g momentum=%.9g weight_decay=%.9g nesterov=%d "
	        "beta1=%.9g beta2=%.9g eps=%.9g\n", opt[p->opt], p->lr, p->momentum,
	        p->weight_decay, p->nesterov, p->beta1, p->beta2, p->eps);
	fprintf(out, "schedule %s", sch[p->sched.kind]);
	if (p->sched.kind == IR_SCHED_STEP)
		fprintf(out, " every=%" PRId64 " gamma=%.9g", p->sched.every, p->sched.gamma);
	if (p->sched.kind == IR_SCHED_COSINE)
		fprintf(out, " epochs=%" PRId64, p->sched.epochs);
	if (p->sched.warmup_steps)
		fprintf(out, " warmup=%" PRId64, p->sched.warmup_steps);
	fprintf(out, "\nbatch %" PRId64 " epochs %" PRId64 " shuffle %d\n", p->batch, p->epochs, p->shuffle);
	for (int i = 0; i < p->ninputs; i++) {
		int f = p->field_of_input[i];
		char tb[128];
		fprintf(out, "input %d = %s.%s : %s\n", i, p->data->name, p->data->field_names[f],
		        ir_type_str(&p->data->fields[f], tb, sizeof tb));
	}
	for (int i = 0; i < p->nparams; i++)
		print_tensor("param", i, &p->params[i], out);
	for (int i = 0; i < p->nstates; i++)
		print_tensor("state", i, &p->states[i], out);
	for (int i = 0; i < p->nstreams; i++)
		fprintf(out, "stream %d \"%s\" %016" PRIx64 "\n", i, p->streams[i].path,
		        p->streams[i].path_hash);
	ir_graph *gs[3];
	for (int i = 0, n = ir_graphs(p, gs); i < n; i++)
		ir_print_graph(p, gs[i], out);
}

static void plans_of(const ir_graph *g, FILE *out)
{
	for (int i = 0; i < g->nnodes; i++) {
		const ir_node *n = g->nodes[i];
		if (!(ir_ops[n->op].flags & IR_F_REDUCE))
			continue;
		char tb[128], pb[64];
		fprintf(out, "%s %%%d %-18s %-24s %-16s %s\n", g->name, n->id, ir_ops[n->op].name,
		        n->path ? n->path : "-", ir_plan_str(n->plan, pb, sizeof pb),
		        ir_type_str(&n->type, tb, sizeof tb));
	}
}

void ir_print_plans(const ir_program *p, FILE *out)
{
	fprintf(out, "# program %s: reduction plans (graph, node, op, path, plan, result type)\n",
	        p->train_name);
	ir_graph *gs[3];
	for (int i = 0, n = ir_graphs(p, gs); i < n; i++)
		plans_of(gs[i], out);
}
