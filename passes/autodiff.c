/* autodiff.c - reverse-mode differentiation of the train graph.
 *
 * Walks the nodes that the loss depends on in reverse order and appends,
 * for each, the nodes of its gradient rule (grad_<ID>, one per row of
 * ops.def).  Contributions to one node's gradient are added in the order
 * they are produced, which is fixed by the graph, so the backward graph is
 * as deterministic as the forward one.  The final gradient of parameter i
 * is recorded in p->train's param_grad table for the optimizer pass. */
#include <string.h>
#include "passes.h"

typedef struct ad {
	arena *a;
	ir_program *p;
	ir_graph *g;
	int *grad;      /* per node: node id of its accumulated gradient, or -1 */
	bool *needs;    /* node depends on a parameter */
	int bad;
} ad;

static ir_node *N(ad *d, int id) { return d->g->nodes[id]; }

static int mk(ad *d, ir_opcode op, int nin, const int *in, const ir_type *preset,
              const int64_t *ia, const float *fa, const ir_node *from)
{
	ir_node tmp;
	char err[512];
	if (shape_prepare(d->g, &tmp, op, nin, in, preset, ia, fa, err, sizeof err))
		nnd_ice("autodiff: gradient of %s (node %%%d): %s", ir_ops[from->op].name, from->id, err);
	return shape_commit(d->a, d->g, &tmp, from->loc, from->path)->id;
}

static int mk1(ad *d, ir_opcode op, int x, const ir_node *from)
{
	return mk(d, op, 1, &x, NULL, NULL, NULL, from);
}

static int mk2(ad *d, ir_opcode op, int x, int y, const ir_node *from)
{
	int in[2] = { x, y };
	return mk(d, op, 2, in, NULL, NULL, NULL, from);
}

static int cst(ad *d, float v, const ir_node *from)
{
	ir_type t = ir_scalar(IR_F32);
	float fa[4] = { v, 0, 0, 0 };
	return mk(d, IR_CONST, 0, NULL, &t, NULL, fa, from);
}

static void acc(ad *d, int node, int g)
{
	if (!d->needs[node])
		return;
	d->grad[node] = d->grad[node] < 0 ? g : mk2(d, IR_ADD, d->grad[node], g, N(d, node));
}

/* the gradient of a broadcasting operand: sum over the broadcast axes */
static int unbroadcast(ad *d, int dy, int operand, const ir_node *from)
{
	const ir_type *t = &N(d, operand)->type;
	if (ir_type_eq(&N(d, dy)->type, t))
		return dy;
	return mk(d, IR_SUM_TO, 1, &dy, t, NULL, NULL, from);
}

static int broadcast_to(ad *d, int x, const ir_type *t, const ir_node *from)
{
	if (ir_type_eq(&N(d, x)->type, t))
		return x;
	return mk(d, IR_BROADCAST, 1, &x, t, NULL, NULL, from);
}

#define X (n->in[0])
#define Y (n->in[1])
#define GRAD(name) static void grad_##name(ad *d, ir_node *n, int dy)

static void no_grad(ad *d, ir_node *n, int dy) { (void)d; (void)n; (void)dy; }
#define grad_INPUT no_grad
#define grad_PARAM no_grad
#define grad_STATE no_grad
#define grad_CONST no_grad
#define grad_NUMEL no_grad
#define grad_OPT_SLOT no_grad
#define grad_ARGMAX no_grad
#define grad_ACCURACY no_grad
#define grad_GE no_grad
#define grad_ONE_HOT no_grad   /* integer input */
#define grad_CAST no_grad      /* casts only come from integer data */
#define grad_SGD_UPDATE no_grad
#define grad_ADAM_UPDATE no_grad
#define grad_STATE_EMA no_grad

