"""UPnP IGD 1 server side: SSDP answers, the device description, SOAP actions.

Discovery: an M-SEARCH (SSDP, HTTP over UDP to 239.255.255.250:1900) for
ssdp:all, upnp:rootdevice, the gateway's uuid or one of its device and
service types gets one answer per matching type, unicast, with a LOCATION
on the router's LAN address. There the router serves, over HTTP, the
device description (an InternetGatewayDevice with one WANIPConnection
service) and that service's SOAP control URL:

- GetExternalIPAddress, GetStatusInfo, GetConnectionTypeInfo,
  GetNATRSIPStatus: what a client asks before it maps;
- AddPortMapping / DeletePortMapping, GetSpecificPortMappingEntry,
  GetGenericPortMappingEntry (the listing by index).

Errors are SOAP faults with the IGD codes: 401 invalid action, 402 invalid
args (a missing or unreadable argument, a lease over 604800 s), 606 not
authorized (a mapping for another host, or one another protocol made),
713 no entry at that index, 714 no such entry, 716 external port 0, 718
conflict (the external port is someone else's, or the internal endpoint
is already mapped elsewhere), 726 a remote host other than the wildcard,
728 no port left. Lease 0 means the longest lease, 604800 s (IGD 2).

Bounds: a request is read up to MAX_REQUEST bytes; the XML body has no
DTD (one is refused before parsing, so no entity can expand) and is parsed
by the standard library's expat-based ElementTree.
"""

from __future__ import annotations

import xml.etree.ElementTree as ElementTree
from collections.abc import Callable
from dataclasses import dataclass
from enum import IntEnum
from html import escape

from natlab.core.engine import NatEngine
from natlab.core.mapping import MappingView, MapRefusal
from natlab.core.packets import Endpoint, Proto
from natlab.core.portcontrol import Refused, quiet

SSDP_ADDRESS = "239.255.255.250"
SSDP_PORT = 1900
HTTP_PORT = 2869  # the router's description and control server, on its LAN address
MAX_REQUEST = 16384
MAX_LEASE = 604800
ORIGIN = "upnp"
DESCRIPTION_PATH = "/rootDesc.xml"
CONTROL_PATH = "/ctl/IPConn"
SCPD_PATH = "/WANIPCn.xml"
CIF_CONTROL_PATH = "/ctl/CmnIfCfg"  # WANCommonInterfaceConfig: clients look for it to
CIF_SCPD_PATH = "/WANCfg.xml"  # tell an IGD from other devices
IGD = "urn:schemas-upnp-org:device:InternetGatewayDevice:1"
WAN_DEVICE = "urn:schemas-upnp-org:device:WANDevice:1"
WAN_CONNECTION_DEVICE = "urn:schemas-upnp-org:device:WANConnectionDevice:1"
WAN_IP_CONNECTION = "urn:schemas-upnp-org:service:WANIPConnection:1"
WAN_COMMON = "urn:schemas-upnp-org:service:WANCommonInterfaceConfig:1"
SEARCH_TARGETS = ("upnp:rootdevice", IGD, WAN_DEVICE, WAN_CONNECTION_DEVICE, WAN_IP_CONNECTION)
PROTOCOLS = {"UDP": Proto.UDP, "TCP": Proto.TCP}
SERVER = "Linux UPnP/1.1 natlab/1"


class Fault(IntEnum):
    INVALID_ACTION = 401
    INVALID_ARGS = 402
    ACTION_FAILED = 501
    NOT_AUTHORIZED = 606
    ARRAY_INDEX_INVALID = 713
    NO_SUCH_ENTRY = 714
    WILDCARD_EXTERNAL_PORT = 716
    CONFLICT = 718
    REMOTE_HOST_WILDCARD_ONLY = 726
    NO_PORT_MAPS_AVAILABLE = 728


