#!/usr/bin/env python3
"""The peers a user would pick instead of the engine, on the same models: ONNX Runtime on the
shared .onnx files and PyTorch CPU on the same SDN architectures (bench_train.py). Full-depth
batch-1 latency on one thread (median, p99, coefficient of variation) and batch-128 throughput
on two threads. Whichever of onnxruntime / torch this interpreter can import is measured.

Benchmark only, never a runtime or test dependency. Usage:
    python3 bench/bench_peers.py [--shared ../shared] [--reps 300]
"""
import argparse
import os
import statistics
import sys
import time

import numpy as np


def stats(ms):
    ms = sorted(ms)
    mean = statistics.fmean(ms)
    return ms[len(ms) // 2], ms[min(len(ms) - 1, int(0.99 * len(ms)))], 100 * statistics.pstdev(ms) / mean


def time_calls(fn, reps):
    for _ in range(max(3, reps // 10)):
        fn()
    out = []
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        out.append((time.perf_counter() - t0) * 1e3)
    return out


def bench_ort(shared, reps, archs=("resnet56", "mobilenet")):
    try:
        import onnxruntime as ort
    except ImportError:
        return
    for arch in archs:
        path = os.path.join(shared, "models", f"{arch}_s1.onnx")
        if not os.path.exists(path):
            continue
        for threads, batch in ((1, 1), (2, 128)):
            so = ort.SessionOptions()
            so.intra_op_num_threads = threads
            so.inter_op_num_threads = 1
            sess = ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])
            x = np.random.RandomState(0).rand(batch, 3, 32, 32).astype(np.float32)
            run = lambda: sess.run(None, {"image": x})
            report(f"onnxruntime {ort.__version__}", arch, threads, batch, time_calls(run, reps if batch == 1 else 5))


def bench_torch(reps, archs=("resnet56", "mobilenet")):
    try:
        import torch
    except ImportError:
        return
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from bench_train import MobileNetSDN, ResNet56SDN

    for arch, cls in (("resnet56", ResNet56SDN), ("mobilenet", MobileNetSDN)):
        if arch not in archs:
            continue
        model = cls().eval()
        for threads, batch in ((1, 1), (2, 128)):
            torch.set_num_threads(threads)
            x = torch.rand(batch, 3, 32, 32)
            with torch.no_grad():
                run = lambda: model(x)
                report(f"pytorch {torch.__version__}", arch, threads, batch, time_calls(run, reps if batch == 1 else 5))


def report(peer, arch, threads, batch, ms):
    if os.environ.get("DNNL_MAX_CPU_ISA") == "AVX2":  # run_bench.sh's AVX2-capped pass
        peer += " avx2"
    median, p99, cv = stats(ms)
    if batch == 1:
        print(f"{peer:22s} {arch:9s} threads {threads}  batch 1 full depth: median {median:8.3f} ms  p99 {p99:8.3f} ms  CV {cv:5.1f} %")
    else:
        print(f"{peer:22s} {arch:9s} threads {threads}  batch {batch}: {batch / (median / 1e3):8.0f} img/s (median of {len(ms)})")
    sys.stdout.flush()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--shared", default="../shared")
    ap.add_argument("--reps", type=int, default=300)
    ap.add_argument("--models", default="resnet56,mobilenet")
    a = ap.parse_args()
    archs = tuple(a.models.split(","))
    bench_ort(a.shared, a.reps, archs)
    bench_torch(a.reps, archs)


if __name__ == "__main__":
    main()
