"""`--shard K/N` and `natlab matrix merge`: a matrix carried by several CI machines.

A shard is a deterministic slice of the matrix's cells in table order: cell
i (0-based, rows then columns) belongs to shard i mod N + 1, so the slow
cells of one row (a symmetric caller waits out its checks) spread over the
shards instead of landing on one. Every shard writes the usual matrix JSON
with its `shard`; merging checks that the reports are of one matrix (same
settings), that every shard is there once and no cell twice, and gives
back the report the unsharded run would have written, in table order, with
one verdict and one exit code.

Pure: JSON documents in, a JSON document out.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from natlab.errors import NatlabError
from natlab.scenario.verdict import PASSED, worst

MAX_SHARDS = 1000
# Fields that differ from one run of the same matrix to the next; every other top-level field
# is a setting, and the shards of one matrix must agree on all of them.
PER_RUN = frozenset({"pairs", "seconds", "jobs", "verdict", "passed", "exit_code", "shard"})
Cell = TypeVar("Cell")


def parse_shard(text: str) -> tuple[int, int]:
    """ "K/N" -> (K, N), 1 <= K <= N."""
    found = re.fullmatch(r"\s*(\d{1,4})\s*/\s*(\d{1,4})\s*", text)
    if found:
        index, count = int(found[1]), int(found[2])
        if 1 <= index <= count <= MAX_SHARDS:
            return index, count
    raise NatlabError(
        f"'{text}' is not a shard",
        field="--shard",
        fix=f"write K/N with 1 <= K <= N <= {MAX_SHARDS}, e.g. --shard 2/4",
    )


def shard_cells(cells: Sequence[Cell], index: int, count: int) -> list[Cell]:
    """Shard index of count (1-based): every count-th cell, starting at cell index - 1."""
    return [cell for position, cell in enumerate(cells) if position % count == index - 1]


def shard_json(shard: tuple[int, int] | None) -> dict[str, int] | None:
    return None if shard is None else {"index": shard[0], "count": shard[1]}


def cell_key(pair: dict[str, Any]) -> tuple[str, str]:
    return pair["caller"]["type"], pair["callee"]["type"]


def merge_reports(documents: Sequence[tuple[str, dict[str, Any]]]) -> dict[str, Any]:
    """One matrix report from its shards' reports, given as (file name, document)."""
    if not documents:
        raise NatlabError("no report to merge", fix="name the shards' JSON reports")
    first_name, first = documents[0]
    for name, document in documents:
        _check_shape(name, document)
    settings = {key: value for key, value in first.items() if key not in PER_RUN}
    count = first["shard"]["count"]
    seen: dict[int, str] = {}
    for name, document in documents:
        mine = {key: value for key, value in document.items() if key not in PER_RUN}
        if mine != settings:
            differ = sorted(k for k in {*mine, *settings} if mine.get(k) != settings.get(k))
            raise NatlabError(
                f"{name} is a report of another matrix than {first_name}: "
                f"{', '.join(differ)} differ",
                fix="merge the shards of one matrix run only",
            )
        shard = document["shard"]
        if shard["count"] != count:
            raise NatlabError(
                f"{name} is shard {shard['index']}/{shard['count']}, {first_name} one of {count}",
                fix="merge the shards of one --shard K/N split",
            )
        if shard["index"] in seen:
            raise NatlabError(
                f"{name} and {seen[shard['index']]} are both shard {shard['index']}/{count}",
                fix="give each shard's report once",
            )
        seen[shard["index"]] = name
    missing = [str(index) for index in range(1, count + 1) if index not in seen]
    if missing:
        raise NatlabError(
            f"shard {', '.join(f'{m}/{count}' for m in missing)} missing",
            fix="merge the reports of every shard",
        )
    pairs: dict[tuple[str, str], dict[str, Any]] = {}
    for name, document in documents:
        for pair in document["pairs"]:
            if cell_key(pair) in pairs:
                raise NatlabError(
                    f"{name}: cell {' x '.join(cell_key(pair))} is in two reports",
                    fix="merge the shards of one matrix run only",
                )
            pairs[cell_key(pair)] = pair
    types = first["types"]
    order = [(a, b) for a in types for b in types]
    absent = [cell for cell in order if cell not in pairs]
    if absent or len(pairs) != len(order):
        what = " x ".join(absent[0]) if absent else "a cell of other types"
        raise NatlabError(
            f"the shards do not add up to the matrix: {what}",
            fix="merge the reports of one --shard K/N split, every shard",
        )
    verdict = worst(pair["verdict"] for pair in pairs.values())
    return {
        **settings,
        "jobs": first.get("jobs"),
        "verdict": verdict,
        "passed": verdict == PASSED,
        "exit_code": max(document["exit_code"] for _, document in documents),
        "seconds": round(sum(document["seconds"] for _, document in documents), 3),
        "shard": None,
        "merged": count,
        "pairs": [pairs[cell] for cell in order],
    }


def _check_shape(name: str, document: Any) -> None:
    """Enough of a matrix report to merge, else a message naming the file and the field."""
    if not isinstance(document, dict) or not str(document.get("schema", "")).startswith(
        "natlab/matrix/"
    ):
        raise NatlabError(
            f"{name} is not a natlab matrix report",
            fix="give the JSON a matrix wrote with --json-file (schema natlab/matrix/1)",
        )
    shard = document.get("shard")
    if not isinstance(shard, dict):
        raise NatlabError(
            f"{name} is the report of a whole matrix, not of a shard",
            field="shard",
            fix="merge reports of runs with --shard K/N",
        )
    try:
        checks = [
            isinstance(shard["index"], int) and isinstance(shard["count"], int),
            isinstance(document["types"], list),
            isinstance(document["exit_code"], int),
            isinstance(document["seconds"], int | float),
            all(
                isinstance(cell_key(pair), tuple) and pair["verdict"] for pair in document["pairs"]
            ),
        ]
    except (KeyError, TypeError) as error:
        raise NatlabError(
            f"{name} is not a whole matrix report: {error} missing or mistyped",
            fix="give the JSON a matrix wrote with --json-file, unchanged",
        ) from None
    if not all(checks):
        raise NatlabError(
            f"{name} is not a whole matrix report: a field has the wrong type",
            fix="give the JSON a matrix wrote with --json-file, unchanged",
        )


def slow_first(cells: Sequence[Cell], slow: Callable[[Cell], bool]) -> list[Cell]:
    """The cells in the order to start them: the slow ones first, so none is left running alone
    at the end while the other labs idle (results are still reported in table order)."""
    return sorted(cells, key=lambda cell: not slow(cell))
