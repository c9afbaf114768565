/* plans.c - gives every reduction its reduction plan (determinism.md
 * section 2).  A plan is a function of the op and its logical shape only:
 * never of thread counts, devices or tiling.  This version knows one plan
 * family for its kernels, sequential in index order; the IR and the dumps
 * already carry the plan so that blocked and tree plans can be added
 * without touching any other pass. */
#include <string.h>
#include "passes.h"

static int plan_graph(ir_graph *g, const pass_options *o)
{
	(void)o;
	for (int i = 0; i < g->nnodes; i++) {
		ir_node *n = g->nodes[i];
		if (ir_ops[n->op].flags & IR_F_REDUCE)
			n->plan = (ir_plan){ IR_PLAN_SEQ, 0, 0 };
	}
	return 0;
}

int pass_plans(ir_program *p, const pass_options *o)
{
	int bad = 0;
	if (o && o->plan_override && strcmp(o->plan_override, "seq")) {
		diag_error((src_loc){ 0 }, "--plan: unknown plan '%s' (this version has: seq)", o->plan_override);
		return 1;
	}
	if (p->train)
		bad += plan_graph(p->train, o);
	if (p->eval_g)
		bad += plan_graph(p->eval_g, o);
	p->planned = true;
	return bad;
}
