"""Files written whole or not at all, and checkpoints that say what they are.

`atomic_write` writes to a temporary name beside the target and renames it into
place, so a crash (or kill -9) never leaves a half-written shard, record or checkpoint
under the real name. The temporary name carries the writer's host and process id, so
that a later run can tell a leftover of a dead writer (`stale_temp`) from the file a
live process, on this or another machine sharing the directory, is still writing. A checkpoint is a dict with a `kind` ("dexvision-vision",
"dexvision-policy"): each package writes and reads its own kind through
`save_checkpoint` / `load_checkpoint`, and a file of another kind is refused in one line.
"""

from __future__ import annotations

import atexit
import contextlib
import json
import os
import re
import shutil
import socket
import tempfile
import time
import uuid
from pathlib import Path
from typing import Callable

from dexvision.errors import UserError, at_command_end


# A temporary file untouched for this long is a leftover whoever wrote it: a live writer appends
# continuously (a shard's samples take seconds each, not hours).
STALE_TEMP_S = 3600.0
_TEMP = re.compile(r"\.tmp-(?P<host>[A-Za-z0-9_.-]+)-(?P<pid>\d+)-[0-9a-f]{8}$")


def _host() -> str:
    return re.sub(r"[^A-Za-z0-9_.-]", "_", socket.gethostname()) or "host"


def temp_name(path: Path) -> Path:
    """The temporary name `atomic_write` uses for `path`: hidden, with this host, process id and a nonce."""
    return path.with_name(f".{path.name}.tmp-{_host()}-{os.getpid()}-{uuid.uuid4().hex[:8]}")


def stale_temp(path: Path, now: float | None = None) -> bool:
    """Whether temporary file `path` is a leftover that no live writer will rename: its writer was a
    process of this host that is gone, or nobody has written to it for STALE_TEMP_S (other hosts' live
    writers cannot be asked), or its name does not say who wrote it (an older version's)."""
    match = _TEMP.search(path.name)
    if match is None:
        return True
    if match["host"] == _host():
        try:
            os.kill(int(match["pid"]), 0)
        except ProcessLookupError:
            return True
        except PermissionError:
            pass  # alive, another user's
        else:
            if int(match["pid"]) == os.getpid():
                return False
    try:
        age = (time.time() if now is None else now) - path.stat().st_mtime
    except FileNotFoundError:
        return False  # renamed into place (or removed) meanwhile
    return age > STALE_TEMP_S


LOCK_NAME = ".dexvision-lock.json"


