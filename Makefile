# dexvision: `make demo` and `make test` set everything up on a fresh machine.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# Headless GL through EGL (Mesa's software rasterizer without a GPU, the GPU's EGL with one).
export PYOPENGL_PLATFORM ?= egl
export MUJOCO_GL ?= egl

.PHONY: setup test demo bench clean

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
	$(BIN)/render-sheet --task hand-block --samples 4 --annotate --out out/demo/hand-block.png
	$(BIN)/render-sheet --task gimbal-block --samples 4 --annotate --out out/demo/gimbal-block.png
	$(BIN)/render-shards --n 200 --shard-size 50 --task gimbal-block --image-size 64 --out out/demo/gimbal-200 --preview out/demo/gimbal-200.png
	$(BIN)/render-shards --n 60 --shard-size 20 --task hand-block --image-size 64 --out out/demo/hand-60
	$(BIN)/verify-shards out/demo/gimbal-200
	$(BIN)/verify-shards out/demo/hand-60
	@echo "demo: contact sheets and datasets in out/demo/"

bench: setup
	$(BIN)/python benchmarks/render.py
	$(BIN)/python benchmarks/shards.py

clean:
	rm -rf $(VENV) out .pytest_cache