FAULT_NAMES = {
    Fault.INVALID_ACTION: "Invalid Action",
    Fault.INVALID_ARGS: "Invalid Args",
    Fault.ACTION_FAILED: "Action Failed",
    Fault.NOT_AUTHORIZED: "Action not authorized",
    Fault.ARRAY_INDEX_INVALID: "SpecifiedArrayIndexInvalid",
    Fault.NO_SUCH_ENTRY: "NoSuchEntryInArray",
    Fault.WILDCARD_EXTERNAL_PORT: "WildCardNotPermittedInExtPort",
    Fault.CONFLICT: "ConflictInMappingEntry",
    Fault.REMOTE_HOST_WILDCARD_ONLY: "RemoteHostOnlySupportsWildcard",
    Fault.NO_PORT_MAPS_AVAILABLE: "NoPortMapsAvailable",
}
REFUSALS = {
    MapRefusal.NOT_TRANSLATING: Fault.ACTION_FAILED,
    MapRefusal.QUOTA: Fault.NO_PORT_MAPS_AVAILABLE,
    MapRefusal.NO_PORTS: Fault.NO_PORT_MAPS_AVAILABLE,
    MapRefusal.PORT_TAKEN: Fault.CONFLICT,
    MapRefusal.CARRIER_GRADE: Fault.ACTION_FAILED,
}


# -- SSDP ---------------------------------------------------------------------------------


def search_targets(data: bytes) -> list[str]:
    """The search targets an M-SEARCH asks for that this gateway is; [] for anything else."""
    try:
        text = data[:MAX_REQUEST].decode("ascii")
    except UnicodeDecodeError:
        return []
    lines = text.split("\r\n")
    if not lines[0].upper().startswith("M-SEARCH * HTTP/1."):
        return []
    headers = _headers(lines[1:])
    if headers.get("man", "").strip('"') != "ssdp:discover":
        return []
    target = headers.get("st", "")
    if target == "ssdp:all":
        return list(SEARCH_TARGETS)
    return [target] if target in SEARCH_TARGETS or target == f"uuid:{_uuid()}" else []


def search_answer(target: str, location: str) -> bytes:
    """The unicast answer to an M-SEARCH for `target` (UPnP Device Architecture 1.1, 1.3.3)."""
    usn = f"uuid:{_uuid()}" if target.startswith("uuid:") else f"uuid:{_uuid()}::{target}"
    return (
        "HTTP/1.1 200 OK\r\n"
        "CACHE-CONTROL: max-age=1800\r\n"
        "EXT:\r\n"
        f"LOCATION: {location}\r\n"
        f"SERVER: {SERVER}\r\n"
        f"ST: {target}\r\n"
        f"USN: {usn}\r\n"
        "\r\n"
    ).encode()


def _uuid() -> str:
    return "6e61746c-6162-4000-8000-000000000001"  # "natl" "ab": one per lab is enough


def _headers(lines: list[str]) -> dict[str, str]:
    headers: dict[str, str] = {}
    for line in lines[:64]:
        name, colon, value = line.partition(":")
        if colon:
            headers[name.strip().lower()] = value.strip()
    return headers


# -- HTTP ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class HttpRequest:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes


def read_http(data: bytes) -> HttpRequest | None:
    """The request in `data`, None while it is incomplete; Refused(400/413) if it is bad."""
    end = data.find(b"\r\n\r\n")
    if end < 0:
        if len(data) >= MAX_REQUEST:
            raise Refused(413, "request headers too large")
        return None
    try:
        head = data[:end].decode("ascii").split("\r\n")
    except UnicodeDecodeError:
        raise Refused(400, "headers are not ASCII") from None
    parts = head[0].split(" ")
    if len(parts) != 3 or not parts[2].startswith("HTTP/1."):
        raise Refused(400, f"not an HTTP request line: {head[0][:80]!r}")
    headers = _headers(head[1:])
    try:
        length = int(headers.get("content-length", "0"))
    except ValueError:
        raise Refused(400, "Content-Length is not a number") from None
    if length < 0 or end + 4 + length > MAX_REQUEST:
        raise Refused(413, f"a body of {length} bytes")
    body = data[end + 4 : end + 4 + length]
    if len(body) < length:
        return None
    return HttpRequest(parts[0], parts[1], headers, body)


def http_answer(status: int, body: bytes, content_type: str = 'text/xml; charset="utf-8"') -> bytes:
    reason = {200: "OK", 400: "Bad Request", 404: "Not Found", 405: "Method Not Allowed",
              413: "Payload Too Large", 500: "Internal Server Error"}[status]  # fmt: skip
    return (
        f"HTTP/1.1 {status} {reason}\r\n"
        f"Content-Type: {content_type}\r\n"
        f"Content-Length: {len(body)}\r\n"
        f"Server: {SERVER}\r\n"
        "Connection: close\r\n\r\n"
    ).encode() + body


