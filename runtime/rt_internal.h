/* rt_internal.h - private interface between the runtime's own files
 * (manifest.c, train.c, checkpoint.c, log.c, main.c).  Generated code never
 * sees this header; the ABI lives in rt.h. */
#ifndef NND_RT_INTERNAL_H
#define NND_RT_INTERNAL_H

#include "rt.h"
#include <stdio.h>

/* ---- errors ----
 * rt_die prints "PROGRAM: error: MESSAGE" (code 1) or "PROGRAM: internal
 * error: MESSAGE" (code 2) on stderr and unwinds to nnd_rt_main, which
 * returns code.  Unwinding with longjmp keeps every error path one line;
 * the memory of a failed run is left to the process exit (nndc run ends
 * right after nnd_rt_main returns too). */
#if defined(__GNUC__)
#define RT_PRINTF(a, b) __attribute__((format(printf, a, b)))
#else
#define RT_PRINTF(a, b)
#endif
_Noreturn void rt_die(int code, const char *fmt, ...) RT_PRINTF(2, 3);
const char *rt_progname(void);
void *rt_xmalloc(size_t n);          /* dies (exit 2 path) when out of memory */
void *rt_xcalloc(size_t n, size_t sz);
char *rt_xstrdup(const char *s);
void *rt_aligned_zalloc(size_t bytes); /* 64-byte aligned, zeroed; free() */

/* ---- manifest (manifest.c) ---- */
#define RT_MAX_RANK 8
#define RT_MAX_FIELDS 8

enum { RT_INIT_ZEROS, RT_INIT_ONES, RT_INIT_CONSTANT, RT_INIT_UNIFORM, RT_INIT_NORMAL,
       RT_INIT_XAVIER_UNIFORM, RT_INIT_KAIMING_UNIFORM, RT_INIT_KAIMING_NORMAL };
enum { RT_OPT_SGD, RT_OPT_ADAM, RT_OPT_ADAMW };
enum { RT_SCHED_CONSTANT, RT_SCHED_STEP, RT_SCHED_COSINE };
enum { RT_GRAPH_TRAIN, RT_GRAPH_EVAL, RT_GRAPH_INFER, RT_NGRAPHS };
extern const char *const rt_graph_names[RT_NGRAPHS];   /* "train" "eval" "infer" */

typedef struct rt_dataset {
	int role;                    /* 0 data, 1 eval */
	char *name;
	int kind;                    /* 0 idx, 1 csv (as nnd_data.kind) */
	char *path1;                 /* idx: images; csv: path */
	char *path2;                 /* idx: labels; csv: label column */
	int64_t n;                   /* samples when compiled (informative) */
	int line;
	/* csv: the feature columns the program was compiled for, by name, in
	 * field order (a `columns` record; NULL in an older manifest: file order) */
	char **cols; int ncols;
} rt_dataset;

typedef struct rt_field {
	int k, f, dtype, rank;       /* rank includes the leading batch dim */
	int64_t dims[RT_MAX_RANK];
	int sym[RT_MAX_RANK];
	int line;
} rt_field;

typedef struct rt_tensor {
	int index;
	char *path;
	int rank;
	int64_t dims[RT_MAX_RANK];
	int64_t numel;
	int64_t offset;              /* floats into the params or state block */
	int init;                    /* RT_INIT_* */
	char *init_name;
	double a, b;
	int64_t fan_in, fan_out;
	int stream;                  /* -1: none */
	int64_t opt;                 /* -1: none */
	int line;
} rt_tensor;

typedef struct rt_stream { char *path; uint64_t hash; int line; } rt_stream;

/* `node` records: every node of a graph, for reports (verify, logdiff). */
typedef struct rt_node { int64_t id; char *op, *path; } rt_node;

typedef struct rt_graph {
	bool present;
	int64_t act_c, act_b;
	int nout;
	char **outs;
	/* `result` (infer graph only): the output row type, batch dim included */
	bool has_result;
	int res_rank;
	int64_t res_dims[RT_MAX_RANK];
	int res_sym[RT_MAX_RANK];
	int64_t res_row;             /* floats per row (product of dims 1..) */
	rt_node *nodes; int nnodes;  /* manifest order */
} rt_graph;

typedef struct rt_plan { int graph; int64_t node; char *op, *path, *plan; } rt_plan;

