/* logdiff.c - compares two step logs written by `train --log` (log.c):
 * `PROGRAM logdiff A.jsonl B.jsonl` and nnd_rt_logdiff (nndc logdiff).
 *
 * Steps are matched by their number (a resumed run's log starts later),
 * in order.  Within the first step where anything differs the report names,
 * in this order of preference: the first node in graph order whose digest
 * differs (both logs written with --debug-digests), else the loss bits,
 * else the learning rate, else the parameter digest.  With the same step lines everywhere, the
 * final lines' parameter digests are compared when both logs end at the
 * same step.  Output: `same: N steps compared[, node by node]` (exit 0) or
 * `differ: step S, graph G, node %N (OP) at PATH: A vs B` plus a detail
 * line (exit 1).  Node op and path come from the manifest's `node`
 * records of the train block the logs name. */
#include "rt_internal.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

typedef struct lstep {
	int64_t step;
	char loss_bits[16];
	bool has_lr;
	double lr;                   /* the step's learning rate, as logged */
	char *sha;                   /* NULL: not logged at this step */
	cJSON *nodes;                /* NULL: no node digests */
	cJSON *line;                 /* owns nodes */
} lstep;

typedef struct llog {
	const char *path;
	char *train, *source_sha;
	lstep *s; int64_t n;
	bool have_final;
	int64_t final_step;
	char *final_sha;
} llog;

static llog logs[2];   /* file scope: freed after an error too (cleanup) */

static void llog_free(llog *L)
{
	for (int64_t i = 0; i < L->n; i++) { free(L->s[i].sha); cJSON_Delete(L->s[i].line); }
	free(L->s);
	free(L->train);
	free(L->source_sha);
	free(L->final_sha);
	memset(L, 0, sizeof *L);
}

static char *dup_str(const cJSON *o, const char *k)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
	return cJSON_IsString(v) ? rt_xstrdup(v->valuestring) : NULL;
}

static void llog_read(llog *L, const char *path)
{
	memset(L, 0, sizeof *L);
	L->path = path;
	FILE *f = fopen(path, "r");
	if (!f) rt_die(1, "%s: cannot open: %s", path, strerror(errno));
	char *line = NULL;
	size_t cap = 0;
	ssize_t len;
	int64_t lineno = 0, cap_s = 0;
	while ((len = getline(&line, &cap, f)) >= 0) {
		lineno++;
		if (len == 0 || line[0] == '\n') continue;
		cJSON *o = cJSON_Parse(line);
		if (!cJSON_IsObject(o)) {
			cJSON_Delete(o);
			free(line);
			fclose(f);
			rt_die(1, "%s:%" PRId64 ": not a JSON object (is this a log written by train --log?)", path, lineno);
		}
		const cJSON *run = cJSON_GetObjectItemCaseSensitive(o, "run");
		const cJSON *step = cJSON_GetObjectItemCaseSensitive(o, "step");
		if (cJSON_IsObject(run)) {
			L->train = dup_str(run, "train");
			L->source_sha = dup_str(run, "source_sha256");
			cJSON_Delete(o);
		} else if (cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(o, "final"))) {
			L->have_final = true;
			L->final_step = cJSON_IsNumber(step) ? (int64_t)step->valuedouble : -1;
			L->final_sha = dup_str(o, "params_sha256");
			cJSON_Delete(o);
		} else {
			const cJSON *lb = cJSON_GetObjectItemCaseSensitive(o, "loss_bits");
			if (!cJSON_IsNumber(step) || !cJSON_IsString(lb) || strlen(lb->valuestring) >= 16) {
				cJSON_Delete(o);
				free(line);
				fclose(f);
				rt_die(1, "%s:%" PRId64 ": expected a step line with \"step\" and \"loss_bits\"", path, lineno);
			}
			int64_t sn = (int64_t)step->valuedouble;
			if (L->n > 0 && sn <= L->s[L->n - 1].step) {
				cJSON_Delete(o);
				free(line);
				fclose(f);
				rt_die(1, "%s:%" PRId64 ": step %" PRId64 " after step %" PRId64 " (steps must increase)",
				       path, lineno, sn, L->s[L->n - 1].step);
			}
			if (L->n == cap_s) {
				cap_s = cap_s ? 2 * cap_s : 64;
				lstep *ns = realloc(L->s, (size_t)cap_s * sizeof *ns);
				if (!ns) rt_die(2, "out of memory");
				L->s = ns;
			}
			lstep *e = &L->s[L->n++];
			memset(e, 0, sizeof *e);
			e->step = sn;
			strcpy(e->loss_bits, lb->valuestring);
			e->sha = dup_str(o, "params_sha256");
			const cJSON *lr = cJSON_GetObjectItemCaseSensitive(o, "lr");
			e->has_lr = cJSON_IsNumber(lr);
			e->lr = e->has_lr ? lr->valuedouble : 0.0;
			e->line = o;
			cJSON *nodes = cJSON_GetObjectItemCaseSensitive(o, "nodes");
			e->nodes = cJSON_IsObject(nodes) ? nodes : NULL;
		}
	}
	int rerr = ferror(f) ? errno : 0;
	free(line);
	fclose(f);
	if (rerr) rt_die(1, "%s: cannot read: %s", path, strerror(rerr));
}

