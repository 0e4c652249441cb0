"""MuJoCo state -> domain-randomized multi-camera images, with exact pose labels.

Sampling, rendering and writing are separate steps: `sample_params(cfg, rng)`
draws the randomization, `Renderer.render(state, params)` draws the images, and
a writer (dexvision.datasets) stores them.

Importing this package changes nothing in the process: the GL platform variables
(PYOPENGL_PLATFORM, MUJOCO_GL) are set where a GL context is made
(`dexvision.render.gl.create_offscreen`, called by `Renderer`).
"""
