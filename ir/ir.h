/* ir.h - the nnd IR: a typed dataflow graph of ops from ops.def.
 *
 * A graph is a list of nodes in topological order (inputs before users);
 * node ids are indices into g->nodes.  A compiled train block yields one
 * ir_program with two graphs: the train step (forward, backward, optimizer
 * updates) and the eval step (forward in evaluation mode, loss and
 * metrics).  Both share the program's parameter, state and stream tables.
 *
 * Shapes: a dimension is c * B^sym where B is the batch size, known only at
 * run time (the last batch of an epoch is smaller).  Every other symbolic
 * dimension of the source is resolved to a constant by the passes.
 *
 * Every reduction node carries an ir_plan and every random node a stream
 * index from the start, so that later passes and backends never have to
 * invent an order or a seed. */
#ifndef NND_IR_H
#define NND_IR_H

#include <stdio.h>
#include "../frontend/common.h"

typedef enum {
#define OP(id, name, arity, flags) IR_##id,
#include "ops.def"
#undef OP
	IR_NUM_OPS
} ir_opcode;

enum { IR_F_ELEM = 1, IR_F_REDUCE = 2, IR_F_RANDOM = 4, IR_F_UPDATE = 8, IR_F_LEAF = 16,
       IR_F_DOT = 32 /* a reduction of products a*b: its plan may be fused (+fma) */ };

typedef struct ir_opinfo { const char *name; int arity; int flags; } ir_opinfo;
extern const ir_opinfo ir_ops[IR_NUM_OPS];

typedef enum { IR_F32, IR_I32, IR_U8 } ir_dtype;
const char *ir_dtype_name(ir_dtype dt);
int ir_dtype_size(ir_dtype dt);

#define IR_MAX_RANK 6
typedef struct ir_dim { int64_t c; int sym; } ir_dim;   /* c * (sym ? B : 1) */
typedef struct ir_type {
	ir_dtype dt;
	int rank;
	ir_dim d[IR_MAX_RANK];
} ir_type;

bool    ir_type_eq(const ir_type *a, const ir_type *b);
/* number of elements = c * B^sym as (const part, power of B); c and the
 * evaluated dim saturate at INT64_MAX instead of overflowing */
ir_dim  ir_type_numel(const ir_type *t);
int64_t ir_dim_eval(ir_dim d, int64_t B);
/* "f32[B, 784]", "f32[64*B]" ... into buf; returns buf */
char   *ir_type_str(const ir_type *t, char *buf, size_t n);
/* one dim as in ir_type_str: "784", "B", "3136*B"; returns buf */
char   *ir_dim_str(ir_dim d, char *buf, size_t n);

/* Reduction plan: the order in which a reduction adds.  A function of the
 * logical shape only (passes/plans.c). */
typedef enum {
	IR_PLAN_NONE = 0,   /* not a reduction */
	IR_PLAN_SEQ,        /* sequential in index order */
	IR_PLAN_BLOCKED,    /* consecutive blocks of `block`, each seq, blocks combined seq */
	IR_PLAN_TREE,       /* fixed fan-in tree over index order */
	IR_PLAN_RACY,       /* test only: partial sums combined in thread completion
	                       order (the nondeterminism nndc verify must catch) */
} ir_plan_family;
/* fused: a dot product's terms a*b are accumulated with one fma each,
 * acc = fma(a, b, acc), instead of a rounded product then a rounded sum
 * (only on IR_F_DOT ops, only with seq and blocked; printed "+fma") */
typedef struct ir_plan { ir_plan_family family; int64_t block; int fanin; bool fused; } ir_plan;
const char *ir_plan_str(ir_plan p, char *buf, size_t n);

/* Where a node's value lives (memory plan, passes/memplan.c). */
typedef enum {
	IR_BLK_NONE = 0,    /* not planned yet / no value (updates) */
	IR_BLK_ACT,         /* activation arena: byte offset off_c + off_b * Bmax */
	IR_BLK_PARAM,       /* parameter block: float offset off_c */
	IR_BLK_GRAD,        /* gradient block, same layout as params */
	IR_BLK_OPT,         /* optimizer state block: float offset off_c */
	IR_BLK_STATE,       /* non-trainable state block: float offset off_c */
	IR_BLK_INPUT,       /* args.inputs[ia0] */
	IR_BLK_OUTPUT,      /* args.outputs[off_c] (scalars) */
	IR_BLK_RESULT,      /* args.result: the infer graph's output tensor */
	IR_BLK_FUSED,       /* no storage: computed per element inside the kernel
	                       of node off_c (passes/fuse.c) */
} ir_block;

typedef struct ir_node {
	int id;
	ir_opcode op;
	ir_type type;
	int nin;
	int in[4];
	int64_t ia[4];
	float fa[4];
	const char *path;     /* instance path of the source construct, e.g. "mlp.h1" */
	src_loc loc;
	ir_plan plan;         /* reductions */
	int stream;           /* random ops: index into program streams, else -1 */
	ir_block blk;
	int64_t off_c, off_b; /* see ir_block */
} ir_node;

