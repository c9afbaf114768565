/* test_data.c - IDX (plain and gzip) and CSV loading, and every error path:
 * each failing load returns -1 with the expected message and leaves the
 * nnd_data empty.  Files are written into a fresh temporary directory. */
#include "runtime/rt.h"
#include "runtime/rt_internal.h"

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>
#include <zlib.h>

static int fails;
static char dir[256];
#define CHECK(c) do { if (!(c)) { fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #c); fails++; } } while (0)

static const char *tmp(const char *name)
{
	static char bufs[8][512];
	static int k;
	char *b = bufs[k++ & 7];
	snprintf(b, 512, "%s/%s", dir, name);
	return b;
}

static void write_file(const char *path, const void *data, size_t n, int gz)
{
	if (gz) {
		gzFile g = gzopen(path, "wb");
		if (!g || gzwrite(g, data, (unsigned)n) != (int)n || gzclose(g) != Z_OK) {
			fprintf(stderr, "cannot write %s\n", path);
			exit(2);
		}
		return;
	}
	FILE *f = fopen(path, "wb");
	if (!f || fwrite(data, 1, n, f) != n || fclose(f) != 0) {
		fprintf(stderr, "cannot write %s\n", path);
		exit(2);
	}
}

static void write_text(const char *path, const char *s) { write_file(path, s, strlen(s), 0); }

static size_t be32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)(v >> 24); p[1] = (uint8_t)(v >> 16); p[2] = (uint8_t)(v >> 8); p[3] = (uint8_t)v;
	return 4;
}

/* IDX bytes: magic 0x000008nd, dims, payload (count bytes of i*7+1) */
static size_t make_idx(uint8_t *buf, int nd, const uint32_t *dims, size_t payload)
{
	size_t n = be32(buf, 0x00000800u | (uint32_t)nd);
	for (int i = 0; i < nd; i++)
		n += be32(buf + n, dims[i]);
	for (size_t i = 0; i < payload; i++)
		buf[n++] = (uint8_t)(i * 7 + 1);
	return n;
}

static int empty(const nnd_data *d)
{
	return d->n == 0 && d->buf[0] == NULL && d->buf[1] == NULL;
}

/* expects failure with msg as a substring of the error */
static void expect_err(int rc, const nnd_data *d, const char *err, const char *msg, int line)
{
	if (rc != -1 || !strstr(err, msg) || !empty(d)) {
		fprintf(stderr, "test_data.c:%d: expected -1 and '%s', got %d and '%s'\n", line, msg, rc, err);
		fails++;
	}
}

static char expect_buf[512];
/* writes a damaged IDX images file NAME and expects loading it (with the
 * big labels) to fail with "PATH: WHAT" */
static void load_damaged(const char *name, const void *buf, size_t len, const char *what, int line)
{
	nnd_data d;
	char err[512] = "", want[700];
	write_file(tmp(name), buf, len, 0);
	int rc = nnd_data_load_idx(tmp(name), tmp("biglab"), false, &d, err, sizeof err);
	snprintf(want, sizeof want, "%s: %s", tmp(name), what);
	expect_err(rc, &d, err, want, line);
}

static const char *fmt(const char *f, const char *a)
{
	snprintf(expect_buf, sizeof expect_buf, f, a);
	return expect_buf;
}