/* gradients of gradients are not needed for first-order training */
static void second_order(ad *d, ir_node *n, int dy)
{
	(void)dy;
	diag_error(n->loc, "no gradient for %s (second-order gradients are not supported)",
	           ir_ops[n->op].name);
	d->bad++;
}
#define grad_RELU_BWD second_order
#define grad_TANH_BWD second_order
#define grad_SIGMOID_BWD second_order
#define grad_GELU_BWD second_order
#define grad_SOFTMAX_BWD second_order
#define grad_LOG_SOFTMAX_BWD second_order
#define grad_CROSS_ENTROPY_BWD second_order
#define grad_DROPOUT_BWD second_order
#define grad_SLICE_BWD second_order
#define grad_EMBEDDING_BWD second_order
#define grad_COL2IM second_order
#define grad_MAX_POOL2D_BWD second_order
#define grad_AVG_POOL2D_BWD second_order
#define grad_RANDOM_CROP_BWD second_order
#define grad_CROP_BWD second_order

GRAD(NEG) { acc(d, X, mk1(d, IR_NEG, dy, n)); }
GRAD(EXP) { acc(d, X, mk2(d, IR_MUL, dy, n->id, n)); }
GRAD(LOG) { acc(d, X, mk2(d, IR_DIV, dy, X, n)); }
GRAD(SQRT) { acc(d, X, mk2(d, IR_DIV, dy, mk2(d, IR_ADD, n->id, n->id, n), n)); }
GRAD(TANH) { acc(d, X, mk2(d, IR_TANH_BWD, dy, n->id, n)); }
GRAD(SIGMOID) { acc(d, X, mk2(d, IR_SIGMOID_BWD, dy, n->id, n)); }
/* relu_bwd reads relu's output, not its input: y > 0 exactly when x > 0
 * (NaN included), and then the input, often a bias add, has one reader
 * and can be fused into the relu (passes/fuse.c) */
GRAD(RELU) { acc(d, X, mk2(d, IR_RELU_BWD, dy, n->id, n)); }
GRAD(GELU) { acc(d, X, mk2(d, IR_GELU_BWD, dy, X, n)); }

GRAD(ADD)
{
	acc(d, X, unbroadcast(d, dy, X, n));
	acc(d, Y, unbroadcast(d, dy, Y, n));
}
GRAD(SUB)
{
	acc(d, X, unbroadcast(d, dy, X, n));
	if (d->needs[Y])
		acc(d, Y, mk1(d, IR_NEG, unbroadcast(d, dy, Y, n), n));
}
GRAD(MUL)
{
	if (d->needs[X])
		acc(d, X, unbroadcast(d, mk2(d, IR_MUL, dy, Y, n), X, n));
	if (d->needs[Y])
		acc(d, Y, unbroadcast(d, mk2(d, IR_MUL, dy, X, n), Y, n));
}
/* y = a / b: da = dy / b; db = -(dy * y) / b */
GRAD(DIV)
{
	if (d->needs[X])
		acc(d, X, unbroadcast(d, mk2(d, IR_DIV, dy, Y, n), X, n));
	if (d->needs[Y]) {
		int t = mk2(d, IR_DIV, mk2(d, IR_MUL, dy, n->id, n), Y, n);
		acc(d, Y, unbroadcast(d, mk1(d, IR_NEG, t, n), Y, n));
	}
}
/* y = a^b: da = dy * b * a^(b-1); db = dy * y * log(a) */
/* 0^b: where the exponent is 0 the base's gradient is 0 (b * a^(b-1) is
 * 0 * inf at a = 0), and where the base is 0 and b >= 0 the exponent's is 0
 * (a^b * log a is 0 * -inf): 0^b is constant there, as PyTorch takes it */
