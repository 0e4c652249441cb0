"""Headless OpenGL: EGL by default (Mesa's software rasterizer without a GPU, the GPU's EGL with one).

PyOpenGL picks its platform when it is first imported, and MuJoCo's renderer picks
its own from MUJOCO_GL; the two must agree or contexts clash in one process. So
`configure_headless_gl()` runs where a context is made (`Renderer`, `create_offscreen`),
before pyrender is imported; importing dexvision changes no environment variable.
"""

from __future__ import annotations

import atexit
import importlib.util
import os
from pathlib import Path

import numpy as np

from dexvision.errors import GLUnavailableError, UserError

DEBIAN_GL_PACKAGES = "libegl1 libgl1-mesa-dri libglx-mesa0 libgles2"


def configure_headless_gl() -> str:
    """Make PYOPENGL_PLATFORM and MUJOCO_GL agree (default egl); returns the platform.

    A user who sets one of them gets the other set to match; one who sets both to
    different values gets a clear error when a renderer is created.
    """
    pyopengl = os.environ.get("PYOPENGL_PLATFORM")
    mujoco_gl = os.environ.get("MUJOCO_GL")
    platform = pyopengl or mujoco_gl or "egl"
    os.environ.setdefault("PYOPENGL_PLATFORM", platform)
    os.environ.setdefault("MUJOCO_GL", platform)
    return platform


def check_gl_platform() -> str:
    """The GL platform (egl); one line naming the fix for any other, or for two that disagree."""
    from dexvision import gl_platform_problem  # noqa: PLC0415

    problem = gl_platform_problem()
    if problem:
        raise UserError(problem)
    return os.environ.get("PYOPENGL_PLATFORM", "egl")


_OFFSCREEN = None


