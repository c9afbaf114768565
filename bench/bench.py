#!/usr/bin/python3
"""nnd's benchmark: every figure side by side with its reference, in one run.

  1. the machine's fp32 FMA peak (build/nnd_bench peak), 1 and 2 threads
  2. sgemm n^3 for n = 256, 512, 1024, 2048: nnd's matmul kernel (default
     plan seq+fma, JIT) vs OpenBLAS cblas_sgemm and vs the peak, 1 and 2 threads
  3. `nndc build` time (best of 3) of examples/mlp_fashion.nnd and cnn_fashion.nnd
  4. program start-up: wall time of `PROGRAM train --steps 1` (process start,
     dataset load, initialisation, one step), best of 3
  5. cnn_fashion's two convolutions, forward and backward GFLOP/s: nnd (from
     `train --profile`) against the peak and PyTorch's conv2d on the same shapes
  6. mlp_fashion and cnn_fashion, one epoch: training samples/s at 1 and 2
     threads, and one epoch plus evaluation as a whole process, against
     PyTorch (python3-torch, data already in memory) in every thread
     configuration (torch intra-op threads x OpenBLAS threads); the "best"
     ratio compares nnd at 2 threads with PyTorch's fastest configuration.
     Each configuration is run --repeat times (default 3 for the MLP, 1 for
     the CNN) and its best run kept, for nnd and PyTorch alike.

Prints a table of ratios, writes bench/results.json and draws bench/results.svg.

    bench/run.sh [--quick] [--no-torch] [--cnn-limit N] [--mlp-limit N] [--repeat N]

Timings on a shared machine are noisy: run it on an idle machine.
"""
import argparse
import glob
import json
import os
import re
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def log(msg):
    print(msg, file=sys.stderr, flush=True)


def run(cmd, env=None, timeout=3600):
    """(wall seconds, stdout, stderr); raises on failure"""
    t0 = time.perf_counter()
    p = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout)
    wall = time.perf_counter() - t0
    if p.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} exited {p.returncode}:\n{p.stderr[-2000:]}")
    return wall, p.stdout, p.stderr


def json_lines(text):
    return [json.loads(l) for l in text.splitlines() if l.startswith("{")]


def field(text, key):
    """the last `key VALUE` on a line of text, as a float"""
    v = None
    for m in re.finditer(r"(?m)^" + re.escape(key) + r" ([0-9.eE+-]+)", text):
        v = float(m.group(1))
    return v


def torch_blas_dir():
    for d in sorted(glob.glob("/usr/lib/*/openblas-pthread")) + sorted(glob.glob("/usr/lib/*/openblas-openmp")):
        if os.path.exists(os.path.join(d, "libblas.so.3")):
            return d
    return None


def bench_kernels(nb, threads, sizes, res):
    for t in threads:
        _, out, err = run([nb, "peak", "--threads", str(t)])
        log(err.strip())
        res["peak"].extend(json_lines(out))
    for t in threads:
        _, out, err = run([nb, "sgemm", "--threads", str(t), "--sizes", sizes])
        log(err.strip())
        res["sgemm"].extend(json_lines(out))


