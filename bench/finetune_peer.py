#!/usr/bin/env python3
"""PyTorch peer of `engine_train --from MODEL --epochs 1 --schedule constant`: fine-tunes the shared
SDN ResNet-56 (../shared/models/resnet56_s1.*) for one epoch on one CIFAR-10 batch file with the
engine's recipe, and prints per-exit test accuracy before and after, so that the engine's numbers
can be judged against an independent implementation.

Engine recipe mirrored (engine/train/*.cpp, tools/engine_train.cpp):
  - SGD, d = g + wd*p; momentum buffer starts at d; Nesterov (d + m*buf) unless --no-nesterov or
    momentum 0; weight decay 5e-4 on every trainable tensor (BN affine, biases, IC alpha included);
  - constant lr, batch 128, shuffled once per epoch, the last incomplete batch dropped (78 steps);
  - crop (zero pad 4, offset uniform in [-4, 4]) and horizontal flip (p 0.5) on [0, 1] pixels;
  - sdn loss: sum_k w_k CE_k, final exit weight 1, IC i weight caps[i] * (step + 1) / total_steps;
    plain loss: CE of the final exit only;
  - BatchNorm in training mode (batch statistics, momentum 0.1, unbiased running variance).
Random streams (order, augmentation) are PyTorch/numpy's, not the engine's.

Benchmark/verification only: never a runtime or test dependency. Needs torch and numpy
(/usr/bin/python3 with Debian's python3-torch). Reads safetensors and ONNX without their packages.
Usage:
    python3 bench/finetune_peer.py [--lr 0.01] [--momentum 0.9] [--no-nesterov] [--wd 5e-4]
        [--no-augment] [--mode sdn|plain] [--freeze-bn] [--folded] [--threads 1] [--seed 0]
"""
import argparse
import json
import os
import struct
import sys
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_train import CAPS, ResNet56SDN  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
SHARED = os.path.join(HERE, "..", "..", "shared")


# ---- file readers -------------------------------------------------------------------------------

def read_safetensors(path):
    """{name: np.ndarray} and the metadata of a safetensors file (F32 tensors only)."""
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
        blob = f.read()
    meta = header.pop("__metadata__", {})
    out = {}
    for name, h in header.items():
        assert h["dtype"] == "F32", f"{name}: dtype {h['dtype']}"
        a, b = h["data_offsets"]
        out[name] = np.frombuffer(blob[a:b], dtype="<f4").reshape(h["shape"]).copy()
    return out, meta


def read_cifar(path):
    raw = np.fromfile(path, dtype=np.uint8).reshape(-1, 3073)
    images = raw[:, 1:].reshape(-1, 3, 32, 32).astype(np.float32) / 255.0
    return torch.from_numpy(images), torch.from_numpy(raw[:, 0].astype(np.int64))


def _varint(buf, i):
    v = shift = 0
    while True:
        b = buf[i]
        i += 1
        v |= (b & 0x7F) << shift
        shift += 7
        if b < 0x80:
            return v, i


def _fields(buf):
    """Protobuf wire format: yields (field number, wire type, value); value is bytes unless a varint."""
    i = 0
    while i < len(buf):
        key, i = _varint(buf, i)
        field, wire = key >> 3, key & 7
        if wire == 0:
            v, i = _varint(buf, i)
        elif wire in (1, 5):
            n = 8 if wire == 1 else 4
            v, i = buf[i:i + n], i + n
        elif wire == 2:
            n, i = _varint(buf, i)
            v, i = buf[i:i + n], i + n
        else:
            raise ValueError(f"protobuf wire type {wire} not supported")
        yield field, wire, v


def read_onnx(path):
    """Float initializers {name: array} and the nodes [(op, inputs, outputs)] of an ONNX model."""
    with open(path, "rb") as f:
        model = f.read()
    graph = next(v for k, w, v in _fields(model) if k == 7)  # ModelProto.graph
    inits, nodes = {}, []
    for k, _, v in _fields(graph):
        if k == 5:  # GraphProto.initializer: TensorProto
            dims, name, raw, dtype = [], "", b"", 1
            for f, w, x in _fields(v):
                if f == 1:  # dims (packed or not)
                    if w == 0:
                        dims.append(x)
                    else:
                        j = 0
                        while j < len(x):
                            d, j = _varint(x, j)
                            dims.append(d)
                elif f == 2:
                    dtype = x
                elif f == 8:
                    name = x.decode()
                elif f == 9:
                    raw = x
                elif f == 4:
                    raw += x  # packed float_data: same bytes as raw_data
            if dtype == 1:
                inits[name] = np.frombuffer(raw, dtype="<f4").reshape(dims).copy()
        elif k == 1:  # GraphProto.node: NodeProto
            ins, outs, op = [], [], ""
            for f, _, x in _fields(v):
                if f == 1:
                    ins.append(x.decode())
                elif f == 2:
                    outs.append(x.decode())
                elif f == 4:
                    op = x.decode()
            nodes.append((op, ins, outs))
    return inits, nodes


