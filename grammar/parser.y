/* parser.y - grammar of the .nnd language (see docs/language.md), building
 * the AST of frontend/ast.h.
 *
 * Error handling: every syntax error goes through diag_error with the
 * location of the offending token.  Recovery points are statements (up to
 * ';'), def/train bodies and top-level items (up to ';' or '}'), so one run
 * reports every error of a file.  LAC keeps the "expected ..." lists exact
 * despite default reductions. */

%define api.pure full
%define parse.error custom
%define parse.lac full
%locations
%expect 0

%lex-param   {yyscan_t scanner}
%parse-param {yyscan_t scanner} {parse_ctx *ctx}

%code requires {
#include "frontend/ast.h"

#ifndef YY_TYPEDEF_YY_SCANNER_T
#define YY_TYPEDEF_YY_SCANNER_T
typedef void *yyscan_t;
#endif

/* Per-parse state shared by the lexer (as its extra data) and the parser. */
typedef struct parse_ctx {
	arena *a;
	const char *path;
	ast_file *file;
	ptrvec datasets, defs, trains;
	int line, col;            /* lexer: position of the next byte */
	int end_line, end_col;    /* lexer: end of the last token */
	const char *tok_text;     /* spelling of the last identifier/number */
	int ntokens;              /* tokens handed to the parser so far */
	src_loc first_loc;        /* of the first token */
	bool seen_header;
} parse_ctx;

/* Call arguments while they are being collected. */
typedef struct parse_args {
	ptrvec pos;               /* ast_expr * */
	ptrvec named;             /* ast_named * */
} parse_args;
}

%union {
	char *str;
	int64_t ival;
	double fval;
	ast_expr *expr;
	ast_type *type;
	ast_dim *dim;
	ast_arg *arg;
	ast_stmt *stmt;
	ast_def *def;
	ast_dataset *dataset;
	ast_train *train;
	ast_setting *setting;
	ast_named *named;
	ptrvec *vec;
	parse_args *args;
}

