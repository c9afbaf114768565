/* main.c - nnd_rt_main: the command line of every built program (cli.md).
 *
 *   PROGRAM train [--train NAME] [--threads N] [--device cpu|cuda] [--epochs E]
 *                 [--steps S] [--limit N] [--seed S] [--log RUN.jsonl]
 *                 [--debug-digests] [--save DIR] [--resume DIR]
 *   PROGRAM eval  --weights FILE.safetensors [--data NAME] [--train NAME]
 *   PROGRAM infer --weights FILE --input FILE [--batch N] [--output FILE]
 *   PROGRAM logdiff A.jsonl B.jsonl
 *   PROGRAM info
 *
 * Options are GNU style (--name VALUE or --name=VALUE).  Exit status: 0 ok,
 * 1 user error, 2 internal error (nnd's own bug, e.g. a malformed manifest).
 * --threads N sizes the runtime's thread pool (threads.c; default: the
 * online CPUs); reduction plans never depend on it, so neither do the bits. */
#include "rt_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static const char *progname = "nnd-program";
static jmp_buf *die_jmp;
/* What an error unwinding to nnd_rt_main frees (nndc run calls
 * nnd_rt_main in-process; transient buffers of the failing function are
 * left to the process exit). */
static rt_manifest man;
static rt_run *live_run;

const char *rt_progname(void) { return progname; }

_Noreturn void rt_die(int code, const char *fmt, ...)
{
	fflush(stdout);   /* keep stdout results before the message when both go to one terminal */
	fprintf(stderr, "%s: %s: ", progname, code == 2 ? "internal error" : "error");
	va_list ap;
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	fflush(stderr);
	if (die_jmp) longjmp(*die_jmp, code);
	exit(code);
}

/* Running out of memory is the size of the model, batch or data against
 * the machine's, not nnd's bug: a user error (1), in words one can act on. */
