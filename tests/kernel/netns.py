"""Network namespaces for kernel tests, without touching the host's XFRM tables.

`fresh_netns()` moves the calling thread into a new, empty network namespace and back
(unshare/setns through libc: Python 3.11 has no os.unshare). Sockets opened inside stay in
that namespace after the switch back, and so do child processes started inside. The
namespace disappears when its last socket/process is gone.
"""

from __future__ import annotations

import ctypes
import os
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager

CLONE_NEWNET = 0x40000000
_libc = ctypes.CDLL(None, use_errno=True)


def _check(rc: int, what: str) -> None:
    if rc != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")


def setns(fd: int) -> None:
    _check(_libc.setns(fd, CLONE_NEWNET), "setns")


@contextmanager
def fresh_netns(lo: bool = True) -> Iterator[int]:
    """Run the body in a new network namespace; yields an fd naming it (valid inside)."""
    orig = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
    try:
        _check(_libc.unshare(CLONE_NEWNET), "unshare(CLONE_NEWNET)")
        mine = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
        try:
            if lo:
                subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
            yield mine
        finally:
            os.close(mine)
    finally:
        setns(orig)
        os.close(orig)


@contextmanager
def entered(path_or_fd: str | int) -> Iterator[None]:
    """Run the body inside an existing namespace (/run/netns/NAME, /proc/PID/ns/net or
    an fd)."""
    orig = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
    fd = os.open(path_or_fd, os.O_RDONLY) if isinstance(path_or_fd, str) else path_or_fd
    try:
        setns(fd)
        yield
    finally:
        setns(orig)
        os.close(orig)
        if isinstance(path_or_fd, str):
            os.close(fd)


def ip(*args: str, check: bool = True) -> str:
    """`ip ARGS` in the current namespace; its stdout."""
    r = subprocess.run(["ip", *args], capture_output=True, text=True, check=False)
    if check and r.returncode != 0:
        raise RuntimeError(f"ip {' '.join(args)} -> {r.returncode}: {r.stderr.strip()}")
    return r.stdout
