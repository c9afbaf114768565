/* ast.c - canonical text dump of the AST (nndc emit --stage ast).
 *
 * Layout: one S-expression per node; declarations, statements and settings
 * each start a line, expressions stay on their statement's line.  A node's
 * own location follows its head as "@LINE:COL"; a name that is part of a
 * node carries its location glued on as "name@LINE:COL".  The output
 * depends on nothing but the tree (floats use %.17g), so it can be compared
 * byte for byte in tests. */
#include "ast.h"

#include <inttypes.h>

static void print_loc(FILE *out, src_loc l)
{
	fprintf(out, "@%d:%d", l.line, l.col);
}

static void print_str(FILE *out, const char *s)
{
	fputc('"', out);
	for (const unsigned char *p = (const unsigned char *)s; p && *p; p++) {
		switch (*p) {
		case '"': fputs("\\\"", out); break;
		case '\\': fputs("\\\\", out); break;
		case '\n': fputs("\\n", out); break;
		case '\t': fputs("\\t", out); break;
		case '\r': fputs("\\r", out); break;
		default:
			if (*p < 0x20 || *p == 0x7f)
				fprintf(out, "\\x%02x", *p);
			else
				fputc(*p, out);
		}
	}
	fputc('"', out);
}

static const char *name_or(const char *s)
{
	return s ? s : "?";
}

static void print_expr(FILE *out, const ast_expr *e)
{
	if (!e) {
		fputs("(missing)", out);
		return;
	}
	switch (e->kind) {
	case AST_NAME:
		fprintf(out, "(name %s ", name_or(e->name));
		print_loc(out, e->loc);
		break;
	case AST_INT:
		fprintf(out, "(int %" PRId64 " ", e->ival);
		print_loc(out, e->loc);
		break;
	case AST_FLOAT:
		fprintf(out, "(float %.17g ", e->fval);
		print_loc(out, e->loc);
		break;
	case AST_STR:
		fputs("(str ", out);
		print_str(out, e->sval);
		fputc(' ', out);
		print_loc(out, e->loc);
		break;
	case AST_BOOL:
		fprintf(out, "(bool %s ", e->bval ? "true" : "false");
		print_loc(out, e->loc);
		break;
	case AST_LIST:
		fputs("(list ", out);
		print_loc(out, e->loc);
		for (int i = 0; i < e->nitems; i++) {
			fputc(' ', out);
			print_expr(out, e->items[i]);
		}
		break;
	case AST_CALL:
		fprintf(out, "(call %s ", name_or(e->name));
		print_loc(out, e->loc);
		for (int i = 0; i < e->nitems; i++) {
			fputc(' ', out);
			print_expr(out, e->items[i]);
		}
		for (int i = 0; i < e->nnamed; i++) {
			fprintf(out, " (named %s", name_or(e->named[i].key));
			print_loc(out, e->named[i].loc);
			fputc(' ', out);
			print_expr(out, e->named[i].value);
			fputc(')', out);
		}
		break;
	case AST_BINOP:
		fprintf(out, "(binop %c ", e->op ? e->op : '?');
		print_loc(out, e->loc);
		fputc(' ', out);
		print_expr(out, e->lhs);
		fputc(' ', out);
		print_expr(out, e->rhs);
		break;
	case AST_NEG:
		fputs("(neg ", out);
		print_loc(out, e->loc);
		fputc(' ', out);
		print_expr(out, e->lhs);
		break;
	default:
		fprintf(out, "(unknown-expr-kind %d", (int)e->kind);
		break;
	}
	fputc(')', out);
}

static void print_type(FILE *out, const ast_type *t)
{
	if (!t) {
		fputs("(missing)", out);
		return;
	}
	fprintf(out, "(type %s", name_or(t->base));
	if (t->is_tensor) {
		fputc('[', out);
		for (int i = 0; i < t->rank; i++) {
			if (i)
				fputs(", ", out);
			if (t->dims[i].sym)
				fputs(t->dims[i].sym, out);
			else
				fprintf(out, "%" PRId64, t->dims[i].val);
		}
		fputc(']', out);
	}
	fputc(' ', out);
	print_loc(out, t->loc);
	fputc(')', out);
}

static void print_stmt(FILE *out, const ast_stmt *s)
{
	static const char *const kinds[] = {
		[AST_PARAM] = "param", [AST_STATE] = "state",
		[AST_ASSIGN] = "assign", [AST_RETURN] = "return",
	};
	const char *k = (unsigned)s->kind < sizeof kinds / sizeof kinds[0] ?
			kinds[s->kind] : "unknown-stmt";
	fprintf(out, "\n    (%s ", k);
	print_loc(out, s->loc);
	if (s->name) {
		fprintf(out, " %s", s->name);
		print_loc(out, s->name_loc);
	}
	if (s->type) {
		fputc(' ', out);
		print_type(out, s->type);
	}
	fputc(' ', out);
	print_expr(out, s->expr);
	fputc(')', out);
}

static void print_def(FILE *out, const ast_def *d)
{
	fprintf(out, "\n  (def %s ", name_or(d->name));
	print_loc(out, d->loc);
	for (int i = 0; i < d->nargs; i++) {
		fprintf(out, "\n    (arg %s", name_or(d->args[i].name));
		print_loc(out, d->args[i].loc);
		fputc(' ', out);
		print_type(out, d->args[i].type);
		fputc(')', out);
	}
	fputs("\n    (ret ", out);
	print_type(out, d->ret);
	fputc(')', out);
	for (int i = 0; i < d->nstmts; i++)
		print_stmt(out, d->stmts[i]);
	fputc(')', out);
}

static void print_train(FILE *out, const ast_train *t)
{
	fprintf(out, "\n  (train %s ", name_or(t->name));
	print_loc(out, t->loc);
	for (int i = 0; i < t->nsettings; i++) {
		const ast_setting *s = &t->settings[i];
		fprintf(out, "\n    (setting %s ", name_or(s->key));
		print_loc(out, s->loc);
		if (s->metric_name) {
			fprintf(out, " %s", s->metric_name);
			print_loc(out, s->metric_loc);
		}
		fputc(' ', out);
		print_expr(out, s->expr);
		fputc(')', out);
	}
	fputc(')', out);
}

void ast_print(const ast_file *f, FILE *out)
{
	if (!f) {
		fputs("(file missing)\n", out);
		return;
	}
	fputs("(file ", out);
	print_str(out, f->path);
	fprintf(out, " version=%" PRId64 " ", f->version);
	print_loc(out, f->version_loc);
	if (f->has_seed) {
		fprintf(out, " seed=%" PRIu64 " ", f->seed);
		print_loc(out, f->seed_loc);
	} else {
		fputs(" seed=none", out);
	}
	for (int i = 0; i < f->ndatasets; i++) {
		const ast_dataset *d = f->datasets[i];
		fprintf(out, "\n  (dataset %s ", name_or(d->name));
		print_loc(out, d->loc);
		fputc(' ', out);
		print_expr(out, d->loader);
		fputc(')', out);
	}
	for (int i = 0; i < f->ndefs; i++)
		print_def(out, f->defs[i]);
	for (int i = 0; i < f->ntrains; i++)
		print_train(out, f->trains[i]);
	fputs(")\n", out);
}
