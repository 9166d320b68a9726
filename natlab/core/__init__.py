"""Pure NAT logic: behaviour axes, packets, the engine. No I/O, no clock, no root."""
