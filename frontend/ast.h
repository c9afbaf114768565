/* ast.h - the syntax tree of a .nnd file, as the parser builds it.
 * Every node carries its source location; all memory lives in one arena.
 * The AST is purely syntactic: names are not resolved, shapes not checked
 * (passes/lower.c does that while lowering to the IR; passes/check.c
 * checks the bodies of defs no train block calls). */
#ifndef NND_AST_H
#define NND_AST_H

#include <stdio.h>
#include "common.h"

typedef enum {
	AST_NAME,      /* identifier                      .name            */
	AST_INT,       /* integer literal                 .ival            */
	AST_FLOAT,     /* float literal                   .fval            */
	AST_STR,       /* string literal (unescaped)      .sval            */
	AST_BOOL,      /* true / false                    .bval            */
	AST_LIST,      /* [a, b, ...]                     .items           */
	AST_CALL,      /* f(pos..., key = v...)           .name .items .named */
	AST_BINOP,     /* lhs OP rhs, OP one of @ * / + - .op .lhs .rhs  */
	AST_NEG,       /* -operand                        .lhs             */
} ast_expr_kind;

typedef struct ast_expr ast_expr;
typedef struct ast_named {      /* key = value in a call */
	const char *key;
	src_loc loc;                /* of the key */
	ast_expr *value;
} ast_named;

struct ast_expr {
	ast_expr_kind kind;
	src_loc loc;                /* first token of the expression; for a
	                               binop, the operator */
	const char *name;           /* NAME, CALL (callee) */
	int64_t ival;
	double fval;
	const char *sval;
	bool bval;
	char op;                    /* BINOP: '@' '*' '/' '+' '-' */
	ast_expr *lhs, *rhs;
	ast_expr **items; int nitems;      /* LIST items, CALL positional args */
	ast_named *named; int nnamed;      /* CALL named args, in source order */
	int depth;                  /* levels of this tree: 1 for a leaf */
};

/* The deepest expression tree the parser accepts (operators, calls, lists
 * and unary minus each add a level; parentheses alone do not): deeper is
 * "nesting too deep".  Every recursive walk of expressions (lowering, the
 * AST dump, the checks) relies on this bound for its stack. */
#define AST_MAX_DEPTH 256

/* A type as written: f32[B, 784], u8[B, 28, 28], f32[] or an attribute
 * type (int, float, str, bool) for def arguments. */
typedef struct ast_dim {
	const char *sym;            /* symbolic name, or NULL */
	int64_t val;                /* when sym == NULL */
	src_loc loc;
} ast_dim;

typedef struct ast_type {
	src_loc loc;
	const char *base;           /* "f32" "i32" "u8" "int" "float" "str" "bool" */
	bool is_tensor;             /* has [dims] */
	int rank;
	ast_dim *dims;
} ast_type;

typedef enum {
	AST_PARAM,       /* param NAME: TYPE = INIT;   .name .type .expr */
	AST_STATE,       /* state NAME: TYPE = INIT;   .name .type .expr */
	AST_ASSIGN,      /* NAME = EXPR;               .name .expr       */
	AST_RETURN,      /* return EXPR;               .expr             */
} ast_stmt_kind;

typedef struct ast_stmt {
	ast_stmt_kind kind;
	src_loc loc;                /* of the statement's first token */
	src_loc name_loc;
	const char *name;
	ast_type *type;
	ast_expr *expr;
} ast_stmt;

typedef struct ast_arg {        /* def argument: NAME: TYPE */
	const char *name;
	src_loc loc;
	ast_type *type;
} ast_arg;

typedef struct ast_def {
	const char *name;
	src_loc loc;                /* of the name */
	ast_arg *args; int nargs;
	ast_type *ret;
	ast_stmt **stmts; int nstmts;
} ast_def;

typedef struct ast_dataset {    /* dataset NAME = loader(...); */
	const char *name;
	src_loc loc;
	ast_expr *loader;           /* an AST_CALL */
} ast_dataset;

/* One line of a train block: KEY EXPR;  or  metric NAME = EXPR;
 * `data fashion;` is key "data" with an AST_NAME expr. */
typedef struct ast_setting {
	const char *key;
	src_loc loc;                /* of the key */
	const char *metric_name;    /* for key "metric" */
	src_loc metric_loc;
	ast_expr *expr;
} ast_setting;

typedef struct ast_train {
	const char *name;
	src_loc loc;
	ast_setting *settings; int nsettings;
} ast_train;

typedef struct ast_file {
	const char *path;
	const char *text;
	int64_t version;  src_loc version_loc;
	bool has_seed; uint64_t seed; src_loc seed_loc;
	ast_dataset **datasets; int ndatasets;
	ast_def **defs; int ndefs;
	ast_train **trains; int ntrains;
} ast_file;

/* Parses a whole file.  Syntax errors go through diag_error (all of them,
 * with recovery at ';' and '}'); returns NULL only when the file could not
 * be read (also reported). */
ast_file *ast_parse_file(arena *a, const char *path);
ast_file *ast_parse_string(arena *a, const char *path, const char *text);


/* Canonical text dump (nndc emit --stage ast), deterministic. */
void ast_print(const ast_file *f, FILE *out);

#endif
