# Sourced by benchmarks/gpu.sh and benchmarks/gpu_student.sh, which set OUT (results), WORK (scratch,
# emptied here), PY and LOG (a file name under OUT that gets everything printed from here on): the
# environment for dexvision on a lent GPU node. Headless GL through EGL, the repository importable, the
# NVIDIA EGL vendor file where the driver's container mount puts it outside glvnd's search path, and
# pyglet's headless mode when pyrender cannot import through pyglet's X11 path (without libXrender:
# AttributeError on XRenderFindVisualFormat; the EGL path needs no X at all).
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$REPO" || exit 1
rm -rf "$WORK"; mkdir -p "$WORK" "$OUT"
exec > >(tee -a "$OUT/$LOG") 2>&1
export PYTHONUNBUFFERED=1 PYOPENGL_PLATFORM=${PYOPENGL_PLATFORM:-egl} MUJOCO_GL=${MUJOCO_GL:-egl}
export PYTHONPATH=${PYTHONPATH:+$PYTHONPATH:}$REPO
NV_EGL=/usr/local/nvidia/share/glvnd/egl_vendor.d/10_nvidia.json
if [ -z "${__EGL_VENDOR_LIBRARY_FILENAMES:-}" ] && [ -f $NV_EGL ] && ! ls /usr/share/glvnd/egl_vendor.d/*nvidia* >/dev/null 2>&1; then
  export __EGL_VENDOR_LIBRARY_FILENAMES=$NV_EGL
fi
if [ -z "${PYGLET_HEADLESS:-}" ] && ! "$PY" -c "import pyrender" >"$WORK/pyrender-import.log" 2>&1; then
  echo "pyrender does not import ($(tail -n 1 "$WORK/pyrender-import.log")): PYGLET_HEADLESS=true"
  export PYGLET_HEADLESS=true
fi
