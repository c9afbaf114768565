/* onnx_run.c - ONNX conformance: runs one ONNX backend node test through nnd.
 *
 *   nnd_onnx_run DIR     (DIR holds model.onnx and test_data_set_0/)
 *
 * Reads model.onnx and the test's .pb tensors with the small protobuf
 * wire-format reader below (no libprotobuf), maps the graph's nodes onto
 * nnd IR ops by hand (shape_prepare/shape_commit), makes each graph input
 * and float initializer an IR_PARAM leaf holding the test's data (B = 1:
 * every dim is constant), turns the graph output into the infer graph's
 * result, runs pass_plans, pass_rng, pass_memplan, cg_build and calls
 * nnd_infer_0.  Every output of the graph is checked (one compiled program
 * per output) with the ONNX runner's tolerances:
 * |a - b| <= 1e-7 + 1e-3 * |b|, NaN matching NaN.
 *
 * Integer tensors (shapes, axes, indices, Shape's result) are known at
 * compile time here: they are folded on the host, because nnd's shapes are
 * static.
 *
 * Exit status: 0 pass, 1 fail (the worst mismatch is printed), 77 skip
 * (one line: "skip: REASON"), 2 harness error. */
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "codegen/codegen.h"
#include "ir/ir.h"
#include "passes/passes.h"
#include "runtime/rt.h"

/* ---------------------------------------------------------------- skip */

static const char *test_dir;
static int die_code = 77;   /* while reading the test: malformed/unknown data */

static _Noreturn void skip(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	printf("skip: ");
	vprintf(fmt, ap);
	printf("\n");
	va_end(ap);
	exit(77);
}

static _Noreturn void die(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	fprintf(stderr, "nnd_onnx_run: %s: ", test_dir);
	vfprintf(stderr, fmt, ap);
	fprintf(stderr, "\n");
	va_end(ap);
	exit(die_code);
}

static void *xalloc(size_t n)
{
	/* a size read from a file that is not the tensor we expected (an
	 * optional or a sequence) can be absurd: refuse it before calloc,
	 * which under ASan aborts instead of returning NULL */
	if (n > ((size_t)1 << 30))
		die("cannot allocate %zu bytes (malformed or unsupported data)", n);
	void *p = calloc(1, n ? n : 1);
	if (!p)
		die("cannot allocate %zu bytes (malformed or unsupported data)", n);
	return p;
}

/* ------------------------------------------------ protobuf wire format */

typedef struct pb { const uint8_t *p, *end; } pb;

static uint64_t pb_varint(pb *b)
{
	uint64_t v = 0;
	for (int s = 0; s < 64 && b->p < b->end; s += 7) {
		uint8_t c = *b->p++;
		v |= (uint64_t)(c & 0x7f) << s;
		if (!(c & 0x80))
			return v;
	}
	die("bad varint");
	return 0;
}

/* next field: returns 0 at the end; *wt wire type; *sub the payload of
 * length-delimited fields; *v varints / fixed values */
static int pb_next(pb *b, int *field, int *wt, pb *sub, uint64_t *v)
{
	if (b->p >= b->end)
		return 0;
	uint64_t key = pb_varint(b);
	*field = (int)(key >> 3);
	*wt = (int)(key & 7);
	switch (*wt) {
	case 0: *v = pb_varint(b); break;
	case 1:
		if (b->end - b->p < 8) die("truncated fixed64");
		memcpy(v, b->p, 8);
		b->p += 8;
		break;
	case 5: {
		uint32_t x;
		if (b->end - b->p < 4) die("truncated fixed32");
		memcpy(&x, b->p, 4);
		*v = x;
		b->p += 4;
		break;
	}
	case 2: {
		uint64_t n = pb_varint(b);
		if ((uint64_t)(b->end - b->p) < n) die("truncated field");
		sub->p = b->p;
		sub->end = b->p + n;
		b->p += n;
		break;
	}
	default: die("unsupported wire type %d", *wt);
	}
	return 1;
}

static char *pb_str(const pb *s)
{
	size_t n = (size_t)(s->end - s->p);
	char *r = xalloc(n + 1);
	memcpy(r, s->p, n);
	return r;
}

/* repeated int64: packed (wt 2) or one per field (wt 0) */
static void pb_ints(int wt, pb *sub, uint64_t v, int64_t **arr, int *n)
{
	if (wt == 0) {
		*arr = realloc(*arr, (size_t)(*n + 1) * sizeof **arr);
		(*arr)[(*n)++] = (int64_t)v;
		return;
	}
	while (sub->p < sub->end) {
		*arr = realloc(*arr, (size_t)(*n + 1) * sizeof **arr);
		(*arr)[(*n)++] = (int64_t)pb_varint(sub);
	}
}

static void pb_floats(int wt, pb *sub, uint64_t v, float **arr, int *n)
{
	if (wt == 5) {
		uint32_t x = (uint32_t)v;
		*arr = realloc(*arr, (size_t)(*n + 1) * sizeof **arr);
		memcpy(&(*arr)[(*n)++], &x, 4);
		return;
	}
	while (sub->end - sub->p >= 4) {
		*arr = realloc(*arr, (size_t)(*n + 1) * sizeof **arr);
		memcpy(&(*arr)[(*n)++], sub->p, 4);
		sub->p += 4;
	}
}

/* ------------------------------------------------------------ tensors */

enum { T_FLOAT = 1, T_UINT8 = 2, T_INT8 = 3, T_INT32 = 6, T_INT64 = 7, T_STRING = 8,
       T_BOOL = 9, T_DOUBLE = 11 };

typedef struct tensor {
	char *name;
	int dtype;
	int rank;
	int64_t dims[16];
	int64_t n;
	float *f;        /* dtype FLOAT (and DOUBLE, rounded) */
	int64_t *i;      /* the integer and bool dtypes */
} tensor;

static const char *dtype_name(int dt)
{
	static const char *names[] = { "undefined", "float", "uint8", "int8", "uint16", "int16",
		"int32", "int64", "string", "bool", "float16", "double", "uint32", "uint64",
		"complex64", "complex128", "bfloat16" };
	return dt >= 0 && dt < (int)(sizeof names / sizeof *names) ? names[dt] : "unknown";
}

static tensor *parse_tensor(pb b)
{
	tensor *t = xalloc(sizeof *t);
	int64_t *dims = NULL, *ints = NULL;
	float *fl = NULL;
	double *dbl = NULL;
	int nd = 0, ni = 0, nf = 0, ndb = 0;
	pb raw = { NULL, NULL };
	int f, wt;
	pb sub;
	uint64_t v;
	t->dtype = T_FLOAT;
	while (pb_next(&b, &f, &wt, &sub, &v)) {
		switch (f) {
		case 1: pb_ints(wt, &sub, v, &dims, &nd); break;
		case 2: t->dtype = (int)v; break;
		case 3: skip("segmented tensor (or a sequence)"); break;
		case 4: pb_floats(wt, &sub, v, &fl, &nf); break;
		case 5: case 7: pb_ints(wt, &sub, v, &ints, &ni); break;
		case 8: t->name = pb_str(&sub); break;
		case 9: raw = sub; break;
		case 10:
			if (wt == 1) {
				dbl = realloc(dbl, (size_t)(ndb + 1) * 8);
				memcpy(&dbl[ndb++], &v, 8);
			} else
				while (sub.end - sub.p >= 8) {
					dbl = realloc(dbl, (size_t)(ndb + 1) * 8);
					memcpy(&dbl[ndb++], sub.p, 8);
					sub.p += 8;
				}
			break;
		case 13: skip("tensor with external data"); break;
		default: break;
		}
	}
	if (nd > 16)
		skip("tensor of rank %d", nd);
	t->rank = nd;
	t->n = 1;
	for (int k = 0; k < nd; k++) {
		t->dims[k] = dims[k];
		/* dims of a message that is not a plain tensor can be anything */
		if (dims[k] < 0 || (dims[k] > 0 && t->n > ((int64_t)1 << 40) / dims[k]))
			die("tensor dimension %" PRId64 " out of range (malformed or unsupported data)", dims[k]);
		t->n *= dims[k];
	}
	free(dims);
	int64_t n = t->n;
	size_t rawn = (size_t)(raw.end - raw.p);
	switch (t->dtype) {
	case T_FLOAT:
		t->f = xalloc((size_t)n * 4);
		if (raw.p) {
			if (rawn != (size_t)n * 4) die("raw_data size");
			memcpy(t->f, raw.p, rawn);
		} else {
			if (nf != n) die("float_data size %d, want %" PRId64, nf, n);
			if (n)
				memcpy(t->f, fl, (size_t)n * 4);
		}
		break;
	case T_DOUBLE:
		t->f = xalloc((size_t)n * 4);
		for (int64_t k = 0; k < n; k++) {
			double d;
			if (raw.p) memcpy(&d, raw.p + 8 * k, 8);
			else d = dbl[k];
			t->f[k] = (float)d;
		}
		break;
	case T_INT64: case T_INT32: case T_BOOL: case T_UINT8: case T_INT8: {
		int sz = t->dtype == T_INT64 ? 8 : t->dtype == T_INT32 ? 4 : 1;
		t->i = xalloc((size_t)n * 8);
		if (raw.p && rawn != (size_t)n * (size_t)sz) die("raw_data size");
		if (!raw.p && ni != n) die("int data size %d, want %" PRId64, ni, n);
		for (int64_t k = 0; k < n; k++) {
			if (!raw.p) { t->i[k] = ints[k]; continue; }
			if (sz == 8) memcpy(&t->i[k], raw.p + 8 * k, 8);
			else if (sz == 4) { int32_t x; memcpy(&x, raw.p + 4 * k, 4); t->i[k] = x; }
			else if (t->dtype == T_INT8) t->i[k] = (int8_t)raw.p[k];
			else t->i[k] = raw.p[k];
		}
		break;
	}
	default:
		break;   /* other dtypes: kept without data; users of it skip */
	}
	free(ints);
	free(fl);
	free(dbl);
	return t;
}

static uint8_t *slurp(const char *path, size_t *n)
{
	FILE *f = fopen(path, "rb");
	if (!f)
		return NULL;
	fseek(f, 0, SEEK_END);
	long sz = ftell(f);
	fseek(f, 0, SEEK_SET);
	uint8_t *buf = xalloc((size_t)sz + 1);
	if (fread(buf, 1, (size_t)sz, f) != (size_t)sz)
		die("reading %s", path);
	fclose(f);
	*n = (size_t)sz;
	return buf;
}

