"""natlab: a NAT router emulator for lab testing."""

from natlab.errors import NatlabError

__all__ = ["Lab", "NatlabError"]


def __getattr__(name: str):
    # Lab pulls in pyroute2; import it only when asked so `natlab validate`
    # and the pure layers stay light.
    if name == "Lab":
        from natlab.lab import Lab

        return Lab
    raise AttributeError(name)
