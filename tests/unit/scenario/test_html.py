"""The HTML reports: the matrix grid's cells and anchors, the pictures of a trace, offline."""

from html.parser import HTMLParser

from click.testing import CliRunner

from natlab.cli import cli
from natlab.core.events import DropReason
from natlab.records import HostInfo, LabRecord, NatRecord, RouterInfo, RtpRecord, StepStarted
from natlab.scenario.expectations import TYPES, Check, expected_media
from natlab.scenario.html import matrix_html, page, run_html, trace_html
from natlab.scenario.matrix import MatrixResult, PairResult
from natlab.scenario.runner import ScenarioResult, StepResult
from natlab.scenario.trace import write_trace


class Tags(HTMLParser):
    """Every start tag with its attributes, and the text inside each <td>."""

    def __init__(self, text: str) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict]] = []
        self.cells: list[tuple[dict, str]] = []
        self._cell: dict | None = None
        self._text = ""
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))
        if tag == "td":
            self._cell, self._text = dict(attrs), ""

    def handle_endtag(self, tag):
        if tag == "td":
            self.cells.append((self._cell, self._text))
            self._cell = None

    def handle_data(self, data):
        if self._cell is not None:
            self._text += data + " "

    def ids(self) -> set[str]:
        return {attrs["id"] for _, attrs in self.tags if "id" in attrs}


def matrix_result() -> MatrixResult:
    """Every pair as the reference says, but symmetric x full-cone: no media, with its why."""
    pairs = []
    for a in TYPES:
        for b in TYPES:
            expected = expected_media(a, b, False)
            wrong = (a, b) == ("symmetric", "full-cone")
            observed = "no media" if wrong else expected
            step = StepResult(1, "call phone-b -> phone-c", 9)
            step.checks = [Check("media", expected, observed, not wrong)]
            step.explanation = (
                ["branch1 dropped 3 packets <from 203.0.113.3:5000>"] if wrong else []
            )
            result = ScenarioResult(f"{a}-x-{b}", "matrix", "mx", [step], seconds=2.0)
            pairs.append(PairResult(a, b, expected, observed, result))
    return MatrixResult(TYPES, False, 2, pairs, 30.0)


EI, APD = "endpoint-independent", "address-and-port-dependent"
LAB = LabRecord(
    at=0.0,
    scenario="s",
    about="",
    source="s.yaml",
    lab="s-1",
    routers={
        "main": RouterInfo("203.0.113.1", ["10.0.0.0/24"], "full-cone", EI, EI),
        "branch1": RouterInfo("203.0.113.2", ["10.1.0.0/24"], "symmetric", APD, APD),
    },
    hosts={
        "phone-a": HostInfo("10.0.0.3", "phone", "main"),
        "phone-<b>": HostInfo("10.1.0.2", "phone", "branch1"),
        "stun1": HostInfo("203.0.113.4", "stun-server", None),
    },
    stun_servers=["203.0.113.4:3478"],
)
TRACE = [
    LAB,
    StepStarted(at=0.1, index=0, text="call phone-<b> -> phone-a"),
    NatRecord(
        at=0.2,
        clock=10.2,
        router="branch1",
        kind="mapping-created",
        proto="udp",
        internal="10.1.0.2:4000",
        external="203.0.113.2:4000",
        remote="203.0.113.1:5000",
        detail="udp mapping",
    ),
    NatRecord(
        at=0.3,
        clock=10.3,
        router="branch1",
        kind="drop",
        reason=DropReason.FILTERED_PORT,
        direction="inbound",
        proto="udp",
        src="203.0.113.1:5001",
        dst="203.0.113.2:4000",
        detail="filtered",
    ),
    NatRecord(  # a drop the daemon counts without a packet to show (no src, no dst)
        at=0.35,
        router="branch1",
        kind="drop",
        reason=DropReason.RECEIVE_OVERFLOW,
        port="lan",
        count=3,
        detail="3 frame(s) came in faster than the daemon could read them",
    ),
    RtpRecord(at=0.4, call="c1", sender="phone-a", receiver="phone-<b>", sent=50, received=0),
]


def test_the_grid_has_a_cell_per_pair_coloured_by_verdict_each_linking_to_its_why():
    result = matrix_result()
    tags = Tags(page("natlab matrix", matrix_html(result)))
    assert len(tags.cells) == len(TYPES) ** 2 == 25
    ids = tags.ids()
    links = [attrs["href"] for tag, attrs in tags.tags if tag == "a"]
    assert len(links) == 25 and all(link[1:] in ids for link in links)
    for attrs, text in tags.cells:
        pair = next(
            p
            for p in result.pairs
            if (p.caller_type, p.callee_type) == (attrs["data-caller"], attrs["data-callee"])
        )
        assert ("pass" if pair.passed else "fail") in attrs["class"].split()
        assert f"expected {pair.expected}" in text and f"observed {pair.observed}" in text
    failed = [attrs for attrs, _ in tags.cells if "fail" in attrs["class"].split()]
    assert [(a["data-caller"], a["data-callee"]) for a in failed] == [("symmetric", "full-cone")]


def test_the_matrix_report_escapes_the_explanation_and_needs_no_network():
    text = page("natlab matrix", matrix_html(matrix_result()))
    assert "&lt;from 203.0.113.3:5000&gt;" in text and "<from" not in text
    assert "http://" not in text and "https://" not in text
    assert "<script" not in text and "<link" not in text


def test_a_run_report_draws_the_topology_and_the_ladder_with_every_node():
    step = StepResult(0, "call phone-<b> -> phone-a", 3)
    step.checks = [Check("media", "two-way", "no media", False)]
    result = ScenarioResult("s", "s.yaml", "s-1", [step], seconds=3.0)
    text = page("natlab run s", run_html(result, TRACE))
    tags = Tags(text)
    svgs = [attrs["class"] for tag, attrs in tags.tags if tag == "svg"]
    assert svgs == ["topology", "sequence"]
    for node in ("main", "branch1", "phone-a", "phone-&lt;b&gt;", "stun1"):
        assert f">{node}</text>" in text
    assert "phone-<b>" not in text
    assert "dropped by branch1: filtered-port" in text
    assert "branch1 dropped 3 frame(s) came in faster than the daemon could read them" in text
    assert len([a for tag, a in tags.tags if tag == "line" and a.get("class") == "drop"]) == 2
    assert "http://" not in text and "https://" not in text


def test_explain_html_writes_the_trace_report(tmp_path):
    trace = write_trace(tmp_path / "t.jsonl", TRACE)
    out = tmp_path / "t.html"
    answer = CliRunner().invoke(cli, ["explain", str(trace), "--html", str(out)])
    assert answer.exit_code == 0, answer.output
    text = out.read_text()
    assert text == page(f"natlab explain {trace}", trace_html(TRACE))
    assert '<svg class="sequence"' in text
