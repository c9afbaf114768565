/* memplan.c - lays every value out in the runtime's blocks.  Parameters,
 * state and optimizer slots live where the program's tables put them; the
 * final gradient of each parameter goes to the gradient block at the
 * parameter's offset (one contiguous block: what a later all-reduce or a
 * gradient-norm needs); every other value gets its own region of the
 * activation arena, sized for Bmax rows.  Regions are 64-byte aligned for
 * the batch-independent part and 16-byte multiples per batch row.  A
 * reshape of an activation shares its input's region (codegen emits no
 * copy for it). */
#include <string.h>
#include <stdlib.h>
#include "passes.h"

static int64_t round_up(int64_t x, int64_t m) { return (x + m - 1) / m * m; }

static int plan_graph(ir_program *p, ir_graph *g, bool train)
{
	int64_t c = 0, b = 0;
	bool *is_grad = xcalloc((size_t)g->nnodes + 1, 1);
	for (int i = 0; i < g->nnodes; i++)
		is_grad[i] = false;
	if (train && p->param_grad)
		for (int k = 0; k < p->nparams; k++) {
			int gn = p->param_grad[k];
			if (gn < 0 || is_grad[gn] || (ir_ops[g->nodes[gn]->op].flags & IR_F_LEAF))
				continue;
			is_grad[gn] = true;
			g->nodes[gn]->blk = IR_BLK_GRAD;
			g->nodes[gn]->off_c = p->params[k].offset;
			g->nodes[gn]->off_b = 0;
		}
	for (int i = 0; i < g->nnodes; i++) {
		ir_node *n = g->nodes[i];
		if (is_grad[i] || n->blk == IR_BLK_FUSED)
			continue;
		n->off_b = 0;
		if (i == g->result) {
			n->blk = IR_BLK_RESULT;
			n->off_c = 0;
			continue;
		}
		switch (n->op) {
		case IR_INPUT: n->blk = IR_BLK_INPUT; n->off_c = n->ia[0]; continue;
		case IR_PARAM: n->blk = IR_BLK_PARAM; n->off_c = p->params[n->ia[0]].offset; continue;
		case IR_STATE: n->blk = IR_BLK_STATE; n->off_c = p->states[n->ia[0]].offset; continue;
		case IR_OPT_SLOT: n->blk = IR_BLK_OPT; n->off_c = n->ia[0]; continue;
		default: break;
		}
		if (ir_ops[n->op].flags & IR_F_UPDATE) {
			n->blk = IR_BLK_NONE;
			n->off_c = 0;
			continue;
		}
		if (n->op == IR_RESHAPE && g->nodes[n->in[0]]->blk == IR_BLK_ACT) {
			/* the same elements in the same order: the input's region
			 * (activations are never written after they are computed) */
			const ir_node *x = g->nodes[n->in[0]];
			n->blk = IR_BLK_ACT;
			n->off_c = x->off_c;
			n->off_b = x->off_b;
			continue;
		}
		ir_dim ne = ir_type_numel(&n->type);
		int64_t bytes = ne.c * ir_dtype_size(n->type.dt);
		n->blk = IR_BLK_ACT;
		n->off_c = c;
		n->off_b = b;
		if (ne.sym)
			b += round_up(bytes, 16);
		else
			c += round_up(bytes, 64);
	}
	g->act_c = c;
	g->act_b = b;
	free(is_grad);
	return 0;
}

int pass_memplan(ir_program *p)
{
	int bad = 0;
	ir_graph *gs[3];
	for (int i = 0, n = ir_graphs(p, gs); i < n; i++)
		bad += plan_graph(p, gs[i], gs[i] == p->train);
	return bad;
}