typedef struct ir_graph {
	const char *name;     /* "train" or "eval" */
	ir_node **nodes; int nnodes, cap;
	int loss;             /* node id of the loss (f32[]), -1 if none */
	int *outputs; int noutputs;   /* scalar nodes copied to args.outputs[i] */
	const char **output_names;    /* "loss", then metric names */
	int64_t act_c, act_b;         /* activation bytes: act_c + act_b * Bmax */
	int result;                   /* infer graph: node whose tensor is args.result, else -1 */
	int64_t bmax;                 /* the batch size the graph is compiled for (0: unknown,
	                                 taken as 1): the shape pass's size limit evaluates B at it */
} ir_graph;

typedef enum { IR_INIT_ZEROS, IR_INIT_ONES, IR_INIT_CONSTANT, IR_INIT_UNIFORM,
	IR_INIT_NORMAL, IR_INIT_XAVIER_UNIFORM, IR_INIT_KAIMING_UNIFORM,
	IR_INIT_KAIMING_NORMAL } ir_init_kind;
const char *ir_init_name(ir_init_kind k);

typedef struct ir_tensor {     /* a parameter or a state buffer */
	const char *path;          /* "mlp.h1.w": checkpoint name, stream name */
	ir_type type;              /* constant dims only */
	int64_t offset;            /* float offset in its block */
	ir_init_kind init;
	double a, b;               /* uniform low/high, normal mean/std, constant value */
	int64_t fan_in, fan_out;
	int stream;                /* initializer's stream */
	int opt_slot;              /* float offset of its optimizer state (params) */
	src_loc loc;
} ir_tensor;

typedef struct ir_stream {     /* one pinned random stream */
	const char *path;          /* "mlp.h2" or "mlp.h1.w" */
	uint64_t path_hash;        /* first 8 bytes of SHA-256(path), little-endian */
} ir_stream;

typedef enum { IR_OPT_SGD, IR_OPT_ADAM, IR_OPT_ADAMW } ir_opt_kind;
typedef enum { IR_SCHED_CONSTANT, IR_SCHED_STEP, IR_SCHED_COSINE } ir_sched_kind;

typedef struct ir_schedule {
	ir_sched_kind kind;
	int64_t every; double gamma;        /* step: lr * gamma^floor(epoch/every) */
	int64_t epochs;                     /* cosine: over this many epochs */
	int64_t warmup_steps;               /* warmup(steps=, then=...) wraps kind */
} ir_schedule;

typedef struct ir_dataset {
	const char *name;
	int kind;                  /* 0 idx, 1 csv */
	const char *images, *labels;  /* idx: resolved absolute paths */
	const char *path, *label;     /* csv */
	int64_t n;                 /* number of samples */
	ir_type fields[2];         /* row types with leading dim N replaced by B */
	const char *field_names[2];   /* "images","labels" / "features","labels" */
	const char **columns;      /* csv: the feature columns' names, in field order */
	int ncolumns;
	src_loc loc;
} ir_dataset;

typedef struct ir_program {
	const char *train_name;
	const char *source_path;
	char source_sha256[65];
	uint64_t seed;
	ir_tensor *params; int nparams;  int64_t param_floats;
	ir_tensor *states; int nstates;  int64_t state_floats;
	int64_t opt_floats;
	ir_stream *streams; int nstreams;
	ir_dataset *data, *eval;   /* eval may be NULL */
	int *field_of_input; int ninputs;  /* args.inputs[k] = data field index */
	/* settings */
	ir_opt_kind opt;
	double lr, momentum, weight_decay, beta1, beta2, eps;
	bool nesterov;
	ir_schedule sched;
	int64_t batch, epochs;
	bool shuffle;
	/* the first batchnorm of the train graph with one value per channel per
	 * sample ([N, C]): a train step of one row has no variance there
	 * (line 0: none) */
	src_loc bn_rows;
	ir_graph *train, *eval_g;
	/* infer: the loss's prediction argument (cross_entropy(mlp(images), ..)
	 * -> mlp(images)) in evaluation mode; NULL when there is none */
	ir_graph *infer_g;
	int *param_grad;           /* train graph node holding param i's gradient, -1 if none */
	/* set by the passes that must have run before the verifier can demand
	 * a plan on every reduction and a stream on every random op */
	bool planned, streamed;
} ir_program;

typedef struct ir_module {     /* everything one .nnd file compiles to */
	const char *source_path;
	ir_program **progs; int nprogs;   /* one per train block, source order */
} ir_module;

/* The program's graphs in a fixed order (train, eval, infer), skipping
 * absent ones; returns how many were stored in out[3]. */
int ir_graphs(const ir_program *p, ir_graph **out);

