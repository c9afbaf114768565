/* shape.c - one shape and type rule per op (shape_<ID>, dispatched through
 * ops.def), and pass_shape, which re-runs them over whole graphs. */
#include <string.h>
#include <inttypes.h>
#include "passes.h"

#define IN(k) (&g->nodes[n->in[k]]->type)
#define FAIL(...) do { snprintf(err, errlen, __VA_ARGS__); return -1; } while (0)

typedef int shape_fn(const ir_graph *g, ir_node *n, char *err, size_t errlen);

static bool dim_eq(ir_dim a, ir_dim b) { return a.c == b.c && a.sym == b.sym; }
static bool dim_one(ir_dim a) { return a.c == 1 && a.sym == 0; }

int shape_broadcast(const ir_type *a, const ir_type *b, ir_type *out, char *err, size_t errlen)
{
	int r = a->rank > b->rank ? a->rank : b->rank;
	ir_type t;
	memset(&t, 0, sizeof t);
	t.dt = a->dt;
	t.rank = r;
	for (int i = 0; i < r; i++) {
		int ia = a->rank - r + i, ib = b->rank - r + i;
		ir_dim da = ia >= 0 ? a->d[ia] : (ir_dim){ 1, 0 };
		ir_dim db = ib >= 0 ? b->d[ib] : (ir_dim){ 1, 0 };
		if (dim_eq(da, db) || dim_one(db))
			t.d[i] = da;
		else if (dim_one(da))
			t.d[i] = db;
		else {
			char ta[128], tb[128];
			FAIL("shapes %s and %s do not broadcast (dimension %d)",
			     ir_type_str(a, ta, sizeof ta), ir_type_str(b, tb, sizeof tb), i);
		}
	}
	*out = t;
	return 0;
}

/* Can `from` be broadcast to exactly `to`? */
static int broadcasts_to(const ir_type *from, const ir_type *to, char *err, size_t errlen)
{
	ir_type t;
	if (from->rank > to->rank || shape_broadcast(to, from, &t, err, errlen) || !ir_type_eq(&t, to)) {
		char a[128], b[128];
		FAIL("%s does not broadcast to %s", ir_type_str(from, a, sizeof a),
		     ir_type_str(to, b, sizeof b));
	}
	return 0;
}

static int need_f32(const ir_type *t, const char *what, char *err, size_t errlen)
{
	if (t->dt != IR_F32) {
		char b[128];
		FAIL("%s needs f32 values, found %s (convert with f32(...))", what,
		     ir_type_str(t, b, sizeof b));
	}
	return 0;
}

static int numel_ok(const ir_type *t, char *err, size_t errlen)
{
	if (ir_type_numel(t).sym > 1)
		FAIL("the shape would hold more than one batch dimension");
	return 0;
}

int shape_check_size(const ir_type *t, int64_t bmax, char *err, size_t errlen)
{
	char b[160];
	ir_dim n = ir_type_numel(t);      /* saturates at INT64_MAX */
	if (n.c > SHAPE_MAX_NUMEL) {
		char cnt[32];
		if (n.c == INT64_MAX)
			snprintf(cnt, sizeof cnt, "more than 2^63");
		else
			snprintf(cnt, sizeof cnt, "%" PRId64, n.c);
		FAIL("%s has too many elements: %s%s (the limit is 2^40)", ir_type_str(t, b, sizeof b),
		     cnt, n.sym ? " per sample" : "");
	}
	int64_t at = ir_dim_eval(n, bmax > 1 ? bmax : 1);
	if (at > SHAPE_MAX_NUMEL)
		FAIL("%s has too many elements: %" PRId64 " at batch %" PRId64 " (the limit is 2^40)",
		     ir_type_str(t, b, sizeof b), at, bmax);
	return 0;
}

/* n + 2 * pad (a padded image side), or -1 where that overflows int64 */
static int64_t padded(int64_t n, int64_t pad)
{
	int64_t r;
	if (__builtin_mul_overflow(pad, 2, &r) || __builtin_add_overflow(n, r, &r))
		return -1;
	return r;
}

/* dilation * (k - 1) + 1 (a dilated window's side), or -1 on overflow */
static int64_t extent(int64_t k, int64_t dil)
{
	int64_t r;
	if (__builtin_mul_overflow(dil, k - 1, &r) || __builtin_add_overflow(r, 1, &r))
		return -1;
	return r;
}

/* ---- leaves and attribute-typed results: the type is set by whoever
 * built the node; only sanity-check it ---- */
