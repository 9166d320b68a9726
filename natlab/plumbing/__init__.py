"""The only code that speaks netlink (pyroute2): namespaces, links, addresses, routes."""

from pyroute2 import config as _pyroute2_config

# pyroute2 forks a short-lived child to open each namespace's socket and stops
# it with SIGTERM. Have the child drop any handler it inherited from us: a
# child that ran natlab's Ctrl-C handling would tear the lab down under us.
_pyroute2_config.disable_mp_signal = True