def _colour_only_renderer_class():
    """A pyrender Renderer with a chosen MSAA sample count that reads back colour only.

    pyrender always renders into a 4x multisampled framebuffer and reads depth too;
    on Mesa's CPU rasterizer 4x MSAA about doubles the cost of a frame, and the
    depth readback is wasted work for RGB datasets.
    """
    from OpenGL import GL  # noqa: PLC0415
    from pyrender.renderer import Renderer  # noqa: PLC0415

    class ColourOnlyRenderer(Renderer):
        msaa_samples = 0

        def hold_texture(self, texture) -> None:
            """Keep `texture` uploaded while no mesh uses it, until `release_texture`."""
            self.__dict__.setdefault("_held", set()).add(texture)

        def release_texture(self, texture) -> None:
            """Let go of a held texture: deleted from GL at the next frame unless a mesh uses it."""
            self.__dict__.setdefault("_held", set()).discard(texture)
            self.__dict__.setdefault("_released", []).append(texture)

        def _compute_max_n_lights(self, flags):
            """pyrender's, asked of GL once per flags instead of twice per primitive and frame."""
            cache = self.__dict__.setdefault("_max_n_lights", {})
            if flags not in cache:
                cache[flags] = super()._compute_max_n_lights(flags)
            return list(cache[flags])

        def upload_vertices(self, primitive, data: np.ndarray) -> None:
            """Replace `primitive`'s vertex buffer with `data` (float32, pyrender's interleaved layout) at the
            next frame: a re-posed mesh keeps its GL buffers instead of being made again."""
            self.__dict__.setdefault("_uploads", {})[primitive] = data

        def _update_context(self, scene, flags):
            """pyrender's, except that held textures are neither deleted when unused nor uploaded again
            when used again: dexvision's Renderer caches the textures of the appearances it renders in
            turn (a policy's environments keep one per episode)."""
            held, released = self.__dict__.get("_held", set()), self.__dict__.get("_released", [])
            used = {t for m in scene.meshes for p in m.primitives for t in p.material.textures}
            for texture in released:
                if texture not in used and texture._texid is not None:
                    texture.delete()
            released.clear()
            self._mesh_textures = ({t for t in self._mesh_textures if t in used or t not in held}
                                   | {t for t in used & held if t._texid is not None})
            super()._update_context(scene, flags)
            for primitive, data in self.__dict__.pop("_uploads", {}).items():
                if primitive._vertex_array_id is not None:  # else: not in this scene, uploaded when it is
                    GL.glBindBuffer(GL.GL_ARRAY_BUFFER, primitive._buffers[0])
                    GL.glBufferSubData(GL.GL_ARRAY_BUFFER, 0, data.nbytes, data)

        def _configure_main_framebuffer(self):
            key = (self.viewport_width, self.viewport_height, self.msaa_samples)
            if self._main_fb is not None and getattr(self, "_fb_key", None) != key:
                self._delete_main_framebuffer()
            if self._main_fb is not None:
                return
            w, h = self.viewport_width, self.viewport_height
            fbs, cbs, dbs = [], [], []
            for samples in (0, self.msaa_samples):
                cb, db = GL.glGenRenderbuffers(2)
                GL.glBindRenderbuffer(GL.GL_RENDERBUFFER, cb)
                GL.glRenderbufferStorageMultisample(GL.GL_RENDERBUFFER, samples, GL.GL_RGBA, w, h)
                GL.glBindRenderbuffer(GL.GL_RENDERBUFFER, db)
                GL.glRenderbufferStorageMultisample(GL.GL_RENDERBUFFER, samples, GL.GL_DEPTH_COMPONENT24, w, h)
                fb = GL.glGenFramebuffers(1)
                GL.glBindFramebuffer(GL.GL_DRAW_FRAMEBUFFER, fb)
                GL.glFramebufferRenderbuffer(GL.GL_DRAW_FRAMEBUFFER, GL.GL_COLOR_ATTACHMENT0, GL.GL_RENDERBUFFER, cb)
                GL.glFramebufferRenderbuffer(GL.GL_DRAW_FRAMEBUFFER, GL.GL_DEPTH_ATTACHMENT, GL.GL_RENDERBUFFER, db)
                fbs.append(fb), cbs.append(cb), dbs.append(db)
            self._main_fb, self._main_fb_ms = fbs
            self._main_cb, self._main_cb_ms = cbs
            self._main_db, self._main_db_ms = dbs
            self._main_fb_dims = (w, h)
            self._fb_key = key

        def _read_main_framebuffer(self, scene, flags):
            w, h = self._main_fb_dims
            GL.glBindFramebuffer(GL.GL_READ_FRAMEBUFFER, self._main_fb_ms)
            GL.glBindFramebuffer(GL.GL_DRAW_FRAMEBUFFER, self._main_fb)
            GL.glBlitFramebuffer(0, 0, w, h, 0, 0, w, h, GL.GL_COLOR_BUFFER_BIT, GL.GL_NEAREST)
            GL.glBindFramebuffer(GL.GL_READ_FRAMEBUFFER, self._main_fb)
            buf = GL.glReadPixels(0, 0, w, h, GL.GL_RGB, GL.GL_UNSIGNED_BYTE)
            color = np.frombuffer(buf, dtype=np.uint8).reshape(h, w, 3)[::-1]
            return color, None

    return ColourOnlyRenderer


SHADINGS = ("lean", "pbr")
_LEAN_FRAGMENT = Path(__file__).resolve().parent / "shaders" / "lean_mesh.frag"


def _set_uniform_cached(self, name, value, unsigned=False):
    """pyrender's ShaderProgram.set_uniform, with uniform locations looked up once per program and
    values sent to GL only when they change.

    pyrender asks GL for the location of every uniform on every draw (dozens per frame) and sets
    every light's uniforms again for each primitive and camera; through PyOpenGL each call costs
    microseconds that add up to milliseconds per sample. A program keeps its uniform values until
    they are set again, so a value equal to the last one sent is skipped. Unknown names are
    ignored, as pyrender does.
    """
    from OpenGL import GL  # noqa: PLC0415

    state = self.__dict__.get("_dexvision_uniforms")
    if state is None or state[None] != self._program_id:  # a recompiled program starts over
        state = self.__dict__["_dexvision_uniforms"] = {None: self._program_id}
    entry = state.get(name)
    if entry is None:
        entry = state[name] = [GL.glGetUniformLocation(self._program_id, name), None]
    loc = entry[0]
    if loc == -1:
        return
    if isinstance(value, np.ndarray):
        if value.ndim == 1:
            n = value.shape[0]
            if unsigned or value.dtype.kind == "u":
                fn, data = getattr(GL, f"glUniform{n}uiv"), value.astype(np.uint32)
            elif value.dtype.kind in "ib":
                fn, data = getattr(GL, f"glUniform{n}iv"), value.astype(np.int32)
            else:
                fn, data = getattr(GL, f"glUniform{n}fv"), value.astype(np.float32)
            key = (fn, data.tobytes())
            if entry[1] != key:
                fn(loc, 1, data)
        else:
            r, c = value.shape
            suffix = f"{r}" if r == c else f"{r}x{c}"
            fn, data = getattr(GL, f"glUniformMatrix{suffix}fv"), value.astype(np.float32)
            key = (fn, data.tobytes())
            if entry[1] != key:
                fn(loc, 1, GL.GL_TRUE, data)
    elif isinstance(value, float):
        key = (GL.glUniform1f, value)
        if entry[1] != key:
            GL.glUniform1f(loc, value)
    elif isinstance(value, (int, np.integer)):
        fn = GL.glUniform1ui if unsigned else GL.glUniform1i
        key = (fn, int(value))
        if entry[1] != key:
            fn(loc, int(value))
    else:
        return
    entry[1] = key


