"""The code version recorded with every output."""

from __future__ import annotations

import functools
import subprocess
from pathlib import Path

from dexvision import __version__


@functools.lru_cache(maxsize=1)
def git_sha() -> str:
    """Full git SHA of the checkout this package runs from, with '-dirty' if it has changes.

    Falls back to 'unknown' outside a git checkout (an installed wheel).
    """
    root = Path(__file__).resolve().parent.parent
    try:
        sha = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=root, capture_output=True, text=True, check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return sha + ("-dirty" if dirty else "")


def code_version() -> dict:
    """Package version and git SHA, for manifests, checkpoints and runs."""
    return {"dexvision": __version__, "git_sha": git_sha()}
