/* nndc.c - the compiler driver.  Compilation is a straight list of passes
 * with the IR verifier between every two (see `pipeline` below); any stage
 * can be printed with `nndc emit --stage ... [--after PASS]`. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "ast.h"
#include "../passes/passes.h"
#include "../codegen/codegen.h"
#include "../codegen/cuda.h"
#include "../runtime/rt.h"

typedef struct opts {
	const char *cmd, *model, *output, *stage, *after, *target, *arch;
	const char *threads, *train;     /* verify */
	const char *logs[2];             /* logdiff */
	long steps;
	int opt_level;
	pass_options po;
	int prog_argc;              /* after "--" */
	char **prog_argv;
} opts;

static void usage(FILE *f)
{
	fputs("usage: nndc COMMAND MODEL.nnd [OPTIONS]\n"
	      "\n"
	      "commands:\n"
	      "  build MODEL.nnd -o PROGRAM [--target all|cpu|cuda] [-O0..3]\n"
	      "                         compile to a native training executable\n"
	      "  run   MODEL.nnd [-O0..3] [-- PROGRAM-OPTIONS]\n"
	      "                         compile in memory (LLVM ORC JIT) and run, e.g. -- train --epochs 1\n"
	      "  check MODEL.nnd        parse and type-check only\n"
	      "  verify MODEL.nnd [--threads 1,2,4] [--steps N] [--train NAME]\n"
	      "                         train N steps (default 3) twice and at each thread count,\n"
	      "                         digesting every op's output; prints 'same bits SHA256' or\n"
	      "                         the first step and op (by instance path) that differs\n"
	      "  logdiff MODEL.nnd A.jsonl B.jsonl\n"
	      "                         compare two step logs (train --log, --debug-digests):\n"
	      "                         the first step, and op, where the runs diverge\n"
	      "  emit  MODEL.nnd --stage ast|ir|plans|manifest|llvm|cuda|ptx [--after PASS]\n"
	      "                         print a stage; --after lower|shape|autodiff|optimizer|plans|rng|fuse|memplan\n"
	      "                         picks the IR after that pass (default: after memplan); cuda: the\n"
	      "                         CUDA source of --device cuda, ptx: it compiled by NVRTC (no GPU\n"
	      "                         needed) for --arch compute_NN (default compute_80)\n"
	      "\n"
	      "options:\n"
	      "  -o FILE                output executable (build)\n"
	      "  --target all|cpu|cuda  all (default): CPU code and CUDA kernels, --device cpu by\n"
	      "                         default; cuda: the same, kernels checked by NVRTC at build\n"
	      "                         time where installed, --device cuda by default; cpu: no kernels\n"
	      "  -O0 -O1 -O2 -O3        LLVM optimisation level (default -O2); never changes a bit\n"
	      "  --plan PLAN            reduction plans: seq, blocked:N or tree:F for every\n"
	      "                         reduction, or GLOB=PLAN,... by instance path (default: seq;\n"
	      "                         seq+fma for dot products)\n"
	      "  --no-fuse              give every elementwise value its own kernel and storage\n"
	      "                         (fusion never changes a bit; this is for comparing)\n"
	      "  --help, --version\n", f);
}

static _Noreturn void bad_flag(const char *fmt, const char *arg)
{
	fprintf(stderr, "nndc: error: ");
	fprintf(stderr, fmt, arg);
	fputs("\n(see nndc --help)\n", stderr);
	exit(1);
}