class RunLock:
    """One writer per run directory: `acquire()` takes an exclusive `flock` on RUN_DIR/.dexvision-lock.json and
    writes this host, process and start time into it, and refuses, in one line naming the holder, a directory
    another live run holds. The operating system drops a killed process's lock with the process, so a lock
    file a killed run left behind does not block `--resume`. `release()` (also when the command ends, and at
    exit) removes the file, and the directory if the lock made it and nothing else was written into it."""

    def __init__(self, run_dir: str | Path):
        self.run_dir = Path(run_dir)
        self.path = self.run_dir / LOCK_NAME
        self.held = False
        self._fd: int | None = None
        self._made_dir = False

    def _holder(self) -> dict:
        try:
            data = json.loads(self.path.read_text())
            return data if isinstance(data, dict) else {}
        except (OSError, ValueError):
            return {}

    def acquire(self) -> None:
        import fcntl  # noqa: PLC0415 - POSIX only, as the rest of the run machinery

        self._made_dir = not self.run_dir.exists()
        self.run_dir.mkdir(parents=True, exist_ok=True)
        for _ in range(5):
            fd = os.open(self.path, os.O_CREAT | os.O_RDWR, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                holder = self._holder()
                who = (f"process {holder.get('pid', '?')} on {holder.get('host', '?')}, since "
                       f"{holder.get('started', '?')}" if holder else "a run starting now")
                raise UserError(f"{self.run_dir} is in use by another run ({who}): wait for it to end, or choose "
                                "another --out") from None
            try:  # the path may have been released (unlinked) between our open and our lock: lock the file it names
                same = os.stat(self.path).st_ino == os.fstat(fd).st_ino
            except FileNotFoundError:
                same = False
            if not same:
                os.close(fd)
                continue
            record = json.dumps({"host": _host(), "pid": os.getpid(), "started": time.strftime("%Y-%m-%d %H:%M:%S")})
            os.ftruncate(fd, 0)
            os.write(fd, record.encode())
            self._fd, self.held = fd, True
            atexit.register(self.release)  # a trainer called outside a command
            at_command_end(self.release)
            return
        raise UserError(f"could not lock {self.run_dir}: other runs keep taking it; choose another --out")

    def release(self) -> None:
        if not self.held:
            return
        self.held = False
        self.path.unlink(missing_ok=True)  # while still locked: a waiting opener re-checks the path (above)
        os.close(self._fd)
        self._fd = None
        if self._made_dir:
            with contextlib.suppress(OSError):
                self.run_dir.rmdir()  # only if empty: a refused run leaves nothing behind


def atomic_write(path: str | Path, write: Callable[[Path], None], fsync: bool = False) -> None:
    """Call `write(tmp)` on a temporary file beside `path`, then rename it to `path`."""
    path = Path(path)
    tmp = temp_name(path)
    try:
        write(tmp)
        if fsync:
            with open(tmp, "rb") as f:
                os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def check_writable(path: str | Path, flag: str, directory: bool = False) -> Path:
    """Refuse, in one line and before any work starts, an output a command could not write: `path` (a file,
    or with `directory` a directory) must be creatable and its directory writable. Nothing is left behind:
    missing directories are created later, by the writer."""
    path = Path(path)
    if path.is_dir() and not directory:
        raise UserError(f"{flag} {path} is a directory; name a file")
    if path.exists() and not path.is_dir() and directory:
        raise UserError(f"{flag} {path} is a file; name a directory")
    folder = path if directory else path.parent
    existing = folder
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        raise UserError(f"{flag}: cannot write to {path}: {existing} is a file, not a directory")
    probe = temp_name(existing / "write-check")
    try:
        probe.touch(exist_ok=False)
    except OSError as e:
        raise UserError(f"{flag}: cannot write to {path}: {existing} is not writable ({e.strerror or e})") from None
    probe.unlink(missing_ok=True)
    return path


def write_output(path: str | Path, write: Callable[[Path], None], what: str) -> Path:
    """`write(path)` a command's result (its directory created); if that fails at the end of the work, the
    result is written instead into a new directory under the system's temporary one, and the one-line error
    says where it is kept. Returns `path`."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        write(path)
        return path
    except OSError as e:
        reason = e.strerror or str(e)
    try:
        kept = Path(tempfile.mkdtemp(prefix="dexvision-")) / path.name
        write(kept)
    except OSError as e:
        raise UserError(f"cannot write {path} ({reason}), nor keep the {what} elsewhere "
                        f"({e.strerror or e})") from None
    raise UserError(f"cannot write {path} ({reason}); the {what} is kept in {kept}")


def write_text_output(path: str | Path, text: str, what: str) -> Path:
    """`write_output` of a text file, written whole (`atomic_write`)."""
    return write_output(path, lambda p: atomic_write(p, lambda tmp: tmp.write_text(text)), what)


def _write_failure(e: BaseException) -> str | None:
    """Why saving failed, when `e` says a write failed (torch's zip writer raises RuntimeErrors); else None."""
    if isinstance(e, OSError):
        return e.strerror or str(e)
    text = str(e)
    if isinstance(e, RuntimeError) and ("PytorchStreamWriter" in text or "file write failed" in text
                                        or "inline_container" in text):
        return "the write failed"
    return None


def save_checkpoint(path: str | Path, kind: str, state: dict) -> None:
    """torch.save `state` as a checkpoint of `kind`, atomically. A failed write (a full disk) is one line;
    the previous checkpoint, if any, stays as it was."""
    path = Path(path)
    import torch  # noqa: PLC0415 - (here, not at the top: the shard writers and readers need no torch)

    try:
        atomic_write(path, lambda tmp: torch.save({**state, "kind": kind}, tmp))
    except (OSError, RuntimeError) as e:
        reason = _write_failure(e)
        if reason is None:
            raise
        try:
            free = shutil.disk_usage(path.parent).free
            reason += f"; {free / 1e6:.0f} MB free in {path.parent}" if free < 1e9 else ""
        except OSError:
            pass
        kept = (f"the previous checkpoint {path} is kept" if path.exists()
                else "no checkpoint was saved before this one")
        raise UserError(f"cannot save the checkpoint {path} ({reason}); {kept}") from None


def load_checkpoint(path: str | Path, kind: str) -> dict:
    """A checkpoint of `kind`; one clear error for a missing, unreadable or foreign file."""
    path = Path(path)
    if path.is_dir():  # a run directory: its checkpoint
        inside = path / "checkpoint.pt"
        if not inside.is_file():
            raise UserError(f"{path} is a directory with no checkpoint.pt in it: name a checkpoint file (a run "
                            "directory's checkpoint.pt)")
        path = inside
    if not path.is_file():
        raise UserError(f"checkpoint not found: {path}")
    import torch  # noqa: PLC0415

    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as e:  # noqa: BLE001 - pickle, zip and torch errors all mean "not a checkpoint"
        raise UserError(f"{path} is not a readable torch checkpoint ({type(e).__name__})") from None
    found = ckpt.get("kind") if isinstance(ckpt, dict) else None
    if found != kind:
        raise UserError(f"{path} is a {found or 'foreign'} checkpoint, not a {kind} checkpoint")
    return ckpt