def bench_model(name, nndc, threads, limit, use_torch, res, work, repeat=1):
    model = os.path.join("examples", f"{name}.nnd")
    prog = os.path.join(work, name)
    best = None
    for _ in range(3):
        wall, _, _ = run([nndc, "build", model, "-o", prog])
        best = wall if best is None else min(best, wall)
    log(f"nndc build {model}: {best:.2f} s (best of 3)")
    r = {"model": name, "compile_s": round(best, 3), "limit": limit, "nnd": {}, "torch": []}
    lim = ["--limit", str(limit)] if limit else []
    wall = min(run([prog, "train", "--steps", "1", "--threads", "1"] + lim)[0] for _ in range(max(repeat, 3)))
    r["startup_s"] = round(wall, 3)
    r["repeat"] = repeat
    log(f"{name} train --steps 1 (start-up): {wall:.2f} s (best of {max(repeat, 3)})")
    for t in threads:
        # best of `repeat` whole runs: the same for nnd and for PyTorch
        wall, out, err = min((run([prog, "train", "--epochs", "1", "--threads", str(t)] + lim)
                              for _ in range(repeat)), key=lambda x: x[0])
        sps = field(err + out, "samples_per_s")
        acc = None
        for m in re.finditer(r"acc ([0-9.]+)", out):
            acc = float(m.group(1))
        sha = re.search(r"sha256 ([0-9a-f]+)", out)
        r["nnd"][str(t)] = {"samples_per_s": sps, "epoch_plus_eval_s": round(wall, 3), "acc": acc,
                            "sha256": sha.group(1) if sha else None}
        log(f"nnd {name} {t} thread(s): {sps} samples/s, 1 epoch + eval (whole process) {wall:.2f} s, acc {acc}")
    # the same at the most threads with the decoded-dataset cache off: the
    # first run of a program on a machine (gzip decoded at start-up)
    t = max(threads)
    cold = min(run([prog, "train", "--epochs", "1", "--threads", str(t)] + lim,
                   env=dict(os.environ, NND_CACHE_DIR="off"))[0] for _ in range(repeat))
    r["nnd"][str(t)]["epoch_plus_eval_cold_s"] = round(cold, 3)
    log(f"nnd {name} {t} thread(s), no dataset cache (NND_CACHE_DIR=off): 1 epoch + eval {cold:.2f} s")
    shas = {v["sha256"] for v in r["nnd"].values()}
    r["nnd_same_sha_across_threads"] = len(shas) == 1
    if use_torch:
        script = os.path.join("bench", "torch_mlp.py" if name == "mlp_fashion" else "torch_cnn.py")
        blas = torch_blas_dir()
        for tt in threads:
            for bt in threads:
                env = dict(os.environ, OMP_NUM_THREADS=str(tt), OPENBLAS_NUM_THREADS=str(bt))
                if blas:
                    env["LD_LIBRARY_PATH"] = blas + (":" + env["LD_LIBRARY_PATH"] if env.get("LD_LIBRARY_PATH") else "")
                best = None
                try:
                    for _ in range(repeat):
                        _, out, err = run(["/usr/bin/python3", script, "--threads", str(tt), "--epochs", "1",
                                           "--time-only", "--time-eval"] + lim, env=env)
                        tot = field(out, "epoch_seconds") + field(out, "eval_seconds")
                        if best is None or tot < best[0]:
                            best = (tot, out, err)
                except RuntimeError as e:
                    log(f"pytorch {name} failed: {e}")
                    continue
                _, out, err = best
                sps = field(out, "samples_per_s")
                ep, ev = field(out, "epoch_seconds"), field(out, "eval_seconds")
                bl = re.search(r"(?m)^blas (.*)$", err)
                r["torch"].append({"torch_threads": tt, "blas_threads": bt, "samples_per_s": sps,
                                   "epoch_plus_eval_s": round(ep + ev, 3), "blas": bl.group(1) if bl else None})
                log(f"pytorch {name} torch {tt} / blas {bt} threads: {sps} samples/s, 1 epoch + eval {ep + ev:.2f} s")
    res["models"].append(r)


def bench_conv(nndc, threads, use_torch, res, work):
    """cnn_fashion's two convolutions: nnd's time per step from `train
    --profile` (every train-graph node whose instance path is the conv's:
    im2col, matmuls, layout changes, col2im; the eval graph gives the
    forward alone) against PyTorch's conv2d on the same shapes"""
    prog = os.path.join(work, "cnn_conv")
    run([nndc, "build", os.path.join("examples", "cnn_fashion.nnd"), "-o", prog])
    steps = 12
    for t in threads:
        env = dict(os.environ, NND_PROFILE_TOP="100000")
        _, out, err = run([prog, "train", "--steps", str(steps), "--threads", str(t), "--profile",
                           "--limit", str(128 * steps)], env=env)
        rows = []
        for line in err.splitlines():
            f = line.split()
            if len(f) == 8 and f[0] in ("train", "eval") and f[1].isdigit():
                secs, calls = float(f[4]), int(f[6])
                gf = float(f[7]) if f[7] != "-" else 0.0
                rows.append((f[0], f[3], secs, calls, gf * secs * 1e9))
        for layer in ("cnn.c1.y", "cnn.c2.y"):
            tr = [r for r in rows if r[0] == "train" and r[1] == layer]
            ev = [r for r in rows if r[0] == "eval" and r[1] == layer]
            if not tr or not ev:
                log(f"conv bench: no profile rows for {layer}")
                continue
            tt = sum(r[2] for r in tr) / tr[0][3]
            tf = sum(r[2] for r in ev) / ev[0][3]
            ft = sum(r[4] for r in tr) / tr[0][3]
            ff = sum(r[4] for r in ev) / ev[0][3]
            e = {"layer": layer, "threads": t, "nnd_fwd_gflops": ff / tf * 1e-9,
                 "nnd_bwd_gflops": (ft - ff) / max(tt - tf, 1e-9) * 1e-9}
            log(f"nnd conv {layer} {t} thread(s): fwd {e['nnd_fwd_gflops']:.1f} GFLOP/s, "
                f"bwd {e['nnd_bwd_gflops']:.1f} GFLOP/s")
            if use_torch:
                _, tout, _ = run(["/usr/bin/python3", "bench/torch_conv.py", "--threads", str(t)],
                                 env=dict(os.environ, OMP_NUM_THREADS=str(t)))
                for j in json_lines(tout):
                    if j["layer"] == layer:
                        e["torch_fwd_gflops"] = j["fwd_flops"] / j["fwd_s"] * 1e-9
                        e["torch_bwd_gflops"] = j["bwd_flops"] / j["bwd_s"] * 1e-9
                        log(f"pytorch conv {layer} {t} thread(s): fwd {e['torch_fwd_gflops']:.1f} GFLOP/s, "
                            f"bwd {e['torch_bwd_gflops']:.1f} GFLOP/s")
            res["conv"].append(e)