static void parse_args(int argc, char **argv, opts *o)
{
	memset(o, 0, sizeof *o);
	o->opt_level = 2;
	o->steps = 3;
	if (argc < 2) {
		usage(stderr);
		exit(1);
	}
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
			usage(stdout);
			exit(0);
		} else if (!strcmp(a, "--version")) {
			printf("nndc %s (LLVM %s)\n", NND_VERSION, NND_LLVM_VERSION);
			exit(0);
		} else if (!strcmp(a, "--")) {
			o->prog_argc = argc - i - 1;
			o->prog_argv = argv + i + 1;
			break;
		} else if (!strcmp(a, "-o") || !strcmp(a, "--stage") || !strcmp(a, "--after") ||
		           !strcmp(a, "--target") || !strcmp(a, "--plan") || !strcmp(a, "--threads") ||
		           !strcmp(a, "--steps") || !strcmp(a, "--train") || !strcmp(a, "--arch")) {
			if (i + 1 >= argc)
				bad_flag("%s needs a value", a);
			const char *v = argv[++i];
			if (!strcmp(a, "-o")) o->output = v;
			else if (!strcmp(a, "--threads")) o->threads = v;
			else if (!strcmp(a, "--train")) o->train = v;
			else if (!strcmp(a, "--arch")) o->arch = v;
			else if (!strcmp(a, "--steps")) {
				char *end;
				o->steps = strtol(v, &end, 10);
				if (!*v || *end || o->steps < 1 || o->steps > 1000000)
					bad_flag("--steps: expected a number of steps from 1 to 1000000, found '%s'", v);
			}
			else if (!strcmp(a, "--stage")) o->stage = v;
			else if (!strcmp(a, "--after")) o->after = v;
			else if (!strcmp(a, "--target")) o->target = v;
			else o->po.plan_override = v;
		} else if (!strcmp(a, "--no-fuse")) o->po.no_fuse = true;
		else if (!strncmp(a, "--stage=", 8)) o->stage = a + 8;
		else if (!strncmp(a, "--after=", 8)) o->after = a + 8;
		else if (!strncmp(a, "--target=", 9)) o->target = a + 9;
		else if (!strncmp(a, "--plan=", 7)) o->po.plan_override = a + 7;
		else if (a[0] == '-' && a[1] == 'O' && a[2] >= '0' && a[2] <= '3' && !a[3])
			o->opt_level = a[2] - '0';
		else if (a[0] == '-')
			bad_flag("unknown option '%s'", a);
		else if (!o->cmd)
			o->cmd = a;
		else if (!o->model)
			o->model = a;
		else if (!strcmp(o->cmd, "logdiff") && !o->logs[1])
			o->logs[o->logs[0] ? 1 : 0] = a;
		else
			bad_flag("unexpected argument '%s'", a);
	}
	if (!o->cmd)
		bad_flag("%s", "no command given");
	if (strcmp(o->cmd, "build") && strcmp(o->cmd, "run") && strcmp(o->cmd, "check") &&
	    strcmp(o->cmd, "emit") && strcmp(o->cmd, "verify") && strcmp(o->cmd, "logdiff"))
		bad_flag("unknown command '%s'", o->cmd);
	if (!o->model)
		bad_flag("%s: no MODEL.nnd given", o->cmd);
	if (!strcmp(o->cmd, "logdiff") && !o->logs[1])
		bad_flag("%s", "logdiff needs MODEL.nnd A.jsonl B.jsonl");
	if (o->target && strcmp(o->target, "cpu") && strcmp(o->target, "cuda") && strcmp(o->target, "all"))
		bad_flag("--target %s: expected cpu, cuda or all", o->target);
}

/* Compiles, or exits with the pipeline's status (1 user error, 2 internal). */
static ir_module *compile(arena *a, const opts *o, const char *stop, ast_file **ast_out)
{
	int status = 0;
	ir_module *m = pass_compile(a, o->model, &o->po, stop, ast_out, &status);
	if (status)
		exit(status);
	return m;
}

/* --target all (the default): the CPU code and the CUDA kernels' source,
 * --device cpu by default; cuda: the same, the kernels checked by NVRTC
 * now where it is installed, and --device cuda by default (a //@device
 * record); cpu: no kernels, so --device cuda says how to rebuild */
static cg_module *build_module(arena *a, const opts *o, bool with_main)
{
	if (cg_check_target() || cg_cuda_check_env())
		exit(1);
	const char *target = o->target ? o->target : "all";
	ir_module *m = compile(a, o, NULL, NULL);
	char *manifest = pass_manifest(m);
	char err[1024] = "";
	char *cuda = NULL;
	char fallback[1200];
	if (!strcmp(target, "cpu"))
		snprintf(fallback, sizeof fallback, "//@error built with --target cpu; rebuild it with "
		         "--target all (the default) or cuda\n");
	else if (!(cuda = cg_cuda_source(m, err, sizeof err))) {
		if (!strcmp(target, "cuda")) {
			fprintf(stderr, "nndc: internal error: --target cuda: %s\n", err);
			exit(2);
		}
		/* one that cannot be generated says why when the device is asked for */
		snprintf(fallback, sizeof fallback, "//@error %s\n", err);
	}
	if (cuda && !strcmp(target, "cuda")) {
		char *out = NULL, *log = NULL, msg[16384];
		size_t len = 0;
		if (nnd_cuda_compile(cuda, "compute_80", &out, &len, &log, msg, sizeof msg) == 0)
			free(out);
		else if (!strncmp(msg, "no NVRTC", 8))
			fprintf(stderr, "nndc: note: --target cuda: %s; the kernels are compiled when the program first "
			        "runs on a GPU\n", msg);
		else {
			fprintf(stderr, "nndc: internal error: --target cuda: NVRTC: %s\n", msg);
			exit(2);
		}
		free(log);
		static const char rec[] = "//@device cuda\n";
		char *both = malloc(sizeof rec + strlen(cuda));
		if (!both) {
			fprintf(stderr, "nndc: internal error: out of memory\n");
			exit(2);
		}
		memcpy(both, rec, sizeof rec - 1);
		strcpy(both + sizeof rec - 1, cuda);
		free(cuda);
		cuda = both;
	}
	cg_module *cm = cg_build(m, manifest, cuda ? cuda : fallback, o->opt_level, with_main);
	free(cuda);
	free(manifest);
	if (!cm)
		exit(2);
	return cm;
}

