"""Scenario files: a topology, its routers' NAT overridden, and steps with expectations.

A scenario asks a lab one question ("does phone-b hear phone-c when branch2
is symmetric?") and says what the answer should be:

    name: symmetric-vs-full-cone
    about: "docs/design.md: symmetric works only against full-cone or restricted"
    topology: main-branch.yaml        # next to this file, or in topologies/
    nat: {branch1: full-cone, branch2: symmetric}
    steps:
      - wait-registered: [phone-b, phone-c]  # they register by themselves at `up`
      - call: {from: phone-b, to: phone-c, seconds: 2, mode: ice}
        expect: {media: two-way, pair: srflx}
      - advance: 130s                 # the lab clock: mappings age, no waiting
      - nat: {branch1: symmetric}     # `natlab nat set`: mappings are flushed...
      - register: [phone-b]           # ...so register again now (tcp, or tls)
      - probe: phone-b                # RFC 5780 discovery from a node
        expect: {nat: symmetric}

Steps: `wait-registered` (phones register by themselves), `register` (now;
{phones, transport: tcp|tls|udp, keepalive: seconds (0: none), certificate:
PHONE}), `call` ({from, to, seconds, mode: ice|turn|host|srflx|relay}),
`advance` (the lab clock), `nat` (as `natlab nat set`), `link` ({router,
iface, impair}: as `natlab link set`), `probe` ({node, server}), and for
users' own programs `start`, `exec`, `wait`, `stop` (program_steps.py).
Expectations: a call's media (two-way, one-way, "one-way (caller hears
nothing)", "one-way (callee hears nothing)", none), selected pair
(host, srflx, prflx, relay, or {local, remote}) and whether it reached the
callee at all (reached: false, as the callee's own reports say); a
register's {registered: false}; a probe's nat, mapping, filtering.

It loads like a topology: every mistake is one NatlabError naming the file,
the line, the field path and the fix (natlab.topology.load.explain words
pydantic's complaints). `nat:` values, at the top and in steps, go through
the topology's own validation, so they take exactly a topology file's forms.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path as FilePath
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from natlab import catalog
from natlab.core.behaviour import Behaviour, Filtering, Mapping
from natlab.core.durations import FORMS as DURATION_FORMS
from natlab.core.durations import parse_duration
from natlab.core.impair import LinkImpairment, link_impairment
from natlab.endpoints.sdp_offer import MODES
from natlab.endpoints.sip_dialogs import MAX_RING
from natlab.endpoints.sip_transport import MAX_KEEPALIVE, TRANSPORTS
from natlab.errors import NatlabError
from natlab.scenario.program_steps import STEP_SPECS as PROGRAM_STEP_SPECS
from natlab.scenario.program_steps import ProgramStep, program_step
from natlab.topology import Topology, load_topology
from natlab.topology.behaviour_input import NatForm, NatFormError, nat_behaviour
from natlab.topology.load import explain
from natlab.topology.model import Role
from natlab.topology.schema import NAME_PATTERN
from natlab.topology.yaml_source import Path, YamlDocument, dotted, read_source, read_yaml

TOPOLOGIES = catalog.FOLDERS["topology"]

CandidateType = Literal["host", "srflx", "prflx", "relay"]
Mode = Literal[MODES]  # the phones' call modes: ice, turn, host, srflx, relay
# What a call's media did; "none" is the phones' verdict "no media", and "one-way" either direction.
Media = Literal[
    "two-way", "one-way", "one-way (caller hears nothing)", "one-way (callee hears nothing)", "none"
]


# --- the file's shape (pydantic) --------------------------------------------------


class _Spec(BaseModel):
    model_config = ConfigDict(extra="forbid")


BARESIP_MODE = "baresip"  # a Call's mode when a baresip phone calls (scenario/baresip_calls.py)


class CallSpec(_Spec):
    caller: str = Field(alias="from")
    callee: str = Field(alias="to")
    seconds: float = Field(2.0, gt=0, le=600)
    mode: Mode = "ice"
    cancel_after: float | str | None = None  # a duration: hang up (CANCEL) if not answered
    ring: float | str | None = None  # a duration: how long natlab's callee rings first
    answer: Mode | None = None  # the mode natlab's callee answers in; None: the caller's


class PairSpec(_Spec):
    local: CandidateType | None = None
    remote: CandidateType | None = None


class CallExpectSpec(_Spec):
    media: Media | None = None
    pair: CandidateType | PairSpec | None = None
    reached: bool | None = None  # did the invite reach the callee
    cancelled: bool | None = None  # did the caller's CANCEL end the call before the answer


class WaitSpec(_Spec):
    phones: list[str] = Field(min_length=1)
    timeout: float = Field(10.0, gt=0, le=600)


class RegisterSpec(_Spec):
    phones: list[str] = Field(min_length=1)
    transport: Literal[TRANSPORTS] | None = None  # None: the phone's current one
    keepalive: float | None = Field(None, ge=0, le=MAX_KEEPALIVE)  # seconds, 0: none
    certificate: str | None = None  # over TLS, present this phone's certificate instead


class RegisterExpectSpec(_Spec):
    registered: bool = True


class ProbeSpec(_Spec):
    node: str
    server: str | None = None


class ProbeExpectSpec(_Spec):
    nat: str | None = None  # a classic name, "open internet" or "firewall", as discovery says
    mapping: Mapping | None = None
    filtering: Filtering | None = None


class WaitStepSpec(_Spec):
    phones: str | list[str] | WaitSpec = Field(alias="wait-registered")


class RegisterStepSpec(_Spec):
    phones: str | list[str] | RegisterSpec = Field(alias="register")  # BaseModel has .register
    expect: RegisterExpectSpec | None = None


class CallStepSpec(_Spec):
    call: CallSpec
    expect: CallExpectSpec | None = None


class AdvanceStepSpec(_Spec):
    advance: float | str


class NatStepSpec(_Spec):
    nat: Any  # router -> nat form: checked by _Loader.nat_map, whose fix fits a map of routers


class ProbeStepSpec(_Spec):
    probe: str | ProbeSpec
    expect: ProbeExpectSpec | None = None


class LinkSpec(_Spec):
    router: str
    iface: str
    impair: dict[str, Any] | Literal["none"]  # as a topology's `impair:`


class LinkStepSpec(_Spec):
    link: LinkSpec


STEP_SPECS: dict[str, type[_Spec]] = {
    "wait-registered": WaitStepSpec,
    "register": RegisterStepSpec,
    "call": CallStepSpec,
    "advance": AdvanceStepSpec,
    "nat": NatStepSpec,
    "probe": ProbeStepSpec,
    "link": LinkStepSpec,
    **PROGRAM_STEP_SPECS,  # start, exec, wait, stop: users' own programs
}


class ScenarioSpec(_Spec):
    name: str | None = Field(None, pattern=NAME_PATTERN, max_length=32)
    about: str = ""
    topology: str
    nat: Any = None  # as NatStepSpec.nat
    steps: list[dict[str, Any]] = Field(min_length=1)


# --- what a scenario is, once validated ------------------------------------------


@dataclass(frozen=True)
class PairExpectation:
    """The selected candidate pair: `kind` at either end (host: at both), or each end's type."""

    kind: str | None = None
    local: str | None = None
    remote: str | None = None

    def __str__(self) -> str:
        if self.kind:
            return self.kind
        return f"{self.local or 'any'} -> {self.remote or 'any'}"


