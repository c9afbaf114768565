/* ir.c - building IR graphs, types, and the op table's static part. */
#include <string.h>
#include <inttypes.h>
#include "ir.h"

const ir_opinfo ir_ops[IR_NUM_OPS] = {
#define OP(id, name, arity, flags) [IR_##id] = { name, arity, flags },
#include "ops.def"
#undef OP
};

const char *ir_dtype_name(ir_dtype dt)
{
	switch (dt) {
	case IR_F32: return "f32";
	case IR_I32: return "i32";
	case IR_U8: return "u8";
	}
	return "?";
}

int ir_dtype_size(ir_dtype dt)
{
	return dt == IR_U8 ? 1 : 4;
}

bool ir_type_eq(const ir_type *a, const ir_type *b)
{
	if (a->dt != b->dt || a->rank != b->rank)
		return false;
	for (int i = 0; i < a->rank; i++)
		if (a->d[i].c != b->d[i].c || a->d[i].sym != b->d[i].sym)
			return false;
	return true;
}

/* A product of dims stays of the form c * B^sym only while at most one
 * factor is B; the shape pass rejects types that would need B^2.  The
 * product saturates at INT64_MAX instead of overflowing, so that a type
 * written with absurd dimensions reaches the shape pass's size limit
 * (shape_check_size) rather than wrapping to a small or negative count. */
ir_dim ir_type_numel(const ir_type *t)
{
	ir_dim n = { 1, 0 };
	for (int i = 0; i < t->rank; i++) {
		if (__builtin_mul_overflow(n.c, t->d[i].c, &n.c))
			n.c = INT64_MAX;
		n.sym += t->d[i].sym;
	}
	return n;
}

int64_t ir_dim_eval(ir_dim d, int64_t B)
{
	int64_t v = d.c;
	for (int i = 0; i < d.sym; i++)
		if (__builtin_mul_overflow(v, B, &v))
			return INT64_MAX;     /* saturates, like ir_type_numel */
	return v;
}

char *ir_dim_str(ir_dim d, char *buf, size_t n)
{
	if (!d.sym)
		snprintf(buf, n, "%" PRId64, d.c);
	else if (d.c == 1)
		snprintf(buf, n, "B");
	else
		snprintf(buf, n, "%" PRId64 "*B", d.c);
	return buf;
}

char *ir_type_str(const ir_type *t, char *buf, size_t n)
{
	size_t len = (size_t)snprintf(buf, n, "%s[", ir_dtype_name(t->dt));
	for (int i = 0; i < t->rank && len < n; i++) {
		char d[32];
		ir_dim_str(t->d[i], d, sizeof d);
		len += (size_t)snprintf(buf + len, n - len, "%s%s", i ? ", " : "", d);
	}
	if (len < n)
		snprintf(buf + len, n - len, "]");
	return buf;
}

ir_type ir_scalar(ir_dtype dt)
{
	ir_type t;
	memset(&t, 0, sizeof t);
	t.dt = dt;
	return t;
}

const char *ir_plan_str(ir_plan p, char *buf, size_t n)
{
	switch (p.family) {
	case IR_PLAN_NONE: snprintf(buf, n, "none"); break;
	case IR_PLAN_SEQ: snprintf(buf, n, "seq"); break;
	case IR_PLAN_BLOCKED: snprintf(buf, n, "blocked(%" PRId64 ")", p.block); break;
	case IR_PLAN_TREE: snprintf(buf, n, "tree(%d)", p.fanin); break;
	case IR_PLAN_RACY: snprintf(buf, n, "racy"); break;
	}
	if (p.fused) {
		size_t l = strlen(buf);
		if (l < n)
			snprintf(buf + l, n - l, "+fma");
	}
	return buf;
}

const char *ir_init_name(ir_init_kind k)
{
	static const char *names[] = {
		"zeros", "ones", "constant", "uniform", "normal",
		"xavier_uniform", "kaiming_uniform", "kaiming_normal",
	};
	return (unsigned)k < sizeof names / sizeof names[0] ? names[k] : "?";
}

ir_graph *ir_graph_new(arena *a, const char *name)
{
	ir_graph *g = arena_alloc(a, sizeof *g);
	g->name = name;
	g->loss = -1;
	g->result = -1;
	return g;
}

int ir_graphs(const ir_program *p, ir_graph **out)
{
	int n = 0;
	if (p->train) out[n++] = p->train;
	if (p->eval_g) out[n++] = p->eval_g;
	if (p->infer_g) out[n++] = p->infer_g;
	return n;
}