typedef struct rt_program {
	int index;
	char *name;
	int line;
	rt_dataset *datasets; int ndatasets;
	int data_ds, eval_ds;        /* indices into datasets, -1 none */
	rt_field fields[RT_MAX_FIELDS]; int nfields;
	int64_t batch, epochs;
	bool shuffle;
	struct { int kind; double lr, momentum, weight_decay, beta1, beta2, eps; bool nesterov; } opt;
	struct { int kind; int64_t every, epochs, warmup; double gamma; } sched;
	rt_tensor *params; int nparams;
	rt_tensor *states; int nstates;
	rt_stream *streams; int nstreams;
	int64_t n_params, n_states, n_opt;   /* `sizes` */
	rt_graph graphs[RT_NGRAPHS];
	rt_plan *plans; int nplans;
	/* `classes`: the loss's cross_entropy takes the labels field as they
	 * are, so every label must be in [0, classes); 0 when unknown */
	int64_t classes;
	/* `min_rows`: a train step needs at least min_rows rows (a batchnorm
	 * over [N, C] at source line:col has no variance from one); 0 none */
	int64_t min_rows; int min_rows_line, min_rows_col;
} rt_program;

/* The node record of (graph, id), NULL when the manifest has none. */
const rt_node *rt_find_node(const rt_program *p, int graph, int64_t id);

/* ---- --profile (profile.c): per-node kernel times ---- */
void rt_prof_enable(bool on);
bool rt_prof_enabled(void);
void rt_prof_step_begin(void);       /* just before a step function is called */
void rt_prof_report(const rt_program *p, FILE *out, int top);

typedef struct rt_manifest {
	char *compiler;
	char *source_path;
	char source_sha[65];
	uint64_t seed;
	rt_program *progs; int nprogs;
} rt_manifest;

/* Parses the manifest text; any malformed line is an internal error (exit 2)
 * naming the line. */
void rt_manifest_parse(const char *text, rt_manifest *m);
void rt_manifest_free(rt_manifest *m);
void rt_manifest_cleanup(void);   /* the parser's buffers after an error */
void rt_manifest_print(const rt_manifest *m, FILE *f);   /* `info` */
const char *rt_init_name(int init);
const char *rt_dtype_name(int dt);

/* ---- training state (train.c) ---- */
struct rt_run;
struct rt_digests;
typedef struct rt_opts {
	const char *train;           /* NULL: first program */
	int threads;
	int64_t epochs;              /* -1: manifest */
	int64_t steps;               /* -1: no limit */
	int64_t limit;               /* -1: all samples */
	bool have_seed; uint64_t seed;
	const char *log, *save, *resume;
	const char *weights, *data;  /* eval */
	bool debug;                  /* --debug-digests: args.debug bit 1, node digests in the log */
	bool profile;                /* --profile: args.debug bit 2, per-node times on stderr */
	bool quiet;                  /* verify: no stdout lines, no progress, no eval */
	struct rt_digests *digests;  /* non-NULL: node digests of every step accumulate here */
	/* called after every optimizer step (verify) */
	void (*on_step)(void *ctx, const struct rt_run *r, float loss);
	void *on_step_ctx;
} rt_opts;

struct rt_dev;
typedef struct rt_run {
	const nnd_model *model;
	struct rt_dev *dev;          /* --device cuda (cuda.c), else NULL */
	bool cudnn;                  /* --cudnn: convolutions through cuDNN (cuda.c) */
	const rt_manifest *man;
	const rt_program *prog;
	uint64_t seed;
	float *params, *grads, *opt, *state;
	uint8_t *acts;
	uint32_t *keys;              /* 2 per stream */
	float *outputs;
	nnd_data data, eval;
	bool have_data, have_eval;
	int64_t n;                   /* training samples used (after --limit) */
	int64_t bmax;                /* rows of the batch buffers (rt_run_alloc): the batch, or fewer
	                                when no dataset of the run has that many samples */
	int64_t epochs;              /* epochs to run */
	int64_t steps_per_epoch;
	/* position: what a checkpoint saves */
	int64_t step;                /* optimizer steps taken so far */
	int64_t epoch;               /* current epoch, 0-based */
	int64_t pos;                 /* next batch within the epoch */
	double epoch_loss_sum;       /* sum of B * loss over the epoch's batches so far */
	int64_t epoch_samples;
	bool ckpt_cudnn;             /* --resume: the saved run computed convolutions with
	                              * cuDNN (checked by rt_ckpt_begin) */
	char *data_digests;          /* "SHA256 PATH" lines of the training files, for
	                              * checkpoints (checkpoint.c); NULL until needed */
} rt_run;

/* Loads dataset `ds` of the run's program into d, checking the row types
 * against the `field` records. */
