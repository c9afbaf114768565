/* lower.c - from the AST to the IR: name resolution, def instantiation
 * with instance paths, dataset probing, shape inference per node, and the
 * train block's settings.
 *
 * Defs are instantiated inline: every call of a def lowers its body again
 * with the arguments bound, under the call's instance path.  Parameters are
 * program-wide and keyed by path, so the train block's loss and metric
 * lines, which both call `mlp(...)`, share `mlp.h1.w` (language.md).
 *
 * A user error reports a diagnostic and yields a poison value; poison
 * propagates silently so that one mistake gives one message, and lowering
 * goes on to find the other mistakes of the file. */
#include <string.h>
#include <inttypes.h>
#include <math.h>
#include <libgen.h>
#include <limits.h>
#include "passes.h"
#include "../runtime/rt.h"

typedef enum { V_POISON, V_TENSOR, V_INT, V_FLOAT, V_STR, V_BOOL, V_LIST } vkind;

typedef struct value {
	vkind k;
	int node;                   /* V_TENSOR */
	int64_t i; double f; const char *s; bool b;
	struct value *items; int nitems;
	src_loc loc;
	bool literal;               /* a number written in the source */
} value;

typedef struct binding {
	const char *name;
	value v;
	src_loc loc;
	bool is_dim;                /* a symbolic dimension, v.i = c, v.b = sym */
	const char *from;           /* is_dim: what bound it ("argument 'x'"), for messages */
} binding;

/* where the calls of one statement get their instance paths */
typedef struct pathslot { const ast_expr *call; int number; } pathslot;

typedef struct frame {
	const ast_def *def;         /* NULL at train-block level */
	const char *path;           /* instance path of this def instance */
	binding *vars; int nvars, cap;
	const char *stmt;           /* name of the statement being lowered */
	pathslot *slots; int nslots;
	int depth;
} frame;

typedef struct lctx {
	arena *a;
	const ast_file *f;
	ir_module *m;
	ir_program *p;
	ir_graph *g;
	bool eval_mode;
	ir_dataset **dsets;         /* parallel to f->datasets, probed lazily */
	bool *dset_done;
	ptrvec params, states;      /* ir_tensor* while building */
	const char *cur_path;       /* path of the statement being lowered: every
	                               node it creates carries it (dumps, verify) */
	bool *bad_sig;              /* parallel to f->defs: signature already reported */
	int expr_depth;             /* lower_expr calls in progress, through def calls */
	int64_t ninstances;         /* def instances lowered so far, every graph */
	bool too_many;              /* LOWER_MAX_INSTANCES reported */
} lctx;

/* Each call of a def is an instance of its own (its code, and in a def its
 * parameters), so defs that call another twice, 25 deep, make 2^25 of
 * them: the compiler would run for days.  No real model comes near. */
enum { LOWER_MAX_INSTANCES = 10000 };

static const value poison = { .k = V_POISON };

/* ------------------------------------------------------------ helpers */

static bool is_random_builtin(const char *name)
{
	return !strcmp(name, "dropout") || !strcmp(name, "random_crop") ||
	       !strcmp(name, "random_flip");
}

static bool is_param_builtin(const char *name)
{
	return !strcmp(name, "batchnorm") || !strcmp(name, "layernorm") ||
	       !strcmp(name, "embedding");
}

static const ast_def *find_def(const lctx *c, const char *name)
{
	for (int i = 0; i < c->f->ndefs; i++)
		if (!strcmp(c->f->defs[i]->name, name))
			return c->f->defs[i];
	return NULL;
}

static binding *lookup(frame *fr, const char *name)
{
	for (int i = fr->nvars - 1; i >= 0; i--)
		if (!strcmp(fr->vars[i].name, name))
			return &fr->vars[i];
	return NULL;
}

static binding *bind(lctx *c, frame *fr, const char *name, value v, src_loc loc)
{
	if (fr->nvars == fr->cap) {
		int cap = fr->cap ? fr->cap * 2 : 16;
		binding *nb = arena_alloc(c->a, (size_t)cap * sizeof *nb);
		if (fr->nvars)
			memcpy(nb, fr->vars, (size_t)fr->nvars * sizeof *nb);
		fr->vars = nb;
		fr->cap = cap;
	}
	binding *b = &fr->vars[fr->nvars++];
	memset(b, 0, sizeof *b);
	b->name = name;
	b->v = v;
	b->loc = loc;
	return b;
}

static const char *vkind_name(vkind k)
{
	static const char *n[] = { "an invalid value", "a tensor", "an int", "a float",
		"a string", "a bool", "a list" };
	return n[k];
}

static const ir_type *vtype(lctx *c, value v)
{
	return &c->g->nodes[v.node]->type;
}

/* Appends a node after running its shape rule; reuses an identical
 * earlier node (common subexpression) unless the op is random, a leaf or
 * an update, so that a metric and the loss share one forward pass. */
static int emit(lctx *c, ir_opcode op, int nin, const int *in, const ir_type *preset,
                const int64_t *ia, const float *fa, src_loc loc, const char *path)
{
	ir_graph *g = c->g;
	ir_node tmp;
	char err[512];
	if (shape_prepare(g, &tmp, op, nin, in, preset, ia, fa, err, sizeof err)) {
		diag_error(loc, "%s", err);
		return -1;
	}
	int fl = ir_ops[op].flags;
	if (!(fl & (IR_F_RANDOM | IR_F_UPDATE))) {
		for (int i = g->nnodes - 1; i >= 0; i--) {
			ir_node *n = g->nodes[i];
			if (n->op == op && n->nin == nin && !memcmp(n->in, tmp.in, sizeof tmp.in) &&
			    !memcmp(n->ia, tmp.ia, sizeof tmp.ia) && !memcmp(n->fa, tmp.fa, sizeof tmp.fa) &&
			    ir_type_eq(&n->type, &tmp.type))
				return i;
		}
	}
	return shape_commit(c->a, g, &tmp, loc, path ? path : c->cur_path)->id;
}

static value tensor(int node, src_loc loc)
{
	value v = { .k = node < 0 ? V_POISON : V_TENSOR, .node = node, .loc = loc };
	return v;
}

static value op1(lctx *c, ir_opcode op, value x, src_loc loc)
{
	if (x.k != V_TENSOR)
		return poison;
	return tensor(emit(c, op, 1, &x.node, NULL, NULL, NULL, loc, NULL), loc);
}

static int const_node(lctx *c, float v, src_loc loc)
{
	ir_type t = ir_scalar(IR_F32);
	float fa[4] = { v, 0, 0, 0 };
	return emit(c, IR_CONST, 0, NULL, &t, NULL, fa, loc, NULL);
}

/* A number where a tensor is expected becomes an f32[] constant. */
static value as_tensor(lctx *c, value v, const char *what, src_loc loc)
{
	switch (v.k) {
	case V_TENSOR: case V_POISON: return v;
	case V_INT: return tensor(const_node(c, (float)v.i, v.loc), v.loc);
	case V_FLOAT: return tensor(const_node(c, (float)v.f, v.loc), v.loc);
	default:
		diag_error(v.loc.line ? v.loc : loc, "%s: expected a tensor, found %s", what, vkind_name(v.k));
		return poison;
	}
}

static value op2(lctx *c, ir_opcode op, value a, value b, src_loc loc)
{
	a = as_tensor(c, a, ir_ops[op].name, loc);
	b = as_tensor(c, b, ir_ops[op].name, loc);
	if (a.k != V_TENSOR || b.k != V_TENSOR)
		return poison;
	int in[2] = { a.node, b.node };
	return tensor(emit(c, op, 2, in, NULL, NULL, NULL, loc, NULL), loc);
}

/* ------------------------------------------------- call argument checks */

typedef struct argspec {
	int npos_min, npos_max;
	const char *const *keys;    /* allowed named args, NULL-terminated */
} argspec;

/* Checks a builtin call's arity and named args.  Returns false (after
 * reporting) if the call is malformed. */
static bool check_args(const ast_expr *call, const argspec *s)
{
	bool ok = true;
	if (call->nitems < s->npos_min || call->nitems > s->npos_max) {
		if (s->npos_min == s->npos_max)
			diag_error(call->loc, "%s takes %d positional argument%s, found %d", call->name,
			           s->npos_min, s->npos_min == 1 ? "" : "s", call->nitems);
		else
			diag_error(call->loc, "%s takes %d to %d positional arguments, found %d", call->name,
			           s->npos_min, s->npos_max, call->nitems);
		ok = false;
	}
	for (int i = 0; i < call->nnamed; i++) {
		bool known = false;
		for (int k = 0; s->keys && s->keys[k]; k++)
			if (!strcmp(s->keys[k], call->named[i].key))
				known = true;
		if (!known) {
			diag_error(call->named[i].loc, "%s has no attribute '%s'", call->name, call->named[i].key);
			ok = false;
		}
		for (int j = 0; j < i; j++)
			if (!strcmp(call->named[j].key, call->named[i].key)) {
				diag_error(call->named[i].loc, "attribute '%s' given twice", call->named[i].key);
				ok = false;
			}
	}
	return ok;
}

static const ast_named *named(const ast_expr *call, const char *key)
{
	for (int i = 0; i < call->nnamed; i++)
		if (!strcmp(call->named[i].key, key))
			return &call->named[i];
	return NULL;
}

/* Constant attribute values: literals, or names bound to attributes. */
static value lower_expr(lctx *c, frame *fr, const ast_expr *e);

static bool attr_num(lctx *c, frame *fr, const ast_expr *call, const char *key, double dflt,
                     bool required, double *out)
{
	const ast_named *nd = named(call, key);
	if (!nd) {
		if (required) {
			diag_error(call->loc, "%s needs the attribute '%s'", call->name, key);
			return false;
		}
		*out = dflt;
		return true;
	}
	value v = lower_expr(c, fr, nd->value);
	if (v.k == V_INT) { *out = (double)v.i; return true; }
	if (v.k == V_FLOAT) { *out = v.f; return true; }
	if (v.k != V_POISON)
		diag_error(nd->value->loc, "%s: attribute '%s' must be a number, found %s", call->name,
		           key, vkind_name(v.k));
	return false;
}

static bool attr_int(lctx *c, frame *fr, const ast_expr *call, const char *key, int64_t dflt,
                     bool required, int64_t *out)
{
	const ast_named *nd = named(call, key);
	if (!nd) {
		if (required) {
			diag_error(call->loc, "%s needs the attribute '%s'", call->name, key);
			return false;
		}
		*out = dflt;
		return true;
	}
	value v = lower_expr(c, fr, nd->value);
	if (v.k == V_INT) { *out = v.i; return true; }
	if (v.k != V_POISON)
		diag_error(nd->value->loc, "%s: attribute '%s' must be an integer, found %s", call->name,
		           key, vkind_name(v.k));
	return false;
}

static bool attr_bool(lctx *c, frame *fr, const ast_expr *call, const char *key, bool dflt, bool *out)
{
	const ast_named *nd = named(call, key);
	if (!nd) {
		*out = dflt;
		return true;
	}
	value v = lower_expr(c, fr, nd->value);
	if (v.k == V_BOOL) { *out = v.b; return true; }
	if (v.k != V_POISON)
		diag_error(nd->value->loc, "%s: attribute '%s' must be true or false, found %s",
		           call->name, key, vkind_name(v.k));
	return false;
}

/* Normalises an axis attribute (negative counts from the end). */
static bool axis_of(const ast_expr *call, int64_t ax, int rank, int64_t *out)
{
	if (ax < -rank || ax >= rank) {
		diag_error(call->loc, "%s: axis %" PRId64 " out of range for a tensor of rank %d",
		           call->name, ax, rank);
		return false;
	}
	*out = ax < 0 ? ax + rank : ax;
	return true;
}

/* ----------------------------------------------------- instance paths */

static void collect_slots(lctx *c, frame *fr, const ast_expr *e, ptrvec *out)
{
	if (!e)
		return;
	if (e->kind == AST_CALL && (find_def(c, e->name) || is_random_builtin(e->name) ||
	                            is_param_builtin(e->name)))
		ptrvec_push(c->a, out, (void *)e);
	collect_slots(c, fr, e->lhs, out);
	collect_slots(c, fr, e->rhs, out);
	for (int i = 0; i < e->nitems; i++)
		collect_slots(c, fr, e->items[i], out);
	for (int i = 0; i < e->nnamed; i++)
		collect_slots(c, fr, e->named[i].value, out);
}

/* Numbers the path-owning calls of a statement in source order (a
 * pre-order walk visits a call before its arguments, and a left operand
 * before a right one, which is source order). */
static void begin_statement(lctx *c, frame *fr, const char *stmt, const ast_expr *e)
{
	ptrvec v = { 0 };
	collect_slots(c, fr, e, &v);
	fr->stmt = stmt;
	c->cur_path = fr->path ? arena_printf(c->a, "%s.%s", fr->path, stmt) : stmt;
	fr->nslots = v.n;
	fr->slots = arena_alloc(c->a, (size_t)(v.n + 1) * sizeof *fr->slots);
	for (int i = 0; i < v.n; i++) {
		fr->slots[i].call = v.v[i];
		fr->slots[i].number = i + 1;
	}
}

static const char *path_for(lctx *c, frame *fr, const ast_expr *call)
{
	int num = 1;
	for (int i = 0; i < fr->nslots; i++)
		if (fr->slots[i].call == call)
			num = fr->slots[i].number;
	const char *base = fr->path ? arena_printf(c->a, "%s.%s", fr->path, fr->stmt) : fr->stmt;
	return num == 1 ? base : arena_printf(c->a, "%s#%d", base, num);
}

/* ---------------------------------------------------------------- types */

/* Evaluates a written type in a def frame: symbols resolve to bound
 * dimensions or int arguments.  With `bind_new`, unknown symbols are left
 * as sym = -1 for the caller to bind. */
