"""Discovery's decisions from canned answers, and its test order against a model NAT.

No sockets: ModelNat maps and filters as RFC 4787 says, in front of the real
responder (natlab.stun.answer) laid out as a 2x2 grid. Running `discover`
through it for every pair of axes checks the decisions and the order of the
tests together: filtering tests run after the mapping tests would find the
holes those opened and report endpoint-independent filtering.
"""

from __future__ import annotations

from collections.abc import Callable
from ipaddress import ip_address
from itertools import product

import pytest

from natlab.core.behaviour import Filtering, Mapping
from natlab.endpoints.discovery import (
    LifetimeSearch,
    classic_name,
    discover,
    filtering_of,
    mapping_of,
    search_lifetime,
)
from natlab.endpoints.stun_client import Answer
from natlab.errors import NatlabError
from natlab.stun import (
    CHANGE_REQUEST,
    Address,
    ChangeRequest,
    Grid,
    Message,
    MessageClass,
    Method,
    answer,
    decode,
)

SERVER = Address.of("203.0.113.10", 3478)
OTHER = Address.of("203.0.113.11", 3479)
GRID = Grid((SERVER.ip, OTHER.ip), (SERVER.port, OTHER.port))
LOCAL = Address.of("10.0.0.2", 5000)
PUBLIC_IP = ip_address("198.51.100.1")


class ModelNat:
    """One internal socket behind an RFC 4787 NAT, talking to the real responder."""

    def __init__(
        self,
        mapping: Mapping = Mapping.ENDPOINT_INDEPENDENT,
        filtering: Filtering = Filtering.ENDPOINT_INDEPENDENT,
        *,
        translate: bool = True,
        grid: Grid = GRID,
        honours_change: bool = True,
        unreachable: frozenset[Address] = frozenset(),
        hairpins: bool = True,
        lifetime: float = 30.0,
    ) -> None:
        self.mapping, self.filtering, self.translate = mapping, filtering, translate
        self.grid, self.honours_change, self.unreachable = grid, honours_change, unreachable
        self.hairpins, self.lifetime = hairpins, lifetime
        self.mappings: dict[object, Address] = {}
        self.sent_to: dict[Address, set[Address]] = {}
        self.hairpin_asked: list[Address] = []
        self.requests: list[tuple[Address, ChangeRequest | None]] = []

    @property
    def local(self) -> Address:
        return LOCAL

    def _external(self, destination: Address) -> Address:
        if not self.translate:
            return LOCAL
        key: object = {
            Mapping.ENDPOINT_INDEPENDENT: None,
            Mapping.ADDRESS_DEPENDENT: destination.ip,
            Mapping.ADDRESS_AND_PORT_DEPENDENT: destination,
        }[self.mapping]
        return self.mappings.setdefault(key, Address(PUBLIC_IP, 40000 + len(self.mappings)))

    def _admits(self, external: Address, remote: Address) -> bool:
        contacted = self.sent_to.get(external, set())
        if self.filtering is Filtering.ENDPOINT_INDEPENDENT:
            return True
        if self.filtering is Filtering.ADDRESS_DEPENDENT:
            return remote.ip in {address.ip for address in contacted}
        return remote in contacted

    def binding(self, server: Address, change: ChangeRequest | None = None) -> Answer | None:
        self.requests.append((server, change))
        external = self._external(server)
        self.sent_to.setdefault(external, set()).add(server)
        if server in self.unreachable:
            return None
        sent = () if change is None or not self.honours_change else (CHANGE_REQUEST(change),)
        request = Message(Method.BINDING, MessageClass.REQUEST, bytes(12), sent)
        reply = answer(request, external, server, self.grid)
        assert reply is not None
        if not self._admits(external, reply.source):
            return None
        return Answer.of(decode(reply.data), reply.source)

    def hairpin(self, server: Address, mapped: Address) -> bool:
        self.hairpin_asked.append(mapped)
        return self.hairpins

    def alive_after(self, server: Address, wait: float) -> bool:
        return wait < self.lifetime


PRESET_NAMES = {
    (Mapping.ENDPOINT_INDEPENDENT, Filtering.ENDPOINT_INDEPENDENT): "full-cone",
    (Mapping.ENDPOINT_INDEPENDENT, Filtering.ADDRESS_DEPENDENT): "restricted",
    (Mapping.ENDPOINT_INDEPENDENT, Filtering.ADDRESS_AND_PORT_DEPENDENT): "port-restricted",
    (Mapping.ADDRESS_AND_PORT_DEPENDENT, Filtering.ADDRESS_AND_PORT_DEPENDENT): "symmetric",
}


