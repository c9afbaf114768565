/* log.c - the evidence a run leaves (determinism.md section 5): the JSON
 * lines run log, and the progress display on stderr.
 *
 * Run log (--log FILE), one JSON object per line:
 *   line 1: {"run": {...}}  compiler, runtime version, source path and
 *           digest, seed, backend, train name, dataset files with their
 *           SHA-256, resume point, and every reduction plan of the program
 *   then per optimizer step:
 *           {"step":N,"epoch":E,"loss":L,"loss_bits":"0x........","lr":R}
 *           (step 1-based, epoch 1-based as in the stdout epoch lines, loss
 *           and lr with %.9g, which round-trips binary32), plus
 *           "params_sha256" every 100 steps; with --debug-digests every
 *           step line also has "params_sha256" and
 *           "nodes":{"ID":"HEX16",...}: each train-graph node's digest (the
 *           first 64 bits of the SHA-256 of its value's bytes, as written by
 *           nnd_rt_node_digest) in graph order; nodes of another graph
 *           would be keyed "GRAPH:ID".  `PROGRAM logdiff` compares two logs.
 *   last:   {"final":true,"step":N,"epochs_completed":E,"batch_in_epoch":P,
 *            "params_sha256":"..."}  (where the run stopped)
 * The file is truncated at open: a resumed run writes its own log, which
 * starts at the first step it takes. */
#include "rt_internal.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

void rt_sha256_file(const char *path, char hex[65])
{
	/* streamed: dataset files can be far larger than what we keep in memory */
	FILE *f = fopen(path, "rb");
	if (!f) rt_die(1, "%s: cannot open: %s", path, strerror(errno));
	nnd_sha256_ctx *c = nnd_sha256_begin();
	static uint8_t buf[1 << 16];
	size_t n;
	while ((n = fread(buf, 1, sizeof buf, f)) > 0) nnd_sha256_update(c, buf, n);
	int rerr = ferror(f) ? errno : 0;
	uint8_t dig[32];
	nnd_sha256_end(c, dig);
	if (rerr) { fclose(f); rt_die(1, "%s: cannot read: %s", path, strerror(rerr)); }
	if (fclose(f) != 0) rt_die(1, "%s: cannot close: %s", path, strerror(errno));
	nnd_sha256_hex(dig, hex);
}

static void add_dataset(cJSON *arr, const rt_dataset *ds)
{
	cJSON *o = cJSON_CreateObject();
	cJSON_AddStringToObject(o, "role", ds->role ? "eval" : "data");
	cJSON_AddStringToObject(o, "name", ds->name);
	cJSON_AddStringToObject(o, "kind", ds->kind ? "csv" : "idx");
	cJSON *files = cJSON_AddArrayToObject(o, "files");
	for (int i = 0; i < (ds->kind == 0 ? 2 : 1); i++) {
		const char *path = i ? ds->path2 : ds->path1;
		char hex[65];
		rt_sha256_file(path, hex);
		cJSON *f = cJSON_CreateObject();
		cJSON_AddStringToObject(f, "path", path);
		cJSON_AddStringToObject(f, "sha256", hex);
		cJSON_AddItemToArray(files, f);
	}
	if (ds->kind == 1) cJSON_AddStringToObject(o, "label", ds->path2);
	cJSON_AddItemToArray(arr, o);
}

size_t nnd_utf8_len(const unsigned char *p, size_t n)
{
	if (n == 0) return 0;
	unsigned c = p[0];
	if (c < 0x80) return 1;
	size_t k = c >= 0xC2 && c <= 0xDF ? 2 : c >= 0xE0 && c <= 0xEF ? 3 : c >= 0xF0 && c <= 0xF4 ? 4 : 0;
	if (k == 0 || k > n) return 0;
	for (size_t i = 1; i < k; i++)
		if ((p[i] & 0xC0) != 0x80) return 0;
	if ((c == 0xE0 && p[1] < 0xA0) || (c == 0xED && p[1] > 0x9F) || (c == 0xF0 && p[1] < 0x90) || (c == 0xF4 && p[1] > 0x8F))
		return 0;
	return k;
}

/* JSON text must be UTF-8, and a path may hold any bytes: each byte of a
 * malformed sequence (only ever inside a string: the syntax is ASCII) is
 * written as U+FFFD, so the line stays valid JSON */