void rt_load_dataset(const rt_program *p, const rt_dataset *ds, nnd_data *d);
/* train: loads the run's training set into r->data and, with want_eval,
 * its eval set into r->eval, the two read at once (decoding them is most
 * of a program's start-up); errors as if loaded one after the other,
 * the training set's first. */
void rt_load_train_eval(rt_run *r, bool want_eval);
/* infer --input FILE: an IDX images file or a CSV of features, checked
 * against the program's feature row type; labels are zeros. */
void rt_load_infer_input(const rt_program *p, const char *path, nnd_data *d);
/* Runs the infer graph over d (train.c; see there). */
void rt_infer(rt_run *r, const nnd_data *d, int64_t batch, FILE *out, const char *outname, char hex[65]);
void rt_run_alloc(rt_run *r);
void rt_run_free(rt_run *r);
void rt_init_params(rt_run *r);
/* SHA-256 of all params in manifest order (little-endian binary32). */
void rt_params_sha256(const rt_run *r, char hex[65]);
int  rt_train(rt_run *r, const rt_opts *o);
/* Runs the eval graph over d; out[k] = batch-weighted mean of output k. */
void rt_evaluate(rt_run *r, const nnd_data *d, double *out);
/* lr of 0-based step t in epoch `epoch` (exposed for tests and the log). */
float rt_schedule_lr(const rt_run *r, int64_t t, int64_t epoch);
void rt_shuffle(const rt_run *r, int64_t epoch, int64_t *perm);

/* ---- the CUDA device (cuda.c, docs/cuda.md) ----
 * rt_dev_open loads the driver and NVRTC, compiles (or takes from the
 * kernel cache) the program's CUDA kernels and allocates its blocks on the
 * device for batches of up to `rows` rows; every failure dies with a
 * message naming what is missing.  The host blocks stay the reference for
 * initialisation, checkpoints and digests: rt_dev_upload copies them to
 * the device, rt_dev_download brings params, opt and state back.
 * rt_dev_step runs one graph (RT_GRAPH_*) on the device for the batch in
 * a (inputs, sample_idx, scalars) and fills a->outputs (and a->result). */
typedef struct rt_dev rt_dev;
void rt_dev_open(rt_run *r, int64_t rows);
void rt_dev_upload(rt_run *r);
void rt_dev_download(rt_run *r);
void rt_dev_step(rt_run *r, int graph, nnd_step_args *a);
void rt_dev_close(rt_run *r);
/* The run manifest's device part (log.c): "backend", the device, and with
 * --cudnn the library version and every convolution's pinned algorithm;
 * `run` is the manifest's cJSON object. */
struct cJSON;
void rt_dev_manifest(const rt_run *r, struct cJSON *run);

/* ---- checkpoints (checkpoint.c) ---- */
void rt_ckpt_save(const rt_run *r, const char *dir);
/* Checks everything the resumed run must share with the saved one (source,
 * train block, reduction plans, training data, position invariants, the
 * state's digest), loads the state and the params, and finishes a save that
 * was killed after its commit point (see checkpoint.c). */
void rt_ckpt_resume(rt_run *r, const char *dir);
/* At the start of rt_train, once the device is open.  resume: the run must
 * compute its convolutions as the saved run did (cuDNN or nnd's kernels).
 * save: records the training files' digests before the first step. */
void rt_ckpt_begin(rt_run *r, const char *resume, const char *save);
/* The seed a checkpoint was trained with (read before the run's streams are
 * keyed, so that a conflicting --seed is rejected up front). */
uint64_t rt_ckpt_seed(const char *dir);
/* Loads params and state tensors from a safetensors file (eval --weights). */
void rt_load_weights(rt_run *r, const char *file);

/* ---- log and progress (log.c) ---- */
typedef struct rt_log { FILE *f; const char *path; } rt_log;
void rt_log_open(rt_log *lg, const char *path, const rt_run *r);
struct rt_digests;
/* nodes: the step's node digests (--debug-digests), NULL: none */
void rt_log_step(rt_log *lg, const rt_run *r, float loss, float lr, bool with_sha,
                 const struct rt_digests *nodes);
void rt_log_final(rt_log *lg, const rt_run *r);
void rt_log_close(rt_log *lg);

typedef struct rt_progress {
	bool tty;
	double t_start, t_last;
	int64_t samples_done, samples_total;
	int drawn;
} rt_progress;
void rt_progress_begin(rt_progress *p, int64_t samples_total);
void rt_progress_update(rt_progress *p, const rt_run *r, int64_t samples_now, float loss);
void rt_progress_end(rt_progress *p);
double rt_now(void);

