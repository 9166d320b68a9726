"""Labs: topologies made real in network namespaces, with a ledger for clean teardown."""

from natlab.lab.lab import Lab, down, down_all, require_root, running_labs, teardown

__all__ = ["Lab", "down", "down_all", "require_root", "running_labs", "teardown"]
