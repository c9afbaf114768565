#!/usr/bin/python3
"""examples/mlp_fashion.nnd in PyTorch (1.13), for comparison with nnd.

Same model and settings: x = images/255 flattened; Linear(784,256) -> relu ->
dropout(0.1) -> Linear(256,10); weights kaiming_uniform (gain sqrt(2), bound
sqrt(6/fan_in)), biases zero; cross-entropy; SGD lr 0.05 momentum 0.9; cosine
schedule per step over 4 epochs; batch 64; shuffled; last partial batch kept;
evaluation on the test set after each epoch.

Prints `epoch E train_loss X eval_loss Y acc Z` per epoch and, last,
`samples_per_s X` (training only: no loading, no evaluation).

    /usr/bin/python3 bench/torch_mlp.py --threads 1 --epochs 1
"""
import argparse
import gzip
import math
import os
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F

DATA = "/usr/share/datasets/fashion-mnist"


def read_idx(path):
    with gzip.open(path, "rb") as f:
        raw = f.read()
    if raw[0] != 0 or raw[1] != 0 or raw[2] != 0x08:
        raise SystemExit(f"{path}: not an idx file of u8")
    ndim = raw[3]
    dims = [int.from_bytes(raw[4 + 4 * i:8 + 4 * i], "big") for i in range(ndim)]
    data = np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim)
    return data.reshape(dims)


def load(prefix, limit=None):
    x = read_idx(os.path.join(DATA, f"{prefix}-images-idx3-ubyte.gz"))
    y = read_idx(os.path.join(DATA, f"{prefix}-labels-idx1-ubyte.gz"))
    if limit is not None:
        x, y = x[:limit], y[:limit]
    # u8 kept as in the nnd model; converted to f32/255 inside forward()
    return torch.from_numpy(x.copy()), torch.from_numpy(y.astype(np.int64))


class MLP(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1 = torch.nn.Linear(784, 256)
        self.fc2 = torch.nn.Linear(256, 10)
        for fc in (self.fc1, self.fc2):
            fan_in = fc.weight.shape[1]
            bound = math.sqrt(6.0 / fan_in)  # kaiming_uniform, gain sqrt(2)
            with torch.no_grad():
                fc.weight.uniform_(-bound, bound)
                fc.bias.zero_()

    def forward(self, images):
        x = (images.to(torch.float32) / 255.0).reshape(-1, 784)
        h = F.relu(self.fc1(x))
        h = F.dropout(h, p=0.1, training=self.training)
        return self.fc2(h)


def evaluate(model, x, y, batch=1000):
    model.eval()
    loss_sum, correct = 0.0, 0
    with torch.no_grad():
        for i in range(0, x.shape[0], batch):
            logits = model(x[i:i + batch])
            t = y[i:i + batch]
            loss_sum += F.cross_entropy(logits, t, reduction="sum").item()
            correct += (logits.argmax(1) == t).sum().item()
    model.train()
    return loss_sum / x.shape[0], correct / x.shape[0]


def blas_in_use():
    """The BLAS library this process mapped (Debian's torch uses libblas.so.3:
    netlib's reference BLAS unless OpenBLAS/BLIS provide it, ~15x slower)."""
    torch.ones(8, 8) @ torch.ones(8, 8)
    try:
        with open("/proc/self/maps") as f:
            libs = {line.split()[-1] for line in f if ".so" in line}
    except OSError:
        return "unknown"
    hits = sorted(l for l in libs if any(k in os.path.basename(l) for k in
                                         ("blas", "blis", "mkl_core")))
    return " ".join(os.path.realpath(l) for l in hits) or "none"


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--epochs", type=int, default=4)
    ap.add_argument("--limit", type=int, default=None,
                    help="train on the first N samples only")
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--lr", type=float, default=0.05)
    ap.add_argument("--momentum", type=float, default=0.9)
    ap.add_argument("--schedule-epochs", type=int, default=4,
                    help="cosine schedule length in epochs (the model's 4)")
    ap.add_argument("--time-only", action="store_true",
                    help="only measure training samples/s: no evaluation")
    ap.add_argument("--device", default="cpu", help="cpu or cuda (data moved there first)")
    ap.add_argument("--time-eval", action="store_true",
                    help="with --time-only: also time one evaluation pass")
    ap.add_argument("--interop", type=int, default=1, help=argparse.SUPPRESS)
    a = ap.parse_args()

    torch.set_num_threads(a.threads)
    try:
        torch.set_num_interop_threads(1)
    except RuntimeError:
        pass
    torch.manual_seed(a.seed)
    gen = torch.Generator().manual_seed(a.seed)

    xtr, ytr = load("train", a.limit)
    if not a.time_only:
        xte, yte = load("t10k")
    n = xtr.shape[0]
    steps_per_epoch = (n + a.batch - 1) // a.batch  # last partial batch kept
    total_steps = a.schedule_epochs * steps_per_epoch

    dev = torch.device(a.device)
    xtr, ytr = xtr.to(dev), ytr.to(dev)
    if not a.time_only:
        xte, yte = xte.to(dev), yte.to(dev)
    sync = torch.cuda.synchronize if dev.type == "cuda" else (lambda: None)
    model = MLP().to(dev)
    opt = torch.optim.SGD(model.parameters(), lr=a.lr, momentum=a.momentum)
    model.train()

    step, train_time, trained = 0, 0.0, 0
    for epoch in range(1, a.epochs + 1):
        t0 = time.perf_counter()
        perm = torch.randperm(n, generator=gen).to(dev)
        loss_sum = torch.zeros((), dtype=torch.float64, device=dev)
        for i in range(0, n, a.batch):
            idx = perm[i:i + a.batch]
            lr = a.lr * 0.5 * (1.0 + math.cos(math.pi * min(step, total_steps) / total_steps))
            for g in opt.param_groups:
                g["lr"] = lr
            logits = model(xtr[idx])
            loss = F.cross_entropy(logits, ytr[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            loss_sum += loss.detach().double() * idx.shape[0]
            step += 1
        sync()
        train_time += time.perf_counter() - t0
        trained += n
        train_loss = loss_sum.item() / n
        if a.time_only:
            print(f"epoch {epoch} train_loss {train_loss:.4f} "
                  f"samples_per_s {n / (time.perf_counter() - t0):.0f}",
                  file=sys.stderr)
        else:
            eval_loss, acc = evaluate(model, xte, yte)
            print(f"epoch {epoch} train_loss {train_loss:.4f} "
                  f"eval_loss {eval_loss:.4f} acc {acc:.4f}", flush=True)
    print(f"samples_per_s {trained / train_time:.1f}")
    if a.time_eval:
        # one evaluation pass over the test set, data already in memory: with
        # the last epoch's training time, the "one epoch plus eval" figure
        xte, yte = load("t10k")
        xte, yte = xte.to(dev), yte.to(dev)
        sync()
        t0 = time.perf_counter()
        evaluate(model, xte, yte)
        print(f"eval_seconds {time.perf_counter() - t0:.3f}")
        print(f"epoch_seconds {train_time / a.epochs:.3f}")
    print(f"torch {torch.__version__} threads {a.threads} steps {step} "
          f"train_seconds {train_time:.3f}", file=sys.stderr)
    print(f"blas {blas_in_use()}", file=sys.stderr)


if __name__ == "__main__":
    main()
