#!/usr/bin/env python3
"""PyTorch on the same GPU as bench_gpu, for bench/gpu_check.sh's table: SDN ResNet-56 (bench_train.py's
definition) batch-1 full-depth latency eager and as a CUDA graph (median, p99), batch-N inference
images/s, and training images/s (SDN loss, Nesterov SGD). PyTorch cannot leave early inside the graph:
these are full-depth figures. FP32 (TF32 off) unless --tf32.

Benchmark only, never a runtime or test dependency. Usage:
    python3 bench/bench_gpu_torch.py [--reps 400] [--batch 256] [--train-batch 128] [--tf32]
"""
import argparse
import os
import sys
import time

try:
    import torch
    import torch.nn.functional as F
except ImportError:
    sys.exit("bench_gpu_torch.py: PyTorch is not importable here")

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_train import CAPS, ResNet56SDN  # noqa: E402


def stats(ms):
    ms = sorted(ms)
    return ms[len(ms) // 2], ms[min(len(ms) - 1, int(0.99 * len(ms)))]


def timed(fn, reps):
    for _ in range(max(5, reps // 10)):
        fn()
    torch.cuda.synchronize()
    out = []
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        torch.cuda.synchronize()
        out.append((time.perf_counter() - t0) * 1e3)
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--reps", type=int, default=400)
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--train-batch", type=int, default=128)
    ap.add_argument("--tf32", action="store_true")
    a = ap.parse_args()
    if not torch.cuda.is_available():
        sys.exit("bench_gpu_torch.py: torch imports but sees no CUDA device")
    torch.backends.cudnn.allow_tf32 = a.tf32
    torch.backends.cuda.matmul.allow_tf32 = a.tf32
    torch.backends.cudnn.benchmark = True
    dev = torch.device("cuda")
    print(f"PyTorch {torch.__version__}, {torch.cuda.get_device_name(0)}, cuDNN {torch.backends.cudnn.version()}, "
          f"{'TF32' if a.tf32 else 'FP32'}")
    model = ResNet56SDN().to(dev).eval()
    x1 = torch.rand(1, 3, 32, 32, device=dev)
    with torch.no_grad():
        med, p99 = stats(timed(lambda: model(x1), a.reps))
        print(f"torch batch 1 full depth, eager:      median {med:.3f} ms, p99 {p99:.3f} ms")
        s = torch.cuda.Stream()
        s.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(s):
            for _ in range(3):
                model(x1)
        torch.cuda.current_stream().wait_stream(s)
        g = torch.cuda.CUDAGraph()
        with torch.cuda.graph(g):
            model(x1)
        med, p99 = stats(timed(g.replay, a.reps))
        print(f"torch batch 1 full depth, CUDA graph: median {med:.3f} ms, p99 {p99:.3f} ms")
        xb = torch.rand(a.batch, 3, 32, 32, device=dev)
        ms = timed(lambda: model(xb), 30)
        print(f"torch batch {a.batch} full depth: {a.batch / (stats(ms)[0] / 1e3):.0f} images/s")
    model.train()
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, nesterov=True, weight_decay=5e-4)
    xt = torch.rand(a.train_batch, 3, 32, 32, device=dev)
    yt = torch.randint(0, 10, (a.train_batch,), device=dev)

    def step():
        outs = model(xt)
        weights = [c * 0.5 for c in CAPS[:len(outs) - 1]] + [1.0]
        loss = sum(w * F.cross_entropy(o, yt) for w, o in zip(weights, outs))
        opt.zero_grad()
        loss.backward()
        opt.step()

    ms = timed(step, 30)
    print(f"torch training batch {a.train_batch}: {a.train_batch / (stats(ms)[0] / 1e3):.0f} images/s")


if __name__ == "__main__":
    main()
