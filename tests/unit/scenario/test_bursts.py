"""Bursts in the story: 40 new flows through a carrier-grade NAT told in a few lines.

The trace is built like the cgnat demo's exhaustion step: phone-a behind
home1 opens 40 flows at once; home1 maps each, the carrier maps 32 into
home1's two blocks of 16 ports (the second given during the burst) and
refuses 8. Told event by event that was 80 scenes; told as a burst it is one.
"""

from hypothesis import given
from hypothesis import strategies as st

from natlab.core.events import DropReason
from natlab.records import HostInfo, LabRecord, NatRecord, RouterInfo, StepEnded, StepStarted
from natlab.scenario.bursts import SPANS, port_ranges
from natlab.scenario.explain import LIMIT, DropGroup, drop_lines
from natlab.scenario.story import BURST, TABLE_ROWS, shown_rows, shown_tables, tell

EIM, APD = "endpoint-independent", "address-and-port-dependent"
LAB = LabRecord(
    at=0.0,
    scenario="cgnat",
    about="",
    source="cgnat.yaml",
    lab="cgnat-abc123",
    routers={
        "carrier": RouterInfo("203.0.113.10", ["100.64.0.0/24"], "restricted", EIM, APD),
        "home1": RouterInfo("100.64.0.2", ["192.168.1.0/24"], "port-restricted", EIM, APD),
    },
    hosts={
        "phone-a": HostInfo("192.168.1.2", "phone", "home1"),
        "stun1": HostInfo("203.0.113.2", "stun-server", None),
    },
    stun_servers=["203.0.113.2:3478"],
)
STUN = "203.0.113.2:3478"
FULL = "subscriber 100.64.0.2 uses every udp port of its 2 block(s) on 203.0.113.10"


def created(clock, router, internal, external):
    return NatRecord(
        at=clock, clock=clock, router=router, kind="mapping-created", proto="udp",
        internal=internal, external=external, remote=STUN, detail="",
    )  # fmt: skip


def block(clock, kind, first, **more):
    return NatRecord(
        at=clock, clock=clock, router="carrier", kind=kind, subscriber="100.64.0.2",
        public="203.0.113.10", first_port=first, last_port=first + 15, detail="", **more,
    )  # fmt: skip


def burst_trace(flows=40, mapped=32):
    """home1 maps every flow; the carrier maps the first `mapped`, then refuses the rest."""
    records = [
        LAB,
        StepStarted(at=0, index=0, text="40 new flows"),
        block(1, "port-block-allocated", 1024),
    ]
    for n in range(flows):
        clock = 2 + n / 100
        inside, middle = f"192.168.1.2:{40000 + 7 * n}", f"100.64.0.2:{40000 + 7 * n}"
        records.append(created(clock, "home1", inside, middle))
        if n == 16:
            records.append(block(clock, "port-block-allocated", 1040))
        if n < mapped:
            records.append(created(clock, "carrier", middle, f"203.0.113.10:{1024 + n}"))
        else:
            records.append(
                NatRecord(
                    at=clock,
                    clock=clock,
                    router="carrier",
                    kind="exhausted",
                    reason=DropReason.EXHAUSTED,
                    direction="outbound",
                    proto="udp",
                    src=middle,
                    dst=STUN,
                    subscriber="100.64.0.2",
                    detail=FULL,
                )
            )
    records.append(StepEnded(at=9, index=0, text="40 new flows", passed=True))
    return records


def test_a_burst_of_new_flows_is_one_scene_that_counts_mapped_and_refused():
    scenes = tell(burst_trace())
    titles = [scene.title for scene in scenes]
    assert titles[1:] == [
        "step 1: 40 new flows",
        "carrier, home1: a burst of 82 events",
        "step 1 passed: 40 new flows",
    ]
    lines = scenes[2].lines
    assert lines[:4] == [
        "carrier gave home1 (subscriber 100.64.0.2) 2 port blocks: "
        "203.0.113.10:1024-1039, 203.0.113.10:1040-1055",
        "home1: 40 new flows from phone-a: 40 mapped to 100.64.0.2: 40 ports from 40000 to 40273",
        "carrier: 40 new flows from home1: 32 mapped to 203.0.113.10:1024-1055; "
        f"8 refused, exhausted: {FULL}",
        "home1 now holds 2 port block(s) on carrier: 203.0.113.10:1024-1039, "
        "203.0.113.10:1040-1055",
    ]
    assert "82 router events in 1.4 s" in lines[4]
    assert len(scenes[2].tables["carrier"]) == 32  # the data keeps every row ...
    assert len(shown_rows(scenes[2].tables["carrier"])) == 1  # ... the table shows one line


def test_a_few_routine_events_are_still_told_one_scene_each():
    flows = (BURST - 1) // 2  # two events each, and the port block before them
    scenes = tell(burst_trace(flows=flows, mapped=flows))
    assert [scene.title for scene in scenes].count("home1: new mapping for phone-a") == flows
    assert not any("burst" in scene.title for scene in scenes)


