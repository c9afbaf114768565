/* checkpoint.c - safetensors checkpoints (--save, --resume, eval --weights).
 *
 * A checkpoint directory holds two files:
 *   params.safetensors       every param, then every state tensor, under
 *                            its source path (F32, row-major, little-endian);
 *                            __metadata__ says which source and train block
 *                            and at which step.  Loadable by any safetensors
 *                            reader, and by `PROGRAM eval --weights`.
 *   train_state.safetensors  tensor "opt" (the optimizer block as one F32
 *                            vector) and in __metadata__ everything else a
 *                            resume needs: step, epoch, batch position in the
 *                            epoch, the epoch's running loss sum (exact bits),
 *                            seed, sample count, train name, source digest,
 *                            and the SHA-256 of the params file it belongs to.
 * Gradients and activations are not saved: a step computes them afresh.
 *
 * Each file is written to DIR/.tmp-NAME-XXXXXX, fsynced, and renamed into
 * place, then the directory is fsynced, so a kill leaves either the old or
 * the new file.  params.safetensors is renamed first; if a kill falls
 * between the two renames, the train state's params digest no longer
 * matches and --resume says so instead of continuing from a mixed state. */
#include "rt_internal.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <signal.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* ---- writing ---- */

typedef struct st_entry {
	const char *name;
	int rank;
	const int64_t *dims;
	const float *data;
	int64_t numel;
} st_entry;

/* Builds a whole safetensors file in memory. */
static uint8_t *st_build(const st_entry *e, int n, cJSON *meta, size_t *len)
{
	cJSON *h = cJSON_CreateObject();
	uint64_t off = 0;
	for (int i = 0; i < n; i++) {
		cJSON *t = cJSON_CreateObject();
		cJSON_AddStringToObject(t, "dtype", "F32");
		cJSON *shape = cJSON_AddArrayToObject(t, "shape");
		for (int d = 0; d < e[i].rank; d++) cJSON_AddItemToArray(shape, cJSON_CreateNumber((double)e[i].dims[d]));
		cJSON *offs = cJSON_AddArrayToObject(t, "data_offsets");
		cJSON_AddItemToArray(offs, cJSON_CreateNumber((double)off));
		off += (uint64_t)e[i].numel * 4;
		cJSON_AddItemToArray(offs, cJSON_CreateNumber((double)off));
		cJSON_AddItemToObject(h, e[i].name, t);
	}
	cJSON_AddItemToObject(h, "__metadata__", meta);
	char *js = cJSON_PrintUnformatted(h);
	if (!js) rt_die(2, "out of memory");
	cJSON_Delete(h);
	size_t jl = strlen(js);
	size_t hl = (jl + 7) & ~(size_t)7;   /* pad with spaces: data 8-aligned */
	*len = 8 + hl + off;
	uint8_t *buf = rt_xmalloc(*len);
	for (int b = 0; b < 8; b++) buf[b] = (uint8_t)((uint64_t)hl >> (8 * b));
	memcpy(buf + 8, js, jl);
	memset(buf + 8 + jl, ' ', hl - jl);
	cJSON_free(js);
	uint8_t *p = buf + 8 + hl;
	for (int i = 0; i < n; i++) {
		memcpy(p, e[i].data, (size_t)e[i].numel * 4);
		p += (size_t)e[i].numel * 4;
	}
	return buf;
}