# -- the description ------------------------------------------------------------------------


def description(base: str) -> bytes:
    """The root device description: an IGD, its WAN device, one WANIPConnection service."""
    return f"""<?xml version="1.0"?>
<root xmlns="urn:schemas-upnp-org:device-1-0">
<specVersion><major>1</major><minor>0</minor></specVersion>
<URLBase>{base}</URLBase>
<device>
<deviceType>{IGD}</deviceType>
<friendlyName>natlab router</friendlyName>
<manufacturer>natlab</manufacturer>
<modelName>natlab router</modelName>
<UDN>uuid:{_uuid()}</UDN>
<deviceList><device>
<deviceType>{WAN_DEVICE}</deviceType>
<friendlyName>WAN device</friendlyName>
<manufacturer>natlab</manufacturer>
<modelName>natlab router</modelName>
<UDN>uuid:{_uuid()[:-1]}2</UDN>
<serviceList><service>
<serviceType>{WAN_COMMON}</serviceType>
<serviceId>urn:upnp-org:serviceId:WANCommonIFC1</serviceId>
<controlURL>{CIF_CONTROL_PATH}</controlURL>
<eventSubURL>/evt/CmnIfCfg</eventSubURL>
<SCPDURL>{CIF_SCPD_PATH}</SCPDURL>
</service></serviceList>
<deviceList><device>
<deviceType>{WAN_CONNECTION_DEVICE}</deviceType>
<friendlyName>WAN connection device</friendlyName>
<manufacturer>natlab</manufacturer>
<modelName>natlab router</modelName>
<UDN>uuid:{_uuid()[:-1]}3</UDN>
<serviceList><service>
<serviceType>{WAN_IP_CONNECTION}</serviceType>
<serviceId>urn:upnp-org:serviceId:WANIPConn1</serviceId>
<controlURL>{CONTROL_PATH}</controlURL>
<eventSubURL>/evt/IPConn</eventSubURL>
<SCPDURL>{SCPD_PATH}</SCPDURL>
</service></serviceList>
</device></deviceList>
</device></deviceList>
</device>
</root>
""".encode()


CIF_ACTIONS = (
    "GetCommonLinkProperties",
    "GetTotalBytesSent",
    "GetTotalBytesReceived",
    "GetTotalPacketsSent",
    "GetTotalPacketsReceived",
)
SCPD_ACTIONS = (
    "GetExternalIPAddress",
    "GetStatusInfo",
    "GetConnectionTypeInfo",
    "GetNATRSIPStatus",
    "AddPortMapping",
    "DeletePortMapping",
    "GetSpecificPortMappingEntry",
    "GetGenericPortMappingEntry",
)


def scpd(names: tuple[str, ...]) -> bytes:
    """A service description: the actions its control URL serves (arguments left out)."""
    actions = "".join(f"<action><name>{name}</name></action>" for name in names)
    return (
        '<?xml version="1.0"?><scpd xmlns="urn:schemas-upnp-org:service-1-0">'
        "<specVersion><major>1</major><minor>0</minor></specVersion>"
        f"<actionList>{actions}</actionList><serviceStateTable/></scpd>"
    ).encode()


# -- SOAP -----------------------------------------------------------------------------------


def read_action(body: bytes) -> tuple[str, dict[str, str]]:
    """The action's name and arguments from a SOAP envelope; Refused(402/401) if unreadable."""
    if b"<!" in body:  # a DTD or entity declaration: nothing a control request needs
        raise Refused(Fault.INVALID_ARGS, "declarations (<!...>) are not accepted")
    try:
        root = ElementTree.fromstring(body)
    except ElementTree.ParseError as error:
        raise Refused(Fault.INVALID_ARGS, f"not XML: {error}") from None
    envelope_body = next((e for e in root if _local(e.tag) == "Body"), None)
    if envelope_body is None or len(envelope_body) != 1:
        raise Refused(Fault.INVALID_ACTION, "no action in the SOAP body")
    action = envelope_body[0]
    return _local(action.tag), {_local(arg.tag): (arg.text or "").strip() for arg in action}


