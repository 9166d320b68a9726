"""Processes natlab starts inside nodes: the public STUN server, behaviour discovery.

Each module with a `main` runs as `python -m natlab.endpoints.<module>`;
nothing is imported here, so running one as __main__ imports it only once.
"""
