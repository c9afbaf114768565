"""gen.py - the adversarial data and the expected sums for tests/plans.

Writes adversarial.csv (rows whose sums depend on the order of additions:
large values that cancel, small values that vanish next to large ones) and,
for every plan family, the expected per-row sums computed here in numpy
float32 by the plan's own definition (passes/plans.c) -- an oracle that
shares no code with nnd's kernels.

    /usr/bin/python3 gen.py     # rewrites adversarial.csv and expected_*.txt
"""
import numpy as np

rng = np.random.default_rng(7)
N, F = 12, 16
rows = []
for r in range(N):
    big = np.float32(10.0 ** rng.integers(6, 9))
    v = rng.normal(0, 1, F).astype(np.float32)
    v[rng.integers(0, F)] = big
    v[rng.integers(0, F)] = -big
    v[::5] *= np.float32(3e-4)
    rows.append(v.astype(np.float32))
with open("adversarial.csv", "w") as f:
    f.write(",".join(f"f{i}" for i in range(F)) + ",label\n")
    for r, v in enumerate(rows):
        f.write(",".join(repr(float(x)) for x in v) + f",{r % 2}\n")


def seq(x):
    acc = np.float32(0)
    for t in x:
        acc = np.float32(acc + t)
    return acc


def blocked(x, n):
    acc = np.float32(0)
    for s in range(0, len(x), n):
        acc = np.float32(acc + seq(x[s:s + n]))
    return acc


def tree(x, f):
    level = list(x)
    if not level:
        return np.float32(0)
    while len(level) > 1:
        nxt = []
        for s in range(0, len(level), f):
            g = level[s]
            for t in level[s + 1:s + f]:
                g = np.float32(g + t)
            nxt.append(g)
        level = nxt
    return level[0]


plans = {"seq": seq, "blocked_4": lambda x: blocked(x, 4), "blocked_3": lambda x: blocked(x, 3),
         "tree_2": lambda x: tree(x, 2), "tree_3": lambda x: tree(x, 3)}
# the CSV as nnd reads it: strtof of the printed values
data = [np.array([np.float32(float(t)) for t in line.split(",")[:F]], dtype=np.float32)
        for line in open("adversarial.csv").read().splitlines()[1:]]
for name, fn in plans.items():
    with open(f"expected_{name}.txt", "w") as f:
        for v in data:
            f.write("%.9g\n" % fn(v))