static tensor *load_pb(const char *path)
{
	size_t n;
	uint8_t *buf = slurp(path, &n);
	if (!buf)
		return NULL;
	return parse_tensor((pb){ buf, buf + n });
}

/* ------------------------------------------------------------- model */

enum { A_FLOAT = 1, A_INT = 2, A_STRING = 3, A_TENSOR = 4, A_GRAPH = 5, A_FLOATS = 6,
       A_INTS = 7, A_STRINGS = 8 };

typedef struct attr {
	char *name;
	int type;
	float f;
	int64_t i;
	char *s;
	tensor *t;
	int64_t *ints; int nints;
	float *floats; int nfloats;
} attr;

typedef struct onode {
	char *op, *domain;
	char **in; int nin;
	char **out; int nout;
	attr *at; int nat;
} onode;

typedef struct model {
	int64_t opset;
	onode *nodes; int nnodes;
	tensor **inits; int ninits;
	char **inputs; int ninputs;
	char **outputs; int noutputs;
} model;

static void push_str(char ***arr, int *n, char *s)
{
	*arr = realloc(*arr, (size_t)(*n + 1) * sizeof **arr);
	(*arr)[(*n)++] = s;
}

static char *value_info_name(pb b)
{
	int f, wt;
	pb sub;
	uint64_t v;
	while (pb_next(&b, &f, &wt, &sub, &v))
		if (f == 1)
			return pb_str(&sub);
	return xalloc(1);
}

static attr parse_attr(pb b)
{
	attr a;
	memset(&a, 0, sizeof a);
	int f, wt;
	pb sub;
	uint64_t v;
	while (pb_next(&b, &f, &wt, &sub, &v)) {
		switch (f) {
		case 1: a.name = pb_str(&sub); break;
		case 20: a.type = (int)v; break;
		case 2: { uint32_t x = (uint32_t)v; memcpy(&a.f, &x, 4); break; }
		case 3: a.i = (int64_t)v; break;
		case 4: a.s = pb_str(&sub); break;
		case 5: a.t = parse_tensor(sub); break;
		case 7: pb_floats(wt, &sub, v, &a.floats, &a.nfloats); break;
		case 8: pb_ints(wt, &sub, v, &a.ints, &a.nints); break;
		case 6: case 10: case 11: a.type = a.type ? a.type : A_GRAPH; break;
		default: break;
		}
	}
	return a;
}

static onode parse_node(pb b)
{
	onode n;
	memset(&n, 0, sizeof n);
	int f, wt;
	pb sub;
	uint64_t v;
	while (pb_next(&b, &f, &wt, &sub, &v)) {
		switch (f) {
		case 1: push_str(&n.in, &n.nin, pb_str(&sub)); break;
		case 2: push_str(&n.out, &n.nout, pb_str(&sub)); break;
		case 4: n.op = pb_str(&sub); break;
		case 7: n.domain = pb_str(&sub); break;
		case 5:
			n.at = realloc(n.at, (size_t)(n.nat + 1) * sizeof *n.at);
			n.at[n.nat++] = parse_attr(sub);
			break;
		default: break;
		}
	}
	if (!n.op)
		n.op = xalloc(1);
	return n;
}

static model *load_model(const char *path)
{
	size_t len;
	uint8_t *buf = slurp(path, &len);
	if (!buf)
		die("cannot read %s", path);
	model *m = xalloc(sizeof *m);
	pb b = { buf, buf + len }, g = { NULL, NULL };
	int f, wt;
	pb sub;
	uint64_t v;
	while (pb_next(&b, &f, &wt, &sub, &v)) {
		if (f == 7)
			g = sub;
		else if (f == 8) {   /* OperatorSetIdProto */
			int f2, wt2;
			pb s2;
			uint64_t v2;
			char *domain = NULL;
			int64_t ver = 0;
			while (pb_next(&sub, &f2, &wt2, &s2, &v2)) {
				if (f2 == 1) domain = pb_str(&s2);
				else if (f2 == 2) ver = (int64_t)v2;
			}
			if (!domain || !*domain || !strcmp(domain, "ai.onnx"))
				m->opset = ver;
		}
	}
	if (!g.p)
		die("no graph");
	while (pb_next(&g, &f, &wt, &sub, &v)) {
		switch (f) {
		case 1:
			m->nodes = realloc(m->nodes, (size_t)(m->nnodes + 1) * sizeof *m->nodes);
			m->nodes[m->nnodes++] = parse_node(sub);
			break;
		case 5:
			m->inits = realloc(m->inits, (size_t)(m->ninits + 1) * sizeof *m->inits);
			m->inits[m->ninits++] = parse_tensor(sub);
			break;
		case 11: push_str(&m->inputs, &m->ninputs, value_info_name(sub)); break;
		case 12: push_str(&m->outputs, &m->noutputs, value_info_name(sub)); break;
		default: break;
		}
	}
	return m;
}

static const attr *get_attr(const onode *n, const char *name)
{
	for (int k = 0; k < n->nat; k++)
		if (n->at[k].name && !strcmp(n->at[k].name, name))
			return &n->at[k];
	return NULL;
}

static int64_t attr_i(const onode *n, const char *name, int64_t def)
{
	const attr *a = get_attr(n, name);
	return a ? a->i : def;
}

static float attr_f(const onode *n, const char *name, float def)
{
	const attr *a = get_attr(n, name);
	return a ? a->f : def;
}

/* only these attributes are understood (anything else: skip) */
static void allow_attrs(const onode *n, const char *const *names)
{
	for (int k = 0; k < n->nat; k++) {
		bool ok = false;
		for (int j = 0; names && names[j]; j++)
			if (!strcmp(n->at[k].name, names[j]))
				ok = true;
		if (!ok)
			skip("%s: attribute %s not supported", n->op, n->at[k].name);
	}
}
#define ALLOW(...) allow_attrs(nd, (const char *const[]){ __VA_ARGS__, NULL })
#define ALLOW_NONE() allow_attrs(nd, NULL)

/* ------------------------------------------------------------- values */

/* A named ONNX value: an IR node (id >= 0) and/or host data (constants,
 * initializers, inputs, folded integer tensors). */
typedef struct value {
	char *name;
	int dtype;
	int id;          /* IR node, -1 if not materialised */
	tensor *host;    /* known data, or NULL */
} value;

static value *vals;
static int nvals;

static arena *ar;
static ir_program *prog;
static ir_graph *G;
static float *pblock;
static int64_t pfloats, pcap;

static value *find(const char *name)
{
	for (int k = nvals - 1; k >= 0; k--)
		if (!strcmp(vals[k].name, name))
			return &vals[k];
	return NULL;
}

static value *define(const char *name, int dtype, int id, tensor *host)
{
	vals = realloc(vals, (size_t)(nvals + 1) * sizeof *vals);
	value *v = &vals[nvals++];
	v->name = (char *)name;
	v->dtype = dtype;
	v->id = id;
	v->host = host;
	return v;
}

static ir_type tensor_type(const tensor *t, ir_dtype dt)
{
	ir_type ty;
	memset(&ty, 0, sizeof ty);
	ty.dt = dt;
	if (t->rank > IR_MAX_RANK)
		skip("rank %d exceeds nnd's IR_MAX_RANK %d", t->rank, IR_MAX_RANK);
	ty.rank = t->rank;
	for (int k = 0; k < t->rank; k++) {
		if (t->dims[k] <= 0)
			skip("empty tensor (a zero dimension)");
		ty.d[k].c = t->dims[k];
	}
	return ty;
}

/* a parameter leaf holding t's data (as f32, or as i32 bits when dt is I32) */
static int add_param(const tensor *t, ir_dtype dt)
{
	ir_type ty = tensor_type(t, dt);
	int idx = prog->nparams;
	ir_tensor *np = arena_alloc(ar, (size_t)(idx + 1) * sizeof *np);
	if (idx)
		memcpy(np, prog->params, (size_t)idx * sizeof *np);
	prog->params = np;
	prog->nparams = idx + 1;
	ir_tensor *pt = &np[idx];
	pt->path = arena_printf(ar, "onnx.%d", idx);
	pt->type = ty;
	pt->offset = pfloats;
	pt->init = IR_INIT_ZEROS;
	pt->stream = -1;
	pt->opt_slot = -1;
	int64_t need = pfloats + (t->n + 15) / 16 * 16;
	if (need > pcap) {
		pcap = need * 2;
		pblock = realloc(pblock, (size_t)pcap * 4);
	}
	for (int64_t k = 0; k < t->n; k++) {
		if (dt == IR_I32) {
			int32_t x = (int32_t)t->i[k];
			memcpy(&pblock[pfloats + k], &x, 4);
		} else
			pblock[pfloats + k] = t->f ? t->f[k] : (float)t->i[k];
	}
	for (int64_t k = t->n; k < need - pfloats; k++)
		pblock[pfloats + k] = 0.0f;
	pfloats = need;
	prog->param_floats = pfloats;
	ir_node *n = ir_add(ar, G, IR_PARAM, 0, NULL, &ty);
	n->ia[0] = idx;
	return n->id;
}

static const char *cur_op;

static int emit(ir_opcode op, int nin, const int *in, const ir_type *preset, const int64_t *ia,
                const float *fa)
{
	ir_node tmp;
	char err[512];
	int64_t ia0[4] = { 0 };
	float fa0[4] = { 0 };
	if (shape_prepare(G, &tmp, op, nin, in, preset, ia ? ia : ia0, fa ? fa : fa0, err, sizeof err))
		skip("%s: nnd %s: %s", cur_op, ir_ops[op].name, err);
	if (ir_type_numel(&tmp.type).c == 0)
		skip("%s: empty result", cur_op);
	ir_node *n = shape_commit(ar, G, &tmp, (src_loc){ 0 }, cur_op);
	if (ir_ops[op].flags & IR_F_REDUCE)
		n->plan = (ir_plan){ IR_PLAN_SEQ, 0, 0, (ir_ops[n->op].flags & IR_F_DOT) != 0 };
	return n->id;
}