/* A node key: "ID" (train graph) or "GRAPH:ID". */
typedef struct nkey { int graph; int64_t id; const char *a, *b; } nkey;

static bool parse_key(const char *k, int *graph, int64_t *id)
{
	*graph = RT_GRAPH_TRAIN;
	const char *colon = strchr(k, ':');
	if (colon) {
		*graph = -1;
		for (int g = 0; g < RT_NGRAPHS; g++)
			if (strlen(rt_graph_names[g]) == (size_t)(colon - k) && !strncmp(k, rt_graph_names[g], (size_t)(colon - k)))
				*graph = g;
		if (*graph < 0) return false;
		k = colon + 1;
	}
	char *end;
	errno = 0;
	long long v = strtoll(k, &end, 10);
	if (errno || end == k || *end || v < 0) return false;
	*id = v;
	return true;
}

static int cmp_key(const void *x, const void *y)
{
	const nkey *a = x, *b = y;
	if (a->graph != b->graph) return a->graph < b->graph ? -1 : 1;
	return a->id < b->id ? -1 : a->id > b->id;
}

static void describe_node(char *buf, size_t n, const rt_program *p, int graph, int64_t id)
{
	const rt_node *nd = p ? rt_find_node(p, graph, id) : NULL;
	if (nd) snprintf(buf, n, "graph %s, node %%%" PRId64 " (%s) at %s", rt_graph_names[graph], id, nd->op, nd->path);
	else snprintf(buf, n, "graph %s, node %%%" PRId64, rt_graph_names[graph], id);
}

/* First node (graph order) whose digest differs between a and b: true and
 * *out filled, or false when all agree.  A node digested in one log only
 * (a kernel the other run did not launch: --cudnn skips the im2col of a
 * convolution it computes whole) is not compared; *one_sided counts them. */
static bool first_node_diff(const llog *A, const cJSON *a, const cJSON *b, nkey *out, int64_t *one_sided)
{
	int na = cJSON_GetArraySize(a), nb = cJSON_GetArraySize(b);
	nkey *keys = rt_xcalloc((size_t)(na + nb) + 1, sizeof *keys);
	int n = 0;
	for (int s = 0; s < 2; s++) {
		const cJSON *mine = s ? b : a, *other = s ? a : b;
		for (const cJSON *it = mine->child; it; it = it->next) {
			nkey k = { 0 };
			if (!parse_key(it->string, &k.graph, &k.id)) {
				free(keys);
				rt_die(1, "%s: bad node key \"%s\" in \"nodes\"", A[s].path, it->string);
			}
			const cJSON *o = cJSON_GetObjectItemCaseSensitive(other, it->string);
			if (s == 1 && o) continue;   /* in both: already taken from a */
			const char *mv = cJSON_IsString(it) ? it->valuestring : "?";
			const char *ov = cJSON_IsString(o) ? o->valuestring : NULL;
			k.a = s ? ov : mv;
			k.b = s ? mv : ov;
			keys[n++] = k;
		}
	}
	qsort(keys, (size_t)n, sizeof *keys, cmp_key);
	bool found = false;
	for (int i = 0; i < n && !found; i++)
		if (!keys[i].a || !keys[i].b)
			(*one_sided)++;
		else if (strcmp(keys[i].a, keys[i].b)) {
			*out = keys[i];
			found = true;
		}
	free(keys);
	return found;
}