static _Noreturn void out_of_memory(double bytes)
{
	static const char *unit[] = { "bytes", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB" };
	int u = 0;
	while (bytes >= 1024.0 && u < 6) { bytes /= 1024.0; u++; }
	rt_die(1, "out of memory: cannot allocate %.*f %s (the parameters, the batch's activations or the "
	       "data need more memory than this machine gives; a smaller batch or model needs less)", u ? 1 : 0, bytes, unit[u]);
}

void *rt_xmalloc(size_t n)
{
	void *p = malloc(n ? n : 1);
	if (!p) out_of_memory((double)n);
	return p;
}

void *rt_xcalloc(size_t n, size_t sz)
{
	void *p = calloc(n ? n : 1, sz ? sz : 1);
	if (!p) out_of_memory((double)n * (double)sz);
	return p;
}

char *rt_xstrdup(const char *s)
{
	size_t n = strlen(s) + 1;
	char *p = rt_xmalloc(n);
	memcpy(p, s, n);
	return p;
}

void *rt_aligned_zalloc(size_t bytes)
{
	/* 64 bytes: a cache line and the widest vector generated code uses */
	size_t n = (bytes + 63) & ~(size_t)63;
	if (n == 0) n = 64;
	void *p = n >= bytes ? aligned_alloc(64, n) : NULL;   /* n < bytes: the rounding wrapped */
	if (!p) out_of_memory((double)bytes);
	memset(p, 0, n);
	return p;
}

uint8_t *rt_read_file(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	if (!f) rt_die(1, "%s: cannot open: %s", path, strerror(errno));
	size_t cap = 1 << 16, n = 0;
	uint8_t *buf = rt_xmalloc(cap);
	for (;;) {
		if (n == cap) {
			cap *= 2;
			uint8_t *nb = realloc(buf, cap);
			if (!nb) rt_die(2, "out of memory reading %s", path);
			buf = nb;
		}
		size_t r = fread(buf + n, 1, cap - n, f);
		n += r;
		if (r == 0) {
			if (ferror(f)) {
				int e = errno;
				fclose(f);
				rt_die(1, "%s: cannot read: %s", path, strerror(e));
			}
			break;
		}
	}
	if (fclose(f) != 0) rt_die(1, "%s: cannot close: %s", path, strerror(errno));
	*len = n;
	return buf;
}

/* ---- options ---- */

enum { O_STR, O_POS, O_NONNEG, O_U64, O_DEVICE, O_FLAG };
typedef struct optdef { const char *name; int kind; } optdef;

static const optdef train_opts[] = {
	{ "train", O_STR }, { "threads", O_POS }, { "device", O_DEVICE }, { "epochs", O_POS },
	{ "steps", O_NONNEG }, { "limit", O_POS }, { "seed", O_U64 }, { "log", O_STR },
	{ "save", O_STR }, { "resume", O_STR }, { "debug-digests", O_FLAG }, { "profile", O_FLAG }, { "cudnn", O_FLAG }, { NULL, 0 } };
static const optdef eval_opts[] = {
	{ "weights", O_STR }, { "data", O_STR }, { "train", O_STR }, { "threads", O_POS },
	{ "device", O_DEVICE }, { "cudnn", O_FLAG }, { NULL, 0 } };
static const optdef infer_opts[] = {
	{ "weights", O_STR }, { "input", O_STR }, { "batch", O_POS }, { "train", O_STR },
	{ "threads", O_POS }, { "device", O_DEVICE }, { "output", O_STR }, { "cudnn", O_FLAG }, { NULL, 0 } };
static const optdef info_opts[] = { { NULL, 0 } };

static const char *usage_train =
	"usage: %s train [OPTIONS]\n"
	"Train the model (deterministically: same bits on every run).\n"
	"  --train NAME       train block to run (default: the first)\n"
	"  --threads N        worker threads (results do not depend on it)\n"
	"  --device cpu|cuda  backend (default cpu; cuda when built with --target cuda); same bits\n"
	"  --cudnn            with --device cuda: convolutions through cuDNN (pinned\n"
	"                     deterministic algorithms: same bits run to run on one GPU\n"
	"                     model and cuDNN version, not the CPU's bits)\n"
	"  --epochs E         number of epochs (default: the train block's)\n"
	"  --steps S          stop after S optimizer steps in total, counting those\n"
	"                     before a resume (0 with --save writes the initial weights)\n"
	"  --limit N          train on the first N samples only\n"
	"  --seed S           global seed (default: the source's)\n"
	"  --log FILE         write a JSON-lines log: run manifest, per-step losses\n"
	"  --debug-digests    with --log: a digest of every node's value at every step\n"
	"                     in the log (compare two logs with `%s logdiff`)\n"
	"  --profile          time every node's kernel; print the costliest nodes\n"
	"                     (op, instance path, seconds, GFLOP/s) on stderr at the end\n"
	"  --save DIR         write a checkpoint to DIR at the end\n"
	"  --resume DIR       continue the run saved in DIR exactly where it stopped\n"
	"Prints one line per epoch and, last, `sha256 HEX` of the final parameters.\n";
static const char *usage_eval =
	"usage: %s eval --weights FILE.safetensors [--data NAME] [--train NAME] [--threads N]\n"
	"       [--device cpu|cuda] [--cudnn]\n"
	"Evaluate saved weights on the eval dataset (or the dataset NAME).\n";
static const char *usage_infer =
	"usage: %s infer --weights FILE.safetensors --input FILE [--batch N] [--output FILE]\n"
	"Run the infer graph on every sample of FILE: an IDX images file (plain or\n"
	"gzip) for an IDX-trained program, else a CSV with the feature columns (a\n"
	"label column, if present, is ignored).\n"
	"  --batch N          samples per step (default: the train batch); results do\n"
	"                     not depend on it\n"
	"  --output FILE      write the per-sample lines to FILE instead of stdout\n"
	"  --train NAME, --threads N, --device cpu|cuda, --cudnn  as for train\n"
	"Prints one line per sample (the result's values, %%.9g) and, last,\n"
	"`sha256 HEX` of all result floats (little-endian binary32).\n";
static const char *usage_logdiff =
	"usage: %s logdiff A.jsonl B.jsonl\n"
	"Compare two logs written by `train --log` (with --debug-digests: node by\n"
	"node): prints `same` and the number of steps compared, or the first step,\n"
	"and within it the first node, where the runs differ.  Exit 0 same, 1 differ.\n";
static const char *usage_info =
	"usage: %s info\n"
	"Print the compiled program's manifest: train blocks, datasets, parameters,\n"
	"random streams, reduction plans and versions.\n";
static const char *usage_main =
	"usage: %s COMMAND [OPTIONS]\n"
	"Commands:\n"
	"  train    train the model\n"
	"  eval     evaluate saved weights\n"
	"  infer    run inference on an input file\n"
	"  info     print the manifest (plans, streams, versions)\n"
	"  logdiff  compare two training logs step by step (and node by node)\n"
	"Run `%s COMMAND --help` for a command's options.\n";

typedef struct parsed {
	const char *val[16];
	bool set[16];
	int64_t num[16];
	uint64_t u64[16];
	bool help;
} parsed;

static void parse_opts(int argc, char **argv, const optdef *defs, const char *cmd, parsed *P)
{
	memset(P, 0, sizeof *P);
	for (int i = 0; i < argc; i++) {
		const char *a = argv[i];
		if (!strcmp(a, "--help") || !strcmp(a, "-h")) { P->help = true; continue; }
		if (strncmp(a, "--", 2) != 0 || a[2] == 0)
			rt_die(1, "%s: unexpected argument '%s' (see %s %s --help)", cmd, a, progname, cmd);
		const char *name = a + 2, *eq = strchr(name, '=');
		size_t nl = eq ? (size_t)(eq - name) : strlen(name);
		int k = -1;
		for (int j = 0; defs[j].name; j++)
			if (strlen(defs[j].name) == nl && !strncmp(defs[j].name, name, nl)) k = j;
		if (k < 0) rt_die(1, "%s: unknown option '--%.*s' (see %s %s --help)", cmd, (int)nl, name, progname, cmd);
		if (defs[k].kind == O_FLAG) {
			if (eq) rt_die(1, "--%s: takes no value", defs[k].name);
			P->set[k] = true;
			continue;
		}
		const char *v;
		if (eq) v = eq + 1;
		else if (i + 1 < argc) v = argv[++i];
		else rt_die(1, "--%s: expects a value", defs[k].name);
		P->val[k] = v;
		P->set[k] = true;
		char *end;
		switch (defs[k].kind) {
		case O_POS:
		case O_NONNEG: {
			errno = 0;
			long long x = strtoll(v, &end, 10);
			bool pos = defs[k].kind == O_POS;
			if (errno || end == v || *end || x < (pos ? 1 : 0) || *v == '+' || *v == ' ')
				rt_die(1, "--%s: expected a %s integer, found '%s'", defs[k].name, pos ? "positive" : "non-negative", v);
			P->num[k] = x;
			break;
		}
		case O_U64:
			errno = 0;
			P->u64[k] = strtoull(v, &end, 10);
			if (errno || end == v || *end || *v == '-' || *v == '+' || *v == ' ')
				rt_die(1, "--%s: expected an unsigned 64-bit integer, found '%s'", defs[k].name, v);
			break;
		case O_DEVICE:
			if (strcmp(v, "cpu") && strcmp(v, "cuda"))
				rt_die(1, "--%s: expected cpu or cuda, found '%s'", defs[k].name, v);
			break;
		case O_STR:
			if (!*v) rt_die(1, "--%s: expected a value, found ''", defs[k].name);
			break;
		case O_FLAG:
			break;
		}
	}
}

static int opt_index(const optdef *defs, const char *name)
{
	for (int j = 0; defs[j].name; j++)
		if (!strcmp(defs[j].name, name)) return j;
	return -1;
}

#define OPT_SET(P, defs, n) ((P).set[opt_index(defs, n)])
#define OPT_VAL(P, defs, n) ((P).val[opt_index(defs, n)])
#define OPT_NUM(P, defs, n) ((P).num[opt_index(defs, n)])

/* --device cuda: the run's blocks move to the GPU once they hold their
 * initial (or loaded) values; batches of up to `rows` rows */
/* the device when --device is not given: cuda for a program built with
 * --target cuda (its kernels' source begins with a //@device record) */
static bool default_cuda;

static bool want_cuda(const parsed *P, const optdef *defs)
{
	int k = opt_index(defs, "device"), c = opt_index(defs, "cudnn");
	bool cuda = P->set[k] ? !strcmp(P->val[k], "cuda") : default_cuda;
	if (c >= 0 && P->set[c] && !cuda)
		rt_die(1, "--cudnn: needs --device cuda (cuDNN runs on the GPU)");
	return cuda;
}

static void start_device(rt_run *r, const parsed *P, const optdef *defs, int64_t rows)
{
	r->cudnn = P->set[opt_index(defs, "cudnn")];
	rt_dev_open(r, rows);
	rt_dev_upload(r);
}

/* --threads N, else the online CPUs (set on every command: the pool
 * outlives nnd_rt_main when nndc runs several programs in one process) */
static void set_threads(const parsed *P, const optdef *defs)
{
	int k = opt_index(defs, "threads");
	nnd_rt_set_threads(P->set[k] ? (int)P->num[k] : rt_default_threads());
}

static const rt_program *select_program(const rt_manifest *m, const char *name)
{
	if (!name) return &m->progs[0];
	for (int i = 0; i < m->nprogs; i++)
		if (!strcmp(m->progs[i].name, name)) return &m->progs[i];
	char list[512] = "";
	size_t o = 0;
	for (int i = 0; i < m->nprogs && o < sizeof list; i++)
		o += (size_t)snprintf(list + o, sizeof list - o, "%s%s", i ? ", " : "", m->progs[i].name);
	rt_die(1, "--train: no train block '%s' (this program has: %s)", name, list);
}

static void setup_run(rt_run *r, const nnd_model *model, const rt_manifest *m, const rt_program *p, uint64_t seed)
{
	memset(r, 0, sizeof *r);
	r->model = model;
	r->man = m;
	r->prog = p;
	r->seed = seed;
	r->epochs = p->epochs;
}

/* --save DIR is checked before the first step, not after the last: a
 * directory that cannot be written fails in a second, not after the run */
static void check_save_dir(const char *dir)
{
	struct stat st;
	if (mkdir(dir, 0777) != 0 && errno != EEXIST)
		rt_die(1, "--save %s: cannot create the directory: %s", dir, strerror(errno));
	if (stat(dir, &st) != 0) rt_die(1, "--save %s: %s", dir, strerror(errno));
	if (!S_ISDIR(st.st_mode)) rt_die(1, "--save %s: not a directory", dir);
	char probe[4096];
	if (snprintf(probe, sizeof probe, "%s/.nnd-save-probe-%ld", dir, (long)getpid()) >= (int)sizeof probe)
		rt_die(1, "--save %s: path too long", dir);
	int fd = open(probe, O_WRONLY | O_CREAT | O_EXCL, 0600);
	if (fd < 0) rt_die(1, "--save %s: cannot write in the directory: %s", dir, strerror(errno));
	close(fd);
	unlink(probe);
}

static int cmd_train(int argc, char **argv, const nnd_model *model, const rt_manifest *m)
{
	const optdef *D = train_opts;
	parsed P;
	parse_opts(argc, argv, D, "train", &P);
	if (P.help) { printf(usage_train, progname, progname); return 0; }
	rt_opts o = { 0 };
	o.train = OPT_VAL(P, D, "train");
	set_threads(&P, D);
	o.threads = nnd_rt_threads();
	o.debug = OPT_SET(P, D, "debug-digests");
	o.profile = OPT_SET(P, D, "profile");
	rt_prof_enable(o.profile);
	o.epochs = OPT_SET(P, D, "epochs") ? OPT_NUM(P, D, "epochs") : -1;
	o.steps = OPT_SET(P, D, "steps") ? OPT_NUM(P, D, "steps") : -1;
	o.limit = OPT_SET(P, D, "limit") ? OPT_NUM(P, D, "limit") : -1;
	o.have_seed = OPT_SET(P, D, "seed");
	o.seed = P.u64[opt_index(D, "seed")];
	o.log = OPT_VAL(P, D, "log");
	o.save = OPT_VAL(P, D, "save");
	o.resume = OPT_VAL(P, D, "resume");
	if (o.debug && !o.log) rt_die(1, "--debug-digests: needs --log FILE (the digests are written there)");

	const rt_program *p = select_program(m, o.train);
	if (o.save) check_save_dir(o.save);
	uint64_t seed = o.have_seed ? o.seed : m->seed;
	if (o.resume) {
		uint64_t saved = rt_ckpt_seed(o.resume);
		if (o.have_seed && saved != o.seed)
			rt_die(1, "--seed %" PRIu64 ": the run saved in %s used seed %" PRIu64 " (omit --seed to resume)", o.seed, o.resume, saved);
		seed = saved;
	}
	static rt_run r;
	setup_run(&r, model, m, p, seed);
	live_run = &r;
	if (o.epochs >= 0) r.epochs = o.epochs;
	rt_load_train_eval(&r, p->eval_ds >= 0 && p->graphs[RT_GRAPH_EVAL].present);
	r.n = r.data.n;
	if (o.limit >= 0 && o.limit < r.n) r.n = o.limit;
	if (r.n == 0)
		rt_die(1, "%s: dataset %s has no samples%s", p->datasets[p->data_ds].path1, p->datasets[p->data_ds].name,
		       o.limit == 0 ? " (--limit 0)" : "");
	if (r.n > (int64_t)UINT32_MAX) rt_die(1, "dataset %s: more than 2^32 samples are not supported", p->datasets[p->data_ds].name);
	r.steps_per_epoch = (r.n + p->batch - 1) / p->batch;
	rt_run_alloc(&r);
	rt_init_params(&r);
	if (o.resume) rt_ckpt_resume(&r, o.resume);
	if (o.resume && o.steps >= 0 && r.step >= o.steps)   /* --steps counts from the start of the original run */
		fprintf(stderr, "%s: note: --steps %" PRId64 ": the run saved in %s has taken %" PRId64 " steps already; "
		        "no step is taken\n", progname, o.steps, o.resume, r.step);
	if (want_cuda(&P, D)) start_device(&r, &P, D, r.bmax);
	int rc = rt_train(&r, &o);
	rt_run_free(&r);
	live_run = NULL;
	return rc;
}

static int cmd_eval(int argc, char **argv, const nnd_model *model, const rt_manifest *m)
{
	const optdef *D = eval_opts;
	parsed P;
	parse_opts(argc, argv, D, "eval", &P);
	if (P.help) { printf(usage_eval, progname); return 0; }
	set_threads(&P, D);
	const char *weights = OPT_VAL(P, D, "weights"), *data = OPT_VAL(P, D, "data");
	if (!weights) rt_die(1, "eval: --weights FILE.safetensors is required");
	const rt_program *p = select_program(m, OPT_VAL(P, D, "train"));
	if (!p->graphs[RT_GRAPH_EVAL].present || !model->eval || !model->eval[p->index])
		rt_die(1, "eval: train block %s has no eval graph", p->name);
	const rt_dataset *ds = NULL;
	if (data) {
		for (int i = 0; i < p->ndatasets && !ds; i++)
			if (!strcmp(p->datasets[i].name, data)) ds = &p->datasets[i];
		if (!ds) {
			char list[512] = "";
			size_t o = 0;
			for (int i = 0; i < p->ndatasets && o < sizeof list; i++)
				o += (size_t)snprintf(list + o, sizeof list - o, "%s%s", i ? ", " : "", p->datasets[i].name);
			rt_die(1, "--data: no dataset '%s' in train block %s (it has: %s)", data, p->name, list);
		}
	} else {
		if (p->eval_ds < 0) rt_die(1, "eval: train block %s has no eval dataset; pass --data NAME", p->name);
		ds = &p->datasets[p->eval_ds];
	}
	static rt_run r;
	setup_run(&r, model, m, p, m->seed);
	live_run = &r;
	rt_load_dataset(p, ds, &r.eval);
	r.have_eval = true;
	rt_run_alloc(&r);
	rt_load_weights(&r, weights);
	if (want_cuda(&P, D)) start_device(&r, &P, D, r.bmax);
	const rt_graph *G = &p->graphs[RT_GRAPH_EVAL];
	double *out = rt_xcalloc((size_t)G->nout, sizeof(double));
	rt_evaluate(&r, &r.eval, out);
	printf("eval_loss %.4f", out[0]);
	for (int k = 1; k < G->nout; k++) printf(" %s %.4f", G->outs[k], out[k]);
	printf("\n");
	fflush(stdout);
	free(out);
	rt_run_free(&r);
	live_run = NULL;
	return 0;
}

static FILE *infer_out;   /* --output, closed by the error path too */

static int cmd_infer(int argc, char **argv, const nnd_model *model, const rt_manifest *m)
{
	const optdef *D = infer_opts;
	parsed P;
	parse_opts(argc, argv, D, "infer", &P);
	if (P.help) { printf(usage_infer, progname); return 0; }
	set_threads(&P, D);
	const char *weights = OPT_VAL(P, D, "weights"), *input = OPT_VAL(P, D, "input");
	const char *output = OPT_VAL(P, D, "output");
	if (!weights) rt_die(1, "infer: --weights FILE.safetensors is required");
	if (!input) rt_die(1, "infer: --input FILE is required");
	const rt_program *p = select_program(m, OPT_VAL(P, D, "train"));
	if (!p->graphs[RT_GRAPH_INFER].present || !model->infer || !model->infer[p->index])
		rt_die(1, "infer: train block %s has no infer graph: its loss is not one call of a built-in loss whose first "
		       "argument, the prediction, is one f32 row per sample (as in cross_entropy(mlp(images), labels))", p->name);
	int64_t batch = OPT_SET(P, D, "batch") ? OPT_NUM(P, D, "batch") : p->batch;
	static rt_run r;
	setup_run(&r, model, m, p, m->seed);
	live_run = &r;
	rt_load_infer_input(p, input, &r.data);
	r.have_data = true;
	if (batch > r.data.n)   /* the same lines at any --batch: no buffers beyond the input */
		batch = r.data.n > 0 ? r.data.n : 1;
	rt_run_alloc(&r);
	rt_load_weights(&r, weights);
	if (want_cuda(&P, D)) start_device(&r, &P, D, batch);
	FILE *out = stdout;
	if (output) {
		infer_out = fopen(output, "w");
		if (!infer_out) rt_die(1, "%s: cannot create: %s", output, strerror(errno));
		out = infer_out;
	}
	char hex[65];
	rt_infer(&r, &r.data, batch, out, output ? output : "stdout", hex);
	fprintf(out, "sha256 %s\n", hex);
	if (infer_out) {
		infer_out = NULL;
		if (fclose(out) != 0) rt_die(1, "%s: cannot write: %s", output, strerror(errno));
		printf("sha256 %s\n", hex);   /* the digest on stdout as well */
	}
	fflush(stdout);
	rt_run_free(&r);
	live_run = NULL;
	return 0;
}

static int cmd_logdiff(int argc, char **argv, const rt_manifest *m)
{
	const char *files[2];
	int nf = 0;
	for (int i = 0; i < argc; i++) {
		if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) { printf(usage_logdiff, progname); return 0; }
		if (!strncmp(argv[i], "--", 2) && argv[i][2]) rt_die(1, "logdiff: unknown option '%s' (see %s logdiff --help)", argv[i], progname);
		if (nf == 2) rt_die(1, "logdiff: expected two log files, found a third: '%s'", argv[i]);
		files[nf++] = argv[i];
	}
	if (nf != 2) rt_die(1, "logdiff: expected two log files (see %s logdiff --help)", progname);
	return rt_logdiff(m, files[0], files[1]);
}