@dataclass(frozen=True)
class WaitRegistered:
    """Wait until each phone is registered with the PBX; fail after `timeout` seconds."""

    phones: tuple[str, ...]
    timeout: float = 10.0

    def describe(self) -> str:
        return f"wait until {', '.join(self.phones)} registered"


@dataclass(frozen=True)
class Register:
    """Each phone registers anew now; `registered` is the outcome expected (a refusal: False)."""

    phones: tuple[str, ...]
    transport: str | None = None
    certificate: str | None = None
    registered: bool = True
    keepalive: float | None = None  # seconds between keepalives, 0: none; None: as it was

    def describe(self) -> str:
        how = f" over {self.transport}" if self.transport else ""
        if self.certificate:
            how += f" with {self.certificate}'s certificate"
        if self.keepalive == 0:
            how += " without keepalives"
        elif self.keepalive is not None:
            how += f" with a keepalive every {self.keepalive:g} s"
        return f"register {', '.join(self.phones)}{how}"


@dataclass(frozen=True)
class Call:
    """caller calls callee for `seconds`, then hangs up; the phones report what flowed."""

    caller: str
    callee: str
    seconds: float = 2.0
    mode: str = "ice"
    media: str | None = None
    pair: PairExpectation | None = None
    reached: bool | None = None  # expected: the callee got the invite (its reports say)
    cancel_after: float | None = None  # the caller hangs up if not answered by then
    ring: float | None = None  # natlab's callee rings this long before it answers
    cancelled: bool | None = None  # expected: the caller's report says cancelled
    answer: str | None = None  # natlab's callee answers in this mode; None: the caller's

    def describe(self) -> str:
        text = f"call {self.caller} -> {self.callee}, {self.seconds:g} s ({self.mode})"
        if self.answer:
            text += f", answered {self.answer}"
        if self.ring:
            text += f", ringing {self.ring:g} s"
        if self.cancel_after is not None:
            text += f", cancelled after {self.cancel_after:g} s unless answered"
        return text