GRAD(POW)
{
	int zero = cst(d, 0.0f, n);
	if (d->needs[X]) {
		int bm1 = mk2(d, IR_SUB, Y, cst(d, 1.0f, n), n);
		int t = mk2(d, IR_MUL, mk2(d, IR_MUL, dy, Y, n), mk2(d, IR_POW, X, bm1, n), n);
		int b0 = mk2(d, IR_MUL, mk2(d, IR_GE, Y, zero, n), mk2(d, IR_GE, zero, Y, n), n);
		int in[3] = { b0, zero, t };
		t = mk(d, IR_WHERE, 3, in, NULL, NULL, NULL, n);
		acc(d, X, unbroadcast(d, t, X, n));
	}
	if (d->needs[Y]) {
		int t = mk2(d, IR_MUL, mk2(d, IR_MUL, dy, n->id, n), mk1(d, IR_LOG, X, n), n);
		int a0 = mk2(d, IR_MUL, mk2(d, IR_GE, X, zero, n), mk2(d, IR_GE, zero, X, n), n);
		int in[3] = { mk2(d, IR_MUL, a0, mk2(d, IR_GE, Y, zero, n), n), zero, t };
		t = mk(d, IR_WHERE, 3, in, NULL, NULL, NULL, n);
		acc(d, Y, unbroadcast(d, t, Y, n));
	}
}
/* ties send the gradient to the first operand */
GRAD(MAXIMUM)
{
	int m = mk2(d, IR_GE, X, Y, n);
	int one = cst(d, 1.0f, n);
	if (d->needs[X])
		acc(d, X, unbroadcast(d, mk2(d, IR_MUL, dy, m, n), X, n));
	if (d->needs[Y])
		acc(d, Y, unbroadcast(d, mk2(d, IR_MUL, dy, mk2(d, IR_SUB, one, m, n), n), Y, n));
}
GRAD(MINIMUM)
{
	int m = mk2(d, IR_GE, Y, X, n);
	int one = cst(d, 1.0f, n);
	if (d->needs[X])
		acc(d, X, unbroadcast(d, mk2(d, IR_MUL, dy, m, n), X, n));
	if (d->needs[Y])
		acc(d, Y, unbroadcast(d, mk2(d, IR_MUL, dy, mk2(d, IR_SUB, one, m, n), n), Y, n));
}
GRAD(WHERE)
{
	int zero = cst(d, 0.0f, n);
	int in1[3] = { n->in[0], dy, zero }, in2[3] = { n->in[0], zero, dy };
	if (d->needs[n->in[1]])
		acc(d, n->in[1], unbroadcast(d, mk(d, IR_WHERE, 3, in1, NULL, NULL, NULL, n), n->in[1], n));
	if (d->needs[n->in[2]])
		acc(d, n->in[2], unbroadcast(d, mk(d, IR_WHERE, 3, in2, NULL, NULL, NULL, n), n->in[2], n));
}

GRAD(RESHAPE) { acc(d, X, mk(d, IR_RESHAPE, 1, &dy, &N(d, X)->type, NULL, NULL, n)); }
/* the inverse permutation: dx axis perm[k] is dy axis k */
GRAD(TRANSPOSE)
{
	int perm[IR_MAX_RANK], inv[IR_MAX_RANK], r = n->type.rank;
	if (!ir_perm_unpack(n->ia[0], r, perm))
		nnd_ice("autodiff: transpose node %%%d has no permutation", n->id);
	for (int k = 0; k < r; k++)
		inv[perm[k]] = k;
	int64_t ia[4] = { ir_perm_pack(inv, r), 0, 0, 0 };
	acc(d, X, mk(d, IR_TRANSPOSE, 1, &dy, NULL, ia, NULL, n));
}

/* c = op(a) op(b); see ops.def for the transpose flags */
GRAD(MATMUL)
{
	int ta = (int)n->ia[0], tb = (int)n->ia[1];
	int A = X, Bn = Y;
	if (d->needs[A]) {
		int in[2]; int64_t ia[4] = { 0, 0, 0, 0 };
		if (!ta && !tb)      { in[0] = dy; in[1] = Bn; ia[1] = 1; }
		else if (!ta && tb)  { in[0] = dy; in[1] = Bn; }
		else if (ta && !tb)  { in[0] = Bn; in[1] = dy; ia[1] = 1; }
		else                 { in[0] = Bn; in[1] = dy; ia[0] = 1; ia[1] = 1; }
		acc(d, A, mk(d, IR_MATMUL, 2, in, NULL, ia, NULL, n));
	}
	if (d->needs[Bn]) {
		int in[2]; int64_t ia[4] = { 0, 0, 0, 0 };
		if (!ta && !tb)      { in[0] = A; in[1] = dy; ia[0] = 1; }
		else if (!ta && tb)  { in[0] = dy; in[1] = A; ia[0] = 1; }
		else if (ta && !tb)  { in[0] = A; in[1] = dy; }
		else                 { in[0] = dy; in[1] = A; ia[0] = 1; ia[1] = 1; }
		acc(d, Bn, mk(d, IR_MATMUL, 2, in, NULL, ia, NULL, n));
	}
}

