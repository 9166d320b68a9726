"""A router daemon's events file: rotation at a size, and write errors that cost events only."""

from __future__ import annotations

import errno
import json

import pytest

from natlab.router.eventlog import EventLog, limits, read_lines, rotated


def event(n: int) -> str:
    return json.dumps({"at": n, "kind": "mapping-created", "detail": "x" * 60})


def test_the_log_rotates_at_its_size_and_keeps_its_files(tmp_path):
    path = tmp_path / "r.events.jsonl"
    log = EventLog(path, max_bytes=1024, files=3)
    for n in range(200):
        log.write(event(n))
        log.flush()
    log.close()
    assert [rotated(path, i).exists() for i in range(4)] == [True, True, True, False]
    assert all(rotated(path, i).stat().st_size <= 1024 for i in range(3))
    kept = [json.loads(line)["at"] for line in read_lines(path)]
    # the newest events, every one of them, in order: only whole older files were let go
    assert kept == list(range(200 - len(kept), 200))
    per_file = 1024 // (len(event(100)) + 1)
    assert 2 * per_file <= len(kept) <= 3 * per_file  # two full files and the current one
    assert log.dropped == 0


def test_one_file_means_the_log_starts_over_when_full(tmp_path):
    path = tmp_path / "r.events.jsonl"
    log = EventLog(path, max_bytes=1024, files=1)
    for n in range(50):
        log.write(event(n))
        log.flush()
    log.close()
    assert not rotated(path, 1).exists()
    assert path.stat().st_size <= 1024
    assert json.loads(list(read_lines(path))[-1])["at"] == 49


class FailingFile:
    """A file that takes `room` bytes, then fails every write with `error` (ENOSPC...)."""

    def __init__(self, room: int, error: int = errno.ENOSPC) -> None:
        self.data = bytearray()
        self.room = room
        self.error = error
        self.truncated_to: list[int] = []

    def write(self, data) -> int:
        free = self.room - len(self.data)
        if free <= 0:
            raise OSError(self.error, "No space left on device")
        taken = bytes(data[:free])
        self.data += taken
        return len(taken)

    def truncate(self, size: int) -> int:
        self.truncated_to.append(size)
        del self.data[size:]
        return size

    def seek(self, offset: int, whence: int = 0) -> int:
        return len(self.data)

    def close(self) -> None:
        pass


@pytest.mark.parametrize("error", [errno.ENOSPC, errno.EROFS, errno.EIO])
def test_a_failing_disk_costs_counted_events_and_one_warning_never_an_exception(tmp_path, error):
    file = FailingFile(room=len(event(1)) + 50, error=error)
    warnings: list[str] = []
    log = EventLog(tmp_path / "r.events.jsonl", warn=warnings.append, opener=lambda _: file)
    log.write(event(1))
    log.flush()  # fits
    for n in range(2, 12):
        log.write(event(n))
        log.flush()  # the second is cut short, the rest find no room at all
    assert log.dropped == 10
    assert len(warnings) == 1 and "dropping events" in warnings[0]
    # the half-written event was cut away again: what stays is whole lines only
    assert file.truncated_to and file.data.endswith(b"\n")
    assert [json.loads(line)["at"] for line in file.data.decode().splitlines()] == [1]

    file.room = 10_000  # space again
    log.write(event(12))
    log.flush()
    assert json.loads(file.data.decode().splitlines()[-1])["at"] == 12
    assert log.dropped == 10
    assert len(warnings) == 2 and "again" in warnings[1]


def test_a_state_directory_that_cannot_even_open_the_file_costs_events_only(tmp_path):
    def refuse(_path):
        raise OSError(errno.EROFS, "Read-only file system")

    log = EventLog(tmp_path / "r.events.jsonl", warn=lambda _: None, opener=refuse)
    for n in range(5):
        log.write(event(n))
    log.flush()
    log.close()
    assert log.dropped == 5


def test_pending_events_are_written_out_by_themselves_past_a_size(tmp_path):
    path = tmp_path / "r.events.jsonl"
    log = EventLog(path)
    for n in range(2000):  # about 100 KB: more than one flush's worth
        log.write(event(n))
    assert path.stat().st_size > 0
    log.close()
    assert len(list(read_lines(path))) == 2000


def test_limits_come_from_the_environment_with_clear_refusals():
    assert limits({}) == (16 << 20, 3)
    assert limits({"NATLAB_EVENTS_MAX_BYTES": "512k", "NATLAB_EVENTS_FILES": "5"}) == (
        512 << 10,
        5,
    )
    assert limits({"NATLAB_EVENTS_MAX_BYTES": "2M"})[0] == 2 << 20
    assert limits({"NATLAB_EVENTS_MAX_BYTES": "4096"})[0] == 4096
    for bad in ("", "lots", "-1", "10", "1.5M"):
        if bad:
            with pytest.raises(ValueError, match="NATLAB_EVENTS_MAX_BYTES"):
                limits({"NATLAB_EVENTS_MAX_BYTES": bad})
    for bad in ("0", "x", "101"):
        with pytest.raises(ValueError, match="NATLAB_EVENTS_FILES"):
            limits({"NATLAB_EVENTS_FILES": bad})


def test_a_disk_that_keeps_filling_and_freeing_says_so_once_a_minute(tmp_path):
    file = FailingFile(room=0)
    now = [0.0]
    warnings: list[str] = []
    log = EventLog(
        tmp_path / "r.events.jsonl",
        warn=warnings.append,
        opener=lambda _: file,
        clock=lambda: now[0],
    )
    for second in range(120):  # fails, then works, then fails again, every second
        now[0] = float(second)
        file.room = len(file.data) + (10_000 if second % 2 else 0)
        log.write(event(second))
        log.flush()
    told = [w for w in warnings if "dropping events" in w]
    assert len(told) == 2  # at 0 s and at 60 s
    assert len(warnings) == 4  # each with its "writing again"
    assert log.dropped == 60
