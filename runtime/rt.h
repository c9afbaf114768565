/* rt.h - the nnd runtime: everything a compiled model needs around its
 * generated kernels (data loading, initialisation, the training loop,
 * logs, checkpoints, the CLI of the built program).
 *
 * This header is also the ABI between generated code and the runtime:
 * codegen emits functions of type nnd_step_fn and one nnd_model object;
 * the AOT executable's main() and `nndc run` both hand that object to
 * nnd_rt_main().  Keep the struct layouts in sync with codegen/llvm.c.
 *
 * The runtime is built with -ffp-contract=off and never -ffast-math: it
 * computes initial parameters, learning rates and the math functions that
 * generated code calls, all of which must be the same bits everywhere. */
#ifndef NND_RT_H
#define NND_RT_H

#include <stdint.h>
#include <stddef.h>
#include <stdbool.h>

#define NND_VERSION "0.1.0"

/* ---- ABI with generated code ---- */
typedef struct nnd_step_args {
	float *params;               /* 0  parameter block            */
	float *grads;                /* 1  gradient block (params' layout) */
	float *opt;                  /* 2  optimizer state block      */
	float *state;                /* 3  non-trainable state block  */
	uint8_t *acts;               /* 4  activation arena           */
	const void *const *inputs;   /* 5  batch fields, in manifest `field` order */
	const int64_t *sample_idx;   /* 6  dataset index of each row of the batch */
	const uint32_t *keys;        /* 7  2 words per stream: Philox key */
	float *outputs;              /* 8  scalars: loss, then metrics */
	int64_t B;                   /* 9  rows in this batch (<= Bmax) */
	int64_t Bmax;                /* 10 rows the arena was sized for */
	int64_t step;                /* 11 optimizer step about to be taken, 1-based */
	int64_t epoch;               /* 12 0-based */
	float lr;                    /* 13 scheduled learning rate for this step */
	float bc1, bc2;              /* 14, 15 adam: 1 - beta1^step, 1 - beta2^step */
	float *result;               /* 16 infer graph: its output tensor, B rows */
	int32_t debug;               /* 17 bit 1: report every node's value through
	                                nnd_rt_node_digest (nndc verify); bit 2: report
	                                every node's end through nnd_rt_node_time */
} nnd_step_args;

typedef void (*nnd_step_fn)(nnd_step_args *);

/* ---- threads ----
 * Generated kernels split their independent outputs (never a reduction's
 * order) into ranges and hand them to the runtime's thread pool.  Ranges
 * are contiguous chunks of [0, n); how they are cut depends on the thread
 * count, the results never do. */
typedef void (*nnd_range_fn)(nnd_step_args *a, int64_t lo, int64_t hi);
/* Runs fn(a, lo, hi) over [0, n) on the pool (the caller's thread takes
 * part) and returns when every range is done; grain: smallest useful range. */
void nnd_rt_parallel_for(nnd_range_fn fn, nnd_step_args *a, int64_t n, int64_t grain);
void nnd_rt_set_threads(int n);      /* pool size (>= 1); 1 runs inline */
int  nnd_rt_threads(void);

/* ---- evidence ----
 * With args->debug set, generated code calls this after every node of a
 * graph (graph 0 train, 1 eval, 2 infer) with the node's value; the runtime
 * digests it, so two runs can be compared op by op (nndc verify). */
void nnd_rt_node_digest(nnd_step_args *a, int32_t graph, int32_t node,
                        const void *data, int64_t bytes);
/* With bit 2 of args->debug (`train --profile`), generated code calls this
 * after every node with the flops the node did (2 per multiply-add of a dot
 * product, else 0); the runtime charges the time since the previous call to
 * the node.  It only reads the clock: results are the same bits. */
void nnd_rt_node_time(nnd_step_args *a, int32_t graph, int32_t node, int64_t flops);
/* Test only (plan "racy", accepted when NND_TEST_RACY=1): sums x[0..n)
 * in per-thread partial sums combined in the order the threads finish: the
 * planted nondeterminism that nndc verify must catch. */
float nnd_rt_racy_sum(const float *x, int64_t n);

typedef struct nnd_model {
	const char *manifest;        /* text, format below */
	int32_t nprogs;              /* train blocks, manifest order */
	const nnd_step_fn *train;    /* [nprogs] */
	const nnd_step_fn *eval;     /* [nprogs] (NULL entry: no eval graph) */
	const nnd_step_fn *infer;    /* [nprogs] (NULL entry: no infer graph) */
	/* CUDA source of every graph with its launch records (codegen/cuda.h),
	 * compiled at run time for --device cuda; NULL: none */
	const char *cuda;
} nnd_model;

