/* cuda.c - the device layer: `--device cuda` (docs/cuda.md).
 *
 * The program carries the CUDA source of its graphs (nnd_model.cuda,
 * written by codegen/cuda.c with one launch record per node).  Here:
 *
 *  - NVRTC (libnvrtc) and the driver API (libcuda.so.1) are loaded with
 *    dlopen on first use, so every program runs without them and says
 *    which one is missing when --device cuda is asked for;
 *  - the source is compiled by NVRTC with the options of the determinism
 *    contract for the device's architecture (a cubin), or loaded from the
 *    kernel cache ($NND_CACHE_DIR, else $XDG_CACHE_HOME/nnd, else
 *    ~/.cache/nnd), keyed by the SHA-256 of the source, the options, the
 *    NVRTC version and the device's name and architecture;
 *  - one device allocation holds every block at the memory plan's offsets
 *    (params, grads, opt, state, the activation arena, the batch fields,
 *    sample indices, stream keys, outputs, the infer result);
 *  - a step copies the batch host to device, launches the graph's kernels
 *    in node order on the default stream (one thread per unit, a
 *    grid-stride loop in each kernel), and copies the scalar outputs (and
 *    the infer result) back; parameters come back only when the host needs
 *    them (digest, checkpoint, log).
 *
 * Test only: NND_CUDA_EMULATE=1 runs the same generated source on the
 * host instead -- compiled by the system C++ compiler (`c++`, or
 * $NND_CXX) as a shared object with the CUDA built-ins defined for one
 * thread, every kernel launched as a single thread that walks all units.
 * No GPU is involved; it checks the generated kernels and this layer's
 * data movement against the CPU backend bit for bit where no GPU exists. */
#include "rt_internal.h"
#include "nnd_dev.h"

#include <cjson/cJSON.h>

#include <dlfcn.h>
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* ------------------------------------------------------------------ */
/* NVRTC                                                               */

const char *const nnd_cuda_nvrtc_options[] = {
	"--fmad=false", "--ftz=false", "--prec-div=true", "--prec-sqrt=true",
	"-default-device", "-std=c++17", NULL
};

typedef int nvrtcResult;
typedef struct _nvrtcProgram *nvrtcProgram;
static struct {
	void *lib;
	const char *(*GetErrorString)(nvrtcResult);
	nvrtcResult (*Version)(int *, int *);
	nvrtcResult (*CreateProgram)(nvrtcProgram *, const char *, const char *, int, const char *const *,
	                             const char *const *);
	nvrtcResult (*DestroyProgram)(nvrtcProgram *);
	nvrtcResult (*CompileProgram)(nvrtcProgram, int, const char *const *);
	nvrtcResult (*GetProgramLogSize)(nvrtcProgram, size_t *);
	nvrtcResult (*GetProgramLog)(nvrtcProgram, char *);
	nvrtcResult (*GetPTXSize)(nvrtcProgram, size_t *);
	nvrtcResult (*GetPTX)(nvrtcProgram, char *);
	nvrtcResult (*GetCUBINSize)(nvrtcProgram, size_t *);
	nvrtcResult (*GetCUBIN)(nvrtcProgram, char *);
	char why[1024];
} nv;

static void *open_first(const char *const *names, char *why, size_t whylen)
{
	size_t o = 0;
	for (int i = 0; names[i]; i++) {
		void *h = dlopen(names[i], RTLD_NOW | RTLD_LOCAL);
		if (h)
			return h;
		const char *e = dlerror();
		if (o < whylen)
			o += (size_t)snprintf(why + o, whylen - o, "%s%s", o ? "; " : "", e ? e : names[i]);
	}
	return NULL;
}