@pytest.mark.parametrize(("mapping", "filtering"), list(product(Mapping, Filtering)))
def test_discover_reports_every_pair_of_axes(mapping: Mapping, filtering: Filtering) -> None:
    nat = ModelNat(mapping, filtering)
    report = discover(nat, SERVER)
    assert report.mapping is mapping
    assert report.filtering is filtering
    assert report.name == PRESET_NAMES.get((mapping, filtering))
    assert report.mapped == Address(PUBLIC_IP, 40000)
    assert report.local == LOCAL
    assert report.other == OTHER
    assert report.notes == ()


def test_filtering_tests_run_before_the_mapping_tests_open_holes() -> None:
    nat = ModelNat(Mapping.ENDPOINT_INDEPENDENT, Filtering.ADDRESS_AND_PORT_DEPENDENT)
    discover(nat, SERVER)
    assert nat.requests == [
        (SERVER, None),
        (SERVER, ChangeRequest(True, True)),
        (SERVER, ChangeRequest(change_port=True)),
        (Address(OTHER.ip, SERVER.port), None),
    ]


def test_symmetric_nat_needs_all_three_mapping_tests() -> None:
    nat = ModelNat(Mapping.ADDRESS_AND_PORT_DEPENDENT, Filtering.ENDPOINT_INDEPENDENT)
    discover(nat, SERVER)
    assert [server for server, change in nat.requests if change is None] == [
        SERVER,
        Address(OTHER.ip, SERVER.port),
        OTHER,
    ]


@pytest.mark.parametrize(
    ("filtering", "name"),
    [(Filtering.ENDPOINT_INDEPENDENT, "open internet"), (Filtering.ADDRESS_DEPENDENT, "firewall")],
)
def test_no_translation_is_open_internet_or_a_firewall(filtering: Filtering, name: str) -> None:
    nat = ModelNat(filtering=filtering, translate=False)
    report = discover(nat, SERVER)
    assert report.mapped == LOCAL
    assert (report.mapping, report.filtering, report.name) == (
        Mapping.ENDPOINT_INDEPENDENT,
        filtering,
        name,
    )
    # Without a NAT there is nothing to map: tests II and III are not sent.
    assert all(server == SERVER for server, _change in nat.requests)


def test_hairpin_is_asked_for_the_mapped_address_and_reported() -> None:
    nat = ModelNat(hairpins=False)
    report = discover(nat, SERVER)
    assert nat.hairpin_asked == [report.mapped]
    assert report.hairpin is False
    assert discover(ModelNat(hairpins=True), SERVER).hairpin is True
    skipped = ModelNat()
    assert discover(skipped, SERVER, hairpin=False).hairpin is None
    assert skipped.hairpin_asked == []


def test_lifetime_is_bracketed_within_the_resolution() -> None:
    report = discover(ModelNat(lifetime=47.0), SERVER, lifetime=LifetimeSearch(120.0, 2.0))
    assert report.lifetime is not None
    assert report.lifetime.survives < 47.0 <= (report.lifetime.expires or 0)
    assert (report.lifetime.expires or 0) - report.lifetime.survives <= 2.0
    assert discover(ModelNat(), SERVER).lifetime is None


def test_no_answer_to_test_one_is_a_user_error() -> None:
    nat = ModelNat(unreachable=frozenset({SERVER}))
    with pytest.raises(NatlabError, match=f"no answer from STUN server {SERVER}"):
        discover(nat, SERVER)


def test_server_without_other_address_gives_the_mapping_only() -> None:
    grid = Grid((SERVER.ip,), (SERVER.port,))
    report = discover(ModelNat(Mapping.ADDRESS_DEPENDENT, grid=grid), SERVER)
    assert report.mapped == Address(PUBLIC_IP, 40000)
    assert (report.other, report.mapping, report.filtering, report.name) == (None,) * 4
    assert "OTHER-ADDRESS" in report.notes[0]


def test_server_that_ignores_change_request_leaves_filtering_unknown() -> None:
    nat = ModelNat(filtering=Filtering.ENDPOINT_INDEPENDENT, honours_change=False)
    report = discover(nat, SERVER)
    assert report.filtering is None
    assert report.mapping is Mapping.ENDPOINT_INDEPENDENT
    assert report.name is None
    assert "wrong address" in report.notes[0]


@pytest.mark.parametrize("silent", [Address(OTHER.ip, SERVER.port), OTHER])
def test_unanswered_mapping_test_leaves_mapping_unknown(silent: Address) -> None:
    nat = ModelNat(Mapping.ADDRESS_AND_PORT_DEPENDENT, unreachable=frozenset({silent}))
    report = discover(nat, SERVER)
    assert report.mapping is None
    assert report.filtering is Filtering.ENDPOINT_INDEPENDENT
    assert f"no answer from {silent}" in report.notes[0]