ir_node *ir_add(arena *a, ir_graph *g, ir_opcode op, int nin, const int *in,
                const ir_type *type)
{
	if (nin < 0 || nin > 4)
		nnd_ice("ir_add: %d inputs for %s", nin, ir_ops[op].name);
	if (g->nnodes == g->cap) {
		int cap = g->cap ? g->cap * 2 : 64;
		ir_node **nn = arena_alloc(a, (size_t)cap * sizeof *nn);
		if (g->nnodes)
			memcpy(nn, g->nodes, (size_t)g->nnodes * sizeof *nn);
		g->nodes = nn;
		g->cap = cap;
	}
	ir_node *n = arena_alloc(a, sizeof *n);
	n->id = g->nnodes;
	n->op = op;
	n->nin = nin;
	for (int i = 0; i < nin; i++) {
		if (in[i] < 0 || in[i] >= g->nnodes)
			nnd_ice("ir_add: %s input %d refers to node %d of %d",
			        ir_ops[op].name, i, in[i], g->nnodes);
		n->in[i] = in[i];
	}
	if (type)
		n->type = *type;
	n->stream = -1;
	g->nodes[g->nnodes++] = n;
	return n;
}

static int tree_add(const ir_graph *g, const ir_node *n, ir_tree *t, const ir_node **bad, char *err, size_t errlen)
{
	for (int i = 0; i < n->nin; i++) {
		const ir_node *x = g->nodes[n->in[i]];
		if (x->blk == IR_BLK_FUSED) {
			if (x->off_c != n->id) {
				*bad = x;
				snprintf(err, errlen, "fused into node %" PRId64 ", but read by node %d", x->off_c, n->id);
				return -1;
			}
			if (tree_add(g, x, t, bad, err, errlen))
				return -1;
			continue;
		}
		bool seen = false;
		for (int j = 0; j < t->nleaf; j++)
			seen |= t->leaf[j] == x;
		if (seen)
			continue;
		if (t->nleaf == IR_TREE_LEAVES) {
			*bad = n;
			snprintf(err, errlen, "fused tree reads more than %d values", IR_TREE_LEAVES);
			return -1;
		}
		t->leaf[t->nleaf++] = x;
	}
	if (t->ninner == IR_TREE_INNER) {
		*bad = n;
		snprintf(err, errlen, "fused tree has more than %d nodes", IR_TREE_INNER);
		return -1;
	}
	t->inner[t->ninner++] = n;
	return 0;
}

int ir_fused_tree(const ir_graph *g, const ir_node *root, ir_tree *t, const ir_node **bad,
                  char *err, size_t errlen)
{
	t->ninner = t->nleaf = 0;
	*bad = root;
	return tree_add(g, root, t, bad, err, errlen);
}

/* ---- convolutions as whole operations ---- */

const char *ir_conv_kind_name(ir_conv_kind k)
{
	switch (k) {
	case IR_CONV_FWD: return "fwd";
	case IR_CONV_BWD_FILTER: return "bwd_filter";
	case IR_CONV_BWD_DATA: return "bwd_data";
	case IR_CONV_NONE: break;
	}
	return "-";
}

/* the value a chain of reshapes starts from (same elements, same order) */
static const ir_node *unreshape(const ir_graph *g, const ir_node *n)
{
	while (n->op == IR_RESHAPE && n->nin == 1)
		n = g->nodes[n->in[0]];
	return n;
}

static bool dim_is(ir_dim d, int64_t c) { return d.sym == 0 && d.c == c; }

static bool f32_rank(const ir_node *n, int rank) { return n->type.dt == IR_F32 && n->type.rank == rank; }

/* the matrices of a (batched) matmul operand: [rows, cols] or [G, rows, cols] */
static bool mat_is(const ir_node *n, int64_t G, ir_dim rows, ir_dim cols)
{
	const ir_type *t = &n->type;
	if (t->dt != IR_F32 || t->rank != (G == 1 ? 2 : 3) || (G != 1 && !dim_is(t->d[0], G)))
		return false;
	ir_dim r = t->d[t->rank - 2], c = t->d[t->rank - 1];
	return r.c == rows.c && r.sym == rows.sym && c.c == cols.c && c.sym == cols.sym;
}