/* dy of a reduction over one axis, brought back to the input's shape */
static int spread(ad *d, ir_node *n, int dy)
{
	const ir_type *xt = &N(d, X)->type;
	int k = dy;
	if (!n->ia[1]) {
		ir_type kt = *xt;
		kt.d[n->ia[0]] = (ir_dim){ 1, 0 };
		k = mk(d, IR_RESHAPE, 1, &dy, &kt, NULL, NULL, n);
	}
	return broadcast_to(d, k, xt, n);
}

static int numel_node(ad *d, ir_dim n_, const ir_node *from)
{
	ir_type t = ir_scalar(IR_F32);
	int64_t ia[4] = { n_.c, n_.sym, 0, 0 };
	return mk(d, IR_NUMEL, 0, NULL, &t, ia, NULL, from);
}

GRAD(SUM) { acc(d, X, spread(d, n, dy)); }
GRAD(MEAN)
{
	ir_dim cnt = N(d, X)->type.d[n->ia[0]];
	acc(d, X, mk2(d, IR_DIV, spread(d, n, dy), numel_node(d, cnt, n), n));
}
/* the positions equal to the maximum share its gradient evenly (PyTorch's
 * amax): dy / count at each; without a tie that is dy exactly */
GRAD(MAX)
{
	int mask = mk2(d, IR_GE, X, spread(d, n, n->id), n);
	int64_t ia[4] = { n->ia[0], n->ia[1], 0, 0 };
	int count = mk(d, IR_SUM, 1, &mask, NULL, ia, NULL, n);
	acc(d, X, mk2(d, IR_MUL, spread(d, n, mk2(d, IR_DIV, dy, count, n)), mask, n));
}
GRAD(SUM_TO) { acc(d, X, broadcast_to(d, dy, &N(d, X)->type, n)); }
GRAD(BROADCAST) { acc(d, X, unbroadcast(d, dy, X, n)); }

GRAD(SOFTMAX) { acc(d, X, mk2(d, IR_SOFTMAX_BWD, dy, n->id, n)); }
GRAD(LOG_SOFTMAX) { acc(d, X, mk2(d, IR_LOG_SOFTMAX_BWD, dy, n->id, n)); }

GRAD(CROSS_ENTROPY)
{
	int in[3] = { X, Y, dy };
	acc(d, X, mk(d, IR_CROSS_ENTROPY_BWD, 3, in, NULL, NULL, NULL, n));
}
/* loss = sum((p - t)^2) / n: dp = (p - t) * ((dy + dy) / n), dt = -dp */
GRAD(MSE)
{
	int diff = mk2(d, IR_SUB, X, Y, n);
	int s = mk2(d, IR_DIV, mk2(d, IR_ADD, dy, dy, n), numel_node(d, ir_type_numel(&N(d, X)->type), n), n);
	int g = mk2(d, IR_MUL, diff, s, n);
	acc(d, X, g);
	if (d->needs[Y])
		acc(d, Y, mk1(d, IR_NEG, g, n));
}

GRAD(DROPOUT)
{
	int g = mk(d, IR_DROPOUT_BWD, 1, &dy, NULL, NULL, n->fa, n);
	d->g->nodes[g]->stream = n->stream;
	acc(d, X, g);
}

GRAD(SLICE) { acc(d, X, mk(d, IR_SLICE_BWD, 1, &dy, &N(d, X)->type, n->ia, NULL, n)); }
GRAD(CONCAT)
{
	int64_t ax = n->ia[0], la = N(d, X)->type.d[ax].c, l = n->type.d[ax].c;
	int64_t ia[4] = { ax, 0, la, 0 }, ib[4] = { ax, la, l, 0 };
	if (d->needs[X])
		acc(d, X, mk(d, IR_SLICE, 1, &dy, NULL, ia, NULL, n));
	if (d->needs[Y])
		acc(d, Y, mk(d, IR_SLICE, 1, &dy, NULL, ib, NULL, n));
}