static bool eval_type(lctx *c, frame *fr, const ast_type *at, ir_type *out, const char *what)
{
	(void)c;
	memset(out, 0, sizeof *out);
	if (!at->is_tensor) {
		diag_error(at->loc, "%s: expected a tensor type like f32[N, 10], found '%s'", what, at->base);
		return false;
	}
	if (!strcmp(at->base, "f32")) out->dt = IR_F32;
	else if (!strcmp(at->base, "i32")) out->dt = IR_I32;
	else if (!strcmp(at->base, "u8")) out->dt = IR_U8;
	else {
		diag_error(at->loc, "unknown element type '%s' (expected f32, i32 or u8)", at->base);
		return false;
	}
	if (at->rank > IR_MAX_RANK) {
		diag_error(at->loc, "%s: rank %d exceeds the maximum of %d", what, at->rank, IR_MAX_RANK);
		return false;
	}
	out->rank = at->rank;
	bool ok = true;
	for (int i = 0; i < at->rank; i++) {
		const ast_dim *d = &at->dims[i];
		if (!d->sym) {
			if (d->val <= 0) {
				diag_error(d->loc, "%s: dimension %" PRId64 " must be positive", what, d->val);
				ok = false;
			}
			out->d[i] = (ir_dim){ d->val, 0 };
			continue;
		}
		binding *b = lookup(fr, d->sym);
		if (b && b->is_dim)
			out->d[i] = (ir_dim){ b->v.i, b->v.b };
		else if (b && b->v.k == V_INT) {
			if (b->v.i <= 0) {
				diag_error(d->loc, "%s: dimension '%s' = %" PRId64 " must be positive", what,
				           d->sym, b->v.i);
				ok = false;
			}
			out->d[i] = (ir_dim){ b->v.i, 0 };
		} else if (b) {
			if (b->v.k != V_POISON)     /* else its own error was reported */
				diag_error(d->loc, "dimension '%s' in %s names %s, not a dimension or an int "
				           "argument", d->sym, what, vkind_name(b->v.k));
			ok = false;
		} else {
			diag_error(d->loc, "unknown dimension '%s' in %s", d->sym, what);
			ok = false;
		}
	}
	return ok;
}

/* Unifies a def argument's written type with the actual tensor, binding
 * new symbolic dimensions (`origin` says what bound them: "argument 'x'").
 * Reports a mismatch naming both shapes, the expected one with the
 * symbols bound so far substituted and their bindings explained. */
static bool unify(lctx *c, frame *fr, const ast_type *at, const ir_type *actual,
                  src_loc where, const char *what, const char *origin)
{
	char ab[128];
	if (!at->is_tensor) {
		diag_error(where, "%s: expected %s, found a tensor %s", what, at->base,
		           ir_type_str(actual, ab, sizeof ab));
		return false;
	}
	const char *want = at->base;
	if (strcmp(want, ir_dtype_name(actual->dt)) || at->rank != actual->rank)
		goto mismatch;
	for (int i = 0; i < at->rank; i++) {
		const ast_dim *d = &at->dims[i];
		ir_dim ad = actual->d[i];
		if (!d->sym) {
			if (ad.sym || ad.c != d->val)
				goto mismatch;
			continue;
		}
		binding *b = lookup(fr, d->sym);
		if (b && b->is_dim) {
			if (b->v.i != ad.c || (int)b->v.b != ad.sym)
				goto mismatch;
		} else if (b && b->v.k == V_INT) {
			if (ad.sym || ad.c != b->v.i)
				goto mismatch;
		} else if (b) {
			goto mismatch;
		} else {
			value dv = { .k = V_INT, .i = ad.c, .b = ad.sym != 0 };
			binding *nb = bind(c, fr, d->sym, dv, d->loc);
			nb->is_dim = true;
			nb->from = origin;
		}
	}
	return true;
mismatch:;
	/* the written type with the values of the symbols bound so far, and
	 * where each value came from where it differs from the symbol's name */
	char wb[256], nb[512] = "";
	size_t len = (size_t)snprintf(wb, sizeof wb, "%s[", at->base), nlen = 0;
	for (int i = 0; i < at->rank && len < sizeof wb; i++) {
		const ast_dim *d = &at->dims[i];
		char v[48];
		if (!d->sym) {
			snprintf(v, sizeof v, "%" PRId64, d->val);
		} else {
			binding *b = lookup(fr, d->sym);
			bool seen = false;
			for (int j = 0; j < i; j++)
				seen = seen || (at->dims[j].sym && !strcmp(at->dims[j].sym, d->sym));
			if (b && b->is_dim)
				ir_dim_str((ir_dim){ b->v.i, b->v.b }, v, sizeof v);
			else if (b && b->v.k == V_INT)
				snprintf(v, sizeof v, "%" PRId64, b->v.i);
			else
				snprintf(v, sizeof v, "%s", d->sym);
			if (!seen && strcmp(v, d->sym) && nlen < sizeof nb)
				nlen += (size_t)snprintf(nb + nlen, sizeof nb - nlen, "%s%s = %s%s%s",
				                         nlen ? ", " : " (", d->sym, v,
				                         b && b->is_dim && b->from ? " from " : "",
				                         b && b->is_dim && b->from ? b->from : "");
		}
		len += (size_t)snprintf(wb + len, sizeof wb - len, "%s%s", i ? ", " : "", v);
	}
	if (len < sizeof wb)
		snprintf(wb + len, sizeof wb - len, "]");
	if (nlen && nlen < sizeof nb)
		snprintf(nb + nlen, sizeof nb - nlen, ")");
	diag_error(where, "%s: expected %s%s, found %s", what, wb, nb, ir_type_str(actual, ab, sizeof ab));
	return false;
}

/* ------------------------------------------------- params and state */

static ir_tensor *find_tensor(ptrvec *v, const char *path, int *index)
{
	for (int i = 0; i < v->n; i++) {
		ir_tensor *t = v->v[i];
		if (!strcmp(t->path, path)) {
			*index = i;
			return t;
		}
	}
	return NULL;
}

/* fan-in/fan-out conventions (documented in docs/language.md): a matrix
 * [in, out] as used by x @ w; a conv kernel [out, in, kh, kw]; a vector
 * has fan_in = fan_out = its length. */
static void fans(const ir_type *t, int64_t *fi, int64_t *fo)
{
	if (t->rank == 0) { *fi = *fo = 1; return; }
	if (t->rank == 1) { *fi = *fo = t->d[0].c; return; }
	if (t->rank == 2) { *fi = t->d[0].c; *fo = t->d[1].c; return; }
	int64_t rf = 1;
	for (int i = 2; i < t->rank; i++)
		rf *= t->d[i].c;
	*fi = t->d[1].c * rf;
	*fo = t->d[0].c * rf;
}

static const struct { const char *name; ir_init_kind kind; } inits[] = {
	{ "zeros", IR_INIT_ZEROS }, { "ones", IR_INIT_ONES }, { "constant", IR_INIT_CONSTANT },
	{ "uniform", IR_INIT_UNIFORM }, { "normal", IR_INIT_NORMAL },
	{ "xavier_uniform", IR_INIT_XAVIER_UNIFORM }, { "kaiming_uniform", IR_INIT_KAIMING_UNIFORM },
	{ "kaiming_normal", IR_INIT_KAIMING_NORMAL },
};

static int init_index(const char *name)
{
	for (size_t i = 0; i < sizeof inits / sizeof inits[0]; i++)
		if (!strcmp(inits[i].name, name))
			return (int)i;
	return -1;
}

bool lower_is_initializer(const char *name) { return init_index(name) >= 0; }

static bool lower_init(lctx *c, frame *fr, const ast_expr *e, ir_tensor *t)
{
	static const char *const no_keys[] = { NULL };
	static const char *const k_const[] = { "value", NULL };
	static const char *const k_unif[] = { "low", "high", NULL };
	static const char *const k_norm[] = { "mean", "std", NULL };
	if (e->kind != AST_CALL) {
		diag_error(e->loc, "expected an initializer call like zeros() or kaiming_uniform()");
		return false;
	}
	const char *n = e->name;
	argspec s = { 0, 0, no_keys };
	int k = init_index(n);
	if (k >= 0) {
		t->init = inits[k].kind;
		s.keys = inits[k].kind == IR_INIT_CONSTANT ? k_const : inits[k].kind == IR_INIT_UNIFORM ? k_unif
		       : inits[k].kind == IR_INIT_NORMAL ? k_norm : no_keys;
	} else {
		diag_error(e->loc, "unknown initializer '%s' (expected zeros, ones, constant, uniform, "
		           "normal, xavier_uniform, kaiming_uniform or kaiming_normal)", n);
		return false;
	}
	if (!check_args(e, &s))
		return false;
	bool ok = true;
	switch (t->init) {
	case IR_INIT_CONSTANT: ok = attr_num(c, fr, e, "value", 0, true, &t->a); break;
	case IR_INIT_UNIFORM:
		ok = attr_num(c, fr, e, "low", -1, false, &t->a) & attr_num(c, fr, e, "high", 1, false, &t->b);
		if (ok && !(t->a < t->b)) {
			diag_error(e->loc, "uniform: low (%g) must be less than high (%g)", t->a, t->b);
			ok = false;
		}
		break;
	case IR_INIT_NORMAL:
		ok = attr_num(c, fr, e, "mean", 0, false, &t->a) & attr_num(c, fr, e, "std", 1, false, &t->b);
		if (ok && !(t->b >= 0)) {
			diag_error(e->loc, "normal: std (%g) must not be negative", t->b);
			ok = false;
		}
		break;
	default: break;
	}
	return ok;
}

/* Declares (or, for a shared instance met again, finds) a param or state
 * tensor and returns its leaf node in the current graph. */
static value declare_tensor(lctx *c, frame *fr, const ast_stmt *s, bool is_param)
{
	ir_type t;
	const char *kind = is_param ? "param" : "state";
	char what[256];
	snprintf(what, sizeof what, "the type of %s '%s'", kind, s->name);
	if (!eval_type(c, fr, s->type, &t, what))
		return poison;
	/* the optimizer, the initializers and checkpoints work on f32 only:
	 * an i32 or u8 leaf would be filled with f32 bits and read as integers */
	if (t.dt != IR_F32) {
		diag_error(s->type->loc, "%s '%s' is %s: parameters and state must be f32", kind, s->name,
		           ir_dtype_name(t.dt));
		return poison;
	}
	for (int i = 0; i < t.rank; i++)
		if (t.d[i].sym) {
			diag_error(s->type->dims[i].loc, "%s '%s': dimension %d follows the batch size; "
			           "parameters and state need fixed dimensions", kind, s->name, i);
			return poison;
		}
	char err[512];
	if (shape_check_size(&t, 1, err, sizeof err)) {
		/* before fans(), whose products assume a representable size */
		diag_error(s->type->loc, "%s '%s': %s", kind, s->name, err);
		return poison;
	}
	const char *path = fr->path ? arena_printf(c->a, "%s.%s", fr->path, s->name) : s->name;
	ptrvec *vec = is_param ? &c->params : &c->states;
	int idx;
	ir_tensor *old = find_tensor(vec, path, &idx);
	if (old) {
		if (!ir_type_eq(&old->type, &t)) {
			char a[128], b[128];
			diag_error(s->name_loc, "%s '%s' of the shared instance is %s here but %s at its "
			           "first use", kind, path, ir_type_str(&t, b, sizeof b),
			           ir_type_str(&old->type, a, sizeof a));
			return poison;
		}
	} else {
		ir_tensor *nt = arena_alloc(c->a, sizeof *nt);
		nt->path = path;
		nt->type = t;
		nt->loc = s->name_loc;
		nt->stream = -1;
		fans(&t, &nt->fan_in, &nt->fan_out);
		if (!lower_init(c, fr, s->expr, nt))
			return poison;
		idx = vec->n;
		ptrvec_push(c->a, vec, nt);
	}
	int64_t ia[4] = { idx, 0, 0, 0 };
	int n = emit(c, is_param ? IR_PARAM : IR_STATE, 0, NULL, &t, ia, NULL, s->name_loc, path);
	return tensor(n, s->name_loc);
}

/* -------------------------------------------------------- def calls */

static value call_def_body(lctx *c, frame *fr, const ast_def *d, const ast_expr *e);

static value call_def(lctx *c, frame *fr, const ast_def *d, const ast_expr *e)
{
	const char *saved = c->cur_path;
	value v = call_def_body(c, fr, d, e);
	c->cur_path = saved;
	return v;
}