static void write_atomic(const char *dir, const char *name, const uint8_t *buf, size_t len)
{
	size_t dl = strlen(dir) + strlen(name) + 32;
	char *tmp = rt_xmalloc(dl), *dst = rt_xmalloc(dl);
	snprintf(tmp, dl, "%s/.tmp-%s-XXXXXX", dir, name);
	snprintf(dst, dl, "%s/%s", dir, name);
	int fd = mkstemp(tmp);
	if (fd < 0) rt_die(1, "%s: cannot create a file in the checkpoint directory: %s", tmp, strerror(errno));
	/* Test hook: NND_TEST_KILL_IN_SAVE=NAME dies (as a SIGKILL would) half
	 * way through writing NAME, to show the previous checkpoint survives. */
	const char *kill_at = getenv("NND_TEST_KILL_IN_SAVE");
	size_t o = 0;
	while (o < len) {
		if (kill_at && !strcmp(kill_at, name) && o >= len / 2)
			raise(SIGKILL);
		size_t chunk = kill_at ? (len - o + 1) / 2 : len - o;
		ssize_t w = write(fd, buf + o, chunk);
		if (w < 0) {
			if (errno == EINTR) continue;
			int e = errno;
			close(fd); unlink(tmp);
			rt_die(1, "%s: cannot write: %s", tmp, strerror(e));
		}
		o += (size_t)w;
	}
	if (fsync(fd) != 0) {
		int e = errno;
		close(fd); unlink(tmp);
		rt_die(1, "%s: cannot sync: %s", tmp, strerror(e));
	}
	if (close(fd) != 0) { int e = errno; unlink(tmp); rt_die(1, "%s: cannot close: %s", tmp, strerror(e)); }
	if (rename(tmp, dst) != 0) { int e = errno; unlink(tmp); rt_die(1, "%s: cannot rename to %s: %s", tmp, dst, strerror(e)); }
	int dfd = open(dir, O_RDONLY | O_DIRECTORY);
	if (dfd < 0) rt_die(1, "%s: cannot open the directory: %s", dir, strerror(errno));
	if (fsync(dfd) != 0) { int e = errno; close(dfd); rt_die(1, "%s: cannot sync the directory: %s", dir, strerror(e)); }
	close(dfd);
	free(tmp); free(dst);
}

static void meta_i64(cJSON *m, const char *k, int64_t v)
{
	char b[32];
	snprintf(b, sizeof b, "%" PRId64, v);
	cJSON_AddStringToObject(m, k, b);
}

static cJSON *common_meta(const rt_run *r)
{
	cJSON *m = cJSON_CreateObject();
	cJSON_AddStringToObject(m, "nnd_version", NND_VERSION);
	cJSON_AddStringToObject(m, "compiler", r->man->compiler);
	cJSON_AddStringToObject(m, "source_sha256", r->man->source_sha);
	cJSON_AddStringToObject(m, "train", r->prog->name);
	meta_i64(m, "step", r->step);
	return m;
}

void rt_ckpt_save(const rt_run *r, const char *dir)
{
	const rt_program *p = r->prog;
	if (mkdir(dir, 0777) != 0 && errno != EEXIST) rt_die(1, "%s: cannot create the checkpoint directory: %s", dir, strerror(errno));
	struct stat sb;
	if (stat(dir, &sb) != 0) rt_die(1, "%s: %s", dir, strerror(errno));
	if (!S_ISDIR(sb.st_mode)) rt_die(1, "%s: exists and is not a directory", dir);

	int n = p->nparams + p->nstates;
	st_entry *e = rt_xcalloc((size_t)n + 1, sizeof *e);
	for (int i = 0; i < p->nparams; i++) {
		const rt_tensor *t = &p->params[i];
		e[i] = (st_entry){ t->path, t->rank, t->dims, r->params + t->offset, t->numel };
	}
	for (int i = 0; i < p->nstates; i++) {
		const rt_tensor *t = &p->states[i];
		e[p->nparams + i] = (st_entry){ t->path, t->rank, t->dims, r->state + t->offset, t->numel };
	}
	cJSON *pm = common_meta(r);
	cJSON_AddStringToObject(pm, "format", "pt");   /* what other readers expect here */
	size_t plen;
	uint8_t *pbuf = st_build(e, n, pm, &plen);
	uint8_t dig[32];
	char phex[65];
	nnd_sha256(pbuf, plen, dig);
	nnd_sha256_hex(dig, phex);

	cJSON *sm = common_meta(r);
	cJSON_AddStringToObject(sm, "format", "nnd-train-state");
	cJSON_AddStringToObject(sm, "state_version", "1");
	char b[64];
	snprintf(b, sizeof b, "%" PRIu64, r->seed);
	cJSON_AddStringToObject(sm, "seed", b);
	meta_i64(sm, "epoch", r->epoch);
	meta_i64(sm, "pos", r->pos);
	meta_i64(sm, "samples", r->n);
	meta_i64(sm, "epoch_samples", r->epoch_samples);
	uint64_t bits;
	memcpy(&bits, &r->epoch_loss_sum, 8);
	snprintf(b, sizeof b, "0x%016" PRIx64, bits);
	cJSON_AddStringToObject(sm, "epoch_loss_sum_bits", b);
	cJSON_AddStringToObject(sm, "params_sha256", phex);
	int64_t od[1] = { p->n_opt };
	st_entry oe = { "opt", 1, od, r->opt, p->n_opt };
	size_t slen;
	uint8_t *sbuf = st_build(&oe, 1, sm, &slen);

	write_atomic(dir, "params.safetensors", pbuf, plen);
	write_atomic(dir, "train_state.safetensors", sbuf, slen);
	free(pbuf); free(sbuf); free(e);
}