static int keep(const ir_graph *g, ir_node *n, char *err, size_t errlen)
{
	(void)g;
	return numel_ok(&n->type, err, errlen);
}
#define shape_INPUT keep
#define shape_PARAM keep
#define shape_STATE keep
#define shape_CONST keep
#define shape_OPT_SLOT keep

static int shape_NUMEL(const ir_graph *g, ir_node *n, char *err, size_t errlen)
{
	(void)g; (void)err; (void)errlen;
	n->type = ir_scalar(IR_F32);
	return 0;
}

static int unary_f32(const ir_graph *g, ir_node *n, char *err, size_t errlen)
{
	if (need_f32(IN(0), ir_ops[n->op].name, err, errlen))
		return -1;
	n->type = *IN(0);
	return 0;
}
#define shape_NEG unary_f32
#define shape_EXP unary_f32
#define shape_LOG unary_f32
#define shape_SQRT unary_f32
#define shape_TANH unary_f32
#define shape_SIGMOID unary_f32
#define shape_RELU unary_f32
#define shape_GELU unary_f32
#define shape_SOFTMAX unary_f32
#define shape_LOG_SOFTMAX unary_f32
#define shape_DROPOUT unary_f32
#define shape_DROPOUT_BWD unary_f32

static int shape_CAST(const ir_graph *g, ir_node *n, char *err, size_t errlen)
{
	ir_dtype dt = n->type.dt;
	(void)err; (void)errlen;
	n->type = *IN(0);
	n->type.dt = dt;
	return 0;
}

static int binary(const ir_graph *g, ir_node *n, char *err, size_t errlen)
{
	const ir_type *a = IN(0), *b = IN(1);
	if (need_f32(a, ir_ops[n->op].name, err, errlen) || need_f32(b, ir_ops[n->op].name, err, errlen))
		return -1;
	if (shape_broadcast(a, b, &n->type, err, errlen))
		return -1;
	return numel_ok(&n->type, err, errlen);
}
#define shape_ADD binary
#define shape_SUB binary
#define shape_MUL binary
#define shape_DIV binary
#define shape_POW binary
#define shape_MAXIMUM binary
#define shape_MINIMUM binary
#define shape_GE binary

static int shape_WHERE(const ir_graph *g, ir_node *n, char *err, size_t errlen)
{
	ir_type t;
	if (need_f32(IN(1), "where", err, errlen) || need_f32(IN(2), "where", err, errlen))
		return -1;
	if (shape_broadcast(IN(1), IN(2), &t, err, errlen))
		return -1;
	ir_type c = *IN(0);
	c.dt = IR_F32;
	if (shape_broadcast(&t, &c, &n->type, err, errlen))
		return -1;
	n->type.dt = IR_F32;
	return numel_ok(&n->type, err, errlen);
}

/* gradient helpers: (dy, saved) with dy's type */
static int same_as_dy(const ir_graph *g, ir_node *n, char *err, size_t errlen)
{
	if (!ir_type_eq(IN(0), IN(1))) {
		char a[128], b[128];
		FAIL("%s: %s and %s differ", ir_ops[n->op].name, ir_type_str(IN(0), a, sizeof a),
		     ir_type_str(IN(1), b, sizeof b));
	}
	n->type = *IN(0);
	return 0;
}
#define shape_RELU_BWD same_as_dy
#define shape_TANH_BWD same_as_dy
#define shape_SIGMOID_BWD same_as_dy
#define shape_GELU_BWD same_as_dy
#define shape_SOFTMAX_BWD same_as_dy
#define shape_LOG_SOFTMAX_BWD same_as_dy

static int shape_RESHAPE(const ir_graph *g, ir_node *n, char *err, size_t errlen)
{
	ir_dim a = ir_type_numel(IN(0)), b = ir_type_numel(&n->type);
	if (!dim_eq(a, b)) {
		char x[128], y[128];
		FAIL("cannot reshape %s (%" PRId64 "%s elements) to %s",
		     ir_type_str(IN(0), x, sizeof x), a.c, a.sym ? "*B" : "",
		     ir_type_str(&n->type, y, sizeof y));
	}
	n->type.dt = IN(0)->dt;
	return 0;
}

static int shape_TRANSPOSE(const ir_graph *g, ir_node *n, char *err, size_t errlen)
{
	const ir_type *a = IN(0);
	int perm[IR_MAX_RANK];
	char b[128];
	if (!ir_perm_unpack(n->ia[0], a->rank, perm))
		FAIL("transpose: %" PRId64 " is not a permutation of the %d axes of %s", n->ia[0], a->rank,
		     ir_type_str(a, b, sizeof b));
	n->type = *a;
	for (int d = 0; d < a->rank; d++)
		n->type.d[d] = a->d[perm[d]];
	return 0;
}

