"""One writer per file: an advisory lock (``fcntl.flock``) on a sidecar ``<file>.lock`` naming its pid.

The kernel drops a flock when its holder dies, so a crashed or SIGKILLed run leaves no lock behind
(at most a stale sidecar, which the next writer takes over). Holding is counted per process, so the
journal's header write and its appends in one run share one lock. Imports only the standard library.
"""
from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import threading

# Locks this process holds: file's absolute path -> [sidecar fd, hold count].
_held: dict[str, list[int]] = {}
_guard = threading.Lock()


class FileBusy(ValueError):
    """Another process holds the file's lock; one line naming its pid."""

    def __init__(self, path: str, pid: int | None, what: str):
        self.path, self.pid = path, pid
        who = f"pid {pid}" if pid else "another process"
        super().__init__(f"{path}: another run ({who}) is writing this {what}; "
                         f"wait for it to finish, or use another --out")


def lock_path(path: str) -> str:
    """The sidecar a writer of path locks."""
    return path + ".lock"


def holder_pid(path: str) -> int | None:
    """The pid written into path's sidecar by its last holder, if any."""
    try:
        with open(lock_path(path)) as f:
            return int(f.read().strip() or 0) or None
    except (OSError, ValueError):
        return None


def acquire(path: str, what: str = "file") -> None:
    """Hold path's lock (again, when this process already does); FileBusy when another process does.
    OSError when the sidecar cannot be made (read-only or full folder)."""
    key = os.path.abspath(path)
    with _guard:
        if key in _held:
            _held[key][1] += 1
            return
        side = lock_path(key)
        while True:
            fd = os.open(side, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as e:
                os.close(fd)
                if e.errno in (errno.EWOULDBLOCK, errno.EAGAIN):
                    raise FileBusy(path, holder_pid(path), what) from None
                raise
            try:  # a holder unlinks the sidecar as it lets go: a lock on an unlinked one locks nothing
                same = os.stat(side).st_ino == os.fstat(fd).st_ino
            except FileNotFoundError:
                same = False
            if same:
                break
            os.close(fd)
        try:
            os.ftruncate(fd, 0)
            os.write(fd, f"{os.getpid()}\n".encode())
        except OSError:
            pass  # a full disk: the lock holds all the same, only its pid goes unnamed
        _held[key] = [fd, 1]


def try_acquire(path: str) -> bool:
    """Hold path's lock if no other process does and the sidecar can be made; True when held."""
    try:
        acquire(path)
    except (FileBusy, OSError):
        return False
    return True


def release(path: str) -> None:
    """Let go of one hold of path's lock; the last one removes the sidecar."""
    key = os.path.abspath(path)
    with _guard:
        held = _held.get(key)
        if held is None:
            return
        held[1] -= 1
        if held[1] > 0:
            return
        del _held[key]
        with contextlib.suppress(OSError):
            os.unlink(lock_path(key))
        os.close(held[0])


def holds(path: str) -> bool:
    """Whether this process holds path's lock."""
    return os.path.abspath(path) in _held


@contextlib.contextmanager
def writer_lock(path: str, what: str = "file"):
    """``with writer_lock(path):`` — be path's only writer for the block (FileBusy otherwise)."""
    acquire(path, what)
    try:
        yield
    finally:
        release(path)