/* --stage cuda: the generated source; --stage ptx: NVRTC's PTX for it */
static int emit_cuda(arena *a, const opts *o, bool ptx)
{
	if (cg_cuda_check_env())
		return 1;
	ir_module *m = compile(a, o, NULL, NULL);
	char err[1024] = "";
	char *src = cg_cuda_source(m, err, sizeof err);
	if (!src) {
		fprintf(stderr, "nndc: internal error: %s\n", err);
		return 2;
	}
	if (!ptx) {
		fputs(src, stdout);
		free(src);
		return 0;
	}
	const char *arch = o->arch ? o->arch : "compute_80";
	if (strncmp(arch, "compute_", 8))
		bad_flag("--arch %s: --stage ptx takes a virtual architecture such as compute_80", arch);
	char *out = NULL, *log = NULL, msg[16384];
	size_t len = 0;
	int rc = nnd_cuda_compile(src, arch, &out, &len, &log, msg, sizeof msg);
	free(src);
	free(log);
	if (rc) {
		fprintf(stderr, "nndc: error: --stage ptx: %s\n", msg);
		return !strncmp(msg, "no NVRTC", 8) ? 1 : 2;
	}
	fwrite(out, 1, len, stdout);
	free(out);
	return 0;
}

static int cmd_emit(arena *a, const opts *o)
{
	if (!o->stage)
		bad_flag("%s", "emit needs --stage ast|ir|plans|manifest|llvm|cuda|ptx");
	const char *st = o->stage;
	if (!strcmp(st, "cuda") || !strcmp(st, "ptx"))
		return emit_cuda(a, o, !strcmp(st, "ptx"));
	if (strcmp(st, "ast") && strcmp(st, "ir") && strcmp(st, "plans") && strcmp(st, "manifest") &&
	    strcmp(st, "llvm"))
		bad_flag("--stage: unknown stage '%s' (expected ast, ir, plans, manifest, llvm, cuda or ptx)", st);
	if (o->after && (strcmp(st, "ir") || !pass_known(o->after))) {
		char msg[512];
		snprintf(msg, sizeof msg, "--after %.100s: expected --stage ir and one of %s", o->after, pass_names());
		bad_flag("%s", msg);
	}
	if (!strcmp(st, "ast")) {
		ast_file *f;
		compile(a, o, "ast", &f);
		ast_print(f, stdout);
		return 0;
	}
	if (!strcmp(st, "llvm")) {
		cg_module *cm = build_module(a, o, true);
		cg_print_llvm(cm, stdout);
		cg_free(cm);
		return 0;
	}
	ir_module *m = compile(a, o, !strcmp(st, "ir") ? o->after : NULL, NULL);
	if (!strcmp(st, "manifest")) {
		char *s = pass_manifest(m);
		fputs(s, stdout);
		free(s);
		return 0;
	}
	for (int i = 0; i < m->nprogs; i++) {
		if (!strcmp(st, "plans"))
			ir_print_plans(m->progs[i], stdout);
		else
			ir_print_program(m->progs[i], stdout);
	}
	return 0;
}

/* "1,2,4" -> {1, 2, 4} */
static int parse_threads(const char *s, int *out, int max)
{
	int n = 0;
	while (*s) {
		char *end;
		long v = strtol(s, &end, 10);
		if (end == s || v < 1 || v > 1024 || n == max || (*end && *end != ','))
			bad_flag("--threads: expected a list of thread counts like 1,2,4, found '%s'", s);
		out[n++] = (int)v;
		s = *end ? end + 1 : end;
	}
	if (!n)
		bad_flag("%s", "--threads: empty list");
	return n;
}