static value call_def_body(lctx *c, frame *fr, const ast_def *d, const ast_expr *e)
{
	for (int i = 0; i < c->f->ndefs; i++)
		if (c->f->defs[i] == d && c->bad_sig[i])
			return poison;      /* check_signature reported it; unify would
			                       only add confusing messages at each call */
	if (fr->depth > 32) {
		diag_error(e->loc, "calls nest too deeply (recursive call of def '%s'?)", d->name);
		return poison;
	}
	if (++c->ninstances > LOWER_MAX_INSTANCES) {
		if (!c->too_many)
			diag_error(e->loc, "more than %d def instances in all (this call of '%s' is one more): "
			           "defs that call others several times multiply", LOWER_MAX_INSTANCES, d->name);
		c->too_many = true;
		return poison;
	}
	frame nf;
	memset(&nf, 0, sizeof nf);
	nf.def = d;
	nf.depth = fr->depth + 1;
	/* in a train block every call of a def is the one shared instance */
	nf.path = fr->def ? path_for(c, fr, e) : d->name;

	/* evaluate the arguments in the caller's frame */
	value *args = arena_alloc(c->a, (size_t)(d->nargs + 1) * sizeof *args);
	src_loc *aloc = arena_alloc(c->a, (size_t)(d->nargs + 1) * sizeof *aloc);
	bool *given = arena_alloc(c->a, (size_t)(d->nargs + 1));
	bool ok = true;
	if (e->nitems > d->nargs) {
		diag_error(e->items[d->nargs]->loc, "%s takes %d argument%s, found %d", d->name,
		           d->nargs, d->nargs == 1 ? "" : "s", e->nitems);
		ok = false;
	}
	for (int i = 0; i < e->nitems && i < d->nargs; i++) {
		args[i] = lower_expr(c, fr, e->items[i]);
		aloc[i] = e->items[i]->loc;
		given[i] = true;
	}
	for (int i = 0; i < e->nnamed; i++) {
		int k = -1;
		for (int j = 0; j < d->nargs; j++)
			if (!strcmp(d->args[j].name, e->named[i].key))
				k = j;
		if (k < 0) {
			diag_error(e->named[i].loc, "%s has no argument '%s'", d->name, e->named[i].key);
			ok = false;
			continue;
		}
		if (given[k]) {
			diag_error(e->named[i].loc, "argument '%s' of %s given twice", e->named[i].key, d->name);
			ok = false;
			continue;
		}
		args[k] = lower_expr(c, fr, e->named[i].value);
		aloc[k] = e->named[i].value->loc;
		given[k] = true;
	}
	for (int j = 0; j < d->nargs; j++)
		if (!given[j]) {
			diag_error(e->loc, "missing argument '%s' of %s", d->args[j].name, d->name);
			ok = false;
		}
	if (!ok)
		return poison;

	/* attribute arguments first: tensor types may name them */
	bool attr_poison = false;
	for (int j = 0; j < d->nargs; j++) {
		const ast_arg *a = &d->args[j];
		value v = args[j];
		if (a->type->is_tensor)
			continue;
		if (v.k == V_POISON) {
			/* reported; the body and the tensor types would miss the name */
			attr_poison = true;
			continue;
		}
		const char *b = a->type->base;
		bool fits = (!strcmp(b, "int") && v.k == V_INT) ||
		            (!strcmp(b, "float") && (v.k == V_FLOAT || v.k == V_INT)) ||
		            (!strcmp(b, "str") && v.k == V_STR) || (!strcmp(b, "bool") && v.k == V_BOOL);
		if (strcmp(b, "int") && strcmp(b, "float") && strcmp(b, "str") && strcmp(b, "bool")) {
			diag_error(a->type->loc, "unknown argument type '%s' (expected a tensor type or int, "
			           "float, str, bool)", b);
			return poison;
		}
		if (!fits) {
			diag_error(aloc[j], "argument '%s' of %s: expected %s, found %s", a->name, d->name, b,
			           vkind_name(v.k));
			ok = false;
			continue;
		}
		if (!strcmp(b, "float") && v.k == V_INT) {
			v.k = V_FLOAT;
			v.f = (double)v.i;
		}
		bind(c, &nf, a->name, v, a->loc);
	}
	if (attr_poison)
		return poison;
	for (int j = 0; j < d->nargs; j++) {
		const ast_arg *a = &d->args[j];
		value v = args[j];
		if (!a->type->is_tensor)
			continue;
		if (v.k == V_POISON) {
			ok = false;
			continue;
		}
		if (v.k != V_TENSOR) {
			diag_error(aloc[j], "argument '%s' of %s: expected a tensor, found %s", a->name,
			           d->name, vkind_name(v.k));
			ok = false;
			continue;
		}
		char what[256];
		snprintf(what, sizeof what, "argument '%s' of %s", a->name, d->name);
		if (!unify(c, &nf, a->type, vtype(c, v), aloc[j], what,
		           arena_printf(c->a, "argument '%s'", a->name)))
			ok = false;
		bind(c, &nf, a->name, v, a->loc);
	}
	if (!ok)
		return poison;

	value ret = poison;
	bool returned = false;
	for (int i = 0; i < d->nstmts; i++) {
		const ast_stmt *s = d->stmts[i];
		if (returned) {
			diag_error(s->loc, "statement after return in def '%s'", d->name);
			break;
		}
		const char *sname = s->kind == AST_RETURN ? "return" : s->name;
		if (s->kind != AST_RETURN) {
			binding *old = lookup(&nf, s->name);
			if (old) {
				diag_error(s->name_loc, "name '%s' is bound twice in def '%s'", s->name, d->name);
				if (old->loc.line)
					diag_note(old->loc, "'%s' was first bound here", s->name);
				continue;
			}
		}
		begin_statement(c, &nf, sname, s->expr);
		value v;
		switch (s->kind) {
		case AST_PARAM: v = declare_tensor(c, &nf, s, true); break;
		case AST_STATE: v = declare_tensor(c, &nf, s, false); break;
		case AST_ASSIGN: v = lower_expr(c, &nf, s->expr); break;
		case AST_RETURN:
		default:
			ret = lower_expr(c, &nf, s->expr);
			returned = true;
			continue;
		}
		bind(c, &nf, s->name, v, s->name_loc);
	}
	if (!returned) {
		diag_error(d->loc, "def '%s' has no return statement", d->name);
		return poison;
	}
	if (ret.k == V_POISON)
		return poison;
	if (ret.k != V_TENSOR) {
		diag_error(d->loc, "def '%s' must return a tensor, returns %s", d->name, vkind_name(ret.k));
		return poison;
	}
	if (d->ret) {
		char what[256];
		snprintf(what, sizeof what, "the result of %s", d->name);
		if (!unify(c, &nf, d->ret, vtype(c, ret), e->loc, what, "the result"))
			return poison;
	}
	return tensor(ret.node, e->loc);
}

/* ------------------------------------------------------------ builtins */

typedef value builtin_fn(lctx *c, frame *fr, const ast_expr *e, value *pos);

static value b_unary(lctx *c, const ast_expr *e, value *pos, ir_opcode op)
{
	value x = as_tensor(c, pos[0], e->name, e->loc);
	return op1(c, op, x, e->loc);
}
#define UNARY(fn, OPC) \
	static value fn(lctx *c, frame *fr, const ast_expr *e, value *pos) \
	{ (void)fr; return b_unary(c, e, pos, OPC); }
UNARY(b_exp, IR_EXP)
UNARY(b_log, IR_LOG)
UNARY(b_sqrt, IR_SQRT)
UNARY(b_tanh, IR_TANH)
UNARY(b_sigmoid, IR_SIGMOID)
UNARY(b_relu, IR_RELU)
UNARY(b_gelu, IR_GELU)
UNARY(b_neg, IR_NEG)

#define BINARY(fn, OPC) \
	static value fn(lctx *c, frame *fr, const ast_expr *e, value *pos) \
	{ (void)fr; return op2(c, OPC, pos[0], pos[1], e->loc); }
BINARY(b_add, IR_ADD)
BINARY(b_sub, IR_SUB)
BINARY(b_mul, IR_MUL)
BINARY(b_div, IR_DIV)
BINARY(b_pow, IR_POW)
BINARY(b_maximum, IR_MAXIMUM)
BINARY(b_minimum, IR_MINIMUM)

static value b_matmul(lctx *c, frame *fr, const ast_expr *e, value *pos)
{
	(void)fr;
	value a = as_tensor(c, pos[0], "matmul", e->loc), b = as_tensor(c, pos[1], "matmul", e->loc);
	if (a.k != V_TENSOR || b.k != V_TENSOR)
		return poison;
	if (vtype(c, a)->dt == IR_F32 && vtype(c, b)->dt == IR_F32 &&
	    (vtype(c, a)->rank != 2 || vtype(c, b)->rank != 2)) {
		/* the IR's matmul is batched too; the language's takes matrices
		 * (other dtypes: the shape rule's message) */
		char x[128], y[128];
		diag_error(e->loc, "matmul needs two matrices, found %s and %s", ir_type_str(vtype(c, a), x, sizeof x),
		           ir_type_str(vtype(c, b), y, sizeof y));
		return poison;
	}
	int in[2] = { a.node, b.node };
	return tensor(emit(c, IR_MATMUL, 2, in, NULL, NULL, NULL, e->loc, NULL), e->loc);
}

static value b_where(lctx *c, frame *fr, const ast_expr *e, value *pos)
{
	(void)fr;
	value k = as_tensor(c, pos[0], "where", e->loc), a = as_tensor(c, pos[1], "where", e->loc),
	      b = as_tensor(c, pos[2], "where", e->loc);
	if (k.k != V_TENSOR || a.k != V_TENSOR || b.k != V_TENSOR)
		return poison;
	int in[3] = { k.node, a.node, b.node };
	return tensor(emit(c, IR_WHERE, 3, in, NULL, NULL, NULL, e->loc, NULL), e->loc);
}

static value cast(lctx *c, const ast_expr *e, value *pos, ir_dtype dt)
{
	value x = as_tensor(c, pos[0], e->name, e->loc);
	if (x.k != V_TENSOR)
		return poison;
	if (vtype(c, x)->dt == dt)
		return x;
	ir_type t = *vtype(c, x);
	t.dt = dt;
	return tensor(emit(c, IR_CAST, 1, &x.node, &t, NULL, NULL, e->loc, NULL), e->loc);
}
static value b_f32(lctx *c, frame *fr, const ast_expr *e, value *pos) { (void)fr; return cast(c, e, pos, IR_F32); }
static value b_i32(lctx *c, frame *fr, const ast_expr *e, value *pos) { (void)fr; return cast(c, e, pos, IR_I32); }

/* reshape(x, [d, ...]) with at most one -1; list entries may be ints or
 * names bound to dimensions. */
static value b_reshape(lctx *c, frame *fr, const ast_expr *e, value *pos)
{
	value x = as_tensor(c, pos[0], "reshape", e->loc);
	value l = pos[1];
	if (x.k != V_TENSOR || l.k == V_POISON)
		return poison;
	if (l.k != V_LIST) {
		diag_error(e->items[1]->loc, "reshape: expected a list of dimensions like [-1, 784], "
		           "found %s", vkind_name(l.k));
		return poison;
	}
	if (l.nitems > IR_MAX_RANK || l.nitems == 0) {
		diag_error(e->items[1]->loc, "reshape: %d dimensions (expected 1 to %d)", l.nitems, IR_MAX_RANK);
		return poison;
	}
	const ir_type *xt = vtype(c, x);
	ir_type t = *xt;
	t.rank = l.nitems;
	int hole = -1;
	ir_dim known = { 1, 0 };
	for (int i = 0; i < l.nitems; i++) {
		value d = l.items[i];
		const ast_expr *de = e->items[1]->items[i];
		if (d.k == V_INT && d.i == -1 && !d.b) {
			if (hole >= 0) {
				diag_error(de->loc, "reshape: -1 may appear only once");
				return poison;
			}
			hole = i;
			continue;
		}
		if (d.k == V_INT && (d.i > 0 || d.b)) {
			t.d[i] = (ir_dim){ d.i, d.b ? 1 : 0 };
			if (__builtin_mul_overflow(known.c, d.i, &known.c)) {
				/* the shape rule's size limit names the shape; keep
				 * the -1 inference below from dividing by a wrapped value */
				known.c = INT64_MAX;
			}
			known.sym += d.b ? 1 : 0;
			continue;
		}
		diag_error(de->loc, "reshape: dimension must be a positive integer or -1");
		return poison;
	}
	ir_dim total = ir_type_numel(xt);
	if (hole >= 0) {
		if (known.c == 0 || total.c % known.c || total.sym < known.sym) {
			char b[128];
			diag_error(e->loc, "reshape: cannot infer -1: %s does not split into the given dimensions",
			           ir_type_str(xt, b, sizeof b));
			return poison;
		}
		t.d[hole] = (ir_dim){ total.c / known.c, total.sym - known.sym };
	}
	(void)fr;
	return tensor(emit(c, IR_RESHAPE, 1, &x.node, &t, NULL, NULL, e->loc, NULL), e->loc);
}

static value b_flatten(lctx *c, frame *fr, const ast_expr *e, value *pos)
{
	(void)fr;
	value x = as_tensor(c, pos[0], "flatten", e->loc);
	if (x.k != V_TENSOR)
		return poison;
	const ir_type *xt = vtype(c, x);
	if (xt->rank < 1) {
		diag_error(e->loc, "flatten needs a tensor of rank >= 1");
		return poison;
	}
	ir_type t = *xt;
	t.rank = 2;
	ir_dim rest = { 1, 0 };
	for (int i = 1; i < xt->rank; i++) {
		rest.c *= xt->d[i].c;
		rest.sym += xt->d[i].sym;
	}
	t.d[1] = rest;
	return tensor(emit(c, IR_RESHAPE, 1, &x.node, &t, NULL, NULL, e->loc, NULL), e->loc);
}

/* transpose(x): the last two axes swapped; transpose(x, dim0 =, dim1 =):
 * two axes swapped (defaults rank-2 and rank-1); transpose(x, perm = [..]):
 * output axis d is x's axis perm[d] (a permutation of 0..rank-1, negative
 * entries count from the end).  One TRANSPOSE node, or none when the
 * permutation is the identity. */
