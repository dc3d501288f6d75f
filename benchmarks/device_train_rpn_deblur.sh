#!/usr/bin/env bash
# Train SiamRPN (EfficientNet-B0 + ECA, and the AlexNet baseline) and DeblurGAN-v2 at once on one GPU, from data
# rendered on the spot, and pack the final checkpoints and logs into $OUT. The recipe of the shipped siamrpn-eca and
# deblurgan-v2 (seeds below; the test seeds are never used in training).
#
#   OUT=/tmp/out bash benchmarks/device_train_rpn_deblur.sh        # on the GPU machine, ~9 minutes on one H200
#
# Budgets: STEPS_RPN, STEPS_REUSE (siamrpn-reuse runs; default STEPS_RPN), STEPS_DEBLUR (defaults below) and a hard
# TIMEOUT per training job; a job cut off by the timeout leaves its newest epoch checkpoint, which is packed instead of
# final.safetensors. RUNS picks the jobs (default all three). The tracker's training set: SEQS sequences of FRAMES
# frames (seed 11; every FRAME_STRIDE-th frame cropped),
# a share PATCHES of whose targets are textured patches cut from PATCH_PHOTOS (`edgetrack data synth --patches
# --patch-photos`). Deblurrers: deblurgan-v2 and/or deblurgan-lite in RUNS, first learning rate LR_DEBLUR (Adam,
# cosine to 1e-7), WORKERS_DEBLUR loader processes each.
#
# A SiamRPN entry of RUNS may name its loss as MODEL:LOSS (`rpn`, the default, `rpn-hsm` or `rpn-ohem`); its run
# folder is then MODEL-LOSS, e.g. RUNS="siamrpn-eca:rpn-hsm siamrpn-eca-lite:rpn-hsm" trains into
# siamrpn-eca-rpn-hsm/ and siamrpn-eca-lite-rpn-hsm/, RUNS="siamrpn-eca:rpn-ohem" into siamrpn-eca-rpn-ohem/ (16
# random + the 32 hardest negatives per pair, the trainer's defaults; config.json records them). A third part farD
# takes the hardest negatives only D target sizes or more from the target (--hard-min-dist D):
# RUNS="siamrpn-eca:rpn-ohem:far1" trains into siamrpn-eca-rpn-ohem-far1/.
#
# Feature reuse (issue #4): siamrpn-reuse's trunk is deblurgan-lite's generator encoder + FPN, copied from a trained
# deblurgan-lite (--init-backbone DEBLUR_INIT, default $W/deblurgan-lite/final.safetensors, else that run's newest
# epoch checkpoint). MODEL:LOSS:frozen adds --freeze-backbone (only the RPN head trains); the run folder is
# MODEL-LOSS-frozen. Given DEBLUR_INIT, the reuse runs train beside the other runs; with deblurgan-lite in the same
# RUNS and no DEBLUR_INIT, they start after the deblurrers finish (each phase has its own TIMEOUT), so one call trains
# both:
#   OUT=/tmp/out RUNS="deblurgan-lite siamrpn-reuse:rpn siamrpn-reuse:rpn:frozen" STEPS_DEBLUR=4800 LR_DEBLUR=3e-4 \
#       WORKERS_DEBLUR=6 STEPS_RPN=4000 BATCH_RPN=32 WORKERS_ECA=6 TIMEOUT=270 bash benchmarks/device_train_rpn_deblur.sh
#
# The shipped siamrpn-eca (second recipe, issue #4): more and more varied targets, mirrored/channel-swapped pairs
# (RPN_PAIRS), 6000 steps of batch 32:
#   OUT=/tmp/out RUNS="siamrpn-eca siamrpn-alexnet" SEQS=240 PATCHES=0.6 PATCH_PHOTOS=all BATCH_RPN=32 \
#       WORKERS_ECA=9 WORKERS_ALEX=5 TIMEOUT=330 bash benchmarks/device_train_rpn_deblur.sh
set -euo pipefail
W=${WORK:-/tmp/etw-rpn}
OUT=${OUT:?set OUT to the folder results go to}
STEPS_RPN=${STEPS_RPN:-6000}
STEPS_REUSE=${STEPS_REUSE:-$STEPS_RPN}
STEPS_DEBLUR=${STEPS_DEBLUR:-4800}
TIMEOUT=${TIMEOUT:-400}
RUNS=${RUNS:-siamrpn-eca siamrpn-alexnet deblurgan-v2}
SEQS=${SEQS:-200}
FRAMES=${FRAMES:-120}
FRAME_STRIDE=${FRAME_STRIDE:-1}
PATCHES=${PATCHES:-0.25}
PATCH_PHOTOS=${PATCH_PHOTOS:-objects}
BATCH_RPN=${BATCH_RPN:-16}
WORKERS_ECA=${WORKERS_ECA:-6}
WORKERS_ALEX=${WORKERS_ALEX:-5}
WORKERS_DEBLUR=${WORKERS_DEBLUR:-4}
LR_DEBLUR=${LR_DEBLUR:-1e-4}
wants() { [[ " $RUNS " == *" $1 "* ]]; }
run_dir() { echo "${1//:/-}"; }  # MODEL[:LOSS[:frozen]] -> MODEL[-LOSS[-frozen]]
reuse_run() { [[ "$1" == siamrpn-reuse* ]]; }
CORES=$(nproc)
et() { python3 -m edgetrack "$@"; }
export EDGETRACK_NO_PROGRESS=1 PYTHONUNBUFFERED=1
mkdir -p "$W" "$OUT"
t0=$(date +%s)
say() { echo "[$(( $(date +%s) - t0 )) s] $*"; }