/* 0, or -1 with the reason in err */
static int nvrtc_load(char *err, size_t errlen)
{
	if (nv.lib)
		return 0;
	const char *env = getenv("NND_NVRTC");
	const char *names[] = { env && *env ? env : "libnvrtc.so", "libnvrtc.so.13", "libnvrtc.so.12",
	                        "/usr/local/cuda/lib64/libnvrtc.so", "/usr/local/cuda/lib64/libnvrtc.so.13",
	                        "/usr/local/cuda/lib64/libnvrtc.so.12", NULL };
	void *h = open_first(names, nv.why, sizeof nv.why);
	if (!h) {
		snprintf(err, errlen, "no NVRTC: libnvrtc.so not found (dlopen: %.700s)", nv.why);
		return -1;
	}
#define NV_SYM(f)                                                                       \
	if (!(*(void **)&nv.f = dlsym(h, "nvrtc" #f))) {                                     \
		snprintf(err, errlen, "NVRTC library lacks nvrtc" #f " (dlsym: %s)", dlerror()); \
		dlclose(h);                                                                     \
		return -1;                                                                      \
	}
	NV_SYM(GetErrorString) NV_SYM(Version) NV_SYM(CreateProgram) NV_SYM(DestroyProgram)
	NV_SYM(CompileProgram) NV_SYM(GetProgramLogSize) NV_SYM(GetProgramLog) NV_SYM(GetPTXSize)
	NV_SYM(GetPTX) NV_SYM(GetCUBINSize) NV_SYM(GetCUBIN)
#undef NV_SYM
	nv.lib = h;
	return 0;
}

static int nvrtc_version(void)
{
	int ma = 0, mi = 0;
	if (nv.lib && nv.Version(&ma, &mi) == 0)
		return ma * 100 + mi;
	return 0;
}

int nnd_cuda_compile(const char *src, const char *arch, char **out, size_t *outlen, char **log, char *err,
                     size_t errlen)
{
	*out = NULL;
	*outlen = 0;
	if (log)
		*log = NULL;
	if (nvrtc_load(err, errlen))
		return -1;
	if (!strncmp(src, "//@error ", 9)) {
		const char *e = strchr(src, '\n');
		snprintf(err, errlen, "this program has no CUDA kernels: %.*s", (int)(e ? e - src - 9 : 400), src + 9);
		return -1;
	}
	bool cubin = !strncmp(arch, "sm_", 3);
	char archopt[64];
	snprintf(archopt, sizeof archopt, "--gpu-architecture=%s", arch);
	const char *opts[16];
	int no = 0;
	for (int i = 0; nnd_cuda_nvrtc_options[i]; i++)
		opts[no++] = nnd_cuda_nvrtc_options[i];
	opts[no++] = archopt;
	nvrtcProgram prog = NULL;
	nvrtcResult rc = nv.CreateProgram(&prog, src, "nnd_kernels.cu", 0, NULL, NULL);
	if (rc) {
		snprintf(err, errlen, "nvrtcCreateProgram: %s", nv.GetErrorString(rc));
		return -1;
	}
	rc = nv.CompileProgram(prog, no, opts);
	size_t ls = 0;
	char *lg = NULL;
	if (nv.GetProgramLogSize(prog, &ls) == 0 && ls > 1) {
		lg = rt_xmalloc(ls + 1);
		if (nv.GetProgramLog(prog, lg))
			lg[0] = 0;
		lg[ls] = 0;
	}
	if (rc) {
		snprintf(err, errlen, "NVRTC could not compile the kernels (%s, %s)%s%s", nv.GetErrorString(rc), archopt,
		         lg && *lg ? ":\n" : "", lg && *lg ? lg : "");
		if (log)
			*log = lg;
		else
			free(lg);
		nv.DestroyProgram(&prog);
		return -1;
	}
	if (log)
		*log = lg;
	else
		free(lg);
	size_t n = 0;
	rc = cubin ? nv.GetCUBINSize(prog, &n) : nv.GetPTXSize(prog, &n);
	if (!rc) {
		*out = rt_xmalloc(n + 1);
		rc = cubin ? nv.GetCUBIN(prog, *out) : nv.GetPTX(prog, *out);
		(*out)[n] = 0;
	}
	if (rc) {
		snprintf(err, errlen, "nvrtcGet%s: %s", cubin ? "CUBIN" : "PTX", nv.GetErrorString(rc));
		free(*out);
		*out = NULL;
		nv.DestroyProgram(&prog);
		return -1;
	}
	*outlen = cubin ? n : strlen(*out);
	nv.DestroyProgram(&prog);
	return 0;
}

/* ------------------------------------------------------------------ */
/* the driver API (the few calls nnd needs; types from cuda.h)          */

typedef int CUresult;
typedef int CUdevice;
typedef void *CUcontext;
typedef void *CUmodule;
typedef void *CUfunction;
typedef void *CUstream;
typedef unsigned long long CUdeviceptr;
enum { CU_ATTR_CC_MAJOR = 75, CU_ATTR_CC_MINOR = 76, CU_JIT_ERRLOG = 5, CU_JIT_ERRLOG_SIZE = 6,
       CU_OOM = 2 };

static struct {
	void *lib;
	CUresult (*Init)(unsigned);
	CUresult (*DriverGetVersion)(int *);
	CUresult (*DeviceGetCount)(int *);
	CUresult (*DeviceGet)(CUdevice *, int);
	CUresult (*DeviceGetName)(char *, int, CUdevice);
	CUresult (*DeviceGetAttribute)(int *, int, CUdevice);
	CUresult (*DevicePrimaryCtxRetain)(CUcontext *, CUdevice);
	CUresult (*DevicePrimaryCtxRelease)(CUdevice);
	CUresult (*CtxSetCurrent)(CUcontext);
	CUresult (*CtxSynchronize)(void);
	CUresult (*ModuleLoadDataEx)(CUmodule *, const void *, unsigned, int *, void **);
	CUresult (*ModuleUnload)(CUmodule);
	CUresult (*ModuleGetFunction)(CUfunction *, CUmodule, const char *);
	CUresult (*MemAlloc)(CUdeviceptr *, size_t);
	CUresult (*MemFree)(CUdeviceptr);
	CUresult (*MemcpyHtoD)(CUdeviceptr, const void *, size_t);
	CUresult (*MemcpyDtoH)(void *, CUdeviceptr, size_t);
	CUresult (*MemsetD8)(CUdeviceptr, unsigned char, size_t);
	CUresult (*LaunchKernel)(CUfunction, unsigned, unsigned, unsigned, unsigned, unsigned, unsigned, unsigned,
	                         CUstream, void **, void **);
	CUresult (*GetErrorString)(CUresult, const char **);
	CUresult (*GetErrorName)(CUresult, const char **);
	/* NND_CUDA_PROFILE only */
	CUresult (*EventCreate)(void **, unsigned);
	CUresult (*EventRecord)(void *, CUstream);
	CUresult (*EventSynchronize)(void *);
	CUresult (*EventElapsedTime)(float *, void *, void *);
} cu;

static const char *cu_msg(CUresult rc)
{
	static char buf[256];
	const char *s = NULL, *nm = NULL;
	if (cu.GetErrorString)
		cu.GetErrorString(rc, &s);
	if (cu.GetErrorName)
		cu.GetErrorName(rc, &nm);
	snprintf(buf, sizeof buf, "%s (%s, %d)", s ? s : "unknown error", nm ? nm : "?", rc);
	return buf;
}

/* a failed driver call: its own message, exit 2 (1 for what the user can fix) */
#define CU_CHECK(call, code, what)                                                      \
	do {                                                                                \
		CUresult rc_ = (call);                                                          \
		if (rc_) rt_die((code), "--device cuda: %s: %s", (what), cu_msg(rc_));          \
	} while (0)

static void driver_load(void)
{
	if (cu.lib)
		return;
	char why[1024] = "";
	const char *names[] = { "libcuda.so.1", "libcuda.so", NULL };
	void *h = open_first(names, why, sizeof why);
	if (!h)
		rt_die(1, "--device cuda: no CUDA driver: libcuda.so.1 not found (dlopen: %s)", why);
#define CU_SYM(f, name)                                                                         \
	if (!(*(void **)&cu.f = dlsym(h, name)))                                                    \
		rt_die(1, "--device cuda: the CUDA driver lacks %s (too old? dlsym: %s)", name, dlerror());
	CU_SYM(Init, "cuInit") CU_SYM(DriverGetVersion, "cuDriverGetVersion")
	CU_SYM(DeviceGetCount, "cuDeviceGetCount") CU_SYM(DeviceGet, "cuDeviceGet")
	CU_SYM(DeviceGetName, "cuDeviceGetName") CU_SYM(DeviceGetAttribute, "cuDeviceGetAttribute")
	CU_SYM(DevicePrimaryCtxRetain, "cuDevicePrimaryCtxRetain")
	CU_SYM(DevicePrimaryCtxRelease, "cuDevicePrimaryCtxRelease_v2")
	CU_SYM(CtxSetCurrent, "cuCtxSetCurrent") CU_SYM(CtxSynchronize, "cuCtxSynchronize")
	CU_SYM(ModuleLoadDataEx, "cuModuleLoadDataEx") CU_SYM(ModuleUnload, "cuModuleUnload")
	CU_SYM(ModuleGetFunction, "cuModuleGetFunction") CU_SYM(MemAlloc, "cuMemAlloc_v2")
	CU_SYM(MemFree, "cuMemFree_v2") CU_SYM(MemcpyHtoD, "cuMemcpyHtoD_v2")
	CU_SYM(MemcpyDtoH, "cuMemcpyDtoH_v2") CU_SYM(MemsetD8, "cuMemsetD8_v2")
	CU_SYM(LaunchKernel, "cuLaunchKernel") CU_SYM(GetErrorString, "cuGetErrorString")
	CU_SYM(GetErrorName, "cuGetErrorName")
#undef CU_SYM
	/* profiling only: optional */
	*(void **)&cu.EventCreate = dlsym(h, "cuEventCreate");
	*(void **)&cu.EventRecord = dlsym(h, "cuEventRecord");
	*(void **)&cu.EventSynchronize = dlsym(h, "cuEventSynchronize");
	if (!(*(void **)&cu.EventElapsedTime = dlsym(h, "cuEventElapsedTime_v2")))
		*(void **)&cu.EventElapsedTime = dlsym(h, "cuEventElapsedTime");
	cu.lib = h;
}

/* ------------------------------------------------------------------ */
/* launch records                                                      */

typedef struct rec {
	int64_t node;                /* -1: the outputs kernel */
	char *kernel;                /* NULL: none */
	int64_t uc; int usym;
	int vblk; int64_t voffc, voffb, vbc; int vbsym;
	int64_t fc; int fsym;        /* float operations of a launch */
	char op[32];
	void *fn;                    /* CUfunction or host function */
	double ms, flops;            /* NND_CUDA_PROFILE: time and work so far */
	int64_t launches;
	int conv;                    /* --cudnn: index into rt_dev.convs computing it, else -1 */
	bool skip;                   /* --cudnn: nothing reads its result (//@skip) */
} rec;

/* a value's place, as the launch records spell it (value_at) */
typedef struct loc { int blk; int64_t offc, offb; } loc;

/* one convolution computed whole by cuDNN (//@conv, codegen/cuda.c) */
typedef struct dconv {
	int graph;
	int64_t node;
	int kind;                    /* DC_FWD, DC_BWD_FILTER, DC_BWD_DATA */
	int64_t nc; int nsym;        /* N = nc * B^nsym */
	int64_t C, H, W, O, G, KH, KW, OH, OW, stride, pad, dil;
	loc x, w, y;                 /* x [N,C,H,W], w [O,C/G,KH,KW], y [O,N,OH,OW] */
	bool packed;                 /* cuDNN refused y's strided layout: y goes through a packed
	                                [N, O, OH, OW] copy (nnd_swap01) */
	int algo;                    /* pinned: the first of the kind's list cuDNN supports */
	size_t ws;                   /* its workspace at ws_n rows (0: not known) */
	int64_t ws_n;
	int64_t cur_n;               /* N the descriptors are set for (0: none yet) */
	void *xd, *yd, *wd, *cd;     /* cuDNN descriptors */
} dconv;
enum { DC_FWD, DC_BWD_FILTER, DC_BWD_DATA };

typedef struct recs { rec *v; int n, cap; } recs;

struct rt_dev {
	bool emulate;
	int prog;
	recs graphs[RT_NGRAPHS];
	/* device */
	CUdevice dev;
	CUcontext ctx;
	CUmodule mod;
	void *emu_lib;               /* emulation: the compiled shared object */
	int (*emu_launch)(void *fn, const nnd_dargs *a, char *stacks, long long blocks);   /* its nnd_emu_launch */
	char *emu_stacks;            /* EMU_STACKS bytes: the emulated threads' stacks */
	char name[256];
	char arch[32];
	/* memory: one allocation (emulation: host memory) */
	CUdeviceptr base;
	uint8_t *emu_mem;
	size_t total;
	size_t o_params, o_grads, o_opt, o_state, o_acts, o_err, o_out, o_keys, o_idx, o_res;
	size_t o_in[RT_MAX_FIELDS];
	size_t row_bytes[RT_MAX_FIELDS];
	int64_t rows;                /* batch rows the buffers hold */
	size_t nout;
	uint8_t *scratch;            /* debug digests */
	size_t scratch_len;
	bool profile;                /* NND_CUDA_PROFILE: time every kernel */
	void *ev[2];
	/* --cudnn */
	bool cudnn;
	dconv *convs;
	int nconvs;
	void *dnn;                   /* cudnnHandle_t (NULL in emulation) */
	CUdeviceptr ws;              /* one workspace for every call */
	size_t ws_len;
	CUdeviceptr stg;             /* packed y of a packed convolution */
	uint8_t *emu_stg;            /* (emulation) */
	size_t stg_len;
	void *swap_fn;               /* nnd_swap01 */
	char dnn_version[32];
};

static int64_t pow_b(int64_t c, int sym, int64_t B)
{
	for (int i = 0; i < sym; i++)
		c *= B;
	return c;
}

/* parses the //@node records of program `prog` */
static void parse_records(rt_dev *d, const char *src)
{
	for (const char *s = src; s && *s; s = strchr(s, '\n') ? strchr(s, '\n') + 1 : NULL) {
		if (strncmp(s, "//@node ", 8))
			continue;
		int p, g, usym, vblk, vbsym, fsym;
		int64_t node, uc, voffc, voffb, vbc, fc;
		char kname[128], op[32];
		if (sscanf(s + 8, "%d %d %" SCNd64 " %127s %" SCNd64 " %d %d %" SCNd64 " %" SCNd64 " %" SCNd64 " %d %" SCNd64
		           " %d %31s", &p, &g, &node, kname, &uc, &usym, &vblk, &voffc, &voffb, &vbc, &vbsym, &fc, &fsym,
		           op) != 14 ||
		    g < 0 || g >= RT_NGRAPHS)
			rt_die(2, "--device cuda: malformed launch record: %.80s", s);
		if (p != d->prog)
			continue;
		recs *r = &d->graphs[g];
		if (r->n == r->cap) {
			r->cap = r->cap ? 2 * r->cap : 64;
			rec *nv_ = realloc(r->v, (size_t)r->cap * sizeof *nv_);
			if (!nv_)
				rt_die(2, "out of memory");
			r->v = nv_;
		}
		rec nr = { node, strcmp(kname, "-") ? rt_xstrdup(kname) : NULL, uc, usym, vblk, voffc, voffb, vbc, vbsym,
		           fc, fsym, "", NULL, 0, 0, 0, -1, false };
		snprintf(nr.op, sizeof nr.op, "%s", op);
		r->v[r->n++] = nr;
	}
}

static rec *rec_of(rt_dev *d, int g, int64_t node)
{
	for (int i = 0; i < d->graphs[g].n; i++)
		if (d->graphs[g].v[i].node == node)
			return &d->graphs[g].v[i];
	return NULL;
}

/* --cudnn: the //@conv and //@skip records of program `prog` */
static void parse_conv_records(rt_dev *d, const char *src)
{
	for (const char *s = src; s && *s; s = strchr(s, '\n') ? strchr(s, '\n') + 1 : NULL) {
		int p, g;
		int64_t node;
		if (!strncmp(s, "//@skip ", 8)) {
			if (sscanf(s + 8, "%d %d %" SCNd64, &p, &g, &node) != 3 || g < 0 || g >= RT_NGRAPHS)
				rt_die(2, "--device cuda: malformed skip record: %.80s", s);
			rec *r = p == d->prog ? rec_of(d, g, node) : NULL;
			if (r)
				r->skip = true;
			continue;
		}
		if (strncmp(s, "//@conv ", 8))
			continue;
		dconv c;
		memset(&c, 0, sizeof c);
		char kind[16];
		if (sscanf(s + 8,
		           "%d %d %" SCNd64 " %15s %" SCNd64 " %d %" SCNd64 " %" SCNd64 " %" SCNd64 " %" SCNd64 " %" SCNd64
		           " %" SCNd64 " %" SCNd64 " %" SCNd64 " %" SCNd64 " %" SCNd64 " %" SCNd64 " %" SCNd64 " %d %" SCNd64
		           " %" SCNd64 " %d %" SCNd64 " %" SCNd64 " %d %" SCNd64 " %" SCNd64,
		           &p, &g, &node, kind, &c.nc, &c.nsym, &c.C, &c.H, &c.W, &c.O, &c.G, &c.KH, &c.KW, &c.OH, &c.OW,
		           &c.stride, &c.pad, &c.dil, &c.x.blk, &c.x.offc, &c.x.offb, &c.w.blk, &c.w.offc, &c.w.offb,
		           &c.y.blk, &c.y.offc, &c.y.offb) != 27 ||
		    g < 0 || g >= RT_NGRAPHS || c.G < 1 || c.C % c.G || c.O % c.G)
			rt_die(2, "--device cuda: malformed convolution record: %.80s", s);
		if (p != d->prog)
			continue;
		c.kind = !strcmp(kind, "fwd") ? DC_FWD : !strcmp(kind, "bwd_filter") ? DC_BWD_FILTER
		       : !strcmp(kind, "bwd_data") ? DC_BWD_DATA : -1;
		rec *r = rec_of(d, g, node);
		if (c.kind < 0 || !r)
			rt_die(2, "--device cuda: convolution record of an unknown node or kind: %.80s", s);
		c.graph = g;
		c.node = node;
		d->convs = realloc(d->convs, (size_t)(d->nconvs + 1) * sizeof *d->convs);
		if (!d->convs)
			rt_die(2, "out of memory");
		r->conv = d->nconvs;
		d->convs[d->nconvs++] = c;
	}
}

/* ------------------------------------------------------------------ */
/* kernel cache                                                        */

static void cache_key(const char *src, const char *arch, const char *devname, char hex[65])
{
	nnd_sha256_ctx *c = nnd_sha256_begin();
	char v[64];
	snprintf(v, sizeof v, "nnd-cuda-cache 1 nvrtc %d\n", nvrtc_version());
	nnd_sha256_update(c, v, strlen(v));
	for (int i = 0; nnd_cuda_nvrtc_options[i]; i++)
		nnd_sha256_update(c, nnd_cuda_nvrtc_options[i], strlen(nnd_cuda_nvrtc_options[i]) + 1);
	nnd_sha256_update(c, arch, strlen(arch) + 1);
	nnd_sha256_update(c, devname, strlen(devname) + 1);
	nnd_sha256_update(c, src, strlen(src));
	uint8_t dig[32];
	nnd_sha256_end(c, dig);
	nnd_sha256_hex(dig, hex);
}

static uint8_t *cache_read(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	if (!f)
		return NULL;
	uint8_t *buf = NULL;
	if (fseek(f, 0, SEEK_END) == 0) {
		long n = ftell(f);
		if (n > 0 && fseek(f, 0, SEEK_SET) == 0) {
			buf = rt_xmalloc((size_t)n + 1);
			if (fread(buf, 1, (size_t)n, f) != (size_t)n) {
				free(buf);
				buf = NULL;
			} else {
				buf[n] = 0;
				*len = (size_t)n;
			}
		}
	}
	fclose(f);
	return buf;
}

static void cache_write(const char *path, const void *data, size_t len)
{
	char tmp[4200];
	snprintf(tmp, sizeof tmp, "%s.tmp%ld", path, (long)getpid());
	FILE *f = fopen(tmp, "wb");
	if (!f)
		return;
	bool ok = fwrite(data, 1, len, f) == len;
	ok &= fclose(f) == 0;
	if (!ok || rename(tmp, path) != 0)
		unlink(tmp);
}

/* ------------------------------------------------------------------ */
/* the module: real device or emulation                                */

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static bool load_module(rt_dev *d, const void *image, char *log, size_t loglen)
{
	int opt[2] = { CU_JIT_ERRLOG, CU_JIT_ERRLOG_SIZE };
	void *val[2] = { log, (void *)(uintptr_t)loglen };
	log[0] = 0;
	CUresult rc = cu.ModuleLoadDataEx(&d->mod, image, 2, opt, val);
	if (rc) {
		size_t o = strlen(log);
		snprintf(log + o, loglen - o, "%s%s", o ? "\n" : "", cu_msg(rc));
		return false;
	}
	return true;
}

static void device_module(rt_dev *d, const char *src)
{
	char dir[4096], path[4300] = "", hex[65], err[8192], log[8192];
	bool cached = rt_cache_dir(dir, sizeof dir);
	if (nvrtc_load(err, sizeof err) && !cached)
		rt_die(1, "--device cuda: %s", err);
	cache_key(src, d->arch, d->name, hex);
	if (cached) {
		snprintf(path, sizeof path, "%s/%s.cubin", dir, hex);
		size_t len = 0;
		uint8_t *img = cache_read(path, &len);
		if (img) {
			bool ok = load_module(d, img, log, sizeof log);
			free(img);
			if (ok) {
				fprintf(stderr, "cuda: %s (%s): kernels from the cache %s\n", d->name, d->arch, path);
				return;
			}
		}
	}
	if (nvrtc_load(err, sizeof err))
		rt_die(1, "--device cuda: %s", err);
	double t0 = now_s();
	char *img = NULL, *lg = NULL;
	size_t len = 0;
	if (nnd_cuda_compile(src, d->arch, &img, &len, &lg, err, sizeof err))
		rt_die(2, "--device cuda: %s", err);
	free(lg);
	double t1 = now_s();
	if (!load_module(d, img, log, sizeof log))
		rt_die(2, "--device cuda: the driver cannot load the kernels NVRTC %d.%d compiled for %s: %s",
		       nvrtc_version() / 100, nvrtc_version() % 100, d->arch, log);
	if (cached)
		cache_write(path, img, len);
	free(img);
	fprintf(stderr, "cuda: %s (%s): kernels compiled by NVRTC in %.2f s%s%s\n", d->name, d->arch, t1 - t0,
	        cached ? ", cached in " : " (no kernel cache)", cached ? path : "");
}

/* emulation: the CUDA built-ins.  A kernel runs as one block of 256
 * threads, each a ucontext of its own stack, switched only at
 * __syncthreads: thread by thread to the barrier, then the next phase, so
 * shared memory and barriers behave as on the GPU (a barrier that not
 * every thread reaches is an error), deterministically.  The phases run
 * the threads upwards and downwards in turn, so a thread that reads what
 * another writes in the same phase sees it written in one order or the
 * other: a missing barrier changes the bits.  The grid is one to four
 * blocks (never more than the GPU would launch), run one after another,
 * first to last and last to first in turn: every kernel is a grid-stride
 * loop, so its bits must not depend on the grid, and a kernel that indexes
 * by threadIdx where it means the global thread, or that needs another
 * block's writes, computes something else.  A kernel called directly
 * (nnd_swap01) runs as one thread. */
#define EMU_STACKS ((size_t)256 * 128 * 1024)   /* the prelude's NND_EMU_T x NND_EMU_STACK */
static const char emu_prelude[] =
	"#define NND_EMULATE 1\n"
	"#include <stdint.h>\n#include <string.h>\n#include <math.h>\n#include <stdlib.h>\n#include <ucontext.h>\n"
	"#define __global__\n#define __device__\n#define __forceinline__ inline\n"
	"struct nnd_emu_dim { unsigned x, y, z; };\n"
	"static nnd_emu_dim threadIdx = { 0, 0, 0 }, blockDim = { 1, 1, 1 };\n"
	"static nnd_emu_dim blockIdx = { 0, 0, 0 }, gridDim = { 1, 1, 1 };\n"
	"enum { NND_EMU_T = 256, NND_EMU_STACK = 128 * 1024 };   /* runtime/cuda.c: EMU_STACKS */\n"
	"static ucontext_t nnd_emu_main, nnd_emu_ctx[NND_EMU_T];\n"
	"static int nnd_emu_state[NND_EMU_T];   /* 0 runs, 1 at the barrier, 2 returned */\n"
	"static void nnd_emu_sync(void)\n"
	"{\n"
	"\tif (blockDim.x == 1) return;\n"
	"\tconst unsigned t = threadIdx.x;\n"
	"\tnnd_emu_state[t] = 1;\n"
	"\tswapcontext(&nnd_emu_ctx[t], &nnd_emu_main);\n"
	"}\n"
	"static inline float __uint_as_float(uint32_t u) { float f; memcpy(&f, &u, 4); return f; }\n"
	"static inline uint32_t __float_as_uint(float f) { uint32_t u; memcpy(&u, &f, 4); return u; }\n"
	"static inline double __longlong_as_double(long long u) { double f; memcpy(&f, &u, 8); return f; }\n"
	"static inline long long __double_as_longlong(double f) { long long u; memcpy(&u, &f, 8); return u; }\n"
	"static inline float __fsqrt_rn(float x) { return sqrtf(x); }\n"
	"static inline float __fmaf_rn(float a, float b, float c) { return fmaf(a, b, c); }\n"
	"#define __shared__ static\n#define __syncthreads() nnd_emu_sync()\n";

/* after the kernels: the launcher (it needs nnd_dargs) */
static const char emu_epilogue[] =
	"\nstatic void (*nnd_emu_fn)(const nnd_dargs);\n"
	"static const nnd_dargs *nnd_emu_args;\n"
	"static void nnd_emu_entry(void)\n"
	"{\n"
	"\tnnd_emu_fn(*nnd_emu_args);\n"
	"\tnnd_emu_state[threadIdx.x] = 2;   /* back to nnd_emu_main (uc_link) */\n"
	"}\n"
	"/* 0; 1: a __syncthreads that some threads reached and others not;\n"
	" * 2: getcontext failed */\n"
	"extern \"C\" int nnd_emu_launch(void (*fn)(const nnd_dargs), const nnd_dargs *a, char *stacks, long long blocks)\n"
	"{\n"
	"\tstatic unsigned long launches;\n"
	"\tconst unsigned long l = launches++;\n"
	"\tconst unsigned g = blocks < (long long)(1 + l % 4) ? (unsigned)blocks : (unsigned)(1 + l % 4);\n"
	"\tnnd_emu_fn = fn;\n"
	"\tnnd_emu_args = a;\n"
	"\tint rc = 0;\n"
	"\tgridDim.x = g;\n"
	"\tblockDim.x = NND_EMU_T;\n"
	"\tfor (unsigned b = 0; b < g && !rc; b++) {\n"
	"\t\tblockIdx.x = l / 4 % 2 ? g - 1 - b : b;\n"
	"\t\tfor (int t = 0; t < NND_EMU_T; t++) {\n"
	"\t\t\tif (getcontext(&nnd_emu_ctx[t]) != 0) { rc = 2; break; }\n"
	"\t\t\tnnd_emu_ctx[t].uc_stack.ss_sp = stacks + (size_t)t * NND_EMU_STACK;\n"
	"\t\t\tnnd_emu_ctx[t].uc_stack.ss_size = NND_EMU_STACK;\n"
	"\t\t\tnnd_emu_ctx[t].uc_link = &nnd_emu_main;\n"
	"\t\t\tmakecontext(&nnd_emu_ctx[t], nnd_emu_entry, 0);\n"
	"\t\t\tnnd_emu_state[t] = 0;\n"
	"\t\t}\n"
	"\t\tfor (unsigned long phase = l + b; !rc; phase++) {\n"
	"\t\t\tfor (int i = 0; i < NND_EMU_T; i++) {\n"
	"\t\t\t\tconst int t = phase & 1 ? NND_EMU_T - 1 - i : i;\n"
	"\t\t\t\tif (nnd_emu_state[t] == 2) continue;\n"
	"\t\t\t\tnnd_emu_state[t] = 0;\n"
	"\t\t\t\tthreadIdx.x = (unsigned)t;\n"
	"\t\t\t\tswapcontext(&nnd_emu_main, &nnd_emu_ctx[t]);\n"
	"\t\t\t}\n"
	"\t\t\tint done = 0;\n"
	"\t\t\tfor (int t = 0; t < NND_EMU_T; t++) done += nnd_emu_state[t] == 2;\n"
	"\t\t\tif (done == NND_EMU_T) break;\n"
	"\t\t\tif (done) rc = 1;   /* the rest wait at a barrier forever on a GPU */\n"
	"\t\t}\n"
	"\t}\n"
	"\tblockDim.x = gridDim.x = 1;\n"
	"\tthreadIdx.x = blockIdx.x = 0;\n"
	"\treturn rc;\n"
"}\n";

static void emulate_module(rt_dev *d, const char *src)
{
	/* the shared object is cached like a cubin (key: source, "emulate", compiler) */
	const char *cxx = getenv("NND_CXX");
	char cdir[4096], cpath[4400] = "", hex[65];
	snprintf(d->name, sizeof d->name, "host emulation");
	snprintf(d->arch, sizeof d->arch, "none");
	if (rt_cache_dir(cdir, sizeof cdir)) {
		/* the prelude and the launcher are part of what is compiled */
		size_t lp = strlen(emu_prelude), ls = strlen(src), le = strlen(emu_epilogue);
		char *all = rt_xmalloc(lp + ls + le + 1);
		memcpy(all, emu_prelude, lp);
		memcpy(all + lp, src, ls);
		memcpy(all + lp + ls, emu_epilogue, le + 1);
		cache_key(all, "emulate", cxx && *cxx ? cxx : "c++", hex);
		free(all);
		snprintf(cpath, sizeof cpath, "%s/%s.emu.so", cdir, hex);
		if ((d->emu_lib = dlopen(cpath, RTLD_NOW | RTLD_LOCAL)))
			goto found;
	}
	char dir[] = "/tmp/nnd-emu-XXXXXX";
	if (!mkdtemp(dir))
		rt_die(2, "NND_CUDA_EMULATE: mkdtemp: %s", strerror(errno));
	char cpp[128], so[4500], cmd[5000];
	snprintf(cpp, sizeof cpp, "%s/k.cpp", dir);
	if (cpath[0])
		snprintf(so, sizeof so, "%s.tmp%ld", cpath, (long)getpid());
	else
		snprintf(so, sizeof so, "%s/k.so", dir);
	FILE *f = fopen(cpp, "w");
	if (!f || fputs(emu_prelude, f) < 0 || fputs(src, f) < 0 || fputs(emu_epilogue, f) < 0 || fclose(f) != 0)
		rt_die(2, "NND_CUDA_EMULATE: cannot write %s", cpp);
	snprintf(cmd, sizeof cmd,
	         "%s -std=c++17 -O1 -ffp-contract=off -fno-fast-math -w -shared -fPIC -o %s %s",
	         cxx && *cxx ? cxx : "c++", so, cpp);
	int rc = system(cmd);
	if (rc != 0)
		rt_die(2, "NND_CUDA_EMULATE: '%s' failed (status %d)", cmd, rc);
	const char *lib = so;
	if (cpath[0] && rename(so, cpath) == 0)
		lib = cpath;
	d->emu_lib = dlopen(lib, RTLD_NOW | RTLD_LOCAL);
	if (!d->emu_lib)
		rt_die(2, "NND_CUDA_EMULATE: dlopen %s: %s", lib, dlerror());
	unlink(cpp);
	unlink(so);
	rmdir(dir);
found:
	if (!(*(void **)&d->emu_launch = dlsym(d->emu_lib, "nnd_emu_launch")))
		rt_die(2, "NND_CUDA_EMULATE: nnd_emu_launch missing: %s", dlerror());
	d->emu_stacks = rt_xmalloc(EMU_STACKS);
}

static void find_kernels(rt_dev *d)
{
	for (int g = 0; g < RT_NGRAPHS; g++)
		for (int i = 0; i < d->graphs[g].n; i++) {
			rec *r = &d->graphs[g].v[i];
			if (!r->kernel)
				continue;
			if (d->emulate) {
				if (!(r->fn = dlsym(d->emu_lib, r->kernel)))
					rt_die(2, "NND_CUDA_EMULATE: kernel %s missing: %s", r->kernel, dlerror());
			} else {
				CU_CHECK(cu.ModuleGetFunction((CUfunction *)&r->fn, d->mod, r->kernel), 2, r->kernel);
			}
		}
}

/* ------------------------------------------------------------------ */
/* memory                                                              */

static void *host_of(rt_dev *d, size_t off) { return d->emu_mem + off; }

static void htod(rt_dev *d, size_t off, const void *src, size_t n)
{
	if (!n)
		return;
	if (d->emulate)
		memcpy(host_of(d, off), src, n);
	else
		CU_CHECK(cu.MemcpyHtoD(d->base + off, src, n), 2, "copy to the device");
}

static void dtoh(rt_dev *d, void *dst, size_t off, size_t n, const char *after)
{
	if (!n)
		return;
	if (d->emulate) {
		memcpy(dst, host_of(d, off), n);
		return;
	}
	CUresult rc = cu.MemcpyDtoH(dst, d->base + off, n);
	if (rc)
		rt_die(2, "--device cuda: %s: %s", after, cu_msg(rc));
}

static size_t align256(size_t x) { return (x + 255) & ~(size_t)255; }

static int dtype_size(int dt) { return dt == 2 ? 1 : 4; }

static void layout(rt_dev *d, const rt_program *p, int64_t rows)
{
	size_t o = 0;
#define REGION(field, bytes) do { d->field = o; o = align256(o + (size_t)(bytes)); } while (0)
	REGION(o_params, p->n_params * 4);
	REGION(o_grads, p->n_params * 4);
	REGION(o_opt, p->n_opt * 4);
	REGION(o_state, p->n_states * 4);
	int64_t acts = 0;
	size_t nout = 1, res = 0;
	for (int g = 0; g < RT_NGRAPHS; g++) {
		const rt_graph *G = &p->graphs[g];
		if (!G->present)
			continue;
		int64_t b = G->act_c + G->act_b * rows;
		if (b > acts)
			acts = b;
		if ((size_t)G->nout > nout)
			nout = (size_t)G->nout;
		if (g == RT_GRAPH_INFER)
			res = (size_t)(G->res_row * rows) * 4;
	}
	d->nout = nout;
	REGION(o_acts, acts);
	REGION(o_err, 4 * 8 + nout * 4);
	d->o_out = d->o_err + 32;
	REGION(o_keys, (size_t)p->nstreams * 8);
	for (int k = 0; k < p->nfields; k++) {
		const rt_field *fl = &p->fields[k];
		int64_t rb = dtype_size(fl->dtype);
		for (int j = 1; j < fl->rank; j++)
			rb *= fl->dims[j];
		d->row_bytes[k] = (size_t)rb;
		REGION(o_in[k], rb * rows);
	}
	REGION(o_idx, rows * 8);
	REGION(o_res, res);
#undef REGION
	d->total = o;
	d->rows = rows;
}

static void cudnn_open(rt_dev *d, int64_t rows);
static void cudnn_close(rt_dev *d);

static rt_dev *the_dev;   /* at most one per process (nndc run, built programs) */

void rt_dev_open(rt_run *r, int64_t rows)
{
	const rt_program *p = r->prog;
	const char *src = r->model->cuda;
	if (!src)
		rt_die(1, "--device cuda: this program was built without CUDA kernels (rebuild it with this nndc)");
	if (!strncmp(src, "//@error ", 9)) {
		const char *e = strchr(src, '\n');
		rt_die(1, "--device cuda: this program has no CUDA kernels: %.*s", (int)(e ? e - src - 9 : 400), src + 9);
	}
	if (p->nfields > NND_DEV_MAX_INPUTS)
		rt_die(2, "--device cuda: %d batch fields (at most %d)", p->nfields, NND_DEV_MAX_INPUTS);
	rt_dev *d = rt_xcalloc(1, sizeof *d);
	r->dev = d;
	the_dev = d;
	d->prog = p->index;
	const char *em = getenv("NND_CUDA_EMULATE");
	d->emulate = em && *em && strcmp(em, "0");
	parse_records(d, src);
	if (d->graphs[RT_GRAPH_TRAIN].n == 0 && p->graphs[RT_GRAPH_TRAIN].present)
		rt_die(2, "--device cuda: no launch records for train block %s", p->name);
	layout(d, p, rows);
	if (d->emulate) {
		emulate_module(d, src);
		d->emu_mem = rt_aligned_zalloc(d->total);
	} else {
		driver_load();
		CUresult rc = cu.Init(0);
		if (rc)
			rt_die(1, "--device cuda: the CUDA driver does not start (cuInit): %s", cu_msg(rc));
		int count = 0;
		CU_CHECK(cu.DeviceGetCount(&count), 1, "cuDeviceGetCount");
		if (count < 1)
			rt_die(1, "--device cuda: no CUDA device found");
		const char *ev = getenv("NND_CUDA_DEVICE");
		int idx = ev && *ev ? atoi(ev) : 0;
		if (idx < 0 || idx >= count)
			rt_die(1, "--device cuda: NND_CUDA_DEVICE=%s, but there are %d devices", ev, count);
		CU_CHECK(cu.DeviceGet(&d->dev, idx), 1, "cuDeviceGet");
		CU_CHECK(cu.DeviceGetName(d->name, (int)sizeof d->name - 1, d->dev), 2, "cuDeviceGetName");
		int ma = 0, mi = 0;
		CU_CHECK(cu.DeviceGetAttribute(&ma, CU_ATTR_CC_MAJOR, d->dev), 2, "cuDeviceGetAttribute");
		CU_CHECK(cu.DeviceGetAttribute(&mi, CU_ATTR_CC_MINOR, d->dev), 2, "cuDeviceGetAttribute");
		snprintf(d->arch, sizeof d->arch, "sm_%d%d", ma, mi);
		CU_CHECK(cu.DevicePrimaryCtxRetain(&d->ctx, d->dev), 1, "cuDevicePrimaryCtxRetain");
		CU_CHECK(cu.CtxSetCurrent(d->ctx), 2, "cuCtxSetCurrent");
		device_module(d, src);
		/* test only: ask for more than any device has, to see the message */
		const char *extra = getenv("NND_TEST_CUDA_EXTRA_BYTES");
		if (extra && *extra)
			d->total += (size_t)strtoull(extra, NULL, 10);
		rc = cu.MemAlloc(&d->base, d->total);
		if (rc == CU_OOM)
			rt_die(1, "--device cuda: out of device memory: cannot allocate %zu bytes (%.1f MiB) on %s",
			       d->total, (double)d->total / 1048576.0, d->name);
		if (rc)
			rt_die(2, "--device cuda: cuMemAlloc of %zu bytes: %s", d->total, cu_msg(rc));
		CU_CHECK(cu.MemsetD8(d->base, 0, d->total), 2, "cuMemsetD8");
	}
	find_kernels(d);
	if (r->cudnn) {
		d->cudnn = true;
		parse_conv_records(d, src);
		if (d->nconvs)
			cudnn_open(d, rows);
		else
			fprintf(stderr, "cuda: --cudnn: train block %s has no convolutions; cuDNN is not used\n", p->name);
	}
	const char *pf = getenv("NND_CUDA_PROFILE");
	d->profile = pf && *pf && strcmp(pf, "0") && !d->emulate;
	if (d->profile && !(cu.EventCreate && cu.EventRecord && cu.EventSynchronize && cu.EventElapsedTime)) {
		fprintf(stderr, "cuda: NND_CUDA_PROFILE: the driver lacks the event calls; no profile\n");
		d->profile = false;
	}
	if (d->profile) {
		CU_CHECK(cu.EventCreate(&d->ev[0], 0), 2, "cuEventCreate");
		CU_CHECK(cu.EventCreate(&d->ev[1], 0), 2, "cuEventCreate");
	}
}

void rt_dev_upload(rt_run *r)
{
	rt_dev *d = r->dev;
	const rt_program *p = r->prog;
	htod(d, d->o_params, r->params, (size_t)p->n_params * 4);
	htod(d, d->o_grads, r->grads, (size_t)p->n_params * 4);
	htod(d, d->o_opt, r->opt, (size_t)p->n_opt * 4);
	htod(d, d->o_state, r->state, (size_t)p->n_states * 4);
	htod(d, d->o_keys, r->keys, (size_t)p->nstreams * 8);
}

void rt_dev_download(rt_run *r)
{
	rt_dev *d = r->dev;
	const rt_program *p = r->prog;
	dtoh(d, r->params, d->o_params, (size_t)p->n_params * 4, "copy of the parameters");
	dtoh(d, r->opt, d->o_opt, (size_t)p->n_opt * 4, "copy of the optimizer state");
	dtoh(d, r->state, d->o_state, (size_t)p->n_states * 4, "copy of the state");
}

static uint64_t dptr(rt_dev *d, size_t off)
{
	return d->emulate ? (uint64_t)(uintptr_t)host_of(d, off) : (uint64_t)(d->base + off);
}

/* device offset of a value at l; false when it has none */
static bool loc_at(rt_dev *d, loc l, int64_t Bmax, size_t *off)
{
	switch (l.blk) {
	case 1: *off = d->o_acts + (size_t)(l.offc + l.offb * Bmax); return true;          /* ACT */
	case 2: *off = d->o_params + (size_t)l.offc * 4; return true;                      /* PARAM */
	case 3: *off = d->o_grads + (size_t)l.offc * 4; return true;                       /* GRAD */
	case 4: *off = d->o_opt + (size_t)l.offc * 4; return true;                         /* OPT */
	case 5: *off = d->o_state + (size_t)l.offc * 4; return true;                       /* STATE */
	case 6:                                                                            /* INPUT */
		if (l.offc < 0 || l.offc >= RT_MAX_FIELDS)
			return false;
		*off = d->o_in[l.offc];
		return true;
	case 7: *off = d->o_out + (size_t)l.offc * 4; return true;                         /* OUTPUT */
	case 8: *off = d->o_res + (size_t)l.offc * 4; return true;                         /* RESULT */
	default: return false;
	}
}

/* device offset of a record's value; false when it has none */
static bool value_at(rt_dev *d, const rec *v, int64_t Bmax, size_t *off)
{
	return loc_at(d, (loc){ v->vblk, v->voffc, v->voffb }, Bmax, off);
}

/* ------------------------------------------------------------------ */
/* cuDNN (--cudnn): convolutions computed whole                        */
/*
 * The program's IR computes a convolution as im2col + matmul (and, for
 * its gradients, two matmuls and a col2im: passes/conv.c); codegen marks
 * the nodes cuDNN can compute whole (//@conv, ir_conv_match) and those
 * whose results nothing needs then (//@skip).  With --cudnn each marked
 * node is one cuDNN call on the same stream, reading and writing the
 * memory plan's regions (y and dy in the matmul's [O, N, OH, OW] layout,
 * through strided descriptors), and the skipped kernels do not run.
 *
 * Algorithms are pinned, never searched for: cudnnFind* times candidates
 * and may pick another one on the next run.  Forward: IMPLICIT_PRECOMP_GEMM,
 * else IMPLICIT_GEMM; backward data: ALGO_1; backward filter: ALGO_1
 * (cuDNN's deterministic ones; BWD_DATA_ALGO_0 and BWD_FILTER_ALGO_0/3
 * add with atomics).  CUDNN_FMA_MATH keeps tensor cores (TF32) out.  The
 * results are cuDNN's, not nnd's plan: the same bits run to run on one GPU
 * model and library version only (docs/determinism.md §4).
 *
 * In emulation (NND_CUDA_EMULATE=1, tests) the descriptors are still set
 * by the real library, which checks them (and the output size), but the
 * convolutions are computed on the host by dnn_emulate in the order of
 * nnd's default plans (seq+fma matmuls, seq col2im), so that the whole
 * path -- records, descriptors' strides, offsets, skipped nodes, the
 * memory plan's lifetimes -- is checked bit for bit against the CPU. */

typedef int dnnStatus;
enum { DNN_FLOAT = 0, DNN_NCHW = 0, DNN_CROSS_CORRELATION = 1, DNN_FMA_MATH = 3, DNN_NOT_SUPPORTED = 3000 };

static struct {
	void *lib;
	size_t (*GetVersion)(void);
	const char *(*GetErrorString)(dnnStatus);
	void (*GetLastErrorString)(char *, size_t);   /* cuDNN 9; optional */
	dnnStatus (*Create)(void **);
	dnnStatus (*Destroy)(void *);
	dnnStatus (*SetStream)(void *, void *);
	dnnStatus (*CreateTensorDescriptor)(void **);
	dnnStatus (*SetTensor4dDescriptorEx)(void *, int, int, int, int, int, int, int, int, int);
	dnnStatus (*DestroyTensorDescriptor)(void *);
	dnnStatus (*CreateFilterDescriptor)(void **);
	dnnStatus (*SetFilter4dDescriptor)(void *, int, int, int, int, int, int);
	dnnStatus (*DestroyFilterDescriptor)(void *);
	dnnStatus (*CreateConvolutionDescriptor)(void **);
	dnnStatus (*SetConvolution2dDescriptor)(void *, int, int, int, int, int, int, int, int);
	dnnStatus (*SetConvolutionGroupCount)(void *, int);
	dnnStatus (*SetConvolutionMathType)(void *, int);
	dnnStatus (*DestroyConvolutionDescriptor)(void *);
	dnnStatus (*GetConvolution2dForwardOutputDim)(void *, void *, void *, int *, int *, int *, int *);
	dnnStatus (*GetConvolutionForwardWorkspaceSize)(void *, void *, void *, void *, void *, int, size_t *);
	dnnStatus (*ConvolutionForward)(void *, const void *, void *, const void *, void *, const void *, void *, int,
	                                void *, size_t, const void *, void *, void *);
	dnnStatus (*GetConvolutionBackwardDataWorkspaceSize)(void *, void *, void *, void *, void *, int, size_t *);
	dnnStatus (*ConvolutionBackwardData)(void *, const void *, void *, const void *, void *, const void *, void *, int,
	                                     void *, size_t, const void *, void *, void *);
	dnnStatus (*GetConvolutionBackwardFilterWorkspaceSize)(void *, void *, void *, void *, void *, int, size_t *);
	dnnStatus (*ConvolutionBackwardFilter)(void *, const void *, void *, const void *, void *, const void *, void *,
	                                       int, void *, size_t, const void *, void *, void *);
} dnn;

static const char *const dnn_kind_names[3] = { "fwd", "bwd_filter", "bwd_data" };
/* the pinned algorithms, in order of preference, and their names */
static const int dnn_algos[3][2] = { { 1, 0 }, { 1, -1 }, { 1, -1 } };
static const char *dnn_algo_name(int kind, int algo)
{
	static const char *const fwd[2] = { "CUDNN_CONVOLUTION_FWD_ALGO_IMPLICIT_GEMM",
	                                    "CUDNN_CONVOLUTION_FWD_ALGO_IMPLICIT_PRECOMP_GEMM" };
	if (kind == DC_FWD)
		return algo == 0 || algo == 1 ? fwd[algo] : "?";
	if (algo != 1)
		return "?";
	return kind == DC_BWD_DATA ? "CUDNN_CONVOLUTION_BWD_DATA_ALGO_1" : "CUDNN_CONVOLUTION_BWD_FILTER_ALGO_1";
}

static void dnn_load(void)
{
	if (dnn.lib)
		return;
	char why[1536] = "";
	const char *env = getenv("NND_CUDNN");
	/* $NND_CUDNN names the one library to use; else the system's, else the toolkit's */
	const char *mine[] = { env, NULL };
	const char *sys[] = { "libcudnn.so.9", "libcudnn.so.8", "libcudnn.so", "/usr/local/cuda/lib64/libcudnn.so.9", NULL };
	const char *const *names = env && *env ? mine : sys;
	void *h = open_first(names, why, sizeof why);
	if (!h)
		rt_die(1, "--cudnn: no cuDNN: libcudnn.so.9 not found (dlopen: %s)", why);
#define DNN_SYM(f)                                                                                  \
	if (!(*(void **)&dnn.f = dlsym(h, "cudnn" #f)))                                                 \
		rt_die(1, "--cudnn: the cuDNN library lacks cudnn" #f " (cuDNN 8 or 9 needed; dlsym: %s)", dlerror());
	DNN_SYM(GetVersion) DNN_SYM(GetErrorString) DNN_SYM(Create) DNN_SYM(Destroy) DNN_SYM(SetStream)
	DNN_SYM(CreateTensorDescriptor) DNN_SYM(SetTensor4dDescriptorEx) DNN_SYM(DestroyTensorDescriptor)
	DNN_SYM(CreateFilterDescriptor) DNN_SYM(SetFilter4dDescriptor) DNN_SYM(DestroyFilterDescriptor)
	DNN_SYM(CreateConvolutionDescriptor) DNN_SYM(SetConvolution2dDescriptor) DNN_SYM(SetConvolutionGroupCount)
	DNN_SYM(SetConvolutionMathType) DNN_SYM(DestroyConvolutionDescriptor) DNN_SYM(GetConvolution2dForwardOutputDim)
	DNN_SYM(GetConvolutionForwardWorkspaceSize) DNN_SYM(ConvolutionForward)
	DNN_SYM(GetConvolutionBackwardDataWorkspaceSize) DNN_SYM(ConvolutionBackwardData)
	DNN_SYM(GetConvolutionBackwardFilterWorkspaceSize) DNN_SYM(ConvolutionBackwardFilter)
#undef DNN_SYM
	*(void **)&dnn.GetLastErrorString = dlsym(h, "cudnnGetLastErrorString");
	dnn.lib = h;
}

/* cuDNN's status and its own last message */
static const char *dnn_msg(dnnStatus st)
{
	static char buf[1400];
	char last[1024] = "";
	if (dnn.GetLastErrorString)
		dnn.GetLastErrorString(last, sizeof last);
	snprintf(buf, sizeof buf, "%s (%d)%s%s", dnn.GetErrorString ? dnn.GetErrorString(st) : "?", st,
	         last[0] ? ": " : "", last);
	return buf;
}

static void dnn_fail(const dconv *c, const char *call, dnnStatus st)
{
	rt_die(2, "--cudnn: %s (%s graph node %" PRId64 ", %s convolution C=%" PRId64 " H=%" PRId64 " W=%" PRId64
	       " O=%" PRId64 " groups=%" PRId64 " kernel %" PRId64 "x%" PRId64 " stride %" PRId64 " pad %" PRId64
	       " dilation %" PRId64 "): %s",
	       call, rt_graph_names[c->graph], c->node, dnn_kind_names[c->kind], c->C, c->H, c->W, c->O, c->G, c->KH,
	       c->KW, c->stride, c->pad, c->dil, dnn_msg(st));
}
#define DNN_CHECK(c, call, what)                     \
	do {                                             \
		dnnStatus st_ = (call);                      \
		if (st_) dnn_fail((c), (what), st_);          \
	} while (0)

static int dnn_int(const dconv *c, int64_t v, const char *what)
{
	if (v < 0 || v > INT32_MAX)
		rt_die(2, "--cudnn: %s graph node %" PRId64 ": %s = %" PRId64 " does not fit cuDNN's int", rt_graph_names[c->graph],
		       c->node, what, v);
	return (int)v;
}

/* the descriptors for N rows: x dense NCHW, y [O, N, OH, OW] in memory */
static void dnn_describe(dconv *c, int64_t N)
{
	if (c->cur_n == N)
		return;
	int n = dnn_int(c, N, "N"), C = dnn_int(c, c->C, "C"), H = dnn_int(c, c->H, "H"), W = dnn_int(c, c->W, "W");
	int O = dnn_int(c, c->O, "O"), OH = dnn_int(c, c->OH, "OH"), OW = dnn_int(c, c->OW, "OW");
	DNN_CHECK(c, dnn.SetTensor4dDescriptorEx(c->xd, DNN_FLOAT, n, C, H, W, dnn_int(c, c->C * c->H * c->W, "C*H*W"),
	                                         dnn_int(c, c->H * c->W, "H*W"), W, 1), "cudnnSetTensor4dDescriptorEx (x)");
	int P = dnn_int(c, c->OH * c->OW, "OH*OW");
	if (c->packed)
		DNN_CHECK(c, dnn.SetTensor4dDescriptorEx(c->yd, DNN_FLOAT, n, O, OH, OW, dnn_int(c, c->O * P, "O*OH*OW"), P, OW, 1),
		          "cudnnSetTensor4dDescriptorEx (y, packed)");
	else
		DNN_CHECK(c, dnn.SetTensor4dDescriptorEx(c->yd, DNN_FLOAT, n, O, OH, OW, P, dnn_int(c, N * P, "N*OH*OW"), OW, 1),
		          "cudnnSetTensor4dDescriptorEx (y)");
	int on, oc, oh, ow;
	DNN_CHECK(c, dnn.GetConvolution2dForwardOutputDim(c->cd, c->xd, c->wd, &on, &oc, &oh, &ow),
	          "cudnnGetConvolution2dForwardOutputDim");
	if (on != n || oc != O || oh != OH || ow != OW)
		rt_die(2, "--cudnn: %s graph node %" PRId64 ": cuDNN's output is %dx%dx%dx%d, nnd's %dx%dx%dx%d",
		       rt_graph_names[c->graph], c->node, on, oc, oh, ow, n, O, OH, OW);
	c->cur_n = N;
}

static dnnStatus dnn_ws_size(rt_dev *d, dconv *c, int algo, size_t *ws)
{
	*ws = 0;
	if (d->emulate)
		return 0;
	switch (c->kind) {
	case DC_FWD: return dnn.GetConvolutionForwardWorkspaceSize(d->dnn, c->xd, c->wd, c->cd, c->yd, algo, ws);
	case DC_BWD_DATA: return dnn.GetConvolutionBackwardDataWorkspaceSize(d->dnn, c->wd, c->yd, c->cd, c->xd, algo, ws);
	default: return dnn.GetConvolutionBackwardFilterWorkspaceSize(d->dnn, c->xd, c->yd, c->cd, c->wd, algo, ws);
	}
}

/* a workspace of at least n bytes */
static void dnn_workspace(rt_dev *d, size_t n)
{
	if (n <= d->ws_len || d->emulate)
		return;
	if (d->ws)
		CU_CHECK(cu.MemFree(d->ws), 2, "cuMemFree (the cuDNN workspace)");
	d->ws = 0;
	d->ws_len = 0;
	CUresult rc = cu.MemAlloc(&d->ws, n);
	if (rc == CU_OOM)
		rt_die(1, "--device cuda: out of device memory: cannot allocate %zu bytes (%.1f MiB) of cuDNN workspace on %s",
		       n, (double)n / 1048576.0, d->name);
	if (rc)
		rt_die(2, "--device cuda: cuMemAlloc of %zu bytes (the cuDNN workspace): %s", n, cu_msg(rc));
	d->ws_len = n;
}

static void dnn_run(rt_dev *d, dconv *c, int64_t B, int64_t Bmax);

/* the first pinned algorithm cuDNN supports for c at n rows, in c's
 * current layout; its status */
static dnnStatus dnn_pick(rt_dev *d, dconv *c, int64_t n)
{
	dnn_describe(c, n);
	dnnStatus st = DNN_NOT_SUPPORTED;
	for (int k = 0; k < 2 && dnn_algos[c->kind][k] >= 0 && st; k++) {
		c->algo = dnn_algos[c->kind][k];
		st = dnn_ws_size(d, c, c->algo, &c->ws);
	}
	c->ws_n = st ? 0 : n;
	return st;
}

/* y through a packed copy from now on (cuDNN refused the strided one) */
static void dnn_go_packed(dconv *c)
{
	c->packed = true;
	c->cur_n = c->ws_n = 0;
	fprintf(stderr, "cuda: cuDNN refused the strided y layout of %s graph node %" PRId64 " (%s); y goes through a "
	        "packed copy\n", rt_graph_names[c->graph], c->node, dnn_kind_names[c->kind]);
}

static void cudnn_open(rt_dev *d, int64_t rows)
{
	dnn_load();
	size_t v = dnn.GetVersion();
	/* cuDNN 9: major*10000 + minor*100 + patch; cuDNN 8: major*1000 + minor*100 + patch */
	size_t major = v < 10000 ? v / 1000 : v / 10000;
	snprintf(d->dnn_version, sizeof d->dnn_version, "%zu.%zu.%zu", major, v / 100 % (v < 10000 ? 10 : 100), v % 100);
	if (!d->emulate) {
		dnnStatus st = dnn.Create(&d->dnn);
		if (st)
			rt_die(1, "--cudnn: cudnnCreate: %s", dnn_msg(st));
		st = dnn.SetStream(d->dnn, NULL);   /* the legacy default stream: the kernels' */
		if (st)
			rt_die(2, "--cudnn: cudnnSetStream: %s", dnn_msg(st));
	}
	size_t most = 0;
	for (int i = 0; i < d->nconvs; i++) {
		dconv *c = &d->convs[i];
		DNN_CHECK(c, dnn.CreateTensorDescriptor(&c->xd), "cudnnCreateTensorDescriptor");
		DNN_CHECK(c, dnn.CreateTensorDescriptor(&c->yd), "cudnnCreateTensorDescriptor");
		DNN_CHECK(c, dnn.CreateFilterDescriptor(&c->wd), "cudnnCreateFilterDescriptor");
		DNN_CHECK(c, dnn.CreateConvolutionDescriptor(&c->cd), "cudnnCreateConvolutionDescriptor");
		DNN_CHECK(c, dnn.SetFilter4dDescriptor(c->wd, DNN_FLOAT, DNN_NCHW, dnn_int(c, c->O, "O"),
		                                       dnn_int(c, c->C / c->G, "C/groups"), dnn_int(c, c->KH, "KH"),
		                                       dnn_int(c, c->KW, "KW")), "cudnnSetFilter4dDescriptor");
		int pad = dnn_int(c, c->pad, "pad"), str = dnn_int(c, c->stride, "stride"), dil = dnn_int(c, c->dil, "dilation");
		DNN_CHECK(c, dnn.SetConvolution2dDescriptor(c->cd, pad, pad, str, str, dil, dil, DNN_CROSS_CORRELATION, DNN_FLOAT),
		          "cudnnSetConvolution2dDescriptor");
		DNN_CHECK(c, dnn.SetConvolutionGroupCount(c->cd, dnn_int(c, c->G, "groups")), "cudnnSetConvolutionGroupCount");
		DNN_CHECK(c, dnn.SetConvolutionMathType(c->cd, DNN_FMA_MATH), "cudnnSetConvolutionMathType");
		int64_t n = pow_b(c->nc, c->nsym, rows);
		const char *tp = getenv("NND_TEST_CUDNN_PACKED");   /* test only: the packed path everywhere */
		if (tp && *tp && strcmp(tp, "0"))
			c->packed = true;
		dnnStatus st = dnn_pick(d, c, n);
		if (st == DNN_NOT_SUPPORTED && !c->packed) {
			dnn_go_packed(c);
			st = dnn_pick(d, c, n);
		}
		if (st)
			dnn_fail(c, "no deterministic algorithm (cudnnGetConvolution*WorkspaceSize)", st);
		if (c->ws > most)
			most = c->ws;
	}
	dnn_workspace(d, most);
	if (!d->emulate)
		CU_CHECK(cu.ModuleGetFunction((CUfunction *)&d->swap_fn, d->mod, "nnd_swap01"), 2, "nnd_swap01");
	else if (!(d->swap_fn = dlsym(d->emu_lib, "nnd_swap01")))
		rt_die(2, "NND_CUDA_EMULATE: kernel nnd_swap01 missing: %s", dlerror());
	if (!d->emulate) {
		/* one call of each on the (zeroed) buffers before the first step:
		 * a layout cuDNN accepts in the workspace query but refuses to run
		 * switches to the packed copy now, before the run's manifest is
		 * written; what it writes is scratch (the blocks are uploaded after) */
		for (int i = 0; i < d->nconvs; i++)
			dnn_run(d, &d->convs[i], rows, rows);
		CU_CHECK(cu.CtxSynchronize(), 2, "the first cuDNN calls");
	}
	int n[3] = { 0, 0, 0 };
	for (int i = 0; i < d->nconvs; i++)
		n[d->convs[i].graph]++;
	fprintf(stderr, "cuda: cuDNN %s%s: %d convolution nodes (train %d, eval %d, infer %d), pinned deterministic "
	        "algorithms, FMA math; %.1f MiB workspace\n", d->dnn_version, d->emulate ? " (emulated)" : "", d->nconvs,
	        n[0], n[1], n[2], (double)d->ws_len / 1048576.0);
}

/* emulation: im2col's value, the input tap (kh, kw) of output (oh, ow) or +0 in the padding */
static float emu_tap(const dconv *c, const float *x, int64_t n, int64_t ch, int64_t oh, int64_t ow, int64_t kh,
                     int64_t kw)
{
	int64_t ih = oh * c->stride - c->pad + kh * c->dil, iw = ow * c->stride - c->pad + kw * c->dil;
	return ih >= 0 && ih < c->H && iw >= 0 && iw < c->W ? x[((n * c->C + ch) * c->H + ih) * c->W + iw] : 0.0f;
}

/* emulation: the convolution on the host in the order of nnd's default
 * plans (ops.def: seq+fma matmuls over k = (cl, kh, kw), resp. (n, oh, ow),
 * resp. ol; col2im seq over (kh, kw)); x and y as the descriptors say */
#define WI(o, cl, kh, kw) ((((o) * (c->C / c->G) + (cl)) * c->KH + (kh)) * c->KW + (kw))
#define YI(o, n, oh, ow) ((c->packed ? (n) * c->O + (o) : (o) * N + (n)) * c->OH * c->OW + (oh) * c->OW + (ow))

static void emu_fwd(const dconv *c, int64_t N, const float *x, const float *w, float *y)
{
	int64_t Cg = c->C / c->G, Og = c->O / c->G;
	for (int64_t o = 0; o < c->O; o++)
		for (int64_t n = 0; n < N; n++)
			for (int64_t oh = 0; oh < c->OH; oh++)
				for (int64_t ow = 0; ow < c->OW; ow++) {
					float acc = 0.0f;
					for (int64_t cl = 0; cl < Cg; cl++)
						for (int64_t kh = 0; kh < c->KH; kh++)
							for (int64_t kw = 0; kw < c->KW; kw++)
								acc = fmaf(w[WI(o, cl, kh, kw)], emu_tap(c, x, n, o / Og * Cg + cl, oh, ow, kh, kw), acc);
					y[YI(o, n, oh, ow)] = acc;
				}
}

static void emu_bwd_filter(const dconv *c, int64_t N, const float *x, float *w, const float *y)
{
	int64_t Cg = c->C / c->G, Og = c->O / c->G;
	for (int64_t o = 0; o < c->O; o++)
		for (int64_t cl = 0; cl < Cg; cl++)
			for (int64_t kh = 0; kh < c->KH; kh++)
				for (int64_t kw = 0; kw < c->KW; kw++) {
					float acc = 0.0f;
					for (int64_t n = 0; n < N; n++)
						for (int64_t oh = 0; oh < c->OH; oh++)
							for (int64_t ow = 0; ow < c->OW; ow++)
								acc = fmaf(y[YI(o, n, oh, ow)], emu_tap(c, x, n, o / Og * Cg + cl, oh, ow, kh, kw), acc);
					w[WI(o, cl, kh, kw)] = acc;
				}
}

/* dx: col2im's seq over (kh, kw) of the terms the data matmul sums over ol */
static float emu_dx(const dconv *c, int64_t N, const float *w, const float *y, int64_t n, int64_t ch, int64_t ih,
                    int64_t iw)
{
	int64_t Cg = c->C / c->G, Og = c->O / c->G, g = ch / Cg, s = c->stride;
	float acc = 0.0f;
	for (int64_t kh = 0; kh < c->KH; kh++)
		for (int64_t kw = 0; kw < c->KW; kw++) {
			int64_t th = ih + c->pad - kh * c->dil, tw = iw + c->pad - kw * c->dil;
			if (th < 0 || tw < 0 || th % s || tw % s || th / s >= c->OH || tw / s >= c->OW)
				continue;   /* a +0 term: acc (never -0) unchanged */
			float t = 0.0f;
			for (int64_t ol = 0; ol < Og; ol++)
				t = fmaf(w[WI(g * Og + ol, ch % Cg, kh, kw)], y[YI(g * Og + ol, n, th / s, tw / s)], t);
			acc = acc + t;
		}
	return acc;
}

static void dnn_emulate(const dconv *c, int64_t N, float *x, float *w, float *y)
{
	if (c->kind == DC_FWD)
		emu_fwd(c, N, x, w, y);
	else if (c->kind == DC_BWD_FILTER)
		emu_bwd_filter(c, N, x, w, y);
	else
		for (int64_t n = 0; n < N; n++)
			for (int64_t ch = 0; ch < c->C; ch++)
				for (int64_t ih = 0; ih < c->H; ih++)
					for (int64_t iw = 0; iw < c->W; iw++)
						x[((n * c->C + ch) * c->H + ih) * c->W + iw] = emu_dx(c, N, w, y, n, ch, ih, iw);
}
#undef WI
#undef YI

/* a staging buffer of at least n bytes (packed y) */
static void dnn_staging(rt_dev *d, size_t n)
{
	if (n <= d->stg_len)
		return;
	if (d->emulate) {
		free(d->emu_stg);
		d->emu_stg = rt_xmalloc(n);
	} else {
		if (d->stg)
			CU_CHECK(cu.MemFree(d->stg), 2, "cuMemFree (the cuDNN staging buffer)");
		d->stg = 0;
		CUresult rc = cu.MemAlloc(&d->stg, n);
		if (rc == CU_OOM)
			rt_die(1, "--device cuda: out of device memory: cannot allocate %zu bytes (%.1f MiB) for cuDNN's packed "
			       "layout on %s", n, (double)n / 1048576.0, d->name);
		if (rc)
			rt_die(2, "--device cuda: cuMemAlloc of %zu bytes (cuDNN's packed layout): %s", n, cu_msg(rc));
	}
	d->stg_len = n;
}

/* dst[b][a][p] = src[a][b][p] on the device (nnd_swap01) */
static void dnn_swap(rt_dev *d, uint64_t src, uint64_t dst, int64_t A, int64_t Bn, int64_t P)
{
	if (d->emulate) {
		((void (*)(const float *, float *, int64_t, int64_t, int64_t))d->swap_fn)(
			(const float *)(uintptr_t)src, (float *)(uintptr_t)dst, A, Bn, P);
		return;
	}
	int64_t blocks = (A * Bn * P + 255) / 256;
	if (blocks > (1 << 20))
		blocks = 1 << 20;
	CUdeviceptr s_ = (CUdeviceptr)src, d_ = (CUdeviceptr)dst;
	void *args[5] = { &s_, &d_, &A, &Bn, &P };
	CU_CHECK(cu.LaunchKernel((CUfunction)d->swap_fn, (unsigned)blocks, 1, 1, 256, 1, 1, 0, NULL, args, NULL), 2,
	         "kernel nnd_swap01 (cuDNN's packed layout)");
}

/* the cuDNN call (emulation: the host's) with y at Y, in c's layout */
static dnnStatus dnn_call(rt_dev *d, dconv *c, int64_t N, uint64_t xp, uint64_t wp, uint64_t Y)
{
	void *X = (void *)(uintptr_t)xp, *Wp = (void *)(uintptr_t)wp, *Yp = (void *)(uintptr_t)Y;
	if (d->emulate) {
		dnn_emulate(c, N, X, Wp, Yp);
		return 0;
	}
	if (c->ws_n != N) {   /* a batch of another size (the last one): ask again */
		dnnStatus st = dnn_ws_size(d, c, c->algo, &c->ws);
		if (st)
			return st;
		c->ws_n = N;
	}
	dnn_workspace(d, c->ws);
	const float one = 1.0f, zero = 0.0f;
	void *WS = (void *)(uintptr_t)d->ws;
	switch (c->kind) {
	case DC_FWD:
		return dnn.ConvolutionForward(d->dnn, &one, c->xd, X, c->wd, Wp, c->cd, c->algo, WS, d->ws_len, &zero, c->yd, Yp);
	case DC_BWD_DATA:
		return dnn.ConvolutionBackwardData(d->dnn, &one, c->wd, Wp, c->yd, Yp, c->cd, c->algo, WS, d->ws_len, &zero,
		                                   c->xd, X);
	default:
		return dnn.ConvolutionBackwardFilter(d->dnn, &one, c->xd, X, c->yd, Yp, c->cd, c->algo, WS, d->ws_len, &zero,
		                                     c->wd, Wp);
	}
}

/* one marked node: its convolution for B rows */
static void dnn_run(rt_dev *d, dconv *c, int64_t B, int64_t Bmax)
{
	size_t ox, ow, oy;
	if (!loc_at(d, c->x, Bmax, &ox) || !loc_at(d, c->w, Bmax, &ow) || !loc_at(d, c->y, Bmax, &oy))
		rt_die(2, "--cudnn: %s graph node %" PRId64 ": an operand without storage", rt_graph_names[c->graph], c->node);
	int64_t N = pow_b(c->nc, c->nsym, B);
	for (int attempt = 0;; attempt++) {
		dnn_describe(c, N);
		uint64_t Y = dptr(d, oy);
		if (c->packed) {
			size_t need = (size_t)(N * c->O * c->OH * c->OW) * 4;
			dnn_staging(d, need);
			Y = d->emulate ? (uint64_t)(uintptr_t)d->emu_stg : (uint64_t)d->stg;
			if (c->kind != DC_FWD)   /* dy [O, N, P] -> [N, O, P] */
				dnn_swap(d, dptr(d, oy), Y, c->O, N, c->OH * c->OW);
		}
		dnnStatus st = dnn_call(d, c, N, dptr(d, ox), dptr(d, ow), Y);
		if (st == DNN_NOT_SUPPORTED && !c->packed && attempt == 0) {
			dnn_go_packed(c);
			if ((st = dnn_pick(d, c, N)))
				dnn_fail(c, "no deterministic algorithm for the packed layout", st);
			continue;
		}
		if (st)
			dnn_fail(c, c->kind == DC_FWD ? "cudnnConvolutionForward" : c->kind == DC_BWD_DATA
			            ? "cudnnConvolutionBackwardData" : "cudnnConvolutionBackwardFilter", st);
		if (c->packed && c->kind == DC_FWD)   /* y [N, O, P] -> [O, N, P] */
			dnn_swap(d, Y, dptr(d, oy), N, c->O, c->OH * c->OW);
		return;
	}
}

static void cudnn_close(rt_dev *d)
{
	for (int i = 0; i < d->nconvs; i++) {
		dconv *c = &d->convs[i];
		if (c->xd) dnn.DestroyTensorDescriptor(c->xd);
		if (c->yd) dnn.DestroyTensorDescriptor(c->yd);
		if (c->wd) dnn.DestroyFilterDescriptor(c->wd);
		if (c->cd) dnn.DestroyConvolutionDescriptor(c->cd);
	}
	if (d->dnn)
		dnn.Destroy(d->dnn);
	if (d->ws && cu.lib)
		cu.MemFree(d->ws);
	if (d->stg && cu.lib)
		cu.MemFree(d->stg);
	free(d->emu_stg);
	free(d->convs);
	d->convs = NULL;
	d->nconvs = 0;
}

void rt_dev_manifest(const rt_run *r, cJSON *run)
{
	const rt_dev *d = r->dev;
	cJSON_AddStringToObject(run, "backend", !d ? "cpu-llvm" : d->cudnn ? "cuda-nvrtc+cudnn" : "cuda-nvrtc");
	if (!d)
		return;
	cJSON_AddStringToObject(run, "device", d->name);
	cJSON_AddStringToObject(run, "arch", d->arch);
	if (!d->cudnn)
		return;
	cJSON *o = cJSON_AddObjectToObject(run, "cudnn");
	cJSON_AddStringToObject(o, "version", d->dnn_version);
	if (d->emulate)   /* NND_CUDA_EMULATE: descriptors checked by cuDNN, convolutions computed on the host */
		cJSON_AddBoolToObject(o, "emulated", 1);
	cJSON_AddStringToObject(o, "math", "CUDNN_FMA_MATH");
	cJSON_AddStringToObject(o, "determinism", "same bits run to run on this GPU model and cuDNN version only");
	cJSON *arr = cJSON_AddArrayToObject(o, "convolutions");
	for (int i = 0; i < d->nconvs; i++) {
		const dconv *c = &d->convs[i];
		cJSON *e = cJSON_CreateObject();
		cJSON_AddStringToObject(e, "graph", rt_graph_names[c->graph]);
		cJSON_AddNumberToObject(e, "node", (double)c->node);
		cJSON_AddStringToObject(e, "kind", dnn_kind_names[c->kind]);
		cJSON_AddStringToObject(e, "algo", dnn_algo_name(c->kind, c->algo));
		cJSON_AddStringToObject(e, "y_layout", c->packed ? "packed copy" : "strided");
		char geo[160];
		snprintf(geo, sizeof geo, "C=%" PRId64 " H=%" PRId64 " W=%" PRId64 " O=%" PRId64 " groups=%" PRId64 " kernel=%" PRId64
		         "x%" PRId64 " stride=%" PRId64 " pad=%" PRId64 " dilation=%" PRId64,
		         c->C, c->H, c->W, c->O, c->G, c->KH, c->KW, c->stride, c->pad, c->dil);
		cJSON_AddStringToObject(e, "shape", geo);
		cJSON_AddItemToArray(arr, e);
	}
}

void rt_dev_step(rt_run *r, int graph, nnd_step_args *a)
{
	rt_dev *d = r->dev;
	const rt_program *p = r->prog;
	int64_t B = a->B;
	if (B > d->rows || a->Bmax > d->rows)
		rt_die(2, "--device cuda: a batch of %" PRId64 " rows, the device buffers hold %" PRId64, B, d->rows);
	for (int k = 0; k < p->nfields; k++)
		htod(d, d->o_in[k], a->inputs[k], d->row_bytes[k] * (size_t)B);
	htod(d, d->o_idx, a->sample_idx, (size_t)B * 8);
	nnd_dargs da;
	memset(&da, 0, sizeof da);
	da.params = (float *)(uintptr_t)dptr(d, d->o_params);
	da.grads = (float *)(uintptr_t)dptr(d, d->o_grads);
	da.opt = (float *)(uintptr_t)dptr(d, d->o_opt);
	da.state = (float *)(uintptr_t)dptr(d, d->o_state);
	da.acts = (unsigned char *)(uintptr_t)dptr(d, d->o_acts);
	for (int k = 0; k < p->nfields; k++)
		da.inputs[k] = (const void *)(uintptr_t)dptr(d, d->o_in[k]);
	da.sample_idx = (const int64_t *)(uintptr_t)dptr(d, d->o_idx);
	da.keys = (const uint32_t *)(uintptr_t)dptr(d, d->o_keys);
	da.outputs = (float *)(uintptr_t)dptr(d, d->o_out);
	da.result = (float *)(uintptr_t)dptr(d, d->o_res);
	da.err = (int64_t *)(uintptr_t)dptr(d, d->o_err);
	da.B = B;
	da.Bmax = a->Bmax;
	da.step = a->step;
	da.epoch = a->epoch;
	da.lr = a->lr;
	da.bc1 = a->bc1;
	da.bc2 = a->bc2;
	const recs *rs = &d->graphs[graph];
	bool sync_each = getenv("NND_CUDA_SYNC") != NULL;
	for (int i = 0; i < rs->n; i++) {
		const rec *v = &rs->v[i];
		dconv *dc = d->cudnn && v->conv >= 0 ? &d->convs[v->conv] : NULL;
		if (d->cudnn && v->skip && !dc)
			continue;   /* nothing reads it when cuDNN computes the convolutions: no kernel, no digest */
		int64_t units = pow_b(v->uc, v->usym, B);
		if ((v->fn || dc) && units > 0) {
			int64_t blocks = (units + 255) / 256;
			if (blocks > (1 << 20))
				blocks = 1 << 20;
			if (d->emulate) {
				int erc;
				if (dc)
					dnn_run(d, dc, B, a->Bmax);
				else if ((erc = d->emu_launch(v->fn, &da, d->emu_stacks, blocks)) != 0)
					rt_die(2, "NND_CUDA_EMULATE: kernel %s (%s graph node %" PRId64 "): %s", v->kernel,
					       rt_graph_names[graph], v->node, erc == 1 ? "a __syncthreads that some threads of "
					       "the block reach and others do not" : "getcontext failed");
			} else {
				void *args[1] = { &da };
				if (d->profile)
					CU_CHECK(cu.EventRecord(d->ev[0], NULL), 2, "cuEventRecord");
				CUresult rc = 0;
				if (dc)
					dnn_run(d, dc, B, a->Bmax);   /* dies on its own errors */
				else
					rc = cu.LaunchKernel((CUfunction)v->fn, (unsigned)blocks, 1, 1, 256, 1, 1, 0, NULL, args, NULL);
				if (!rc && sync_each)
					rc = cu.CtxSynchronize();
				if (!rc && d->profile) {
					float ms = 0;
					rec *pv = (rec *)v;
					if (!(rc = cu.EventRecord(d->ev[1], NULL)) && !(rc = cu.EventSynchronize(d->ev[1])) &&
					    !(rc = cu.EventElapsedTime(&ms, d->ev[0], d->ev[1]))) {
						pv->ms += ms;
						if (dc)   /* 2 flops per multiply-add of the convolution */
							pv->flops += 2.0 * (double)pow_b(dc->nc, dc->nsym, B) * (double)(dc->O * dc->OH * dc->OW) *
							             (double)(dc->C / dc->G * dc->KH * dc->KW);
						else
							pv->flops += (double)pow_b(v->fc, v->fsym, B);
						pv->launches++;
					}
				}
				if (rc)
					rt_die(2, "--device cuda: %s %s (%s graph node %" PRId64 "): %s", dc ? "cuDNN convolution of" : "kernel",
					       v->kernel ? v->kernel : "-", rt_graph_names[graph], v->node, cu_msg(rc));
			}
		}
		size_t off;
		if (a->debug && v->node >= 0 && value_at(d, v, a->Bmax, &off)) {
			size_t n = (size_t)pow_b(v->vbc, v->vbsym, B);
			if (n > d->scratch_len) {
				free(d->scratch);
				d->scratch = rt_xmalloc(n);
				d->scratch_len = n;
			}
			dtoh(d, d->scratch, off, n, "copy of a node's value");
			nnd_rt_node_digest(a, graph, (int32_t)v->node, d->scratch, (int64_t)n);
		}
	}
	/* the outputs, and the bad-label record of cross_entropy, in one copy */
	uint8_t buf[32 + 4 * 64];
	size_t n = 32 + d->nout * 4;
	uint8_t *tmp = n <= sizeof buf ? buf : rt_xmalloc(n);
	dtoh(d, tmp, d->o_err, n, "the step's kernels failed");
	int64_t err[4];
	memcpy(err, tmp, sizeof err);
	memcpy(a->outputs, tmp + 32, (size_t)p->graphs[graph].nout * 4);
	if (tmp != buf)
		free(tmp);
	if (err[0])
		nnd_rt_bad_label(err[1], err[2], err[3]);
	if (graph == RT_GRAPH_INFER && a->result)
		dtoh(d, a->result, d->o_res, (size_t)(p->graphs[graph].res_row * B) * 4, "copy of the result");
}

static int by_time(const void *a, const void *b)
{
	const rec *x = *(const rec *const *)a, *y = *(const rec *const *)b;
	return x->ms < y->ms ? 1 : x->ms > y->ms ? -1 : 0;
}

/* NND_CUDA_PROFILE: the kernels by total time, on stderr */
static void print_profile(rt_dev *d)
{
	int n = 0;
	for (int g = 0; g < RT_NGRAPHS; g++)
		n += d->graphs[g].n;
	const rec **v = rt_xcalloc((size_t)n + 1, sizeof *v);
	int k = 0;
	double tot = 0;
	for (int g = 0; g < RT_NGRAPHS; g++)
		for (int i = 0; i < d->graphs[g].n; i++)
			if (d->graphs[g].v[i].launches) {
				v[k++] = &d->graphs[g].v[i];
				tot += d->graphs[g].v[i].ms;
			}
	qsort(v, (size_t)k, sizeof *v, by_time);
	fprintf(stderr, "cuda profile: %d kernels, %.3f ms in kernels (%s)\n", k, tot, d->name);
	for (int i = 0; i < k && i < 25; i++) {
		char lab[48];
		if (d->cudnn && v[i]->conv >= 0)
			snprintf(lab, sizeof lab, "cudnn_%s_n%" PRId64, dnn_kind_names[d->convs[v[i]->conv].kind], v[i]->node);
		char rate[32] = "";
		if (v[i]->flops > 0 && v[i]->ms > 0)
			snprintf(rate, sizeof rate, "  %.0f GFLOP/s", v[i]->flops / (v[i]->ms * 1e6));
		fprintf(stderr, "cuda profile: %-28s %-16s %8" PRId64 " launches %10.3f ms %5.1f%%%s\n",
		        d->cudnn && v[i]->conv >= 0 ? lab : v[i]->kernel, v[i]->op, v[i]->launches, v[i]->ms,
		        tot > 0 ? 100.0 * v[i]->ms / tot : 0.0, rate);
	}
	free(v);
}

void rt_dev_close(rt_run *r)
{
	rt_dev *d = r->dev;
	if (!d)
		return;
	if (d->profile)
		print_profile(d);
	r->dev = NULL;
	if (the_dev == d)
		the_dev = NULL;
	cudnn_close(d);
	if (d->emulate) {
		free(d->emu_mem);
		free(d->emu_stacks);
		if (d->emu_lib)
			dlclose(d->emu_lib);
	} else if (cu.lib) {
		if (d->base)
			cu.MemFree(d->base);
		if (d->mod)
			cu.ModuleUnload(d->mod);
		if (d->ctx)
			cu.DevicePrimaryCtxRelease(d->dev);
	}
	for (int g = 0; g < RT_NGRAPHS; g++) {
		for (int i = 0; i < d->graphs[g].n; i++)
			free(d->graphs[g].v[i].kernel);
		free(d->graphs[g].v);
	}
	free(d->scratch);
	free(d);
}