static value b_transpose(lctx *c, frame *fr, const ast_expr *e, value *pos)
{
	value x = as_tensor(c, pos[0], "transpose", e->loc);
	if (x.k != V_TENSOR)
		return poison;
	const ir_type *xt = vtype(c, x);
	int rank = xt->rank, perm[IR_MAX_RANK];
	const ast_named *pn = named(e, "perm");
	if (pn) {
		const ast_named *dn = named(e, "dim0") ? named(e, "dim0") : named(e, "dim1");
		if (dn) {
			diag_error(dn->loc, "transpose: give either perm or dim0/dim1, not both");
			return poison;
		}
		value l = lower_expr(c, fr, pn->value);
		if (l.k == V_POISON)
			return poison;
		char b[128];
		if (l.k != V_LIST || pn->value->kind != AST_LIST) {
			diag_error(pn->value->loc, "transpose: perm must be a list of axes like [0, 2, 1], found %s",
			           vkind_name(l.k));
			return poison;
		}
		if (l.nitems != rank) {
			diag_error(pn->value->loc, "transpose: perm has %d entr%s but %s has %d axes", l.nitems,
			           l.nitems == 1 ? "y" : "ies", ir_type_str(xt, b, sizeof b), rank);
			return poison;
		}
		bool seen[IR_MAX_RANK] = { false };
		for (int i = 0; i < rank; i++) {
			value d = l.items[i];
			src_loc dl = pn->value->items[i]->loc;
			if (d.k != V_INT || d.b) {
				diag_error(dl, "transpose: perm entries must be integer axes, found %s",
				           d.k == V_INT ? "a dimension" : vkind_name(d.k));
				return poison;
			}
			if (d.i < -rank || d.i >= rank) {
				diag_error(dl, "transpose: axis %" PRId64 " out of range for %s", d.i,
				           ir_type_str(xt, b, sizeof b));
				return poison;
			}
			int ax = (int)(d.i < 0 ? d.i + rank : d.i);
			if (seen[ax]) {
				diag_error(dl, "transpose: perm is not a permutation: axis %d appears twice", ax);
				return poison;
			}
			seen[ax] = true;
			perm[i] = ax;
		}
	} else {
		if (rank < 2) {
			diag_error(e->loc, "transpose needs a tensor of rank >= 2 (or perm = [..])");
			return poison;
		}
		int64_t d0, d1, a0, a1;
		if (!attr_int(c, fr, e, "dim0", rank - 2, false, &d0) | !attr_int(c, fr, e, "dim1", rank - 1, false, &d1) ||
		    !axis_of(e, d0, rank, &a0) || !axis_of(e, d1, rank, &a1))
			return poison;
		for (int i = 0; i < rank; i++)
			perm[i] = i;
		perm[a0] = (int)a1;
		perm[a1] = (int)a0;
	}
	bool ident = true;
	for (int i = 0; i < rank; i++)
		ident = ident && perm[i] == i;
	if (ident)
		return x;
	int64_t ia[4] = { ir_perm_pack(perm, rank), 0, 0, 0 };
	return tensor(emit(c, IR_TRANSPOSE, 1, &x.node, NULL, ia, NULL, e->loc, NULL), e->loc);
}

/* broadcast(x, shape = [d, ...]): x broadcast NumPy-style to the shape.
 * Entries: positive integers, names bound to dimensions (B, I, ...) or
 * attributes, and -1, which keeps x's dimension at that position
 * (trailing axes aligned).  Any dtype.  No node when nothing changes. */
static value b_broadcast(lctx *c, frame *fr, const ast_expr *e, value *pos)
{
	value x = as_tensor(c, pos[0], "broadcast", e->loc);
	const ast_named *sn = named(e, "shape");
	if (!sn) {
		diag_error(e->loc, "broadcast needs the attribute 'shape'");
		return poison;
	}
	value l = lower_expr(c, fr, sn->value);
	if (x.k != V_TENSOR || l.k == V_POISON)
		return poison;
	if (l.k != V_LIST || sn->value->kind != AST_LIST) {
		diag_error(sn->value->loc, "broadcast: shape must be a list of dimensions like [B, 3, 4], found %s",
		           vkind_name(l.k));
		return poison;
	}
	const ir_type *xt = vtype(c, x);
	char b[128];
	if (l.nitems < xt->rank) {
		diag_error(sn->value->loc, "broadcast: the shape has %d entr%s, fewer than the %d axes of %s",
		           l.nitems, l.nitems == 1 ? "y" : "ies", xt->rank, ir_type_str(xt, b, sizeof b));
		return poison;
	}
	if (l.nitems > IR_MAX_RANK) {
		diag_error(sn->value->loc, "broadcast: %d dimensions (at most %d)", l.nitems, IR_MAX_RANK);
		return poison;
	}
	ir_type t = *xt;
	t.rank = l.nitems;
	for (int i = 0; i < l.nitems; i++) {
		value d = l.items[i];
		src_loc dl = sn->value->items[i]->loc;
		int j = i - (l.nitems - xt->rank);
		if (d.k == V_INT && d.i == -1 && !d.b) {
			if (j < 0) {
				diag_error(dl, "broadcast: -1 keeps the input's dimension, but %s has no axis "
				           "at position %d", ir_type_str(xt, b, sizeof b), i);
				return poison;
			}
			t.d[i] = xt->d[j];
			continue;
		}
		if (d.k == V_INT && (d.i > 0 || d.b)) {
			t.d[i] = (ir_dim){ d.i, d.b ? 1 : 0 };
			continue;
		}
		diag_error(dl, "broadcast: dimension must be a positive integer, a dimension name or -1");
		return poison;
	}
	char b2[128];
	for (int i = 0; i < xt->rank; i++) {
		ir_dim dx = xt->d[i], dt = t.d[i + t.rank - xt->rank];
		if ((dx.c != dt.c || dx.sym != dt.sym) && !(dx.c == 1 && !dx.sym)) {
			diag_error(e->loc, "broadcast: %s does not broadcast to %s (axis %d of the input is neither "
			           "1 nor the target's)", ir_type_str(xt, b, sizeof b), ir_type_str(&t, b2, sizeof b2), i);
			return poison;
		}
	}
	if (ir_type_numel(&t).sym > 1) {
		diag_error(sn->value->loc, "broadcast: %s would hold more than one batch dimension",
		           ir_type_str(&t, b2, sizeof b2));
		return poison;
	}
	if (ir_type_eq(&t, xt))
		return x;
	return tensor(emit(c, IR_BROADCAST, 1, &x.node, &t, NULL, NULL, e->loc, NULL), e->loc);
}

static value reduce(lctx *c, frame *fr, const ast_expr *e, value *pos, ir_opcode op)
{
	value x = as_tensor(c, pos[0], e->name, e->loc);
	if (x.k != V_TENSOR)
		return poison;
	const ir_type *xt = vtype(c, x);
	int64_t ax, axis;
	bool keep = false;
	if (!named(e, "axis")) {
		/* no axis: over all elements, as a flat vector */
		ir_dim n = ir_type_numel(xt);
		ir_type flat = *xt;
		flat.rank = 1;
		flat.d[0] = n;
		int f = emit(c, IR_RESHAPE, 1, &x.node, &flat, NULL, NULL, e->loc, NULL);
		if (f < 0)
			return poison;
		int64_t ia[4] = { 0, 0, 0, 0 };
		return tensor(emit(c, op, 1, &f, NULL, ia, NULL, e->loc, NULL), e->loc);
	}
	if (!attr_int(c, fr, e, "axis", 0, true, &ax) || !attr_bool(c, fr, e, "keepdims", false, &keep) ||
	    !axis_of(e, ax, xt->rank, &axis))
		return poison;
	int64_t ia[4] = { axis, keep, 0, 0 };
	return tensor(emit(c, op, 1, &x.node, NULL, ia, NULL, e->loc, NULL), e->loc);
}
static value b_sum(lctx *c, frame *fr, const ast_expr *e, value *p) { return reduce(c, fr, e, p, IR_SUM); }
static value b_mean(lctx *c, frame *fr, const ast_expr *e, value *p) { return reduce(c, fr, e, p, IR_MEAN); }
static value b_max(lctx *c, frame *fr, const ast_expr *e, value *p) { return reduce(c, fr, e, p, IR_MAX); }
static value b_argmax(lctx *c, frame *fr, const ast_expr *e, value *p) { return reduce(c, fr, e, p, IR_ARGMAX); }

static value softmax_like(lctx *c, frame *fr, const ast_expr *e, value *pos, ir_opcode op)
{
	value x = as_tensor(c, pos[0], e->name, e->loc);
	if (x.k != V_TENSOR)
		return poison;
	int rank = vtype(c, x)->rank;
	int64_t ax = -1, axis;
	if (rank < 1) {
		diag_error(e->loc, "%s needs a tensor of rank >= 1", e->name);
		return poison;
	}
	if (!attr_int(c, fr, e, "axis", -1, false, &ax) || !axis_of(e, ax, rank, &axis))
		return poison;
	if (axis != rank - 1) {
		diag_error(e->loc, "%s: only the last axis is supported (axis = -1)", e->name);
		return poison;
	}
	return op1(c, op, x, e->loc);
}
static value b_softmax(lctx *c, frame *fr, const ast_expr *e, value *p) { return softmax_like(c, fr, e, p, IR_SOFTMAX); }
static value b_log_softmax(lctx *c, frame *fr, const ast_expr *e, value *p) { return softmax_like(c, fr, e, p, IR_LOG_SOFTMAX); }

static value b_loss2(lctx *c, const ast_expr *e, value *pos, ir_opcode op)
{
	value a = as_tensor(c, pos[0], e->name, e->loc), b = as_tensor(c, pos[1], e->name, e->loc);
	if (a.k != V_TENSOR || b.k != V_TENSOR)
		return poison;
	int in[2] = { a.node, b.node };
	return tensor(emit(c, op, 2, in, NULL, NULL, NULL, e->loc, NULL), e->loc);
}
static value b_cross_entropy(lctx *c, frame *fr, const ast_expr *e, value *p) { (void)fr; return b_loss2(c, e, p, IR_CROSS_ENTROPY); }
static value b_accuracy(lctx *c, frame *fr, const ast_expr *e, value *p) { (void)fr; return b_loss2(c, e, p, IR_ACCURACY); }
static value b_mse(lctx *c, frame *fr, const ast_expr *e, value *p) { (void)fr; return b_loss2(c, e, p, IR_MSE); }

static value b_dropout(lctx *c, frame *fr, const ast_expr *e, value *pos)
{
	value x = as_tensor(c, pos[0], "dropout", e->loc);
	double p;
	if (!attr_num(c, fr, e, "p", 0.5, false, &p) || x.k != V_TENSOR)
		return poison;
	if (!(p >= 0.0 && p < 1.0)) {
		const ast_named *nd = named(e, "p");
		diag_error(nd ? nd->value->loc : e->loc, "dropout: p = %g is outside [0, 1)", p);
		return poison;
	}
	const char *path = path_for(c, fr, e);
	if (c->eval_mode || p == 0.0)
		return x;        /* evaluation: dropout is the identity */
	float pf = (float)p;
	float fa[4] = { pf, 1.0f / (1.0f - pf), 0, 0 };
	return tensor(emit(c, IR_DROPOUT, 1, &x.node, NULL, NULL, fa, e->loc, path), e->loc);
}

/* the named attribute's location, or the call's */
static src_loc attr_loc(const ast_expr *e, const char *key)
{
	const ast_named *nd = named(e, key);
	return nd ? nd->value->loc : e->loc;
}

/* The runtime rounds every hyperparameter to binary32 (language.md,
 * "Optimizers"), and eps attributes become f32 constants: a nonzero value
 * that becomes 0 or infinity there is an error, not a silently frozen or
 * exploding run. */
static bool check_f32_range(const ast_expr *call, const char *key, double v)
{
	float f = (float)v;
	if (v != 0 && (f == 0 || !isfinite(f))) {
		diag_error(attr_loc(call, key), "%s: %s = %g is outside the range of binary32", call->name,
		           key, v);
		return false;
	}
	return true;
}

typedef struct conv_lctx { lctx *c; src_loc loc; } conv_lctx;
static int conv_emit(void *ctx, ir_opcode op, int nin, const int *in, const ir_type *preset, const int64_t *ia)
{
	conv_lctx *k = ctx;
	return emit(k->c, op, nin, in, preset, ia, NULL, k->loc, NULL);
}

/* im2col, matmul and data movement: passes/conv.c, ops.def */
static value b_conv2d(lctx *c, frame *fr, const ast_expr *e, value *pos)
{
	value x = as_tensor(c, pos[0], "conv2d", e->loc), w = as_tensor(c, pos[1], "conv2d", e->loc);
	int64_t s, p, d, g;
	if (!attr_int(c, fr, e, "stride", 1, true, &s) | !attr_int(c, fr, e, "pad", 0, true, &p) |
	    !attr_int(c, fr, e, "dilation", 1, false, &d) | !attr_int(c, fr, e, "groups", 1, false, &g) ||
	    x.k != V_TENSOR || w.k != V_TENSOR)
		return poison;
	int64_t ia[4] = { s, p, d, g };
	char err[512];
	conv_lctx k = { c, e->loc };
	int y = conv2d_lower(&k, conv_emit, x.node, vtype(c, x), w.node, vtype(c, w), ia, err, sizeof err);
	if (y < 0 && err[0])
		diag_error(e->loc, "%s", err);
	return tensor(y, e->loc);
}

static value pool(lctx *c, frame *fr, const ast_expr *e, value *pos, ir_opcode op)
{
	value x = as_tensor(c, pos[0], e->name, e->loc);
	int64_t k, s;
	if (!attr_int(c, fr, e, "size", 0, true, &k) || x.k != V_TENSOR)
		return poison;
	if (!attr_int(c, fr, e, "stride", k, false, &s))
		return poison;
	int64_t ia[4] = { k, s, 0, 0 };
	return tensor(emit(c, op, 1, &x.node, NULL, ia, NULL, e->loc, NULL), e->loc);
}
static value b_max_pool2d(lctx *c, frame *fr, const ast_expr *e, value *p) { return pool(c, fr, e, p, IR_MAX_POOL2D); }
static value b_avg_pool2d(lctx *c, frame *fr, const ast_expr *e, value *p) { return pool(c, fr, e, p, IR_AVG_POOL2D); }