static void put_line(rt_log *lg, const char *s)
{
	const unsigned char *u0 = (const unsigned char *)s;
	size_t len = strlen(s), i = 0, n;
	while (i < len && (n = nnd_utf8_len(u0 + i, len - i)) != 0)
		i += n;
	if (i < len) {
		char *t = rt_xmalloc(3 * len + 1), *o = t;
		for (i = 0; i < len; ) {
			n = nnd_utf8_len(u0 + i, len - i);
			if (n) { memcpy(o, u0 + i, n); o += n; i += n; }
			else { memcpy(o, "\xEF\xBF\xBD", 3); o += 3; i++; }
		}
		*o = 0;
		int ok = fputs(t, lg->f) != EOF;
		free(t);
		if (!ok) rt_die(1, "%s: cannot write: %s", lg->path, strerror(errno));
	} else if (fputs(s, lg->f) == EOF)
		rt_die(1, "%s: cannot write: %s", lg->path, strerror(errno));
	if (fputc('\n', lg->f) == EOF)
		rt_die(1, "%s: cannot write: %s", lg->path, strerror(errno));
}

void rt_log_open(rt_log *lg, const char *path, const rt_run *r)
{
	lg->path = path;
	lg->f = fopen(path, "w");
	if (!lg->f) rt_die(1, "%s: cannot create the log: %s", path, strerror(errno));
	const rt_manifest *m = r->man;
	const rt_program *p = r->prog;
	cJSON *root = cJSON_CreateObject();
	cJSON *run = cJSON_AddObjectToObject(root, "run");
	cJSON_AddStringToObject(run, "compiler", m->compiler);
	cJSON_AddStringToObject(run, "runtime", "nnd " NND_VERSION);
	cJSON_AddStringToObject(run, "source", m->source_path);
	cJSON_AddStringToObject(run, "source_sha256", m->source_sha);
	char seed[32];
	/* as a string: a u64 does not fit a JSON number read as a double */
	snprintf(seed, sizeof seed, "%" PRIu64, r->seed);
	cJSON_AddStringToObject(run, "seed", seed);
	rt_dev_manifest(r, run);   /* backend, device, cuDNN's pinned algorithms */
	cJSON_AddStringToObject(run, "train", p->name);
	cJSON_AddNumberToObject(run, "batch", (double)p->batch);
	cJSON_AddNumberToObject(run, "epochs", (double)r->epochs);
	cJSON_AddNumberToObject(run, "samples", (double)r->n);
	cJSON_AddNumberToObject(run, "start_step", (double)r->step);
	cJSON *ds = cJSON_AddArrayToObject(run, "datasets");
	if (p->data_ds >= 0) add_dataset(ds, &p->datasets[p->data_ds]);
	if (p->eval_ds >= 0 && r->have_eval) add_dataset(ds, &p->datasets[p->eval_ds]);
	cJSON *plans = cJSON_AddArrayToObject(run, "plans");
	for (int i = 0; i < p->nplans; i++) {
		const rt_plan *pl = &p->plans[i];
		cJSON *o = cJSON_CreateObject();
		cJSON_AddStringToObject(o, "graph", rt_graph_names[pl->graph]);
		cJSON_AddNumberToObject(o, "node", (double)pl->node);
		cJSON_AddStringToObject(o, "op", pl->op);
		cJSON_AddStringToObject(o, "path", pl->path);
		cJSON_AddStringToObject(o, "plan", pl->plan);
		cJSON_AddItemToArray(plans, o);
	}
	char *s = cJSON_PrintUnformatted(root);
	if (!s) rt_die(2, "out of memory");
	put_line(lg, s);
	cJSON_free(s);
	cJSON_Delete(root);
}