static void test_idx(void)
{
	static uint8_t img[4096], lab[256];
	const uint32_t idims[3] = { 5, 3, 4 }, ldims[1] = { 5 };
	size_t ni = make_idx(img, 3, idims, 60), nl = make_idx(lab, 1, ldims, 5);
	write_file(tmp("img"), img, ni, 0);
	write_file(tmp("lab"), lab, nl, 0);
	write_file(tmp("img.gz"), img, ni, 1);
	write_file(tmp("lab.gz"), lab, nl, 1);

	for (int gz = 0; gz < 2; gz++) {
		for (int probe = 0; probe < 2; probe++) {
			nnd_data d;
			char err[512] = "";
			int rc = nnd_data_load_idx(tmp(gz ? "img.gz" : "img"), tmp(gz ? "lab.gz" : "lab"),
			                           probe, &d, err, sizeof err);
			CHECK(rc == 0);
			if (rc) { fprintf(stderr, "%s\n", err); continue; }
			CHECK(d.kind == 0 && d.n == 5);
			CHECK(d.dtype[0] == 2 && d.dtype[1] == 2);
			CHECK(d.rank[0] == 2 && d.dims[0][0] == 3 && d.dims[0][1] == 4);
			CHECK(d.rank[1] == 0 && d.row_bytes[0] == 12 && d.row_bytes[1] == 1);
			if (probe) {
				CHECK(d.buf[0] == NULL && d.buf[1] == NULL);
			} else {
				CHECK(d.buf[0] && memcmp(d.buf[0], img + 16, 60) == 0);
				CHECK(d.buf[1] && memcmp(d.buf[1], lab + 8, 5) == 0);
			}
			nnd_data_free(&d);
			CHECK(empty(&d));
		}
	}

	/* missing file */
	{
		nnd_data d; char err[512] = "";
		int rc = nnd_data_load_idx(tmp("nope"), tmp("lab"), false, &d, err, sizeof err);
		expect_err(rc, &d, err, fmt("cannot open %s: No such file or directory", tmp("nope")), __LINE__);
		rc = nnd_data_load_idx(tmp("img"), tmp("nolab"), false, &d, err, sizeof err);
		expect_err(rc, &d, err, fmt("cannot open %s: No such file or directory", tmp("nolab")), __LINE__);
	}
	/* truncated payload, plain and gzip; probe_only does not read it */
	{
		write_file(tmp("trunc"), img, 16 + 20, 0);
		write_file(tmp("trunc.gz"), img, 16 + 20, 1);
		nnd_data d; char err[512] = "";
		int rc = nnd_data_load_idx(tmp("trunc"), tmp("lab"), false, &d, err, sizeof err);
		expect_err(rc, &d, err, fmt("%s: offset 16: expected 60 bytes of image data, found 20", tmp("trunc")), __LINE__);
		rc = nnd_data_load_idx(tmp("trunc.gz"), tmp("lab"), false, &d, err, sizeof err);
		expect_err(rc, &d, err, fmt("%s: decoded offset 16: expected 60 bytes of image data, found 20", tmp("trunc.gz")), __LINE__);
		rc = nnd_data_load_idx(tmp("trunc"), tmp("lab"), true, &d, err, sizeof err);
		CHECK(rc == 0 && d.n == 5);
		nnd_data_free(&d);
		/* truncated header */
		write_file(tmp("trunchdr"), img, 10, 0);
		rc = nnd_data_load_idx(tmp("trunchdr"), tmp("lab"), true, &d, err, sizeof err);
		expect_err(rc, &d, err, fmt("%s: offset 4: expected 12 bytes of dimensions, found 6", tmp("trunchdr")), __LINE__);
		write_file(tmp("tiny"), img, 2, 0);
		rc = nnd_data_load_idx(tmp("tiny"), tmp("lab"), true, &d, err, sizeof err);
		expect_err(rc, &d, err, fmt("%s: offset 0: expected IDX magic 0x00000803", tmp("tiny")), __LINE__);
		write_file(tmp("zero"), img, 0, 0);
		rc = nnd_data_load_idx(tmp("zero"), tmp("lab"), true, &d, err, sizeof err);
		expect_err(rc, &d, err, fmt("%s: offset 0: expected IDX magic 0x00000803, found 0 bytes", tmp("zero")), __LINE__);
		/* truncated labels */
		write_file(tmp("trunclab"), lab, 8 + 3, 0);
		rc = nnd_data_load_idx(tmp("img"), tmp("trunclab"), false, &d, err, sizeof err);
		expect_err(rc, &d, err, fmt("%s: offset 8: expected 5 bytes of label data, found 3", tmp("trunclab")), __LINE__);
		/* trailing bytes */
		static uint8_t longer[4096];
		memcpy(longer, img, ni);
		longer[ni] = 9;
		write_file(tmp("long"), longer, ni + 1, 0);
		rc = nnd_data_load_idx(tmp("long"), tmp("lab"), false, &d, err, sizeof err);
		expect_err(rc, &d, err, "expected end of file after 60 bytes of image data", __LINE__);
	}
	/* bad magic */
	{
		static uint8_t bad[4096];
		memcpy(bad, img, ni);
		bad[0] = 0x12; bad[1] = 0x34;
		write_file(tmp("badmagic"), bad, ni, 0);
		write_file(tmp("badmagic.gz"), bad, ni, 1);
		nnd_data d; char err[512] = "";
		int rc = nnd_data_load_idx(tmp("badmagic"), tmp("lab"), false, &d, err, sizeof err);
		expect_err(rc, &d, err, fmt("%s: offset 0: expected IDX magic 0x00000803, found 0x12340803", tmp("badmagic")), __LINE__);
		rc = nnd_data_load_idx(tmp("badmagic.gz"), tmp("lab"), true, &d, err, sizeof err);
		expect_err(rc, &d, err, fmt("%s: decoded offset 0: expected IDX magic 0x00000803, found 0x12340803", tmp("badmagic.gz")), __LINE__);
		/* images and labels swapped */
		rc = nnd_data_load_idx(tmp("lab"), tmp("img"), false, &d, err, sizeof err);
		expect_err(rc, &d, err, "images: 2 to 5 dimensions), found 0x00000801 (1 dimension)", __LINE__);
		rc = nnd_data_load_idx(tmp("img"), tmp("img"), false, &d, err, sizeof err);
		expect_err(rc, &d, err, "expected IDX magic 0x00000801 (labels: 1 dimension), found 0x00000803", __LINE__);
		/* wrong element type (0x0D: f32) */
		memcpy(bad, img, ni);
		bad[2] = 0x0D;
		write_file(tmp("f32"), bad, ni, 0);
		rc = nnd_data_load_idx(tmp("f32"), tmp("lab"), false, &d, err, sizeof err);
		expect_err(rc, &d, err, "offset 2: expected IDX magic 0x00000803 (type 0x08, unsigned bytes), found 0x00000D03", __LINE__);
	}
	/* label count mismatch */
	{
		static uint8_t l4[64];
		const uint32_t d4[1] = { 4 };
		size_t n4 = make_idx(l4, 1, d4, 4);
		write_file(tmp("lab4"), l4, n4, 0);
		nnd_data d; char err[512] = "";
		int rc = nnd_data_load_idx(tmp("img"), tmp("lab4"), false, &d, err, sizeof err);
		expect_err(rc, &d, err, "offset 4: expected 5 labels (the number of images in", __LINE__);
		CHECK(strstr(err, "found 4") != NULL);
		rc = nnd_data_load_idx(tmp("img"), tmp("lab4"), true, &d, err, sizeof err);
		expect_err(rc, &d, err, "expected 5 labels", __LINE__);
	}
	/* absurd dimensions: rejected before allocating */
	{
		static uint8_t huge[64];
		const uint32_t hd[4] = { 0xffffffffu, 0xffffffffu, 0xffffffffu, 0xffffffffu };
		size_t nh = make_idx(huge, 4, hd, 0);
		write_file(tmp("huge"), huge, nh, 0);
		nnd_data d; char err[512] = "";
		int rc = nnd_data_load_idx(tmp("huge"), tmp("lab"), true, &d, err, sizeof err);
		expect_err(rc, &d, err, "expected at most 2^40 bytes of image data", __LINE__);
		const uint32_t zd[3] = { 5, 0, 4 };
		nh = make_idx(huge, 3, zd, 0);
		write_file(tmp("zerodim"), huge, nh, 0);
		rc = nnd_data_load_idx(tmp("zerodim"), tmp("lab"), true, &d, err, sizeof err);
		expect_err(rc, &d, err, "offset 8: expected dimension 1 to be at least 1, found 0", __LINE__);
	}
	/* corrupt gzip: damage the deflate stream, and cut it short */
	{
		FILE *f = fopen(tmp("img.gz"), "rb");
		static uint8_t gzb[4096];
		size_t n = fread(gzb, 1, sizeof gzb, f);
		fclose(f);
		static uint8_t c1[4096];
		memcpy(c1, gzb, n);
		for (size_t i = 12; i < n - 8; i++)
			c1[i] ^= 0x5a;
		write_file(tmp("corrupt.gz"), c1, n, 0);
		nnd_data d; char err[512] = "";
		int rc = nnd_data_load_idx(tmp("corrupt.gz"), tmp("lab"), false, &d, err, sizeof err);
		expect_err(rc, &d, err, "corrupt gzip data", __LINE__);
		write_file(tmp("cut.gz"), gzb, n / 2, 0);
		rc = nnd_data_load_idx(tmp("cut.gz"), tmp("lab"), false, &d, err, sizeof err);
		expect_err(rc, &d, err, "corrupt gzip data: unexpected end of file", __LINE__);
		/* bad CRC: flip a bit of the trailer */
		memcpy(c1, gzb, n);
		c1[n - 6] ^= 1;
		write_file(tmp("crc.gz"), c1, n, 0);
		rc = nnd_data_load_idx(tmp("crc.gz"), tmp("lab"), false, &d, err, sizeof err);
		expect_err(rc, &d, err, "corrupt gzip data", __LINE__);
	}
}