/* ---- reading ---- */

typedef struct st_file {
	const char *path;
	uint8_t *buf; size_t len;
	cJSON *hdr;
	const uint8_t *data; size_t dlen;
	cJSON *meta;
} st_file;

static void st_open(st_file *s, const char *path)
{
	memset(s, 0, sizeof *s);
	s->path = path;
	s->buf = rt_read_file(path, &s->len);
	if (s->len < 8) rt_die(1, "%s: truncated: %zu bytes, a safetensors file has at least 8", path, s->len);
	uint64_t hl = 0;
	for (int b = 0; b < 8; b++) hl |= (uint64_t)s->buf[b] << (8 * b);
	if (hl > s->len - 8)
		rt_die(1, "%s: truncated or not safetensors: header length %" PRIu64 " exceeds the %zu bytes after it", path, hl, s->len - 8);
	s->hdr = cJSON_ParseWithLength((const char *)s->buf + 8, (size_t)hl);
	if (!s->hdr || !cJSON_IsObject(s->hdr)) rt_die(1, "%s: the safetensors header is not a JSON object", path);
	s->data = s->buf + 8 + hl;
	s->dlen = s->len - 8 - (size_t)hl;
	cJSON *it;
	cJSON_ArrayForEach(it, s->hdr) {
		if (!strcmp(it->string, "__metadata__")) {
			if (!cJSON_IsObject(it)) rt_die(1, "%s: __metadata__ is not an object", path);
			s->meta = it;
			continue;
		}
		cJSON *dt = cJSON_GetObjectItemCaseSensitive(it, "dtype");
		cJSON *sh = cJSON_GetObjectItemCaseSensitive(it, "shape");
		cJSON *of = cJSON_GetObjectItemCaseSensitive(it, "data_offsets");
		if (!cJSON_IsString(dt) || !cJSON_IsArray(sh) || !cJSON_IsArray(of) || cJSON_GetArraySize(of) != 2)
			rt_die(1, "%s: tensor '%s': expected dtype, shape and data_offsets [begin, end]", path, it->string);
		if (strcmp(dt->valuestring, "F32")) rt_die(1, "%s: tensor '%s' has dtype %s, expected F32", path, it->string, dt->valuestring);
		double numel = 1;
		cJSON *d;
		cJSON_ArrayForEach(d, sh) {
			if (!cJSON_IsNumber(d) || d->valuedouble < 0 || d->valuedouble != (double)(int64_t)d->valuedouble)
				rt_die(1, "%s: tensor '%s': bad shape", path, it->string);
			numel *= d->valuedouble;
		}
		double a = cJSON_GetArrayItem(of, 0)->valuedouble, b = cJSON_GetArrayItem(of, 1)->valuedouble;
		if (!cJSON_IsNumber(cJSON_GetArrayItem(of, 0)) || !cJSON_IsNumber(cJSON_GetArrayItem(of, 1)) || a < 0 || b < a)
			rt_die(1, "%s: tensor '%s': bad data_offsets", path, it->string);
		if (b > (double)s->dlen)
			rt_die(1, "%s: truncated: tensor '%s' ends at byte %.0f of the data, which has %zu bytes", path, it->string, b, s->dlen);
		if (b - a != numel * 4) rt_die(1, "%s: tensor '%s': data_offsets span %.0f bytes, its shape needs %.0f", path, it->string, b - a, numel * 4);
	}
}

static void st_close(st_file *s)
{
	cJSON_Delete(s->hdr);
	free(s->buf);
	memset(s, 0, sizeof *s);
}

