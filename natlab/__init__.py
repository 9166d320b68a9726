"""natlab: a NAT router emulator for lab testing.

`import natlab` stays light, so `natlab validate` and the pytest plugin start
fast: Lab (pyroute2, the endpoints: about 0.7 s) and __version__
(importlib.metadata) are looked up on first use. Type checkers see both
through the TYPE_CHECKING block.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from natlab.errors import NatlabError

if TYPE_CHECKING:
    from natlab.lab import Lab

    __version__: str

__all__ = ["Lab", "NatlabError", "__version__"]


def __getattr__(name: str) -> object:
    if name == "Lab":
        from natlab.lab import Lab

        return Lab
    if name == "__version__":
        from importlib.metadata import PackageNotFoundError, version

        try:
            return version("natlab")
        except PackageNotFoundError:  # run from a checkout that was never installed
            return "0+unknown"
    raise AttributeError(f"module 'natlab' has no attribute {name!r}")