@dataclass(frozen=True)
class AdvanceClock:
    seconds: float

    def describe(self) -> str:
        return f"advance the clock {self.seconds:g} s"


@dataclass(frozen=True)
class SetNat:
    """New behaviour for routers of the running lab; their dynamic mappings are flushed."""

    behaviours: dict[str, Behaviour]

    def describe(self) -> str:
        return "nat set " + ", ".join(
            f"{router} {behaviour.preset_name() or 'custom'}"
            for router, behaviour in self.behaviours.items()
        )


@dataclass(frozen=True)
class Probe:
    """RFC 5780 behaviour discovery from `node`; `expect` holds nat / mapping / filtering."""

    node: str
    server: str | None = None
    expect: dict[str, str] = field(default_factory=dict)

    def describe(self) -> str:
        return f"probe from {self.node}" + (f" via {self.server}" if self.server else "")


@dataclass(frozen=True)
class SetLink:
    """A router interface's impairment replaced on the running lab (`natlab link set`)."""

    router: str
    iface: str  # as the router's daemon names it (wan, lan, or the interface's name)
    impairment: LinkImpairment

    def describe(self) -> str:
        return f"link set {self.router} {self.iface} {self.impairment.describe()}"


Step = WaitRegistered | Register | Call | AdvanceClock | SetNat | Probe | SetLink | ProgramStep


@dataclass(frozen=True)
class Scenario:
    name: str
    source: str  # the scenario file, for messages and reports
    topology: Topology  # with the overrides applied
    steps: tuple[Step, ...]
    lines: tuple[int | None, ...] = ()  # each step's line in the file, for reports
    about: str = ""


# --- loading ---------------------------------------------------------------------


def load_scenario(path: str | FilePath) -> Scenario:
    """Load and validate a scenario file or built-in scenario (by name); errors name the field."""
    path = catalog.locate("scenario", path)
    text = read_source(path, "scenario", "same-lan")
    return parse_scenario(text, str(path))


def parse_scenario(text: str, filename: str = "<scenario>") -> Scenario:
    return _Loader(read_yaml(text, filename), filename).scenario()


