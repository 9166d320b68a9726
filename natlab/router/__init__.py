"""A router's dataplane: what moves packets between its WAN and its LANs.

The lab asks a dataplane whether a router translates (so the route plan
knows which LANs stay hidden), to set a router's namespace up, and to start
whatever runs the router. natlab's own NAT daemon (nat.py, daemon.py) is
the default; plain kernel forwarding (kernel.py) is there to compare with.
Nothing is imported here, so a daemon starts without loading netlink code.
"""
