"""Topology files: YAML in, a validated model with every address planned out."""

from natlab.topology.load import load_topology, parse_topology
from natlab.topology.model import Host, Interface, Route, Router, Segment, Topology

__all__ = [
    "Host",
    "Interface",
    "Route",
    "Router",
    "Segment",
    "Topology",
    "load_topology",
    "parse_topology",
]
