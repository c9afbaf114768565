/* manifest.c - parses the manifest text that codegen embeds in every built
 * program (format in rt.h) and prints it for `PROGRAM info`.
 *
 * The manifest is written by our own compiler, so anything malformed is a
 * bug of nnd, not of the user: every error here is an internal error
 * (exit 2) that names the line and what was expected. */
#include "rt_internal.h"

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

typedef struct tok { char *s; bool str; } tok;

typedef struct lexline {
	int lineno;
	char *raw;                   /* the line, for messages */
	tok *t; int n, cap;
} lexline;

static _Noreturn void bad(const lexline *L, const char *what)
{
	rt_die(2, "manifest line %d: %s: '%s'", L->lineno, what, L->raw);
}

/* Splits one line into tokens: words separated by one space, or strings in
 * double quotes with \\ \" \n escapes. */
static void lex(lexline *L, const char *line, size_t len)
{
	L->raw = rt_xmalloc(len + 1);
	memcpy(L->raw, line, len);
	L->raw[len] = 0;
	L->n = 0;
	size_t i = 0;
	while (i < len) {
		if (L->n == L->cap) {
			L->cap = L->cap ? 2 * L->cap : 16;
			tok *nt = realloc(L->t, (size_t)L->cap * sizeof *nt);
			if (!nt) rt_die(2, "out of memory");
			L->t = nt;
		}
		tok *t = &L->t[L->n];
		char *buf = rt_xmalloc(len + 1);
		/* owned by L at once, so an error inside the token frees it too */
		buf[0] = 0;
		t->s = buf;
		t->str = false;
		L->n++;
		size_t o = 0;
		if (line[i] == '"') {
			i++;
			for (;;) {
				if (i >= len) bad(L, "unterminated string");
				char c = line[i++];
				if (c == '"') break;
				if (c == '\\') {
					if (i >= len) bad(L, "unterminated escape");
					c = line[i++];
					if (c == 'n') c = '\n';
					else if (c != '\\' && c != '"') bad(L, "unknown escape in string");
				}
				buf[o++] = c;
			}
			t->str = true;
		} else {
			while (i < len && line[i] != ' ') buf[o++] = line[i++];
			if (o == 0) bad(L, "empty token (two spaces?)");
			t->str = false;
		}
		buf[o] = 0;
		/* down to the token's size: a long line of many tokens (a CSV's
		 * `columns`) must not cost its length once per token */
		char *fit = realloc(buf, o + 1);
		if (fit) t->s = fit;
		if (i < len) {
			if (line[i] != ' ') bad(L, "expected a space after a string");
			i++;
			if (i == len) bad(L, "trailing space");
		}
	}
}

static void unlex(lexline *L)
{
	for (int i = 0; i < L->n; i++) free(L->t[i].s);
	L->n = 0;
	free(L->raw);
	L->raw = NULL;
}

static const char *word(const lexline *L, int i)
{
	if (i >= L->n) bad(L, "line ends early");
	if (L->t[i].str) bad(L, "expected a word, found a string");
	return L->t[i].s;
}

static char *str(const lexline *L, int i)
{
	if (i >= L->n) bad(L, "line ends early");
	if (!L->t[i].str) bad(L, "expected a quoted string");
	return rt_xstrdup(L->t[i].s);
}

static int64_t i64(const lexline *L, int i)
{
	const char *s = word(L, i);
	char *end;
	errno = 0;
	long long v = strtoll(s, &end, 10);
	if (errno || end == s || *end) bad(L, "expected an integer");
	return (int64_t)v;
}

static int64_t nonneg(const lexline *L, int i)
{
	int64_t v = i64(L, i);
	if (v < 0) bad(L, "expected a non-negative integer");
	return v;
}

static double f64(const lexline *L, int i)
{
	const char *s = word(L, i);
	char *end;
	errno = 0;
	double v = strtod(s, &end);
	/* ERANGE on underflow still gives the correctly rounded subnormal */
	if (end == s || *end) bad(L, "expected a number");
	return v;
}

static void expect(const lexline *L, int i, const char *kw)
{
	if (strcmp(word(L, i), kw) != 0) {
		char msg[96];
		snprintf(msg, sizeof msg, "expected '%s' as token %d", kw, i + 1);
		bad(L, msg);
	}
}

static void expect_end(const lexline *L, int n)
{
	if (L->n != n) bad(L, "wrong number of tokens");
}

