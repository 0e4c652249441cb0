#!/usr/bin/env bash
# dexvision on a GPU machine: one prepared script, four guarded parts, results as they come.
#
#   bash benchmarks/gpu.sh smoke     # every part at a tiny size (~1-2 min): does it run at all?
#   bash benchmarks/gpu.sh full      # the measurements (~7 min on a 16-core H100/H200 machine)
#
# Writes $OUT/gpu.log (everything printed) and $OUT/gpu.json (the figures; rewritten after each
# part, so a part that hangs or fails costs only itself). OUT defaults to ./gpu-bench-out.
#   1. render-shards on the GPU's EGL: hand-block, 128 px, 3 cameras, jpg, shards of 100 (the flags of
#      benchmarks/shards.py), --workers 1 2 4 8 16, SPW samples per worker; samples/s from the wall
#      time of the whole command (start-up included); GPU utilization sampled by nvidia-smi.
#   2. train-vision: ResNet50 at 128 px on the dataset rendered with the most workers (bf16 autocast
#      and channels-last, as train-vision does on a GPU); first the model alone on tensors in GPU memory.
#   3. train-policy under torchrun (one process per GPU) on configs/policy/gimbal-teacher.yaml; then a
#      one-rank NCCL process group (init + all_reduce), since train-policy starts one only for world > 1.
#   4. hand-block state environments: benchmarks/hand_physics.py --parts env with 1 2 4 8 16 env workers.
# Sizes can be overridden by environment variables (SHARD (shard size; smoke 8 so that part 2 has 2 shards), SPW, RENDER_WORKERS, VSTEPS, VBATCH, VWORKERS, PSTEPS,
# PLIMIT_MIN, ENV_SECONDS, ENV_NUM, ENV_WORKERS, DEADLINE_S: the script stops starting work after that many seconds).
#
# Nothing is installed here. On the lent machine (no network), the missing packages travel as wheels in
# .whl and the GL loader libraries as Debian packages in .gl (see BENCHMARKS.md, "On a GPU machine"):
#   for f in .gl/*.deb; do dpkg -x $f /; done; ldconfig
#   python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/site .whl/*.whl
#   export PYTHONPATH=/tmp/site:$PWD; bash benchmarks/gpu.sh full
set -u
MODE=${1:-smoke}
case "$MODE" in
  smoke) : "${SHARD:=8}" "${SPW:=16}" "${RENDER_WORKERS:=1 4}" "${VSTEPS:=10}" "${VBATCH:=32}" "${VWORKERS:=4}" \
           "${PSTEPS:=5120}" "${PLIMIT_MIN:=1.5}" "${ENV_SECONDS:=1}" "${ENV_NUM:=16}" "${ENV_WORKERS:=1 2}" "${DEADLINE_S:=200}";;
  full)  : "${SHARD:=100}" "${SPW:=800}" "${RENDER_WORKERS:=1 2 4 8 16}" "${VSTEPS:=400}" "${VBATCH:=128}" "${VWORKERS:=12}" \
           "${PSTEPS:=100000}" "${PLIMIT_MIN:=0.75}" "${ENV_SECONDS:=5}" "${ENV_NUM:=256}" "${ENV_WORKERS:=1 2 4 8 16}" "${DEADLINE_S:=470}";;
  *) echo "usage: $0 smoke|full" >&2; exit 2;;
esac
OUT=${OUT:-$PWD/gpu-bench-out}
PY=${PYTHON:-python3}
WORK=${WORK:-/tmp/dexvision-gpu-bench}
LOG=gpu.log
# shellcheck source=benchmarks/gpu_env.sh
source "$(dirname "$0")/gpu_env.sh"

