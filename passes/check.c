/* check.c - checks of the defs that no train block reaches.
 *
 * Lowering (passes/lower.c) checks a def's body when it instantiates it,
 * with its arguments' shapes known.  A def that nothing calls is never
 * instantiated, so without this pass its mistakes would wait until the
 * day someone calls it.  Here every such def gets the checks that do not
 * need shapes: names bound before use, called functions and initializers
 * exist, single assignment, a return at the end.  The messages are
 * lowering's, word for word, so a def reads the same either way.  Defs
 * reached from a train block are left to lowering, so no error is
 * reported twice; shapes are checked at instantiation only (language.md).
 *
 * The walks recurse over expressions: the parser bounds their depth
 * (AST_MAX_DEPTH).  The names of the builtins and initializers are
 * lowering's own (lower_is_builtin, lower_is_initializer). */
#include <stdlib.h>
#include <string.h>

#include "passes.h"

static const ast_def *check_find_def(const ast_file *f, const char *name)
{
	for (int i = 0; i < f->ndefs; i++)
		if (!strcmp(f->defs[i]->name, name))
			return f->defs[i];
	return NULL;
}

/* ------------------------------------------------ reachability -- */

/* Marks the defs an expression calls, and (through the worklist) the
 * defs those call.  An initializer call (the top of a param or state
 * statement) is not a call of a def, even if a def has its name, so
 * `top_init` skips its name and looks only at its arguments. */
static void check_mark_expr(const ast_file *f, const ast_expr *e, bool top_init,
			    bool *reached, int *work, int *nwork)
{
	if (!e)
		return;
	if (e->kind == AST_CALL && !top_init) {
		for (int i = 0; i < f->ndefs; i++)
			if (!reached[i] && !strcmp(f->defs[i]->name, e->name)) {
				reached[i] = true;
				work[(*nwork)++] = i;
			}
	}
	check_mark_expr(f, e->lhs, false, reached, work, nwork);
	check_mark_expr(f, e->rhs, false, reached, work, nwork);
	for (int i = 0; i < e->nitems; i++)
		check_mark_expr(f, e->items[i], false, reached, work, nwork);
	for (int i = 0; i < e->nnamed; i++)
		check_mark_expr(f, e->named[i].value, false, reached, work, nwork);
}

/* ------------------------------------------------------- scope -- */

typedef struct check_name {
	const char *name;
	src_loc loc;
} check_name;

typedef struct check_scope {
	const ast_file *f;
	const ast_def *d;
	check_name *v;
	int n, cap;
} check_scope;

static const check_name *check_lookup(const check_scope *s, const char *name)
{
	for (int i = s->n - 1; i >= 0; i--)
		if (!strcmp(s->v[i].name, name))
			return &s->v[i];
	return NULL;
}

static void check_bind(check_scope *s, const char *name, src_loc loc)
{
	if (s->n == s->cap) {
		s->cap = s->cap ? s->cap * 2 : 16;
		s->v = xrealloc(s->v, (size_t)s->cap * sizeof *s->v);
	}
	s->v[s->n++] = (check_name){ name, loc };
}

/* ------------------------------------------------------- bodies -- */

static int check_expr(check_scope *s, const ast_expr *e)
{
	if (!e)
		return 0;
	int errors = 0;
	switch (e->kind) {
	case AST_NAME:
		if (!check_lookup(s, e->name)) {
			diag_error(e->loc, "unknown name '%s'", e->name);
			errors++;
		}
		return errors;
	case AST_CALL:
		if (!check_find_def(s->f, e->name) && !lower_is_builtin(e->name)) {
			diag_error(e->loc, "unknown function '%s'", e->name);
			errors++;
		}
		break;
	default:
		break;
	}
	errors += check_expr(s, e->lhs);
	errors += check_expr(s, e->rhs);
	for (int i = 0; i < e->nitems; i++)
		errors += check_expr(s, e->items[i]);
	for (int i = 0; i < e->nnamed; i++)
		errors += check_expr(s, e->named[i].value);
	return errors;
}

