/* cuda.c - lowering a planned IR module to CUDA C++ (see cuda.h and
 * docs/cuda.md).
 *
 * One __global__ kernel per node; one thread per independent output unit
 * (an element, a row, an output of a reduction), in a grid-stride loop
 * over the node's units.  A thread computes its output with exactly the
 * float operations of ir/ops.def, in the order codegen/llvm.c emits them
 * (which is the order the op's comment specifies), so the bits are those
 * of the CPU backend:
 *
 *  - every reduction goes through nnd_reduce_seq / nnd_reduce_blocked /
 *    nnd_reduce_tree (preamble below): the plan families of passes/plans.c,
 *    a term lambda called exactly once per term in ascending order (as
 *    emit_reduce's term callback), so terms may store side results;
 *  - max, argmax and accuracy's count are order-independent: one
 *    sequential form for every plan (as on the CPU);
 *  - transcendentals are nnd's own (runtime/math.c compiled as device
 *    code), random numbers Philox4x32-10 (runtime/philox.c) with the same
 *    counters as the CPU;
 *  - no atomics, no shared-memory reductions across threads: no output is
 *    ever split between threads.
 *
 * Adding an op: write cu_<ID>(cu *c, const ir_node *n) below (the table at
 * the end is built from ir/ops.def, so a row without one does not
 * compile).  The usual shape:
 *
 *     k_begin(c, n, units);                 units: an ir_dim (c * B^sym)
 *     const char *x = use(c, in_node(c, n, 0)), *y = use(c, n);
 *     k_loop(c);                            for each unit u of this thread
 *     line(c, "%s = ...;", W(c, n, "u"), R(c, in_node(c, n, 0), "u"));
 *     return k_end(c);
 *
 * R(c, node, idx) reads a value (an immediate for CONST/NUMEL), W(...) is
 * the lvalue; reductions open with reduce_open(c, n, plan, len) and close
 * with reduce_close(c), the term body in between returning the term for k.
 * An op that cannot run on the device returns cu_err(c, n, "why"). */
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cuda.h"

/* runtime/nnd_dev.h, runtime/math.c, runtime/philox.c (cmake/embed.cmake) */
extern const char cg_cuda_embed_dev_h[], cg_cuda_embed_math_c[], cg_cuda_embed_philox_c[];

typedef struct cu {
	FILE *f;                 /* kernel text */
	FILE *rec;               /* launch records */
	const ir_program *prog;
	const ir_graph *g;
	int pi, gi;
	const char *gname;
	/* the kernel being written */
	const ir_node *kn;
	char kname[96];
	ir_dim units;
	ir_dim flops;            /* float operations of a launch, for profiles (0: not counted) */
	bool *decl;              /* per node id of the graph */
	char *err;
	size_t errlen;
	bool failed;
	bool swap_written;       /* nnd_swap01 (for --cudnn) is in the source */
} cu;

