/* data.c - dataset readers: IDX (plain or gzip) and numeric CSV.
 *
 * Both are used by the compiler (probe_only: shapes, sample count and CSV
 * column names) and by the runtime (the whole data set in memory).  Every
 * malformed input gives a precise message naming the file, the offset
 * (IDX) or line and column (CSV) and what was expected; nothing here exits
 * or crashes, and on error all memory is released and *d is left empty.
 * In a gzip file an offset is either a "compressed offset" (a byte of the
 * file: a damaged stream) or a "decoded offset" (a byte of the data it
 * decodes to: a damaged IDX file inside).
 *
 * Files are read sequentially from their first byte, so a pipe, a FIFO or
 * /dev/stdin works as well as a regular file.  A gzip regular file loaded
 * whole is decoded in one call by libdeflate, 2-3 times faster than
 * zlib's inflate (decoding is most of a training program's start-up).
 * libdeflate only says "bad data", so whenever it refuses a file, the file
 * is read again through zlib's inflate, whose messages say what is wrong;
 * header probes and pipes also use zlib, which decodes only the bytes they
 * need. */
#include "rt_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdatomic.h>
#include <libdeflate.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

/* largest data set accepted: 2^40 bytes per field (rejects overflowing or
 * absurd headers before any allocation is attempted) */
#define NND_DATA_MAX_BYTES (1ull << 40)

static void errf(char *err, size_t errlen, const char *fmt, ...)
{
	if (!err || errlen == 0)
		return;
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
}

/* ---------------------------------------------------------------- IDX */

/* A file read either directly, through zlib's inflate (gzip magic 1f 8b),
 * or from memory (a gzip file decoded whole by libdeflate).  The file is
 * read through a buffer of our own, never reopened or rewound (except a
 * regular file that libdeflate refused), so the bytes looked at to detect
 * gzip are not lost on a pipe. */
#define READER_BUF ((size_t)1 << 16)
typedef struct {
	const char *path;
	int fd;                  /* -1 when closed or decoded whole */
	bool gz;                 /* gzip: offsets (off) count decoded bytes */
	uint8_t *in;             /* bytes read from fd: in[pos, len) not consumed yet */
	size_t pos, len;
	uint64_t raw;            /* bytes read from fd so far */
	z_stream z;              /* gzip read through zlib (z_on) */
	bool z_on, z_done;       /* z_done: the last member ended the file */
	uint8_t *mem;            /* the decoded file (owned), or NULL */
	uint64_t mem_len;
	bool mem_mapped;         /* mem is a mapping of the cache (rt_data_unmap) */
	uint64_t off;            /* bytes (decoded) consumed so far */
} reader;

/* "decoded " before an offset of a gzip file's data: such an offset is
 * not a byte of the file itself */
static const char *dec(const reader *r)
{
	return r->gz ? "decoded " : "";
}

/* the file offset of the next byte not consumed (compressed, for gzip) */
static uint64_t raw_pos(const reader *r)
{
	return r->raw - (uint64_t)(r->len - r->pos);
}

/* deflate expands its input at most 1032 times (a 258-byte match per bit
 * pair): a larger output means the sizes are not what they seem */
#define DEFLATE_MAX_RATIO 1032

/* A buffer for tens of megabytes that is filled at once: on 2 MiB
 * boundaries and with a transparent-huge-page hint, the kernel maps it in
 * 2 MiB pages instead of faulting in 4 KiB ones (Fashion-MNIST's 47 MB of
 * images: a tenth of the load time).  Only a hint: where THP is off or
 * madvise fails, it is an ordinary buffer.  free() releases it. */
static void *big_alloc(size_t n)
{
	const size_t huge = (size_t)2 << 20;
	if (n < 2 * huge)
		return malloc(n);
	void *p = NULL;
	size_t len = (n + huge - 1) / huge * huge;
	if (posix_memalign(&p, huge, len) != 0)
		return NULL;
#ifdef MADV_HUGEPAGE
	(void)madvise(p, len, MADV_HUGEPAGE);
#endif
	return p;
}

/* The compressed file is mapped, not read: no copy, and no fresh pages
 * for the kernel to clear (a tenth of the start-up).  A mapped file that
 * shrinks while it is decoded faults with SIGBUS; a handler installed once
 * turns that fault, on a thread that is decoding, into a jump back out of
 * the decoder (which holds no locks and allocates nothing), so the file is
 * then read through zlib and gets the usual message.  On any other thread
 * the handler puts the previous action back and returns: the fault
 * repeats under that action, as if nnd had installed nothing.  The jump
 * restores the signal mask (sigsetjmp(env, 1)): a SIGBUS left blocked
 * would make the next one fatal. */
static _Thread_local sigjmp_buf *bus_env;
static struct sigaction bus_prev;
static bool bus_ok;
static pthread_once_t bus_once = PTHREAD_ONCE_INIT;

/* decoded datasets mapped from the cache for the whole run (below): a
 * fault inside one means its file shrank under us, which ends the run
 * with a message naming it instead of a crash */
enum { MAX_CACHED_MAPS = 16 };
static struct { uint8_t *_Atomic base; size_t len; char msg[512]; size_t msglen; } cached_maps[MAX_CACHED_MAPS];
static pthread_mutex_t cached_mu = PTHREAD_MUTEX_INITIALIZER;

static void on_sigbus(int sig, siginfo_t *si, void *uc)
{
	(void)sig; (void)uc;
	if (bus_env)
		siglongjmp(*bus_env, 1);
	uint8_t *a = si ? (uint8_t *)si->si_addr : NULL;
	for (int i = 0; a && i < MAX_CACHED_MAPS; i++) {
		uint8_t *b = atomic_load(&cached_maps[i].base);
		if (b && a >= b && a < b + cached_maps[i].len) {
			ssize_t w = write(2, cached_maps[i].msg, cached_maps[i].msglen);
			(void)w;
			_exit(1);
		}
	}
	sigaction(SIGBUS, &bus_prev, NULL);
}

static void bus_install(void)
{
	struct sigaction sa;
	memset(&sa, 0, sizeof sa);
	sa.sa_sigaction = on_sigbus;
	sa.sa_flags = SA_SIGINFO;
	sigemptyset(&sa.sa_mask);
	bus_ok = sigaction(SIGBUS, &sa, &bus_prev) == 0;
}

/* the decoder's state, in memory that a jump out of it leaves exact; the
 * caller joins the prefault thread (below) whichever way decoding ends */
typedef struct prefault { uint8_t *p; size_t n; } prefault;
typedef struct gz_state {
	uint8_t *volatile out;
	volatile uint64_t cap, out_len;
	volatile int members;
	prefault pf;
	pthread_t pft;
	volatile bool pf_on;
} gz_state;

/* A helper thread maps the output buffer's pages in while the decoder
 * fills it: on this kind of machine the kernel's clearing of fresh pages
 * costs about as much as the decoding, and the two then overlap on two
 * cores instead of adding up.  Touching a page that the decoder has
 * already written is harmless: the helper only asks the kernel to map
 * (MADV_POPULATE_WRITE), it never writes data. */
static bool gz_decode_loop(struct libdeflate_decompressor *dec, const uint8_t *in, size_t in_len, gz_state *st,
                           uint64_t limit);

