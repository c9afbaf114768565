/* fuse.c - elementwise fusion: an elementwise value read by exactly one
 * node, itself elementwise and of the same shape, is computed inside that
 * node's kernel instead of being stored and loaded again.  The memory
 * plan gives it no storage (IR_BLK_FUSED, off_c = the node whose kernel
 * computes it) and the backends compute it per element, in the consumer's
 * loop, from its own inputs.
 *
 * Fusion never changes a bit: each fused op still rounds exactly as
 * ops.def spells out (every elementwise op is a function of its inputs'
 * elements at the same index, and no two ops are ever contracted into one
 * rounding), so a fused program computes the same floats in the same
 * kernels' loops, only without the round trip through memory.  That is
 * checked by building programs with and without fusion (nndc --no-fuse)
 * and comparing their sha256 (tests/e2e).
 *
 * What stays unfused, and why:
 *   - values with several readers (the backward pass reads most forward
 *     values): recomputing them per reader would cost more than the load;
 *   - values read under broadcasting (a [B, 256] bias add reading [256]):
 *     the consumer would recompute the producer for every repeat;
 *   - the loss, graph outputs, the infer result and parameter gradients:
 *     the runtime reads their storage;
 *   - trees with more than FUSE_MAX_LOADS distinct loads: one kernel
 *     then streams too many arrays at once.
 * Reductions, matmuls and random ops are neither fused nor fused into
 * (yet): their kernels have their own loop structure. */
#include <stdlib.h>
#include <string.h>
#include "passes.h"

#define FUSE_MAX_LOADS IR_TREE_LEAVES

static bool is_elem(const ir_node *n)
{
	return (ir_ops[n->op].flags & IR_F_ELEM) != 0;
}

static bool same_shape(const ir_type *a, const ir_type *b)
{
	if (a->rank != b->rank)
		return false;
	for (int d = 0; d < a->rank; d++)
		if (a->d[d].c != b->d[d].c || a->d[d].sym != b->d[d].sym)
			return false;
	return true;
}

static void fuse_graph(const ir_program *p, ir_graph *g, bool train)
{
	int n = g->nnodes;
	int *uses = xcalloc((size_t)n + 1, sizeof *uses);
	bool *pinned = xcalloc((size_t)n + 1, 1);
	int *loads = xcalloc((size_t)n + 1, sizeof *loads);
	for (int i = 0; i < n; i++)
		for (int k = 0; k < g->nodes[i]->nin; k++)
			uses[g->nodes[i]->in[k]]++;
	if (g->loss >= 0)
		pinned[g->loss] = true;
	for (int i = 0; i < g->noutputs; i++)
		pinned[g->outputs[i]] = true;
	if (g->result >= 0)
		pinned[g->result] = true;
	if (train && p->param_grad)
		for (int k = 0; k < p->nparams; k++)
			if (p->param_grad[k] >= 0)
				pinned[p->param_grad[k]] = true;
	/* consumers in topological order: a producer's own tree is settled
	 * before its consumer decides whether to absorb it */
	for (int i = 0; i < n; i++) {
		ir_node *u = g->nodes[i];
		loads[i] = 1;
		if (!is_elem(u))
			continue;
		int total = 0;
		for (int k = 0; k < u->nin; k++) {
			ir_node *x = g->nodes[u->in[k]];
			int rest = u->nin - k - 1;   /* later inputs load at least one each */
			bool ok = is_elem(x) && uses[x->id] == 1 && !pinned[x->id] &&
			          x->blk == IR_BLK_NONE && same_shape(&x->type, &u->type) &&
			          total + loads[x->id] + rest <= FUSE_MAX_LOADS;
			if (ok) {
				x->blk = IR_BLK_FUSED;
				x->off_c = u->id;
				x->off_b = 0;
				total += loads[x->id];
			} else {
				total += 1;
			}
		}
		loads[i] = total;
	}
	free(uses);
	free(pinned);
	free(loads);
}

int pass_fuse(ir_program *p, const pass_options *o)
{
	if (o && o->no_fuse)
		return 0;
	ir_graph *gs[3];
	for (int i = 0, n = ir_graphs(p, gs); i < n; i++)
		fuse_graph(p, gs[i], gs[i] == p->train);
	return 0;
}
