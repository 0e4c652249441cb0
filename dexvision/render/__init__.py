"""MuJoCo state -> domain-randomized multi-camera images, with exact pose labels.

Sampling, rendering and writing are separate steps: `sample_params(cfg, rng)`
draws the randomization, `Renderer.render(state, params)` draws the images, and
a writer (dexvision.datasets) stores them.
"""

from dexvision.render.gl import configure_headless_gl

configure_headless_gl()