static value b_random_flip(lctx *c, frame *fr, const ast_expr *e, value *pos)
{
	value x = as_tensor(c, pos[0], "random_flip", e->loc);
	int64_t ax, axis;
	if (!attr_int(c, fr, e, "axis", 0, true, &ax) || x.k != V_TENSOR)
		return poison;
	int rank = vtype(c, x)->rank;
	if (!axis_of(e, ax, rank, &axis))
		return poison;
	if (axis == 0) {
		diag_error(attr_loc(e, "axis"), "random_flip: axis 0 is the batch axis; flip a per-sample axis");
		return poison;
	}
	const char *path = path_for(c, fr, e);
	if (c->eval_mode)
		return x;        /* evaluation: no augmentation */
	int64_t ia[4] = { axis, 0, 0, 0 };
	return tensor(emit(c, IR_RANDOM_FLIP, 1, &x.node, NULL, ia, NULL, e->loc, path), e->loc);
}

/* random_crop(x, size =, pad =): x f32[N, C, H, W] or [N, H, W]; in
 * training a RANDOM_CROP (ops.def: a size x size window of the input
 * zero-padded by pad, at a per-sample offset from the op's stream); in
 * evaluation the centre window of the padded input (CROP), which is x
 * itself when size == H == W. */
static value b_random_crop(lctx *c, frame *fr, const ast_expr *e, value *pos)
{
	value x = as_tensor(c, pos[0], "random_crop", e->loc);
	int64_t S, P;
	if (!attr_int(c, fr, e, "size", 0, true, &S) | !attr_int(c, fr, e, "pad", 0, true, &P) || x.k != V_TENSOR)
		return poison;
	const ir_type *xt = vtype(c, x);
	char b[128];
	if (xt->dt != IR_F32) {
		diag_error(e->loc, "random_crop needs f32 values, found %s (convert with f32(...))",
		           ir_type_str(xt, b, sizeof b));
		return poison;
	}
	bool rank_ok = xt->rank >= 3;
	for (int i = 1; i < xt->rank; i++)
		rank_ok = rank_ok && !xt->d[i].sym;
	if (!rank_ok) {
		diag_error(e->loc, "random_crop needs an input [N, C, H, W] or [N, H, W] (only N may follow "
		           "the batch size), found %s", ir_type_str(xt, b, sizeof b));
		return poison;
	}
	if (S < 1) {
		diag_error(attr_loc(e, "size"), "random_crop: size = %" PRId64 " must be >= 1", S);
		return poison;
	}
	if (P < 0) {
		diag_error(attr_loc(e, "pad"), "random_crop: pad = %" PRId64 " must be >= 0", P);
		return poison;
	}
	int64_t H = xt->d[xt->rank - 2].c, W = xt->d[xt->rank - 1].c, PH, PW;
	if (__builtin_mul_overflow(P, 2, &PH) || __builtin_add_overflow(H, PH, &PH) ||
	    __builtin_add_overflow(W, 2 * P, &PW)) {
		diag_error(attr_loc(e, "pad"), "random_crop: pad = %" PRId64 " is too large for %s (the "
		           "padded size overflows)", P, ir_type_str(xt, b, sizeof b));
		return poison;
	}
	if (S > PH || S > PW) {
		diag_error(attr_loc(e, "size"), "random_crop: the %" PRId64 "x%" PRId64 " window does not fit "
		           "%s padded by %" PRId64 " on each side (%" PRId64 "x%" PRId64 ")", S, S,
		           ir_type_str(xt, b, sizeof b), P, PH, PW);
		return poison;
	}
	const char *path = path_for(c, fr, e);
	if (c->eval_mode) {
		/* evaluation: no augmentation; the centre of the padded input */
		if (S == H && S == W)
			return x;
		int64_t ia[4] = { S, P, (PH - S) / 2, (PW - S) / 2 };
		return tensor(emit(c, IR_CROP, 1, &x.node, NULL, ia, NULL, e->loc, path), e->loc);
	}
	int64_t ia[4] = { S, P, 0, 0 };
	return tensor(emit(c, IR_RANDOM_CROP, 1, &x.node, NULL, ia, NULL, e->loc, path), e->loc);
}

/* A parameter or state tensor owned by a built-in op, under `path` (the
 * instance path of the statement the op stands in, like a def call). */
static int builtin_tensor(lctx *c, const char *path, const ir_type *t, ir_init_kind init,
                          bool is_param, src_loc loc)
{
	ptrvec *vec = is_param ? &c->params : &c->states;
	int idx;
	ir_tensor *old = find_tensor(vec, path, &idx);
	if (old) {
		if (!ir_type_eq(&old->type, t)) {
			char a[128], b[128];
			diag_error(loc, "%s '%s' of the shared instance is %s here but %s at its first use",
			           is_param ? "param" : "state", path, ir_type_str(t, b, sizeof b),
			           ir_type_str(&old->type, a, sizeof a));
			return -1;
		}
	} else {
		ir_tensor *nt = arena_alloc(c->a, sizeof *nt);
		nt->path = path;
		nt->type = *t;
		nt->loc = loc;
		nt->stream = -1;
		nt->init = init;
		fans(t, &nt->fan_in, &nt->fan_out);
		idx = vec->n;
		ptrvec_push(c->a, vec, nt);
	}
	int64_t ia[4] = { idx, 0, 0, 0 };
	return emit(c, is_param ? IR_PARAM : IR_STATE, 0, NULL, t, ia, NULL, loc, path);
}

/* sum over every axis but 1 of x [N, C, ...] (rank 2 or 4): [C].  Order:
 * for each (n, c) the H*W elements (plan of the first sum), then the N
 * partial sums (plan of the second). */
static int bn_sum(lctx *c, int x, const ir_type *xt, src_loc loc)
{
	int r = x;
	if (xt->rank == 4) {
		ir_type t = *xt;
		t.rank = 3;
		t.d[2] = (ir_dim){ xt->d[2].c * xt->d[3].c, 0 };
		r = emit(c, IR_RESHAPE, 1, &x, &t, NULL, NULL, loc, NULL);
		int64_t ia2[4] = { 2, 0, 0, 0 };
		if (r >= 0)
			r = emit(c, IR_SUM, 1, &r, NULL, ia2, NULL, loc, NULL);
	}
	int64_t ia0[4] = { 0, 0, 0, 0 };
	return r < 0 ? -1 : emit(c, IR_SUM, 1, &r, NULL, ia0, NULL, loc, NULL);
}

/* [C] -> [1, C, 1, 1] (rank 4) or [C] (rank 2, already broadcasts to [N, C]) */
static int bn_chan(lctx *c, int v, const ir_type *xt, src_loc loc)
{
	if (v < 0 || xt->rank == 2)
		return v;
	ir_type t = ir_scalar(IR_F32);
	t.rank = 4;
	t.d[0] = t.d[2] = t.d[3] = (ir_dim){ 1, 0 };
	t.d[1] = xt->d[1];
	return emit(c, IR_RESHAPE, 1, &v, &t, NULL, NULL, loc, NULL);
}

static int bin(lctx *c, ir_opcode op, int a, int b, src_loc loc)
{
	if (a < 0 || b < 0)
		return -1;
	int in[2] = { a, b };
	return emit(c, op, 2, in, NULL, NULL, NULL, loc, NULL);
}

/* batchnorm(x [N,C,H,W] or [N,C], momentum, eps): params weight (ones),
 * bias (zeros), state running_mean (zeros), running_var (ones).
 *   train: cnt = N*H*W; mean = bn_sum(x) / cnt; d = x - mean;
 *          var = bn_sum(d * d) / cnt (biased); y = (d * (1 / sqrt(var + eps))) * w + b;
 *          running_mean <- (1-m) * running_mean + m * mean
 *          running_var  <- (1-m) * running_var + m * (var * (cnt / (cnt - 1)))
 *   eval:  y = ((x - running_mean) * (1 / sqrt(running_var + eps))) * w + b
 * (every per-channel vector broadcast as [1, C, 1, 1]) */
static value b_batchnorm(lctx *c, frame *fr, const ast_expr *e, value *pos)
{
	value x = as_tensor(c, pos[0], "batchnorm", e->loc);
	double mom, eps;
	if (!attr_num(c, fr, e, "momentum", 0.1, false, &mom) | !attr_num(c, fr, e, "eps", 1e-5, false, &eps) ||
	    x.k != V_TENSOR)
		return poison;
	if (!(mom >= 0.0 && mom <= 1.0)) {
		diag_error(attr_loc(e, "momentum"), "batchnorm: momentum = %g is outside [0, 1]", mom);
		return poison;
	}
	if (!(eps > 0.0)) {
		diag_error(attr_loc(e, "eps"), "batchnorm: eps = %g must be positive", eps);
		return poison;
	}
	if (!check_f32_range(e, "eps", eps))     /* it becomes an f32 constant */
		return poison;
	const ir_type *xt0 = vtype(c, x);
	ir_type xt = *xt0;
	char b[128];
	if (xt.dt != IR_F32 || (xt.rank != 2 && xt.rank != 4)) {
		diag_error(e->loc, "batchnorm needs f32 [N, C, H, W] or [N, C], found %s",
		           ir_type_str(&xt, b, sizeof b));
		return poison;
	}
	for (int i = 1; i < xt.rank; i++)
		if (xt.d[i].sym) {
			diag_error(e->loc, "batchnorm: only N may follow the batch size, found %s",
			           ir_type_str(&xt, b, sizeof b));
			return poison;
		}
	const char *path = path_for(c, fr, e);
	ir_type ct = ir_scalar(IR_F32);
	ct.rank = 1;
	ct.d[0] = xt.d[1];
	int w = builtin_tensor(c, arena_printf(c->a, "%s.weight", path), &ct, IR_INIT_ONES, true, e->loc);
	int bias = builtin_tensor(c, arena_printf(c->a, "%s.bias", path), &ct, IR_INIT_ZEROS, true, e->loc);
	int rm = builtin_tensor(c, arena_printf(c->a, "%s.running_mean", path), &ct, IR_INIT_ZEROS, false, e->loc);
	int rv = builtin_tensor(c, arena_printf(c->a, "%s.running_var", path), &ct, IR_INIT_ONES, false, e->loc);
	if (w < 0 || bias < 0 || rm < 0 || rv < 0)
		return poison;
	src_loc L = e->loc;
	int epsn = const_node(c, (float)eps, L), one = const_node(c, 1.0f, L);
	int mean, var, d;
	if (!c->eval_mode) {
		ir_dim ne = ir_type_numel(&xt);
		ir_type st = ir_scalar(IR_F32);
		int64_t nia[4] = { ne.c / xt.d[1].c, ne.sym, 0, 0 };
		if (nia[0] == 1 && nia[1] == 1 && !c->p->bn_rows.line)
			c->p->bn_rows = L;   /* cnt = B: the runtime refuses a step of one row */
		int cnt = emit(c, IR_NUMEL, 0, NULL, &st, nia, NULL, L, NULL);
		mean = bin(c, IR_DIV, bn_sum(c, x.node, &xt, L), cnt, L);
		d = bin(c, IR_SUB, x.node, bn_chan(c, mean, &xt, L), L);
		var = bin(c, IR_DIV, bn_sum(c, bin(c, IR_MUL, d, d, L), &xt, L), cnt, L);
		float m = (float)mom;
		float fa[4] = { m, 1.0f - m, 0, 0 };
		int unb = bin(c, IR_MUL, var, bin(c, IR_DIV, cnt, bin(c, IR_SUB, cnt, one, L), L), L);
		if (mean < 0 || unb < 0)
			return poison;
		int u1[2] = { rm, mean }, u2[2] = { rv, unb };
		emit(c, IR_STATE_EMA, 2, u1, NULL, NULL, fa, L, path);
		emit(c, IR_STATE_EMA, 2, u2, NULL, NULL, fa, L, path);
	} else {
		d = bin(c, IR_SUB, x.node, bn_chan(c, rm, &xt, L), L);
		var = rv;
	}
	int ve = bin(c, IR_ADD, var, epsn, L);
	int sq = ve < 0 ? -1 : emit(c, IR_SQRT, 1, &ve, NULL, NULL, NULL, L, NULL);
	int inv = bin(c, IR_DIV, one, sq, L);
	int y = bin(c, IR_MUL, d, bn_chan(c, inv, &xt, L), L);
	y = bin(c, IR_MUL, y, bn_chan(c, w, &xt, L), L);
	y = bin(c, IR_ADD, y, bn_chan(c, bias, &xt, L), L);
	return tensor(y, L);
}

/* layernorm(x [..., D], eps): params weight (ones) and bias (zeros) [D].
 *   mean = sum(x, last axis) / D; d = x - mean; var = sum(d * d, last axis) / D;
 *   y = (d * (1 / sqrt(var + eps))) * weight + bias
 * (the sums under the plans of their nodes; the same in train and eval) */