def test_expiries_and_a_block_taken_back_are_counted_per_router_and_subscriber():
    expiries = [
        NatRecord(
            at=50,
            clock=50,
            router="carrier",
            kind="mapping-expired",
            proto="udp",
            internal=f"100.64.0.2:{40000 + 7 * n}",
            external=f"203.0.113.10:{1024 + n}",
            expired_at=49,
            detail="",
        )
        for n in range(32)
    ]
    released = block(50, "port-block-released", 1040, allocated_at=2.16)
    trace = [*burst_trace()[:-1], StepStarted(at=10, index=1, text="advance"), *expiries, released]
    told = tell(trace)[-1]
    assert told.title == "carrier: a burst of 33 events"
    assert told.lines[:3] == [
        "carrier: 32 of home1's mappings expired (203.0.113.10:1024-1055)",
        "carrier took back home1's 1 port block (subscriber 100.64.0.2): 203.0.113.10:1040-1055",
        "home1 now holds 1 port block(s) on carrier: 203.0.113.10:1024-1039",
    ]
    assert "carrier" not in told.tables  # every mapping of the carrier's is gone


def test_a_table_is_shown_once_per_run_of_router_scenes_after_its_last_change():
    scenes = tell(burst_trace(flows=2, mapped=2))
    shown = [sorted(tables) for tables in shown_tables(scenes)]
    titles = [scene.title for scene in scenes]
    assert list(zip(titles, shown, strict=True))[1:] == [
        ("step 1: 40 new flows", []),
        ("carrier: a port block for home1", []),
        ("home1: new mapping for phone-a", []),
        ("carrier: new mapping for home1", []),
        ("home1: new mapping for phone-a", ["home1"]),  # both of its mappings
        ("carrier: new mapping for home1", ["carrier"]),
        ("step 1 passed: 40 new flows", []),
    ]
    assert shown_tables(scenes)[5]["home1"] == scenes[5].tables["home1"]


def test_a_long_table_shows_one_row_per_host_and_kind_of_mapping():
    rows = tell(burst_trace(flows=TABLE_ROWS + 1, mapped=TABLE_ROWS + 1))[-2].tables["carrier"]
    assert shown_rows(rows) == [
        ("udp", "home1 (13)", "100.64.0.2: 13 ports from 40000 to 40084", "203.0.113.10:1024-1036",
         f"any (first {STUN})"),
    ]  # fmt: skip
    assert len(shown_rows(rows[:TABLE_ROWS])) == TABLE_ROWS  # up to TABLE_ROWS: every row


def test_port_ranges_names_each_address_once():
    endpoints = ["203.0.113.10:1025", "203.0.113.11:7", "203.0.113.10:1024", "203.0.113.10:1030"]
    assert port_ranges(endpoints) == "203.0.113.10:1024-1025,1030, 203.0.113.11:7"
    assert port_ranges(["nonsense", ""]) == ""


@given(st.sets(st.integers(1, 65535), min_size=1, max_size=60))
def test_port_ranges_keep_every_port_or_count_them(ports):
    told = port_ranges(f"100.64.0.2:{port}" for port in ports)
    if told.startswith("100.64.0.2: "):  # scattered: how many, lowest, highest
        assert told == f"100.64.0.2: {len(ports)} ports from {min(ports)} to {max(ports)}"
        return
    back = set()
    spans = told.removeprefix("100.64.0.2:").split(",")
    assert len(spans) <= SPANS
    for span in spans:
        first, _, last = span.partition("-")
        back |= set(range(int(first), int(last or first) + 1))
    assert back == ports


def test_a_port_block_given_alone_is_a_scene_naming_subscriber_address_and_ports():
    given_block = tell(burst_trace(flows=1, mapped=1))[2]
    assert given_block.lines == [
        "carrier gave subscriber 100.64.0.2 (home1) ports 1024-1039 on 203.0.113.10: its new "
        "mappings take their outside ports from there",
        "home1 now holds 1 port block(s) on carrier: 203.0.113.10:1024-1039",
    ]


def test_a_step_s_many_drops_that_differ_only_in_source_are_one_line():
    refused = [
        DropGroup("carrier", DropReason.EXHAUSTED, "outbound", "udp", f"100.64.0.2:{port}", STUN,
                  FULL, 1)
        for port in range(40000, 40013)
    ]  # fmt: skip
    other = DropGroup("home1", DropReason.FILTERED_PORT, "inbound", "udp", STUN, "100.64.0.2:1",
                      "mapping ...", 2)  # fmt: skip
    assert drop_lines([*refused, other], merge_sources=True) == [
        "carrier dropped 13 udp packets 100.64.0.2:40000-40012 -> 203.0.113.2:3478 "
        f"(outbound, exhausted): {FULL}",
        other.describe(),
    ]
    assert drop_lines(refused[:LIMIT], merge_sources=True) == [
        g.describe() for g in refused[:LIMIT]
    ]
    assert len(drop_lines(refused)) == LIMIT + 1  # a call's: cut with a count