#define GROW(arr, n) do { \
	void *np_ = realloc((arr), ((size_t)(n) + 1) * sizeof *(arr)); \
	if (!np_) rt_die(2, "out of memory"); \
	(arr) = np_; \
} while (0)

static const char *init_names[] = { "zeros", "ones", "constant", "uniform", "normal",
	"xavier_uniform", "kaiming_uniform", "kaiming_normal" };

const char *rt_init_name(int init)
{
	return init >= 0 && init < (int)(sizeof init_names / sizeof *init_names) ? init_names[init] : "?";
}

const char *const rt_graph_names[RT_NGRAPHS] = { "train", "eval", "infer" };

static int graph_index(const lexline *L, int i)
{
	const char *g = word(L, i);
	for (int k = 0; k < RT_NGRAPHS; k++)
		if (!strcmp(g, rt_graph_names[k])) return k;
	bad(L, "expected train|eval|infer");
}

const rt_node *rt_find_node(const rt_program *p, int graph, int64_t id)
{
	if (graph < 0 || graph >= RT_NGRAPHS) return NULL;
	const rt_graph *G = &p->graphs[graph];
	/* codegen writes nodes in id order from 0: try the direct slot first */
	if (id >= 0 && id < G->nnodes && G->nodes[id].id == id) return &G->nodes[id];
	for (int i = 0; i < G->nnodes; i++)
		if (G->nodes[i].id == id) return &G->nodes[i];
	return NULL;
}

const char *rt_dtype_name(int dt)
{
	return dt == 0 ? "f32" : dt == 1 ? "i32" : dt == 2 ? "u8" : "?";
}

/* param/state: I "PATH" RANK D... then key value pairs */
static void parse_tensor(const lexline *L, rt_tensor *t, bool is_param)
{
	memset(t, 0, sizeof *t);
	t->line = L->lineno;
	t->index = (int)nonneg(L, 1);
	t->path = str(L, 2);
	t->rank = (int)nonneg(L, 3);
	if (t->rank > RT_MAX_RANK) bad(L, "rank too large");
	int i = 4;
	t->numel = 1;
	for (int d = 0; d < t->rank; d++) {
		t->dims[d] = nonneg(L, i++);
		t->numel *= t->dims[d];
	}
	bool seen[9] = { 0 };
	static const char *keys[] = { "offset", "init", "a", "b", "fan_in", "fan_out", "stream", "opt" };
	for (; i < L->n; i += 2) {
		const char *k = word(L, i);
		int ki = -1;
		for (int j = 0; j < 8; j++)
			if (!strcmp(k, keys[j])) ki = j;
		if (ki < 0) bad(L, "unknown key");
		if (seen[ki]) bad(L, "repeated key");
		seen[ki] = true;
		switch (ki) {
		case 0: t->offset = nonneg(L, i + 1); break;
		case 1: {
			const char *n = word(L, i + 1);
			t->init = -1;
			for (int j = 0; j < (int)(sizeof init_names / sizeof *init_names); j++)
				if (!strcmp(n, init_names[j])) t->init = j;
			if (t->init < 0) bad(L, "unknown initializer");
			t->init_name = rt_xstrdup(n);
			break;
		}
		case 2: t->a = f64(L, i + 1); break;
		case 3: t->b = f64(L, i + 1); break;
		case 4: t->fan_in = nonneg(L, i + 1); break;
		case 5: t->fan_out = nonneg(L, i + 1); break;
		case 6: t->stream = (int)i64(L, i + 1); break;
		case 7: t->opt = i64(L, i + 1); break;
		}
	}
	for (int j = 0; j < 8; j++)
		if (!seen[j]) {
			char msg[64];
			snprintf(msg, sizeof msg, "missing key '%s'", keys[j]);
			bad(L, msg);
		}
	if (!is_param && t->opt != -1) bad(L, "a state has no optimizer slot (opt -1)");
	if (t->stream < -1) bad(L, "bad stream index");
	if (t->opt < -1) bad(L, "bad opt offset");
}

static int find_key(const lexline *L, int from, const char *k)
{
	for (int i = from; i + 1 < L->n; i += 2)
		if (!L->t[i].str && !strcmp(L->t[i].s, k)) return i + 1;
	char msg[64];
	snprintf(msg, sizeof msg, "missing key '%s'", k);
	bad(L, msg);
}

/* Cross-record checks once a program's `end` is reached: every offset
 * inside its block, streams that exist, the graphs the runtime needs. */