%code {
#include <inttypes.h>
#include <string.h>
#include "lexer.h"

static int parser_lex(YYSTYPE *lval, YYLTYPE *lloc, yyscan_t scanner);
#define yylex parser_lex

static void yyerror(YYLTYPE *lloc, yyscan_t scanner, parse_ctx *ctx,
		    const char *msg);

static src_loc mkloc(parse_ctx *ctx, YYLTYPE l)
{
	return (src_loc){ ctx->path, l.first_line, l.first_column };
}

static ast_expr *mk_expr(parse_ctx *ctx, ast_expr_kind k, YYLTYPE l)
{
	ast_expr *e = arena_alloc(ctx->a, sizeof *e);
	e->kind = k;
	e->loc = mkloc(ctx, l);
	e->depth = 1;
	return e;
}

static int max_depth(int d, const ast_expr *x)
{
	return x && x->depth > d ? x->depth : d;
}

/* Bounds the depth of every expression tree (AST_MAX_DEPTH), so that the
 * passes may walk it recursively: a chain of 12000 '+' parses with a
 * constant parser stack but would overflow the C stack of any recursive
 * walk.  The node that first goes too deep is reported (at its operator or
 * callee) and replaced by a leaf one level too deep; its ancestors see
 * that leaf, are replaced in turn without a second message, so the tree
 * stays small and the statement gets one error. */
static ast_expr *cap_depth(parse_ctx *ctx, ast_expr *e, int child_depth)
{
	e->depth = child_depth + 1;
	if (e->depth <= AST_MAX_DEPTH)
		return e;
	if (child_depth <= AST_MAX_DEPTH)
		diag_error(e->loc, "nesting too deep (an expression may have at most %d levels of operators, calls and lists)",
			   AST_MAX_DEPTH);
	ast_expr *leaf = arena_alloc(ctx->a, sizeof *leaf);
	leaf->kind = AST_NAME;
	leaf->name = "(nesting too deep)";
	leaf->loc = e->loc;
	leaf->depth = AST_MAX_DEPTH + 1;
	return leaf;
}

static ptrvec *mk_vec(parse_ctx *ctx)
{
	return arena_alloc(ctx->a, sizeof(ptrvec));
}

/* Copies a ptrvec of T* into a fresh array of T (the AST keeps arrays of
 * structs for args, dims, named args and settings). */
static void *vec_flatten(parse_ctx *ctx, const ptrvec *v, size_t elem)
{
	if (!v || v->n == 0)
		return NULL;
	char *out = arena_alloc(ctx->a, elem * (size_t)v->n);
	for (int i = 0; i < v->n; i++)
		memcpy(out + elem * (size_t)i, v->v[i], elem);
	return out;
}

static ast_expr *mk_binop(parse_ctx *ctx, char op, YYLTYPE l, ast_expr *lhs,
			  ast_expr *rhs)
{
	ast_expr *e = mk_expr(ctx, AST_BINOP, l);
	e->op = op;
	e->lhs = lhs;
	e->rhs = rhs;
	return cap_depth(ctx, e, max_depth(lhs->depth, rhs));
}

/* A minus sign directly before a number literal is folded into it, so
 * attribute values such as reshape's [-1, 784] are plain literals for the
 * passes; the literal then starts at the '-'. */
static ast_expr *mk_neg(parse_ctx *ctx, YYLTYPE l, ast_expr *x)
{
	if (x->kind == AST_INT || x->kind == AST_FLOAT) {
		if (x->kind == AST_INT)
			x->ival = -x->ival;
		else
			x->fval = -x->fval;
		x->loc = mkloc(ctx, l);
		return x;
	}
	ast_expr *e = mk_expr(ctx, AST_NEG, l);
	e->lhs = x;
	return cap_depth(ctx, e, x->depth);
}

static void args_add_pos(parse_ctx *ctx, parse_args *a, ast_expr *x)
{
	if (a->named.n > 0) {
		ast_named *last = a->named.v[a->named.n - 1];
		diag_error(x->loc, "positional argument after named argument '%s'",
			   last->key);
	}
	ptrvec_push(ctx->a, &a->pos, x);
}

static void args_add_named(parse_ctx *ctx, parse_args *a, ast_named *n)
{
	for (int i = 0; i < a->named.n; i++) {
		ast_named *o = a->named.v[i];
		if (strcmp(o->key, n->key) == 0) {
			diag_error(n->loc, "duplicate argument '%s'", n->key);
			diag_note(o->loc, "'%s' first given here", n->key);
			return;
		}
	}
	ptrvec_push(ctx->a, &a->named, n);
}

static ast_expr *mk_call(parse_ctx *ctx, YYLTYPE l, const char *name,
			 parse_args *a)
{
	ast_expr *e = mk_expr(ctx, AST_CALL, l);
	e->name = name;
	int d = 0;
	if (a) {
		e->nitems = a->pos.n;
		e->items = (ast_expr **)a->pos.v;
		e->nnamed = a->named.n;
		e->named = vec_flatten(ctx, &a->named, sizeof(ast_named));
		for (int i = 0; i < e->nitems; i++)
			d = max_depth(d, e->items[i]);
		for (int i = 0; i < e->nnamed; i++)
			d = max_depth(d, e->named[i].value);
	}
	return cap_depth(ctx, e, d);
}

static bool is_tensor_base(const char *s)
{
	return !strcmp(s, "f32") || !strcmp(s, "i32") || !strcmp(s, "u8");
}

static bool is_attr_base(const char *s)
{
	return !strcmp(s, "int") || !strcmp(s, "float") || !strcmp(s, "str") ||
	       !strcmp(s, "bool");
}

static ast_type *mk_type(parse_ctx *ctx, YYLTYPE l, const char *base,
			 bool tensor, ptrvec *dims)
{
	ast_type *t = arena_alloc(ctx->a, sizeof *t);
	t->loc = mkloc(ctx, l);
	t->base = base;
	t->is_tensor = tensor;
	t->rank = dims ? dims->n : 0;
	t->dims = vec_flatten(ctx, dims, sizeof(ast_dim));
	if (tensor && !is_tensor_base(base)) {
		if (is_attr_base(base))
			diag_error(t->loc, "attribute type '%s' cannot have dimensions",
				   base);
		else
			diag_error(t->loc, "unknown element type '%s' (expected f32, i32 or u8)",
				   base);
	} else if (!tensor && !is_attr_base(base)) {
		if (is_tensor_base(base))
			diag_error(t->loc, "tensor type '%s' needs dimensions, e.g. %s[B] or %s[] for a scalar",
				   base, base, base);
		else
			diag_error(t->loc, "unknown type '%s' (expected f32[...], i32[...], u8[...], int, float, str or bool)",
				   base);
	}
	return t;
}

static ast_stmt *mk_stmt(parse_ctx *ctx, ast_stmt_kind k, YYLTYPE l,
			 const char *name, YYLTYPE nl, ast_type *t, ast_expr *x)
{
	ast_stmt *s = arena_alloc(ctx->a, sizeof *s);
	s->kind = k;
	s->loc = mkloc(ctx, l);
	s->name = name;
	s->name_loc = name ? mkloc(ctx, nl) : (src_loc){ 0 };
	s->type = t;
	s->expr = x;
	return s;
}

static void on_header(parse_ctx *ctx, YYLTYPE kw, int64_t version, YYLTYPE vl)
{
	src_loc l = mkloc(ctx, kw);
	if (ctx->seen_header) {
		diag_error(l, "duplicate 'nnd' header");
		return;
	}
	ctx->seen_header = true;
	if (l.line != ctx->first_loc.line || l.col != ctx->first_loc.col)
		diag_error(l, "'nnd 1;' must be the first statement of the file");
	if (version != 1)
		diag_error(mkloc(ctx, vl),
			   "unsupported language version %" PRId64 " (only version 1 is supported)",
			   version);
	ctx->file->version = version;
	ctx->file->version_loc = l;
}

static void on_seed(parse_ctx *ctx, YYLTYPE kw, int64_t seed)
{
	src_loc l = mkloc(ctx, kw);
	if (ctx->file->has_seed) {
		diag_error(l, "duplicate 'seed'");
		diag_note(ctx->file->seed_loc, "first 'seed' here");
		return;
	}
	ctx->file->has_seed = true;
	ctx->file->seed = (uint64_t)seed;
	ctx->file->seed_loc = l;
}

static ast_setting *mk_setting(parse_ctx *ctx, const char *key, YYLTYPE kl,
			       const char *mname, YYLTYPE ml, ast_expr *x)
{
	ast_setting *s = arena_alloc(ctx->a, sizeof *s);
	s->key = key;
	s->loc = mkloc(ctx, kl);
	s->expr = x;
	if (mname) {
		s->metric_name = mname;
		s->metric_loc = mkloc(ctx, ml);
		if (strcmp(key, "metric") != 0)
			diag_error(s->loc, "only 'metric' settings are named ('metric NAME = EXPR;'), not '%s'",
				   key);
	} else if (strcmp(key, "metric") == 0) {
		diag_error(s->loc, "a metric needs a name: 'metric NAME = EXPR;'");
	}
	return s;
}
}

