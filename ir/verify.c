/* verify.c - structural checks the driver runs between passes.  A failure
 * here is a compiler bug, never a user error, so messages name the pass
 * that left the graph broken and the node. */
#include <inttypes.h>
#include <stdlib.h>
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

/* Fusion and the memory plan, re-derived independently of the passes: a
 * fused value is elementwise, has exactly one reader (the elementwise
 * kernel it names, of its shape); and no two activation regions that are
 * live at the same time overlap.  A region is live from the kernel that
 * writes it to the last kernel that reads it (a fused reader reads in its
 * kernel; a convolution of ir_conv_match also reads its x, w and dy), or
 * to the end for the loss and outputs; a reshape shares its input's region
 * and extends its life. */
static void bytes_of(const ir_node *n, int64_t *c, int64_t *b)
{
	ir_dim ne = ir_type_numel(&n->type);
	int64_t bytes = ne.c * ir_dtype_size(n->type.dt);
	*c = ne.sym ? 0 : bytes;
	*b = ne.sym ? bytes : 0;
}

static int verify_storage(const ir_graph *g, const char *after)
{
	int bad = 0, nn = g->nnodes;
	int *kern = malloc(((size_t)nn + 1) * sizeof *kern), *root = malloc(((size_t)nn + 1) * sizeof *root);
	int *first = malloc(((size_t)nn + 1) * sizeof *first), *last = malloc(((size_t)nn + 1) * sizeof *last);
	int *readers = calloc((size_t)nn + 1, sizeof *readers);
	if (!kern || !root || !first || !last || !readers) {
		free(kern); free(root); free(first); free(last); free(readers);
		return problem(after, g, NULL, "out of memory in the verifier");
	}
	for (int i = 0; i < nn; i++)
		for (int k = 0; k < g->nodes[i]->nin; k++)
			readers[g->nodes[i]->in[k]]++;
	for (int i = nn - 1; i >= 0; i--) {
		const ir_node *n = g->nodes[i];
		kern[i] = i;
		if (n->blk != IR_BLK_FUSED)
			continue;
		int r = (int)n->off_c;
		if (r <= i || r >= nn || readers[i] != 1 || !(ir_ops[n->op].flags & IR_F_ELEM) ||
		    !(ir_ops[g->nodes[r]->op].flags & IR_F_ELEM) || g->nodes[r]->type.rank != n->type.rank) {
			bad += problem(after, g, n, "fused into a node that is not its one elementwise reader");
			continue;
		}
		bool reads = false;
		for (int k = 0; k < g->nodes[r]->nin; k++)
			reads |= g->nodes[r]->in[k] == i;
		if (!reads)
			bad += problem(after, g, n, "fused into a node that does not read it");
		kern[i] = kern[r];
	}
	for (int i = 0; i < nn; i++) {
		const ir_node *n = g->nodes[i];
		root[i] = -1;
		if (n->blk != IR_BLK_ACT)
			continue;
		root[i] = i;
		if (n->op == IR_RESHAPE && g->nodes[n->in[0]]->blk == IR_BLK_ACT) {
			const ir_node *x = g->nodes[n->in[0]];
			if (x->off_c != n->off_c || x->off_b != n->off_b)
				bad += problem(after, g, n, "reshape not in its input's region");
			else
				root[i] = root[x->id];
		}
		first[i] = last[i] = kern[i];
	}
	for (int i = 0; i < nn; i++) {
		for (int k = 0; k < g->nodes[i]->nin; k++) {
			int o = root[g->nodes[i]->in[k]];
			if (o >= 0 && last[o] < kern[i])
				last[o] = kern[i];
		}
		int rd[2];   /* computed whole (cuDNN): reads x, w and dy at node i */
		for (int k = 0, nr = ir_conv_reads(g, g->nodes[i], rd); k < nr; k++) {
			int o = root[rd[k]];
			if (o >= 0 && last[o] < kern[i])
				last[o] = kern[i];
		}
	}
	if (g->loss >= 0 && root[g->loss] >= 0)
		last[root[g->loss]] = nn;
	for (int i = 0; i < g->noutputs; i++)
		if (root[g->outputs[i]] >= 0)
			last[root[g->outputs[i]]] = nn;
	for (int i = 0; i < nn; i++) {
		if (root[i] != i)
			continue;
		const ir_node *a = g->nodes[i];
		int64_t ac, ab;
		bytes_of(a, &ac, &ab);
		if (a->off_c < 0 || a->off_b < 0 || a->off_c + ac > g->act_c || a->off_b + ab > g->act_b ||
		    (ab && a->off_c != g->act_c))
			bad += problem(after, g, a, "activation region outside the arena's parts");
		for (int j = i + 1; j < nn; j++) {
			if (root[j] != j || first[j] > last[i])
				continue;   /* j is written after i's last read */
			const ir_node *b = g->nodes[j];
			int64_t bc, bb;
			bytes_of(b, &bc, &bb);
			bool overlap = (ac && bc && a->off_c < b->off_c + bc && b->off_c < a->off_c + ac) ||
			               (ab && bb && a->off_b < b->off_b + bb && b->off_b < a->off_b + ab);
			if (overlap) {
				char m[96];
				snprintf(m, sizeof m, "activation region overlaps node %%%d's while both are live", j);
				bad += problem(after, g, a, m);
			}
		}
	}
	free(kern); free(root); free(first); free(last); free(readers);
	return bad;
}

int ir_verify_program(const ir_program *p, const char *after_pass)
{
	int bad = 0;
	ir_graph *gs[3];
	for (int i = 0, n = ir_graphs(p, gs); i < n; i++) {
		bad += verify_graph(p, gs[i], after_pass);
		bad += verify_storage(gs[i], after_pass);
		if (gs[i]->result >= gs[i]->nnodes)
			bad += problem(after_pass, gs[i], NULL, "result refers past the graph");
	}
	return bad;
}
