#!/usr/bin/env bash
# Makes the pirate variants of a model used by the fingerprint robustness experiments: pruned
# (30 %, 50 %) with and without fine-tuning, fine-tuned, last stage re-initialised and retrained,
# adversarially fine-tuned. Fine-tuning runs one epoch over one CIFAR-10 batch file (10,000 images)
# at lr 0.01, SDN joint loss; adversarial fine-tuning (PGD-7, 8/255) uses 2,000 of those images.
# usage: bench/fp_variants.sh MODEL OUTDIR [DATA_BATCH_FILE] [THREADS]
set -euo pipefail
model=$1
out=$2
data=${3:-../shared/data/cifar10/data_batch_1.bin}
threads=${4:-1}
train=build/bin/engine_train
mkdir -p "$out"
common=(--from "$model" --data "$data" --lr 0.01 --schedule constant --batch 128 --threads "$threads" --val-limit 0)
run() {  # name, extra args...
  local name=$1
  shift
  [ -e "$out/$name.model" ] && return 0
  echo "== $name"
  "$train" "${common[@]}" --out "$out/$name.model" --log "$out/$name.log.jsonl" "$@" > "$out/$name.out" 2>&1
}
run prune30 --epochs 0 --prune 0.3
run prune50 --epochs 0 --prune 0.5
run finetune --epochs 1 --mode sdn
run prune30_ft --epochs 1 --mode sdn --prune 0.3
run prune50_ft --epochs 1 --mode sdn --prune 0.5
run reinit_last --epochs 1 --mode sdn --reinit 'segs\.6\.' --train-only 'segs\.6\.'
run adversarial --epochs 1 --mode sdn --adv --limit 2000