static void shape_str(char *b, size_t n, int rank, const int64_t *dims)
{
	size_t o = (size_t)snprintf(b, n, "[");
	for (int d = 0; d < rank && o < n; d++) o += (size_t)snprintf(b + o, n - o, d ? ", %" PRId64 : "%" PRId64, dims[d]);
	if (o < n) snprintf(b + o, n - o, "]");
}

/* Copies tensor `name` into dst after checking its shape. */
static void st_get(const st_file *s, const char *name, int rank, const int64_t *dims, float *dst, int64_t numel)
{
	cJSON *t = cJSON_GetObjectItemCaseSensitive(s->hdr, name);
	if (!t || !strcmp(name, "__metadata__")) rt_die(1, "%s: no tensor '%s' (the checkpoint is of another model)", s->path, name);
	cJSON *sh = cJSON_GetObjectItemCaseSensitive(t, "shape");
	bool ok = cJSON_GetArraySize(sh) == rank;
	for (int d = 0; ok && d < rank; d++) ok = cJSON_GetArrayItem(sh, d)->valuedouble == (double)dims[d];
	if (!ok) {
		char want[128], got[128];
		int64_t gd[RT_MAX_RANK];
		int gr = cJSON_GetArraySize(sh);
		if (gr > RT_MAX_RANK) gr = RT_MAX_RANK;
		for (int d = 0; d < gr; d++) gd[d] = (int64_t)cJSON_GetArrayItem(sh, d)->valuedouble;
		shape_str(want, sizeof want, rank, dims);
		shape_str(got, sizeof got, gr, gd);
		rt_die(1, "%s: tensor '%s' has shape %s, the model needs %s", s->path, name, got, want);
	}
	size_t a = (size_t)cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(t, "data_offsets"), 0)->valuedouble;
	memcpy(dst, s->data + a, (size_t)numel * 4);
}

static int count_tensors(const st_file *s)
{
	int n = 0;
	cJSON *it;
	cJSON_ArrayForEach(it, s->hdr) if (strcmp(it->string, "__metadata__")) n++;
	return n;
}

/* Loads params and state from an open params file; every tensor must be
 * there with its shape, and the file must hold no others. */
static void load_params(rt_run *r, const st_file *s)
{
	const rt_program *p = r->prog;
	for (int i = 0; i < p->nparams; i++) {
		const rt_tensor *t = &p->params[i];
		st_get(s, t->path, t->rank, t->dims, r->params + t->offset, t->numel);
	}
	for (int i = 0; i < p->nstates; i++) {
		const rt_tensor *t = &p->states[i];
		st_get(s, t->path, t->rank, t->dims, r->state + t->offset, t->numel);
	}
	if (count_tensors(s) != p->nparams + p->nstates) {
		cJSON *it;
		cJSON_ArrayForEach(it, s->hdr) {
			if (!strcmp(it->string, "__metadata__")) continue;
			bool known = false;
			for (int i = 0; i < p->nparams && !known; i++) known = !strcmp(p->params[i].path, it->string);
			for (int i = 0; i < p->nstates && !known; i++) known = !strcmp(p->states[i].path, it->string);
			if (!known) rt_die(1, "%s: tensor '%s' is not a parameter of train block %s", s->path, it->string, p->name);
		}
	}
}

void rt_load_weights(rt_run *r, const char *file)
{
	st_file s;
	st_open(&s, file);
	load_params(r, &s);
	st_close(&s);
}

static const char *meta_str(const st_file *s, const char *k)
{
	cJSON *v = s->meta ? cJSON_GetObjectItemCaseSensitive(s->meta, k) : NULL;
	if (!cJSON_IsString(v)) rt_die(1, "%s: __metadata__ has no \"%s\" (not an nnd train state)", s->path, k);
	return v->valuestring;
}

static int64_t meta_int(const st_file *s, const char *k)
{
	const char *v = meta_str(s, k);
	char *end;
	errno = 0;
	long long x = strtoll(v, &end, 10);
	if (errno || end == v || *end || x < 0) rt_die(1, "%s: __metadata__ \"%s\": expected a non-negative integer, found '%s'", s->path, k, v);
	return (int64_t)x;
}

