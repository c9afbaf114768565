/* memplan.c - lays every value out in the runtime's blocks.  Parameters,
 * state and optimizer slots live where the program's tables put them; the
 * final gradient of each parameter goes to the gradient block at the
 * parameter's offset (one contiguous block: what a later all-reduce or a
 * gradient-norm needs); every other value gets a region of the activation
 * arena, sized for Bmax rows.  Regions are 64-byte aligned for the
 * batch-independent part and 16-byte multiples per batch row.  A reshape
 * of an activation shares its input's region (codegen emits no copy for
 * it); a value fused into its reader (passes/fuse.c) has none.
 *
 * Regions are reused: a value's region is free again once the last node
 * that reads it has run, and later values are placed first-fit into free
 * space.  The arena has two independent parts (bytes, and bytes per batch
 * row times Bmax), each planned as one line of intervals, so a plan that
 * is disjoint in both parts is disjoint for every Bmax.  A value is freed
 * only after its last reader's own result has been placed, so no kernel
 * ever writes over its inputs; the loss and the graph outputs (read after
 * the step) live to the end.  A read by a fused value counts as a read by
 * the kernel that computes it, and a convolution that a backend may
 * compute whole (ir_conv_match: cuDNN) reads its x, w and dy at the node
 * it replaces.  Reuse never changes a bit: every kernel
 * writes all of its result before anything reads it. */
#include <string.h>
#include <stdlib.h>
#include "passes.h"

static int64_t round_up(int64_t x, int64_t m) { return (x + m - 1) / m * m; }

/* one part of the arena: sorted free intervals [off, off + len) below
 * `top`, the part's size so far */
typedef struct fspace { int64_t *off, *len; int n, cap; int64_t top; } fspace;

static int64_t fs_alloc(fspace *f, int64_t size)
{
	for (int i = 0; i < f->n; i++)
		if (f->len[i] >= size) {
			int64_t o = f->off[i];
			f->off[i] += size;
			f->len[i] -= size;
			if (f->len[i] == 0) {
				memmove(f->off + i, f->off + i + 1, (size_t)(f->n - i - 1) * sizeof *f->off);
				memmove(f->len + i, f->len + i + 1, (size_t)(f->n - i - 1) * sizeof *f->len);
				f->n--;
			}
			return o;
		}
	/* a free interval at the top grows instead of leaving a hole */
	if (f->n > 0 && f->off[f->n - 1] + f->len[f->n - 1] == f->top) {
		int64_t o = f->off[f->n - 1];
		f->top = o + size;
		f->n--;
		return o;
	}
	int64_t o = f->top;
	f->top += size;
	return o;
}

static void fs_free(fspace *f, int64_t off, int64_t size)
{
	if (size == 0)
		return;
	int i = 0;
	while (i < f->n && f->off[i] < off)
		i++;
	if (f->n == f->cap) {
		f->cap = f->cap ? 2 * f->cap : 16;
		f->off = xrealloc(f->off, (size_t)f->cap * sizeof *f->off);
		f->len = xrealloc(f->len, (size_t)f->cap * sizeof *f->len);
	}
	memmove(f->off + i + 1, f->off + i, (size_t)(f->n - i) * sizeof *f->off);
	memmove(f->len + i + 1, f->len + i, (size_t)(f->n - i) * sizeof *f->len);
	f->off[i] = off;
	f->len[i] = size;
	f->n++;
	/* merge with the neighbours */
	if (i + 1 < f->n && f->off[i] + f->len[i] == f->off[i + 1]) {
		f->len[i] += f->len[i + 1];
		memmove(f->off + i + 1, f->off + i + 2, (size_t)(f->n - i - 2) * sizeof *f->off);
		memmove(f->len + i + 1, f->len + i + 2, (size_t)(f->n - i - 2) * sizeof *f->len);
		f->n--;
	}
	if (i > 0 && f->off[i - 1] + f->len[i - 1] == f->off[i]) {
		f->len[i - 1] += f->len[i];
		memmove(f->off + i, f->off + i + 1, (size_t)(f->n - i - 1) * sizeof *f->off);
		memmove(f->len + i, f->len + i + 1, (size_t)(f->n - i - 1) * sizeof *f->len);
		f->n--;
	}
}

