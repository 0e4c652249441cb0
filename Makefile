# dexvision: `make demo` and `make test` set everything up on a fresh machine.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# Headless GL through EGL (Mesa's software rasterizer without a GPU, the GPU's EGL with one).
export PYOPENGL_PLATFORM ?= egl
export MUJOCO_GL ?= egl

.PHONY: setup test demo docs bench clean

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml scripts/ensure-gl.sh
	bash scripts/ensure-gl.sh
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	touch $@

test: setup
	$(BIN)/python -m pytest -q

demo: setup
	rm -rf out/demo
	$(BIN)/render-sheet --task hand-block --samples 4 --annotate --out out/demo/hand-block.png
	$(BIN)/render-sheet --task gimbal-block --samples 4 --annotate --out out/demo/gimbal-block.png
	$(BIN)/render-shards --n 200 --shard-size 50 --task gimbal-block --image-size 64 --out out/demo/gimbal-200 --preview out/demo/gimbal-200.png
	$(BIN)/render-shards --n 60 --shard-size 20 --task hand-block --image-size 64 --out out/demo/hand-60
	$(BIN)/verify-shards out/demo/gimbal-200
	$(BIN)/verify-shards out/demo/hand-60
	$(BIN)/train-vision --data out/demo/gimbal-200 --arch impala --steps 150 --batch-size 16 --num-workers 1 --out out/demo/vision-gimbal --set val_every=50
	$(BIN)/render-shards --n 50 --shard-size 50 --task gimbal-block --image-size 64 --seed 1 --out out/demo/gimbal-test-50
	$(BIN)/evaluate-vision --checkpoint out/demo/vision-gimbal/checkpoint.pt --data out/demo/gimbal-test-50
	$(BIN)/plot-runs out/demo/vision-gimbal --out out/demo/vision-gimbal/curves.png
	$(BIN)/train-policy --config configs/policy/gimbal-teacher.yaml --steps 250k --out out/demo/policy-teacher
	$(BIN)/evaluate-policy --checkpoint out/demo/policy-teacher/checkpoint.pt --episodes 10 --out out/demo/policy-teacher/eval.json
	$(BIN)/train-policy --config configs/policy/gimbal-student-bc.yaml --teacher out/demo/policy-teacher/checkpoint.pt --init-vision out/demo/vision-gimbal/checkpoint.pt --steps 3k --out out/demo/policy-student --set eval_episodes=4
	$(BIN)/plot-runs out/demo/policy-teacher out/demo/policy-student --metrics charts/median_successes charts/mean_reward --linear --x minutes --out out/demo/policy-curves.png
	@echo "demo: contact sheets, datasets, a vision run, a state teacher and a pixel student, with curves, in out/demo/"

# The documentation site (README.md, docs/, BENCHMARKS.md) with warnings as errors: links and anchors must resolve.
docs: setup
	$(BIN)/mkdocs build --strict --site-dir out/site
	@echo "docs: out/site/index.html"

bench: setup
	$(BIN)/python benchmarks/render.py
	$(BIN)/python benchmarks/shards.py
	$(BIN)/render-shards --n 2000 --shard-size 200 --task gimbal-block --image-size 64 --out out/bench/gimbal-2000
	$(BIN)/python benchmarks/vision_input.py --data out/bench/gimbal-2000

clean:
	rm -rf $(VENV) out .pytest_cache