/* A gzip file that shrinks while it is mapped and decoded: the SIGBUS is
 * caught and the file read again through zlib, which reports it cut
 * short -- an error message, not a crash. */
static void test_gzip_shrinks(void)
{
	enum { N = 200000 };
	static uint8_t img[N + 16];
	const uint32_t dims[3] = { 250, 20, 40 };
	for (size_t i = 0; i < sizeof img; i++)
		img[i] = (uint8_t)(i * 2654435761u >> 24);   /* incompressible enough to span pages */
	size_t n = make_idx(img, 3, dims, 0) + N;   /* the bytes above after the header */
	write_file(tmp("shrink.gz"), img, n, 1);
	setenv("NND_TEST_SHRINK_MAPPED", "1", 1);
	nnd_data d; char err[512] = "";
	int rc = nnd_data_load_idx(tmp("shrink.gz"), tmp("lab"), false, &d, err, sizeof err);
	unsetenv("NND_TEST_SHRINK_MAPPED");
	expect_err(rc, &d, err, "corrupt gzip data: unexpected end of file", __LINE__);
}

/* one gzip member of data[0..n) appended to out at *len; hcrc: with a
 * header CRC (FHCRC), which only zlib checks */
static void gz_member(const uint8_t *data, size_t n, int hcrc, uint8_t *out, size_t cap, size_t *len)
{
	z_stream z;
	memset(&z, 0, sizeof z);
	gz_header h;
	memset(&h, 0, sizeof h);
	h.os = 3;
	h.hcrc = hcrc;
	if (deflateInit2(&z, 9, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) != Z_OK ||
	    deflateSetHeader(&z, &h) != Z_OK) {
		fprintf(stderr, "deflateInit2: %s\n", z.msg ? z.msg : "failed");
		exit(2);
	}
	z.next_in = (Bytef *)data;
	z.avail_in = (uInt)n;
	z.next_out = out + *len;
	z.avail_out = (uInt)(cap - *len);
	int rc = deflate(&z, Z_FINISH);
	if (rc != Z_STREAM_END) {
		fprintf(stderr, "deflate: %d %s\n", rc, z.msg ? z.msg : "");
		exit(2);
	}
	*len += z.total_out;
	deflateEnd(&z);
}

static int same_data(const nnd_data *a, const nnd_data *b)
{
	if (a->n != b->n || a->row_bytes[0] != b->row_bytes[0] || a->row_bytes[1] != b->row_bytes[1] ||
	    a->rank[0] != b->rank[0] || memcmp(a->dims, b->dims, sizeof a->dims) != 0)
		return 0;
	return a->buf[0] && b->buf[0] && a->buf[1] && b->buf[1] &&
	       memcmp(a->buf[0], b->buf[0], (size_t)(a->n * a->row_bytes[0])) == 0 &&
	       memcmp(a->buf[1], b->buf[1], (size_t)a->n) == 0;
}

/* Gzip files loaded whole (decoded at once, or through zlib's stream where
 * that refuses them): the same bytes as the plain file, and zlib's precise
 * messages for every damaged one. */
static void test_gzip_whole(void)
{
	enum { N = 300, H = 16, P = N * 28 * 28 };
	static uint8_t img[H + P], gz[2 * (H + P)], multi[2 * (H + P)], c[2 * (H + P)];
	const uint32_t dims[3] = { N, 28, 28 };
	size_t ni = make_idx(img, 3, dims, 0);
	for (size_t i = 0; i < P; i++)
		img[ni + i] = (uint8_t)((i % 28) * (i / 784 % 9) + (i * 2654435761u >> 29));
	ni += P;
	static uint8_t lab[8 + N];
	const uint32_t ldims[1] = { N };
	size_t nl = make_idx(lab, 1, ldims, N);
	write_file(tmp("big"), img, ni, 0);
	write_file(tmp("biglab"), lab, nl, 0);
	write_file(tmp("biglab.gz"), lab, nl, 1);

	nnd_data plain;
	char err[512] = "";
	int rc = nnd_data_load_idx(tmp("big"), tmp("biglab"), false, &plain, err, sizeof err);
	CHECK(rc == 0);
	if (rc) {
		fprintf(stderr, "%s\n", err);
		return;
	}

	/* one member; three whose last is the smallest (the trailer's size is
	 * the last member's, so the buffer must grow); a header CRC */
	size_t n1 = 0, n3 = 0, nj, nh = 0;
	gz_member(img, ni, 0, gz, sizeof gz, &n1);
	write_file(tmp("big.gz"), gz, n1, 0);
	gz_member(img, 1000, 0, multi, sizeof multi, &n3);
	gz_member(img + 1000, ni - 1100, 0, multi, sizeof multi, &n3);
	gz_member(img + ni - 100, 100, 0, multi, sizeof multi, &n3);
	write_file(tmp("multi.gz"), multi, n3, 0);
	gz_member(img, ni, 1, c, sizeof c, &nh);
	write_file(tmp("hcrc.gz"), c, nh, 0);
	const char *same[] = { "big.gz", "multi.gz", "hcrc.gz" };
	for (size_t i = 0; i < sizeof same / sizeof *same; i++) {
		nnd_data d;
		rc = nnd_data_load_idx(tmp(same[i]), tmp("biglab.gz"), false, &d, err, sizeof err);
		if (rc != 0 || !same_data(&d, &plain)) {
			fprintf(stderr, "test_data.c:%d: %s: expected the bytes of the plain file, got %d '%s'\n",
			        __LINE__, same[i], rc, rc ? err : "");
			fails++;
		}
		nnd_data_free(&d);
		CHECK(empty(&d));
	}

	/* damaged files: libdeflate refuses them, zlib says what and where:
	 * the compressed offset at which the damage shows (a failed CRC
	 * shows in the trailer) */
	char want[200];
	memcpy(c, gz, n1);
	c[n1 / 2] ^= 0x55;
	snprintf(want, sizeof want, "compressed offset %zu: corrupt gzip data: incorrect data check (the decoded bytes "
	         "do not match the CRC-32", n1 - 4);
	load_damaged("mid.gz", c, n1, want, __LINE__);
	/* a trailer size that is too small (the buffer grows, then the size
	 * check fails), and one too large */
	memcpy(c, gz, n1);
	c[n1 - 2] ^= 0x01;
	snprintf(want, sizeof want, "compressed offset %zu: corrupt gzip data: incorrect length check", n1);
	load_damaged("small.gz", c, n1, want, __LINE__);
	c[n1 - 2] ^= 0x01;
	c[n1 - 1] = 0xff;
	load_damaged("large.gz", c, n1, want, __LINE__);
	/* a later member damaged, and one cut short: the file's end */
	memcpy(c, multi, n3);
	c[n3 - 6] ^= 0x01;
	snprintf(want, sizeof want, "compressed offset %zu: corrupt gzip data: incorrect data check", n3 - 4);
	load_damaged("multicrc.gz", c, n3, want, __LINE__);
	snprintf(want, sizeof want, "compressed offset %zu: corrupt gzip data: unexpected end of file", n3 - 30);
	load_damaged("multicut.gz", multi, n3 - 30, want, __LINE__);
	/* a deflate stream damaged near its start: found there, not at the
	 * end, and not reported as an offset of the decoded data */
	{
		memcpy(c, gz, n1);
		for (size_t i = 12; i < 20; i++)
			c[i] ^= 0x5a;
		write_file(tmp("early.gz"), c, n1, 0);
		nnd_data d;
		char e[512] = "";
		rc = nnd_data_load_idx(tmp("early.gz"), tmp("biglab"), false, &d, e, sizeof e);
		const char *at = strstr(e, "compressed offset ");
		CHECK(rc == -1 && at && strtoull(at + 18, NULL, 10) < 100 && strstr(e, "corrupt gzip data: ") && empty(&d));
	}
	/* bytes after a member that do not start another: an error at their
	 * offset (a later member still works: multi.gz above) */
	snprintf(want, sizeof want, "compressed offset %zu: expected the end of the file or another gzip member after "
	         "the gzip data, found bytes 6a 75 6e 6b ... (trailing garbage)", n1);
	memcpy(c, gz, n1);
	memcpy(c + n1, "junk\n", 5);
	nj = n1 + 5;
	load_damaged("junk.gz", c, nj, want, __LINE__);
	memcpy(c + n1, "\0", 1);
	snprintf(want, sizeof want, "compressed offset %zu: expected the end of the file or another gzip member after "
	         "the gzip data, found bytes 00 (trailing garbage)", n1);
	load_damaged("zero.gz", c, n1 + 1, want, __LINE__);
	/* bytes after a member that start another, which is not one */
	memcpy(c, gz, n1);
	memcpy(c + n1, "\x1f\x8bjunk", 6);
	snprintf(want, sizeof want, "compressed offset %zu: corrupt gzip data: unknown compression method", n1 + 4);
	load_damaged("junkgz.gz", c, n1 + 6, want, __LINE__);
	/* a header CRC that does not match (libdeflate would not notice) */
	memcpy(c, gz, n1);
	nh = 0;
	gz_member(img, ni, 1, c, sizeof c, &nh);
	c[10] ^= 0x01;
	load_damaged("badhcrc.gz", c, nh, "compressed offset 12: corrupt gzip data: header crc mismatch", __LINE__);
	/* decoded whole, the IDX checks are the same, at decoded offsets */
	n1 = 0;
	gz_member(img, ni - 5, 0, gz, sizeof gz, &n1);
	load_damaged("short.gz", gz, n1, "decoded offset 16: expected 235200 bytes of image data, found 235195", __LINE__);
	memcpy(c, img, ni);
	c[ni] = 7;
	n1 = 0;
	gz_member(c, ni + 1, 0, gz, sizeof gz, &n1);
	load_damaged("longer.gz", gz, n1, "decoded offset 235216: expected end of file after 235200 bytes of image data, "
	             "found more bytes", __LINE__);
	nnd_data_free(&plain);
}

