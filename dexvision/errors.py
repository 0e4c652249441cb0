"""Errors a user can cause, and the wrapper that turns them into one clear line."""

from __future__ import annotations

import argparse
import functools
import re
import sys
from typing import Callable, NoReturn


class UserError(Exception):
    """A mistake the user can fix (bad flag, missing file, no GL): one line, exit code 2."""

    exit_code = 2


class Interrupted(UserError):
    """Ctrl-C: exit code 130 (the shell's for SIGINT) with a line saying what was kept."""

    exit_code = 130


class GLUnavailableError(UserError):
    """No OpenGL context could be created (headless machine without EGL/Mesa)."""

    exit_code = 1


_AT_COMMAND_END: list[Callable[[], None]] = []


def at_command_end(fn: Callable[[], None]) -> None:
    """Call `fn` when the command ends, however it ends (a run directory's lock is released this way even
    when a command is called in-process, as the tests do, where exit handlers would run much later)."""
    _AT_COMMAND_END.append(fn)


def _command_ended() -> None:
    while _AT_COMMAND_END:
        _AT_COMMAND_END.pop()()


def cli(main: Callable[..., int | None]) -> Callable[..., int]:
    """Decorate a command's `main` so UserErrors end in one line on stderr and a non-zero exit."""

    @functools.wraps(main)
    def wrapper(*args, **kwargs) -> int:
        try:
            return _run(main, *args, **kwargs)
        finally:
            _command_ended()

    return wrapper


def _run(main: Callable[..., int | None], *args, **kwargs) -> int:
    """`main`, with a UserError or Ctrl-C turned into its one line and exit code."""
    try:
        return main(*args, **kwargs) or 0
    except UserError as e:
        print(f"error: {e}", file=sys.stderr)
        return e.exit_code
    except KeyboardInterrupt:
        print("interrupted (Ctrl-C); a trainer's last checkpoint, if it wrote one, is kept: --resume continues "
              "from it", file=sys.stderr)
        return Interrupted.exit_code


# argparse's own messages, and the one line each becomes
_TYPE_NAMES = {"int": "an integer", "float": "a number"}
_INVALID_TYPE = re.compile(r"^argument (?P<flag>[^:]+): invalid (?P<type>\w+) value: (?P<value>.*)$")
_INVALID_CHOICE = re.compile(r"^argument (?P<flag>[^:]+): invalid choice: (?P<value>.*?) \(choose from (?P<choices>.*)\)$")
_ARGUMENT = re.compile(r"^argument (?P<flag>[^:]+): (?P<rest>.*)$")


def _flag_name(flag: str) -> str:
    """'-h/--help' -> '--help': the long name of an option as argparse lists its strings."""
    return flag.split("/")[-1]


def argparse_message(message: str, prog: str) -> str:
    """argparse's error `message` as one line a user acts on: the flag first, what it needs, what it got."""
    message = " ".join(message.split())
    if m := _INVALID_TYPE.match(message):
        kind = _TYPE_NAMES.get(m["type"], f"a valid {m['type']}")
        return f"{_flag_name(m['flag'])}: expected {kind}, got {m['value']}"
    if m := _INVALID_CHOICE.match(message):
        choices = ", ".join(c.strip().strip("'") for c in m["choices"].split(","))
        return f"{_flag_name(m['flag'])}: expected one of {choices}, got {m['value']}"
    if m := _ARGUMENT.match(message):
        return f"{_flag_name(m['flag'])}: {m['rest']}"
    if message.startswith("unrecognized arguments: "):
        return f"unknown argument(s) {message.split(': ', 1)[1]} (see {prog} --help)"
    if message.startswith("the following arguments are required: "):
        return f"missing {message.split(': ', 1)[1]} (see {prog} --help)"
    return f"{message} (see {prog} --help)"


class ArgumentParser(argparse.ArgumentParser):
    """Every command's parser: a mistake on the command line is a UserError of one line (`error: --lr:
    expected a number, got 'abc'`), not argparse's usage block; `--help` is argparse's."""

    def error(self, message: str) -> NoReturn:
        raise UserError(argparse_message(message, self.prog))