static void check_program(const lexline *L, rt_program *p)
{
	if (p->data_ds < 0) bad(L, "program has no `dataset data` record");
	if (p->nfields == 0) bad(L, "program has no `field` records");
	for (int k = 0; k < p->nfields; k++)
		if (p->fields[k].k != k) bad(L, "`field` records out of order");
	if (p->batch <= 0) bad(L, "program has no positive `batch`");
	if (!p->graphs[RT_GRAPH_TRAIN].present) bad(L, "program has no `graph train`");
	if (p->graphs[RT_GRAPH_TRAIN].nout < 1) bad(L, "train graph has no loss output");
	if (p->graphs[RT_GRAPH_EVAL].present && p->graphs[RT_GRAPH_EVAL].nout < 1)
		bad(L, "eval graph has no loss output");
	if (p->graphs[RT_GRAPH_INFER].present && !p->graphs[RT_GRAPH_INFER].has_result)
		bad(L, "infer graph has no `result` record");
	for (int g = 0; g < RT_NGRAPHS; g++)
		if (!p->graphs[g].present && p->graphs[g].nnodes)
			bad(L, "`node` records of a graph that has no `graph` record");
	int nslots = p->opt.kind == RT_OPT_SGD ? (p->opt.momentum != 0 ? 1 : 0) : 2;
	for (int s = 0; s < 2; s++) {
		rt_tensor *ts = s ? p->states : p->params;
		int n = s ? p->nstates : p->nparams;
		int64_t cap = s ? p->n_states : p->n_params;
		for (int i = 0; i < n; i++) {
			rt_tensor *t = &ts[i];
			char msg[160];
			if (t->index != i) {
				snprintf(msg, sizeof msg, "line %d: %s index %d out of order", t->line, s ? "state" : "param", t->index);
				bad(L, msg);
			}
			if (t->offset + t->numel > cap) {
				snprintf(msg, sizeof msg, "line %d: tensor '%s' lies outside its block (sizes)", t->line, t->path);
				bad(L, msg);
			}
			if (t->stream >= p->nstreams) {
				snprintf(msg, sizeof msg, "line %d: tensor '%s' names stream %d, which has no record", t->line, t->path, t->stream);
				bad(L, msg);
			}
			bool random = t->init == RT_INIT_UNIFORM || t->init == RT_INIT_NORMAL || t->init >= RT_INIT_XAVIER_UNIFORM;
			if (random && t->stream < 0) {
				snprintf(msg, sizeof msg, "line %d: random initializer without a stream", t->line);
				bad(L, msg);
			}
			if (!s && t->opt >= 0 && t->opt + t->numel * nslots > p->n_opt) {
				snprintf(msg, sizeof msg, "line %d: optimizer slots of '%s' lie outside the opt block", t->line, t->path);
				bad(L, msg);
			}
			if (!s && nslots > 0 && t->opt < 0) {
				snprintf(msg, sizeof msg, "line %d: parameter '%s' has no optimizer slot", t->line, t->path);
				bad(L, msg);
			}
		}
	}
	for (int i = 0; i < p->nstreams; i++)
		if (!p->streams[i].path) bad(L, "a stream index has no `stream` record");
}

/* The line being parsed, at file scope so that rt_manifest_cleanup can free
 * it after an error unwound the parser. */
static lexline cur;

void rt_manifest_cleanup(void)
{
	unlex(&cur);
	free(cur.t);
	memset(&cur, 0, sizeof cur);
}

