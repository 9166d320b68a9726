"""`--html FILE`: one self-contained report a trainer can open offline and mail around.

Inline CSS and inline SVG only: no script, no font, no stylesheet from
anywhere, so it renders the same with the network off. Every piece of
text from a result or a trace goes through html.escape.

- the matrix: a grid (rows the caller's type, columns the callee's), each
  cell expected and observed, green when the pair passed, red when not,
  linking to its explanation below;
- a run or a trace: the topology (segments as lines, routers and hosts as
  boxes) and a ladder of the trace (one line per node, an arrow per packet
  event in time order, drops in red with their reason).
"""

from __future__ import annotations

import ipaddress
from html import escape
from pathlib import Path

from natlab.records import (
    IceCheckRecord,
    LabRecord,
    NatRecord,
    OtherRecord,
    RtpRecord,
    SipRecord,
    StepStarted,
    StunRecord,
    TraceRecord,
)
from natlab.scenario.matrix import CALLEE, CALLEE_ROUTER, CALLER, CALLER_ROUTER, MatrixResult
from natlab.scenario.runner import ScenarioResult
from natlab.scenario.story import sip_fields, tell
from natlab.scenario.verdict import FAULT, NOT_NAT, PASSED

Records = list[TraceRecord | OtherRecord]

STYLE = """
body { font-family: sans-serif; margin: 1.5em; color: #222; }
h1 { font-size: 1.4em; } h2 { font-size: 1.15em; margin-top: 1.6em; }
table.grid { border-collapse: collapse; }
table.grid th, table.grid td { border: 1px solid #999; padding: 0.4em 0.7em; text-align: center; }
td.pass { background: #c8efc8; } td.fail { background: #f5c0c0; } td.fault { background: #e6c8f0; }
td a { color: inherit; text-decoration: none; display: block; }
.pass-text { color: #186a18; } .fail-text { color: #a01010; } .fault-text { color: #7a1a96; }
pre, .lines { font-family: monospace; white-space: pre-wrap; }
svg text { font-family: sans-serif; font-size: 12px; }
"""

BOX_W, BOX_H, GAP = 110, 34, 20  # topology boxes
LANE, ROW, TOP = 140, 26, 40  # ladder: lane width, row height, room for the node names


def write_html(path: str | Path, title: str, body: str) -> None:
    Path(path).write_text(page(title, body), encoding="utf-8")


def page(title: str, body: str) -> str:
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>{escape(title)}</title><style>{STYLE}</style></head>"
        f"<body><h1>{escape(title)}</h1>\n{body}\n</body></html>\n"
    )


def cell_id(caller_type: str, callee_type: str) -> str:
    """The anchor of a pair's explanation: NAT type names are [a-z-] only."""
    return f"pair-{caller_type}-x-{callee_type}"


def matrix_html(result: MatrixResult) -> str:
    """The grid, then each pair's explanation lines under its anchor."""
    cells = {(p.caller_type, p.callee_type): p for p in result.pairs}
    wrong, faults = len(result.wrong), len(result.faults)
    header = "".join(f'<th scope="col">{escape(kind)}</th>' for kind in result.types)
    rows = []
    for caller in result.types:
        row = [f'<th scope="row">{escape(caller)}</th>']
        for callee in result.types:
            pair = cells[(caller, callee)]
            status = status_class(pair.verdict)
            row.append(
                f'<td class="cell {status}" data-caller="{escape(caller)}" '
                f'data-callee="{escape(callee)}"><a href="#{cell_id(caller, callee)}">'
                f"expected {escape(pair.expected)}<br>observed {escape(pair.observed)}</a></td>"
            )
        rows.append(f"<tr>{''.join(row)}</tr>")
    sections = []
    for pair in result.pairs:
        status = status_class(pair.verdict)
        lines = "\n".join(escape(line) for line in pair.explanation) or "(nothing to explain)"
        sections.append(
            f'<section id="{cell_id(pair.caller_type, pair.callee_type)}">'
            f"<h2>{escape(pair.caller_type)} x {escape(pair.callee_type)}: "
            f'<span class="{status}-text">expected {escape(pair.expected)}, '
            f"observed {escape(pair.observed)}</span></h2>"
            f'<div class="lines">{lines}</div></section>'
        )
    relay = " through the PBX's media relay" if result.relay else ""
    summary = f"{wrong} not as expected" if wrong else "all as expected"
    if faults:
        summary += f", {faults} not judged: a lab process died (fault)"
    return (
        f"<p>{CALLER} (behind {CALLER_ROUTER}, rows) calls {CALLEE} (behind {CALLEE_ROUTER}, "
        f"columns){escape(relay)}: {len(result.pairs)} pairs, {summary}, "
        f"{result.seconds:.1f} s.</p>"
        f'<table class="grid"><tr><th>{CALLER_ROUTER} \\ {CALLEE_ROUTER}</th>{header}</tr>'
        f"{''.join(rows)}</table>\n" + "\n".join(sections)
    )


