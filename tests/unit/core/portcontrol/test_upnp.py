"""UPnP IGD: SSDP answers, HTTP framing, SOAP actions and their fault codes."""

from __future__ import annotations

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from natlab.core.engine import Action
from natlab.core.packets import Proto
from natlab.core.portcontrol import Refused, upnp
from natlab.core.portcontrol.upnp import HttpRequest, UpnpServer

from ..helpers import S1, WAN, A, B, ep, nat, tcp

BASE = "http://10.0.0.1:2869"


def search(target: str, man: str = '"ssdp:discover"') -> bytes:
    return (
        f"M-SEARCH * HTTP/1.1\r\nHOST: 239.255.255.250:1900\r\nMAN: {man}\r\n"
        f"MX: 2\r\nST: {target}\r\n\r\n"
    ).encode()


def soap(action: str, path: str = upnp.CONTROL_PATH, **arguments: object) -> HttpRequest:
    args = "".join(f"<{k}>{v}</{k}>" for k, v in arguments.items())
    body = (
        '<?xml version="1.0"?><s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/">'
        f'<s:Body><u:{action} xmlns:u="{upnp.WAN_IP_CONNECTION}">{args}</u:{action}>'
        "</s:Body></s:Envelope>"
    ).encode()
    return HttpRequest("POST", path, {}, body)


def add(client: str = A, **overrides: object) -> HttpRequest:
    arguments = {
        "NewRemoteHost": "",
        "NewExternalPort": 7001,
        "NewProtocol": "TCP",
        "NewInternalPort": 7000,
        "NewInternalClient": client,
        "NewEnabled": 1,
        "NewPortMappingDescription": "test",
        "NewLeaseDuration": 120,
        **overrides,
    }
    return soap("AddPortMapping", **arguments)


def call(server: UpnpServer, request: HttpRequest, client: str = A, now: float = 0.0):
    """(HTTP status, {element: text}) of the answer."""
    answer = server.handle(request, client, BASE, now)
    status = int(answer.split(b" ", 2)[1])
    body = answer.split(b"\r\n\r\n", 1)[1].decode()
    return status, dict(re.findall(r"<(\w+)>([^<]*)</\1>", body))


def test_search_answers_name_the_location_and_each_type_asked():
    assert upnp.search_targets(search("ssdp:all")) == list(upnp.SEARCH_TARGETS)
    assert upnp.search_targets(search(upnp.IGD)) == [upnp.IGD]
    assert upnp.search_targets(search("urn:other:device:Printer:1")) == []
    assert upnp.search_targets(search(upnp.IGD, man="ssdp:alive")) == []
    assert upnp.search_targets(b"NOTIFY * HTTP/1.1\r\n\r\n") == []
    answer = upnp.search_answer(upnp.IGD, f"{BASE}/rootDesc.xml").decode()
    assert answer.startswith("HTTP/1.1 200 OK\r\n")
    assert f"LOCATION: {BASE}/rootDesc.xml\r\n" in answer and f"ST: {upnp.IGD}\r\n" in answer


def test_the_description_names_the_control_urls():
    server = UpnpServer(nat(), 0.0)
    status, fields = call(server, HttpRequest("GET", upnp.DESCRIPTION_PATH, {}, b""))
    assert status == 200
    assert fields["controlURL"] in (upnp.CONTROL_PATH, upnp.CIF_CONTROL_PATH)
    assert fields["URLBase"] == BASE
    assert call(server, HttpRequest("GET", "/nothing", {}, b""))[0] == 404
    assert call(server, HttpRequest("PUT", upnp.CONTROL_PATH, {}, b""))[0] == 405


def test_add_reach_list_and_delete():
    server = UpnpServer(nat("symmetric"), 0.0)
    assert call(server, soap("GetExternalIPAddress")) == (200, {"NewExternalIPAddress": WAN})
    assert call(server, add())[0] == 200
    packet = tcp(f"{S1}:1", f"{WAN}:7001", "S")
    assert server.engine.inbound(packet, 1.0).action is Action.FORWARD_IN
    assert packet.dst == ep(f"{A}:7000")
    status, entry = call(server, soap("GetGenericPortMappingEntry", NewPortMappingIndex=0), now=20)
    assert status == 200
    assert (entry["NewExternalPort"], entry["NewInternalClient"]) == ("7001", A)
    assert entry["NewLeaseDuration"] == "100"
    specific = soap("GetSpecificPortMappingEntry", NewRemoteHost="", NewExternalPort=7001,
                    NewProtocol="TCP")  # fmt: skip
    assert call(server, specific)[1]["NewInternalPort"] == "7000"
    index = soap("GetGenericPortMappingEntry", NewPortMappingIndex=1)
    assert call(server, index)[1]["errorCode"] == "713"
    delete = soap("DeletePortMapping", NewRemoteHost="", NewExternalPort=7001, NewProtocol="TCP")
    assert call(server, delete, client=B)[1]["errorCode"] == "606"
    assert call(server, delete)[0] == 200
    assert call(server, delete)[1]["errorCode"] == "714"
    assert server.engine.mappings(2.0) == []


