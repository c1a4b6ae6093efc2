#!/usr/bin/env bash
# Installs the built project into a temporary prefix, builds the consumer against it with
# find_package(engine), and runs it on a model, including one error path.
# usage: run.sh BUILD_DIR SOURCE_DIR
set -euo pipefail
build=$1 src=$2
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cmake --install "$build" --prefix "$work/prefix" >/dev/null
cmake -S "$src/tests/package_consumer" -B "$work/consumer" -DCMAKE_PREFIX_PATH="$work/prefix" \
  -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build "$work/consumer" >/dev/null
LD_LIBRARY_PATH="$work/prefix/lib:$work/prefix/lib64:${LD_LIBRARY_PATH:-}" "$work/consumer/consumer" "$src/weights/small_s1.model"
if LD_LIBRARY_PATH="$work/prefix/lib:$work/prefix/lib64" "$work/consumer/consumer" /nonexistent.model 2>"$work/err"; then
  echo "consumer accepted a missing model" >&2
  exit 1
fi
grep -q "no such file" "$work/err" || { echo "unexpected error text: $(cat "$work/err")" >&2; exit 1; }
export LD_LIBRARY_PATH="$work/prefix/lib:$work/prefix/lib64:${LD_LIBRARY_PATH:-}"
# engine::train, with a tiny CIFAR-format batch made here (one label byte + 3072 pixel bytes each).
mkdir -p "$work/data"
head -c $((10 * 3073)) /dev/zero >"$work/data/test_batch.bin"
"$work/consumer/consumer_data" "$work/data"
if "$work/consumer/consumer_data" "$work/no-such-dir" 2>"$work/err"; then
  echo "consumer_data accepted a missing folder" >&2
  exit 1
fi
grep -q "no-such-dir" "$work/err" || { echo "unexpected error text: $(cat "$work/err")" >&2; exit 1; }
echo "package consumer: find_package(engine), engine::engine and engine::train, errors crossing the boundary: ok"