/* geometry from the col tensor f32[C,KH,KW,N,OH,OW] and x f32[N,C,H,W] */
static bool conv_geometry(const ir_node *colt, const ir_node *xt, const int64_t *ia, ir_conv *cv)
{
	if (!f32_rank(colt, 6) || !f32_rank(xt, 4))
		return false;
	const ir_dim *c = colt->type.d, *x = xt->type.d;
	for (int i = 0; i < 6; i++)
		if (i != 3 && c[i].sym)
			return false;
	for (int i = 1; i < 4; i++)
		if (x[i].sym)
			return false;
	if (c[3].c != x[0].c || c[3].sym != x[0].sym || c[0].c != x[1].c || x[0].sym > 1)
		return false;
	cv->N = x[0];
	cv->C = x[1].c; cv->H = x[2].c; cv->W = x[3].c;
	cv->KH = c[1].c; cv->KW = c[2].c; cv->OH = c[4].c; cv->OW = c[5].c;
	cv->stride = ia[0]; cv->pad = ia[1]; cv->dil = ia[2];
	if (cv->stride < 1 || cv->pad < 0 || cv->dil < 1 || cv->KH < 1 || cv->KW < 1 || cv->N.c < 1)
		return false;
	/* ops.def's output size: anything else is not this im2col */
	return cv->OH == (cv->H + 2 * cv->pad - cv->dil * (cv->KH - 1) - 1) / cv->stride + 1 &&
	       cv->OW == (cv->W + 2 * cv->pad - cv->dil * (cv->KW - 1) - 1) / cv->stride + 1 && cv->OH >= 1 &&
	       cv->OW >= 1;
}

/* The three matrices of a convolution's matmul mm, G from mm's rank (the
 * leading axis of a batched matmul): wside f32[G?, O/G, C/G*KH*KW], yside
 * f32[G?, O/G, N*OH*OW] and colside f32[G?, C/G*KH*KW, N*OH*OW]; sets G, O */
static bool conv_mats(ir_conv *cv, const ir_node *mm, const ir_node *wside, const ir_node *yside,
                      const ir_node *colside)
{
	int64_t G = mm->type.rank == 3 ? mm->type.d[0].c : 1;
	if (G < 1 || cv->C % G || wside->type.rank != (G == 1 ? 2 : 3))
		return false;
	ir_dim kg = { cv->C / G * cv->KH * cv->KW, 0 }, NP = { cv->N.c * cv->OH * cv->OW, cv->N.sym };
	ir_dim og = wside->type.d[wside->type.rank - 2];
	if (og.sym || og.c < 1 || !mat_is(wside, G, og, kg) || !mat_is(yside, G, og, NP) || !mat_is(colside, G, kg, NP))
		return false;
	cv->G = G;
	cv->O = G * og.c;
	return true;
}

ir_conv_kind ir_conv_match(const ir_graph *g, const ir_node *n, ir_conv *cv)
{
	memset(cv, 0, sizeof *cv);
	cv->x = cv->w = cv->y = -1;
	if (n->op == IR_MATMUL && n->nin == 2 && n->ia[0] == 0 && n->type.dt == IR_F32) {
		const ir_node *a = g->nodes[n->in[0]], *b = g->nodes[n->in[1]], *col = unreshape(g, b);
		if (col->op != IR_IM2COL || col->nin != 1 || !conv_geometry(col, g->nodes[col->in[0]], col->ia, cv))
			return IR_CONV_NONE;
		cv->x = col->in[0];
		if (n->ia[1] == 0 && conv_mats(cv, n, a, n, b)) {
			cv->w = a->id;
			cv->y = n->id;
			return cv->kind = IR_CONV_FWD;
		}
		if (n->ia[1] == 1 && conv_mats(cv, n, n, a, b)) {
			cv->w = n->id;
			cv->y = a->id;
			return cv->kind = IR_CONV_BWD_FILTER;
		}
		return IR_CONV_NONE;
	}
	if (n->op == IR_COL2IM && n->nin == 1) {
		const ir_node *colv = g->nodes[n->in[0]], *mm = unreshape(g, colv);
		if (mm->op != IR_MATMUL || mm->nin != 2 || mm->ia[0] != 1 || mm->ia[1] != 0 ||
		    !conv_geometry(colv, n, n->ia, cv))
			return IR_CONV_NONE;
		const ir_node *a = g->nodes[mm->in[0]], *d = g->nodes[mm->in[1]];
		if (!conv_mats(cv, mm, a, d, mm))
			return IR_CONV_NONE;
		cv->x = n->id;
		cv->w = a->id;
		cv->y = d->id;
		return cv->kind = IR_CONV_BWD_DATA;
	}
	return IR_CONV_NONE;
}

int ir_conv_reads(const ir_graph *g, const ir_node *n, int rd[2])
{
	ir_conv cv;
	int k = 0;
	if (!ir_conv_match(g, n, &cv))
		return 0;
	if (cv.x != n->id) rd[k++] = cv.x;
	if (cv.w != n->id) rd[k++] = cv.w;
	if (cv.y != n->id) rd[k++] = cv.y;
	return k;
}