static int cmd_verify(arena *a, const opts *o)
{
	int threads[16] = { 1, 2, 4 }, nthreads = 3;
	if (o->threads)
		nthreads = parse_threads(o->threads, threads, 16);
	cg_module *cm = build_module(a, o, false);
	const nnd_model *model = cg_jit_lookup(cm, "nnd_model");
	if (!model)
		return 2;
	fflush(stdout);
	int rc = nnd_rt_verify(model, o->train, threads, nthreads, o->steps, o->model);
	cg_free(cm);
	return rc;
}

static mode_t umask_now(void)
{
	mode_t m = umask(0);
	umask(m);
	return m;
}

/* build's object file and executable are temporaries beside PROGRAM
 * (never PROGRAM.o, which may be the user's): the executable is renamed
 * onto PROGRAM once linked, so a failed build leaves no half program, and
 * an -o that cannot be written is found before compiling */
static void make_temps(const char *output, char *obj, char *exe, size_t n)
{
	struct stat st;
	if (stat(output, &st) == 0 && S_ISDIR(st.st_mode))
		bad_flag("-o %s: is a directory", output);
	const char *slash = strrchr(output, '/');
	int dl = slash ? (int)(slash - output + 1) : 0;
	const char *base = slash ? slash + 1 : output;
	if (!*base)
		bad_flag("-o %s: names a directory", output);
	if (snprintf(obj, n, "%.*s.%s.XXXXXX.o", dl, output, base) >= (int)n ||
	    snprintf(exe, n, "%.*s.%s.XXXXXX", dl, output, base) >= (int)n)
		bad_flag("-o %s: path too long", output);
	int fo = mkstemps(obj, 2);
	if (fo < 0) {
		fprintf(stderr, "nndc: error: -o %s: cannot create a file there: %s\n", output, strerror(errno));
		exit(1);
	}
	close(fo);
	int fe = mkstemp(exe);
	if (fe < 0) {
		fprintf(stderr, "nndc: error: -o %s: cannot create a file there: %s\n", output, strerror(errno));
		unlink(obj);
		exit(1);
	}
	close(fe);
}

int main(int argc, char **argv)
{
	opts o;
	parse_args(argc, argv, &o);
	arena *a = arena_new();
	int rc = 0;
	if (!strcmp(o.cmd, "check")) {
		compile(a, &o, NULL, NULL);
		fprintf(stderr, "%s: ok\n", o.model);
	} else if (!strcmp(o.cmd, "emit")) {
		rc = cmd_emit(a, &o);
	} else if (!strcmp(o.cmd, "build")) {
		if (!o.output)
			bad_flag("%s", "build needs -o PROGRAM");
		char obj[4096], exe[4096];
		make_temps(o.output, obj, exe, sizeof obj);
		cg_module *cm = build_module(a, &o, true);
		if (cg_emit_object(cm, obj) || cg_link_executable(obj, exe))
			rc = 2;
		else if (chmod(exe, 0777 & ~umask_now()) != 0 || rename(exe, o.output) != 0) {
			fprintf(stderr, "nndc: error: -o %s: cannot create: %s\n", o.output, strerror(errno));
			rc = 1;
		}
		unlink(obj);
		if (rc)
			unlink(exe);
		cg_free(cm);
	} else if (!strcmp(o.cmd, "run")) {
		cg_module *cm = build_module(a, &o, false);
		/* the program sees argv[0] = the model, then what follows "--" */
		char **pargv = xcalloc((size_t)o.prog_argc + 2, sizeof *pargv);
		pargv[0] = (char *)o.model;
		for (int i = 0; i < o.prog_argc; i++)
			pargv[i + 1] = o.prog_argv[i];
		fflush(stdout);
		rc = cg_jit_run(cm, o.prog_argc + 1, pargv);
		free(pargv);
	} else if (!strcmp(o.cmd, "logdiff")) {
		cg_module *cm = build_module(a, &o, false);
		const nnd_model *model = cg_jit_lookup(cm, "nnd_model");
		rc = model ? nnd_rt_logdiff(model, o.logs[0], o.logs[1], "nndc logdiff") : 2;
		cg_free(cm);
	} else {
		rc = cmd_verify(a, &o);
	}
	arena_free(a);
	return rc;
}