/* the bytes of a file (exits on failure); free() them */
static uint8_t *read_whole(const char *path, size_t *n)
{
	FILE *f = fopen(path, "rb");
	uint8_t *b = NULL;
	if (!f || fseek(f, 0, SEEK_END) != 0 || (*n = (size_t)ftell(f), fseek(f, 0, SEEK_SET)) != 0 ||
	    !(b = malloc(*n + 1)) || fread(b, 1, *n, f) != *n) {
		fprintf(stderr, "cannot read %s\n", path);
		exit(2);
	}
	fclose(f);
	return b;
}

/* A pipe that a child process fills with data[0..n): its read end named
 * /dev/fd/N, as bash's <(...) names one.  Opening that path gives the
 * same pipe, which can be read once, from its start, and not rewound. */
typedef struct { int fd; pid_t pid; char path[64]; } piped;

static void pipe_of(piped *p, const void *data, size_t n)
{
	int fds[2];
	if (pipe(fds) != 0) {
		perror("pipe");
		exit(2);
	}
	fflush(NULL);
	p->pid = fork();
	if (p->pid < 0) {
		perror("fork");
		exit(2);
	}
	if (p->pid == 0) {
		close(fds[0]);
		const uint8_t *b = data;
		for (size_t o = 0; o < n;) {
			ssize_t k = write(fds[1], b + o, n - o);
			if (k <= 0)
				_exit(0);   /* the reader stopped early (an error it found) */
			o += (size_t)k;
		}
		_exit(0);
	}
	close(fds[1]);
	p->fd = fds[0];
	snprintf(p->path, sizeof p->path, "/dev/fd/%d", fds[0]);
}

static void pipe_done(piped *p)
{
	close(p->fd);
	waitpid(p->pid, NULL, 0);
}

/* Files that cannot be rewound (pipes): the bytes looked at to detect
 * gzip are not lost; plain and gzip, whole and probed, images and labels,
 * and the messages of a damaged gzip stream (uses test_gzip_whole's
 * files). */