/* ---- building ---- */
ir_graph *ir_graph_new(arena *a, const char *name);
/* Appends a node (inputs must already exist); returns it.  Fields other
 * than op, inputs and type start zeroed, stream = -1. */
ir_node *ir_add(arena *a, ir_graph *g, ir_opcode op, int nin, const int *in,
                const ir_type *type);
ir_type ir_scalar(ir_dtype dt);

/* TRANSPOSE's permutation in ia0 (ops.def): decimal digits, perm[0] the
 * most significant.  Unpacking checks that `code` is a permutation of
 * 0..rank-1 written in `rank` digits; it returns false otherwise. */
static inline int64_t ir_perm_pack(const int *perm, int rank)
{
	int64_t v = 0;
	for (int d = 0; d < rank; d++)
		v = v * 10 + perm[d];
	return v;
}
static inline bool ir_perm_unpack(int64_t code, int rank, int *perm)
{
	bool seen[IR_MAX_RANK] = { false };
	if (code < 0 || rank < 0 || rank > IR_MAX_RANK)
		return false;
	for (int d = rank - 1; d >= 0; d--) {
		int v = (int)(code % 10);
		code /= 10;
		if (v >= rank || seen[v])
			return false;
		seen[v] = true;
		perm[d] = v;
	}
	return code == 0;
}

/* ---- fused elementwise trees (passes/fuse.c) ----
 * The kernel of an unfused elementwise node `root` also computes every
 * value fused into it: inner lists those nodes in topological order, root
 * last; leaf the distinct values the kernel loads (at most IR_TREE_LEAVES,
 * which the fuse pass respects).  Every inner node has root's shape.
 * Returns 0, or -1 with *bad the offending node and the problem in err. */
#define IR_TREE_INNER 64
#define IR_TREE_LEAVES 8
typedef struct ir_tree {
	const ir_node *inner[IR_TREE_INNER]; int ninner;
	const ir_node *leaf[IR_TREE_LEAVES]; int nleaf;
} ir_tree;
int ir_fused_tree(const ir_graph *g, const ir_node *root, ir_tree *t, const ir_node **bad,
                  char *err, size_t errlen);

/* ---- convolutions as whole operations (cuDNN, docs/cuda.md) ----
 * passes/conv.c lowers conv2d to im2col + matmul, and autodiff turns that
 * into two more matmuls and a col2im.  A backend that computes a whole
 * convolution at once (cuDNN) replaces three nodes by one call each:
 *   FWD         the matmul w' x col'          y  from x and w
 *   BWD_FILTER  the matmul dy' x col'^T       dw from x and dy
 *   BWD_DATA    col2im(w'^T x dy')            dx from w and dy
 * ir_conv_match recognises them from the nodes alone (any operand that
 * is a value of the right shape, reshapes looked through), so it holds
 * for every graph autodiff or a tool builds.  It fills the geometry and
 * three node ids whose storage holds, row-major and dense,
 *   x  f32[N, C, H, W]       (BWD_DATA: n itself, the output)
 *   w  f32[O, C/G, KH, KW]   (BWD_FILTER: n itself, the output)
 *   y  f32[O, N, OH, OW]     (the matmul's layout; FWD: n itself)
 * The replacement reads the two that are not n when n runs, and those
 * reads extend lifetimes in the memory plan (passes/memplan.c, verified
 * by ir/verify.c), so a CPU program's plan serves the cuDNN path too. */
typedef enum { IR_CONV_NONE, IR_CONV_FWD, IR_CONV_BWD_FILTER, IR_CONV_BWD_DATA } ir_conv_kind;
typedef struct ir_conv {
	ir_conv_kind kind;
	int x, w, y;             /* node ids (see above) */
	ir_dim N;
	int64_t C, H, W, O, G, KH, KW, OH, OW, stride, pad, dil;
} ir_conv;
ir_conv_kind ir_conv_match(const ir_graph *g, const ir_node *n, ir_conv *cv);
/* The values a convolution node n computed whole reads besides its own
 * inputs (the two of x, w, y that are not n) into rd; 0 for other nodes.
 * The memory plan keeps them alive until n. */
int ir_conv_reads(const ir_graph *g, const ir_node *n, int rd[2]);
/* the kind's name: "fwd", "bwd_filter", "bwd_data" ("-" for NONE) */
const char *ir_conv_kind_name(ir_conv_kind k);

/* ---- text: canonical dump (nndc emit --stage ir|plans) ---- */
void ir_print_graph(const ir_program *p, const ir_graph *g, FILE *out);
void ir_print_program(const ir_program *p, FILE *out);
void ir_print_plans(const ir_program *p, FILE *out);

/* ---- verifier: structural checks run between passes.  Returns the number
 * of problems found (each printed to stderr as an internal error naming the
 * node); 0 means the graph is well formed. */
int ir_verify_program(const ir_program *p, const char *after_pass);

#endif