def run_html(result: ScenarioResult, records: Records) -> str:
    """Each step's checks, then the trace's pictures."""
    items = []
    for step in result.steps:
        status = status_class(step.verdict)
        checks = "".join(
            f"<li>{escape(c.what)}: expected {escape(c.expected)}, observed "
            f'<span class="{"pass" if c.ok else "fail"}-text">{escape(c.observed)}</span></li>'
            for c in step.checks
        )
        error = f'<li class="fail-text">{escape(step.error)}</li>' if step.error else ""
        if step.fault:
            error = f'<li class="fault-text">{escape(step.fault)}: {NOT_NAT}</li>{error}'
        lines = "\n".join(escape(line) for line in step.explanation)
        items.append(
            f'<li><span class="{status}-text">{escape(step.text)}</span><ul>{checks}{error}</ul>'
            + (f'<div class="lines">{lines}</div>' if lines else "")
            + "</li>"
        )
    verdict = result.verdict if result.passed else result.verdict.upper()
    error = f'<p class="fail-text">{escape(result.error)}</p>' if result.error else ""
    return (
        f'<p>scenario {escape(result.name)} ({escape(result.source)}): <span class="'
        f'{status_class(result.verdict)}-text">{verdict}</span> in '
        f"{result.seconds:.1f} s</p>{error}<ol>{''.join(items)}</ol>" + trace_html(records)
    )


def status_class(verdict: str) -> str:
    """The CSS class of a verdict: pass, fault (a lab process died), or fail."""
    return {PASSED: "pass", FAULT: "fault"}.get(verdict, "fail")


def trace_html(records: Records) -> str:
    """Topology, ladder and the story's scenes (story.py) for a trace."""
    scenes = "".join(
        f"<h3>{escape(scene.title)}</h3>"
        f'<div class="lines">{"<br>".join(escape(line) for line in scene.lines)}</div>'
        for scene in tell(records)
    )
    lab = records[0] if records else None
    if not isinstance(lab, LabRecord):
        return f"<h2>Story</h2>{scenes}"
    return (
        f"<h2>Topology</h2>{topology_svg(lab)}"
        f"<h2>Sequence</h2>{ladder_svg(records)}<h2>Story</h2>{scenes}"
    )


def _parents(lab: LabRecord) -> dict[str, str | None]:
    """Each router's and host's router (None: on the public segment)."""
    subnets = {
        name: [ipaddress.ip_network(lan) for lan in router.lans]
        for name, router in lab.routers.items()
    }
    parent: dict[str, str | None] = {}
    for name, router in lab.routers.items():
        wan = ipaddress.ip_address(router.wan)
        owners = [other for other, nets in subnets.items() if any(wan in net for net in nets)]
        parent[name] = owners[0] if owners else None
    for name, host in lab.hosts.items():
        parent[name] = host.router
    return parent


def topology_svg(lab: LabRecord) -> str:
    """The public segment on top; under each router its LAN segment with what sits on it."""
    parent = _parents(lab)
    children: dict[str | None, list[str]] = {}
    for name, owner in parent.items():
        children.setdefault(owner, []).append(name)

    def width(node: str) -> int:
        kids = children.get(node, [])
        return max(BOX_W, sum(width(kid) + GAP for kid in kids) - GAP) if kids else BOX_W

    shapes: list[str] = []

    def place(owner: str | None, left: int, line_y: int) -> None:
        """The segment at line_y, then the nodes on it, each box hanging below it."""
        kids = children.get(owner, [])
        label = "public" if owner is None else f"{owner} LAN"
        total = sum(width(kid) + GAP for kid in kids) - GAP
        shapes.append(
            f'<line x1="{left}" y1="{line_y}" x2="{left + total}" y2="{line_y}" '
            f'stroke="#555" stroke-width="3"/><text x="{left}" y="{line_y - 6}">'
            f"{escape(label)}</text>"
        )
        x = left
        for kid in kids:
            centre, y = x + width(kid) // 2, line_y + 30
            is_router = kid in lab.routers
            info = lab.routers[kid].nat if is_router else lab.hosts[kid].address
            shapes.append(
                f'<line x1="{centre}" y1="{line_y}" x2="{centre}" y2="{y}" stroke="#555"/>'
                f'<rect class="{"router" if is_router else "host"}" x="{centre - BOX_W // 2}" '
                f'y="{y}" width="{BOX_W}" height="{BOX_H}" rx="4" '
                f'fill="{"#dde6f7" if is_router else "#f4f4f4"}" stroke="#333"/>'
                f'<text x="{centre}" y="{y + 14}" text-anchor="middle">{escape(kid)}</text>'
                f'<text x="{centre}" y="{y + 28}" text-anchor="middle" font-size="10">'
                f"{escape(info)}</text>"
            )
            if children.get(kid):
                shapes.append(
                    f'<line x1="{centre}" y1="{y + BOX_H}" x2="{centre}" y2="{y + BOX_H + 30}" '
                    'stroke="#555"/>'
                )
                place(kid, x, y + BOX_H + 30)
            x += width(kid) + GAP

    place(None, 10, 30)

    def depth(node: str | None) -> int:
        return 1 + max((depth(kid) for kid in children.get(node, [])), default=0)

    total = sum(width(kid) + GAP for kid in children.get(None, [])) + 20
    return _svg("topology", total, depth(None) * (BOX_H + 60), shapes)