def test_report_as_json_is_plain_data() -> None:
    report = discover(ModelNat(lifetime=10.0), SERVER, lifetime=LifetimeSearch(20.0, 5.0))
    assert report.as_json() == {
        "server": "203.0.113.10:3478",
        "local": "10.0.0.2:5000",
        "mapped": "198.51.100.1:40000",
        "other": "203.0.113.11:3479",
        "mapping": "endpoint-independent",
        "filtering": "endpoint-independent",
        "hairpin": True,
        "lifetime": {"survives": 5.0, "expires": 10.0},
        "name": "full-cone",
        "notes": [],
    }


# --- the pure decisions, one by one --------------------------------------------

M1, M2, M3 = (Address(PUBLIC_IP, port) for port in (40000, 40001, 40002))


@pytest.mark.parametrize(
    ("second", "third", "expected"),
    [
        (M1, None, Mapping.ENDPOINT_INDEPENDENT),
        (M2, M2, Mapping.ADDRESS_DEPENDENT),
        (M2, M3, Mapping.ADDRESS_AND_PORT_DEPENDENT),
    ],
)
def test_mapping_of(second: Address, third: Address | None, expected: Mapping) -> None:
    assert mapping_of(M1, second, third) is expected


def test_mapping_of_needs_test_three_when_tests_one_and_two_differ() -> None:
    with pytest.raises(ValueError, match="test III"):
        mapping_of(M1, M2, None)


def canned(source: Address) -> Answer:
    return Answer(mapped=M1, other=OTHER, source=source)


CHANGED_PORT = Address(SERVER.ip, OTHER.port)


@pytest.mark.parametrize(
    ("change_both", "change_port", "expected"),
    [
        (canned(OTHER), None, Filtering.ENDPOINT_INDEPENDENT),
        (None, canned(CHANGED_PORT), Filtering.ADDRESS_DEPENDENT),
        (None, None, Filtering.ADDRESS_AND_PORT_DEPENDENT),
        (canned(SERVER), None, None),  # the server did not change address
        (None, canned(SERVER), None),  # nor port
    ],
)
def test_filtering_of(
    change_both: Answer | None, change_port: Answer | None, expected: Filtering | None
) -> None:
    assert filtering_of(SERVER, OTHER, change_both, change_port) == expected


@pytest.mark.parametrize(
    ("mapped", "mapping", "filtering", "expected"),
    [
        (M1, Mapping.ENDPOINT_INDEPENDENT, Filtering.ENDPOINT_INDEPENDENT, "full-cone"),
        (M1, Mapping.ADDRESS_AND_PORT_DEPENDENT, Filtering.ADDRESS_AND_PORT_DEPENDENT, "symmetric"),
        (M1, Mapping.ADDRESS_DEPENDENT, Filtering.ADDRESS_DEPENDENT, None),
        (M1, None, Filtering.ENDPOINT_INDEPENDENT, None),
        (M1, Mapping.ENDPOINT_INDEPENDENT, None, None),
        (LOCAL, Mapping.ENDPOINT_INDEPENDENT, Filtering.ENDPOINT_INDEPENDENT, "open internet"),
        (LOCAL, Mapping.ENDPOINT_INDEPENDENT, Filtering.ADDRESS_AND_PORT_DEPENDENT, "firewall"),
    ],
)
def test_classic_name(
    mapped: Address, mapping: Mapping | None, filtering: Filtering | None, expected: str | None
) -> None:
    assert classic_name(LOCAL, mapped, mapping, filtering) == expected


def counting(limit: float) -> tuple[Callable[[float], bool], list[float]]:
    waits: list[float] = []

    def alive(wait: float) -> bool:
        waits.append(wait)
        return wait < limit

    return alive, waits


def test_search_lifetime_bisects_to_the_resolution() -> None:
    alive, waits = counting(33.0)
    lifetime = search_lifetime(alive, 64.0, 1.0)
    assert lifetime.survives < 33.0 <= (lifetime.expires or 0)
    assert (lifetime.expires or 0) - lifetime.survives <= 1.0
    assert waits[0] == 64.0
    assert len(waits) == 1 + 6  # 64 s halved down to 1 s


def test_search_lifetime_of_a_binding_that_outlives_the_longest_wait() -> None:
    alive, waits = counting(1000.0)
    assert search_lifetime(alive, 64.0, 1.0).as_json() == {"survives": 64.0, "expires": None}
    assert waits == [64.0]