static void test_pipes(void)
{
	size_t ni, nl, ngi, ngl;
	uint8_t *img = read_whole(tmp("big"), &ni), *lab = read_whole(tmp("biglab"), &nl);
	uint8_t *gimg = read_whole(tmp("big.gz"), &ngi), *glab = read_whole(tmp("biglab.gz"), &ngl);
	nnd_data plain, d;
	char err[512] = "";
	CHECK(nnd_data_load_idx(tmp("big"), tmp("biglab"), false, &plain, err, sizeof err) == 0);
	for (int gz = 0; gz < 2; gz++)
		for (int probe = 0; probe < 2; probe++) {
			piped pi, pl;
			pipe_of(&pi, gz ? gimg : img, gz ? ngi : ni);
			pipe_of(&pl, gz ? glab : lab, gz ? ngl : nl);
			int rc = nnd_data_load_idx(pi.path, pl.path, probe, &d, err, sizeof err);
			if (rc != 0 || d.n != plain.n || d.row_bytes[0] != plain.row_bytes[0] ||
			    (!probe && !same_data(&d, &plain))) {
				fprintf(stderr, "test_data.c:%d: %s through a pipe%s: got %d '%s'\n", __LINE__,
				        gz ? "gzip" : "plain", probe ? ", probed" : "", rc, rc ? err : "other data");
				fails++;
			}
			CHECK(probe || rc != 0 || (d.lab_path && !strcmp(d.lab_path, pl.path) && d.lab_gz == gz));
			nnd_data_free(&d);
			pipe_done(&pi);
			pipe_done(&pl);
		}
	/* infer --input <(cat images.gz) */
	{
		piped pi;
		pipe_of(&pi, gimg, ngi);
		int rc = rt_data_load_idx_images(pi.path, &d, err, sizeof err);
		CHECK(rc == 0 && d.n == plain.n && !memcmp(d.buf[0], plain.buf[0], (size_t)(d.n * d.row_bytes[0])));
		CHECK(rc != 0 || (d.buf[1][0] == 0 && d.lab_path == NULL));
		nnd_data_free(&d);
		pipe_done(&pi);
	}
	/* a gzip stream cut short, and trailing garbage, through a pipe: the
	 * compressed offset (the pipe's bytes) */
	{
		char want[300];
		piped pi;
		pipe_of(&pi, gimg, 1000);
		int rc = rt_data_load_idx_images(pi.path, &d, err, sizeof err);
		snprintf(want, sizeof want, "%s: compressed offset 1000: corrupt gzip data: unexpected end of file", pi.path);
		expect_err(rc, &d, err, want, __LINE__);
		pipe_done(&pi);
		uint8_t *t = malloc(ngi + 3);
		memcpy(t, gimg, ngi);
		memcpy(t + ngi, "abc", 3);
		pipe_of(&pi, t, ngi + 3);
		rc = rt_data_load_idx_images(pi.path, &d, err, sizeof err);
		snprintf(want, sizeof want, "%s: compressed offset %zu: expected the end of the file or another gzip "
		         "member after the gzip data, found bytes 61 62 63 (trailing garbage)", pi.path, ngi);
		expect_err(rc, &d, err, want, __LINE__);
		pipe_done(&pi);
		free(t);
		/* a plain file through a pipe, cut short: its offsets are plain */
		pipe_of(&pi, img, 100);
		rc = rt_data_load_idx_images(pi.path, &d, err, sizeof err);
		snprintf(want, sizeof want, "%s: offset 16: expected 235200 bytes of image data, found 84", pi.path);
		expect_err(rc, &d, err, want, __LINE__);
		pipe_done(&pi);
	}
	/* a CSV through a pipe */
	{
		const char *csv = "b,a,y\n1,2,0\n3,4,1\n";
		char *names[2] = { "a", "b" };
		piped pc;
		pipe_of(&pc, csv, strlen(csv));
		int rc = rt_data_load_csv(pc.path, "y", names, 2, true, &d, err, sizeof err);
		const float *f = (const float *)d.buf[0];
		CHECK(rc == 0 && d.n == 2 && f[0] == 2.0f && f[1] == 1.0f && f[2] == 4.0f && f[3] == 3.0f);
		nnd_data_free(&d);
		pipe_done(&pc);
	}
	nnd_data_free(&plain);
	free(img);
	free(lab);
	free(gimg);
	free(glab);
}

static int load_csv(const char *name, const char *label, bool probe, nnd_data *d, char *err, size_t n)
{
	return nnd_data_load_csv(tmp(name), label, probe, d, err, n);
}

