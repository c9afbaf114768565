/* passes.h - the compiler's passes, in the order the driver runs them
 * (frontend/nndc.c; the verifier runs between every two):
 *
 *   pass_lower      AST -> IR: name resolution, def instantiation with
 *                   instance paths, dataset probing, per-node shape and type
 *                   inference with symbolic dims (shape.c), train settings
 *   pass_shape      re-derives every node's type from its inputs: the
 *                   check that later passes built well-typed graphs
 *   pass_autodiff   reverse mode: appends the backward graph of the loss
 *   pass_optimizer  appends the optimizer's in-place updates
 *   pass_plans      gives every reduction its reduction plan
 *   pass_rng        pins a stream (seed, instance path) to every random op
 *   pass_memplan    lays every value out in the runtime's blocks
 *
 * Each returns the number of errors it reported (diagnostics for user
 * errors, internal errors otherwise); the driver stops at the first pass
 * that reports any. */
#ifndef NND_PASSES_H
#define NND_PASSES_H

#include "../frontend/ast.h"
#include "../ir/ir.h"

typedef struct pass_options {
	const char *plan_override;   /* NULL, or "FAMILY" / "PATTERN=FAMILY,..." */
	bool no_fuse;                /* --no-fuse: every value gets its own storage */
} pass_options;

ir_module *pass_lower(arena *a, const ast_file *f);
int pass_shape(ir_program *p);
int pass_autodiff(arena *a, ir_program *p);
int pass_optimizer(arena *a, ir_program *p);
int pass_plans(ir_program *p, const pass_options *o);
/* Checks a --plan value ("seq", "blocked:N", "tree:F", or
 * "GLOB=FAMILY,..."); on failure writes why into err. */
bool pass_plan_valid(const char *spec, char *err, size_t errlen);
int pass_rng(arena *a, ir_program *p);
/* fuse.c: marks elementwise values computed inside their single
 * elementwise reader's kernel (blk = IR_BLK_FUSED, off_c = the reader) */
int pass_fuse(ir_program *p, const pass_options *o);
int pass_memplan(ir_program *p);

/* pipeline.c: parse and run every pass up to and including `stop` (a
 * pass name, "ast", or NULL for all).  *status: 0, 1 (user error, already
 * reported) or 2 (internal error). */
ir_module *pass_compile(arena *a, const char *path, const pass_options *o, const char *stop,
                        ast_file **ast_out, int *status);
bool pass_known(const char *name);
/* check.c: checks the defs that no train block reaches (lowering checks
 * the others when it instantiates them): names bound before use, called
 * functions and initializers exist, single assignment, a return at the
 * end.  Reports through diag_error; returns the number of errors. */
int pass_check_uncalled_defs(const ast_file *f);
/* lower.c: whether name is a builtin op, or an initializer, that a call
 * may name (the one table lowering itself uses) */
bool lower_is_builtin(const char *name);
bool lower_is_initializer(const char *name);
/* "lower, shape, autodiff, ...": the names pass_known accepts, from the
 * pass table (for messages; a static string) */
const char *pass_names(void);

/* shape.c: the per-op shape rule (shape_<ID> from ops.def).  Sets n->type
 * from the inputs (keeping the preset dtype/dims of ops whose result type
 * is an attribute: leaves, CAST, RESHAPE, SUM_TO, BROADCAST).  On a user
 * error writes a message (without location) to err and returns -1. */
int shape_infer(const ir_graph *g, ir_node *n, char *err, size_t errlen);
/* Building a node in two steps: shape_prepare fills *tmp (op, inputs, the
 * preset type and attributes) and runs its shape rule; shape_commit
 * appends it to the graph.  Callers decide in between what a failed rule
 * means (a user error while lowering, a compiler bug in autodiff) and may
 * reuse an identical earlier node instead of committing. */
int shape_prepare(const ir_graph *g, ir_node *tmp, ir_opcode op, int nin, const int *in,
                  const ir_type *preset, const int64_t *ia, const float *fa,
                  char *err, size_t errlen);
ir_node *shape_commit(arena *a, ir_graph *g, const ir_node *tmp, src_loc loc, const char *path);
/* The most elements a tensor may hold, at the graph's batch size (and per
 * sample): 2^40, 4 TiB of f32.  Beyond any machine, yet small enough that
 * every byte size, offset and arena total that memplan, codegen and the
 * runtime derive from it fits int64 with room to spare. */
#define SHAPE_MAX_NUMEL ((int64_t)1 << 40)
/* -1 and a message naming the shape when t holds more than
 * SHAPE_MAX_NUMEL elements per sample or at batch size bmax (<= 1: B = 1) */
int shape_check_size(const ir_type *t, int64_t bmax, char *err, size_t errlen);
/* NumPy broadcasting of two types' dims; -1 and a message if impossible */
int shape_broadcast(const ir_type *a, const ir_type *b, ir_type *out, char *err, size_t errlen);

/* conv2d's result type from x [N, C, H, W] and w [O, C/groups, KH, KW]
 * (ia: stride, pad, dilation, groups), or -1 and a message */
int shape_conv2d(const ir_type *x, const ir_type *w, const int64_t *ia, ir_type *out,
                 char *err, size_t errlen);

/* conv.c: conv2d(x, w) (ia: stride, pad, dilation, groups) as the IR ops
 * of its definition in ops.def (im2col, reshapes, matmul, transpose),
 * appended through `emit`, which returns the id of the node it appended
 * or found (or -1 after reporting why it could not).  Returns the node
 * of y [N, O, OH, OW], or -1: with a message in err when the convolution
 * itself is ill-formed (the caller reports it), else err is empty. */
typedef int conv_emit_fn(void *ctx, ir_opcode op, int nin, const int *in, const ir_type *preset,
                         const int64_t *ia);
int conv2d_lower(void *ctx, conv_emit_fn *emit, int x, const ir_type *xt, int w, const ir_type *wt,
                 const int64_t *ia, char *err, size_t errlen);

/* manifest.c: the text the runtime reads (format: runtime/rt.h).  Returns
 * a malloc'd string. */
char *pass_manifest(const ir_module *m);

#endif
