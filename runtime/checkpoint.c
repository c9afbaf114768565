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
 *                            the reduction plans, the training data files'
 *                            SHA-256, whether cuDNN computed the convolutions,
 *                            the SHA-256 of the params file it belongs to,
 *                            and state_sha256, a digest of all of that and of
 *                            the opt bytes (state_digest below).
 * Gradients and activations are not saved: a step computes them afresh.
 *
 * Saving is crash-safe at every point; the rename of the train state is the
 * single commit point (H is the params file's SHA-256):
 *   1. params -> DIR/.tmp-params.safetensors-PID-N, fsync, renamed to
 *      DIR/.pending-params-H (so that a file of that name is always whole)
 *   2. state  -> DIR/.tmp-train_state.safetensors-PID-N, fsync
 *   3. fsync DIR                       (both temporaries are durable)
 *   4. rename the state into place     COMMIT
 *   5. fsync DIR                       (4 is durable before 6 can be)
 *   6. rename .pending-params-H to params.safetensors, fsync DIR
 *   7. remove the temporaries of earlier, killed saves
 * A kill before 4 leaves the old pair untouched; after 4 the new state is in
 * place and its params are either in params.safetensors or, between 4 and
 * 6, in .pending-params-H: --resume then finds params.safetensors' digest
 * differs from params_sha256, checks the pending file's digest and finishes
 * the rename (rolls forward).  So a directory always resumes to the old or
 * to the new checkpoint.  (Between 4 and 6 `eval --weights
 * DIR/params.safetensors` still reads the old, whole params.)
 * NND_TEST_KILL_IN_SAVE=WHERE makes the program kill itself at one of these
 * points, for the tests (kill_point). */
#include "rt_internal.h"

#include <cjson/cJSON.h>
#include <dirent.h>
#include <errno.h>
#include <signal.h>
#include <fcntl.h>
#include <inttypes.h>
#include <libgen.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define PARAMS_FILE "params.safetensors"
#define STATE_FILE "train_state.safetensors"
#define PENDING_PREFIX ".pending-params-"
#define STATE_VERSION "2"

/* ---- a growing string (metadata values) ---- */

typedef struct strbuf { char *s; size_t n, cap; } strbuf;

static void sb_printf(strbuf *b, const char *fmt, ...) RT_PRINTF(2, 3);
static void sb_printf(strbuf *b, const char *fmt, ...)
{
	for (;;) {
		va_list ap;
		va_start(ap, fmt);
		int k = vsnprintf(b->s ? b->s + b->n : NULL, b->s ? b->cap - b->n : 0, fmt, ap);
		va_end(ap);
		if (k < 0) rt_die(2, "vsnprintf failed");
		if (b->s && b->n + (size_t)k < b->cap) { b->n += (size_t)k; return; }
		size_t cap = b->cap ? b->cap : 256;
		while (cap <= b->n + (size_t)k) cap *= 2;
		char *ns = realloc(b->s, cap);
		if (!ns) rt_die(2, "out of memory");
		b->s = ns;
		b->cap = cap;
		b->s[b->n] = 0;
	}
}

/* The text, "" when nothing was printed (callers then need no NULL case). */
static char *sb_take(strbuf *b)
{
	return b->s ? b->s : rt_xstrdup("");
}

/* ---- what a resume must find unchanged ---- */

/* Every reduction of the program and its plan, one "GRAPH NODE OP PATH
 * PLAN" line each: --plan changes the bits of a step, so a run must not
 * continue under other plans (the source digest does not cover them). */
static char *plans_text(const rt_program *p)
{
	strbuf b = { 0 };
	for (int i = 0; i < p->nplans; i++) {
		const rt_plan *pl = &p->plans[i];
		sb_printf(&b, "%s %" PRId64 " %s %s %s\n", rt_graph_names[pl->graph], pl->node, pl->op, pl->path, pl->plan);
	}
	return sb_take(&b);
}

/* "SHA256 PATH" of every file of the training dataset, as the run log
 * records them: data of the same shape but other bytes give other bits. */
static char *data_text(const rt_program *p)
{
	strbuf b = { 0 };
	if (p->data_ds >= 0) {
		const rt_dataset *ds = &p->datasets[p->data_ds];
		for (int i = 0; i < (ds->kind == 0 ? 2 : 1); i++) {
			const char *path = i ? ds->path2 : ds->path1;
			char hex[65];
			rt_sha256_file(path, hex);
			sb_printf(&b, "%s %s\n", hex, path);
		}
	}
	return sb_take(&b);
}

/* Whether cuDNN computes convolutions in this run: its convolutions give
 * other bits than nnd's (cuda.md), so a run must not switch mid-way.  A
 * program without convolutions (im2col nodes) never uses cuDNN. */
static bool uses_cudnn(const rt_run *r)
{
	if (!r->cudnn || !r->dev) return false;
	const rt_graph *g = &r->prog->graphs[RT_GRAPH_TRAIN];
	for (int i = 0; i < g->nnodes; i++)
		if (!strcmp(g->nodes[i].op, "im2col")) return true;
	return false;
}

/* ---- the state digest ----
 * state_sha256 = SHA-256 of "nnd-train-state 2\0", then for every
 * __metadata__ entry but state_sha256, in byte order of the keys,
 * "KEY\0VALUE\0", then the whole data buffer (the opt tensor's bytes). */

static int cmp_item_name(const void *a, const void *b)
{
	return strcmp((*(cJSON *const *)a)->string, (*(cJSON *const *)b)->string);
}

static void state_digest(const cJSON *meta, const uint8_t *data, size_t dlen, char hex[65])
{
	int n = cJSON_GetArraySize(meta), k = 0;
	cJSON **v = rt_xcalloc((size_t)n + 1, sizeof *v);
	cJSON *it;
	cJSON_ArrayForEach(it, meta) if (strcmp(it->string, "state_sha256")) v[k++] = it;
	qsort(v, (size_t)k, sizeof *v, cmp_item_name);
	nnd_sha256_ctx *c = nnd_sha256_begin();
	static const char tag[] = "nnd-train-state " STATE_VERSION;
	nnd_sha256_update(c, tag, sizeof tag);   /* with its NUL */
	for (int i = 0; i < k; i++) {
		const char *val = cJSON_IsString(v[i]) ? v[i]->valuestring : "";
		nnd_sha256_update(c, v[i]->string, strlen(v[i]->string) + 1);
		nnd_sha256_update(c, val, strlen(val) + 1);
	}
	nnd_sha256_update(c, data, dlen);
	uint8_t dig[32];
	nnd_sha256_end(c, dig);
	nnd_sha256_hex(dig, hex);
	free(v);
}

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

/* Test hook: NND_TEST_KILL_IN_SAVE=WHERE dies as a SIGKILL would at that
 * point of a save: params.safetensors or train_state.safetensors (half way
 * through writing the file), before-commit, between-renames,
 * before-cleanup (rt_ckpt_save). */
static void kill_point(const char *where)
{
	const char *k = getenv("NND_TEST_KILL_IN_SAVE");
	if (k && !strcmp(k, where)) raise(SIGKILL);
}

static char *join(const char *dir, const char *name)
{
	size_t n = strlen(dir) + strlen(name) + 2;
	char *s = rt_xmalloc(n);
	snprintf(s, n, "%s/%s", dir, name);
	return s;
}

/* Writes buf to a new temporary file DIR/.tmp-NAME-PID-N, fsyncs and
 * closes it; returns its path.  open(O_EXCL, 0666) rather than mkstemp:
 * the checkpoint gets the usual permissions (0666 less the umask), not
 * mkstemp's 0600. */
static char *write_temp(const char *dir, const char *name, const uint8_t *buf, size_t len)
{
	static unsigned serial;
	size_t dl = strlen(dir) + strlen(name) + 48;
	char *tmp = rt_xmalloc(dl);
	int fd = -1;
	for (int tries = 0; fd < 0; tries++) {
		snprintf(tmp, dl, "%s/.tmp-%s-%ld-%u", dir, name, (long)getpid(), serial++);
		fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
		/* EEXIST: a leftover of a killed run that had this pid */
		if (fd < 0 && (errno != EEXIST || tries == 1000))
			rt_die(1, "%s: cannot create a file in the checkpoint directory: %s", tmp, strerror(errno));
	}
	const char *kill_at = getenv("NND_TEST_KILL_IN_SAVE");
	bool kill_here = kill_at && !strcmp(kill_at, name);
	size_t o = 0;
	while (o < len) {
		if (kill_here && o >= len / 2) raise(SIGKILL);
		size_t chunk = kill_here ? (len - o + 1) / 2 : len - o;
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
	return tmp;
}

static void sync_dir(const char *dir)
{
	int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd < 0) rt_die(1, "%s: cannot open the directory: %s", dir, strerror(errno));
	if (fsync(dfd) != 0) { int e = errno; close(dfd); rt_die(1, "%s: cannot sync the directory: %s", dir, strerror(e)); }
	close(dfd);
}

static void rename_or_die(const char *from, const char *to)
{
	if (rename(from, to) != 0) rt_die(1, "%s: cannot rename to %s: %s", from, to, strerror(errno));
}

/* Removes what killed saves left behind.  Only after a save has completed:
 * then the state in place refers to params.safetensors itself, so no
 * temporary or pending file is needed any more (one run saves to a
 * directory at a time). */
static void remove_leftovers(const char *dir)
{
	DIR *d = opendir(dir);
	if (!d) return;   /* only tidying: the checkpoint itself is complete */
	struct dirent *e;
	while ((e = readdir(d)) != NULL) {
		const char *n = e->d_name;
		if (strncmp(n, ".tmp-" PARAMS_FILE "-", strlen(".tmp-" PARAMS_FILE "-")) &&
		    strncmp(n, ".tmp-" STATE_FILE "-", strlen(".tmp-" STATE_FILE "-")) &&
		    strncmp(n, PENDING_PREFIX, strlen(PENDING_PREFIX)))
			continue;
		char *p = join(dir, n);
		unlink(p);
		free(p);
	}
	closedir(d);
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
	bool made = mkdir(dir, 0777) == 0;
	if (!made && errno != EEXIST) rt_die(1, "%s: cannot create the checkpoint directory: %s", dir, strerror(errno));
	if (made) {
		/* the new directory's entry in its parent, so that a power loss
		 * cannot lose it; best effort (the parent may not be readable) */
		char *c = rt_xstrdup(dir);
		int pfd = open(dirname(c), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		if (pfd >= 0) { (void)fsync(pfd); close(pfd); }
		free(c);
	}
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
	cJSON_AddStringToObject(sm, "state_version", STATE_VERSION);
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
	char *plans = plans_text(p), *data = r->data_digests ? NULL : data_text(p);
	cJSON_AddStringToObject(sm, "plans", plans);
	cJSON_AddStringToObject(sm, "data_sha256", data ? data : r->data_digests);
	cJSON_AddStringToObject(sm, "cudnn", uses_cudnn(r) ? "1" : "0");
	free(plans); free(data);
	char shex[65];
	state_digest(sm, (const uint8_t *)r->opt, (size_t)p->n_opt * 4, shex);
	cJSON_AddStringToObject(sm, "state_sha256", shex);
	int64_t od[1] = { p->n_opt };
	st_entry oe = { "opt", 1, od, r->opt, p->n_opt };
	size_t slen;
	uint8_t *sbuf = st_build(&oe, 1, sm, &slen);

	char pending_name[sizeof PENDING_PREFIX + 64];
	snprintf(pending_name, sizeof pending_name, PENDING_PREFIX "%s", phex);
	char *pending = join(dir, pending_name), *ppath = join(dir, PARAMS_FILE), *spath = join(dir, STATE_FILE);
	char *ptmp = write_temp(dir, PARAMS_FILE, pbuf, plen);
	rename_or_die(ptmp, pending);
	char *stmp = write_temp(dir, STATE_FILE, sbuf, slen);
	sync_dir(dir);
	kill_point("before-commit");
	rename_or_die(stmp, spath);   /* the commit point */
	sync_dir(dir);
	kill_point("between-renames");
	rename_or_die(pending, ppath);
	sync_dir(dir);
	kill_point("before-cleanup");
	remove_leftovers(dir);
	free(ptmp); free(stmp); free(pending); free(ppath); free(spath);
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

/* A number token of the header's JSON text.  cJSON keeps only the double,
 * so 814080.0 and 814080 would look alike; the tokens are found in the text
 * in document order, which is also the order of cJSON's number nodes. */
typedef struct numtok { size_t off, len; } numtok;

typedef struct numwalk { const char *js; numtok *t; size_t n, k; } numwalk;

static void number_tokens(numwalk *w, const char *js, size_t n)
{
	size_t cap = 64;
	w->js = js;
	w->t = rt_xmalloc(cap * sizeof *w->t);
	w->n = w->k = 0;
	for (size_t i = 0; i < n;) {
		char c = js[i];
		if (c == '"') {
			for (i++; i < n && js[i] != '"'; i++)
				if (js[i] == '\\') i++;
			i++;
			continue;
		}
		if (c == '-' || (c >= '0' && c <= '9')) {
			size_t b = i;
			while (i < n && js[i] && strchr("0123456789+-.eE", js[i])) i++;
			if (w->n == cap) {
				cap *= 2;
				numtok *nt = realloc(w->t, cap * sizeof *nt);
				if (!nt) rt_die(2, "out of memory");
				w->t = nt;
			}
			w->t[w->n++] = (numtok){ b, i - b };
			continue;
		}
		i++;
	}
}

/* Every number under v must be written as a plain non-negative integer
 * (safetensors' shapes and offsets are integers) of at most 15 digits,
 * which a double holds exactly. */
static void check_numbers(const st_file *s, numwalk *w, const cJSON *v, const char *tensor, const char *field)
{
	if (cJSON_IsNumber(v)) {
		if (w->k >= w->n) rt_die(1, "%s: the safetensors header is not valid JSON", s->path);
		const numtok *t = &w->t[w->k++];
		const char *q = w->js + t->off;
		bool ok = t->len >= 1 && !(q[0] == '0' && t->len > 1);
		for (size_t i = 0; ok && i < t->len; i++) ok = q[i] >= '0' && q[i] <= '9';
		int shown = (int)(t->len > 40 ? 40 : t->len);
		if (!ok)
			rt_die(1, "%s: tensor '%s': %s: '%.*s' is not an integer", s->path, tensor, field ? field : "value", shown, q);
		if (t->len > 15)
			rt_die(1, "%s: tensor '%s': %s: '%.*s' is too large", s->path, tensor, field ? field : "value", shown, q);
		return;
	}
	const cJSON *c;
	cJSON_ArrayForEach(c, v) check_numbers(s, w, c, tensor, field ? field : c->string);
}

/* Duplicate keys make a header ambiguous (which one does a reader take?);
 * safetensors' own reader refuses them, and so do we.  what: NULL for the
 * top level, else the object's name for the message. */
static void check_unique(const st_file *s, const cJSON *obj, const char *what)
{
	int n = cJSON_GetArraySize(obj), k = 0;
	if (n < 2) return;
	cJSON **v = rt_xcalloc((size_t)n, sizeof *v);
	cJSON *it;
	cJSON_ArrayForEach(it, obj) v[k++] = it;
	qsort(v, (size_t)k, sizeof *v, cmp_item_name);
	for (int i = 1; i < k; i++) {
		if (strcmp(v[i - 1]->string, v[i]->string)) continue;
		if (!what && !strcmp(v[i]->string, "__metadata__")) rt_die(1, "%s: __metadata__ appears twice in the header", s->path);
		if (!what) rt_die(1, "%s: tensor '%s' appears twice in the header", s->path, v[i]->string);
		rt_die(1, "%s: %s: key \"%s\" appears twice", s->path, what, v[i]->string);
	}
	free(v);
}

typedef struct span { uint64_t a, b; const char *name; } span;

static int cmp_span(const void *x, const void *y)
{
	const span *p = x, *q = y;
	if (p->a != q->a) return p->a < q->a ? -1 : 1;
	if (p->b != q->b) return p->b < q->b ? -1 : 1;
	return 0;
}

/* The tensors must cover the data buffer exactly, without overlap or holes
 * (the format's rule: no byte belongs to two tensors, or to none). */
static void check_cover(const st_file *s, span *sp, int n)
{
	qsort(sp, (size_t)n, sizeof *sp, cmp_span);
	uint64_t end = 0;
	const span *prev = NULL;
	for (int i = 0; i < n; i++) {
		if (sp[i].a < end)
			rt_die(1, "%s: tensor '%s' (data_offsets [%" PRIu64 ", %" PRIu64 "]) overlaps tensor '%s' (data_offsets [%" PRIu64 ", %" PRIu64 "])",
			       s->path, sp[i].name, sp[i].a, sp[i].b, prev->name, prev->a, prev->b);
		if (sp[i].a > end)
			rt_die(1, "%s: data bytes %" PRIu64 " to %" PRIu64 " belong to no tensor (a hole before tensor '%s')",
			       s->path, end, sp[i].a, sp[i].name);
		end = sp[i].b;
		prev = &sp[i];
	}
	if (end < s->dlen) {
		if (prev)
			rt_die(1, "%s: the last %" PRIu64 " bytes of the data belong to no tensor (after tensor '%s', which ends at byte %" PRIu64 ")",
			       s->path, (uint64_t)s->dlen - end, prev->name, end);
		rt_die(1, "%s: %zu bytes of data, but the header names no tensor", s->path, s->dlen);
	}
}

/* Parses a safetensors file held in buf (taken over) and checks all of its
 * structure; any fault is a user error naming the file and the tensor. */
static void st_parse(st_file *s, const char *path, uint8_t *buf, size_t len)
{
	memset(s, 0, sizeof *s);
	s->path = path;
	s->buf = buf;
	s->len = len;
	if (s->len < 8) rt_die(1, "%s: truncated: %zu bytes, a safetensors file has at least 8", path, s->len);
	uint64_t hl = 0;
	for (int b = 0; b < 8; b++) hl |= (uint64_t)s->buf[b] << (8 * b);
	if (hl > s->len - 8)
		rt_die(1, "%s: truncated or not safetensors: header length %" PRIu64 " exceeds the %zu bytes after it", path, hl, s->len - 8);
	const char *js = (const char *)s->buf + 8, *end = NULL;
	if (hl == 0 || js[0] != '{') rt_die(1, "%s: the safetensors header is not a JSON object", path);
	s->hdr = cJSON_ParseWithLengthOpts(js, (size_t)hl, &end, false);
	if (!s->hdr || !cJSON_IsObject(s->hdr)) rt_die(1, "%s: the safetensors header is not a JSON object", path);
	/* after the object, only the padding (spaces) */
	for (const char *q = end; q < js + hl; q++)
		if (*q != ' ' && *q != '\t' && *q != '\n' && *q != '\r')
			rt_die(1, "%s: the safetensors header has bytes after its JSON object (at header byte %td)", path, q - js);
	s->data = s->buf + 8 + hl;
	s->dlen = s->len - 8 - (size_t)hl;
	check_unique(s, s->hdr, NULL);
	numwalk w;
	number_tokens(&w, js, (size_t)(end - js));
	int nt = cJSON_GetArraySize(s->hdr), ns = 0;
	span *sp = rt_xcalloc((size_t)nt + 1, sizeof *sp);
	cJSON *it;
	cJSON_ArrayForEach(it, s->hdr) {
		if (!strcmp(it->string, "__metadata__")) {
			if (!cJSON_IsObject(it)) rt_die(1, "%s: __metadata__ is not an object", path);
			check_unique(s, it, "__metadata__");
			cJSON *m;
			cJSON_ArrayForEach(m, it)
				if (!cJSON_IsString(m)) rt_die(1, "%s: __metadata__ \"%s\" is not a string (safetensors metadata maps strings to strings)", path, m->string);
			s->meta = it;
			continue;
		}
		if (!cJSON_IsObject(it)) rt_die(1, "%s: tensor '%s': expected an object with dtype, shape and data_offsets", path, it->string);
		char what[300];
		snprintf(what, sizeof what, "tensor '%s'", it->string);
		check_unique(s, it, what);
		check_numbers(s, &w, it, it->string, NULL);
		cJSON *dt = cJSON_GetObjectItemCaseSensitive(it, "dtype");
		cJSON *sh = cJSON_GetObjectItemCaseSensitive(it, "shape");
		cJSON *of = cJSON_GetObjectItemCaseSensitive(it, "data_offsets");
		if (!cJSON_IsString(dt) || !cJSON_IsArray(sh) || !cJSON_IsArray(of) || cJSON_GetArraySize(of) != 2)
			rt_die(1, "%s: tensor '%s': expected dtype, shape and data_offsets [begin, end]", path, it->string);
		if (strcmp(dt->valuestring, "F32")) rt_die(1, "%s: tensor '%s' has dtype %s, expected F32", path, it->string, dt->valuestring);
		/* the numbers are plain integers below 10^15 (check_numbers) */
		uint64_t numel = 1;
		bool huge = false, empty = false;
		cJSON *d;
		cJSON_ArrayForEach(d, sh) {
			if (!cJSON_IsNumber(d)) rt_die(1, "%s: tensor '%s': bad shape", path, it->string);
			uint64_t x = (uint64_t)d->valuedouble;
			if (x == 0) empty = true;
			else if (numel > ((uint64_t)1 << 60) / x) huge = true;
			else numel *= x;
		}
		if (empty) { numel = 0; huge = false; }
		cJSON *ja = cJSON_GetArrayItem(of, 0), *jb = cJSON_GetArrayItem(of, 1);
		if (!cJSON_IsNumber(ja) || !cJSON_IsNumber(jb) || jb->valuedouble < ja->valuedouble)
			rt_die(1, "%s: tensor '%s': bad data_offsets", path, it->string);
		uint64_t a = (uint64_t)ja->valuedouble, b = (uint64_t)jb->valuedouble;
		if (b > s->dlen)
			rt_die(1, "%s: truncated: tensor '%s' ends at byte %" PRIu64 " of the data, which has %zu bytes", path, it->string, b, s->dlen);
		if (huge || b - a != numel * 4)
			rt_die(1, "%s: tensor '%s': data_offsets span %" PRIu64 " bytes, its shape needs %s%" PRIu64, path, it->string, b - a,
			       huge ? "more than " : "", huge ? ((uint64_t)1 << 62) : numel * 4);
		sp[ns++] = (span){ a, b, it->string };
	}
	if (w.k != w.n) rt_die(1, "%s: the safetensors header is not valid JSON", path);
	free(w.t);
	check_cover(s, sp, ns);
	free(sp);
}

static void st_open(st_file *s, const char *path)
{
	size_t len;
	uint8_t *buf = rt_read_file(path, &len);
	st_parse(s, path, buf, len);
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
	if (errno || end == v || *end || x < 0 || v[0] < '0' || v[0] > '9')
		rt_die(1, "%s: __metadata__ \"%s\": expected a non-negative integer, found '%s'", s->path, k, v);
	return (int64_t)x;
}

static uint64_t meta_seed(const st_file *s)
{
	const char *sv = meta_str(s, "seed");
	char *end;
	errno = 0;
	uint64_t seed = strtoull(sv, &end, 10);
	if (errno || end == sv || *end || sv[0] < '0' || sv[0] > '9') rt_die(1, "%s: bad seed '%s'", s->path, sv);
	return seed;
}

/* Opens DIR/train_state.safetensors and checks that it is an nnd train
 * state of this version whose state_sha256 matches its contents. */
static char *open_state(st_file *s, const char *dir)
{
	char *spath = join(dir, STATE_FILE);
	st_open(s, spath);
	if (strcmp(meta_str(s, "format"), "nnd-train-state")) rt_die(1, "%s: not an nnd train state", spath);
	const char *v = meta_str(s, "state_version");
	if (strcmp(v, STATE_VERSION))
		rt_die(1, "%s: train state version %s; this program resumes version " STATE_VERSION " only (save the checkpoint again with this version of nnd)", spath, v);
	char hex[65];
	state_digest(s->meta, s->data, s->dlen, hex);
	if (strcmp(hex, meta_str(s, "state_sha256")))
		rt_die(1, "%s: the contents do not match state_sha256 (the file was modified or damaged after it was saved)", spath);
	return spath;
}

/* Finds the first line that differs between two texts of lines (false:
 * none) and copies it from each into la and lb ("" past the end). */
static bool first_diff(const char *a, const char *b, char *la, char *lb, size_t n)
{
	while (*a || *b) {
		size_t ka = strcspn(a, "\n"), kb = strcspn(b, "\n");
		if (ka != kb || memcmp(a, b, ka)) {
			snprintf(la, n, "%.*s", (int)ka, a);
			snprintf(lb, n, "%.*s", (int)kb, b);
			return true;
		}
		a += ka + (a[ka] != 0);
		b += kb + (b[kb] != 0);
	}
	return false;
}

static void check_plans(const st_file *s, const rt_program *p)
{
	char *now = plans_text(p), saved[512], cur[512];
	if (first_diff(meta_str(s, "plans"), now, saved, cur, sizeof saved)) {
		const char *hint = "(build the program with the saved run's nndc build --plan)";
		char *ss = strrchr(saved, ' '), *cs = strrchr(cur, ' ');
		if (ss && cs && ss - saved == cs - cur && !memcmp(saved, cur, (size_t)(ss - saved))) {
			/* the same reduction, another plan: "GRAPH NODE OP PATH" */
			*ss = 0;
			char *node = strchr(saved, ' '), *op = node ? strchr(node + 1, ' ') : NULL, *path = op ? strchr(op + 1, ' ') : NULL;
			if (path) {
				*node++ = 0; *op++ = 0; *path++ = 0;
				rt_die(1, "%s: saved by a program built with other reduction plans: %s node %s (%s at %s) was %s, in this program it is %s %s",
				       s->path, saved, node, op, path, ss + 1, cs + 1, hint);
			}
			rt_die(1, "%s: saved by a program built with other reduction plans: %s was %s, in this program it is %s %s",
			       s->path, saved, ss + 1, cs + 1, hint);
		}
		if (!*saved) rt_die(1, "%s: saved by a program built with other reduction plans: this program has the reduction '%s' %s", s->path, cur, hint);
		if (!*cur) rt_die(1, "%s: saved by a program built with other reduction plans: the saved run had the reduction '%s' %s", s->path, saved, hint);
		rt_die(1, "%s: saved by a program built with other reduction plans: the saved run had '%s' where this program has '%s' %s",
		       s->path, saved, cur, hint);
	}
	free(now);
}

/* Keeps the digests in r->data_digests: a later --save of this run records
 * them (the resume has just shown they are the saved run's). */
static void check_data(const st_file *s, rt_run *r)
{
	char *now = data_text(r->prog), saved[4200], cur[4200];
	if (first_diff(meta_str(s, "data_sha256"), now, saved, cur, sizeof saved)) {
		char *cs = strchr(cur, ' ');
		if (cs && strlen(saved) > 64 && saved[64] == ' ') {
			saved[64] = 0;
			*cs = 0;
			rt_die(1, "%s: the saved run trained on other data: %s has sha256 %s, the saved run's file had %s",
			       s->path, cs + 1, cur, saved);
		}
		rt_die(1, "%s: the saved run trained on other data files ('%s', this run '%s')", s->path, saved, cur);
	}
	free(r->data_digests);
	r->data_digests = now;
}

void rt_ckpt_resume(rt_run *r, const char *dir)
{
	const rt_program *p = r->prog;
	st_file s;
	char *spath = open_state(&s, dir);
	if (strcmp(meta_str(&s, "source_sha256"), r->man->source_sha))
		rt_die(1, "%s: saved by a program built from another source (sha256 %s); this program's source has sha256 %s",
		       spath, meta_str(&s, "source_sha256"), r->man->source_sha);
	if (strcmp(meta_str(&s, "train"), p->name))
		rt_die(1, "%s: saved by train block '%s', this run trains '%s' (pass --train %s)",
		       spath, meta_str(&s, "train"), p->name, meta_str(&s, "train"));
	check_plans(&s, p);
	uint64_t seed = meta_seed(&s);
	int64_t samples = meta_int(&s, "samples");
	if (samples != r->n)
		rt_die(1, "%s: the saved run trained on %" PRId64 " samples, this one on %" PRId64 " (use the same --limit)",
		       spath, samples, r->n);
	check_data(&s, r);
	const char *cu = meta_str(&s, "cudnn");
	if (strcmp(cu, "0") && strcmp(cu, "1")) rt_die(1, "%s: __metadata__ \"cudnn\": expected 0 or 1, found '%s'", spath, cu);
	r->ckpt_cudnn = cu[0] == '1';
	int64_t epoch = meta_int(&s, "epoch"), pos = meta_int(&s, "pos"), step = meta_int(&s, "step");
	int64_t es = meta_int(&s, "epoch_samples");
	if (pos >= r->steps_per_epoch || es > r->n)
		rt_die(1, "%s: batch position %" PRId64 " is outside an epoch of %" PRId64 " batches", spath, pos, r->steps_per_epoch);
	/* where the run stood, as rt_train moves it: one step per batch, every
	 * batch but an epoch's last one full, the sums reset at an epoch's end */
	if (epoch > (INT64_MAX - pos) / r->steps_per_epoch || step != epoch * r->steps_per_epoch + pos)
		rt_die(1, "%s: inconsistent position: step %" PRId64 " is not epoch %" PRId64 " * %" PRId64 " batches per epoch + batch %" PRId64,
		       spath, step, epoch, r->steps_per_epoch, pos);
	if (es != pos * p->batch)
		rt_die(1, "%s: inconsistent position: %" PRId64 " samples into the epoch after %" PRId64 " batches of %" PRId64,
		       spath, es, pos, p->batch);
	const char *lb = meta_str(&s, "epoch_loss_sum_bits");
	char *end;
	errno = 0;
	uint64_t bits = strtoull(lb, &end, 16);
	if (errno || end == lb || *end) rt_die(1, "%s: bad epoch_loss_sum_bits '%s'", spath, lb);
	double lsum;
	memcpy(&lsum, &bits, 8);
	if (!isfinite(lsum) || (pos == 0 && bits != 0))
		rt_die(1, "%s: epoch_loss_sum_bits %s is not the loss sum of %" PRId64 " batches", spath, lb, pos);
	if (count_tensors(&s) != 1) rt_die(1, "%s: expected the one tensor 'opt'", spath);
	int64_t od[1] = { p->n_opt };
	st_get(&s, "opt", 1, od, r->opt, p->n_opt);

	/* the params: params.safetensors, or after a save killed between its
	 * two renames, the pending file the state names by its digest */
	const char *want = meta_str(&s, "params_sha256");
	bool hex_ok = strlen(want) == 64;
	for (int i = 0; hex_ok && i < 64; i++) hex_ok = (want[i] >= '0' && want[i] <= '9') || (want[i] >= 'a' && want[i] <= 'f');
	if (!hex_ok) rt_die(1, "%s: bad params_sha256 '%s'", spath, want);
	char *ppath = join(dir, PARAMS_FILE);
	char pending_name[sizeof PENDING_PREFIX + 64];
	snprintf(pending_name, sizeof pending_name, PENDING_PREFIX "%s", want);
	char *pending = join(dir, pending_name);
	struct stat sb;
	bool have = !(stat(ppath, &sb) != 0 && errno == ENOENT);
	uint8_t *buf = NULL;
	size_t len = 0;
	uint8_t dig[32];
	char hex[65] = "";
	if (have) {
		buf = rt_read_file(ppath, &len);
		nnd_sha256(buf, len, dig);
		nnd_sha256_hex(dig, hex);
	}
	bool roll = false;
	if (strcmp(hex, want) && stat(pending, &sb) == 0) {
		size_t plen;
		char phex[65];
		uint8_t *pbuf = rt_read_file(pending, &plen);
		nnd_sha256(pbuf, plen, dig);
		nnd_sha256_hex(dig, phex);
		/* only ever made whole by a rename, so a mismatch is damage */
		if (strcmp(phex, want))
			rt_die(1, "%s: damaged: its digest differs from the params_sha256 of %s, whose params it holds (the save was killed between its two renames)",
			       pending, spath);
		free(buf);
		buf = pbuf;
		len = plen;
		memcpy(hex, phex, sizeof hex);
		roll = true;
	}
	if (!have && !roll) rt_die(1, "%s: cannot open: %s", ppath, strerror(ENOENT));
	st_file ps;
	st_parse(&ps, roll ? pending : ppath, buf, len);
	if (strcmp(hex, want))
		rt_die(1, "%s does not belong to %s (its digest differs from the state's params_sha256: the two files are of different checkpoints)", ppath, spath);
	load_params(r, &ps);
	st_close(&ps);
	if (roll) {
		/* finish the interrupted save: the state in place is committed */
		if (rename(pending, ppath) != 0)
			rt_die(1, "%s: cannot complete the interrupted save of %s (rename to %s): %s", pending, dir, ppath, strerror(errno));
		sync_dir(dir);
	}

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
	free(spath); free(ppath); free(pending);
}

void rt_ckpt_begin(rt_run *r, const char *resume, const char *save)
{
	if (resume) {
		bool now = uses_cudnn(r);
		if (now != r->ckpt_cudnn)
			rt_die(1, "%s/" STATE_FILE ": the saved run computed its convolutions %s, this run %s; cuDNN gives other bits "
			       "than nnd's kernels, so the run must go on as it started (resume %s)",
			       resume, r->ckpt_cudnn ? "with cuDNN" : "with nnd's kernels", now ? "with cuDNN" : "with nnd's kernels",
			       r->ckpt_cudnn ? "with --device cuda --cudnn" : "without --cudnn");
	}
	/* before the first step: the digests of the files the run trains on,
	 * not of what may have replaced them by the time it saves */
	if (save && !r->data_digests) r->data_digests = data_text(r->prog);
}

uint64_t rt_ckpt_seed(const char *dir)
{
	st_file s;
	char *spath = open_state(&s, dir);
	uint64_t seed = meta_seed(&s);
	st_close(&s);
	free(spath);
	return seed;
}
