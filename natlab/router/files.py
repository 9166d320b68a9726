"""Where a router daemon's files live in the lab's state directory.

routers/NAME.json is its config; beside it NAME.sock (control socket),
NAME.events.jsonl (its decisions, one JSON object a line) and NAME.log.
"""

from __future__ import annotations

from pathlib import Path


def config_path(lab_directory: Path, router: str) -> Path:
    return lab_directory / "routers" / f"{router}.json"


def socket_path(config: Path) -> Path:
    return config.with_suffix(".sock")


def events_path(config: Path) -> Path:
    return config.with_suffix(".events.jsonl")


def log_path(config: Path) -> Path:
    return config.with_suffix(".log")
