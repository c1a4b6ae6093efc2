#!/usr/bin/env bash
# Builds issue 15's pirate set from an owner model and prints one MODEL:ATTACK line per pirate on
# stdout (progress on stderr; a pirate already in OUTDIR is reused). Every pirate trains on
# data_batch_2 (10,000 images the owner's own copies in fp_gen never see; fp_gen uses the first
# 10,000, data_batch_1), one thread, SDN loss, unless said otherwise:
#   finetune      all layers, 1 epoch, lr 0.01
#   reinit_heads  every exit head re-initialised, then all layers 1 epoch
#   prune50_ft    50 % global magnitude pruning, then 1 epoch
#   ic_only       internal classifiers re-initialised and retrained on the frozen backbone, 1 epoch
#   ic_long       the same done well: 4 epochs, cosine from lr 0.01, all 50,000 training images
#   int8          Conv/Gemm weights rounded to int8 (per output channel), no training
#   adv_pgd4      PGD-10 at 4/255 (another recipe than fp_gen's own PGD-7 at 8/255), 2 epochs on 5,000
#   trades        TRADES, beta 6, 8/255, 5 steps, 2 epochs on 5,000
#   distill       the owner's architecture from scratch, distilled from the owner's final answers
#                 (no labels), SCRATCH_EPOCHS on all 50,000 training images
#   steal         the multi-exit stealing attack (Pan et al.): from scratch, learns the owner's answers
#                 and exits (engine_train --mimic-exits), SCRATCH_EPOCHS on all 50,000
#   *_recal       reinit_heads, ic_only, ic_long, adv_pgd4 and trades with their thresholds re-set so
#                 that they leave at each exit as often as the owner does on data_batch_2 (--match-exits):
#                 their retrained heads are timid and would otherwise give up most of the early-exit speed
# A model without BatchNorm (an ONNX export) fine-tunes with --renormalize and plain SGD (README).
# usage: bench/fp_pirates.sh OWNER OUTDIR
#   env: DATA (default ../shared/data/cifar10), THREADS (1), SCRATCH_EPOCHS (5), ARCH (the owner's
#        --arch for the from-scratch pirates; default from its metadata, resnet56 for *resnet56*.onnx),
#        HEADS (regex of every exit head's parameters; default by ARCH), ONLY (space-separated subset)
set -euo pipefail
cd "$(dirname "$0")/.."
owner=$1
out=$2
DATA=${DATA:-../shared/data/cifar10}
THREADS=${THREADS:-1}
SCRATCH_EPOCHS=${SCRATCH_EPOCHS:-5}
bin=build/bin
[ -e "$owner" ] || { echo "fp_pirates: $owner: no such model" >&2; exit 2; }
[ -e "$DATA/data_batch_2.bin" ] || { echo "fp_pirates: $DATA: no CIFAR-10 data_batch_2.bin (set DATA=)" >&2; exit 2; }
mkdir -p "$out"

info=$($bin/engine_run info "$owner")
if [ -z "${ARCH:-}" ]; then
  ARCH=$(sed -n 's/^meta *arch = //p' <<< "$info")
  case "$owner" in *resnet56*) ARCH=${ARCH:-resnet56} ;; *mobilenet*) ARCH=${ARCH:-mobilenet} ;; esac
fi
case "$ARCH" in
  small) HEADS=${HEADS:-'\.ic\.|segs\.3\.layers\.4\.'} ;;
  resnet56) HEADS=${HEADS:-'\.ic\.|segs\.6\.layers\.8\.'} ;;
  *) [ -n "${HEADS:-}" ] || { echo "fp_pirates: set HEADS= (regex of the exit heads) for arch '$ARCH'" >&2; exit 2; } ;;
esac
tune=(--from "$owner")
grep -q 'BatchNorm' <<< "$info" || tune+=(--renormalize --momentum 0)

batch2=$DATA/data_batch_2.bin
common=(--batch 128 --threads "$THREADS" --val-limit 0)
pirate() {  # name engine_train-args...
  local name=$1
  shift
  case " ${ONLY:-$name} " in *" $name "*) ;; *) return 0 ;; esac
  if [ ! -e "$out/$name.model" ]; then
    echo "== pirate $name" >&2
    local start=$SECONDS
    $bin/engine_train "${common[@]}" --out "$out/$name.model" "$@" > "$out/$name.out" 2>&1 ||
      { echo "fp_pirates: $name failed; see $out/$name.out" >&2; tail -1 "$out/$name.out" >&2; return 0; }
    echo "   $name: $((SECONDS - start)) s" >&2
  fi
  echo "$out/$name.model:$name"
}
ft=("${tune[@]}" --data "$batch2" --lr 0.01 --schedule constant --mode sdn)
pirate finetune "${ft[@]}" --epochs 1
pirate reinit_heads "${ft[@]}" --epochs 1 --reinit "$HEADS"
pirate prune50_ft "${ft[@]}" --epochs 1 --prune 0.5
pirate ic_only "${tune[@]}" --data "$batch2" --lr 0.01 --schedule constant --mode ic-only --reinit '\.ic\.' --epochs 1
pirate ic_long "${tune[@]}" --data "$DATA" --lr 0.01 --schedule cosine --mode ic-only --reinit '\.ic\.' --epochs 4
pirate int8 --from "$owner" --data "$batch2" --epochs 0 --quantize 8
pirate adv_pgd4 "${ft[@]}" --epochs 2 --limit 5000 --adv-eps 4/255 --adv-step 1/255 --adv-steps 10
pirate trades "${ft[@]}" --epochs 2 --limit 5000 --trades --adv-eps 8/255 --adv-step 2/255 --adv-steps 5
scratch=(--arch "$ARCH" --teacher "$owner" --data "$DATA" --epochs "$SCRATCH_EPOCHS" --lr 0.1 --mode sdn --seed 41)
pirate distill "${scratch[@]}" --kd-alpha 1
pirate steal "${scratch[@]}" --mimic-exits
for base in reinit_heads ic_only ic_long adv_pgd4 trades; do
  if [ -e "$out/$base.model" ]; then
    pirate "${base}_recal" --from "$out/$base.model" --data "$batch2" --epochs 0 --match-exits "$owner"
  fi
done
