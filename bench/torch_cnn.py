#!/usr/bin/python3
"""examples/cnn_fashion.nnd in PyTorch (1.13), for comparison with nnd.

Same model and settings: x = images/255 as [B,1,28,28]; random horizontal
flip per sample (p 0.5) in training; two blocks conv3x3 (pad 1, no bias,
kaiming_normal) -> batchnorm (momentum 0.1, eps 1e-5) -> relu -> max_pool 2,
with 32 and 64 filters; flatten; Linear(3136, 10) xavier_uniform, bias zero;
cross-entropy; Adam lr 0.002; cosine schedule per step over 4 epochs; batch
128; shuffled; last partial batch kept; evaluation on the test set.

Prints `epoch E train_loss X eval_loss Y acc Z` per epoch and, last,
`samples_per_s X` (training only: no loading, no evaluation); with
--time-only --time-eval also `eval_seconds` and `epoch_seconds`.

    /usr/bin/python3 bench/torch_cnn.py --threads 2 --epochs 1 --time-only
"""
import argparse
import math
import os
import sys
import time

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from torch_mlp import blas_in_use, evaluate, load  # noqa: E402


class CNN(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.c1 = torch.nn.Conv2d(1, 32, 3, padding=1, bias=False)
        self.b1 = torch.nn.BatchNorm2d(32, eps=1e-5, momentum=0.1)
        self.c2 = torch.nn.Conv2d(32, 64, 3, padding=1, bias=False)
        self.b2 = torch.nn.BatchNorm2d(64, eps=1e-5, momentum=0.1)
        self.fc = torch.nn.Linear(3136, 10)
        with torch.no_grad():
            for c in (self.c1, self.c2):
                torch.nn.init.kaiming_normal_(c.weight, nonlinearity="relu")
            torch.nn.init.xavier_uniform_(self.fc.weight)
            self.fc.bias.zero_()

    def forward(self, images):
        x = (images.to(torch.float32) / 255.0).reshape(-1, 1, 28, 28)
        if self.training:
            flip = torch.rand(x.shape[0], device=x.device) < 0.5
            x = torch.where(flip[:, None, None, None], x.flip(3), x)
        x = F.max_pool2d(F.relu(self.b1(self.c1(x))), 2)
        x = F.max_pool2d(F.relu(self.b2(self.c2(x))), 2)
        return self.fc(x.flatten(1))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--epochs", type=int, default=4)
    ap.add_argument("--limit", type=int, default=None)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--lr", type=float, default=0.002)
    ap.add_argument("--schedule-epochs", type=int, default=4)
    ap.add_argument("--time-only", action="store_true")
    ap.add_argument("--device", default="cpu", help="cpu or cuda (data moved there first)")
    ap.add_argument("--time-eval", action="store_true")
    a = ap.parse_args()

    torch.set_num_threads(a.threads)
    try:
        torch.set_num_interop_threads(1)
    except RuntimeError:
        pass
    torch.manual_seed(a.seed)
    gen = torch.Generator().manual_seed(a.seed)
    xtr, ytr = load("train", a.limit)
    xte, yte = load("t10k") if (not a.time_only or a.time_eval) else (None, None)
    n = xtr.shape[0]
    steps_per_epoch = (n + a.batch - 1) // a.batch
    total_steps = a.schedule_epochs * steps_per_epoch

    dev = torch.device(a.device)
    xtr, ytr = xtr.to(dev), ytr.to(dev)
    if xte is not None:
        xte, yte = xte.to(dev), yte.to(dev)
    sync = torch.cuda.synchronize if dev.type == "cuda" else (lambda: None)
    model = CNN().to(dev)
    opt = torch.optim.Adam(model.parameters(), lr=a.lr)
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
            loss = F.cross_entropy(model(xtr[idx]), ytr[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            loss_sum += loss.detach().double() * idx.shape[0]
            step += 1
        sync()
        dt = time.perf_counter() - t0
        train_time += dt
        trained += n
        if a.time_only:
            print(f"epoch {epoch} train_loss {loss_sum.item() / n:.4f} samples_per_s {n / dt:.0f}",
                  file=sys.stderr)
        else:
            eval_loss, acc = evaluate(model, xte, yte)
            print(f"epoch {epoch} train_loss {loss_sum.item() / n:.4f} "
                  f"eval_loss {eval_loss:.4f} acc {acc:.4f}", flush=True)
    print(f"samples_per_s {trained / train_time:.1f}")
    if a.time_eval:
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