GRAD(EMBEDDING)
{
	int in[2] = { dy, Y };
	acc(d, X, mk(d, IR_EMBEDDING_BWD, 2, in, &N(d, X)->type, NULL, NULL, n));
}

/* flipping is its own inverse: the same decisions (same stream) on dy */
GRAD(RANDOM_FLIP)
{
	int g = mk(d, IR_RANDOM_FLIP, 1, &dy, NULL, n->ia, NULL, n);
	d->g->nodes[g]->stream = n->stream;
	acc(d, X, g);
}

/* the window scattered back, with the forward op's offsets (same stream) */
GRAD(RANDOM_CROP)
{
	int g = mk(d, IR_RANDOM_CROP_BWD, 1, &dy, &N(d, X)->type, n->ia, NULL, n);
	d->g->nodes[g]->stream = n->stream;
	acc(d, X, g);
}
GRAD(CROP) { acc(d, X, mk(d, IR_CROP_BWD, 1, &dy, &N(d, X)->type, n->ia, NULL, n)); }

/* conv2d is im2col + matmul (passes/conv.c): im2col's adjoint is col2im */
GRAD(IM2COL) { acc(d, X, mk(d, IR_COL2IM, 1, &dy, &N(d, X)->type, n->ia, NULL, n)); }

GRAD(MAX_POOL2D)
{
	int in[2] = { dy, X };
	acc(d, X, mk(d, IR_MAX_POOL2D_BWD, 2, in, NULL, n->ia, NULL, n));
}

GRAD(AVG_POOL2D) { acc(d, X, mk(d, IR_AVG_POOL2D_BWD, 1, &dy, &N(d, X)->type, n->ia, NULL, n)); }

typedef void grad_fn(ad *d, ir_node *n, int dy);
static grad_fn *const grad_rules[IR_NUM_OPS] = {
#define OP(id, name, arity, flags) [IR_##id] = grad_##id,
#include "../ir/ops.def"
#undef OP
};

int pass_autodiff(arena *a, ir_program *p)
{
	ir_graph *g = p->train;
	if (!g || g->loss < 0)
		return 0;
	ad d = { .a = a, .p = p, .g = g };
	int n0 = g->nnodes;
	/* the graph grows while we walk it: size the tables for the worst case */
	int cap = n0 * 16 + 64;
	d.grad = arena_alloc(a, (size_t)cap * sizeof *d.grad);
	d.needs = arena_alloc(a, (size_t)cap);
	for (int i = 0; i < cap; i++)
		d.grad[i] = -1;
	for (int i = 0; i < n0; i++) {
		ir_node *n = g->nodes[i];
		d.needs[i] = n->op == IR_PARAM;
		for (int k = 0; k < n->nin; k++)
			if (d.needs[n->in[k]] && !(ir_ops[n->op].flags & IR_F_UPDATE))
				d.needs[i] = true;
	}
	if (!d.needs[g->loss])
		return 0;
	d.grad[g->loss] = cst(&d, 1.0f, g->nodes[g->loss]);
	for (int i = g->loss; i >= 0; i--) {
		ir_node *n = g->nodes[i];
		if (d.grad[i] < 0 || n->op == IR_PARAM)
			continue;
		if (g->nnodes + 64 > cap)
			nnd_ice("autodiff: backward graph grew beyond its tables");
		grad_rules[n->op](&d, n, d.grad[i]);
	}
	p->param_grad = arena_alloc(a, (size_t)(p->nparams + 1) * sizeof *p->param_grad);
	for (int i = 0; i < p->nparams; i++)
		p->param_grad[i] = -1;
	for (int i = 0; i < n0; i++)
		if (g->nodes[i]->op == IR_PARAM)
			p->param_grad[g->nodes[i]->ia[0]] = d.grad[i];
	return d.bad;
}