static value b_layernorm(lctx *c, frame *fr, const ast_expr *e, value *pos)
{
	value x = as_tensor(c, pos[0], "layernorm", e->loc);
	double eps;
	if (!attr_num(c, fr, e, "eps", 1e-5, false, &eps) || x.k != V_TENSOR)
		return poison;
	if (!(eps > 0.0)) {
		diag_error(attr_loc(e, "eps"), "layernorm: eps = %g must be positive", eps);
		return poison;
	}
	if (!check_f32_range(e, "eps", eps))
		return poison;
	ir_type xt = *vtype(c, x);
	char b[128];
	if (xt.dt != IR_F32 || xt.rank < 1 || xt.d[xt.rank - 1].sym) {
		diag_error(e->loc, "layernorm needs f32 [..., D] with a fixed last dimension, found %s",
		           ir_type_str(&xt, b, sizeof b));
		return poison;
	}
	const char *path = path_for(c, fr, e);
	ir_type ct = ir_scalar(IR_F32);
	ct.rank = 1;
	ct.d[0] = xt.d[xt.rank - 1];
	int w = builtin_tensor(c, arena_printf(c->a, "%s.weight", path), &ct, IR_INIT_ONES, true, e->loc);
	int bias = builtin_tensor(c, arena_printf(c->a, "%s.bias", path), &ct, IR_INIT_ZEROS, true, e->loc);
	if (w < 0 || bias < 0)
		return poison;
	src_loc L = e->loc;
	int64_t ia[4] = { xt.rank - 1, 1, 0, 0 };
	int D = const_node(c, (float)xt.d[xt.rank - 1].c, L);
	int s1 = emit(c, IR_SUM, 1, &x.node, NULL, ia, NULL, L, NULL);
	int mean = bin(c, IR_DIV, s1, D, L);
	int d = bin(c, IR_SUB, x.node, mean, L);
	int dd = bin(c, IR_MUL, d, d, L);
	int s2 = dd < 0 ? -1 : emit(c, IR_SUM, 1, &dd, NULL, ia, NULL, L, NULL);
	int ve = bin(c, IR_ADD, bin(c, IR_DIV, s2, D, L), const_node(c, (float)eps, L), L);
	int sq = ve < 0 ? -1 : emit(c, IR_SQRT, 1, &ve, NULL, NULL, NULL, L, NULL);
	int y = bin(c, IR_MUL, d, bin(c, IR_DIV, const_node(c, 1.0f, L), sq, L), L);
	y = bin(c, IR_ADD, bin(c, IR_MUL, y, w, L), bias, L);
	return tensor(y, L);
}

static value b_slice(lctx *c, frame *fr, const ast_expr *e, value *pos)
{
	value x = as_tensor(c, pos[0], "slice", e->loc);
	int64_t ax, axis, st, en;
	if (!attr_int(c, fr, e, "axis", 0, true, &ax) | !attr_int(c, fr, e, "start", 0, true, &st) |
	    !attr_int(c, fr, e, "end", 0, true, &en) || x.k != V_TENSOR)
		return poison;
	if (!axis_of(e, ax, vtype(c, x)->rank, &axis))
		return poison;
	int64_t ia[4] = { axis, st, en, 0 };
	return tensor(emit(c, IR_SLICE, 1, &x.node, NULL, ia, NULL, e->loc, NULL), e->loc);
}

/* concat(a, b, ..., axis =): joined pairwise from the left */
static value b_concat(lctx *c, frame *fr, const ast_expr *e, value *pos)
{
	int64_t ax, axis;
	value v[4];
	for (int i = 0; i < e->nitems; i++) {
		v[i] = as_tensor(c, pos[i], "concat", e->loc);
		if (v[i].k != V_TENSOR)
			return poison;
	}
	if (!attr_int(c, fr, e, "axis", 0, true, &ax) || !axis_of(e, ax, vtype(c, v[0])->rank, &axis))
		return poison;
	int acc = v[0].node;
	for (int i = 1; i < e->nitems && acc >= 0; i++) {
		int in[2] = { acc, v[i].node };
		int64_t ia[4] = { axis, 0, 0, 0 };
		acc = emit(c, IR_CONCAT, 2, in, NULL, ia, NULL, e->loc, NULL);
	}
	return tensor(acc, e->loc);
}

static value b_one_hot(lctx *c, frame *fr, const ast_expr *e, value *pos)
{
	value x = as_tensor(c, pos[0], "one_hot", e->loc);
	int64_t k;
	if (!attr_int(c, fr, e, "classes", 0, true, &k) || x.k != V_TENSOR)
		return poison;
	int64_t ia[4] = { k, 0, 0, 0 };
	return tensor(emit(c, IR_ONE_HOT, 1, &x.node, NULL, ia, NULL, e->loc, NULL), e->loc);
}

/* embedding(idx, vocab =, dim =): param table f32[vocab, dim] = normal(0, 1)
 * under the statement's path (".table"); result f32[..., dim] */
static value b_embedding(lctx *c, frame *fr, const ast_expr *e, value *pos)
{
	value x = as_tensor(c, pos[0], "embedding", e->loc);
	int64_t V, D;
	if (!attr_int(c, fr, e, "vocab", 0, true, &V) | !attr_int(c, fr, e, "dim", 0, true, &D) || x.k != V_TENSOR)
		return poison;
	if (V < 1 || D < 1) {
		diag_error(e->loc, "embedding: vocab (%" PRId64 ") and dim (%" PRId64 ") must be >= 1", V, D);
		return poison;
	}
	const char *path = path_for(c, fr, e);
	ir_type tt = ir_scalar(IR_F32);
	tt.rank = 2;
	tt.d[0] = (ir_dim){ V, 0 };
	tt.d[1] = (ir_dim){ D, 0 };
	int t = builtin_tensor(c, arena_printf(c->a, "%s.table", path), &tt, IR_INIT_NORMAL, true, e->loc);
	if (t < 0)
		return poison;
	ir_tensor *tn = c->params.v[c->g->nodes[t]->ia[0]];
	tn->a = 0.0;
	tn->b = 1.0;
	int in[2] = { t, x.node };
	return tensor(emit(c, IR_EMBEDDING, 2, in, NULL, NULL, NULL, e->loc, NULL), e->loc);
}

typedef struct builtin {
	const char *name;
	builtin_fn *fn;
	argspec spec;
} builtin;

static const char *const k_none[] = { NULL };
static const char *const k_axis[] = { "axis", "keepdims", NULL };
static const char *const k_axis1[] = { "axis", NULL };
static const char *const k_dims[] = { "dim0", "dim1", "perm", NULL };
static const char *const k_shape[] = { "shape", NULL };
static const char *const k_crop[] = { "size", "pad", NULL };
static const char *const k_p[] = { "p", NULL };
static const char *const k_conv[] = { "stride", "pad", "dilation", "groups", NULL };
static const char *const k_pool[] = { "size", "stride", NULL };
static const char *const k_bn[] = { "momentum", "eps", NULL };
static const char *const k_eps[] = { "eps", NULL };
static const char *const k_slice[] = { "axis", "start", "end", NULL };
static const char *const k_classes[] = { "classes", NULL };
static const char *const k_emb[] = { "vocab", "dim", NULL };

static const builtin builtins[] = {
	{ "exp", b_exp, { 1, 1, k_none } },
	{ "log", b_log, { 1, 1, k_none } },
	{ "sqrt", b_sqrt, { 1, 1, k_none } },
	{ "tanh", b_tanh, { 1, 1, k_none } },
	{ "sigmoid", b_sigmoid, { 1, 1, k_none } },
	{ "relu", b_relu, { 1, 1, k_none } },
	{ "gelu", b_gelu, { 1, 1, k_none } },
	{ "neg", b_neg, { 1, 1, k_none } },
	{ "add", b_add, { 2, 2, k_none } },
	{ "sub", b_sub, { 2, 2, k_none } },
	{ "mul", b_mul, { 2, 2, k_none } },
	{ "div", b_div, { 2, 2, k_none } },
	{ "pow", b_pow, { 2, 2, k_none } },
	{ "maximum", b_maximum, { 2, 2, k_none } },
	{ "minimum", b_minimum, { 2, 2, k_none } },
	{ "where", b_where, { 3, 3, k_none } },
	{ "matmul", b_matmul, { 2, 2, k_none } },
	{ "f32", b_f32, { 1, 1, k_none } },
	{ "i32", b_i32, { 1, 1, k_none } },
	{ "reshape", b_reshape, { 2, 2, k_none } },
	{ "flatten", b_flatten, { 1, 1, k_none } },
	{ "transpose", b_transpose, { 1, 1, k_dims } },
	{ "sum", b_sum, { 1, 1, k_axis } },
	{ "mean", b_mean, { 1, 1, k_axis } },
	{ "max", b_max, { 1, 1, k_axis } },
	{ "argmax", b_argmax, { 1, 1, k_axis } },
	{ "softmax", b_softmax, { 1, 1, k_axis1 } },
	{ "log_softmax", b_log_softmax, { 1, 1, k_axis1 } },
	{ "cross_entropy", b_cross_entropy, { 2, 2, k_none } },
	{ "accuracy", b_accuracy, { 2, 2, k_none } },
	{ "mse", b_mse, { 2, 2, k_none } },
	{ "dropout", b_dropout, { 1, 1, k_p } },
	{ "conv2d", b_conv2d, { 2, 2, k_conv } },
	{ "max_pool2d", b_max_pool2d, { 1, 1, k_pool } },
	{ "avg_pool2d", b_avg_pool2d, { 1, 1, k_pool } },
	{ "batchnorm", b_batchnorm, { 1, 1, k_bn } },
	{ "layernorm", b_layernorm, { 1, 1, k_eps } },
	{ "slice", b_slice, { 1, 1, k_slice } },
	{ "concat", b_concat, { 2, 4, k_axis1 } },
	{ "one_hot", b_one_hot, { 1, 1, k_classes } },
	{ "embedding", b_embedding, { 1, 1, k_emb } },
	{ "random_flip", b_random_flip, { 1, 1, k_axis1 } },
	{ "random_crop", b_random_crop, { 1, 1, k_crop } },
	{ "broadcast", b_broadcast, { 1, 1, k_shape } },
};

bool lower_is_builtin(const char *name)
{
	for (size_t i = 0; i < sizeof builtins / sizeof builtins[0]; i++)
		if (!strcmp(builtins[i].name, name))
			return true;
	return false;
}

/* ops of language.md that this compiler does not lower yet (none at
 * present: a name listed here is refused with "not supported yet") */
static const char *const planned_ops[] = {
	NULL,
};

static value lower_call(lctx *c, frame *fr, const ast_expr *e)
{
	const ast_def *d = find_def(c, e->name);
	if (d)
		return call_def(c, fr, d, e);
	for (size_t i = 0; i < sizeof builtins / sizeof builtins[0]; i++) {
		const builtin *b = &builtins[i];
		if (strcmp(b->name, e->name))
			continue;
		if (!check_args(e, &b->spec))
			return poison;
		value pos[4];
		bool bad = false;
		for (int k = 0; k < e->nitems; k++) {
			pos[k] = lower_expr(c, fr, e->items[k]);
			if (pos[k].k == V_POISON)
				bad = true;
		}
		if (bad)
			return poison;
		return b->fn(c, fr, e, pos);
	}
	for (int i = 0; planned_ops[i]; i++)
		if (!strcmp(planned_ops[i], e->name)) {
			diag_error(e->loc, "op '%s' is not supported by this version of nndc yet", e->name);
			return poison;
		}
	diag_error(e->loc, "unknown function '%s'", e->name);
	return poison;
}

/* The parser bounds one expression's depth (AST_MAX_DEPTH) and lowering
 * bounds def calls (32 deep), but their product could still exhaust the
 * stack of this recursion: the whole chain gets one budget. */
enum { LOWER_MAX_DEPTH = 2048 };
static value lower_expr_at(lctx *c, frame *fr, const ast_expr *e);

static value lower_expr(lctx *c, frame *fr, const ast_expr *e)
{
	if (c->expr_depth >= LOWER_MAX_DEPTH) {
		diag_error(e->loc, "expressions nest too deeply through def calls (more than %d levels in all)",
		           LOWER_MAX_DEPTH);
		return poison;
	}
	c->expr_depth++;
	value v = lower_expr_at(c, fr, e);
	c->expr_depth--;
	return v;
}

static value lower_expr_at(lctx *c, frame *fr, const ast_expr *e)
{
	value v = { .loc = e->loc };
	switch (e->kind) {
	case AST_INT: v.k = V_INT; v.i = e->ival; v.literal = true; return v;
	case AST_FLOAT: v.k = V_FLOAT; v.f = e->fval; v.literal = true; return v;
	case AST_STR: v.k = V_STR; v.s = e->sval; return v;
	case AST_BOOL: v.k = V_BOOL; v.b = e->bval; return v;
	case AST_LIST:
		v.k = V_LIST;
		v.nitems = e->nitems;
		v.items = arena_alloc(c->a, (size_t)(e->nitems + 1) * sizeof *v.items);
		for (int i = 0; i < e->nitems; i++) {
			v.items[i] = lower_expr(c, fr, e->items[i]);
			if (v.items[i].k == V_POISON)
				return poison;
		}
		return v;
	case AST_NAME: {
		binding *b = lookup(fr, e->name);
		if (!b) {
			diag_error(e->loc, "unknown name '%s'", e->name);
			return poison;
		}
		if (b->is_dim) {
			/* a dimension used as a value (in a reshape list) */
			v.k = V_INT;
			v.i = b->v.i;
			v.b = b->v.b;
			return v;
		}
		v = b->v;
		v.loc = e->loc;
		return v;
	}
	case AST_NEG: {
		value x = lower_expr(c, fr, e->lhs);
		if (x.k == V_INT && x.i == INT64_MIN) {
			diag_error(e->loc, "integer overflow: -(%" PRId64 ") does not fit in 64 bits", x.i);
			return poison;
		}
		if (x.k == V_INT) { x.i = -x.i; x.loc = e->loc; return x; }
		if (x.k == V_FLOAT) { x.f = -x.f; x.loc = e->loc; return x; }
		if (x.k == V_POISON)
			return poison;
		return op1(c, IR_NEG, as_tensor(c, x, "unary '-'", e->loc), e->loc);
	}
	case AST_BINOP: {
		value a = lower_expr(c, fr, e->lhs), b = lower_expr(c, fr, e->rhs);
		if (a.k == V_POISON || b.k == V_POISON)
			return poison;
		/* constant folding of attribute arithmetic (e.g. units * 2) */
		if ((a.k == V_INT || a.k == V_FLOAT) && (b.k == V_INT || b.k == V_FLOAT) && e->op != '@') {
			if (a.k == V_INT && b.k == V_INT && e->op != '/') {
				v.k = V_INT;
				bool ovf = e->op == '+' ? __builtin_add_overflow(a.i, b.i, &v.i) :
				           e->op == '-' ? __builtin_sub_overflow(a.i, b.i, &v.i) :
				           __builtin_mul_overflow(a.i, b.i, &v.i);
				if (ovf) {
					/* a wrapped value would silently become a dimension
					 * or an attribute */
					diag_error(e->loc, "integer overflow: %" PRId64 " %c %" PRId64 " does not fit "
					           "in 64 bits", a.i, e->op, b.i);
					return poison;
				}
				return v;
			}
			double x = a.k == V_INT ? (double)a.i : a.f, y = b.k == V_INT ? (double)b.i : b.f;
			v.k = V_FLOAT;
			v.f = e->op == '+' ? x + y : e->op == '-' ? x - y : e->op == '*' ? x * y : x / y;
			if (!isfinite(v.f)) {
				diag_error(e->loc, "%g %c %g is not a finite number", x, e->op, y);
				return poison;
			}
			return v;
		}
		switch (e->op) {
		case '@': {
			value pos[2] = { a, b };
			return b_matmul(c, fr, e, pos);
		}
		case '+': return op2(c, IR_ADD, a, b, e->loc);
		case '-': return op2(c, IR_SUB, a, b, e->loc);
		case '*': return op2(c, IR_MUL, a, b, e->loc);
		case '/': return op2(c, IR_DIV, a, b, e->loc);
		}
		nnd_ice("unknown binary operator '%c'", e->op);
	}
	case AST_CALL:
		return lower_call(c, fr, e);
	}
	return poison;
}

