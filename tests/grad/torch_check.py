"""torch_check.py DUMP - recompute nnd's parameter gradients with PyTorch.

nnd_gradcheck --dump writes the forward part of a compiled train graph
(node by node, with evaluated shapes), the batch, the parameters and the
gradients nnd computed.  This script interprets the same graph with torch
ops in float64 and lets torch.autograd differentiate it: an oracle written
by other people, sharing no code with nnd's autodiff.  Exit 0 when every
gradient agrees (|nnd - torch| <= 1e-4 + 1e-3 |torch|), 1 otherwise, 77 when
the graph holds an op this interpreter cannot reproduce.  Dropout masks
and random_crop windows come from the dump (computed by nnd's Philox
stream rules); the rest is PyTorch's.
"""
import sys

import torch
import torch.nn.functional as F

torch.set_default_dtype(torch.float64)


def main(path):
    nodes, inputs, params, grads, masks, crops = {}, {}, {}, {}, {}, {}
    B = loss_id = None
    nnd_loss = None
    with open(path) as f:
        for line in f:
            t = line.split()
            if not t:
                continue
            if t[0] == "B":
                B = int(t[1])
            elif t[0] == "loss":
                loss_id = int(t[1])
            elif t[0] == "lossvalue":
                nnd_loss = float(t[1])
            elif t[0] == "node":
                nid, op, nin = int(t[1]), t[2], int(t[3])
                ins = [int(x) for x in t[4:4 + nin]]
                k = 4 + nin
                ia = [int(x) for x in t[k + 1:k + 5]]
                fa = [float(x) for x in t[k + 6:k + 10]]
                dt = t[k + 11]
                rank = int(t[k + 13])
                dims = [int(x) for x in t[k + 14:k + 14 + rank]]
                nodes[nid] = (op, ins, ia, fa, dt, dims)
            elif t[0] == "input":
                k, dt, n = int(t[1]), int(t[2]), int(t[3])
                vals = t[4:4 + n]
                inputs[k] = torch.tensor([float(v) for v in vals]) if dt == 0 else \
                    torch.tensor([int(v) for v in vals], dtype=torch.int64)
            elif t[0] == "crop":
                o = [int(v) for v in t[3:]]
                crops[int(t[1])] = list(zip(o[0::2], o[1::2]))
            elif t[0] == "mask":
                masks[int(t[1])] = torch.tensor([float(v) for v in t[3:]])
            elif t[0] == "param":
                params[int(t[1])] = torch.tensor([float(v) for v in t[3:]], requires_grad=True)
            elif t[0] == "grad":
                grads[int(t[1])] = torch.tensor([float(v) for v in t[3:]])

    val = {}
    for nid in sorted(nodes):
        op, ins, ia, fa, dt, dims = nodes[nid]
        x = [val[i] for i in ins]
        shape = tuple(dims)
        if op == "input":
            v = inputs[ia[0]].reshape(shape)
        elif op == "param":
            v = params[ia[0]].reshape(shape)
        elif op == "const":
            v = torch.full(shape, fa[0])
        elif op == "numel":
            v = torch.tensor(float(ia[0] * (B ** ia[1])))
        elif op == "cast":
            v = x[0].to(torch.float64) if dt == "f32" else x[0].to(torch.int64)
        elif op in ("neg", "exp", "log", "sqrt", "tanh", "sigmoid", "relu"):
            v = getattr(torch, op)(x[0])
        elif op == "gelu":
            v = F.gelu(x[0])
        elif op in ("add", "sub", "mul", "div", "pow", "maximum", "minimum"):
            v = getattr(torch, op)(x[0], x[1])
        elif op == "ge":
            v = (x[0] >= x[1]).to(torch.float64)
        elif op == "where":
            v = torch.where(x[0] != 0, x[1], x[2])
        elif op == "reshape":
            v = x[0].reshape(shape)
        elif op == "transpose":
            # ia0: the permutation as decimal digits, perm[0] first
            perm = [int(ch) for ch in str(ia[0]).zfill(len(shape))] if shape else []
            v = x[0].permute(*perm)
        elif op == "broadcast":
            v = x[0].broadcast_to(shape)
        elif op == "random_crop" and nid in crops:
            # the windows come from nnd's Philox rule; padding and slicing are torch's
            S, P = ia[0], ia[1]
            xp = F.pad(x[0], (P, P, P, P))
            v = torch.stack([xp[r, ..., oy:oy + S, ox:ox + S] for r, (oy, ox) in enumerate(crops[nid])])
        elif op == "crop":
            S, P = ia[0], ia[1]
            v = F.pad(x[0], (P, P, P, P))[..., ia[2]:ia[2] + S, ia[3]:ia[3] + S]
        elif op == "matmul":
            a = x[0].transpose(-2, -1) if ia[0] else x[0]
            b = x[1].transpose(-2, -1) if ia[1] else x[1]
            v = a @ b
        elif op in ("sum", "mean"):
            v = getattr(torch, op)(x[0], dim=ia[0], keepdim=bool(ia[1]))
        elif op == "max":
            v = torch.amax(x[0], dim=ia[0], keepdim=bool(ia[1]))
        elif op == "argmax":
            v = torch.argmax(x[0], dim=ia[0], keepdim=bool(ia[1]))
        elif op == "softmax":
            v = torch.softmax(x[0], dim=-1)
        elif op == "log_softmax":
            v = torch.log_softmax(x[0], dim=-1)
        elif op == "cross_entropy":
            v = F.cross_entropy(x[0], x[1].to(torch.int64))
        elif op == "mse":
            v = F.mse_loss(x[0], x[1])
        elif op == "dropout" and nid in masks:
            # the mask comes from nnd's Philox stream; the arithmetic is torch's
            v = x[0] * masks[nid].reshape(shape) * fa[1]
        elif op == "im2col":
            # nnd's columns [C, KH, KW, N, OH, OW] from torch's unfold [N, C*KH*KW, OH*OW]
            C, KH, KW, N, OH, OW = shape
            u = F.unfold(x[0], kernel_size=(KH, KW), dilation=ia[2], padding=ia[1], stride=ia[0])
            v = u.reshape(N, C, KH, KW, OH, OW).permute(1, 2, 3, 0, 4, 5)
        elif op == "max_pool2d":
            v = F.max_pool2d(x[0], kernel_size=ia[0], stride=ia[1])
        elif op == "avg_pool2d":
            v = F.avg_pool2d(x[0], kernel_size=ia[0], stride=ia[1])
        elif op == "slice":
            v = x[0].narrow(ia[0], ia[1], ia[2] - ia[1])
        elif op == "concat":
            v = torch.cat([x[0], x[1]], dim=ia[0])
        elif op == "one_hot":
            v = F.one_hot(x[0].to(torch.int64), ia[0]).to(torch.float64)
        elif op == "embedding":
            v = F.embedding(x[1].to(torch.int64), x[0])
        elif op == "state":
            # batchnorm's running statistics: in the train graph they only
            # feed their own in-place update, never the loss
            v = torch.zeros(shape)
        elif op == "state_ema":
            v = x[0]
        elif op == "accuracy":
            v = (x[0].argmax(dim=1) == x[1]).to(torch.float64).mean()
        else:
            print(f"{path}: op '{op}' has no PyTorch equivalent here: skipped")
            return 77
        if tuple(v.shape) != shape:
            print(f"{path}: node {nid} ({op}): torch shape {tuple(v.shape)}, nnd {shape}")
            return 1
        val[nid] = v

    loss = val[loss_id]
    loss.backward()
    bad = 0
    for i, p in params.items():
        want = p.grad if p.grad is not None else torch.zeros_like(p)
        got = grads[i]
        err = (got - want).abs()
        tol = 1e-4 + 1e-3 * want.abs()
        if (err > tol).any():
            j = int(torch.argmax(err - tol))
            print(f"param {i}: {int((err > tol).sum())} of {len(got)} entries differ; "
                  f"worst [{j}] nnd {got[j].item():.8g} torch {want[j].item():.8g}")
            bad += 1
    print(f"{path}: loss nnd {nnd_loss:.8g} torch {loss.item():.8g}; "
          f"{len(params)} parameters, {bad} differ")
    if abs(nnd_loss - loss.item()) > 1e-4 + 1e-4 * abs(loss.item()):
        print("the losses differ")
        bad += 1
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