%token NND "nnd" SEED "seed" DATASET "dataset" DEF "def" PARAM "param"
%token STATE "state" RETURN "return" TRAIN "train" TRUE "true" FALSE "false"
%token ARROW "->"
%token <str> IDENT "identifier" STRING "string"
%token <ival> INT "integer"
%token <fval> FLOAT "float"

%type <expr> expr term unary primary call
%type <type> type
%type <dim> dim
%type <vec> dims def_args arg_decls stmts settings list_items exprs
%type <arg> arg_decl
%type <stmt> stmt
%type <def> def
%type <dataset> dataset
%type <train> train
%type <setting> setting
%type <args> call_args arg_list
%type <named> named_arg

%%

file
	: items
	;

items
	: %empty
	| items item
	;

item
	: NND INT ';'           { on_header(ctx, @1, $2, @2); }
	| SEED INT ';'          { on_seed(ctx, @1, $2); }
	| dataset               { ptrvec_push(ctx->a, &ctx->datasets, $1); }
	| def                   { if ($1) ptrvec_push(ctx->a, &ctx->defs, $1); }
	| train                 { ptrvec_push(ctx->a, &ctx->trains, $1); }
	| error ';'             { yyerrok; }
	| error '}'             { yyerrok; }
	| error
	;

dataset
	: DATASET IDENT '=' call ';' {
		$$ = arena_alloc(ctx->a, sizeof *$$);
		$$->name = $2;
		$$->loc = mkloc(ctx, @2);
		$$->loader = $4;
	}
	;