/* ------------------------------------------------------------ datasets */

static const char *resolve_path(lctx *c, const char *p)
{
	if (p[0] == '/')
		return p;
	char *dup = arena_strdup(c->a, c->f->path);
	const char *dir = dirname(dup);
	if (!strcmp(dir, "."))
		return p;
	return arena_printf(c->a, "%s/%s", dir, p);
}

static const char *str_attr(lctx *c, const ast_expr *call, const char *key, const ast_named **where)
{
	const ast_named *nd = named(call, key);
	*where = nd;
	if (!nd) {
		diag_error(call->loc, "%s needs the attribute '%s'", call->name, key);
		return NULL;
	}
	if (nd->value->kind != AST_STR) {
		diag_error(nd->value->loc, "%s: attribute '%s' must be a string", call->name, key);
		return NULL;
	}
	(void)c;
	return nd->value->sval;
}

static ir_dataset *probe_dataset(lctx *c, int i)
{
	if (c->dset_done[i])
		return c->dsets[i];
	c->dset_done[i] = true;
	const ast_dataset *ad = c->f->datasets[i];
	const ast_expr *l = ad->loader;
	static const char *const k_idx[] = { "images", "labels", NULL };
	static const char *const k_csv[] = { "path", "label", NULL };
	if (l->kind != AST_CALL || (strcmp(l->name, "idx") && strcmp(l->name, "csv"))) {
		diag_error(l->loc, "unknown dataset loader%s%s (expected idx(...) or csv(...))",
		           l->kind == AST_CALL ? " " : "", l->kind == AST_CALL ? l->name : "");
		return NULL;
	}
	bool idx = !strcmp(l->name, "idx");
	argspec s = { 0, 0, idx ? k_idx : k_csv };
	if (!check_args(l, &s))
		return NULL;
	ir_dataset *d = arena_alloc(c->a, sizeof *d);
	d->name = ad->name;
	d->loc = ad->loc;
	nnd_data nd;
	char err[1024];
	const ast_named *w1, *w2;
	int rc;
	if (idx) {
		const char *im = str_attr(c, l, "images", &w1), *lb = str_attr(c, l, "labels", &w2);
		if (!im || !lb)
			return NULL;
		d->kind = 0;
		d->images = resolve_path(c, im);
		d->labels = resolve_path(c, lb);
		d->field_names[0] = "images";
		rc = nnd_data_load_idx(d->images, d->labels, true, &nd, err, sizeof err);
	} else {
		const char *pa = str_attr(c, l, "path", &w1), *lb = str_attr(c, l, "label", &w2);
		if (!pa || !lb)
			return NULL;
		d->kind = 1;
		d->path = resolve_path(c, pa);
		d->label = lb;
		d->field_names[0] = "features";
		rc = nnd_data_load_csv(d->path, d->label, true, &nd, err, sizeof err);
	}
	d->field_names[1] = "labels";
	if (rc) {
		/* point at the file the message names */
		const ast_named *at = w1;
		if (idx && strstr(err, d->labels) == err)
			at = w2;
		diag_error(at->value->loc, "dataset '%s': %s", ad->name, err);
		return NULL;
	}
	d->n = nd.n;
	if (nd.names) {
		/* recorded in the manifest: the runtime matches CSV columns by name */
		d->ncolumns = (int)nd.dims[0][0];
		d->columns = arena_alloc(c->a, sizeof *d->columns * (size_t)d->ncolumns);
		for (int k = 0; k < d->ncolumns; k++)
			d->columns[k] = arena_strdup(c->a, nd.names[k]);
	}
	for (int f = 0; f < 2; f++) {
		ir_type t;
		memset(&t, 0, sizeof t);
		t.dt = nd.dtype[f] == 0 ? IR_F32 : nd.dtype[f] == 1 ? IR_I32 : IR_U8;
		t.rank = nd.rank[f] + 1;
		if (t.rank > IR_MAX_RANK) {
			diag_error(ad->loc, "dataset '%s': rows of rank %d are not supported", ad->name, nd.rank[f]);
			nnd_data_free(&nd);
			return NULL;
		}
		t.d[0] = (ir_dim){ 1, 1 };
		for (int k = 0; k < nd.rank[f]; k++)
			t.d[k + 1] = (ir_dim){ nd.dims[f][k], 0 };
		d->fields[f] = t;
	}
	nnd_data_free(&nd);
	c->dsets[i] = d;
	return d;
}

static int find_dataset(lctx *c, const char *name)
{
	for (int i = 0; i < c->f->ndatasets; i++)
		if (!strcmp(c->f->datasets[i]->name, name))
			return i;
	return -1;
}

/* ------------------------------------------------------- train blocks */

static const ast_setting *setting(const ast_train *t, const char *key)
{
	for (int i = 0; i < t->nsettings; i++)
		if (!strcmp(t->settings[i].key, key))
			return &t->settings[i];
	return NULL;
}

static bool setting_int(const ast_train *t, const char *key, int64_t dflt, int64_t *out)
{
	const ast_setting *s = setting(t, key);
	if (!s) { *out = dflt; return true; }
	if (s->expr->kind != AST_INT || s->expr->ival <= 0) {
		diag_error(s->expr->loc, "%s must be a positive integer", key);
		return false;
	}
	*out = s->expr->ival;
	return true;
}

static ir_dataset *setting_dataset(lctx *c, const ast_train *t, const char *key, bool required)
{
	const ast_setting *s = setting(t, key);
	if (!s) {
		if (required)
			diag_error(t->loc, "train block '%s' has no '%s' line", t->name, key);
		return NULL;
	}
	if (s->expr->kind != AST_NAME) {
		diag_error(s->expr->loc, "%s: expected the name of a dataset", key);
		return NULL;
	}
	int i = find_dataset(c, s->expr->name);
	if (i < 0) {
		diag_error(s->expr->loc, "unknown dataset '%s'", s->expr->name);
		return NULL;
	}
	return probe_dataset(c, i);
}

static void lower_optimizer(lctx *c, frame *fr, const ast_train *t, ir_program *p)
{
	static const char *const k_sgd[] = { "lr", "momentum", "weight_decay", "nesterov", NULL };
	static const char *const k_adam[] = { "lr", "beta1", "beta2", "eps", "weight_decay", NULL };
	const ast_setting *s = setting(t, "optimizer");
	p->opt = IR_OPT_SGD;
	p->lr = 0.01;
	p->beta1 = 0.9;
	p->beta2 = 0.999;
	p->eps = 1e-8;
	if (!s) {
		diag_error(t->loc, "train block '%s' has no 'optimizer' line", t->name);
		return;
	}
	const ast_expr *e = s->expr;
	if (e->kind != AST_CALL || (strcmp(e->name, "sgd") && strcmp(e->name, "adam") && strcmp(e->name, "adamw"))) {
		diag_error(e->loc, "unknown optimizer (expected sgd(...), adam(...) or adamw(...))");
		return;
	}
	bool sgd = !strcmp(e->name, "sgd");
	argspec sp = { 0, 0, sgd ? k_sgd : k_adam };
	if (!check_args(e, &sp))
		return;
	if (sgd) {
		p->opt = IR_OPT_SGD;
		if (!attr_num(c, fr, e, "lr", 0, true, &p->lr) ||
		    !attr_num(c, fr, e, "momentum", 0, false, &p->momentum) ||
		    !attr_num(c, fr, e, "weight_decay", 0, false, &p->weight_decay) ||
		    !attr_bool(c, fr, e, "nesterov", false, &p->nesterov))
			return;
		if (p->nesterov && p->momentum == 0)
			diag_error(e->loc, "sgd: nesterov needs a momentum > 0");
	} else {
		p->opt = !strcmp(e->name, "adam") ? IR_OPT_ADAM : IR_OPT_ADAMW;
		if (!attr_num(c, fr, e, "lr", 0.001, false, &p->lr) ||
		    !attr_num(c, fr, e, "beta1", 0.9, false, &p->beta1) ||
		    !attr_num(c, fr, e, "beta2", 0.999, false, &p->beta2) ||
		    !attr_num(c, fr, e, "eps", 1e-8, false, &p->eps) ||
		    !attr_num(c, fr, e, "weight_decay", p->opt == IR_OPT_ADAMW ? 0.01 : 0, false,
		              &p->weight_decay))
			return;
		if (!(p->beta1 >= 0 && p->beta1 < 1) || !(p->beta2 >= 0 && p->beta2 < 1))
			diag_error(e->loc, "%s: beta1 and beta2 must lie in [0, 1)", e->name);
		if (!(p->eps > 0))
			diag_error(e->loc, "%s: eps must be positive", e->name);
		else
			check_f32_range(e, "eps", p->eps);
	}
	if (!(p->lr > 0))
		diag_error(e->loc, "%s: lr must be positive", e->name);
	else
		check_f32_range(e, "lr", p->lr);
	if (!(p->momentum >= 0 && p->momentum < 1))
		diag_error(e->loc, "%s: momentum must lie in [0, 1)", e->name);
	if (!(p->weight_decay >= 0))
		diag_error(e->loc, "%s: weight_decay must not be negative", e->name);
	else
		check_f32_range(e, "weight_decay", p->weight_decay);
}

static bool lower_schedule(lctx *c, frame *fr, const ast_expr *e, ir_schedule *s, bool nested)
{
	static const char *const k_const[] = { NULL };
	static const char *const k_step[] = { "every", "gamma", NULL };
	static const char *const k_cos[] = { "epochs", NULL };
	static const char *const k_warm[] = { "steps", "then", NULL };
	if (e->kind != AST_CALL) {
		diag_error(e->loc, "expected a schedule: constant(), step(...), cosine(...) or warmup(...)");
		return false;
	}
	argspec sp = { 0, 0, k_const };
	if (!strcmp(e->name, "constant")) {
		if (!check_args(e, &sp)) return false;
		s->kind = IR_SCHED_CONSTANT;
		return true;
	}
	if (!strcmp(e->name, "step")) {
		sp.keys = k_step;
		if (!check_args(e, &sp)) return false;
		s->kind = IR_SCHED_STEP;
		if (!attr_int(c, fr, e, "every", 1, true, &s->every) ||
		    !attr_num(c, fr, e, "gamma", 0.1, false, &s->gamma))
			return false;
		if (s->every <= 0) {
			diag_error(e->loc, "step: every must be a positive number of epochs");
			return false;
		}
		/* the rate must stay positive, as lr must (lower_optimizer) */
		if (!(s->gamma > 0)) {
			diag_error(attr_loc(e, "gamma"), "step: gamma = %g must be positive", s->gamma);
			return false;
		}
		return check_f32_range(e, "gamma", s->gamma);
	}
	if (!strcmp(e->name, "cosine")) {
		sp.keys = k_cos;
		if (!check_args(e, &sp)) return false;
		s->kind = IR_SCHED_COSINE;
		if (!attr_int(c, fr, e, "epochs", 0, true, &s->epochs))
			return false;
		if (s->epochs <= 0) {
			diag_error(e->loc, "cosine: epochs must be positive");
			return false;
		}
		return true;
	}
	if (!strcmp(e->name, "warmup") && !nested) {
		sp.keys = k_warm;
		if (!check_args(e, &sp)) return false;
		if (!attr_int(c, fr, e, "steps", 0, true, &s->warmup_steps))
			return false;
		if (s->warmup_steps <= 0) {
			diag_error(e->loc, "warmup: steps must be positive");
			return false;
		}
		const ast_named *then = named(e, "then");
		s->kind = IR_SCHED_CONSTANT;
		return then ? lower_schedule(c, fr, then->value, s, true) : true;
	}
	diag_error(e->loc, "unknown schedule '%s' (expected constant, step, cosine%s)", e->name,
	           nested ? "" : " or warmup");
	return false;
}

static const char *const known_settings[] = {
	"data", "loss", "metric", "optimizer", "schedule", "batch", "epochs", "shuffle", "eval", NULL,
};

/* The dataset's fields are the names a train block sees: each becomes an
 * INPUT node of the current graph, args.inputs[k] for the same k in every
 * graph of the program. */
