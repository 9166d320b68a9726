"""Named network namespaces: create, enter, configure, remove.

Names live as bind mounts in /run/netns, the same place `ip netns` uses, so
the usual tools can look inside a lab. Nothing here decides which names are
ours to touch: that is the lab's ledger.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import shutil
import signal
from collections.abc import Iterator
from contextlib import contextmanager

from pyroute2 import IPRoute, netns

NETNS_DIR = "/run/netns"
ETC_NETNS = "/etc/netns"  # per-namespace /etc files, as `ip netns exec` shows them
CLONE_NEWNS = 0x00020000
MS_BIND = 0x1000
MS_REC = 0x4000
MS_SLAVE = 0x80000
HELD = {signal.SIGINT, signal.SIGTERM}


@contextmanager
def _signals_held() -> Iterator[None]:
    """Hold Ctrl-C and SIGTERM while pyroute2 forks its helper child; they arrive right after.

    A signal that lands during a fork has its Python handler run inside the
    at-fork callbacks, where the KeyboardInterrupt it raises is printed and
    dropped: `up` would go on as if never interrupted. The child inherits
    the mask, so a Ctrl-C to the whole process group cannot kill it half-way.
    """
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, HELD)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)


def create(name: str) -> None:
    """Create a namespace; FileExistsError if the name is taken."""
    with _signals_held():
        netns.create(name)


def remove(name: str) -> bool:
    """Remove a namespace's name; False if it was already gone."""
    try:
        netns.remove(name)
    except FileNotFoundError:
        return False
    return True


def exists(name: str) -> bool:
    return os.path.exists(os.path.join(NETNS_DIR, name))


def names() -> list[str]:
    return sorted(netns.listnetns())


def inode(name: str) -> int | None:
    """The namespace's identity, to tell which processes live inside it."""
    try:
        return os.stat(os.path.join(NETNS_DIR, name)).st_ino
    except FileNotFoundError:
        return None


def netlink(name: str) -> IPRoute:
    """A netlink socket bound to the namespace (never creates one); close it."""
    with _signals_held():
        return IPRoute(netns=name, flags=0)


def open_fd(name: str) -> int:
    """A file descriptor of the namespace, to place a veth peer into it; close it."""
    return os.open(os.path.join(NETNS_DIR, name), os.O_RDONLY)


@contextmanager
def entered(name: str) -> Iterator[None]:
    """Run the block with this thread inside the namespace (for /proc/sys and ioctls)."""
    netns.pushns(name)
    try:
        yield
    finally:
        netns.popns()


def enter(name: str) -> None:
    """Move this process into the namespace for good: for a child before exec.

    Like `ip netns exec`, files in /etc/netns/NAME/ (the node's resolv.conf)
    replace their /etc/ namesakes for this process and its children, in a
    mount namespace of its own whose mounts still follow the host's.
    """
    netns.setns(name, flags=0)
    own = etc_dir(name)
    if not os.path.isdir(own):
        return
    libc = ctypes.CDLL(None, use_errno=True)
    _check(libc.unshare(CLONE_NEWNS), "unshare the mount namespace")
    _check(libc.mount(b"none", b"/", None, MS_REC | MS_SLAVE, None), "make / a slave mount")
    for entry in sorted(os.listdir(own)):
        source, target = os.path.join(own, entry), os.path.join("/etc", entry)
        _check(libc.mount(source.encode(), target.encode(), None, MS_BIND, None), f"bind {target}")


def _check(result: int, what: str) -> None:
    if result != 0:
        error = ctypes.get_errno()
        raise OSError(error, f"cannot {what}: {os.strerror(error)}")


def etc_dir(name: str) -> str:
    return os.path.join(ETC_NETNS, name)


def set_etc_file(name: str, entry: str, text: str) -> None:
    """Give the namespace its own /etc/ENTRY (shown to processes that enter() it)."""
    os.makedirs(etc_dir(name), exist_ok=True)
    with open(os.path.join(etc_dir(name), entry), "w") as handle:
        handle.write(text)


def remove_etc(name: str) -> bool:
    """Remove the namespace's own /etc files; False if it had none.

    /etc/netns goes too once empty (`ip netns` makes it again when needed).
    """
    if not os.path.isdir(etc_dir(name)):
        return False
    shutil.rmtree(etc_dir(name))
    with contextlib.suppress(OSError):
        os.rmdir(ETC_NETNS)
    return True


def set_sysctls(name: str, values: dict[str, str]) -> None:
    """Write net sysctls as seen from inside the namespace."""
    with entered(name):
        for key, value in values.items():
            with open(f"/proc/sys/{key.replace('.', '/')}", "w") as handle:
                handle.write(value)