/* Recovery rules that consumed their sync token call yyerrok, so an error
 * right after it is reported too (bison would otherwise stay silent for
 * three tokens); the bare `error` alternatives consume nothing and must not,
 * or the same token would fail forever. */

/* A broken signature still lets the body be parsed (and its errors
 * reported); the def itself is then dropped. */
def
	: DEF IDENT '(' def_args ')' ARROW type '{' stmts '}' {
		$$ = arena_alloc(ctx->a, sizeof *$$);
		$$->name = $2;
		$$->loc = mkloc(ctx, @2);
		$$->nargs = $4->n;
		$$->args = vec_flatten(ctx, $4, sizeof(ast_arg));
		$$->ret = $7;
		$$->nstmts = $9->n;
		$$->stmts = (ast_stmt **)$9->v;
	}
	| DEF error '{' stmts '}'  { $$ = NULL; yyerrok; }
	;

def_args
	: %empty                { $$ = mk_vec(ctx); }
	| arg_decls opt_comma   { $$ = $1; }
	;

arg_decls
	: arg_decl              { $$ = mk_vec(ctx); ptrvec_push(ctx->a, $$, $1); }
	| arg_decls ',' arg_decl { $$ = $1; ptrvec_push(ctx->a, $$, $3); }
	;

arg_decl
	: IDENT ':' type {
		$$ = arena_alloc(ctx->a, sizeof *$$);
		$$->name = $1;
		$$->loc = mkloc(ctx, @1);
		$$->type = $3;
	}
	;

type
	: IDENT                 { $$ = mk_type(ctx, @1, $1, false, NULL); }
	| IDENT '[' ']'         { $$ = mk_type(ctx, @1, $1, true, NULL); }
	| IDENT '[' dims opt_comma ']' { $$ = mk_type(ctx, @1, $1, true, $3); }
	;

dims
	: dim                   { $$ = mk_vec(ctx); ptrvec_push(ctx->a, $$, $1); }
	| dims ',' dim          { $$ = $1; ptrvec_push(ctx->a, $$, $3); }
	;

dim
	: IDENT {
		$$ = arena_alloc(ctx->a, sizeof *$$);
		$$->sym = $1;
		$$->loc = mkloc(ctx, @1);
	}
	| INT {
		$$ = arena_alloc(ctx->a, sizeof *$$);
		$$->val = $1;
		$$->loc = mkloc(ctx, @1);
	}
	;

stmts
	: %empty                { $$ = mk_vec(ctx); }
	| stmts stmt            { $$ = $1; if ($2) ptrvec_push(ctx->a, $$, $2); }
	;

stmt
	: PARAM IDENT ':' type '=' expr ';' {
		$$ = mk_stmt(ctx, AST_PARAM, @1, $2, @2, $4, $6);
	}
	| STATE IDENT ':' type '=' expr ';' {
		$$ = mk_stmt(ctx, AST_STATE, @1, $2, @2, $4, $6);
	}
	| IDENT '=' expr ';'    { $$ = mk_stmt(ctx, AST_ASSIGN, @1, $1, @1, NULL, $3); }
	| RETURN expr ';'       { $$ = mk_stmt(ctx, AST_RETURN, @1, NULL, @1, NULL, $2); }
	| error ';'             { $$ = NULL; yyerrok; }
	| error                 { $$ = NULL; }
	;

train
	: TRAIN IDENT '{' settings '}' {
		$$ = arena_alloc(ctx->a, sizeof *$$);
		$$->name = $2;
		$$->loc = mkloc(ctx, @2);
		$$->nsettings = $4->n;
		$$->settings = vec_flatten(ctx, $4, sizeof(ast_setting));
	}
	;