def ratios(res):
    rows = []   # (label, value, target or None)
    peaks = {p["threads"]: p["gflops"] for p in res["peak"]}
    for s in res["sgemm"]:
        if s["openblas_gflops"]:
            tgt = None
            if s["n"] == 1024:
                tgt = 0.80 if s["threads"] == 1 else 0.75
            rows.append((f"sgemm {s['n']} {s['threads']}t / OpenBLAS", s["nnd_gflops"] / s["openblas_gflops"], tgt))
    for s in res["sgemm"]:
        if s["threads"] in peaks:
            rows.append((f"sgemm {s['n']} {s['threads']}t / FMA peak", s["nnd_gflops"] / peaks[s["threads"]], None))
    for e in res.get("conv", []):
        short = e["layer"].split(".")[1]
        if e["threads"] in peaks:
            rows.append((f"conv {short} fwd {e['threads']}t / FMA peak", e["nnd_fwd_gflops"] / peaks[e["threads"]], None))
            rows.append((f"conv {short} bwd {e['threads']}t / FMA peak", e["nnd_bwd_gflops"] / peaks[e["threads"]], None))
        if e.get("torch_fwd_gflops"):
            rows.append((f"conv {short} fwd {e['threads']}t / torch", e["nnd_fwd_gflops"] / e["torch_fwd_gflops"], None))
            rows.append((f"conv {short} bwd {e['threads']}t / torch", e["nnd_bwd_gflops"] / e["torch_bwd_gflops"], None))
    for m in res["models"]:
        if not m["torch"]:
            continue
        short = m["model"].split("_")[0]
        for t, v in sorted(m["nnd"].items()):
            same = [x for x in m["torch"] if x["torch_threads"] == int(t) and x["blas_threads"] == int(t)]
            if same and same[0]["samples_per_s"]:
                rows.append((f"{short} train {t}t / torch {t}t", v["samples_per_s"] / same[0]["samples_per_s"], None))
        best = min(m["torch"], key=lambda x: x["epoch_plus_eval_s"])
        top = m["nnd"].get("2") or m["nnd"][max(m["nnd"])]
        m["torch_best"] = best
        tgt = 2.0 if short == "mlp" else 1.0
        rows.append((f"{short} epoch+eval: torch best ({best['torch_threads']}t/{best['blas_threads']}b) / nnd 2t",
                     best["epoch_plus_eval_s"] / top["epoch_plus_eval_s"], tgt))
        if top.get("epoch_plus_eval_cold_s"):
            rows.append((f"{short} epoch+eval: torch best / nnd 2t, no dataset cache",
                         best["epoch_plus_eval_s"] / top["epoch_plus_eval_cold_s"], None))
    return rows