/* nndc verify: runs the program `prog_name` (NULL: the first) for `steps`
 * optimizer steps twice at threads[0] and once at every other count, with
 * node digests on; prints "same bits <sha256>" or the first step, graph,
 * node and instance path whose value differs.  Returns 0 same bits, 1 a
 * difference (or a user error), 2 an internal error. */
int nnd_rt_verify(const nnd_model *m, const char *prog_name, const int *threads, int nthreads,
                  int64_t steps, const char *progname);

/* nndc logdiff: compares two logs written by `train --log` (with
 * --debug-digests: node by node); prints `same: N steps compared` or the
 * first step (and node: op and path from m's manifest, when m is not NULL
 * and the logs name one of its train blocks) where they differ.  Returns 0
 * same, 1 differ (or a user error), 2 an internal error.  The built program
 * has the same as `PROGRAM logdiff A B`. */
int nnd_rt_logdiff(const nnd_model *m, const char *a, const char *b, const char *progname);

/* The built program's main: train | eval | infer | info | logdiff (cli.md).
 * Returns the exit status: 0 ok, 1 user error, 2 internal error. */
int nnd_rt_main(int argc, char **argv, const nnd_model *m);

/* ---- CUDA (runtime/cuda.c, docs/cuda.md) ----
 * NVRTC and the driver are loaded with dlopen on first use, so programs run
 * without them.  nnd_cuda_compile compiles CUDA source with the options of
 * the determinism contract (--fmad=false --ftz=false --prec-div=true
 * --prec-sqrt=true -default-device) for `arch` ("compute_80": PTX text;
 * "sm_90": a cubin); *out is malloc'd (*outlen bytes, PTX NUL-terminated).
 * Returns 0, or -1 with a message in err (NVRTC's log for a compile error:
 * *log, malloc'd, may be set too). */
int nnd_cuda_compile(const char *src, const char *arch, char **out, size_t *outlen,
                     char **log, char *err, size_t errlen);
/* The NVRTC options used (NULL-terminated), for reports and cache keys. */
extern const char *const nnd_cuda_nvrtc_options[];

/* ---- called from generated code ---- */
float nnd_rt_expf(float x);
float nnd_rt_logf(float x);
float nnd_rt_tanhf(float x);
float nnd_rt_sigmoidf(float x);
float nnd_rt_geluf(float x);
float nnd_rt_gelu_gradf(float x);
float nnd_rt_powf(float x, float y);
/* more of nnd's own math (math.c, docs/math.md): erf; sin/cos for Box-Muller
 * initialisation; 1/sqrt; a double cosine for the cosine LR schedule. */
float nnd_rt_erff(float x);
float nnd_rt_sinf(float x);
float nnd_rt_cosf(float x);
float nnd_rt_rsqrtf(float x);
double nnd_rt_cos(double x);
/* uniform in [0, 1): w = philox4x32_10(ctr = {c0 / 4, c1, c2, c3}, key = key[0..1]),
 * u = (w[c0 % 4] >> 8) * 2^-24: four consecutive elements share a block */
float nnd_rt_uniform(const uint32_t *key, uint32_t c0, uint32_t c1, uint32_t c2, uint32_t c3);
/* a label outside [0, C): message naming the row and value, exit(1) */
void  nnd_rt_bad_label(int64_t row, int64_t label, int64_t classes);

/* ---- Philox4x32-10 (Random123) ---- */
void nnd_philox4x32_10(const uint32_t ctr[4], const uint32_t key[2], uint32_t out[4]);
/* Stream key of a random op: philox(ctr = {hash lo, hash hi, 0x6e6e6400, 0},
 * key = {seed lo, seed hi}) words 0 and 1.  path_hash from SHA-256(path). */
void nnd_stream_key(uint64_t seed, uint64_t path_hash, uint32_t key[2]);
uint64_t nnd_path_hash(const char *path);

/* ---- datasets (also used by the compiler to read shapes) ---- */
typedef struct nnd_data {
	int kind;                    /* 0 idx, 1 csv */
	int64_t n;                   /* samples */
	/* field 0: images (u8) or features (f32); field 1: labels (u8 or i32) */
	int dtype[2];                /* 0 f32, 1 i32, 2 u8 (as ir_dtype) */
	int rank[2];                 /* of one row */
	int64_t dims[2][4];          /* row dims */
	int64_t row_bytes[2];
	uint8_t *buf[2];             /* NULL when only probed */
	uint8_t *alloc[2];           /* what buf[i] points into, when it is not the start of
	                              * its allocation (the decoded file, header first); freed
	                              * instead of buf[i] */
	size_t maplen[2];            /* alloc[i] is a mapping of this many bytes (a decoded
	                              * dataset from the cache), unmapped instead of freed */
	/* csv: the names of the feature columns, one per feature in field
	 * order (dims[0][0] of them; also when probed); NULL for idx */
	char **names;
	/* where sample i's label lies, for messages (set when loaded with
	 * labels, see rt_data_where): the IDX labels file (offset 8 + i, of
	 * the decoded bytes when lab_gz) or the CSV file (line lab_line0 + i,
	 * column lab_col; lab_line0 -1: blank lines between the rows) */
	char *lab_path;              /* NULL: no labels file */
	bool lab_gz;
	int lab_col;
	int64_t lab_line0;
} nnd_data;
/* Reads a dataset (or with probe_only, its headers/shape only).  On error
 * writes "FILE: offset N: expected ..., found ..." into err and returns -1;
 * a gzip file's offsets read "compressed offset N" (a byte of the file) or
 * "decoded offset N" (a byte of the data it decodes to). */
