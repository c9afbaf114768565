/* verify.c - structural checks the driver runs between passes.  A failure
 * here is a compiler bug, never a user error, so messages name the pass
 * that left the graph broken and the node. */
#include <inttypes.h>
#include "ir.h"

static int problem(const char *after, const ir_graph *g, const ir_node *n, const char *what)
{
	fprintf(stderr, "nndc: internal error: IR verifier after %s: graph %s node %%%d (%s%s%s): %s\n",
	        after, g->name, n ? n->id : -1, n ? ir_ops[n->op].name : "-",
	        n && n->path ? " @" : "", n && n->path ? n->path : "", what);
	return 1;
}

static int verify_graph(const ir_program *p, const ir_graph *g, const char *after)
{
	int bad = 0;
	for (int i = 0; i < g->nnodes; i++) {
		const ir_node *n = g->nodes[i];
		const ir_opinfo *oi = &ir_ops[n->op];
		if (n->id != i)
			bad += problem(after, g, n, "id does not match position");
		if ((unsigned)n->op >= IR_NUM_OPS) {
			bad += problem(after, g, n, "unknown opcode");
			continue;
		}
		if (oi->arity >= 0 && n->nin != oi->arity)
			bad += problem(after, g, n, "wrong number of inputs");
		for (int k = 0; k < n->nin; k++)
			if (n->in[k] < 0 || n->in[k] >= i)
				bad += problem(after, g, n, "input is not an earlier node");
		if (n->type.rank < 0 || n->type.rank > IR_MAX_RANK)
			bad += problem(after, g, n, "rank out of range");
		for (int d = 0; d < n->type.rank; d++)
			if (n->type.d[d].c < 0 || n->type.d[d].sym < 0 || n->type.d[d].sym > 1)
				bad += problem(after, g, n, "malformed dimension");
		if (ir_type_numel(&n->type).sym > 1)
			bad += problem(after, g, n, "element count grows faster than the batch");
		if ((oi->flags & IR_F_REDUCE) && n->plan.family == IR_PLAN_NONE &&
		    p && p->planned)
			bad += problem(after, g, n, "reduction without a plan");
		if (!(oi->flags & IR_F_REDUCE) && n->plan.family != IR_PLAN_NONE)
			bad += problem(after, g, n, "plan on an op that does not reduce");
		if (n->plan.fused && (!(oi->flags & IR_F_DOT) ||
		                      (n->plan.family != IR_PLAN_SEQ && n->plan.family != IR_PLAN_BLOCKED)))
			bad += problem(after, g, n, "fused (+fma) plan on an op that is not a dot product, or not seq/blocked");
		if (oi->flags & IR_F_RANDOM) {
			if (p && p->streamed && (n->stream < 0 || n->stream >= p->nstreams))
				bad += problem(after, g, n, "random op without a stream");
		} else if (n->stream != -1)
			bad += problem(after, g, n, "stream on an op that is not random");
		if (n->op == IR_PARAM && p && (n->ia[0] < 0 || n->ia[0] >= p->nparams))
			bad += problem(after, g, n, "param index out of range");
		if (n->op == IR_STATE && p && (n->ia[0] < 0 || n->ia[0] >= p->nstates))
			bad += problem(after, g, n, "state index out of range");
		if (n->op == IR_INPUT && p && (n->ia[0] < 0 || n->ia[0] >= p->ninputs))
			bad += problem(after, g, n, "input index out of range");
	}
	if (g->loss >= g->nnodes)
		bad += problem(after, g, NULL, "loss refers past the graph");
	for (int i = 0; i < g->noutputs; i++)
		if (g->outputs[i] < 0 || g->outputs[i] >= g->nnodes ||
		    g->nodes[g->outputs[i]]->type.rank != 0)
			bad += problem(after, g, NULL, "output is not a scalar node");
	return bad;
}

int ir_verify_program(const ir_program *p, const char *after_pass)
{
	int bad = 0;
	ir_graph *gs[3];
	for (int i = 0, n = ir_graphs(p, gs); i < n; i++) {
		bad += verify_graph(p, gs[i], after_pass);
		if (gs[i]->result >= gs[i]->nnodes)
			bad += problem(after_pass, gs[i], NULL, "result refers past the graph");
	}
	return bad;
}