/* [M, K] @ [K, N], or batched: [..., M, K] @ [..., K, N] with the same
 * leading dims (no broadcasting); the language's `@` takes matrices only */
static int shape_MATMUL(const ir_graph *g, ir_node *n, char *err, size_t errlen)
{
	const ir_type *a = IN(0), *b = IN(1);
	char x[128], y[128];
	if (need_f32(a, "matmul", err, errlen) || need_f32(b, "matmul", err, errlen))
		return -1;
	if (a->rank < 2 || a->rank != b->rank)
		FAIL("matmul needs two matrices, found %s and %s",
		     ir_type_str(a, x, sizeof x), ir_type_str(b, y, sizeof y));
	int r = a->rank;
	for (int i = 0; i < r - 2; i++)
		if (!dim_eq(a->d[i], b->d[i]))
			FAIL("matmul: batch dimensions differ: %s @ %s",
			     ir_type_str(a, x, sizeof x), ir_type_str(b, y, sizeof y));
	ir_dim m = a->d[r - (n->ia[0] ? 1 : 2)], ka = a->d[r - (n->ia[0] ? 2 : 1)];
	ir_dim kb = b->d[r - (n->ia[1] ? 1 : 2)], nn = b->d[r - (n->ia[1] ? 2 : 1)];
	if (!dim_eq(ka, kb))
		FAIL("matmul: inner dimensions differ: %s @ %s",
		     ir_type_str(a, x, sizeof x), ir_type_str(b, y, sizeof y));
	n->type = *a;
	n->type.dt = IR_F32;
	n->type.d[r - 2] = m;
	n->type.d[r - 1] = nn;
	return numel_ok(&n->type, err, errlen);
}

static int reduce_axis(const ir_graph *g, ir_node *n, char *err, size_t errlen, ir_dtype dt)
{
	const ir_type *a = IN(0);
	int64_t ax = n->ia[0];
	if (a->rank == 0 || ax < 0 || ax >= a->rank)
		FAIL("%s: axis %" PRId64 " out of range for rank %d", ir_ops[n->op].name, ax, a->rank);
	if (dt == IR_F32 && need_f32(a, ir_ops[n->op].name, err, errlen))
		return -1;
	ir_type t = *a;
	t.dt = dt;
	if (n->ia[1]) {
		t.d[ax] = (ir_dim){ 1, 0 };
	} else {
		for (int i = (int)ax; i + 1 < a->rank; i++)
			t.d[i] = a->d[i + 1];
		t.rank--;
	}
	n->type = t;
	return 0;
}
static int shape_SUM(const ir_graph *g, ir_node *n, char *e, size_t l) { return reduce_axis(g, n, e, l, IR_F32); }
static int shape_MEAN(const ir_graph *g, ir_node *n, char *e, size_t l) { return reduce_axis(g, n, e, l, IR_F32); }
static int shape_MAX(const ir_graph *g, ir_node *n, char *e, size_t l) { return reduce_axis(g, n, e, l, IR_F32); }
static int shape_ARGMAX(const ir_graph *g, ir_node *n, char *e, size_t l) { return reduce_axis(g, n, e, l, IR_I32); }

static int shape_SUM_TO(const ir_graph *g, ir_node *n, char *err, size_t errlen)
{
	n->type.dt = IR_F32;
	return broadcasts_to(&n->type, IN(0), err, errlen);
}

static int shape_BROADCAST(const ir_graph *g, ir_node *n, char *err, size_t errlen)
{
	n->type.dt = IN(0)->dt;
	if (broadcasts_to(IN(0), &n->type, err, errlen))
		return -1;
	return numel_ok(&n->type, err, errlen);
}

static int logits_labels(const ir_graph *g, ir_node *n, char *err, size_t errlen)
{
	const ir_type *x = IN(0), *l = IN(1);
	char a[128], b[128];
	if (need_f32(x, ir_ops[n->op].name, err, errlen))
		return -1;
	if (x->rank != 2 || l->rank != 1 || !dim_eq(x->d[0], l->d[0]))
		FAIL("%s needs logits [N, C] and labels [N], found %s and %s", ir_ops[n->op].name,
		     ir_type_str(x, a, sizeof a), ir_type_str(l, b, sizeof b));
	if (l->dt == IR_F32)
		FAIL("%s: labels must be integers, found %s (convert with i32(...))",
		     ir_ops[n->op].name, ir_type_str(l, b, sizeof b));
	n->type = ir_scalar(IR_F32);
	return 0;
}
#define shape_CROSS_ENTROPY logits_labels
#define shape_ACCURACY logits_labels