def _local(tag: str) -> str:
    return tag.rpartition("}")[2]


def soap_answer(action: str, values: dict[str, str | int]) -> bytes:
    service = WAN_COMMON if action in CIF_ACTIONS else WAN_IP_CONNECTION
    arguments = "".join(f"<{k}>{escape(str(v))}</{k}>" for k, v in values.items())
    return _envelope(f'<u:{action}Response xmlns:u="{service}">{arguments}</u:{action}Response>')


def soap_fault(code: int, why: str) -> bytes:
    name = FAULT_NAMES.get(code, "Action Failed")  # type: ignore[call-overload]
    return _envelope(
        "<s:Fault><faultcode>s:Client</faultcode><faultstring>UPnPError</faultstring>"
        '<detail><UPnPError xmlns="urn:schemas-upnp-org:control-1-0">'
        f"<errorCode>{code}</errorCode><errorDescription>{escape(name)}: {escape(why)}"
        "</errorDescription></UPnPError></detail></s:Fault>"
    )


def _envelope(inner: str) -> bytes:
    return (
        '<?xml version="1.0"?>\r\n<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/"'
        ' s:encodingStyle="http://schemas.xmlsoap.org/soap/encoding/">'
        f"<s:Body>{inner}</s:Body></s:Envelope>\r\n"
    ).encode()