static int real_main(int argc, char **argv, const nnd_model *model)
{
	const char *a0 = argc > 0 && argv[0] ? argv[0] : "nnd-program";
	const char *slash = strrchr(a0, '/');
	progname = slash ? slash + 1 : a0;
	uint32_t one = 1;
	uint8_t lo;
	memcpy(&lo, &one, 1);
	if (lo != 1) rt_die(2, "big-endian hosts are not supported (checkpoints and digests are little-endian)");

	if (argc < 2) {
		fprintf(stderr, usage_main, progname, progname);
		return 1;
	}
	const char *cmd = argv[1];
	if (!strcmp(cmd, "--help") || !strcmp(cmd, "-h") || !strcmp(cmd, "help")) {
		printf(usage_main, progname, progname);
		return 0;
	}
	if (!strcmp(cmd, "--version")) {
		printf("%s (nnd runtime %s)\n", progname, NND_VERSION);
		return 0;
	}
	bool logdiff = !strcmp(cmd, "logdiff");
	const optdef *defs = !strcmp(cmd, "train") ? train_opts : !strcmp(cmd, "eval") ? eval_opts
	                   : !strcmp(cmd, "infer") ? infer_opts : !strcmp(cmd, "info") ? info_opts
	                   : logdiff ? info_opts : NULL;
	if (!defs) rt_die(1, "unknown command '%s' (commands: train, eval, infer, info, logdiff; see %s --help)", cmd, progname);
	/* --help must work even if something else is wrong */
	for (int i = 2; i < argc; i++)
		if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
			const char *u = logdiff ? usage_logdiff : defs == train_opts ? usage_train : defs == eval_opts ? usage_eval
			              : defs == infer_opts ? usage_infer : usage_info;
			printf(u, progname, progname);
			return 0;
		}

	if (!model || !model->manifest) rt_die(2, "no manifest in this program");
	default_cuda = model->cuda && !strncmp(model->cuda, "//@device cuda\n", 15);
	rt_manifest_parse(model->manifest, &man);
	if (man.nprogs != model->nprogs)
		rt_die(2, "the manifest names %d train blocks, the program has %d step functions", man.nprogs, (int)model->nprogs);
	int rc;
	if (!strcmp(cmd, "train")) rc = cmd_train(argc - 2, argv + 2, model, &man);
	else if (!strcmp(cmd, "eval")) rc = cmd_eval(argc - 2, argv + 2, model, &man);
	else if (!strcmp(cmd, "infer")) rc = cmd_infer(argc - 2, argv + 2, model, &man);
	else if (logdiff) rc = cmd_logdiff(argc - 2, argv + 2, &man);
	else {
		parsed P;
		parse_opts(argc - 2, argv + 2, info_opts, "info", &P);
		rt_manifest_print(&man, stdout);
		fflush(stdout);
		rc = 0;
	}
	rt_manifest_free(&man);
	/* an earlier fflush may have failed already (its error stays set) */
	if (fflush(stdout) != 0 || ferror(stdout)) rt_die(1, "standard output: cannot write: %s", strerror(errno));
	return rc;
}