static int shape_CROSS_ENTROPY_BWD(const ir_graph *g, ir_node *n, char *err, size_t errlen)
{
	if (logits_labels(g, n, err, errlen))
		return -1;
	n->type = *IN(0);
	return 0;
}

static int shape_MSE(const ir_graph *g, ir_node *n, char *err, size_t errlen)
{
	if (need_f32(IN(0), "mse", err, errlen) || need_f32(IN(1), "mse", err, errlen))
		return -1;
	if (!ir_type_eq(IN(0), IN(1))) {
		char a[128], b[128];
		FAIL("mse: prediction %s and target %s differ", ir_type_str(IN(0), a, sizeof a),
		     ir_type_str(IN(1), b, sizeof b));
	}
	n->type = ir_scalar(IR_F32);
	return 0;
}

static int update(const ir_graph *g, ir_node *n, char *err, size_t errlen)
{
	for (int k = 1; k < n->nin; k++)
		if (!ir_type_eq(IN(0), IN(k)))
			FAIL("%s: operand %d does not match the parameter's shape", ir_ops[n->op].name, k);
	n->type = *IN(0);
	return 0;
}
#define shape_SGD_UPDATE update
#define shape_ADAM_UPDATE update

static int slice_type(const ir_type *x, const int64_t *ia, ir_type *out, char *err, size_t errlen)
{
	char b[128];
	if (ia[0] < 0 || ia[0] >= x->rank)
		FAIL("slice: axis %" PRId64 " out of range for %s", ia[0], ir_type_str(x, b, sizeof b));
	ir_dim d = x->d[ia[0]];
	if (d.sym)
		FAIL("slice: axis %" PRId64 " of %s follows the batch size", ia[0], ir_type_str(x, b, sizeof b));
	if (ia[1] < 0 || ia[1] >= ia[2] || ia[2] > d.c)
		FAIL("slice: [%" PRId64 ", %" PRId64 ") is not a non-empty range inside [0, %" PRId64 ") of %s",
		     ia[1], ia[2], d.c, ir_type_str(x, b, sizeof b));
	*out = *x;
	out->d[ia[0]] = (ir_dim){ ia[2] - ia[1], 0 };
	return 0;
}

static int shape_SLICE(const ir_graph *g, ir_node *n, char *err, size_t errlen)
{
	return slice_type(IN(0), n->ia, &n->type, err, errlen);
}

static int shape_SLICE_BWD(const ir_graph *g, ir_node *n, char *err, size_t errlen)
{
	ir_type y;
	n->type.dt = IN(0)->dt;
	if (slice_type(&n->type, n->ia, &y, err, errlen))
		return -1;
	if (!ir_type_eq(&y, IN(0)))
		FAIL("slice_bwd: gradient of the wrong shape");
	return 0;
}

static int shape_CONCAT(const ir_graph *g, ir_node *n, char *err, size_t errlen)
{
	const ir_type *a = IN(0), *b = IN(1);
	char x[128], y[128];
	int64_t ax = n->ia[0];
	if (a->dt != b->dt || a->rank != b->rank || ax < 0 || ax >= a->rank)
		FAIL("concat: cannot join %s and %s along axis %" PRId64, ir_type_str(a, x, sizeof x),
		     ir_type_str(b, y, sizeof y), ax);
	for (int i = 0; i < a->rank; i++)
		if (i != ax && !dim_eq(a->d[i], b->d[i]))
			FAIL("concat: %s and %s differ in dimension %d", ir_type_str(a, x, sizeof x),
			     ir_type_str(b, y, sizeof y), i);
	if (a->d[ax].sym || b->d[ax].sym)
		FAIL("concat: axis %" PRId64 " follows the batch size in %s or %s", ax,
		     ir_type_str(a, x, sizeof x), ir_type_str(b, y, sizeof y));
	n->type = *a;
	n->type.d[ax].c = a->d[ax].c + b->d[ax].c;
	return 0;
}