# run NAME SECONDS CMD...: one guarded step; its exit status goes to $WORK/rc-NAME; never longer than
# the time left before DEADLINE_S (a step with under 10 s left is skipped and recorded as such).
run() {
  local name=$1 limit=$2; shift 2
  local left=$((DEADLINE_S - SECONDS))
  if [ "$left" -lt 10 ]; then echo "== $name: skipped, deadline"; echo skipped >"$WORK/rc-$name"; return 1; fi
  [ "$limit" -gt "$left" ] && limit=$left
  echo "== $name (limit ${limit}s, t=${SECONDS}s): $*"
  local t0; t0=$(date +%s.%N)
  timeout -k 5 "$limit" "$@"
  local rc=$?
  echo "$rc $(date +%s.%N) $t0" >"$WORK/rc-$name"
  echo "== $name: exit $rc after $(awk "BEGIN{printf \"%.1f\", $(date +%s.%N) - $t0}")s"
  return $rc
}

# Everything measured so far into $OUT/gpu.json.
collect() {
  "$PY" - "$WORK" "$OUT/gpu.json" "$MODE" <<'EOF'
import csv, json, os, pathlib, sys
work, out, mode = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2]), sys.argv[3]
res = {"mode": mode, "steps": {}}
for f in sorted(work.glob("rc-*")):
    rc, end, start = (f.read_text().split() + ["", ""])[:3]
    res["steps"][f.name[3:]] = {"exit": rc, "start": float(start or 0), "end": float(end or 0),
                                "wall_s": float(end) - float(start) if start else None}
def load(name):
    p = work / name
    try:
        return json.loads(p.read_text()) if p.exists() else None
    except ValueError:
        return None
res["machine"] = load("machine.json")
res["egl"] = load("egl.json")
res["render"] = [json.loads(l) for l in (work / "render.jsonl").read_text().splitlines()] \
    if (work / "render.jsonl").exists() else []
res["vision_model_alone"] = load("model_alone.json")
res["vision_train"] = load("vision/metrics.json")
mj = work / "vision" / "metrics.jsonl"
if mj.exists():
    rows = [json.loads(l) for l in mj.read_text().splitlines() if l.strip()]
    res["vision_train_windows"] = [{k: v for k, v in r.items() if k in ("step", "time") or k.startswith(("perf/", "system/"))}
                                   for r in rows if "perf/images_per_s" in r]
res["policy"] = load("policy/metrics.json")
res["nccl"] = load("nccl.json")
res["env"] = load("env.json")
smi = work / "smi.csv"
if smi.exists():  # mean GPU utilization within each step's wall time
    samples = []
    for row in csv.reader(smi.read_text().splitlines()):
        try:
            samples.append((float(row[0]), float(row[1]), float(row[2])))
        except (ValueError, IndexError):
            pass
    for name, s in res["steps"].items():
        inside = [(u, m) for t, u, m in samples if s["start"] <= t <= s["end"]]
        if inside:
            s["gpu_util_mean_pct"] = sum(u for u, _ in inside) / len(inside)
            s["gpu_util_max_pct"] = max(u for u, _ in inside)
            s["gpu_mem_max_mib"] = max(m for _, m in inside)
out.write_text(json.dumps(res, indent=1))
EOF
}

# -- 0. the machine ---------------------------------------------------------------------------------
echo "dexvision gpu.sh $MODE, commit $(git rev-parse --short HEAD 2>/dev/null || echo '?'), $(date -u +%FT%TZ)"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>&1
"$PY" - "$WORK/machine.json" <<'EOF'
import json, os, platform, subprocess, sys
import numpy, torch
info = {"python": platform.python_version(), "cpus": os.cpu_count(), "torch": torch.__version__,
        "cuda": torch.version.cuda, "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        "numpy": numpy.__version__}
for mod in ("mujoco", "pyrender", "OpenGL", "trimesh", "webdataset", "gymnasium", "timm", "torchvision"):
    try:
        info[mod] = __import__(mod).__version__
    except Exception as e:  # noqa: BLE001
        info[mod] = f"unavailable: {type(e).__name__}: {e}"
try:
    info["git"] = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True).stdout.strip()
    info["git_dirty"] = bool(subprocess.run(["git", "status", "--porcelain", "-uno"], capture_output=True,
                                            text=True).stdout.strip())
