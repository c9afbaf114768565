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

#include <dlfcn.h>
#include <errno.h>
#include <inttypes.h>
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
	int64_t fc; int fsym;        /* float operations per unit */
	char op[32];
	void *fn;                    /* CUfunction or host function */
	double ms, flops;            /* NND_CUDA_PROFILE: time and work so far */
	int64_t launches;
} rec;

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
		           fc, fsym, "", NULL, 0, 0, 0 };
		snprintf(nr.op, sizeof nr.op, "%s", op);
		r->v[r->n++] = nr;
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

/* emulation: the CUDA built-ins for one thread that walks every unit */
static const char emu_prelude[] =
	"#define NND_EMULATE 1\n"
	"#include <stdint.h>\n#include <string.h>\n#include <math.h>\n"
	"#define __global__\n#define __device__\n#define __forceinline__ inline\n"
	"struct nnd_emu_dim { unsigned x, y, z; };\n"
	"static const nnd_emu_dim threadIdx = { 0, 0, 0 }, blockIdx = { 0, 0, 0 };\n"
	"static const nnd_emu_dim blockDim = { 1, 1, 1 }, gridDim = { 1, 1, 1 };\n"
	"static inline float __uint_as_float(uint32_t u) { float f; memcpy(&f, &u, 4); return f; }\n"
	"static inline uint32_t __float_as_uint(float f) { uint32_t u; memcpy(&u, &f, 4); return u; }\n"
	"static inline double __longlong_as_double(long long u) { double f; memcpy(&f, &u, 8); return f; }\n"
	"static inline long long __double_as_longlong(double f) { long long u; memcpy(&u, &f, 8); return u; }\n"
	"static inline float __fsqrt_rn(float x) { return sqrtf(x); }\n"
	"static inline float __fmaf_rn(float a, float b, float c) { return fmaf(a, b, c); }\n";

static void emulate_module(rt_dev *d, const char *src)
{
	/* the shared object is cached like a cubin (key: source, "emulate", compiler) */
	const char *cxx = getenv("NND_CXX");
	char cdir[4096], cpath[4400] = "", hex[65];
	snprintf(d->name, sizeof d->name, "host emulation");
	snprintf(d->arch, sizeof d->arch, "none");
	if (rt_cache_dir(cdir, sizeof cdir)) {
		cache_key(src, "emulate", cxx && *cxx ? cxx : "c++", hex);
		snprintf(cpath, sizeof cpath, "%s/%s.emu.so", cdir, hex);
		if ((d->emu_lib = dlopen(cpath, RTLD_NOW | RTLD_LOCAL)))
			return;
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
	if (!f || fputs(emu_prelude, f) < 0 || fputs(src, f) < 0 || fclose(f) != 0)
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

/* device offset of a record's value; false when it has none */
static bool value_at(rt_dev *d, const rec *v, int64_t Bmax, size_t *off)
{
	switch (v->vblk) {
	case 1: *off = d->o_acts + (size_t)(v->voffc + v->voffb * Bmax); return true;         /* ACT */
	case 2: *off = d->o_params + (size_t)v->voffc * 4; return true;                     /* PARAM */
	case 3: *off = d->o_grads + (size_t)v->voffc * 4; return true;                      /* GRAD */
	case 4: *off = d->o_opt + (size_t)v->voffc * 4; return true;                        /* OPT */
	case 5: *off = d->o_state + (size_t)v->voffc * 4; return true;                      /* STATE */
	case 6: *off = d->o_in[v->voffc]; return v->voffc >= 0 && v->voffc < RT_MAX_FIELDS;  /* INPUT */
	case 7: *off = d->o_out + (size_t)v->voffc * 4; return true;                        /* OUTPUT */
	case 8: *off = d->o_res + (size_t)v->voffc * 4; return true;                        /* RESULT */
	default: return false;
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
		if (v->fn) {
			int64_t units = pow_b(v->uc, v->usym, B);
			if (units > 0) {
				if (d->emulate) {
					((void (*)(nnd_dargs))v->fn)(da);
				} else {
					int64_t blocks = (units + 255) / 256;
					if (blocks > (1 << 20))
						blocks = 1 << 20;
					void *args[1] = { &da };
					if (d->profile)
						CU_CHECK(cu.EventRecord(d->ev[0], NULL), 2, "cuEventRecord");
					CUresult rc = cu.LaunchKernel((CUfunction)v->fn, (unsigned)blocks, 1, 1, 256, 1, 1, 0, NULL,
					                              args, NULL);
					if (!rc && sync_each)
						rc = cu.CtxSynchronize();
					if (!rc && d->profile) {
						float ms = 0;
						rec *pv = (rec *)v;
						if (!(rc = cu.EventRecord(d->ev[1], NULL)) && !(rc = cu.EventSynchronize(d->ev[1])) &&
						    !(rc = cu.EventElapsedTime(&ms, d->ev[0], d->ev[1]))) {
							pv->ms += ms;
							pv->flops += (double)units * (double)pow_b(v->fc, v->fsym, B);
							pv->launches++;
						}
					}
					if (rc)
						rt_die(2, "--device cuda: kernel %s (%s graph node %" PRId64 "): %s", v->kernel,
						       rt_graph_names[graph], v->node, cu_msg(rc));
				}
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
	for (int i = 0; i < k && i < 25; i++)
		fprintf(stderr, "cuda profile: %-28s %-16s %8" PRId64 " launches %10.3f ms %5.1f%%%s%.0f%s\n", v[i]->kernel,
		        v[i]->op, v[i]->launches, v[i]->ms, tot > 0 ? 100.0 * v[i]->ms / tot : 0.0,
		        v[i]->flops > 0 ? "  " : "", v[i]->flops > 0 ? v[i]->flops / (v[i]->ms * 1e6) : 0.0,
		        v[i]->flops > 0 ? " GFLOP/s" : "");
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
	if (d->emulate) {
		free(d->emu_mem);
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
