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
enum { RT_GRAPH_TRAIN, RT_GRAPH_EVAL };

typedef struct rt_dataset {
	int role;                    /* 0 data, 1 eval */
	char *name;
	int kind;                    /* 0 idx, 1 csv (as nnd_data.kind) */
	char *path1;                 /* idx: images; csv: path */
	char *path2;                 /* idx: labels; csv: label column */
	int64_t n;                   /* samples when compiled (informative) */
	int line;
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

typedef struct rt_graph {
	bool present;
	int64_t act_c, act_b;
	int nout;
	char **outs;
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
	rt_graph graphs[2];
	rt_plan *plans; int nplans;
} rt_program;

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
typedef struct rt_opts {
	const char *train;           /* NULL: first program */
	int threads;
	int64_t epochs;              /* -1: manifest */
	int64_t steps;               /* -1: no limit */
	int64_t limit;               /* -1: all samples */
	bool have_seed; uint64_t seed;
	const char *log, *save, *resume;
	const char *weights, *data;  /* eval */
} rt_opts;

typedef struct rt_run {
	const nnd_model *model;
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
	int64_t epochs;              /* epochs to run */
	int64_t steps_per_epoch;
	/* position: what a checkpoint saves */
	int64_t step;                /* optimizer steps taken so far */
	int64_t epoch;               /* current epoch, 0-based */
	int64_t pos;                 /* next batch within the epoch */
	double epoch_loss_sum;       /* sum of B * loss over the epoch's batches so far */
	int64_t epoch_samples;
} rt_run;

/* Loads dataset `ds` of the run's program into d, checking the row types
 * against the `field` records. */
void rt_load_dataset(const rt_program *p, const rt_dataset *ds, nnd_data *d);
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

/* ---- checkpoints (checkpoint.c) ---- */
void rt_ckpt_save(const rt_run *r, const char *dir);
void rt_ckpt_resume(rt_run *r, const char *dir);
/* The seed a checkpoint was trained with (read before the run's streams are
 * keyed, so that a conflicting --seed is rejected up front). */
uint64_t rt_ckpt_seed(const char *dir);
/* Loads params and state tensors from a safetensors file (eval --weights). */
void rt_load_weights(rt_run *r, const char *file);

/* ---- log and progress (log.c) ---- */
typedef struct rt_log { FILE *f; const char *path; } rt_log;
void rt_log_open(rt_log *lg, const char *path, const rt_run *r);
void rt_log_step(rt_log *lg, const rt_run *r, float loss, float lr, bool with_sha);
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

#endif
