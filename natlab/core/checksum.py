"""The Internet checksum, updated incrementally (RFC 1624).

A NAT changes a few 16-bit words of a packet (an address, a port, an ICMP
identifier) and must fix every checksum that covers them. Recomputing over
the whole packet would cost time per byte and, worse, would turn a packet
that arrived corrupt into one that looks valid. RFC 1624 equation 3 adjusts
the old checksum by the difference instead, so a bad packet stays bad.
"""

from __future__ import annotations


def incremental_update(checksum: int, old: bytes, new: bytes) -> int:
    """The checksum after the 16-bit-aligned words `old` were replaced by `new`.

    RFC 1624 eqn. 3: HC' = ~(~HC + ~m + m'), in one's complement arithmetic.
    `old` and `new` have the same even length and start at an even offset
    from the start of what the checksum covers.
    """
    return apply_difference(checksum, difference(old, new))


def difference(old: bytes, new: bytes) -> int:
    """The sum of ~m + m' over the words of `old` and `new`, folded to 16 bits.

    Worked out once, it updates any number of checksums for the same change
    (the router daemon's flow cache replays one per packet).
    """
    total = 0
    for i in range(0, len(old), 2):
        total += (~((old[i] << 8) | old[i + 1]) & 0xFFFF) + ((new[i] << 8) | new[i + 1])
    return fold(total)


def apply_difference(checksum: int, change: int) -> int:
    """RFC 1624 eqn. 3 with the change already summed by `difference`."""
    return ~fold((~checksum & 0xFFFF) + change) & 0xFFFF


def fold(total: int) -> int:
    """A sum of 16-bit words brought back to 16 bits with end-around carries."""
    while total > 0xFFFF:
        total = (total & 0xFFFF) + (total >> 16)
    return total


def internet_checksum(data: bytes | bytearray) -> int:
    """The RFC 1071 checksum of data, for packets the router builds from scratch."""
    if len(data) % 2:
        data = bytes(data) + b"\0"
    total = sum(int.from_bytes(data[i : i + 2], "big") for i in range(0, len(data), 2))
    return ~fold(total) & 0xFFFF
