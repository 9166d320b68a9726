"""A small ICE agent (aioice) for `natlab matrix --run`: connect to the peer, trade datagrams.

Everything comes from the environment natlab gives a pair's programs:

- NATLAB_ROLE: `a` (controlling: sends the pings) or `b` (controlled: answers them);
- NATLAB_STUN: `ip:port,...` (the first is used), NATLAB_TURN, NATLAB_TURN_USER,
  NATLAB_TURN_PASSWORD when the lab has a TURN server;
- NATLAB_SHARED: a directory of this pair only. Each side writes its ICE
  credentials and candidates to ROLE.json there and waits for the peer's;
- NATLAB_TIMEOUT: the seconds the pair has; the agent gives up well before.

Exit status: 0 connected and every ping answered; 1 no connection (or no
answers); 2 bad input: a missing variable, or garbage in the peer's file.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
from pathlib import Path

import aioice
import aioice.stun

PINGS = 5
MAX_FILE = 64 * 1024  # a peer's file is a few hundred bytes; anything bigger is not one
POLL = 0.05


class BadInput(Exception):
    """The environment or the shared directory holds something the agent cannot use."""


def endpoint(text: str, what: str) -> tuple[str, int]:
    host, _, port = text.strip().rpartition(":")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise BadInput(f"{what}: '{text}' is not ip:port")
    return host, int(port)


def settings() -> dict:
    env = os.environ
    role, shared = env.get("NATLAB_ROLE"), env.get("NATLAB_SHARED")
    if role not in ("a", "b") or not shared:
        raise BadInput("NATLAB_ROLE (a or b) and NATLAB_SHARED must be set: run me in natlab")
    stun = [s for s in env.get("NATLAB_STUN", "").split(",") if s]
    turn = env.get("NATLAB_TURN")
    return {
        "role": role,
        "shared": Path(shared),
        "timeout": float(env.get("NATLAB_TIMEOUT", "30")),
        "stun": endpoint(stun[0], "NATLAB_STUN") if stun else None,
        "turn": endpoint(turn, "NATLAB_TURN") if turn else None,
        "turn_user": env.get("NATLAB_TURN_USER"),
        "turn_password": env.get("NATLAB_TURN_PASSWORD"),
    }


def publish(shared: Path, role: str, connection: aioice.Connection) -> None:
    """ROLE.json, written whole then renamed, so the peer never reads half of it."""
    offer = {
        "username": connection.local_username,
        "password": connection.local_password,
        "candidates": [c.to_sdp() for c in connection.local_candidates],
    }
    part = shared / f".{role}.json.part"
    part.write_text(json.dumps(offer))
    part.rename(shared / f"{role}.json")


async def peer_offer(shared: Path, peer: str, deadline: float) -> dict:
    path = shared / f"{peer}.json"
    while not path.exists():
        if time.monotonic() > deadline:
            raise TimeoutError(f"no {path.name} from the peer in time")
        await asyncio.sleep(POLL)
    with path.open("rb") as stream:
        raw = stream.read(MAX_FILE + 1)
    if len(raw) > MAX_FILE:
        raise BadInput(f"{path}: more than {MAX_FILE} bytes, not an offer")
    try:
        offer = json.loads(raw)
        assert isinstance(offer, dict)
        assert isinstance(offer["username"], str) and isinstance(offer["password"], str)
        assert isinstance(offer["candidates"], list) and len(offer["candidates"]) <= 64
        candidates = [aioice.Candidate.from_sdp(line) for line in offer["candidates"]]
    except (ValueError, KeyError, TypeError, AssertionError, IndexError) as error:
        raise BadInput(f"{path}: not an offer ({type(error).__name__}: {error})") from None
    return {**offer, "candidates": candidates}


async def exchange(connection: aioice.Connection, controlling: bool, deadline: float) -> None:
    """a sends ping N and waits for pong N, PINGS times; b answers each ping."""
    for number in range(PINGS):
        left = max(0.1, deadline - time.monotonic())
        if controlling:
            await connection.send(f"ping {number}".encode())
            answer = await asyncio.wait_for(connection.recv(), left)
            if answer != f"pong {number}".encode():
                raise ConnectionError(f"expected pong {number}, got {answer[:40]!r}")
        else:
            ping = await asyncio.wait_for(connection.recv(), left)
            await connection.send(ping.replace(b"ping", b"pong", 1))


async def main() -> int:
    config = settings()
    started = time.monotonic()
    deadline = started + max(1.0, config["timeout"] - 2.0)  # leave natlab time to stop us
    controlling = config["role"] == "a"
    connection = aioice.Connection(
        ice_controlling=controlling,
        stun_server=config["stun"],
        turn_server=config["turn"],
        turn_username=config["turn_user"],
        turn_password=config["turn_password"],
        use_ipv6=False,
    )
    try:
        await asyncio.wait_for(connection.gather_candidates(), 5.0)
        publish(config["shared"], config["role"], connection)
        offer = await peer_offer(config["shared"], "b" if controlling else "a", deadline)
        connection.remote_username = offer["username"]
        connection.remote_password = offer["password"]
        for candidate in offer["candidates"]:
            await connection.add_remote_candidate(candidate)
        await connection.add_remote_candidate(None)
        await asyncio.wait_for(connection.connect(), max(0.1, deadline - time.monotonic()))
        pair = connection._nominated.get(1)  # aioice has no public accessor
        if pair is not None:
            print(
                f"selected {pair.local_candidate.type} {pair.local_candidate.host}:"
                f"{pair.local_candidate.port} -> {pair.remote_candidate.type} "
                f"{pair.remote_candidate.host}:{pair.remote_candidate.port}",
                flush=True,
            )
        await exchange(connection, controlling, deadline)
    except BadInput:
        raise
    except (TimeoutError, ConnectionError, OSError) as error:
        print(f"no connection: {type(error).__name__}: {error}", flush=True)
        return 1
    finally:
        await connection.close()
    print(f"connected: {PINGS} pings answered in {time.monotonic() - started:.2f} s", flush=True)
    return 0


if __name__ == "__main__":
    # Retransmit STUN on a lab's scale (100 ms, 4 times): a pair that cannot connect gives up
    # in about 3 s instead of aioice's default half-minute.
    aioice.stun.RETRY_RTO = 0.1
    aioice.stun.RETRY_MAX = 4
    try:
        sys.exit(asyncio.run(main()))
    except BadInput as error:
        print(f"ice-agent: {error}", file=sys.stderr)
        sys.exit(2)
