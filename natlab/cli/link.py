"""natlab link set, show: impair a running router's links (loss, delay, jitter, rate...)."""

from __future__ import annotations

import click

from natlab.cli.command import NatlabGroup
from natlab.cli.options import complete_routers, emit_json, json_option, lab_option


@click.group(cls=NatlabGroup, short_help="Impair a running router's links: loss, delay, rate.")
def link() -> None:
    """Impair a running router's links: loss (in bursts too), delay and jitter,
    duplication, reordering, a rate limit with a queue. natlab's own dataplane
    applies them, per interface and direction, seeded so that runs repeat."""


_lab_option = lab_option("The lab ROUTER is in")
_router_argument = click.argument("router", shell_complete=complete_routers)


def _print(router: str, answer: dict, as_json: bool) -> None:
    from natlab.render import link_line, print_line

    if as_json:
        emit_json("link", answer)
        return
    for state in answer["links"]:
        print_line(link_line(router, state))
    late = answer.get("late")
    if late:
        print_line(
            f"held frames went out {late['median_ms']:g} ms late at the median, "
            f"{late['p99_ms']:g} ms at p99 (the last {late['frames']:g})"
        )


@link.command("set", short_help="Impair one interface of ROUTER, live.", needs_root=True)
@_router_argument
@click.argument("iface")
@click.argument("settings", nargs=-1, required=True)
@_lab_option
@json_option("Print every interface's impairment as JSON")
def link_set(
    router: str, iface: str, settings: tuple[str, ...], lab: str | None, as_json: bool
) -> None:
    """Impair IFACE of ROUTER (wan, lan, or the interface's name): these SETTINGS
    replace whatever it had; `none` clears it.

    \b
    natlab link set branch1 wan loss=2% delay=80ms jitter=10ms
    natlab link set branch1 wan loss=5% burst=4 seed=7      (Gilbert-Elliott bursts)
    natlab link set branch1 lan rate=1mbit queue=50 out.duplicate=1%
    natlab link set branch1 wan none
    \b
    Settings apply to both directions; in.KEY or out.KEY to one (in: frames
    arriving on IFACE, out: frames the router sends on it). loss, duplicate,
    reorder: percent; delay, jitter: 80ms, 0.5s (a bare number is seconds);
    distribution: uniform or normal; rate: kbit/s (or 500kbit, 2mbit);
    queue: frames waiting for the rate (default 1000); burst: mean loss burst
    in packets; seed: the random seed (default 0).
    """
    from natlab.core.impair import FORMS, parse_settings
    from natlab.errors import NatlabError
    from natlab.lab import Lab

    try:
        impairment = parse_settings(settings)
    except ValueError as error:
        raise NatlabError(str(error), field="SETTINGS", fix=f"write {FORMS}") from None
    attached = Lab.attach(lab)
    client = attached.router(router)
    node = attached.topology.routers[router]
    if node.interface_named(iface) is None:
        raise NatlabError(
            f"router '{router}' has no interface '{iface}'",
            field="IFACE",
            fix="use wan, lan (a router with one LAN) or one of: "
            + ", ".join(i.name for i in node.interfaces),
        )
    answer = client.link_set(iface, impairment)
    _print(router, answer.to_json(), as_json)


@link.command("show", short_help="ROUTER's link impairments.", needs_root=True)
@_router_argument
@_lab_option
@json_option("Print every interface's impairment and counters as JSON")
def link_show(router: str, lab: str | None, as_json: bool) -> None:
    """Each interface of ROUTER: its impairment and what it did (lost, delayed...)."""
    from natlab.lab import Lab

    _print(router, Lab.attach(lab).router(router).links().to_json(), as_json)
