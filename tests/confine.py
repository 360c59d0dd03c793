"""What ``setpriv --inh-caps=-all --bounding-set=-all`` and ``unshare --mount``
with a read-only bind mount do to a command, done in a forked child before the
command runs (tests/forked.py): the read-only archive tests run their commands
as forks of the test worker, not as new interpreters.

Python 3.11 has no ``os.unshare`` and no capability calls, so these go through
libc (ctypes); each raises OSError with the call that failed.
"""

from __future__ import annotations

import ctypes
import os
from pathlib import Path

_libc = ctypes.CDLL(None, use_errno=True)

PR_CAPBSET_DROP = 24
_LINUX_CAPABILITY_VERSION_3 = 0x20080522
CLONE_NEWNS = 0x00020000
MS_RDONLY = 1
MS_REMOUNT = 32
MS_BIND = 4096
MS_REC = 16384
MS_PRIVATE = 1 << 18


class _CapHeader(ctypes.Structure):
    _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]


class _CapData(ctypes.Structure):
    _fields_ = [
        ("effective", ctypes.c_uint32),
        ("permitted", ctypes.c_uint32),
        ("inheritable", ctypes.c_uint32),
    ]


def _check(result: int, call: str) -> None:
    if result != 0:
        errno = ctypes.get_errno()
        raise OSError(errno, f"{call}: {os.strerror(errno)}")


def drop_capabilities() -> None:
    """This process keeps its uid but holds no capability: as root, file
    permissions then bind it like anyone else (no CAP_DAC_OVERRIDE)."""
    cap = 0
    while _libc.prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) == 0:  # EINVAL past the last one
        cap += 1
    header = _CapHeader(_LINUX_CAPABILITY_VERSION_3, 0)
    nothing = (_CapData * 2)()  # version 3: two 32-bit words of each set, all empty
    _check(_libc.capset(ctypes.byref(header), nothing), "capset")


def read_only_mount(folder: Path) -> None:
    """This process sees ``folder`` bound read-only onto itself, in a mount
    namespace of its own (as ``docker run -v DIR:DIR:ro`` shows a folder)."""
    path = os.fsencode(folder)
    _check(_libc.unshare(CLONE_NEWNS), "unshare(CLONE_NEWNS)")
    # Private first, so the mounts below stay in this namespace.
    _check(_libc.mount(None, b"/", None, MS_REC | MS_PRIVATE, None), "mount --make-rprivate /")
    _check(_libc.mount(path, path, None, MS_BIND, None), f"mount --bind {folder}")
    flags = MS_BIND | MS_REMOUNT | MS_RDONLY
    _check(_libc.mount(None, path, None, flags, None), f"mount -o remount,ro {folder}")