static void *prefault_run(void *arg)
{
	prefault *f = arg;
	const size_t step = (size_t)2 << 20;
	for (size_t o = 0; o < f->n; o += step)
		if (madvise(f->p + o, f->n - o < step ? f->n - o : step, MADV_POPULATE_WRITE) != 0)
			break;   /* an old kernel: the decoder faults them in itself */
	return NULL;
}

/* Decodes every member of in[0, in_len) into st->out (grown as needed);
 * false for anything libdeflate refuses. */
static bool gz_members(struct libdeflate_decompressor *dec, const uint8_t *in, size_t in_len, gz_state *st)
{
	/* ISIZE, the trailer's size of the last member mod 2^32, is the whole
	 * size for the usual one-member file; more members, a size of 4 GiB or
	 * more, or a trailer that lies, grow the buffer below */
	const uint64_t limit = (uint64_t)in_len * DEFLATE_MAX_RATIO;
	uint64_t cap = (uint64_t)in[in_len - 4] | (uint64_t)in[in_len - 3] << 8 |
	               (uint64_t)in[in_len - 2] << 16 | (uint64_t)in[in_len - 1] << 24;
	if (cap > limit)
		cap = limit;
	if (cap == 0)
		cap = 1;
	st->out = big_alloc((size_t)cap);
	if (!st->out)
		return false;
	st->cap = cap;
	st->pf.p = st->out;
	st->pf.n = (size_t)cap;
	st->pf_on = cap >= ((uint64_t)8 << 20) && pthread_create(&st->pft, NULL, prefault_run, &st->pf) == 0;
	return gz_decode_loop(dec, in, in_len, st, limit);
}

static bool gz_decode_loop(struct libdeflate_decompressor *dec, const uint8_t *in, size_t in_len, gz_state *st,
                           uint64_t limit)
{
	size_t in_pos = 0;
	for (;;) {
		/* zlib checks a header CRC (FHCRC), libdeflate skips it: leave
		 * such a (rare) member to zlib so that both accept the same files
		 * (a member shorter than a gzip header and trailer is an error
		 * zlib describes) */
		if (in_len - in_pos < 18 || (in[in_pos + 3] & 0x02))
			return false;
		size_t used_in = 0, used_out = 0;
		enum libdeflate_result res = libdeflate_gzip_decompress_ex(dec, in + in_pos, in_len - in_pos,
		                                                          st->out + st->out_len,
		                                                          (size_t)(st->cap - st->out_len),
		                                                          &used_in, &used_out);
		if (res == LIBDEFLATE_INSUFFICIENT_SPACE) {
			/* the member is decoded again from its start into the
			 * larger buffer: doubling keeps the total work linear */
			if (st->cap >= limit)
				return false;
			uint64_t ncap = st->cap * 2 > in_len * 4 ? st->cap * 2 : (uint64_t)in_len * 4;
			if (ncap > limit)
				ncap = limit;
			uint8_t *nout = realloc(st->out, (size_t)ncap);
			if (!nout)
				return false;
			st->out = nout;
			st->cap = ncap;
			continue;
		}
		if (res != LIBDEFLATE_SUCCESS)
			return false;
		in_pos += used_in;
		st->out_len += used_out;
		st->members++;
		if (in_pos == in_len)
			return true;
		/* bytes after a member that do not start another one are an
		 * error, which zlib's reading of the file reports with its
		 * offset */
		if (in_len - in_pos < 2 || in[in_pos] != 0x1f || in[in_pos + 1] != 0x8b)
			return false;
	}
}

/* ---- decoded-dataset cache ----
 * Decoding Fashion-MNIST's training images (and the kernel clearing the
 * fresh pages they land in) is most of a training program's start-up.
 * A gzip file of one member is therefore kept decoded in nnd's cache
 * directory (rt_cache_dir; NND_CACHE_DIR=off disables it) and later runs
 * map that copy: the page cache's pages, no decoding, no copying.
 *
 * The cache can never change a byte of the data: an entry is named by the
 * source's identity (path, device, inode, size, modification and change
 * times), and before it is used its bytes are checked against the source
 * itself -- their CRC-32 and length must equal the gzip trailer's (which
 * gzip computed from the original data).  An entry that fails is removed
 * and the file decoded again.  Entries are written to a temporary file
 * and renamed, so a reader sees a whole entry or none; any cache failure
 * just means decoding.  Layout: a 4096-byte text header ("nnd-gunzip 1",
 * the length, the CRC), then the bytes. */
#define CACHE_HDR 4096

static bool cache_path(const char *path, const struct stat *sb, char *out, size_t n)
{
	char dir[4096], real[4096], id[4600];
	if (!rt_cache_dir(dir, sizeof dir) || !realpath(path, real))
		return false;
	snprintf(id, sizeof id, "%s|%llu|%llu|%lld|%lld.%09ld|%lld.%09ld", real, (unsigned long long)sb->st_dev,
	         (unsigned long long)sb->st_ino, (long long)sb->st_size, (long long)sb->st_mtim.tv_sec,
	         sb->st_mtim.tv_nsec, (long long)sb->st_ctim.tv_sec, sb->st_ctim.tv_nsec);
	uint8_t dig[32];
	char hex[65];
	nnd_sha256(id, strlen(id), dig);
	nnd_sha256_hex(dig, hex);
	hex[32] = 0;
	return snprintf(out, n, "%s/gunzip-%s.bin", dir, hex) < (int)n;
}

/* the gzip trailer of the (one-member) source: CRC-32 and length mod 2^32 */
static bool gz_trailer(int fd, off_t size, uint32_t *crc, uint32_t *isize)
{
	uint8_t t[8];
	if (size < 18 || pread(fd, t, 8, size - 8) != 8)
		return false;
	*crc = (uint32_t)t[0] | (uint32_t)t[1] << 8 | (uint32_t)t[2] << 16 | (uint32_t)t[3] << 24;
	*isize = (uint32_t)t[4] | (uint32_t)t[5] << 8 | (uint32_t)t[6] << 16 | (uint32_t)t[7] << 24;
	return true;
}

static void cached_register(uint8_t *base, size_t len, const char *cpath, const char *src)
{
	pthread_mutex_lock(&cached_mu);
	for (int i = 0; i < MAX_CACHED_MAPS; i++)
		if (!atomic_load(&cached_maps[i].base)) {
			int k = snprintf(cached_maps[i].msg, sizeof cached_maps[i].msg,
			                 "%s: error: %s: its decoded copy %s shrank while in use; run again, or with "
			                 "NND_CACHE_DIR=off\n", rt_progname(), src, cpath);
			cached_maps[i].msglen = k < 0 ? 0 : (size_t)k < sizeof cached_maps[i].msg ? (size_t)k
			                                                                     : sizeof cached_maps[i].msg - 1;
			cached_maps[i].len = len;
			atomic_store(&cached_maps[i].base, base);
			break;
		}
	pthread_mutex_unlock(&cached_mu);
}

/* Unmaps a decoded dataset mapped from the cache. */
void rt_data_unmap(uint8_t *base, size_t len)
{
	pthread_mutex_lock(&cached_mu);
	for (int i = 0; i < MAX_CACHED_MAPS; i++)
		if (atomic_load(&cached_maps[i].base) == base)
			atomic_store(&cached_maps[i].base, NULL);
	pthread_mutex_unlock(&cached_mu);
	munmap(base, len);
}

