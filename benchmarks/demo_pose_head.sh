#!/usr/bin/env bash
# The demo's pose model with another head, and its student: scripts/demo.sh's commands on shared renders and
# one shared teacher, so that two heads compare side by side (BENCHMARKS.md, "The first run's student: the
# keypoint head as its pose model").
# Usage: bash benchmarks/demo_pose_head.sh OUT HEAD [STEPS]   (HEAD: direct or keypoints; STEPS default 3000)
# OUT/gimbal-train and OUT/gimbal-test are rendered and OUT/teacher trained on the first call, then reused.
# Beside another job on 2 cores, run it with OMP_NUM_THREADS=1 (docs/troubleshooting.md).
set -euo pipefail
OUT=$1; HEAD=$2; STEPS=${3:-3000}
B=${BIN:-.venv/bin}
export PYOPENGL_PLATFORM=egl MUJOCO_GL=egl
mkdir -p "$OUT"
[ -f "$OUT/gimbal-train/dataset.json" ] || "$B/render-shards" --n 6000 --shard-size 250 --task gimbal-block \
    --image-size 32 --out "$OUT/gimbal-train"
[ -f "$OUT/gimbal-test/dataset.json" ] || "$B/render-shards" --n 200 --shard-size 200 --task gimbal-block \
    --image-size 32 --seed 1 --out "$OUT/gimbal-test"
[ -f "$OUT/teacher/checkpoint.pt" ] || "$B/train-policy" --config configs/policy/gimbal-teacher.yaml --steps 150k \
    --out "$OUT/teacher"
start=$SECONDS
"$B/train-vision" --data "$OUT/gimbal-train" --val-data "$OUT/gimbal-test" --arch impala --steps "$STEPS" \
    --batch-size 32 --num-workers 1 --out "$OUT/vision-$HEAD" --set val_every=1000 --set head="$HEAD"
echo "vision $HEAD wall $((SECONDS - start))" >>"$OUT/times.txt"
"$B/evaluate-vision" --checkpoint "$OUT/vision-$HEAD/checkpoint.pt" --data "$OUT/gimbal-test" \
    --out "$OUT/vision-$HEAD/eval-test.json"
start=$SECONDS
"$B/train-policy" --config configs/policy/gimbal-student-bc.yaml --teacher "$OUT/teacher/checkpoint.pt" \
    --init-vision "$OUT/vision-$HEAD/checkpoint.pt" --image-size 32 --steps 32k --out "$OUT/student-$HEAD" \
    --set eval_episodes=4 --set epochs=0 --set bc_replay=32
echo "student $HEAD wall $((SECONDS - start))" >>"$OUT/times.txt"
"$B/evaluate-policy" --checkpoint "$OUT/student-$HEAD/checkpoint.pt" --episodes 30 --out "$OUT/student-$HEAD/eval.json"