static int un(ir_opcode op, int x) { return emit(op, 1, &x, NULL, NULL, NULL); }
static int bin(ir_opcode op, int a, int b) { int in[2] = { a, b }; return emit(op, 2, in, NULL, NULL, NULL); }
static int cnst(float v)
{
	ir_type t = ir_scalar(IR_F32);
	float fa[4] = { v };
	return emit(IR_CONST, 0, NULL, &t, NULL, fa);
}
static int reshape(int x, int rank, const int64_t *dims)
{
	ir_type t;
	memset(&t, 0, sizeof t);
	t.dt = G->nodes[x]->type.dt;
	if (rank > IR_MAX_RANK)
		skip("%s: rank %d exceeds nnd's IR_MAX_RANK", cur_op, rank);
	t.rank = rank;
	for (int k = 0; k < rank; k++)
		t.d[k].c = dims[k];
	if (ir_type_eq(&t, &G->nodes[x]->type))
		return x;
	return emit(IR_RESHAPE, 1, &x, &t, NULL, NULL);
}
/* nnd's general transpose: output axis k is input axis perm[k] */
static int permute(int x, const int *perm, int rank)
{
	int64_t ia[4] = { ir_perm_pack(perm, rank) };
	return emit(IR_TRANSPOSE, 1, &x, NULL, ia, NULL);
}
static int swap_axes(int x, int i, int j)
{
	int perm[IR_MAX_RANK], rank = G->nodes[x]->type.rank;
	for (int k = 0; k < rank; k++)
		perm[k] = k;
	perm[i] = j;
	perm[j] = i;
	return permute(x, perm, rank);
}
static int reduce(ir_opcode op, int x, int axis, bool keep)
{
	int64_t ia[4] = { axis, keep };
	return emit(op, 1, &x, NULL, ia, NULL);
}
static const ir_type *ty_of(int id) { return &G->nodes[id]->type; }

/* an ONNX input as an IR value; need_float: it must hold float data */
static int get(const onode *nd, int k)
{
	if (k >= nd->nin || !nd->in[k][0])
		skip("%s: missing input %d", nd->op, k);
	value *v = find(nd->in[k]);
	if (!v)
		skip("%s: input %s is not available", nd->op, nd->in[k]);
	if (v->dtype != T_FLOAT && v->dtype != T_DOUBLE)
		skip("%s: %s input (nnd computes f32)", nd->op, dtype_name(v->dtype));
	if (v->id < 0) {
		if (!v->host)
			skip("%s: input %s has no value", nd->op, nd->in[k]);
		v->id = add_param(v->host, IR_F32);
	}
	return v->id;
}

/* a boolean input (Where's condition) as f32 0/1 */
static int get_bool(const onode *nd, int k)
{
	value *v = k < nd->nin ? find(nd->in[k]) : NULL;
	if (!v)
		skip("%s: missing input %d", nd->op, k);
	if (v->id >= 0)
		return v->id;
	if (!v->host || v->dtype != T_BOOL)
		skip("%s: condition of dtype %s", nd->op, dtype_name(v->dtype));
	v->id = add_param(v->host, IR_F32);
	return v->id;
}

static bool has_in(const onode *nd, int k) { return k < nd->nin && nd->in[k][0]; }

/* host integer data of input k (shapes, axes), or NULL when absent */
static const tensor *host_ints(const onode *nd, int k)
{
	if (!has_in(nd, k))
		return NULL;
	value *v = find(nd->in[k]);
	if (!v || !v->host || !v->host->i)
		skip("%s: input %d must be a known integer tensor", nd->op, k);
	return v->host;
}

static void out(const onode *nd, int id)
{
	define(nd->out[0], G->nodes[id]->type.dt == IR_I32 ? T_INT64 : T_FLOAT, id, NULL);
}

static int norm_axis(int64_t ax, int rank, const char *op)
{
	if (ax < 0)
		ax += rank;
	if (ax < 0 || ax >= rank)
		skip("%s: axis out of range", op);
	return (int)ax;
}

/* ------------------------------------------------------------- ops */

static int matmul_nd(int a, int b)
{
	const ir_type *ta = ty_of(a), *tb = ty_of(b);
	int ra = ta->rank, rb = tb->rank;
	if (ra == 0 || rb == 0)
		skip("MatMul of a scalar");
	int64_t d[IR_MAX_RANK + 1];
	bool va = ra == 1, vb = rb == 1;
	if (va) { d[0] = 1; d[1] = ta->d[0].c; a = reshape(a, 2, d); ta = ty_of(a); ra = 2; }
	if (vb) { d[0] = tb->d[0].c; d[1] = 1; b = reshape(b, 2, d); tb = ty_of(b); rb = 2; }
	int r;
	if (ra == 2 && rb == 2) {
		r = bin(IR_MATMUL, a, b);
	} else {
		/* batched: a[..., M, K, 1] * b[..., 1, K, N] summed over K, in k order
		 * (each product rounded, added from +0: matmul's own semantics) */
		if (ra + 1 > IR_MAX_RANK || rb + 1 > IR_MAX_RANK)
			skip("MatMul of rank %d exceeds nnd's IR_MAX_RANK", ra > rb ? ra : rb);
		for (int k = 0; k < ra; k++) d[k] = ta->d[k].c;
		d[ra] = 1;
		int a3 = reshape(a, ra + 1, d);
		for (int k = 0; k < rb - 2; k++) d[k] = tb->d[k].c;
		d[rb - 2] = 1;
		d[rb - 1] = tb->d[rb - 2].c;
		d[rb] = tb->d[rb - 1].c;
		int b3 = reshape(b, rb + 1, d);
		int prod = bin(IR_MUL, a3, b3);
		r = reduce(IR_SUM, prod, ty_of(prod)->rank - 2, false);
	}
	const ir_type *tr = ty_of(r);
	if (va || vb) {
		int rank = 0;
		for (int k = 0; k < tr->rank; k++) {
			if ((va && k == tr->rank - 2) || (vb && k == tr->rank - 1))
				continue;
			d[rank++] = tr->d[k].c;
		}
		r = reshape(r, rank, d);
	}
	return r;
}

/* axes of a Reduce* node: attribute or (newer opsets) input 1 */
static int reduce_axes(const onode *nd, int rank, int *axes)
{
	const attr *a = get_attr(nd, "axes");
	const tensor *t = host_ints(nd, 1);
	int n = 0;
	if (a) {
		for (int k = 0; k < a->nints; k++)
			axes[n++] = norm_axis(a->ints[k], rank, nd->op);
	} else if (t) {
		for (int64_t k = 0; k < t->n; k++)
			axes[n++] = norm_axis(t->i[k], rank, nd->op);
	}
	if (n == 0) {
		if (attr_i(nd, "noop_with_empty_axes", 0))
			return -1;
		for (int k = 0; k < rank; k++)
			axes[n++] = k;
	}
	/* highest axis first, without duplicates */
	for (int i = 0; i < n; i++)
		for (int j = i + 1; j < n; j++)
			if (axes[j] > axes[i]) { int t2 = axes[i]; axes[i] = axes[j]; axes[j] = t2; }
	int m = 0;
	for (int i = 0; i < n; i++)
		if (!m || axes[m - 1] != axes[i])
			axes[m++] = axes[i];
	return m;
}

/* one reduction per axis, highest first */
static int reduce_multi(const onode *nd, ir_opcode op, int x)
{
	int axes[IR_MAX_RANK];
	int rank = ty_of(x)->rank;
	if (rank == 0)
		skip("%s of a scalar", nd->op);
	int n = reduce_axes(nd, rank, axes);
	if (n < 0)
		return x;
	bool keep = attr_i(nd, "keepdims", 1) != 0;
	for (int k = 0; k < n; k++)
		x = reduce(op, x, axes[k], keep);
	return x;
}

static int64_t opset;

/* softmax / log_softmax (ONNX Softmax, LogSoftmax) */
static int softmax_op(const onode *nd, ir_opcode op, int x)
{
	const ir_type *t = ty_of(x);
	int rank = t->rank;
	if (rank == 0)
		skip("%s of a scalar", nd->op);
	if (opset < 13) {
		/* coerce to 2-D [prod(d[:axis]), prod(d[axis:])], softmax rows */
		int axis = norm_axis(attr_i(nd, "axis", 1), rank, nd->op);
		int64_t d[2] = { 1, 1 }, back[IR_MAX_RANK];
		for (int k = 0; k < rank; k++) {
			d[k < axis ? 0 : 1] *= t->d[k].c;
			back[k] = t->d[k].c;
		}
		int y = un(op, reshape(x, 2, d));
		return reshape(y, rank, back);
	}
	int axis = norm_axis(attr_i(nd, "axis", -1), rank, nd->op);
	if (axis == rank - 1)
		return un(op, x);
	int y = un(op, swap_axes(x, axis, rank - 1));
	return swap_axes(y, axis, rank - 1);
}

static int64_t numel_dims(const int64_t *d, int r)
{
	int64_t n = 1;
	for (int k = 0; k < r; k++)
		n *= d[k];
	return n;
}

static void dims_of(int x, int64_t *d)
{
	const ir_type *t = ty_of(x);
	for (int k = 0; k < t->rank; k++)
		d[k] = t->d[k].c;
}

static tensor *int_tensor(int rank, const int64_t *dims, int dtype)
{
	tensor *t = xalloc(sizeof *t);
	t->dtype = dtype;
	t->rank = rank;
	t->n = numel_dims(dims, rank);
	for (int k = 0; k < rank; k++)
		t->dims[k] = dims[k];
	t->i = xalloc((size_t)(t->n ? t->n : 1) * 8);
	return t;
}

/* the dims of a value (an IR node or host data) */
static int value_dims(const value *v, int64_t *d)
{
	if (v->id >= 0) {
		dims_of(v->id, d);
		return ty_of(v->id)->rank;
	}
	if (!v->host)
		skip("value %s has no shape", v->name);
	for (int k = 0; k < v->host->rank; k++)
		d[k] = v->host->dims[k];
	return v->host->rank;
}

/* conv2d is not an op: passes/conv.c builds its nodes through emit */
static int conv_emit(void *ctx, ir_opcode op, int nin, const int *in, const ir_type *preset, const int64_t *ia)
{
	(void)ctx;
	return emit(op, nin, in, preset, ia, NULL);
}

/* an op of ops.def by name, or -1 when this build's table lacks it (the
 * pools are newer than this harness's first version) */