void rt_log_step(rt_log *lg, const rt_run *r, float loss, float lr, bool with_sha,
                 const rt_digests *nodes)
{
	uint32_t bits;
	memcpy(&bits, &loss, 4);
	/* 160 bytes of fixed fields, then at most 48 per node */
	size_t cap = 256 + (nodes ? (size_t)nodes->n * 48 : 0);
	char *line = rt_xmalloc(cap);
	size_t n = (size_t)snprintf(line, cap, "{\"step\":%" PRId64 ",\"epoch\":%" PRId64 ",\"loss\":%.9g,\"loss_bits\":\"0x%08" PRIx32 "\",\"lr\":%.9g",
	                            r->step, r->epoch + 1, (double)loss, bits, (double)lr);
	if (with_sha || nodes) {
		char hex[65];
		rt_params_sha256(r, hex);
		n += (size_t)snprintf(line + n, cap - n, ",\"params_sha256\":\"%s\"", hex);
	}
	if (nodes) {
		n += (size_t)snprintf(line + n, cap - n, ",\"nodes\":{");
		for (int64_t i = 0; i < nodes->n; i++) {
			const rt_digest *d = &nodes->v[i];
			if (d->graph == RT_GRAPH_TRAIN)
				n += (size_t)snprintf(line + n, cap - n, "%s\"%" PRId32 "\":\"%016" PRIx64 "\"", i ? "," : "", d->node, d->h);
			else
				n += (size_t)snprintf(line + n, cap - n, "%s\"%s:%" PRId32 "\":\"%016" PRIx64 "\"", i ? "," : "",
				                      d->graph >= 0 && d->graph < RT_NGRAPHS ? rt_graph_names[d->graph] : "?", d->node, d->h);
		}
		n += (size_t)snprintf(line + n, cap - n, "}");
	}
	snprintf(line + n, cap - n, "}");
	put_line(lg, line);
	free(line);
}

void rt_log_final(rt_log *lg, const rt_run *r)
{
	char hex[65], line[200];
	rt_params_sha256(r, hex);
	snprintf(line, sizeof line, "{\"final\":true,\"step\":%" PRId64 ",\"epochs_completed\":%" PRId64
	         ",\"batch_in_epoch\":%" PRId64 ",\"params_sha256\":\"%s\"}", r->step, r->epoch, r->pos, hex);
	put_line(lg, line);
}

void rt_log_close(rt_log *lg)
{
	if (!lg->f) return;
	if (fclose(lg->f) != 0) {
		lg->f = NULL;
		rt_die(1, "%s: cannot write: %s", lg->path, strerror(errno));
	}
	lg->f = NULL;
}

/* ---- progress on stderr ---- */

double rt_now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

void rt_progress_begin(rt_progress *p, int64_t samples_total)
{
	memset(p, 0, sizeof *p);
	p->tty = isatty(2);
	p->t_start = p->t_last = rt_now();
	p->samples_total = samples_total;
}

static void fmt_eta(char *buf, size_t n, double s)
{
	if (!(s >= 0) || s > 1e7) { snprintf(buf, n, "--:--"); return; }
	long t = (long)(s + 0.5);
	if (t >= 3600) snprintf(buf, n, "%ld:%02ld:%02ld", t / 3600, t / 60 % 60, t % 60);
	else snprintf(buf, n, "%ld:%02ld", t / 60, t % 60);
}

/* Redraws at most 10 times a second on a terminal; elsewhere (a log file, a
 * pipe, CI) a plain line at most every 10 seconds, so logs stay short. */
void rt_progress_update(rt_progress *p, const rt_run *r, int64_t samples_now, float loss)
{
	p->samples_done = samples_now;
	double now = rt_now();
	if (now - p->t_last < (p->tty ? 0.1 : 10.0)) return;
	p->t_last = now;
	double el = now - p->t_start;
	double rate = el > 0 ? (double)samples_now / el : 0;
	char eta[32];
	fmt_eta(eta, sizeof eta, rate > 0 ? (double)(p->samples_total - samples_now) / rate : -1);
	if (p->tty) {
		int width = 24, fill = p->samples_total > 0 ? (int)((double)width * (double)samples_now / (double)p->samples_total) : 0;
		if (fill > width) fill = width;
		char bar[32];
		for (int i = 0; i < width; i++) bar[i] = i < fill ? '#' : '.';
		bar[width] = 0;
		fprintf(stderr, "\r\033[Kepoch %" PRId64 "/%" PRId64 " [%s] step %" PRId64 " loss %.4f %.0f samples/s ETA %s",
		        r->epoch + 1, r->epochs, bar, r->step, (double)loss, rate, eta);
		p->drawn = 1;
	} else {
		fprintf(stderr, "train: epoch %" PRId64 "/%" PRId64 " step %" PRId64 " loss %.4f, %.0f samples/s, ETA %s\n",
		        r->epoch + 1, r->epochs, r->step, (double)loss, rate, eta);
	}
	fflush(stderr);
}

void rt_progress_end(rt_progress *p)
{
	if (p->tty && p->drawn) {
		fprintf(stderr, "\r\033[K");
		fflush(stderr);
		p->drawn = 0;
	}
}
