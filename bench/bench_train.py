#!/usr/bin/env python3
"""PyTorch peer of bench_train.cpp: training images/s of SDN ResNet-56 and SDN MobileNet
(architectures of ../shared/models/README.md) at one batch size on a fixed number of threads,
with the same step as the engine's: forward in training mode, SDN joint loss over every exit,
backward, SGD (Nesterov, momentum 0.9, weight decay 5e-4).

Benchmark only: never a runtime or test dependency of the project. Needs torch (Debian's
python3-torch, or a CPU wheel). Usage:
    python3 bench/bench_train.py [--batch 128] [--threads 2] [--iters 3] [arch ...]
"""
import argparse
import os
import sys
import time

try:
    import torch
    import torch.nn as nn
    import torch.nn.functional as F
except ImportError:
    sys.exit("bench_train.py: PyTorch is not installed (apt-get install python3-torch, or pip install torch)")

CAPS = [0.15, 0.3, 0.45, 0.6, 0.75, 0.9]
MEAN, STD = (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)


class IC(nn.Module):
    """SDN internal classifier: mixed pooling to about 4x4 for sides >= 8, flatten, linear."""

    def __init__(self, channels, side, classes):
        super().__init__()
        self.k = side // 4 if side >= 4 else 1
        self.alpha = nn.Parameter(torch.tensor(0.5))
        out_side = side // self.k
        self.fc = nn.Linear(channels * out_side * out_side, classes)

    def forward(self, x):
        if self.k > 1:
            x = self.alpha * F.max_pool2d(x, self.k) + (1 - self.alpha) * F.avg_pool2d(x, self.k)
        return self.fc(torch.flatten(x, 1))


class Normalize(nn.Module):
    def __init__(self):
        super().__init__()
        self.register_buffer("mean", torch.tensor(MEAN).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(STD).view(1, 3, 1, 1))

    def forward(self, x):
        return (x - self.mean) / self.std


class BasicBlock(nn.Module):
    def __init__(self, cin, cout, stride):
        super().__init__()
        self.c1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.b1 = nn.BatchNorm2d(cout)
        self.c2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.b2 = nn.BatchNorm2d(cout)
        self.sc = nn.Sequential()
        if stride != 1 or cin != cout:
            self.sc = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x):
        y = self.b2(self.c2(F.relu(self.b1(self.c1(x)))))
        return F.relu(y + self.sc(x))


class ResNet56SDN(nn.Module):
    """conv3x3(16)+BN+ReLU, 3 x 9 basic blocks (16/32/64), ICs after blocks 4, 8, 12, 16, 20, 24."""

    def __init__(self, classes=10):
        super().__init__()
        self.norm = Normalize()
        self.stem = nn.Sequential(nn.Conv2d(3, 16, 3, 1, 1, bias=False), nn.BatchNorm2d(16), nn.ReLU())
        self.blocks, self.ics, self.ic_at = nn.ModuleList(), nn.ModuleList(), {}
        cin, side, block = 16, 32, 0
        for stage, width in enumerate([16, 32, 64]):
            for i in range(9):
                stride = 2 if stage > 0 and i == 0 else 1
                side //= stride
                self.blocks.append(BasicBlock(cin, width, stride))
                cin, block = width, block + 1
                if block in (4, 8, 12, 16, 20, 24):
                    self.ic_at[block - 1] = len(self.ics)
                    self.ics.append(IC(width, side, classes))
        self.fc = nn.Linear(64, classes)

    def forward(self, x):
        x, outs = self.stem(self.norm(x)), []
        for i, blk in enumerate(self.blocks):
            x = blk(x)
            if i in self.ic_at:
                outs.append(self.ics[self.ic_at[i]](x))
        outs.append(self.fc(torch.flatten(F.adaptive_avg_pool2d(x, 1), 1)))
        return outs


class MobileNetSDN(nn.Module):
    """conv3x3(32)+BN+ReLU, 13 depthwise-separable blocks, ICs after blocks 3, 5, 7, 9, 12."""

    CFG = [(64, 1), (128, 2), (128, 1), (256, 2), (256, 1), (512, 2), (512, 1), (512, 1), (512, 1), (512, 1),
           (512, 1), (1024, 2), (1024, 1)]

    def __init__(self, classes=10):
        super().__init__()
        self.norm = Normalize()
        self.stem = nn.Sequential(nn.Conv2d(3, 32, 3, 1, 1, bias=False), nn.BatchNorm2d(32), nn.ReLU())
        self.blocks, self.ics, self.ic_at = nn.ModuleList(), nn.ModuleList(), {}
        cin, side = 32, 32
        for i, (cout, stride) in enumerate(self.CFG):
            side //= stride
            self.blocks.append(nn.Sequential(
                nn.Conv2d(cin, cin, 3, stride, 1, groups=cin, bias=False), nn.BatchNorm2d(cin), nn.ReLU(),
                nn.Conv2d(cin, cout, 1, 1, 0, bias=False), nn.BatchNorm2d(cout), nn.ReLU()))
            cin = cout
            if i + 1 in (3, 5, 7, 9, 12):
                self.ic_at[i] = len(self.ics)
                self.ics.append(IC(cout, side, classes))
        self.side = side
        self.fc = nn.Linear(1024, classes)

    def forward(self, x):
        x, outs = self.stem(self.norm(x)), []
        for i, blk in enumerate(self.blocks):
            x = blk(x)
            if i in self.ic_at:
                outs.append(self.ics[self.ic_at[i]](x))
        outs.append(self.fc(torch.flatten(F.avg_pool2d(x, self.side), 1)))
        return outs


ARCHS = {"resnet56": ResNet56SDN, "mobilenet": MobileNetSDN}


def bench(arch, batch, iters):
    torch.manual_seed(1)
    model = ARCHS[arch]()
    model.train()
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, nesterov=True, weight_decay=5e-4)
    x = torch.rand(batch, 3, 32, 32)
    y = torch.randint(0, 10, (batch,))
    params = sum(p.numel() for p in model.parameters())
    times = []
    for it in range(iters + 1):  # the first step is the warm-up
        t0 = time.perf_counter()
        outs = model(x)
        weights = [c * 0.5 for c in CAPS[:len(outs) - 1]] + [1.0]
        loss = sum(w * F.cross_entropy(o, y) for w, o in zip(weights, outs))
        opt.zero_grad()
        loss.backward()
        opt.step()
        if it > 0:
            times.append(time.perf_counter() - t0)
    per_step = sum(times) / len(times)
    return params, per_step


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--iters", type=int, default=3)
    ap.add_argument("archs", nargs="*", default=["resnet56", "mobilenet"])
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    isa = " (capped to AVX2)" if os.environ.get("DNNL_MAX_CPU_ISA") == "AVX2" else ""
    print(f"PyTorch {torch.__version__}{isa} training, batch {a.batch}, {torch.get_num_threads()} threads, SDN loss, SGD")
    print(f"{'arch':<10} {'params':>10} {'s/step':>12} {'images/s':>12}")
    for arch in a.archs:
        if arch not in ARCHS:
            sys.exit(f"bench_train.py: unknown arch '{arch}' (known: {', '.join(ARCHS)})")
        params, per_step = bench(arch, a.batch, a.iters)
        print(f"{arch:<10} {params:>10} {per_step:>12.3f} {a.batch / per_step:>12.1f}", flush=True)


if __name__ == "__main__":
    main()
