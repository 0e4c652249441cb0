#!/usr/bin/env bash
# The demo's teacher with other settings, and its student on a pose model already trained (by
# benchmarks/demo_pose_head.sh): scripts/demo.sh's teacher and student commands, so that teachers compare side by
# side on one pose model (BENCHMARKS.md, "The first run's student: a teacher that slows near its goal").
# Usage: bash benchmarks/demo_teacher.sh OUT NAME VISION_CKPT [--set KEY=VALUE ...]   (the sets: the teacher's
# env, given to the student too, e.g. --set env.action_penalty=0.1)
# Beside another job on 2 cores, run it with OMP_NUM_THREADS=1 (docs/troubleshooting.md).
set -euo pipefail
OUT=$1; NAME=$2; VISION=$3; shift 3
B=${BIN:-.venv/bin}
export PYOPENGL_PLATFORM=egl MUJOCO_GL=egl
mkdir -p "$OUT"
start=$SECONDS
"$B/train-policy" --config configs/policy/gimbal-teacher.yaml --steps 150k --out "$OUT/teacher-$NAME" "$@"
echo "teacher $NAME wall $((SECONDS - start))" >>"$OUT/times.txt"
"$B/evaluate-policy" --checkpoint "$OUT/teacher-$NAME/checkpoint.pt" --episodes 30 \
    --out "$OUT/teacher-$NAME/eval.json"
start=$SECONDS
"$B/train-policy" --config configs/policy/gimbal-student-bc.yaml --teacher "$OUT/teacher-$NAME/checkpoint.pt" \
    --init-vision "$VISION" --image-size 32 --steps 32k --out "$OUT/student-$NAME" \
    --set eval_episodes=4 --set epochs=0 --set bc_replay=32 "$@"
echo "student $NAME wall $((SECONDS - start))" >>"$OUT/times.txt"
"$B/evaluate-policy" --checkpoint "$OUT/student-$NAME/checkpoint.pt" --episodes 30 \
    --out "$OUT/student-$NAME/eval.json"