/* Reads a whole file (checked); the caller frees.  Dies with code 1 naming
 * the file on failure. */
uint8_t *rt_read_file(const char *path, size_t *len);
void rt_sha256_file(const char *path, char hex[65]);

/* ---- errors outside nnd_rt_main (main.c) ----
 * Runs body(ctx) with rt_die unwinding to here: returns body's result, or
 * the error's exit code after calling cleanup(ctx) (may be NULL).  argv0
 * names the program in messages. */
int rt_protected(const char *argv0, int (*body)(void *ctx), void (*cleanup)(void *ctx), void *ctx);

/* ---- thread pool (threads.c) ----
 * Generic form of nnd_rt_parallel_for: fn(ctx, lo, hi, chunk) for the
 * chunk-th of at most nnd_rt_threads() contiguous chunks of [0, n), none
 * smaller than grain (n <= grain or one thread: fn(ctx, 0, n, 0) inline). */
typedef void (*rt_chunk_fn)(void *ctx, int64_t lo, int64_t hi, int chunk);
void rt_pool_run(rt_chunk_fn fn, void *ctx, int64_t n, int64_t grain);
int  rt_default_threads(void);    /* online CPUs, at least 1 */

/* ---- node digests (digest.c) ----
 * While a table is active, nnd_rt_node_digest appends one record per call
 * with args.debug set: the 1-based step, graph, node and the first 64 bits
 * of the SHA-256 of the node's bytes. */
typedef struct rt_digest { int64_t step; int32_t graph, node; uint64_t h; int64_t seq; } rt_digest;
typedef struct rt_digests { rt_digest *v; int64_t n, cap; } rt_digests;
void rt_digests_activate(rt_digests *t);   /* NULL: none (calls are ignored) */
void rt_digests_clear(rt_digests *t);
void rt_digests_free(rt_digests *t);
/* sorts by (step, graph, node, call order): graph order within a step */
void rt_digests_sort(rt_digests *t);

/* ---- log comparison (logdiff.c): `PROGRAM logdiff A B` ---- */
int rt_logdiff(const rt_manifest *m, const char *a, const char *b);

/* ---- datasets and infer inputs (data.c) ----
 * As nnd_data_load_idx, for inference: the IDX images file alone; labels
 * (field 1) are zeros. */
int rt_data_load_idx_images(const char *images, nnd_data *d, char *err, size_t errlen);
/* As nnd_data_load_csv, with the feature columns matched by name against
 * names[0..nnames) (the `columns` the program was compiled for; NULL: every
 * column but the label, in file order): feature k is the column named
 * names[k], wherever it is; a name the file lacks, or a column that is
 * neither a feature nor the label, is an error.  infer: an inference
 * input, whose label column may be missing (labels are zeros) and which
 * must hold at least one row. */
int rt_data_load_csv(const char *path, const char *label_col, char *const *names, int nnames, bool infer,
                     nnd_data *d, char *err, size_t errlen);
/* Where sample i's label lies in its file: "FILE: offset N" (IDX; "decoded
 * offset" in a gzip file) or "FILE:LINE: column C" (CSV); false when d
 * has no labels file. */
bool rt_data_where(const nnd_data *d, int64_t i, char *buf, size_t n);
/* Checks that the labels of samples [0, n) of d lie in [0, classes): 0,
 * or -1 with err naming the first that does not, its file and offset or
 * line. */
int rt_data_check_labels(const nnd_data *d, int64_t n, int64_t classes, char *err, size_t errlen);
/* The label of row `row` of the batch being computed, described for
 * nnd_rt_bad_label (train.c): its sample and where its label lies; false
 * when no batch is being computed. */
bool rt_batch_row_where(int64_t row, char *buf, size_t n);
/* Makes the dataset readers safe to run on several threads at once; call
 * it on one thread before they start.  0, or -1 with err set. */
int rt_data_threads_init(char *err, size_t errlen);
/* nnd's cache directory (compiled CUDA kernels, decoded datasets), made if
 * missing: $NND_CACHE_DIR, $XDG_CACHE_HOME/nnd or ~/.cache/nnd; false when
 * NND_CACHE_DIR=off or it cannot be made */
bool rt_cache_dir(char *buf, size_t n);
/* unmaps a decoded dataset mapped from the cache (data.c) */
void rt_data_unmap(uint8_t *base, size_t len);

#endif