def _arrows(records: Records, lab: LabRecord) -> list[tuple[str, str, str, bool] | str]:
    """(from, to, label, dropped) per packet event, or a step's title, in time order."""
    names = {host.address: name for name, host in lab.hosts.items()}
    names.update({router.wan: name for name, router in lab.routers.items()})

    def node(endpoint: str | None) -> str:
        address = (endpoint or "?").rsplit(":", 1)[0]
        return names.get(address, address)

    rows: list[tuple[str, str, str, bool] | str] = []
    for record in records[1:]:
        if isinstance(record, StepStarted):
            rows.append(f"step {record.index + 1}: {record.text}")
        elif isinstance(record, NatRecord) and record.kind == "mapping-created":
            label = f"{record.router} maps {record.internal} -> {record.external}"
            rows.append((node(record.internal), node(record.remote), label, False))
        elif isinstance(record, NatRecord) and record.kind == "drop" and record.src is None:
            rows.append(f"{record.router} dropped {record.detail or record.reason}")  # no packet
        elif isinstance(record, NatRecord) and record.kind == "drop":
            source, router = node(record.src), record.router
            target = router if source != router else node(record.dst)
            label = f"{record.src} -> {record.dst} dropped by {router}: {record.reason}"
            rows.append((source, target, label, True))
        elif isinstance(record, StunRecord):
            label = f"STUN binding: {record.internal} seen as {record.mapped}"
            rows.append((record.host, node(record.server), label, False))
        elif isinstance(record, IceCheckRecord):
            label = f"ICE check {record.local} -> {record.remote}: {record.state}"
            rows.append((record.phone, node(record.remote), label, False))
        elif isinstance(record, SipRecord):
            pbx = next((n for n, host in lab.hosts.items() if host.role == "pbx"), "pbx")
            ends = (record.phone, pbx) if record.direction == "sent" else (pbx, record.phone)
            details = "; ".join(f"{name} {value}" for name, value in sip_fields(record) if value)
            label = f"SIP {record.summary} (Call-ID {record.call})" + (
                f": {details}" if details else ""
            )
            rows.append((ends[0], ends[1], label, False))
        elif isinstance(record, RtpRecord):
            sent, received = (
                "?" if count is None else count for count in (record.sent, record.received)
            )
            label = f"RTP: {sent} sent, {received} received"
            rows.append((record.sender, record.receiver, label, not record.received))
    return rows


def ladder_svg(records: Records) -> str:
    """One vertical line per node that takes part, one arrow a row; drops end in a red X."""
    lab = records[0]
    assert isinstance(lab, LabRecord)
    rows = _arrows(records, lab)
    lanes: list[str] = []
    for row in rows:
        for name in row[:2] if isinstance(row, tuple) else ():
            if name not in lanes:
                lanes.append(name)
    x = {name: 80 + i * LANE for i, name in enumerate(lanes)}
    width = 80 + max(len(lanes), 1) * LANE + 380  # room for the last lane's labels
    bottom = TOP + (len(rows) + 1) * ROW
    shapes = [
        '<defs><marker id="head" markerWidth="8" markerHeight="8" refX="8" refY="4" '
        'orient="auto"><path d="M0,0 L8,4 L0,8 z" fill="#333"/></marker></defs>'
    ]
    for name, lane in x.items():
        shapes.append(
            f'<text class="lane" x="{lane}" y="20" text-anchor="middle" font-weight="bold">'
            f'{escape(name)}</text><line x1="{lane}" y1="{TOP - 12}" x2="{lane}" y2="{bottom}" '
            'stroke="#bbb" stroke-dasharray="4 3"/>'
        )
    for i, row in enumerate(rows):
        y = TOP + i * ROW + ROW // 2
        if isinstance(row, str):
            shapes.append(
                f'<line x1="10" y1="{y}" x2="{width - 10}" y2="{y}" stroke="#88a"/>'
                f'<text x="12" y="{y - 4}" fill="#446">{escape(row)}</text>'
            )
            continue
        source, target, label, dropped = row
        start, end = x[source], x[target]
        colour = "#c01010" if dropped else "#333"
        if start == end:  # to itself: a short loop to the right
            end = start + 30
        shapes.append(
            f'<line class="{"drop" if dropped else "sent"}" x1="{start}" y1="{y}" x2="{end}" '
            f'y2="{y}" stroke="{colour}"'
            + ("/>" if dropped else ' marker-end="url(#head)"/>')
            + (
                f'<text x="{end}" y="{y + 5}" text-anchor="middle" fill="{colour}" '
                'font-weight="bold">x</text>'
                if dropped
                else ""
            )
            + f'<text x="{min(start, end) + 6}" y="{y - 4}" fill="{colour}" font-size="11">'
            f"{escape(label)}</text>"
        )
    return _svg("sequence", width, bottom + 10, shapes)


def _svg(kind: str, width: int, height: int, shapes: list[str]) -> str:
    return (
        f'<svg class="{kind}" width="{width}" '
        f'height="{height}" viewBox="0 0 {width} {height}">{"".join(shapes)}</svg>'
    )