except OSError:
    pass
print(json.dumps(info))
open(sys.argv[1], "w").write(json.dumps(info, indent=1))
EOF
# GPU utilization and memory every 0.5 s, with a unix timestamp per line
( while true; do
    printf '%s,%s\n' "$(date +%s.%N)" "$(nvidia-smi --query-gpu=utilization.gpu,memory.used --format=csv,noheader,nounits 2>/dev/null | head -1 | tr -d ' ')"
    sleep 0.5
  done >"$WORK/smi.csv" 2>/dev/null ) &
SMI_PID=$!
trap 'kill $SMI_PID 2>/dev/null; collect' EXIT

# The GL implementation EGL gives us (NVIDIA, not Mesa's llvmpipe)
run egl 60 "$PY" - "$WORK/egl.json" <<'EOF'
import json, sys
from dexvision.render.gl import create_offscreen
create_offscreen(64, 64)
from OpenGL import GL
info = {k: GL.glGetString(getattr(GL, "GL_" + k)).decode() for k in ("VENDOR", "RENDERER", "VERSION")}
print(info)
open(sys.argv[1], "w").write(json.dumps(info))
EOF

# -- 1. render-shards --------------------------------------------------------------------------------
LASTW=${RENDER_WORKERS##* }
for w in $RENDER_WORKERS; do
  n=$((SPW * w)); ds=$WORK/shards-w$w
  run "render-w$w" 150 "$PY" -m dexvision.datasets.render_shards --n "$n" --task hand-block --image-size 128 \
      --shard-size "$SHARD" --workers "$w" --format jpg --out "$ds" >"$WORK/render-w$w.log" 2>&1
  tail -n 3 "$WORK/render-w$w.log"
  "$PY" - "$ds" "$w" "$n" "$WORK/rc-render-w$w" "$WORK/render-w$w.log" >>"$WORK/render.jsonl" <<'EOF'
import json, pathlib, re, sys
ds, w, n, rcf = pathlib.Path(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), pathlib.Path(sys.argv[4])
rc, end, start = (rcf.read_text().split() + ["0", "0"])[:3]
row = {"task": "hand-block", "size": 128, "workers": w, "n": n, "exit": rc, "wall_s": float(end) - float(start)}
# render-shards' own figure: from its first render to the last shard (no interpreter start-up)
log = pathlib.Path(sys.argv[5])
m = re.search(r"rendered [\d,]+ shards \(([\d,]+) samples\) in ([\d.]+) s", log.read_text() if log.exists() else "")
if m:
    row["render_s"], row["render_samples_per_s"] = float(m[2]), int(m[1].replace(",", "")) / float(m[2])
try:
    m = json.loads((ds / "dataset.json").read_text())
    row["bytes_per_sample"] = m["bytes_written"] / n
    row["samples_per_s"] = n / row["wall_s"] if rc == "0" else None
except (OSError, ValueError, KeyError) as e:
    row["error"] = f"{type(e).__name__}: {e}"
print(json.dumps(row))
EOF
  tail -n 1 "$WORK/render.jsonl"
  [ "$w" != "$LASTW" ] && rm -rf "$ds"
  collect
done
DATA=$WORK/shards-w$LASTW

# -- 2. train-vision ---------------------------------------------------------------------------------
run vision-model-alone 120 "$PY" - "$WORK/model_alone.json" "$VBATCH" <<'EOF'
import json, sys, time
import torch
from dexvision.vision.model import PoseNet, PoseNetConfig, pose_loss
out, batch = sys.argv[1], int(sys.argv[2])
dev = torch.device("cuda")
torch.backends.cudnn.benchmark = True
res = {"arch": "resnet50", "image_size": 128, "cameras": 3, "batch": batch, "amp": "bf16", "channels_last": True}
model = PoseNet(PoseNetConfig(arch="resnet50", image_size=128, num_cameras=3)).to(dev).to(memory_format=torch.channels_last)
opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
images = torch.randint(0, 256, (batch, 3, 3, 128, 128), dtype=torch.uint8, device=dev)
pos = torch.zeros(batch, 3, device=dev)
quat = torch.tensor([[1.0, 0, 0, 0]], device=dev).repeat(batch, 1)
def step():
    with torch.autocast("cuda", dtype=torch.bfloat16):
        pred = model(images)
    loss = pose_loss(pred, pos, quat)["loss"]
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()
for _ in range(10):
    step()
torch.cuda.synchronize()
n = 10 if batch <= 32 else 60
t = time.perf_counter()
for _ in range(n):
    step()
torch.cuda.synchronize()
dt = time.perf_counter() - t
res.update(steps=n, seconds=dt, images_per_s=n * batch * 3 / dt, max_memory_gib=torch.cuda.max_memory_allocated() / 2**30)
print(json.dumps(res))
open(out, "w").write(json.dumps(res, indent=1))
EOF
collect
if [ -f "$DATA/dataset.json" ]; then
  run vision-train 200 "$PY" -m dexvision.vision.train --data "$DATA" --arch resnet50 --batch-size "$VBATCH" \
      --steps "$VSTEPS" --num-workers "$VWORKERS" --out "$WORK/vision" --set val_every=1000000 \
      --set checkpoint_every=1000000 --set val_samples=256 --set log_every_s=2 --set time_limit_min=2.5 \
      </dev/null 2>&1 | tr '\r' '\n' | grep -v '^train-vision: ' | tail -n 20
else
  echo "== vision-train: skipped, no dataset from part 1"; echo "no-data" >"$WORK/rc-vision-train"
fi
collect

# -- 3. train-policy under torchrun ------------------------------------------------------------------
run policy-torchrun 200 "$PY" -m torch.distributed.run --standalone --nproc_per_node 1 -m dexvision.policy.train \
    --config configs/policy/gimbal-teacher.yaml --steps "$PSTEPS" --out "$WORK/policy" \
    --set eval_episodes=4 --set time_limit_min="$PLIMIT_MIN" </dev/null 2>&1 | tr '\r' '\n' | grep -v '^train-policy ' | tail -n 20
collect
cat >"$WORK/nccl.py" <<'EOF'
import json, os, sys, time
import torch
import torch.distributed as dist
rank, local = int(os.environ["RANK"]), int(os.environ["LOCAL_RANK"])
torch.cuda.set_device(local)
t = time.perf_counter()
dist.init_process_group(backend="nccl", device_id=torch.device("cuda", local))
x = torch.ones(1 << 20, device="cuda")
dist.all_reduce(x)
torch.cuda.synchronize()
res = {"backend": dist.get_backend(), "world_size": dist.get_world_size(), "nccl": ".".join(map(str, torch.cuda.nccl.version())),
       "init_and_first_all_reduce_s": time.perf_counter() - t, "all_reduce_ok": bool((x == dist.get_world_size()).all())}
dist.destroy_process_group()
print(json.dumps(res))
if rank == 0:
    open(sys.argv[1], "w").write(json.dumps(res))
EOF
run nccl 60 "$PY" -m torch.distributed.run --standalone --nproc_per_node 1 "$WORK/nccl.py" "$WORK/nccl.json" </dev/null 2>&1 | tail -n 5
collect

# -- 4. hand-block environments with env workers -----------------------------------------------------
# shellcheck disable=SC2086
run env-workers 240 "$PY" benchmarks/hand_physics.py --parts env --seconds "$ENV_SECONDS" --num-envs "$ENV_NUM" \
    --env-workers $ENV_WORKERS --json "$WORK/env.json" </dev/null
collect
echo "done in ${SECONDS}s; results in $OUT/gpu.json"
