#!/usr/bin/env bash
# Make sure a headless OpenGL (EGL + Mesa) is present; install it from Debian's packages if we can.
set -euo pipefail
PACKAGES="libegl1 libgl1-mesa-dri libglx-mesa0 libgles2"
if ldconfig -p 2>/dev/null | grep -q "libEGL.so.1" && ls /usr/lib/*/dri/swrast_dri.so >/dev/null 2>&1; then
    exit 0
fi
if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
    echo "installing headless GL: $PACKAGES"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $PACKAGES >/dev/null
else
    echo "warning: no EGL/Mesa found; rendering needs: apt-get install $PACKAGES" >&2
fi