void rt_ckpt_resume(rt_run *r, const char *dir)
{
	const rt_program *p = r->prog;
	size_t dl = strlen(dir) + 32;
	char *spath = rt_xmalloc(dl), *ppath = rt_xmalloc(dl);
	snprintf(spath, dl, "%s/train_state.safetensors", dir);
	snprintf(ppath, dl, "%s/params.safetensors", dir);
	st_file s;
	st_open(&s, spath);
	if (strcmp(meta_str(&s, "format"), "nnd-train-state") || strcmp(meta_str(&s, "state_version"), "1"))
		rt_die(1, "%s: not an nnd train state of version 1", spath);
	if (strcmp(meta_str(&s, "source_sha256"), r->man->source_sha))
		rt_die(1, "%s: saved by a program built from another source (sha256 %s); this program's source has sha256 %s",
		       spath, meta_str(&s, "source_sha256"), r->man->source_sha);
	if (strcmp(meta_str(&s, "train"), p->name))
		rt_die(1, "%s: saved by train block '%s', this run trains '%s' (pass --train %s)",
		       spath, meta_str(&s, "train"), p->name, meta_str(&s, "train"));
	const char *sv = meta_str(&s, "seed");
	char *end;
	errno = 0;
	uint64_t seed = strtoull(sv, &end, 10);
	if (errno || end == sv || *end) rt_die(1, "%s: bad seed '%s'", spath, sv);
	int64_t samples = meta_int(&s, "samples");
	if (samples != r->n)
		rt_die(1, "%s: the saved run trained on %" PRId64 " samples, this one on %" PRId64 " (use the same --limit)",
		       spath, samples, r->n);
	int64_t epoch = meta_int(&s, "epoch"), pos = meta_int(&s, "pos"), step = meta_int(&s, "step");
	int64_t es = meta_int(&s, "epoch_samples");
	if (pos >= r->steps_per_epoch || es > r->n)
		rt_die(1, "%s: batch position %" PRId64 " is outside an epoch of %" PRId64 " batches", spath, pos, r->steps_per_epoch);
	const char *lb = meta_str(&s, "epoch_loss_sum_bits");
	errno = 0;
	uint64_t bits = strtoull(lb, &end, 16);
	if (errno || end == lb || *end) rt_die(1, "%s: bad epoch_loss_sum_bits '%s'", spath, lb);
	if (count_tensors(&s) != 1) rt_die(1, "%s: expected the one tensor 'opt'", spath);
	int64_t od[1] = { p->n_opt };
	st_get(&s, "opt", 1, od, r->opt, p->n_opt);

	st_file ps;
	st_open(&ps, ppath);
	uint8_t dig[32];
	char hex[65];
	nnd_sha256(ps.buf, ps.len, dig);
	nnd_sha256_hex(dig, hex);
	if (strcmp(hex, meta_str(&s, "params_sha256")))
		rt_die(1, "%s does not belong to %s (its digest differs; was the checkpoint interrupted while being written?)", ppath, spath);
	load_params(r, &ps);
	st_close(&ps);

	if (seed != r->seed) {
		/* the seed of the saved run wins (main.c rejects a different --seed) */
		r->seed = seed;
		for (int i = 0; i < p->nstreams; i++) nnd_stream_key(seed, p->streams[i].hash, &r->keys[2 * i]);
	}
	r->step = step;
	r->epoch = epoch;
	r->pos = pos;
	r->epoch_samples = es;
	memcpy(&r->epoch_loss_sum, &bits, 8);
	st_close(&s);
	free(spath); free(ppath);
}

uint64_t rt_ckpt_seed(const char *dir)
{
	size_t dl = strlen(dir) + 32;
	char *spath = rt_xmalloc(dl);
	snprintf(spath, dl, "%s/train_state.safetensors", dir);
	st_file s;
	st_open(&s, spath);
	const char *sv = meta_str(&s, "seed");
	char *end;
	errno = 0;
	uint64_t seed = strtoull(sv, &end, 10);
	if (errno || end == sv || *end) rt_die(1, "%s: bad seed '%s'", spath, sv);
	st_close(&s);
	free(spath);
	return seed;
}