static void test_csv(void)
{
	write_text(tmp("ok.csv"), "a, label ,\"b\"\r\n1.5,3,2\r\n\r\n-1,0,1e3\n0.1,-7,  4  \n\n");
	for (int probe = 0; probe < 2; probe++) {
		nnd_data d; char err[512] = "";
		int rc = load_csv("ok.csv", "label", probe, &d, err, sizeof err);
		CHECK(rc == 0);
		if (rc) { fprintf(stderr, "%s\n", err); continue; }
		CHECK(d.kind == 1 && d.n == 3);
		CHECK(d.dtype[0] == 0 && d.dtype[1] == 1);
		CHECK(d.rank[0] == 1 && d.dims[0][0] == 2 && d.row_bytes[0] == 8);
		CHECK(d.rank[1] == 0 && d.row_bytes[1] == 4);
		if (!probe) {
			const float *f = (const float *)d.buf[0];
			const int32_t *l = (const int32_t *)d.buf[1];
			CHECK(f[0] == 1.5f && f[1] == 2.0f && f[2] == -1.0f && f[3] == 1000.0f);
			CHECK(f[4] == 0.1f && f[5] == 4.0f);
			CHECK(l[0] == 3 && l[1] == 0 && l[2] == -7);
		} else {
			CHECK(d.buf[0] == NULL && d.buf[1] == NULL);
		}
		nnd_data_free(&d);
	}
	/* header only: zero rows */
	{
		write_text(tmp("hdr.csv"), "x,y\n");
		nnd_data d; char err[512] = "";
		int rc = load_csv("hdr.csv", "y", false, &d, err, sizeof err);
		CHECK(rc == 0 && d.n == 0 && d.dims[0][0] == 1);
		nnd_data_free(&d);
	}
	nnd_data d; char err[512] = "";
	int rc;
	rc = nnd_data_load_csv(tmp("missing.csv"), "y", false, &d, err, sizeof err);
	expect_err(rc, &d, err, fmt("cannot open %s: No such file or directory", tmp("missing.csv")), __LINE__);

	write_text(tmp("num.csv"), "a,b,c\n1,2,3\n1,2,abc\n");
	rc = load_csv("num.csv", "a", false, &d, err, sizeof err);
	expect_err(rc, &d, err, fmt("%s:3: column 3: expected a number, found 'abc'", tmp("num.csv")), __LINE__);
	rc = load_csv("num.csv", "a", true, &d, err, sizeof err);   /* probe counts rows only */
	CHECK(rc == 0 && d.n == 2);
	nnd_data_free(&d);

	/* C's hexadecimal forms are not CSV numbers, in a feature or a label */
	write_text(tmp("hex.csv"), "a,b,c\n1,2,3\n1,0x10,3\n");
	rc = load_csv("hex.csv", "a", false, &d, err, sizeof err);
	expect_err(rc, &d, err, fmt("%s:3: column 2: expected a number, found '0x10'", tmp("hex.csv")), __LINE__);
	rc = load_csv("hex.csv", "b", false, &d, err, sizeof err);
	expect_err(rc, &d, err, fmt("%s:3: column 2: expected a number, found '0x10'", tmp("hex.csv")), __LINE__);
	write_text(tmp("duplab.csv"), "y,b,y\n0,2,1\n");
	rc = load_csv("duplab.csv", "y", false, &d, err, sizeof err);
	expect_err(rc, &d, err, fmt("%s:1: the label column 'y' appears twice in the header (columns 1 and 3)",
	                            tmp("duplab.csv")), __LINE__);
	write_text(tmp("intlab.csv"), "a,y\n1,3.0\n2,2e0\n");
	rc = load_csv("intlab.csv", "y", false, &d, err, sizeof err);
	CHECK(rc == 0 && d.n == 2 && ((const int32_t *)d.buf[1])[0] == 3 && ((const int32_t *)d.buf[1])[1] == 2);
	nnd_data_free(&d);

	write_text(tmp("empty.csv"), "a,b,c\n1,,3\n");
	rc = load_csv("empty.csv", "a", false, &d, err, sizeof err);
	expect_err(rc, &d, err, "empty.csv:2: column 2: expected a number, found ''", __LINE__);

	write_text(tmp("fields.csv"), "a,b,c\n1,2,3\n4,5\n");
	rc = load_csv("fields.csv", "c", false, &d, err, sizeof err);
	expect_err(rc, &d, err, "fields.csv:3: expected 3 fields (as in the header), found 2", __LINE__);
	write_text(tmp("fields2.csv"), "a,b,c\n1,2,3,4\n");
	rc = load_csv("fields2.csv", "c", false, &d, err, sizeof err);
	expect_err(rc, &d, err, "fields2.csv:2: expected 3 fields (as in the header), found 4", __LINE__);

	rc = load_csv("num.csv", "label", false, &d, err, sizeof err);
	expect_err(rc, &d, err, "num.csv:1: expected a column named 'label' in the header, found none", __LINE__);

	write_text(tmp("frac.csv"), "x,y\n1,2\n1,2.5\n");
	rc = load_csv("frac.csv", "y", false, &d, err, sizeof err);
	expect_err(rc, &d, err, "frac.csv:3: column 2: expected an integer label (32-bit), found '2.5'", __LINE__);
	write_text(tmp("big.csv"), "x,y\n1,1e10\n");
	rc = load_csv("big.csv", "y", false, &d, err, sizeof err);
	expect_err(rc, &d, err, "big.csv:2: column 2: expected an integer label (32-bit), found '1e10'", __LINE__);
	write_text(tmp("inf.csv"), "x,y\n1e39,1\n");
	rc = load_csv("inf.csv", "y", false, &d, err, sizeof err);
	expect_err(rc, &d, err, "inf.csv:2: column 1: expected a finite number (binary32), found '1e39'", __LINE__);
	write_text(tmp("nan.csv"), "x,y\nnan,1\n");
	rc = load_csv("nan.csv", "y", false, &d, err, sizeof err);
	expect_err(rc, &d, err, "column 1: expected a finite number", __LINE__);

	write_text(tmp("nohdr.csv"), "\n\n");
	rc = load_csv("nohdr.csv", "y", false, &d, err, sizeof err);
	expect_err(rc, &d, err, "expected a header line of column names, found end of file", __LINE__);
	write_text(tmp("onlylabel.csv"), "y\n1\n");
	rc = load_csv("onlylabel.csv", "y", false, &d, err, sizeof err);
	expect_err(rc, &d, err, "expected at least one feature column besides 'y'", __LINE__);

	/* many rows: exercises the buffer growth */
	FILE *f = fopen(tmp("many.csv"), "w");
	fprintf(f, "p,q,label\n");
	for (int i = 0; i < 5000; i++)
		fprintf(f, "%d,%d.25,%d\n", i, -i, i % 10);
	fclose(f);
	rc = load_csv("many.csv", "label", false, &d, err, sizeof err);
	CHECK(rc == 0 && d.n == 5000);
	if (rc == 0) {
		const float *fe = (const float *)d.buf[0];
		const int32_t *l = (const int32_t *)d.buf[1];
		CHECK(fe[2 * 4999] == 4999.0f && fe[2 * 4999 + 1] == -4999.25f && l[4999] == 9);
	}
	nnd_data_free(&d);
}

/* a CSV's features matched by name against the columns a program was
 * compiled for (rt_data_load_csv): in any order, several of one name in
 * order, the label column optional for inference; every mismatch named */