int rt_protected(const char *argv0, int (*body)(void *ctx), void (*cleanup)(void *ctx), void *ctx)
{
	const char *saved_name = progname;
	if (argv0) {
		const char *slash = strrchr(argv0, '/');
		progname = slash ? slash + 1 : argv0;
	}
	jmp_buf jb;
	jmp_buf *volatile saved = die_jmp;
	int code = setjmp(jb);
	if (code != 0) {
		die_jmp = saved;
		rt_digests_activate(NULL);
		if (cleanup) cleanup(ctx);
		progname = saved_name;
		return code;
	}
	die_jmp = &jb;
	int rc = body(ctx);
	die_jmp = saved;
	progname = saved_name;
	return rc;
}

typedef struct main_ctx { int argc; char **argv; const nnd_model *m; } main_ctx;

static int main_body(void *ctx)
{
	main_ctx *c = ctx;
	return real_main(c->argc, c->argv, c->m);
}

static void main_cleanup(void *ctx)
{
	(void)ctx;
	if (live_run) rt_run_free(live_run);
	live_run = NULL;
	if (infer_out) fclose(infer_out);
	infer_out = NULL;
	rt_manifest_cleanup();
	rt_manifest_free(&man);
}

int nnd_rt_main(int argc, char **argv, const nnd_model *m)
{
	main_ctx c = { argc, argv, m };
	const char *a0 = argc > 0 && argv[0] ? argv[0] : "nnd-program";
	return rt_protected(a0, main_body, main_cleanup, &c);
}