void rt_manifest_parse(const char *text, rt_manifest *m)
{
	memset(m, 0, sizeof *m);
	rt_manifest_cleanup();
#define L cur
	const char *s = text;
	bool header = false, ended = false, have_seed = false, have_source = false;
	rt_program *p = NULL;
	bool have_sizes = false;
	int last_graph = -1;         /* the graph the previous record declared */
	for (int lineno = 1; *s; lineno++) {
		const char *e = strchr(s, '\n');
		size_t len = e ? (size_t)(e - s) : strlen(s);
		L.lineno = lineno;
		lex(&L, s, len);
		s += len + (e ? 1 : 0);
		if (L.n == 0) { unlex(&L); continue; }   /* blank lines are harmless */
		const char *kw = word(&L, 0);
		if (!header) {
			if (strcmp(kw, "nnd-manifest")) bad(&L, "expected 'nnd-manifest 1' first");
			expect_end(&L, 2);
			if (i64(&L, 1) != 1) bad(&L, "unsupported manifest version");
			header = true;
		} else if (!strcmp(kw, "compiler")) {
			expect_end(&L, 2);
			if (m->compiler) bad(&L, "second `compiler` record");
			m->compiler = str(&L, 1);
		} else if (!strcmp(kw, "source")) {
			expect_end(&L, 3);
			if (m->source_path) bad(&L, "second `source` record");
			m->source_path = str(&L, 1);
			const char *h = word(&L, 2);
			if (strlen(h) != 64 || strspn(h, "0123456789abcdef") != 64) bad(&L, "expected 64 lowercase hex digits");
			memcpy(m->source_sha, h, 65);
			have_source = true;
		} else if (!strcmp(kw, "seed")) {
			expect_end(&L, 2);
			const char *w = word(&L, 1);
			char *end;
			errno = 0;
			m->seed = strtoull(w, &end, 10);
			if (errno || end == w || *end || *w == '-') bad(&L, "expected an unsigned 64-bit seed");
			have_seed = true;
		} else if (!strcmp(kw, "program")) {
			if (p) bad(&L, "`program` inside a program (missing `end`)");
			expect_end(&L, 3);
			GROW(m->progs, m->nprogs);
			p = &m->progs[m->nprogs];
			memset(p, 0, sizeof *p);
			m->nprogs++;   /* counted at once: an error below frees what it holds */
			p->index = (int)nonneg(&L, 1);
			if (p->index != m->nprogs - 1) bad(&L, "program index out of order");
			p->name = str(&L, 2);
			p->line = lineno;
			p->data_ds = p->eval_ds = -1;
			p->epochs = 1;
			p->n_params = p->n_states = p->n_opt = 0;
			have_sizes = false;
			last_graph = -1;
		} else if (!p) {
			bad(&L, "unknown record outside a program");
		} else if (!strcmp(kw, "dataset")) {
			GROW(p->datasets, p->ndatasets);
			rt_dataset *d = &p->datasets[p->ndatasets++];
			memset(d, 0, sizeof *d);
			d->line = lineno;
			const char *role = word(&L, 1);
			if (!strcmp(role, "data")) d->role = 0;
			else if (!strcmp(role, "eval")) d->role = 1;
			else bad(&L, "expected data|eval");
			d->name = str(&L, 2);
			const char *kind = word(&L, 3);
			if (!strcmp(kind, "idx")) d->kind = 0;
			else if (!strcmp(kind, "csv")) d->kind = 1;
			else bad(&L, "expected idx|csv");
			expect_end(&L, 7);
			d->path1 = str(&L, 4);
			d->path2 = str(&L, 5);
			d->n = nonneg(&L, 6);
			int *slot = d->role ? &p->eval_ds : &p->data_ds;
			if (*slot >= 0) bad(&L, "second dataset with this role");
			*slot = p->ndatasets - 1;
		} else if (!strcmp(kw, "columns")) {
			const char *role = word(&L, 1);
			int slot = -1;
			if (!strcmp(role, "data")) slot = p->data_ds;
			else if (!strcmp(role, "eval")) slot = p->eval_ds;
			else bad(&L, "expected data|eval");
			if (slot < 0) bad(&L, "`columns` before the `dataset` record of its role");
			rt_dataset *d = &p->datasets[slot];
			if (d->kind != 1) bad(&L, "`columns` of a dataset that is not csv");
			if (d->cols) bad(&L, "second `columns` record of a dataset");
			int64_t n = nonneg(&L, 2);
			if (n < 1 || n > 1000000) bad(&L, "expected 1 to 1000000 columns");
			expect_end(&L, 3 + (int)n);
			d->cols = rt_xcalloc((size_t)n, sizeof *d->cols);
			d->ncols = (int)n;
			for (int k = 0; k < d->ncols; k++) d->cols[k] = str(&L, 3 + k);
		} else if (!strcmp(kw, "min_rows")) {
			expect_end(&L, 4);
			if (p->min_rows) bad(&L, "second `min_rows` record");
			p->min_rows = nonneg(&L, 1);
			p->min_rows_line = (int)nonneg(&L, 2);
			p->min_rows_col = (int)nonneg(&L, 3);
			if (p->min_rows < 2) bad(&L, "expected at least 2 rows");
		} else if (!strcmp(kw, "classes")) {
			expect_end(&L, 2);
			if (p->classes) bad(&L, "second `classes` record");
			p->classes = nonneg(&L, 1);
			if (p->classes < 1) bad(&L, "expected a positive number of classes");
		} else if (!strcmp(kw, "field")) {
			if (p->nfields == RT_MAX_FIELDS) bad(&L, "too many fields");
			rt_field *f = &p->fields[p->nfields];
			f->line = lineno;
			f->k = (int)nonneg(&L, 1);
			f->f = (int)nonneg(&L, 2);
			if (f->f > 1) bad(&L, "dataset field must be 0 or 1");
			const char *dt = word(&L, 3);
			if (!strcmp(dt, "f32") || !strcmp(dt, "0")) f->dtype = 0;
			else if (!strcmp(dt, "i32") || !strcmp(dt, "1")) f->dtype = 1;
			else if (!strcmp(dt, "u8") || !strcmp(dt, "2")) f->dtype = 2;
			else bad(&L, "expected a dtype (f32|i32|u8 or 0|1|2)");
			f->rank = (int)nonneg(&L, 4);
			if (f->rank < 1 || f->rank > RT_MAX_RANK) bad(&L, "rank must be 1..8 (batch dim included)");
			expect_end(&L, 5 + 2 * f->rank);
			for (int d = 0; d < f->rank; d++) {
				f->dims[d] = nonneg(&L, 5 + 2 * d);
				f->sym[d] = (int)i64(&L, 6 + 2 * d);
			}
			p->nfields++;
		} else if (!strcmp(kw, "batch")) {
			expect_end(&L, 2);
			p->batch = nonneg(&L, 1);
			if (p->batch <= 0) bad(&L, "batch must be positive");
		} else if (!strcmp(kw, "epochs")) {
			expect_end(&L, 2);
			p->epochs = nonneg(&L, 1);
		} else if (!strcmp(kw, "shuffle")) {
			expect_end(&L, 2);
			int64_t v = i64(&L, 1);
			if (v != 0 && v != 1) bad(&L, "expected 0|1");
			p->shuffle = v;
		} else if (!strcmp(kw, "optimizer")) {
			const char *k = word(&L, 1);
			if (!strcmp(k, "sgd")) p->opt.kind = RT_OPT_SGD;
			else if (!strcmp(k, "adam")) p->opt.kind = RT_OPT_ADAM;
			else if (!strcmp(k, "adamw")) p->opt.kind = RT_OPT_ADAMW;
			else bad(&L, "expected sgd|adam|adamw");
			if (L.n % 2) bad(&L, "expected key value pairs");
			p->opt.lr = f64(&L, find_key(&L, 2, "lr"));
			p->opt.momentum = f64(&L, find_key(&L, 2, "momentum"));
			p->opt.weight_decay = f64(&L, find_key(&L, 2, "weight_decay"));
			int64_t nv = i64(&L, find_key(&L, 2, "nesterov"));
			if (nv != 0 && nv != 1) bad(&L, "nesterov must be 0|1");
			p->opt.nesterov = nv;
			p->opt.beta1 = f64(&L, find_key(&L, 2, "beta1"));
			p->opt.beta2 = f64(&L, find_key(&L, 2, "beta2"));
			p->opt.eps = f64(&L, find_key(&L, 2, "eps"));
		} else if (!strcmp(kw, "schedule")) {
			const char *k = word(&L, 1);
			if (!strcmp(k, "constant")) p->sched.kind = RT_SCHED_CONSTANT;
			else if (!strcmp(k, "step")) p->sched.kind = RT_SCHED_STEP;
			else if (!strcmp(k, "cosine")) p->sched.kind = RT_SCHED_COSINE;
			else bad(&L, "expected constant|step|cosine");
			if (L.n % 2) bad(&L, "expected key value pairs");
			p->sched.every = nonneg(&L, find_key(&L, 2, "every"));
			p->sched.gamma = f64(&L, find_key(&L, 2, "gamma"));
			p->sched.epochs = nonneg(&L, find_key(&L, 2, "epochs"));
			p->sched.warmup = nonneg(&L, find_key(&L, 2, "warmup"));
			if (p->sched.kind == RT_SCHED_STEP && p->sched.every <= 0) bad(&L, "step schedule needs every > 0");
		} else if (!strcmp(kw, "param") || !strcmp(kw, "state")) {
			bool is_param = kw[0] == 'p';
			if (is_param) {
				GROW(p->params, p->nparams);
				parse_tensor(&L, &p->params[p->nparams++], true);
			} else {
				GROW(p->states, p->nstates);
				parse_tensor(&L, &p->states[p->nstates++], false);
			}
		} else if (!strcmp(kw, "stream")) {
			expect_end(&L, 4);
			int64_t si = nonneg(&L, 1);
			if (si > 1000000) bad(&L, "stream index too large");
			while (p->nstreams <= si) {
				GROW(p->streams, p->nstreams);
				memset(&p->streams[p->nstreams], 0, sizeof *p->streams);
				p->nstreams++;
			}
			rt_stream *st = &p->streams[si];
			if (st->path) bad(&L, "stream defined twice");
			st->path = str(&L, 2);
			st->line = lineno;
			const char *h = word(&L, 3);
			char *end;
			errno = 0;
			if (strlen(h) != 16) bad(&L, "expected 16 hex digits");
			st->hash = strtoull(h, &end, 16);
			if (errno || *end) bad(&L, "expected 16 hex digits");
		} else if (!strcmp(kw, "sizes")) {
			expect_end(&L, 7);
			expect(&L, 1, "params"); expect(&L, 3, "states"); expect(&L, 5, "opt");
			p->n_params = nonneg(&L, 2);
			p->n_states = nonneg(&L, 4);
			p->n_opt = nonneg(&L, 6);
			have_sizes = true;
		} else if (!strcmp(kw, "graph")) {
			int gi = graph_index(&L, 1);
			rt_graph *G = &p->graphs[gi];
			if (G->present) bad(&L, "graph defined twice");
			expect(&L, 2, "act");
			G->act_c = nonneg(&L, 3);
			G->act_b = nonneg(&L, 4);
			expect(&L, 5, "outputs");
			int64_t nout = nonneg(&L, 6);
			if (nout > 1024) bad(&L, "too many outputs");
			expect_end(&L, 7 + (int)nout);
			G->outs = rt_xcalloc((size_t)nout + 1, sizeof *G->outs);
			G->nout = (int)nout;
			for (int k = 0; k < G->nout; k++) G->outs[k] = str(&L, 7 + k);
			G->present = true;
			last_graph = gi;
			unlex(&L);
			ended = !p;
			continue;
		} else if (!strcmp(kw, "result")) {
			if (last_graph != RT_GRAPH_INFER) bad(&L, "`result` must follow `graph infer`");
			rt_graph *G = &p->graphs[RT_GRAPH_INFER];
			if (G->has_result) bad(&L, "second `result` record");
			G->res_rank = (int)nonneg(&L, 1);
			if (G->res_rank < 1 || G->res_rank > RT_MAX_RANK) bad(&L, "rank must be 1..8 (batch dim included)");
			expect_end(&L, 2 + 2 * G->res_rank);
			G->res_row = 1;
			for (int d = 0; d < G->res_rank; d++) {
				G->res_dims[d] = nonneg(&L, 2 + 2 * d);
				G->res_sym[d] = (int)i64(&L, 3 + 2 * d);
				if (d > 0) G->res_row *= G->res_dims[d];
			}
			if (G->res_dims[0] != 1) bad(&L, "the result's leading (batch) dim must be \"1 1\"");
			G->has_result = true;
		} else if (!strcmp(kw, "node")) {
			expect_end(&L, 5);
			int gi = graph_index(&L, 1);
			rt_graph *G = &p->graphs[gi];
			GROW(G->nodes, G->nnodes);
			rt_node *nd = &G->nodes[G->nnodes++];
			memset(nd, 0, sizeof *nd);
			nd->id = nonneg(&L, 2);
			nd->op = rt_xstrdup(word(&L, 3));
			nd->path = str(&L, 4);
		} else if (!strcmp(kw, "plan")) {
			if (L.n < 6) bad(&L, "line ends early");
			GROW(p->plans, p->nplans);
			rt_plan *pl = &p->plans[p->nplans++];
			memset(pl, 0, sizeof *pl);
			pl->graph = graph_index(&L, 1);
			pl->node = nonneg(&L, 2);
			pl->op = rt_xstrdup(word(&L, 3));
			pl->path = str(&L, 4);
			/* the plan is the rest of the line, so plans with parameters
			 * ("blocked 64") need no quoting */
			size_t n = 0;
			for (int i = 5; i < L.n; i++) n += strlen(L.t[i].s) + 1;
			pl->plan = rt_xmalloc(n + 1);
			pl->plan[0] = 0;
			for (int i = 5; i < L.n; i++) {
				if (i > 5) strcat(pl->plan, " ");
				strcat(pl->plan, L.t[i].s);
			}
		} else if (!strcmp(kw, "end")) {
			expect_end(&L, 1);
			if (!have_sizes) bad(&L, "program has no `sizes` record");
			check_program(&L, p);
			p = NULL;
		} else {
			bad(&L, "unknown record");
		}
		unlex(&L);
		ended = !p;
		last_graph = -1;
	}
#undef L
	rt_manifest_cleanup();
	if (!header) rt_die(2, "manifest: empty");
	if (!ended) rt_die(2, "manifest: last program has no `end`");
	if (!have_seed) rt_die(2, "manifest: no `seed` record");
	if (!have_source) rt_die(2, "manifest: no `source` record");
	if (m->nprogs == 0) rt_die(2, "manifest: no `program` (the source has no train block)");
	if (!m->compiler) m->compiler = rt_xstrdup("unknown");
}