def svg(rows, path, title):
    w, bh, left = 900, 22, 390
    h = 60 + bh * len(rows) + 30
    vmax = max([v for _, v, _ in rows] + [t or 0 for _, _, t in rows] + [1.0]) * 1.1
    sx = (w - left - 30) / vmax
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" font-family="sans-serif" font-size="12">',
           f'<rect width="{w}" height="{h}" fill="white"/>',
           f'<text x="10" y="22" font-size="15" font-weight="bold">{title}</text>',
           '<text x="10" y="40" fill="#555">ratio (higher is better for nnd); black tick: target; grey line: 1.0</text>']
    for i, (label, v, tgt) in enumerate(rows):
        y = 55 + i * bh
        ok = tgt is None or v >= tgt
        color = "#3a7bd5" if tgt is None else ("#2e9e44" if ok else "#d0413a")
        out.append(f'<text x="{left - 8}" y="{y + 14}" text-anchor="end">{label}</text>')
        out.append(f'<rect x="{left}" y="{y + 3}" width="{max(v * sx, 1):.1f}" height="{bh - 6}" fill="{color}"/>')
        out.append(f'<text x="{left + v * sx + 4:.1f}" y="{y + 14}">{v:.2f}</text>')
        if tgt:
            out.append(f'<line x1="{left + tgt * sx:.1f}" x2="{left + tgt * sx:.1f}" y1="{y + 1}" y2="{y + bh - 1}" '
                       'stroke="black" stroke-width="2"/>')
    x1 = left + sx
    out.append(f'<line x1="{x1:.1f}" x2="{x1:.1f}" y1="50" y2="{h - 25}" stroke="#999" stroke-dasharray="4,3"/>')
    out.append("</svg>")
    with open(path, "w") as f:
        f.write("\n".join(out) + "\n")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="sgemm up to 1024, small model runs")
    ap.add_argument("--no-torch", action="store_true")
    ap.add_argument("--no-kernels", action="store_true", help="skip peak and sgemm")
    ap.add_argument("--models", default="mlp_fashion,cnn_fashion")
    ap.add_argument("--mlp-limit", type=int, default=0, help="training samples (0: all 60000)")
    ap.add_argument("--cnn-limit", type=int, default=12800, help="training samples (0: all 60000)")
    ap.add_argument("--threads", default="1,2")
    ap.add_argument("--repeat", type=int, default=0,
                    help="whole runs per configuration, best kept, nnd and PyTorch alike "
                         "(default: 3 for mlp_fashion, 1 for cnn_fashion)")
    ap.add_argument("--out", default=os.path.join(ROOT, "bench", "results"))
    a = ap.parse_args()

    build = os.environ.get("NND_BUILD", os.path.join(ROOT, "build"))
    nndc, nb = os.path.join(build, "nndc"), os.path.join(build, "nnd_bench")
    for f in (nndc, nb):
        if not os.access(f, os.X_OK):
            sys.exit(f"bench: {f} not found: build first (cmake -S . -B build && cmake --build build -j2)")
    use_torch = not a.no_torch
    if use_torch and subprocess.run(["/usr/bin/python3", "-c", "import torch, numpy"],
                                    capture_output=True).returncode != 0:
        log("bench: /usr/bin/python3 cannot import torch/numpy (apt-get install python3-torch): nnd only")
        use_torch = False
    threads = [int(t) for t in a.threads.split(",")]
    sizes = "256,512,1024" if a.quick else "256,512,1024,2048"
    if a.quick:
        a.mlp_limit = a.mlp_limit or 12800
        a.cnn_limit = min(a.cnn_limit or 2560, 2560)
    res = {"peak": [], "sgemm": [], "models": [], "conv": [],
           "cpu": next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?"),
           "nproc": os.cpu_count(), "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
           "git_rev": subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True,
                                     text=True).stdout.strip() or None}
    if use_torch:
        res["torch"] = subprocess.run(["/usr/bin/python3", "-c", "import torch; print(torch.__version__)"],
                                      capture_output=True, text=True).stdout.strip()
        res["torch_blas_dir"] = torch_blas_dir()
    if not a.no_kernels:
        bench_kernels(nb, threads, sizes, res)
    with tempfile.TemporaryDirectory(prefix="nnd-bench.") as work:
        if not a.no_kernels and "cnn_fashion" in a.models:
            bench_conv(nndc, threads, use_torch, res, work)
        for name in a.models.split(","):
            lim = a.mlp_limit if name.startswith("mlp") else a.cnn_limit
            rep = a.repeat or (3 if name == "mlp_fashion" else 1)
            bench_model(name, nndc, threads, lim, use_torch, res, work, rep)
    rows = ratios(res)
    res["ratios"] = [{"what": l, "ratio": round(v, 3), "target": t} for l, v, t in rows]
    with open(a.out + ".json", "w") as f:
        json.dump(res, f, indent=1)
    svg(rows, a.out + ".svg", f"nnd benchmark ({res['cpu']}, {res['nproc']} cores, {res['date']})")
    print(f"\n{'what':68s} {'ratio':>7s} {'target':>7s}")
    for l, v, t in rows:
        print(f"{l:68s} {v:7.2f} {('>= %.2f' % t) if t else '':>7s}")
    for m in res["models"]:
        print(f"{m['model']}: nndc build {m['compile_s']} s, start-up (train --steps 1) {m['startup_s']} s, "
              f"same sha256 at {','.join(m['nnd'])} threads: {m['nnd_same_sha_across_threads']}")
    for p in res["peak"]:
        print(f"fma peak {p['threads']} thread(s): {p['gflops']} GFLOP/s ({p['isa']})")
    for s in res["sgemm"]:
        print(f"sgemm {s['n']}^3 {s['threads']} thread(s): nnd {s['nnd_gflops']} GFLOP/s, "
              f"openblas {s['openblas_gflops']} GFLOP/s")
    log(f"wrote {a.out}.json and {a.out}.svg")


if __name__ == "__main__":
    main()
