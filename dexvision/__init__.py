"""dexvision: domain-randomized synthetic vision for dexterous manipulation.

Data flows sim -> render -> datasets -> vision -> policy; `track` serves every
trainer. See README.md for the commands.
"""

__version__ = "0.1.0"

import os as _os
import sys as _sys

# The commands ([project.scripts] in pyproject.toml): run as one of them (or as `python -m dexvision...`, whose
# first argument reads "-m" while its package is imported), an unusable GL platform ends in one line here,
# before MuJoCo is imported: MuJoCo loads the platform named by MUJOCO_GL at import, and a missing one
# (OSMesa, GLX without a display) fails there with a traceback.
COMMANDS = ("render-sheet", "render-shards", "verify-shards", "train-vision", "evaluate-vision", "train-policy",
            "evaluate-policy", "plot-runs", "run-experiment", "report")


def gl_platform_problem(environ=_os.environ) -> str | None:
    """Why the GL platform variables cannot work (dexvision renders headless through EGL only), or None."""
    pyopengl, mujoco_gl = environ.get("PYOPENGL_PLATFORM"), environ.get("MUJOCO_GL")
    if pyopengl and mujoco_gl and pyopengl != mujoco_gl:
        return (f"PYOPENGL_PLATFORM={pyopengl} and MUJOCO_GL={mujoco_gl} disagree; dexvision renders through EGL "
                "(Mesa's EGL needs no GPU or display): set both to egl, or unset both")
    wrong = [name for name, value in (("PYOPENGL_PLATFORM", pyopengl), ("MUJOCO_GL", mujoco_gl))
             if value and value != "egl"]
    if not wrong:
        return None
    return (f"{' and '.join(wrong)}={pyopengl or mujoco_gl}: not supported, dexvision renders headless through EGL "
            f"only (Mesa's EGL needs no GPU or display); set {' and '.join(wrong)} to egl, or unset "
            f"{'them' if len(wrong) > 1 else 'it'}")


if _sys.argv[:1] == ["-m"] or _os.path.basename(_sys.argv[0] if _sys.argv else "") in COMMANDS:
    _problem = gl_platform_problem()
    if _problem:
        print(f"error: {_problem}", file=_sys.stderr)
        raise SystemExit(2)