static int shape_ONE_HOT(const ir_graph *g, ir_node *n, char *err, size_t errlen)
{
	const ir_type *x = IN(0);
	char b[128];
	if (x->dt == IR_F32)
		FAIL("one_hot needs integer indices, found %s (convert with i32(...))", ir_type_str(x, b, sizeof b));
	if (x->rank >= IR_MAX_RANK || n->ia[0] < 1)
		FAIL("one_hot: classes = %" PRId64 " must be >= 1 (indices %s)", n->ia[0], ir_type_str(x, b, sizeof b));
	n->type = *x;
	n->type.dt = IR_F32;
	n->type.d[x->rank] = (ir_dim){ n->ia[0], 0 };
	n->type.rank++;
	return 0;
}

static int emb_out(const ir_type *tab, const ir_type *idx, ir_type *out, char *err, size_t errlen)
{
	char a[128], b[128];
	if (tab->dt != IR_F32 || tab->rank != 2 || tab->d[0].sym || tab->d[1].sym)
		FAIL("embedding needs a table f32[V, D], found %s", ir_type_str(tab, a, sizeof a));
	if (idx->dt == IR_F32 || idx->rank >= IR_MAX_RANK)
		FAIL("embedding needs integer indices, found %s (convert with i32(...))", ir_type_str(idx, b, sizeof b));
	*out = *idx;
	out->dt = IR_F32;
	out->d[idx->rank] = tab->d[1];
	out->rank++;
	return 0;
}

static int shape_EMBEDDING(const ir_graph *g, ir_node *n, char *err, size_t errlen)
{
	return emb_out(IN(0), IN(1), &n->type, err, errlen);
}

static int shape_EMBEDDING_BWD(const ir_graph *g, ir_node *n, char *err, size_t errlen)
{
	ir_type y;
	n->type.dt = IR_F32;
	if (emb_out(&n->type, IN(1), &y, err, errlen))
		return -1;
	if (!ir_type_eq(&y, IN(0)))
		FAIL("embedding_bwd: gradient of the wrong shape");
	return 0;
}

/* ---- random_flip, convolution, pooling ---- */
static bool all_const(const ir_type *t, int from)
{
	for (int i = from; i < t->rank; i++)
		if (t->d[i].sym)
			return false;
	return true;
}

static int shape_RANDOM_FLIP(const ir_graph *g, ir_node *n, char *err, size_t errlen)
{
	const ir_type *x = IN(0);
	char b[128];
	if (need_f32(x, "random_flip", err, errlen))
		return -1;
	if (x->rank < 2)
		FAIL("random_flip needs a tensor [N, ...] of rank >= 2, found %s", ir_type_str(x, b, sizeof b));
	if (n->ia[0] < 1 || n->ia[0] >= x->rank)
		FAIL("random_flip: axis %" PRId64 " must be one of the per-sample axes 1..%d (axis 0 is the batch)",
		     n->ia[0], x->rank - 1);
	if (!all_const(x, 1))
		FAIL("random_flip: only the first dimension may follow the batch size, found %s",
		     ir_type_str(x, b, sizeof b));
	n->type = *x;
	return 0;
}

/* random_crop / crop: y's type from x's; checks the attributes (ia as in
 * ops.def; `fixed`: ia2, ia3 are CROP's window offsets) */
static int crop_out(const char *name, const ir_type *x, const int64_t *ia, bool fixed, ir_type *out,
                    char *err, size_t errlen)
{
	char b[128];
	int64_t S = ia[0], P = ia[1];
	if (need_f32(x, name, err, errlen))
		return -1;
	if (x->rank < 3 || !all_const(x, 1))
		FAIL("%s needs an input [N, C, H, W] or [N, H, W] (only N may follow the batch size), found %s",
		     name, ir_type_str(x, b, sizeof b));
	if (S < 1 || P < 0)
		FAIL("%s: size (%" PRId64 ") must be >= 1 and pad (%" PRId64 ") >= 0", name, S, P);
	int64_t H = x->d[x->rank - 2].c, W = x->d[x->rank - 1].c;
	int64_t PH = padded(H, P), PW = padded(W, P);
	if (PH < 0 || PW < 0)
		FAIL("%s: pad = %" PRId64 " is too large for %s (the padded size overflows)", name, P,
		     ir_type_str(x, b, sizeof b));
	if (S > PH || S > PW)
		FAIL("%s: the %" PRId64 "x%" PRId64 " window does not fit the padded %" PRId64 "x%" PRId64
		     " input of %s (pad %" PRId64 ")", name, S, S, PH, PW, ir_type_str(x, b, sizeof b), P);
	if (fixed && (ia[2] < 0 || ia[3] < 0 || ia[2] > PH - S || ia[3] > PW - S))
		FAIL("%s: window offset (%" PRId64 ", %" PRId64 ") outside the padded input", name, ia[2], ia[3]);
	*out = *x;
	out->d[x->rank - 2] = (ir_dim){ S, 0 };
	out->d[x->rank - 1] = (ir_dim){ S, 0 };
	return 0;
}

