#!/usr/bin/env bash
# Which fp_gen choices matter: crafts resnet56_s1 fingerprints with one choice changed at a time
# and verifies each (exit oracle, deterministic) on pirate copies and on independent models.
# Pirate copies come from bench/fp_variants.sh (data_batch_1); the owner's own copies given with
# --variant are made here from other data (data_batch_2) and another seed, so none is a pirate's.
# Variants start from the owner's BatchNorm form (converted from the shared safetensors here), which
# fine-tunes at lr 0.01 with the default momentum; the folded ONNX needs --renormalize and plain SGD.
# Configs from '+references' on keep the 'noise_pruned' ensemble, so each adds one choice to it.
# usage: bench/fp_ablation.sh OUT [THREADS]     (about 1.5 hours on 2 cores)
set -euo pipefail
cd "$(dirname "$0")/.."
out=$1
threads=${2:-1}
bin=build/bin
shared=../shared
owner=$shared/models/resnet56_s1.onnx
mkdir -p "$out"
[ -e "$out/r56_bn.model" ] || $bin/engine_run convert --arch resnet56 $shared/models/resnet56_s1.safetensors "$out/r56_bn.model"
bench/fp_variants.sh "$out/r56_bn.model" "$out/pirate" $shared/data/cifar10/data_batch_1.bin "$threads"

own=(--from "$out/r56_bn.model" --data $shared/data/cifar10/data_batch_2.bin --lr 0.01 --schedule constant --batch 128
     --threads "$threads" --val-limit 0 --seed 7 --epochs 1 --mode sdn)
[ -e "$out/own_ft.model" ] || $bin/engine_train "${own[@]}" --out "$out/own_ft.model" > "$out/own_ft.out" 2>&1
[ -e "$out/own_adv.model" ] || $bin/engine_train "${own[@]}" --adv --limit 2000 --out "$out/own_adv.model" > "$out/own_adv.out" 2>&1

pirates="finetune prune30 prune50 prune30_ft prune50_ft reinit_last adversarial"
independents="$shared/models/resnet56_s3.onnx $shared/models/mobilenet_s1.onnx weights/small_s1.model weights/small_s2.model weights/small_s3.model"
matches() {  # fp model [threshold]
  $bin/fp_check "$1" --suspect "$2" ${3:+--suspect-threshold $3} --oracle exit --reps 1 --json |
    python3 -c "import json,sys; print(json.load(sys.stdin)['matches'])"
}
printf '%-16s %6s %6s' config null "gen_s"
printf ' %s' thr0.8 thr0.95 $pirates
for m in $independents; do printf ' %s' "$(basename "${m%.*}")"; done
echo
# The ablation predates fp_gen's safe defaults: no own copies unless a config gives --variant, and
# other-architecture references (uncalibrated null) are allowed.
common=(--per-exit 10 --data $shared/data/cifar10 --steps 60 --oversample 1.5 --threads "$threads" --seed 1
        --own-copy-images 0 --allow-uncalibrated-null)
refs=(--reference $shared/models/mobilenet_s1.onnx --reference weights/small_s2.model)
config() {  # name fp_gen-args...
  local name=$1
  shift
  local t0=$SECONDS
  $bin/fp_gen $owner --out "$out/$name.fp" "${common[@]}" "$@" > "$out/$name.gen" 2>&1
  printf '%-16s %6s %6d' "$name" "$(grep -o 'null match rate [0-9.]*' "$out/$name.gen" | cut -d' ' -f4)" $((SECONDS - t0))
  printf ' %s' "$(matches "$out/$name.fp" $owner 0.8)" "$(matches "$out/$name.fp" $owner 0.95)"
  for p in $pirates; do printf ' %s' "$(matches "$out/$name.fp" "$out/pirate/$p.model")"; done
  for m in $independents; do printf ' %s' "$(matches "$out/$name.fp" "$m")"; done
  echo
}
config owner_only --noise-variants 0 --prune-variants ""
config noise --noise-variants 2 --prune-variants ""
config pruned --noise-variants 0 --prune-variants 0.3,0.5
config noise_pruned --noise-variants 2 --prune-variants 0.3
config +references --noise-variants 2 --prune-variants 0.3 "${refs[@]}"
config margin0.02 --noise-variants 2 --prune-variants 0.3 "${refs[@]}" --margin 0.02
config margin0.15 --noise-variants 2 --prune-variants 0.3 "${refs[@]}" --margin 0.15
config +own_ft --noise-variants 2 --prune-variants 0.3 "${refs[@]}" --variant "$out/own_ft.model"
config +own_ft_adv --noise-variants 2 --prune-variants 0.3 "${refs[@]}" --variant "$out/own_ft.model" --variant "$out/own_adv.model"
echo "matches of 70 inputs (10 per exit); mobilenet_s1 and small_s2 are references from '+references' on"