/* The initializer of a param or state: lower_init's rules, shapes aside. */
static int check_init(check_scope *s, const ast_expr *e)
{
	if (!e)
		return 0;
	if (e->kind != AST_CALL) {
		diag_error(e->loc, "expected an initializer call like zeros() or kaiming_uniform()");
		return 1;
	}
	if (!lower_is_initializer(e->name)) {
		diag_error(e->loc, "unknown initializer '%s' (expected zeros, ones, constant, uniform, "
			   "normal, xavier_uniform, kaiming_uniform or kaiming_normal)", e->name);
		return 1;
	}
	int errors = 0;
	for (int i = 0; i < e->nnamed; i++)
		errors += check_expr(s, e->named[i].value);
	return errors;
}

/* Binds names in lowering's order: the arguments, then the symbolic
 * dimensions of the tensor arguments' types (a dimension is a value in a
 * reshape list), then each statement after its expression. */
static int check_def(const ast_file *f, const ast_def *d)
{
	check_scope s = { .f = f, .d = d };
	for (int i = 0; i < d->nargs; i++)
		check_bind(&s, d->args[i].name, d->args[i].loc);
	for (int i = 0; i < d->nargs; i++) {
		const ast_type *t = d->args[i].type;
		for (int k = 0; t && t->is_tensor && k < t->rank; k++)
			if (t->dims[k].sym && !check_lookup(&s, t->dims[k].sym))
				check_bind(&s, t->dims[k].sym, t->dims[k].loc);
	}
	int errors = 0;
	bool returned = false;
	for (int i = 0; i < d->nstmts; i++) {
		const ast_stmt *st = d->stmts[i];
		if (returned) {
			diag_error(st->loc, "statement after return in def '%s'", d->name);
			errors++;
			break;
		}
		if (st->kind == AST_RETURN) {
			errors += check_expr(&s, st->expr);
			returned = true;
			continue;
		}
		const check_name *old = check_lookup(&s, st->name);
		if (old) {
			diag_error(st->name_loc, "name '%s' is bound twice in def '%s'", st->name, d->name);
			if (old->loc.line)
				diag_note(old->loc, "'%s' was first bound here", st->name);
			errors++;
			continue;
		}
		if (st->kind == AST_ASSIGN)
			errors += check_expr(&s, st->expr);
		else
			errors += check_init(&s, st->expr);
		check_bind(&s, st->name, st->name_loc);
	}
	if (!returned) {
		diag_error(d->loc, "def '%s' has no return statement", d->name);
		errors++;
	}
	free(s.v);
	return errors;
}

int pass_check_uncalled_defs(const ast_file *f)
{
	if (!f || f->ndefs == 0)
		return 0;
	bool *reached = xcalloc((size_t)f->ndefs, sizeof *reached);
	int *work = xcalloc((size_t)f->ndefs, sizeof *work);
	int nwork = 0;
	for (int t = 0; t < f->ntrains; t++)
		for (int k = 0; k < f->trains[t]->nsettings; k++)
			check_mark_expr(f, f->trains[t]->settings[k].expr, false, reached, work,
					&nwork);
	while (nwork > 0) {
		const ast_def *d = f->defs[work[--nwork]];
		for (int i = 0; i < d->nstmts; i++) {
			const ast_stmt *st = d->stmts[i];
			check_mark_expr(f, st->expr, st->kind == AST_PARAM || st->kind == AST_STATE,
					reached, work, &nwork);
		}
	}
	int errors = 0;
	for (int i = 0; i < f->ndefs; i++) {
		/* a def defined twice is already an error of lowering, and
		 * which body a call reaches is the first one's */
		if (!reached[i] && check_find_def(f, f->defs[i]->name) == f->defs[i])
			errors += check_def(f, f->defs[i]);
	}
	free(work);
	free(reached);
	return errors;
}
