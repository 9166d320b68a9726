"""A router's dataplane: what moves packets between its WAN and its LANs.

The lab asks a dataplane two things: does it translate (so the route plan
knows which LANs stay hidden), and to set itself up in a router's namespace.
Kernel forwarding is the plain one; natlab's own NAT dataplane plugs in here.
"""

from natlab.router.kernel import KernelForwarding

__all__ = ["KernelForwarding"]