static int crop_fwd(const ir_graph *g, ir_node *n, char *err, size_t errlen)
{
	return crop_out(ir_ops[n->op].name, IN(0), n->ia, n->op == IR_CROP, &n->type, err, errlen);
}
#define shape_RANDOM_CROP crop_fwd
#define shape_CROP crop_fwd

static int expect_type(const ir_type *got, const ir_type *want, const char *what, char *err, size_t errlen);

/* the node's type is x's (preset); dy must have y's */
static int crop_bwd(const ir_graph *g, ir_node *n, char *err, size_t errlen)
{
	ir_type y;
	n->type.dt = IR_F32;
	if (crop_out(ir_ops[n->op].name, &n->type, n->ia, n->op == IR_CROP_BWD, &y, err, errlen))
		return -1;
	return expect_type(IN(0), &y, ir_ops[n->op].name, err, errlen);
}
#define shape_RANDOM_CROP_BWD crop_bwd
#define shape_CROP_BWD crop_bwd

/* conv2d's output type from x and w; checks the attributes (ia: stride,
 * pad, dilation, groups).  conv2d is not an op: passes/conv.c lowers it. */
int shape_conv2d(const ir_type *x, const ir_type *w, const int64_t *ia, ir_type *out,
                 char *err, size_t errlen)
{
	char a[128], b[128];
	int64_t s = ia[0], p = ia[1], d = ia[2], G = ia[3];
	if (need_f32(x, "conv2d", err, errlen) || need_f32(w, "conv2d", err, errlen))
		return -1;
	if (x->rank != 4 || w->rank != 4)
		FAIL("conv2d needs an input [N, C, H, W] and a kernel [O, C/groups, KH, KW], found %s and %s",
		     ir_type_str(x, a, sizeof a), ir_type_str(w, b, sizeof b));
	if (!all_const(x, 1) || !all_const(w, 0))
		FAIL("conv2d: only the first dimension of the input may follow the batch size, found %s and %s",
		     ir_type_str(x, a, sizeof a), ir_type_str(w, b, sizeof b));
	if (s < 1 || p < 0 || d < 1 || G < 1)
		FAIL("conv2d: stride (%" PRId64 ") and dilation (%" PRId64 ") must be >= 1, pad (%" PRId64
		     ") >= 0 and groups (%" PRId64 ") >= 1", s, d, p, G);
	int64_t C = x->d[1].c, O = w->d[0].c;
	if (C % G || O % G)
		FAIL("conv2d: groups = %" PRId64 " must divide the input channels (%" PRId64
		     ") and the output channels (%" PRId64 ")", G, C, O);
	if (w->d[1].c != C / G)
		FAIL("conv2d: the kernel %s needs C/groups = %" PRId64 " input channels for the input %s",
		     ir_type_str(w, b, sizeof b), C / G, ir_type_str(x, a, sizeof a));
	int64_t eh = extent(w->d[2].c, d), ew = extent(w->d[3].c, d);
	int64_t H = padded(x->d[2].c, p), W = padded(x->d[3].c, p);
	if (H < 0 || W < 0)
		FAIL("conv2d: pad = %" PRId64 " is too large for the input %s (the padded size overflows)",
		     p, ir_type_str(x, a, sizeof a));
	if (eh < 0 || ew < 0)
		FAIL("conv2d: dilation = %" PRId64 " is too large for the kernel %s (the window's size "
		     "overflows)", d, ir_type_str(w, b, sizeof b));
	if (eh > H || ew > W)
		FAIL("conv2d: the %" PRId64 "x%" PRId64 " window (kernel %" PRId64 "x%" PRId64 ", dilation %"
		     PRId64 ") does not fit the padded %" PRId64 "x%" PRId64 " input of %s", eh, ew,
		     w->d[2].c, w->d[3].c, d, H, W, ir_type_str(x, a, sizeof a));
	*out = *x;
	out->d[1] = (ir_dim){ O, 0 };
	out->d[2] = (ir_dim){ (H - eh) / s + 1, 0 };
	out->d[3] = (ir_dim){ (W - ew) / s + 1, 0 };
	/* the result and the im2col columns [C, KH, KW, N, OH, OW] conv.c
	 * builds: named here, rather than as the im2col node's shape */
	ir_type col = *out;
	col.rank = 6;
	col.d[0] = x->d[1];
	col.d[1] = w->d[2];
	col.d[2] = w->d[3];
	col.d[3] = x->d[0];
	col.d[4] = out->d[2];
	col.d[5] = out->d[3];
	if (shape_check_size(out, 1, err, errlen)) {
		char m[512];
		snprintf(m, sizeof m, "%s", err);
		FAIL("conv2d: the result %s", m);
	}
	if (shape_check_size(&col, 1, err, errlen)) {
		char m[512];
		snprintf(m, sizeof m, "%s", err);
		FAIL("conv2d: its im2col columns %s", m);
	}
	return 0;
}