static int op_by_name(const char *name)
{
	for (int k = 0; k < IR_NUM_OPS; k++)
		if (ir_ops[k].name && !strcmp(ir_ops[k].name, name))
			return k;
	return -1;
}

/* one value of a 2-D spatial attribute pair that must be equal */
static int64_t attr_same2(const onode *nd, const char *name, int64_t def)
{
	const attr *a = get_attr(nd, name);
	if (!a || a->nints == 0)
		return def;
	for (int k = 1; k < a->nints; k++)
		if (a->ints[k] != a->ints[0])
			skip("%s: unequal %s (nnd has one value for both axes)", nd->op, name);
	return a->ints[0];
}

static void convert(const onode *nd)
{
	const char *op = nd->op;
	cur_op = op;
	if (nd->domain && *nd->domain && strcmp(nd->domain, "ai.onnx"))
		skip("operator domain %s", nd->domain);
	if (nd->nout < 1)
		skip("%s without outputs", op);
	for (int k = 1; k < nd->nout; k++)
		if (nd->out[k][0] && strcmp(op, "Dropout") && strcmp(op, "LayerNormalization"))
			skip("%s: more than one output", op);

	static const struct { const char *name; ir_opcode op; } unary[] = {
		{ "Neg", IR_NEG }, { "Exp", IR_EXP }, { "Log", IR_LOG }, { "Sqrt", IR_SQRT },
		{ "Tanh", IR_TANH }, { "Sigmoid", IR_SIGMOID }, { "Relu", IR_RELU },
	};
	for (size_t k = 0; k < sizeof unary / sizeof *unary; k++)
		if (!strcmp(op, unary[k].name)) {
			ALLOW_NONE();
			out(nd, un(unary[k].op, get(nd, 0)));
			return;
		}
	static const struct { const char *name; ir_opcode op; } binary[] = {
		{ "Add", IR_ADD }, { "Sub", IR_SUB }, { "Mul", IR_MUL }, { "Div", IR_DIV },
	};
	for (size_t k = 0; k < sizeof binary / sizeof *binary; k++)
		if (!strcmp(op, binary[k].name)) {
			ALLOW("broadcast", "axis");
			int a = get(nd, 0), b = get(nd, 1);
			if (attr_i(nd, "broadcast", 0)) {
				/* opset < 7: b's dims match a's from `axis` on (default: the suffix) */
				const ir_type *ta = ty_of(a), *tb = ty_of(b);
				int64_t ax = attr_i(nd, "axis", ta->rank - tb->rank), d[IR_MAX_RANK];
				if (ax < 0) ax += ta->rank;
				if (ax < 0 || ax + tb->rank > ta->rank)
					skip("%s: legacy broadcast axis out of range", op);
				int r = 0;
				for (int j = 0; j < tb->rank; j++) d[r++] = tb->d[j].c;
				for (int j = (int)ax + tb->rank; j < ta->rank; j++) d[r++] = 1;
				b = reshape(b, r, d);
			} else if (get_attr(nd, "axis"))
				skip("%s: axis without broadcast", op);
			out(nd, bin(binary[k].op, a, b));
			return;
		}
	if (!strcmp(op, "Pow")) {
		ALLOW_NONE();
		int x = get(nd, 0);
		value *e = find(nd->in[1]);
		int y;
		if (e && e->id < 0 && e->host && e->host->i && e->dtype != T_BOOL) {
			/* an integer exponent known here: exact in f32 when small */
			for (int64_t k = 0; k < e->host->n; k++)
				if (e->host->i[k] > (1 << 24) || e->host->i[k] < -(1 << 24))
					skip("Pow: integer exponent not exact in f32");
			y = add_param(e->host, IR_F32);
		} else
			y = get(nd, 1);
		out(nd, bin(IR_POW, x, y));
		return;
	}
	if (!strcmp(op, "Max") || !strcmp(op, "Min") || !strcmp(op, "Sum") || !strcmp(op, "Mean")) {
		ALLOW_NONE();
		ir_opcode o = op[1] == 'a' ? IR_MAXIMUM : op[1] == 'i' ? IR_MINIMUM : IR_ADD;
		int r = get(nd, 0);
		for (int k = 1; k < nd->nin; k++)
			r = bin(o, r, get(nd, k));
		if (!strcmp(op, "Mean"))
			r = bin(IR_DIV, r, cnst((float)nd->nin));
		else if (nd->nin == 1)
			r = bin(IR_ADD, r, cnst(0.0f));   /* a copy (x + 0: -0 -> +0 only) */
		out(nd, r);
		return;
	}
	if (!strcmp(op, "Abs")) {
		ALLOW_NONE();
		int x = get(nd, 0);
		out(nd, bin(IR_MAXIMUM, x, un(IR_NEG, x)));
		return;
	}
	if (!strcmp(op, "Reciprocal")) {
		ALLOW_NONE();
		out(nd, bin(IR_DIV, cnst(1.0f), get(nd, 0)));
		return;
	}
	if (!strcmp(op, "Softsign")) {
		ALLOW_NONE();
		int x = get(nd, 0);
		int ax = bin(IR_MAXIMUM, x, un(IR_NEG, x));
		out(nd, bin(IR_DIV, x, bin(IR_ADD, cnst(1.0f), ax)));
		return;
	}
	if (!strcmp(op, "LeakyRelu")) {
		ALLOW("alpha");
		int x = get(nd, 0);
		float alpha = attr_f(nd, "alpha", 0.01f);
		int in[3] = { bin(IR_GE, x, cnst(0.0f)), x, bin(IR_MUL, x, cnst(alpha)) };
		out(nd, emit(IR_WHERE, 3, in, NULL, NULL, NULL));
		return;
	}
	if (!strcmp(op, "HardSigmoid")) {
		ALLOW("alpha", "beta");
		int x = get(nd, 0);
		float alpha = attr_f(nd, "alpha", 0.2f), beta = attr_f(nd, "beta", 0.5f);
		int y = bin(IR_ADD, bin(IR_MUL, x, cnst(alpha)), cnst(beta));
		out(nd, bin(IR_MAXIMUM, bin(IR_MINIMUM, y, cnst(1.0f)), cnst(0.0f)));
		return;
	}
	if (!strcmp(op, "Clip")) {
		ALLOW("min", "max");
		int x = get(nd, 0);
		if (opset < 11) {
			const attr *lo = get_attr(nd, "min"), *hi = get_attr(nd, "max");
			if (lo) x = bin(IR_MAXIMUM, x, cnst(lo->f));
			if (hi) x = bin(IR_MINIMUM, x, cnst(hi->f));
		} else {
			if (has_in(nd, 1)) x = bin(IR_MAXIMUM, x, get(nd, 1));
			if (has_in(nd, 2)) x = bin(IR_MINIMUM, x, get(nd, 2));
			if (!has_in(nd, 1) && !has_in(nd, 2)) x = bin(IR_ADD, x, cnst(0.0f));
		}
		out(nd, x);
		return;
	}
	if (!strcmp(op, "Where")) {
		ALLOW_NONE();
		int in[3] = { get_bool(nd, 0), get(nd, 1), get(nd, 2) };
		out(nd, emit(IR_WHERE, 3, in, NULL, NULL, NULL));
		return;
	}
	if (!strcmp(op, "GreaterOrEqual") || !strcmp(op, "LessOrEqual")) {
		ALLOW_NONE();
		int a = get(nd, 0), b = get(nd, 1);
		int r = op[0] == 'G' ? bin(IR_GE, a, b) : bin(IR_GE, b, a);
		define(nd->out[0], T_BOOL, r, NULL);
		return;
	}
	if (!strcmp(op, "Greater") || !strcmp(op, "Less") || !strcmp(op, "Equal")) {
		ALLOW_NONE();
		int a = get(nd, 0), b = get(nd, 1), r;
		if (op[0] == 'G') r = bin(IR_SUB, cnst(1.0f), bin(IR_GE, b, a));   /* !(b >= a) */
		else if (op[0] == 'L') r = bin(IR_SUB, cnst(1.0f), bin(IR_GE, a, b));
		else r = bin(IR_MUL, bin(IR_GE, a, b), bin(IR_GE, b, a));
		define(nd->out[0], T_BOOL, r, NULL);
		return;
	}
	if (!strcmp(op, "Sign")) {
		ALLOW_NONE();
		int x = get(nd, 0);
		out(nd, bin(IR_SUB, bin(IR_GE, x, cnst(0.0f)), bin(IR_GE, cnst(0.0f), x)));
		return;
	}
	if (!strcmp(op, "PRelu")) {
		ALLOW_NONE();
		int x = get(nd, 0), sl = get(nd, 1);
		int in[3] = { bin(IR_GE, x, cnst(0.0f)), x, bin(IR_MUL, x, sl) };
		int r = emit(IR_WHERE, 3, in, NULL, NULL, NULL);
		if (!ir_type_eq(ty_of(r), ty_of(x)))
			skip("PRelu: slope does not broadcast to X");
		out(nd, r);
		return;
	}
	if (!strcmp(op, "Elu") || !strcmp(op, "Selu") || !strcmp(op, "Celu") ||
	    !strcmp(op, "ThresholdedRelu") || !strcmp(op, "Softplus") || !strcmp(op, "HardSwish")) {
		int x = get(nd, 0), r;
		if (!strcmp(op, "Elu")) {
			ALLOW("alpha");
			float al = attr_f(nd, "alpha", 1.0f);
			int neg = bin(IR_MUL, cnst(al), bin(IR_SUB, un(IR_EXP, x), cnst(1.0f)));
			int in[3] = { bin(IR_GE, x, cnst(0.0f)), x, neg };
			r = emit(IR_WHERE, 3, in, NULL, NULL, NULL);
		} else if (!strcmp(op, "Selu")) {
			ALLOW("alpha", "gamma");
			float al = attr_f(nd, "alpha", 1.67326319217681884765625f);
			float ga = attr_f(nd, "gamma", 1.05070102214813232421875f);
			int neg = bin(IR_SUB, bin(IR_MUL, cnst(al), un(IR_EXP, x)), cnst(al));
			int in[3] = { bin(IR_GE, cnst(0.0f), x), neg, x };
			r = bin(IR_MUL, cnst(ga), emit(IR_WHERE, 3, in, NULL, NULL, NULL));
		} else if (!strcmp(op, "Celu")) {
			ALLOW("alpha");
			float al = attr_f(nd, "alpha", 1.0f);
			int e = bin(IR_MUL, cnst(al),
			            bin(IR_SUB, un(IR_EXP, bin(IR_DIV, x, cnst(al))), cnst(1.0f)));
			r = bin(IR_ADD, bin(IR_MAXIMUM, cnst(0.0f), x), bin(IR_MINIMUM, cnst(0.0f), e));
		} else if (!strcmp(op, "ThresholdedRelu")) {
			ALLOW("alpha");
			float al = attr_f(nd, "alpha", 1.0f);
			int in[3] = { bin(IR_GE, cnst(al), x), cnst(0.0f), x };
			r = emit(IR_WHERE, 3, in, NULL, NULL, NULL);
		} else if (!strcmp(op, "Softplus")) {
			ALLOW_NONE();
			r = un(IR_LOG, bin(IR_ADD, un(IR_EXP, x), cnst(1.0f)));
		} else {
			ALLOW("alpha", "beta");
			float al = attr_f(nd, "alpha", 1.0f / 6.0f), be = attr_f(nd, "beta", 0.5f);
			int h = bin(IR_ADD, bin(IR_MUL, cnst(al), x), cnst(be));
			r = bin(IR_MUL, x, bin(IR_MAXIMUM, cnst(0.0f), bin(IR_MINIMUM, cnst(1.0f), h)));
		}
		out(nd, r);
		return;
	}
	if (!strcmp(op, "ArgMin")) {
		ALLOW("axis", "keepdims", "select_last_index");
		if (attr_i(nd, "select_last_index", 0))
			skip("ArgMin: select_last_index=1 (nnd's argmax takes the first)");
		int x = get(nd, 0);
		int rank = ty_of(x)->rank;
		if (rank == 0)
			skip("ArgMin of a scalar");
		int axis = norm_axis(attr_i(nd, "axis", 0), rank, op);
		out(nd, reduce(IR_ARGMAX, un(IR_NEG, x), axis, attr_i(nd, "keepdims", 1) != 0));
		return;
	}
	if (!strcmp(op, "GlobalAveragePool") || !strcmp(op, "GlobalMaxPool")) {
		ALLOW_NONE();
		int x = get(nd, 0), rank = ty_of(x)->rank;
		if (rank < 3)
			skip("%s of rank %d", op, rank);
		for (int k = rank - 1; k >= 2; k--)
			x = reduce(op[6] == 'A' ? IR_MEAN : IR_MAX, x, k, true);
		out(nd, x);
		return;
	}
	if (!strcmp(op, "BatchNormalization")) {
		ALLOW("epsilon", "momentum", "training_mode", "spatial", "is_test");
		if (attr_i(nd, "training_mode", 0) || nd->nout > 1)
			skip("BatchNormalization in training mode");
		if (!attr_i(nd, "spatial", 1))
			skip("BatchNormalization: spatial=0");
		int x = get(nd, 0), rank = ty_of(x)->rank;
		if (rank < 2)
			skip("BatchNormalization of rank %d", rank);
		int64_t d[IR_MAX_RANK];
		d[0] = ty_of(x)->d[1].c;
		for (int k = 1; k < rank - 1; k++)
			d[k] = 1;
		int p[4];
		for (int k = 0; k < 4; k++) {
			p[k] = get(nd, k + 1);
			if (ty_of(p[k])->rank != 1 || ty_of(p[k])->d[0].c != d[0])
				skip("BatchNormalization: parameter %d is not [C]", k + 1);
			p[k] = reshape(p[k], rank - 1, d);
		}
		float eps = attr_f(nd, "epsilon", 1e-5f);
		int xn = bin(IR_DIV, bin(IR_SUB, x, p[2]), un(IR_SQRT, bin(IR_ADD, p[3], cnst(eps))));
		out(nd, bin(IR_ADD, bin(IR_MUL, p[0], xn), p[1]));
		return;
	}
	if (!strcmp(op, "LayerNormalization")) {
		ALLOW("axis", "epsilon", "stash_type");
		if (attr_i(nd, "stash_type", 1) != 1)
			skip("LayerNormalization: stash_type %" PRId64, attr_i(nd, "stash_type", 1));
		int x = get(nd, 0), rank = ty_of(x)->rank;
		if (rank == 0)
			skip("LayerNormalization of a scalar");
		int axis = norm_axis(attr_i(nd, "axis", -1), rank, op);
		int64_t in[IR_MAX_RANK], d[2] = { 1, 1 }, md[IR_MAX_RANK];
		dims_of(x, in);
		for (int k = 0; k < rank; k++) {
			d[k < axis ? 0 : 1] *= in[k];
			md[k] = k < axis ? in[k] : 1;
		}
		int xm = reshape(x, 2, d);
		int mean = reduce(IR_MEAN, xm, 1, true);
		int diff = bin(IR_SUB, xm, mean);
		int var = reduce(IR_MEAN, bin(IR_MUL, diff, diff), 1, true);
		float eps = attr_f(nd, "epsilon", 1e-5f);
		int inv = bin(IR_DIV, cnst(1.0f), un(IR_SQRT, bin(IR_ADD, var, cnst(eps))));
		int y = reshape(bin(IR_MUL, diff, inv), rank, in);
		y = bin(IR_MUL, y, get(nd, 1));
		if (has_in(nd, 2))
			y = bin(IR_ADD, y, get(nd, 2));
		if (!ir_type_eq(ty_of(y), ty_of(x)))
			skip("LayerNormalization: scale/bias do not broadcast to X");
		int mo = nd->nout > 1 && nd->out[1][0] ? reshape(mean, rank, md) : -1;
		int io = nd->nout > 2 && nd->out[2][0] ? reshape(inv, rank, md) : -1;
		out(nd, y);
		if (mo >= 0) define(nd->out[1], T_FLOAT, mo, NULL);
		if (io >= 0) define(nd->out[2], T_FLOAT, io, NULL);
		return;
	}
	if (!strcmp(op, "Cast")) {
		ALLOW("to", "saturate");
		int to = (int)attr_i(nd, "to", 0);
		value *v = has_in(nd, 0) ? find(nd->in[0]) : NULL;
		if (!v)
			skip("Cast: input not available");
		bool vf = v->dtype == T_FLOAT || v->dtype == T_DOUBLE;
		if (vf && to == T_FLOAT) {
			int x = get(nd, 0);
			define(nd->out[0], T_FLOAT, x, NULL);
			return;
		}
		if (v->id < 0 && v->host && v->host->i && (to == T_FLOAT || to == T_INT64 || to == T_INT32)) {
			tensor *t = xalloc(sizeof *t);
			*t = *v->host;
			t->dtype = to;
			if (to == T_FLOAT) {
				t->i = NULL;
				t->f = xalloc((size_t)t->n * 4 + 4);
				for (int64_t k = 0; k < t->n; k++)
					t->f[k] = (float)v->host->i[k];
			}
			define(nd->out[0], to, -1, t);
			return;
		}
		skip("Cast from %s to %s", dtype_name(v->dtype), dtype_name(to));
	}
	if (!strcmp(op, "Conv") || !strcmp(op, "MaxPool") || !strcmp(op, "AveragePool")) {
		bool isconv = op[0] == 'C';
		int code = isconv ? 0 : op_by_name(op[0] == 'M' ? "max_pool2d" : "avg_pool2d");
		if (code < 0)
			skip("op %s not supported (no nnd op)", op);
		ALLOW("kernel_shape", "strides", "pads", "dilations", "group", "auto_pad", "ceil_mode",
		      "storage_order", "count_include_pad");
		const attr *ap = get_attr(nd, "auto_pad");
		if (ap && ap->s && strcmp(ap->s, "NOTSET") && strcmp(ap->s, "VALID"))
			skip("%s: auto_pad %s", op, ap->s);
		if (attr_i(nd, "ceil_mode", 0) || attr_i(nd, "storage_order", 0))
			skip("%s: ceil_mode/storage_order", op);
		int x = get(nd, 0);
		if (ty_of(x)->rank != 4)
			skip("%s of rank %d (nnd has 2-D only)", op, ty_of(x)->rank);
		int64_t pad = attr_same2(nd, "pads", 0), st = attr_same2(nd, "strides", 1);
		int64_t dil = attr_same2(nd, "dilations", 1), k = attr_same2(nd, "kernel_shape", 0);
		int64_t ia[4] = { 0 };
		int r;
		if (isconv) {
			int w = get(nd, 1);
			const ir_type *tw = ty_of(w);
			if (tw->rank != 4 || tw->d[2].c != tw->d[3].c)
				skip("Conv: non-square kernel");
			ia[0] = st; ia[1] = pad; ia[2] = dil; ia[3] = attr_i(nd, "group", 1);
			char err[512];
			r = conv2d_lower(NULL, conv_emit, x, ty_of(x), w, tw, ia, err, sizeof err);
			if (r < 0)
				skip("Conv: nnd conv2d: %s", err);
			if (has_in(nd, 2)) {
				int64_t d[3] = { tw->d[0].c, 1, 1 };
				r = bin(IR_ADD, r, reshape(get(nd, 2), 3, d));
			}
		} else {
			if (pad || dil != 1)
				skip("%s: padding or dilation (nnd's pools have neither)", op);
			if (k <= 0)
				skip("%s: no kernel_shape", op);
			if (nd->nout > 1)
				skip("%s: indices output", op);
			ia[0] = k; ia[1] = st;
			r = emit((ir_opcode)code, 1, &x, NULL, ia, NULL);
		}
		out(nd, r);
		return;
	}
	if (!strcmp(op, "MatMul")) {
		ALLOW_NONE();
		out(nd, matmul_nd(get(nd, 0), get(nd, 1)));
		return;
	}
	if (!strcmp(op, "Gemm")) {
		ALLOW("alpha", "beta", "transA", "transB", "broadcast");   /* (C broadcasts either way) */
		int a = get(nd, 0), b = get(nd, 1);
		if (ty_of(a)->rank != 2 || ty_of(b)->rank != 2)
			skip("Gemm: operands must be matrices");
		int64_t ia[4] = { attr_i(nd, "transA", 0) != 0, attr_i(nd, "transB", 0) != 0 };
		int in[2] = { a, b };
		int y = emit(IR_MATMUL, 2, in, NULL, ia, NULL);
		float alpha = attr_f(nd, "alpha", 1.0f), beta = attr_f(nd, "beta", 1.0f);
		if (alpha != 1.0f)
			y = bin(IR_MUL, cnst(alpha), y);
		if (has_in(nd, 2)) {
			int c = get(nd, 2);
			if (beta != 1.0f)
				c = bin(IR_MUL, cnst(beta), c);
			y = bin(IR_ADD, y, c);
		}
		out(nd, y);
		return;
	}
	static const struct { const char *name; int kind; } reds[] = {
		{ "ReduceSum", 0 }, { "ReduceMean", 1 }, { "ReduceMax", 2 }, { "ReduceMin", 3 },
		{ "ReduceSumSquare", 4 }, { "ReduceL1", 5 }, { "ReduceL2", 6 }, { "ReduceLogSum", 7 },
		{ "ReduceLogSumExp", 8 },
	};
	for (size_t k = 0; k < sizeof reds / sizeof *reds; k++)
		if (!strcmp(op, reds[k].name)) {
			ALLOW("axes", "keepdims", "noop_with_empty_axes");
			int x = get(nd, 0), r;
			switch (reds[k].kind) {
			case 0: r = reduce_multi(nd, IR_SUM, x); break;
			case 1: r = reduce_multi(nd, IR_MEAN, x); break;
			case 2: r = reduce_multi(nd, IR_MAX, x); break;
			case 3: r = un(IR_NEG, reduce_multi(nd, IR_MAX, un(IR_NEG, x))); break;
			case 4: r = reduce_multi(nd, IR_SUM, bin(IR_MUL, x, x)); break;
			case 5: r = reduce_multi(nd, IR_SUM, bin(IR_MAXIMUM, x, un(IR_NEG, x))); break;
			case 6: r = un(IR_SQRT, reduce_multi(nd, IR_SUM, bin(IR_MUL, x, x))); break;
			case 7: r = un(IR_LOG, reduce_multi(nd, IR_SUM, x)); break;
			default: r = un(IR_LOG, reduce_multi(nd, IR_SUM, un(IR_EXP, x))); break;
			}
			if (r == x)
				r = bin(IR_ADD, x, cnst(0.0f));
			out(nd, r);
			return;
		}
	if (!strcmp(op, "ArgMax")) {
		ALLOW("axis", "keepdims", "select_last_index");
		if (attr_i(nd, "select_last_index", 0))
			skip("ArgMax: select_last_index=1 (nnd's argmax takes the first)");
		int x = get(nd, 0);
		int rank = ty_of(x)->rank;
		if (rank == 0)
			skip("ArgMax of a scalar");
		int axis = norm_axis(attr_i(nd, "axis", 0), rank, op);
		out(nd, reduce(IR_ARGMAX, x, axis, attr_i(nd, "keepdims", 1) != 0));
		return;
	}
	if (!strcmp(op, "Softmax") || !strcmp(op, "LogSoftmax")) {
		ALLOW("axis");
		out(nd, softmax_op(nd, op[0] == 'S' ? IR_SOFTMAX : IR_LOG_SOFTMAX, get(nd, 0)));
		return;
	}
	if (!strcmp(op, "Transpose")) {
		ALLOW("perm");
		int x = get(nd, 0), rank = ty_of(x)->rank;
		int perm[IR_MAX_RANK];
		const attr *p = get_attr(nd, "perm");
		if (p && p->nints != rank)
			skip("Transpose: perm of the wrong length");
		bool seen[IR_MAX_RANK] = { false };
		for (int k = 0; k < rank; k++) {
			int64_t a = p ? (p->ints[k] < 0 ? p->ints[k] + rank : p->ints[k]) : rank - 1 - k;
			if (a < 0 || a >= rank || seen[a])
				skip("Transpose: bad perm");
			seen[a] = true;
			perm[k] = (int)a;
		}
		/* one node, the identity included (a copy into the result) */
		out(nd, permute(x, perm, rank));
		return;
	}
	if (!strcmp(op, "Expand")) {
		/* bidirectional NumPy broadcast of the input and the shape input;
		 * nnd's broadcast to the resulting shape (a copy when equal) */
		ALLOW_NONE();
		int x = get(nd, 0);
		const tensor *sh = host_ints(nd, 1);
		if (!sh)
			skip("Expand: missing shape");
		const ir_type *xt = ty_of(x);
		int r = xt->rank > (int)sh->n ? xt->rank : (int)sh->n;
		if (r > IR_MAX_RANK)
			skip("Expand: rank %d exceeds nnd's IR_MAX_RANK", r);
		ir_type t = *xt;
		t.rank = r;
		for (int k = 0; k < r; k++) {
			int kx = k - (r - xt->rank), ks = k - (r - (int)sh->n);
			int64_t a = kx >= 0 ? xt->d[kx].c : 1, b = ks >= 0 ? sh->i[ks] : 1;
			if (a != b && a != 1 && b != 1)
				skip("Expand: shapes do not broadcast");
			t.d[k] = (ir_dim){ a == 1 ? b : a, 0 };
		}
		out(nd, emit(IR_BROADCAST, 1, &x, &t, NULL, NULL));
		return;
	}
	if (!strcmp(op, "Identity") || !strcmp(op, "Dropout")) {
		if (!strcmp(op, "Dropout")) {
			ALLOW("ratio", "seed", "is_test");
			if (opset < 7 && !attr_i(nd, "is_test", 0))
				skip("Dropout in training mode");
			const tensor *tm = host_ints(nd, 2);
			if (tm && tm->n && tm->i[0])
				skip("Dropout in training mode");
		} else
			ALLOW_NONE();
		value *v = find(nd->in[0]);
		if (!v)
			skip("%s: input %s is not available", op, nd->in[0]);
		int64_t d[32];
		int r = value_dims(v, d);
		define(nd->out[0], v->dtype, v->id, v->host);   /* (moves vals: v is stale) */
		if (nd->nout > 1 && nd->out[1][0]) {   /* the mask: all true */
			tensor *m = int_tensor(r, d, T_BOOL);
			for (int64_t k = 0; k < m->n; k++)
				m->i[k] = 1;
			define(nd->out[1], T_BOOL, -1, m);
		}
		return;
	}
	if (!strcmp(op, "Constant")) {
		tensor *t = NULL;
		if (nd->nat != 1)
			skip("Constant: %d attributes", nd->nat);
		const attr *a = &nd->at[0];
		if (!strcmp(a->name, "value")) {
			t = a->t;
		} else if (!strcmp(a->name, "value_float") || !strcmp(a->name, "value_floats")) {
			bool one = !strcmp(a->name, "value_float");
			t = xalloc(sizeof *t);
			t->dtype = T_FLOAT;
			t->rank = one ? 0 : 1;
			t->n = one ? 1 : a->nfloats;
			t->dims[0] = t->n;
			t->f = xalloc((size_t)t->n * 4 + 4);
			if (one) t->f[0] = a->f;
			else memcpy(t->f, a->floats, (size_t)t->n * 4);
		} else if (!strcmp(a->name, "value_int") || !strcmp(a->name, "value_ints")) {
			bool one = !strcmp(a->name, "value_int");
			int64_t n = one ? 1 : a->nints;
			t = int_tensor(one ? 0 : 1, &n, T_INT64);
			if (one) t->i[0] = a->i;
			else memcpy(t->i, a->ints, (size_t)n * 8);
		} else
			skip("Constant: attribute %s", a->name);
		if (!t->f && !t->i)
			skip("Constant of dtype %s", dtype_name(t->dtype));
		define(nd->out[0], t->dtype, -1, t);
		return;
	}
	if (!strcmp(op, "Size")) {
		ALLOW_NONE();
		value *v = has_in(nd, 0) ? find(nd->in[0]) : NULL;
		if (!v)
			skip("Size: input not available");
		int64_t d[32];
		int r = value_dims(v, d);
		tensor *t = int_tensor(0, d, T_INT64);
		t->i[0] = numel_dims(d, r);
		define(nd->out[0], T_INT64, -1, t);
		return;
	}
	if (!strcmp(op, "Shape")) {
		ALLOW("start", "end");
		value *v = find(nd->in[0]);
		if (!v)
			skip("Shape: input not available");
		int64_t d[32];
		int r = value_dims(v, d);
		int64_t s = attr_i(nd, "start", 0), e = attr_i(nd, "end", r);
		if (s < 0) s += r;
		if (e < 0) e += r;
		if (s < 0) s = 0;
		if (e > r) e = r;
		int64_t n = e > s ? e - s : 0;
		if (n == 0)
			skip("Shape: empty result");
		tensor *t = int_tensor(1, &n, T_INT64);
		for (int64_t k = 0; k < n; k++)
			t->i[k] = d[s + k];
		define(nd->out[0], T_INT64, -1, t);
		return;
	}
	if (!strcmp(op, "Slice")) {
		value *v = has_in(nd, 0) ? find(nd->in[0]) : NULL;
		if (!v)
			skip("Slice: input not available");
		int64_t in[32];
		int rank = value_dims(v, in);
		int64_t st[16], en[16], ax[16], sp[16];
		int na;
		if (opset < 10) {
			ALLOW("starts", "ends", "axes");
			const attr *as = get_attr(nd, "starts"), *ae = get_attr(nd, "ends"), *aa = get_attr(nd, "axes");
			if (!as || !ae || as->nints != ae->nints || as->nints > 16 || (aa && aa->nints != as->nints))
				skip("Slice: starts/ends/axes attributes");
			na = as->nints;
			for (int k = 0; k < na; k++) {
				st[k] = as->ints[k];
				en[k] = ae->ints[k];
				ax[k] = aa ? aa->ints[k] : k;
				sp[k] = 1;
			}
		} else {
			ALLOW_NONE();
			const tensor *ts = host_ints(nd, 1), *te = host_ints(nd, 2);
			const tensor *ta = host_ints(nd, 3), *tp = host_ints(nd, 4);
			if (!ts || !te || ts->n != te->n || ts->n > 16 || (ta && ta->n != ts->n) || (tp && tp->n != ts->n))
				skip("Slice: starts/ends/axes/steps inputs");
			na = (int)ts->n;
			for (int k = 0; k < na; k++) {
				st[k] = ts->i[k];
				en[k] = te->i[k];
				ax[k] = ta ? ta->i[k] : k;
				sp[k] = tp ? tp->i[k] : 1;
			}
		}
		/* per axis: [lo, hi), normalised and clamped as ONNX does for step 1 */
		int64_t lo[32], hi[32];
		bool seen[32] = { false };
		for (int k = 0; k < rank; k++) {
			lo[k] = 0;
			hi[k] = in[k];
		}
		for (int k = 0; k < na; k++) {
			int a = norm_axis(ax[k], rank, op);
			if (seen[a])
				skip("Slice: repeated axis");
			seen[a] = true;
			if (sp[k] != 1)
				skip("Slice: step %" PRId64 " (nnd slices with step 1)", sp[k]);
			int64_t s = st[k], e = en[k], d = in[a];
			if (s < 0) s += d;
			if (e < 0) e += d;
			s = s < 0 ? 0 : s > d ? d : s;
			e = e < 0 ? 0 : e > d ? d : e;
			if (s >= e) {
				if (v->id >= 0 || !v->host || !v->host->i)
					skip("Slice: empty result");
				e = s;   /* known integers (a shape's prefix): an empty tensor */
			}
			lo[a] = s;
			hi[a] = e;
		}
		if (v->id < 0 && v->host && v->host->i) {   /* known integers: fold on the host */
			int64_t od[32];
			for (int k = 0; k < rank; k++)
				od[k] = hi[k] - lo[k];
			tensor *t = int_tensor(rank, od, v->dtype);
			for (int64_t o = 0; o < t->n; o++) {
				int64_t rem = o, src = 0, stride = 1;
				for (int k = rank - 1; k >= 0; k--) {
					int64_t i = rem % od[k];
					rem /= od[k];
					src += (i + lo[k]) * stride;
					stride *= in[k];
				}
				t->i[o] = v->host->i[src];
			}
			define(nd->out[0], v->dtype, -1, t);
			return;
		}
		int x = get(nd, 0);
		for (int k = 0; k < rank; k++)
			if (lo[k] != 0 || hi[k] != in[k]) {
				int64_t ia[4] = { k, lo[k], hi[k], 0 };
				x = emit(IR_SLICE, 1, &x, NULL, ia, NULL);
			}
		out(nd, x);
		return;
	}
	if (!strcmp(op, "Concat")) {
		ALLOW("axis");
		if (nd->nin < 1)
			skip("Concat: no inputs");
		const attr *aa = get_attr(nd, "axis");
		if (!aa)
			skip("Concat: no axis attribute");
		bool host = true;
		for (int k = 0; k < nd->nin; k++) {
			value *v = has_in(nd, k) ? find(nd->in[k]) : NULL;
			if (!v)
				skip("Concat: input %d not available", k);
			if (v->id >= 0 || !v->host || !v->host->i)
				host = false;
		}
		if (host) {   /* known integers (shapes): fold on the host */
			value *v0 = find(nd->in[0]);
			int dt = v0->dtype, rank = v0->host->rank;
			int a = norm_axis(aa->i, rank, op);
			int64_t od[16];
			for (int k = 0; k < rank; k++)
				od[k] = v0->host->dims[k];
			od[a] = 0;
			for (int k = 0; k < nd->nin; k++) {
				const tensor *h = find(nd->in[k])->host;
				if (h->rank != rank)
					skip("Concat: ranks differ");
				for (int j = 0; j < rank; j++)
					if (j != a && h->dims[j] != od[j])
						skip("Concat: dims differ");
				od[a] += h->dims[a];
			}
			tensor *t = int_tensor(rank, od, dt);
			int64_t outer = numel_dims(od, a), inner = numel_dims(od + a + 1, rank - a - 1), off = 0;
			for (int k = 0; k < nd->nin; k++) {
				const tensor *h = find(nd->in[k])->host;
				int64_t w = h->dims[a] * inner;
				for (int64_t o = 0; o < outer; o++)
					memcpy(&t->i[o * od[a] * inner + off], &h->i[o * w], (size_t)w * 8);
				off += w;
			}
			define(nd->out[0], dt, -1, t);
			return;
		}
		/* (x) join (y) join (z) ...: concat is associative, chained pairwise
		 * from the left as lower.c's concat() does */
		int acc = get(nd, 0);
		int a = norm_axis(aa->i, ty_of(acc)->rank, op);
		for (int k = 1; k < nd->nin; k++) {
			int in2[2] = { acc, get(nd, k) };
			int64_t ia[4] = { a, 0, 0, 0 };
			acc = emit(IR_CONCAT, 2, in2, NULL, ia, NULL);
		}
		out(nd, acc);
		return;
	}
	if (!strcmp(op, "Gather")) {
		ALLOW("axis");
		value *v = has_in(nd, 0) ? find(nd->in[0]) : NULL;
		if (!v)
			skip("Gather: data not available");
		int64_t dd[32];
		int rank = value_dims(v, dd);
		if (rank < 1)
			skip("Gather: scalar data");
		if (norm_axis(attr_i(nd, "axis", 0), rank, op) != 0)
			skip("Gather: axis other than 0 (nnd's embedding gathers rows)");
		const tensor *ix = host_ints(nd, 1);
		if (!ix)
			skip("Gather: no indices");
		if (ix->rank + rank - 1 > IR_MAX_RANK || ix->rank >= IR_MAX_RANK)
			skip("Gather: result rank exceeds nnd's IR_MAX_RANK");
		int64_t V = dd[0], D = numel_dims(dd + 1, rank - 1);
		tensor *ni = xalloc(sizeof *ni);
		*ni = *ix;
		ni->f = NULL;
		ni->i = xalloc((size_t)(ix->n ? ix->n : 1) * 8);
		for (int64_t k = 0; k < ix->n; k++) {
			int64_t i = ix->i[k] < 0 ? ix->i[k] + V : ix->i[k];
			if (i < 0 || i >= V)
				skip("Gather: index %" PRId64 " out of range", ix->i[k]);
			ni->i[k] = i;
		}
		if (ix->rank == 0) {
			ni->rank = 1;
			ni->dims[0] = 1;
		}
		int64_t od[32];
		int orank = 0;
		for (int k = 0; k < ix->rank; k++)
			od[orank++] = ix->dims[k];
		for (int k = 1; k < rank; k++)
			od[orank++] = dd[k];
		if (v->dtype != T_FLOAT && v->dtype != T_DOUBLE)
			skip("Gather: %s data (nnd's embedding table is f32)", dtype_name(v->dtype));
		int tab = get(nd, 0);
		int64_t td[2] = { V, D };
		tab = reshape(tab, 2, td);
		int in2[2] = { tab, add_param(ni, IR_I32) };
		int y = emit(IR_EMBEDDING, 2, in2, NULL, NULL, NULL);
		out(nd, reshape(y, orank, od));
		return;
	}
	if (!strcmp(op, "OneHot")) {
		ALLOW("axis");
		value *vi = has_in(nd, 0) ? find(nd->in[0]) : NULL;
		value *vv = has_in(nd, 2) ? find(nd->in[2]) : NULL;
		value *vd = has_in(nd, 1) ? find(nd->in[1]) : NULL;
		if (!vi || !vv || !vd || vi->id >= 0 || !vi->host || vd->id >= 0 || !vd->host || vv->id >= 0 || !vv->host)
			skip("OneHot: indices, depth and values must be known");
		const tensor *tv = vv->host, *td = vd->host, *ti = vi->host;
		if (vv->dtype != T_FLOAT || tv->n != 2 || tv->f[0] != 0.0f || tv->f[1] != 1.0f || signbit(tv->f[0]))
			skip("OneHot: values other than f32 [0, 1] (nnd's one_hot gives +0 / 1)");
		if (td->n != 1)
			skip("OneHot: depth is not a scalar");
		int64_t depth = td->i ? td->i[0] : (int64_t)td->f[0];
		if (td->f && (float)depth != td->f[0])
			skip("OneHot: non-integral depth");
		int64_t ax = attr_i(nd, "axis", -1);
		if (ax != -1 && ax != ti->rank)
			skip("OneHot: axis %" PRId64 " other than the last", ax);
		if (depth < 1)
			skip("OneHot: depth < 1");
		tensor *ni = xalloc(sizeof *ni);
		*ni = *ti;
		ni->f = NULL;
		ni->i = xalloc((size_t)(ti->n ? ti->n : 1) * 8);
		for (int64_t k = 0; k < ti->n; k++) {
			double x = ti->i ? (double)ti->i[k] : (double)ti->f[k];
			int64_t i = (int64_t)x;   /* ONNX casts float indices to int */
			if (i < 0 && i >= -depth)
				i += depth;
			if (i < INT32_MIN || i > INT32_MAX)
				i = -1;   /* outside [0, depth): a row of +0 either way */
			ni->i[k] = i;
		}
		int64_t ia[4] = { depth, 0, 0, 0 };
		int x = add_param(ni, IR_I32);
		out(nd, emit(IR_ONE_HOT, 1, &x, NULL, ia, NULL));
		return;
	}
	if (!strcmp(op, "Reshape") || !strcmp(op, "Flatten") || !strcmp(op, "Unsqueeze") ||
	    !strcmp(op, "Squeeze")) {
		value *v = has_in(nd, 0) ? find(nd->in[0]) : NULL;
		if (!v)
			skip("%s: input not available", op);
		int64_t in[32], d[32];
		int rank = value_dims(v, in), r = 0;
		if (!strcmp(op, "Reshape")) {
			ALLOW("allowzero");
			const tensor *sh = host_ints(nd, 1);
			if (!sh || sh->n > 16)
				skip("Reshape: no shape");
			int neg = -1;
			r = (int)sh->n;
			for (int k = 0; k < r; k++) {
				d[k] = sh->i[k];
				if (d[k] == 0) {
					if (attr_i(nd, "allowzero", 0))
						skip("Reshape: allowzero with a zero dimension (empty tensor)");
					if (k >= rank)
						skip("Reshape: 0 past the input's rank");
					d[k] = in[k];
				} else if (d[k] == -1) {
					if (neg >= 0) skip("Reshape: two -1 dims");
					neg = k;
				}
			}
			if (neg >= 0) {
				int64_t rest = 1;
				for (int k = 0; k < r; k++)
					if (k != neg) rest *= d[k];
				d[neg] = numel_dims(in, rank) / rest;
			}
		} else if (!strcmp(op, "Flatten")) {
			ALLOW("axis");
			int64_t ax = attr_i(nd, "axis", 1);
			if (ax < 0) ax += rank;
			if (ax < 0 || ax > rank) skip("Flatten: axis out of range");
			r = 2;
			d[0] = numel_dims(in, (int)ax);
			d[1] = numel_dims(in + ax, rank - (int)ax);
		} else {
			ALLOW("axes");
			bool unsq = op[0] == 'U';
			int64_t axes[16];
			int na = 0;
			const attr *a = get_attr(nd, "axes");
			const tensor *t = host_ints(nd, 1);
			if (a) { for (int k = 0; k < a->nints && k < 16; k++) axes[na++] = a->ints[k]; }
			else if (t) { for (int64_t k = 0; k < t->n && k < 16; k++) axes[na++] = t->i[k]; }
			if (unsq) {
				int orank = rank + na;
				if (orank > 16) skip("Unsqueeze: rank %d", orank);
				bool ins[16] = { false };
				for (int k = 0; k < na; k++)
					ins[norm_axis(axes[k], orank, op)] = true;
				for (int k = 0, j = 0; k < orank; k++)
					d[r++] = ins[k] ? 1 : in[j++];
			} else {
				bool del[16] = { false };
				for (int k = 0; k < na; k++)
					del[norm_axis(axes[k], rank, op)] = true;
				for (int k = 0; k < rank; k++) {
					if (na ? del[k] : in[k] == 1) {
						if (in[k] != 1) skip("Squeeze: axis of size %" PRId64, in[k]);
						continue;
					}
					d[r++] = in[k];
				}
			}
		}
		if (numel_dims(d, r) != numel_dims(in, rank))
			skip("%s: element counts differ", op);
		if (v->id < 0 && v->host) {   /* known data: the same data, new dims */
			tensor *t = xalloc(sizeof *t);
			*t = *v->host;
			t->rank = r;
			for (int k = 0; k < r; k++)
				t->dims[k] = d[k];
			int dt = v->dtype;
			define(nd->out[0], dt, -1, t);
			return;
		}
		if (v->id < 0)
			skip("%s: input has no value", op);
		if (r > IR_MAX_RANK)
			skip("%s: rank %d exceeds nnd's IR_MAX_RANK", op, r);
		int x = v->id, dt = v->dtype;
		ir_type ty;
		memset(&ty, 0, sizeof ty);
		ty.dt = ty_of(x)->dt;
		ty.rank = r;
		for (int k = 0; k < r; k++)
			ty.d[k].c = d[k];
		define(nd->out[0], dt, emit(IR_RESHAPE, 1, &x, &ty, NULL, NULL), NULL);
		return;
	}
	skip("op %s not supported", op);
}

