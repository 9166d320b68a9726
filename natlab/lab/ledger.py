"""What a lab created, written down before it is created.

Every namespace is recorded before the kernel is asked for it, and every
process as soon as it runs, so `natlab down` can undo a lab whose creator
died half-way (even by SIGKILL) and never touches anything natlab did not
make. One lock serialises every change to any ledger.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import signal
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from natlab.lab.naming import lab_dir, state_error, state_root
from natlab.lab.processes import ProcessRecord, start_time

LEDGER = "ledger.json"
HALF_WRITTEN = f".{LEDGER}.tmp"  # a ledger being written; alone, a lab that never got built


@dataclass
class Ledger:
    lab: str
    topology: str  # the file the lab was built from
    creator: ProcessRecord
    state: str = "building"  # building | up
    dataplane: str = "natlab"  # natlab | kernel: what moves packets in the routers
    namespaces: list[str] = field(default_factory=list)
    processes: list[ProcessRecord] = field(default_factory=list)

    @property
    def directory(self) -> Path:
        return lab_dir(self.lab)

    def save(self) -> None:
        """Write the ledger whole or not at all; a disk that refuses is a NatlabError."""
        data = {
            "lab": self.lab,
            "topology": self.topology,
            "creator": self.creator.as_json(),
            "state": self.state,
            "dataplane": self.dataplane,
            "namespaces": self.namespaces,
            "processes": [p.as_json() for p in self.processes],
        }
        temporary = self.directory / HALF_WRITTEN
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            temporary.write_text(json.dumps(data, indent=2))
            os.replace(temporary, self.directory / LEDGER)
        except OSError as error:
            with contextlib.suppress(OSError):
                temporary.unlink(missing_ok=True)
            raise state_error(error) from None

    @classmethod
    def load(cls, lab: str) -> Ledger | None:
        """The lab's ledger; an empty one for a lab whose first ledger was never finished."""
        try:
            data = json.loads((lab_dir(lab) / LEDGER).read_text())
        except FileNotFoundError:
            if not (lab_dir(lab) / HALF_WRITTEN).is_file():
                return None
            # Namespaces are made only once the first ledger is in place: nothing to undo.
            return cls(lab=lab, topology="", creator=ProcessRecord(0, 0, "", "natlab up"))
        return cls(
            lab=data["lab"],
            topology=data["topology"],
            creator=ProcessRecord(**data["creator"]),
            state=data["state"],
            dataplane=data.get("dataplane", "natlab"),
            namespaces=list(data["namespaces"]),
            processes=[ProcessRecord(**p) for p in data["processes"]],
        )

    def building_elsewhere(self) -> bool:
        """Another natlab process is still building this lab."""
        return (
            self.state == "building"
            and self.creator.pid != os.getpid()
            and start_time(self.creator.pid) == self.creator.start
        )

    def forget(self) -> None:
        shutil.rmtree(self.directory, ignore_errors=True)


def lab_names() -> list[str]:
    root = state_root()
    if not root.is_dir():
        return []
    return sorted(
        p.name for p in root.iterdir() if (p / LEDGER).is_file() or (p / HALF_WRITTEN).is_file()
    )


@contextmanager
def locked() -> Iterator[None]:
    """Hold natlab's lock; the state root goes away again when no lab is left.

    Ctrl-C and SIGTERM wait until the lock is let go. One landing while it is
    held could skip closing it, and the cleanup that Ctrl-C starts would then
    wait for the lock this same process holds, forever.
    """
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT, signal.SIGTERM})
    try:
        with _lock_held():
            yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)


@contextmanager
def _lock_held() -> Iterator[None]:
    root = state_root()
    lock_path = root / ".lock"
    while True:
        try:
            root.mkdir(parents=True, exist_ok=True)
            fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o600)
        except FileNotFoundError:
            continue  # the root was removed between mkdir and open
        except OSError as error:
            raise state_error(error) from None
        fcntl.flock(fd, fcntl.LOCK_EX)
        try:
            same = os.fstat(fd).st_ino == os.stat(lock_path).st_ino
        except FileNotFoundError:
            same = False
        if same:
            break
        os.close(fd)  # the lock file was removed while we waited: take the new one
    try:
        yield
    finally:
        try:
            if not lab_names() and not any(p.name != ".lock" for p in root.iterdir()):
                os.unlink(lock_path)
                os.rmdir(root)
        except OSError:
            pass  # another natlab is using the state root right now: it stays
        finally:
            os.close(fd)  # always: an fd left open would hold the lock for good