static int logdiff(const rt_manifest *m, const char *pa, const char *pb)
{
	llog_read(&logs[0], pa);
	llog_read(&logs[1], pb);
	llog *A = &logs[0], *B = &logs[1];
	const rt_program *p = NULL;
	if (m && A->train)
		for (int i = 0; i < m->nprogs; i++)
			if (!strcmp(m->progs[i].name, A->train)) p = &m->progs[i];
	if (p && A->source_sha && strcmp(A->source_sha, m->source_sha)) p = NULL;   /* another source's nodes */
	if (A->train && B->train && strcmp(A->train, B->train))
		fprintf(stderr, "%s: note: the logs are of different train blocks (%s, %s)\n", rt_progname(), A->train, B->train);
	if (A->source_sha && B->source_sha && strcmp(A->source_sha, B->source_sha))
		fprintf(stderr, "%s: note: the logs come from different sources (sha256 %.12s..., %.12s...)\n",
		        rt_progname(), A->source_sha, B->source_sha);

	int64_t i = 0, j = 0, compared = 0, one_sided = 0;
	bool all_nodes = true;
	while (i < A->n && j < B->n) {
		lstep *a = &A->s[i], *b = &B->s[j];
		if (a->step < b->step) { i++; continue; }
		if (b->step < a->step) { j++; continue; }
		compared++;
		if (!a->nodes || !b->nodes) all_nodes = false;
		nkey k;
		char where[600];
		if (a->nodes && b->nodes && first_node_diff(logs, a->nodes, b->nodes, &k, &one_sided)) {
			describe_node(where, sizeof where, p, k.graph, k.id);
			printf("differ: step %" PRId64 ", %s: %s vs %s\n", a->step, where, pa, pb);
			printf("  node digest %s vs %s; loss_bits %s vs %s\n", k.a, k.b, a->loss_bits, b->loss_bits);
			if (one_sided)
				printf("  (%" PRId64 " node digests before it are in one log only and were not compared)\n", one_sided);
			return 1;
		}
		if (strcmp(a->loss_bits, b->loss_bits)) {
			printf("differ: step %" PRId64 ", loss: %s vs %s\n", a->step, pa, pb);
			printf("  loss_bits %s vs %s%s\n", a->loss_bits, b->loss_bits,
			       a->nodes && b->nodes ? "" : " (log with --debug-digests to find the node)");
			return 1;
		}
		/* the same loss under another learning rate (a schedule or lr
		 * mistake): named at its step, not a step later through the loss */
		if (a->has_lr && b->has_lr && a->lr != b->lr) {
			printf("differ: step %" PRId64 ", learning rate: %s vs %s\n", a->step, pa, pb);
			printf("  lr %.9g vs %.9g\n", a->lr, b->lr);
			return 1;
		}
		if (a->sha && b->sha && strcmp(a->sha, b->sha)) {
			printf("differ: step %" PRId64 ", parameters after the step: %s vs %s\n", a->step, pa, pb);
			printf("  params_sha256 %s vs %s\n", a->sha, b->sha);
			return 1;
		}
		i++, j++;
	}
	if (A->have_final && B->have_final && A->final_step == B->final_step && A->final_sha && B->final_sha &&
	    strcmp(A->final_sha, B->final_sha)) {
		printf("differ: step %" PRId64 " (final), parameters: %s vs %s\n", A->final_step, pa, pb);
		printf("  params_sha256 %s vs %s\n", A->final_sha, B->final_sha);
		return 1;
	}
	if (compared == 0)
		rt_die(1, "logdiff: %s and %s have no step in common (%" PRId64 " and %" PRId64 " step lines)", pa, pb, A->n, B->n);
	printf("same: %" PRId64 " steps compared%s\n", compared, all_nodes ? ", node by node" : "");
	if (one_sided)
		printf("  (%" PRId64 " node digests are in one log only and were not compared: kernels one run did not launch)\n",
		       one_sided);
	if (A->n != compared || B->n != compared)
		printf("  (%s has %" PRId64 " step lines, %s has %" PRId64 "; only common steps were compared)\n", pa, A->n, pb, B->n);
	return 0;
}

int rt_logdiff(const rt_manifest *m, const char *a, const char *b)
{
	int rc = logdiff(m, a, b);
	llog_free(&logs[0]);
	llog_free(&logs[1]);
	fflush(stdout);
	return rc;
}

/* ---- nnd_rt_logdiff: the same from outside a built program ---- */
typedef struct ld_ctx { const nnd_model *model; const char *a, *b; rt_manifest man; bool have_man; } ld_ctx;

static int ld_body(void *ctx)
{
	ld_ctx *c = ctx;
	if (c->model && c->model->manifest) {
		c->have_man = true;   /* first: a failing parse leaves parts to free */
		rt_manifest_parse(c->model->manifest, &c->man);
	}
	int rc = rt_logdiff(c->have_man ? &c->man : NULL, c->a, c->b);
	if (c->have_man) rt_manifest_free(&c->man);
	c->have_man = false;
	return rc;
}

static void ld_cleanup(void *ctx)
{
	ld_ctx *c = ctx;
	llog_free(&logs[0]);
	llog_free(&logs[1]);
	rt_manifest_cleanup();
	if (c->have_man) rt_manifest_free(&c->man);
	c->have_man = false;
}

int nnd_rt_logdiff(const nnd_model *m, const char *a, const char *b, const char *progname)
{
	ld_ctx c = { m, a, b, { 0 }, false };
	return rt_protected(progname ? progname : "nndc", ld_body, ld_cleanup, &c);
}