int  nnd_data_load_idx(const char *images, const char *labels, bool probe_only,
                       nnd_data *d, char *err, size_t errlen);
int  nnd_data_load_csv(const char *path, const char *label_col, bool probe_only,
                       nnd_data *d, char *err, size_t errlen);
void nnd_data_free(nnd_data *d);

/* ---- text ---- */
/* The length of the well-formed UTF-8 sequence at p, of at most n bytes
 * (RFC 3629: no overlong forms, no surrogates, at most U+10FFFF; 1 for
 * ASCII), 0 if there is none: diagnostics and JSON logs must not pass on
 * what a file's bytes happen to be. */
size_t nnd_utf8_len(const unsigned char *p, size_t n);

/* ---- hashing ---- */
void nnd_sha256(const void *data, size_t n, uint8_t out[32]);
void nnd_sha256_hex(const uint8_t dig[32], char hex[65]);
/* incremental SHA-256 (files, parameter blocks): begin, update any number
 * of times, end writes the digest and frees the context.  Failures of the
 * underlying library abort with exit status 2. */
typedef struct nnd_sha256_ctx nnd_sha256_ctx;
nnd_sha256_ctx *nnd_sha256_begin(void);
void nnd_sha256_update(nnd_sha256_ctx *c, const void *data, size_t n);
void nnd_sha256_end(nnd_sha256_ctx *c, uint8_t out[32]);

/* ---- manifest ----
 * One line per record, tokens separated by one space, strings in double
 * quotes with \\ \" \n escapes, floats printed with %.17g (exact round trip).
 *
 *   nnd-manifest 1
 *   compiler "nndc 0.1.0"
 *   source "PATH" SHA256HEX
 *   seed U64
 *   program INDEX "TRAIN_NAME"                 -- starts a train block's records
 *   dataset data|eval "NAME" idx "IMAGES" "LABELS" N
 *   dataset data|eval "NAME" csv "PATH" "LABELCOL" N
 *   columns data|eval N "NAME" ...             -- (after a csv dataset) the names
 *        of its N feature columns in field order; the runtime matches the
 *        file's columns (and infer --input's, against data's) by these names
 *   field K F DTYPE RANK C0 S0 C1 S1 ...       -- args.inputs[K] is dataset
 *        field F (0 images/features, 1 labels); row type dims (c, sym) with
 *        the leading batch dim included as "1 1"
 *   classes C                                  -- (optional) the loss's
 *        cross_entropy takes the labels field as it is: every label of the
 *        data and eval sets must lie in [0, C) (checked when they are used)
 *   batch N
 *   epochs N
 *   shuffle 0|1
 *   optimizer sgd|adam|adamw lr X momentum X weight_decay X nesterov 0|1 beta1 X beta2 X eps X
 *   schedule constant|step|cosine every N gamma X epochs N warmup N
 *   param I "PATH" RANK D0 D1 ... offset N init NAME a X b X fan_in N fan_out N stream S opt N
 *   state I "PATH" RANK D0 ... offset N init NAME a X b X fan_in N fan_out N stream S opt -1
 *   stream S "PATH" HASH16HEX
 *   sizes params N states N opt N             -- floats in each block
 *   graph train|eval|infer act C B outputs K "NAME" ...   -- act bytes = C + B * Bmax
 *   result RANK C0 S0 C1 S1 ...                -- (after graph infer) the infer
 *        graph's output type, leading batch dim included as "1 1"
 *   node train|eval|infer NODE OPNAME "PATH"   -- every node, for reports
 *   plan train|eval|infer NODE OPNAME "PATH" PLAN
 *   end                                        -- ends the train block
 *
 * opt N: float offset of the parameter's optimizer state; sgd with momentum
 * uses 1 slot per element, adam/adamw 2 (m at N, v at N + numel).  The init
 * names are those of language.md. */

#endif
