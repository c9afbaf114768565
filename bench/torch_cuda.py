#!/usr/bin/python3
"""PyTorch on the GPU, for scripts/gpu-check.sh: training samples/s of
examples/mlp_fashion.nnd and examples/cnn_fashion.nnd's models (same layers,
batch 64, SGD momentum 0.9; random data of the right shape: throughput
only), and FP32 matmul (TF32 off: cuBLAS SGEMM) at the shapes of
bench/cuda_mm.nnd.  Prints lines `torch MODEL samples_per_s X` and
`torch sgemm M N K: X GFLOP/s`; exits 77 without torch or CUDA."""
import sys
import time

try:
    import torch
    import torch.nn as nn
    import torch.nn.functional as F
except Exception as e:  # noqa: BLE001
    print(f"torch: skipped ({e})")
    sys.exit(77)
if not torch.cuda.is_available():
    print("torch: skipped (no CUDA in this torch)")
    sys.exit(77)
torch.backends.cuda.matmul.allow_tf32 = False
torch.backends.cudnn.allow_tf32 = False
dev = torch.device("cuda")
steps = int(sys.argv[1]) if len(sys.argv) > 1 else 200


class Mlp(nn.Module):
    def __init__(self):
        super().__init__()
        self.h1, self.out = nn.Linear(784, 256), nn.Linear(256, 10)

    def forward(self, x):
        return self.out(F.dropout(F.relu(self.h1(x.view(-1, 784))), 0.1, self.training))


class Cnn(nn.Module):
    def __init__(self):
        super().__init__()
        self.c1, self.b1 = nn.Conv2d(1, 32, 3, padding=1, bias=False), nn.BatchNorm2d(32)
        self.c2, self.b2 = nn.Conv2d(32, 64, 3, padding=1, bias=False), nn.BatchNorm2d(64)
        self.fc = nn.Linear(3136, 10)

    def forward(self, x):
        x = x.view(-1, 1, 28, 28)
        x = F.max_pool2d(F.relu(self.b1(self.c1(x))), 2)
        x = F.max_pool2d(F.relu(self.b2(self.c2(x))), 2)
        return self.fc(x.flatten(1))


def bench(name, model):
    model = model.to(dev).train()
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    x = torch.randint(0, 256, (steps, 64, 784), device=dev, dtype=torch.uint8)
    y = torch.randint(0, 10, (steps, 64), device=dev)
    for i in range(min(steps, 20)):  # warm-up (cuDNN autotuning, allocator)
        opt.zero_grad()
        F.cross_entropy(model(x[i].float() / 255.0), y[i]).backward()
        opt.step()
    torch.cuda.synchronize()
    t0 = time.perf_counter()
    for i in range(steps):
        opt.zero_grad()
        F.cross_entropy(model(x[i].float() / 255.0), y[i]).backward()
        opt.step()
    torch.cuda.synchronize()
    print(f"torch {name} samples_per_s {steps * 64 / (time.perf_counter() - t0):.0f} ({torch.cuda.get_device_name()})")


bench("mlp_fashion", Mlp())
bench("cnn_fashion", Cnn())
for m, n, k in ((1024, 4096, 784), (1024, 4096, 4096), (4096, 4096, 4096)):
    a = torch.zeros(m, k, device=dev)
    b = torch.zeros(k, n, device=dev)
    torch.mm(a, b)
    torch.cuda.synchronize()
    t0 = time.perf_counter()
    for _ in range(20):
        torch.mm(a, b)
    torch.cuda.synchronize()
    dt = (time.perf_counter() - t0) / 20
    print(f"torch sgemm M={m} N={n} K={k}: {2 * m * n * k / dt / 1e9:.0f} GFLOP/s")
