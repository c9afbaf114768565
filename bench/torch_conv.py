#!/usr/bin/python3
"""Convolution forward and backward GFLOP/s in PyTorch on cnn_fashion's layers.

For each layer (batch 128; conv 3x3, pad 1, no bias): the forward time, and
the backward time (weight gradient, plus the input gradient where the
input needs one: not for the first layer, whose input is the data), best of
--reps, as JSON lines {"layer", "fwd_s", "bwd_s", "fwd_flops", "bwd_flops"}.

    /usr/bin/python3 bench/torch_conv.py --threads 2
"""
import argparse
import json
import time

import torch
import torch.nn.functional as F

LAYERS = [("cnn.c1.y", 1, 32, 28), ("cnn.c2.y", 32, 64, 14)]


def best(fn, reps):
    t = 1e30
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        t = min(t, time.perf_counter() - t0)
    return t


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--reps", type=int, default=10)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    g = torch.Generator().manual_seed(1)
    for name, c, o, hw in LAYERS:
        x = torch.randn(a.batch, c, hw, hw, generator=g, requires_grad=(c != 1))
        w = torch.randn(o, c, 3, 3, generator=g, requires_grad=True)
        fwd_flops = 2.0 * a.batch * o * hw * hw * c * 9
        with torch.no_grad():
            F.conv2d(x, w, padding=1)
            tf = best(lambda: F.conv2d(x, w, padding=1), a.reps)
        y = F.conv2d(x, w, padding=1)
        dy = torch.randn(y.shape, generator=g)

        def bwd():
            inputs = (x, w) if x.requires_grad else (w,)
            torch.autograd.grad(y, inputs, dy, retain_graph=True)
        bwd()
        tb = best(bwd, a.reps)
        bwd_flops = fwd_flops * (2 if x.requires_grad else 1)
        print(json.dumps({"layer": name, "threads": a.threads, "fwd_s": tf, "bwd_s": tb,
                          "fwd_flops": fwd_flops, "bwd_flops": bwd_flops}), flush=True)


if __name__ == "__main__":
    main()