static void free_tensors(rt_tensor *t, int n)
{
	for (int i = 0; i < n; i++) { free(t[i].path); free(t[i].init_name); }
	free(t);
}

void rt_manifest_free(rt_manifest *m)
{
	for (int i = 0; i < m->nprogs; i++) {
		rt_program *p = &m->progs[i];
		free(p->name);
		for (int d = 0; d < p->ndatasets; d++) {
			free(p->datasets[d].name); free(p->datasets[d].path1); free(p->datasets[d].path2);
			for (int k = 0; k < p->datasets[d].ncols; k++) free(p->datasets[d].cols[k]);
			free(p->datasets[d].cols);
		}
		free(p->datasets);
		free_tensors(p->params, p->nparams);
		free_tensors(p->states, p->nstates);
		for (int s = 0; s < p->nstreams; s++) free(p->streams[s].path);
		free(p->streams);
		for (int g = 0; g < RT_NGRAPHS; g++) {
			rt_graph *G = &p->graphs[g];
			for (int k = 0; k < G->nout; k++) free(G->outs[k]);
			free(G->outs);
			for (int k = 0; k < G->nnodes; k++) { free(G->nodes[k].op); free(G->nodes[k].path); }
			free(G->nodes);
		}
		for (int k = 0; k < p->nplans; k++) {
			free(p->plans[k].op); free(p->plans[k].path); free(p->plans[k].plan);
		}
		free(p->plans);
	}
	free(m->progs);
	free(m->compiler);
	free(m->source_path);
	memset(m, 0, sizeof *m);
}