@dataclass
class UpnpServer:
    """One router's IGD: answers HTTP requests from LAN hosts; `started` is its clock at start."""

    engine: NatEngine
    started: float
    tell: Callable[[str], None] = quiet  # each refusal, for the router's events

    def handle(self, request: HttpRequest, client: str, base: str, now: float) -> bytes:
        """The HTTP answer to one request from `client`; `base` is http://LAN-ADDRESS:PORT."""
        if request.method == "GET":
            if request.path == DESCRIPTION_PATH:
                return http_answer(200, description(base))
            if request.path == SCPD_PATH:
                return http_answer(200, scpd(SCPD_ACTIONS))
            if request.path == CIF_SCPD_PATH:
                return http_answer(200, scpd(CIF_ACTIONS))
            return http_answer(404, b"")
        if request.method != "POST":
            return http_answer(405, b"")
        if request.path not in (CONTROL_PATH, CIF_CONTROL_PATH):
            return http_answer(404, b"")
        try:
            name, arguments = read_action(request.body)
            if (name in CIF_ACTIONS) != (request.path == CIF_CONTROL_PATH):
                raise Refused(Fault.INVALID_ACTION, f"{name} is not served at {request.path}")
            values = self.action(name, arguments, client, now)
        except Refused as error:
            self.tell(f"upnp request from {client} refused: {error.code}: {error}")
            return http_answer(500, soap_fault(error.code, str(error)))
        return http_answer(200, soap_answer(name, values))

    def action(
        self, name: str, arguments: dict[str, str], client: str, now: float
    ) -> dict[str, str | int]:
        engine = self.engine
        if name == "GetExternalIPAddress":
            return {"NewExternalIPAddress": engine.external_address_of(client)}
        if name == "GetStatusInfo":
            return {
                "NewConnectionStatus": "Connected",
                "NewLastConnectionError": "ERROR_NONE",
                "NewUptime": int(max(0.0, now - self.started)),
            }
        if name == "GetConnectionTypeInfo":
            return {"NewConnectionType": "IP_Routed", "NewPossibleConnectionTypes": "IP_Routed"}
        if name == "GetCommonLinkProperties":
            return {
                "NewWANAccessType": "Ethernet",
                "NewLayer1UpstreamMaxBitRate": 1_000_000_000,
                "NewLayer1DownstreamMaxBitRate": 1_000_000_000,
                "NewPhysicalLinkStatus": "Up",
            }
        if name in CIF_ACTIONS:  # the byte and packet totals: not counted per host here
            return {name.replace("GetTotal", "NewTotal"): 0}
        if name == "GetNATRSIPStatus":
            return {"NewRSIPAvailable": 0, "NewNATEnabled": 1}
        if name == "AddPortMapping":
            return self._add(arguments, client, now)
        if name == "DeletePortMapping":
            view = self._entry(arguments, client, now)
            if view.internal.address != client:
                raise Refused(Fault.NOT_AUTHORIZED, f"that mapping is {view.internal}'s")
            engine.unmap_port(view.proto, view.internal, ORIGIN, now)
            return {}
        if name == "GetSpecificPortMappingEntry":
            return dict(_entry_values(self._entry(arguments, client, now), now)[3:])
        if name == "GetGenericPortMappingEntry":
            index = _number(arguments, "NewPortMappingIndex", 0, 65535)
            ours = [v for v in engine.mappings(now) if v.origin == ORIGIN]
            if index >= len(ours):
                raise Refused(Fault.ARRAY_INDEX_INVALID, f"no entry {index}")
            return dict(_entry_values(ours[index], now))
        raise Refused(Fault.INVALID_ACTION, f"no action {name!r}")

    def _add(self, arguments: dict[str, str], client: str, now: float) -> dict[str, str | int]:
        if arguments.get("NewRemoteHost", ""):
            raise Refused(Fault.REMOTE_HOST_WILDCARD_ONLY, "only the wildcard remote host")
        proto = _proto(arguments)
        external_port = _number(arguments, "NewExternalPort", 0, 65535)
        if not external_port:
            raise Refused(Fault.WILDCARD_EXTERNAL_PORT, "NewExternalPort 0")
        internal_port = _number(arguments, "NewInternalPort", 1, 65535)
        lease = _number(arguments, "NewLeaseDuration", 0, MAX_LEASE)
        internal_client = arguments.get("NewInternalClient", "")
        if internal_client != client:
            raise Refused(
                Fault.NOT_AUTHORIZED, f"{client} may map only its own ports, not {internal_client}"
            )
        internal = Endpoint(client, internal_port)
        address = self.engine.external_address_of(client)
        taken = self.engine.mapping_at(proto, Endpoint(address, external_port), now)
        mine = self.engine.explicit_mapping(proto, internal, now)
        if taken is not None and taken != mine:
            raise Refused(Fault.CONFLICT, f"external port {external_port} is in use")
        if mine is not None and (mine.origin != ORIGIN or mine.external.port != external_port):
            raise Refused(Fault.CONFLICT, f"{internal} is mapped to {mine.external}")
        view = self.engine.map_port(
            proto, internal, float(lease or MAX_LEASE), ORIGIN, now,
            suggested=external_port, exact=True,
        )  # fmt: skip
        if isinstance(view, MapRefusal):
            raise Refused(REFUSALS[view], f"no mapping: {view}")
        return {}

    def _entry(self, arguments: dict[str, str], client: str, now: float) -> MappingView:
        """The UPnP mapping on NewExternalPort/NewProtocol; 714 if there is none."""
        if arguments.get("NewRemoteHost", ""):
            raise Refused(Fault.NO_SUCH_ENTRY, "only wildcard remote hosts are mapped")
        proto = _proto(arguments)
        port = _number(arguments, "NewExternalPort", 0, 65535)
        address = self.engine.external_address_of(client)
        view = self.engine.mapping_at(proto, Endpoint(address, port), now)
        if view is None or view.origin != ORIGIN:
            raise Refused(Fault.NO_SUCH_ENTRY, f"no UPnP mapping on {proto} port {port}")
        return view


def _entry_values(view: MappingView, now: float) -> list[tuple[str, str | int]]:
    return [
        ("NewRemoteHost", ""),
        ("NewExternalPort", view.external.port),
        ("NewProtocol", str(view.proto).upper()),
        ("NewInternalPort", view.internal.port),
        ("NewInternalClient", view.internal.address),
        ("NewEnabled", 1),
        ("NewPortMappingDescription", "natlab"),
        ("NewLeaseDuration", max(0, int(view.expires_at - now))),
    ]


def _proto(arguments: dict[str, str]) -> Proto:
    proto = PROTOCOLS.get(arguments.get("NewProtocol", "").upper())
    if proto is None:
        raise Refused(Fault.INVALID_ARGS, f"NewProtocol {arguments.get('NewProtocol')!r}")
    return proto


def _number(arguments: dict[str, str], name: str, low: int, high: int) -> int:
    text = arguments.get(name, "")
    if not (text.isascii() and text.isdigit()) or not low <= int(text) <= high:
        raise Refused(Fault.INVALID_ARGS, f"{name} must be {low}-{high}, not {text!r}")
    return int(text)