settings
	: %empty                { $$ = mk_vec(ctx); }
	| settings setting      { $$ = $1; if ($2) ptrvec_push(ctx->a, $$, $2); }
	;

setting
	: IDENT expr ';'        { $$ = mk_setting(ctx, $1, @1, NULL, @1, $2); }
	| IDENT IDENT '=' expr ';' { $$ = mk_setting(ctx, $1, @1, $2, @2, $4); }
	| error ';'             { $$ = NULL; yyerrok; }
	| error                 { $$ = NULL; }
	;

/* Precedence by layering: unary minus binds tighter than * / @, which bind
 * tighter than + -; all binary operators are left-associative. */
expr
	: expr '+' term         { $$ = mk_binop(ctx, '+', @2, $1, $3); }
	| expr '-' term         { $$ = mk_binop(ctx, '-', @2, $1, $3); }
	| term
	;

term
	: term '*' unary        { $$ = mk_binop(ctx, '*', @2, $1, $3); }
	| term '/' unary        { $$ = mk_binop(ctx, '/', @2, $1, $3); }
	| term '@' unary        { $$ = mk_binop(ctx, '@', @2, $1, $3); }
	| unary
	;

unary
	: '-' unary             { $$ = mk_neg(ctx, @1, $2); }
	| primary
	;

primary
	: IDENT                 { $$ = mk_expr(ctx, AST_NAME, @1); $$->name = $1; }
	| call
	| INT                   { $$ = mk_expr(ctx, AST_INT, @1); $$->ival = $1; }
	| FLOAT                 { $$ = mk_expr(ctx, AST_FLOAT, @1); $$->fval = $1; }
	| STRING                { $$ = mk_expr(ctx, AST_STR, @1); $$->sval = $1; }
	| TRUE                  { $$ = mk_expr(ctx, AST_BOOL, @1); $$->bval = true; }
	| FALSE                 { $$ = mk_expr(ctx, AST_BOOL, @1); $$->bval = false; }
	| '[' list_items ']' {
		$$ = mk_expr(ctx, AST_LIST, @1);
		$$->nitems = $2->n;
		$$->items = (ast_expr **)$2->v;
		int d = 0;
		for (int i = 0; i < $$->nitems; i++)
			d = max_depth(d, $$->items[i]);
		$$ = cap_depth(ctx, $$, d);
	}
	| '(' expr ')'          { $$ = $2; }
	;

list_items
	: %empty                { $$ = mk_vec(ctx); }
	| exprs opt_comma       { $$ = $1; }
	;

exprs
	: expr                  { $$ = mk_vec(ctx); ptrvec_push(ctx->a, $$, $1); }
	| exprs ',' expr        { $$ = $1; ptrvec_push(ctx->a, $$, $3); }
	;

call
	: IDENT '(' call_args ')' { $$ = mk_call(ctx, @1, $1, $3); }
	;

call_args
	: %empty                { $$ = NULL; }
	| arg_list opt_comma    { $$ = $1; }
	;

arg_list
	: expr {
		$$ = arena_alloc(ctx->a, sizeof *$$);
		args_add_pos(ctx, $$, $1);
	}
	| named_arg {
		$$ = arena_alloc(ctx->a, sizeof *$$);
		args_add_named(ctx, $$, $1);
	}
	| arg_list ',' expr     { $$ = $1; args_add_pos(ctx, $$, $3); }
	| arg_list ',' named_arg { $$ = $1; args_add_named(ctx, $$, $3); }
	;

named_arg
	: IDENT '=' expr {
		$$ = arena_alloc(ctx->a, sizeof *$$);
		$$->key = $1;
		$$->loc = mkloc(ctx, @1);
		$$->value = $3;
	}
	;

opt_comma
	: %empty
	| ','
	;

%%

/* ---------------------------------------------------------- messages -- */

/* How a token is named in messages: quoted spelling for punctuation and
 * keywords, a word for token classes. */