/* ------------------------------------------------------------- main */

static int run_output(model *m, tensor **ins, int nin_pb, int which, const tensor *want,
                      double *worst_out)
{
	/* fresh program */
	ar = arena_new();
	nvals = 0;
	pfloats = 0;
	prog = arena_alloc(ar, sizeof *prog);
	prog->train = ir_graph_new(ar, "train");
	G = prog->infer_g = ir_graph_new(ar, "infer");
	prog->train->result = -1;
	prog->train->loss = -1;
	G->loss = -1;

	for (int k = 0; k < m->ninits; k++)
		define(m->inits[k]->name ? m->inits[k]->name : "", m->inits[k]->dtype, -1, m->inits[k]);
	int next = 0;
	for (int k = 0; k < m->ninputs; k++) {
		bool is_init = false;
		for (int j = 0; j < m->ninits; j++)
			if (m->inits[j]->name && !strcmp(m->inits[j]->name, m->inputs[k]))
				is_init = true;
		if (is_init)
			continue;
		if (next >= nin_pb)
			skip("fewer input_*.pb files than graph inputs");
		tensor *t = ins[next++];
		define(m->inputs[k], t->dtype, -1, t);
	}
	for (int k = 0; k < m->nnodes; k++)
		convert(&m->nodes[k]);

	cur_op = "output";
	value *v = find(m->outputs[which]);
	if (!v)
		skip("graph output %s not computed", m->outputs[which]);
	int r = v->id;
	if (r < 0) {
		if (!v->host)
			skip("graph output without a value");
		r = add_param(v->host, v->host->f ? IR_F32 : IR_I32);
	}
	ir_opcode rop = G->nodes[r]->op;
	if (rop == IR_PARAM || rop == IR_CONST || r != G->nnodes - 1) {
		ir_type t = G->nodes[r]->type;   /* a copy into the result buffer */
		r = emit(IR_RESHAPE, 1, &r, &t, NULL, NULL);
	}
	G->result = r;
	const ir_type *rt = ty_of(r);

	/* the output's shape and dtype */
	if (want->rank != rt->rank)
		goto shape_mismatch;
	for (int k = 0; k < rt->rank; k++)
		if (want->dims[k] != rt->d[k].c)
			goto shape_mismatch;
	if (!want->f && !want->i)
		skip("output dtype %s", dtype_name(want->dtype));
	if ((rt->dt == IR_I32) != (want->i != NULL) && !(want->dtype == T_BOOL && rt->dt == IR_F32))
		skip("output dtype %s from nnd %s", dtype_name(want->dtype), ir_dtype_name(rt->dt));

	pass_options po = { 0 };
	if (pass_plans(prog, &po) || pass_rng(ar, prog) || pass_memplan(prog))
		die("a pass failed");
	if (ir_verify_program(prog, "onnx"))
		die("IR verifier failed");
	ir_module mod;
	memset(&mod, 0, sizeof mod);
	mod.source_path = test_dir;
	mod.progs = &prog;
	mod.nprogs = 1;
	cg_module *cm = cg_build(&mod, "nnd-manifest 1\n", NULL, 2, false);
	if (!cm)
		die("cg_build failed");
	void *sym = cg_jit_lookup(cm, "nnd_infer_0");
	if (!sym)
		die("no nnd_infer_0");
	nnd_step_fn fn;
	memcpy(&fn, &sym, sizeof fn);

	int64_t n = want->n;
	size_t actn = (size_t)(G->act_c + G->act_b + 64);
	uint8_t *acts = aligned_alloc(64, (actn + 63) / 64 * 64);
	memset(acts, 0xA5, actn);
	float *params = aligned_alloc(64, (size_t)(pfloats + 16) * 4);
	memcpy(params, pblock, (size_t)pfloats * 4);
	float *res = xalloc((size_t)n * 4 + 4);
	float zeros[64] = { 0 }, outs[16] = { 0 };
	int64_t sidx[1] = { 0 };
	uint32_t keys[2] = { 0, 0 };
	const void *inputs[1] = { NULL };
	nnd_step_args a;
	memset(&a, 0, sizeof a);
	a.params = params;
	a.grads = zeros;
	a.opt = zeros;
	a.state = zeros;
	a.acts = acts;
	a.inputs = inputs;
	a.sample_idx = sidx;
	a.keys = keys;
	a.outputs = outs;
	a.B = 1;
	a.Bmax = 1;
	a.step = 1;
	a.result = res;
	fn(&a);

	int bad = 0;
	double worst = -1;
	int64_t worst_k = -1;
	double wa = 0, wb = 0;
	for (int64_t k = 0; k < n; k++) {
		double got, exp;
		if (rt->dt == IR_I32) { int32_t x; memcpy(&x, &res[k], 4); got = x; }
		else got = res[k];
		exp = want->f ? (double)want->f[k] : (double)want->i[k];
		if ((isnan(got) && isnan(exp)) || got == exp)   /* (infinities too) */
			continue;
		double diff = fabs(got - exp), tol = 1e-7 + 1e-3 * fabs(exp);
		double score = isnan(diff) ? INFINITY : diff / tol;
		if (!(diff <= tol))
			bad++;
		if (score > worst || isnan(diff)) {
			worst = score;
			worst_k = k;
			wa = got;
			wb = exp;
		}
	}
	if (bad)
		printf("FAIL output %d (%s): %d of %" PRId64 " elements differ; worst at %" PRId64
		       ": nnd %.9g, expected %.9g (|diff| = %.3g, tolerance %.3g)\n",
		       which, m->outputs[which], bad, n, worst_k, wa, wb, fabs(wa - wb),
		       1e-7 + 1e-3 * fabs(wb));
	*worst_out = worst;
	cg_free(cm);
	free(acts);
	free(params);
	free(res);
	arena_free(ar);
	return bad ? 1 : 0;

shape_mismatch:;
	char buf[128];
	printf("FAIL output %d (%s): nnd computes %s, expected rank %d [", which, m->outputs[which],
	       ir_type_str(rt, buf, sizeof buf), want->rank);
	for (int k = 0; k < want->rank; k++)
		printf("%s%" PRId64, k ? ", " : "", want->dims[k]);
	printf("]\n");
	return 1;
}

