"""Processes natlab starts inside nodes: phones, the PBX, STUN and TURN servers.

The lab forks each into its node and hands it its typed config whole
(`run(config)`, natlab.lab.endpoints); the STUN server and behaviour
discovery also run by hand as `python -m natlab.endpoints.<module>`.
Nothing is imported here, so running one as __main__ imports it only once.
"""
