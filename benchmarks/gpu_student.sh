#!/usr/bin/env bash
# The shipped hand pixel student (configs/policy/hand-student-bc.yaml) on a GPU node, in three shapes:
#
#   bash benchmarks/gpu_student.sh TEACHER_CKPT VISION_CKPT
#
#   node     every core, render workers on the GPU's EGL, the policy on CUDA
#   2c+gpu   2 cores (taskset -c 0,1), render workers on the GPU's EGL, the policy on CUDA
#   2c+egl   2 cores, render workers on the GPU's EGL, the policy on the CPU (CUDA_VISIBLE_DEVICES empty)
# and the fast hand's physics on one core (benchmarks/hand_physics.py), to compare the node's cores
# with the 2-core VM's. Each shape runs `benchmarks/policy.py hand-student` (ITERATIONS iterations,
# default 6, medians over all but the first). Results: $OUT/gpu_student.json and $OUT/gpu_student.log.
# Set-up on a machine without the packages: as for benchmarks/gpu.sh (wheels and GL loader packages).
set -u
TEACHER=$(realpath "${1:?usage: $0 TEACHER_CKPT VISION_CKPT}")
VISION=$(realpath "${2:?usage: $0 TEACHER_CKPT VISION_CKPT}")
for f in "$TEACHER" "$VISION"; do [ -f "$f" ] || { echo "$0: no checkpoint at ${f:-the given path}" >&2; exit 2; }; done
SHAPE_LIMIT_S=${SHAPE_LIMIT_S:-240}  # each shape is stopped after this long: a hang costs only itself
OUT=${OUT:-$PWD/gpu-bench-out}
PY=${PYTHON:-python3}
ITERATIONS=${ITERATIONS:-6}
WORK=${WORK:-/tmp/dexvision-gpu-student}
LOG=gpu_student.log
# shellcheck source=benchmarks/gpu_env.sh
source "$(dirname "$0")/gpu_env.sh"
echo "gpu_student.sh: commit $(git rev-parse --short HEAD 2>/dev/null || echo '?'), $(date -u +%FT%TZ), $(nproc) cores"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>&1
LAST=$(($(nproc) - 1))

shape() {  # NAME CPUS CUDA_VISIBLE_DEVICES-or-"all"
  local name=$1 cpus=$2 cuda=$3 t0 rc envs=()
  [ "$cuda" = all ] || envs=("CUDA_VISIBLE_DEVICES=$cuda")
  t0=$(date +%s)
  echo "== $name (cpus $cpus, cuda $cuda)"
  env "${envs[@]}" timeout -k 5 "$SHAPE_LIMIT_S" taskset -c "$cpus" "$PY" benchmarks/policy.py hand-student \
    --out "$WORK/$name" --teacher "$TEACHER" --vision "$VISION" --iterations "$ITERATIONS" >"$WORK/$name.log" 2>&1
  rc=$?
  echo "== $name: exit $rc after $(($(date +%s) - t0)) s"
  tail -n 22 "$WORK/$name.log"
  grep -h "perf\|Error\|error" "$WORK/$name/hand-student.log" 2>/dev/null | tail -n 5
}

shape node "0-$LAST" all
shape 2c+gpu 0,1 all
shape 2c+egl 0,1 ""
echo "== physics: one core"
timeout -k 5 60 taskset -c 0 "$PY" benchmarks/hand_physics.py --parts env --seconds 3 --env-workers 1 --json "$WORK/physics.json" 2>&1 | tail -n 4

"$PY" - "$WORK" "$OUT/gpu_student.json" <<'EOF'
import json, pathlib, sys
work, out = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2])
res = {}
for name in ("node", "2c+gpu", "2c+egl"):
    p = work / name / "hand-student.json"
    res[name] = json.loads(p.read_text()) if p.exists() else None
p = work / "physics.json"
res["physics"] = json.loads(p.read_text()) if p.exists() else None
out.write_text(json.dumps(res, indent=1))
print(json.dumps({k: (v or {}).get("frames_per_s") for k, v in res.items() if k != "physics"}))
EOF