def test_a_lease_expires_and_lease_zero_is_the_longest():
    server = UpnpServer(nat(), 0.0)
    call(server, add(NewLeaseDuration=60))
    assert server.engine.expire(60.0) == 1
    call(server, add(NewLeaseDuration=0), now=100.0)
    [view] = server.engine.mappings(100.0)
    assert view.lifetime == upnp.MAX_LEASE


@pytest.mark.parametrize(
    ("request_", "code"),
    [
        (add(NewLeaseDuration=604801), 402),
        (add(NewLeaseDuration="soon"), 402),
        (add(NewProtocol="SCTP"), 402),
        (add(NewInternalPort=0), 402),
        (add(NewExternalPort=0), 716),
        (add(NewRemoteHost=S1), 726),
        (add(client=B), 606),
        (soap("Reboot"), 401),
        (soap("GetCommonLinkProperties"), 401),  # right action, wrong service URL
        (HttpRequest("POST", upnp.CONTROL_PATH, {}, b"<not xml"), 402),
        (HttpRequest("POST", upnp.CONTROL_PATH, {}, b'<!DOCTYPE x [<!ENTITY a "b">]><x/>'), 402),
        (HttpRequest("POST", upnp.CONTROL_PATH, {}, b"<Envelope><Body/></Envelope>"), 401),
    ],
)
def test_bad_requests_get_their_fault_code(request_, code):
    status, fields = call(UpnpServer(nat(), 0.0), request_)
    assert (status, fields["errorCode"]) == (500, str(code))
    assert fields["faultstring"] == "UPnPError"


def test_conflicts():
    server = UpnpServer(nat(), 0.0)
    call(server, add())
    assert call(server, add(client=B), client=B)[1]["errorCode"] == "718"
    assert call(server, add(NewExternalPort=7002))[1]["errorCode"] == "718"
    assert call(server, add(NewLeaseDuration=300))[0] == 200, "the same mapping again renews it"
    server.engine.map_port(Proto.UDP, ep(f"{A}:9"), 60.0, "pcp", 0.0, suggested=9)
    other = add(NewProtocol="UDP", NewInternalPort=9, NewExternalPort=9)
    assert call(server, other)[1]["errorCode"] == "718", "PCP's mapping stays PCP's"


def test_the_common_interface_service():
    server = UpnpServer(nat(), 0.0)
    status, fields = call(server, soap("GetCommonLinkProperties", upnp.CIF_CONTROL_PATH))
    assert (status, fields["NewPhysicalLinkStatus"]) == (200, "Up")
    assert call(server, soap("GetStatusInfo"), now=7.0)[1]["NewUptime"] == "7"


def test_http_framing():
    assert upnp.read_http(b"GET / HTTP/1.1\r\nHost: x\r\n") is None
    partial = b"POST /c HTTP/1.1\r\nContent-Length: 10\r\n\r\n12345"
    assert upnp.read_http(partial) is None
    whole = upnp.read_http(partial + b"67890")
    assert (whole.method, whole.path, whole.body) == ("POST", "/c", b"1234567890")
    for bad, code in [
        (b"GARBAGE\r\n\r\n", 400),
        (b"GET / HTTP/1.1\r\nContent-Length: x\r\n\r\n", 400),
        (b"GET / HTTP/1.1\r\nContent-Length: 99999\r\n\r\n", 413),
        (b"x" * upnp.MAX_REQUEST, 413),
        ("GET / HTTP/1.1\r\nX: é\r\n\r\n".encode(), 400),
    ]:
        with pytest.raises(Refused) as error:
            upnp.read_http(bad)
        assert error.value.code == code


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=600))
def test_any_bytes_are_a_request_none_or_a_typed_error(data):
    try:
        upnp.read_http(data)
    except Refused as error:
        assert error.code in (400, 413)
    upnp.search_targets(data)


@settings(max_examples=300, deadline=None)
@given(st.one_of(st.text(max_size=300).map(str.encode), st.binary(max_size=300)))
def test_any_body_gets_an_http_answer(body):
    server = UpnpServer(nat(), 0.0)
    answer = server.handle(HttpRequest("POST", upnp.CONTROL_PATH, {}, body), A, BASE, 0)
    assert answer.startswith((b"HTTP/1.1 200 ", b"HTTP/1.1 500 "))


@settings(max_examples=200, deadline=None)
@given(
    external=st.one_of(st.integers(0, 70000), st.sampled_from((1023, 1024, 3478, 65535))),
    internal=st.integers(0, 70000),
    lease=st.integers(0, 700000),
    proto=st.sampled_from(("TCP", "UDP", "tcp", "X")),
)
def test_add_succeeds_exactly_when_its_arguments_are_in_range(external, internal, lease, proto):
    server = UpnpServer(nat(), 0.0)
    status, _ = call(
        server,
        add(NewExternalPort=external, NewInternalPort=internal, NewLeaseDuration=lease,
            NewProtocol=proto),
    )  # fmt: skip
    valid = (
        1024 <= external <= 65535  # the router's port range: like miniupnpd's default rules
        and 1 <= internal <= 65535
        and lease <= upnp.MAX_LEASE
        and proto.upper() in ("TCP", "UDP")
        and not (proto.upper() == "UDP" and external in (3478, 3479))  # the STUN ports
    )
    assert (status == 200) == valid
    assert bool(server.engine.mappings(0.0)) == valid