static int expect_type(const ir_type *got, const ir_type *want, const char *what, char *err, size_t errlen)
{
	if (!ir_type_eq(got, want)) {
		char a[128], b[128];
		FAIL("%s: %s where %s was expected", what, ir_type_str(got, a, sizeof a),
		     ir_type_str(want, b, sizeof b));
	}
	return 0;
}

/* im2col's column type [C, KH, KW, N, OH, OW] for an input x [N, C, H, W]
 * (ia: stride, pad, dilation) */
static int col_type(const char *what, const ir_type *x, int64_t KH, int64_t KW, const int64_t *ia,
                    ir_type *out, char *err, size_t errlen)
{
	char a[128];
	int64_t s = ia[0], p = ia[1], d = ia[2];
	if (need_f32(x, what, err, errlen))
		return -1;
	if (x->rank != 4 || !all_const(x, 1))
		FAIL("%s needs an image [N, C, H, W] (only N may follow the batch size), found %s", what,
		     ir_type_str(x, a, sizeof a));
	if (s < 1 || p < 0 || d < 1 || KH < 1 || KW < 1)
		FAIL("%s: stride (%" PRId64 "), dilation (%" PRId64 ") and kernel (%" PRId64 "x%" PRId64
		     ") must be >= 1 and pad (%" PRId64 ") >= 0", what, s, d, KH, KW, p);
	int64_t eh = extent(KH, d), ew = extent(KW, d);
	int64_t H = padded(x->d[2].c, p), W = padded(x->d[3].c, p);
	if (H < 0 || W < 0 || eh < 0 || ew < 0 || eh > H || ew > W)
		FAIL("%s: the %" PRId64 "x%" PRId64 " window does not fit the padded input of %s", what, eh, ew,
		     ir_type_str(x, a, sizeof a));
	memset(out, 0, sizeof *out);
	out->dt = IR_F32;
	out->rank = 6;
	out->d[0] = x->d[1];
	out->d[1] = (ir_dim){ KH, 0 };
	out->d[2] = (ir_dim){ KW, 0 };
	out->d[3] = x->d[0];
	out->d[4] = (ir_dim){ (H - eh) / s + 1, 0 };
	out->d[5] = (ir_dim){ (W - ew) / s + 1, 0 };
	return 0;
}

/* the node's type is preset: it names KH and KW */
static int shape_IM2COL(const ir_graph *g, ir_node *n, char *err, size_t errlen)
{
	ir_type want;
	if (n->type.rank != 6)
		FAIL("im2col: the result must have rank 6 [C, KH, KW, N, OH, OW]");
	if (col_type("im2col", IN(0), n->type.d[1].c, n->type.d[2].c, n->ia, &want, err, errlen))
		return -1;
	n->type.dt = IR_F32;
	return expect_type(&n->type, &want, "im2col", err, errlen);
}

/* the node's type is preset: the image [N, C, H, W] */
static int shape_COL2IM(const ir_graph *g, ir_node *n, char *err, size_t errlen)
{
	ir_type want;
	const ir_type *col = IN(0);
	if (col->rank != 6)
		FAIL("col2im needs columns [C, KH, KW, N, OH, OW]");
	n->type.dt = IR_F32;
	if (col_type("col2im", &n->type, col->d[1].c, col->d[2].c, n->ia, &want, err, errlen))
		return -1;
	return expect_type(col, &want, "col2im", err, errlen);
}