static const char *sym_desc(yysymbol_kind_t k)
{
	switch (k) {
	case YYSYMBOL_YYEOF: return "end of file";
	case YYSYMBOL_IDENT: return "identifier";
	case YYSYMBOL_STRING: return "string";
	case YYSYMBOL_INT: return "integer";
	case YYSYMBOL_FLOAT: return "number";
	case YYSYMBOL_NND: return "'nnd'";
	case YYSYMBOL_SEED: return "'seed'";
	case YYSYMBOL_DATASET: return "'dataset'";
	case YYSYMBOL_DEF: return "'def'";
	case YYSYMBOL_PARAM: return "'param'";
	case YYSYMBOL_STATE: return "'state'";
	case YYSYMBOL_RETURN: return "'return'";
	case YYSYMBOL_TRAIN: return "'train'";
	case YYSYMBOL_TRUE: return "'true'";
	case YYSYMBOL_FALSE: return "'false'";
	case YYSYMBOL_ARROW: return "'->'";
	default:
		/* character tokens: bison names them by their quoted spelling */
		return yysymbol_name(k);
	}
}

static bool sym_in(const yysymbol_kind_t *set, int n, yysymbol_kind_t k)
{
	for (int i = 0; i < n; i++)
		if (set[i] == k)
			return true;
	return false;
}

static int sym_remove(yysymbol_kind_t *set, int n, yysymbol_kind_t k)
{
	int j = 0;
	for (int i = 0; i < n; i++)
		if (set[i] != k)
			set[j++] = set[i];
	return j;
}

static int yyreport_syntax_error(const yypcontext_t *yyctx, yyscan_t scanner,
				 parse_ctx *ctx)
{
	(void)scanner;
	yysymbol_kind_t tok = yypcontext_token(yyctx);
	src_loc loc = mkloc(ctx, *yypcontext_location(yyctx));

	char what[160];
	if ((tok == YYSYMBOL_IDENT || tok == YYSYMBOL_INT || tok == YYSYMBOL_FLOAT)
	    && ctx->tok_text)
		snprintf(what, sizeof what, "%s '%.100s'", sym_desc(tok),
			 ctx->tok_text);
	else
		snprintf(what, sizeof what, "%s", sym_desc(tok));

	yysymbol_kind_t exp[YYNTOKENS];
	int n = yypcontext_expected_tokens(yyctx, exp, YYNTOKENS);
	if (n < 0)
		n = 0;

	/* Fold the tokens that start an expression into one word. */
	const yysymbol_kind_t expr_start[] = {
		YYSYMBOL_IDENT, YYSYMBOL_INT, YYSYMBOL_FLOAT, YYSYMBOL_STRING,
		YYSYMBOL_TRUE, YYSYMBOL_FALSE, YYTRANSLATE('('), YYTRANSLATE('['),
		YYTRANSLATE('-'),
	};
	int nstart = (int)(sizeof expr_start / sizeof expr_start[0]);
	bool want_expr = true;
	for (int i = 0; i < nstart; i++)
		want_expr = want_expr && sym_in(exp, n, expr_start[i]);
	if (want_expr)
		for (int i = 0; i < nstart; i++)
			n = sym_remove(exp, n, expr_start[i]);

	/* Operators and '(' (a call) can continue almost any expression; they
	 * only make the list noisy when something else is expected too. */
	const yysymbol_kind_t cont[] = {
		YYTRANSLATE('+'), YYTRANSLATE('-'), YYTRANSLATE('*'),
		YYTRANSLATE('/'), YYTRANSLATE('@'), YYTRANSLATE('('),
	};
	int ncont = (int)(sizeof cont / sizeof cont[0]);
	int others = 0;
	for (int i = 0; i < n; i++)
		if (!sym_in(cont, ncont, exp[i]))
			others++;
	if (others > 0 || want_expr)
		for (int i = 0; i < ncont; i++)
			n = sym_remove(exp, n, cont[i]);

	/* Between top-level items, name the declarations only. */
	if (sym_in(exp, n, YYSYMBOL_DEF) && sym_in(exp, n, YYSYMBOL_TRAIN)) {
		n = sym_remove(exp, n, YYSYMBOL_NND);
		n = sym_remove(exp, n, YYSYMBOL_SEED);
		n = sym_remove(exp, n, YYSYMBOL_YYEOF);
	}

	const char *words[YYNTOKENS + 1];
	int nw = 0;
	if (want_expr)
		words[nw++] = "expression";
	for (int i = 0; i < n; i++)
		words[nw++] = sym_desc(exp[i]);

	char msg[512];
	int len = snprintf(msg, sizeof msg, "unexpected %s", what);
	if (nw > 0 && nw <= 6) {
		for (int i = 0; i < nw && len >= 0 && (size_t)len < sizeof msg;
		     i++) {
			const char *sep = i == 0 ? ", expected " :
					  i == nw - 1 ? " or " : ", ";
			len += snprintf(msg + len, sizeof msg - (size_t)len, "%s%s",
					sep, words[i]);
		}
	}
	diag_error(loc, "%s", msg);
	return 0;
}

