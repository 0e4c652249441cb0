#!/usr/bin/env bash
# The direct and the keypoint head side by side (issue 33): the same renders, the same encoder (IMPALA),
# the same wall time each, then both in one table on the in-distribution test set, the camera-shift set,
# and the keypoint head under miscalibrated cameras.
#
#   bash benchmarks/pose_heads.sh OUT [N_TRAIN] [MINUTES] [SIZE] [PARALLEL]
#   bash benchmarks/pose_heads.sh out/bench/heads 15k 25 64 0     # hand-block, 64 px, 25 min each, one after the other
#
# PARALLEL=1 trains both heads at once (one core each; what a 2-core machine with nothing else running
# should do), 0 one after the other (when another job holds a core). Renders are reused if present.
set -euo pipefail
OUT=${1:?usage: pose_heads.sh OUT [N_TRAIN] [MINUTES] [SIZE] [PARALLEL]}
N=${2:-15k}
MINUTES=${3:-25}
SIZE=${4:-64}
PARALLEL=${5:-0}
BIN=${BIN:-.venv/bin}
export PYOPENGL_PLATFORM=egl MUJOCO_GL=egl OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
mkdir -p "$OUT"
stamp() { date +%s; }
t0=$(stamp)
# (render-shards skips the shards a dataset already has: a second run reuses the renders)
"$BIN/render-shards" --n "$N" --task hand-block --image-size "$SIZE" --seed 0 --workers 1 --out "$OUT/train"
for c in reference camera; do
    "$BIN/render-shards" --config "configs/data/shift-$c.yaml" --task hand-block --image-size "$SIZE" --n 1000 \
        --workers 1 --out "$OUT/shift/$c"
done
t1=$(stamp)
echo "renders: $((t1 - t0)) s" | tee "$OUT/times.txt"
train() {  # HEAD
    "$BIN/train-vision" --data "$OUT/train" --val-data "$OUT/shift/reference" --arch impala --batch-size 64 \
        --num-workers 1 --steps 100000 --time-limit-min "$MINUTES" --out "$OUT/$1" --set "head=$1" \
        --set val_every=500 --set val_samples=500 --set checkpoint_every=500 2> "$OUT/$1.log" | tail -1
}
if [ "$PARALLEL" = 1 ]; then
    train direct & train keypoints & wait
else
    train direct
    train keypoints
fi
echo "training: $(( $(stamp) - t1 )) s" | tee -a "$OUT/times.txt"
"$BIN/evaluate-vision" --checkpoint "$OUT/direct/checkpoint.pt" --checkpoint "$OUT/keypoints/checkpoint.pt" \
    --data "$OUT/shift/reference" --num-workers 1 --out "$OUT/compare-reference.json"
"$BIN/evaluate-vision" --checkpoint "$OUT/direct/checkpoint.pt" --checkpoint "$OUT/keypoints/checkpoint.pt" \
    --data "$OUT/shift/camera" --num-workers 1 --out "$OUT/compare-camera.json"
for err in 5,1 10,2; do
    "$BIN/evaluate-vision" --checkpoint "$OUT/keypoints/checkpoint.pt" --data "$OUT/shift/reference" \
        --num-workers 1 --camera-error "$err"
done
"$BIN/plot-runs" "$OUT/direct" "$OUT/keypoints" --metrics val/orientation_deg/median val/position_mm/median \
    --linear --x minutes --out "$OUT/curves.png"
