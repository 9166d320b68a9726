"""The router daemon's process: natlab's own dataplane around the pure NAT engine.

Everything here runs inside a router's namespace (daemon.py and what it
uses: its config, ports, routes, control socket and event log), plus the
file layout and wire format the lab shares with it (files.py, config.py,
control.py, eventlog.py). Starting daemons and waiting for them is the
lab's (natlab.lab.routers). Nothing is imported here, so a daemon starts
without loading netlink code.
"""