static void print_shape(FILE *f, int rank, const int64_t *dims)
{
	fputc('[', f);
	for (int d = 0; d < rank; d++) fprintf(f, d ? ", %" PRId64 : "%" PRId64, dims[d]);
	fputc(']', f);
}

void rt_manifest_print(const rt_manifest *m, FILE *f)
{
	fprintf(f, "compiler: %s (runtime nnd %s)\n", m->compiler, NND_VERSION);
	fprintf(f, "source:   %s\n          sha256 %s\n", m->source_path, m->source_sha);
	fprintf(f, "seed:     %" PRIu64 "\n", m->seed);
	static const char *opt_names[] = { "sgd", "adam", "adamw" };
	static const char *sched_names[] = { "constant", "step", "cosine" };
	for (int i = 0; i < m->nprogs; i++) {
		const rt_program *p = &m->progs[i];
		fprintf(f, "\ntrain %s%s\n", p->name, i == 0 ? " (default)" : "");
		for (int d = 0; d < p->ndatasets; d++) {
			const rt_dataset *ds = &p->datasets[d];
			if (ds->kind == 0)
				fprintf(f, "  %-5s %s: idx images %s labels %s (%" PRId64 " samples)\n",
				        ds->role ? "eval" : "data", ds->name, ds->path1, ds->path2, ds->n);
			else
				fprintf(f, "  %-5s %s: csv %s label %s (%" PRId64 " samples)\n",
				        ds->role ? "eval" : "data", ds->name, ds->path1, ds->path2, ds->n);
			if (ds->ncols) {
				fprintf(f, "        feature columns:");
				for (int k = 0; k < ds->ncols && k < 32; k++) fprintf(f, " %s", ds->cols[k]);
				if (ds->ncols > 32) fprintf(f, " ... (%d)", ds->ncols);
				fprintf(f, "\n");
			}
		}
		if (p->classes) fprintf(f, "  labels in [0, %" PRId64 ") (the classes of the loss's cross_entropy)\n", p->classes);
		for (int k = 0; k < p->nfields; k++) {
			const rt_field *fl = &p->fields[k];
			fprintf(f, "  input %d: dataset field %d (%s), %s[", k, fl->f, fl->f ? "labels" : "features",
			        rt_dtype_name(fl->dtype));
			for (int d = 0; d < fl->rank; d++)
				if (d == 0 && fl->sym[0]) fprintf(f, "B");
				else fprintf(f, d ? ", %" PRId64 : "%" PRId64, fl->dims[d]);
			fprintf(f, "]\n");
		}
		fprintf(f, "  batch %" PRId64 ", epochs %" PRId64 ", shuffle %s\n", p->batch, p->epochs, p->shuffle ? "true" : "false");
		fprintf(f, "  optimizer %s(lr = %.9g", opt_names[p->opt.kind], p->opt.lr);
		if (p->opt.kind == RT_OPT_SGD)
			fprintf(f, ", momentum = %.9g, nesterov = %s", p->opt.momentum, p->opt.nesterov ? "true" : "false");
		else
			fprintf(f, ", beta1 = %.9g, beta2 = %.9g, eps = %.9g", p->opt.beta1, p->opt.beta2, p->opt.eps);
		fprintf(f, ", weight_decay = %.9g)\n", p->opt.weight_decay);
		fprintf(f, "  schedule %s", sched_names[p->sched.kind]);
		if (p->sched.kind == RT_SCHED_STEP) fprintf(f, "(every = %" PRId64 ", gamma = %.9g)", p->sched.every, p->sched.gamma);
		else if (p->sched.kind == RT_SCHED_COSINE) fprintf(f, "(epochs = %" PRId64 ")", p->sched.epochs);
		else fprintf(f, "()");
		if (p->sched.warmup) fprintf(f, " after warmup(steps = %" PRId64 ")", p->sched.warmup);
		fprintf(f, "\n  blocks: %" PRId64 " param floats, %" PRId64 " state floats, %" PRId64 " optimizer floats\n",
		        p->n_params, p->n_states, p->n_opt);
		for (int s = 0; s < 2; s++) {
			const rt_tensor *ts = s ? p->states : p->params;
			int n = s ? p->nstates : p->nparams;
			for (int j = 0; j < n; j++) {
				const rt_tensor *t = &ts[j];
				fprintf(f, "  %s %s f32", s ? "state" : "param", t->path);
				print_shape(f, t->rank, t->dims);
				fprintf(f, " = %s", t->init_name);
				if (t->init == RT_INIT_CONSTANT) fprintf(f, "(value = %.9g)", t->a);
				else if (t->init == RT_INIT_UNIFORM) fprintf(f, "(low = %.9g, high = %.9g)", t->a, t->b);
				else if (t->init == RT_INIT_NORMAL) fprintf(f, "(mean = %.9g, std = %.9g)", t->a, t->b);
				if (t->stream >= 0) fprintf(f, "  stream %d", t->stream);
				fprintf(f, "\n");
			}
		}
		for (int s = 0; s < p->nstreams; s++)
			fprintf(f, "  stream %d: %s (path hash %016" PRIx64 ")\n", s, p->streams[s].path, p->streams[s].hash);
		for (int g = 0; g < RT_NGRAPHS; g++) {
			const rt_graph *G = &p->graphs[g];
			if (!G->present) continue;
			fprintf(f, "  graph %s: activations %" PRId64 " + %" PRId64 " * B bytes; %d nodes; ",
			        rt_graph_names[g], G->act_c, G->act_b, G->nnodes);
			if (G->has_result) {
				fprintf(f, "result f32[");
				for (int d = 0; d < G->res_rank; d++)
					if (d == 0 && G->res_sym[0]) fprintf(f, "B");
					else fprintf(f, d ? ", %" PRId64 : "%" PRId64, G->res_dims[d]);
				fprintf(f, "]");
			} else {
				fprintf(f, "outputs");
				for (int k = 0; k < G->nout; k++) fprintf(f, " %s", G->outs[k]);
			}
			fprintf(f, "\n");
		}
		for (int k = 0; k < p->nplans; k++) {
			const rt_plan *pl = &p->plans[k];
			fprintf(f, "  plan %-5s node %-4" PRId64 " %-16s %-24s %s\n", rt_graph_names[pl->graph], pl->node, pl->op, pl->path, pl->plan);
		}
	}
}