/* the node whose kernel computes n: n itself, or the reader it is fused into */
static int kernel_of(const ir_graph *g, int i)
{
	while (g->nodes[i]->blk == IR_BLK_FUSED)
		i = (int)g->nodes[i]->off_c;
	return i;
}

static int plan_graph(ir_program *p, ir_graph *g, bool train)
{
	int nn = g->nnodes;
	bool *is_grad = xcalloc((size_t)nn + 1, 1);
	int *owner = xcalloc((size_t)nn + 1, sizeof *owner);   /* region owner (reshape aliases) */
	int *last = xcalloc((size_t)nn + 1, sizeof *last);     /* last kernel reading the region */
	int64_t *size = xcalloc((size_t)nn + 1, sizeof *size);
	bool *sym = xcalloc((size_t)nn + 1, 1);
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
	/* storage kinds first (reshape aliasing needs its input's kind) */
	for (int i = 0; i < nn; i++) {
		ir_node *n = g->nodes[i];
		owner[i] = -1;
		last[i] = i;
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
		n->blk = IR_BLK_ACT;
		if (n->op == IR_RESHAPE && owner[n->in[0]] >= 0) {
			/* the same elements in the same order: the input's region
			 * (activations are never written after they are computed) */
			owner[i] = owner[n->in[0]];
			continue;
		}
		owner[i] = i;
		ir_dim ne = ir_type_numel(&n->type);
		int64_t bytes = ne.c * ir_dtype_size(n->type.dt);
		sym[i] = ne.sym != 0;
		size[i] = sym[i] ? round_up(bytes, 16) : round_up(bytes, 64);
	}
	/* lifetimes: the last kernel that reads each region */
	for (int i = 0; i < nn; i++) {
		const ir_node *n = g->nodes[i];
		int k = kernel_of(g, i);
		for (int j = 0; j < n->nin; j++) {
			int o = owner[n->in[j]];
			if (o >= 0 && last[o] < k)
				last[o] = k;
		}
		/* a convolution computed whole (cuDNN) reads its x, w and dy here */
		int rd[2];
		for (int j = 0, nr = ir_conv_reads(g, n, rd); j < nr; j++) {
			int o = owner[rd[j]];
			if (o >= 0 && last[o] < k)
				last[o] = k;
		}
	}
	if (g->loss >= 0 && owner[g->loss] >= 0)
		last[owner[g->loss]] = nn;
	for (int i = 0; i < g->noutputs; i++)
		if (owner[g->outputs[i]] >= 0)
			last[owner[g->outputs[i]]] = nn;
	/* dying[k]: the regions whose last reader is kernel k, freed after k */
	int *next = xcalloc((size_t)nn + 1, sizeof *next), *head = xcalloc((size_t)nn + 2, sizeof *head);
	for (int i = 0; i <= nn; i++)
		head[i] = -1;
	for (int i = 0; i < nn; i++)
		if (owner[i] == i) {
			next[i] = head[last[i]];
			head[last[i]] = i;
		}
	fspace fc = { 0 }, fb = { 0 };
	for (int i = 0; i < nn; i++) {
		ir_node *n = g->nodes[i];
		if (owner[i] == i) {
			n->off_c = sym[i] ? 0 : fs_alloc(&fc, size[i]);
			n->off_b = sym[i] ? fs_alloc(&fb, size[i]) : 0;
		}
		for (int d = head[i]; d >= 0; d = next[d]) {
			if (sym[d])
				fs_free(&fb, g->nodes[d]->off_b, size[d]);
			else
				fs_free(&fc, g->nodes[d]->off_c, size[d]);
		}
	}
	/* the batch-row part lies above the fixed part: a region of s bytes
	 * per row at off_b is [act_c + off_b * Bmax, act_c + (off_b + s) * Bmax) */
	for (int i = 0; i < nn; i++) {
		int o = owner[i];
		if (o < 0)
			continue;
		g->nodes[i]->off_c = sym[o] ? fc.top : g->nodes[o]->off_c;
		g->nodes[i]->off_b = g->nodes[o]->off_b;
	}
	g->act_c = fc.top;
	g->act_b = fb.top;
	free(fc.off); free(fc.len); free(fb.off); free(fb.len);
	free(next); free(head);
	free(is_grad); free(owner); free(last); free(size); free(sym);
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