static int pool_out(const char *name, const ir_type *x, const int64_t *ia, ir_type *out,
                    char *err, size_t errlen)
{
	char a[128];
	if (need_f32(x, name, err, errlen))
		return -1;
	if (x->rank != 4 || !all_const(x, 1))
		FAIL("%s needs an input [N, C, H, W] (only N may follow the batch size), found %s", name,
		     ir_type_str(x, a, sizeof a));
	if (ia[0] < 1 || ia[1] < 1)
		FAIL("%s: size (%" PRId64 ") and stride (%" PRId64 ") must be >= 1", name, ia[0], ia[1]);
	if (ia[0] > x->d[2].c || ia[0] > x->d[3].c)
		FAIL("%s: the %" PRId64 "x%" PRId64 " window does not fit the input %s", name, ia[0], ia[0],
		     ir_type_str(x, a, sizeof a));
	*out = *x;
	out->d[2] = (ir_dim){ (x->d[2].c - ia[0]) / ia[1] + 1, 0 };
	out->d[3] = (ir_dim){ (x->d[3].c - ia[0]) / ia[1] + 1, 0 };
	return 0;
}

static int shape_MAX_POOL2D(const ir_graph *g, ir_node *n, char *err, size_t errlen)
{
	return pool_out("max_pool2d", IN(0), n->ia, &n->type, err, errlen);
}
static int shape_AVG_POOL2D(const ir_graph *g, ir_node *n, char *err, size_t errlen)
{
	return pool_out("avg_pool2d", IN(0), n->ia, &n->type, err, errlen);
}
static int shape_MAX_POOL2D_BWD(const ir_graph *g, ir_node *n, char *err, size_t errlen)
{
	ir_type y;
	if (pool_out("max_pool2d_bwd", IN(1), n->ia, &y, err, errlen))
		return -1;
	n->type = *IN(1);
	return expect_type(IN(0), &y, "max_pool2d_bwd", err, errlen);
}
static int shape_AVG_POOL2D_BWD(const ir_graph *g, ir_node *n, char *err, size_t errlen)
{
	ir_type y;
	n->type.dt = IR_F32;
	if (pool_out("avg_pool2d_bwd", &n->type, n->ia, &y, err, errlen))
		return -1;
	return expect_type(IN(0), &y, "avg_pool2d_bwd", err, errlen);
}

#define shape_STATE_EMA update

static shape_fn *const shape_rules[IR_NUM_OPS] = {
#define OP(id, name, arity, flags) [IR_##id] = shape_##id,
#include "../ir/ops.def"
#undef OP
};

int shape_infer(const ir_graph *g, ir_node *n, char *err, size_t errlen)
{
	if (shape_rules[n->op](g, n, err, errlen))
		return -1;
	/* every value of every graph, whatever built it, within the size
	 * limit at the graph's batch size */
	return shape_check_size(&n->type, g->bmax, err, errlen);
}

int shape_prepare(const ir_graph *g, ir_node *tmp, ir_opcode op, int nin, const int *in,
                  const ir_type *preset, const int64_t *ia, const float *fa,
                  char *err, size_t errlen)
{
	memset(tmp, 0, sizeof *tmp);
	tmp->op = op;
	tmp->nin = nin;
	for (int k = 0; k < nin; k++)
		tmp->in[k] = in[k];
	if (preset)
		tmp->type = *preset;
	if (ia)
		memcpy(tmp->ia, ia, sizeof tmp->ia);
	if (fa)
		memcpy(tmp->fa, fa, sizeof tmp->fa);
	tmp->stream = -1;
	return shape_infer(g, tmp, err, errlen);
}

ir_node *shape_commit(arena *a, ir_graph *g, const ir_node *tmp, src_loc loc, const char *path)
{
	ir_node *n = ir_add(a, g, tmp->op, tmp->nin, tmp->in, &tmp->type);
	memcpy(n->ia, tmp->ia, sizeof n->ia);
	memcpy(n->fa, tmp->fa, sizeof n->fa);
	n->loc = loc;
	n->path = path;
	return n;
}

static int shape_graph(ir_graph *g)
{
	int bad = 0;
	for (int i = 0; i < g->nnodes; i++) {
		ir_node *n = g->nodes[i];
		ir_type before = n->type;
		char err[512];
		if (shape_infer(g, n, err, sizeof err)) {
			diag_error(n->loc, "%s", err);
			bad++;
		} else if (!ir_type_eq(&before, &n->type)) {
			char a[128], b[128];
			fprintf(stderr, "nndc: internal error: graph %s node %%%d (%s): type %s, rule says %s\n",
			        g->name, i, ir_ops[n->op].name, ir_type_str(&before, a, sizeof a),
			        ir_type_str(&n->type, b, sizeof b));
			bad++;
		}
	}
	return bad;
}

int pass_shape(ir_program *p)
{
	int bad = 0;
	ir_graph *gs[3];
	for (int i = 0, n = ir_graphs(p, gs); i < n; i++)
		bad += shape_graph(gs[i]);
	return bad;
}
