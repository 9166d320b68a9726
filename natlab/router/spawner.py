"""One interpreter that imports the daemon once and forks every router's daemon from it.

A lab's NAT daemons are fresh interpreters (none holds the pages of the
program that brought the lab up), but each one importing natlab anew cost
`up` most of its time. The lab starts this process first, while it builds
the namespaces (natlab.lab.routers), so the import overlaps the build;
then it sends one request per router over the socket on stdin: the
daemon's config path, with the router's namespace and the daemon's log as
file descriptors. For each it forks a daemon in that namespace and answers
the daemon's PID; at the end of the requests it exits, so that its
daemons pass to the lab, which made itself their subreaper, as if the lab
had forked them itself.

The daemon resolves no names, so unlike the lab's other processes it
needs no /etc of the node's (natlab.plumbing.namespaces.enter).
"""

from __future__ import annotations

import ctypes
import os
import socket
import sys
import traceback
from pathlib import Path

from natlab.router.daemon import serve

CLONE_NEWNET = 0x40000000
REQUEST_SIZE = 4096  # a config path
FDS = 2  # the router's namespace, the daemon's log


def main() -> None:
    requests = socket.socket(fileno=0)  # a SOCK_SEQPACKET socket: one message, one request
    libc = ctypes.CDLL(None, use_errno=True)
    while True:
        config, fds, _, _ = socket.recv_fds(requests, REQUEST_SIZE, FDS)
        if not config:
            return  # no more requests: exit, and the lab adopts the daemons
        namespace, log = fds
        sys.stdout.flush()
        sys.stderr.flush()
        pid = os.fork()
        if pid == 0:
            _daemon(libc, Path(os.fsdecode(config)), namespace, log)
        os.close(namespace)
        os.close(log)
        requests.send(str(pid).encode())


def _daemon(libc: ctypes.CDLL, config: Path, namespace: int, log: int) -> None:
    """Become the router's daemon (in the forked child): never return."""
    code = 1
    try:
        os.setsid()  # Ctrl-C in the terminal is for natlab, not for it
        os.dup2(log, 1)
        os.dup2(log, 2)
        os.dup2(os.open(os.devnull, os.O_RDONLY), 0)
        if libc.setns(namespace, CLONE_NEWNET) != 0:
            error = ctypes.get_errno()
            raise OSError(error, f"cannot enter the router's namespace: {os.strerror(error)}")
        os.closerange(3, os.sysconf("SC_OPEN_MAX"))  # nothing of the spawner's lives on
        serve(config)
        code = 0
    except SystemExit as stop:
        code = stop.code if isinstance(stop.code, int) else 1
    except BaseException:
        traceback.print_exc()
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)


if __name__ == "__main__":
    main()
