"""The `natlab` command: parse arguments, call the layers below, render.

One module per command group: labs (up, down, status, exec, reach), probe
(probe, verify), nat, link, clock, scenarios (run, matrix, explain, demo), catalog
(topologies, scenarios, schema) and validate; what they share is in
command.py (the root check) and options.py; what they print, in natlab.render.
Each imports what it needs inside its commands, so that `natlab --help` and
shell completion start fast.

Exit codes: 0 as expected, 1 an expectation failed, 2 the user's input or
environment is wrong (NatlabError, usage), 3 natlab itself failed (traceback
saved to a file), 130 interrupted.
"""

from __future__ import annotations

import os
import signal
import sys
import tempfile
import traceback
from pathlib import Path
from typing import Any

import click

from natlab.cli import catalog, clock, labs, link, nat, probe, scenarios, validate
from natlab.cli.command import NatlabGroup
from natlab.errors import NatlabError


def _save_traceback() -> Path:
    """Write the traceback being handled, with the command line, to a file of its own."""
    descriptor, name = tempfile.mkstemp(prefix="natlab-internal-error-", suffix=".txt")
    with os.fdopen(descriptor, "w") as report:
        report.write(f"natlab {' '.join(sys.argv[1:])}\n\n{traceback.format_exc()}")
    return Path(name)


class _Natlab(NatlabGroup):
    """The command group that turns every failure into its exit code and one clear line."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except (click.ClickException, click.exceptions.Exit):
            raise  # usage errors (2), --help, and click's own exits
        except BrokenPipeError:
            raise  # the reader went away (natlab ... | head): click exits quietly
        except NatlabError as error:
            from natlab.render import say

            say(f"natlab: error: {error}", red=True, err=True)
            ctx.exit(error.exit_code)
        except (KeyboardInterrupt, click.exceptions.Abort):  # Abort: Ctrl-C at a prompt
            click.echo("natlab: interrupted", err=True)
            ctx.exit(130)
        except Exception as error:
            from natlab.render import say

            saved = _save_traceback()
            say(f"natlab: internal error: {error!r}; details in {saved}", red=True, err=True)
            ctx.exit(3)


EXIT_CODES = """\b
Exit codes:
  0    everything as expected
  1    an expectation failed: a check, a pair, a router unlike its topology
  2    the input or the environment is wrong; the message says what to fix
  3    natlab itself failed: a bug (the message names the file with the details),
       or a process of the lab died: a router's NAT daemon, a phone, the PBX (a fault)
  130  interrupted (Ctrl-C); what was half-built is removed again
"""


@click.group(
    cls=_Natlab,
    context_settings={"help_option_names": ["-h", "--help"]},
    epilog=EXIT_CODES,
)
@click.version_option(package_name="natlab")
def cli() -> None:
    """natlab: NAT routers, phones and STUN in Linux network namespaces.

    Describe a network in YAML (or name a built-in one), bring it up as real network
    stacks, run anything inside any node, and take it all down again.

    Commands on a running lab take --lab NAME, or read $NATLAB_LAB; with
    neither, they use the only lab up. --json prints JSON to stdout.
    """


for _command in (
    validate.validate,
    *labs.COMMANDS,
    *probe.COMMANDS,
    nat.nat,
    link.link,
    clock.clock,
    *scenarios.COMMANDS,
    *catalog.COMMANDS,
):
    cli.add_command(_command)


_MAIN_PID = os.getpid()


def _interrupt(signum: int, frame: object) -> None:
    """Ctrl-C and SIGTERM unwind natlab (cleaning up); a forked helper just exits."""
    if os.getpid() != _MAIN_PID:
        os._exit(128 + signum)
    raise KeyboardInterrupt


def main() -> None:
    """Entry point: SIGINT and SIGTERM become Ctrl-C; every outcome becomes its exit code."""
    signal.signal(signal.SIGINT, _interrupt)
    signal.signal(signal.SIGTERM, _interrupt)
    try:
        code = cli.main(standalone_mode=False)
    except click.exceptions.Abort:  # Ctrl-C while click itself was busy (parsing arguments)
        click.echo("natlab: interrupted", err=True)
        sys.exit(130)
    except click.ClickException as error:
        error.show()
        sys.exit(error.exit_code)
    sys.exit(code if isinstance(code, int) else 0)