class _Loader:
    def __init__(self, doc: YamlDocument, filename: str) -> None:
        self.doc = doc
        self.filename = filename

    def fail(self, path: Path, problem: str, fix: str | None = None) -> NatlabError:
        return NatlabError(
            problem, file=self.filename, line=self.doc.line_of(path), field=dotted(path), fix=fix
        )

    def validate(self, model: type[BaseModel], at: Path) -> Any:
        data = self.doc.data
        for part in at:
            data = data[part]
        try:
            return model.model_validate(data)
        except ValidationError as exc:
            raise explain(exc, self.doc, self.filename, model, at) from None

    def scenario(self) -> Scenario:
        if not isinstance(self.doc.data, dict):
            raise NatlabError(
                "a scenario is a YAML mapping with topology and steps",
                file=self.filename,
                line=self.doc.line_of(()),
                fix="start from a copy of a built-in one (natlab scenarios lists them)",
            )
        spec: ScenarioSpec = self.validate(ScenarioSpec, ())
        base = load_topology(self.topology_file(spec.topology))
        overrides = self.nat_map(spec.nat, ("nat",)) if spec.nat is not None else {}
        topology = self.with_nat(base, overrides) if overrides else base
        steps = tuple(self.step(index, step, topology) for index, step in enumerate(spec.steps))
        return Scenario(
            name=spec.name or FilePath(self.filename).stem,
            source=self.filename,
            topology=topology,
            steps=steps,
            lines=tuple(self.doc.line_of(("steps", i)) for i in range(len(steps))),
            about=spec.about,
        )

    def topology_file(self, name: str) -> FilePath:
        """Next to the scenario first, then the repository's topologies/; .yaml may be left out."""
        here = FilePath(self.filename).parent
        for folder in (here, TOPOLOGIES):
            for candidate in (folder / name, folder / f"{name}.yaml"):
                if candidate.is_file():
                    return candidate
        known = ", ".join(sorted(p.name for p in TOPOLOGIES.glob("*.yaml")))
        raise self.fail(
            ("topology",),
            f"no topology file '{name}' next to the scenario or in topologies/",
            f"give a path relative to the scenario file, or one of: {known}",
        )

    # -- nat: the topology's own validation, with errors pointed back at the scenario ---

    def nat_map(self, value: Any, at: Path) -> dict[str, tuple[NatForm, Path]]:
        """`{router: nat, ...}` with where each was written."""
        if not isinstance(value, dict) or not value:
            raise self.fail(
                at,
                f"expected routers and their NAT (got {value!r})",
                "map each router to a preset or settings, "
                "e.g. {branch1: symmetric, branch2: {preset: full-cone, udp_timeout: 30}}",
            )
        return {router: (nat, (*at, router)) for router, nat in value.items()}

    def with_nat(self, topology: Topology, nats: dict[str, tuple[NatForm, Path]]) -> Topology:
        """topology with these routers' nat replaced, checked as a topology file's `nat:` is."""
        behaviours = {}
        for router, (nat, path) in nats.items():
            if router not in topology.routers:
                raise self.fail(
                    path,
                    f"no router named '{router}' in topology '{topology.name}'",
                    f"routers: {', '.join(topology.routers)}",
                )
            try:
                behaviours[router] = nat_behaviour(nat)
            except NatFormError as error:
                raise self.fail((*path, *error.at), error.problem, error.fix) from None
        return topology.with_behaviours(behaviours)

    # -- steps ----------------------------------------------------------------------

    def step(self, index: int, raw: dict[str, Any], topology: Topology) -> Step:
        at: Path = ("steps", index)
        actions = [key for key in raw if key in STEP_SPECS]
        kinds = ", ".join(STEP_SPECS)
        if len(actions) > 1:
            raise self.fail(
                at,
                f"a step does one thing; this one has {' and '.join(actions)}",
                "split it into one step for each",
            )
        if not actions:
            unknown = next((key for key in raw if key != "expect"), None)
            raise self.fail(
                (*at, unknown) if unknown is not None else at,
                f"unknown step '{unknown}'" if unknown is not None else "a step with no action",
                f"a step is one of: {kinds}",
            )
        action = actions[0]
        spec = self.validate(STEP_SPECS[action], at)
        if action in PROGRAM_STEP_SPECS:
            return program_step(action, spec, (*at, action), topology, self.fail, self.duration)
        return getattr(self, f"_{action.replace('-', '_')}")(spec, (*at, action), topology)

    def _phones(
        self, value: str | list[str] | BaseModel, at: Path, topology: Topology
    ) -> tuple[str, ...]:
        """A phone, a list of phones, or a spec's `phones:`; each must be a phone."""
        if isinstance(value, str):
            self.phone(topology, value, at)
            return (value,)
        phones, listed = (value, at) if isinstance(value, list) else (value.phones, (*at, "phones"))
        for index, phone in enumerate(phones):
            self.phone(topology, phone, (*listed, index))
        return tuple(phones)

    def _wait_registered(self, spec: WaitStepSpec, at: Path, topology: Topology) -> WaitRegistered:
        phones = self._phones(spec.phones, at, topology)
        timeout = spec.phones.timeout if isinstance(spec.phones, WaitSpec) else 10.0
        return WaitRegistered(phones, timeout)

    def _register(self, spec: RegisterStepSpec, at: Path, topology: Topology) -> Register:
        phones = self._phones(spec.phones, at, topology)
        registered = spec.expect.registered if spec.expect else True
        if not isinstance(spec.phones, RegisterSpec):
            return Register(phones, registered=registered)
        certificate = spec.phones.certificate
        if certificate is not None:
            self.phone(topology, certificate, (*at, "certificate"))
            if spec.phones.transport != "tls":
                raise self.fail(
                    (*at, "certificate"),
                    "a certificate is presented over TLS only",
                    "add transport: tls",
                )
        return Register(
            phones, spec.phones.transport, certificate, registered, spec.phones.keepalive
        )

    def _call(self, spec: CallStepSpec, at: Path, topology: Topology) -> Call:
        call = spec.call
        self.phone(topology, call.caller, (*at, "from"))
        self.phone(topology, call.callee, (*at, "to"))
        if call.caller == call.callee:
            raise self.fail((*at, "to"), "a phone cannot call itself", "call another phone")
        expect = spec.expect or CallExpectSpec()
        pair = expect.pair
        if isinstance(pair, PairSpec):
            pair = PairExpectation(local=pair.local, remote=pair.remote)
        elif pair is not None:
            pair = PairExpectation(kind=pair)
        mode = self._baresip_mode(call, pair, at, topology) or call.mode
        timing = {"cancel_after": call.cancel_after, "ring": call.ring}
        given = {
            name: self._ringing(value, (*at, name))
            for name, value in timing.items()
            if value is not None
        }
        natlab_only = [*given, *(["answer"] if call.answer is not None else [])]
        if natlab_only and self._baresip_party(call, topology):
            name = natlab_only[0]
            raise self.fail(
                (*at, name),
                f"{name}: applies to calls between natlab's own phones, not baresip",
                f"leave {name}: out",
            )
        cancel_after, ring = given.get("cancel_after"), given.get("ring")
        return Call(
            call.caller,
            call.callee,
            call.seconds,
            mode,
            expect.media,
            pair,
            expect.reached,
            cancel_after,
            ring,
            expect.cancelled,
            call.answer,
        )

    @staticmethod
    def _baresip_party(call: CallSpec, topology: Topology) -> bool:
        return any(topology.hosts[p].agent == "baresip" for p in (call.caller, call.callee))

    def _ringing(self, value: float | str, at: Path) -> float:
        """cancel_after or ring: a duration of at most MAX_RING (the caller waits no longer)."""
        seconds = self.duration(value, at)
        if not 0 <= seconds <= MAX_RING:
            raise self.fail(at, f"{seconds:g} s is out of range", f"give 0 to {MAX_RING:g} s")
        return seconds

    def _baresip_mode(
        self, call: CallSpec, pair: PairExpectation | None, at: Path, topology: Topology
    ) -> str | None:
        """BARESIP_MODE for a call that a baresip phone places (scenario/baresip_calls.py);
        None when natlab's phone calls (its mode applies). baresip sets its media up
        itself and reports no candidate pair."""
        agents = [topology.hosts[p].agent == "baresip" for p in (call.caller, call.callee)]
        if not self._baresip_party(call, topology):
            return None
        if pair is not None:
            raise self.fail(
                (*at[:-1], "expect", "pair"),
                "a call with a baresip phone has no candidate pair to check",
                "leave it out",
            )
        if not agents[0]:
            return None
        if "mode" in call.model_fields_set:
            raise self.fail(
                (*at, "mode"),
                "mode: does not apply to a baresip caller (it sets up its media itself)",
                "leave mode: out",
            )
        return BARESIP_MODE

    def duration(self, value: float | str, at: Path) -> float:
        try:
            return parse_duration(value)
        except ValueError as error:
            raise self.fail(at, str(error), DURATION_FORMS) from None

    def _advance(self, spec: AdvanceStepSpec, at: Path, topology: Topology) -> AdvanceClock:
        try:
            return AdvanceClock(parse_duration(spec.advance))
        except ValueError as error:
            raise self.fail(at, str(error), DURATION_FORMS) from None

    def _nat(self, spec: NatStepSpec, at: Path, topology: Topology) -> SetNat:
        nats = self.nat_map(spec.nat, at)
        changed = self.with_nat(topology, nats)
        for router, (_, path) in nats.items():
            if (
                changed.routers[router].behaviour.translate
                != topology.routers[router].behaviour.translate
            ):
                raise self.fail(
                    path,
                    "a running router cannot switch between NAT and plain routing (none)",
                    f"set nat: {{{router}: ...}} at the top of the scenario instead",
                )
        return SetNat({router: changed.routers[router].behaviour for router in nats})

    def _link(self, spec: LinkStepSpec, at: Path, topology: Topology) -> SetLink:
        link = spec.link
        router = topology.routers.get(link.router)
        if router is None:
            raise self.fail(
                (*at, "router"),
                f"no router named '{link.router}' in topology '{topology.name}'",
                f"routers: {', '.join(topology.routers)}",
            )
        if router.interface_named(link.iface) is None:
            names = ", ".join(["wan", *(["lan"] if len(router.lans) == 1 else [])])
            raise self.fail(
                (*at, "iface"),
                f"router '{link.router}' has no interface '{link.iface}'",
                f"use {names} or an interface's name: "
                + ", ".join(i.name for i in router.interfaces),
            )
        try:
            impairment = link_impairment({} if link.impair == "none" else link.impair)
        except ValueError as error:
            raise self.fail(
                (*at, "impair"),
                str(error),
                "write impair: {loss: 2%, delay: 80ms, jitter: 10ms}, or none (docs/topology.md)",
            ) from None
        return SetLink(link.router, link.iface, impairment)

    def _probe(self, spec: ProbeStepSpec, at: Path, topology: Topology) -> Probe:
        probe = spec.probe
        node, server, where = (
            (probe, None, at)
            if isinstance(probe, str)
            else (probe.node, probe.server, (*at, "node"))
        )
        if node not in topology.hosts:
            raise self.fail(
                where,
                f"no host named '{node}' in topology '{topology.name}'",
                f"probe from a host: {', '.join(topology.hosts)}",
            )
        expect = spec.expect.model_dump(mode="json", exclude_none=True) if spec.expect else {}
        return Probe(node, server, expect)

    def phone(self, topology: Topology, name: str, path: Path) -> None:
        host = topology.hosts.get(name)
        if host is not None and host.role is Role.PHONE:
            return
        phones = ", ".join(h.name for h in topology.hosts.values() if h.role is Role.PHONE)
        problem = (
            f"'{name}' is not a phone (its role is {host.role})"
            if host
            else f"no host named '{name}' in topology '{topology.name}'"
        )
        raise self.fail(path, problem, f"phones: {phones or '(none)'}")
