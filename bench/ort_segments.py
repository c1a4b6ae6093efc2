#!/usr/bin/env python3
"""Early exit as a user of ONNX Runtime can do it: the multi-exit .onnx cut into one model per exit
segment (onnx.utils.extract_model), run in turn at batch 1 on one thread, with the exit decision
(max softmax >= q; the last exit always fires) taken in Python between segments. Prints the mean,
median and p99 time per image over the first --images test images, the exit histogram, and the
same model run whole (no early exit) for scale.

Benchmark only: onnxruntime and onnx are never run-time or test dependencies of the engine. When
they are missing, this script installs them with pip (--no-install: report and stop instead).
Usage:
    python3 bench/ort_segments.py [--shared ../shared] [--model resnet56_s1] [--q 0.9] [--images 1000]
"""
import argparse
import importlib.util
import os
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np


def need(modules, install):
    missing = [m for m in modules if importlib.util.find_spec(m) is None]
    if not missing:
        return True
    if not install:
        print(f"ort_segments: {', '.join(missing)} missing (pip install onnxruntime onnx)", file=sys.stderr)
        return False
    print(f"ort_segments: installing {', '.join(missing)} with pip (benchmark only)", file=sys.stderr)
    r = subprocess.run([sys.executable, "-m", "pip", "install", "-q", *missing])
    importlib.invalidate_caches()
    return r.returncode == 0


def segments(model):
    """For each graph output (exit) in order: (input tensor names, output tensor names) of the
    nodes it needs that earlier exits did not compute."""
    producer = {}
    for i, node in enumerate(model.graph.node):
        for o in node.output:
            producer[o] = i
    inits = {t.name for t in model.graph.initializer}

    def ancestors(name, seen):
        stack = [name]
        while stack:
            t = stack.pop()
            i = producer.get(t)
            if i is None or i in seen:
                continue
            seen.add(i)
            stack.extend(model.graph.node[i].input)
        return seen

    exits = [o.name for o in model.graph.output]
    done, per_exit = set(), []
    for e in exits:
        nodes = ancestors(e, set()) - done
        per_exit.append(sorted(nodes))
        done |= nodes
    owner = {}
    for k, nodes in enumerate(per_exit):
        for i in nodes:
            owner[i] = k
    cuts = []
    for k, nodes in enumerate(per_exit):
        ins, outs = [], [exits[k]]
        for i in nodes:
            for t in model.graph.node[i].input:
                if not t or t in inits or t in ins:
                    continue
                j = producer.get(t)
                if j is None or owner[j] < k:  # a graph input or an earlier segment's value
                    ins.append(t)
        for later in range(k + 1, len(per_exit)):
            for i in per_exit[later]:
                for t in model.graph.node[i].input:
                    j = producer.get(t)
                    if j is not None and owner[j] == k and t not in outs:
                        outs.append(t)
        cuts.append((ins, outs))
    return exits, cuts


def softmax_max(logits):
    z = logits - logits.max()
    e = np.exp(z)
    return float(e.max() / e.sum())


def stats(ms):
    s = sorted(ms)
    return statistics.fmean(s), s[len(s) // 2], s[min(len(s) - 1, int(0.99 * len(s)))]


def load_cifar_test(shared, limit):
    raw = np.fromfile(os.path.join(shared, "data", "cifar10", "test_batch.bin"), dtype=np.uint8)
    raw = raw.reshape(-1, 3073)[:limit]
    return raw[:, 1:].reshape(-1, 3, 32, 32).astype(np.float32) / 255.0


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--shared", default="../shared")
    ap.add_argument("--model", default="resnet56_s1")
    ap.add_argument("--q", type=float, default=0.9)
    ap.add_argument("--images", type=int, default=1000)
    ap.add_argument("--no-install", action="store_true")
    a = ap.parse_args()
    if not need(["onnxruntime", "onnx"], not a.no_install):
        return 1
    import onnx
    import onnx.utils
    import onnxruntime as ort

    path = os.path.join(a.shared, "models", a.model + ".onnx")
    if not os.path.isfile(path):
        models = sorted(f[:-5] for f in os.listdir(os.path.dirname(path)) if f.endswith(".onnx")) \
            if os.path.isdir(os.path.dirname(path)) else []
        print(f"ort_segments: {path}: no such model (--model takes one of: {', '.join(models) or 'none found'})",
              file=sys.stderr)
        return 2
    exits, cuts = segments(onnx.load(path))
    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    so.inter_op_num_threads = 1
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    sessions = []
    with tempfile.TemporaryDirectory() as tmp:
        for k, (ins, outs) in enumerate(cuts):
            seg = os.path.join(tmp, f"segment{k}.onnx")
            onnx.utils.extract_model(path, seg, ins, outs)
            sessions.append((ort.InferenceSession(seg, so, providers=["CPUExecutionProvider"]), ins, outs))
        whole = ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])
    images = load_cifar_test(a.shared, a.images)

    def early(x):
        values = {"image": x}
        for k, (sess, ins, outs) in enumerate(sessions):
            got = sess.run(outs, {t: values[t] for t in ins})
            values.update(zip(outs, got))
            if k + 1 == len(sessions) or softmax_max(got[0][0]) >= a.q:
                return k

    for i in range(min(20, len(images))):  # warm-up
        early(images[i : i + 1])
        whole.run(None, {"image": images[i : i + 1]})
    histogram, ms_early, ms_whole = [0] * len(exits), [], []
    for i in range(len(images)):
        x = images[i : i + 1]
        t0 = time.perf_counter()
        k = early(x)
        ms_early.append((time.perf_counter() - t0) * 1e3)
        histogram[k] += 1
        t0 = time.perf_counter()
        whole.run(None, {"image": x})
        ms_whole.append((time.perf_counter() - t0) * 1e3)
    peer = f"onnxruntime {ort.__version__}"
    mean, median, p99 = stats(ms_early)
    print(f"{peer} {a.model} segments, q {a.q}, {len(images)} test images, 1 thread: "
          f"mean {mean:.3f} ms  median {median:.3f} ms  p99 {p99:.3f} ms  exits {histogram}")
    mean, median, p99 = stats(ms_whole)
    print(f"{peer} {a.model} whole model, same images, 1 thread:        "
          f"mean {mean:.3f} ms  median {median:.3f} ms  p99 {p99:.3f} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