static void test_csv_names(void)
{
	nnd_data d;
	char err[512] = "";
	int rc;
	char *abc[3] = { "a", "b", "c" };
	write_text(tmp("names.csv"), "b, y ,a,\"c\"\n1,0,2,3\n\n4,1,5,6\n");
	/* probed: the names in file order, the label left out */
	rc = nnd_data_load_csv(tmp("names.csv"), "y", true, &d, err, sizeof err);
	CHECK(rc == 0 && d.names && !strcmp(d.names[0], "b") && !strcmp(d.names[1], "a") && !strcmp(d.names[2], "c"));
	nnd_data_free(&d);
	for (int infer = 0; infer < 2; infer++) {
		rc = rt_data_load_csv(tmp("names.csv"), "y", abc, 3, infer, &d, err, sizeof err);
		CHECK(rc == 0 && d.n == 2 && d.dims[0][0] == 3);
		if (rc) {
			fprintf(stderr, "%s\n", err);
			continue;
		}
		const float *f = (const float *)d.buf[0];
		const int32_t *l = (const int32_t *)d.buf[1];
		CHECK(f[0] == 2 && f[1] == 1 && f[2] == 3 && f[3] == 5 && f[4] == 4 && f[5] == 6);
		CHECK(infer ? l[0] == 0 && l[1] == 0 : l[0] == 0 && l[1] == 1);
		CHECK(!strcmp(d.names[0], "a") && !strcmp(d.names[2], "c"));
		nnd_data_free(&d);
	}
	/* the same order: as in the file */
	char *bac[3] = { "b", "a", "c" };
	rc = rt_data_load_csv(tmp("names.csv"), "y", bac, 3, false, &d, err, sizeof err);
	CHECK(rc == 0 && ((const float *)d.buf[0])[0] == 1 && ((const float *)d.buf[0])[1] == 2);
	nnd_data_free(&d);
	/* a name of several columns: its k-th column is its k-th feature */
	write_text(tmp("dup.csv"), "x,lab,x,z\n1,0,2,3\n");
	char *zxx[3] = { "z", "x", "x" };
	rc = rt_data_load_csv(tmp("dup.csv"), "lab", zxx, 3, false, &d, err, sizeof err);
	CHECK(rc == 0 && ((const float *)d.buf[0])[0] == 3 && ((const float *)d.buf[0])[1] == 1 &&
	      ((const float *)d.buf[0])[2] == 2);
	nnd_data_free(&d);
	/* missing and unknown names */
	char *abz[3] = { "a", "b", "z" };
	rc = rt_data_load_csv(tmp("names.csv"), "y", abz, 3, true, &d, err, sizeof err);
	expect_err(rc, &d, err, fmt("%s:1: expected a column named 'z' (feature 3 of the training data), found none",
	                            tmp("names.csv")), __LINE__);
	rc = rt_data_load_csv(tmp("names.csv"), "y", abz, 3, false, &d, err, sizeof err);
	expect_err(rc, &d, err, "names.csv:1: expected a column named 'z' (feature 3 of the data the program was "
	           "compiled for), found none; rebuild the program for this data", __LINE__);
	char *ab[2] = { "a", "b" };
	rc = rt_data_load_csv(tmp("names.csv"), "y", ab, 2, true, &d, err, sizeof err);
	expect_err(rc, &d, err, "names.csv:1: column 4: expected one of the feature columns 'a', 'b' (those of the "
	           "training data) or the label column 'y', found 'c'", __LINE__);
	rc = rt_data_load_csv(tmp("names.csv"), "y", ab, 2, false, &d, err, sizeof err);
	expect_err(rc, &d, err, "names.csv:1: column 4: expected one of the feature columns 'a', 'b' (those of the "
	           "data the program was compiled for), found 'c'; rebuild the program for this data", __LINE__);
	/* inference: no label column is fine, a label that is not a number
	 * is not read; a header without rows is an error (nothing to infer) */
	write_text(tmp("nolab.csv"), "c,b,a\n3,2,1\n");
	rc = rt_data_load_csv(tmp("nolab.csv"), "y", abc, 3, true, &d, err, sizeof err);
	CHECK(rc == 0 && d.n == 1 && ((const float *)d.buf[0])[0] == 1 && ((const float *)d.buf[0])[2] == 3);
	nnd_data_free(&d);
	write_text(tmp("qlab.csv"), "a,b,c,y\n1,2,3,?\n");
	rc = rt_data_load_csv(tmp("qlab.csv"), "y", abc, 3, true, &d, err, sizeof err);
	CHECK(rc == 0 && d.n == 1);
	nnd_data_free(&d);
	rc = rt_data_load_csv(tmp("nolab.csv"), "y", abc, 3, false, &d, err, sizeof err);
	expect_err(rc, &d, err, "nolab.csv:1: expected a column named 'y' in the header, found none", __LINE__);
	write_text(tmp("hdronly.csv"), "\na,b,c,y\n\n");
	rc = rt_data_load_csv(tmp("hdronly.csv"), "y", abc, 3, true, &d, err, sizeof err);
	expect_err(rc, &d, err, "hdronly.csv:2: expected a row of data after the header, found the end of the file",
	           __LINE__);
	rc = rt_data_load_csv(tmp("hdronly.csv"), "y", NULL, 0, true, &d, err, sizeof err);
	expect_err(rc, &d, err, "hdronly.csv:2: expected a row of data after the header", __LINE__);
	/* a data set may have no rows (its training is empty) */
	rc = rt_data_load_csv(tmp("hdronly.csv"), "y", abc, 3, false, &d, err, sizeof err);
	CHECK(rc == 0 && d.n == 0);
	nnd_data_free(&d);
}

/* Labels against the classes of a program (rt_data_check_labels), and
 * where a sample's label lies (rt_data_where): the IDX byte offset (of
 * the decoded bytes in a gzip file), the CSV line and column (counted
 * again when blank lines lie between the rows). */
static void test_labels(void)
{
	static uint8_t img[4096], lab[256];
	const uint32_t idims[3] = { 5, 3, 4 }, ldims[1] = { 5 };
	size_t ni = make_idx(img, 3, idims, 60), nl = make_idx(lab, 1, ldims, 5);   /* labels 1 8 15 22 29 */
	write_file(tmp("limg"), img, ni, 0);
	write_file(tmp("llab"), lab, nl, 0);
	write_file(tmp("llab.gz"), lab, nl, 1);
	nnd_data d;
	char err[512] = "", where[600];
	CHECK(nnd_data_load_idx(tmp("limg"), tmp("llab"), false, &d, err, sizeof err) == 0);
	CHECK(rt_data_check_labels(&d, d.n, 30, err, sizeof err) == 0);
	CHECK(rt_data_check_labels(&d, 3, 20, err, sizeof err) == 0);   /* --limit 3 */
	CHECK(rt_data_check_labels(&d, d.n, 20, err, sizeof err) == -1 &&
	      !strcmp(err, fmt("%s: offset 11: label 22 of sample 3 is outside [0, 20) (the classes of the loss's "
	                       "cross_entropy)", tmp("llab"))));
	CHECK(rt_data_where(&d, 4, where, sizeof where) && !strcmp(where, fmt("%s: offset 12", tmp("llab"))));
	CHECK(!rt_data_where(&d, 5, where, sizeof where));
	nnd_data_free(&d);
	CHECK(nnd_data_load_idx(tmp("limg"), tmp("llab.gz"), false, &d, err, sizeof err) == 0);
	CHECK(rt_data_check_labels(&d, d.n, 2, err, sizeof err) == -1 &&
	      strstr(err, fmt("%s: decoded offset 9: label 8 of sample 1 is outside [0, 2)", tmp("llab.gz"))));
	nnd_data_free(&d);
	/* images alone (inference): no labels file to name */
	CHECK(rt_data_load_idx_images(tmp("limg"), &d, err, sizeof err) == 0);
	CHECK(!rt_data_where(&d, 0, where, sizeof where));
	nnd_data_free(&d);
	/* CSV: ok.csv's rows are on lines 2, 4 and 5 (a blank line between) */
	CHECK(load_csv("ok.csv", "label", false, &d, err, sizeof err) == 0 && d.lab_line0 == -1);
	CHECK(rt_data_check_labels(&d, d.n, 5, err, sizeof err) == -1 &&
	      strstr(err, "ok.csv:5: column 2: label -7 of sample 2 is outside [0, 5)"));
	CHECK(rt_data_where(&d, 1, where, sizeof where) && strstr(where, "ok.csv:4: column 2"));
	nnd_data_free(&d);
	CHECK(load_csv("many.csv", "label", false, &d, err, sizeof err) == 0 && d.lab_line0 == 2);
	CHECK(rt_data_check_labels(&d, d.n, 9, err, sizeof err) == -1 &&
	      strstr(err, "many.csv:11: column 3: label 9 of sample 9 is outside [0, 9)"));
	CHECK(rt_data_check_labels(&d, d.n, 10, err, sizeof err) == 0);
	nnd_data_free(&d);
	/* no batch is being computed: the kernels' message has no sample */
	CHECK(!rt_batch_row_where(0, where, sizeof where));
}