/* The cached decoded copy of the gzip file open as fd, mapped; NULL when
 * there is none that checks against the source. */
static uint8_t *cache_load(int fd, const char *path, uint64_t *len)
{
	struct stat sb, cs;
	char cpath[4700], hdr[128];
	uint32_t crc, isize;
	if (fstat(fd, &sb) != 0 || !S_ISREG(sb.st_mode) || !cache_path(path, &sb, cpath, sizeof cpath) ||
	    !gz_trailer(fd, sb.st_size, &crc, &isize))
		return NULL;
	int cfd = open(cpath, O_RDONLY | O_CLOEXEC);
	if (cfd < 0)
		return NULL;
	unsigned long long n = 0;
	unsigned c = 0;
	ssize_t got = pread(cfd, hdr, sizeof hdr - 1, 0);
	hdr[got > 0 ? got : 0] = 0;
	if (fstat(cfd, &cs) != 0 || sscanf(hdr, "nnd-gunzip 1 len %llu crc %x", &n, &c) != 2 || n == 0 ||
	    (uint64_t)cs.st_size != CACHE_HDR + n || (uint32_t)n != isize || c != crc) {
		close(cfd);
		return NULL;
	}
	uint8_t *m = mmap(NULL, (size_t)n, PROT_READ, MAP_PRIVATE | MAP_POPULATE, cfd, CACHE_HDR);
	close(cfd);
	if (m == MAP_FAILED)
		return NULL;
	/* the bytes themselves against the source's trailer (a fault: the
	 * entry shrank meanwhile, treated as a mismatch) */
	sigjmp_buf env;
	volatile uint32_t sum = ~crc;
	if (sigsetjmp(env, 1) == 0) {
		bus_env = &env;
		sum = libdeflate_crc32(0, m, (size_t)n);
	}
	bus_env = NULL;
	if (sum != crc) {
		munmap(m, (size_t)n);
		unlink(cpath);
		return NULL;
	}
	cached_register(m, (size_t)n, cpath, path);
	*len = n;
	return m;
}

/* Writes the decoded bytes of a one-member gzip file to the cache
 * (temporary file, then rename); silently nothing on any failure. */