def _program_cache(shading: str):
    """pyrender's shader cache with cached uniform locations; with shading 'lean' its GGX
    mesh shader is swapped for ours."""
    import types  # noqa: PLC0415

    from pyrender.shader_program import ShaderProgramCache  # noqa: PLC0415

    class FastShaderCache(ShaderProgramCache):
        def get_program(self, vertex_shader, fragment_shader, geometry_shader=None, defines=None):
            if shading == "lean" and fragment_shader == "mesh.frag":
                fragment_shader = str(_LEAN_FRAGMENT)  # os.path.join keeps an absolute path
            program = super().get_program(vertex_shader, fragment_shader, geometry_shader, defines)
            if "set_uniform" not in program.__dict__:
                program.set_uniform = types.MethodType(_set_uniform_cached, program)
            return program

    return FastShaderCache()


_CACHES: dict[str, object] = {}


def create_offscreen(width: int, height: int, msaa_samples: int = 0, shading: str = "lean"):
    """The process's pyrender OffscreenRenderer, resized; a GLUnavailableError names what to install.

    One per process, never deleted: pyrender's EGL platform terminates the shared
    EGL display when a renderer is deleted, which breaks every other renderer.
    Its `render` returns (RGB image, None): the depth buffer is not read back.
    """
    global _OFFSCREEN
    configure_headless_gl()
    platform = check_gl_platform()
    if _OFFSCREEN is None:
        _OFFSCREEN = _create(width, height, platform)
        atexit.register(_release)
    _OFFSCREEN.viewport_width, _OFFSCREEN.viewport_height = width, height
    renderer = _OFFSCREEN._renderer
    renderer.msaa_samples = msaa_samples
    if shading not in _CACHES:
        _CACHES[shading] = _program_cache(shading)
    renderer._program_cache = _CACHES[shading]
    return _OFFSCREEN


def _release() -> None:
    """Free the GL context before interpreter shutdown tears PyOpenGL down under it."""
    global _OFFSCREEN
    if _OFFSCREEN is not None:
        try:
            _OFFSCREEN.delete()
        except Exception:  # noqa: BLE001 - another library may have torn the display down first
            pass
        finally:
            _OFFSCREEN = None


def _preload_triton() -> None:
    """Load triton's LLVM before Mesa's.

    Mesa's CPU rasterizer (llvmpipe) and triton (which torch._dynamo imports, e.g.
    through timm) each bundle an LLVM; once llvmpipe is loaded, importing triton
    crashes the process with a segmentation fault. In the other order both work and
    the pixels are the same, so when triton is installed it is imported first.
    """
    if importlib.util.find_spec("triton") is None:
        return
    try:
        import triton  # noqa: F401,PLC0415
    except Exception:  # noqa: BLE001 - a broken triton only matters to torch.compile
        pass


def _create(width: int, height: int, platform: str):
    _preload_triton()
    try:
        import pyrender  # noqa: PLC0415 - import after the platform is configured

        offscreen = pyrender.OffscreenRenderer(width, height)
        offscreen._renderer = _colour_only_renderer_class()(width, height)
        return offscreen
    except Exception as e:  # noqa: BLE001 - EGL/OSMesa failures come as many exception types
        reason = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise GLUnavailableError(
            f"no OpenGL context could be created through {platform.upper()} ({reason[:120]}); "
            f"on Debian/Ubuntu install: apt-get install {DEBIAN_GL_PACKAGES}"
        ) from None