/* the one cache entry in dir c (its path into out); false if none or several */
static bool cache_entry(const char *c, char *out, size_t n)
{
	DIR *d = opendir(c);
	int found = 0;
	struct dirent *e;
	while (d && (e = readdir(d)))
		if (!strncmp(e->d_name, "gunzip-", 7) && strstr(e->d_name, ".bin") && !strstr(e->d_name, ".tmp")) {
			snprintf(out, n, "%s/%s", c, e->d_name);
			found++;
		}
	if (d)
		closedir(d);
	return found == 1;
}

/* The decoded-dataset cache: a second load maps the entry the first one
 * wrote, with the same bytes; an entry whose bytes do not match the
 * source's gzip trailer is never used (and is replaced); an entry that
 * shrinks while mapped ends the program with a message naming it;
 * NND_CACHE_DIR=off writes nothing. */
static void test_cache(void)
{
	enum { N = 100000 };
	static uint8_t img[N + 16];
	const uint32_t dims[3] = { 250, 20, 20 };
	size_t hn = make_idx(img, 3, dims, 0);
	for (size_t i = 0; i < N; i++)
		img[hn + i] = (uint8_t)(i * 2654435761u >> 24);
	write_file(tmp("c.gz"), img, hn + N, 1);
	uint8_t lab[8 + 250];
	const uint32_t ld[1] = { 250 };
	size_t ln = make_idx(lab, 1, ld, 250);
	lab[3] = 1;
	write_file(tmp("cl.gz"), lab, ln, 1);
	const char *cdir = tmp("cache");
	setenv("NND_CACHE_DIR", cdir, 1);
	nnd_data a, b;
	char err[512] = "", ent[1024] = "";
	CHECK(nnd_data_load_idx(tmp("c.gz"), NULL, false, &a, err, sizeof err) == 0);
	CHECK(a.maplen[0] == 0);   /* decoded, then stored */
	CHECK(cache_entry(cdir, ent, sizeof ent));
	CHECK(nnd_data_load_idx(tmp("c.gz"), NULL, false, &b, err, sizeof err) == 0);
	CHECK(b.maplen[0] > 0);    /* mapped from the cache */
	CHECK(a.n == b.n && !memcmp(a.buf[0], b.buf[0], N) && !memcmp(b.buf[0], img + hn, N));
	nnd_data_free(&b);
	/* a damaged entry: not used, decoded again, replaced */
	FILE *f = fopen(ent, "r+b");
	CHECK(f && fseek(f, 4096 + 5000, SEEK_SET) == 0 && fputc(0x5a ^ img[hn + 5000 - 16], f) != EOF);
	if (f)
		fclose(f);
	CHECK(nnd_data_load_idx(tmp("c.gz"), NULL, false, &b, err, sizeof err) == 0);
	CHECK(b.maplen[0] == 0 && !memcmp(b.buf[0], img + hn, N));
	nnd_data_free(&b);
	CHECK(nnd_data_load_idx(tmp("c.gz"), NULL, false, &b, err, sizeof err) == 0);
	CHECK(b.maplen[0] > 0 && !memcmp(b.buf[0], img + hn, N));
	nnd_data_free(&b);
	/* an entry cut short: not used */
	CHECK(truncate(ent, 4096 + N / 2) == 0);
	CHECK(nnd_data_load_idx(tmp("c.gz"), NULL, false, &b, err, sizeof err) == 0);
	CHECK(b.maplen[0] == 0 && !memcmp(b.buf[0], img + hn, N));
	nnd_data_free(&b);
	/* the entry shrinks while a run uses it: exit 1 with a message */
	CHECK(nnd_data_load_idx(tmp("c.gz"), NULL, false, &b, err, sizeof err) == 0 && b.maplen[0] > 0);
	/* in a fresh process whose only load is that cache hit (the handler
	 * must not depend on an earlier decode having installed it) */
	fflush(NULL);
	pid_t pid = fork();
	if (pid == 0) {
		if (!freopen(tmp("child.err"), "w", stderr))
			_exit(3);
		execl("/proc/self/exe", "test_data", "--touch-shrunk-entry", tmp("c.gz"), ent, (char *)NULL);
		_exit(3);
	}
	int st = 0;
	CHECK(pid > 0 && waitpid(pid, &st, 0) == pid);
	if (!(WIFEXITED(st) && WEXITSTATUS(st) == 1))
		fprintf(stderr, "child status 0x%x\n", st);
	CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 1);
	char msg[600] = "";
	f = fopen(tmp("child.err"), "r");
	if (f) {
		size_t k = fread(msg, 1, sizeof msg - 1, f);
		msg[k] = 0;
		fclose(f);
	}
	CHECK(strstr(msg, "shrank while in use") && strstr(msg, "c.gz"));
	nnd_data_free(&b);
	nnd_data_free(&a);
	/* off: nothing written */
	unlink(ent);
	setenv("NND_CACHE_DIR", "off", 1);
	CHECK(nnd_data_load_idx(tmp("c.gz"), tmp("cl.gz"), false, &a, err, sizeof err) == 0 && a.maplen[0] == 0);
	nnd_data_free(&a);
	CHECK(!cache_entry(cdir, ent, sizeof ent));
}

static void cleanup(void)
{
	char cmd[600];
	snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
	if (system(cmd) != 0)
		fprintf(stderr, "warning: could not remove %s\n", dir);
}

/* the child of test_cache: load FILE (a cache hit), shrink the entry
 * under the mapping, read the data's last byte; the runtime ends the
 * process with exit 1 and a message */
static int touch_shrunk_entry(const char *file, const char *entry)
{
	nnd_data d;
	char err[512] = "";
	if (nnd_data_load_idx(file, NULL, false, &d, err, sizeof err) != 0 || d.maplen[0] == 0)
		return 4;   /* not a cache hit */
	if (truncate(entry, 4096) != 0)
		return 3;
	volatile uint8_t x = d.buf[0][d.n * d.row_bytes[0] - 1];
	(void)x;
	return 0;
}

int main(int argc, char **argv)
{
	if (argc == 4 && !strcmp(argv[1], "--touch-shrunk-entry"))
		return touch_shrunk_entry(argv[2], argv[3]);
	const char *t = getenv("TMPDIR");
	snprintf(dir, sizeof dir, "%s/nnd_test_data.XXXXXX", t && *t ? t : "/tmp");
	if (!mkdtemp(dir)) {
		perror("mkdtemp");
		return 2;
	}
	/* the decoded-dataset cache stays out of the other tests' way */
	setenv("NND_CACHE_DIR", "off", 1);
	test_idx();
	test_gzip_whole();
	test_pipes();
	test_gzip_shrinks();
	test_cache();
	test_csv();
	test_csv_names();
	test_labels();
	cleanup();
	if (fails)
		fprintf(stderr, "test_data: %d failure(s)\n", fails);
	else
		printf("data: ok\n");
	return fails ? 1 : 0;
}
