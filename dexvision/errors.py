"""Errors a user can cause, and the wrapper that turns them into one clear line."""

from __future__ import annotations

import functools
import sys
from typing import Callable


class UserError(Exception):
    """A mistake the user can fix (bad flag, missing file, no GL): one line, exit code 2."""

    exit_code = 2


class GLUnavailableError(UserError):
    """No OpenGL context could be created (headless machine without EGL/Mesa)."""

    exit_code = 1


def cli(main: Callable[..., int | None]) -> Callable[..., int]:
    """Decorate a command's `main` so UserErrors end in one line on stderr and a non-zero exit."""

    @functools.wraps(main)
    def wrapper(*args, **kwargs) -> int:
        try:
            return main(*args, **kwargs) or 0
        except UserError as e:
            print(f"error: {e}", file=sys.stderr)
            return e.exit_code
        except KeyboardInterrupt:
            print("interrupted", file=sys.stderr)
            return 130

    return wrapper