# Data: the tracker's training set (as the shipped siamfc-hsm: seed 11), a smaller deblurring set and its held-out
# test split (the deblurrer keeps decoded frame pairs in memory).
trackers() { [[ " $RUNS " == *" siamrpn"* ]]; }
if trackers; then
  [ -f "$W/train/synth.json" ] || et data synth --out "$W/train" --sequences "$SEQS" --frames "$FRAMES" --seed 11 \
    --split train --patches "$PATCHES" --patch-photos "$PATCH_PHOTOS" --workers "$CORES" --no-pairs --no-contact-sheet \
    --force >/dev/null &
fi
if wants deblurgan-v2 || wants deblurgan-lite; then
  [ -f "$W/dtrain/synth.json" ] || et data synth --out "$W/dtrain" --sequences 60 --frames 120 --seed 21 --split train --workers "$CORES" --force >/dev/null &
  [ -f "$W/dtest/synth.json" ] || et data synth --out "$W/dtest" --sequences 8 --frames 120 --seed 13 --split test --workers 4 --force >/dev/null &
fi
wait
say "data rendered"

# The SiamRPN crop cache, built in its own process: forked loader workers must not inherit OpenCV's thread pool.
if trackers; then
  [ -f "$W/rpn-cache.npz" ] || et train --model siamrpn-eca --data "synthetic:$W/train" --cache "$W/rpn-cache.npz" \
      --out "$W/cache-run" --device cuda --epochs 1 --steps-per-epoch 1 --workers "$CORES" \
      --frame-stride "$FRAME_STRIDE" >/dev/null
  say "crop cache ready"
fi

deblur_init() {  # the deblurgan-lite checkpoint the reuse runs start from
  local c=${DEBLUR_INIT:-$W/deblurgan-lite/final.safetensors}
  [ -f "$c" ] || c=$(ls -t "$W/deblurgan-lite"/checkpoints/*.safetensors 2>/dev/null | grep -v state | head -1 || true)
  echo "$c"
}
rpn() {  # MODEL[:LOSS[:frozen]] workers
  local model=${1%%:*} loss=rpn dir rest extra=()
  if [[ "$1" == *:* ]]; then
    rest=${1#*:}; loss=${rest%%:*}
    [[ "$rest" == *:frozen ]] && extra+=(--freeze-backbone)
    [[ "$rest" == *:far* ]] && extra+=(--hard-min-dist "${rest##*:far}")
  fi
  if reuse_run "$model"; then
    local init; init=$(deblur_init)
    [ -n "$init" ] || { echo "no deblurgan-lite checkpoint for $1: set DEBLUR_INIT or add deblurgan-lite to RUNS"; return 1; }
    extra+=(--init-backbone "$init")
  fi
  local steps=$STEPS_RPN
  reuse_run "$model" && steps=$STEPS_REUSE
  dir=$(run_dir "$1")
  timeout "$TIMEOUT" python3 -m edgetrack train --model "$model" --loss "$loss" "${extra[@]}" --data "synthetic:$W/train" \
    --cache "$W/rpn-cache.npz" --out "$W/$dir" --device cuda --amp --batch-size "$BATCH_RPN" --epochs 10 \
    --steps-per-epoch $((steps / 10)) --workers "$2" --seed 0 --log-every 200 --frame-stride "$FRAME_STRIDE" \
    > "$W/$dir.log" 2>&1 || echo "$dir exited with $?" >> "$W/$dir.log"
}
reuse_later() { wants deblurgan-lite && [ -z "${DEBLUR_INIT:-}" ]; }  # reuse runs wait for the deblurrer they copy
for run in $RUNS; do
  case "$run" in
    siamrpn-reuse*) reuse_later || rpn "$run" "$WORKERS_ECA" & ;;
    siamrpn-alexnet*) rpn "$run" "$WORKERS_ALEX" & ;;
    siamrpn*) rpn "$run" "$WORKERS_ECA" & ;;
  esac
done
for d in deblurgan-v2 deblurgan-lite; do
  wants "$d" || continue
  timeout "$TIMEOUT" python3 -m edgetrack train --model "$d" --data "synthetic:$W/dtrain" \
    --eval-data "synthetic:$W/dtest" --out "$W/$d" --device cuda --batch-size 16 --epochs 8 \
    --steps-per-epoch $((STEPS_DEBLUR / 8)) --lr-start "$LR_DEBLUR" --workers "$WORKERS_DEBLUR" --seed 0 \
    > "$W/$d.log" 2>&1 || echo "$d exited with $?" >> "$W/$d.log" &
done
wait
if reuse_later; then
  for run in $RUNS; do
    reuse_run "$run" && rpn "$run" "$WORKERS_ECA" &
  done
fi
wait
say "training done"

pack=()
for entry in $RUNS; do
  run=$(run_dir "$entry")
  tail -3 "$W/$run.log"
  ckpt="$W/$run/final.safetensors"
  [ -f "$ckpt" ] || ckpt=$(ls -t "$W/$run"/checkpoints/*.safetensors 2>/dev/null | grep -v state | head -1 || true)
  [ -n "$ckpt" ] && pack+=("${ckpt#$W/}")
  for f in config.json log.jsonl eval.jsonl; do [ -f "$W/$run/$f" ] && pack+=("$run/$f"); done
  pack+=("$run.log")
done
tar cf "$W/models.tar" -C "$W" "${pack[@]}"
split -b 15M "$W/models.tar" "$OUT/models.tar.part-"
ls -la "$OUT"
say "packed"
