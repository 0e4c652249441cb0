#!/usr/bin/env bash
# `make demo`: every stage of the pipeline at laptop size, ending with a table of what each stage wrote
# and its figure (scripts/demo_summary.py). Usage: scripts/demo.sh [OUT] (default out/demo).
# The budgets were chosen by measurement on 2 cores (BENCHMARKS.md, "make demo: its budgets"): at 32 px with
# three cameras the gimbal pose model reaches 18-20 deg in 1,200 steps on 6,000 renders and 15 deg in 3,000;
# 64 px would need ~4x the time per step, and one camera is not enough at 32 px (57 deg after 1,500 steps).
# The student keeps the pose model's encoder frozen (epochs=0) and clones from its last 32 rollouts
# (bc_replay=32); its greedy successes follow the encoder's accuracy. The teacher reaches 50 of 50 successes
# in 150k frames. The student is judged on 30 greedy episodes: its successes per episode spread from 0 to 50,
# and the mean of 10 episodes missed the mean of 30 by up to 6 (16.7 against 20.0, 22.5 against 28.5).
set -euo pipefail
OUT=${1:-out/demo}
BIN=${BIN:-.venv/bin}
rm -rf "$OUT"
mkdir -p "$OUT"

# Run one stage, recording its name and wall time for the closing table.
stage() {
    local name=$1
    shift
    local start=$SECONDS
    echo "== demo: $name" >&2
    "$@"
    printf '%s\t%s\n' "$name" "$((SECONDS - start))" >>"$OUT/stages.tsv"
}

stage "contact sheets" bash -c "$BIN/render-sheet --task hand-block --samples 4 --annotate --out $OUT/hand-block.png \
    && $BIN/render-sheet --task gimbal-block --samples 4 --annotate --out $OUT/gimbal-block.png"
stage "render: gimbal train" "$BIN/render-shards" --n 6000 --shard-size 250 --task gimbal-block --image-size 32 \
    --out "$OUT/gimbal-train" --preview "$OUT/gimbal-train.png"
stage "render: gimbal test" "$BIN/render-shards" --n 200 --shard-size 200 --task gimbal-block --image-size 32 --seed 1 \
    --out "$OUT/gimbal-test"
stage "render: hand" "$BIN/render-shards" --n 60 --shard-size 20 --task hand-block --image-size 64 --out "$OUT/hand-60"
stage "verify shards" bash -c "$BIN/verify-shards $OUT/gimbal-train && $BIN/verify-shards $OUT/hand-60"
stage "pose model" "$BIN/train-vision" --data "$OUT/gimbal-train" --val-data "$OUT/gimbal-test" --arch impala \
    --steps 3000 --batch-size 32 --num-workers 1 --out "$OUT/vision-gimbal" --set val_every=1000
stage "pose model: test set" "$BIN/evaluate-vision" --checkpoint "$OUT/vision-gimbal/checkpoint.pt" \
    --data "$OUT/gimbal-test" --out "$OUT/vision-gimbal/eval-test.json"
"$BIN/plot-runs" "$OUT/vision-gimbal" --out "$OUT/vision-gimbal/curves.png"
stage "teacher" "$BIN/train-policy" --config configs/policy/gimbal-teacher.yaml --steps 150k --out "$OUT/policy-teacher"
stage "teacher: evaluation" "$BIN/evaluate-policy" --checkpoint "$OUT/policy-teacher/checkpoint.pt" --episodes 10 \
    --out "$OUT/policy-teacher/eval.json"
stage "student" "$BIN/train-policy" --config configs/policy/gimbal-student-bc.yaml \
    --teacher "$OUT/policy-teacher/checkpoint.pt" --init-vision "$OUT/vision-gimbal/checkpoint.pt" --image-size 32 \
    --steps 32k --out "$OUT/policy-student" --set eval_episodes=4 --set epochs=0 --set bc_replay=32
stage "student: evaluation" "$BIN/evaluate-policy" --checkpoint "$OUT/policy-student/checkpoint.pt" --episodes 30 \
    --out "$OUT/policy-student/eval.json"
"$BIN/plot-runs" "$OUT/policy-teacher" "$OUT/policy-student" --metrics charts/median_successes charts/mean_reward \
    --linear --x minutes --out "$OUT/policy-curves.png"
"$BIN/python" scripts/demo_summary.py "$OUT"