static void bind_fields(lctx *c, const ast_train *t, ir_program *p, frame *fr)
{
	for (int f = 0; f < 2; f++) {
		int k = -1;
		for (int i = 0; i < p->ninputs; i++)
			if (p->field_of_input[i] == f)
				k = i;
		if (k < 0) {
			k = p->ninputs++;
			p->field_of_input[k] = f;
		}
		int64_t ia[4] = { k, 0, 0, 0 };
		int n = emit(c, IR_INPUT, 0, NULL, &p->data->fields[f], ia, NULL, t->loc,
		             p->data->field_names[f]);
		bind(c, fr, p->data->field_names[f], tensor(n, t->loc), (src_loc){ 0 });
	}
}

/* Lowers the loss (and metrics in eval mode) into graph g. */
static void lower_objectives(lctx *c, const ast_train *t, ir_program *p, ir_graph *g, bool eval,
                             bool skip_loss)
{
	c->g = g;
	c->eval_mode = eval;
	frame fr;
	memset(&fr, 0, sizeof fr);
	bind_fields(c, t, p, &fr);
	int *outs = arena_alloc(c->a, (size_t)(t->nsettings + 1) * sizeof *outs);
	const char **names = arena_alloc(c->a, (size_t)(t->nsettings + 1) * sizeof *names);
	int nout = 0;
	for (int i = 0; i < t->nsettings; i++) {
		const ast_setting *s = &t->settings[i];
		bool is_loss = !strcmp(s->key, "loss"), is_metric = !strcmp(s->key, "metric");
		if (!is_loss && !(is_metric && eval))
			continue;
		if (is_loss && skip_loss)
			continue;
		const char *name = is_loss ? "loss" : s->metric_name;
		begin_statement(c, &fr, name, s->expr);
		value v = lower_expr(c, &fr, s->expr);
		if (v.k == V_POISON)
			continue;
		if (v.k != V_TENSOR || vtype(c, v)->rank != 0 || vtype(c, v)->dt != IR_F32) {
			char b[128];
			diag_error(s->expr->loc, "%s must be a scalar f32[], found %s", is_loss ? "the loss" : "a metric",
			           v.k == V_TENSOR ? ir_type_str(vtype(c, v), b, sizeof b) : vkind_name(v.k));
			continue;
		}
		if (is_loss)
			g->loss = v.node;
		/* the train graph reports only the loss */
		if (is_loss || eval) {
			outs[nout] = v.node;
			names[nout++] = name;
		}
	}
	/* loss first: the runtime reads outputs[0] as the loss */
	for (int i = 0; i < nout; i++)
		if (!strcmp(names[i], "loss") && i) {
			int o = outs[i]; const char *nm = names[i];
			memmove(outs + 1, outs, (size_t)i * sizeof *outs);
			memmove(names + 1, names, (size_t)i * sizeof *names);
			outs[0] = o; names[0] = nm;
		}
	g->outputs = outs;
	g->output_names = names;
	g->noutputs = nout;
}

/* The infer graph: the loss's first argument (the model's prediction, as
 * in cross_entropy(mlp(images), labels)) in evaluation mode.  The loss
 * statement's instance paths are kept, so the parameters are the same. */
static void lower_prediction(lctx *c, const ast_train *t, ir_program *p)
{
	const ast_setting *ls = setting(t, "loss");
	if (!ls || ls->expr->kind != AST_CALL || ls->expr->nitems < 1 || find_def(c, ls->expr->name))
		return;
	ir_graph *g = ir_graph_new(c->a, "infer");
	g->bmax = p->batch;
	c->g = g;
	c->eval_mode = true;
	frame fr;
	memset(&fr, 0, sizeof fr);
	bind_fields(c, t, p, &fr);
	begin_statement(c, &fr, "loss", ls->expr);
	int before = diag_count();
	value v = lower_expr(c, &fr, ls->expr->items[0]);
	if (diag_count() != before)
		nnd_ice("lowering the prediction of '%s' reported errors the loss did not", t->name);
	if (v.k != V_TENSOR)
		return;
	const ir_type *rt = vtype(c, v);
	if (rt->rank < 1 || rt->d[0].c != 1 || rt->d[0].sym != 1 || rt->dt != IR_F32 ||
	    ir_type_numel(rt).sym != 1)
		return;     /* not one row per sample: no inference graph */
	int r = v.node;
	if (ir_ops[g->nodes[r]->op].flags & IR_F_LEAF) {
		/* a leaf keeps its own storage: copy it into the result */
		ir_node *cp = ir_add(c->a, g, IR_RESHAPE, 1, &r, rt);
		cp->loc = t->loc;
		cp->path = "loss";
		r = cp->id;
	}
	g->result = r;
	p->infer_g = g;
}

static ir_program *lower_train(lctx *c, const ast_train *t)
{
	ir_program *p = arena_alloc(c->a, sizeof *p);
	p->train_name = t->name;
	p->source_path = c->f->path;
	p->seed = c->f->has_seed ? c->f->seed : 0;
	c->p = p;
	c->params = (ptrvec){ 0 };
	c->states = (ptrvec){ 0 };
	frame fr;
	memset(&fr, 0, sizeof fr);

	/* settings: unknown keys, duplicates, types */
	for (int i = 0; i < t->nsettings; i++) {
		const ast_setting *s = &t->settings[i];
		bool known = false;
		for (int k = 0; known_settings[k]; k++)
			if (!strcmp(known_settings[k], s->key))
				known = true;
		if (!known) {
			diag_error(s->loc, "unknown setting '%s' in train block '%s'", s->key, t->name);
			continue;
		}
		if (strcmp(s->key, "metric"))
			for (int j = 0; j < i; j++)
				if (!strcmp(t->settings[j].key, s->key)) {
					diag_error(s->loc, "setting '%s' given twice", s->key);
					break;
				}
		if (!strcmp(s->key, "metric")) {
			if (!strcmp(s->metric_name, "loss"))
				diag_error(s->metric_loc, "a metric may not be called 'loss'");
			for (int j = 0; j < i; j++)
				if (!strcmp(t->settings[j].key, "metric") &&
				    !strcmp(t->settings[j].metric_name, s->metric_name))
					diag_error(s->metric_loc, "metric '%s' defined twice", s->metric_name);
		}
	}
	p->data = setting_dataset(c, t, "data", true);
	p->eval = setting_dataset(c, t, "eval", false);
	if (p->data && p->eval) {
		for (int f = 0; f < 2; f++)
			if (!ir_type_eq(&p->data->fields[f], &p->eval->fields[f])) {
				char a[128], b[128];
				diag_error(setting(t, "eval")->expr->loc, "eval dataset '%s' has %s %s, but the "
				           "training dataset '%s' has %s", p->eval->name, p->eval->field_names[f],
				           ir_type_str(&p->eval->fields[f], a, sizeof a), p->data->name,
				           ir_type_str(&p->data->fields[f], b, sizeof b));
				p->eval = NULL;
				break;
			}
	}
	lower_optimizer(c, &fr, t, p);
	const ast_setting *s = setting(t, "schedule");
	p->sched.kind = IR_SCHED_CONSTANT;
	if (s)
		lower_schedule(c, &fr, s->expr, &p->sched, false);
	/* a bad setting is reported and replaced by its default, so that the
	 * loss and metrics below are still checked: every error in one run */
	if (!setting_int(t, "batch", 32, &p->batch))
		p->batch = 32;
	if (!setting_int(t, "epochs", 1, &p->epochs))
		p->epochs = 1;
	p->shuffle = true;
	if ((s = setting(t, "shuffle"))) {
		if (s->expr->kind != AST_BOOL)
			diag_error(s->expr->loc, "shuffle must be true or false");
		else
			p->shuffle = s->expr->bval;
	}
	if (!setting(t, "loss")) {
		diag_error(t->loc, "train block '%s' has no 'loss' line", t->name);
		return NULL;
	}
	if (!p->data)
		return NULL;

	p->field_of_input = arena_alloc(c->a, 2 * sizeof(int));
	p->train = ir_graph_new(c->a, "train");
	p->train->bmax = p->batch;
	int errors = diag_count();
	lower_objectives(c, t, p, p->train, false, false);
	bool loss_failed = diag_count() > errors;
	p->eval_g = ir_graph_new(c->a, "eval");
	p->eval_g->bmax = p->batch;
	/* the loss was checked once already: report its errors once */
	lower_objectives(c, t, p, p->eval_g, true, loss_failed);
	if (diag_count() > errors)
		return NULL;
	lower_prediction(c, t, p);

	p->nparams = c->params.n;
	p->params = arena_alloc(c->a, (size_t)(p->nparams + 1) * sizeof *p->params);
	for (int i = 0; i < p->nparams; i++) {
		p->params[i] = *(ir_tensor *)c->params.v[i];
		p->params[i].offset = p->param_floats;
		p->param_floats += ir_type_numel(&p->params[i].type).c;
	}
	/* each tensor is within SHAPE_MAX_NUMEL; so must their blocks be */
	if (p->param_floats > SHAPE_MAX_NUMEL)
		diag_error(t->loc, "train block '%s': its parameters hold %" PRId64 " floats, more than "
		           "the limit of 2^40", t->name, p->param_floats);
	p->nstates = c->states.n;
	p->states = arena_alloc(c->a, (size_t)(p->nstates + 1) * sizeof *p->states);
	for (int i = 0; i < p->nstates; i++) {
		p->states[i] = *(ir_tensor *)c->states.v[i];
		p->states[i].offset = p->state_floats;
		p->state_floats += ir_type_numel(&p->states[i].type).c;
	}
	if (p->state_floats > SHAPE_MAX_NUMEL)
		diag_error(t->loc, "train block '%s': its state buffers hold %" PRId64 " floats, more "
		           "than the limit of 2^40", t->name, p->state_floats);
	if (p->nparams == 0 && p->train->loss >= 0)     /* else the loss's error was reported */
		diag_error(t->loc, "train block '%s': the loss has no parameters to train", t->name);
	return p;
}

/* A dimension name of a tensor type in a def signature must be a symbol
 * or an int argument: a name that is also a tensor argument, or a float,
 * str or bool attribute, would be bound as a symbol at one use and read as
 * that argument at another.  Reports such names; false if there are any. */
static bool check_sig_type(const ast_def *d, const ast_type *t, const char *what)
{
	bool ok = true;
	for (int k = 0; t && t->is_tensor && k < t->rank; k++) {
		const ast_dim *dim = &t->dims[k];
		if (!dim->sym)
			continue;
		for (int j = 0; j < d->nargs; j++) {
			const ast_arg *a = &d->args[j];
			if (strcmp(a->name, dim->sym) || !strcmp(a->type->base, "int"))
				continue;
			if (a->type->is_tensor)
				diag_error(dim->loc, "dimension '%s' in %s of %s has the name of the tensor argument "
				           "'%s'; a dimension is a symbol or an int argument", dim->sym, what, d->name,
				           a->name);
			else
				diag_error(dim->loc, "dimension '%s' in %s of %s names the %s argument '%s'; only "
				           "int arguments can be dimensions", dim->sym, what, d->name, a->type->base,
				           a->name);
			ok = false;
		}
	}
	return ok;
}

static bool check_signature(lctx *c, const ast_def *d)
{
	bool ok = true;
	for (int j = 0; j < d->nargs; j++) {
		const char *what = arena_printf(c->a, "the type of argument '%s'", d->args[j].name);
		ok = check_sig_type(d, d->args[j].type, what) && ok;
	}
	return check_sig_type(d, d->ret, "the result type") && ok;
}

ir_module *pass_lower(arena *a, const ast_file *f)
{
	lctx c;
	memset(&c, 0, sizeof c);
	c.a = a;
	c.f = f;
	c.m = arena_alloc(a, sizeof *c.m);
	c.m->source_path = f->path;
	c.dsets = arena_alloc(a, (size_t)(f->ndatasets + 1) * sizeof *c.dsets);
	c.dset_done = arena_alloc(a, (size_t)(f->ndatasets + 1));
	c.bad_sig = arena_alloc(a, (size_t)(f->ndefs + 1));

	/* names bound twice at the top level */
	for (int i = 0; i < f->ndefs; i++)
		for (int j = 0; j < i; j++)
			if (!strcmp(f->defs[i]->name, f->defs[j]->name)) {
				diag_error(f->defs[i]->loc, "def '%s' is defined twice", f->defs[i]->name);
				diag_note(f->defs[j]->loc, "first defined here");
			}
	for (int i = 0; i < f->ndatasets; i++) {
		for (int j = 0; j < i; j++)
			if (!strcmp(f->datasets[i]->name, f->datasets[j]->name))
				diag_error(f->datasets[i]->loc, "dataset '%s' is defined twice", f->datasets[i]->name);
		probe_dataset(&c, i);
	}
	for (int i = 0; i < f->ndefs; i++) {
		const ast_def *d = f->defs[i];
		for (size_t k = 0; k < sizeof builtins / sizeof builtins[0]; k++)
			if (!strcmp(builtins[k].name, d->name))
				diag_error(d->loc, "def '%s' has the name of a built-in op", d->name);
		for (int x = 0; x < d->nargs; x++)
			for (int y = 0; y < x; y++)
				if (!strcmp(d->args[x].name, d->args[y].name))
					diag_error(d->args[x].loc, "argument '%s' of %s is declared twice",
					           d->args[x].name, d->name);
		c.bad_sig[i] = !check_signature(&c, d);
	}
	if (f->ntrains == 0)
		diag_error((src_loc){ f->path, 1, 1 }, "no train block: nothing to compile");
	for (int i = 0; i < f->ntrains; i++) {
		for (int j = 0; j < i; j++)
			if (!strcmp(f->trains[i]->name, f->trains[j]->name))
				diag_error(f->trains[i]->loc, "train block '%s' is defined twice", f->trains[i]->name);
		ir_program *p = lower_train(&c, f->trains[i]);
		if (!c.m->progs)
			c.m->progs = arena_alloc(a, (size_t)(f->ntrains + 1) * sizeof *c.m->progs);
		if (p)
			c.m->progs[c.m->nprogs++] = p;
	}
	return c.m;
}
