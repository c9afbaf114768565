"""st_edit.py IN OUT EDIT... - writes a changed copy of a safetensors file,
for the checkpoint tests (tests/rt_loop/run.sh).  The EDITs, in order:

  meta KEY VALUE   set __metadata__[KEY] (the header is written again)
  resign           recompute state_sha256 as runtime/checkpoint.c does, so
                   that only the other checks can catch the edit
  sub OLD NEW      replace the first OLD in the JSON header text by NEW
                   (which must be there): duplicate keys, 60.0 for 60, ...
  flip BYTE        flip the lowest bit of data byte BYTE
  append N         append N zero bytes after the data

The header is padded with spaces to a multiple of 8 bytes, as nnd writes it.
Pure Python: the format is an 8-byte length, a JSON header and the data."""
import hashlib
import json
import struct
import sys


def state_sha256(meta, data):
    # checkpoint.c state_digest: a tag, then KEY\0VALUE\0 in byte order of
    # the keys (state_sha256 left out), then the data buffer
    h = hashlib.sha256(b"nnd-train-state 2\0")
    for k in sorted((k for k in meta if k != "state_sha256"), key=lambda k: k.encode()):
        h.update(k.encode() + b"\0" + meta[k].encode() + b"\0")
    h.update(data)
    return h.hexdigest()


def main(argv):
    raw = open(argv[1], "rb").read()
    (n,) = struct.unpack("<Q", raw[:8])
    text = raw[8:8 + n].decode().rstrip(" ")
    data = raw[8 + n:]
    args = argv[3:]
    while args:
        op = args.pop(0)
        if op in ("meta", "resign"):
            head = json.loads(text)
            if op == "meta":
                key, value = args.pop(0), args.pop(0)
                head["__metadata__"][key] = value
            else:
                m = head["__metadata__"]
                m["state_sha256"] = state_sha256(m, data)
            text = json.dumps(head, separators=(",", ":"))
        elif op == "sub":
            old, new = args.pop(0), args.pop(0)
            if old not in text:
                sys.exit(f"st_edit.py: '{old}' is not in the header of {argv[1]}")
            text = text.replace(old, new, 1)
        elif op == "flip":
            i = int(args.pop(0))
            data = data[:i] + bytes([data[i] ^ 1]) + data[i + 1:]
        elif op == "append":
            data += bytes(int(args.pop(0)))
        else:
            sys.exit(f"st_edit.py: unknown edit '{op}'")
    hb = text.encode()
    hb += b" " * (-len(hb) % 8)
    open(argv[2], "wb").write(struct.pack("<Q", len(hb)) + hb + data)


main(sys.argv)