static void yyerror(YYLTYPE *lloc, yyscan_t scanner, parse_ctx *ctx,
		    const char *msg)
{
	(void)scanner;
	/* only reached for parser stack exhaustion: absurdly deep nesting */
	diag_error(mkloc(ctx, *lloc), "nesting too deep (%s)", msg);
}

/* Wraps the scanner to check, at the very first token, that the file opens
 * with its 'nnd' header: reported here so it comes before anything else
 * said about the file. */
#undef yylex
static int parser_lex(YYSTYPE *lval, YYLTYPE *lloc, yyscan_t scanner)
{
	parse_ctx *ctx = yyget_extra(scanner);
	int tok = yylex(lval, lloc, scanner);
	if (ctx->ntokens++ == 0) {
		ctx->first_loc = mkloc(ctx, *lloc);
		if (tok == 0)
			diag_error((src_loc){ ctx->path, 0, 0 },
				   "missing 'nnd 1;' header (the file is empty)");
		else if (tok != NND)
			diag_error(ctx->first_loc,
				   "missing 'nnd 1;' header: it must be the first statement of the file");
	}
	return tok;
}

/* ------------------------------------------------------------ driver -- */

static ast_file *parse_buffer(arena *a, const char *path, const char *text,
			      size_t len)
{
	parse_ctx ctx;
	memset(&ctx, 0, sizeof ctx);
	ctx.a = a;
	ctx.path = arena_strdup(a, path);
	ctx.line = ctx.col = ctx.end_line = ctx.end_col = 1;
	ctx.file = arena_alloc(a, sizeof *ctx.file);
	ctx.file->path = ctx.path;
	ctx.file->text = arena_strndup(a, text, len);
	diag_set_source_n(ctx.path, text, len);

	if (len > (size_t)INT32_MAX) {
		diag_error((src_loc){ ctx.path, 0, 0 }, "file too large");
		return ctx.file;
	}
	yyscan_t scanner;
	if (yylex_init_extra(&ctx, &scanner) != 0)
		nnd_ice("cannot initialise the lexer");
	YY_BUFFER_STATE buf = yy_scan_bytes(text, (int)len, scanner);
	yyparse(scanner, &ctx);
	yy_delete_buffer(buf, scanner);
	yylex_destroy(scanner);

	ast_file *f = ctx.file;
	f->ndatasets = ctx.datasets.n;
	f->datasets = (ast_dataset **)ctx.datasets.v;
	f->ndefs = ctx.defs.n;
	f->defs = (ast_def **)ctx.defs.v;
	f->ntrains = ctx.trains.n;
	f->trains = (ast_train **)ctx.trains.v;
	return f;
}

ast_file *ast_parse_string(arena *a, const char *path, const char *text)
{
	return parse_buffer(a, path, text, strlen(text));
}

ast_file *ast_parse_file(arena *a, const char *path)
{
	char err[512];
	size_t len = 0;
	char *text = read_file(path, &len, err, sizeof err);
	if (!text) {
		diag_error((src_loc){ path, 0, 0 }, "%s", err);
		return NULL;
	}
	ast_file *f = parse_buffer(a, path, text, len);
	free(text);
	return f;
}