static void cache_store(int src, const char *path, const uint8_t *data, uint64_t len)
{
	struct stat sb;
	char cpath[4700], tpath[4800], hdr[CACHE_HDR];
	if (fstat(src, &sb) != 0 || !S_ISREG(sb.st_mode) || !cache_path(path, &sb, cpath, sizeof cpath))
		return;
	snprintf(tpath, sizeof tpath, "%s.%ld.tmp", cpath, (long)getpid());
	int fd = open(tpath, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
	if (fd < 0)
		return;
	memset(hdr, '\n', sizeof hdr);
	int k = snprintf(hdr, sizeof hdr, "nnd-gunzip 1 len %llu crc %08x\nsource %s\n", (unsigned long long)len,
	                 (unsigned)libdeflate_crc32(0, data, (size_t)len), path);
	if (k > 0 && k < (int)sizeof hdr)
		hdr[k] = '\n';
	bool ok = write(fd, hdr, sizeof hdr) == (ssize_t)sizeof hdr;
	for (uint64_t done = 0; ok && done < len;) {
		ssize_t w = write(fd, data + done, (size_t)(len - done > (1u << 30) ? (1u << 30) : len - done));
		if (w <= 0 && errno != EINTR)
			ok = false;
		else if (w > 0)
			done += (uint64_t)w;
	}
	ok = close(fd) == 0 && ok;
	if (!ok || rename(tpath, cpath) != 0)
		unlink(tpath);
}

/* Decodes the gzip file open as fd (all its members) into a
 * fresh buffer.  Returns it with its length, or NULL for any failure: the
 * caller then reads the file through zlib, which gives the precise error
 * (or, where zlib accepts what libdeflate refused, the data). */
static uint8_t *gz_decode_whole(int fd, const char *path, uint64_t *len, bool *mapped)
{
	*mapped = false;
	/* before the cache: a mapped entry relies on the handler for the
	 * whole run, the decoder below for its jump */
	if (pthread_once(&bus_once, bus_install) != 0 || !bus_ok)
		return NULL;
	uint8_t *hit = cache_load(fd, path, len);
	if (hit) {
		*mapped = true;
		return hit;
	}
	struct stat sb;
	if (fstat(fd, &sb) != 0 || !S_ISREG(sb.st_mode) || sb.st_size < 18)
		return NULL;
	size_t in_len = (size_t)sb.st_size;
	uint8_t *in = mmap(NULL, in_len, PROT_READ, MAP_PRIVATE | MAP_POPULATE, fd, 0);
	if (in == MAP_FAILED)
		return NULL;
	/* test hook: the file shrinks under the mapping (tests/runtime_core) */
	const char *shrink = getenv("NND_TEST_SHRINK_MAPPED");
	if (shrink && *shrink && truncate(path, 64) != 0)
		fprintf(stderr, "NND_TEST_SHRINK_MAPPED: cannot truncate %s\n", path);
	struct libdeflate_decompressor *dec = libdeflate_alloc_decompressor();
	gz_state st;
	memset(&st, 0, sizeof st);
	sigjmp_buf env;
	volatile bool ok = false;
	if (dec && sigsetjmp(env, 1) == 0) {
		bus_env = &env;
		ok = gz_members(dec, in, in_len, &st);
	}
	bus_env = NULL;
	if (st.pf_on)
		pthread_join(st.pft, NULL);
	libdeflate_free_decompressor(dec);
	munmap(in, in_len);
	uint8_t *out = st.out;
	if (!ok) {
		free(out);
		return NULL;
	}
	if (st.out_len + 4096 < st.cap) {
		/* a trailer that claimed too much: return the unused memory */
		uint8_t *nout = realloc(out, (size_t)(st.out_len ? st.out_len : 1));
		if (nout)
			out = nout;
	}
	*len = st.out_len;
	if (st.members == 1)
		cache_store(fd, path, out, st.out_len);
	return out;
}

bool rt_cache_dir(char *buf, size_t n)
{
	const char *e = getenv("NND_CACHE_DIR"), *x = getenv("XDG_CACHE_HOME"), *h = getenv("HOME");
	if (e && !strcmp(e, "off"))
		return false;
	if (e && *e)
		snprintf(buf, n, "%s", e);
	else if (x && *x)
		snprintf(buf, n, "%s/nnd", x);
	else if (h && *h)
		snprintf(buf, n, "%s/.cache/nnd", h);
	else
		return false;
	/* mkdir -p */
	char tmp[4096];
	snprintf(tmp, sizeof tmp, "%s", buf);
	for (char *p = tmp + 1; *p; p++)
		if (*p == '/') {
			*p = 0;
			mkdir(tmp, 0755);
			*p = '/';
		}
	mkdir(tmp, 0755);
	struct stat st;
	return stat(buf, &st) == 0 && S_ISDIR(st.st_mode);
}

int rt_data_threads_init(char *err, size_t errlen)
{
	/* an empty gzip member: decoding it makes libdeflate pick its decoder
	 * and CRC-32 code (which it does on first use, unsynchronised) here,
	 * on one thread */
	static const uint8_t empty[20] = { 0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 3, 3, 0 };
	uint8_t out[1];
	size_t n = 0;
	struct libdeflate_decompressor *dec = libdeflate_alloc_decompressor();
	if (!dec) {
		errf(err, errlen, "libdeflate: cannot allocate a decompressor (out of memory)");
		return -1;
	}
	enum libdeflate_result res = libdeflate_gzip_decompress(dec, empty, sizeof empty, out, sizeof out, &n);
	libdeflate_free_decompressor(dec);
	if (res != LIBDEFLATE_SUCCESS || n != 0) {
		errf(err, errlen, "libdeflate: an empty gzip member decodes to %zu bytes (result %d)", n, (int)res);
		return -1;
	}
	return 0;
}

/* Reads from fd until in[pos, len) holds at least want bytes or the file
 * ends (filling the buffer as far as it goes). */
static int fill(reader *r, size_t want, char *err, size_t errlen)
{
	if (r->len - r->pos >= want)
		return 0;
	memmove(r->in, r->in + r->pos, r->len - r->pos);
	r->len -= r->pos;
	r->pos = 0;
	while (r->len < want) {
		ssize_t k = read(r->fd, r->in + r->len, READER_BUF - r->len);
		if (k < 0 && errno == EINTR)
			continue;
		if (k < 0) {
			errf(err, errlen, "%s: %soffset %llu: read error: %s", r->path, r->gz ? "compressed " : "",
			     (unsigned long long)r->raw, strerror(errno));
			return -1;
		}
		if (k == 0)
			break;
		r->len += (size_t)k;
		r->raw += (uint64_t)k;
	}
	return 0;
}

static void reader_close(reader *r)
{
	if (r->fd >= 0)
		close(r->fd);
	if (r->z_on)
		inflateEnd(&r->z);
	free(r->in);
	if (r->mem_mapped)
		rt_data_unmap(r->mem, (size_t)r->mem_len);
	else
		free(r->mem);
	r->fd = -1;
	r->z_on = false;
	r->in = NULL;
	r->mem = NULL;
}

/* whole: the caller wants the whole file (decoded at once when gzip) */
static int reader_open(reader *r, const char *path, bool whole, char *err, size_t errlen)
{
	memset(r, 0, sizeof *r);
	r->path = path;
	r->fd = open(path, O_RDONLY | O_CLOEXEC);
	if (r->fd < 0) {
		errf(err, errlen, "cannot open %s: %s", path, strerror(errno));
		return -1;
	}
	r->in = malloc(READER_BUF);
	if (!r->in) {
		errf(err, errlen, "%s: out of memory", path);
		goto fail;
	}
	if (fill(r, 2, err, errlen) < 0)
		goto fail;
	if (r->len < 2 || r->in[0] != 0x1f || r->in[1] != 0x8b)
		return 0;   /* plain: the bytes looked at are read first */
	r->gz = true;
	struct stat sb;
	if (whole && fstat(r->fd, &sb) == 0 && S_ISREG(sb.st_mode)) {
		r->mem = gz_decode_whole(r->fd, path, &r->mem_len, &r->mem_mapped);
		if (r->mem) {
			close(r->fd);
			r->fd = -1;
			return 0;
		}
		/* refused: zlib reads it again from the start, for its message */
		if (lseek(r->fd, 0, SEEK_SET) != 0) {
			errf(err, errlen, "%s: cannot read it again from its start: %s", path, strerror(errno));
			goto fail;
		}
		r->pos = r->len = 0;
		r->raw = 0;
	}
	/* gzip only (15 + 16): the magic was seen */
	if (inflateInit2(&r->z, 15 + 16) != Z_OK) {
		errf(err, errlen, "%s: zlib cannot start decoding (out of memory)", path);
		goto fail;
	}
	r->z_on = true;
	return 0;

fail:
	reader_close(r);
	return -1;
}

/* After a gzip member: the end of the file, or the next member (zlib
 * starts over); anything else is an error at its compressed offset. */
static int gz_next_member(reader *r, char *err, size_t errlen)
{
	if (fill(r, 4, err, errlen) < 0)
		return -1;
	size_t have = r->len - r->pos;
	if (have == 0) {
		r->z_done = true;
		return 0;
	}
	const uint8_t *b = r->in + r->pos;
	if (have >= 2 && b[0] == 0x1f && b[1] == 0x8b) {
		inflateReset(&r->z);
		return 0;
	}
	char shown[16] = "";
	for (size_t i = 0, o = 0; i < have && i < 4; i++)
		o += (size_t)snprintf(shown + o, sizeof shown - o, i ? " %02x" : "%02x", b[i]);
	errf(err, errlen, "%s: compressed offset %llu: expected the end of the file or another gzip member "
	     "after the gzip data, found bytes %s%s (trailing garbage)", r->path, (unsigned long long)raw_pos(r),
	     shown, have > 4 ? " ..." : "");
	return -1;
}

/* what zlib's message for a failed check of a member's trailer means:
 * the offset is where the check failed, not where the damage is */
static const char *gz_hint(const char *msg)
{
	if (!strcmp(msg, "incorrect data check"))
		return " (the decoded bytes do not match the CRC-32 in the gzip member's trailer: the damage may "
		       "lie anywhere in the member)";
	if (!strcmp(msg, "incorrect length check"))
		return " (the decoded size does not match the gzip member's trailer)";
	return "";
}

/* Up to n decoded bytes through zlib; a damaged stream is an error at
 * the compressed offset where zlib found it. */
static int64_t gz_read(reader *r, unsigned char *p, uint64_t n, char *err, size_t errlen)
{
	uint64_t done = 0;
	while (done < n && !r->z_done) {
		if (r->pos == r->len) {
			if (fill(r, 1, err, errlen) < 0)
				return -1;
			if (r->pos == r->len) {
				errf(err, errlen, "%s: compressed offset %llu: corrupt gzip data: unexpected end of file "
				     "(the gzip stream is cut short)", r->path, (unsigned long long)r->raw);
				return -1;
			}
		}
		uInt chunk = n - done > (1u << 30) ? 1u << 30 : (uInt)(n - done);
		r->z.next_in = r->in + r->pos;
		r->z.avail_in = (uInt)(r->len - r->pos);
		r->z.next_out = p + done;
		r->z.avail_out = chunk;
		int rc = inflate(&r->z, Z_NO_FLUSH);
		done += chunk - r->z.avail_out;
		r->pos = r->len - r->z.avail_in;
		if (rc == Z_STREAM_END) {
			if (gz_next_member(r, err, errlen) < 0)
				return -1;
		} else if (rc != Z_OK && rc != Z_BUF_ERROR) {
			/* Z_BUF_ERROR: no progress on this call, more input is read
			 * above; anything else is the data's fault (or memory's) */
			const char *msg = rc == Z_MEM_ERROR ? "out of memory" : r->z.msg ? r->z.msg : zError(rc);
			errf(err, errlen, "%s: compressed offset %llu: corrupt gzip data: %s%s", r->path,
			     (unsigned long long)raw_pos(r), msg, gz_hint(msg));
			return -1;
		}
	}
	return (int64_t)done;
}

/* Reads up to n bytes; returns the count read (less at the end of the
 * file), or -1 with err set for an I/O or decompression error. */
static int64_t reader_read(reader *r, void *buf, uint64_t n, char *err, size_t errlen)
{
	uint64_t done = 0;
	unsigned char *p = buf;
	if (r->mem) {
		done = n < r->mem_len - r->off ? n : r->mem_len - r->off;
		memcpy(p, r->mem + r->off, (size_t)done);
	} else if (r->z_on) {
		int64_t k = gz_read(r, p, n, err, errlen);
		if (k < 0)
			return -1;
		done = (uint64_t)k;
	} else {
		while (done < n) {
			size_t have = r->len - r->pos;
			if (have > 0) {
				size_t k = n - done < have ? (size_t)(n - done) : have;
				memcpy(p + done, r->in + r->pos, k);
				r->pos += k;
				done += k;
			} else if (n - done >= READER_BUF) {
				/* a payload: straight into its buffer */
				size_t chunk = n - done > (1u << 30) ? (size_t)1 << 30 : (size_t)(n - done);
				ssize_t k = read(r->fd, p + done, chunk);
				if (k < 0 && errno == EINTR)
					continue;
				if (k < 0) {
					errf(err, errlen, "%s: offset %llu: read error: %s", r->path,
					     (unsigned long long)r->raw, strerror(errno));
					return -1;
				}
				if (k == 0)
					break;
				r->raw += (uint64_t)k;
				done += (uint64_t)k;
			} else {
				if (fill(r, 1, err, errlen) < 0)
					return -1;
				if (r->pos == r->len)
					break;
			}
		}
	}
	r->off += done;
	return (int64_t)done;
}

/* true when the file has no more bytes (a trailing byte is an error);
 * for gzip this decodes to the end of the stream, so that its check
 * values and what follows it are looked at */
static int reader_at_end(reader *r, char *err, size_t errlen, int *at_end)
{
	if (r->mem) {
		*at_end = r->off >= r->mem_len;
		return 0;
	}
	if (!r->z_on) {
		if (fill(r, 1, err, errlen) < 0)
			return -1;
		*at_end = r->pos == r->len;
		return 0;
	}
	unsigned char c;
	uint64_t off = r->off;
	int64_t k = reader_read(r, &c, 1, err, errlen);
	if (k < 0)
		return -1;
	r->off = off;
	*at_end = k == 0;
	return 0;
}

static uint32_t be32(const unsigned char *b)
{
	return ((uint32_t)b[0] << 24) | ((uint32_t)b[1] << 16) | ((uint32_t)b[2] << 8) | b[3];
}

/* Reads an IDX header.  want_labels: exactly 1 dimension, else >= 2 (at
 * most 5: a row has rank <= 4).  dims[0] = N. */
static int idx_header(reader *r, int want_labels, int *ndims, int64_t dims[5],
                      char *err, size_t errlen)
{
	const uint32_t expect_magic = want_labels ? 0x00000801u : 0x00000803u;
	unsigned char h[4];
	int64_t k = reader_read(r, h, 4, err, errlen);
	if (k < 0)
		return -1;
	if (k < 4) {
		errf(err, errlen, "%s: %soffset 0: expected IDX magic 0x%08X, found %lld byte%s (file too short)",
		     r->path, dec(r), expect_magic, (long long)k, k == 1 ? "" : "s");
		return -1;
	}
	uint32_t magic = be32(h);
	if (h[0] != 0 || h[1] != 0 || h[2] != 0x08) {
		if (h[0] == 0 && h[1] == 0 && h[2] != 0x08)
			errf(err, errlen, "%s: %soffset 2: expected IDX magic 0x%08X (type 0x08, unsigned bytes), "
			     "found 0x%08X (type 0x%02X)", r->path, dec(r), expect_magic, magic, h[2]);
		else
			errf(err, errlen, "%s: %soffset 0: expected IDX magic 0x%08X, found 0x%08X",
			     r->path, dec(r), expect_magic, magic);
		return -1;
	}
	int nd = h[3];
	if (want_labels && nd != 1) {
		errf(err, errlen, "%s: %soffset 3: expected IDX magic 0x%08X (labels: 1 dimension), "
		     "found 0x%08X (%d dimensions)", r->path, dec(r), expect_magic, magic, nd);
		return -1;
	}
	if (!want_labels && (nd < 2 || nd > 5)) {
		errf(err, errlen, "%s: %soffset 3: expected IDX magic 0x%08X (images: 2 to 5 dimensions), "
		     "found 0x%08X (%d dimension%s)", r->path, dec(r), expect_magic, magic, nd, nd == 1 ? "" : "s");
		return -1;
	}
	unsigned char db[20];
	k = reader_read(r, db, (uint64_t)4 * nd, err, errlen);
	if (k < 0)
		return -1;
	if (k < 4 * nd) {
		errf(err, errlen, "%s: %soffset 4: expected %d bytes of dimensions, found %lld",
		     r->path, dec(r), 4 * nd, (long long)k);
		return -1;
	}
	for (int i = 0; i < nd; i++) {
		dims[i] = be32(db + 4 * i);
		if (dims[i] == 0) {
			errf(err, errlen, "%s: %soffset %d: expected dimension %d to be at least 1, found 0",
			     r->path, dec(r), 4 + 4 * i, i);
			return -1;
		}
	}
	*ndims = nd;
	return 0;
}

/* Reads exactly n bytes of payload; truncation and trailing bytes are
 * errors.  *out: a fresh buffer, or, for a file decoded whole, the payload
 * where it lies in the decoded bytes, whose allocation moves to *alloc
 * (so that 47 MB are not copied after the header).  what: "image" or
 * "label". */
static int idx_payload(reader *r, uint64_t n, const char *what, uint8_t **out, uint8_t **alloc,
                       size_t *maplen, char *err, size_t errlen)
{
	uint64_t start = r->off;
	uint8_t *buf;
	int64_t k;
	if (r->mem) {
		buf = r->mem + start;
		k = (int64_t)(n < r->mem_len - start ? n : r->mem_len - start);
		r->off += (uint64_t)k;
	} else {
		buf = malloc(n ? (size_t)n : 1);
		if (!buf) {
			errf(err, errlen, "%s: %soffset %llu: cannot allocate %llu bytes of %s data", r->path, dec(r),
			     (unsigned long long)start, (unsigned long long)n, what);
			return -1;
		}
		k = reader_read(r, buf, n, err, errlen);
		if (k < 0)
			goto fail;
	}
	if ((uint64_t)k < n) {
		errf(err, errlen, "%s: %soffset %llu: expected %llu bytes of %s data, found %lld", r->path, dec(r),
		     (unsigned long long)start, (unsigned long long)n, what, (long long)k);
		goto fail;
	}
	int at_end;
	if (reader_at_end(r, err, errlen, &at_end) < 0)
		goto fail;
	if (!at_end) {
		errf(err, errlen, "%s: %soffset %llu: expected end of file after %llu bytes of %s data, "
		     "found more bytes", r->path, dec(r), (unsigned long long)r->off, (unsigned long long)n, what);
		goto fail;
	}
	*out = buf;
	*alloc = NULL;
	if (r->mem) {
		*alloc = r->mem;
		*maplen = r->mem_mapped ? (size_t)r->mem_len : 0;
		r->mem = NULL;
	}
	return 0;

fail:
	if (!r->mem)
		free(buf);
	return -1;
}

int nnd_data_load_idx(const char *images, const char *labels, bool probe_only,
                      nnd_data *d, char *err, size_t errlen)
{
	memset(d, 0, sizeof *d);
	reader ri, rl;
	int ndi = 0, ndl = 0;
	int64_t di[5] = { 0 }, dl[5] = { 0 };

	if (reader_open(&ri, images, !probe_only, err, errlen) < 0)
		return -1;
	if (idx_header(&ri, 0, &ndi, di, err, errlen) < 0)
		goto fail_i;
	/* bytes per row and in all, with overflow checks */
	uint64_t row = 1;
	for (int i = 1; i < ndi; i++) {
		row *= (uint64_t)di[i];              /* each factor < 2^32, checked below */
		if (row > NND_DATA_MAX_BYTES)
			break;
	}
	if (row > NND_DATA_MAX_BYTES || (uint64_t)di[0] > NND_DATA_MAX_BYTES / row) {
		errf(err, errlen, "%s: %soffset 4: expected at most 2^40 bytes of image data, "
		     "found dimensions that need more", images, dec(&ri));
		goto fail_i;
	}
	uint64_t total = row * (uint64_t)di[0];

	d->kind = 0;
	d->n = di[0];
	d->dtype[0] = 2;
	d->dtype[1] = 2;
	d->rank[0] = ndi - 1;
	for (int i = 1; i < ndi; i++)
		d->dims[0][i - 1] = di[i];
	d->row_bytes[0] = (int64_t)row;
	d->rank[1] = 0;
	d->row_bytes[1] = 1;

	if (!probe_only && idx_payload(&ri, total, "image", &d->buf[0], &d->alloc[0], &d->maplen[0], err, errlen) < 0)
		goto fail_i;
	reader_close(&ri);

	if (!labels) {
		/* inference input: no labels file, the labels field is zeros */
		if (!probe_only) {
			d->buf[1] = calloc(d->n ? (size_t)d->n : 1, 1);
			if (!d->buf[1]) {
				errf(err, errlen, "%s: out of memory", images);
				goto fail;
			}
		}
		return 0;
	}

	if (reader_open(&rl, labels, !probe_only, err, errlen) < 0)
		goto fail;
	if (idx_header(&rl, 1, &ndl, dl, err, errlen) < 0)
		goto fail_l;
	if (dl[0] != di[0]) {
		errf(err, errlen, "%s: %soffset 4: expected %lld labels (the number of images in %s), found %lld",
		     labels, dec(&rl), (long long)di[0], images, (long long)dl[0]);
		goto fail_l;
	}
	if (!probe_only && idx_payload(&rl, (uint64_t)dl[0], "label", &d->buf[1], &d->alloc[1], &d->maplen[1], err, errlen) < 0)
		goto fail_l;
	if (!probe_only) {
		d->lab_path = strdup(labels);
		d->lab_gz = rl.gz;
		if (!d->lab_path) {
			errf(err, errlen, "%s: out of memory", labels);
			goto fail_l;
		}
	}
	reader_close(&rl);
	return 0;

fail_l:
	reader_close(&rl);
	goto fail;
fail_i:
	reader_close(&ri);
fail:
	nnd_data_free(d);
	return -1;
}

/* ---------------------------------------------------------------- CSV */

/* strips a trailing "\n" / "\r\n" in place */
static void chomp(char *s)
{
	size_t n = strlen(s);
	while (n > 0 && (s[n - 1] == '\n' || s[n - 1] == '\r'))
		s[--n] = '\0';
}

static int blank(const char *s)
{
	for (; *s; s++)
		if (*s != ' ' && *s != '\t')
			return 0;
	return 1;
}

/* trims spaces/tabs (and one pair of double quotes, for header names) */
/* strtod and strtof read C's hexadecimal forms too ("0x10" is 16): a
 * CSV cell that holds one is a mistake more likely than a number */
static bool hex_number(const char *s)
{
	return strchr(s, 'x') || strchr(s, 'X');
}

static char *trim(char *s, int unquote)
{
	while (*s == ' ' || *s == '\t')
		s++;
	size_t n = strlen(s);
	while (n > 0 && (s[n - 1] == ' ' || s[n - 1] == '\t'))
		s[--n] = '\0';
	if (unquote && n >= 2 && s[0] == '"' && s[n - 1] == '"') {
		s[n - 1] = '\0';
		s++;
	}
	return s;
}

static int count_fields(const char *s)
{
	int n = 1;
	for (; *s; s++)
		n += *s == ',';
	return n;
}

/* splits s at commas in place into at most max fields; returns the number
 * of fields the line has (which may exceed max: then the rest is left) */
static int split(char *s, char **fields, int max)
{
	int n = count_fields(s);
	for (int i = 0; i < max && i < n; i++) {
		char *c = strchr(s, ',');
		fields[i] = s;
		if (!c)
			break;
		*c = '\0';
		s = c + 1;
	}
	return n;
}

static void quote_field(const char *f, char *out, size_t outlen)
{
	size_t n = strlen(f);
	if (n > 40)
		snprintf(out, outlen, "%.40s...", f);
	else
		snprintf(out, outlen, "%s", f);
}

/* a list of names for a message, cut short after about 200 bytes */
static void name_list(char *const *names, int n, char *out, size_t outlen)
{
	size_t o = 0;
	out[0] = '\0';
	for (int i = 0; i < n && o < outlen; i++) {
		if (o > 200) {
			snprintf(out + o, outlen - o, ", ... (%d names)", n);
			return;
		}
		int k = snprintf(out + o, outlen - o, "%s'%s'", i ? ", " : "", names[i]);
		if (k < 0)
			return;
		o += (size_t)k;
	}
}

/* one header column: its name and position */
typedef struct { const char *name; int i; } named;

static int by_name(const void *a, const void *b)
{
	const named *x = a, *y = b;
	int c = strcmp(x->name, y->name);
	return c ? c : (x->i > y->i) - (x->i < y->i);
}

/* Maps the header's columns hdr[0..ncols) to the features named
 * want[0..nwant) (those of the compiled program): feat[c] is the feature
 * that column c holds, -1 for the label column.  A name that appears
 * several times is matched in order: its k-th column is its k-th feature.
 * A wanted name the header lacks, and a column that is neither wanted nor
 * the label, are errors. */
static int match_columns(const char *path, long lineno, char **hdr, int ncols, int label_idx, const char *label_col,
                         char *const *want, int nwant, bool infer, int *feat, char *err, size_t errlen)
{
	int nf = ncols - (label_idx >= 0 ? 1 : 0);
	/* the usual case, in one pass: the same names in the same order */
	bool same = nf == nwant;
	for (int c = 0, k = 0; c < ncols; c++) {
		if (c == label_idx) {
			feat[c] = -1;
			continue;
		}
		same = same && strcmp(hdr[c], want[k]) == 0;
		feat[c] = k++;
	}
	if (same)
		return 0;
	named *h = malloc(sizeof *h * (size_t)(ncols + 1)), *w = malloc(sizeof *w * (size_t)(nwant + 1));
	if (!h || !w) {
		free(h);
		free(w);
		errf(err, errlen, "%s: out of memory", path);
		return -1;
	}
	int nh = 0;
	for (int c = 0; c < ncols; c++) {
		feat[c] = -1;
		if (c != label_idx)
			h[nh++] = (named){ hdr[c], c };
	}
	for (int k = 0; k < nwant; k++)
		w[k] = (named){ want[k], k };
	qsort(h, (size_t)nh, sizeof *h, by_name);
	qsort(w, (size_t)nwant, sizeof *w, by_name);
	/* both sorted by (name, position): equal names pair up in order; the
	 * first feature missing and the first column unknown are reported */
	int missing = INT_MAX, unknown = INT_MAX;
	for (int i = 0, j = 0; i < nh || j < nwant;) {
		int c = i == nh ? 1 : j == nwant ? -1 : strcmp(h[i].name, w[j].name);
		if (c == 0) {
			feat[h[i++].i] = w[j++].i;
		} else if (c < 0) {
			unknown = h[i].i < unknown ? h[i].i : unknown;
			i++;
		} else {
			missing = w[j].i < missing ? w[j].i : missing;
			j++;
		}
	}
	free(h);
	free(w);
	char shown[64], list[300];
	const char *rebuild = infer ? "" : "; rebuild the program for this data";
	if (missing != INT_MAX) {
		quote_field(want[missing], shown, sizeof shown);
		errf(err, errlen, "%s:%ld: expected a column named '%s' (feature %d of %s), found none%s", path,
		     lineno, shown, missing + 1, infer ? "the training data" : "the data the program was compiled for",
		     rebuild);
		return -1;
	}
	if (unknown != INT_MAX) {
		quote_field(hdr[unknown], shown, sizeof shown);
		name_list(want, nwant, list, sizeof list);
		errf(err, errlen, "%s:%ld: column %d: expected one of the feature columns %s (those of %s)%s%s%s, "
		     "found '%s'%s", path, lineno, unknown + 1, list,
		     infer ? "the training data" : "the data the program was compiled for", infer ? " or the label column '" : "",
		     infer ? label_col : "", infer ? "'" : "", shown, rebuild);
		return -1;
	}
	return 0;
}

/* names[0..n) copied into one allocation (one free) */
static char **names_block(char *const *names, int n)
{
	size_t total = sizeof(char *) * (size_t)(n > 0 ? n : 1);
	for (int i = 0; i < n; i++)
		total += strlen(names[i]) + 1;
	char **v = malloc(total);
	if (!v)
		return NULL;
	char *s = (char *)(v + (n > 0 ? n : 1));
	for (int i = 0; i < n; i++) {
		size_t k = strlen(names[i]) + 1;
		memcpy(s, names[i], k);
		v[i] = s;
		s += k;
	}
	return v;
}

/* want (nwant names, or NULL): the feature columns, matched by name;
 * NULL takes every column but the label in file order.  infer (inference
 * input): the label column may be missing; when present it is skipped
 * unread; the labels field is zeros either way; a file without rows is
 * an error. */
static int load_csv(const char *path, const char *label_col, char *const *want, int nwant, bool infer,
                    bool probe_only, nnd_data *d, char *err, size_t errlen)
{
	memset(d, 0, sizeof *d);
	FILE *f = fopen(path, "rb");
	if (!f) {
		errf(err, errlen, "cannot open %s: %s", path, strerror(errno));
		return -1;
	}
	char *line = NULL;
	size_t cap = 0;
	char **fields = NULL, **hdr = NULL;
	int *feat_of = NULL;
	char *header = NULL;
	float *feat = NULL;
	int32_t *lab = NULL;
	size_t rows_cap = 0;
	int64_t nrows = 0, line0 = 0;
	long lineno = 0, hdr_line;
	bool gap = false;            /* a blank line after the first row */
	int ncols = 0, label_idx = -1;

	/* header */
	ssize_t len;
	do {
		len = getline(&line, &cap, f);
		lineno++;
	} while (len >= 0 && (chomp(line), blank(line)));
	if (len < 0) {
		if (ferror(f))
			errf(err, errlen, "%s: read error: %s", path, strerror(errno));
		else
			errf(err, errlen, "%s:%ld: expected a header line of column names, found end of file",
			     path, lineno);
		goto fail;
	}
	hdr_line = lineno;
	ncols = count_fields(line);
	if (ncols > 1000000) {
		errf(err, errlen, "%s:%ld: expected at most 1000000 columns, found %d", path, lineno, ncols);
		goto fail;
	}
	/* the header is kept (its names are matched and recorded); the
	 * rows reuse line */
	header = strdup(line);
	fields = malloc(sizeof *fields * (size_t)ncols);
	hdr = malloc(sizeof *hdr * (size_t)ncols);
	feat_of = malloc(sizeof *feat_of * (size_t)ncols);
	if (!header || !fields || !hdr || !feat_of) {
		errf(err, errlen, "%s: out of memory", path);
		goto fail;
	}
	split(header, hdr, ncols);
	for (int i = 0; i < ncols; i++) {
		hdr[i] = trim(hdr[i], 1);
		if (strcmp(hdr[i], label_col) != 0)
			continue;
		if (label_idx >= 0) {   /* which one holds the labels? */
			errf(err, errlen, "%s:%ld: the label column '%s' appears twice in the header (columns %d and %d)",
			     path, lineno, label_col, label_idx + 1, i + 1);
			goto fail;
		}
		label_idx = i;
	}
	if (label_idx < 0 && !infer) {
		errf(err, errlen, "%s:%ld: expected a column named '%s' in the header, found none",
		     path, lineno, label_col);
		goto fail;
	}
	if (ncols < (label_idx >= 0 ? 2 : 1)) {
		errf(err, errlen, "%s:%ld: expected at least one feature column besides '%s', found none",
		     path, lineno, label_col);
		goto fail;
	}
	int nf = ncols - (label_idx >= 0 ? 1 : 0);
	if (want) {
		if (match_columns(path, lineno, hdr, ncols, label_idx, label_col, want, nwant, infer, feat_of, err,
		                  errlen) < 0)
			goto fail;
		nf = nwant;
	} else {
		for (int c = 0, k = 0; c < ncols; c++) {
			feat_of[c] = c == label_idx ? -1 : k;
			if (c != label_idx)
				hdr[k++] = hdr[c];   /* the feature names, in file order */
		}
	}
	d->names = names_block(want ? want : hdr, nf);
	if (!d->names) {
		errf(err, errlen, "%s: out of memory", path);
		goto fail;
	}

	while ((len = getline(&line, &cap, f)) >= 0) {
		lineno++;
		chomp(line);
		if (blank(line)) {
			gap = nrows > 0;
			continue;
		}
		if (nrows == 0)
			line0 = lineno;
		else if (gap)
			line0 = -1;
		if (probe_only) {
			nrows++;
			continue;
		}
		int n = split(line, fields, ncols);
		if (n != ncols) {
			errf(err, errlen, "%s:%ld: expected %d fields (as in the header), found %d",
			     path, lineno, ncols, n);
			goto fail;
		}
		if ((size_t)nrows == rows_cap) {
			size_t nc = rows_cap ? rows_cap * 2 : 1024;
			if (nc > (size_t)INT64_MAX / sizeof(float) / (size_t)nf) {
				errf(err, errlen, "%s:%ld: too many rows", path, lineno);
				goto fail;
			}
			float *nfeat = realloc(feat, nc * (size_t)nf * sizeof *feat);
			if (!nfeat) {
				errf(err, errlen, "%s:%ld: out of memory", path, lineno);
				goto fail;
			}
			feat = nfeat;
			int32_t *nlab = realloc(lab, nc * sizeof *lab);
			if (!nlab) {
				errf(err, errlen, "%s:%ld: out of memory", path, lineno);
				goto fail;
			}
			lab = nlab;
			rows_cap = nc;
		}
		float *frow = feat + (size_t)nrows * (size_t)nf;
		lab[nrows] = 0;
		for (int c = 0; c < ncols; c++) {
			char *s = trim(fields[c], 0);
			char *end = NULL;
			char shown[64];
			errno = 0;
			if (c == label_idx && infer) {
				/* not read: inference has no labels */
			} else if (c == label_idx) {
				double v = strtod(s, &end);
				if (*s == '\0' || *end != '\0' || hex_number(s)) {
					quote_field(s, shown, sizeof shown);
					errf(err, errlen, "%s:%ld: column %d: expected a number, found '%s'",
					     path, lineno, c + 1, shown);
					goto fail;
				}
				if (!(v >= -2147483648.0 && v <= 2147483647.0) || v != (double)(int64_t)v) {
					quote_field(s, shown, sizeof shown);
					errf(err, errlen, "%s:%ld: column %d: expected an integer label "
					     "(32-bit), found '%s'", path, lineno, c + 1, shown);
					goto fail;
				}
				lab[nrows] = (int32_t)v;
			} else {
				/* features are f32: strtof rounds the decimal once, directly
				 * to binary32 (strtod then a cast would round twice) */
				float v = strtof(s, &end);
				if (*s == '\0' || *end != '\0' || hex_number(s)) {
					quote_field(s, shown, sizeof shown);
					errf(err, errlen, "%s:%ld: column %d: expected a number, found '%s'",
					     path, lineno, c + 1, shown);
					goto fail;
				}
				if (v != v || v - v != 0.0f) {
					quote_field(s, shown, sizeof shown);
					errf(err, errlen, "%s:%ld: column %d: expected a finite number "
					     "(binary32), found '%s'", path, lineno, c + 1, shown);
					goto fail;
				}
				frow[feat_of[c]] = v;
			}
		}
		nrows++;
	}
	if (ferror(f)) {
		errf(err, errlen, "%s:%ld: read error: %s", path, lineno, strerror(errno));
		goto fail;
	}
	if (infer && nrows == 0) {
		/* as an IDX file of no images: there is nothing to infer */
		errf(err, errlen, "%s:%ld: expected a row of data after the header, found the end of the file", path,
		     hdr_line);
		goto fail;
	}

	d->kind = 1;
	d->n = nrows;
	d->dtype[0] = 0;
	d->dtype[1] = 1;
	d->rank[0] = 1;
	d->dims[0][0] = nf;
	d->row_bytes[0] = (int64_t)nf * 4;
	d->rank[1] = 0;
	d->row_bytes[1] = 4;
	if (!probe_only) {
		/* never NULL when loaded, even for zero rows */
		d->buf[0] = feat ? (uint8_t *)feat : malloc(1);
		d->buf[1] = lab ? (uint8_t *)lab : malloc(1);
		feat = NULL;
		lab = NULL;
		if (!infer)
			d->lab_path = strdup(path);
		d->lab_col = label_idx + 1;
		d->lab_line0 = line0;
		if (!d->buf[0] || !d->buf[1] || (!infer && !d->lab_path)) {
			errf(err, errlen, "%s: out of memory", path);
			goto fail;
		}
	}
	free(fields);
	free(hdr);
	free(feat_of);
	free(header);
	free(line);
	fclose(f);
	return 0;

fail:
	free(fields);
	free(hdr);
	free(feat_of);
	free(header);
	free(line);
	free(feat);
	free(lab);
	fclose(f);
	nnd_data_free(d);
	return -1;
}

int nnd_data_load_csv(const char *path, const char *label_col, bool probe_only,
                      nnd_data *d, char *err, size_t errlen)
{
	return load_csv(path, label_col, NULL, 0, false, probe_only, d, err, errlen);
}

int rt_data_load_csv(const char *path, const char *label_col, char *const *names, int nnames, bool infer,
                     nnd_data *d, char *err, size_t errlen)
{
	return load_csv(path, label_col, names, nnames, infer, false, d, err, errlen);
}

int rt_data_load_idx_images(const char *images, nnd_data *d, char *err, size_t errlen)
{
	return nnd_data_load_idx(images, NULL, false, d, err, errlen);
}

/* The line of the CSV file's sample i, counted again (the file has blank
 * lines between its rows); -1 when it cannot be read again (only regular
 * files are: a pipe has been read). */
static long csv_line_of(const char *path, int64_t i)
{
	struct stat sb;
	if (stat(path, &sb) != 0 || !S_ISREG(sb.st_mode))
		return -1;
	FILE *f = fopen(path, "rb");
	if (!f)
		return -1;
	char *line = NULL;
	size_t cap = 0;
	long lineno = 0, found = -1;
	int64_t row = -1;            /* -1: the header is next */
	while (getline(&line, &cap, f) >= 0) {
		lineno++;
		chomp(line);
		if (blank(line))
			continue;
		if (row++ == i) {
			found = lineno;
			break;
		}
	}
	free(line);
	fclose(f);
	return found;
}

bool rt_data_where(const nnd_data *d, int64_t i, char *buf, size_t n)
{
	if (!d || !d->lab_path || i < 0 || i >= d->n)
		return false;
	if (d->kind == 0) {
		snprintf(buf, n, "%s: %soffset %lld", d->lab_path, d->lab_gz ? "decoded " : "", (long long)(8 + i));
		return true;
	}
	long line = d->lab_line0 >= 0 ? (long)(d->lab_line0 + i) : csv_line_of(d->lab_path, i);
	if (line >= 0)
		snprintf(buf, n, "%s:%ld: column %d", d->lab_path, line, d->lab_col);
	else
		snprintf(buf, n, "%s: data row %lld, column %d", d->lab_path, (long long)(i + 1), d->lab_col);
	return true;
}

int rt_data_check_labels(const nnd_data *d, int64_t n, int64_t classes, char *err, size_t errlen)
{
	if (!d->buf[1] || classes <= 0)
		return 0;
	if (n > d->n)
		n = d->n;
	for (int64_t i = 0; i < n; i++) {
		int64_t v = d->dtype[1] == 2 ? (int64_t)d->buf[1][i] : (int64_t)((const int32_t *)d->buf[1])[i];
		if (v >= 0 && v < classes)
			continue;
		char where[600];
		if (!rt_data_where(d, i, where, sizeof where))
			snprintf(where, sizeof where, "sample %lld", (long long)i);
		errf(err, errlen, "%s: label %lld of sample %lld is outside [0, %lld) (the classes of the loss's "
		     "cross_entropy)", where, (long long)v, (long long)i, (long long)classes);
		return -1;
	}
	return 0;
}

void nnd_data_free(nnd_data *d)
{
	if (!d)
		return;
	for (int i = 0; i < 2; i++) {
		if (d->maplen[i])
			rt_data_unmap(d->alloc[i], d->maplen[i]);
		else
			free(d->alloc[i] ? d->alloc[i] : d->buf[i]);
	}
	free(d->names);
	free(d->lab_path);
	memset(d, 0, sizeof *d);
}