int main(int argc, char **argv)
{
	if (argc != 2) {
		fprintf(stderr, "usage: nnd_onnx_run DIR\n");
		return 2;
	}
	test_dir = argv[1];
	char path[4096];
	die_code = 77;
	snprintf(path, sizeof path, "%s/model.onnx", test_dir);
	model *m = load_model(path);
	opset = m->opset ? m->opset : 1;
	tensor *ins[64], *outs[64];
	int nin = 0, nout = 0;
	for (; nin < 64; nin++) {
		snprintf(path, sizeof path, "%s/test_data_set_0/input_%d.pb", test_dir, nin);
		if (!(ins[nin] = load_pb(path)))
			break;
	}
	for (; nout < 64; nout++) {
		snprintf(path, sizeof path, "%s/test_data_set_0/output_%d.pb", test_dir, nout);
		if (!(outs[nout] = load_pb(path)))
			break;
	}
	if (nout == 0)
		skip("no test_data_set_0/output_*.pb");
	if (nout != m->noutputs)
		skip("%d outputs in the graph, %d output files", m->noutputs, nout);
	die_code = 2;
	int fails = 0;
	double worst;
	for (int o = 0; o < nout; o++)
		fails += run_output(m, ins, nin, o, outs[o], &worst);
	if (fails)
		return 1;
	printf("pass (%d output%s)\n", nout, nout > 1 ? "s" : "");
	return 0;
}
