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
from functools import cache

from pyroute2 import IPRoute, netns

NETNS_DIR = "/run/netns"
ETC_NETNS = "/etc/netns"  # per-namespace /etc files, as `ip netns exec` shows them
THIS_THREADS = "/proc/thread-self/ns/net"  # the namespace the calling thread is in
CLONE_NEWNS = 0x00020000
CLONE_NEWNET = 0x40000000
MS_BIND = 0x1000
MS_REC = 0x4000
MS_SLAVE = 0x80000
MS_SHARED = 0x100000
HELD = {signal.SIGINT, signal.SIGTERM}


@cache
def _libc() -> ctypes.CDLL:
    return ctypes.CDLL(None, use_errno=True)


def create(name: str) -> None:
    """Create a namespace; FileExistsError if the name is taken.

    As `ip netns add` does it, in this process (no helper to fork): the
    calling thread unshares a new namespace, binds it to its name, goes back.
    """
    _share_run_dir()
    path = os.path.join(NETNS_DIR, name)
    os.close(os.open(path, os.O_RDONLY | os.O_CREAT | os.O_EXCL, 0))
    with _signals_held():
        try:
            with _returning():
                _check(_libc().unshare(CLONE_NEWNET), f"create namespace {name}")
                bind = _libc().mount(THIS_THREADS.encode(), path.encode(), None, MS_BIND, None)
                _check(bind, f"name namespace {name}")
        except BaseException:
            os.unlink(path)
            raise


def _share_run_dir() -> None:
    """Make /run/netns a shared mount point, as `ip netns` does, so names show everywhere."""
    os.makedirs(NETNS_DIR, exist_ok=True)
    libc, directory = _libc(), NETNS_DIR.encode()
    if libc.mount(b"", directory, b"none", MS_SHARED | MS_REC, None) == 0:
        return
    _check(libc.mount(directory, directory, b"none", MS_BIND | MS_REC, None), f"bind {NETNS_DIR}")
    _check(libc.mount(b"", directory, b"none", MS_SHARED | MS_REC, None), f"share {NETNS_DIR}")


@contextmanager
def _signals_held() -> Iterator[None]:
    """Hold Ctrl-C and SIGTERM for the block; they arrive right after it.

    One landing while this thread is in a lab's namespace would leave it,
    and whatever it does next, there.
    """
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, HELD)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)


@contextmanager
def _returning() -> Iterator[None]:
    """Bring this thread back to the namespace it is in now when the block ends."""
    home = os.open(THIS_THREADS, os.O_RDONLY)
    try:
        yield
    finally:
        try:
            _check(_libc().setns(home, CLONE_NEWNET), "return to natlab's own namespace")
        finally:
            os.close(home)


def _set(name: str) -> None:
    """Move this thread into the namespace; FileNotFoundError if it does not exist."""
    target = open_fd(name)
    try:
        _check(_libc().setns(target, CLONE_NEWNET), f"enter namespace {name}")
    finally:
        os.close(target)


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


@contextmanager
def netlink(name: str) -> Iterator[IPRoute]:
    """A netlink socket bound to the namespace (never creates one), closed after the block.

    Made inside the namespace by this thread (a socket stays in the namespace
    it was made in), with no helper process forked as pyroute2's `netns=`
    does. Ctrl-C and SIGTERM wait until the block is done: pyroute2's event
    loop, cut short by KeyboardInterrupt, prints tracebacks as natlab exits.
    """
    with _signals_held():
        with entered(name):
            ipr = IPRoute()
        with ipr:
            yield ipr


def open_fd(name: str) -> int:
    """A file descriptor of the namespace, to place a veth peer into it; close it."""
    return os.open(os.path.join(NETNS_DIR, name), os.O_RDONLY)


@contextmanager
def entered(name: str) -> Iterator[None]:
    """Run the block with this thread inside the namespace (for /proc/sys, ioctls, sockets).

    FileNotFoundError if it does not exist: entering never creates one.
    Ctrl-C and SIGTERM wait until the thread is back (and pyroute2's event
    loops, which the block may run, are not cut short).
    """
    with _signals_held(), _returning():
        _set(name)
        yield


def enter(name: str) -> None:
    """Move this process into the namespace for good: for a child before exec.

    Like `ip netns exec`, files in /etc/netns/NAME/ (the node's resolv.conf)
    replace their /etc/ namesakes for this process and its children, in a
    mount namespace of its own whose mounts still follow the host's.
    """
    _set(name)
    own = etc_dir(name)
    if not os.path.isdir(own):
        return
    libc = _libc()
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