# ---- the shared state dict's names -> bench_train.ResNet56SDN's ---------------------------------

def name_map(keys):
    """Module prefixes of the shared file ('2.layers.4', '0.ic', ...) -> ResNet56SDN's."""
    blocks = sorted({k.rsplit(".c1.", 1)[0] for k in keys if ".c1." in k},
                    key=lambda p: (int(p.split(".")[0]), int(p.split(".")[2])))
    m = {b: f"blocks.{i}" for i, b in enumerate(blocks)}
    m.update({"0.layers.1.0": "stem.0", "0.layers.1.1": "stem.1", "6.layers.8": "fc"})
    m.update({f"{s}.ic": f"ics.{s}" for s in range(6)})
    return m


def rename(key, m):
    for old, new in m.items():
        if key.startswith(old + "."):
            return new + key[len(old):]
    return None


def load_bn(model, path):
    tensors, meta = read_safetensors(path)
    m = name_map(tensors)
    state = {f"norm.{k}": v for k, v in model.norm.state_dict().items()}
    for k, v in tensors.items():
        if ".layers.0.mean" in k or ".layers.0.std" in k:  # Normalize: checked, not loaded
            assert np.allclose(v.ravel(), model.norm.state_dict()[k.rsplit(".", 1)[1]].numpy().ravel(), atol=1e-6)
            continue
        new = rename(k, m)
        assert new is not None, k
        state[new] = torch.from_numpy(v.reshape(-1) if new.endswith("alpha") else v)
        if new.endswith("num_batches_tracked"):
            state[new] = state[new].long()
    model.load_state_dict(state, strict=True)
    return json.loads(meta.get("per_exit_acc", "[]"))


def fold_structure(model):
    """BatchNorm -> Identity and a bias on every Conv, in place (the layout of the folded ONNX)."""
    def fix(parent):
        for name, child in list(parent.named_children()):
            if isinstance(child, nn.Conv2d) and child.bias is None:
                child.bias = nn.Parameter(torch.zeros(child.out_channels))
            elif isinstance(child, nn.BatchNorm2d):
                setattr(parent, name, nn.Identity())
            else:
                fix(child)
    fix(model)


def onnx_module(output):
    """'/segs.2/layers.2/sc/sc.0/Conv_output_0' -> '2.layers.2.sc.0'; '/segs.0/layers.1/layers.1.0/...' -> '0.layers.1.0'."""
    parts = output.strip("/").split("/")[:-1]
    name = parts[0].replace("segs.", "")
    prev = ""
    for p in parts[1:]:
        if prev and p.startswith(prev + "."):
            name += p[len(prev):]
        else:
            name += "." + p
        prev = p
    return name


def load_folded(model, path, keys):
    fold_structure(model)
    inits, nodes = read_onnx(path)
    m = name_map(keys)
    state = {f"norm.{k}": v.numpy() for k, v in model.norm.state_dict().items()}
    for op, ins, outs in nodes:
        if op == "Conv":
            mod = rename(onnx_module(outs[0]) + ".weight", m)[:-len(".weight")]
            state[mod + ".weight"], state[mod + ".bias"] = inits[ins[1]], inits[ins[2]]
    for k, v in inits.items():
        if k.startswith("segs.") and not k.endswith((".mean", ".std")):
            state[rename(k[len("segs."):], m)] = v.reshape(-1) if k.endswith("alpha") else v
    model.load_state_dict({k: torch.from_numpy(v) for k, v in state.items()}, strict=True)


# ---- training -----------------------------------------------------------------------------------

def augment(x, rng):
    """Zero pad 4, crop 32 at a uniform offset, flip with p 0.5 (as engine/train/augment.cpp)."""
    n = x.shape[0]
    padded = F.pad(x, (4, 4, 4, 4))
    dy, dx = rng.integers(0, 9, n), rng.integers(0, 9, n)
    flip = rng.integers(0, 2, n).astype(bool)
    out = torch.stack([padded[i, :, dy[i]:dy[i] + 32, dx[i]:dx[i] + 32] for i in range(n)])
    out[flip] = out[flip].flip(3)
    return out


