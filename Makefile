# dexvision: `make demo` and `make test` set everything up on a fresh machine.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# Headless GL through EGL (Mesa's software rasterizer without a GPU, the GPU's EGL with one).
export PYOPENGL_PLATFORM ?= egl
export MUJOCO_GL ?= egl

.PHONY: setup test test-demo demo docs bench clean

setup: $(VENV)/.installed

# --no-compile: Python compiles each module when it is first imported, not all of torch's at install
# (measured side by side: 98 s against 188 s for this install, ~9 s more on the first import).
$(VENV)/.installed: pyproject.toml scripts/ensure-gl.sh
	bash scripts/ensure-gl.sh
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet --no-compile -e '.[test]'
	touch $@

test: setup
	$(BIN)/python -m pytest -q

demo: setup
	BIN=$(BIN) bash scripts/demo.sh out/demo

# The demo at its own sizes, checked against its targets (tests/test_demo.py; ~8 minutes, not part of `make test`).
test-demo: setup
	$(BIN)/python -m pytest -q -m demo tests/test_demo.py

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
