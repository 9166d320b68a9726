"""A router daemon's events file: JSON lines, rotated at a size, never fatal to write.

ROUTER.events.jsonl grows to a size limit, then becomes ROUTER.events.jsonl.1
(.1 becomes .2, and so on), so that a flood or a long soak holds at most
files x max_bytes on disk. A write that fails (a full or read-only state
directory, an I/O error) drops the events it carried: the daemon counts
them (events_dropped), says so once in its log and moves packets on. The
file is cut back to its last whole line, so readers never meet half an event.

The limits come from the environment of whoever starts the daemon:
NATLAB_EVENTS_MAX_BYTES (default 16M; a number of bytes, or with k, M or G)
and NATLAB_EVENTS_FILES (default 3: the file and two rotated ones).
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import IO, Protocol

MAX_BYTES_VARIABLE = "NATLAB_EVENTS_MAX_BYTES"
FILES_VARIABLE = "NATLAB_EVENTS_FILES"
DEFAULT_MAX_BYTES = 16 << 20
DEFAULT_FILES = 3
MIN_MAX_BYTES = 1024
MAX_FILES = 100
FLUSH_AT = 1 << 16  # bytes of pending events that make write() flush by itself
WARN_EVERY = 60.0  # seconds: a disk that keeps filling up and freeing says so once a minute
_UNITS = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30}


class EventFile(Protocol):
    """What EventLog needs of an open file (a raw binary file opened for appending)."""

    def write(self, data: bytes, /) -> int | None: ...
    def truncate(self, size: int, /) -> int: ...
    def seek(self, offset: int, whence: int = 0, /) -> int: ...
    def close(self) -> None: ...


def _append(path: Path) -> EventFile:
    return open(path, "ab", buffering=0)  # EventLog owns and closes it


def limits(environ: Mapping[str, str]) -> tuple[int, int]:
    """(max_bytes, files) from NATLAB_EVENTS_MAX_BYTES and NATLAB_EVENTS_FILES.

    ValueError names the variable and what it accepts.
    """
    text = environ.get(MAX_BYTES_VARIABLE, "").strip().lower()
    max_bytes = DEFAULT_MAX_BYTES
    if text:
        number, unit = (text[:-1], text[-1]) if text[-1] in "kmg" else (text, "")
        try:
            max_bytes = int(number) * _UNITS[unit]
        except ValueError:
            max_bytes = -1
        if max_bytes < MIN_MAX_BYTES:
            raise ValueError(
                f"{MAX_BYTES_VARIABLE}={text!r}: give a size of at least {MIN_MAX_BYTES} bytes, "
                "e.g. 16M or 512k"
            )
    text = environ.get(FILES_VARIABLE, "").strip()
    files = DEFAULT_FILES
    if text:
        files = int(text) if text.isdigit() else 0
        if not 1 <= files <= MAX_FILES:
            raise ValueError(
                f"{FILES_VARIABLE}={text!r}: give a whole number from 1 to {MAX_FILES}"
            )
    return max_bytes, files


def rotated(path: Path, index: int) -> Path:
    """The index-th older file of the log at path (0 is path itself)."""
    return path if index == 0 else path.with_name(f"{path.name}.{index}")


class EventLog:
    """Append-only JSON lines with rotation; failed writes are counted in `dropped`."""

    def __init__(
        self,
        path: Path,
        max_bytes: int = DEFAULT_MAX_BYTES,
        files: int = DEFAULT_FILES,
        warn: Callable[[str], None] = print,
        opener: Callable[[Path], EventFile] = _append,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.path = path
        self.max_bytes = max_bytes
        self.files = files
        self.warn = warn
        self.opener = opener
        self.clock = clock
        self.warned_at: float | None = None  # when a failure was last told in the log
        self.told = False  # the current failure was told: its end will be too
        self.pending: list[bytes] = []
        self.pending_bytes = 0
        self.dropped = 0
        self.file: EventFile | None = None
        self.size = 0  # bytes in the current file, all of them whole lines
        self.failing = False

    def write(self, line: str) -> None:
        """Queue one event (a JSON object without its newline); flush() writes them out."""
        data = line.encode() + b"\n"
        self.pending.append(data)
        self.pending_bytes += len(data)
        if self.pending_bytes >= FLUSH_AT:
            self.flush()

    def flush(self) -> None:
        if not self.pending:
            return
        data, count = b"".join(self.pending), len(self.pending)
        self.pending, self.pending_bytes = [], 0
        try:
            if self.file is None:
                self.file = self.opener(self.path)
                self.size = self.file.seek(0, os.SEEK_END)
            if self.size and self.size + len(data) > self.max_bytes:
                self._rotate()
            self._write_all(data)
        except OSError as error:
            self.dropped += count
            now = self.clock()
            if not self.failing and (self.warned_at is None or now - self.warned_at >= WARN_EVERY):
                self.warned_at, self.told = now, True
                self.warn(
                    f"events: cannot write {self.path} ({error.strerror or error}); "
                    "dropping events, counted as events_dropped, until it works again"
                )
            self.failing = True
            return
        if self.failing:
            self.failing = False
            if self.told:  # once per failure told, so at most two lines a minute in all
                self.told = False
                self.warn(f"events: writing {self.path} again; {self.dropped} dropped so far")

    def _write_all(self, data: bytes) -> None:
        assert self.file is not None
        view, written = memoryview(data), 0
        try:
            while written < len(data):
                written += self.file.write(view[written:]) or 0
        except OSError:
            try:
                self.file.truncate(self.size)  # no half line for readers, nor to write after
            except OSError:
                self._close()  # reopened (and measured anew) by the next flush
            raise
        self.size += written

    def _rotate(self) -> None:
        self._close()
        if self.files == 1:
            self.path.unlink(missing_ok=True)
        for index in range(self.files - 1, 0, -1):
            older = rotated(self.path, index - 1)
            if older.exists():
                os.replace(older, rotated(self.path, index))
        self.file = self.opener(self.path)
        self.size = self.file.seek(0, os.SEEK_END)

    def _close(self) -> None:
        if self.file is not None:
            file, self.file = self.file, None
            with contextlib.suppress(OSError):  # nothing is buffered: writes went straight out
                file.close()

    def close(self) -> None:
        self.flush()
        self._close()


def open_rotated(path: Path) -> list[tuple[IO[bytes], os.stat_result]]:
    """The log at path and its rotated files, open, oldest first; the caller closes them.

    They are opened newest first: a rotation in between can then only add a
    file already open (skipped by its inode), never hide the lines that moved.
    """
    opened: list[tuple[IO[bytes], os.stat_result]] = []
    try:
        for index in range(MAX_FILES):
            try:
                handle = open(rotated(path, index), "rb")  # noqa: SIM115 - the caller closes
            except FileNotFoundError:
                if index:
                    break
                continue  # no current file (yet): the rotated ones still count
            status = os.fstat(handle.fileno())
            if any(seen.st_ino == status.st_ino for _, seen in opened):
                handle.close()
                continue
            opened.append((handle, status))
    except BaseException:
        for handle, _ in opened:
            handle.close()
        raise
    opened.reverse()
    return opened


def read_lines(path: Path) -> Iterator[str]:
    """Every whole line of the log at path and its rotated files, oldest first."""
    opened = open_rotated(path)
    try:
        for handle, _ in opened:
            for line in handle:
                if line.endswith(b"\n"):
                    yield line.decode(errors="replace").rstrip("\n")
    finally:
        for handle, _ in opened:
            handle.close()


def follow(path: Path, poll: float = 0.1) -> Iterator[str]:
    """Every whole line of the log, oldest first, then each new one as it comes, for ever.

    When the daemon rotates, the old file is read to its end before the new
    one; when it cuts a failed write back, reading goes on from the new end.
    """
    files = [index for index in range(1, MAX_FILES) if rotated(path, index).exists()]
    for index in reversed(files):
        with contextlib.suppress(FileNotFoundError), open(rotated(path, index), "rb") as older:
            yield from (line.decode(errors="replace").rstrip("\n") for line in older)
    handle, pending = None, b""
    try:
        while True:
            if handle is None:
                try:
                    handle = open(path, "rb")  # noqa: SIM115 - closed below
                except FileNotFoundError:
                    time.sleep(poll)
                    continue
            pending += handle.readline()
            if pending.endswith(b"\n"):
                yield pending.decode(errors="replace").rstrip("\n")
                pending = b""
                continue
            opened = os.fstat(handle.fileno())
            try:
                current = os.stat(path).st_ino
            except FileNotFoundError:
                current = opened.st_ino
            if current != opened.st_ino:  # rotated: the old file is read to its end
                handle.close()
                handle, pending = None, b""
                continue
            if opened.st_size < handle.tell():  # a failed write was cut back
                handle.seek(opened.st_size)
                pending = b""
            time.sleep(poll)
    finally:
        if handle is not None:
            handle.close()