@torch.no_grad()
def evaluate(model, x, y, batch=500):
    model.eval()
    hits = None
    for at in range(0, len(x), batch):
        outs = model(x[at:at + batch])
        h = torch.stack([(o.argmax(1) == y[at:at + batch]).sum() for o in outs])
        hits = h if hits is None else hits + h
    return (hits.double() / len(x) * 100).tolist()


def finetune(model, x, y, a):
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.SGD(params, lr=a.lr, momentum=a.momentum, weight_decay=a.wd,
                          nesterov=a.momentum > 0 and not a.no_nesterov)
    rng = np.random.default_rng(a.seed)
    steps = len(x) // a.batch
    order = torch.from_numpy(rng.permutation(len(x)))
    model.train()
    if a.freeze_bn:
        for mod in model.modules():
            if isinstance(mod, nn.BatchNorm2d):
                mod.eval()
    losses = []
    for step in range(steps):
        idx = order[step * a.batch:(step + 1) * a.batch]
        xb, yb = x[idx], y[idx]
        if not a.no_augment:
            xb = augment(xb, rng)
        outs = model(xb)
        if a.mode == "sdn":
            progress = (step + 1) / steps
            weights = [c * progress for c in CAPS[:len(outs) - 1]] + [1.0]
        else:
            weights = [0.0] * (len(outs) - 1) + [1.0]
        loss = sum(w * F.cross_entropy(o, yb) for w, o in zip(weights, outs) if w != 0)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
        if not np.isfinite(losses[-1]):
            print(f"  step {step + 1}/{steps}: loss {losses[-1]} (diverged)", flush=True)
            return losses
        if (step + 1) % 13 == 0 or step == 0:
            print(f"  step {step + 1}/{steps}: loss {losses[-1]:.4f}", flush=True)
    return losses


def fmt(acc):
    return " ".join(f"{v:.2f}" for v in acc)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--weights", default=os.path.join(SHARED, "models", "resnet56_s1.safetensors"))
    ap.add_argument("--onnx", default=os.path.join(SHARED, "models", "resnet56_s1.onnx"))
    ap.add_argument("--data", default=os.path.join(SHARED, "data", "cifar10"))
    ap.add_argument("--train-file", default="data_batch_1.bin")
    ap.add_argument("--folded", action="store_true", help="BN-folded ONNX initializers: Conv with bias, no BN")
    ap.add_argument("--lr", type=float, default=0.01)
    ap.add_argument("--momentum", type=float, default=0.9)
    ap.add_argument("--no-nesterov", action="store_true")
    ap.add_argument("--wd", type=float, default=5e-4)
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--mode", choices=["sdn", "plain"], default="sdn")
    ap.add_argument("--no-augment", action="store_true")
    ap.add_argument("--freeze-bn", action="store_true", help="BatchNorm in inference mode while training")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--skip-check", action="store_true", help="no evaluation before fine-tuning")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)

    model = ResNet56SDN()
    reference = load_bn(model, a.weights)
    if a.folded:
        load_folded(model, a.onnx, read_safetensors(a.weights)[0].keys())
    xt, yt = read_cifar(os.path.join(a.data, "test_batch.bin"))
    x, y = read_cifar(os.path.join(a.data, a.train_file))
    print(f"PyTorch {torch.__version__}, {torch.get_num_threads()} thread(s); "
          f"{'folded ONNX' if a.folded else 'BN safetensors'}; {vars(a)}")
    print(f"reference per-exit acc   {fmt([100 * v for v in reference])}")
    if not a.skip_check:
        t0 = time.perf_counter()
        before = evaluate(model, xt, yt)
        worst = max(abs(b - 100 * r) for b, r in zip(before, reference))
        print(f"loaded    per-exit acc   {fmt(before)}   (max diff {worst:.2f} points, {time.perf_counter() - t0:.0f} s)")
        if worst > 0.1:
            sys.exit("finetune_peer.py: the loaded model does not reproduce the reference accuracy")
    t0 = time.perf_counter()
    losses = finetune(model, x, y, a)
    train_s = time.perf_counter() - t0
    after = evaluate(model, xt, yt)
    print(f"fine-tune {len(losses)} steps, {train_s:.0f} s, mean loss {np.mean(losses):.4f}, last {losses[-1]:.4f}")
    print(f"tuned     per-exit acc   {fmt(after)}")
    print(f"change vs reference      {' '.join(f'{v - 100 * r:+.2f}' for v, r in zip(after, reference))}")
    print(json.dumps({"recipe": {k: v for k, v in vars(a).items() if k not in ('weights', 'onnx', 'data')},
                      "per_exit_acc": after, "reference": [100 * v for v in reference], "train_s": train_s,
                      "mean_loss": float(np.mean(losses))}))


if __name__ == "__main__":
    main()
