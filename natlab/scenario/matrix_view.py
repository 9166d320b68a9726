"""A matrix report read back from its JSON: what `matrix merge` and program matrices render.

A merged report exists only as JSON (its shards ran on other machines), and
a program matrix's cells are JSON-shaped already, so both are shown, and
written as JUnit and HTML, from the one document: MatrixView holds what a
table and a report need (types, the two sides' names, each cell's
expectation, observation, verdict and explanation).
"""

from __future__ import annotations

from dataclasses import dataclass
from html import escape
from pathlib import Path

from junitparser import Error, Failure, JUnitXml, TestCase, TestSuite

from natlab.scenario.html import cell_id, status_class, write_html
from natlab.scenario.verdict import ERROR, FAILED, FAULT, NOT_NAT, PASSED


@dataclass(frozen=True)
class CellView:
    caller_type: str
    callee_type: str
    expected: str
    observed: str
    shown: str  # what the table shows: "connected direct", "two-way", ...
    verdict: str
    fault: str | None
    explanation: list[str]
    seconds: float

    @property
    def passed(self) -> bool:
        return self.verdict == PASSED

    @classmethod
    def from_json(cls, pair: dict) -> CellView:
        return cls(
            pair["caller"]["type"],
            pair["callee"]["type"],
            pair["expected"],
            pair["observed"],
            pair.get("shown", pair["observed"]),
            pair["verdict"],
            pair.get("fault"),
            list(pair.get("explanation", [])),
            float(pair.get("seconds", pair.get("scenario", {}).get("seconds", 0.0))),
        )


@dataclass(frozen=True)
class MatrixView:
    types: list[str]
    sides: tuple[str, str]  # "phone-b (behind branch1)", ...
    routers: tuple[str, str]
    what: str  # "phone-b calls phone-c", "agent.py x agent.py"
    cells: list[CellView]
    seconds: float
    jobs: int | None
    verdict: str
    exit_code: int
    shard: dict | None
    merged: int | None

    @property
    def wrong(self) -> list[CellView]:
        return [cell for cell in self.cells if cell.verdict in (FAILED, ERROR)]

    @property
    def faults(self) -> list[CellView]:
        return [cell for cell in self.cells if cell.verdict == FAULT]

    @classmethod
    def from_json(cls, document: dict) -> MatrixView:
        pairs = document["pairs"]
        if document.get("programs"):
            nodes, routers = document["nodes"], document["routers"]
            run = " ".join(document["run_a"]), " ".join(document["run_b"])
            what = (
                f"{run[0]} in {nodes[0]} and {nodes[1]}"
                if run[0] == run[1]
                else f"{run[0]} in {nodes[0]} with {run[1]} in {nodes[1]}"
            )
        else:  # natlab's own phones (matrix.py)
            nodes, routers = ["phone-b", "phone-c"], ["branch1", "branch2"]
            relay = " through the PBX's media relay" if document.get("relay") else ""
            what = f"phone-b calls phone-c{relay}"
        cells = [CellView.from_json(pair) for pair in pairs]
        return cls(
            types=list(document["types"]),
            sides=(f"{nodes[0]} (behind {routers[0]})", f"{nodes[1]} (behind {routers[1]})"),
            routers=(routers[0], routers[1]),
            what=what,
            cells=cells,
            seconds=float(document["seconds"]),
            jobs=document.get("jobs"),
            verdict=document["verdict"],
            exit_code=int(document["exit_code"]),
            shard=document.get("shard"),
            merged=document.get("merged"),
        )

    def summary(self) -> str:
        wrong, faults = len(self.wrong), len(self.faults)
        text = f"{len(self.cells)} pairs, " + (
            f"{wrong} not as expected" if wrong else "all as expected"
        )
        if faults:
            text += f", {faults} not judged: a lab process died (fault)"
        if self.shard:
            text += f", shard {self.shard['index']}/{self.shard['count']}"
        if self.merged:
            text += f", merged from {self.merged} shards"
        return text


def write_view_junit(path: str | Path, view: MatrixView) -> None:
    suite = TestSuite(f"natlab matrix: {view.what}")
    for cell in view.cells:
        case = TestCase(
            f"{cell.caller_type} x {cell.callee_type}",
            classname="matrix",
            time=round(cell.seconds, 3),
        )
        if not cell.passed:
            message = f"expected {cell.expected}, observed {cell.shown}"
            if cell.verdict == FAULT:
                outcome = Error(f"{cell.fault}: {NOT_NAT}", FAULT)
            elif cell.verdict == ERROR:
                outcome = Error(message, "error")
            else:
                outcome = Failure(message, "verdict")
            outcome.text = "\n".join(cell.explanation)
            case.result = [outcome]
        suite.add_testcase(case)
    xml = JUnitXml()
    xml.add_testsuite(suite)
    xml.update_statistics()
    suite.time = xml.time = round(view.seconds, 3)
    xml.write(str(path), pretty=True)


def write_view_html(path: str | Path, view: MatrixView) -> None:
    cells = {(c.caller_type, c.callee_type): c for c in view.cells}
    header = "".join(f'<th scope="col">{escape(kind)}</th>' for kind in view.types)
    rows = []
    for caller in view.types:
        row = [f'<th scope="row">{escape(caller)}</th>']
        for callee in view.types:
            cell = cells.get((caller, callee))
            if cell is None:
                row.append('<td class="cell">other shard</td>')
                continue
            row.append(
                f'<td class="cell {status_class(cell.verdict)}">'
                f'<a href="#{cell_id(caller, callee)}">'
                f"expected {escape(cell.expected)}<br>observed {escape(cell.shown)}</a></td>"
            )
        rows.append(f"<tr>{''.join(row)}</tr>")
    sections = [
        f'<section id="{cell_id(c.caller_type, c.callee_type)}">'
        f"<h2>{escape(c.caller_type)} x {escape(c.callee_type)}: "
        f'<span class="{status_class(c.verdict)}-text">expected {escape(c.expected)}, '
        f"observed {escape(c.shown)}</span></h2>"
        f'<div class="lines">'
        f"{chr(10).join(escape(line) for line in c.explanation) or '(nothing to explain)'}"
        "</div></section>"
        for c in view.cells
    ]
    body = (
        f"<p>{escape(view.what)}; rows: {escape(view.sides[0])}, columns: "
        f"{escape(view.sides[1])}; {escape(view.summary())}, {view.seconds:.1f} s.</p>"
        f'<table class="grid"><tr><th>{escape(view.routers[0])} \\ '
        f"{escape(view.routers[1])}</th>{header}</tr>{''.join(rows)}</table>\n"
        + "\n".join(sections)
    )
    write_html(path, "natlab matrix", body)
