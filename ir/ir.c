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
 * factor is B; the shape pass rejects types that would need B^2. */
ir_dim ir_type_numel(const ir_type *t)
{
	ir_dim n = { 1, 0 };
	for (int i = 0; i < t->rank; i++) {
		n.c *= t->d[i].c;
		n.sym += t->d[i].sym;
	}
	return n;
}

int64_t ir_dim_eval(ir_dim d, int64_t B)
{
	int64_t v = d.c;
	for (int i = 0; i < d.sym; i++)
		v *= B;
	return v;
}

static void dim_str(ir_dim d, char *buf, size_t n)
{
	if (!d.sym)
		snprintf(buf, n, "%" PRId64, d.c);
	else if (d.c == 1)
		snprintf(buf, n, "B");
	else
		snprintf(buf, n, "%" PRId64 "*B", d.c);
}

char *ir_type_str(const ir_type *t, char *buf, size_t n)
{
	size_t len = (size_t)snprintf(buf, n, "%s[", ir_dtype_name(t->dt));
	for (int i = 0; i < t->rank && len < n; i++) {
		char d[32];
		dim_str(t->d[i], d, sizeof d);
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
