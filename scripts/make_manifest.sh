#!/usr/bin/env bash
# Writes weights/MANIFEST.md: for every weights/*.model its sha256, the command that made it,
# its training time, per-exit test accuracy and the early-exit table at q = 0.9, measured now on
# the full CIFAR-10 test set with engine_run. Maintainer tool (needs python3 for formatting).
set -euo pipefail
cd "$(dirname "$0")/.."
DATA=${DATA:-../shared/data/cifar10}
out=weights/MANIFEST.md
tmp=$(mktemp)
trap 'rm -f "$tmp" "$tmp".*' EXIT
for model in weights/*.model; do
  build/bin/engine_run eval "$model" --data "$DATA" --threshold 0.9 --latency-samples 0 --json > "$tmp.$(basename "$model").json"
done
python3 - "$tmp" "$out" weights/*.model <<'PY'
import hashlib, json, struct, sys
tmp, out, models = sys.argv[1], sys.argv[2], sys.argv[3:]
lines = ["# The project's own weights", "",
         "Trained on this project's engine (engine_train), CIFAR-10, by the command in each entry.",
         "Figures: the full CIFAR-10 test set (10,000 images), measured by `scripts/make_manifest.sh`.",
         "The commands ran from a copy of build/bin/engine_train with --out under /tmp (then copied here);",
         "they are shown as run from the repository. Same seed and thread count give bit-identical weights.", ""]
for path in models:
    data = open(path, "rb").read()
    n = struct.unpack("<Q", data[:8])[0]
    meta = json.loads(data[8:8 + n]).get("__metadata__", {})
    ev = json.load(open(f"{tmp}.{path.split('/')[-1]}.json"))
    lines += [f"## {path.split('/')[-1]}", "",
              f"- sha256: `{hashlib.sha256(data).hexdigest()}`",
              "- command: `" + meta.get("command", "?").replace("/tmp/weights/engine_train", "build/bin/engine_train")
              .replace("/tmp/weights/", "weights/") + "`",
              f"- training time: {float(meta.get('train_seconds', 'nan')) / 60:.1f} min",
              "- per-exit accuracy %: " + ", ".join(f"{100 * a:.2f}" for a in ev["per_exit_accuracy"]),
              f"- at q = 0.9: accuracy {100 * ev['accuracy']:.2f} %, exit histogram "
              + " / ".join(str(h) for h in ev["exit_histogram"])
              + f", {100 * (1 - ev['exit_histogram'][-1] / ev['images']):.1f} % leave early, "
              + f"average MACs {100 * ev['avg_macs_fraction']:.1f} % of full depth", ""]
open(out, "w").write("\n".join(lines))
PY
echo "wrote $out"
