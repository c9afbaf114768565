"""st_compare.py A.safetensors B.safetensors - which tensors the two files
share by name, and whether their bytes are identical.  Exit 1 if a shared
tensor differs.  Pure Python: the safetensors format is an 8-byte length,
a JSON header and the data."""
import json
import struct
import sys


def load(path):
    raw = open(path, "rb").read()
    (n,) = struct.unpack("<Q", raw[:8])
    head = json.loads(raw[8:8 + n])
    data = raw[8 + n:]
    return {k: (v["shape"], data[v["data_offsets"][0]:v["data_offsets"][1]])
            for k, v in head.items() if k != "__metadata__"}


a, b = load(sys.argv[1]), load(sys.argv[2])
bad = 0
for name in sorted(set(a) & set(b)):
    same = a[name] == b[name]
    bad += not same
    print(f"{name}: {'same' if same else 'DIFFERENT'}")
for name in sorted(set(a) ^ set(b)):
    print(f"{name}: only in {'first' if name in a else 'second'}")
sys.exit(1 if bad else 0)