static int cu_err(cu *c, const ir_node *n, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int cu_err(cu *c, const ir_node *n, const char *fmt, ...)
{
	if (c->failed)
		return -1;
	c->failed = true;
	int o = snprintf(c->err, c->errlen, "cuda: %s graph of program %d, node %d (%s%s%s): ", c->gname, c->pi,
	                 n->id, ir_ops[n->op].name, n->path ? " " : "", n->path ? n->path : "");
	if (o < 0 || (size_t)o >= c->errlen)
		return -1;
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(c->err + o, c->errlen - (size_t)o, fmt, ap);
	va_end(ap);
	return -1;
}

static void line(cu *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void line(cu *c, const char *fmt, ...)
{
	va_list ap;
	fputs("\t\t", c->f);
	va_start(ap, fmt);
	vfprintf(c->f, fmt, ap);
	va_end(ap);
	fputc('\n', c->f);
}

static const ir_node *in_node(cu *c, const ir_node *n, int i) { return c->g->nodes[n->in[i]]; }

/* ---- dimension expressions: c * B^sym ---- */

static ir_dim dmul(ir_dim a, ir_dim b) { return (ir_dim){ a.c * b.c, a.sym + b.sym }; }
static ir_dim dconst(int64_t v) { return (ir_dim){ v, 0 }; }
static bool dim_is_one(ir_dim d) { return d.c == 1 && d.sym == 0; }

/* rotating string buffers for expressions */
static char *sbuf(void)
{
	static char bufs[32][256];
	static int next;
	next = (next + 1) & 31;
	return bufs[next];
}

static const char *DX(ir_dim d)
{
	char *b = sbuf();
	int o = snprintf(b, 256, "(%" PRId64 "LL", d.c);
	for (int i = 0; i < d.sym && o < 240; i++)
		o += snprintf(b + o, (size_t)(256 - o), "*B");
	snprintf(b + o, (size_t)(256 - o), ")");
	return b;
}

static ir_dim dprod(const ir_type *t, int lo, int hi)
{
	ir_dim v = dconst(1);
	for (int i = lo; i < hi; i++)
		v = dmul(v, t->d[i]);
	return v;
}

static void strides_of(const ir_type *t, ir_dim *s)
{
	ir_dim acc = dconst(1);
	for (int k = t->rank - 1; k >= 0; k--) {
		s[k] = acc;
		acc = dmul(acc, t->d[k]);
	}
}

/* strides of `in` read NumPy-broadcast into rank `rank` (0: broadcast) */
static void bcast_strides(const ir_type *in, int rank, ir_dim *s)
{
	ir_dim is[IR_MAX_RANK];
	strides_of(in, is);
	for (int k = 0; k < rank; k++) {
		int j = k - (rank - in->rank);
		s[k] = (j < 0 || dim_is_one(in->d[j])) ? dconst(0) : is[j];
	}
}

/* ---- operands ---- */

static const char *ctype(ir_dtype dt)
{
	return dt == IR_F32 ? "float" : dt == IR_I32 ? "int32_t" : "uint8_t";
}

static const char *fbits(float f)
{
	uint32_t u;
	memcpy(&u, &f, 4);
	char *b = sbuf();
	snprintf(b, 256, "__uint_as_float(0x%08" PRIx32 "u)", u);
	return b;
}

static bool is_imm(const ir_node *n) { return n->op == IR_CONST || n->op == IR_NUMEL; }

/* the immediate value of a CONST / NUMEL */
static const char *imm_val(const ir_node *n)
{
	char *b = sbuf();
	if (n->op == IR_NUMEL) {   /* (float)(ia0 * B^ia1): an int64 rounded once */
		snprintf(b, 256, "((float)%s)", DX((ir_dim){ n->ia[0], (int)n->ia[1] }));
		return b;
	}
	switch (n->type.dt) {
	case IR_F32: return fbits(n->fa[0]);
	case IR_I32: snprintf(b, 256, "((int32_t)%" PRId32 ")", (int32_t)n->fa[0]); return b;
	case IR_U8: snprintf(b, 256, "((uint8_t)%u)", (unsigned)(uint8_t)n->fa[0]); return b;
	}
	return "0";
}

/* pointer expression of a node's storage; NULL when it has none */
static const char *storage(const ir_node *n)
{
	char *b = sbuf();
	const char *t = ctype(n->type.dt);
	const char *blk = NULL;
	switch (n->blk) {
	case IR_BLK_ACT:
		snprintf(b, 256, "((%s *)(a.acts + (%" PRId64 "LL + %" PRId64 "LL * a.Bmax)))", t, n->off_c, n->off_b);
		return b;
	case IR_BLK_INPUT:
		snprintf(b, 256, "((%s *)a.inputs[%" PRId64 "])", t, n->ia[0]);
		return b;
	case IR_BLK_PARAM: blk = "params"; break;
	case IR_BLK_GRAD: blk = "grads"; break;
	case IR_BLK_OPT: blk = "opt"; break;
	case IR_BLK_STATE: blk = "state"; break;
	case IR_BLK_OUTPUT: blk = "outputs"; break;
	case IR_BLK_RESULT: blk = "result"; break;
	default: return NULL;
	}
	snprintf(b, 256, "((%s *)(a.%s + %" PRId64 "LL))", t, blk, n->off_c);
	return b;
}

/* Declares node n's operand in the current kernel (once) and returns its
 * name: v<ID>, a pointer or (CONST/NUMEL) an immediate. */
static const char *use(cu *c, const ir_node *n)
{
	char *b = sbuf();
	snprintf(b, 256, "v%d", n->id);
	if (c->decl[n->id])
		return b;
	c->decl[n->id] = true;
	if (is_imm(n)) {
		fprintf(c->f, "\tconst %s v%d = %s;\n", n->op == IR_NUMEL ? "float" : ctype(n->type.dt), n->id, imm_val(n));
		return b;
	}
	const char *s = storage(n);
	if (!s) {
		cu_err(c, n, "value has no storage (memory plan missing)");
		fprintf(c->f, "\t%s *const v%d = 0;\n", ctype(n->type.dt), n->id);
		return b;
	}
	fprintf(c->f, "\t%s *const __restrict__ v%d = %s;\n", ctype(n->type.dt), n->id, s);
	return b;
}

/* read of n at index expression idx (printf-style) */
static const char *R(cu *c, const ir_node *n, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static const char *R(cu *c, const ir_node *n, const char *fmt, ...)
{
	const char *nm = use(c, n);
	char *b = sbuf();
	if (is_imm(n)) {
		snprintf(b, 256, "%s", nm);
		return b;
	}
	char idx[200];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(idx, sizeof idx, fmt, ap);
	va_end(ap);
	snprintf(b, 256, "%s[%s]", nm, idx);
	return b;
}
#define W R

/* ---- kernels ---- */

static void k_begin(cu *c, const ir_node *n, ir_dim units)
{
	c->kn = n;
	c->units = units;
	c->flops = dconst(0);
	if (n)
		snprintf(c->kname, sizeof c->kname, "nnd_p%d_%s_n%d", c->pi, c->gname, n->id);
	else
		snprintf(c->kname, sizeof c->kname, "nnd_p%d_%s_outputs", c->pi, c->gname);
	memset(c->decl, 0, (size_t)c->g->nnodes * sizeof *c->decl);
	fprintf(c->f, "\n/* %%%d %s%s%s */\n", n ? n->id : -1, n ? ir_ops[n->op].name : "outputs",
	        n && n->path ? " @" : "", n && n->path ? n->path : "");
	fprintf(c->f, "extern \"C\" __global__ void NND_BOUNDS %s(const nnd_dargs a)\n{\n", c->kname);
	fprintf(c->f, "\tconst int64_t B = a.B;\n\t(void)B;\n");
}

static void k_loop(cu *c)
{
	fprintf(c->f, "\tconst int64_t units = %s;\n", DX(c->units));
	fprintf(c->f, "\tfor (int64_t u = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; u < units;\n"
	              "\t     u += (int64_t)gridDim.x * blockDim.x) {\n");
}

/* the value whose digest the runtime takes after node n */
static void record(cu *c, const ir_node *n, const char *kname, ir_dim units, ir_dim flops)
{
	const ir_node *v = n && (ir_ops[n->op].flags & IR_F_UPDATE) ? in_node(c, n, 0) : n;
	int blk = 0;
	int64_t offc = 0, offb = 0;
	ir_dim bytes = dconst(0);
	if (v && v->blk != IR_BLK_NONE && v->blk != IR_BLK_FUSED) {
		blk = (int)v->blk;
		offc = v->blk == IR_BLK_INPUT ? v->ia[0] : v->off_c;
		offb = v->blk == IR_BLK_ACT ? v->off_b : 0;
		bytes = dmul(ir_type_numel(&v->type), dconst(ir_dtype_size(v->type.dt)));
	}
	fprintf(c->rec, "//@node %d %d %d %s %" PRId64 " %d %d %" PRId64 " %" PRId64 " %" PRId64 " %d %" PRId64 " %d %s\n",
	        c->pi, c->gi, n ? n->id : -1, kname, units.c, units.sym, blk, offc, offb, bytes.c, bytes.sym, flops.c,
	        flops.sym, n ? ir_ops[n->op].name : "outputs");
}

static int k_end(cu *c)
{
	fprintf(c->f, "\t}\n}\n");
	record(c, c->kn, c->kname, c->units, c->flops);
	return c->failed ? -1 : 0;
}

/* ---- plans ---- */

static int check_plan(cu *c, const ir_node *n)
{
	switch (n->plan.family) {
	case IR_PLAN_SEQ: return 0;
	case IR_PLAN_BLOCKED: return n->plan.block >= 1 ? 0 : cu_err(c, n, "malformed blocked plan");
	case IR_PLAN_TREE: return n->plan.fanin >= 2 ? 0 : cu_err(c, n, "malformed tree plan");
	case IR_PLAN_RACY: return cu_err(c, n, "the test-only racy plan has no CUDA kernel");
	case IR_PLAN_NONE: break;
	}
	return cu_err(c, n, "reduction without a plan");
}

/* "const float VAR = nnd_reduce_<plan>(LEN, ..., [&](int64_t k) -> float {" */
static void reduce_open(cu *c, const char *var, ir_plan p, const char *len)
{
	switch (p.family) {
	case IR_PLAN_BLOCKED:
		line(c, "const float %s = nnd_reduce_blocked(%s, %" PRId64 "LL, [&](int64_t k) -> float {", var, len, p.block);
		break;
	case IR_PLAN_TREE:
		line(c, "const float %s = nnd_reduce_tree(%s, %dLL, [&](int64_t k) -> float {", var, len, p.fanin);
		break;
	default:
		line(c, "const float %s = nnd_reduce_seq(%s, [&](int64_t k) -> float {", var, len);
		break;
	}
}
static void reduce_close(cu *c) { line(c, "});"); }

/* racy (tests) falls back to seq for the inner sums of cross_entropy */
static ir_plan row_plan(const ir_node *n)
{
	ir_plan p = n->plan;
	if (p.family == IR_PLAN_RACY)
		p.family = IR_PLAN_SEQ;
	return p;
}

/* ---- shared pieces ---- */

static int need_f32(cu *c, const ir_node *n)
{
	if (n->type.dt != IR_F32)
		return cu_err(c, n, "result must be f32");
	for (int i = 0; i < n->nin; i++)
		if (in_node(c, n, i)->type.dt != IR_F32 && !(n->op == IR_WHERE && i == 0))
			return cu_err(c, n, "input %d must be f32", i);
	return 0;
}

/* decomposes u into indices i0..i{r-1} of type t (row-major) */
static void decompose(cu *c, const ir_type *t, const char *u, const char *pre)
{
	if (t->rank == 0)
		return;
	line(c, "int64_t %st_ = %s;", pre, u);
	for (int d = t->rank - 1; d > 0; d--) {
		line(c, "const int64_t %si%d = %st_ %% %s;", pre, d, pre, DX(t->d[d]));
		line(c, "%st_ /= %s;", pre, DX(t->d[d]));
	}
	line(c, "const int64_t %si0 = %st_;", pre, pre);
}

/* index expression sum_d i_d * s_d */
static const char *index_of(const ir_dim *s, int rank, const char *pre)
{
	char *b = sbuf();
	int o = snprintf(b, 256, "0");
	for (int d = 0; d < rank && o < 230; d++)
		if (s[d].c != 0)
			o += snprintf(b + o, (size_t)(256 - o), " + %si%d*%s", pre, d, DX(s[d]));
	return b;
}

/* the MAXIMUM rule, the argmax step, label loads are preamble helpers */
static const char *label_of(cu *c, const ir_node *lab, const char *idx)
{
	char *b = sbuf();
	snprintf(b, 256, "((int64_t)%s)", R(c, lab, "%s", idx));   /* u8: zero-extends; i32: sign-extends */
	return b;
}

/* ------------------------------------------------------------------ */
/* elementwise                                                         */

static const char *scalar(cu *c, const ir_node *n, const char **x)
{
	char *b = sbuf();
	bool f = n->type.dt == IR_F32;
	const char *T = ctype(n->type.dt);
	switch (n->op) {
	case IR_NEG:
		if (f)
			snprintf(b, 256, "(-%s)", x[0]);
		else   /* wrapping, as LLVM's neg */
			snprintf(b, 256, "((%s)(0u - (uint32_t)%s))", T, x[0]);
		return b;
	case IR_EXP: snprintf(b, 256, "nnd_rt_expf(%s)", x[0]); return b;
	case IR_LOG: snprintf(b, 256, "nnd_rt_logf(%s)", x[0]); return b;
	case IR_SQRT: snprintf(b, 256, "__fsqrt_rn(%s)", x[0]); return b;
	case IR_TANH: snprintf(b, 256, "nnd_rt_tanhf(%s)", x[0]); return b;
	case IR_SIGMOID: snprintf(b, 256, "nnd_rt_sigmoidf(%s)", x[0]); return b;
	case IR_GELU: snprintf(b, 256, "nnd_rt_geluf(%s)", x[0]); return b;
	case IR_RELU: snprintf(b, 256, "nnd_relu(%s)", x[0]); return b;
	case IR_POW: snprintf(b, 256, "nnd_rt_powf(%s, %s)", x[0], x[1]); return b;
	case IR_ADD: case IR_SUB: case IR_MUL: case IR_DIV: {
		const char *op = n->op == IR_ADD ? "+" : n->op == IR_SUB ? "-" : n->op == IR_MUL ? "*" : "/";
		if (f)
			snprintf(b, 256, "(%s %s %s)", x[0], op, x[1]);
		else if (n->op == IR_DIV)
			return NULL;
		else   /* wrapping integer arithmetic, as LLVM's add/sub/mul */
			snprintf(b, 256, "((%s)((uint32_t)%s %s (uint32_t)%s))", T, x[0], op, x[1]);
		return b;
	}
	case IR_MAXIMUM: snprintf(b, 256, "nnd_maximum(%s, %s)", x[0], x[1]); return b;
	case IR_MINIMUM: snprintf(b, 256, "nnd_minimum(%s, %s)", x[0], x[1]); return b;
	case IR_GE: snprintf(b, 256, "(%s >= %s ? 1.0f : 0.0f)", x[0], x[1]); return b;
	case IR_WHERE:
		snprintf(b, 256, "(%s != %s ? %s : %s)", x[0], in_node(c, n, 0)->type.dt == IR_F32 ? "0.0f" : "0", x[1],
		         x[2]);
		return b;
	case IR_RELU_BWD: snprintf(b, 256, "(%s > 0.0f ? %s : 0.0f)", x[1], x[0]); return b;
	case IR_TANH_BWD: snprintf(b, 256, "(%s * (1.0f - %s * %s))", x[0], x[1], x[1]); return b;
	case IR_SIGMOID_BWD: snprintf(b, 256, "(%s * (%s * (1.0f - %s)))", x[0], x[1], x[1]); return b;
	case IR_GELU_BWD: snprintf(b, 256, "(%s * nnd_rt_gelu_gradf(%s))", x[0], x[1]); return b;
	case IR_BROADCAST: snprintf(b, 256, "%s", x[0]); return b;
	case IR_CAST: {
		ir_dtype from = in_node(c, n, 0)->type.dt, to = n->type.dt;
		if (from == to)
			snprintf(b, 256, "%s", x[0]);
		else if (from == IR_F32)   /* truncates toward 0 */
			snprintf(b, 256, to == IR_I32 ? "((int32_t)%s)" : "((uint8_t)(uint32_t)%s)", x[0]);
		else if (to == IR_F32)
			snprintf(b, 256, "((float)%s)", x[0]);
		else if (from == IR_U8)
			snprintf(b, 256, "((int32_t)%s)", x[0]);
		else
			snprintf(b, 256, "((uint8_t)(uint32_t)%s)", x[0]);   /* modulo 256 */
		return b;
	}
	default: return NULL;
	}
}

/* the operand checks of one elementwise node (its own kernel's or fused) */
static int elem_check(cu *c, const ir_node *n)
{
	for (int i = 0; i < n->nin; i++)
		if (in_node(c, n, i)->type.rank > n->type.rank)
			return cu_err(c, n, "input %d has a higher rank than the result", i);
	if ((n->op == IR_ADD || n->op == IR_SUB || n->op == IR_MUL || n->op == IR_DIV) &&
	    (in_node(c, n, 0)->type.dt != n->type.dt || in_node(c, n, 1)->type.dt != n->type.dt))
		return cu_err(c, n, "operand dtypes differ from the result's");
	if (n->op == IR_BROADCAST && in_node(c, n, 0)->type.dt != n->type.dt)
		return cu_err(c, n, "dtype changes");
	if (n->op == IR_WHERE &&
	    (in_node(c, n, 1)->type.dt != n->type.dt || in_node(c, n, 2)->type.dt != n->type.dt))
		return cu_err(c, n, "branch dtypes differ from the result's");
	return 0;
}

static int emit_elementwise(cu *c, const ir_node *n)
{
	if (n->nin > 3)
		return cu_err(c, n, "bad arity");
	if (is_imm(n) || n->blk == IR_BLK_NONE || n->blk == IR_BLK_FUSED)
		return cu_err(c, n, "an elementwise result needs storage");
	ir_tree t;
	const ir_node *bad;
	char err[128];
	if (ir_fused_tree(c->g, n, &t, &bad, err, sizeof err))   /* leaves: broadcast against the root */
		return cu_err(c, bad, "%s", err);
	for (int m = 0; m < t.ninner; m++) {
		const ir_node *x = t.inner[m];
		if (x != n && (!(ir_ops[x->op].flags & IR_F_ELEM) || x->type.rank != n->type.rank))
			return cu_err(c, x, "cannot be fused into node %d", n->id);
		if (elem_check(c, x))
			return -1;
		/* the rules cu_ID applies to its own node (f32-only ops) */
		bool any_dt = x->op == IR_NEG || x->op == IR_CAST || x->op == IR_ADD || x->op == IR_SUB ||
		              x->op == IR_MUL || x->op == IR_DIV || x->op == IR_WHERE;
		if (x != n && !any_dt && need_f32(c, x))
			return -1;
	}
	k_begin(c, n, ir_type_numel(&n->type));
	for (int i = 0; i < t.nleaf; i++)
		use(c, t.leaf[i]);
	use(c, n);
	k_loop(c);
	decompose(c, &n->type, "u", "");
	for (int i = 0; i < t.nleaf; i++) {
		const ir_node *in = t.leaf[i];
		ir_dim s[IR_MAX_RANK];
		bcast_strides(&in->type, n->type.rank, s);
		line(c, "const %s e%d = %s;", ctype(in->type.dt), in->id, R(c, in, "%s", index_of(s, n->type.rank, "")));
	}
	for (int m = 0; m < t.ninner; m++) {
		const ir_node *x = t.inner[m];
		char names[3][16];
		const char *xs[3];
		for (int i = 0; i < x->nin; i++) {
			snprintf(names[i], sizeof names[i], "e%d", in_node(c, x, i)->id);
			xs[i] = names[i];
		}
		const char *y = scalar(c, x, xs);
		if (!y)
			return cu_err(c, x, "no scalar rule (integer division?)");
		if (x == n)
			line(c, "%s = %s;", W(c, n, "u"), y);
		else
			line(c, "const %s e%d = %s;", ctype(x->type.dt), x->id, y);
	}
	return k_end(c);
}

static int need_f32_elem(cu *c, const ir_node *n) { return need_f32(c, n) ? -1 : emit_elementwise(c, n); }

static int cu_NEG(cu *c, const ir_node *n) { return emit_elementwise(c, n); }
static int cu_EXP(cu *c, const ir_node *n) { return need_f32_elem(c, n); }
static int cu_LOG(cu *c, const ir_node *n) { return need_f32_elem(c, n); }
static int cu_SQRT(cu *c, const ir_node *n) { return need_f32_elem(c, n); }
static int cu_TANH(cu *c, const ir_node *n) { return need_f32_elem(c, n); }
static int cu_SIGMOID(cu *c, const ir_node *n) { return need_f32_elem(c, n); }
static int cu_RELU(cu *c, const ir_node *n) { return need_f32_elem(c, n); }
static int cu_GELU(cu *c, const ir_node *n) { return need_f32_elem(c, n); }
static int cu_CAST(cu *c, const ir_node *n) { return emit_elementwise(c, n); }
static int cu_ADD(cu *c, const ir_node *n) { return emit_elementwise(c, n); }
static int cu_SUB(cu *c, const ir_node *n) { return emit_elementwise(c, n); }
static int cu_MUL(cu *c, const ir_node *n) { return emit_elementwise(c, n); }
static int cu_DIV(cu *c, const ir_node *n) { return emit_elementwise(c, n); }
static int cu_POW(cu *c, const ir_node *n) { return need_f32_elem(c, n); }
static int cu_MAXIMUM(cu *c, const ir_node *n) { return need_f32_elem(c, n); }
static int cu_MINIMUM(cu *c, const ir_node *n) { return need_f32_elem(c, n); }
static int cu_GE(cu *c, const ir_node *n) { return need_f32_elem(c, n); }
static int cu_RELU_BWD(cu *c, const ir_node *n) { return need_f32_elem(c, n); }
static int cu_TANH_BWD(cu *c, const ir_node *n) { return need_f32_elem(c, n); }
static int cu_SIGMOID_BWD(cu *c, const ir_node *n) { return need_f32_elem(c, n); }
static int cu_GELU_BWD(cu *c, const ir_node *n) { return need_f32_elem(c, n); }
static int cu_BROADCAST(cu *c, const ir_node *n) { return emit_elementwise(c, n); }
static int cu_WHERE(cu *c, const ir_node *n) { return emit_elementwise(c, n); }

/* ------------------------------------------------------------------ */
/* leaves, constants, shapes                                           */

static int no_kernel(cu *c, const ir_node *n)
{
	record(c, n, "-", dconst(0), dconst(0));
	return 0;
}
static int cu_INPUT(cu *c, const ir_node *n) { return no_kernel(c, n); }
static int cu_PARAM(cu *c, const ir_node *n) { return no_kernel(c, n); }
static int cu_STATE(cu *c, const ir_node *n) { return no_kernel(c, n); }
static int cu_OPT_SLOT(cu *c, const ir_node *n) { return no_kernel(c, n); }

/* memory is filled only when the memory plan gave a CONST/NUMEL a slot;
 * reads use the immediate */
static int cu_CONST(cu *c, const ir_node *n)
{
	if (n->blk == IR_BLK_NONE)
		return no_kernel(c, n);
	k_begin(c, n, ir_type_numel(&n->type));
	const char *s = storage(n);
	fprintf(c->f, "\t%s *const __restrict__ y = %s;\n", ctype(n->type.dt), s ? s : "0");
	k_loop(c);
	line(c, "y[u] = %s;", imm_val(n));
	return k_end(c);
}

static int cu_NUMEL(cu *c, const ir_node *n)
{
	if (n->type.dt != IR_F32 || n->type.rank != 0)
		return cu_err(c, n, "numel is f32[]");
	return cu_CONST(c, n);
}

static bool same_storage(const ir_node *a, const ir_node *b)
{
	return a->blk == b->blk && a->off_c == b->off_c && a->off_b == b->off_b &&
	       (a->blk != IR_BLK_INPUT || a->ia[0] == b->ia[0]);
}

static int cu_RESHAPE(cu *c, const ir_node *n)
{
	const ir_node *x = in_node(c, n, 0);
	if (x->type.dt != n->type.dt)
		return cu_err(c, n, "dtype changes");
	if (same_storage(n, x) && !is_imm(x))
		return no_kernel(c, n);   /* aliased by the memory plan */
	k_begin(c, n, ir_type_numel(&n->type));
	use(c, x);
	use(c, n);
	k_loop(c);
	line(c, "%s = %s;", W(c, n, "u"), R(c, x, "u"));
	return k_end(c);
}

/* output axis d reads input axis perm[d] (ops.def): a copy per element */
static int cu_TRANSPOSE(cu *c, const ir_node *n)
{
	const ir_node *x = in_node(c, n, 0);
	int r = n->type.rank, perm[IR_MAX_RANK];
	if (x->type.rank != r || !ir_perm_unpack(n->ia[0], r, perm))
		return cu_err(c, n, "bad transpose permutation");
	if (x->type.dt != n->type.dt)
		return cu_err(c, n, "dtype changes");
	ir_dim is[IR_MAX_RANK], s[IR_MAX_RANK];
	strides_of(&x->type, is);
	for (int d = 0; d < r; d++)
		s[d] = is[perm[d]];
	k_begin(c, n, ir_type_numel(&n->type));
	use(c, x);
	use(c, n);
	k_loop(c);
	decompose(c, &n->type, "u", "");
	line(c, "%s = %s;", W(c, n, "u"), R(c, x, "%s", index_of(s, r, "")));
	return k_end(c);
}

/* ------------------------------------------------------------------ */
/* reductions                                                          */

static int axis_of(cu *c, const ir_node *n, const ir_type *t, int *axis)
{
	int64_t a = n->ia[0];
	if (a < 0)
		a += t->rank;
	if (a < 0 || a >= t->rank)
		return cu_err(c, n, "axis %" PRId64 " out of range", n->ia[0]);
	*axis = (int)a;
	return 0;
}

/* A seq reduction with few outputs and many terms (batch statistics,
 * bias and scale gradients of convolutions) runs one output per block:
 * the block reads 256 terms at a time into shared memory, in parallel and
 * coalesced, and thread 0 adds them in order, the plan's one chain.  One
 * output per thread would leave most of the GPU idle and each thread
 * waiting on its own loads (timed on an H100: docs/cuda.md). */
#define CU_BLOCK_OUTS 8192   /* at most this many outputs (at the batch size) */
#define CU_BLOCK_TERMS 1024  /* of at least this many terms */

static bool block_form(cu *c, ir_dim outs, ir_dim terms)
{
	int64_t bmax = c->prog && c->prog->batch > 0 ? c->prog->batch : 1;
	/* NND_CUDA_BLOCK_MIN, NND_CUDA_BLOCK_MAX (tests, tuning): another least
	 * number of terms, another most outputs */
	const char *bmin = getenv("NND_CUDA_BLOCK_MIN"), *bout = getenv("NND_CUDA_BLOCK_MAX");
	int64_t least = bmin && *bmin ? strtoll(bmin, NULL, 10) : CU_BLOCK_TERMS;
	int64_t most = bout && *bout ? strtoll(bout, NULL, 10) : CU_BLOCK_OUTS;
	return ir_dim_eval(outs, bmax) <= most && ir_dim_eval(terms, bmax) >= least;
}

/* opens the kernel (one output u per block, 256 threads each); its body
 * computes base, then block_sum */
static void block_begin(cu *c, const ir_node *n, ir_dim outs)
{
	k_begin(c, n, dmul(dconst(256), outs));
	fprintf(c->f, "\tconst int64_t outs = %s;\n", DX(outs));
	/* the trip count is the same for every thread of a block (they all
	 * meet at __syncthreads) */
	fprintf(c->f, "\tfor (int64_t u = blockIdx.x; u < outs; u += gridDim.x) {\n");
}

/* The terms k = 0 .. terms-1 in chunks of 256: every thread runs load
 * (term k into [b_][e] of two shared buffers), thread 0 runs add on
 * [b_][e], e ascending, for the chunk before, while the others load: one
 * chain in k order, the loads of chunk c overlapping the sum of c - 1. */
static void block_loop(cu *c, const char *terms, const char *load, const char *add)
{
	line(c, "const int64_t nk_ = %s, nc_ = (nk_ + 255) / 256;", terms);
	line(c, "for (int64_t c_ = 0; c_ <= nc_; c_++) {");
	line(c, "\tif (c_ < nc_) {");
	line(c, "\t\tconst int b_ = (int)(c_ & 1), n_ = nk_ - c_ * 256 < 256 ? (int)(nk_ - c_ * 256) : 256;");
	line(c, "\t\tfor (int e = threadIdx.x; e < n_; e += blockDim.x) {");
	line(c, "\t\t\tconst int64_t k = c_ * 256 + e;");
	line(c, "\t\t\t%s", load);
	line(c, "\t\t}");
	line(c, "\t}");
	line(c, "\tif (c_ > 0 && threadIdx.x == 0) {");
	line(c, "\t\tconst int b_ = (int)((c_ - 1) & 1), n_ = nk_ - (c_ - 1) * 256 < 256 ? (int)(nk_ - (c_ - 1) * 256) : 256;");
	line(c, "\t\tfor (int e = 0; e < n_; e++) {");
	line(c, "\t\t\t%s", add);
	line(c, "\t\t}");
	line(c, "\t}");
	/* chunk c_ is loaded before it is added; chunk c_ + 1 overwrites
	 * buffer (c_ - 1) & 1 only after thread 0 has added it */
	line(c, "\t__syncthreads();");
	line(c, "}");
}

/* s = t_(0) + t_(1) + ... + t_(terms - 1) in order, from +0, in thread 0 */
static void block_sum(cu *c, const char *terms)
{
	line(c, "__shared__ float buf_[2][256];");
	line(c, "float s = 0.0f;");
	block_loop(c, terms, "buf_[b_][e] = t_(k);", "s = s + buf_[b_][e];");
}

/* SUM, MEAN, MAX over one axis: x as [pre, len, post]; a unit is an
 * output (p, q) */
static int emit_axis_reduce(cu *c, const ir_node *n)
{
	const ir_node *x = in_node(c, n, 0);
	int axis = 0;
	if (need_f32(c, n) || axis_of(c, n, &x->type, &axis))
		return -1;
	if (n->op == IR_MAX ? n->plan.family == IR_PLAN_RACY && cu_err(c, n, "the test-only racy plan has no CUDA kernel")
	                    : check_plan(c, n))
		return -1;
	ir_dim pre = dprod(&x->type, 0, axis), post = dprod(&x->type, axis + 1, x->type.rank);
	ir_dim len = x->type.d[axis];
	if (n->op != IR_MAX && n->plan.family == IR_PLAN_SEQ && block_form(c, dmul(pre, post), len)) {
		block_begin(c, n, dmul(pre, post));
		use(c, x);
		use(c, n);
		line(c, "const int64_t post = %s, len = %s;", DX(post), DX(len));
		line(c, "const int64_t base = u / post * len * post + u %% post;");
		line(c, "auto t_ = [&](int64_t k) -> float { return %s; };", R(c, x, "base + k * post"));
		block_sum(c, "len");
		line(c, "if (threadIdx.x == 0) %s = %s;", W(c, n, "u"), n->op == IR_MEAN ? "s / (float)len" : "s");
		return k_end(c);
	}
	k_begin(c, n, dmul(pre, post));
	use(c, x);
	use(c, n);
	k_loop(c);
	line(c, "const int64_t post = %s, len = %s;", DX(post), DX(len));
	line(c, "const int64_t p = u / post, q = u %% post;");
	line(c, "const int64_t base = p * len * post + q;");
	if (n->op == IR_MAX) {
		line(c, "float acc = -NND_INF;");
		line(c, "for (int64_t k = 0; k < len; k++)");
		line(c, "\tacc = nnd_maximum(acc, %s);", R(c, x, "base + k * post"));
		line(c, "%s = acc;", W(c, n, "u"));
	} else {
		reduce_open(c, "s", n->plan, "len");
		line(c, "\treturn %s;", R(c, x, "base + k * post"));
		reduce_close(c);
		line(c, "%s = %s;", W(c, n, "u"), n->op == IR_MEAN ? "s / (float)len" : "s");
	}
	return k_end(c);
}

static int cu_SUM(cu *c, const ir_node *n) { return emit_axis_reduce(c, n); }
static int cu_MEAN(cu *c, const ir_node *n) { return emit_axis_reduce(c, n); }
static int cu_MAX(cu *c, const ir_node *n) { return emit_axis_reduce(c, n); }

static int cu_ARGMAX(cu *c, const ir_node *n)
{
	const ir_node *x = in_node(c, n, 0);
	int axis = 0;
	if (n->plan.family == IR_PLAN_RACY || n->plan.family == IR_PLAN_NONE)
		return check_plan(c, n);
	if (axis_of(c, n, &x->type, &axis))
		return -1;
	if (x->type.dt != IR_F32 || n->type.dt != IR_I32)
		return cu_err(c, n, "argmax maps f32 to i32");
	ir_dim pre = dprod(&x->type, 0, axis), post = dprod(&x->type, axis + 1, x->type.rank);
	k_begin(c, n, dmul(pre, post));
	use(c, x);
	use(c, n);
	k_loop(c);
	line(c, "const int64_t post = %s, len = %s;", DX(post), DX(x->type.d[axis]));
	line(c, "const int64_t p = u / post, q = u %% post;");
	line(c, "float best = -NND_INF;");
	line(c, "int64_t bidx = 0;");
	line(c, "for (int64_t k = 0; k < len; k++)");
	line(c, "\tnnd_argmax_step(&best, &bidx, %s, k);", R(c, x, "(p * len + k) * post + q"));
	line(c, "%s = (int32_t)bidx;", W(c, n, "u"));
	return k_end(c);
}

/* the body of a term function t(k): input element k of the output at
 * base, k in row-major order of the nred reduced dims */
static void sum_to_term(cu *c, const ir_node *x, int nred, const ir_dim *ext, const ir_dim *str)
{
	line(c, "\tint64_t off = base, r_ = k;");
	for (int r = nred - 1; r >= 0; r--) {
		if (r) {
			line(c, "\toff += (r_ %% %s) * %s;", DX(ext[r]), DX(str[r]));
			line(c, "\tr_ /= %s;", DX(ext[r]));
		} else {
			line(c, "\toff += r_ * %s;", DX(str[r]));
		}
	}
	line(c, "\treturn %s;", R(c, x, "off"));
}

/* a unit is an output element; its terms are the input elements mapped to
 * it, in row-major order of the reduced dims (the CPU's order) */
static int cu_SUM_TO(cu *c, const ir_node *n)
{
	const ir_node *x = in_node(c, n, 0);
	const ir_type *xt = &x->type, *tt = &n->type;
	if (check_plan(c, n) || need_f32(c, n))
		return -1;
	if (tt->rank > xt->rank)
		return cu_err(c, n, "target has a higher rank than the input");
	int rx = xt->rank, sh = rx - tt->rank;
	bool kept[IR_MAX_RANK];
	ir_dim xs[IR_MAX_RANK], ext[IR_MAX_RANK], str[IR_MAX_RANK];
	int nred = 0;
	ir_dim R_ = dconst(1);
	strides_of(xt, xs);
	for (int d = 0; d < rx; d++) {
		kept[d] = d >= sh && !dim_is_one(tt->d[d - sh]);
		if (!kept[d]) {
			ext[nred] = xt->d[d];
			str[nred++] = xs[d];
			R_ = dmul(R_, xt->d[d]);
		}
	}
	bool blk = n->plan.family == IR_PLAN_SEQ && block_form(c, ir_type_numel(tt), R_);
	if (blk)
		block_begin(c, n, ir_type_numel(tt));
	else
		k_begin(c, n, ir_type_numel(tt));
	use(c, x);
	use(c, n);
	if (!blk)
		k_loop(c);
	line(c, "int64_t rem = u, base = 0;");
	for (int d = rx - 1; d >= sh; d--) {
		if (!kept[d])
			continue;
		const char *e = DX(tt->d[d - sh]);
		line(c, "base += (rem %% %s) * %s;", e, DX(xs[d]));
		line(c, "rem /= %s;", e);
	}
	if (blk) {
		line(c, "auto t_ = [&](int64_t k) -> float {");
		sum_to_term(c, x, nred, ext, str);
		line(c, "};");
		block_sum(c, DX(R_));
		line(c, "if (threadIdx.x == 0) %s = s;", W(c, n, "u"));
		return k_end(c);
	}
	if (n->plan.family == IR_PLAN_SEQ) {
		/* seq, the default: a loop per outer reduced dim (row-major, the
		 * flat order) around the innermost contiguous run, which
		 * nnd_seq_add reads ahead: no division per term */
		int in = nred > 0 ? nred - 1 : 0;
		ir_dim run = nred > 0 ? ext[in] : dconst(1), step = nred > 0 ? str[in] : dconst(0);
		while (in > 0 && str[in - 1].c == run.c * step.c && str[in - 1].sym == run.sym + step.sym)
			run = dmul(run, ext[--in]);
		line(c, "float s = 0.0f;");
		char *o = sbuf();
		int ol = snprintf(o, 256, "base");
		for (int r = 0; r < in; r++) {
			line(c, "for (int64_t r%d = 0; r%d < %s; r%d++)", r, r, DX(ext[r]), r);
			ol += snprintf(o + ol, (size_t)(ol < 256 ? 256 - ol : 0), " + r%d * %s", r, DX(str[r]));
		}
		if (ol >= 230)
			return cu_err(c, n, "sum_to offset expression too long");
		line(c, "{");
		line(c, "\tconst int64_t o_ = %s;", o);
		line(c, "\ts = nnd_seq_add(s, %s, [&](int64_t k) -> float { return %s; });", DX(run),
		     R(c, x, "o_ + k * %s", DX(step)));
		line(c, "}");
	} else {
		reduce_open(c, "s", n->plan, DX(R_));
		sum_to_term(c, x, nred, ext, str);
		reduce_close(c);
	}
	line(c, "%s = s;", W(c, n, "u"));
	return k_end(c);
}

/* ------------------------------------------------------------------ */
/* matmul: a unit is one output c[b, i, j]; its k terms a*b in plan order */

/* Register tiles: where the plan is seq, seq+fma or blocked:N+fma (the
 * defaults) and the product is large, a thread computes a CU_TM x CU_TN
 * tile of outputs, loading CU_TM values of a and CU_TN of b per k and
 * reusing each for a row or column of the tile.  Every output still
 * accumulates its own terms in plan order, exactly as in the one-output
 * form; rows and columns past the end read a clamped index and are not
 * stored. */
enum { CU_TM = 4, CU_TN = 4 };
/* outputs (at the program's batch size) from which a product is tiled:
 * below it the one-output form keeps more threads busy than tiles would */
#define CU_TILE_MIN (1 << 20)

static bool mm_tiled_plan(ir_plan p)
{
	return p.family == IR_PLAN_SEQ || (p.fused && p.family == IR_PLAN_BLOCKED);
}

/* the fused blocked plan's block length, else 0 (one block: seq) */
static int64_t mm_nb(const ir_node *n)
{
	return n->plan.fused && n->plan.family == IR_PLAN_BLOCKED ? n->plan.block : 0;
}

static void mm_tiled(cu *c, const ir_node *n, const ir_node *an, const ir_node *bn, bool ta, bool tb,
                     int tm, int tn)
{
	line(c, "const int64_t TI = (M + %d) / %d, TJ = (N + %d) / %d, T = TI * TJ;", tm - 1, tm, tn - 1, tn);
	line(c, "const int64_t bi = u / (T > 0 ? T : 1), rem = u - bi * T;");
	line(c, "const int64_t i0 = rem / TJ * %d, j0 = rem %% TJ * %d;", tm, tn);
	line(c, "const int64_t abase = %s, bbase = %s;", an->type.rank == 2 ? "0" : "bi * M * K",
	     bn->type.rank == 2 ? "0" : "bi * K * N");
	line(c, "int64_t ii[%d], jj[%d];", tm, tn);
	line(c, "for (int r = 0; r < %d; r++) ii[r] = i0 + r < M ? i0 + r : M - 1;", tm);
	line(c, "for (int q = 0; q < %d; q++) jj[q] = j0 + q < N ? j0 + q : N - 1;", tn);
	line(c, "float s[%d][%d];", tm, tn);
	line(c, "for (int r = 0; r < %d; r++) for (int q = 0; q < %d; q++) s[r][q] = 0.0f;", tm, tn);
	const char *aidx = ta ? "k * M + ii[r]" : "ii[r] * K + k";
	const char *bidx = tb ? "jj[q] * K + k" : "k * N + jj[q]";
	if (n->plan.fused) {
		/* acc = fma(a, b, acc) within a block from +0, the block sums
		 * added in order from +0 (seq+fma: one block of K) */
		line(c, "const int64_t nb = %" PRId64 "LL;", mm_nb(n));
		line(c, "for (int64_t k0 = 0; k0 < K; k0 += (nb > 0 ? nb : K)) {");
		line(c, "\tconst int64_t e = nb > 0 && K - k0 > nb ? k0 + nb : K;");
		line(c, "\tfloat p[%d][%d];", tm, tn);
		line(c, "\tfor (int r = 0; r < %d; r++) for (int q = 0; q < %d; q++) p[r][q] = 0.0f;", tm, tn);
		line(c, "\tfor (int64_t k = k0; k < e; k++) {");
		line(c, "\t\tfloat av[%d], bv[%d];", tm, tn);
		line(c, "\t\tfor (int r = 0; r < %d; r++) av[r] = %s;", tm, R(c, an, "abase + %s", aidx));
		line(c, "\t\tfor (int q = 0; q < %d; q++) bv[q] = %s;", tn, R(c, bn, "bbase + %s", bidx));
		line(c, "\t\tfor (int r = 0; r < %d; r++) for (int q = 0; q < %d; q++) p[r][q] = __fmaf_rn(av[r], bv[q], p[r][q]);",
		     tm, tn);
		line(c, "\t}");
		line(c, "\tfor (int r = 0; r < %d; r++) for (int q = 0; q < %d; q++) s[r][q] = nb > 0 ? s[r][q] + p[r][q] : p[r][q];",
		     tm, tn);
		line(c, "}");
	} else {
		/* seq: s = s + a*b, the product rounded, then the sum */
		line(c, "for (int64_t k = 0; k < K; k++) {");
		line(c, "\tfloat av[%d], bv[%d];", tm, tn);
		line(c, "\tfor (int r = 0; r < %d; r++) av[r] = %s;", tm, R(c, an, "abase + %s", aidx));
		line(c, "\tfor (int q = 0; q < %d; q++) bv[q] = %s;", tn, R(c, bn, "bbase + %s", bidx));
		line(c, "\tfor (int r = 0; r < %d; r++) for (int q = 0; q < %d; q++) s[r][q] = s[r][q] + av[r] * bv[q];", tm, tn);
		line(c, "}");
	}
	line(c, "for (int r = 0; r < %d; r++) for (int q = 0; q < %d; q++)", tm, tn);
	line(c, "\tif (i0 + r < M && j0 + q < N) %s = s[r][q];", W(c, n, "bi * M * N + (i0 + r) * N + j0 + q"));
}

/* Shared-memory tiles (the default for a tiled product; NND_CUDA_MM=reg
 * at build time takes the register tiles above instead): a block of 256 threads computes a 64 x 64 tile of
 * outputs, 4 x 4 per thread, staging k chunks of 16 of a and b in shared
 * memory so each value is read from global memory once per block.  Every
 * output still accumulates its own terms in plan order (k ascending, the
 * blocked plan's partial sums closed at the same k), so the bits are the
 * one-output form's.  Thread t computes micro-tile t (every launch, the
 * host emulation's too, has 256 threads). */
enum { CU_SM = 64, CU_SK = 16 };

/* stages x's k chunk k0.. into buf[kk][v], v along the output dim ext
 * from org: consecutive threads read consecutive addresses of x as stored
 * (k fastest when kfast), indices past the end clamped */
static void smem_load(cu *c, const char *buf, const ir_node *x, const char *base, bool kfast, const char *ext,
                      const char *org)
{
	char idx[64];
	if (kfast)
		snprintf(idx, sizeof idx, "%s + o * K + k", base);
	else
		snprintf(idx, sizeof idx, "%s + k * %s + o", base, ext);
	line(c, "	{");
	if (kfast)
		line(c, "		const int kk = e %% %d, v = e / %d;", CU_SK, CU_SK);
	else
		line(c, "		const int kk = e / %d, v = e %% %d;", CU_SM, CU_SM);
	line(c, "		const int64_t o = %s + v < %s ? %s + v : %s - 1, k = k0 + kk < K ? k0 + kk : K - 1;", org, ext, org, ext);
	line(c, "		%s[kk][v] = %s;", buf, R(c, x, "%s", idx));
	line(c, "	}");
}

static void mm_smem(cu *c, const ir_node *n, const ir_node *an, const ir_node *bn, bool ta, bool tb)
{
	line(c, "const int64_t TI = (M + %d) / %d, TJ = (N + %d) / %d, T = TI * TJ;", CU_SM - 1, CU_SM, CU_SM - 1, CU_SM);
	line(c, "const int64_t bi = bt / (T > 0 ? T : 1), rem = bt - bi * T;");
	line(c, "const int64_t i0 = rem / TJ * %d, j0 = rem %% TJ * %d;", CU_SM, CU_SM);
	line(c, "const int64_t abase = %s, bbase = %s;", an->type.rank == 2 ? "0" : "bi * M * K",
	     bn->type.rank == 2 ? "0" : "bi * K * N");
	line(c, "__shared__ float As[%d][%d], Bs[%d][%d];", CU_SK, CU_SM, CU_SK, CU_SM);
	line(c, "const int64_t nb = %" PRId64 "LL;", mm_nb(n));
	line(c, "const int ty = threadIdx.x / 16 * 4, tx = threadIdx.x %% 16 * 4;   /* this thread's 4 x 4 */");
	line(c, "float s[4][4], p[4][4];");
	line(c, "for (int r = 0; r < 4; r++) for (int q = 0; q < 4; q++) s[r][q] = p[r][q] = 0.0f;");
	line(c, "for (int64_t k0 = 0; k0 < K; k0 += %d) {", CU_SK);
	line(c, "	const int kn = K - k0 < %d ? (int)(K - k0) : %d;", CU_SK, CU_SK);
	line(c, "	for (int e = threadIdx.x; e < %d; e += blockDim.x) {", CU_SK * CU_SM);
	smem_load(c, "As", an, "abase", !ta, "M", "i0");
	smem_load(c, "Bs", bn, "bbase", tb, "N", "j0");
	line(c, "	}");
	line(c, "	__syncthreads();");
	line(c, "	for (int kk = 0; kk < kn; kk++) {");
	line(c, "		const int64_t k = k0 + kk;");
	line(c, "		if (nb > 0 && k > 0 && k %% nb == 0)   /* the blocked plan: close a block */");
	line(c, "			for (int r = 0; r < 4; r++) for (int q = 0; q < 4; q++) { s[r][q] = s[r][q] + p[r][q]; p[r][q] = 0.0f; }");
	line(c, "		float av[4], bv[4];");
	line(c, "		for (int r = 0; r < 4; r++) av[r] = As[kk][ty + r];");
	line(c, "		for (int q = 0; q < 4; q++) bv[q] = Bs[kk][tx + q];");
	if (n->plan.fused)
		line(c, "		for (int r = 0; r < 4; r++) for (int q = 0; q < 4; q++) p[r][q] = __fmaf_rn(av[r], bv[q], p[r][q]);");
	else
		line(c, "		for (int r = 0; r < 4; r++) for (int q = 0; q < 4; q++) p[r][q] = p[r][q] + av[r] * bv[q];");
	line(c, "	}");
	line(c, "	__syncthreads();");
	line(c, "}");
	line(c, "for (int r = 0; r < 4; r++) for (int q = 0; q < 4; q++)");
	line(c, "	if (i0 + ty + r < M && j0 + tx + q < N)");
	line(c, "		%s = nb > 0 ? s[r][q] + p[r][q] : p[r][q];", W(c, n, "bi * M * N + (i0 + ty + r) * N + j0 + tx + q"));
}

/* a[i, k] and b[k, j] of output (bi, i, j), as the operands are stored */
static const char *mm_a(cu *c, const ir_node *an, bool ta)
{
	return R(c, an, "abase + %s", ta ? "k * M + i" : "i * K + k");
}
static const char *mm_b(cu *c, const ir_node *bn, bool tb)
{
	return R(c, bn, "bbase + %s", tb ? "j * K + k" : "k * N + j");
}

/* M, N, K; output u's batch bi, row i, column j; a's and b's batch bases */
static void mm_head(cu *c, const ir_type *at, const ir_type *bt, ir_dim M, ir_dim N, ir_dim K)
{
	line(c, "const int64_t M = %s, N = %s, K = %s;", DX(M), DX(N), DX(K));
	line(c, "const int64_t MN = M * N, bi = u / (MN > 0 ? MN : 1), rem = u - bi * MN;");
	line(c, "const int64_t i = rem / N, j = rem %% N;");
	line(c, "const int64_t abase = %s, bbase = %s;", at->rank == 2 ? "0" : "bi * M * K",
	     bt->rank == 2 ? "0" : "bi * K * N");
}

static int cu_MATMUL(cu *c, const ir_node *n)
{
	const ir_node *an = in_node(c, n, 0), *bn = in_node(c, n, 1);
	const ir_type *at = &an->type, *bt = &bn->type, *ct = &n->type;
	bool ta = n->ia[0] != 0, tb = n->ia[1] != 0;
	if (check_plan(c, n) || need_f32(c, n))
		return -1;
	if (at->rank < 2 || bt->rank < 2 || ct->rank < 2 || (at->rank != 2 && at->rank != ct->rank) ||
	    (bt->rank != 2 && bt->rank != ct->rank))
		return cu_err(c, n, "unsupported matmul ranks %d x %d -> %d", at->rank, bt->rank, ct->rank);
	if (n->blk == IR_BLK_NONE)
		return cu_err(c, n, "a matmul result needs storage");
	int r = ct->rank;
	ir_dim M = ct->d[r - 2], N = ct->d[r - 1], K = at->d[at->rank - (ta ? 2 : 1)];
	ir_dim outs = ir_type_numel(ct);
	int64_t bmax = c->prog && c->prog->batch > 0 ? c->prog->batch : 1;
	/* NND_CUDA_TILE_MIN (tests): another threshold, 0 tiles every product */
	const char *tmin = getenv("NND_CUDA_TILE_MIN");
	int64_t tile_min = tmin && *tmin ? strtoll(tmin, NULL, 10) : CU_TILE_MIN;
	/* 2 flops per multiply-add of the real outputs, whatever the launch */
	ir_dim work = dmul(dmul(dconst(2), K), outs);
	/* timed on an H100 (docs/cuda.md): the shared-memory tiles run large
	 * products 1.5 to 11 times faster than the register tiles, same bits */
	const char *mmk = getenv("NND_CUDA_MM");
	bool reg = mmk && !strcmp(mmk, "reg");   /* cg_cuda_check_env vetted it */
	if (mm_tiled_plan(n->plan) && block_form(c, outs, K)) {
		/* few outputs of many terms (a convolution's filter gradient:
		 * K = batch x pixels): one output per block, a and b staged
		 * 256 terms at a time, thread 0 accumulating in plan order */
		block_begin(c, n, outs);
		c->flops = work;
		use(c, an);
		use(c, bn);
		use(c, n);
		mm_head(c, at, bt, M, N, K);
		line(c, "__shared__ float av_[2][256], bv_[2][256];");
		line(c, "const int64_t nb = %" PRId64 "LL;", mm_nb(n));
		line(c, "float s = 0.0f, p = 0.0f;");
		line(c, "int64_t kin = 0;   /* terms in the open block */");
		line(c, "(void)nb; (void)kin; (void)p;");
		char load[512];
		snprintf(load, sizeof load, "av_[b_][e] = %s; bv_[b_][e] = %s;", mm_a(c, an, ta), mm_b(c, bn, tb));
		/* fused: the one-output form's blocks, p from +0 closed into s */
		block_loop(c, "K", load, n->plan.fused ?
		           "if (nb > 0 && kin == nb) { s = s + p; p = 0.0f; kin = 0; } p = __fmaf_rn(av_[b_][e], bv_[b_][e], p); kin++;" :
		           "s = s + av_[b_][e] * bv_[b_][e];");
		line(c, "if (threadIdx.x == 0) %s = %s;", W(c, n, "u"), n->plan.fused ? "nb > 0 ? s + p : p" : "s");
		return k_end(c);
	}
	if (!reg && mm_tiled_plan(n->plan) && ir_dim_eval(outs, bmax) >= tile_min) {
		/* one unit per thread of a block: the launch covers 256 threads
		 * per 64 x 64 tile (a dim that follows B: one tile row or column
		 * per row or column, more than enough); the kernel loops over the
		 * exact tile count block by block */
		ir_dim Mt = M.sym ? M : dconst((M.c + CU_SM - 1) / CU_SM);
		ir_dim Nt = N.sym ? N : dconst((N.c + CU_SM - 1) / CU_SM);
		ir_dim nb = dprod(ct, 0, r - 2);
		k_begin(c, n, dmul(dconst(256), dmul(nb, dmul(Mt, Nt))));
		c->flops = work;
		use(c, an);
		use(c, bn);
		use(c, n);
		fprintf(c->f, "	const int64_t M = %s, N = %s, K = %s;\n", DX(M), DX(N), DX(K));
		fprintf(c->f, "	const int64_t tiles = %s * ((M + %d) / %d) * ((N + %d) / %d);\n", DX(nb), CU_SM - 1, CU_SM,
		        CU_SM - 1, CU_SM);
		/* a loop whose trip count is the same for every thread of a block
		 * (they all meet at __syncthreads) */
		fprintf(c->f, "	for (int64_t bt = blockIdx.x; bt < tiles; bt += gridDim.x) {\n");
		mm_smem(c, n, an, bn, ta, tb);
		return k_end(c);
	}
	if (mm_tiled_plan(n->plan) && ir_dim_eval(outs, bmax) >= tile_min) {
		/* the launch covers every tile: a dim that follows B launches one
		 * thread per row or column (a whole multiple of B), the kernel
		 * loops over the exact tile count and the spare threads exit */
		ir_dim Mt = M.sym ? M : dconst((M.c + CU_TM - 1) / CU_TM);
		ir_dim Nt = N.sym ? N : dconst((N.c + CU_TN - 1) / CU_TN);
		ir_dim nb = dprod(ct, 0, r - 2);
		k_begin(c, n, dmul(nb, dmul(Mt, Nt)));
		c->flops = work;
		use(c, an);
		use(c, bn);
		use(c, n);
		fprintf(c->f, "\tconst int64_t M = %s, N = %s, K = %s;\n", DX(M), DX(N), DX(K));
		fprintf(c->f, "\tconst int64_t units = %s * ((M + %d) / %d) * ((N + %d) / %d);\n", DX(nb), CU_TM - 1,
		        CU_TM, CU_TN - 1, CU_TN);
		fprintf(c->f, "\tfor (int64_t u = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; u < units;\n"
		              "\t     u += (int64_t)gridDim.x * blockDim.x) {\n");
		mm_tiled(c, n, an, bn, ta, tb, CU_TM, CU_TN);
		return k_end(c);
	}
	k_begin(c, n, ir_type_numel(ct));
	c->flops = work;
	use(c, an);
	use(c, bn);
	use(c, n);
	k_loop(c);
	mm_head(c, at, bt, M, N, K);
	if (n->plan.fused) {
		/* seq+fma / blocked:N+fma (passes/plans.c): acc = fma(a, b, acc)
		 * within a block from +0, the block sums added in order from +0 */
		if (n->plan.family != IR_PLAN_SEQ && n->plan.family != IR_PLAN_BLOCKED)
			return cu_err(c, n, "only seq and blocked plans can be fused");
		line(c, "const int64_t nb = %" PRId64 "LL;", mm_nb(n));
		line(c, "float s = 0.0f;");
		line(c, "for (int64_t k0 = 0; k0 < K; k0 += (nb > 0 ? nb : K)) {");
		line(c, "\tconst int64_t e = nb > 0 && K - k0 > nb ? k0 + nb : K;");
		line(c, "\tfloat p = 0.0f;");
		line(c, "\tfor (int64_t k = k0; k < e; k++)");
		line(c, "\t\tp = __fmaf_rn(%s, %s, p);", mm_a(c, an, ta), mm_b(c, bn, tb));
		line(c, "\ts = nb > 0 ? s + p : p;");
		line(c, "}");
	} else {
		reduce_open(c, "s", n->plan, "K");
		line(c, "\treturn %s * %s;", mm_a(c, an, ta), mm_b(c, bn, tb));
		reduce_close(c);
	}
	line(c, "%s = s;", W(c, n, "u"));
	return k_end(c);
}

/* ------------------------------------------------------------------ */
/* softmax family, losses, metrics (rows over the last axis)           */

static int rows_begin(cu *c, const ir_node *n, const ir_type *t)
{
	if (t->rank < 1)
		return cu_err(c, n, "needs at least one axis");
	k_begin(c, n, dprod(t, 0, t->rank - 1));
	return 0;
}

/* m = max of the row x[base .. base + C) (every plan) */
static void row_max(cu *c, const ir_node *x)
{
	line(c, "float m = -NND_INF;");
	line(c, "for (int64_t k = 0; k < C; k++)");
	line(c, "\tm = nnd_maximum(m, %s);", R(c, x, "base + k"));
}

/* a softmax-family kernel up to its row's maximum m: one row per unit,
 * C its length, base its first element */
static int softmax_rows(cu *c, const ir_node *n, const ir_node *x)
{
	if (check_plan(c, n) || need_f32(c, n) || rows_begin(c, n, &n->type))
		return -1;
	use(c, x);
	use(c, n);
	k_loop(c);
	line(c, "const int64_t C = %s, base = u * C;", DX(n->type.d[n->type.rank - 1]));
	row_max(c, x);
	return 0;
}

/* s = the plan's sum over the row of e_k = exp(x_k - m), each e_k stored
 * in the result at its place on the way (softmax, cross_entropy_bwd) */
static void sum_exp_store(cu *c, const ir_node *n, const ir_node *x, ir_plan plan)
{
	reduce_open(c, "s", plan, "C");
	line(c, "\tconst float e = nnd_rt_expf(%s - m);", R(c, x, "base + k"));
	line(c, "\t%s = e;", W(c, n, "base + k"));
	line(c, "\treturn e;");
	reduce_close(c);
}

static int cu_SOFTMAX(cu *c, const ir_node *n)
{
	const ir_node *x = in_node(c, n, 0);
	if (softmax_rows(c, n, x))
		return -1;
	sum_exp_store(c, n, x, n->plan);
	line(c, "for (int64_t k = 0; k < C; k++)");
	line(c, "\t%s = %s / s;", W(c, n, "base + k"), R(c, n, "base + k"));
	return k_end(c);
}

static int cu_LOG_SOFTMAX(cu *c, const ir_node *n)
{
	const ir_node *x = in_node(c, n, 0);
	if (softmax_rows(c, n, x))
		return -1;
	reduce_open(c, "s", n->plan, "C");
	line(c, "\treturn nnd_rt_expf(%s - m);", R(c, x, "base + k"));
	reduce_close(c);
	line(c, "const float ls = nnd_rt_logf(s);");
	line(c, "for (int64_t k = 0; k < C; k++)");
	line(c, "\t%s = (%s - m) - ls;", W(c, n, "base + k"), R(c, x, "base + k"));
	return k_end(c);
}

static int softmax_bwd(cu *c, const ir_node *n, bool logsm)
{
	const ir_node *dy = in_node(c, n, 0), *y = in_node(c, n, 1);
	if (check_plan(c, n) || need_f32(c, n) || rows_begin(c, n, &n->type))
		return -1;
	use(c, dy);
	use(c, y);
	use(c, n);
	k_loop(c);
	line(c, "const int64_t C = %s, base = u * C;", DX(n->type.d[n->type.rank - 1]));
	reduce_open(c, "sv", n->plan, "C");
	if (logsm)
		line(c, "\treturn %s;", R(c, dy, "base + k"));
	else
		line(c, "\treturn %s * %s;", R(c, dy, "base + k"), R(c, y, "base + k"));
	reduce_close(c);
	line(c, "for (int64_t k = 0; k < C; k++) {");
	line(c, "\tconst float dyk = %s, yk = %s;", R(c, dy, "base + k"), R(c, y, "base + k"));
	line(c, "\t%s = %s;", W(c, n, "base + k"), logsm ? "dyk - nnd_rt_expf(yk) * sv" : "yk * (dyk - sv)");
	line(c, "}");
	return k_end(c);
}
static int cu_SOFTMAX_BWD(cu *c, const ir_node *n) { return softmax_bwd(c, n, false); }
static int cu_LOG_SOFTMAX_BWD(cu *c, const ir_node *n) { return softmax_bwd(c, n, true); }

static int labels_ok(cu *c, const ir_node *n, const ir_node *lab)
{
	if (lab->type.dt == IR_F32)
		return cu_err(c, n, "labels must be integers");
	if (in_node(c, n, 0)->type.dt != IR_F32 || in_node(c, n, 0)->type.rank != 2)
		return cu_err(c, n, "logits must be f32[B, C]");
	return 0;
}

/* one thread: the batch sum is a reduction over the rows, each row's own
 * sum of exponentials in the same plan.  A label outside [0, C) stops the
 * kernel and is recorded in a.err (the first bad row: rows go in order);
 * the runtime reports it after the step as nnd_rt_bad_label does. */
/* the body of a term function: row i's loss, its label in label */
static void ce_row(cu *c, const ir_node *n, const ir_node *x)
{
	line(c, "\tconst int64_t base = i * C;");
	line(c, "\tfloat m = -NND_INF;");
	line(c, "\tfor (int64_t q = 0; q < C; q++)");
	line(c, "\t\tm = nnd_maximum(m, %s);", R(c, x, "base + q"));
	reduce_open(c, "s", row_plan(n), "C");
	line(c, "\t\treturn nnd_rt_expf(%s - m);", R(c, x, "base + k"));
	line(c, "\t});");
	line(c, "\treturn (m + nnd_rt_logf(s)) - %s;", R(c, x, "base + label"));
}

static int cu_CROSS_ENTROPY(cu *c, const ir_node *n)
{
	const ir_node *x = in_node(c, n, 0), *lab = in_node(c, n, 1);
	if (n->plan.family == IR_PLAN_NONE)
		return check_plan(c, n);
	if (n->plan.family == IR_PLAN_RACY)
		return cu_err(c, n, "the test-only racy plan has no CUDA kernel");
	if (labels_ok(c, n, lab))
		return -1;
	if (n->plan.family == IR_PLAN_SEQ) {
		/* seq: the rows' losses in parallel, their sum in thread 0 in
		 * row order; a thread keeps the first bad row it met (its rows
		 * ascend), thread 0 reports the first of all */
		block_begin(c, n, dconst(1));
		use(c, x);
		use(c, lab);
		use(c, n);
		line(c, "const int64_t C = %s, rows = %s;", DX(x->type.d[1]), DX(x->type.d[0]));
		line(c, "__shared__ int64_t bad_[256];");
		line(c, "bad_[threadIdx.x] = rows;");
		line(c, "auto t_ = [&](int64_t i) -> float {");
		line(c, "\tconst int64_t label = %s;", label_of(c, lab, "i"));
		line(c, "\tif ((uint64_t)label >= (uint64_t)C) {");
		line(c, "\t\tif (bad_[threadIdx.x] == rows) bad_[threadIdx.x] = i;");
		line(c, "\t\treturn 0.0f;");
		line(c, "\t}");
		ce_row(c, n, x);
		line(c, "};");
		block_sum(c, "rows");
		line(c, "if (threadIdx.x == 0) {");
		line(c, "\tint64_t first = rows;");
		line(c, "\tfor (unsigned t = 0; t < blockDim.x; t++) first = bad_[t] < first ? bad_[t] : first;");
		line(c, "\tif (first < rows) { a.err[1] = first; a.err[2] = %s; a.err[3] = C; a.err[0] = 1; }",
		     label_of(c, lab, "first"));
		line(c, "\telse %s = s / (float)rows;", W(c, n, "0"));
		line(c, "}");
		return k_end(c);
	}
	k_begin(c, n, dconst(1));
	use(c, x);
	use(c, lab);
	use(c, n);
	k_loop(c);
	line(c, "const int64_t C = %s, rows = %s;", DX(x->type.d[1]), DX(x->type.d[0]));
	line(c, "bool bad = false;");
	reduce_open(c, "tot", n->plan, "rows");
	line(c, "\tconst int64_t i = k, label = %s;", label_of(c, lab, "i"));
	line(c, "\tif (bad || (uint64_t)label >= (uint64_t)C) {");
	line(c, "\t\tif (!bad) { a.err[1] = i; a.err[2] = label; a.err[3] = C; a.err[0] = 1; }");
	line(c, "\t\tbad = true;");
	line(c, "\t\treturn 0.0f;");
	line(c, "\t}");
	ce_row(c, n, x);
	reduce_close(c);
	line(c, "if (bad) return;");
	line(c, "%s = tot / (float)rows;", W(c, n, "0"));
	return k_end(c);
}

static int cu_CROSS_ENTROPY_BWD(cu *c, const ir_node *n)
{
	const ir_node *x = in_node(c, n, 0), *lab = in_node(c, n, 1), *dl = in_node(c, n, 2);
	if (n->plan.family == IR_PLAN_NONE)
		return check_plan(c, n);
	if (labels_ok(c, n, lab))
		return -1;
	if (n->type.dt != IR_F32 || dl->type.dt != IR_F32)
		return cu_err(c, n, "result and dloss must be f32");
	if (rows_begin(c, n, &x->type))
		return -1;
	use(c, x);
	use(c, lab);
	use(c, dl);
	use(c, n);
	k_loop(c);
	line(c, "const int64_t C = %s, rows = %s;", DX(x->type.d[1]), DX(x->type.d[0]));
	line(c, "const float g = %s / (float)rows;", R(c, dl, "0"));
	line(c, "const int64_t label = %s;", label_of(c, lab, "u"));
	line(c, "if ((uint64_t)label >= (uint64_t)C) continue;   /* cross_entropy recorded it */");
	line(c, "const int64_t base = u * C;");
	row_max(c, x);
	sum_exp_store(c, n, x, row_plan(n));
	line(c, "for (int64_t k = 0; k < C; k++)");
	line(c, "\t%s = (%s / s - (k == label ? 1.0f : 0.0f)) * g;", W(c, n, "base + k"), R(c, n, "base + k"));
	return k_end(c);
}

static int cu_MSE(cu *c, const ir_node *n)
{
	const ir_node *p = in_node(c, n, 0), *t = in_node(c, n, 1);
	if (check_plan(c, n) || need_f32(c, n))
		return -1;
	if (!ir_type_eq(&p->type, &t->type))
		return cu_err(c, n, "prediction and target types differ");
	if (n->plan.family == IR_PLAN_SEQ) {   /* the squares in parallel, one chain */
		block_begin(c, n, dconst(1));
		use(c, p);
		use(c, t);
		use(c, n);
		line(c, "const int64_t cnt = %s;", DX(ir_type_numel(&p->type)));
		line(c, "auto t_ = [&](int64_t k) -> float { const float d = %s - %s; return d * d; };", R(c, p, "k"),
		     R(c, t, "k"));
		block_sum(c, "cnt");
		line(c, "if (threadIdx.x == 0) %s = s / (float)cnt;", W(c, n, "0"));
		return k_end(c);
	}
	k_begin(c, n, dconst(1));
	use(c, p);
	use(c, t);
	use(c, n);
	k_loop(c);
	line(c, "const int64_t cnt = %s;", DX(ir_type_numel(&p->type)));
	reduce_open(c, "s", n->plan, "cnt");
	line(c, "\tconst float d = %s - %s;", R(c, p, "k"), R(c, t, "k"));
	line(c, "\treturn d * d;");
	reduce_close(c);
	line(c, "%s = s / (float)cnt;", W(c, n, "0"));
	return k_end(c);
}

static int cu_ACCURACY(cu *c, const ir_node *n)
{
	const ir_node *x = in_node(c, n, 0), *lab = in_node(c, n, 1);
	if (n->plan.family == IR_PLAN_RACY || n->plan.family == IR_PLAN_NONE)
		return check_plan(c, n);
	if (labels_ok(c, n, lab))
		return -1;
	if (n->type.dt != IR_F32)
		return cu_err(c, n, "result must be f32");
	k_begin(c, n, dconst(1));
	use(c, x);
	use(c, lab);
	use(c, n);
	k_loop(c);
	line(c, "const int64_t C = %s, rows = %s;", DX(x->type.d[1]), DX(x->type.d[0]));
	line(c, "int64_t cnt = 0;");
	line(c, "for (int64_t i = 0; i < rows; i++) {");
	line(c, "\tfloat best = -NND_INF;");
	line(c, "\tint64_t bidx = 0;");
	line(c, "\tfor (int64_t k = 0; k < C; k++)");
	line(c, "\t\tnnd_argmax_step(&best, &bidx, %s, k);", R(c, x, "i * C + k"));
	line(c, "\tcnt += bidx == %s;", label_of(c, lab, "i"));
	line(c, "}");
	line(c, "%s = (float)cnt / (float)rows;", W(c, n, "0"));
	return k_end(c);
}

/* ------------------------------------------------------------------ */
/* random: the CPU's counters (ops.def), Philox from runtime/philox.c    */

static int stream_ok(cu *c, const ir_node *n)
{
	if (n->stream < 0 || (c->prog && n->stream >= c->prog->nstreams))
		return cu_err(c, n, "no random stream");
	return 0;
}

/* a unit is an element (r, e) of the [rows, E] view */
static int emit_dropout(cu *c, const ir_node *n)
{
	const ir_node *x = in_node(c, n, 0);
	if (need_f32(c, n) || stream_ok(c, n))
		return -1;
	if (n->type.rank < 1 || !ir_type_eq(&n->type, &x->type))
		return cu_err(c, n, "needs [rows, ...] input of the result's type");
	k_begin(c, n, ir_type_numel(&n->type));
	use(c, x);
	use(c, n);
	k_loop(c);
	line(c, "const int64_t E = %s, r = u / E, e = u %% E;", DX(dprod(&n->type, 1, n->type.rank)));
	line(c, "const uint32_t e32 = (uint32_t)e;");
	line(c, "const uint32_t ctr[4] = { e32 >> 2, (uint32_t)a.sample_idx[r], (uint32_t)a.epoch, 0u };");
	line(c, "uint32_t w[4];");
	line(c, "nnd_philox4x32_10(ctr, a.keys + %d, w);", 2 * n->stream);
	line(c, "const float uu = (float)(w[e32 & 3u] >> 8) * %s;", fbits(0x1p-24f));
	line(c, "%s = uu >= %s ? %s * %s : 0.0f;", W(c, n, "u"), fbits(n->fa[0]), R(c, x, "u"), fbits(n->fa[1]));
	return k_end(c);
}
static int cu_DROPOUT(cu *c, const ir_node *n) { return emit_dropout(c, n); }
static int cu_DROPOUT_BWD(cu *c, const ir_node *n) { return emit_dropout(c, n); }

static int cu_RANDOM_FLIP(cu *c, const ir_node *n)
{
	const ir_node *x = in_node(c, n, 0);
	int ax = (int)n->ia[0];
	if (need_f32(c, n) || stream_ok(c, n))
		return -1;
	if (n->type.rank < 2 || ax < 1 || ax >= n->type.rank || !ir_type_eq(&n->type, &x->type))
		return cu_err(c, n, "needs [rows, ...] input of the result's type and an axis >= 1");
	int64_t E = 1, post = 1, L = n->type.d[ax].c;
	for (int i = 1; i < n->type.rank; i++)
		E *= n->type.d[i].c;
	for (int i = ax + 1; i < n->type.rank; i++)
		post *= n->type.d[i].c;
	k_begin(c, n, ir_type_numel(&n->type));
	use(c, x);
	use(c, n);
	k_loop(c);
	line(c, "const int64_t E = %" PRId64 "LL, post = %" PRId64 "LL, L = %" PRId64 "LL;", E, post, L);
	line(c, "const int64_t r = u / E, e = u %% E;");
	line(c, "const uint32_t ctr[4] = { 0u, (uint32_t)a.sample_idx[r], (uint32_t)a.epoch, 1u };");
	line(c, "uint32_t w[4];");
	line(c, "nnd_philox4x32_10(ctr, a.keys + %d, w);", 2 * n->stream);
	line(c, "const float uu = (float)(w[0] >> 8) * %s;", fbits(0x1p-24f));
	line(c, "const int64_t i = (e / post) %% L;");
	line(c, "const int64_t src = e + (uu < 0.5f ? (L - 1 - (i + i)) * post : 0);");
	line(c, "%s = %s;", W(c, n, "r * E + e"), R(c, x, "r * E + src"));
	return k_end(c);
}

/* random_crop / crop and their gradients (ops.def): one thread per output
 * element; the window (oy, ox) of its row from the stream (counter
 * {0, sample, epoch, 2}) or from ia2/ia3 */
static int emit_crop(cu *c, const ir_node *n, bool random, bool bwd)
{
	const ir_node *x = in_node(c, n, 0);
	const ir_type *big = bwd ? &n->type : &x->type, *small = bwd ? &x->type : &n->type;
	int r = n->type.rank;
	int64_t S = n->ia[0], P = n->ia[1];
	if (need_f32(c, n) || (random && stream_ok(c, n)))
		return -1;
	if (r < 3 || x->type.rank != r || S < 1 || P < 0)
		return cu_err(c, n, "bad crop operands");
	int64_t H = big->d[r - 2].c, Wd = big->d[r - 1].c;
	if (S > H + 2 * P || S > Wd + 2 * P || small->d[r - 2].c != S || small->d[r - 1].c != S)
		return cu_err(c, n, "bad crop window");
	int64_t planes = 1;
	for (int i = 1; i < r - 2; i++)
		planes *= big->d[i].c;
	int64_t Ro = bwd ? H : S, Co = bwd ? Wd : S, Rs = bwd ? S : H, Cs = bwd ? S : Wd;
	k_begin(c, n, ir_type_numel(&n->type));
	use(c, x);
	use(c, n);
	k_loop(c);
	line(c, "const int64_t per = %" PRId64 "LL, row = u / per, e = u %% per;", planes * Ro * Co);
	line(c, "const int64_t pl = e / %" PRId64 "LL, i = (e / %" PRId64 "LL) %% %" PRId64 "LL, j = e %% %" PRId64 "LL;",
	     Ro * Co, Co, Ro, Co);
	if (random) {
		line(c, "const uint32_t ctr[4] = { 0u, (uint32_t)a.sample_idx[row], (uint32_t)a.epoch, 2u };");
		line(c, "uint32_t w[4];");
		line(c, "nnd_philox4x32_10(ctr, a.keys + %d, w);", 2 * n->stream);
		line(c, "const int64_t oy = (int64_t)(((uint64_t)w[0] * %" PRId64 "ULL) >> 32);", H + 2 * P - S + 1);
		line(c, "const int64_t ox = (int64_t)(((uint64_t)w[1] * %" PRId64 "ULL) >> 32);", Wd + 2 * P - S + 1);
	} else {
		line(c, "const int64_t oy = %" PRId64 "LL, ox = %" PRId64 "LL;", n->ia[2], n->ia[3]);
	}
	/* out[i, j] = src[i + dr, j + dc], +0 outside the source */
	if (bwd)
		line(c, "const int64_t si = i + (%" PRId64 "LL - oy), sj = j + (%" PRId64 "LL - ox);", P, P);
	else
		line(c, "const int64_t si = i + (oy - %" PRId64 "LL), sj = j + (ox - %" PRId64 "LL);", P, P);
	line(c, "const bool in = si >= 0 && si < %" PRId64 "LL && sj >= 0 && sj < %" PRId64 "LL;", Rs, Cs);
	line(c, "%s = in ? %s : 0.0f;", W(c, n, "u"),
	     R(c, x, "row * %" PRId64 "LL + pl * %" PRId64 "LL + (in ? si * %" PRId64 "LL + sj : 0)",
	       planes * Rs * Cs, Rs * Cs, Cs));
	return k_end(c);
}
static int cu_RANDOM_CROP(cu *c, const ir_node *n) { return emit_crop(c, n, true, false); }
static int cu_RANDOM_CROP_BWD(cu *c, const ir_node *n) { return emit_crop(c, n, true, true); }
static int cu_CROP(cu *c, const ir_node *n) { return emit_crop(c, n, false, false); }
static int cu_CROP_BWD(cu *c, const ir_node *n) { return emit_crop(c, n, false, true); }

static int update_check(cu *c, const ir_node *n, int cnt)
{
	const ir_type *pt = &in_node(c, n, 0)->type;
	for (int i = 0; i < cnt; i++) {
		const ir_node *x = in_node(c, n, i);
		if (x->type.dt != IR_F32 || !ir_type_eq(&x->type, pt))
			return cu_err(c, n, "input %d must be f32 of the parameter's type", i);
		if (is_imm(x) || x->blk == IR_BLK_NONE)
			return cu_err(c, n, "input %d has no storage", i);
	}
	return 0;
}

static int cu_SGD_UPDATE(cu *c, const ir_node *n)
{
	float mom = n->fa[0], wd = n->fa[1];
	bool nesterov = n->ia[0] != 0, has_mom = n->ia[1] != 0 && mom != 0.0f;
	if (update_check(c, n, has_mom ? 3 : 2))
		return -1;
	const ir_node *p = in_node(c, n, 0), *g = in_node(c, n, 1);
	k_begin(c, n, ir_type_numel(&p->type));
	use(c, p);
	use(c, g);
	if (has_mom)
		use(c, in_node(c, n, 2));
	k_loop(c);
	line(c, "const float p = %s;", R(c, p, "u"));
	line(c, "float g = %s;", R(c, g, "u"));
	if (wd != 0.0f)
		line(c, "g = g + %s * p;", fbits(wd));
	if (has_mom) {
		const ir_node *m = in_node(c, n, 2);
		line(c, "const float m = %s * %s + g;", fbits(mom), R(c, m, "u"));
		line(c, "%s = m;", W(c, m, "u"));
		if (nesterov)
			line(c, "g = g + %s * m;", fbits(mom));
		else
			line(c, "g = m;");
	}
	line(c, "%s = p - a.lr * g;", W(c, p, "u"));
	return k_end(c);
}

static int cu_ADAM_UPDATE(cu *c, const ir_node *n)
{
	float b1 = n->fa[0], b2 = n->fa[1], eps = n->fa[2], wd = n->fa[3];
	bool decoupled = n->ia[0] != 0;
	if (update_check(c, n, 4))
		return -1;
	const ir_node *p = in_node(c, n, 0), *g = in_node(c, n, 1), *m = in_node(c, n, 2), *v = in_node(c, n, 3);
	k_begin(c, n, ir_type_numel(&p->type));
	use(c, p);
	use(c, g);
	use(c, m);
	use(c, v);
	k_loop(c);
	line(c, "const float lr = a.lr, c1 = a.bc1, c2 = a.bc2;");
	line(c, "float p = %s, g = %s;", R(c, p, "u"), R(c, g, "u"));
	if (decoupled && wd != 0.0f)
		line(c, "p = p - (lr * %s) * p;", fbits(wd));
	if (!decoupled && wd != 0.0f)
		line(c, "g = g + %s * p;", fbits(wd));
	line(c, "const float b1 = %s, b2 = %s;", fbits(b1), fbits(b2));
	line(c, "const float m = b1 * %s + (1.0f - b1) * g;", R(c, m, "u"));
	line(c, "const float vv = b2 * %s + (1.0f - b2) * (g * g);", R(c, v, "u"));
	line(c, "%s = m;", W(c, m, "u"));
	line(c, "%s = vv;", W(c, v, "u"));
	line(c, "const float den = __fsqrt_rn(vv / c2) + %s;", fbits(eps));
	line(c, "%s = p - lr * ((m / c1) / den);", W(c, p, "u"));
	return k_end(c);
}

static int cu_STATE_EMA(cu *c, const ir_node *n)
{
	if (update_check(c, n, 2))
		return -1;
	const ir_node *s = in_node(c, n, 0), *v = in_node(c, n, 1);
	k_begin(c, n, ir_type_numel(&s->type));
	use(c, s);
	use(c, v);
	k_loop(c);
	line(c, "%s = %s * %s + %s * %s;", W(c, s, "u"), fbits(n->fa[1]), R(c, s, "u"), fbits(n->fa[0]), R(c, v, "u"));
	return k_end(c);
}

/* ------------------------------------------------------------------ */
/* slices, concat, one_hot, embedding                                  */

static int slice_like(cu *c, const ir_node *n, bool bwd)
{
	const ir_node *x = in_node(c, n, 0);
	const ir_type *big = bwd ? &n->type : &x->type;
	int ax = (int)n->ia[0];
	if (ax < 0 || ax >= big->rank || big->d[ax].sym)
		return cu_err(c, n, "bad slice axis");
	int64_t L = big->d[ax].c, st = n->ia[1], len = n->ia[2] - n->ia[1];
	ir_dim post = dprod(big, ax + 1, big->rank);
	k_begin(c, n, ir_type_numel(&n->type));
	use(c, x);
	use(c, n);
	k_loop(c);
	line(c, "const int64_t post = %s, L = %" PRId64 "LL, st = %" PRId64 "LL, len = %" PRId64 "LL;", DX(post), L,
	     st, len);
	if (!bwd) {
		line(c, "const int64_t p = u / (len * post), j = u %% (len * post);");
		line(c, "%s = %s;", W(c, n, "u"), R(c, x, "p * L * post + st * post + j"));
	} else {
		line(c, "const int64_t p = u / (L * post), j = u %% (L * post), r = j - st * post;");
		line(c, "%s = (r >= 0 && r < len * post) ? %s : 0.0f;", W(c, n, "u"), R(c, x, "p * len * post + r"));
	}
	return k_end(c);
}
static int cu_SLICE(cu *c, const ir_node *n) { return slice_like(c, n, false); }
static int cu_SLICE_BWD(cu *c, const ir_node *n) { return slice_like(c, n, true); }

static int cu_CONCAT(cu *c, const ir_node *n)
{
	const ir_node *an = in_node(c, n, 0), *bn = in_node(c, n, 1);
	int ax = (int)n->ia[0];
	if (ax < 0 || ax >= n->type.rank || n->type.d[ax].sym)
		return cu_err(c, n, "bad concat axis");
	ir_dim post = dprod(&n->type, ax + 1, n->type.rank);
	k_begin(c, n, ir_type_numel(&n->type));
	use(c, an);
	use(c, bn);
	use(c, n);
	k_loop(c);
	line(c, "const int64_t na = %" PRId64 "LL * %s, nb = %" PRId64 "LL * %s;", an->type.d[ax].c, DX(post),
	     bn->type.d[ax].c, DX(post));
	line(c, "const int64_t p = u / (na + nb), j = u %% (na + nb);");
	line(c, "%s = j < na ? %s : %s;", W(c, n, "u"), R(c, an, "p * na + j"), R(c, bn, "p * nb + (j - na)"));
	return k_end(c);
}

static int cu_ONE_HOT(cu *c, const ir_node *n)
{
	const ir_node *x = in_node(c, n, 0);
	int64_t C = n->ia[0];
	if (n->type.dt != IR_F32 || x->type.dt == IR_F32 || C < 1)
		return cu_err(c, n, "needs integer indices and an f32 result");
	k_begin(c, n, dmul(ir_type_numel(&x->type), dconst(C)));
	use(c, x);
	use(c, n);
	k_loop(c);
	line(c, "const int64_t C = %" PRId64 "LL;", C);
	line(c, "%s = ((int64_t)%s == u %% C) ? 1.0f : 0.0f;", W(c, n, "u"), R(c, x, "u / C"));
	return k_end(c);
}

static int cu_EMBEDDING(cu *c, const ir_node *n)
{
	const ir_node *t = in_node(c, n, 0), *x = in_node(c, n, 1);
	int64_t V = t->type.d[0].c, D = t->type.d[1].c;
	if (n->type.dt != IR_F32 || x->type.dt == IR_F32)
		return cu_err(c, n, "needs an f32 table and integer indices");
	k_begin(c, n, dmul(ir_type_numel(&x->type), dconst(D)));
	use(c, t);
	use(c, x);
	use(c, n);
	k_loop(c);
	line(c, "const int64_t V = %" PRId64 "LL, D = %" PRId64 "LL, p = u / D, j = u %% D;", V, D);
	line(c, "const int64_t v = (int64_t)%s;", R(c, x, "p"));
	line(c, "const int64_t vc = v < 0 ? 0 : v > V - 1 ? V - 1 : v;");
	line(c, "%s = (v >= 0 && v < V) ? %s : 0.0f;", W(c, n, "u"), R(c, t, "vc * D + j"));
	return k_end(c);
}

static int cu_EMBEDDING_BWD(cu *c, const ir_node *n)
{
	const ir_node *dy = in_node(c, n, 0), *x = in_node(c, n, 1);
	int64_t V = n->type.d[0].c, D = n->type.d[1].c;
	if (n->type.dt != IR_F32 || x->type.dt == IR_F32)
		return cu_err(c, n, "needs f32 gradients and integer indices");
	if (check_plan(c, n))
		return -1;
	k_begin(c, n, dconst(V * D));
	use(c, dy);
	use(c, x);
	use(c, n);
	k_loop(c);
	line(c, "const int64_t D = %" PRId64 "LL, v = u / D, j = u %% D;", D);
	reduce_open(c, "s", n->plan, DX(ir_type_numel(&x->type)));
	line(c, "\treturn (int64_t)%s == v ? %s : 0.0f;", R(c, x, "k"), R(c, dy, "k * D + j"));
	reduce_close(c);
	line(c, "%s = s;", W(c, n, "u"));
	return k_end(c);
}

/* ------------------------------------------------------------------ */
/* convolution and pooling (NCHW)                                      */

/* im2col (ops.def): one thread per col element, a copy, +0 in the padding */
static int cu_IM2COL(cu *c, const ir_node *n)
{
	const ir_node *x = in_node(c, n, 0);
	if (need_f32(c, n))
		return -1;
	if (x->type.rank != 4 || n->type.rank != 6 || n->ia[0] < 1 || n->ia[2] < 1)
		return cu_err(c, n, "malformed im2col");
	k_begin(c, n, ir_type_numel(&n->type));
	use(c, x);
	use(c, n);
	k_loop(c);
	line(c, "const int64_t N = %s, C = %" PRId64 "LL, H = %" PRId64 "LL, Wd = %" PRId64 "LL;", DX(x->type.d[0]),
	     x->type.d[1].c, x->type.d[2].c, x->type.d[3].c);
	line(c, "const int64_t KH = %" PRId64 "LL, KW = %" PRId64 "LL, OH = %" PRId64 "LL, OW = %" PRId64 "LL;",
	     n->type.d[1].c, n->type.d[2].c, n->type.d[4].c, n->type.d[5].c);
	line(c, "const int64_t s = %" PRId64 "LL, p = %" PRId64 "LL, d = %" PRId64 "LL;", n->ia[0], n->ia[1], n->ia[2]);
	line(c, "int64_t t = u;");
	line(c, "const int64_t ow = t %% OW; t /= OW;");
	line(c, "const int64_t oh = t %% OH; t /= OH;");
	line(c, "const int64_t nn = t %% N; t /= N;");
	line(c, "const int64_t kw = t %% KW; t /= KW;");
	line(c, "const int64_t kh = t %% KH, ch = t / KH;");
	line(c, "const int64_t ih = oh * s - p + kh * d, iw = ow * s - p + kw * d;");
	line(c, "const bool in = ih >= 0 && ih < H && iw >= 0 && iw < Wd;");
	line(c, "(void)C;");
	line(c, "%s = in ? %s : 0.0f;", W(c, n, "u"), R(c, x, "in ? ((nn * C + ch) * H + ih) * Wd + iw : 0"));
	return k_end(c);
}

/* col2im (ops.def): one thread per dx element, its KH*KW taps (+0 where
 * none lands) summed in plan order */
static int cu_COL2IM(cu *c, const ir_node *n)
{
	const ir_node *col = in_node(c, n, 0);
	if (need_f32(c, n) || check_plan(c, n))
		return -1;
	if (col->type.rank != 6 || n->type.rank != 4 || n->ia[0] < 1 || n->ia[2] < 1)
		return cu_err(c, n, "malformed col2im");
	k_begin(c, n, ir_type_numel(&n->type));
	use(c, col);
	use(c, n);
	k_loop(c);
	line(c, "const int64_t N = %s, H = %" PRId64 "LL, Wd = %" PRId64 "LL;", DX(n->type.d[0]), n->type.d[2].c,
	     n->type.d[3].c);
	line(c, "const int64_t KH = %" PRId64 "LL, KW = %" PRId64 "LL, OH = %" PRId64 "LL, OW = %" PRId64 "LL;",
	     col->type.d[1].c, col->type.d[2].c, col->type.d[4].c, col->type.d[5].c);
	line(c, "const int64_t s = %" PRId64 "LL, p = %" PRId64 "LL, d = %" PRId64 "LL;", n->ia[0], n->ia[1], n->ia[2]);
	line(c, "const int64_t iw = u %% Wd, ih = (u / Wd) %% H, ch = (u / (Wd * H)) %% %" PRId64 "LL, nn = u / (Wd * H * %" PRId64 "LL);",
	     n->type.d[1].c, n->type.d[1].c);
	reduce_open(c, "acc", row_plan(n), "KH * KW");
	line(c, "\tconst int64_t kh = k / KW, kw = k %% KW;");
	line(c, "\tconst int64_t th = ih + p - kh * d, tw = iw + p - kw * d;");
	line(c, "\tconst bool ok = th >= 0 && tw >= 0 && th %% s == 0 && tw %% s == 0 && th / s < OH && tw / s < OW;");
	line(c, "\treturn ok ? %s : 0.0f;",
	     R(c, col, "ok ? (((ch * KH + kh) * KW + kw) * N + nn) * (OH * OW) + (th / s) * OW + tw / s : 0"));
	reduce_close(c);
	line(c, "%s = acc;", W(c, n, "u"));
	return k_end(c);
}

typedef struct pgeo { int64_t H, W, OH, OW, k, s; } pgeo;
static int pool_geo(cu *c, const ir_node *n, const ir_type *x, const ir_type *y, pgeo *g)
{
	if (x->rank != 4 || y->rank != 4 || n->ia[0] < 1 || n->ia[1] < 1)
		return cu_err(c, n, "malformed pooling");
	*g = (pgeo){ x->d[2].c, x->d[3].c, y->d[2].c, y->d[3].c, n->ia[0], n->ia[1] };
	return 0;
}

static void pool_consts(cu *c, const pgeo *g)
{
	line(c, "const int64_t H = %" PRId64 "LL, W = %" PRId64 "LL, OH = %" PRId64 "LL, OW = %" PRId64
	        "LL, Kp = %" PRId64 "LL, S = %" PRId64 "LL;", g->H, g->W, g->OH, g->OW, g->k, g->s);
	line(c, "(void)H; (void)OH;");
}

/* the head of a pooling kernel: its checks, one unit per element of the
 * result, every input declared in order, the window geometry (of the
 * pooled input `in` and output `out`) as constants */
static int pool_open(cu *c, const ir_node *n, const ir_type *in, const ir_type *out, pgeo *g)
{
	if (need_f32(c, n) || pool_geo(c, n, in, out, g))
		return -1;
	k_begin(c, n, ir_type_numel(&n->type));
	for (int i = 0; i < n->nin; i++)
		use(c, in_node(c, n, i));
	use(c, n);
	k_loop(c);
	pool_consts(c, g);
	return 0;
}

/* a unit is an output element: the MAX rule over the window, rows then columns */
static int cu_MAX_POOL2D(cu *c, const ir_node *n)
{
	const ir_node *x = in_node(c, n, 0);
	pgeo g = { 0 };
	if (pool_open(c, n, &x->type, &n->type, &g))
		return -1;
	line(c, "const int64_t ow = u %% OW, oh = (u / OW) %% OH, pl = u / (OW * OH);");
	line(c, "const int64_t wb = pl * H * W + oh * S * W + ow * S;");
	line(c, "float m = -NND_INF;");
	line(c, "for (int64_t i = 0; i < Kp; i++)");
	line(c, "\tfor (int64_t j = 0; j < Kp; j++)");
	line(c, "\t\tm = nnd_maximum(m, %s);", R(c, x, "wb + i * W + j"));
	line(c, "%s = m;", W(c, n, "u"));
	return k_end(c);
}

/* a unit is an input position: dx = +0, then + dy of every window that
 * contains it and chose it (first NaN, else first maximum), windows in
 * row-major order -- the CPU's order of additions into that position */
/* a pooling backward's dx element (ih, iw) of plane pl, and the windows
 * [oh0, oh1] x [ow0, ow1] that contain it; acc from +0 */
static void pool_bwd_windows(cu *c)
{
	line(c, "const int64_t iw = u %% W, ih = (u / W) %% H, pl = u / (W * H);");
	line(c, "const int64_t oh0 = ih >= Kp - 1 ? (ih - Kp + 1 + S - 1) / S : 0, oh1 = ih / S < OH - 1 ? ih / S : OH - 1;");
	line(c, "const int64_t ow0 = iw >= Kp - 1 ? (iw - Kp + 1 + S - 1) / S : 0, ow1 = iw / S < OW - 1 ? iw / S : OW - 1;");
	line(c, "float acc = 0.0f;");
}

static int cu_MAX_POOL2D_BWD(cu *c, const ir_node *n)
{
	const ir_node *dy = in_node(c, n, 0), *x = in_node(c, n, 1);
	pgeo g = { 0 };
	if (pool_open(c, n, &x->type, &dy->type, &g))
		return -1;
	pool_bwd_windows(c);
	line(c, "for (int64_t oh = oh0; oh <= oh1; oh++)");
	line(c, "\tfor (int64_t ow = ow0; ow <= ow1; ow++) {");
	line(c, "\t\tconst int64_t wb = pl * H * W + oh * S * W + ow * S;");
	line(c, "\t\tfloat best = -NND_INF;");
	line(c, "\t\tint64_t bq = 0;");
	line(c, "\t\tfor (int64_t q = 0; q < Kp * Kp; q++)");
	line(c, "\t\t\tnnd_argmax_step(&best, &bq, %s, q);", R(c, x, "wb + (q / Kp) * W + q %% Kp"));
	line(c, "\t\tif (wb + (bq / Kp) * W + bq %% Kp == u)");
	line(c, "\t\t\tacc = acc + %s;", R(c, dy, "(pl * OH + oh) * OW + ow"));
	line(c, "\t}");
	line(c, "%s = acc;", W(c, n, "u"));
	return k_end(c);
}

static int cu_AVG_POOL2D(cu *c, const ir_node *n)
{
	const ir_node *x = in_node(c, n, 0);
	pgeo g = { 0 };
	if (check_plan(c, n) || pool_open(c, n, &x->type, &n->type, &g))
		return -1;
	line(c, "const int64_t ow = u %% OW, oh = (u / OW) %% OH, pl = u / (OW * OH);");
	line(c, "const int64_t wb = pl * H * W + oh * S * W + ow * S;");
	reduce_open(c, "s", n->plan, "Kp * Kp");
	line(c, "\treturn %s;", R(c, x, "wb + (k / Kp) * W + k %% Kp"));
	reduce_close(c);
	line(c, "%s = s / %s;", W(c, n, "u"), fbits((float)(g.k * g.k)));
	return k_end(c);
}

/* a unit is an input position: + dy/(k*k) of every window containing it,
 * in row-major window order */
static int cu_AVG_POOL2D_BWD(cu *c, const ir_node *n)
{
	const ir_node *dy = in_node(c, n, 0);
	pgeo g = { 0 };
	if (pool_open(c, n, &n->type, &dy->type, &g))
		return -1;
	pool_bwd_windows(c);
	line(c, "for (int64_t oh = oh0; oh <= oh1; oh++)");
	line(c, "\tfor (int64_t ow = ow0; ow <= ow1; ow++)");
	line(c, "\t\tacc = acc + %s / %s;", R(c, dy, "(pl * OH + oh) * OW + ow"), fbits((float)(g.k * g.k)));
	line(c, "%s = acc;", W(c, n, "u"));
	return k_end(c);
}

/* ------------------------------------------------------------------ */
/* dispatch: one emitter per row of ops.def (a missing one won't compile) */

typedef int (*cu_emit_fn)(cu *c, const ir_node *n);
static const cu_emit_fn cu_emitters[IR_NUM_OPS] = {
#define OP(id, name, arity, flags) [IR_##id] = cu_##id,
#include "../ir/ops.def"
#undef OP
};

/* The graph's scalar outputs to a.outputs[k] (as the CPU step function
 * does at its end): integers converted to float. */
static int outputs_kernel(cu *c)
{
	const ir_graph *g = c->g;
	k_begin(c, NULL, dconst(1));
	for (int k = 0; k < g->noutputs; k++) {
		const ir_node *o = g->nodes[g->outputs[k]];
		if (o->type.rank != 0)
			return cu_err(c, o, "graph output %d is not a scalar", k);
		use(c, o);
	}
	k_loop(c);
	for (int k = 0; k < g->noutputs; k++) {
		const ir_node *o = g->nodes[g->outputs[k]];
		line(c, "a.outputs[%d] = (float)%s;", k, R(c, o, "0"));
	}
	return k_end(c);
}

/* ------------------------------------------------------------------ */
/* convolutions for cuDNN (--cudnn, docs/cuda.md)                      */

#undef W   /* the kernels' write helper; ir_conv has a field W */

/* the storage of v as the launch records spell it: false when it has none */
static bool conv_loc(const ir_node *v, int *blk, int64_t *offc, int64_t *offb)
{
	if (v->blk == IR_BLK_NONE || v->blk == IR_BLK_FUSED || v->blk == IR_BLK_OUTPUT || v->blk == IR_BLK_RESULT ||
	    v->type.dt != IR_F32)
		return false;
	*blk = (int)v->blk;
	*offc = v->blk == IR_BLK_INPUT ? v->ia[0] : v->off_c;
	*offb = v->blk == IR_BLK_ACT ? v->off_b : 0;
	return true;
}

/* which nodes run when the convolutions marked in rep[] are computed
 * whole: from the loss, the outputs, the result, the updates and the
 * gradients, backwards through each node's reads (a replaced node reads
 * its x, w and dy instead of its inputs) */
static void conv_needed(const ir_graph *g, const ir_conv *cv, const bool *rep, bool *need)
{
	int nn = g->nnodes;
	for (int i = 0; i < nn; i++) {
		const ir_node *n = g->nodes[i];
		need[i] = i == g->loss || i == g->result || (ir_ops[n->op].flags & IR_F_UPDATE) || n->blk == IR_BLK_GRAD;
	}
	for (int i = 0; i < g->noutputs; i++)
		need[g->outputs[i]] = true;
	for (int i = nn - 1; i >= 0; i--) {
		if (!need[i])
			continue;
		if (rep && rep[i]) {
			int rd[3] = { cv[i].x, cv[i].w, cv[i].y };
			for (int k = 0; k < 3; k++)
				need[rd[k]] = true;
		} else {
			for (int k = 0; k < g->nodes[i]->nin; k++)
				need[g->nodes[i]->in[k]] = true;
		}
	}
}

/* One record per convolution node a backend may compute whole:
 *   //@conv P G NODE KIND NC NSYM C H W O GROUPS KH KW OH OW STRIDE PAD DIL
 *           XBLK XOFFC XOFFB WBLK WOFFC WOFFB YBLK YOFFC YOFFB
 * (KIND fwd, bwd_filter or bwd_data; N = NC * B^NSYM; x f32[N,C,H,W],
 * w f32[O,C/GROUPS,KH,KW], y f32[O,N,OH,OW], dense, at the locations of
 * the launch records), then one
 *   //@skip P G NODE
 * per node whose result nothing needs once they are: the im2col feeding
 * them, the matmul of a replaced col2im. */
static void conv_records(cu *c, const ir_graph *g)
{
	int nn = g->nnodes, nrep = 0;
	ir_conv *cv = xcalloc((size_t)nn + 1, sizeof *cv);
	bool *rep = xcalloc((size_t)nn + 1, 1);
	for (int i = 0; i < nn; i++) {
		const ir_node *n = g->nodes[i];
		ir_conv *v = &cv[i];
		int b[3];
		int64_t oc[3], ob[3];
		if (!ir_conv_match(g, n, v) || v->C > INT32_MAX || v->O > INT32_MAX || v->H > INT32_MAX ||
		    v->W > INT32_MAX || !conv_loc(g->nodes[v->x], &b[0], &oc[0], &ob[0]) ||
		    !conv_loc(g->nodes[v->w], &b[1], &oc[1], &ob[1]) || !conv_loc(g->nodes[v->y], &b[2], &oc[2], &ob[2]))
			continue;
		rep[i] = true;
		nrep++;
		fprintf(c->rec,
		        "//@conv %d %d %d %s %" PRId64 " %d %" PRId64 " %" PRId64 " %" PRId64 " %" PRId64 " %" PRId64
		        " %" PRId64 " %" PRId64 " %" PRId64 " %" PRId64 " %" PRId64 " %" PRId64 " %" PRId64,
		        c->pi, c->gi, i, ir_conv_kind_name(v->kind), v->N.c, v->N.sym, v->C, v->H, v->W, v->O, v->G, v->KH,
		        v->KW, v->OH, v->OW, v->stride, v->pad, v->dil);
		for (int k = 0; k < 3; k++)
			fprintf(c->rec, " %d %" PRId64 " %" PRId64, b[k], oc[k], ob[k]);
		fputc('\n', c->rec);
	}
	if (nrep && !c->swap_written) {
		/* --cudnn, when cuDNN refuses y's strided [O, N, OH, OW] layout:
		 * the copy between it and a packed [N, O, OH, OW] buffer */
		c->swap_written = true;
		fprintf(c->f, "\n/* --cudnn: dst[b][a][p] = src[a][b][p] (runtime/cuda.c, packed layout) */\n"
		              "extern \"C\" __global__ void NND_BOUNDS nnd_swap01(const float *__restrict__ src,\n"
		              "\tfloat *__restrict__ dst, int64_t A, int64_t Bn, int64_t P)\n{\n"
		              "\tconst int64_t units = A * Bn * P;\n"
		              "\tfor (int64_t u = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; u < units;\n"
		              "\t     u += (int64_t)gridDim.x * blockDim.x) {\n"
		              "\t\tconst int64_t p = u %% P, b = u / P %% Bn, a = u / P / Bn;\n"
		              "\t\tdst[(b * A + a) * P + p] = src[u];\n\t}\n}\n");
	}
	if (nrep) {
		bool *plain = xcalloc((size_t)nn + 1, 1), *whole = xcalloc((size_t)nn + 1, 1);
		conv_needed(g, cv, NULL, plain);
		conv_needed(g, cv, rep, whole);
		for (int i = 0; i < nn; i++)
			if (plain[i] && !whole[i])
				fprintf(c->rec, "//@skip %d %d %d\n", c->pi, c->gi, i);
		free(plain);
		free(whole);
	}
	free(cv);
	free(rep);
}

static int build_graph(cu *c, const ir_graph *g, int gi)
{
	static const char *const names[3] = { "train", "eval", "infer" };
	c->g = g;
	c->gi = gi;
	c->gname = names[gi];
	c->decl = xcalloc((size_t)g->nnodes + 1, sizeof *c->decl);
	fprintf(c->rec, "//@graph %d %d %d\n", c->pi, gi, g->nnodes);
	for (int i = 0; i < g->nnodes && !c->failed; i++) {
		const ir_node *n = g->nodes[i];
		if ((unsigned)n->op >= IR_NUM_OPS || n->nin < 0 || n->nin > 4) {
			cu_err(c, n, "malformed node");
			break;
		}
		if (n->blk == IR_BLK_FUSED) {   /* computed in its reader's kernel */
			record(c, n, "-", dconst(0), dconst(0));
			continue;
		}
		if (cu_emitters[n->op](c, n) && !c->failed)
			cu_err(c, n, "no CUDA kernel");
	}
	if (!c->failed) {
		outputs_kernel(c);
		conv_records(c, g);
	}
	free(c->decl);
	c->decl = NULL;
	return c->failed ? -1 : 0;
}

/* ------------------------------------------------------------------ */
/* the preamble                                                        */

static const char preamble_top[] =
	"/* nnd CUDA kernels, generated by nndc (codegen/cuda.c); compile with NVRTC:\n"
	" * --fmad=false --ftz=false --prec-div=true --prec-sqrt=true -default-device\n"
	" * One kernel per IR node, one thread per independent output; see docs/cuda.md. */\n"
	"#ifndef NND_EMULATE\n"
	"typedef signed char int8_t;\n"
	"typedef unsigned char uint8_t;\n"
	"typedef int int32_t;\n"
	"typedef unsigned int uint32_t;\n"
	"typedef long long int64_t;\n"
	"typedef unsigned long long uint64_t;\n"
	"#endif\n"
	"#define NND_DEVICE 1\n";

static const char preamble_helpers[] =
	"\n/* ---- helpers of the generated kernels ---- */\n"
	"#define NND_INF __uint_as_float(0x7f800000u)\n"
	"/* every kernel is launched with 256 threads per block (runtime/cuda.c) */\n"
	"#ifdef NND_EMULATE\n#define NND_BOUNDS\n#else\n#define NND_BOUNDS __launch_bounds__(256)\n#endif\n"

	"/* maximum/minimum (ops.def): NaN if either is (a's first); max(-0,+0) = +0, min(-0,+0) = -0 */\n"
	"static __device__ __forceinline__ float nnd_maximum(float a, float b)\n"
	"{\n"
	"\tfloat r = a == b ? __uint_as_float(__float_as_uint(a) & __float_as_uint(b)) : b;\n"
	"\tr = a > b ? a : r;\n"
	"\tr = b != b ? b : r;\n"
	"\treturn a != a ? a : r;\n"
	"}\n"
	"static __device__ __forceinline__ float nnd_minimum(float a, float b)\n"
	"{\n"
	"\tfloat r = a == b ? __uint_as_float(__float_as_uint(a) | __float_as_uint(b)) : b;\n"
	"\tr = a < b ? a : r;\n"
	"\tr = b != b ? b : r;\n"
	"\treturn a != a ? a : r;\n"
	"}\n"
	"/* relu: x > 0 ? x : (x != x ? x : +0) */\n"
	"static __device__ __forceinline__ float nnd_relu(float x) { return x > 0.0f ? x : (x != x ? x : 0.0f); }\n"
	"/* argmax step: keep the first NaN, else the lowest index of the maximum */\n"
	"static __device__ __forceinline__ void nnd_argmax_step(float *best, int64_t *bidx, float x, int64_t k)\n"
	"{\n"
	"\tconst float bv = *best;\n"
	"\tif (x > bv || (x != x && bv == bv)) { *best = x; *bidx = k; }\n"
	"}\n"
	"/* reduction plans (passes/plans.c): t(k) is called once per term, k ascending */\n"
	"/* acc + t(0) + t(1) + ... in that order: eight terms are read ahead so\n"
	" * their loads overlap; the additions stay one chain, the plan's order */\n"
	"template <class F> static __device__ __forceinline__ float nnd_seq_add(float acc, int64_t n, F t)\n"
	"{\n"
	"\tint64_t k = 0;\n"
	"\tfor (; k + 8 <= n; k += 8) {\n"
	"\t\tfloat v[8];\n"
	"\t\tfor (int j = 0; j < 8; j++) v[j] = t(k + j);\n"
	"\t\tfor (int j = 0; j < 8; j++) acc = acc + v[j];\n"
	"\t}\n"
	"\tfor (; k < n; k++)\n"
	"\t\tacc = acc + t(k);\n"
	"\treturn acc;\n"
	"}\n"
	"template <class F> static __device__ __forceinline__ float nnd_reduce_seq(int64_t n, F t)\n"
	"{\n"
	"\treturn nnd_seq_add(0.0f, n, t);\n"
	"}\n"
	"template <class F> static __device__ __forceinline__ float nnd_reduce_blocked(int64_t n, int64_t nb, F t)\n"
	"{\n"
	"\tfloat tot = 0.0f;\n"
	"\tfor (int64_t k0 = 0; k0 < n; k0 += nb) {\n"
	"\t\tconst int64_t e = n - k0 < nb ? n : k0 + nb;\n"
	"\t\ttot = tot + nnd_seq_add(0.0f, e - k0, [&](int64_t k) -> float { return t(k0 + k); });\n"
	"\t}\n"
	"\treturn tot;\n"
	"}\n"
	"/* tree:F streamed: acc[j] is the open group of level j (level 0: the\n"
	" * terms), seq from its first child; a group of F children closes into\n"
	" * level j+1 below the top level L; at the end the open groups close\n"
	" * bottom-up.  The same sums as the CPU's level-by-level buffer. */\n"
	"static __device__ __forceinline__ void nnd_tree_push(float *acc, int64_t *cnt, int L, int64_t f, float v, int j)\n"
	"{\n"
	"\tfor (;;) {\n"
	"\t\tacc[j] = cnt[j] == 0 ? v : acc[j] + v;\n"
	"\t\tcnt[j]++;\n"
	"\t\tif (cnt[j] == f && j < L) { v = acc[j]; cnt[j] = 0; j++; }\n"
	"\t\telse break;\n"
	"\t}\n"
	"}\n"
	"template <class F> static __device__ float nnd_reduce_tree(int64_t n, int64_t f, F t)\n"
	"{\n"
	"\tif (n <= 0) return 0.0f;\n"
	"\tint L = 0;\n"
	"\tfor (int64_t m = n; m > 1; m = (m + f - 1) / f) L++;\n"
	"\tif (L == 0) return t(0);\n"
	"\tfloat acc[48];   /* L <= 41: n < 2^41, f >= 2 */\n"
	"\tint64_t cnt[48];\n"
	"\tfor (int j = 0; j <= L; j++) cnt[j] = 0;\n"
	"\tfor (int64_t k = 0; k < n; k++) nnd_tree_push(acc, cnt, L, f, t(k), 1);\n"
	"\tfor (int j = 1; j < L; j++)\n"
	"\t\tif (cnt[j] > 0) { const float v = acc[j]; cnt[j] = 0; nnd_tree_push(acc, cnt, L, f, v, j + 1); }\n"
	"\treturn acc[L];\n"
	"}\n";

int cg_cuda_check_env(void)
{
	const char *mm = getenv("NND_CUDA_MM");
	if (!mm || !*mm || !strcmp(mm, "smem") || !strcmp(mm, "reg"))
		return 0;
	fprintf(stderr, "nndc: error: NND_CUDA_MM=%s: expected smem (the default) or reg\n", mm);
	return 1;
}

char *cg_cuda_source(const ir_module *m, char *err, size_t errlen)
{
	char *kt = NULL, *rt = NULL, *out = NULL;
	size_t kl = 0, rl = 0, ol = 0;
	cu c;
	memset(&c, 0, sizeof c);
	c.err = err;
	c.errlen = errlen;
	c.f = open_memstream(&kt, &kl);
	c.rec = open_memstream(&rt, &rl);
	if (!c.f || !c.rec) {
		snprintf(err, errlen, "cuda: cannot allocate the source text");
		if (c.f) fclose(c.f);
		if (c.rec) fclose(c.rec);
		free(kt);
		free(rt);
		return NULL;
	}
	for (int i = 0; i < m->nprogs && !c.failed; i++) {
		const ir_program *p = m->progs[i];
		c.prog = p;
		c.pi = i;
		ir_graph *gs[3] = { p->train, p->eval_g, p->infer_g };
		for (int gi = 0; gi < 3 && !c.failed; gi++)
			if (gs[gi])
				build_graph(&c, gs[gi], gi);
	}
	fclose(c.f);
	fclose(c.rec);
	if (!c.failed) {
		FILE *o = open_memstream(&out, &ol);
		if (o) {
			fputs(preamble_top, o);
			fputs("\n/* ---- runtime/nnd_dev.h ---- */\n", o);
			fputs(cg_cuda_embed_dev_h, o);
			fputs("\n/* ---- runtime/math.c ---- */\n", o);
			fputs(cg_cuda_embed_math_c, o);
			fputs("\n/* ---- runtime/philox.c ---- */\n", o);
			fputs(cg_cuda_embed_philox_c, o);
			fputs(preamble_helpers, o);
			fputs(kt, o);
			fputs("\n/* ---- launch records (runtime/cuda.c) ---- */\n", o);
			fputs(rt, o);
			fclose(o);
		} else {
			snprintf(err, errlen, "cuda: cannot allocate the source text");
		}
	}
	free(kt);
	free(rt);
	return c.failed ? (free(out), NULL) : out;
}
