"""natlab nat show, events, flush, set: look into and steer a running router's NAT."""

from __future__ import annotations

import json

import click

from natlab.cli.command import NatlabGroup
from natlab.cli.options import complete_routers, json_option, lab_option


@click.group(cls=NatlabGroup, short_help="A running router's NAT: mappings, events, behaviour.")
def nat() -> None:
    """Look into and steer a running router's NAT: mappings, events, behaviour."""


_lab_option = lab_option("The lab ROUTER is in")
_router_argument = click.argument("router", shell_complete=complete_routers)


@nat.command("show", short_help="ROUTER's mappings and counters.", needs_root=True)
@_router_argument
@_lab_option
@click.option("--limit", type=click.IntRange(min=0), help="Show at most N mappings.")
@json_option("Print JSON lines: the summary (with the schema), then one line per mapping")
def nat_show(router: str, lab: str | None, limit: int | None, as_json: bool) -> None:
    """ROUTER's mapping table (inside, outside, who may send in, age, expiry) and counters."""
    from natlab.json_documents import json_document
    from natlab.lab import Lab
    from natlab.render import print_nat_show

    head, mappings = Lab.attach(lab).router(router).show(limit)
    if as_json:  # streamed: a table of any size, one line at a time
        click.echo(json.dumps(json_document("nat-show", head.to_json())))
        for mapping in mappings:
            click.echo(json.dumps(mapping.to_json()))
        return
    print_nat_show(head.to_json(), (mapping.to_json() for mapping in mappings))


@nat.command("events", short_help="What ROUTER decided and why.", needs_root=True)
@_router_argument
@_lab_option
@click.option("--follow", "-f", is_flag=True, help="Keep printing new events until Ctrl-C.")
@json_option("Print each event as one line of JSON to stdout")
def nat_events(router: str, lab: str | None, follow: bool, as_json: bool) -> None:
    """What ROUTER decided and why: mappings made and expired, packets dropped with the reason."""
    from natlab.json_documents import json_document
    from natlab.lab import Lab
    from natlab.records import RouterEvent
    from natlab.render import event_line, print_line
    from natlab.router.eventlog import follow as following
    from natlab.router.eventlog import read_lines

    path = Lab.attach(lab).router(router).events_file
    for line in following(path) if follow else read_lines(path):  # rotated files too
        event = RouterEvent.from_json(json.loads(line)).to_json()
        if as_json:
            click.echo(json.dumps(json_document("nat-event", event)))
        else:
            print_line(event_line(event))


@nat.command("flush", short_help="Forget ROUTER's dynamic mappings.", needs_root=True)
@_router_argument
@_lab_option
def nat_flush(router: str, lab: str | None) -> None:
    """Forget every dynamic mapping of ROUTER (port forwards stay)."""
    from natlab.lab import Lab

    flushed = Lab.attach(lab).router(router).flush()
    click.echo(f"router {router}: flushed {flushed} mapping(s)")


@nat.command("set", short_help="Change ROUTER's behaviour live.", needs_root=True)
@_router_argument
@click.argument("settings", nargs=-1, required=True)
@_lab_option
def nat_set(router: str, settings: tuple[str, ...], lab: str | None) -> None:
    """Change ROUTER's behaviour live: a PRESET and/or AXIS=VALUE settings.

    \b
    natlab nat set branch1 full-cone
    natlab nat set branch1 filtering=address-dependent hairpin=off udp_timeout=30
    natlab nat set branch1 hairpin=unfiltered tcp_unsolicited=rst
    Dynamic mappings are flushed: new behaviour, new mappings.
    """
    from natlab.lab import Lab
    from natlab.render import behaviour_line
    from natlab.topology.behaviour_input import changed_behaviour

    client = Lab.attach(lab).router(router)
    behaviour = changed_behaviour(client.behaviour().as_json(), settings)
    click.echo(behaviour_line(router, client.set(behaviour).as_json()))
